"""HTTP routes for deals: CRUD, the pipeline moves (move, win, lose, reopen), line items and the board."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from api.auth.deps import PrincipalDep
from api.auth.models import Role
from api.core.db import SessionDep
from api.core.errors import problems
from api.core.etags import IfMatchDep, set_etag
from api.core.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from api.core.types import Day, SearchText
from api.deals import deals as service
from api.deals.deals import DealFilters
from api.deals.models import Deal, DealStatus
from api.deals.schemas import (
    Board,
    DealCreate,
    DealDetail,
    DealLines,
    DealLose,
    DealMove,
    DealRead,
    DealReopen,
    DealUpdate,
)
from api.sharing.visibility import OwnerQuery, Viewer, owner_filter, viewer_of

ReaderDep = Annotated[Viewer, Depends(viewer_of(scope="deals:read"))]
WriterDep = Annotated[Viewer, Depends(viewer_of(Role.admin, Role.manager, Role.rep, scope="deals:write"))]

router = APIRouter(prefix="/deals", tags=["deals"], responses=problems(401, 403))


async def _detail(session: SessionDep, response: Response, deal: Deal) -> DealDetail:
    set_etag(response, deal.version)
    return await service.detail(session, deal)


async def deal_filters(
    principal: PrincipalDep,
    owner_id: OwnerQuery = None,
    pipeline_id: uuid.UUID | None = None,
    stage_id: uuid.UUID | None = None,
    status: DealStatus | None = None,
    company_id: uuid.UUID | None = None,
    contact_id: uuid.UUID | None = None,
    close_from: Annotated[Day | None, Query(description="Expected to close on or after this day.")] = None,
    close_to: Annotated[Day | None, Query(description="Expected to close on or before this day.")] = None,
    rotten: Annotated[bool | None, Query(description="Only rotten (true) or only fresh (false) deals.")] = None,
    q: Annotated[SearchText | None, Query(description="Title contains (accents and case ignored).")] = None,
) -> DealFilters:
    """The list's filters, which the export takes too."""
    return DealFilters(
        owner_id=owner_filter(principal, owner_id),
        pipeline_id=pipeline_id,
        stage_id=stage_id,
        status=status,
        company_id=company_id,
        contact_id=contact_id,
        close_from=close_from,
        close_to=close_to,
        rotten=rotten,
        q=q,
    )


DealFiltersDep = Annotated[DealFilters, Depends(deal_filters)]


@router.get(
    "",
    name="list",
    summary="Deals you can see, newest first",
    responses=problems(400, 422),
    response_model=Page[DealRead],
)
async def list_deals(
    viewer: ReaderDep,
    session: SessionDep,
    filters: DealFiltersDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Response:
    # Written whole by PostgreSQL (or from the models on SQLite): nothing is left for FastAPI to validate.
    body = await service.list_page(session=session, viewer=viewer, filters=filters, limit=limit, cursor=cursor)
    return Response(body, media_type="application/json")


@router.get(
    "/board", name="board", summary="A pipeline's stages with count, totals and first deals", responses=problems(422)
)
async def board(
    viewer: ReaderDep,
    session: SessionDep,
    pipeline_id: Annotated[uuid.UUID | None, Query(description="Defaults to the default pipeline.")] = None,
    owner_id: OwnerQuery = None,
    limit: Annotated[int, Query(ge=1, le=50, description="Deals per stage.")] = 20,
) -> Board:
    return await service.board(
        session=session, viewer=viewer, pipeline_id=pipeline_id, owner_id=owner_filter(viewer, owner_id), limit=limit
    )


@router.get("/{deal_id}", name="get", summary="One deal with its lines", responses=problems(404))
async def get_deal(deal_id: uuid.UUID, viewer: ReaderDep, session: SessionDep, response: Response) -> DealDetail:
    return await _detail(session, response, await service.get_deal(session=session, viewer=viewer, deal_id=deal_id))


@router.post("", name="create", summary="Create a deal in an open stage", status_code=201, responses=problems(409, 422))
async def create_deal(data: DealCreate, viewer: WriterDep, session: SessionDep, response: Response) -> DealDetail:
    deal = await service.create_deal(session=session, viewer=viewer, data=data)
    response.headers["Location"] = f"/api/v1/deals/{deal.id}"
    return await _detail(session, response, deal)


@router.patch("/{deal_id}", name="update", summary="Change a deal", responses=problems(404, 412, 422))
async def update_deal(
    deal_id: uuid.UUID,
    data: DealUpdate,
    viewer: WriterDep,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
) -> DealDetail:
    deal = await service.update_deal(
        session=session, viewer=viewer, deal_id=deal_id, data=data, expected_version=if_match
    )
    return await _detail(session, response, deal)


@router.put(
    "/{deal_id}/lines",
    name="set-lines",
    summary="Replace the deal's products; its amount becomes their total",
    responses=problems(404, 412, 422),
)
async def set_lines(
    deal_id: uuid.UUID,
    data: DealLines,
    viewer: WriterDep,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
) -> DealDetail:
    deal = await service.replace_lines(
        session=session, viewer=viewer, deal_id=deal_id, lines=data.lines, expected_version=if_match
    )
    return await _detail(session, response, deal)


@router.post(
    "/{deal_id}/move", name="move", summary="Move an open deal to another stage", responses=problems(404, 409, 412, 422)
)
async def move_deal(
    deal_id: uuid.UUID, data: DealMove, viewer: WriterDep, session: SessionDep, response: Response, if_match: IfMatchDep
) -> DealDetail:
    deal = await service.move_deal(
        session=session, viewer=viewer, deal_id=deal_id, stage_id=data.stage_id, expected_version=if_match
    )
    return await _detail(session, response, deal)


@router.post("/{deal_id}/win", name="win", summary="Mark a deal won", responses=problems(404, 409, 412))
async def win_deal(
    deal_id: uuid.UUID, viewer: WriterDep, session: SessionDep, response: Response, if_match: IfMatchDep
) -> DealDetail:
    deal = await service.win_deal(session=session, viewer=viewer, deal_id=deal_id, expected_version=if_match)
    return await _detail(session, response, deal)


@router.post(
    "/{deal_id}/lose", name="lose", summary="Mark a deal lost, with a reason", responses=problems(404, 409, 412, 422)
)
async def lose_deal(
    deal_id: uuid.UUID, data: DealLose, viewer: WriterDep, session: SessionDep, response: Response, if_match: IfMatchDep
) -> DealDetail:
    deal = await service.lose_deal(
        session=session,
        viewer=viewer,
        deal_id=deal_id,
        lost_reason_id=data.lost_reason_id,
        note=data.note,
        expected_version=if_match,
    )
    return await _detail(session, response, deal)


@router.post(
    "/{deal_id}/reopen", name="reopen", summary="Reopen a won or lost deal", responses=problems(404, 409, 412, 422)
)
async def reopen_deal(
    deal_id: uuid.UUID,
    viewer: WriterDep,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
    data: DealReopen | None = None,
) -> DealDetail:
    deal = await service.reopen_deal(
        session=session,
        viewer=viewer,
        deal_id=deal_id,
        stage_id=data.stage_id if data else None,
        expected_version=if_match,
    )
    return await _detail(session, response, deal)


@router.delete(
    "/{deal_id}",
    name="delete",
    summary="Move a deal to the bin (its owner, their manager or an admin)",
    status_code=204,
    responses=problems(404, 412, 422),
)
async def delete_deal(deal_id: uuid.UUID, viewer: WriterDep, session: SessionDep, if_match: IfMatchDep) -> None:
    await service.delete_deal(session=session, viewer=viewer, deal_id=deal_id, expected_version=if_match)


@router.post("/{deal_id}/restore", name="restore", summary="Bring a deal back from the bin", responses=problems(404))
async def restore_deal(deal_id: uuid.UUID, viewer: WriterDep, session: SessionDep, response: Response) -> DealDetail:
    return await _detail(session, response, await service.restore_deal(session=session, viewer=viewer, deal_id=deal_id))
