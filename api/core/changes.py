"""The change log (DESIGN §4): one ordered, per-organisation record of every create, update and delete.

Audit, sync, the changes feed, webhooks and the live feed all read it. Writes go through `create`, `update`
and `delete` here so that no write can skip it.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col, select

from api.auth.models import Organization
from api.auth.principals import Principal
from api.core.db import before_commit
from api.core.ids import new_id
from api.core.live import SYNC, announce
from api.core.models import Record
from api.core.types import JSONType, UTCDateTime, jsonable, utcnow

REDACTED = "[redacted]"
# Secrets never reach the log: a change to them is shown, their values are not.
SECRET_FIELDS = frozenset({"password_hash", "key_hash", "invite_hash", "secret", "previous_secret"})
# Bookkeeping and derived columns: they change with every write and say nothing to a reader.
UNTRACKED_FIELDS = frozenset(
    {
        "id",
        "org_id",
        "created_at",
        "updated_at",
        "version",
        "name_folded",
        "title_folded",
        "last_activity_at",
        "rots_at",
    }
)


class Change(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("org_id", "seq"),
        sa.Index("ix_change_org_id_entity_entity_id_seq", "org_id", "entity", "entity_id", "seq"),
        # Who worked in Fieldbook and when (adoption insights).
        sa.Index("ix_change_org_id_actor_id_at", "org_id", "actor_id", "at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    org_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE")
    seq: int = Field(sa_type=sa.BigInteger)
    entity: str = Field(max_length=40)
    entity_id: uuid.UUID
    op: str = Field(max_length=10)
    version: int
    actor_kind: str = Field(max_length=10)
    actor_id: uuid.UUID | None = None
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # {field: {"before": ..., "after": ...}}
    fields: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)


def values_of(obj: Record) -> dict[str, Any]:
    """The tracked columns of a record, as JSON values (secrets included: `diff` redacts them)."""
    return {name: jsonable(getattr(obj, name)) for name in type(obj).model_fields if name not in UNTRACKED_FIELDS}


def _shown(name: str, value: Any) -> Any:
    return REDACTED if name in SECRET_FIELDS and value is not None else value


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fields whose values differ, as the log shows them: a changed secret appears, its values do not."""
    return {
        name: {"before": _shown(name, before.get(name)), "after": _shown(name, value)}
        for name, value in after.items()
        if before.get(name) != value
    }


async def serialise_writes(session: AsyncSession, org_id: uuid.UUID) -> None:
    """Take, at the start of a write, the organisation row lock that `next_seq` takes anyway until commit.

    Checks that span rows (a stale If-Match, a team moved under its own sub-team, the last admin demoted) then
    see no concurrent write of the same organisation, as SQLite's BEGIN IMMEDIATE gives. It costs no throughput:
    the organisation's writers are already serialised from their first change-log entry to their commit.
    SQLite renders no FOR UPDATE; its write transactions are serialised already.
    """
    # FOR NO KEY UPDATE, the lock next_seq's UPDATE takes: writers queue behind each other, while inserts of rows that
    # point at the organisation (a pull's sync view, an idempotency key) pass. FOR UPDATE would also block their
    # foreign-key checks, so every pull and keyed POST would wait for the organisation's open write.
    await session.execute(select(Organization.id).where(col(Organization.id) == org_id).with_for_update(key_share=True))


async def next_seq(session: AsyncSession, org_id: uuid.UUID) -> int:
    # The row lock taken here is held until commit, so changes get their numbers in commit order: a reader that
    # has seen seq N never misses a change committed later with a number below N.
    stmt = (
        sa.update(Organization)
        .where(col(Organization.id) == org_id)
        .values(change_seq=col(Organization.change_seq) + 1)
        .returning(col(Organization.change_seq))
        .execution_options(synchronize_session=False)
    )
    seq: int = (await session.execute(stmt)).scalar_one()
    return seq


# What must happen in the same transaction as a set of changes (a goal reached): called once, before the commit,
# with the organisation and the ids changed per entity. The app factory registers them.
Watcher = Callable[[AsyncSession, uuid.UUID, dict[str, set[uuid.UUID]]], Awaitable[None]]
_watchers: list[Watcher] = []
_TOUCHED = "fieldbook_touched"


def watch(watcher: Watcher) -> None:
    if watcher not in _watchers:
        _watchers.append(watcher)


@dataclass(frozen=True, slots=True)
class Recorded:
    """A change as its transaction made it, with the record's tracked columns after it (secrets redacted)."""

    change: Change
    snapshot: dict[str, Any] | None


# What must see every change itself, in its transaction (the webhook outbox): called once, before the commit, with
# the changes of the entities it listens to that are still part of the transaction.
Listener = Callable[[AsyncSession, list[Recorded]], Awaitable[None]]
_listeners: list[Listener] = []
# The entities some listener follows: only their changes carry a snapshot (a whole row per change).
_followed: set[str] = set()
_RECORDED = "fieldbook_recorded"


def listen(listener: Listener, entities: frozenset[str]) -> None:
    if listener not in _listeners:
        _listeners.append(listener)
        _followed.update(entities)


async def _react(session: AsyncSession, org_id: uuid.UUID) -> None:
    touched: dict[str, set[uuid.UUID]] = session.info.pop(_TOUCHED, {})
    for watcher in _watchers:
        await watcher(session, org_id, touched)


async def _tell(session: AsyncSession) -> None:
    # A change written inside a savepoint that was rolled back (a sync mutation or an import row refused) left the
    # session with it: it never happened, and nobody may hear of it.
    recorded = [r for r in session.info.pop(_RECORDED, []) if r.change in session]
    for listener in _listeners:
        await listener(session, recorded)


def _touch(session: AsyncSession, org_id: uuid.UUID, change: Change, snapshot: dict[str, Any] | None) -> None:
    if _watchers:
        if _TOUCHED not in session.info:
            session.info[_TOUCHED] = {}
            before_commit(session, lambda s: _react(s, org_id))
        session.info[_TOUCHED].setdefault(change.entity, set()).add(change.entity_id)
    if change.entity in _followed:
        if _RECORDED not in session.info:
            session.info[_RECORDED] = []
            before_commit(session, _tell)
        session.info[_RECORDED].append(Recorded(change, snapshot))


# What the apps' working sets hold (api/sync/working_set.py, checked by tests/sync): records of these kinds, the
# reference data every app holds, and the shares that bring records in.
HELD_KINDS = frozenset({"company", "contact", "deal", "activity"})
EVERY_APP_KINDS = frozenset({"user", "team", "pipeline", "stage", "lost_reason", "product", "custom_field", "share"})
# Fields whose change can take a record out of a working set, or move what hangs off it in or out.
_MOVING = frozenset(
    {"owner_id", "assignee_id", "company_id", "contact_id", "deal_id", "status", "done_at", "deleted_at"}
)


def _poke(session: AsyncSession, org_id: uuid.UUID, entity: str, entity_id: uuid.UUID, op: str, fields: Any) -> None:
    """Once this commits, tell the open apps to pull (GET /sync/events): a new record or an edit that leaves its
    place alone concerns only the apps whose working set holds it (the announcement names it); a change that may
    move records out of a working set, of reference data or of a share, every app; anything else, none."""
    if entity in HELD_KINDS and (op == "create" or _MOVING.isdisjoint(fields)):
        announce(session, SYNC, org_id, entity_id)
    elif entity in HELD_KINDS or entity in EVERY_APP_KINDS:
        announce(session, SYNC, org_id)


async def record_change(
    session: AsyncSession,
    *,
    principal: Principal,
    entity: str,
    entity_id: uuid.UUID,
    op: str,
    version: int,
    fields: dict[str, dict[str, Any]],
    snapshot: dict[str, Any] | None = None,
) -> Change:
    change = Change(
        org_id=principal.org_id,
        seq=await next_seq(session, principal.org_id),
        entity=entity,
        entity_id=entity_id,
        op=op,
        version=version,
        actor_kind=principal.kind,
        actor_id=principal.id,
        fields=fields,
    )
    session.add(change)
    _poke(session, principal.org_id, entity, entity_id, op, fields)
    _touch(session, principal.org_id, change, snapshot)
    return change


async def _log(
    session: AsyncSession, principal: Principal, entity: str, obj: Record, op: str, fields: dict[str, dict[str, Any]]
) -> None:
    # Only listeners read it: the entities none follows cost nothing.
    snapshot = {name: _shown(name, value) for name, value in values_of(obj).items()} if entity in _followed else None
    await record_change(
        session,
        principal=principal,
        entity=entity,
        entity_id=obj.id,
        op=op,
        version=obj.version,
        fields=fields,
        snapshot=snapshot,
    )


async def create(session: AsyncSession, principal: Principal, entity: str, obj: Record) -> None:
    """Insert a new record and log it."""
    session.add(obj)
    await session.flush()
    await _log(session, principal, entity, obj, "create", diff({}, values_of(obj)))


async def update(
    session: AsyncSession,
    principal: Principal,
    entity: str,
    obj: Record,
    changes: dict[str, Any],
    *,
    extra: dict[str, dict[str, Any]] | None = None,
) -> bool:
    """Apply `changes` to a record; when anything really changed, bump its version and log the fields. `extra`
    logs changes to parts of the record kept in other rows (a deal's lines): they make a new version too."""
    before = values_of(obj)
    for name, value in changes.items():
        setattr(obj, name, value)
    fields = {**diff(before, values_of(obj)), **(extra or {})}
    if not fields:
        return False
    obj.version += 1
    obj.updated_at = utcnow()
    await session.flush()
    await _log(session, principal, entity, obj, "update", fields)
    return True


async def delete(session: AsyncSession, principal: Principal, entity: str, obj: Record) -> None:
    """Soft delete: the row stays as a tombstone (sync and audit need it)."""
    now = utcnow()
    obj.deleted_at = now
    obj.updated_at = now
    obj.version += 1
    await session.flush()
    await _log(session, principal, entity, obj, "delete", {"deleted_at": {"before": None, "after": jsonable(now)}})


async def after(session: AsyncSession, org_id: uuid.UUID, seq: int, limit: int) -> list[Change]:
    """The organisation's changes numbered after `seq`, in order: what a reader at `seq` has not seen (numbers
    follow commit order, so none can still appear below it)."""
    stmt = (
        select(Change).where(col(Change.org_id) == org_id, col(Change.seq) > seq).order_by(col(Change.seq)).limit(limit)
    )
    return list((await session.scalars(stmt)).all())
