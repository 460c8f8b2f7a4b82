"""Goals and who may read which insight, over HTTP (docs/insights.md): setting goals (admins only, validated, with
If-Match), each reader's view of the progress, the change that reaches a goal (a call logged online or offline, a
deal won, the goal itself) recording it once with a feed entry for the right people; a team's go-live day; the
people each insight counts for reps, managers, admins, marketing and API keys, and the filters that reach outside
them (404); bad periods; win stories; and the printable diagnosis in English and Spanish."""

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Organization, Role, Team, User
from api.core.types import utcnow
from tests.auth.test_login import bearer
from tests.factories import (
    make_activity,
    make_api_key,
    make_company,
    make_contact,
    make_deal,
    make_org,
    make_team,
    make_tenant,
    make_user,
    sign_in,
)
from tests.feed.crm import (
    ACTIVITIES,
    API,
    DEALS,
    FEED,
    Headers,
    Json,
    default_pipeline,
    if_match,
    ok,
    pages,
    refused,
)
from tests.sync.device import Device

pytestmark = pytest.mark.asyncio

GOALS = f"{API}/goals"
INSIGHTS = f"{API}/insights"
TEAMS = f"{API}/teams"
# Every insight but retention (which marketing may read too) and win stories (which take a deal).
SELLER_INSIGHTS = ("funnel", "leaderboard", "playbook", "discipline", "data-quality", "adoption", "diagnosis")


@dataclass
class World:
    """One organisation: Sales (manager Mia, reps Ana and Carl) with North below it (rep Bea); East beside it
    (manager Eve, rep Dan); an admin with no team and a marketing user. `h` holds everyone's auth headers."""

    org: Organization
    sales: Team
    north: Team
    east: Team
    admin: User
    mia: User
    ana: User
    carl: User
    bea: User
    eve: User
    dan: User
    marketing: User
    h: dict[str, Headers]


async def _world(session: AsyncSession, client: httpx.AsyncClient) -> World:
    org = await make_org(session, "Acme")
    sales = await make_team(session, org, name="Sales")
    north = await make_team(session, org, name="North", parent=sales)
    east = await make_team(session, org, name="East")
    people = {
        "admin": await make_user(session, org, role=Role.admin, name="Zoe Admin"),
        "mia": await make_user(session, org, role=Role.manager, name="Mia Manager", team=sales),
        "ana": await make_user(session, org, role=Role.rep, name="Ana Rep", team=sales),
        "carl": await make_user(session, org, role=Role.rep, name="Carl Rep", team=sales),
        "bea": await make_user(session, org, role=Role.rep, name="Bea Rep", team=north),
        "eve": await make_user(session, org, role=Role.manager, name="Eve Manager", team=east),
        "dan": await make_user(session, org, role=Role.rep, name="Dan Rep", team=east),
        "marketing": await make_user(session, org, role=Role.marketing, name="Max Marketing"),
    }
    headers = {who: await sign_in(client, user) for who, user in people.items()}
    return World(org, sales, north, east, **people, h=headers)


def _today() -> date:
    # The organisation has no time zone setting: its days are UTC days.
    return utcnow().date()


def _goal(**fields: Any) -> Json:
    today = _today()
    return {
        "name": "Two calls",
        "metric": "calls",
        "target": 2,
        "starts_on": str(today - timedelta(days=1)),
        "ends_on": str(today + timedelta(days=6)),
        "reward": "Lunch on us",
        **fields,
    }


async def _set_goal(client: httpx.AsyncClient, w: World, **fields: Any) -> Json:
    goal: Json = ok(await client.post(GOALS, json=_goal(**fields), headers=w.h["admin"]), 201)
    return goal


async def _progress(client: httpx.AsyncClient, headers: Headers, goal: Json) -> list[Json]:
    progress: list[Json] = ok(await client.get(f"{GOALS}/{goal['id']}", headers=headers))["progress"]
    return progress


def _values(progress: list[Json]) -> list[tuple[str, int]]:
    return [(p["name"], p["value"]) for p in progress]


async def _reached(client: httpx.AsyncClient, headers: Headers) -> list[Json]:
    """The `goal_reached` entries of the reader's feed."""
    items = await pages(client, headers, FEED, limit=50, short=True)
    return [i for i in items if i["kind"] == "goal_reached"]


async def _call(client: httpx.AsyncClient, headers: Headers, **fields: Any) -> Json:
    call: Json = ok(await client.post(ACTIVITIES, json={"kind": "call", **fields}, headers=headers), 201)
    return call


def _param_refused(response: httpx.Response, parameter: str) -> None:
    """A 422 problem naming the query parameter, each of its items with the `detail` the document requires."""
    body = refused(response, 422)
    assert all(e.get("detail") for e in body["errors"]), body
    assert {"in": "query", "parameter": parameter} in [
        {"in": e.get("in"), "parameter": e.get("parameter")} for e in body["errors"]
    ], body


# Goals: setting them


async def test_an_admin_sets_reads_changes_and_removes_a_goal(session: AsyncSession, client: httpx.AsyncClient) -> None:
    w = await _world(session, client)
    admin = w.h["admin"]
    response = await client.post(GOALS, json=_goal(team_id=str(w.sales.id)), headers=admin)
    goal = ok(response, 201)
    assert response.headers["Location"] == f"{GOALS}/{goal['id']}"
    assert response.headers["ETag"] == '"1"'
    assert {k: goal[k] for k in ("name", "metric", "target", "reward", "team_id", "version")} == {
        "name": "Two calls",
        "metric": "calls",
        "target": 2,
        "reward": "Lunch on us",
        "team_id": str(w.sales.id),
        "version": 1,
    }
    assert (goal["starts_on"], goal["ends_on"]) == (_goal()["starts_on"], _goal()["ends_on"])

    read = await client.get(f"{GOALS}/{goal['id']}", headers=admin)
    assert read.headers["ETag"] == '"1"'
    assert ok(read)["name"] == "Two calls"
    # A goal that is over is listed, but not among the current ones.
    today = _today()
    past = await _set_goal(
        client, w, name="Last month", starts_on=str(today - timedelta(days=40)), ends_on=str(today - timedelta(days=10))
    )
    assert [g["id"] for g in ok(await client.get(GOALS, headers=admin))["items"]] == [goal["id"], past["id"]]
    assert [g["id"] for g in ok(await client.get(GOALS, params={"current": True}, headers=admin))["items"]] == [
        goal["id"]
    ]

    changed = await client.patch(
        f"{GOALS}/{goal['id']}", json={"target": 3, "reward": None, "team_id": None}, headers=if_match(admin, 1)
    )
    assert changed.headers["ETag"] == '"2"'
    assert {k: ok(changed)[k] for k in ("target", "reward", "team_id", "version", "name")} == {
        "target": 3,
        "reward": None,
        "team_id": None,
        "version": 2,
        "name": "Two calls",
    }
    stale = refused(await client.patch(f"{GOALS}/{goal['id']}", json={"target": 9}, headers=if_match(admin, 1)), 412)
    assert stale["current"]["target"] == 3
    refused(await client.delete(f"{GOALS}/{goal['id']}", headers=if_match(admin, 1)), 412)
    assert ok(await client.get(f"{GOALS}/{goal['id']}", headers=admin))["target"] == 3

    ok(await client.delete(f"{GOALS}/{goal['id']}", headers=if_match(admin, 2)), 204)
    refused(await client.get(f"{GOALS}/{goal['id']}", headers=admin), 404)
    refused(await client.patch(f"{GOALS}/{goal['id']}", json={"target": 4}, headers=admin), 404)
    assert [g["id"] for g in ok(await client.get(GOALS, headers=admin))["items"]] == [past["id"]]

    # Another organisation's admin does not find it.
    other = await make_tenant(session, client, "Other")
    refused(await client.get(f"{GOALS}/{past['id']}", headers=other.headers), 404)
    refused(await client.delete(f"{GOALS}/{past['id']}", headers=other.headers), 404)
    assert ok(await client.get(GOALS, headers=other.headers))["items"] == []


async def test_a_bad_goal_is_refused_naming_the_field(session: AsyncSession, client: httpx.AsyncClient) -> None:
    w = await _world(session, client)
    admin = w.h["admin"]
    other = await make_tenant(session, client, "Other")
    for body, pointer in (
        (_goal(target=0), "#/target"),
        (_goal(target=-5), "#/target"),
        (_goal(metric="revenue"), "#/metric"),
        (_goal(team_id=str(uuid.uuid4())), "#/team_id"),
        (_goal(team_id=str(other.team.id)), "#/team_id"),
        (_goal(starts_on="2026-02-30"), "#/starts_on"),
        ({k: v for k, v in _goal().items() if k != "name"}, "#/name"),
    ):
        refused(await client.post(GOALS, json=body, headers=admin), 422, pointer)
    assert ok(await client.get(GOALS, headers=admin))["items"] == []

    goal = await _set_goal(client, w)
    today = _today()
    for body, pointer in (
        ({"ends_on": str(today - timedelta(days=2))}, "#/ends_on"),
        ({"starts_on": str(today + timedelta(days=7))}, "#/starts_on"),
        ({"target": 0}, "#/target"),
        ({"target": None}, "#/target"),
        ({"ends_on": None}, "#/ends_on"),
        ({"name": None}, "#/name"),
        ({"team_id": str(uuid.uuid4())}, "#/team_id"),
        ({"team_id": str(other.team.id)}, "#/team_id"),
    ):
        refused(await client.patch(f"{GOALS}/{goal['id']}", json=body, headers=admin), 422, pointer)
    assert ok(await client.get(f"{GOALS}/{goal['id']}", headers=admin))["version"] == 1


async def test_a_new_goal_ending_before_it_starts_is_refused_naming_ends_on(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    today = _today()
    body = _goal(starts_on=str(today), ends_on=str(today - timedelta(days=1)))
    refused(await client.post(GOALS, json=body, headers=w.h["admin"]), 422, "#/ends_on")


async def test_only_admins_set_goals(session: AsyncSession, client: httpx.AsyncClient) -> None:
    w = await _world(session, client)
    goal = await _set_goal(client, w)
    _key, secret = await make_api_key(session, w.org, "insights:read")
    for headers in (w.h["ana"], w.h["mia"], w.h["marketing"], bearer(secret)):
        refused(await client.post(GOALS, json=_goal(), headers=headers), 403)
        refused(await client.patch(f"{GOALS}/{goal['id']}", json={"target": 5}, headers=headers), 403)
        refused(await client.delete(f"{GOALS}/{goal['id']}", headers=headers), 403)
    # Marketing does not sell: it has no goals to read either.
    refused(await client.get(GOALS, headers=w.h["marketing"]), 403)
    refused(await client.get(f"{GOALS}/{goal['id']}", headers=w.h["marketing"]), 403)
    assert [g["version"] for g in ok(await client.get(GOALS, headers=w.h["admin"]))["items"]] == [1]


# Goals: progress


async def test_each_reader_sees_the_progress_of_the_people_in_their_reach(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    # Rob has left (deactivated): goals are for the active sellers.
    rob = await make_user(session, w.org, role=Role.rep, name="Rob Rep", team=w.sales)
    for user, calls in ((w.ana, 3), (w.carl, 1), (w.bea, 2), (w.dan, 4), (w.mia, 1), (w.admin, 5), (rob, 6)):
        for _ in range(calls):
            await make_activity(session, user, kind="call")
    # Before the goal's first day: not counted.
    await make_activity(session, w.ana, kind="call", done_at=utcnow() - timedelta(days=3))
    # Planned, not done: not counted.
    await make_activity(session, w.ana, kind="call", due_at=utcnow() + timedelta(days=1))
    ok(await client.patch(f"{API}/users/{rob.id}", json={"is_active": False}, headers=w.h["admin"]))

    everyone = await _set_goal(client, w, target=10)
    assert _values(await _progress(client, w.h["admin"], everyone)) == [
        ("Dan Rep", 4),
        ("Ana Rep", 3),
        ("Bea Rep", 2),
        ("Carl Rep", 1),
        ("Mia Manager", 1),
        ("Eve Manager", 0),
    ]
    assert _values(await _progress(client, w.h["mia"], everyone)) == [
        ("Ana Rep", 3),
        ("Bea Rep", 2),
        ("Carl Rep", 1),
        ("Mia Manager", 1),
    ]
    assert _values(await _progress(client, w.h["eve"], everyone)) == [("Dan Rep", 4), ("Eve Manager", 0)]
    assert _values(await _progress(client, w.h["ana"], everyone)) == [("Ana Rep", 3)]
    assert _values(await _progress(client, w.h["bea"], everyone)) == [("Bea Rep", 2)]
    mine = await _progress(client, w.h["ana"], everyone)
    assert mine[0]["user_id"] == str(w.ana.id) and mine[0]["team_id"] == str(w.sales.id)
    assert mine[0]["reached_at"] is None

    # A team's goal is for that team and the teams below it.
    sales = await _set_goal(client, w, target=10, team_id=str(w.sales.id))
    assert _values(await _progress(client, w.h["admin"], sales)) == [
        ("Ana Rep", 3),
        ("Bea Rep", 2),
        ("Carl Rep", 1),
        ("Mia Manager", 1),
    ]
    assert _values(await _progress(client, w.h["eve"], sales)) == []
    north = await _set_goal(client, w, target=10, team_id=str(w.north.id))
    assert _values(await _progress(client, w.h["admin"], north)) == [("Bea Rep", 2)]
    assert _values(await _progress(client, w.h["mia"], north)) == [("Bea Rep", 2)]
    assert _values(await _progress(client, w.h["ana"], north)) == []

    # The list shows the same progress, goal by goal.
    listed = {g["id"]: g["progress"] for g in ok(await client.get(GOALS, headers=w.h["mia"]))["items"]}
    assert listed[everyone["id"]] == await _progress(client, w.h["mia"], everyone)
    assert _values(listed[north["id"]]) == [("Bea Rep", 2)]
    # An API key with insights:read counts everyone, as an admin does.
    _key, secret = await make_api_key(session, w.org, "insights:read")
    assert await _progress(client, bearer(secret), everyone) == await _progress(client, w.h["admin"], everyone)


# Goals: reaching them


async def test_the_call_that_reaches_a_goal_records_it_once_with_news_for_the_team(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    goal = await _set_goal(client, w)
    ana = w.h["ana"]

    await _call(client, ana, subject="First")
    assert await _reached(client, ana) == []
    assert [p["reached_at"] for p in await _progress(client, ana, goal)] == [None]

    await _call(client, ana, subject="Second")
    [entry] = await _reached(client, ana)
    assert entry["user_id"] == entry["actor_id"] == str(w.ana.id)
    assert entry["data"] == {
        "goal_id": goal["id"],
        "name": "Two calls",
        "metric": "calls",
        "target": 2,
        "value": 2,
        "reward": "Lunch on us",
    }
    [mine] = await _progress(client, ana, goal)
    assert mine["value"] == 2 and mine["reached_at"] is not None

    # Going on past the target is not news again.
    await _call(client, ana, subject="Third")
    assert [e["id"] for e in await _reached(client, ana)] == [entry["id"]]
    [again] = await _progress(client, ana, goal)
    assert (again["value"], again["reached_at"]) == (3, mine["reached_at"])

    # Her manager and the admin read it; a teammate only when the organisation lets reps see their team; other
    # teams never.
    for who in ("mia", "admin"):
        assert [e["id"] for e in await _reached(client, w.h[who])] == [entry["id"]], who
    for who in ("carl", "bea", "dan", "eve"):
        assert await _reached(client, w.h[who]) == [], who
    ok(await client.patch(f"{API}/organization", json={"settings": {"reps_see_team": True}}, headers=w.h["admin"]))
    assert [e["id"] for e in await _reached(client, w.h["carl"])] == [entry["id"]]
    for who in ("bea", "dan", "eve"):
        assert await _reached(client, w.h[who]) == [], who

    # Nobody else reached it.
    progress = await _progress(client, w.h["admin"], goal)
    assert [(p["name"], p["reached_at"] is not None) for p in progress if p["reached_at"]] == [("Ana Rep", True)]


async def test_a_call_logged_for_a_colleague_counts_for_its_owner(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    goal = await _set_goal(client, w, target=1)
    # The manager logs a call Carl made: Carl's goal.
    await _call(client, w.h["mia"], owner_id=str(w.carl.id))
    [entry] = await _reached(client, w.h["carl"])
    assert entry["user_id"] == str(w.carl.id) and entry["data"]["value"] == 1
    reached = {p["name"] for p in await _progress(client, w.h["admin"], goal) if p["reached_at"]}
    assert reached == {"Carl Rep"}


async def test_a_team_s_goal_is_reached_by_its_people_only(session: AsyncSession, client: httpx.AsyncClient) -> None:
    w = await _world(session, client)
    goal = await _set_goal(client, w, target=1, team_id=str(w.north.id))
    await _call(client, w.h["ana"])
    await _call(client, w.h["dan"])
    assert await _reached(client, w.h["admin"]) == []
    await _call(client, w.h["bea"])
    [entry] = await _reached(client, w.h["admin"])
    assert entry["user_id"] == str(w.bea.id) and entry["data"]["goal_id"] == goal["id"]
    assert [e["id"] for e in await _reached(client, w.h["mia"])] == [entry["id"]]


async def test_winning_a_deal_reaches_deal_and_amount_goals(session: AsyncSession, client: httpx.AsyncClient) -> None:
    w = await _world(session, client)
    won = await _set_goal(client, w, name="First win", metric="deals_won", target=1, reward="A bottle")
    amount = await _set_goal(client, w, name="1,000 EUR", metric="amount_won", target=100_000, reward=None)
    ana = w.h["ana"]
    deal = ok(await client.post(DEALS, json={"title": "Fleet", "amount_minor": 150_000}, headers=ana), 201)
    assert await _reached(client, ana) == []
    ok(await client.post(f"{DEALS}/{deal['id']}/win", headers=ana))
    entries = {e["data"]["goal_id"]: e for e in await _reached(client, ana)}
    assert set(entries) == {won["id"], amount["id"]}
    assert {k: entries[won["id"]]["data"][k] for k in ("name", "reward", "target", "value")} == {
        "name": "First win",
        "reward": "A bottle",
        "target": 1,
        "value": 1,
    }
    assert entries[amount["id"]]["data"]["value"] == 150_000 and entries[amount["id"]]["data"]["reward"] is None
    for goal in (won, amount):
        [mine] = await _progress(client, ana, goal)
        assert mine["reached_at"] is not None
    assert len(await _reached(client, w.h["mia"])) == 2
    assert await _reached(client, w.h["eve"]) == []


async def test_new_and_well_developed_clients_reach_their_goals(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    new = await _set_goal(client, w, name="New client", metric="new_clients", target=1)
    developed = await _set_goal(client, w, name="Well developed", metric="well_developed_clients", target=1)
    ana = w.h["ana"]
    # 5 of a contact's 6 expected fields (83%): well developed once something is done on it.
    card = {
        "name": "Ana Buyer",
        "emails": ["buyer@example.com"],
        "phones": ["+34 600 000 001"],
        "title": "Buyer",
        "segment": "SMB",
        "source": "Fair",
    }
    contact = ok(await client.post(f"{API}/contacts", json=card, headers=ana), 201)
    assert [e["data"]["goal_id"] for e in await _reached(client, ana)] == [new["id"]]
    await _call(client, ana, contact_id=contact["id"])
    assert {e["data"]["goal_id"] for e in await _reached(client, ana)} == {new["id"], developed["id"]}
    [mine] = await _progress(client, ana, developed)
    assert (mine["value"], mine["reached_at"] is not None) == (1, True)


async def test_a_colleague_s_call_on_a_rep_s_card_reaches_the_rep_s_goal(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    await make_contact(
        session,
        w.ana,
        name="Ana Buyer",
        emails=["buyer@example.com"],
        phones=["+34 600 000 001"],
        title="Buyer",
        segment="SMB",
        source="Fair",
    )
    goal = await _set_goal(client, w, name="Well developed", metric="well_developed_clients", target=1)
    [contact] = ok(await client.get(f"{API}/contacts", headers=w.h["ana"]))["items"]
    # Her manager calls Ana's client: Ana's card is now well developed, and that is Ana's goal reached.
    await _call(client, w.h["mia"], contact_id=contact["id"])
    [mine] = await _progress(client, w.h["ana"], goal)
    assert mine["value"] == 1
    assert mine["reached_at"] is not None
    assert [e["data"]["goal_id"] for e in await _reached(client, w.h["ana"])] == [goal["id"]]


async def test_a_goal_set_when_people_are_past_it_records_them_at_once(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    for user, calls in ((w.ana, 3), (w.carl, 1)):
        for _ in range(calls):
            await make_activity(session, user, kind="call")
    goal = await _set_goal(client, w)
    reached = {p["name"]: p["reached_at"] for p in await _progress(client, w.h["admin"], goal)}
    assert reached["Ana Rep"] is not None
    assert {name for name, at in reached.items() if at} == {"Ana Rep"}
    [entry] = await _reached(client, w.h["ana"])
    assert entry["data"]["goal_id"] == goal["id"] and entry["data"]["value"] == 3
    assert await _reached(client, w.h["carl"]) == []

    # Lowering the target takes Carl over it: the change to the goal records him (Ana again: no).
    ok(await client.patch(f"{GOALS}/{goal['id']}", json={"target": 1}, headers=if_match(w.h["admin"], 1)))
    assert [e["data"]["value"] for e in await _reached(client, w.h["carl"])] == [1]
    assert len(await _reached(client, w.h["ana"])) == 1
    # A goal that is already over records nobody.
    today = _today()
    await _set_goal(client, w, starts_on=str(today - timedelta(days=9)), ends_on=str(today - timedelta(days=1)))
    assert len(await _reached(client, w.h["admin"])) == 2


async def test_a_call_logged_offline_reaches_a_goal_when_it_is_pushed(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    goal = await _set_goal(client, w)
    device = Device(w.h["ana"])
    for subject in ("Offline 1", "Offline 2"):
        device.queue("activity.log", {"id": device.new_id(), "kind": "call", "subject": subject})
    result = await device.send(client)
    assert result is not None and [r["status"] for r in result["results"]] == ["applied", "applied"], result
    [entry] = await _reached(client, w.h["ana"])
    assert entry["data"]["goal_id"] == goal["id"] and entry["data"]["value"] == 2
    [mine] = await _progress(client, w.h["ana"], goal)
    assert mine["value"] == 2 and mine["reached_at"] is not None
    assert len(await _reached(client, w.h["mia"])) == 1
    # A third call pushed later: no second entry.
    device.queue("activity.log", {"id": device.new_id(), "kind": "call"})
    await device.send(client)
    assert len(await _reached(client, w.h["ana"])) == 1


# Team go-live


async def test_an_admin_sets_and_clears_a_team_s_go_live_day(session: AsyncSession, client: httpx.AsyncClient) -> None:
    w = await _world(session, client)
    admin = w.h["admin"]
    url = f"{TEAMS}/{w.north.id}"
    await _call(client, w.h["bea"])
    goal = await _set_goal(client, w, target=5)
    assert ok(await client.get(url, headers=admin))["go_live_on"] is None
    later = _today() + timedelta(days=30)
    changed = ok(await client.patch(url, json={"go_live_on": str(later)}, headers=admin))
    assert changed["go_live_on"] == str(later)
    assert ok(await client.get(url, headers=w.h["bea"]))["go_live_on"] == str(later)
    # Bea's numbers count from her team's go-live: her call of today, not yet.
    assert _values(await _progress(client, w.h["bea"], goal)) == [("Bea Rep", 0)]
    # Adoption shows the team as not live yet.
    [north] = [t for t in ok(await client.get(f"{INSIGHTS}/adoption", headers=admin))["teams"] if t["name"] == "North"]
    assert (north["go_live_on"], north["is_live"]) == (str(later), False)
    # Renaming leaves the day alone; only an explicit null clears it.
    assert ok(await client.patch(url, json={"name": "North-West"}, headers=admin))["go_live_on"] == str(later)
    assert ok(await client.patch(url, json={"go_live_on": None}, headers=admin))["go_live_on"] is None
    assert ok(await client.get(url, headers=admin))["go_live_on"] is None
    assert _values(await _progress(client, w.h["bea"], goal)) == [("Bea Rep", 1)]
    refused(await client.patch(url, json={"go_live_on": str(later)}, headers=w.h["mia"]), 403)
    refused(await client.patch(url, json={"go_live_on": "someday"}, headers=admin), 422, "#/go_live_on")
    assert ok(await client.get(url, headers=admin))["go_live_on"] is None


# Who counts on each insight


async def _sell(session: AsyncSession, client: httpx.AsyncClient, w: World) -> dict[str, str]:
    """Each seller wins a deal for a client of their own and has a task overdue; the won deals' ids by seller."""
    won = {}
    for index, who in enumerate(("ana", "carl", "bea", "dan", "mia", "eve")):
        user: User = getattr(w, who)
        company = await make_company(session, user, name=f"Client of {user.name}")
        deal = await make_deal(
            session, user, title=f"Deal of {user.name}", company_id=company.id, amount_minor=1000 * (index + 1)
        )
        ok(await client.post(f"{DEALS}/{deal.id}/win", headers=w.h["admin"]))
        await make_activity(session, user, kind="task", subject="Follow up", due_at=utcnow() - timedelta(hours=2))
        won[who] = str(deal.id)
    return won


def _ids(w: World, *who: str) -> set[str]:
    return {str(getattr(w, name).id) for name in who}


async def _people(client: httpx.AsyncClient, headers: Headers, insight: str, **params: Any) -> set[str]:
    body = ok(await client.get(f"{INSIGHTS}/{insight}", params=params, headers=headers))
    rows = body["reps"] if insight == "leaderboard" else body["people"]
    return {r["user_id"] for r in rows}


async def _funnel_deals(client: httpx.AsyncClient, headers: Headers, **params: Any) -> int:
    deals: int = ok(await client.get(f"{INSIGHTS}/funnel", params=params, headers=headers))["deals"]
    return deals


async def _buyers(client: httpx.AsyncClient, headers: Headers) -> int:
    buyers: int = ok(await client.get(f"{INSIGHTS}/retention", headers=headers))["buyers"]
    return buyers


async def test_reps_count_themselves_and_see_their_team_on_the_board(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    await _sell(session, client, w)
    ana = w.h["ana"]
    assert await _funnel_deals(client, ana) == 1
    for insight in ("discipline", "adoption", "data-quality"):
        assert await _people(client, ana, insight) == _ids(w, "ana"), insight
    overdue = ok(await client.get(f"{INSIGHTS}/discipline", headers=ana))["people"][0]["overdue"]
    assert overdue == 1
    # The leaderboard and the playbook: her team, not the team below it.
    sales = _ids(w, "mia", "ana", "carl")
    assert await _people(client, ana, "leaderboard") == sales
    playbook = ok(await client.get(f"{INSIGHTS}/playbook", headers=ana))
    assert playbook["top"]["reps"] + playbook["rest"]["reps"] == 3
    assert playbook["top"]["wins"] + playbook["rest"]["wins"] == 3
    assert {r["owner"]["user_id"] for r in playbook["recent_wins"]} <= sales

    # A manager: their team and every team below it, and themselves.
    mia = w.h["mia"]
    subtree = _ids(w, "mia", "ana", "carl", "bea")
    assert await _funnel_deals(client, mia) == 4
    for insight in ("leaderboard", "discipline", "adoption", "data-quality"):
        assert await _people(client, mia, insight) == subtree, insight
    assert await _people(client, w.h["eve"], "leaderboard") == _ids(w, "eve", "dan")

    # An admin (and a key with insights:read): every seller, not marketing, not the admin without numbers.
    sellers = _ids(w, "mia", "ana", "carl", "bea", "eve", "dan")
    _key, secret = await make_api_key(session, w.org, "insights:read")
    for headers in (w.h["admin"], bearer(secret)):
        assert await _funnel_deals(client, headers) == 6
        for insight in ("leaderboard", "discipline", "adoption", "data-quality"):
            assert await _people(client, headers, insight) == sellers, insight
        assert ok(await client.get(f"{INSIGHTS}/playbook", headers=headers))["top"]["reps"] == 2


async def test_retention_and_the_diagnosis_count_the_caller_s_people(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    await _sell(session, client, w)
    _key, secret = await make_api_key(session, w.org, "insights:read")
    # Everyone has one client who bought, and one task overdue.
    for headers, people in (
        (w.h["ana"], 1),
        (w.h["mia"], 4),
        (w.h["eve"], 2),
        (w.h["admin"], 6),
        (bearer(secret), 6),
    ):
        assert await _buyers(client, headers) == people
        diagnosis = ok(await client.get(f"{INSIGHTS}/diagnosis", headers=headers))
        assert diagnosis["overdue_tasks"]["value"] == people
    # Marketing reads retention for the whole organisation (whom to win back).
    assert await _buyers(client, w.h["marketing"]) == 6


async def test_marketing_reads_retention_only_and_keys_need_the_insights_scope(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    won = await _sell(session, client, w)
    marketing = w.h["marketing"]
    for insight in SELLER_INSIGHTS:
        refused(await client.get(f"{INSIGHTS}/{insight}", headers=marketing), 403)
    refused(await client.get(f"{INSIGHTS}/diagnosis/print", headers=marketing), 403)
    refused(await client.get(f"{INSIGHTS}/wins/{won['ana']}", headers=marketing), 403)

    _key, with_scope = await make_api_key(session, w.org, "insights:read")
    _key, without = await make_api_key(session, w.org, "users:read", "deals:read")
    for insight in (*SELLER_INSIGHTS, "retention"):
        ok(await client.get(f"{INSIGHTS}/{insight}", headers=bearer(with_scope)))
        refused(await client.get(f"{INSIGHTS}/{insight}", headers=bearer(without)), 403)
    refused(await client.get(GOALS, headers=bearer(without)), 403)
    ok(await client.get(GOALS, headers=bearer(with_scope)))
    # Without credentials: 401.
    refused(await client.get(f"{INSIGHTS}/leaderboard"), 401)


async def test_filters_reaching_outside_the_caller_are_not_found(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    await _sell(session, client, w)
    other = await make_tenant(session, client, "Other")
    other_pipeline = await default_pipeline(client, other.headers)
    mia, ana, admin = w.h["mia"], w.h["ana"], w.h["admin"]

    # An admin narrows to a team (and the teams below it) or a person.
    assert await _people(client, admin, "leaderboard", team_id=str(w.sales.id)) == _ids(w, "mia", "ana", "carl", "bea")
    assert await _people(client, admin, "discipline", team_id=str(w.north.id)) == _ids(w, "bea")
    assert await _funnel_deals(client, admin, team_id=str(w.east.id)) == 2
    assert await _people(client, admin, "leaderboard", user_id=str(w.dan.id)) == _ids(w, "dan")

    # A manager narrows to one of their people (to a team of theirs: see the next test); not to another team or
    # its people.
    assert await _people(client, mia, "discipline", user_id=str(w.bea.id)) == _ids(w, "bea")
    assert await _funnel_deals(client, mia, user_id=str(w.carl.id)) == 1
    for params in ({"team_id": str(w.east.id)}, {"user_id": str(w.dan.id)}, {"user_id": str(w.eve.id)}):
        for insight in ("funnel", "leaderboard", "discipline", "retention"):
            refused(await client.get(f"{INSIGHTS}/{insight}", params=params, headers=mia), 404)

    # A rep: a teammate on the board, nobody else's numbers elsewhere.
    assert await _people(client, ana, "leaderboard", user_id=str(w.carl.id)) == _ids(w, "carl")
    assert await _people(client, ana, "leaderboard", team_id=str(w.sales.id)) == _ids(w, "mia", "ana", "carl")
    refused(await client.get(f"{INSIGHTS}/funnel", params={"user_id": str(w.carl.id)}, headers=ana), 404)
    refused(await client.get(f"{INSIGHTS}/discipline", params={"user_id": str(w.carl.id)}, headers=ana), 404)
    for params in ({"user_id": str(w.bea.id)}, {"team_id": str(w.north.id)}, {"team_id": str(w.east.id)}):
        refused(await client.get(f"{INSIGHTS}/leaderboard", params=params, headers=ana), 404)
        refused(await client.get(f"{INSIGHTS}/playbook", params=params, headers=ana), 404)

    # Another organisation's team, person or pipeline, an unknown id, or someone who is not counted (marketing).
    for params in (
        {"team_id": str(other.team.id)},
        {"user_id": str(other.rep.id)},
        {"user_id": str(other.admin.id)},
        {"user_id": str(uuid.uuid4())},
        {"team_id": str(uuid.uuid4())},
        {"pipeline_id": other_pipeline["id"]},
        {"user_id": str(w.marketing.id)},
    ):
        for insight in ("funnel", "leaderboard", "retention", "adoption"):
            refused(await client.get(f"{INSIGHTS}/{insight}", params=params, headers=admin), 404)
    own_pipeline = await default_pipeline(client, admin)
    assert await _funnel_deals(client, admin, pipeline_id=own_pipeline["id"]) == 6


async def test_a_manager_narrows_to_a_team_of_theirs(session: AsyncSession, client: httpx.AsyncClient) -> None:
    w = await _world(session, client)
    await _sell(session, client, w)
    mia = w.h["mia"]
    assert await _people(client, mia, "leaderboard", team_id=str(w.north.id)) == _ids(w, "bea")
    assert await _funnel_deals(client, mia, team_id=str(w.north.id)) == 1
    assert await _people(client, mia, "discipline", team_id=str(w.sales.id)) == _ids(w, "mia", "ana", "carl", "bea")


async def test_a_bad_period_is_refused_naming_the_parameter(session: AsyncSession, client: httpx.AsyncClient) -> None:
    w = await _world(session, client)
    admin = w.h["admin"]
    start = date(2024, 1, 1)
    for insight in ("funnel", "leaderboard", "retention", "diagnosis", "diagnosis/print"):
        url = f"{INSIGHTS}/{insight}"
        _param_refused(await client.get(url, params={"from": "2024-02-01", "to": "2024-01-31"}, headers=admin), "from")
        too_long = {"from": str(start), "to": str(start + timedelta(days=1098))}
        _param_refused(await client.get(url, params=too_long, headers=admin), "from")
        _param_refused(await client.get(url, params={"from": "2024-13-01"}, headers=admin), "from")
        _param_refused(await client.get(url, params={"to": "yesterday"}, headers=admin), "to")
    # 1,098 days is the longest period; one day is the shortest.
    body = ok(
        await client.get(
            f"{INSIGHTS}/leaderboard",
            params={"from": str(start), "to": str(start + timedelta(days=1097))},
            headers=admin,
        )
    )
    assert body["period"] == {"first_day": "2024-01-01", "last_day": "2027-01-02", "days": 1098}
    one = ok(await client.get(f"{INSIGHTS}/funnel", params={"from": "2024-01-01", "to": "2024-01-01"}, headers=admin))
    assert one["period"]["days"] == 1
    # `from` alone: 90 days from it.
    assert ok(await client.get(f"{INSIGHTS}/funnel", params={"from": "2024-01-01"}, headers=admin))["period"] == {
        "first_day": "2024-01-01",
        "last_day": "2024-03-30",
        "days": 90,
    }
    _param_refused(await client.get(f"{INSIGHTS}/retention", params={"repeat_days": 0}, headers=admin), "repeat_days")
    _param_refused(await client.get(f"{INSIGHTS}/data-quality", params={"threshold": 101}, headers=admin), "threshold")
    _param_refused(await client.get(f"{INSIGHTS}/diagnosis/print", params={"lang": "fr"}, headers=admin), "lang")
    _param_refused(await client.get(f"{INSIGHTS}/funnel", params={"team_id": "north"}, headers=admin), "team_id")


# Win stories


async def test_a_rep_reads_the_story_of_a_teammate_s_win(session: AsyncSession, client: httpx.AsyncClient) -> None:
    w = await _world(session, client)
    won = await _sell(session, client, w)
    carl, ana = w.h["carl"], w.h["ana"]
    deal = ok(await client.post(DEALS, json={"title": "Carl's fleet", "amount_minor": 420_000}, headers=carl), 201)
    await _call(client, carl, subject="Discovery call", deal_id=deal["id"])
    await _call(client, carl, subject="Closing call", deal_id=deal["id"])
    # His manager joined him for the meeting that decided it.
    await _call(client, w.h["mia"], subject="Manager's call", deal_id=deal["id"])
    ok(await client.post(f"{DEALS}/{deal['id']}/win", headers=carl))

    # Ana may not open Carl's deal, but she may learn from how he won it.
    refused(await client.get(f"{DEALS}/{deal['id']}", headers=ana), 404)
    story = ok(await client.get(f"{INSIGHTS}/wins/{deal['id']}", headers=ana))
    assert (story["deal_id"], story["title"], story["amount_minor"], story["currency"]) == (
        deal["id"],
        "Carl's fleet",
        420_000,
        "EUR",
    )
    assert story["owner"] == {"user_id": str(w.carl.id), "name": "Carl Rep", "team_id": str(w.sales.id)}
    items = story["items"]
    assert [i["at"] for i in items] == sorted(i["at"] for i in items)
    shown = [(i["kind"], i["activity"]["subject"] if i["activity"] else None) for i in items]
    assert shown == [
        ("deal_created", None),
        ("activity", "Discovery call"),
        ("activity", "Closing call"),
        ("activity", "Manager's call"),
        ("deal_won", None),
    ]
    assert all(i["deal"]["id"] == deal["id"] for i in items)
    # Her manager and the admin read it too.
    assert ok(await client.get(f"{INSIGHTS}/wins/{deal['id']}", headers=w.h["mia"]))["items"] == items
    assert ok(await client.get(f"{INSIGHTS}/wins/{deal['id']}", headers=w.h["admin"]))["items"] == items

    # Not an open or a lost deal; not a win outside her team (below it, or beside it); not another organisation's.
    reason = ok(await client.get(f"{API}/lost-reasons", headers=carl))["items"][0]["id"]
    still_open = ok(await client.post(DEALS, json={"title": "Open"}, headers=carl), 201)
    lost = ok(await client.post(DEALS, json={"title": "Lost"}, headers=carl), 201)
    ok(await client.post(f"{DEALS}/{lost['id']}/lose", json={"lost_reason_id": reason}, headers=carl))
    for deal_id in (still_open["id"], lost["id"], won["bea"], won["dan"], str(uuid.uuid4())):
        refused(await client.get(f"{INSIGHTS}/wins/{deal_id}", headers=ana), 404)
    assert ok(await client.get(f"{INSIGHTS}/wins/{won['bea']}", headers=w.h["mia"]))["owner"]["name"] == "Bea Rep"
    refused(await client.get(f"{INSIGHTS}/wins/{won['dan']}", headers=w.h["mia"]), 404)
    other = await make_tenant(session, client, "Other")
    refused(await client.get(f"{INSIGHTS}/wins/{deal['id']}", headers=other.headers), 404)
    # A deleted win has no story.
    ok(await client.delete(f"{DEALS}/{deal['id']}", headers=carl), 204)
    refused(await client.get(f"{INSIGHTS}/wins/{deal['id']}", headers=ana), 404)


# The printable diagnosis


async def test_the_printed_diagnosis_speaks_spanish_or_english_and_escapes_names(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    admin = w.h["admin"]
    pipeline = await default_pipeline(client, admin)
    first = pipeline["stages"][0]
    ok(
        await client.patch(
            f"{API}/stages/{first['id']}", json={"name": "<script>alert('stage')</script>"}, headers=admin
        )
    )
    reason = ok(
        await client.post(f"{API}/lost-reasons", json={"name": "<script>alert('reason')</script>"}, headers=admin), 201
    )
    deal = ok(await client.post(DEALS, json={"title": "Fleet", "amount_minor": 123_450}, headers=w.h["ana"]), 201)
    ok(await client.post(f"{DEALS}/{deal['id']}/lose", json={"lost_reason_id": reason["id"]}, headers=w.h["ana"]))
    url = f"{INSIGHTS}/diagnosis/print"

    spanish = await client.get(url, params={"lang": "es"}, headers=admin)
    assert spanish.status_code == 200, spanish.text
    assert spanish.headers["content-type"].startswith("text/html")
    assert spanish.headers["content-language"] == "es"
    page = spanish.text
    assert '<html lang="es">' in page
    assert "Dónde perdemos dinero" in page
    assert "1.234,50\xa0€" in page
    assert "Where we lose money" not in page

    browser = await client.get(url, headers={**admin, "Accept-Language": "es-ES,es;q=0.9"})
    assert '<html lang="es">' in browser.text and "Dónde perdemos dinero" in browser.text
    # `lang` wins over the browser; a browser in a language we do not speak falls back to its next, then English.
    assert (
        '<html lang="en">'
        in (await client.get(url, params={"lang": "en"}, headers={**admin, "Accept-Language": "es"})).text
    )
    assert '<html lang="es">' in (await client.get(url, headers={**admin, "Accept-Language": "fr-FR, es;q=0.5"})).text
    assert '<html lang="en">' in (await client.get(url, headers={**admin, "Accept-Language": "fr-FR"})).text

    english = await client.get(url, headers=admin)
    assert english.headers["content-type"].startswith("text/html")
    assert english.headers["content-language"] == "en"
    page = english.text
    assert '<html lang="en">' in page
    assert "Where we lose money" in page
    assert "€1,234.50" in page

    for text in (spanish.text, english.text):
        assert "<script>" not in text
        assert "&lt;script&gt;alert(&#39;stage&#39;)&lt;/script&gt;" in text
        assert "&lt;script&gt;alert(&#39;reason&#39;)&lt;/script&gt;" in text
