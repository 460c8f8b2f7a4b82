"""HTTP routes for products, pipelines, stages and lost reasons."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from api.auth.deps import AdminDep, allow
from api.auth.principals import Principal
from api.core.db import SessionDep
from api.core.errors import problems
from api.core.etags import IfMatchDep, set_etag
from api.core.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from api.deals import deal_routes, service
from api.deals.schemas import (
    LostReasonCreate,
    LostReasonRead,
    LostReasonUpdate,
    PipelineCreate,
    PipelineRead,
    PipelineUpdate,
    ProductCreate,
    ProductRead,
    ProductUpdate,
    StageCreate,
    StageRead,
    StageUpdate,
)

ReaderDep = Annotated[Principal, Depends(allow(scope="deals:read"))]
IncludeInactive = Annotated[bool, Query(description="Include inactive entries (for admin screens).")]

pipelines_router = APIRouter(prefix="/pipelines", tags=["pipelines"], responses=problems(401, 403))
stages_router = APIRouter(prefix="/stages", tags=["stages"], responses=problems(401, 403))
products_router = APIRouter(prefix="/products", tags=["products"], responses=problems(401, 403))
reasons_router = APIRouter(prefix="/lost-reasons", tags=["lost-reasons"], responses=problems(401, 403))


def _created(response: Response, path: str, version: int) -> None:
    response.headers["Location"] = f"/api/v1/{path}"
    set_etag(response, version)


# Pipelines and stages


@pipelines_router.get("", name="list", summary="Pipelines with their stages, the default first")
async def list_pipelines(principal: ReaderDep, session: SessionDep) -> Page[PipelineRead]:
    return Page(items=await service.list_pipelines(session=session, principal=principal))


@pipelines_router.get("/{pipeline_id}", name="get", summary="One pipeline with its stages", responses=problems(404))
async def get_pipeline(
    pipeline_id: uuid.UUID, principal: ReaderDep, session: SessionDep, response: Response
) -> PipelineRead:
    pipeline = await service.get_pipeline(session=session, principal=principal, pipeline_id=pipeline_id)
    set_etag(response, pipeline.version)
    return pipeline


@pipelines_router.post(
    "",
    name="create",
    summary="Create a pipeline from its open stages; won and lost stages are added (admin)",
    status_code=201,
    responses=problems(409, 422),
)
async def create_pipeline(
    data: PipelineCreate, principal: AdminDep, session: SessionDep, response: Response
) -> PipelineRead:
    pipeline = await service.create_pipeline(session=session, principal=principal, data=data)
    _created(response, f"pipelines/{pipeline.id}", pipeline.version)
    return pipeline


@pipelines_router.patch(
    "/{pipeline_id}",
    name="update",
    summary="Rename, scope to a team or make default (admin)",
    responses=problems(404, 412, 422),
)
async def update_pipeline(
    pipeline_id: uuid.UUID,
    data: PipelineUpdate,
    principal: AdminDep,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
) -> PipelineRead:
    pipeline = await service.update_pipeline(
        session=session, principal=principal, pipeline_id=pipeline_id, data=data, expected_version=if_match
    )
    set_etag(response, pipeline.version)
    return pipeline


@pipelines_router.delete(
    "/{pipeline_id}",
    name="delete",
    summary="Delete a pipeline that is not the default (admin)",
    status_code=204,
    responses=problems(404, 409, 412, 422),
)
async def delete_pipeline(
    pipeline_id: uuid.UUID, principal: AdminDep, session: SessionDep, if_match: IfMatchDep
) -> None:
    await service.delete_pipeline(
        session=session, principal=principal, pipeline_id=pipeline_id, expected_version=if_match
    )


@pipelines_router.post(
    "/{pipeline_id}/stages",
    name="add-stage",
    summary="Add an open stage, at a position or at the end (admin)",
    status_code=201,
    responses=problems(404, 409, 422),
)
async def add_stage(
    pipeline_id: uuid.UUID, data: StageCreate, principal: AdminDep, session: SessionDep, response: Response
) -> StageRead:
    stage = await service.add_stage(session=session, principal=principal, pipeline_id=pipeline_id, data=data)
    response.headers["Location"] = f"/api/v1/pipelines/{pipeline_id}"
    set_etag(response, stage.version)
    return StageRead.model_validate(stage)


@stages_router.patch(
    "/{stage_id}",
    name="update",
    summary="Rename, move, or change probability or rotting of a stage (admin)",
    responses=problems(404, 412, 422),
)
async def update_stage(
    stage_id: uuid.UUID,
    data: StageUpdate,
    principal: AdminDep,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
) -> StageRead:
    stage = await service.update_stage(
        session=session, principal=principal, stage_id=stage_id, data=data, expected_version=if_match
    )
    set_etag(response, stage.version)
    return StageRead.model_validate(stage)


@stages_router.delete(
    "/{stage_id}",
    name="delete",
    summary="Delete an open stage (admin)",
    status_code=204,
    responses=problems(404, 409, 412, 422),
)
async def delete_stage(stage_id: uuid.UUID, principal: AdminDep, session: SessionDep, if_match: IfMatchDep) -> None:
    await service.delete_stage(session=session, principal=principal, stage_id=stage_id, expected_version=if_match)


# Products


@products_router.get("", name="list", summary="Products, by name", responses=problems(400, 422))
async def list_products(
    principal: ReaderDep,
    session: SessionDep,
    include_inactive: IncludeInactive = False,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[ProductRead]:
    products, next_cursor = await service.list_products(
        session=session, principal=principal, include_inactive=include_inactive, limit=limit, cursor=cursor
    )
    return Page(items=[ProductRead.model_validate(p) for p in products], next_cursor=next_cursor)


@products_router.get("/{product_id}", name="get", summary="One product", responses=problems(404))
async def get_product(
    product_id: uuid.UUID, principal: ReaderDep, session: SessionDep, response: Response
) -> ProductRead:
    product = await service.get_product(session=session, principal=principal, product_id=product_id)
    set_etag(response, product.version)
    return ProductRead.model_validate(product)


@products_router.post(
    "", name="create", summary="Create a product (admin)", status_code=201, responses=problems(409, 422)
)
async def create_product(
    data: ProductCreate, principal: AdminDep, session: SessionDep, response: Response
) -> ProductRead:
    product = await service.create_product(session=session, principal=principal, data=data)
    _created(response, f"products/{product.id}", product.version)
    return ProductRead.model_validate(product)


@products_router.patch(
    "/{product_id}", name="update", summary="Change a product (admin)", responses=problems(404, 409, 412, 422)
)
async def update_product(
    product_id: uuid.UUID,
    data: ProductUpdate,
    principal: AdminDep,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
) -> ProductRead:
    product = await service.update_product(
        session=session, principal=principal, product_id=product_id, data=data, expected_version=if_match
    )
    set_etag(response, product.version)
    return ProductRead.model_validate(product)


@products_router.delete(
    "/{product_id}",
    name="delete",
    summary="Delete a product (admin)",
    status_code=204,
    responses=problems(404, 412, 422),
)
async def delete_product(product_id: uuid.UUID, principal: AdminDep, session: SessionDep, if_match: IfMatchDep) -> None:
    await service.delete_product(session=session, principal=principal, product_id=product_id, expected_version=if_match)


# Lost reasons


@reasons_router.get("", name="list", summary="Why deals are lost: the organisation's list, in order")
async def list_lost_reasons(
    principal: ReaderDep, session: SessionDep, include_inactive: IncludeInactive = False
) -> Page[LostReasonRead]:
    reasons = await service.list_lost_reasons(session=session, principal=principal, include_inactive=include_inactive)
    return Page(items=[LostReasonRead.model_validate(r) for r in reasons])


@reasons_router.post(
    "", name="create", summary="Add a lost reason at the end (admin)", status_code=201, responses=problems(409, 422)
)
async def create_lost_reason(
    data: LostReasonCreate, principal: AdminDep, session: SessionDep, response: Response
) -> LostReasonRead:
    reason = await service.create_lost_reason(session=session, principal=principal, data=data)
    _created(response, "lost-reasons", reason.version)
    return LostReasonRead.model_validate(reason)


@reasons_router.patch(
    "/{lost_reason_id}",
    name="update",
    summary="Rename, reorder or retire a lost reason (admin)",
    responses=problems(404, 412, 422),
)
async def update_lost_reason(
    lost_reason_id: uuid.UUID,
    data: LostReasonUpdate,
    principal: AdminDep,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
) -> LostReasonRead:
    reason = await service.update_lost_reason(
        session=session, principal=principal, lost_reason_id=lost_reason_id, data=data, expected_version=if_match
    )
    set_etag(response, reason.version)
    return LostReasonRead.model_validate(reason)


@reasons_router.delete(
    "/{lost_reason_id}",
    name="delete",
    summary="Delete a lost reason (admin)",
    status_code=204,
    responses=problems(404, 412, 422),
)
async def delete_lost_reason(
    lost_reason_id: uuid.UUID, principal: AdminDep, session: SessionDep, if_match: IfMatchDep
) -> None:
    await service.delete_lost_reason(
        session=session, principal=principal, lost_reason_id=lost_reason_id, expected_version=if_match
    )


routers = (deal_routes.router, pipelines_router, stages_router, products_router, reasons_router)
