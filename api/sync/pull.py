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
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.auth.models import Organization
from api.core.db import Database
from api.core.types import utcnow
from api.settings import get_settings
from api.sharing.visibility import Viewer
from api.sync import working_set
from api.sync.models import SyncView

Held = working_set.Members


# (entity, id hex, put?) of a record to send or remove.
Step = tuple[str, str, bool]


def _encode(held: Held, pending: list[Step]) -> bytes:
    state = {"held": held, "pending": pending or None}
    return zlib.compress(json.dumps(state, separators=(",", ":")).encode(), 1)


def _decode(entries: bytes) -> tuple[Held, list[Step] | None]:
    """What the app holds and, while pages are left, what the next pages send (in order)."""
    state = json.loads(zlib.decompress(entries))
    pending = state["pending"]
    return state["held"], [(e, k, p) for e, k, p in pending] if pending is not None else None


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


def _difference(held: Held, current: Held) -> list[Step]:
    """Every record to send or remove, in the order pages send them."""
    out: list[Step] = []
    for entity in working_set.ENTITIES:
        have, now = held.get(entity, {}), current.get(entity, {})
        out.extend((entity, key, False) for key in sorted(have.keys() - now.keys()))
        out.extend((entity, key, True) for key in sorted(now) if have.get(key) != now[key])
    return out


def _page(
    cursor: str | None,
    *,
    has_more: bool = False,
    reset: bool = False,
    put: dict[str, bytes] | None = None,
    remove: dict[str, list[str]] | None = None,
) -> bytes:
    """A `PullPage` as JSON, written here rather than by a response model: the records in it are JSON already."""
    put, remove = put or {}, remove or {}
    records = b",".join(b'"%s":%s' % (e.encode(), put.get(e, b"[]")) for e in working_set.ENTITIES)
    head = {"cursor": cursor, "has_more": has_more, "reset_required": reset}
    gone = {e: remove.get(e, []) for e in working_set.ENTITIES}
    head_json, gone_json = (json.dumps(x, separators=(",", ":")).encode() for x in (head, gone))
    return b'%s,"put":{%s},"remove":%s}' % (head_json[:-1], records, gone_json)


async def pull(
    session: AsyncSession, database: Database, viewer: Viewer, client_id: uuid.UUID, cursor: str | None, limit: int
) -> bytes:
    base = await _base(session, viewer, client_id, cursor) if cursor else None
    if cursor and base is None:
        return _page(None, has_more=True, reset=True)
    now = utcnow()
    since = working_set.window_start(now)
    # Read before the working set: a change that commits meanwhile leaves the counter ahead of this view.
    seq = await session.scalar(select(Organization.change_seq).where(col(Organization.id) == viewer.org_id))
    assert seq is not None
    held, pending = _decode(base.entries) if base else ({}, None)
    unchanged = base is not None and base.change_seq == seq and base.window_start == since
    if unchanged and pending is None:
        return _page(cursor)
    # Listing the working set is most of a page's cost: while nothing changed, later pages send what the first
    # page's listing left for them.
    difference = (
        pending if unchanged and pending else _difference(held, await working_set.members(session, viewer, since))
    )
    page = difference[:limit]
    wanted: dict[str, list[uuid.UUID]] = defaultdict(list)
    removed: dict[str, list[str]] = defaultdict(list)
    for entity, key, put in page:
        if put:
            wanted[entity].append(uuid.UUID(key))
        else:
            removed[entity].append(str(uuid.UUID(key)))
            held[entity].pop(key)
    sent: dict[str, bytes] = {}
    for entity, ids in wanted.items():
        sent[entity], versions = await working_set.records(session, viewer, entity, ids, now)
        held.setdefault(entity, {}).update((record_id.hex, version) for record_id, version in versions)
    has_more = len(difference) > limit
    # The reads are done: give the connection back before the write takes one (no request holds two at once).
    await session.commit()
    assert viewer.user_id is not None  # the route admits signed-in users only
    view = SyncView(
        org_id=viewer.org_id,
        user_id=viewer.user_id,
        client_id=client_id,
        change_seq=seq,
        window_start=since,
        entries=_encode(held, difference[limit:]),
    )
    await _remember(database, view, base)
    return _page(str(view.id), has_more=has_more, put=sent, remove=removed)


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
