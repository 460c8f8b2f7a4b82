"""An app's working set (DESIGN §7): what a user's phone holds so that they can work offline.

Their own and shared clients (a company brings its contacts), the open deals of those clients and their own,
activities of the last 90 days and every planned one (open tasks, meetings, calls) about any of these or
theirs, and the reference data the screens need (colleagues, teams, pipelines and stages, lost reasons,
products, custom fields). Everything in it is visible to the user (`api/sharing/visibility.py`): owned and
shared records are, and the rest is reached through them.

Each kind is listed as (id, version) pairs by gathering ids through the owner, share and parent indexes, so the
cost follows what the user holds, not what the organisation has.
"""

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.activities import service as activities
from api.activities.models import Activity
from api.activities.schemas import ActivityRead
from api.auth.models import Team, User
from api.auth.schemas import TeamRead, UserRead
from api.clients.models import Company, Contact, CustomField
from api.clients.schemas import CompanyRead, ContactRead, CustomFieldRead
from api.core.models import Record
from api.core.types import UTCDateTime
from api.deals import deals
from api.deals.models import Deal, DealStatus, LostReason, Pipeline, Product, Stage
from api.deals.schemas import DealRead, LostReasonRead, PipelineSummary, ProductRead, StageRead
from api.sharing.models import Share
from api.sharing.visibility import Viewer

WINDOW_DAYS = 90
Present = Callable[[Any, datetime], BaseModel]
# Fields a read schema computes (not columns), as SQL over the table at a moment: PostgreSQL builds pages itself.
Computed = Callable[[Any, datetime], dict[str, sa.ColumnElement[Any]]]


def _user(row: Any, _now: datetime) -> BaseModel:
    return UserRead.model_validate({**row._mapping, "has_password": row.password_hash is not None})


def _user_sql(table: Any, _now: datetime) -> dict[str, sa.ColumnElement[Any]]:
    return {"has_password": table.c.password_hash.is_not(None)}


def _deal_sql(table: Any, now: datetime) -> dict[str, sa.ColumnElement[Any]]:
    # As deals.present_row computes it.
    return {"rotten": sa.and_(table.c.rots_at.is_not(None), table.c.rots_at <= now)}


def _activity_sql(table: Any, now: datetime) -> dict[str, sa.ColumnElement[Any]]:
    # As activities.present_row computes it.
    return {"overdue": sa.and_(table.c.done_at.is_(None), table.c.due_at.is_not(None), table.c.due_at < now)}


@dataclass(frozen=True, slots=True)
class Synced:
    entity: str
    model: type[Record]
    schema: type[BaseModel]
    present: Present | None = None
    computed: Computed | None = None
    # Reference data: every live record of the organisation (that passes `only`).
    reference: bool = False
    only: Callable[[], Any] | None = None

    def read(self, row: Any, now: datetime) -> BaseModel:
        return self.present(row, now) if self.present else self.schema.model_validate(row._mapping)


# In the order a page sends them: what a record refers to comes before it.
SYNCED = (
    Synced("user", User, UserRead, _user, _user_sql, reference=True),
    Synced("team", Team, TeamRead, reference=True),
    Synced("pipeline", Pipeline, PipelineSummary, reference=True),
    Synced("stage", Stage, StageRead, reference=True),
    Synced("lost_reason", LostReason, LostReasonRead, reference=True, only=lambda: col(LostReason.is_active)),
    Synced("product", Product, ProductRead, reference=True, only=lambda: col(Product.is_active)),
    Synced("custom_field", CustomField, CustomFieldRead, reference=True),
    Synced("company", Company, CompanyRead),
    Synced("contact", Contact, ContactRead),
    Synced("deal", Deal, DealRead, deals.present_row, _deal_sql),
    Synced("activity", Activity, ActivityRead, activities.present_row, _activity_sql),
)
BY_ENTITY = {s.entity: s for s in SYNCED}
ENTITIES = tuple(BY_ENTITY)

# {entity: {id hex: version}}
Members = dict[str, dict[str, int]]


def window_start(now: datetime) -> datetime:
    """Activities done before this have aged out. Whole days, so that the set does not shift with every pull."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=WINDOW_DAYS)


def _live(model: Any, viewer: Viewer) -> list[sa.ColumnElement[bool]]:
    return [col(model.org_id) == viewer.org_id, col(model.deleted_at).is_(None)]


@dataclass(frozen=True, slots=True)
class _Kind:
    """One kind's part of the working set: its (id, version) rows, and its ids for the kinds that hang off it."""

    rows: sa.CompoundSelect[Any]
    ids: sa.CompoundSelect[Any]


def _member_statements(viewer: Viewer, since: datetime, dialect: str) -> dict[str, Any]:
    me = viewer.user_id

    def among(column: Any, kind: _Kind) -> sa.ColumnElement[bool]:
        if dialect == "postgresql":
            # `= ANY(ARRAY(subquery))`: an init plan run once, whose ids probe the column's index. With
            # `IN (subquery)` PostgreSQL guessed far more ids than a user holds and scanned the organisation's table.
            probe: sa.ColumnElement[bool] = column == sa.any_(sa.func.array(kind.ids.scalar_subquery()))
            return probe
        in_set: sa.ColumnElement[bool] = column.in_(kind.ids)
        return in_set

    def gather(model: Any, *arms: sa.ColumnElement[bool]) -> _Kind:
        # Each way in is its own index range with the live filter inside, and the union drops repeats: an
        # `id IN (union)` outside made PostgreSQL hash-join a scan of the whole organisation's table instead.
        rows = [select(model.id, model.version).where(*_live(model, viewer), arm) for arm in arms]
        return _Kind(sa.union(*rows), sa.union(*(r.with_only_columns(model.id) for r in rows)))

    def shared(model: Any, entity: str) -> sa.ColumnElement[bool]:
        ids = select(col(Share.entity_id)).where(
            *_live(Share, viewer), col(Share.user_id) == me, col(Share.entity) == entity
        )
        return col(model.id).in_(ids)

    companies = gather(Company, col(Company.owner_id) == me, shared(Company, "company"))
    own_contacts = gather(Contact, col(Contact.owner_id) == me, shared(Contact, "contact"))
    contacts = gather(
        Contact, col(Contact.owner_id) == me, shared(Contact, "contact"), among(Contact.company_id, companies)
    )
    is_open = col(Deal.status) == DealStatus.open.value
    deals_open = gather(
        Deal,
        *(
            sa.and_(is_open, arm)
            for arm in (
                col(Deal.owner_id) == me,
                shared(Deal, "deal"),
                among(Deal.company_id, companies),
                among(Deal.contact_id, own_contacts),
            )
        ),
    )
    recent = sa.or_(col(Activity.done_at) >= since, col(Activity.done_at).is_(None))
    activities_ = gather(
        Activity,
        *(
            sa.and_(arm, recent)
            for arm in (
                col(Activity.owner_id) == me,
                col(Activity.assignee_id) == me,
                among(Activity.company_id, companies),
                among(Activity.contact_id, contacts),
                among(Activity.deal_id, deals_open),
            )
        ),
    )
    statements: dict[str, Any] = {
        "company": companies.rows,
        "contact": contacts.rows,
        "deal": deals_open.rows,
        "activity": activities_.rows,
    }
    for synced in SYNCED:
        if synced.reference:
            model: Any = synced.model
            where = [synced.only()] if synced.only else []
            statements[synced.entity] = select(model.id, model.version).where(*_live(model, viewer), *where)
    return statements


async def members(session: AsyncSession, viewer: Viewer, since: datetime) -> Members:
    """The working set as {entity: {id hex: version}}."""
    found: Members = {}
    for entity, stmt in _member_statements(viewer, since, session.get_bind().dialect.name).items():
        found[entity] = {row.id.hex: row.version for row in await session.execute(stmt)}
    return found


# One kind's records of a page: their JSON array, and the (id, version) of each.
Batch = tuple[bytes, list[tuple[uuid.UUID, int]]]


async def records(session: AsyncSession, viewer: Viewer, entity: str, ids: list[uuid.UUID], now: datetime) -> Batch:
    """The live records of one kind with these ids, as the API reads them (in no particular order), as JSON."""
    synced = BY_ENTITY[entity]
    table = sa.inspect(synced.model).local_table
    where = [table.c.org_id == viewer.org_id, table.c.deleted_at.is_(None), table.c.id.in_(ids)]
    build = _built_by_postgres if session.get_bind().dialect.name == "postgresql" else _built_by_python
    return await build(session, synced, table, where, now)


async def _built_by_python(session: AsyncSession, synced: Synced, table: Any, where: list[Any], now: datetime) -> Batch:
    found: list[Any] = [synced.read(row, now) for row in await session.execute(select(table).where(*where))]
    return _list_of(synced.schema).dump_json(found), [(r.id, r.version) for r in found]


@functools.cache
def _list_of(schema: type[BaseModel]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[schema])  # type: ignore[valid-type]


def _iso(column: Any) -> sa.ColumnElement[str]:
    """A timestamp as Pydantic writes it: `2026-01-01T05:04:03Z`, with `.ffffff` when it has microseconds."""
    utc = sa.func.timezone("UTC", column)
    fraction = sa.case(
        (sa.cast(sa.extract("microseconds", utc), sa.BigInteger) % 1_000_000 == 0, sa.literal("")),
        else_=sa.func.to_char(utc, '"."US'),
    )
    return sa.func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS') + fraction + sa.literal("Z")


async def _built_by_postgres(
    session: AsyncSession, synced: Synced, table: Any, where: list[Any], now: datetime
) -> Batch:
    # PostgreSQL writes the JSON itself: about ten times the pages per second of reading rows into Python
    # objects and serialising them (MACHINE-NOTES, bench/RESULTS.md). The fields and their formats are the read
    # schema's, which tests/sync checks against the REST reads.
    computed = synced.computed(table, now) if synced.computed else {}
    columns = [
        computed[name]
        if name in computed
        else _iso(table.c[name])
        if isinstance(table.c[name].type, UTCDateTime)
        else table.c[name]
        for name in synced.schema.model_fields
    ]
    page = select(*(c.label(n) for c, n in zip(columns, synced.schema.model_fields, strict=True))).where(*where)
    rows = page.subquery("r")
    stmt = select(
        sa.cast(sa.func.coalesce(sa.func.json_agg(sa.literal_column("r")), sa.text("'[]'::json")), sa.Text),
        sa.func.array_agg(rows.c.id),
        sa.func.array_agg(rows.c.version),
    ).select_from(rows)
    text, ids, versions = (await session.execute(stmt)).one()
    return text.encode(), list(zip(ids or [], versions or [], strict=True))
