"""Goals set by admins ("10 well-developed contacts → lunch on us"), each rep's progress, and the moment one is
reached: checked in the transaction of the change that reached it, which also writes the feed entry."""

import uuid
from collections.abc import Callable, Coroutine
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.activities.models import Activity, ActivityKind
from api.activities.service import time_zone
from api.auth.models import Team
from api.auth.principals import Principal
from api.auth.service import team_subtree
from api.clients.models import Company, Contact
from api.core import changes
from api.core.errors import ValidationFailed
from api.core.etags import ensure_version
from api.core.models import get_record, live
from api.core.pagination import keyset_page
from api.core.schemas import changed_fields
from api.core.types import utcnow
from api.deals.models import Deal, DealStatus
from api.feed import service as feed
from api.feed.models import FeedKind
from api.insights import sales, team
from api.insights.models import Goal, GoalAchievement, GoalMetric
from api.insights.schemas import GoalCreate, GoalRead, GoalUpdate, GoalWithProgress, Progress
from api.insights.scope import MAX_DAYS, Filters, Period, Scope, resolve
from api.insights.sql import fetch

Values = Callable[[AsyncSession, Scope], Coroutine[Any, Any, dict[uuid.UUID, int]]]


async def _won(session: AsyncSession, scope: Scope) -> dict[uuid.UUID, int]:
    return {who: n for who, (n, _) in (await sales.won_totals(session, scope)).items()}


async def _amount(session: AsyncSession, scope: Scope) -> dict[uuid.UUID, int]:
    return {who: amount for who, (_, amount) in (await sales.won_totals(session, scope)).items()}


async def _activities(session: AsyncSession, scope: Scope) -> dict[uuid.UUID, int]:
    return {who: n for who, (n, _) in (await sales.activity_counts(session, scope)).items()}


async def _calls(session: AsyncSession, scope: Scope) -> dict[uuid.UUID, int]:
    return {who: calls for who, (_, calls) in (await sales.activity_counts(session, scope)).items()}


async def _developed(session: AsyncSession, scope: Scope) -> dict[uuid.UUID, int]:
    found = await team.cards(session, scope, threshold=team.WELL_DEVELOPED)
    return {who: c.well_developed for who, c in found.items()}


METRICS: dict[GoalMetric, Values] = {
    GoalMetric.deals_won: _won,
    GoalMetric.amount_won: _amount,
    GoalMetric.activities: _activities,
    GoalMetric.calls: _calls,
    GoalMetric.new_clients: team.new_clients,
    GoalMetric.well_developed_clients: _developed,
}


# The kinds of record whose changes can move each metric: a change to anything else leaves the goal alone.
MOVED_BY: dict[GoalMetric, frozenset[str]] = {
    GoalMetric.deals_won: frozenset({"deal"}),
    GoalMetric.amount_won: frozenset({"deal"}),
    GoalMetric.activities: frozenset({"activity"}),
    GoalMetric.calls: frozenset({"activity"}),
    GoalMetric.new_clients: frozenset({"company", "contact"}),
    GoalMetric.well_developed_clients: frozenset({"company", "contact", "activity"}),
}
# Changes that can move anyone's progress at once (a team's go-live, a person's team or role, the custom fields a
# card's completeness counts): rare admin work, after which everyone is checked.
MOVES_EVERYONE = frozenset({"team", "user", "custom_field"})
# Phones sync late: work done in a goal's last days may arrive this long after it ended, and still reaches it.
GRACE_DAYS = 14


def _period(goal: Goal, scope: Scope) -> Period:
    return Period(goal.starts_on, goal.ends_on, scope.period.zone)


async def _for_goal(session: AsyncSession, goal: Goal, scope: Scope) -> Scope:
    """The people of `scope` the goal applies to (sellers of its team, or all sellers), over the goal's dates."""
    people = [p for p in scope.people if p.is_active and p.role in sales.SELLING_ROLES]
    if goal.team_id is not None:
        teams = set(await session.scalars(team_subtree(goal.org_id, goal.team_id)))
        people = [p for p in people if p.team_id in teams]
    return scope.only({p.id for p in people}).during(_period(goal, scope))


async def progress(session: AsyncSession, goal: Goal, scope: Scope) -> list[Progress]:
    counted = await _for_goal(session, goal, scope)
    values = await METRICS[GoalMetric(goal.metric)](session, counted)
    reached = dict(
        await fetch(
            session,
            sa.select(GoalAchievement.user_id, GoalAchievement.reached_at).where(  # type: ignore[call-overload]
                col(GoalAchievement.goal_id) == goal.id
            ),
        )
    )
    rows = [
        Progress(**sales.person_ref(p).model_dump(), value=values.get(p.id, 0), reached_at=reached.get(p.id))
        for p in counted.people
    ]
    rows.sort(key=lambda r: (-r.value, r.name.casefold()))
    return rows


async def list_goals(
    *, session: AsyncSession, principal: Principal, current: bool, limit: int, cursor: str | None
) -> tuple[list[GoalWithProgress], str | None]:
    stmt = live(Goal, principal.org_id)
    scope = await resolve(session, principal, Filters(None, None, None, None, None))
    if current:
        today = utcnow().astimezone(scope.period.zone).date()
        stmt = stmt.where(col(Goal.starts_on) <= today, col(Goal.ends_on) >= today)
    goals, next_cursor = await keyset_page(
        session,
        stmt,
        scope="goals",
        keys=[col(Goal.ends_on), col(Goal.id)],
        key_of=lambda g: (g.ends_on, g.id),
        limit=limit,
        cursor=cursor,
        descending=True,
    )
    items = [
        GoalWithProgress(**GoalRead.model_validate(g).model_dump(), progress=await progress(session, g, scope))
        for g in goals
    ]
    return items, next_cursor


async def get_goal(*, session: AsyncSession, principal: Principal, goal_id: uuid.UUID) -> GoalWithProgress:
    goal = await get_record(session, Goal, principal.org_id, goal_id, "goal")
    scope = await resolve(session, principal, Filters(None, None, None, None, None))
    return GoalWithProgress(**GoalRead.model_validate(goal).model_dump(), progress=await progress(session, goal, scope))


async def _check_team(session: AsyncSession, principal: Principal, team_id: uuid.UUID | None) -> None:
    if (
        team_id is not None
        and await session.scalar(live(Team, principal.org_id).where(col(Team.id) == team_id)) is None
    ):
        raise ValidationFailed.field("#/team_id", "No such team.")


def _check_dates(starts_on: date, ends_on: date, sent: str = "ends_on") -> None:
    """A goal's days, in order and at most MAX_DAYS long; an error names the field the request `sent`."""
    if ends_on < starts_on:
        raise ValidationFailed.field(f"#/{sent}", "ends_on is before starts_on")
    if (ends_on - starts_on).days + 1 > MAX_DAYS:
        raise ValidationFailed.field(f"#/{sent}", f"A goal lasts at most {MAX_DAYS} days.")


async def create_goal(*, session: AsyncSession, principal: Principal, data: GoalCreate) -> Goal:
    _check_dates(data.starts_on, data.ends_on)
    await _check_team(session, principal, data.team_id)
    goal = Goal(org_id=principal.org_id, **data.model_dump())
    await changes.create(session, principal, "goal", goal)
    await check(session, principal.org_id, None)
    return goal


async def update_goal(
    *, session: AsyncSession, principal: Principal, goal_id: uuid.UUID, data: GoalUpdate, expected_version: int | None
) -> Goal:
    goal = await get_record(session, Goal, principal.org_id, goal_id, "goal")
    ensure_version(goal, expected_version, GoalRead.model_validate)
    fields = changed_fields(data)
    if "team_id" in fields:
        await _check_team(session, principal, fields["team_id"])
    _check_dates(
        fields.get("starts_on", goal.starts_on),
        fields.get("ends_on", goal.ends_on),
        "ends_on" if "ends_on" in fields else "starts_on",
    )
    await changes.update(session, principal, "goal", goal, fields)
    await check(session, principal.org_id, None)
    return goal


async def delete_goal(
    *, session: AsyncSession, principal: Principal, goal_id: uuid.UUID, expected_version: int | None
) -> None:
    goal = await get_record(session, Goal, principal.org_id, goal_id, "goal")
    ensure_version(goal, expected_version, GoalRead.model_validate)
    await changes.delete(session, principal, "goal", goal)


# Reaching a goal

DEAL, ACTIVITY, COMPANY, CONTACT = (sa.inspect(m).local_table for m in (Deal, Activity, Company, Contact))


def _whose(entity: str, ids: set[uuid.UUID]) -> list[sa.Select[Any]]:
    """Whose goal progress a change to these records can move: their owners, and for work on a client card (an
    activity on it, a contact of a company) the card's owner, whose well-developed clients it counts."""
    if entity == "deal":
        return [sa.select(DEAL.c.owner_id).where(DEAL.c.id.in_(ids))]
    if entity == "company":
        return [sa.select(COMPANY.c.owner_id).where(COMPANY.c.id.in_(ids))]
    if entity == "contact":
        return [
            sa.select(CONTACT.c.owner_id).where(CONTACT.c.id.in_(ids)),
            sa.select(COMPANY.c.owner_id)
            .join(CONTACT, CONTACT.c.company_id == COMPANY.c.id)
            .where(CONTACT.c.id.in_(ids)),
        ]
    if entity == "activity":
        return [
            sa.select(ACTIVITY.c.owner_id).where(ACTIVITY.c.id.in_(ids)),
            sa.select(COMPANY.c.owner_id)
            .join(ACTIVITY, ACTIVITY.c.company_id == COMPANY.c.id)
            .where(ACTIVITY.c.id.in_(ids)),
            sa.select(CONTACT.c.owner_id)
            .join(ACTIVITY, ACTIVITY.c.contact_id == CONTACT.c.id)
            .where(ACTIVITY.c.id.in_(ids)),
        ]
    return []


async def check(session: AsyncSession, org_id: uuid.UUID, touched: dict[str, set[uuid.UUID]] | None) -> None:
    """Record who has just reached a running goal, once, with a feed entry for them and their team. `touched`: the
    records the transaction changed, whose owners are the only people whose progress can have moved (None: check
    everyone, after a goal itself changed)."""
    if touched is not None and touched.keys() & MOVES_EVERYONE:
        touched = None
    # Every write asks, so the common answer ("no goal is running") costs one indexed query: any time zone's today
    # is within a day of UTC's; the organisation's own today is applied once a goal is found.
    utc_today = utcnow().date()
    nearly = live(Goal, org_id).where(
        col(Goal.starts_on) <= utc_today + timedelta(days=1),
        col(Goal.ends_on) >= utc_today - timedelta(days=GRACE_DAYS + 1),
    )
    goals = [
        g for g in await session.scalars(nearly) if touched is None or MOVED_BY[GoalMetric(g.metric)] & touched.keys()
    ]
    if not goals:
        return
    today = utcnow().astimezone(await time_zone(session, org_id, None)).date()
    goals = [g for g in goals if g.starts_on <= today and (today - g.ends_on).days <= GRACE_DAYS]
    people = None if touched is None else await _owners(session, touched)
    if not goals or people == set():
        return
    everyone = await resolve(session, Principal.system(org_id), Filters(None, None, None, None, None))
    for goal in goals:
        done = set(
            await session.scalars(select(GoalAchievement.user_id).where(col(GoalAchievement.goal_id) == goal.id))
        )
        candidates = {p.id for p in everyone.people} - done
        if people is not None:
            candidates &= people
        if not candidates:
            continue
        counted = await _for_goal(session, goal, everyone.only(candidates))
        if touched is not None and not await _may_move(session, goal, counted, touched):
            continue
        values = await METRICS[GoalMetric(goal.metric)](session, counted)
        for person in counted.people:
            value = values.get(person.id, 0)
            if value < goal.target:
                continue
            session.add(GoalAchievement(org_id=org_id, goal_id=goal.id, user_id=person.id, value=value))
            await feed.emit(
                session,
                Principal(kind="user", org_id=org_id, id=person.id),
                FeedKind.goal_reached,
                at=utcnow(),
                user_id=person.id,
                data={
                    "goal_id": str(goal.id),
                    "name": goal.name,
                    "metric": goal.metric,
                    "target": goal.target,
                    "value": value,
                    "reward": goal.reward,
                },
            )


async def _may_move(session: AsyncSession, goal: Goal, counted: Scope, touched: dict[str, set[uuid.UUID]]) -> bool:
    """Whether a touched record counts towards the goal now: the only way a count (which was below the target, or
    it would have been recorded) can have reached it. Cheap, on the touched rows only; the full count, over all of a
    person's records, is run only when this says yes."""
    metric = GoalMetric(goal.metric)
    if metric is GoalMetric.well_developed_clients:
        return await team.newly_developed(session, counted, touched, threshold=team.WELL_DEVELOPED)
    if metric in (GoalMetric.deals_won, GoalMetric.amount_won):
        counts = [
            DEAL.c.id.in_(touched.get("deal", set())),
            DEAL.c.status == DealStatus.won.value,
            counted.counted(DEAL.c.owner_id, DEAL.c.won_at),
        ]
    elif metric is GoalMetric.new_clients:
        created = sa.union_all(
            *(
                sa.select(table.c.id).where(
                    table.c.id.in_(touched.get(entity, set())),
                    table.c.deleted_at.is_(None),
                    counted.counted(table.c.owner_id, table.c.created_at),
                )
                for entity, table in (("company", COMPANY), ("contact", CONTACT))
            )
        ).subquery("created")
        return await session.scalar(sa.select(sa.literal(1)).select_from(created).limit(1)) is not None
    else:
        counts = [
            ACTIVITY.c.id.in_(touched.get("activity", set())),
            ACTIVITY.c.deleted_at.is_(None),
            ACTIVITY.c.done_at.is_not(None),
            counted.counted(ACTIVITY.c.owner_id, ACTIVITY.c.done_at),
        ]
        if metric is GoalMetric.calls:
            counts.append(ACTIVITY.c.kind == ActivityKind.call.value)
    return await session.scalar(sa.select(sa.literal(1)).where(*counts).limit(1)) is not None


async def _owners(session: AsyncSession, touched: dict[str, set[uuid.UUID]]) -> set[uuid.UUID]:
    queries = [query for entity, ids in touched.items() if ids for query in _whose(entity, ids)]
    if not queries:
        return set()
    return set(await session.scalars(sa.union(*queries)))
