"""Exports: everything a list shows, as a spreadsheet, read from the database a page at a time.

An export starts from the statement its list starts from (the same filters, the same visibility filter), so a
file holds exactly the records its list pages through. Rows are read in keyset pages of PAGE_SIZE, in the list's
order: one statement per page, which joins the names a row shows (owner, company, stage...) and, for companies
and contacts, the card's numbers from one grouped subquery each over that page's records alone.
"""

import functools
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from babel.numbers import get_currency_precision
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from api.activities.models import TOUCH_KINDS, Activity
from api.activities.service import matching_activities
from api.auth.models import Organization, User
from api.clients.models import Company, Contact, CustomField, FieldKind
from api.clients.service import COMPANY, CONTACT, list_custom_fields, matching_clients
from api.core.types import utcnow
from api.deals.deals import matching_deals
from api.deals.models import Deal, DealStatus, LostReason, Pipeline, Stage
from api.exports import columns
from api.exports.columns import Header, Language
from api.sharing.visibility import FILTERS, Viewer

PAGE_SIZE = 1_000


@dataclass(frozen=True)
class Ref:
    """A record a row points at, joined for what the row shows of it (`shown`: its column -> the row's key)."""

    column: str
    model: Any
    shown: dict[str, str]


def _person(column: str, prefix: str) -> Ref:
    return Ref(column, User, {"name": f"{prefix}_name", "email": f"{prefix}_email"})


COMPANY_NAME = Ref("company_id", Company, {"name": "company_name"})
CONTACT_NAME = Ref("contact_id", Contact, {"name": "contact_name"})


@dataclass(frozen=True)
class Export:
    entity: str
    model: Any
    headers: tuple[Header, ...]
    # The statement of the records its list shows, before visibility: (viewer, filters) -> select.
    matching: Callable[[Viewer, Any], Any]
    refs: tuple[Ref, ...]
    # The list's order: by name (clients) or newest first (ids are time-ordered).
    by_name: bool
    # The kind of record custom fields are defined for; None when it has none.
    custom_entity: str | None = None
    # Which column of deals and activities points at a record of this kind (the card's numbers); None: no card.
    card_ref: str | None = None


COMPANIES = Export(
    "companies",
    Company,
    columns.COMPANIES,
    lambda viewer, filters: matching_clients(viewer, COMPANY, filters),
    (_person("owner_id", "owner"),),
    by_name=True,
    custom_entity="company",
    card_ref="company_id",
)
CONTACTS = Export(
    "contacts",
    Contact,
    columns.CONTACTS,
    lambda viewer, filters: matching_clients(viewer, CONTACT, filters),
    (_person("owner_id", "owner"), COMPANY_NAME),
    by_name=True,
    custom_entity="contact",
    card_ref="contact_id",
)
DEALS = Export(
    "deals",
    Deal,
    columns.DEALS,
    matching_deals,
    (
        _person("owner_id", "owner"),
        COMPANY_NAME,
        CONTACT_NAME,
        Ref("pipeline_id", Pipeline, {"name": "pipeline_name"}),
        Ref("stage_id", Stage, {"name": "stage_name"}),
        Ref("lost_reason_id", LostReason, {"name": "lost_reason_name"}),
    ),
    by_name=False,
    custom_entity="deal",
)
ACTIVITIES = Export(
    "activities",
    Activity,
    columns.ACTIVITIES,
    matching_activities,
    (
        _person("owner_id", "owner"),
        _person("assignee_id", "assignee"),
        COMPANY_NAME,
        CONTACT_NAME,
        Ref("deal_id", Deal, {"title": "deal_title"}),
    ),
    by_name=False,
)


@dataclass(frozen=True)
class ExportFile:
    headers: list[str]
    rows: AsyncIterator[list[Any]]
    sheet: str
    filename: str


@functools.cache
def _precision(currency: str) -> int:
    return int(get_currency_precision(currency))


def money(minor: int | None, currency: str | None) -> Decimal | None:
    """An amount in the currency's units, with its decimals (12.50 EUR, 1250 JPY)."""
    if minor is None or currency is None:
        return None
    return Decimal(int(minor)).scaleb(-_precision(currency))


def _custom_value(field: CustomField, value: Any) -> Any:
    if value is None or field.kind == FieldKind.number.value:
        return value
    if field.kind == FieldKind.date.value:
        try:
            return date.fromisoformat(value)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def _joined(viewer: Viewer, export: Export, page: Any, currency: str) -> tuple[Any, list[Any]]:
    """The page joined to what its rows show, and the columns that adds. A referenced client or deal is named only
    when the viewer may see it, as its card would."""
    joined, extra = page, []
    for index, ref in enumerate(export.refs):
        other = sa.inspect(ref.model).local_table.alias(f"export_{index}")
        on = [other.c.id == page.c[ref.column], other.c.org_id == viewer.org_id]
        if ref.model in FILTERS:
            on += [other.c.deleted_at.is_(None), FILTERS[ref.model](viewer, other.c)]
        joined = joined.outerjoin(other, sa.and_(*on))
        extra += [other.c[name].label(key) for name, key in ref.shown.items()]
    if export.card_ref is not None:
        joined, card = _card(viewer, export.card_ref, page, joined, currency)
        extra += card
    return joined, extra


def _per_client(
    viewer: Viewer, model: Any, ref: str, page: Any, numbers: Callable[[Any], tuple[list[Any], list[Any]]]
) -> Any:
    """A grouped subquery: per client of the page, the aggregates `numbers(columns)` gives (with its extra
    conditions) over the client's records of `model` that the viewer sees."""
    table = sa.inspect(model).local_table.alias(f"card_{model.__tablename__}")
    aggregates, conditions = numbers(table.c)
    return (
        sa.select(table.c[ref].label("client_id"), *aggregates)
        .where(
            table.c.org_id == viewer.org_id,
            table.c.deleted_at.is_(None),
            table.c[ref].in_(sa.select(page.c.id)),
            FILTERS[model](viewer, table.c),
            *conditions,
        )
        .group_by(table.c[ref])
        .subquery(f"card_{model.__tablename__}s")
    )


def _card(viewer: Viewer, ref: str, page: Any, joined: Any, currency: str) -> tuple[Any, list[Any]]:
    """The card's numbers of the page's clients: open deals, lifetime value (won deals in the organisation's
    currency: amounts in others are not converted) and the last call, meeting or e-mail. One grouped subquery each,
    over the page's records only; empty for an API key without the scope, as on the card."""

    def deal_numbers(deal: Any) -> tuple[list[Any], list[Any]]:
        won = sa.and_(deal.status == DealStatus.won.value, deal.currency == currency)
        return [
            sa.func.sum(sa.case((deal.status == DealStatus.open.value, 1), else_=0)).label("open_deals"),
            sa.func.sum(sa.case((won, deal.amount_minor), else_=0)).label("won_minor"),
        ], []

    def touch_numbers(activity: Any) -> tuple[list[Any], list[Any]]:
        touched = [activity.done_at.is_not(None), activity.kind.in_(TOUCH_KINDS)]
        return [sa.func.max(activity.done_at).label("last_touch_at")], touched

    numbers: list[Any] = [sa.null().label("open_deals"), sa.null().label("won_minor")]
    if viewer.may_read("deals:read"):
        deals = _per_client(viewer, Deal, ref, page, deal_numbers)
        joined = joined.outerjoin(deals, deals.c.client_id == page.c.id)
        numbers = [
            sa.func.coalesce(deals.c.open_deals, 0).label("open_deals"),
            sa.func.coalesce(deals.c.won_minor, 0).label("won_minor"),
        ]
    if not viewer.may_read("activities:read"):
        return joined, [*numbers, sa.null().label("last_touch_at")]
    touches = _per_client(viewer, Activity, ref, page, touch_numbers)
    return joined.outerjoin(touches, touches.c.client_id == page.c.id), [*numbers, touches.c.last_touch_at]


def page_statements(viewer: Viewer, export: Export, matching: Any, *, size: int, currency: str) -> tuple[Any, Any]:
    """The export's first page, and any next one: the `size` visible records after the key bound as `after_0`,
    `after_1`, with what their rows show. Built once per export (a statement per page would build thousands of
    expression objects per page, and keep them until the garbage collector runs)."""
    table = sa.inspect(export.model).local_table
    keys = [table.c.name_folded, table.c.id] if export.by_name else [table.c.id]
    visible = matching.where(FILTERS[export.model](viewer)).with_only_columns(*table.c)
    after = sa.tuple_(*(sa.bindparam(f"after_{i}", type_=k.type) for i, k in enumerate(keys)))
    beyond = sa.tuple_(*keys) > after if export.by_name else sa.tuple_(*keys) < after

    def page(stmt: Any) -> Any:
        stmt = stmt.order_by(*(keys if export.by_name else [k.desc() for k in keys])).limit(size)
        # A CTE: the card's subqueries read the page's ids from it, which PostgreSQL then computes once.
        rows = stmt.cte("page")
        joined, extra = _joined(viewer, export, rows, currency)
        order = [rows.c[k.name] if export.by_name else rows.c[k.name].desc() for k in keys]
        return sa.select(*rows.c, *extra).select_from(joined).order_by(*order)

    return page(visible), page(visible.where(beyond))


def _cells(
    export: Export, fields: list[CustomField], currency: str, now: datetime
) -> Callable[[sa.RowMapping], list[Any]]:
    """How a row of a page becomes the file's cells, in the order of the headers."""
    computed: dict[str, Callable[[sa.RowMapping], Any]] = {
        "amount": lambda r: money(r["amount_minor"], r["currency"]),
        "rotten": lambda r: r["rots_at"] is not None and r["rots_at"] <= now,
        "won_amount": lambda r: money(r["won_minor"], currency),
        "won_currency": lambda r: currency if r["won_minor"] is not None else None,
    }
    keys = [key for key, _, _ in export.headers]

    def cells(row: sa.RowMapping) -> list[Any]:
        values = [computed[key](row) if key in computed else row[key] for key in keys]
        custom = row["custom"] if fields else {}
        values += [_custom_value(f, custom.get(f.key)) for f in fields]
        return [*values, row["created_at"], row["updated_at"]]

    return cells


async def _rows(
    reader: async_sessionmaker[AsyncSession],
    export: Export,
    statements: tuple[Any, Any],
    cells: Callable[[sa.RowMapping], list[Any]],
    page_size: int,
) -> AsyncIterator[list[Any]]:
    """The export's rows, page after page, each page read through a server-side cursor: memory holds one page at
    most, however long the file."""
    first, following = statements
    after: dict[str, Any] | None = None
    async with reader() as session:
        while True:
            count = 0
            result = await (session.stream(first) if after is None else session.stream(following, after))
            async for row in result.mappings():
                count += 1
                key = (row["name_folded"], row["id"]) if export.by_name else (row["id"],)
                after = {f"after_{i}": value for i, value in enumerate(key)}
                yield cells(row)
            if count < page_size:
                return


async def _org_settings(session: AsyncSession, org_id: uuid.UUID) -> dict[str, Any]:
    found = await session.scalar(select(Organization.settings).where(col(Organization.id) == org_id))
    return dict(found or {})


def _today(settings: dict[str, Any]) -> date:
    try:
        zone = ZoneInfo(str(settings.get("time_zone", "UTC")))
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return utcnow().astimezone(zone).date()


async def prepare(
    *,
    session: AsyncSession,
    reader: async_sessionmaker[AsyncSession],
    viewer: Viewer,
    export: Export,
    filters: Any,
    language: Language,
    extension: str,
) -> ExportFile:
    """What the file needs before its first row (headers, custom fields, the organisation's currency), read in the
    request's session; its rows then come from `reader`'s session as the response is sent."""
    settings = await _org_settings(session, viewer.org_id)
    currency = str(settings.get("currency", "EUR"))
    fields = (
        await list_custom_fields(session=session, principal=viewer.principal, entity=export.custom_entity)
        if export.custom_entity
        else []
    )
    headers = [
        *(columns.title(h, language) for h in export.headers),
        *(f.label for f in fields),
        *(columns.title(h, language) for h in columns.TIMESTAMPS),
    ]
    english, spanish = columns.TITLES[export.entity]
    cells = _cells(export, fields, currency, utcnow())
    statements = page_statements(viewer, export, export.matching(viewer, filters), size=PAGE_SIZE, currency=currency)
    return ExportFile(
        headers=headers,
        rows=_rows(reader, export, statements, cells, PAGE_SIZE),
        sheet=english if language == "en" else spanish,
        filename=f"fieldbook-{export.entity}-{_today(settings).isoformat()}.{extension}",
    )
