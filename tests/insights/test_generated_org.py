"""A generated organisation (seeded, so every run is the same): eight reps in two teams and a few hundred deals with
their stage history and activities, written in bulk. One rep is clearly better than the others: a higher win rate,
more touches per deal, a first touch sooner, shorter cycles and bigger deals. The leaderboard must rank them first
in the top quartile, and the playbook must show what sets the top quartile apart and list their wins. Every number
of both is also worked out here, in Python, from the generated rows (docs/insights.md §2, §3)."""

import itertools
import math
import random
import statistics
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.activities.models import TOUCH_KINDS, Activity
from api.auth.models import Organization, Role, User
from api.core.types import fold, utcnow
from api.deals.models import Deal, DealStageEvent, LostReason, Pipeline, Stage, StageKind
from tests.factories import make_org, make_team, make_user, sign_in
from tests.feed.crm import API, Json, ok

pytestmark = pytest.mark.asyncio

SEED = 20260417
DAY = timedelta(days=1)
PERIOD_DAYS = 120
PLAYBOOK_KINDS = ("call", "meeting", "email", "note")
ZONE = ZoneInfo("Pacific/Auckland")


@dataclass(frozen=True)
class Style:
    """How a rep sells."""

    deals: int
    win: float  # chance a closed deal is won
    touches: tuple[int, int]  # activities on a deal before it closes
    first_touch_days: tuple[float, float]  # from the deal's creation
    cycle_days: tuple[float, float]  # from creation to close
    amount: tuple[int, int]  # minor units


STAR = Style(deals=48, win=0.75, touches=(7, 11), first_touch_days=(0.0, 1.0), cycle_days=(6, 20), amount=(4, 9))
USUAL = Style(deals=30, win=0.35, touches=(1, 5), first_touch_days=(2.0, 12.0), cycle_days=(20, 60), amount=(1, 4))
EURO_THOUSANDS = 100_000


@dataclass
class Org:
    """What was generated: the rows as inserted, to work the expected numbers out from."""

    org: Organization
    admin: User
    reps: list[User]
    star: User
    deals: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    activities: list[dict[str, Any]] = field(default_factory=list)
    open_stages: dict[uuid.UUID, str] = field(default_factory=dict)  # by position


def _row(rng: random.Random, org_id: uuid.UUID, created: datetime, /, **values: Any) -> dict[str, Any]:
    return {
        "id": uuid.UUID(int=rng.getrandbits(128), version=4),
        "org_id": org_id,
        "created_at": created,
        "updated_at": created,
        "version": 1,
        "deleted_at": None,
        **values,
    }


def _second(moment: datetime) -> datetime:
    """To the whole second: no database rounds differently what it does not have to round."""
    return moment.replace(microsecond=0)


async def _generate(session: AsyncSession) -> Org:
    rng = random.Random(SEED)
    org = await make_org(session, "Generated")
    admin = await make_user(session, org, role=Role.admin, name="Admin")
    teams = [await make_team(session, org, name=name) for name in ("Norte", "Sur")]
    reps = [await make_user(session, org, role=Role.rep, name=f"Rep {n}", team=teams[n % 2]) for n in range(1, 9)]
    star = reps[5]  # Rep 6: not first by name, nor by anything but the numbers
    made = Org(org, admin, reps, star)

    pipeline = (await session.scalars(select(Pipeline).where(col(Pipeline.org_id) == org.id))).one()
    stages = list(
        await session.scalars(select(Stage).where(col(Stage.pipeline_id) == pipeline.id).order_by(col(Stage.position)))
    )
    open_stages = [s for s in stages if s.kind == StageKind.open.value]
    made.open_stages = {s.id: s.name for s in open_stages}
    won_stage = next(s for s in stages if s.kind == StageKind.won.value)
    lost_stage = next(s for s in stages if s.kind == StageKind.lost.value)
    reasons = list(await session.scalars(select(LostReason.id).where(col(LostReason.org_id) == org.id)))

    now = _second(utcnow())
    for rep in reps:
        style = STAR if rep is star else USUAL
        for number in range(style.deals):
            created = _second(now - timedelta(days=rng.uniform(2, 170)))
            close = _second(created + timedelta(days=rng.uniform(*style.cycle_days)))
            # Not closed yet when its close is still to come.
            outcome = "won" if rng.random() < style.win else "lost"
            if close >= now - timedelta(hours=1):
                outcome = "open"
            title = f"{rep.name} deal {number + 1}"
            deal = _row(
                rng,
                org.id,
                created,
                title=title,
                title_folded=fold(title),
                company_id=None,
                contact_id=None,
                pipeline_id=pipeline.id,
                owner_id=rep.id,
                amount_minor=rng.randint(*style.amount) * EURO_THOUSANDS + rng.randint(0, 99_999),
                currency="EUR",
                expected_close_on=None,
                status=outcome,
                lost_reason_id=rng.choice(reasons) if outcome == "lost" else None,
                lost_note=None,
                won_at=close if outcome == "won" else None,
                lost_at=close if outcome == "lost" else None,
                previous_deal_id=None,
                last_activity_at=None,
                rots_at=None,
                custom={},
            )
            # Stages: all four and then won; some and then lost; some, still open.
            last = now if outcome == "open" else close
            path = list(open_stages)
            if outcome != "won":
                path = path[: rng.randint(1, len(open_stages))]
            span = (last - created) / (len(path) + 1)
            steps = [(stage, _second(created + span * index)) for index, stage in enumerate(path)]
            if outcome != "open":
                steps.append((won_stage if outcome == "won" else lost_stage, close))
            previous: tuple[Stage, datetime] | None = None
            for stage, at in steps:
                made.events.append(
                    _row(
                        rng,
                        org.id,
                        at,
                        deal_id=deal["id"],
                        from_stage_id=previous[0].id if previous else None,
                        to_stage_id=stage.id,
                        at=at,
                        by_id=rep.id,
                        seconds_in_previous=int((at - previous[1]).total_seconds()) if previous else None,
                    )
                )
                previous = (stage, at)
            assert previous is not None
            deal["stage_id"], deal["stage_entered_at"] = previous[0].id, previous[1]
            made.deals.append(deal)

            # Touches up to the close: the first some days after the deal was made (now and then the call that
            # opened it, a little before), the rest spread until the close; and now and then one after a win.
            touches = rng.randint(*style.touches)
            first = created + timedelta(days=rng.uniform(*style.first_touch_days))
            if rng.random() < 0.1:
                first = created - timedelta(hours=rng.uniform(1, 20))
            first = min(first, last - timedelta(minutes=10))
            moments = [first] + [first + (last - first) * rng.random() for _ in range(touches - 1)]
            if outcome == "won" and rng.random() < 0.3:
                moments.append(close + timedelta(days=rng.uniform(0.1, 1)))
            for moment in moments:
                done = _second(min(moment, now))
                kind = rng.choices(PLAYBOOK_KINDS, weights=(5, 2, 3, 1))[0]
                made.activities.append(_activity(rng, org.id, rep, deal["id"], kind, done))
            # Work on no deal: counts on the leaderboard, not in the playbook.
            if rng.random() < 0.3:
                done = _second(now - timedelta(days=rng.uniform(0, 150)))
                made.activities.append(_activity(rng, org.id, rep, None, rng.choice(("call", "email")), done))

    tables: list[tuple[Any, list[dict[str, Any]]]] = [
        (Deal, made.deals),
        (DealStageEvent, made.events),
        (Activity, made.activities),
    ]
    for model, rows in tables:
        table: sa.Table = model.__table__
        assert set(table.c.keys()) == set(rows[0]), (table.name, set(table.c.keys()) ^ set(rows[0]))
        await session.execute(sa.insert(table), rows)
    await session.commit()
    return made


def _activity(
    rng: random.Random, org_id: uuid.UUID, rep: User, deal_id: uuid.UUID | None, kind: str, done: datetime
) -> dict[str, Any]:
    return _row(
        rng,
        org_id,
        done,
        kind=kind,
        subject=kind.title(),
        body=None,
        company_id=None,
        contact_id=None,
        deal_id=deal_id,
        owner_id=rep.id,
        assignee_id=rep.id,
        due_at=None,
        done_at=done,
        duration_seconds=None,
        direction=None,
        outcome=None,
        next_step_id=None,
        mentioned_ids=[],
    )


# What the numbers must be, worked out from the rows


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _days(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 86_400, 2)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _expected_board(made: Org, start: datetime, end: datetime) -> list[Json]:
    rows = []
    for rep in made.reps:
        won = [d for d in made.deals if d["owner_id"] == rep.id and d["won_at"] and start <= d["won_at"] < end]
        lost = [d for d in made.deals if d["owner_id"] == rep.id and d["lost_at"] and start <= d["lost_at"] < end]
        done = [a for a in made.activities if a["owner_id"] == rep.id and start <= a["done_at"] < end]
        calls = sum(1 for a in done if a["kind"] == "call")
        cycles = [(d["won_at"] - d["created_at"]).total_seconds() for d in won]
        rows.append(
            {
                "user_id": str(rep.id),
                "name": rep.name,
                "won": len(won),
                "won_amount_minor": sum(d["amount_minor"] for d in won),
                "lost": len(lost),
                "win_rate": _ratio(len(won), len(won) + len(lost)),
                "cycle_days_mean": _days(statistics.mean(cycles)) if cycles else None,
                "cycle_days_median": _days(_median(cycles)),
                "activities": len(done),
                "calls": calls,
                "activities_per_win": _ratio(len(done), len(won)),
                "calls_per_win": _ratio(calls, len(won)),
            }
        )
    rows.sort(key=lambda r: (-r["won_amount_minor"], -r["won"], -(r["win_rate"] or 0), r["name"].casefold()))
    quartile = math.ceil(len(rows) / 4)
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
        row["top_quartile"] = rank <= quartile and row["won"] > 0
    return rows


def _habits(made: Org, wins: list[dict[str, Any]], reps: int) -> Json:
    on_deal: dict[uuid.UUID, list[dict[str, Any]]] = {d["id"]: [] for d in wins}
    for a in made.activities:
        if a["deal_id"] in on_deal:
            on_deal[a["deal_id"]].append(a)
    per_kind: dict[str, list[int]] = {k: [] for k in PLAYBOOK_KINDS}
    to_first: list[float] = []
    gaps: list[float] = []
    for deal in wins:
        before = [a for a in on_deal[deal["id"]] if a["done_at"] <= deal["won_at"]]
        counts = Counter(a["kind"] for a in before)
        for kind in PLAYBOOK_KINDS:
            per_kind[kind].append(counts[kind])
        touches = sorted(a["done_at"] for a in before if a["kind"] in TOUCH_KINDS)
        if touches:
            to_first.append(max(0.0, (touches[0] - deal["created_at"]).total_seconds()))
            gaps += [(b - a).total_seconds() for a, b in itertools.pairwise(touches)]
    stays: dict[uuid.UUID, list[float]] = {}
    for event in made.events:
        if event["deal_id"] in on_deal and event["from_stage_id"] in made.open_stages:
            stays.setdefault(event["from_stage_id"], []).append(event["seconds_in_previous"])
    return {
        "reps": reps,
        "wins": len(wins),
        "days_in_stage": [
            {"stage_id": str(stage_id), "name": name, "median_days": _days(_median(stays[stage_id]))}
            for stage_id, name in made.open_stages.items()
            if stage_id in stays
        ],
        "touches_per_win": {k: _round(_median(v)) for k, v in per_kind.items()},
        "days_to_first_touch": _days(_median(to_first)),
        "days_between_touches": _days(_median(gaps)),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 2)


def _close(actual: Any, expected: Any) -> bool:
    """Equal, but days may differ in the last decimal (a median of seconds divided by 86,400 and rounded)."""
    if isinstance(expected, float) and isinstance(actual, float):
        return abs(actual - expected) <= 0.011
    return bool(actual == expected)


def _compare(actual: Json, expected: Json, where: str) -> None:
    for key, value in expected.items():
        if isinstance(value, dict):
            _compare(actual[key], value, f"{where}.{key}")
        elif isinstance(value, list):
            assert len(actual[key]) == len(value), (f"{where}.{key}", actual[key], value)
            for index, (got, wanted) in enumerate(zip(actual[key], value, strict=True)):
                _compare(got, wanted, f"{where}.{key}[{index}]")
        else:
            assert _close(actual[key], value), (f"{where}.{key}", actual[key], value)


async def test_the_best_rep_of_a_generated_organisation_leads_and_shows_how(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    made = await _generate(session)
    headers = await sign_in(client, made.admin)
    # Days are the organisation's: far from UTC, the period's ends move by half a day.
    settings = {"settings": {"time_zone": ZONE.key}}
    ok(await client.patch(f"{API}/organization", json=settings, headers=headers))
    today = utcnow().astimezone(ZONE).date()
    first_day = today - timedelta(days=PERIOD_DAYS - 1)
    period = {"from": str(first_day), "to": str(today)}
    start = datetime.combine(first_day, time(), ZONE).astimezone(UTC)
    end = datetime.combine(today + DAY, time(), ZONE).astimezone(UTC)
    assert len(made.deals) == 48 + 7 * 30 and len(made.activities) > 700

    # The leaderboard: the best rep first, in the top quartile; every number as worked out from the rows.
    board = ok(await client.get(f"{API}/insights/leaderboard", params=period, headers=headers))
    assert board["period"] == {"first_day": str(first_day), "last_day": str(today), "days": PERIOD_DAYS}
    rows = board["reps"]
    assert rows[0]["user_id"] == str(made.star.id) and rows[0]["top_quartile"] is True
    expected = _expected_board(made, start, end)
    assert [r["name"] for r in rows] == [r["name"] for r in expected]
    for actual, wanted in zip(rows, expected, strict=True):
        _compare(actual, wanted, actual["name"])
    star = rows[0]
    others = rows[1:]
    assert star["win_rate"] > max(r["win_rate"] or 0 for r in others)
    assert star["cycle_days_median"] < min(r["cycle_days_median"] for r in others if r["won"])
    assert star["won_amount_minor"] / star["won"] > max(r["won_amount_minor"] / r["won"] for r in others if r["won"])
    assert [r["top_quartile"] for r in rows] == [True, True] + [False] * 6

    # The playbook: the top quartile (the best rep and the runner-up) touches its deals more and sooner.
    playbook = ok(await client.get(f"{API}/insights/playbook", params=period, headers=headers))
    top_ids = {uuid.UUID(r["user_id"]) for r in rows if r["top_quartile"]}
    won = sorted(
        (d for d in made.deals if d["won_at"] and start <= d["won_at"] < end),
        key=lambda d: (d["won_at"], d["id"]),
        reverse=True,
    )
    top_wins = [d for d in won if d["owner_id"] in top_ids]
    rest_wins = [d for d in won if d["owner_id"] not in top_ids]
    _compare(playbook["top"], _habits(made, top_wins, 2), "top")
    _compare(playbook["rest"], _habits(made, rest_wins, 6), "rest")
    top, rest = playbook["top"], playbook["rest"]
    assert sum(top["touches_per_win"].values()) > sum(rest["touches_per_win"].values())
    assert top["touches_per_win"]["call"] > rest["touches_per_win"]["call"]
    assert top["days_to_first_touch"] < rest["days_to_first_touch"]
    assert top["days_between_touches"] < rest["days_between_touches"]
    assert [s["name"] for s in top["days_in_stage"]] == ["Lead", "Qualified", "Proposal", "Negotiation"]

    # Their latest wins, newest first, the best rep's among them: each opens its story.
    recent = playbook["recent_wins"]
    latest = sorted(top_wins, key=lambda d: (-d["won_at"].timestamp(), d["id"]))[:10]
    assert [r["deal_id"] for r in recent] == [str(d["id"]) for d in latest]
    star_wins = {str(d["id"]) for d in top_wins if d["owner_id"] == made.star.id}
    assert star_wins & {r["deal_id"] for r in recent}
    for entry, deal in zip(recent, latest, strict=True):
        assert entry["amount_minor"] == deal["amount_minor"]
        assert entry["cycle_days"] == round((deal["won_at"] - deal["created_at"]).total_seconds() / 86_400, 2)
        assert entry["touches"] == sum(
            1
            for a in made.activities
            if a["deal_id"] == deal["id"] and a["done_at"] <= deal["won_at"] and a["kind"] in PLAYBOOK_KINDS
        )
    story = ok(await client.get(f"{API}/insights/wins/{recent[0]['deal_id']}", headers=headers))
    assert story["deal_id"] == recent[0]["deal_id"] and story["owner"]["user_id"] == recent[0]["owner"]["user_id"]

    # A rep of the best rep's team sees the same ranking among their teammates.
    teammate = next(r for r in made.reps if r.team_id == made.star.team_id and r is not made.star)
    theirs = ok(await client.get(f"{API}/insights/leaderboard", params=period, headers=await sign_in(client, teammate)))
    team_names = [
        r["name"] for r in expected if r["user_id"] in {str(u.id) for u in made.reps if u.team_id == made.star.team_id}
    ]
    assert [r["name"] for r in theirs["reps"]] == team_names
    assert theirs["reps"][0]["user_id"] == str(made.star.id) and theirs["reps"][0]["top_quartile"] is True
