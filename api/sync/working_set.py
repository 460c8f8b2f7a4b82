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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, TypeAdapter
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from api.activities import service as activities
from api.activities.models import Activity
from api.activities.schemas import ActivityRead
from api.auth.models import Team, User
from api.auth.schemas import TeamRead, UserRead
from api.clients.models import Company, Contact, CustomField
from api.clients.schemas import CompanyRead, ContactRead, CustomFieldRead
from api.core import jsonsql
from api.core.models import Record
from api.core.types import UTCDateTime
from api.deals import deals
from api.deals.models import Deal, DealStatus, LostReason, Pipeline, Product, Stage
from api.deals.schemas import DealRead, LostReasonRead, PipelineSummary, ProductRead, StageRead
from api.sharing.models import Share
from api.sharing.visibility import Viewer

WINDOW_DAYS = 90
Present = Callable[[Any, datetime], BaseModel]
# Fields a read schema computes (not columns), as SQL over the table at a moment (a bound "now"): PostgreSQL builds
# pages itself.
Computed = Callable[[Any, Any], dict[str, sa.ColumnElement[Any]]]


def _user(row: Any, _now: datetime) -> BaseModel:
    return UserRead.model_validate({**row._mapping, "has_password": row.password_hash is not None})


def _user_sql(table: Any, _now: Any) -> dict[str, sa.ColumnElement[Any]]:
    return {"has_password": table.c.password_hash.is_not(None)}


def _deal_sql(table: Any, now: Any) -> dict[str, sa.ColumnElement[Any]]:
    # As deals.present_row computes it.
    return {"rotten": sa.and_(table.c.rots_at.is_not(None), table.c.rots_at <= now)}


def _activity_sql(table: Any, now: Any) -> dict[str, sa.ColumnElement[Any]]:
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
    only: Callable[[Any], Any] | None = None

    def read(self, row: Any, now: datetime) -> BaseModel:
        return self.present(row, now) if self.present else self.schema.model_validate(row._mapping)


# In the order a page sends them: what a record refers to comes before it.
SYNCED = (
    Synced("user", User, UserRead, _user, _user_sql, reference=True),
    Synced("team", Team, TeamRead, reference=True),
    Synced("pipeline", Pipeline, PipelineSummary, reference=True),
    Synced("stage", Stage, StageRead, reference=True),
    Synced("lost_reason", LostReason, LostReasonRead, reference=True, only=lambda t: t.c.is_active),
    Synced("product", Product, ProductRead, reference=True, only=lambda t: t.c.is_active),
    Synced("custom_field", CustomField, CustomFieldRead, reference=True),
    Synced("company", Company, CompanyRead),
    Synced("contact", Contact, ContactRead),
    Synced("deal", Deal, DealRead, deals.present_row, _deal_sql),
    Synced("activity", Activity, ActivityRead, activities.present_row, _activity_sql),
)
BY_ENTITY = {s.entity: s for s in SYNCED}
ENTITIES = tuple(BY_ENTITY)

# {entity: {id: version}}, ids as text in their canonical form (`str(uuid)`: 36 characters, the width pages and
# stored views count on).
Members = dict[str, dict[str, int]]
KEY_WIDTH = 36


def window_start(now: datetime) -> datetime:
    """Activities done before this have aged out. Whole days, so that the set does not shift with every pull."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=WINDOW_DAYS)


@functools.cache
def _table(model: type[Record]) -> Any:
    return sa.inspect(model).local_table


# Bound per request: the organisation, the user, the start of the activity window, and the page's "now".
_ORG: sa.BindParameter[Any] = sa.bindparam("org_id")
_ME: sa.BindParameter[Any] = sa.bindparam("me")
_SINCE: sa.BindParameter[Any] = sa.bindparam("since")
_NOW = sa.bindparam("now", type_=UTCDateTime)
_UTF8: sa.ColumnClause[Any] = sa.literal_column("'UTF8'")
_COMMA: sa.ColumnClause[Any] = sa.literal_column("','")


def _live(table: Any) -> list[sa.ColumnElement[bool]]:
    return [table.c.org_id == _ORG, table.c.deleted_at.is_(None)]


@dataclass(frozen=True, slots=True)
class _Kind:
    """One kind's part of the working set: its (id, version) rows, and its ids for the kinds that hang off it."""

    rows: sa.CompoundSelect[Any]
    ids: sa.CompoundSelect[Any]


@functools.cache
def _member_statements(dialect: str) -> dict[str, Any]:
    """Per kind, the statement listing its (id, version) rows: Core, built once per dialect, with the
    organisation, the user and the window bound per request (`org_id`, `me`, `since`)."""
    companies_t, contacts_t, deals_t, activities_t, shares = (
        _table(m) for m in (Company, Contact, Deal, Activity, Share)
    )

    def among(column: Any, kind: _Kind) -> sa.ColumnElement[bool]:
        if dialect == "postgresql":
            # `= ANY(ARRAY(subquery))`: an init plan run once, whose ids probe the column's index. With
            # `IN (subquery)` PostgreSQL guessed far more ids than a user holds and scanned the organisation's table.
            probe: sa.ColumnElement[bool] = column == sa.any_(sa.func.array(kind.ids.scalar_subquery()))
            return probe
        in_set: sa.ColumnElement[bool] = column.in_(kind.ids)
        return in_set

    def gather(table: Any, *arms: sa.ColumnElement[bool]) -> _Kind:
        # Each way in is its own index range with the live filter inside, and the union drops repeats: an
        # `id IN (union)` outside made PostgreSQL hash-join a scan of the whole organisation's table instead.
        rows = [sa.select(table.c.id, table.c.version).where(*_live(table), arm) for arm in arms]
        return _Kind(sa.union(*rows), sa.union(*(r.with_only_columns(table.c.id) for r in rows)))

    def shared(table: Any, entity: str) -> sa.ColumnElement[bool]:
        ids = sa.select(shares.c.entity_id).where(*_live(shares), shares.c.user_id == _ME, shares.c.entity == entity)
        in_shares: sa.ColumnElement[bool] = table.c.id.in_(ids)
        return in_shares

    companies = gather(companies_t, companies_t.c.owner_id == _ME, shared(companies_t, "company"))
    own_contacts = gather(contacts_t, contacts_t.c.owner_id == _ME, shared(contacts_t, "contact"))
    contacts = gather(
        contacts_t,
        contacts_t.c.owner_id == _ME,
        shared(contacts_t, "contact"),
        among(contacts_t.c.company_id, companies),
    )
    is_open = deals_t.c.status == DealStatus.open.value
    deals_open = gather(
        deals_t,
        *(
            sa.and_(is_open, arm)
            for arm in (
                deals_t.c.owner_id == _ME,
                shared(deals_t, "deal"),
                among(deals_t.c.company_id, companies),
                among(deals_t.c.contact_id, own_contacts),
            )
        ),
    )
    recent = sa.or_(activities_t.c.done_at >= _SINCE, activities_t.c.done_at.is_(None))
    activities_ = gather(
        activities_t,
        *(
            sa.and_(arm, recent)
            for arm in (
                activities_t.c.owner_id == _ME,
                activities_t.c.assignee_id == _ME,
                among(activities_t.c.company_id, companies),
                among(activities_t.c.contact_id, contacts),
                among(activities_t.c.deal_id, deals_open),
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
            table = _table(synced.model)
            where = [synced.only(table)] if synced.only else []
            statements[synced.entity] = sa.select(table.c.id, table.c.version).where(*_live(table), *where)
    return {entity: statements[entity] for entity in ENTITIES}


# The working set as a listing: per kind, the ids of its members in order and their versions, both comma-separated
# (empty when none). What a pull compares with what the app holds, and, for an app that holds nothing, the steps of
# its first pull as they are.
Listing = dict[str, tuple[str, str]]


@functools.cache
def listing_statement() -> sa.Select[Any]:
    """PostgreSQL: the whole listing in one statement, a column per kind (an array: ids, versions; nulls when none):
    one round trip, and no row or id objects for the ~7,000 members of a busy rep."""
    columns = []
    for entity, stmt in _member_statements("postgresql").items():
        listed = stmt.subquery(f"m_{entity}")
        ids, versions = (
            sa.func.string_agg(sa.cast(column, sa.Text), postgresql.aggregate_order_by(_COMMA, listed.c.id))
            for column in (listed.c.id, listed.c.version)
        )
        # Both in one array: one pass over the kind's members, and no join of the kinds' rows to plan.
        both = sa.select(postgresql.array([ids, versions])).select_from(listed)
        columns.append(both.scalar_subquery().label(entity))
    return sa.select(*columns)


@functools.lru_cache(maxsize=256)
def _among_statement(dialect: str, entities: tuple[str, ...]) -> sa.CompoundSelect[Any]:
    """(entity, id, version) of the members among given ids (bound per kind as `among_<kind>`): each kind's
    statement with the ids as a condition, which PostgreSQL and SQLite push into every arm of its union, so each
    arm probes a primary key instead of walking an index range."""
    arms = []
    for entity in entities:
        listed = _member_statements(dialect)[entity].subquery(f"m_{entity}")
        wanted = sa.bindparam(f"among_{entity}", expanding=True, type_=sa.Uuid)
        kind = sa.literal_column(f"'{entity}'", sa.Text).label("entity")
        arms.append(sa.select(kind, listed.c.id, listed.c.version).where(listed.c.id.in_(wanted)))
    return sa.union_all(*arms)


def listing_parameters(viewer: Viewer, since: datetime) -> dict[str, Any]:
    return {"org_id": viewer.org_id, "me": viewer.user_id, "since": since}


def _joined(rows: list[tuple[str, int]]) -> tuple[str, str]:
    rows.sort()
    return ",".join(key for key, _ in rows), ",".join(str(version) for _, version in rows)


async def listing(
    session: AsyncSession, viewer: Viewer, since: datetime, among: dict[str, set[str]] | None = None
) -> Listing:
    """The working set; with `among` ({entity: ids}), only its members among those records."""
    values = listing_parameters(viewer, since)
    dialect = session.get_bind().dialect.name
    if among is not None:
        entities = tuple(entity for entity in ENTITIES if among.get(entity))
        if not entities:
            return {}
        values |= {f"among_{entity}": [uuid.UUID(key) for key in among[entity]] for entity in entities}
        found: dict[str, list[tuple[str, int]]] = {}
        for entity, key, version in await session.execute(_among_statement(dialect, entities), values):
            found.setdefault(entity, []).append((str(key), version))
        return {entity: _joined(rows) for entity, rows in found.items()}
    if dialect == "postgresql":
        row = (await session.execute(listing_statement(), values)).one()
        return {entity: (ids or "", versions or "") for entity, (ids, versions) in zip(ENTITIES, row, strict=True)}
    return {
        entity: _joined([(str(row.id), row.version) for row in await session.execute(stmt, values)])
        for entity, stmt in _member_statements("sqlite").items()
    }


async def audience(session: AsyncSession, org_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """The users whose working set may hold any of these records (companies, contacts, deals or activities, of any
    kind): their owners and assignees, the owners of the records they hang off, and whom any of those is shared with.
    A superset (a closed deal's or an old activity's owners are in it): it decides which apps are asked to pull, and
    an app asked for nothing pulls nothing."""
    companies_t, contacts_t, deals_t, activities_t, shares = (
        _table(m) for m in (Company, Contact, Deal, Activity, Share)
    )
    users: set[uuid.UUID] = set()
    found: set[uuid.UUID] = set(ids)

    async def rows(table: Any, wanted: set[uuid.UUID], *columns: Any) -> list[Any]:
        stmt = sa.select(table.c.owner_id, *columns).where(table.c.org_id == org_id, table.c.id.in_(wanted))
        return list(await session.execute(stmt))

    # Each kind only hangs off the kinds after it: activities, deals, contacts, companies.
    about = (activities_t.c.deal_id, activities_t.c.contact_id, activities_t.c.company_id)
    for row in await rows(activities_t, found, activities_t.c.assignee_id, *about):
        users.update((row.owner_id, row.assignee_id))
        found.update((row.deal_id, row.contact_id, row.company_id))
    for row in await rows(deals_t, found, deals_t.c.id, deals_t.c.contact_id, deals_t.c.company_id):
        users.add(row.owner_id)
        found.update((row.contact_id, row.company_id))
    for row in await rows(contacts_t, found, contacts_t.c.company_id):
        users.add(row.owner_id)
        found.add(row.company_id)
    users.update(row.owner_id for row in await rows(companies_t, found))
    found.discard(None)
    shared = sa.select(shares.c.user_id).where(*_live(shares), shares.c.entity_id.in_(found))
    users.update(await session.scalars(shared, {"org_id": org_id}))
    users.discard(None)
    return users


def versions_of(ids: str, versions: str) -> dict[str, int]:
    """A kind's part of a listing as {id: version}."""
    return dict(zip(ids.split(","), map(int, versions.split(",")), strict=True)) if ids else {}


async def members(session: AsyncSession, viewer: Viewer, since: datetime) -> Members:
    """The working set as {entity: {id: version}}."""
    return {entity: versions_of(*pair) for entity, pair in (await listing(session, viewer, since)).items()}


# One page's records: per kind, their JSON array as the API reads them (in no particular order). Kinds none of whose
# wanted records are live are left out.
Batch = dict[str, bytes]


async def records(session: AsyncSession, org_id: uuid.UUID, wanted: dict[str, str], now: datetime) -> Batch:
    """The live records with these ids, {entity: ids as comma-separated text}, kinds in the order pages send them."""
    if session.get_bind().dialect.name == "postgresql":
        return await _built_by_postgres(session, org_id, wanted, now)
    return await _built_by_python(session, org_id, wanted, now)


async def _built_by_python(session: AsyncSession, org_id: uuid.UUID, wanted: dict[str, str], now: datetime) -> Batch:
    put: Batch = {}
    for entity, ids in wanted.items():
        synced = BY_ENTITY[entity]
        table = _table(synced.model)
        keys = [uuid.UUID(key) for key in ids.split(",")]
        where = [table.c.org_id == org_id, table.c.deleted_at.is_(None), table.c.id.in_(keys)]
        found: list[Any] = [synced.read(row, now) for row in await session.execute(sa.select(table).where(*where))]
        if found:
            put[entity] = _list_of(synced.schema).dump_json(found)
    return put


@functools.cache
def _list_of(schema: type[BaseModel]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[schema])  # type: ignore[valid-type]


@functools.lru_cache(maxsize=128)
def page_statement(entities: tuple[str, ...]) -> sa.Select[Any]:
    """PostgreSQL writes the JSON itself: about ten times the pages per second of reading rows into Python objects
    and serialising them (MACHINE-NOTES, bench/RESULTS.md). The fields and their formats are the read schema's,
    which tests/sync checks against the REST reads.

    One statement for the kinds a page sends (pages take runs of kinds in order: a few dozen combinations, each
    built once), a column per kind: its records' JSON array (null when none is found); bound per request:
    `org_id`, `now` and, per kind, the ids as comma-separated text (its name)."""
    columns = []
    for entity in entities:
        synced = BY_ENTITY[entity]
        table = _table(synced.model)
        computed = synced.computed(table, _NOW) if synced.computed else {}
        fields = [
            (computed[name] if name in computed else jsonsql.field(table.c[name])).label(name)
            for name in synced.schema.model_fields
        ]
        ids = sa.cast(
            sa.func.string_to_array(sa.bindparam(entity, type_=sa.Text), _COMMA),
            postgresql.ARRAY(sa.Uuid),
        )
        rows = sa.select(*fields).where(*_live(table), table.c.id == sa.any_(ids)).subquery(f"r_{entity}")
        # As UTF-8 bytes, which go into the response as they are (no text decoded and encoded again).
        utf8 = sa.func.convert_to(sa.cast(sa.func.json_agg(sa.literal_column(rows.name)), sa.Text), _UTF8)
        found = sa.select(sa.type_coerce(utf8, sa.LargeBinary)).select_from(rows)
        columns.append(found.scalar_subquery().label(entity))
    return sa.select(*columns)


async def _built_by_postgres(session: AsyncSession, org_id: uuid.UUID, wanted: dict[str, str], now: datetime) -> Batch:
    row = (await session.execute(page_statement(tuple(wanted)), {"org_id": org_id, "now": now, **wanted})).one()
    return {entity: found for entity, found in zip(wanted, row, strict=True) if found is not None}
