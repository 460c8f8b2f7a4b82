"""How the team works: who misses deadlines, whose client cards are complete, who has moved into Fieldbook."""

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.activities.models import Activity
from api.auth.models import Team, User
from api.clients import completeness
from api.clients.models import ClientKind, Company, Contact
from api.core.changes import Change
from api.core.types import local_day, seconds_between, utcnow
from api.insights.sales import SELLING_ROLES, header, person_ref
from api.insights.schemas import (
    Adoption,
    AdoptionRow,
    DataQuality,
    Discipline,
    DisciplineRow,
    QualityRow,
    TeamAdoption,
)
from api.insights.scope import Person, Scope
from api.insights.sql import fetch, ratio

activity = sa.inspect(Activity).local_table
change = sa.inspect(Change).local_table
CLIENT_ENTITIES = ("company", "contact")
# A card counts as well developed from this completeness on (goals use it too).
WELL_DEVELOPED = 80


def _listed(scope: Scope, numbers: dict[uuid.UUID, Any]) -> list[Person]:
    """Active sellers, and anyone else in scope who has numbers."""
    return [p for p in scope.people if (p.is_active and p.role in SELLING_ROLES) or p.id in numbers]


# Discipline


@dataclass(slots=True)
class Deadlines:
    due: int = 0
    on_time: int = 0
    late: int = 0
    overdue: int = 0
    mean_delay: float | None = None


async def deadlines(session: AsyncSession, scope: Scope) -> dict[uuid.UUID, Deadlines]:
    """Per assignee: planned activities due in the period, done on time, done late, still overdue, and the mean
    lateness of the late ones."""
    late = activity.c.done_at > activity.c.due_at
    rows = await fetch(
        session,
        sa.select(
            activity.c.assignee_id,
            sa.func.count(),
            sa.func.sum(sa.case((activity.c.done_at <= activity.c.due_at, 1), else_=0)),
            sa.func.sum(sa.case((late, 1), else_=0)),
            sa.func.sum(sa.case((sa.and_(activity.c.done_at.is_(None), activity.c.due_at < utcnow()), 1), else_=0)),
            sa.func.avg(sa.case((late, seconds_between(activity.c.done_at, activity.c.due_at)))),
        )
        .where(
            activity.c.org_id == scope.org_id,
            activity.c.deleted_at.is_(None),
            activity.c.due_at.is_not(None),
            scope.counted(activity.c.assignee_id, activity.c.due_at),
        )
        .group_by(activity.c.assignee_id),
    )
    return {
        who: Deadlines(int(due), int(on_time), int(n_late), int(overdue), float(delay) if delay is not None else None)
        for who, due, on_time, n_late, overdue, delay in rows
    }


async def discipline(session: AsyncSession, scope: Scope) -> Discipline:
    found = await deadlines(session, scope)
    rows = []
    for p in _listed(scope, found):
        d = found.get(p.id, Deadlines())
        rows.append(
            DisciplineRow(
                **person_ref(p).model_dump(),
                due=d.due,
                done_on_time=d.on_time,
                done_late=d.late,
                overdue=d.overdue,
                late_share=ratio(d.late, d.on_time + d.late),
                mean_delay_hours=round(d.mean_delay / 3600, 2) if d.mean_delay is not None else None,
            )
        )
    rows.sort(key=lambda r: (-r.overdue, -(r.late_share or 0), r.name.casefold()))
    return Discipline(**header(scope), people=rows)


# Data quality


@dataclass(slots=True)
class Cards:
    clients: int = 0
    score_sum: float = 0.0
    well_developed: int = 0


# Client cards: each kind, and the activity column that files an activity on it.
CARDS = (
    (ClientKind.company, sa.inspect(Company).local_table, activity.c.company_id),
    (ClientKind.contact, sa.inspect(Contact).local_table, activity.c.contact_id),
)


def _worked(scope: Scope, table: Any, ref: Any, besides: set[uuid.UUID] | None = None) -> sa.ColumnElement[bool]:
    """The card had an activity done on it in the period (by the card owner's clock: their go-live); `besides`:
    other than these."""
    where = [
        activity.c.org_id == scope.org_id,
        ref == table.c.id,
        activity.c.deleted_at.is_(None),
        activity.c.done_at.is_not(None),
        scope.counted(table.c.owner_id, activity.c.done_at),
    ]
    if besides:
        where.append(activity.c.id.not_in(besides))
    worked: sa.ColumnElement[bool] = sa.select(sa.literal(1)).where(*where).exists()
    return worked


def _complete(filled: Any, expected: int, threshold: int) -> sa.ColumnElement[bool]:
    # Integer comparison (filled/expected ≥ threshold%) so no rounding differs between the databases.
    complete: sa.ColumnElement[bool] = filled * 100 >= threshold * expected
    return complete


async def cards(session: AsyncSession, scope: Scope, *, threshold: int) -> dict[uuid.UUID, Cards]:
    """Per owner: their companies and contacts, the sum of the cards' completeness (%), and how many cards are at
    least `threshold`% complete and had an activity done in the period."""
    found: dict[uuid.UUID, Cards] = defaultdict(Cards)
    for kind, table, ref in CARDS:
        filled, expected = completeness.filled_count(
            kind, await completeness.custom_keys(session, scope.org_id, kind), table
        )
        developed = sa.and_(_complete(filled, expected, threshold), _worked(scope, table, ref))
        rows = await fetch(
            session,
            sa.select(
                table.c.owner_id,
                sa.func.count(),
                sa.func.sum(filled * 100.0 / expected),
                sa.func.sum(sa.case((developed, 1), else_=0)),
            )
            .where(table.c.org_id == scope.org_id, table.c.deleted_at.is_(None), table.c.owner_id.in_(scope.ids))
            .group_by(table.c.owner_id),
        )
        for owner, n, score, well in rows:
            found[owner].clients += int(n)
            found[owner].score_sum += float(score or 0)
            found[owner].well_developed += int(well)
    return dict(found)


async def newly_developed(
    session: AsyncSession, scope: Scope, touched: dict[str, set[uuid.UUID]], *, threshold: int
) -> bool:
    """Whether a card the transaction touched (or a card an activity it touched is on, or the company of a contact
    it touched) is well developed now; when only activities changed, one that was not before them (it had no other
    activity in the period). Only then can someone's count of well-developed cards have gone up."""
    acts = touched.get("activity", set())
    on = (
        await fetch(session, sa.select(activity.c.company_id, activity.c.contact_id).where(activity.c.id.in_(acts)))
        if acts
        else []
    )
    contact = sa.inspect(Contact).local_table
    parents = touched.get("contact", set())
    of_contacts: set[uuid.UUID | None] = (
        set(await session.scalars(sa.select(contact.c.company_id).where(contact.c.id.in_(parents))))
        if parents
        else set()
    )
    ids = {
        ClientKind.company: touched.get("company", set()) | of_contacts | {c for c, _ in on},
        ClientKind.contact: touched.get("contact", set()) | {c for _, c in on},
    }
    only_activities = not touched.get("company") and not touched.get("contact")
    for kind, table, ref in CARDS:
        wanted = ids[kind] - {None}
        if not wanted:
            continue
        filled, expected = completeness.filled_count(
            kind, await completeness.custom_keys(session, scope.org_id, kind), table
        )
        now = [_complete(filled, expected, threshold), _worked(scope, table, ref)]
        if only_activities:
            now.append(sa.not_(_worked(scope, table, ref, besides=acts)))
        found = await session.scalar(
            sa.select(sa.literal(1))
            .where(table.c.org_id == scope.org_id, table.c.id.in_(wanted), table.c.deleted_at.is_(None), *now)
            .where(table.c.owner_id.in_(scope.ids))
            .limit(1)
        )
        if found is not None:
            return True
    return False


async def data_quality(session: AsyncSession, scope: Scope, *, threshold: int) -> DataQuality:
    found = await cards(session, scope, threshold=threshold)
    rows = []
    for p in _listed(scope, found):
        c = found.get(p.id, Cards())
        rows.append(
            QualityRow(
                **person_ref(p).model_dump(),
                clients=c.clients,
                mean_completeness=round(c.score_sum / c.clients, 1) if c.clients else None,
                well_developed=c.well_developed,
            )
        )
    rows.sort(key=lambda r: (-r.well_developed, -(r.mean_completeness or 0), r.name.casefold()))
    return DataQuality(**header(scope), threshold=threshold, people=rows)


async def new_clients(session: AsyncSession, scope: Scope) -> dict[uuid.UUID, int]:
    """Per owner: companies and contacts created in the period."""
    found: dict[uuid.UUID, int] = defaultdict(int)
    for _, table, _ in CARDS:
        rows = await fetch(
            session,
            sa.select(table.c.owner_id, sa.func.count())
            .where(
                table.c.org_id == scope.org_id,
                table.c.deleted_at.is_(None),
                scope.counted(table.c.owner_id, table.c.created_at),
            )
            .group_by(table.c.owner_id),
        )
        for owner, n in rows:
            found[owner] += int(n)
    return dict(found)


# Adoption


@dataclass(slots=True)
class Usage:
    active_days: int = 0
    cards_created: int = 0
    cards_improved: int = 0
    activities: int = 0
    last_seen_at: datetime | None = None


async def usage(session: AsyncSession, scope: Scope) -> dict[uuid.UUID, Usage]:
    found: dict[uuid.UUID, Usage] = defaultdict(Usage)
    on_card = change.c.entity.in_(CLIENT_ENTITIES)
    rows = await fetch(
        session,
        sa.select(
            change.c.actor_id,
            sa.func.count(sa.distinct(local_day(change.c.at, scope.period.utc_offset_seconds))),
            sa.func.count(sa.distinct(sa.case((sa.and_(on_card, change.c.op == "create"), change.c.entity_id)))),
            sa.func.count(sa.distinct(sa.case((sa.and_(on_card, change.c.op == "update"), change.c.entity_id)))),
        )
        .where(
            change.c.org_id == scope.org_id,
            change.c.actor_kind == "user",
            scope.counted(change.c.actor_id, change.c.at),
        )
        .group_by(change.c.actor_id),
    )
    for who, active, created, improved in rows:
        found[who].active_days, found[who].cards_created, found[who].cards_improved = (
            int(active),
            int(created),
            int(improved),
        )
    logged = await fetch(
        session,
        sa.select(activity.c.owner_id, sa.func.count())
        .where(
            activity.c.org_id == scope.org_id,
            activity.c.deleted_at.is_(None),
            scope.counted(activity.c.owner_id, activity.c.created_at),
        )
        .group_by(activity.c.owner_id),
    )
    for who, n in logged:
        found[who].activities = int(n)
    # Whenever it was, not only in the period: "last seen three weeks ago" is the point.
    user = sa.inspect(User).local_table
    last_change = (
        sa.select(sa.func.max(change.c.at))
        .where(change.c.org_id == scope.org_id, change.c.actor_id == user.c.id)
        .scalar_subquery()
    )
    seen = await fetch(
        session,
        sa.select(user.c.id, user.c.last_login_at, last_change).where(
            user.c.org_id == scope.org_id, user.c.id.in_(scope.ids)
        ),
    )
    for who, login, changed in seen:
        moments = [m for m in (login, changed) if m is not None]
        if moments:
            found[who].last_seen_at = max(moments)
    return dict(found)


def _live_days(scope: Scope, person: Person) -> int:
    """Days of the period since the person's team went live."""
    start = max(scope.period.start, person.live_from) if person.live_from else scope.period.start
    return max(0, round((scope.period.end - start).total_seconds() / 86_400))


async def adoption(session: AsyncSession, scope: Scope) -> Adoption:
    found = await usage(session, scope)
    people = [p for p in scope.people if p.is_active and p.role in SELLING_ROLES]
    rows = []
    for p in people:
        u = found.get(p.id, Usage())
        live_days = _live_days(scope, p)
        rows.append(
            AdoptionRow(
                **person_ref(p).model_dump(),
                active_days=u.active_days,
                activities=u.activities,
                activities_per_day=round(u.activities / live_days, 2) if live_days else None,
                cards_created=u.cards_created,
                cards_improved=u.cards_improved,
                last_seen_at=u.last_seen_at,
            )
        )
    rows.sort(key=lambda r: (r.active_days, r.activities, r.name.casefold()))
    team_ids = {p.team_id for p in people if p.team_id is not None}
    teams = await fetch(
        session,
        sa.select(Team.id, Team.name, Team.go_live_on).where(  # type: ignore[call-overload]
            Team.org_id == scope.org_id,
            Team.id.in_(team_ids),  # type: ignore[attr-defined]
        ),
    )
    today = utcnow().astimezone(scope.period.zone).date()
    team_rows = []
    for team_id, name, go_live_on in sorted(teams, key=lambda t: t.name.casefold()):
        members = [p for p in people if p.team_id == team_id]
        member_days = sum(_live_days(scope, p) for p in members)
        logged = sum(found.get(p.id, Usage()).activities for p in members)
        team_rows.append(
            TeamAdoption(
                team_id=team_id,
                name=name,
                go_live_on=go_live_on,
                is_live=go_live_on is None or go_live_on <= today,
                members=len(members),
                active_members=sum(1 for p in members if found.get(p.id, Usage()).active_days > 0),
                activities_per_member_day=round(logged / member_days, 2) if member_days else None,
            )
        )
    return Adoption(**header(scope), teams=team_rows, people=rows)
