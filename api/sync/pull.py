"""`GET /sync/pull` (DESIGN §7): the difference between what an app holds and its working set, a page at a time.

The server remembers what an app holds (a `SyncView`: the version of every record it was sent and not since
removed); the cursor names that memory. The next pull lists the working set as it is now and sends what differs:
records new to the app or changed since (`put`), and records the app holds that are no longer in its set
(`remove`), whatever the reason: deleted, reassigned, unshared, closed, aged out, moved to another team. Nothing
needs to know why a record left.

A listing stores a view: what the app held before it, and the difference it found (the steps, in the order pages
send them, with the versions listed). Pages go through the steps while nothing changed, and the cursor says how
far: `<view id>.<steps sent>`. Such a page writes nothing and does no work per record the app holds (it slices its
steps out of the view): its cost is the records it sends, whose JSON PostgreSQL writes. When something changed
(the organisation's change counter or the activity window moved), the next page lists the working set again: what
the app holds then is the view's memory with the steps sent applied, and the new view keeps it as it was stored,
with those steps as one more part, so that nothing is re-encoded. The versions remembered for steps sent are those
listed: a record that changed between a page's read of the counter and its read of the records is sent again after
the next listing, and one deleted in between is removed then although the app never got it; both are harmless to
the app.

An app that has taken all its steps and pulls again after a few changes (poked after a colleague's call on one of
its clients, or back in the app after its own push) is not listed again: the change log says which records
changed, and only those are looked up in the working set, unless a change can move other records in or out of it
(`CASCADING`: a reassigned or deleted company takes its contacts, deals and activities along), there are more
than `MAX_CHANGES`, or the activity window moved. When none of them is the app's business, nothing is written and
the cursor says up to which change the view is current: `<view id>.<steps sent>.<change>`.
"""

import json
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Organization
from api.core.changes import Change
from api.core.db import Database
from api.core.ids import new_id
from api.core.types import utcnow
from api.settings import get_settings
from api.sharing.visibility import Viewer
from api.sync import working_set
from api.sync.models import SyncView

Held = working_set.Members
# (entity, put?, ids, versions): records of one kind to send (with the versions listed) or to remove (versions
# empty), ids and versions comma-separated, in the order pages send them.
Run = tuple[str, bool, str, str]
# (entity, id, version to put or None to remove) of one record.
Step = tuple[str, str, int | None]

# Ids in a run are fixed-width (`working_set.KEY_WIDTH`) and comma-separated: the n-th starts at n * STRIDE.
STRIDE = working_set.KEY_WIDTH + 1
# A listing folds a view's parts into one when there are more than this (a part per listing since the last fold).
MAX_PARTS = 16
# Past this many changes since an app's view, its next pull lists the working set again rather than looking them up.
MAX_CHANGES = 500
# Fields whose change moves records other than the changed one in or out of a working set (a company's contacts,
# deals and activities are reached through it; a contact's activities; an open deal's activities). A share, made
# or taken back, moves what hangs off the shared record too.
CASCADING = {
    "company": frozenset({"owner_id", "deleted_at"}),
    "contact": frozenset({"owner_id", "company_id", "deleted_at"}),
    "deal": frozenset({"owner_id", "company_id", "contact_id", "status", "deleted_at"}),
}
_FORMAT = b"V3"
_PART = struct.Struct(">II")
_SIZE = struct.Struct(">I")


def _count(ids: str) -> int:
    return (len(ids) + 1) // STRIDE if ids else 0


@dataclass(slots=True)
class Entries:
    """What a view stores (`SyncView.entries`): parts, each runs (see `_pack`) and how many of their steps the app
    took. Folded in order, they are what it holds; the last part's count is in the cursor (the stored one is 0):
    it is the difference the view's listing found, which pages go through.

    Stored as b"V3" then, for each part, its count and its length (big-endian u32) and the part."""

    parts: list[tuple[int, bytes]] = field(default_factory=list)

    def encode(self) -> bytes:
        out = [_FORMAT]
        for taken, part in self.parts:
            out += (_PART.pack(taken, len(part)), part)
        return b"".join(out)

    @classmethod
    def decode(cls, entries: bytes) -> "Entries | None":
        """None for entries this server does not read (an earlier format): the app starts afresh."""
        if entries[: len(_FORMAT)] != _FORMAT:
            return None
        parts, at = [], len(_FORMAT)
        while at < len(entries):
            taken, size = _PART.unpack_from(entries, at)
            at += _PART.size + size
            parts.append((taken, entries[at - size : at]))
        return cls(parts)

    def pending(self) -> list[Run]:
        """The runs of the view's listing."""
        return _runs(self.parts[-1][1]) if self.parts else []

    def held(self, taken: int) -> Held:
        """What the app holds after `taken` steps of the listing's runs."""
        held: Held = {}
        for i, (count, part) in enumerate(self.parts):
            _apply(held, _runs(part), taken if i == len(self.parts) - 1 else count)
        return held


def _runs(part: bytes) -> list[Run]:
    if not part:
        return []
    (size,) = _SIZE.unpack_from(part)
    index, ids = json.loads(part[_SIZE.size : _SIZE.size + size]), part[_SIZE.size + size :].decode("ascii")
    runs: list[Run] = []
    at = 0
    for entity, put, n, versions in index:
        runs.append((entity, put, ids[at : at + n * STRIDE - 1], versions))
        at += n * STRIDE
    return runs


def _pack(runs: list[Run]) -> bytes:
    """Runs as a part: the length of the index (big-endian u32), the index (JSON: kind, put?, how many, versions),
    then every id, comma-separated. Not compressed, so that a page slices its steps out of the text without
    decompressing the rest: ~37 bytes a step (TOAST's pglz finds little to compress in random hex digits)."""
    if not runs:
        return b""
    index = json.dumps([(e, p, _count(ids), versions) for e, p, ids, versions in runs], separators=(",", ":"))
    return b"%s%s%s" % (_SIZE.pack(len(index)), index.encode(), ",".join(ids for _, _, ids, _ in runs).encode())


def _apply(held: Held, runs: list[Run], taken: int) -> None:
    """The first `taken` steps of `runs`, applied to `held`."""
    for entity, put, ids, versions in runs:
        if taken <= 0:
            return
        n = min(_count(ids), taken)
        taken -= n
        keys = ids[: n * STRIDE - 1].split(",")
        mine = held.setdefault(entity, {})
        if put:
            mine.update(zip(keys, map(int, versions.split(",", n)[:n]), strict=True))
        else:
            for key in keys:
                mine.pop(key, None)


def _whole(held: Held) -> tuple[int, bytes]:
    """One part holding all of `held`."""
    runs = [
        (entity, True, ",".join(versions), ",".join(map(str, versions.values())))
        for entity, versions in held.items()
        if versions
    ]
    return sum(len(versions) for versions in held.values()), _pack(runs)


def _encode(held: Held, pending: Sequence[Step] = ()) -> bytes:
    """The entries of a view whose app holds `held` and has `pending` still to receive (in order)."""
    runs: list[Run] = []
    for entity, key, version in pending:
        put = version is not None
        if runs and runs[-1][:2] == (entity, put):
            last = runs[-1]
            runs[-1] = (entity, put, f"{last[2]},{key}", f"{last[3]},{version}" if put else "")
        else:
            runs.append((entity, put, key, str(version) if put else ""))
    return Entries([_whole(held), (0, _pack(runs))]).encode()


def _difference(held: Held, current: working_set.Listing) -> list[Run]:
    """Every record to send or remove, in the order pages send them: kind by kind (what a record refers to comes
    first), removals before puts, ids in order. A kind the app holds none of is sent as listed."""
    out: list[Run] = []
    for entity in working_set.ENTITIES:
        have, (ids, versions) = held.get(entity), current.get(entity, ("", ""))
        if not have:
            if ids:
                out.append((entity, True, ids, versions))
            continue
        now = working_set.versions_of(ids, versions)
        if gone := sorted(have.keys() - now.keys()):
            out.append((entity, False, ",".join(gone), ""))
        if changed := sorted(key for key, version in now.items() if have.get(key) != version):
            out.append((entity, True, ",".join(changed), ",".join([str(now[key]) for key in changed])))
    return out


def _take(runs: list[Run], taken: int, limit: int) -> tuple[list[Run], int]:
    """The runs of the page after the first `taken` steps (without their versions), and how many steps are left
    after it."""
    page: list[Run] = []
    left = 0
    for entity, put, ids, _ in runs:
        n = _count(ids)
        start = min(taken, n)
        end = min(n, start + limit)
        taken, limit = taken - start, limit - (end - start)
        if end > start:
            page.append((entity, put, ids[start * STRIDE : end * STRIDE - 1], ""))
        left += n - end
    return page, left


def _page(
    cursor: str | None,
    *,
    has_more: bool = False,
    reset: bool = False,
    put: dict[str, bytes] | None = None,
    remove: dict[str, str] | None = None,
) -> bytes:
    """A `PullPage` as JSON, written here rather than by a response model: the records in it are JSON already."""
    put, remove = put or {}, remove or {}
    records = b",".join(b'"%s":%s' % (e.encode(), put.get(e, b"[]")) for e in working_set.ENTITIES)
    head = {"cursor": cursor, "has_more": has_more, "reset_required": reset}
    gone = {e: remove[e].split(",") if e in remove else [] for e in working_set.ENTITIES}
    head_json, gone_json = (json.dumps(x, separators=(",", ":")).encode() for x in (head, gone))
    return b'%s,"put":{%s},"remove":%s}' % (head_json[:-1], records, gone_json)


def _parse(cursor: str) -> tuple[uuid.UUID, int, int | None] | None:
    """(view, steps sent, change it is current up to) of a cursor; a bare view id (steps not counted) is at the
    start of its steps, and a view without a change number is current up to its own listing's."""
    view, *counts = cursor.split(".")
    if len(counts) > 2 or not all(c.isascii() and c.isdigit() for c in counts):
        return None
    try:
        return uuid.UUID(view), int(counts[0]) if counts else 0, int(counts[1]) if len(counts) > 1 else None
    except ValueError:
        return None


_changes: sa.Table = Change.__table__  # type: ignore[attr-defined]
# What changed after the app's view, up to the counter this pull read (at most one more than `MAX_CHANGES`).
_CHANGED = (
    sa.select(_changes.c.entity, _changes.c.entity_id, _changes.c.op, _changes.c.fields)
    .where(
        _changes.c.org_id == sa.bindparam("org_id"),
        _changes.c.seq > sa.bindparam("after"),
        _changes.c.seq <= sa.bindparam("upto"),
    )
    .order_by(_changes.c.seq)
    .limit(MAX_CHANGES + 1)
)


async def _touched(session: AsyncSession, org_id: uuid.UUID, after: int, upto: int) -> dict[str, set[str]] | None:
    """The synced records changed after change `after` up to `upto`, by kind; None when the working set must be
    listed again (too many, a change that moves other records, or changes missing from the log)."""
    if upto - after > MAX_CHANGES:
        return None
    rows: list[Any] = list(await session.execute(_CHANGED, {"org_id": org_id, "after": after, "upto": upto}))
    if len(rows) != upto - after:
        return None
    touched: dict[str, set[str]] = {}
    for entity, entity_id, op, fields in rows:
        if entity == "share" or (op != "create" and not CASCADING.get(entity, frozenset()).isdisjoint(fields or {})):
            return None
        if entity in working_set.BY_ENTITY:
            touched.setdefault(entity, set()).add(str(entity_id))
    return touched


_orgs: sa.Table = Organization.__table__  # type: ignore[attr-defined]
_views: sa.Table = SyncView.__table__  # type: ignore[attr-defined]
# The organisation's change counter and the base view (none without a cursor), in one round trip. Core statements
# built once, values bound per request.
BASE = (
    sa.select(_orgs.c.change_seq, _views.c.change_seq, _views.c.window_start, _views.c.created_at, _views.c.entries)
    .select_from(
        _orgs.outerjoin(
            _views,
            sa.and_(
                _views.c.id == sa.bindparam("view_id"),
                _views.c.user_id == sa.bindparam("user_id"),
                _views.c.client_id == sa.bindparam("client_id"),
            ),
        )
    )
    .where(_orgs.c.id == sa.bindparam("org_id"))
)
_VIEW = {column.name: sa.bindparam(column.name, type_=column.type) for column in _views.c}
_SAVE = sa.insert(_views).values(_VIEW)
_MINE = sa.and_(_views.c.user_id == _VIEW["user_id"], _views.c.client_id == _VIEW["client_id"])
_EXPIRED = _views.c.created_at < sa.bindparam("expired")
# Forget this app's views older than the one it pulled from (or, after a fresh start, all but the new one), and
# anyone's past the retention.
_FORGET_OLDER = sa.delete(_views).where(sa.or_(sa.and_(_MINE, _views.c.created_at < sa.bindparam("before")), _EXPIRED))
_FORGET_OTHERS = sa.delete(_views).where(sa.or_(sa.and_(_MINE, _views.c.id != _VIEW["id"]), _EXPIRED))
# PostgreSQL: the view stored and the old ones forgotten in one statement (the DELETE does not see the new row).
_SAVE_FORGETTING = {
    older: _SAVE.add_cte(forget.cte("forgotten")) for older, forget in ((True, _FORGET_OLDER), (False, _FORGET_OTHERS))
}


async def pull(
    session: AsyncSession, database: Database, viewer: Viewer, client_id: uuid.UUID, cursor: str | None, limit: int
) -> bytes:
    assert viewer.user_id is not None  # the route admits signed-in users only
    at = _parse(cursor) if cursor else None
    if cursor and at is None:
        return _page(None, has_more=True, reset=True)
    view_id, taken, current = at or (None, 0, None)
    now = utcnow()
    since = working_set.window_start(now)
    # The counter is read before the working set: a change that commits meanwhile leaves it ahead of this view.
    whose = {"org_id": viewer.org_id, "view_id": view_id, "user_id": viewer.user_id, "client_id": client_id}
    row: Any = (await session.execute(BASE, whose)).one()
    seq, base_seq, base_window, base_created, stored = row
    base = Entries.decode(stored) if stored is not None else None if cursor else Entries()
    runs = base.pending() if base is not None else []
    steps = sum(_count(ids) for _, _, ids, _ in runs)
    if base is None or taken > steps or (current is not None and not base_seq <= current <= seq):
        return _page(None, has_more=True, reset=True)
    known = base_seq if current is None else current
    if known == seq and base_window == since:
        # Nothing changed since the view's listing: the page takes the next steps, and nothing is written.
        assert view_id is not None
        page, left = _take(runs, taken, limit)
        if not page:
            return _page(cursor)
        records = await _records(session, viewer, page, now)
        sent = taken + sum(_count(ids) for _, _, ids, _ in page)
        return _page(f"{view_id}.{sent}", has_more=left > 0, put=records, remove=_removed(page))
    held = base.held(taken)
    touched = None
    if view_id is not None and taken == steps and base_window == since:
        touched = await _touched(session, viewer.org_id, known, seq)
    if touched is not None:
        # A few changes since an app took all its steps: only the records they touched are looked up.
        among = {e: {k: v for k, v in held.get(e, {}).items() if k in keys} for e, keys in touched.items()}
        runs = _difference(among, await working_set.listing(session, viewer, since, touched))
        if not runs:
            assert view_id is not None
            return _page(f"{view_id}.{taken}.{seq}")
    else:
        # Listing the working set is most of a first page's cost; later pages go on from the view it leaves.
        runs = _difference(held, await working_set.listing(session, viewer, since))
    parts = base.parts[:-1] + ([(taken, base.parts[-1][1])] if taken else [])
    if len(parts) > MAX_PARTS:
        parts = [_whole(held)]
    page, left = _take(runs, 0, limit)
    records = await _records(session, viewer, page, now)
    view = {
        "id": new_id(),
        "org_id": viewer.org_id,
        "user_id": viewer.user_id,
        "client_id": client_id,
        "created_at": utcnow(),
        "change_seq": seq,
        "window_start": since,
        "entries": Entries([*parts, (0, _pack(runs))]).encode(),
        "expired": utcnow() - timedelta(days=get_settings().sync_retention_days),
        "before": base_created,
    }
    if database.dialect == "postgresql":
        # In the request's transaction, which commits before the response is sent: one connection, one commit.
        await session.execute(_SAVE_FORGETTING[base_created is not None], view)
    else:
        # The reads are done: give the connection back before the write takes one (no request holds two at once).
        await session.commit()
        await _remember(database, view)
    sent = sum(_count(ids) for _, _, ids, _ in page)
    return _page(f"{view['id']}.{sent}", has_more=left > 0, put=records, remove=_removed(page))


async def _records(session: AsyncSession, viewer: Viewer, page: list[Run], now: datetime) -> dict[str, bytes]:
    wanted = {entity: ids for entity, put, ids, _ in page if put}
    return await working_set.records(session, viewer.org_id, wanted, now) if wanted else {}


def _removed(page: list[Run]) -> dict[str, str]:
    return {entity: ids for entity, put, ids, _ in page if not put}


async def _remember(database: Database, view: dict[str, Any]) -> None:
    """SQLite: store the new view in a write transaction of its own (BEGIN IMMEDIATE: a read transaction that goes
    on to write can fail when another writer commits in between), and forget the ones this app can no longer hold:
    older than the view it pulled from (or all, after a reset), and any past the retention."""
    async with database.writer() as session:
        await session.execute(_SAVE, view)
        await session.execute(_FORGET_OLDER if view["before"] is not None else _FORGET_OTHERS, view)
        await session.commit()
