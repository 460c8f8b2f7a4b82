"""HTTP routes of offline sync (DESIGN §7) and of the changes feed for integrations."""

import asyncio
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
        elif not news or viewer.user_id in await _audiences.of(database, viewer.org_id, news):
            yield ServerSentEvent(event="poke", data={})


class _Audiences:
    """Whom each announcement concerns (`working_set.audience`), found once per process for all the streams that
    hear it within a poke's interval. Reusing it for that long is safe: a change that could alter it (a record
    reassigned, moved, unshared) is announced bare, and pokes every app by itself."""

    def __init__(self) -> None:
        self._found: dict[tuple[uuid.UUID, ...], asyncio.Future[set[uuid.UUID]]] = {}

    def of(self, database: Database, org_id: uuid.UUID, news: list[uuid.UUID]) -> asyncio.Future[set[uuid.UUID]]:
        key = (org_id, *sorted(news))
        found = self._found.get(key)
        if found is None:
            found = self._found[key] = asyncio.ensure_future(_audience(database, org_id, news))
            asyncio.get_running_loop().call_later(POKE_SECONDS, self._found.pop, key, None)
        return found


async def _audience(database: Database, org_id: uuid.UUID, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    # A short read of its own: no stream holds a connection while it waits.
    async with database.reader() as session:
        return await working_set.audience(session, org_id, ids)


_audiences = _Audiences()


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
