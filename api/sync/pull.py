"""`GET /sync/pull` (DESIGN §7): the difference between what an app holds and its working set, a page at a time.

The server remembers, per pull, the version of every record it has sent the app (a `SyncView`); the cursor names
that memory. The next pull lists the working set as it is now and sends what differs: records new to the app or
changed since (`put`), and records the app holds that are no longer in its set (`remove`), whatever the reason:
deleted, reassigned, unshared, closed, aged out, moved to another team. Nothing needs to know why a record left.
"""

import json
import uuid
import zlib
from collections import defaultdict
from datetime import timedelta

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.auth.models import Organization
from api.core.db import Database
from api.core.types import utcnow
from api.settings import get_settings
from api.sharing.visibility import Viewer
from api.sync import working_set
from api.sync.models import SyncView
from api.sync.schemas import PullPage, SyncPut, SyncRemove

# {entity: {id hex: version}}
Held = dict[str, dict[str, int]]


def _encode(held: Held) -> bytes:
    return zlib.compress(json.dumps(held, separators=(",", ":")).encode(), 1)


def _decode(entries: bytes) -> Held:
    held: Held = json.loads(zlib.decompress(entries))
    return held


async def _base(session: AsyncSession, viewer: Viewer, client_id: uuid.UUID, cursor: str) -> SyncView | None:
    try:
        view_id = uuid.UUID(cursor)
    except ValueError:
        return None
    found: SyncView | None = await session.scalar(
        select(SyncView).where(
            col(SyncView.id) == view_id, col(SyncView.user_id) == viewer.user_id, col(SyncView.client_id) == client_id
        )
    )
    return found


def _difference(held: Held, current: working_set.Members) -> list[tuple[str, str, bool]]:
    """(entity, id hex, put?) for every record to send or remove, in the order pages send them."""
    out: list[tuple[str, str, bool]] = []
    for entity in working_set.ENTITIES:
        have = held.get(entity, {})
        now = {record_id.hex: version for record_id, version in current.get(entity, {}).items()}
        out.extend((entity, key, False) for key in sorted(have.keys() - now.keys()))
        out.extend((entity, key, True) for key in sorted(now) if have.get(key) != now[key])
    return out


async def pull(
    session: AsyncSession, database: Database, viewer: Viewer, client_id: uuid.UUID, cursor: str | None, limit: int
) -> PullPage:
    base = await _base(session, viewer, client_id, cursor) if cursor else None
    if cursor and base is None:
        return PullPage(cursor=None, has_more=True, reset_required=True, put=SyncPut(), remove=SyncRemove())
    now = utcnow()
    since = working_set.window_start(now)
    # Read before the working set: a change that commits meanwhile leaves the counter ahead of this view.
    seq = await session.scalar(select(Organization.change_seq).where(col(Organization.id) == viewer.org_id))
    assert seq is not None
    if base is not None and base.complete and base.change_seq == seq and base.window_start == since:
        return PullPage(cursor=cursor, has_more=False, reset_required=False, put=SyncPut(), remove=SyncRemove())

    held = _decode(base.entries) if base else {}
    difference = _difference(held, await working_set.members(session, viewer, since))
    page = difference[:limit]
    wanted: dict[str, list[uuid.UUID]] = defaultdict(list)
    removed: dict[str, list[uuid.UUID]] = defaultdict(list)
    for entity, key, put in page:
        if put:
            wanted[entity].append(uuid.UUID(key))
        else:
            removed[entity].append(uuid.UUID(key))
            held[entity].pop(key)
    sent: dict[str, list[BaseModel]] = {}
    for entity, ids in wanted.items():
        sent[entity] = await working_set.records(session, viewer, entity, ids, now)
        have = held.setdefault(entity, {})
        for record in sent[entity]:
            have[record.id.hex] = record.version  # type: ignore[attr-defined]
    has_more = len(difference) > limit
    assert viewer.user_id is not None  # the route admits signed-in users only
    view = SyncView(
        org_id=viewer.org_id,
        user_id=viewer.user_id,
        client_id=client_id,
        change_seq=seq,
        window_start=since,
        complete=not has_more,
        entries=_encode(held),
    )
    await _remember(database, view, base)
    return PullPage(
        cursor=str(view.id),
        has_more=has_more,
        reset_required=False,
        put=SyncPut.model_validate(sent),
        remove=SyncRemove.model_validate(removed),
    )


async def _remember(database: Database, view: SyncView, base: SyncView | None) -> None:
    """Store the new view, in a write transaction of its own (the pull read in a read transaction), and forget the
    ones this app can no longer hold: older than the view it pulled from (or all, after a reset), and any past
    the retention."""
    mine = [col(SyncView.user_id) == view.user_id, col(SyncView.client_id) == view.client_id]
    older = col(SyncView.created_at) < base.created_at if base else col(SyncView.id) != view.id
    expired = col(SyncView.created_at) < utcnow() - timedelta(days=get_settings().sync_retention_days)
    async with database.writer() as session:
        session.add(view)
        await session.flush()
        await session.execute(sa.delete(SyncView).where(sa.or_(sa.and_(*mine, older), expired)))
        await session.commit()
