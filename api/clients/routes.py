"""HTTP routes for companies, contacts and custom fields. Companies and contacts share one route set, built
by `_client_router`."""

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from api.auth.deps import AdminDep, PrincipalDep, allow
from api.auth.models import Role
from api.auth.principals import Principal
from api.clients import search as search_service
from api.clients import service
from api.clients.schemas import (
    CompanyCreate,
    CompanyRead,
    CompanyUpdate,
    ContactCreate,
    ContactRead,
    ContactUpdate,
    CustomFieldCreate,
    CustomFieldRead,
    CustomFieldUpdate,
)
from api.clients.search import SearchHit
from api.clients.service import COMPANY, CONTACT, ClientFilters, ClientKindSpec
from api.core.db import SessionDep
from api.core.errors import problems
from api.core.etags import IfMatchDep, set_etag
from api.core.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from api.core.types import SearchText
from api.sharing.visibility import OwnerQuery, Viewer, owner_filter, viewer_of

ClientReaderDep = Annotated[Viewer, Depends(viewer_of(scope="clients:read"))]
# Marketing reads clients but does not change them.
ClientWriterDep = Annotated[Viewer, Depends(viewer_of(Role.admin, Role.manager, Role.rep, scope="clients:write"))]
ConfirmDuplicate = Annotated[
    bool, Query(description="Create or save even though a client with the same e-mail, phone or domain exists.")
]


async def client_filters(
    principal: PrincipalDep,
    q: Annotated[SearchText | None, Query(description="Names starting with this (accents and case ignored).")] = None,
    owner_id: OwnerQuery = None,
    tag: Annotated[SearchText | None, Query(description="Only records with this tag.")] = None,
    segment: Annotated[SearchText | None, Query()] = None,
    company_id: Annotated[uuid.UUID | None, Query(description="Contacts: only this company's.")] = None,
    deleted: Annotated[bool, Query(description="The bin: deleted records you can restore.")] = False,
) -> ClientFilters:
    """The list's filters, which the export takes too."""
    return ClientFilters(
        q=q,
        owner_id=owner_filter(principal, owner_id),
        tag=tag,
        segment=segment,
        company_id=company_id,
        deleted=deleted,
    )


ClientFiltersDep = Annotated[ClientFilters, Depends(client_filters)]


def _client_router(spec: ClientKindSpec, path: str, create_model: Any, update_model: Any, read_model: Any) -> APIRouter:
    router = APIRouter(prefix=f"/{path}", tags=[path], responses=problems(401, 403))
    what = spec.what

    @router.get("", name="list", summary=f"{what.title()}s you can see, by name", responses=problems(400, 422))
    async def list_clients(
        viewer: ClientReaderDep,
        session: SessionDep,
        filters: ClientFiltersDep,
        limit: LimitQuery = DEFAULT_LIMIT,
        cursor: CursorQuery = None,
    ) -> Page[read_model]:
        records, next_cursor = await service.list_clients(
            session=session, viewer=viewer, spec=spec, filters=filters, limit=limit, cursor=cursor
        )
        return Page(items=[read_model.model_validate(r) for r in records], next_cursor=next_cursor)

    @router.get("/{client_id}", name="get", summary=f"One {what}", responses=problems(404))
    async def get_client(
        client_id: uuid.UUID, viewer: ClientReaderDep, session: SessionDep, response: Response
    ) -> read_model:
        record = await service.get_client(session=session, viewer=viewer, spec=spec, client_id=client_id)
        set_etag(response, record.version)
        return read_model.model_validate(record)

    @router.post(
        "",
        name="create",
        summary=f"Create a {what} (409 with the existing ids when it looks like a duplicate)",
        status_code=201,
        responses=problems(409, 422),
    )
    async def create_client(
        data: create_model,
        viewer: ClientWriterDep,
        session: SessionDep,
        response: Response,
        confirm_duplicate: ConfirmDuplicate = False,
    ) -> read_model:
        record = await service.create_client(
            session=session, viewer=viewer, spec=spec, data=data, confirm_duplicate=confirm_duplicate
        )
        response.headers["Location"] = f"/api/v1/{path}/{record.id}"
        set_etag(response, record.version)
        return read_model.model_validate(record)

    @router.patch("/{client_id}", name="update", summary=f"Change a {what}", responses=problems(404, 409, 412, 422))
    async def update_client(
        client_id: uuid.UUID,
        data: update_model,
        viewer: ClientWriterDep,
        session: SessionDep,
        response: Response,
        if_match: IfMatchDep,
        confirm_duplicate: ConfirmDuplicate = False,
    ) -> read_model:
        record = await service.update_client(
            session=session,
            viewer=viewer,
            spec=spec,
            client_id=client_id,
            data=data,
            expected_version=if_match,
            confirm_duplicate=confirm_duplicate,
            present=read_model.model_validate,
        )
        set_etag(response, record.version)
        return read_model.model_validate(record)

    @router.delete(
        "/{client_id}",
        name="delete",
        summary=f"Move a {what} to the bin (its owner, their manager or an admin)",
        status_code=204,
        responses=problems(404, 412, 422),
    )
    async def delete_client(
        client_id: uuid.UUID, viewer: ClientWriterDep, session: SessionDep, if_match: IfMatchDep
    ) -> None:
        await service.delete_client(
            session=session,
            viewer=viewer,
            spec=spec,
            client_id=client_id,
            expected_version=if_match,
            present=read_model.model_validate,
        )

    @router.post(
        "/{client_id}/restore", name="restore", summary=f"Bring a {what} back from the bin", responses=problems(404)
    )
    async def restore_client(
        client_id: uuid.UUID, viewer: ClientWriterDep, session: SessionDep, response: Response
    ) -> read_model:
        record = await service.restore_client(session=session, viewer=viewer, spec=spec, client_id=client_id)
        set_etag(response, record.version)
        return read_model.model_validate(record)

    return router


companies_router = _client_router(COMPANY, "companies", CompanyCreate, CompanyUpdate, CompanyRead)
contacts_router = _client_router(CONTACT, "contacts", ContactCreate, ContactUpdate, ContactRead)

fields_router = APIRouter(prefix="/custom-fields", tags=["custom-fields"], responses=problems(401, 403))
FieldReaderDep = Annotated[Principal, Depends(allow(scope="clients:read"))]


@fields_router.get("", name="list", summary="The organisation's custom fields, by record kind and position")
async def list_custom_fields(
    principal: FieldReaderDep,
    session: SessionDep,
    entity: Annotated[str | None, Query(pattern="^(company|contact|deal)$")] = None,
) -> Page[CustomFieldRead]:
    fields = await service.list_custom_fields(session=session, principal=principal, entity=entity)
    return Page(items=[CustomFieldRead.model_validate(f) for f in fields])


@fields_router.post(
    "", name="create", summary="Add a custom field (admin)", status_code=201, responses=problems(409, 422)
)
async def create_custom_field(
    data: CustomFieldCreate, principal: AdminDep, session: SessionDep, response: Response
) -> CustomFieldRead:
    field = await service.create_custom_field(session=session, principal=principal, data=data)
    response.headers["Location"] = "/api/v1/custom-fields"
    set_etag(response, field.version)
    return CustomFieldRead.model_validate(field)


@fields_router.patch(
    "/{field_id}",
    name="update",
    summary="Relabel, reorder or change choices (admin)",
    responses=problems(404, 412, 422),
)
async def update_custom_field(
    field_id: uuid.UUID,
    data: CustomFieldUpdate,
    principal: AdminDep,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
) -> CustomFieldRead:
    field = await service.update_custom_field(
        session=session, principal=principal, field_id=field_id, data=data, expected_version=if_match
    )
    set_etag(response, field.version)
    return CustomFieldRead.model_validate(field)


@fields_router.delete(
    "/{field_id}",
    name="delete",
    summary="Remove a custom field (admin)",
    status_code=204,
    responses=problems(404, 412, 422),
)
async def delete_custom_field(
    field_id: uuid.UUID, principal: AdminDep, session: SessionDep, if_match: IfMatchDep
) -> None:
    await service.delete_custom_field(
        session=session, principal=principal, field_id=field_id, expected_version=if_match
    )


search_router = APIRouter(prefix="/search", tags=["search"], responses=problems(401, 403))


@search_router.get(
    "",
    name="search",
    summary="Find companies, contacts and deals by name (typos forgiven), e-mail, phone or domain",
    responses=problems(422),
)
async def search(
    viewer: ClientReaderDep,
    session: SessionDep,
    q: Annotated[SearchText, Query(min_length=1)],
    kinds: Annotated[
        list[Literal["company", "contact", "deal"]] | None, Query(description="What to look for; all by default.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> Page[SearchHit]:
    wanted = set(kinds or ("company", "contact", "deal"))
    principal = viewer.principal
    if principal.kind == "api_key" and "deals:read" not in principal.scopes:
        wanted.discard("deal")
    hits = await search_service.search(session=session, viewer=viewer, q=q, kinds=wanted, limit=limit)
    return Page(items=hits)


routers = (companies_router, contacts_router, fields_router, search_router)
