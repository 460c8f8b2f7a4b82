"""HTTP routes of offline sync (DESIGN §7) and of the changes feed for integrations."""

import uuid
from collections.abc import AsyncIterable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.auth.deps import allow
from api.auth.models import Role
from api.auth.principals import Principal
from api.core import changes, live
from api.core.db import Database, SessionDep, get_database
from api.core.errors import problems
from api.core.types import utcnow
from api.sharing.visibility import Viewer, viewer_of
from api.sync import pull as pull_service
from api.sync import push as push_service
from api.sync import working_set
from api.sync.schemas import (
    DEFAULT_PULL,
    MAX_PULL,
    ChangeItem,
    ChangesPage,
    PullPage,
    PushRequest,
    PushResult,
)

# Sync is for people's apps; integrations read the changes feed.
SyncUserDep = Annotated[Viewer, Depends(viewer_of())]
ClientIdQuery = Annotated[uuid.UUID, Query(description="This installed app's id (the one its pushes send).")]

router = APIRouter(prefix="/sync", tags=["sync"], responses=problems(401, 403))
POKE_SECONDS = 1.0


@router.post(
    "/push",
    name="push",
    summary="Apply an app's outbox: each mutation once, in order, each with its own outcome",
    responses=problems(413, 422),
)
async def push(data: PushRequest, viewer: SyncUserDep, session: SessionDep) -> PushResult:
    return await push_service.push(session, viewer, data)


@router.get(
    "/pull",
    name="pull",
    summary="What changed in your working set since your cursor: records to store and ids to drop",
    response_model=PullPage,
    responses=problems(422),
)
async def pull(
    request: Request,
    client_id: ClientIdQuery,
    viewer: SyncUserDep,
    session: SessionDep,
    cursor: Annotated[
        str | None, Query(max_length=100, description="The last page's `cursor`; none for a first (or reset) pull.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PULL, description="Records (put or removed) per page.")] = DEFAULT_PULL,
) -> Response:
    page = await pull_service.pull(session, get_database(request), viewer, client_id, cursor, limit)
    return Response(page, media_type="application/json")


@router.get(
    "/events",
    name="events",
    summary="Server-sent `poke` events: something in your organisation changed, pull now",
    response_class=EventSourceResponse,
)
async def events(request: Request, viewer: SyncUserDep) -> AsyncIterable[ServerSentEvent]:
    # A poke per committed write that concerns the app (api/core/changes.py `_poke`), at most one per
    # `POKE_SECONDS`: a busy organisation writes several times a second, and one pull catches up with all of it.
    database = get_database(request)
    async for news in live.news(request, live.SYNC, viewer.org_id, every=POKE_SECONDS):
        if isinstance(news, ServerSentEvent):
            yield news
        elif not news or await _holds(database, viewer, news):
            yield ServerSentEvent(event="poke", data={})


async def _holds(database: Database, viewer: Viewer, ids: list[uuid.UUID]) -> bool:
    """Whether the user's working set holds any of these records (a short read of its own: the stream holds no
    connection while it waits)."""
    keys = {str(i) for i in ids}
    async with database.reader() as session:
        since = working_set.window_start(utcnow())
        found = await working_set.listing(session, viewer, since, dict.fromkeys(changes.HELD_KINDS, keys))
    return any(listed for listed, _ in found.values())


changes_router = APIRouter(prefix="/changes", tags=["changes"], responses=problems(401, 403))
ChangesReaderDep = Annotated[Principal, Depends(allow(Role.admin, scope="changes:read"))]


@changes_router.get(
    "",
    name="list",
    summary="Every create, update and delete in your organisation, in the order they committed",
    responses=problems(422),
)
async def list_changes(
    principal: ChangesReaderDep,
    session: SessionDep,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^\d{1,18}$", description="The last page's `next_cursor`; none to start from the beginning."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PULL, description="Changes per page.")] = DEFAULT_PULL,
) -> ChangesPage:
    after = int(cursor or 0)
    rows = await changes.after(session, principal.org_id, after, limit + 1)
    items = [
        ChangeItem(
            seq=c.seq,
            entity=c.entity,
            entity_id=c.entity_id,
            op=c.op,
            version=c.version,
            fields=sorted(c.fields),
            at=c.at,
            actor_kind=c.actor_kind,
            actor_id=c.actor_id,
        )
        for c in rows[:limit]
    ]
    last = items[-1].seq if items else after
    return ChangesPage(items=items, next_cursor=str(last), has_more=len(rows) > limit)


routers = (router, changes_router)
