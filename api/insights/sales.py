"""Where deals break and who wins: the funnel, the leaderboard, the top performers' playbook and retention.

Each number is one SQL aggregate over the scope's people (see scope.py); Python only joins the rows up. Deals are
counted for their owner; a deal's amount counts when it is in the organisation's currency.
"""

import math
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.activities.models import TOUCH_KINDS, Activity, ActivityKind
from api.auth.principals import Principal
from api.clients.models import Company, Contact
from api.core.errors import NotFound
from api.core.models import live
from api.core.types import seconds_between
from api.deals.models import Deal, DealStageEvent, DealStatus, LostReason, Pipeline, Stage, StageKind
from api.feed import queries as feed
from api.insights.schemas import (
    Funnel,
    FunnelStage,
    Habits,
    LapsedClient,
    Leaderboard,
    LeaderboardRow,
    LostReasonRow,
    PeriodRead,
    PersonRef,
    Playbook,
    RecentWin,
    Retention,
    StageTime,
    TouchesPerWin,
    WinStory,
)
from api.insights.scope import Filters, Period, Person, Scope, resolve
from api.insights.sql import DAY, days, fetch, percentiles, ratio
from api.sharing.visibility import Viewer, viewer_for

deal = sa.inspect(Deal).local_table
event = sa.inspect(DealStageEvent).local_table
stage = sa.inspect(Stage).local_table
activity = sa.inspect(Activity).local_table

# The kinds of activity a playbook compares (what a rep does to move a deal; tasks are reminders of those).
PLAYBOOK_KINDS = (
    ActivityKind.call.value,
    ActivityKind.meeting.value,
    ActivityKind.email.value,
    ActivityKind.note.value,
)
RECENT_WINS = 10
LAPSED_SHOWN = 20
# A story's first entries (a won deal has dozens; this bounds the odd one with thousands).
STORY_ITEMS = 1_000
SELLING_ROLES = ("rep", "manager")


def period_read(period: Period) -> PeriodRead:
    return PeriodRead(first_day=period.first_day, last_day=period.last_day, days=period.days)


def header(scope: Scope) -> dict[str, Any]:
    return {"period": period_read(scope.period), "currency": scope.currency}


def person_ref(person: Person) -> PersonRef:
    return PersonRef(user_id=person.id, name=person.name, team_id=person.team_id)


def _live_deals(scope: Scope) -> list[sa.ColumnElement[bool]]:
    where = [deal.c.org_id == scope.org_id, deal.c.deleted_at.is_(None)]
    if scope.pipeline_id is not None:
        where.append(deal.c.pipeline_id == scope.pipeline_id)
    return where


def _in_currency(scope: Scope, amount: Any = None) -> Any:
    """The deal's amount when it is in the organisation's currency, else 0 (amounts in two currencies do not add)."""
    return sa.case((deal.c.currency == scope.currency, amount if amount is not None else deal.c.amount_minor), else_=0)


# Funnel


async def _pipeline(session: AsyncSession, scope: Scope) -> Pipeline:
    stmt = live(Pipeline, scope.org_id)
    if scope.pipeline_id is not None:
        stmt = stmt.where(col(Pipeline.id) == scope.pipeline_id)
    else:
        stmt = stmt.order_by(col(Pipeline.is_default).desc(), col(Pipeline.name))
    found = (await session.scalars(stmt.limit(1))).first()
    if found is None:
        raise NotFound("No such pipeline.")
    return found


async def funnel(session: AsyncSession, scope: Scope) -> Funnel:
    """The deals created in the period (a cohort), followed through the stages of one pipeline."""
    pipeline = await _pipeline(session, scope)
    stages = await fetch(
        session,
        sa.select(stage.c.id, stage.c.name, stage.c.position, stage.c.kind)
        .where(stage.c.org_id == scope.org_id, stage.c.pipeline_id == pipeline.id, stage.c.deleted_at.is_(None))
        .order_by(stage.c.position),
    )
    open_stages = [s for s in stages if s.kind == StageKind.open.value]
    lost_ids = [s.id for s in stages if s.kind == StageKind.lost.value]
    cohort = (
        sa.select(deal.c.id, deal.c.status, deal.c.amount_minor, deal.c.currency)
        .where(
            deal.c.org_id == scope.org_id,
            deal.c.deleted_at.is_(None),
            deal.c.pipeline_id == pipeline.id,
            scope.counted(deal.c.owner_id, deal.c.created_at),
        )
        # Inlined where it is used: materialised, PostgreSQL would guess its size (200 rows for 200,000) and probe
        # the stage history once per deal instead of hashing it.
        .cte("cohort")
        .prefix_with("NOT MATERIALIZED")
    )
    totals = (
        await fetch(
            session,
            sa.select(
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(sa.case((cohort.c.status == DealStatus.won.value, 1), else_=0)), 0),
                sa.func.coalesce(
                    sa.func.sum(
                        sa.case(
                            (
                                sa.and_(cohort.c.status == DealStatus.won.value, cohort.c.currency == scope.currency),
                                cohort.c.amount_minor,
                            ),
                            else_=0,
                        )
                    ),
                    0,
                ),
                sa.func.coalesce(sa.func.sum(sa.case((cohort.c.status == DealStatus.lost.value, 1), else_=0)), 0),
            ).select_from(cohort),
        )
    )[0]
    deals_count, won, won_amount, lost = (int(v) for v in totals)
    through = await _through_stages(session, scope, cohort, pipeline.id, lost_ids)
    times = await _times_in_stage(session, scope, cohort, [s.id for s in open_stages])
    rows: list[FunnelStage] = []
    for index, s in enumerate(open_stages):
        reached, lost_count, lost_amount = through.get(s.id, (0, 0, 0))
        advanced = through.get(open_stages[index + 1].id, (0, 0, 0))[0] if index + 1 < len(open_stages) else won
        median, p75 = times.get(s.id, (None, None))
        rows.append(
            FunnelStage(
                stage_id=s.id,
                name=s.name,
                position=s.position,
                entered=reached,
                advanced=advanced,
                lost=lost_count,
                lost_amount_minor=lost_amount,
                conversion_next=ratio(advanced, reached),
                conversion_won=ratio(won, reached),
                median_days=days(median),
                p75_days=days(p75),
            )
        )
    losing = [r for r in rows if r.lost_amount_minor > 0 or r.lost > 0]
    weakest = max(losing, key=lambda r: (r.lost_amount_minor, r.lost, -r.position), default=None)
    return Funnel(
        **header(scope),
        pipeline_id=pipeline.id,
        pipeline_name=pipeline.name,
        deals=deals_count,
        won=won,
        won_amount_minor=won_amount,
        lost=lost,
        stages=rows,
        weakest_stage_id=weakest.stage_id if weakest else None,
    )


async def _through_stages(
    session: AsyncSession, scope: Scope, cohort: Any, pipeline_id: uuid.UUID, lost_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, int, int]]:
    """Per open stage: the cohort's deals that reached it (or went past it: deals skip stages; or were won), and
    those lost while in it (the stage their last move into a lost stage came from) with their amount. One pass over
    the cohort's stage history, grouped per deal and then per (furthest stage, status, stage lost at)."""
    moved = sa.inspect(Stage).local_table.alias("moved_to")
    per_deal = (
        sa.select(
            cohort.c.id,
            cohort.c.status,
            sa.case((cohort.c.currency == scope.currency, cohort.c.amount_minor), else_=0).label("amount"),
            sa.func.coalesce(sa.func.max(sa.case((moved.c.kind == StageKind.open.value, moved.c.position))), 0).label(
                "furthest"
            ),
            sa.func.max(sa.case((moved.c.kind == StageKind.lost.value, event.c.at))).label("lost_at"),
        )
        .select_from(
            cohort.outerjoin(event, sa.and_(event.c.org_id == scope.org_id, event.c.deal_id == cohort.c.id)).outerjoin(
                moved, moved.c.id == event.c.to_stage_id
            )
        )
        .group_by(cohort.c.id, cohort.c.status, cohort.c.currency, cohort.c.amount_minor)
        .subquery("per_deal")
    )
    last_lost = event.alias("last_lost")
    grouped = (
        sa.select(
            per_deal.c.furthest,
            per_deal.c.status,
            last_lost.c.from_stage_id.label("lost_from"),
            sa.func.count().label("n"),
            sa.func.sum(per_deal.c.amount).label("amount"),
        )
        .select_from(
            per_deal.outerjoin(
                last_lost,
                sa.and_(
                    per_deal.c.status == DealStatus.lost.value,
                    last_lost.c.org_id == scope.org_id,
                    last_lost.c.deal_id == per_deal.c.id,
                    last_lost.c.at == per_deal.c.lost_at,
                    last_lost.c.to_stage_id.in_(lost_ids),
                ),
            )
        )
        .group_by(per_deal.c.furthest, per_deal.c.status, last_lost.c.from_stage_id)
        .subquery("grouped")
    )
    reached = sa.or_(grouped.c.status == DealStatus.won.value, grouped.c.furthest >= stage.c.position)
    lost_here = sa.and_(grouped.c.status == DealStatus.lost.value, grouped.c.lost_from == stage.c.id)
    rows = await fetch(
        session,
        sa.select(
            stage.c.id,
            sa.func.sum(sa.case((reached, grouped.c.n), else_=0)),
            sa.func.sum(sa.case((lost_here, grouped.c.n), else_=0)),
            sa.func.sum(sa.case((lost_here, grouped.c.amount), else_=0)),
        )
        .select_from(stage.join(grouped, sa.true()))
        .where(
            stage.c.org_id == scope.org_id,
            stage.c.pipeline_id == pipeline_id,
            stage.c.kind == StageKind.open.value,
            stage.c.deleted_at.is_(None),
        )
        .group_by(stage.c.id),
    )
    return {stage_id: (int(n or 0), int(lost or 0), int(amount or 0)) for stage_id, n, lost, amount in rows}


async def _times_in_stage(
    session: AsyncSession, scope: Scope, cohort: Any, open_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[float | None, float | None]]:
    stays = (
        sa.select(event.c.from_stage_id.label("stage_id"), event.c.seconds_in_previous.label("seconds"))
        .where(
            event.c.org_id == scope.org_id,
            event.c.deal_id.in_(sa.select(cohort.c.id)),
            event.c.from_stage_id.in_(open_ids),
            event.c.seconds_in_previous.is_not(None),
        )
        .subquery("stays")
    )
    rows = await percentiles(session, stays, by=["stage_id"], value="seconds", percents=(50, 75))
    return {stage_id: (p50, p75) for stage_id, p50, p75 in rows}


# Leaderboard


@dataclass(slots=True)
class Closed:
    won: int = 0
    won_amount: int = 0
    lost: int = 0
    cycle_mean: float | None = None
    cycle_median: float | None = None


def _won_in_period(scope: Scope) -> sa.ColumnElement[bool]:
    return sa.and_(deal.c.status == DealStatus.won.value, scope.counted(deal.c.owner_id, deal.c.won_at))


async def closed_deals(session: AsyncSession, scope: Scope) -> dict[uuid.UUID, Closed]:
    """Per owner: deals won and lost in the period, the amount won, and the days from creation to win."""
    won = _won_in_period(scope)
    lost = sa.and_(deal.c.status == DealStatus.lost.value, scope.counted(deal.c.owner_id, deal.c.lost_at))
    cycle = seconds_between(deal.c.won_at, deal.c.created_at)
    rows = await fetch(
        session,
        sa.select(
            deal.c.owner_id,
            sa.func.sum(sa.case((won, 1), else_=0)),
            sa.func.sum(sa.case((won, _in_currency(scope)), else_=0)),
            sa.func.sum(sa.case((lost, 1), else_=0)),
            sa.func.avg(sa.case((won, cycle))),
        )
        .where(*_live_deals(scope), sa.or_(won, lost))
        .group_by(deal.c.owner_id),
    )
    found = {
        owner: Closed(int(w), int(amount), int(lo), float(mean) if mean is not None else None)
        for owner, w, amount, lo, mean in rows
    }
    cycles = sa.select(deal.c.owner_id, cycle.label("seconds")).where(*_live_deals(scope), won).subquery("cycles")
    for owner, median in await percentiles(session, cycles, by=["owner_id"], value="seconds", percents=(50,)):
        found[owner].cycle_median = median
    return found


async def won_totals(session: AsyncSession, scope: Scope) -> dict[uuid.UUID, tuple[int, int]]:
    """Per owner: deals won in the period and their amount (what a goal needs, without the cycle times)."""
    rows = await fetch(
        session,
        sa.select(deal.c.owner_id, sa.func.count(), sa.func.sum(_in_currency(scope)))
        .where(*_live_deals(scope), _won_in_period(scope))
        .group_by(deal.c.owner_id),
    )
    return {owner: (int(n), int(amount or 0)) for owner, n, amount in rows}


async def activity_counts(session: AsyncSession, scope: Scope) -> dict[uuid.UUID, tuple[int, int]]:
    """Per owner: activities done in the period, and how many of them were calls."""
    rows = await fetch(
        session,
        sa.select(
            activity.c.owner_id,
            sa.func.count(),
            sa.func.sum(sa.case((activity.c.kind == ActivityKind.call.value, 1), else_=0)),
        )
        .where(
            activity.c.org_id == scope.org_id,
            activity.c.deleted_at.is_(None),
            activity.c.done_at.is_not(None),
            scope.counted(activity.c.owner_id, activity.c.done_at),
        )
        .group_by(activity.c.owner_id),
    )
    return {owner: (int(n), int(calls)) for owner, n, calls in rows}


async def leaderboard(session: AsyncSession, scope: Scope) -> Leaderboard:
    closed = await closed_deals(session, scope)
    done = await activity_counts(session, scope)
    people = [p for p in scope.people if (p.is_active and p.role in SELLING_ROLES) or p.id in closed or p.id in done]

    # Ranked by amount won, then deals won, then win rate; the top quartile is the first quarter (rounded up) of
    # the board, among those who won something.
    def order(p: Person) -> tuple[Any, ...]:
        c = closed.get(p.id, Closed())
        return (-c.won_amount, -c.won, -(ratio(c.won, c.won + c.lost) or 0), p.name.casefold(), str(p.id))

    people.sort(key=order)
    quartile = math.ceil(len(people) / 4)
    rows: list[LeaderboardRow] = []
    for rank, p in enumerate(people, start=1):
        c = closed.get(p.id, Closed())
        acts, calls = done.get(p.id, (0, 0))
        rows.append(
            LeaderboardRow(
                **person_ref(p).model_dump(),
                rank=rank,
                top_quartile=rank <= quartile and c.won > 0,
                won=c.won,
                won_amount_minor=c.won_amount,
                lost=c.lost,
                win_rate=ratio(c.won, c.won + c.lost),
                cycle_days_mean=days(c.cycle_mean),
                cycle_days_median=days(c.cycle_median),
                activities=acts,
                calls=calls,
                activities_per_win=ratio(acts, c.won),
                calls_per_win=ratio(calls, c.won),
            )
        )
    return Leaderboard(**header(scope), reps=rows)


# Playbook


def _touch(wins: Any, kinds: tuple[str, ...]) -> sa.ColumnElement[bool]:
    """An activity done on the won deal before it was won."""
    return sa.and_(
        activity.c.deal_id == wins.c.id,
        activity.c.deleted_at.is_(None),
        activity.c.done_at.is_not(None),
        activity.c.done_at <= wins.c.won_at,
        activity.c.kind.in_(kinds),
    )


async def playbook(session: AsyncSession, scope: Scope) -> Playbook:
    board = await leaderboard(session, scope)
    top = {r.user_id for r in board.reps if r.top_quartile}
    rest = {r.user_id for r in board.reps if not r.top_quartile}
    group = sa.case((deal.c.owner_id.in_(top), "top"), else_="rest") if top else sa.literal("rest")
    wins = (
        sa.select(
            deal.c.id,
            deal.c.owner_id,
            deal.c.title,
            deal.c.amount_minor,
            deal.c.currency,
            deal.c.created_at,
            deal.c.won_at,
            group.label("grp"),
        )
        .where(*_live_deals(scope), _won_in_period(scope.only(top | rest)))
        .cte("wins")
    )
    kinds = sa.union_all(*(sa.select(sa.literal(k).label("kind")) for k in PLAYBOOK_KINDS)).subquery("kinds")
    per_deal = (
        sa.select(wins.c.grp, kinds.c.kind, sa.func.count(activity.c.id).label("n"))
        .select_from(
            wins.join(kinds, sa.true()).outerjoin(
                activity,
                sa.and_(
                    activity.c.org_id == scope.org_id, activity.c.kind == kinds.c.kind, _touch(wins, PLAYBOOK_KINDS)
                ),
            )
        )
        .group_by(wins.c.id, wins.c.grp, kinds.c.kind)
        .subquery("per_deal")
    )
    touches: dict[str, dict[str, float | None]] = {"top": {}, "rest": {}}
    for grp, kind, median in await percentiles(session, per_deal, by=["grp", "kind"], value="n", percents=(50,)):
        touches[grp][kind] = round(float(median), 2)
    wins_count = {
        grp: int(n) for grp, n in (await fetch(session, sa.select(wins.c.grp, sa.func.count()).group_by(wins.c.grp)))
    }
    first = (
        sa.select(wins.c.grp, seconds_between(sa.func.min(activity.c.done_at), wins.c.created_at).label("s"))
        .select_from(wins.join(activity, sa.and_(activity.c.org_id == scope.org_id, _touch(wins, TOUCH_KINDS))))
        .group_by(wins.c.id, wins.c.grp, wins.c.created_at)
        .subquery("first_touch")
    )
    # A touch before the deal existed (the call that opened it) is a first touch on day 0.
    first_clamped = sa.select(first.c.grp, sa.case((first.c.s < 0, 0.0), else_=first.c.s).label("s")).subquery("f")
    to_first = dict(await percentiles(session, first_clamped, by=["grp"], value="s", percents=(50,)))
    ordered = (
        sa.select(
            wins.c.grp,
            activity.c.done_at,
            sa.func.lag(activity.c.done_at).over(partition_by=wins.c.id, order_by=activity.c.done_at).label("prev"),
        )
        .select_from(wins.join(activity, sa.and_(activity.c.org_id == scope.org_id, _touch(wins, TOUCH_KINDS))))
        .subquery("ordered")
    )
    gaps = (
        sa.select(ordered.c.grp, seconds_between(ordered.c.done_at, ordered.c.prev).label("s"))
        .where(ordered.c.prev.is_not(None))
        .subquery("gaps")
    )
    between = dict(await percentiles(session, gaps, by=["grp"], value="s", percents=(50,)))
    stays = (
        sa.select(wins.c.grp, event.c.from_stage_id.label("stage_id"), event.c.seconds_in_previous.label("s"))
        .select_from(wins.join(event, event.c.deal_id == wins.c.id))
        .join(stage, stage.c.id == event.c.from_stage_id)
        .where(
            event.c.org_id == scope.org_id,
            stage.c.kind == StageKind.open.value,
            event.c.seconds_in_previous.is_not(None),
        )
        .subquery("stays")
    )
    in_stage = await percentiles(session, stays, by=["grp", "stage_id"], value="s", percents=(50,))
    stage_rows = {
        s.id: s
        for s in (
            await fetch(
                session,
                sa.select(stage.c.id, stage.c.name, stage.c.pipeline_id, stage.c.position).where(
                    stage.c.id.in_({stage_id for _, stage_id, _ in in_stage})
                ),
            )
        )
    }

    def habits(grp: str, reps: int) -> Habits:
        per_kind = touches[grp]
        staged = sorted(
            ((stage_rows[stage_id], median) for g, stage_id, median in in_stage if g == grp),
            key=lambda item: (str(item[0].pipeline_id), item[0].position),
        )
        return Habits(
            reps=reps,
            wins=wins_count.get(grp, 0),
            touches_per_win=TouchesPerWin(**{k: per_kind.get(k) for k in PLAYBOOK_KINDS}),
            days_to_first_touch=days(to_first.get(grp)),
            days_between_touches=days(between.get(grp)),
            days_in_stage=[
                StageTime(stage_id=s.id, name=s.name, pipeline_id=s.pipeline_id, median_days=days(median))
                for s, median in staged
            ],
        )

    return Playbook(
        **header(scope),
        top=habits("top", len(top)),
        rest=habits("rest", len(rest)),
        recent_wins=await _recent_wins(session, scope, wins),
    )


async def _recent_wins(session: AsyncSession, scope: Scope, wins: Any) -> list[RecentWin]:
    touches = (
        sa.select(sa.func.count())
        .where(activity.c.org_id == scope.org_id, _touch(wins, PLAYBOOK_KINDS))
        .scalar_subquery()
    )
    rows = await fetch(
        session,
        sa.select(wins, touches.label("touches"))
        .where(wins.c.grp == "top")
        .order_by(wins.c.won_at.desc(), wins.c.id)
        .limit(RECENT_WINS),
    )
    people = {p.id: p for p in scope.people}
    return [
        RecentWin(
            deal_id=row.id,
            title=row.title,
            owner=person_ref(people[row.owner_id]),
            amount_minor=row.amount_minor,
            currency=row.currency,
            won_at=row.won_at,
            cycle_days=round((row.won_at - row.created_at).total_seconds() / DAY, 2),
            touches=int(row.touches),
        )
        for row in rows
    ]


async def win_story(session: AsyncSession, principal: Principal, deal_id: uuid.UUID) -> WinStory:
    """A won deal of someone on the caller's leaderboard, with its timeline from the start: the team learns from
    it, though they may not open the deal itself."""
    scope = await resolve(session, principal, Filters(None, None, None, None, None), board=True)
    deal = (
        await session.scalars(
            select(Deal).where(
                col(Deal.id) == deal_id,
                col(Deal.org_id) == principal.org_id,
                col(Deal.deleted_at).is_(None),
                col(Deal.status) == DealStatus.won.value,
                col(Deal.owner_id).in_(scope.ids),
            )
        )
    ).first()
    if deal is None or deal.won_at is None:
        raise NotFound("No such won deal of your team.")
    viewer = await viewer_for(session, principal)
    if not viewer.everything:
        # The story is the owner's work on the deal: read it as someone who sees the owner's records would.
        viewer = Viewer(principal, False, viewer.owner_ids | {deal.owner_id}, viewer.charge_ids)
    items = await feed.oldest_first(session, viewer, deal.id, STORY_ITEMS)
    owner = next(p for p in scope.people if p.id == deal.owner_id)
    return WinStory(
        deal_id=deal.id,
        title=deal.title,
        owner=person_ref(owner),
        amount_minor=deal.amount_minor,
        currency=deal.currency,
        created_at=deal.created_at,
        won_at=deal.won_at,
        items=items,
    )


# Retention


async def retention(session: AsyncSession, scope: Scope, *, repeat_days: int) -> Retention:
    """Clients count for the owner of their first purchase; whether they bought again is read from every win of the
    organisation (a client who came back to a colleague did come back)."""
    client_id = sa.func.coalesce(deal.c.company_id, deal.c.contact_id)
    wins = (
        sa.select(
            client_id.label("client_id"),
            sa.case((deal.c.company_id.is_not(None), "company"), else_="contact").label("kind"),
            deal.c.won_at,
            _in_currency(scope).label("amount"),
            deal.c.owner_id,
        )
        .where(
            *_live_deals(scope),
            deal.c.status == DealStatus.won.value,
            client_id.is_not(None),
            deal.c.won_at < scope.period.end,
        )
        .cte("wins")
    )
    clients = (
        sa.select(
            wins.c.client_id, wins.c.kind, sa.func.min(wins.c.won_at).label("first_at"), sa.func.count().label("n")
        )
        .group_by(wins.c.client_id, wins.c.kind)
        .cte("clients")
    )
    first_win = wins.alias("first_win")
    mine = (
        sa.select(
            clients.c.client_id,
            clients.c.kind,
            clients.c.first_at,
            clients.c.n,
            sa.func.sum(first_win.c.amount).label("amount"),
            # The first purchase's owner (PostgreSQL has no max() of uuids; one id as text either way).
            sa.func.min(sa.cast(first_win.c.owner_id, sa.String)).label("owner_id"),
        )
        .join(
            first_win,
            sa.and_(first_win.c.client_id == clients.c.client_id, first_win.c.won_at == clients.c.first_at),
        )
        .where(scope.counted(first_win.c.owner_id, first_win.c.won_at, since_start=False))
        .group_by(clients.c.client_id, clients.c.kind, clients.c.first_at, clients.c.n)
        .cte("mine")
    )
    buyers, repeat = (
        await fetch(
            session,
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((mine.c.n >= 2, 1), else_=0)), 0)),
        )
    )[0]
    again = wins.alias("again")
    second = (
        sa.select(sa.func.min(again.c.won_at))
        .where(again.c.client_id == mine.c.client_id, again.c.won_at > mine.c.first_at)
        .scalar_subquery()
    )
    lapsed = (
        sa.select(mine)
        .where(
            mine.c.first_at >= scope.period.start - timedelta(days=repeat_days),
            mine.c.first_at < scope.period.end - timedelta(days=repeat_days),
            sa.or_(second.is_(None), seconds_between(second, mine.c.first_at) > repeat_days * DAY),
        )
        .cte("lapsed")
    )
    no_repeat, no_repeat_amount = (
        await fetch(session, sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(lapsed.c.amount), 0)))
    )[0]
    company, contact = sa.inspect(Company).local_table, sa.inspect(Contact).local_table
    name = sa.func.coalesce(company.c.name, contact.c.name)
    largest = await fetch(
        session,
        sa.select(lapsed, name.label("name"))
        .outerjoin(company, sa.and_(lapsed.c.kind == "company", company.c.id == lapsed.c.client_id))
        .outerjoin(contact, sa.and_(lapsed.c.kind == "contact", contact.c.id == lapsed.c.client_id))
        .order_by(lapsed.c.amount.desc(), lapsed.c.first_at, lapsed.c.client_id)
        .limit(LAPSED_SHOWN),
    )
    return Retention(
        **header(scope),
        repeat_days=repeat_days,
        buyers=int(buyers),
        repeat_buyers=int(repeat),
        repeat_rate=ratio(int(repeat), int(buyers)),
        no_repeat=int(no_repeat),
        no_repeat_amount_minor=int(no_repeat_amount),
        no_repeat_clients=[
            LapsedClient(
                kind=row.kind,
                id=row.client_id,
                name=row.name or "",
                owner_id=uuid.UUID(row.owner_id),
                first_won_at=row.first_at,
                amount_minor=int(row.amount),
            )
            for row in largest
        ],
        lost_reasons=await lost_reasons(session, scope),
    )


async def lost_reasons(session: AsyncSession, scope: Scope) -> list[LostReasonRow]:
    """Deals lost in the period by reason: why clients refuse."""
    reason = sa.inspect(LostReason).local_table
    amount = sa.func.sum(_in_currency(scope))
    rows = await fetch(
        session,
        sa.select(reason.c.id, reason.c.name, sa.func.count(), amount)
        .join(reason, reason.c.id == deal.c.lost_reason_id)
        .where(
            *_live_deals(scope),
            deal.c.status == DealStatus.lost.value,
            scope.counted(deal.c.owner_id, deal.c.lost_at),
        )
        .group_by(reason.c.id, reason.c.name, reason.c.position)
        # Ties in the organisation's own order of reasons (names sort differently on the two databases).
        .order_by(amount.desc(), sa.func.count().desc(), reason.c.position, reason.c.id),
    )
    return [
        LostReasonRow(lost_reason_id=rid, name=rname, deals=int(n), amount_minor=int(total or 0))
        for rid, rname, n, total in rows
    ]
