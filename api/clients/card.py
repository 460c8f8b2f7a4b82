"""The client card: everything a rep needs before a call, in one response and a fixed number of SQL statements
whatever the client's size (Core rows, no ORM objects: this is the hottest read of the app)."""

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.activities import service as activities
from api.activities.models import TOUCH_KINDS, Activity
from api.activities.schemas import ActivityRead
from api.clients import completeness
from api.clients.models import ClientKind, Company, Contact
from api.clients.schemas import CompanyRead, ContactRead
from api.core import examples as ex
from api.core.errors import NotFound
from api.core.examples import example_of, examples
from api.core.pagination import Page
from api.core.types import utcnow
from api.deals import deals
from api.deals.models import Deal, DealStatus
from api.deals.schemas import DealRead
from api.feed import queries as feed
from api.feed.schemas import FeedItem, Only
from api.sharing.visibility import Viewer, activity_filter, contact_filter, deal_filter, visible

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


async def resolve(session: AsyncSession, viewer: Viewer, client_id: uuid.UUID) -> Company | Contact:
    """The company or contact with this id, if the viewer may see it."""
    company: Company | None = (
        await session.scalars(visible(viewer, Company).where(col(Company.id) == client_id))
    ).first()
    if company is not None:
        return company
    contact: Contact | None = (
        await session.scalars(visible(viewer, Contact).where(col(Contact.id) == client_id))
    ).first()
    if contact is None:
        raise NotFound("No such client.")
    return contact


def _about(client: Company | Contact, table: Any) -> sa.ColumnElement[bool]:
    column = table.c.company_id if isinstance(client, Company) else table.c.contact_id
    condition: sa.ColumnElement[bool] = column == client.id
    return condition


async def _contacts(session: AsyncSession, viewer: Viewer, client: Company | Contact) -> tuple[list[ContactRead], int]:
    if not isinstance(client, Company):
        return [], 0
    table = Contact.__table__  # type: ignore[attr-defined]
    rows = (
        await session.execute(
            sa.select(*table.c, sa.func.count().over().label("total"))
            .where(
                table.c.org_id == viewer.org_id,
                table.c.company_id == client.id,
                table.c.deleted_at.is_(None),
                contact_filter(viewer, table.c),
            )
            .order_by(table.c.name_folded, table.c.id)
            .limit(CONTACTS_SHOWN)
        )
    ).all()
    return [ContactRead.model_validate(dict(r._mapping)) for r in rows], (rows[0].total if rows else 0)


async def _deals(
    session: AsyncSession, viewer: Viewer, client: Company | Contact, now: datetime
) -> tuple[dict[str, list[DealRead]], DealCounts, dict[str, int]]:
    table = Deal.__table__  # type: ignore[attr-defined]
    scope = sa.and_(
        table.c.org_id == viewer.org_id,
        table.c.deleted_at.is_(None),
        _about(client, table),
        deal_filter(viewer, table.c),
    )
    # Most recent first in each list: open by creation, won and lost by when they closed.
    recency = sa.func.coalesce(table.c.won_at, table.c.lost_at, table.c.created_at)
    rank = sa.func.row_number().over(partition_by=table.c.status, order_by=(recency.desc(), table.c.id.desc()))
    ranked = sa.select(*table.c, rank.label("rank")).where(scope).subquery()
    columns = [ranked.c[c.name] for c in table.c]
    rows = await session.execute(
        sa.select(*columns).where(ranked.c.rank <= DEALS_SHOWN).order_by(ranked.c.status, ranked.c.rank)
    )
    by_status: dict[str, list[DealRead]] = {s.value: [] for s in DealStatus}
    for row in rows:
        by_status[row.status].append(deals.present_row(row, now))
    totals = await session.execute(
        sa.select(table.c.status, table.c.currency, sa.func.count(), sa.func.sum(table.c.amount_minor))
        .where(scope)
        .group_by(table.c.status, table.c.currency)
    )
    counts = DealCounts()
    lifetime: dict[str, int] = {}
    for row in totals:
        status, currency, count, amount = str(row[0]), str(row[1]), int(row[2]), int(row[3] or 0)
        setattr(counts, status, getattr(counts, status) + count)
        if status == DealStatus.won.value:
            lifetime[currency] = amount
    return by_status, counts, lifetime


async def _touches(
    session: AsyncSession, viewer: Viewer, client: Company | Contact, now: datetime
) -> tuple[ActivityRead | None, ActivityRead | None, list[ActivityRead]]:
    table = Activity.__table__  # type: ignore[attr-defined]
    scope = sa.and_(
        table.c.org_id == viewer.org_id,
        table.c.deleted_at.is_(None),
        _about(client, table),
        activity_filter(viewer, table.c),
    )
    last = (
        await session.execute(
            sa.select(*table.c)
            .where(scope, table.c.done_at.is_not(None), table.c.kind.in_(TOUCH_KINDS))
            .order_by(table.c.done_at.desc())
            .limit(1)
        )
    ).first()
    planned = (
        await session.execute(
            sa.select(*table.c)
            .where(scope, table.c.done_at.is_(None))
            .order_by(table.c.due_at, table.c.id)
            .limit(TASKS_SHOWN)
        )
    ).all()
    upcoming = (
        await session.execute(
            sa.select(*table.c)
            .where(scope, table.c.done_at.is_(None), table.c.due_at >= now)
            .order_by(table.c.due_at, table.c.id)
            .limit(1)
        )
    ).first()
    return (
        activities.present_row(last, now) if last else None,
        activities.present_row(upcoming, now) if upcoming else None,
        [activities.present_row(r, now) for r in planned],
    )


async def _completeness(session: AsyncSession, client: Company | Contact) -> Completeness:
    kind = ClientKind.company if isinstance(client, Company) else ClientKind.contact
    parts = completeness.flags(kind, await completeness.custom_keys(session, client.org_id, kind))
    table = sa.inspect(type(client)).local_table
    row = (await session.execute(sa.select(*(flag for _, flag in parts)).where(table.c.id == client.id))).one()
    missing = [name for (name, _), filled in zip(parts, row, strict=True) if not filled]
    return Completeness(score=round(100 * (len(parts) - len(missing)) / len(parts)), missing=missing)


async def timeline(
    session: AsyncSession,
    viewer: Viewer,
    client: Company | Contact,
    *,
    only: Only | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[FeedItem], str | None]:
    event = feed.event
    where = [event.company_id == client.id if isinstance(client, Company) else event.contact_id == client.id]
    # An API key sees the kinds of record its scopes name, in the timeline as everywhere else.
    if not viewer.may_read("deals:read"):
        where.append(event.deal_id.is_(None))
    if not viewer.may_read("activities:read"):
        where.append(event.activity_id.is_(None))
    return await feed.page(
        session, viewer, scope=f"timeline:{client.id}", where=where, only=only, limit=limit, cursor=cursor
    )


async def card(*, session: AsyncSession, viewer: Viewer, client_id: uuid.UUID) -> ClientCard:
    client = await resolve(session, viewer, client_id)
    now = utcnow()
    contacts, contact_count = await _contacts(session, viewer, client)
    by_status: dict[str, list[DealRead]] = {s.value: [] for s in DealStatus}
    counts, lifetime = DealCounts(), dict[str, int]()
    if viewer.may_read("deals:read"):
        by_status, counts, lifetime = await _deals(session, viewer, client, now)
    last_touch = next_touch = None
    open_tasks: list[ActivityRead] = []
    if viewer.may_read("activities:read"):
        last_touch, next_touch, open_tasks = await _touches(session, viewer, client, now)
    items, next_cursor = await timeline(session, viewer, client, only=None, limit=TIMELINE_PAGE, cursor=None)
    company: CompanyRead | None
    contact: ContactRead | None
    if isinstance(client, Company):
        company, contact = CompanyRead.model_validate(client), None
    else:
        contact = ContactRead.model_validate(client)
        stmt = visible(viewer, Company).where(col(Company.id) == client.company_id)
        parent = (await session.scalars(stmt)).first() if client.company_id else None
        company = CompanyRead.model_validate(parent) if parent else None
    return ClientCard(
        kind=ClientKind.company if isinstance(client, Company) else ClientKind.contact,
        company=company,
        contact=contact,
        contacts=contacts,
        contact_count=contact_count,
        open_deals=by_status[DealStatus.open.value],
        won_deals=by_status[DealStatus.won.value],
        lost_deals=by_status[DealStatus.lost.value],
        deal_counts=counts,
        lifetime_value=lifetime,
        last_touch=last_touch,
        next_touch=next_touch,
        open_tasks=open_tasks,
        completeness=await _completeness(session, client),
        timeline=Page(items=items, next_cursor=next_cursor),
    )
