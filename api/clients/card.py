"""The client card: everything a rep needs before a call, in one response and a fixed number of SQL statements
whatever the client's size (Core rows, no ORM objects: this is the hottest read of the app)."""

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from api.activities import service as activities
from api.activities.models import TOUCH_KINDS, Activity
from api.activities.schemas import ActivityRead
from api.clients import completeness
from api.clients.models import ClientKind, Company, Contact
from api.clients.schemas import CompanyRead, ContactRead
from api.core import examples as ex
from api.core import jsonsql
from api.core.errors import NotFound
from api.core.examples import example_of, examples
from api.core.pagination import Page
from api.core.types import UTCDateTime, utcnow
from api.deals import deals
from api.deals.models import Deal, DealStatus
from api.deals.schemas import DealRead
from api.feed import queries as feed
from api.feed.schemas import FeedItem, Only
from api.sharing.visibility import Viewer, activity_filter, company_filter, contact_filter, deal_filter

CONTACTS_SHOWN = 50
DEALS_SHOWN = 50
TASKS_SHOWN = 20
TIMELINE_PAGE = 20


class Completeness(BaseModel):
    score: int = Field(ge=0, le=100, description="Share of the expected fields that are filled in, in %.")
    missing: list[str] = Field(description="The empty ones: field names, `contacts`, or `custom.<key>`.")

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"score": 93, "missing": ["custom.volumen_anual"]},
        ),
    )


class DealCounts(BaseModel):
    open: int = 0
    won: int = 0
    lost: int = 0

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"open": 1, "won": 1, "lost": 0},
        ),
    )


class ClientCard(BaseModel):
    """Deal sections are empty for an API key without `deals:read`, touches and tasks without `activities:read`."""

    kind: ClientKind
    company: CompanyRead | None = Field(description="The company, or the contact's company.")
    contact: ContactRead | None = Field(description="The contact (contact cards only).")
    contacts: list[ContactRead] = Field(description="The company's contacts, by name (first 50).")
    contact_count: int
    open_deals: list[DealRead]
    won_deals: list[DealRead] = Field(description="Most recent first (first 50).")
    lost_deals: list[DealRead] = Field(description="Most recent first (first 50).")
    deal_counts: DealCounts
    lifetime_value: dict[str, int] = Field(description="Won amounts per currency, in minor units.")
    last_touch: ActivityRead | None = Field(description="The latest call, meeting or e-mail.")
    next_touch: ActivityRead | None = Field(description="The next planned activity.")
    open_tasks: list[ActivityRead] = Field(description="Planned activities by due time (first 20).")
    completeness: Completeness
    timeline: Page[FeedItem]

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "kind": "company",
                "company": example_of(CompanyRead),
                "contact": None,
                "contacts": [example_of(ContactRead)],
                "contact_count": 1,
                "open_deals": [example_of(DealRead)],
                "won_deals": [
                    {
                        **example_of(DealRead),
                        "id": ex.PREVIOUS_DEAL,
                        "title": "TPV · Frutas Martínez S.L.",
                        "stage_id": ex.STAGE_WON,
                        "amount_minor": 980000,
                        "status": "won",
                        "won_at": "2025-02-14T12:00:00Z",
                        "previous_deal_id": None,
                        "rots_at": None,
                    }
                ],
                "lost_deals": [],
                "deal_counts": example_of(DealCounts),
                "lifetime_value": {"EUR": 980000},
                "last_touch": example_of(ActivityRead),
                "next_touch": example_of(ActivityRead, 1),
                "open_tasks": [example_of(ActivityRead, 1)],
                "completeness": example_of(Completeness),
                "timeline": {"items": [example_of(FeedItem)], "next_cursor": ex.CURSOR},
            },
        ),
    )


_companies, _contacts, _deals, _activities = (sa.inspect(m).local_table for m in (Company, Contact, Deal, Activity))
# A card's statements are built once per viewer and kind (their visibility conditions are large expression trees,
# whose building and cache keys cost more than running them) and run with these values bound.
CLIENT = sa.bindparam("client_id", type_=sa.Uuid)
PARENT = sa.bindparam("company_id", type_=sa.Uuid)  # a contact card's company
NOW = sa.bindparam("now", type_=UTCDateTime)


@dataclass(frozen=True, slots=True)
class Client:
    """A company or contact the viewer may see, as its table's row."""

    kind: ClientKind
    row: sa.Row[Any]

    @property
    def id(self) -> uuid.UUID:
        found: uuid.UUID = self.row.id
        return found

    @property
    def company_id(self) -> uuid.UUID | None:
        return self.id if self.kind is ClientKind.company else self.row.company_id


@functools.lru_cache(maxsize=1024)
def _resolvers(viewer: Viewer) -> tuple[sa.Select[Any], sa.Select[Any]]:
    def find(table: Any, condition: sa.ColumnElement[bool]) -> sa.Select[Any]:
        return sa.select(table).where(
            table.c.org_id == viewer.org_id, table.c.deleted_at.is_(None), table.c.id == CLIENT, condition
        )

    return (
        find(_companies, company_filter(viewer, _companies.c)),
        find(_contacts, contact_filter(viewer, _contacts.c)),
    )


async def resolve(session: AsyncSession, viewer: Viewer, client_id: uuid.UUID) -> Client:
    """The company or contact with this id, if the viewer may see it."""
    companies, contacts = _resolvers(viewer)
    row = (await session.execute(companies, {"client_id": client_id})).first()
    if row is not None:
        return Client(ClientKind.company, row)
    row = (await session.execute(contacts, {"client_id": client_id})).first()
    if row is None:
        raise NotFound("No such client.")
    return Client(ClientKind.contact, row)


@dataclass(frozen=True)
class _Sections:
    """The card's reads, each a statement over the bound client (and `now`). Contacts and the parent company are
    None where the kind of card has none; deals and touches where the viewer may not read them (an API key)."""

    contacts: sa.Select[Any] | None
    parent: sa.Select[Any] | None
    deals: sa.Select[Any] | None
    deal_totals: sa.Select[Any] | None
    last_touch: sa.Select[Any] | None
    open_tasks: sa.Select[Any] | None
    next_touch: sa.Select[Any] | None


@functools.lru_cache(maxsize=1024)
def _sections(viewer: Viewer, kind: ClientKind) -> _Sections:
    def about(table: Any) -> sa.ColumnElement[bool]:
        condition: sa.ColumnElement[bool] = (
            table.c.company_id == CLIENT if kind is ClientKind.company else table.c.contact_id == CLIENT
        )
        return condition

    def live(table: Any) -> list[sa.ColumnElement[bool]]:
        return [table.c.org_id == viewer.org_id, table.c.deleted_at.is_(None)]

    contacts = parent = None
    if kind is ClientKind.company:
        contacts = (
            sa.select(*_contacts.c, sa.func.count().over().label("total"))
            .where(*live(_contacts), _contacts.c.company_id == CLIENT, contact_filter(viewer, _contacts.c))
            .order_by(_contacts.c.name_folded, _contacts.c.id)
            .limit(CONTACTS_SHOWN)
        )
    else:
        parent = sa.select(_companies).where(
            *live(_companies), _companies.c.id == PARENT, company_filter(viewer, _companies.c)
        )
    deals_ranked = totals = None
    if viewer.may_read("deals:read"):
        scope = [*live(_deals), about(_deals), deal_filter(viewer, _deals.c)]
        # Most recent first in each list: open by creation, won and lost by when they closed.
        recency = sa.func.coalesce(_deals.c.won_at, _deals.c.lost_at, _deals.c.created_at)
        rank = sa.func.row_number().over(partition_by=_deals.c.status, order_by=(recency.desc(), _deals.c.id.desc()))
        ranked = sa.select(*_deals.c, rank.label("rank")).where(*scope).subquery("ranked_deal")
        deals_ranked = sa.select(ranked).where(ranked.c.rank <= DEALS_SHOWN).order_by(ranked.c.status, ranked.c.rank)
        amount = sa.func.coalesce(sa.func.sum(_deals.c.amount_minor), 0)
        totals = (
            sa.select(_deals.c.status, _deals.c.currency, sa.func.count().label("n"), amount.label("amount"))
            .where(*scope)
            .group_by(_deals.c.status, _deals.c.currency)
        )
    last = planned = upcoming = None
    if viewer.may_read("activities:read"):
        touches = sa.select(_activities).where(
            *live(_activities), about(_activities), activity_filter(viewer, _activities.c)
        )
        done = _activities.c.done_at
        # The kinds written into the statement: a list of bound values is rendered again at every execution.
        touch = _activities.c.kind.in_([sa.literal_column(f"'{kind}'") for kind in TOUCH_KINDS])
        last = touches.where(done.is_not(None), touch).order_by(done.desc()).limit(1)
        planned = touches.where(done.is_(None)).order_by(_activities.c.due_at, _activities.c.id)
        upcoming = planned.where(_activities.c.due_at >= NOW).limit(1)
        planned = planned.limit(TASKS_SHOWN)
    return _Sections(contacts, parent, deals_ranked, totals, last, planned, upcoming)


@functools.lru_cache(maxsize=64)
def _completeness_flags(kind: ClientKind, keys: tuple[str, ...]) -> tuple[list[str], sa.Select[Any]]:
    table = _companies if kind is ClientKind.company else _contacts
    parts = completeness.flags(kind, list(keys), table)
    flags: Any = sa.select(*(flag for _, flag in parts)).where(table.c.id == CLIENT)
    return [name for name, _ in parts], flags


def _score(filled: int, expected: int) -> int:
    # Half up, in integers: what PostgreSQL computes for the cards it writes (Python's round() rounds half to even).
    return (200 * filled + expected) // (2 * expected)


async def timeline(
    session: AsyncSession,
    viewer: Viewer,
    client: Client,
    *,
    only: Only | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[FeedItem], str | None]:
    event = feed.event

    def where() -> list[sa.ColumnElement[bool]]:
        about = event.company_id if client.kind is ClientKind.company else event.contact_id
        conditions = [about == feed.SUBJECT]
        # An API key sees the kinds of record its scopes name, in the timeline as everywhere else.
        if not viewer.may_read("deals:read"):
            conditions.append(event.deal_id.is_(None))
        if not viewer.may_read("activities:read"):
            conditions.append(event.activity_id.is_(None))
        return conditions

    return await feed.page(
        session,
        viewer,
        scope=f"timeline:{client.id}",
        shape=f"timeline:{client.kind.value}",
        where=where,
        subject=client.id,
        only=only,
        limit=limit,
        cursor=cursor,
    )


async def card(*, session: AsyncSession, viewer: Viewer, client_id: uuid.UUID) -> bytes:
    """The card as its JSON response."""
    client = await resolve(session, viewer, client_id)
    keys = tuple(await completeness.custom_keys(session, viewer.org_id, client.kind))
    params = {"client_id": client.id, "company_id": client.company_id, "now": utcnow()}
    items, next_cursor = await timeline(session, viewer, client, only=None, limit=TIMELINE_PAGE, cursor=None)
    history = Page[FeedItem](items=items, next_cursor=next_cursor)
    if session.get_bind().dialect.name != "postgresql":
        built = await _built_by_python(session, viewer, client, keys, params)
        return built.model_copy(update={"timeline": history}).model_dump_json().encode()
    text: str = (await session.execute(_built_by_postgres(viewer, client.kind, keys), params)).scalar_one()
    # The card's object as PostgreSQL wrote it, with the timeline (signed cursors are the app's) added at its end.
    return f'{text[:-1]}, "timeline" : {history.model_dump_json()}}}'.encode()


async def _built_by_python(
    session: AsyncSession, viewer: Viewer, client: Client, keys: tuple[str, ...], params: dict[str, Any]
) -> ClientCard:
    sections = _sections(viewer, client.kind)
    now: datetime = params["now"]

    async def rows(stmt: sa.Select[Any] | None) -> list[sa.Row[Any]]:
        return [] if stmt is None else list(await session.execute(stmt, params))

    listed = await rows(sections.contacts)
    contacts = [ContactRead.model_validate(dict(r._mapping)) for r in listed]
    by_status: dict[str, list[DealRead]] = {s.value: [] for s in DealStatus}
    for row in await rows(sections.deals):
        by_status[row.status].append(deals.present_row(row, now))
    counts = DealCounts()
    lifetime: dict[str, int] = {}
    for row in await rows(sections.deal_totals):
        setattr(counts, row.status, getattr(counts, row.status) + row.n)
        if row.status == DealStatus.won.value:
            lifetime[row.currency] = int(row.amount)
    last_touch, open_tasks, next_touch = [
        [activities.present_row(r, now) for r in await rows(stmt)]
        for stmt in (sections.last_touch, sections.open_tasks, sections.next_touch)
    ]
    names, flags = _completeness_flags(client.kind, keys)
    filled = (await session.execute(flags, params)).one()
    missing = [name for name, flag in zip(names, filled, strict=True) if not flag]
    company: CompanyRead | None
    contact: ContactRead | None
    if client.kind is ClientKind.company:
        company, contact = CompanyRead.model_validate(dict(client.row._mapping)), None
    else:
        parent = (await rows(sections.parent)) if client.company_id else []
        company = CompanyRead.model_validate(dict(parent[0]._mapping)) if parent else None
        contact = ContactRead.model_validate(dict(client.row._mapping))
    return ClientCard(
        kind=client.kind,
        company=company,
        contact=contact,
        contacts=contacts,
        contact_count=listed[0].total if listed else 0,
        open_deals=by_status[DealStatus.open.value],
        won_deals=by_status[DealStatus.won.value],
        lost_deals=by_status[DealStatus.lost.value],
        deal_counts=counts,
        lifetime_value=lifetime,
        last_touch=last_touch[0] if last_touch else None,
        next_touch=next_touch[0] if next_touch else None,
        open_tasks=open_tasks,
        completeness=Completeness(score=_score(len(names) - len(missing), len(names)), missing=missing),
        timeline=Page(items=[], next_cursor=None),
    )


@functools.lru_cache(maxsize=1024)
def _built_by_postgres(viewer: Viewer, kind: ClientKind, keys: tuple[str, ...]) -> sa.Select[Any]:
    """The whole card but its timeline in one statement that writes its JSON, from the same reads as
    `_built_by_python`."""
    sections = _sections(viewer, kind)

    def one(stmt: sa.Select[Any] | None, schema: type[BaseModel], computed: Any = None) -> Any:
        if stmt is None:
            return sa.null()
        row = stmt.subquery()
        return sa.select(jsonsql.record(schema, row.c, computed and computed(row.c, NOW))).scalar_subquery()

    me = _companies if kind is ClientKind.company else _contacts
    this = sa.select(me).where(me.c.id == CLIENT)
    pairs: list[tuple[str, Any]] = [("kind", sa.literal(kind.value))]
    if kind is ClientKind.company:
        pairs += [("company", one(this, CompanyRead)), ("contact", sa.null())]
    else:
        pairs += [("company", one(sections.parent, CompanyRead)), ("contact", one(this, ContactRead))]
    if sections.contacts is not None:
        listed = sections.contacts.cte("card_contact")
        record = jsonsql.record(ContactRead, listed.c)
        pairs += [
            ("contacts", sa.select(jsonsql.array(record, listed.c.name_folded, listed.c.id)).scalar_subquery()),
            ("contact_count", sa.select(sa.func.coalesce(sa.func.max(listed.c.total), 0)).scalar_subquery()),
        ]
    else:
        pairs += [("contacts", jsonsql.EMPTY_LIST), ("contact_count", sa.literal(0))]
    pairs += _deal_pairs(sections)
    planned = None
    if sections.open_tasks is not None:
        task = sections.open_tasks.subquery()
        record = jsonsql.record(ActivityRead, task.c, activities.overdue_sql(task.c, NOW))
        planned = sa.select(jsonsql.array(record, task.c.due_at, task.c.id)).scalar_subquery()
    pairs += [
        ("last_touch", one(sections.last_touch, ActivityRead, activities.overdue_sql)),
        ("next_touch", one(sections.next_touch, ActivityRead, activities.overdue_sql)),
        ("open_tasks", jsonsql.EMPTY_LIST if planned is None else planned),
        ("completeness", _completeness_json(kind, keys)),
    ]
    return sa.select(jsonsql.text(jsonsql.obj(pairs)))


def _deal_pairs(sections: _Sections) -> list[tuple[str, Any]]:
    statuses = [s.value for s in DealStatus]
    if sections.deals is None or sections.deal_totals is None:
        counts = jsonsql.obj((status, sa.literal(0)) for status in statuses)
        return [
            *((f"{status}_deals", jsonsql.EMPTY_LIST) for status in statuses),
            ("deal_counts", counts),
            ("lifetime_value", sa.text("'{}'::json")),
        ]
    listed = sections.deals.cte("card_deal")
    record = jsonsql.record(DealRead, listed.c, deals.rotten_sql(listed.c, NOW))
    totals = sections.deal_totals.cte("card_deal_total")
    counts = jsonsql.obj(
        (status, sa.func.coalesce(sa.func.sum(totals.c.n).filter(totals.c.status == status), 0)) for status in statuses
    )
    won = sa.func.json_object_agg(totals.c.currency, totals.c.amount).filter(totals.c.status == DealStatus.won.value)
    return [
        *(
            (
                f"{status}_deals",
                sa.select(jsonsql.array(record, listed.c.rank, where=listed.c.status == status)).scalar_subquery(),
            )
            for status in statuses
        ),
        ("deal_counts", sa.select(counts).scalar_subquery()),
        ("lifetime_value", sa.select(sa.func.coalesce(won, sa.text("'{}'::json"))).scalar_subquery()),
    ]


def _completeness_json(kind: ClientKind, keys: tuple[str, ...]) -> Any:
    names, flags = _completeness_flags(kind, keys)
    columns = list(flags.selected_columns)
    filled = sum(columns[1:], columns[0])
    expected = len(names)
    missing = sa.func.array_remove(
        postgresql.array(
            [sa.case((flag == 1, sa.null()), else_=sa.literal(name)) for name, flag in zip(names, columns, strict=True)]
        ),
        sa.null(),
    )
    score = (200 * filled + expected) // (2 * expected)
    return flags.with_only_columns(jsonsql.obj([("score", score), ("missing", missing)])).scalar_subquery()
