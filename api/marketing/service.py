"""Marketing's read of the client base: client cards narrowed by segment filters, a page at a time or streamed as a
file, and the saved segments that name those filters.

A card is a company with its contacts, or a contact without a (live) company. Contacts who agreed to no marketing
never leave through here: not in a list, not in a file, not as a lone contact's card; and a person's e-mails go out
only with their e-mail consent, their phones only with their phone consent.

Reads are Core rows, in a fixed number of statements per page: the page of cards (filters as correlated EXISTS and
scalar subqueries, keyset on the name), then one grouped query for the page's deal numbers and one for its people.
"""

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic_core
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from api.auth.models import Organization
from api.auth.principals import Principal
from api.clients.models import ClientKind, Company, Contact
from api.core import changes
from api.core.errors import Forbidden, ValidationFailed
from api.core.etags import ensure_version
from api.core.models import get_record, live
from api.core.pagination import keyset_page, keyset_rows
from api.core.schemas import changed_fields
from api.core.types import json_array_has, utcnow
from api.deals.models import Deal, DealStatus
from api.exports.service import money
from api.marketing.models import Segment
from api.marketing.schemas import (
    CARD_FIELDS,
    DEAL_FILTERS,
    CardFilters,
    SegmentCreate,
    SegmentRead,
    SegmentUpdate,
)
from api.sharing.visibility import Viewer, company_filter, contact_filter, deal_filter

COMPANY, CONTACT, DEAL = (sa.inspect(m).local_table for m in (Company, Contact, Deal))
# People shown per card in a list page (the card says how many it has; a file holds them all).
LIST_CONTACTS = 50
# Cards read per statement by an export.
EXPORT_PAGE = 500
NDJSON_CHUNK = 64 * 1024
SCOPE = "client-cards"
DEAL_FIELDS = frozenset({"lifetime_value_minor", "last_purchase_at", "open_deals", "won_deals"})
PEOPLE_FIELDS = frozenset({"contacts", "contact_count"})

# One row per person, as a mail tool imports it: the card's facts repeated on each of its people's rows.
CSV_COLUMNS = (
    "card_id",
    "card_kind",
    "card_name",
    "industry",
    "segment",
    "tags",
    "domain",
    "city",
    "country",
    "lifetime_value",
    "currency",
    "last_purchase_at",
    "open_deals",
    "contact_id",
    "contact_name",
    "title",
    "email",
    "phone",
    "emails",
    "phones",
    "email_consent",
    "phone_consent",
)

Where = Callable[[str], dict[str, Any]]


def in_query(name: str) -> dict[str, Any]:
    return {"in": "query", "parameter": name}


def in_body(name: str) -> dict[str, Any]:
    return {"pointer": f"#/filters/{name}"}


# Filters


def check_filters(filters: CardFilters, where: Where) -> None:
    """Ranges the right way round; an error names the upper bound, `where` says how (query parameter or body)."""
    bounds = (("lifetime_value_min", "lifetime_value_max"), ("last_purchase_from", "last_purchase_to"))
    for low, high in bounds:
        low_value, high_value = getattr(filters, low), getattr(filters, high)
        if low_value is not None and high_value is not None and low_value > high_value:
            detail = f"{high} is below {low}"
            raise ValidationFailed(detail, errors=[{**where(high), "detail": detail}])


def parse_fields(value: str | None, allowed: tuple[str, ...] = CARD_FIELDS) -> tuple[str, ...]:
    """`fields=a,b`: the card fields to send (with `id` always); all of them without the parameter."""
    if value is None:
        return allowed
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if not names or unknown:
        detail = (
            f"Unknown field(s): {', '.join(unknown)}." if unknown else "Name at least one field."
        ) + f" Fields: {', '.join(allowed)}."
        raise ValidationFailed(detail, errors=[{**in_query("fields"), "detail": detail}])
    wanted = {"id", *names}
    return tuple(n for n in allowed if n in wanted)


async def resolve_filters(
    *, session: AsyncSession, viewer: Viewer, segment_id: uuid.UUID | None, given: dict[str, Any]
) -> CardFilters:
    """The filters a request asks for: a saved segment's (404 for one the organisation has not), with the query's
    own filters replacing the segment's of the same name."""
    saved: dict[str, Any] = {}
    if segment_id is not None:
        saved = dict((await get_record(session, Segment, viewer.org_id, segment_id, "segment")).filters)
    filters = CardFilters.model_validate({**saved, **given})
    check_filters(filters, in_query)
    if not viewer.may_read("deals:read"):
        for name in DEAL_FILTERS:
            if getattr(filters, name) is not None:
                detail = f"Filtering on {name} needs the `deals:read` scope."
                raise Forbidden(detail, errors=[{**in_query(name), "detail": detail}])
    return filters


@dataclass(frozen=True)
class Context:
    """What a read needs besides the filters: the organisation's currency (lifetime values are in it) and time zone
    (days of purchase are its days), and whether the caller may see deal numbers."""

    currency: str
    zone: ZoneInfo
    deals: bool


async def context(session: AsyncSession, viewer: Viewer) -> Context:
    settings = await session.scalar(select(Organization.settings).where(col(Organization.id) == viewer.org_id))
    settings = dict(settings or {})
    try:
        zone = ZoneInfo(str(settings.get("time_zone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return Context(str(settings.get("currency") or "EUR"), zone, viewer.may_read("deals:read"))


def _consented(contact: Any, consent: str | None) -> sa.ColumnElement[bool]:
    """A contact who agreed to marketing by the channel (`any` or none: by either)."""
    if consent == "email":
        return contact.email_consent.is_(True)  # type: ignore[no-any-return]
    if consent == "phone":
        return contact.phone_consent.is_(True)  # type: ignore[no-any-return]
    return sa.or_(contact.email_consent.is_(True), contact.phone_consent.is_(True))


def _midnight(day: Any, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _deal_conditions(
    viewer: Viewer, filters: CardFilters, ctx: Context, ref: str, card_id: Any
) -> list[sa.ColumnElement[bool]]:
    """The deal filters on a card, as correlated subqueries over its deals (`ref`: the column pointing at it)."""

    def deals(name: str) -> tuple[Any, list[Any]]:
        deal = DEAL.alias(name)
        scope = [deal.c.org_id == viewer.org_id, deal.c.deleted_at.is_(None), deal.c[ref] == card_id]
        return deal, [*scope, deal_filter(viewer, deal.c)]

    out: list[sa.ColumnElement[bool]] = []
    if filters.has_open_deal is not None:
        deal, scope = deals("open_deal")
        found = sa.select(sa.literal(1)).select_from(deal).where(*scope, deal.c.status == DealStatus.open.value)
        out.append(found.exists() if filters.has_open_deal else ~found.exists())
    if filters.lifetime_value_min is not None or filters.lifetime_value_max is not None:
        deal, scope = deals("won_deal")
        won = sa.and_(deal.c.status == DealStatus.won.value, deal.c.currency == ctx.currency)
        total = sa.func.coalesce(sa.select(sa.func.sum(deal.c.amount_minor)).where(*scope, won).scalar_subquery(), 0)
        if filters.lifetime_value_min is not None:
            out.append(total >= filters.lifetime_value_min)
        if filters.lifetime_value_max is not None:
            out.append(total <= filters.lifetime_value_max)
    if filters.last_purchase_from is not None or filters.last_purchase_to is not None:
        deal, scope = deals("last_won_deal")
        last = (
            sa.select(sa.func.max(deal.c.won_at)).where(*scope, deal.c.status == DealStatus.won.value).scalar_subquery()
        )
        if filters.last_purchase_from is not None:
            out.append(last >= _midnight(filters.last_purchase_from, ctx.zone))
        if filters.last_purchase_to is not None:
            out.append(last < _midnight(filters.last_purchase_to + timedelta(days=1), ctx.zone))
    return out


def _common(table: Any, filters: CardFilters) -> list[sa.ColumnElement[bool]]:
    out: list[sa.ColumnElement[bool]] = [json_array_has(table.c.tags, t) for t in filters.tag or ()]
    if filters.any_tag:
        out.append(sa.or_(*(json_array_has(table.c.tags, t) for t in filters.any_tag)))
    if filters.segment:
        out.append(table.c.segment.in_(filters.segment))
    return out


def _companies(viewer: Viewer, filters: CardFilters, ctx: Context) -> sa.Select[Any]:
    t = COMPANY
    where = [t.c.org_id == viewer.org_id, t.c.deleted_at.is_(None), company_filter(viewer, t.c)]
    if filters.kind not in (None, ClientKind.company):
        where.append(sa.false())
    if filters.industry:
        where.append(t.c.industry.in_(filters.industry))
    if filters.consent is not None:
        person = CONTACT.alias("consenting_contact")
        where.append(
            sa.select(sa.literal(1))
            .select_from(person)
            .where(
                person.c.org_id == viewer.org_id,
                person.c.company_id == t.c.id,
                person.c.deleted_at.is_(None),
                contact_filter(viewer, person.c),
                _consented(person.c, filters.consent),
            )
            .exists()
        )
    where += _common(t, filters) + _deal_conditions(viewer, filters, ctx, "company_id", t.c.id)
    return sa.select(
        t.c.id,
        sa.literal(ClientKind.company.value, sa.String).label("kind"),
        t.c.name,
        t.c.name_folded,
        t.c.domain,
        t.c.industry,
        t.c.size,
        t.c.phone,
        t.c.city,
        t.c.country,
        t.c.segment,
        t.c.tags,
        t.c.source,
        t.c.owner_id,
        t.c.created_at,
        t.c.updated_at,
    ).where(*where)


def _lone_contacts(viewer: Viewer, filters: CardFilters, ctx: Context) -> sa.Select[Any]:
    """Contacts of no live company, who agreed to marketing: each is a card of its own."""
    t = CONTACT
    company = COMPANY.alias("contact_company")
    has_company = (
        sa.select(sa.literal(1))
        .select_from(company)
        .where(company.c.org_id == viewer.org_id, company.c.id == t.c.company_id, company.c.deleted_at.is_(None))
        .exists()
    )
    where = [
        t.c.org_id == viewer.org_id,
        t.c.deleted_at.is_(None),
        contact_filter(viewer, t.c),
        sa.or_(t.c.company_id.is_(None), ~has_company),
        _consented(t.c, filters.consent),
    ]
    if filters.kind not in (None, ClientKind.contact) or filters.industry:
        where.append(sa.false())
    where += _common(t, filters) + _deal_conditions(viewer, filters, ctx, "contact_id", t.c.id)
    return sa.select(
        t.c.id,
        sa.literal(ClientKind.contact.value, sa.String).label("kind"),
        t.c.name,
        t.c.name_folded,
        sa.null().label("domain"),
        sa.null().label("industry"),
        sa.null().label("size"),
        sa.null().label("phone"),
        sa.null().label("city"),
        sa.null().label("country"),
        t.c.segment,
        t.c.tags,
        t.c.source,
        t.c.owner_id,
        t.c.created_at,
        t.c.updated_at,
    ).where(*where)


def cards_statement(viewer: Viewer, filters: CardFilters, ctx: Context) -> tuple[sa.Select[Any], list[Any]]:
    """The cards the filters select (unordered) and their keyset: by folded name, then id."""
    card = sa.union_all(_companies(viewer, filters, ctx), _lone_contacts(viewer, filters, ctx)).subquery("card")
    return sa.select(card), [card.c.name_folded, card.c.id]


# What a page of cards shows besides its own row


async def _numbers(
    session: AsyncSession, viewer: Viewer, ctx: Context, rows: list[Any]
) -> dict[uuid.UUID, dict[str, Any]]:
    """Per card of the page: open and won deals, lifetime value and last purchase (one grouped query per kind)."""
    found: dict[uuid.UUID, dict[str, Any]] = {}
    for kind, ref in ((ClientKind.company.value, "company_id"), (ClientKind.contact.value, "contact_id")):
        ids = [r.id for r in rows if r.kind == kind]
        if not ids:
            continue
        d = DEAL
        won = d.c.status == DealStatus.won.value
        stmt = (
            sa.select(
                d.c[ref].label("card_id"),
                sa.func.sum(sa.case((d.c.status == DealStatus.open.value, 1), else_=0)).label("open_deals"),
                sa.func.sum(sa.case((won, 1), else_=0)).label("won_deals"),
                sa.func.sum(sa.case((sa.and_(won, d.c.currency == ctx.currency), d.c.amount_minor), else_=0)).label(
                    "lifetime_value_minor"
                ),
                sa.func.max(sa.case((won, d.c.won_at))).label("last_purchase_at"),
            )
            .where(d.c.org_id == viewer.org_id, d.c.deleted_at.is_(None), d.c[ref].in_(ids), deal_filter(viewer, d.c))
            .group_by(d.c[ref])
        )
        for row in await session.execute(stmt):
            found[row.card_id] = {
                "lifetime_value_minor": int(row.lifetime_value_minor or 0),
                "last_purchase_at": row.last_purchase_at,
                "open_deals": int(row.open_deals or 0),
                "won_deals": int(row.won_deals or 0),
            }
    return found


def _people(viewer: Viewer, filters: CardFilters, rows: list[Any]) -> tuple[list[Any], list[Any], Any]:
    """The consenting contacts of the page's cards: their columns, conditions, and the card each belongs to."""
    t = CONTACT
    companies = [r.id for r in rows if r.kind == ClientKind.company.value]
    lone = [r.id for r in rows if r.kind == ClientKind.contact.value]
    card_id = sa.case((t.c.id.in_(lone), t.c.id), else_=t.c.company_id)
    columns = [
        t.c.id,
        t.c.name,
        t.c.title,
        t.c.emails,
        t.c.phones,
        t.c.email_consent,
        t.c.phone_consent,
        card_id.label("card_id"),
    ]
    where = [
        t.c.org_id == viewer.org_id,
        t.c.deleted_at.is_(None),
        contact_filter(viewer, t.c),
        _consented(t.c, filters.consent),
        sa.or_(t.c.company_id.in_(companies), t.c.id.in_(lone)),
    ]
    return columns, where, card_id


def _person(row: Any) -> dict[str, Any]:
    """A contact as marketing may have it: a channel's handles only with that channel's consent."""
    return {
        "id": row.id,
        "name": row.name,
        "title": row.title,
        "emails": list(row.emails or ()) if row.email_consent else [],
        "phones": list(row.phones or ()) if row.phone_consent else [],
        "email_consent": bool(row.email_consent),
        "phone_consent": bool(row.phone_consent),
    }


async def _listed_people(
    session: AsyncSession, viewer: Viewer, filters: CardFilters, rows: list[Any]
) -> dict[uuid.UUID, tuple[list[dict[str, Any]], int]]:
    """Per card of a list page: its first LIST_CONTACTS people by name, and how many it has."""
    if not rows:
        return {}
    columns, where, card_id = _people(viewer, filters, rows)
    t = CONTACT
    ranked = (
        sa.select(
            *columns,
            sa.func.row_number().over(partition_by=card_id, order_by=(t.c.name_folded, t.c.id)).label("rank"),
            sa.func.count().over(partition_by=card_id).label("total"),
        )
        .where(*where)
        .subquery("ranked")
    )
    stmt = sa.select(ranked).where(ranked.c.rank <= LIST_CONTACTS).order_by(ranked.c.card_id, ranked.c.rank)
    found: dict[uuid.UUID, tuple[list[dict[str, Any]], int]] = {}
    for row in await session.execute(stmt):
        people, _ = found.setdefault(row.card_id, ([], int(row.total)))
        people.append(_person(row))
    return found


def _card(
    row: Any,
    numbers: dict[str, Any] | None,
    people: list[dict[str, Any]],
    count: int,
    ctx: Context,
) -> dict[str, Any]:
    card = {
        "id": row.id,
        "kind": row.kind,
        "name": row.name,
        "domain": row.domain,
        "industry": row.industry,
        "size": row.size,
        "phone": row.phone,
        "city": row.city,
        "country": row.country,
        "segment": row.segment,
        "tags": list(row.tags or ()),
        "source": row.source,
        "owner_id": row.owner_id,
        "currency": ctx.currency,
        "lifetime_value_minor": None,
        "last_purchase_at": None,
        "open_deals": None,
        "won_deals": None,
        "contacts": people,
        "contact_count": count,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }
    if ctx.deals:
        card.update(numbers or {"lifetime_value_minor": 0, "open_deals": 0, "won_deals": 0})
    return card


def _project(card: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return card if len(fields) == len(CARD_FIELDS) else {name: card[name] for name in fields}


async def list_cards(
    *,
    session: AsyncSession,
    viewer: Viewer,
    filters: CardFilters,
    fields: tuple[str, ...],
    limit: int,
    cursor: str | None,
) -> bytes:
    """A page of cards as JSON (`ClientCardPage`), written here: plain rows in, no model per card."""
    ctx = await context(session, viewer)
    stmt, keys = cards_statement(viewer, filters, ctx)
    rows, next_cursor = await keyset_rows(
        session,
        stmt,
        scope=SCOPE,
        keys=keys,
        key_of=lambda r: (r.name_folded, r.id),
        limit=limit,
        cursor=cursor,
    )
    wanted = set(fields)
    numbers = await _numbers(session, viewer, ctx, rows) if ctx.deals and wanted & DEAL_FIELDS else {}
    people = await _listed_people(session, viewer, filters, rows) if wanted & PEOPLE_FIELDS else {}
    items = [_project(_card(r, numbers.get(r.id), *people.get(r.id, ([], 0)), ctx), fields) for r in rows]
    return pydantic_core.to_json({"items": items, "next_cursor": next_cursor})


# Exports


async def _every_card(
    reader: async_sessionmaker[AsyncSession], viewer: Viewer, filters: CardFilters, ctx: Context
) -> AsyncIterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Every card the filters select, in the list's order, with all its people: pages of EXPORT_PAGE cards, each
    page's people streamed in the same order (memory: a page of cards and one card's people)."""
    stmt, keys = cards_statement(viewer, filters, ctx)
    cursor: str | None = None
    async with reader() as session:
        while True:
            rows, cursor = await keyset_rows(
                session,
                stmt,
                scope=SCOPE,
                keys=keys,
                key_of=lambda r: (r.name_folded, r.id),
                limit=EXPORT_PAGE,
                cursor=cursor,
            )
            numbers = await _numbers(session, viewer, ctx, rows) if ctx.deals and rows else {}
            async for card, people in _with_people(session, viewer, filters, ctx, rows, numbers):
                yield card, people
            if cursor is None:
                return


async def _with_people(
    session: AsyncSession,
    viewer: Viewer,
    filters: CardFilters,
    ctx: Context,
    rows: list[Any],
    numbers: dict[uuid.UUID, dict[str, Any]],
) -> AsyncIterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    if not rows:
        return
    columns, where, card_id = _people(viewer, filters, rows)
    t, company = CONTACT, COMPANY.alias("people_company")
    # The people in the cards' order (card name, card id), then by their own name.
    lone = [r.id for r in rows if r.kind == ClientKind.contact.value]
    card_name = sa.case((t.c.id.in_(lone), t.c.name_folded), else_=company.c.name_folded)
    stmt = (
        sa.select(*columns)
        .select_from(t.outerjoin(company, company.c.id == t.c.company_id))
        .where(*where)
        .order_by(card_name, card_id, t.c.name_folded, t.c.id)
    )
    result = await session.stream(stmt)
    try:
        pending = await anext(result, None)
        for row in rows:
            people: list[dict[str, Any]] = []
            while pending is not None and pending.card_id == row.id:
                people.append(_person(pending))
                pending = await anext(result, None)
            yield _card(row, numbers.get(row.id), people, len(people), ctx), people
    finally:
        await result.close()


async def ndjson(
    reader: async_sessionmaker[AsyncSession],
    viewer: Viewer,
    filters: CardFilters,
    ctx: Context,
    fields: tuple[str, ...],
) -> AsyncIterator[bytes]:
    """One card per line, as the list shows it (every contact, not the first 50), in ~64 KiB pieces."""
    buffer = bytearray()
    async for card, _ in _every_card(reader, viewer, filters, ctx):
        buffer += pydantic_core.to_json(_project(card, fields)) + b"\n"
        if len(buffer) >= NDJSON_CHUNK:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


async def csv_rows(
    reader: async_sessionmaker[AsyncSession], viewer: Viewer, filters: CardFilters, ctx: Context
) -> AsyncIterator[list[Any]]:
    """A row per person (CSV_COLUMNS); a card without consenting contacts has none."""
    async for card, people in _every_card(reader, viewer, filters, ctx):
        value = card["lifetime_value_minor"]
        facts = [
            card["id"],
            card["kind"],
            card["name"],
            card["industry"],
            card["segment"],
            card["tags"],
            card["domain"],
            card["city"],
            card["country"],
            money(value, ctx.currency) if value is not None else None,
            ctx.currency,
            card["last_purchase_at"],
            card["open_deals"],
        ]
        for person in people:
            emails, phones = person["emails"], person["phones"]
            yield [
                *facts,
                person["id"],
                person["name"],
                person["title"],
                emails[0] if emails else None,
                phones[0] if phones else None,
                emails,
                phones,
                person["email_consent"],
                person["phone_consent"],
            ]


def today(ctx: Context) -> str:
    return utcnow().astimezone(ctx.zone).date().isoformat()


# Saved segments


def _stored(filters: CardFilters) -> dict[str, Any]:
    return filters.model_dump(mode="json", exclude_none=True)


async def list_segments(
    *, session: AsyncSession, principal: Principal, limit: int, cursor: str | None
) -> tuple[list[Segment], str | None]:
    return await keyset_page(
        session,
        live(Segment, principal.org_id),
        scope="segments",
        keys=[col(Segment.name), col(Segment.id)],
        key_of=lambda s: (s.name, s.id),
        limit=limit,
        cursor=cursor,
    )


async def get_segment(*, session: AsyncSession, principal: Principal, segment_id: uuid.UUID) -> Segment:
    return await get_record(session, Segment, principal.org_id, segment_id, "segment")


async def create_segment(*, session: AsyncSession, principal: Principal, data: SegmentCreate) -> Segment:
    check_filters(data.filters, in_body)
    segment = Segment(
        org_id=principal.org_id,
        name=data.name,
        description=data.description,
        filters=_stored(data.filters),
        created_by_user_id=principal.user_id,
        created_by_key_id=principal.id if principal.kind == "api_key" else None,
    )
    await changes.create(session, principal, "segment", segment)
    return segment


async def update_segment(
    *,
    session: AsyncSession,
    principal: Principal,
    segment_id: uuid.UUID,
    data: SegmentUpdate,
    expected_version: int | None,
) -> Segment:
    segment = await get_segment(session=session, principal=principal, segment_id=segment_id)
    ensure_version(segment, expected_version, SegmentRead.model_validate)
    fields = changed_fields(data)
    if data.filters is not None:
        check_filters(data.filters, in_body)
        fields["filters"] = _stored(data.filters)
    await changes.update(session, principal, "segment", segment, fields)
    return segment


async def delete_segment(
    *, session: AsyncSession, principal: Principal, segment_id: uuid.UUID, expected_version: int | None
) -> None:
    segment = await get_segment(session=session, principal=principal, segment_id=segment_id)
    ensure_version(segment, expected_version, SegmentRead.model_validate)
    await changes.delete(session, principal, "segment", segment)
