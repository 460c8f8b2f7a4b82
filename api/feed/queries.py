"""Reading the feed: one Core query (no ORM objects) joining each event to the names of what it is about,
filtered by what the reader may see, newest first with a keyset cursor."""

import functools
import uuid
from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.activities.models import Activity, ActivityKind, CallDirection, CallOutcome
from api.auth.models import Role, User
from api.auth.service import team_subtree
from api.clients.models import Company, Contact
from api.core.pagination import Templates, after_cursor, cut, keyset_params, ordered, scan
from api.deals.models import Deal, DealStatus
from api.feed.models import FeedEvent, FeedKind
from api.feed.schemas import ONLY_KINDS, ActivityRef, ClientRef, DealRef, FeedItem, Only
from api.sharing import visibility
from api.sharing.visibility import (
    Viewer,
    activity_filter,
    company_filter,
    contact_filter,
    deal_filter,
    feed_filter,
)

event = FeedEvent.__table__.c  # type: ignore[attr-defined]
company = Company.__table__.alias("feed_company")  # type: ignore[attr-defined]
contact = Contact.__table__.alias("feed_contact")  # type: ignore[attr-defined]
deal = Deal.__table__.alias("feed_deal")  # type: ignore[attr-defined]
activity = Activity.__table__.alias("feed_activity")  # type: ignore[attr-defined]

ACTIVITY_COLUMNS = ("kind", "subject", "body", "direction", "outcome", "duration_seconds", "due_at", "done_at")


def _shown(table: Any, ref: Any, condition: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
    return sa.and_(table.c.id == ref, table.c.deleted_at.is_(None), condition)


@functools.lru_cache(maxsize=1024)
def _base(viewer: Viewer) -> sa.Select[Any]:
    # Built once per viewer (a pure function of it): the joined visibility conditions are a large expression tree.
    return (
        sa.select(
            event.id,
            event.kind,
            event.at,
            event.actor_id,
            event.user_id,
            event.data,
            company.c.id.label("company_id"),
            company.c.name.label("company_name"),
            contact.c.id.label("contact_id"),
            contact.c.name.label("contact_name"),
            deal.c.id.label("deal_id"),
            deal.c.title.label("deal_title"),
            deal.c.status.label("deal_status"),
            deal.c.amount_minor.label("deal_amount_minor"),
            deal.c.currency.label("deal_currency"),
            activity.c.id.label("activity_id"),
            *(activity.c[name].label(f"activity_{name}") for name in ACTIVITY_COLUMNS),
        )
        .select_from(FeedEvent.__table__)  # type: ignore[attr-defined]
        # What the item mentions is shown only as far as the reader may see it (a company moved to another team
        # stays out of the reader's view even in old entries).
        .outerjoin(company, _shown(company, event.company_id, company_filter(viewer, company.c)))
        .outerjoin(contact, _shown(contact, event.contact_id, contact_filter(viewer, contact.c)))
        .outerjoin(deal, _shown(deal, event.deal_id, deal_filter(viewer, deal.c)))
        # A note that mentions the reader is shown to them, whoever's client it is about.
        .outerjoin(
            activity,
            _shown(
                activity,
                event.activity_id,
                sa.or_(activity_filter(viewer, activity.c), event.user_id == viewer.user_id),
            ),
        )
        .where(
            event.org_id == viewer.org_id,
            feed_filter(viewer, event),
            # What a deleted (or hidden) deal or activity did leaves the feed with it.
            sa.or_(event.deal_id.is_(None), deal.c.id.is_not(None)),
            sa.or_(event.activity_id.is_(None), activity.c.id.is_not(None)),
        )
    )


E = TypeVar("E", bound=Enum)


def _optional(kind: type[E], value: Any) -> E | None:
    return None if value is None else kind(value)


def _item(row: sa.Row[Any]) -> FeedItem:
    # Built without validation (`model_construct`): the values are the database's, of the schema's types once the
    # enums are made, and validating every item's four models was a tenth of a card's time.
    r = row._mapping
    company = ClientRef.model_construct(id=r["company_id"], name=r["company_name"]) if r["company_id"] else None
    contact = ClientRef.model_construct(id=r["contact_id"], name=r["contact_name"]) if r["contact_id"] else None
    deal = (
        DealRef.model_construct(
            id=r["deal_id"],
            title=r["deal_title"],
            status=DealStatus(r["deal_status"]),
            amount_minor=r["deal_amount_minor"],
            currency=r["deal_currency"],
        )
        if r["deal_id"]
        else None
    )
    activity = None
    if r["activity_id"]:
        fields = {n: r[f"activity_{n}"] for n in ACTIVITY_COLUMNS}
        fields |= {
            "kind": ActivityKind(fields["kind"]),
            "direction": _optional(CallDirection, fields["direction"]),
            "outcome": _optional(CallOutcome, fields["outcome"]),
        }
        activity = ActivityRef.model_construct(id=r["activity_id"], **fields)
    return FeedItem.model_construct(
        id=r["id"],
        kind=FeedKind(r["kind"]),
        at=r["at"],
        actor_id=r["actor_id"],
        user_id=r["user_id"],
        data=r["data"] or {},
        company=company,
        contact=contact,
        deal=deal,
        activity=activity,
    )


# A page's statements, per viewer and kind of page: built once, run with the page's values bound.
_pages = Templates()
# What a page is about (a timeline's client or deal), bound per request.
SUBJECT = sa.bindparam("feed_subject", type_=sa.Uuid)
KEYS = (event.at, event.id)


async def page(
    session: AsyncSession,
    viewer: Viewer,
    *,
    scope: str,
    shape: str,
    where: Callable[[], list[sa.ColumnElement[bool]]],
    subject: uuid.UUID | None = None,
    only: Only | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[FeedItem], str | None]:
    """A page of the events that pass `where` (conditions on `event`, comparing with `SUBJECT` for `subject`), newest
    first. `shape` names the page's kind (the same conditions, whatever `subject`): its statements are built once."""

    def conditions() -> list[sa.ColumnElement[bool]]:
        kinds = [event.kind.in_([k.value for k in ONLY_KINDS[only]])] if only is not None else []
        return [*where(), *kinds]

    after = after_cursor(scope, cursor, KEYS)
    values = {"feed_subject": subject, **keyset_params(after=after)}
    until = None
    if not viewer.everything:
        # Where the page stops looking for what the viewer may see.
        window = visibility.SCAN_WINDOW
        stmt = _pages.get(
            (viewer, shape, only, "scan", after is not None, window),
            lambda: scan(
                sa.select(event.id).where(event.org_id == viewer.org_id, *conditions()),
                KEYS,
                after=after is not None,
                size=window,
                descending=True,
            ),
        )
        row = (await session.execute(stmt, values)).first()
        until = None if row is None else tuple(row)
    stmt = _pages.get(
        (viewer, shape, only, "page", after is not None, until is not None),
        lambda: ordered(
            _base(viewer).where(*conditions()), KEYS, after=after is not None, until=until is not None, descending=True
        ),
    )
    rows = (await session.execute(stmt, {**values, **keyset_params(until=until, limit=limit)})).all()
    shown, next_cursor = cut(list(rows), scope, lambda r: (r.at, r.id), limit, until)
    return [_item(r) for r in shown], next_cursor


async def by_ids(session: AsyncSession, viewer: Viewer, ids: list[uuid.UUID]) -> list[FeedItem]:
    """The events among `ids` the viewer may see (the live stream's fan-out), oldest first."""
    rows = await session.execute(_base(viewer).where(event.id.in_(ids)).order_by(event.at, event.id))
    return [_item(r) for r in rows]


async def oldest_first(session: AsyncSession, viewer: Viewer, deal_id: uuid.UUID, limit: int) -> list[FeedItem]:
    """A deal's events the viewer may see, from its beginning: a story is read from the start."""
    rows = await session.execute(
        _base(viewer).where(event.deal_id == deal_id).order_by(event.at, event.id).limit(limit)
    )
    return [_item(r) for r in rows]


def team_actors(viewer: Viewer) -> sa.ColumnElement[bool]:
    """Events whose actor is in the viewer's team (a manager's: their subtree)."""
    mine: sa.ColumnElement[bool] = event.actor_id == viewer.user_id
    if viewer.principal.team_id is None:
        return mine
    teams: Any = (
        team_subtree(viewer.org_id, viewer.principal.team_id)
        if viewer.principal.role is Role.manager
        else sa.select(sa.literal(viewer.principal.team_id, sa.Uuid))
    )
    members = sa.select(col(User.id)).where(col(User.org_id) == viewer.org_id, col(User.team_id).in_(teams))
    in_team: sa.ColumnElement[bool] = event.actor_id.in_(members)
    return in_team
