"""HTTP routes for the feed, client and deal timelines, and shares."""

import uuid
from collections.abc import AsyncIterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.auth.models import Role
from api.clients import card as cards
from api.core import live
from api.core.db import SessionDep, get_database
from api.core.errors import problems
from api.core.pagination import CursorQuery, LimitQuery, Page
from api.deals.models import Deal
from api.feed import queries
from api.feed.schemas import FeedItem, Only, Scope
from api.sharing import service as sharing
from api.sharing.schemas import ShareCreate, SharedEntity, ShareRead
from api.sharing.visibility import Viewer, get_visible, viewer_of

FEED_PAGE = 30

# The feed carries activities: marketing reads them only on client cards.
FeedReaderDep = Annotated[Viewer, Depends(viewer_of(Role.admin, Role.manager, Role.rep, scope="activities:read"))]
ClientReaderDep = Annotated[Viewer, Depends(viewer_of(scope="clients:read"))]
DealReaderDep = Annotated[Viewer, Depends(viewer_of(Role.admin, Role.manager, Role.rep, scope="deals:read"))]
SharerDep = Annotated[Viewer, Depends(viewer_of(Role.admin, Role.manager, Role.rep))]
MemberDep = Annotated[Viewer, Depends(viewer_of(Role.admin, Role.manager, Role.rep, Role.marketing))]
OnlyQuery = Annotated[Only | None, Query(description="Only one kind of news, e.g. `wins`.")]

feed_router = APIRouter(prefix="/feed", tags=["feed"], responses=problems(401, 403))
clients_router = APIRouter(prefix="/clients", tags=["clients"], responses=problems(401, 403))
deals_router = APIRouter(prefix="/deals", tags=["deals"], responses=problems(401, 403))
shares_router = APIRouter(prefix="/shares", tags=["shares"], responses=problems(401, 403))


@feed_router.get("", name="list", summary="What happened, newest first", responses=problems(400, 422))
async def feed(
    viewer: FeedReaderDep,
    session: SessionDep,
    scope: Annotated[
        Scope, Query(description="Yours, your team's, or the whole organisation's (as far as you see).")
    ] = Scope.org,
    only: OnlyQuery = None,
    limit: LimitQuery = FEED_PAGE,
    cursor: CursorQuery = None,
) -> Page[FeedItem]:
    event = queries.event

    def where() -> list[Any]:
        if scope is Scope.me:
            return [(event.actor_id == viewer.user_id) | (event.user_id == viewer.user_id)]
        return [queries.team_actors(viewer)] if scope is Scope.team else []

    items, next_cursor = await queries.page(
        session,
        viewer,
        scope=f"feed:{scope.value}",
        shape=f"feed:{scope.value}",
        where=where,
        only=only,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=items, next_cursor=next_cursor)


@feed_router.get(
    "/stream",
    name="stream",
    summary="The feed, live: server-sent events, one `feed` event per new item you may see",
    response_class=EventSourceResponse,
)
async def stream(request: Request, viewer: FeedReaderDep) -> AsyncIterable[ServerSentEvent]:
    database = get_database(request)
    async for news in live.news(request, live.FEED, viewer.org_id):
        if isinstance(news, ServerSentEvent):
            yield news
            continue
        async with database.reader() as session:
            items = await queries.by_ids(session, viewer, news)
        for item in items:
            yield ServerSentEvent(event="feed", id=str(item.id), data=item)


@clients_router.get(
    "/{client_id}/card",
    name="card",
    summary="A company's or contact's card: details, contacts, deals, value, touches, tasks, timeline",
    responses=problems(404),
    response_model=cards.ClientCard,
)
async def card(client_id: uuid.UUID, viewer: ClientReaderDep, session: SessionDep) -> Response:
    # Written whole by PostgreSQL (or by the models on SQLite): nothing is left for FastAPI to validate.
    body = await cards.card(session=session, viewer=viewer, client_id=client_id)
    return Response(body, media_type="application/json")


@clients_router.get(
    "/{client_id}/timeline", name="timeline", summary="A client's history, newest first", responses=problems(400, 404)
)
async def client_timeline(
    client_id: uuid.UUID,
    viewer: ClientReaderDep,
    session: SessionDep,
    only: OnlyQuery = None,
    limit: LimitQuery = FEED_PAGE,
    cursor: CursorQuery = None,
) -> Page[FeedItem]:
    client = await cards.resolve(session, viewer, client_id)
    items, next_cursor = await cards.timeline(session, viewer, client, only=only, limit=limit, cursor=cursor)
    return Page(items=items, next_cursor=next_cursor)


@deals_router.get(
    "/{deal_id}/timeline", name="timeline", summary="A deal's history, newest first", responses=problems(400, 404)
)
async def deal_timeline(
    deal_id: uuid.UUID,
    viewer: DealReaderDep,
    session: SessionDep,
    only: OnlyQuery = None,
    limit: LimitQuery = FEED_PAGE,
    cursor: CursorQuery = None,
) -> Page[FeedItem]:
    deal = await get_visible(session, viewer, Deal, deal_id, "deal")
    items, next_cursor = await queries.page(
        session,
        viewer,
        scope=f"timeline:{deal.id}",
        shape="timeline:deal",
        where=lambda: [queries.event.deal_id == queries.SUBJECT],
        subject=deal.id,
        only=only,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=items, next_cursor=next_cursor)


@shares_router.get("", name="list", summary="Who a client or deal is shared with", responses=problems(404, 422))
async def list_shares(
    viewer: MemberDep, session: SessionDep, entity: SharedEntity, entity_id: uuid.UUID
) -> Page[ShareRead]:
    found = await sharing.list_shares(session=session, viewer=viewer, entity=entity, entity_id=entity_id)
    return Page(items=[ShareRead.model_validate(s) for s in found])


@shares_router.post(
    "",
    name="create",
    summary="Share a client or deal with colleagues (they see it and hear of it in their feed)",
    status_code=201,
    responses=problems(404, 422),
)
async def share(data: ShareCreate, viewer: SharerDep, session: SessionDep) -> Page[ShareRead]:
    created = await sharing.share(session=session, viewer=viewer, data=data)
    return Page(items=[ShareRead.model_validate(s) for s in created])


@shares_router.delete(
    "/{share_id}", name="delete", summary="Stop sharing (or leave a share)", status_code=204, responses=problems(404)
)
async def unshare(share_id: uuid.UUID, viewer: MemberDep, session: SessionDep) -> None:
    await sharing.unshare(session=session, viewer=viewer, share_id=share_id)


routers = (feed_router, clients_router, deals_router, shares_router)
