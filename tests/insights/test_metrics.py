"""Every insight's numbers against the ones worked out by hand (tests/insights/fixture.py says how each was found),
over HTTP, on both databases: funnel, leaderboard, playbook, retention, discipline, data quality, adoption and
diagnosis; what a rep and a manager count; a team's go-live; and the period's edges in the organisation's time zone."""

from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import sign_in
from tests.insights.fixture import BASE, END, GO_LIVE_AT, PERIOD, START, World, at, build

pytestmark = pytest.mark.asyncio

API = "/api/v1"
INSIGHTS = f"{API}/insights"
Json = dict[str, Any]


@pytest.fixture
async def world(session: AsyncSession) -> World:
    return await build(session)


@pytest.fixture
async def admin(client: httpx.AsyncClient, world: World) -> dict[str, str]:
    return await sign_in(client, world.users["admin"])


async def insight(client: httpx.AsyncClient, headers: dict[str, str], name: str, **params: Any) -> Json:
    query = {**PERIOD, **params}
    response = await client.get(f"{INSIGHTS}/{name}", params=query, headers=headers)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def who(world: World, rows: list[Json]) -> list[str]:
    """The rows' people, as the fixture's keys, in the order given."""
    keys = {str(u.id): key for key, u in world.users.items()}
    return [keys[r["user_id"]] for r in rows]


def by_person(world: World, rows: list[Json], *fields: str) -> dict[str, tuple[Any, ...]]:
    return {key: tuple(r[f] for f in fields) for key, r in zip(who(world, rows), rows, strict=True)}


def instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


FUNNEL_FIELDS = (
    "entered",
    "advanced",
    "lost",
    "lost_amount_minor",
    "conversion_next",
    "conversion_won",
    "median_days",
    "p75_days",
)


async def test_funnel(client: httpx.AsyncClient, world: World, admin: dict[str, str]) -> None:
    funnel = await insight(client, admin, "funnel")
    assert funnel["period"] == {"first_day": "2025-01-01", "last_day": "2025-03-31", "days": 90}
    assert funnel["currency"] == "EUR"
    # D8 (created before the period), D12 (at its end) and D10 (before South's go-live) are not in the cohort;
    # D3 is won in USD: a deal won, not an amount.
    assert (funnel["deals"], funnel["won"], funnel["won_amount_minor"], funnel["lost"]) == (11, 6, 54_000, 4)
    assert [s["name"] for s in funnel["stages"]] == ["Lead", "Qualified", "Proposal", "Negotiation"]
    assert [s["stage_id"] for s in funnel["stages"]] == [
        world.id(n) for n in ("Lead", "Qualified", "Proposal", "Negotiation")
    ]
    rows = {s["name"]: tuple(s[f] for f in FUNNEL_FIELDS) for s in funnel["stages"]}
    assert rows == {
        "Lead": (11, 9, 2, 3_000, 0.8182, 0.5455, 4.0, 11.0),
        # D14 skipped Qualified (Lead → Proposal) and still counts as having passed it.
        "Qualified": (9, 8, 1, 4_000, 0.8889, 0.6667, 5.0, 6.5),
        "Proposal": (8, 6, 1, 6_000, 0.75, 0.75, 10.0, 11.0),
        # Only D5 stayed in Negotiation; every won deal (D2 straight from Lead) passed it.
        "Negotiation": (6, 6, 0, 0, 1.0, 1.0, 5.0, 5.0),
    }
    # The most value lost, though Lead lost more deals.
    assert funnel["weakest_stage_id"] == world.id("Proposal")

    # A rep counts their own deals: Ana's D1-D4.
    ana = await insight(client, await sign_in(client, world.users["ana"]), "funnel")
    assert (ana["deals"], ana["won"], ana["won_amount_minor"], ana["lost"]) == (4, 3, 15_000, 1)
    assert [(s["entered"], s["advanced"], s["lost"]) for s in ana["stages"]] == [
        (4, 4, 0),
        (4, 3, 1),
        (3, 3, 0),
        (3, 3, 0),
    ]
    assert ana["weakest_stage_id"] == world.id("Qualified")
    # A manager, their team and the teams below it: everyone's but Diego's (South).
    marta = await insight(client, await sign_in(client, world.users["marta"]), "funnel")
    assert (marta["deals"], marta["won"], marta["won_amount_minor"], marta["lost"]) == (10, 5, 43_000, 4)


LEADERBOARD_FIELDS = (
    "rank",
    "top_quartile",
    "won",
    "won_amount_minor",
    "lost",
    "win_rate",
    "cycle_days_mean",
    "cycle_days_median",
    "activities",
    "calls",
    "activities_per_win",
    "calls_per_win",
)


async def test_leaderboard(client: httpx.AsyncClient, world: World, admin: dict[str, str]) -> None:
    board = await insight(client, admin, "leaderboard")
    assert board["period"]["days"] == 90 and board["currency"] == "EUR"
    # Bruno before Diego: the same amount, more deals won (Diego's better win rate comes after that).
    assert who(world, board["reps"]) == ["carla", "ana", "bruno", "diego", "marta"]
    assert by_person(world, board["reps"], *LEADERBOARD_FIELDS) == {
        "carla": (1, True, 1, 20_000, 0, 1.0, 10.0, 10.0, 5, 0, 5.0, 0.0),
        # D3 (USD) is a deal won without an amount; e2 and e3 fall outside the period, e1 and e4 inside.
        "ana": (2, True, 3, 15_000, 1, 0.75, 20.0, 20.0, 13, 5, 4.3333, 1.6667),
        # D8 was created before the period and won in it.
        "bruno": (3, False, 2, 11_000, 2, 0.5, 22.5, 22.5, 4, 3, 2.0, 1.5),
        "diego": (4, False, 1, 11_000, 0, 1.0, 12.0, 12.0, 2, 1, 2.0, 1.0),
        "marta": (5, False, 1, 2_000, 1, 0.5, 57.0, 57.0, 0, 0, 0.0, 0.0),
    }
    carla = board["reps"][0]
    assert (carla["name"], carla["team_id"]) == ("Carla Cruz", world.id("north_east"))

    # A rep sees their team's board (not the team below it): top quartile ⌈3/4⌉ = 1.
    ana = await insight(client, await sign_in(client, world.users["ana"]), "leaderboard")
    assert by_person(world, ana["reps"], "rank", "top_quartile", "won_amount_minor") == {
        "ana": (1, True, 15_000),
        "bruno": (2, False, 11_000),
        "marta": (3, False, 2_000),
    }
    # A manager sees their team and the teams below: ⌈4/4⌉ = 1.
    marta = await insight(client, await sign_in(client, world.users["marta"]), "leaderboard")
    assert by_person(world, marta["reps"], "rank", "top_quartile") == {
        "carla": (1, True),
        "ana": (2, False),
        "bruno": (3, False),
        "marta": (4, False),
    }


async def test_playbook(client: httpx.AsyncClient, world: World, admin: dict[str, str]) -> None:
    playbook = await insight(client, admin, "playbook")
    top, rest = playbook["top"], playbook["rest"]
    assert (top["reps"], top["wins"], rest["reps"], rest["wins"]) == (2, 4, 3, 4)
    # Median per won deal, deals without any counting 0; a11 is a task, a6 came after the win, a8 (Bruno's) counts.
    assert top["touches_per_win"] == {"call": 1.0, "meeting": 0.5, "email": 0.5, "note": 0.5}
    assert rest["touches_per_win"] == {"call": 0.5, "meeting": 0.0, "email": 0.0, "note": 0.0}
    # a1 came the day before D1 existed: 0 days, not -1.
    assert (top["days_to_first_touch"], rest["days_to_first_touch"]) == (1.0, 1.0)
    assert (top["days_between_touches"], rest["days_between_touches"]) == (3.5, 9.0)
    assert [(world.id(s["name"]) == s["stage_id"], s["name"], s["median_days"]) for s in top["days_in_stage"]] == [
        (True, "Lead", 15.0),
        (True, "Qualified", 3.0),
        (True, "Proposal", 5.0),
    ]
    assert [(s["name"], s["median_days"]) for s in rest["days_in_stage"]] == [
        ("Lead", 16.0),
        ("Qualified", 6.0),
        ("Proposal", 10.0),
        ("Negotiation", 5.0),
    ]
    recent = [
        (
            r["deal_id"],
            r["title"],
            r["owner"]["user_id"],
            r["amount_minor"],
            r["currency"],
            instant(r["won_at"]),
            r["cycle_days"],
            r["touches"],
        )
        for r in playbook["recent_wins"]
    ]
    assert recent == [
        (world.id("D9"), "D9", world.id("carla"), 20_000, "EUR", at(3, 11), 10.0, 4),
        (world.id("D3"), "D3", world.id("ana"), 7_000, "USD", at(2, 21), 20.0, 0),
        (world.id("D2"), "D2", world.id("ana"), 5_000, "EUR", at(2, 9), 30.0, 2),
        (world.id("D1"), "D1", world.id("ana"), 10_000, "EUR", at(1, 15), 10.0, 5),
    ]
    # Each opens its story.
    story = await client.get(f"{INSIGHTS}/wins/{world.id('D9')}", headers=admin)
    assert story.status_code == 200, story.text
    assert (story.json()["deal_id"], story.json()["owner"]["user_id"]) == (world.id("D9"), world.id("carla"))

    # Ana's board is North (Ana, Bruno, Marta): she is its top quartile.
    mine = await insight(client, await sign_in(client, world.users["ana"]), "playbook")
    assert (mine["top"]["reps"], mine["top"]["wins"], mine["rest"]["reps"], mine["rest"]["wins"]) == (1, 3, 2, 3)
    assert [r["title"] for r in mine["recent_wins"]] == ["D3", "D2", "D1"]


async def test_retention(client: httpx.AsyncClient, world: World, admin: dict[str, str]) -> None:
    kept = await insight(client, admin, "retention", repeat_days=60)
    assert kept["repeat_days"] == 60
    # A client counts for the owner of its first win, from their go-live: Foxtrot's (D10) is before South's.
    assert (kept["buyers"], kept["repeat_buyers"], kept["repeat_rate"]) == (8, 2, 0.25)
    # Hotel bought again 82 days after its first win: too late for a 60-day window.
    assert (kept["no_repeat"], kept["no_repeat_amount_minor"]) == (4, 21_000)
    lapsed = [
        (c["kind"], c["id"], c["name"], c["owner_id"], instant(c["first_won_at"]), c["amount_minor"])
        for c in kept["no_repeat_clients"]
    ]
    assert lapsed == [
        ("company", world.id("Charlie"), "Charlie", world.id("bruno"), at(1, 26, 5), 8_000),
        ("company", world.id("Golf"), "Golf", world.id("ana"), at(11, 15, year=2024), 7_000),
        ("company", world.id("Hotel"), "Hotel", world.id("bruno"), at(11, 20, year=2024), 3_000),
        ("contact", world.id("Dora"), "Dora", world.id("bruno"), at(1, 9), 3_000),
    ]
    # Same amount: more deals first.
    assert [(r["lost_reason_id"], r["name"], r["deals"], r["amount_minor"]) for r in kept["lost_reasons"]] == [
        (world.id("Price too high"), "Price too high", 2, 6_000),
        (world.id("Chose a competitor"), "Chose a competitor", 1, 6_000),
        (world.id("No budget"), "No budget", 1, 1_000),
    ]

    # A 90-day window closes in the period for first wins from 2024-10-03 to 2024-12-31: Golf (Hotel came back).
    longer = await insight(client, admin, "retention", repeat_days=90)
    assert (longer["no_repeat"], longer["no_repeat_amount_minor"]) == (1, 7_000)
    assert [c["name"] for c in longer["no_repeat_clients"]] == ["Golf"]
    assert (longer["buyers"], longer["repeat_buyers"]) == (8, 2)


async def test_discipline(client: httpx.AsyncClient, world: World, admin: dict[str, str]) -> None:
    fields = ("due", "done_on_time", "done_late", "overdue", "late_share", "mean_delay_hours")
    found = await insight(client, admin, "discipline")
    assert who(world, found["people"]) == ["ana", "bruno", "diego", "carla", "marta"]
    assert by_person(world, found["people"], *fields) == {
        # t2 done exactly at its due time is on time; t6, due at the period's end, is not counted.
        "ana": (5, 2, 2, 1, 0.5, 30.0),
        # t7 is Ana's task assigned to Bruno, due at the period's first instant.
        "bruno": (1, 0, 0, 1, None, None),
        # a19 was due before South's go-live.
        "diego": (1, 0, 1, 0, 1.0, 6.0),
        "carla": (1, 1, 0, 0, 0.0, None),
        "marta": (0, 0, 0, 0, None, None),
    }
    ana = await insight(client, await sign_in(client, world.users["ana"]), "discipline")
    assert by_person(world, ana["people"], *fields) == {"ana": (5, 2, 2, 1, 0.5, 30.0)}
    marta = await insight(client, await sign_in(client, world.users["marta"]), "discipline")
    assert who(world, marta["people"]) == ["ana", "bruno", "carla", "marta"]


async def test_data_quality(client: httpx.AsyncClient, world: World, admin: dict[str, str]) -> None:
    quality = await insight(client, admin, "data-quality")
    assert quality["threshold"] == 80
    assert who(world, quality["people"]) == ["carla", "diego", "bruno", "ana", "marta"]
    fields = ("clients", "mean_completeness", "well_developed")
    assert by_person(world, quality["people"], *fields) == {
        "carla": (1, 90.0, 1),
        "diego": (1, 90.0, 1),
        # Charlie is exactly 80% complete; Dora (83%) had no activity in the period.
        "bruno": (3, 54.4, 1),
        # Alba (4 of 6) is 66.67%, not 67%: the mean is of the shares.
        "ana": (5, 43.3, 1),
        "marta": (0, None, 0),
    }
    stricter = await insight(client, admin, "data-quality", threshold=81)
    assert by_person(world, stricter["people"], "well_developed") == {
        "carla": (1,),
        "diego": (1,),
        "bruno": (0,),
        "ana": (1,),
        "marta": (0,),
    }

    # A card's completeness is the client card's score.
    scores = {}
    for name in ("Alfa", "Bravo", "Golf", "Charlie", "Dora", "Echo", "Foxtrot", "Alba"):
        response = await client.get(f"{API}/clients/{world.id(name)}/card", headers=admin)
        assert response.status_code == 200, response.text
        scores[name] = response.json()["completeness"]["score"]
    assert scores == {
        "Alfa": 100,
        "Bravo": 50,
        "Golf": 0,
        "Charlie": 80,
        "Dora": 83,
        "Echo": 90,
        "Foxtrot": 90,
        "Alba": 67,
    }
    for person, name in (("carla", "Echo"), ("diego", "Foxtrot")):
        one = await insight(client, admin, "data-quality", user_id=world.id(person))
        assert [r["mean_completeness"] for r in one["people"]] == [scores[name]]


async def test_adoption(client: httpx.AsyncClient, world: World, admin: dict[str, str]) -> None:
    adoption = await insight(client, admin, "adoption")
    fields = ("active_days", "activities", "activities_per_day", "cards_created", "cards_improved")
    # Least active first: fewest active days, then fewest activities.
    assert who(world, adoption["people"]) == ["carla", "marta", "diego", "bruno", "ana"]
    assert by_person(world, adoption["people"], *fields) == {
        "marta": (1, 0, 0.0, 0, 0),
        "carla": (0, 5, 0.06, 0, 0),
        # Days and activities from South's go-live (59 days of the period).
        "diego": (1, 2, 0.03, 0, 1),
        "bruno": (1, 4, 0.04, 0, 2),
        # Three Bogota days (UTC would say four).
        "ana": (3, 15, 0.17, 1, 1),
    }
    assert {key: instant(seen) for key, (seen,) in by_person(world, adoption["people"], "last_seen_at").items()} == {
        "marta": at(3, 1),
        "carla": BASE,
        "diego": GO_LIVE_AT,
        "bruno": at(3, 15, 20),
        "ana": END,
    }
    teams = [
        (
            t["team_id"],
            t["name"],
            t["go_live_on"],
            t["is_live"],
            t["members"],
            t["active_members"],
            t["activities_per_member_day"],
        )
        for t in adoption["teams"]
    ]
    assert teams == [
        (world.id("north"), "North", None, True, 3, 3, 0.07),
        (world.id("north_east"), "North-East", None, True, 1, 0, 0.06),
        (world.id("south"), "South", "2025-02-01", True, 1, 1, 0.03),
    ]
    # A sign-in is being seen.
    before = datetime.now(tz=START.tzinfo)
    bruno = await sign_in(client, world.users["bruno"])
    mine = await insight(client, bruno, "adoption")
    assert who(world, mine["people"]) == ["bruno"]
    last_seen = instant(mine["people"][0]["last_seen_at"])
    assert last_seen is not None and last_seen >= before


def trend(value: float, previous: float) -> Json:
    return {"value": value, "previous": previous, "change": value - previous}


async def test_diagnosis(client: httpx.AsyncClient, world: World, admin: dict[str, str]) -> None:
    found = await insight(client, admin, "diagnosis", repeat_days=60)
    assert found["period"] == {"first_day": "2025-01-01", "last_day": "2025-03-31", "days": 90}
    assert found["previous_period"] == {"first_day": "2024-10-03", "last_day": "2024-12-31", "days": 90}
    assert found["pipeline_id"] == str(world.pipeline_id)
    assert found["weakest_stage"] == {
        "stage_id": world.id("Proposal"),
        "name": "Proposal",
        "lost": trend(1, 1),
        "lost_amount_minor": trend(6_000, 2_500),
    }
    assert found["lost_amount_minor"] == trend(13_000, 2_500)
    assert found["top_lost_reasons"] == [
        {
            "lost_reason_id": world.id("Price too high"),
            "name": "Price too high",
            "deals": trend(2, 0),
            "amount_minor": trend(6_000, 0),
        },
        {
            "lost_reason_id": world.id("Chose a competitor"),
            "name": "Chose a competitor",
            "deals": trend(1, 1),
            "amount_minor": trend(6_000, 2_500),
        },
        {
            "lost_reason_id": world.id("No budget"),
            "name": "No budget",
            "deals": trend(1, 0),
            "amount_minor": trend(1_000, 0),
        },
    ]
    assert found["clients_lost_after_first_purchase"] == trend(4, 1)
    assert found["clients_lost_amount_minor"] == trend(21_000, 4_000)
    assert found["overdue_tasks"] == trend(2, 1)
    assert found["tasks_done_late"] == trend(3, 1)


async def test_period_edges_are_whole_days_in_the_organisations_time_zone(
    client: httpx.AsyncClient, world: World, admin: dict[str, str]
) -> None:
    ana = world.id("ana")

    async def day(name: str, first: str, **params: Any) -> Json:
        return await insight(client, admin, name, **{"from": first, "to": first, **params})

    # 2025-01-01 in Bogota is [05:00Z, next day 05:00Z): e1 (at 05:00Z) in, e2 (a second before) out.
    board = await day("leaderboard", "2025-01-01", user_id=ana)
    assert board["period"] == {"first_day": "2025-01-01", "last_day": "2025-01-01", "days": 1}
    assert by_person(world, board["reps"], "activities", "calls") == {"ana": (1, 1)}
    # D5, created at the first instant, is the day's cohort.
    funnel = await day("funnel", "2025-01-01")
    assert (funnel["deals"], funnel["won"]) == (1, 1)
    # Her changes at 05:00Z on Jan 1 and 04:00Z on Jan 2 are one Bogota day; e1 and t7 were logged that day.
    adoption = await day("adoption", "2025-01-01", user_id=ana)
    assert by_person(world, adoption["people"], "active_days", "activities", "cards_created", "cards_improved") == {
        "ana": (1, 2, 1, 1)
    }
    discipline = await day("discipline", "2025-01-01", user_id=world.id("bruno"))
    assert by_person(world, discipline["people"], "due", "overdue") == {"bruno": (1, 1)}

    # The last day ends a second after e4; e3, at END, is the next day's.
    last = await day("leaderboard", "2025-03-31", user_id=ana)
    assert by_person(world, last["reps"], "activities", "calls") == {"ana": (1, 0)}
    after = await day("leaderboard", "2025-04-01", user_id=ana)
    assert by_person(world, after["reps"], "activities", "calls") == {"ana": (1, 0)}
    # D12, created at END, belongs to 2025-04-01; so does t6, due then.
    assert (await day("funnel", "2025-04-01"))["deals"] == 1
    assert by_person(world, (await day("discipline", "2025-04-01", user_id=ana))["people"], "due", "overdue") == {
        "ana": (1, 1)
    }
    last_adoption = await day("adoption", "2025-03-31", user_id=ana)
    assert by_person(world, last_adoption["people"], "active_days", "activities") == {"ana": (1, 1)}


async def test_go_live_hides_a_teams_earlier_records(
    client: httpx.AsyncClient, world: World, admin: dict[str, str]
) -> None:
    diego = world.id("diego")

    async def numbers() -> tuple[Any, ...]:
        board = await insight(client, admin, "leaderboard", user_id=diego)
        deadlines = await insight(client, admin, "discipline", user_id=diego)
        adoption = await insight(client, admin, "adoption", user_id=diego)
        funnel = await insight(client, admin, "funnel")
        kept = await insight(client, admin, "retention", repeat_days=60)
        return (
            by_person(world, board["reps"], "won", "won_amount_minor", "cycle_days_mean", "activities"),
            by_person(world, deadlines["people"], "due", "done_late", "mean_delay_hours"),
            by_person(world, adoption["people"], "active_days", "activities", "activities_per_day", "cards_created"),
            (funnel["deals"], funnel["won"], funnel["won_amount_minor"]),
            (kept["buyers"], kept["repeat_buyers"]),
        )

    # From 2025-02-01 (Bogota): D10, a19 and his change of 2025-01-20 are not counted.
    assert await numbers() == (
        {"diego": (1, 11_000, 12.0, 2)},
        {"diego": (1, 1, 6.0)},
        {"diego": (1, 2, 0.03, 0)},
        (11, 6, 54_000),
        (8, 2),
    )
    response = await client.patch(f"{API}/teams/{world.id('south')}", json={"go_live_on": None}, headers=admin)
    assert response.status_code == 200, response.text
    # Always live: D10 (10 days, 50,000), a19 (24 h late) and the January change count.
    assert await numbers() == (
        {"diego": (2, 61_000, 11.0, 3)},
        {"diego": (2, 2, 15.0)},
        {"diego": (2, 3, 0.03, 1)},
        (12, 7, 104_000),
        (9, 3),
    )
