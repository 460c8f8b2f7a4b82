"""Whose numbers an insight counts, over which days: the period, the people in the caller's reach, and each
person's go-live (a team's numbers count from the day it started working in Fieldbook)."""

import dataclasses
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.activities.service import time_zone
from api.auth.deps import allow
from api.auth.models import Organization, Role, Team, User
from api.auth.principals import Principal
from api.auth.service import team_subtree
from api.core.db import SessionDep
from api.core.errors import NotFound, ValidationFailed
from api.core.types import Day, utcnow
from api.deals.models import Pipeline

DEFAULT_DAYS = 90
# Three years bounds the work one request can ask for.
MAX_DAYS = 3 * 366


@dataclass(frozen=True, slots=True)
class Period:
    """Whole days in the organisation's time zone, both ends included."""

    first_day: date
    last_day: date
    zone: ZoneInfo

    @property
    def start(self) -> datetime:
        return midnight(self.first_day, self.zone)

    @property
    def end(self) -> datetime:
        """The first instant after the period."""
        return midnight(self.last_day + timedelta(days=1), self.zone)

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def previous(self) -> "Period":
        """The period of the same length just before this one: what a change is measured against."""
        return Period(self.first_day - timedelta(days=self.days), self.first_day - timedelta(days=1), self.zone)

    @property
    def utc_offset_seconds(self) -> int:
        """The zone's offset at the end of the period: how activity is bucketed into days on both databases."""
        offset = self.end.astimezone(self.zone).utcoffset()
        return int(offset.total_seconds()) if offset else 0


def midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), zone).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Person:
    id: uuid.UUID
    name: str
    role: str
    team_id: uuid.UUID | None
    is_active: bool
    # When their numbers start counting: their team's go-live (None: always).
    live_from: datetime | None


@dataclass(frozen=True, slots=True)
class Scope:
    """What one insight request counts: these people's records, in this period, in this currency."""

    org_id: uuid.UUID
    period: Period
    currency: str
    people: tuple[Person, ...]
    pipeline_id: uuid.UUID | None = None

    @property
    def ids(self) -> list[uuid.UUID]:
        return [p.id for p in self.people]

    def during(self, period: Period) -> "Scope":
        return dataclasses.replace(self, period=period)

    def only(self, ids: set[uuid.UUID]) -> "Scope":
        return dataclasses.replace(self, people=tuple(p for p in self.people if p.id in ids))

    def counted(self, person: Any, at: Any, *, since_start: bool = True) -> sa.ColumnElement[bool]:
        """Rows of the people in scope (`person` is the column naming them) that happened (`at`) in the period after
        each one's go-live; with `since_start=False`, anything up to the end of the period (history, e.g. earlier
        purchases). One range per distinct start, so a few teams going live on different days cost a few ranges."""
        by_start: dict[datetime | None, list[uuid.UUID]] = defaultdict(list)
        for p in self.people:
            starts = [s for s in (p.live_from, self.period.start if since_start else None) if s is not None]
            by_start[max(starts) if starts else None].append(p.id)
        ranges = [
            sa.and_(person.in_(ids), at >= start) if start is not None else person.in_(ids)
            for start, ids in sorted(by_start.items(), key=lambda item: (item[0] is not None, item[0]))
            if start is None or start < self.period.end
        ]
        if not ranges:
            return sa.false()
        return sa.and_(sa.or_(*ranges), at < self.period.end)


def _period(first: date | None, last: date | None, zone: ZoneInfo) -> Period:
    today = utcnow().astimezone(zone).date()
    if last is None:
        # `from` alone: 90 days from it, but nothing after today (there is nothing to count yet).
        last = today if first is None else min(today, first + timedelta(days=DEFAULT_DAYS - 1))
        if first is not None and first > last:
            raise _bad_period("`from` is after today.")
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise _bad_period("`from` is after `to`.")
    if (last - first).days + 1 > MAX_DAYS:
        raise _bad_period(f"A period is at most {MAX_DAYS} days.")
    return Period(first, last, zone)


def _bad_period(detail: str) -> ValidationFailed:
    # The item carries its own `detail`: the documented ProblemItem requires one.
    return ValidationFailed(detail, errors=[{"in": "query", "parameter": "from", "detail": detail}])


@dataclass(frozen=True, slots=True)
class Filters:
    first_day: date | None
    last_day: date | None
    team_id: uuid.UUID | None
    user_id: uuid.UUID | None
    pipeline_id: uuid.UUID | None


def filters(
    first_day: Annotated[
        Day | None,
        Query(alias="from", description="First day (organisation's time zone). Default: 90 days before `to`."),
    ] = None,
    last_day: Annotated[
        Day | None, Query(alias="to", description="Last day, included. Default: today, or 90 days on.")
    ] = None,
    team_id: Annotated[uuid.UUID | None, Query(description="Only this team and the teams below it.")] = None,
    user_id: Annotated[uuid.UUID | None, Query(description="Only this person.")] = None,
    pipeline_id: Annotated[uuid.UUID | None, Query(description="Only deals of this pipeline.")] = None,
) -> Filters:
    return Filters(first_day, last_day, team_id, user_id, pipeline_id)


FiltersDep = Annotated[Filters, Depends(filters)]
# Who may read insights: whoever sells (each within their reach) and keys with `insights:read`.
InsightReaderDep = Annotated[Principal, Depends(allow(Role.admin, Role.manager, Role.rep, scope="insights:read"))]


def _reach(session: AsyncSession, principal: Principal, *, board: bool) -> sa.Select[Any] | None:
    """The teams whose people the caller may count (None: the whole organisation); a rep alone when empty."""
    if principal.kind != "user" or principal.role in (Role.admin, Role.marketing):
        return None
    if principal.team_id is None:
        return select(col(Team.id)).where(sa.false())
    if principal.role is Role.manager:
        return team_subtree(principal.org_id, principal.team_id)
    if board:
        return select(sa.literal(principal.team_id, sa.Uuid))
    return select(col(Team.id)).where(sa.false())


async def resolve(session: AsyncSession, principal: Principal, wanted: Filters, *, board: bool = False) -> Scope:
    """The scope of an insight for this caller: admins and keys count everyone, managers their team subtree,
    reps themselves (and, for the leaderboard and playbook, their team: `board`). A team or person outside the
    caller's reach is not found, as another organisation's is."""
    if session.get_bind().dialect.name == "postgresql":
        # Few, heavy statements whose best plan depends on the values (one team or the whole organisation): the
        # generic plan PostgreSQL caches after five runs guessed 6,000 activities for 1.9 million (bench/RESULTS.md).
        await session.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))
    settings = (
        await session.scalar(select(Organization.settings).where(col(Organization.id) == principal.org_id))
    ) or {}
    zone = await time_zone(session, principal.org_id, None)
    period = _period(wanted.first_day, wanted.last_day, zone)
    reach = _reach(session, principal, board=board)
    stmt = (
        select(User, col(Team.go_live_on))
        .outerjoin(Team, sa.and_(col(Team.id) == col(User.team_id), col(Team.deleted_at).is_(None)))
        .where(col(User.org_id) == principal.org_id, col(User.deleted_at).is_(None), col(User.role) != Role.marketing)
        .order_by(col(User.name_folded), col(User.id))
    )
    if reach is not None:
        stmt = stmt.where(sa.or_(col(User.team_id).in_(reach), col(User.id) == principal.id))
    if wanted.team_id is not None:
        await _check_team(session, principal, wanted.team_id, reach)
        stmt = stmt.where(col(User.team_id).in_(team_subtree(principal.org_id, wanted.team_id, name="wanted")))
    people = tuple(
        Person(
            id=user.id,
            name=user.name,
            role=user.role,
            team_id=user.team_id,
            is_active=user.is_active,
            live_from=midnight(go_live, zone) if go_live else None,
        )
        for user, go_live in (await session.execute(stmt)).all()
    )
    if wanted.user_id is not None:
        people = tuple(p for p in people if p.id == wanted.user_id)
        if not people:
            raise NotFound("No such colleague.")
    if wanted.pipeline_id is not None:
        await _check_pipeline(session, principal, wanted.pipeline_id)
    return Scope(
        org_id=principal.org_id,
        period=period,
        currency=str(settings.get("currency", "EUR")),
        people=people,
        pipeline_id=wanted.pipeline_id,
    )


async def _check_team(
    session: AsyncSession, principal: Principal, team_id: uuid.UUID, reach: sa.Select[Any] | None
) -> None:
    stmt = select(col(Team.id)).where(
        col(Team.id) == team_id, col(Team.org_id) == principal.org_id, col(Team.deleted_at).is_(None)
    )
    if reach is not None:
        stmt = stmt.where(col(Team.id).in_(reach))
    if await session.scalar(stmt) is None:
        raise NotFound("No such team.")


async def _check_pipeline(session: AsyncSession, principal: Principal, pipeline_id: uuid.UUID) -> None:
    stmt = select(col(Pipeline.id)).where(
        col(Pipeline.id) == pipeline_id, col(Pipeline.org_id) == principal.org_id, col(Pipeline.deleted_at).is_(None)
    )
    if await session.scalar(stmt) is None:
        raise NotFound("No such pipeline.")


async def scope_of(session: SessionDep, principal: InsightReaderDep, wanted: FiltersDep) -> Scope:
    return await resolve(session, principal, wanted)


async def board_of(session: SessionDep, principal: InsightReaderDep, wanted: FiltersDep) -> Scope:
    return await resolve(session, principal, wanted, board=True)


ScopeDep = Annotated[Scope, Depends(scope_of)]
BoardDep = Annotated[Scope, Depends(board_of)]
