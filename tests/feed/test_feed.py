"""The feed and timelines over HTTP: scopes (me, team, organisation) within what each reader may see, `only=`
narrowing, keyset paging newest first, deleted records leaving the feed, and client and deal timelines."""

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from api.core.types import utcnow
from api.sharing import visibility
from tests.factories import (
    make_activity,
    make_company,
    make_contact,
    make_deal,
    make_team,
    make_tenant,
    make_user,
    share_with,
    sign_in,
)
from tests.feed.crm import ACTIVITIES, API, DEALS, FEED, Headers, Json, ok, pages, refused

pytestmark = pytest.mark.asyncio


async def _subjects(client: httpx.AsyncClient, headers: Headers, **params: str) -> set[str]:
    items = await pages(client, headers, FEED, limit=50, **params)
    return {i["activity"]["subject"] if i["activity"] else f"{i['kind']}:{i['actor_id']}" for i in items}


async def test_scopes_narrow_the_feed_to_me_my_team_or_everything_i_see(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    sales = tenant.team
    north = await make_team(session, tenant.org, name="North", parent=sales)
    other_team = await make_team(session, tenant.org, name="Other")
    manager = await make_user(session, tenant.org, role=Role.manager, team=sales)
    ana = tenant.rep
    bea = await make_user(session, tenant.org, role=Role.rep, team=north)
    dan = await make_user(session, tenant.org, role=Role.rep, team=other_team)
    for user, label in ((manager, "M"), (ana, "A"), (bea, "B"), (dan, "D")):
        company = await make_company(session, user, name=f"Client of {label}")
        await make_activity(session, user, kind="call", subject=f"by {label}", company_id=company.id)
    # Dan shares a client with Ana and calls it: Ana sees that, from outside her team.
    shared = await make_company(session, dan, name="Shared client")
    await share_with(session, dan, "company", shared.id, ana)
    await make_activity(session, dan, kind="call", subject="D on shared", company_id=shared.id)
    shared_item = f"shared:{dan.id}"

    headers = {
        "manager": await sign_in(client, manager),
        "ana": await sign_in(client, ana),
        "bea": await sign_in(client, bea),
        "admin": tenant.headers,
    }
    expected = {
        ("manager", "me"): {"by M"},
        ("manager", "team"): {"by M", "by A", "by B"},
        ("manager", "org"): {"by M", "by A", "by B"},
        ("ana", "me"): {"by A", shared_item},
        ("ana", "org"): {"by A", "D on shared", shared_item},
        ("bea", "me"): {"by B"},
        ("bea", "org"): {"by B"},
        # An admin with no team has only their own doings as "team".
        ("admin", "me"): set(),
        ("admin", "team"): set(),
        ("admin", "org"): {"by M", "by A", "by B", "by D", "D on shared", shared_item},
    }
    for (who, scope), subjects in expected.items():
        assert await _subjects(client, headers[who], scope=scope) == subjects, (who, scope)
    assert await _subjects(client, headers["ana"]) == expected[("ana", "org")]
    refused(await client.get(FEED, params={"scope": "world"}, headers=headers["ana"]), 422)

    # Marketing reads activities only on client cards.
    marketing = await sign_in(client, await make_user(session, tenant.org, role=Role.marketing))
    refused(await client.get(FEED, headers=marketing), 403)


async def test_a_rep_s_team_feed_is_their_team_s_doings(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    north = await make_team(session, tenant.org, name="North", parent=tenant.team)
    manager = await make_user(session, tenant.org, role=Role.manager, team=tenant.team)
    bea = await make_user(session, tenant.org, role=Role.rep, team=north)
    for user, label in ((manager, "M"), (tenant.rep, "A"), (bea, "B")):
        company = await make_company(session, user, name=f"Client of {label}")
        await make_activity(session, user, kind="call", subject=f"by {label}", company_id=company.id)
    ana = await sign_in(client, tenant.rep)
    # Team actors, within what the rep sees: their own records only, by default.
    assert await _subjects(client, ana, scope="team") == {"by A"}
    assert await _subjects(client, await sign_in(client, bea), scope="team") == {"by B"}
    # With the organisation letting reps see their team's records, the manager's call shows (not the sub-team's).
    ok(await client.patch(f"{API}/organization", json={"settings": {"reps_see_team": True}}, headers=tenant.headers))
    assert await _subjects(client, ana, scope="team") == {"by A", "by M"}
    assert await _subjects(client, ana, scope="org") == {"by A", "by M"}


async def test_a_manager_s_team_feed_shows_a_rep_s_call_about_no_client(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    manager = await sign_in(client, await make_user(session, tenant.org, role=Role.manager, team=tenant.team))
    call = await make_activity(session, tenant.rep, kind="call", subject="Cold call")
    ok(await client.get(f"{ACTIVITIES}/{call.id}", headers=manager))
    assert "Cold call" in await _subjects(client, manager, scope="team")


async def test_only_narrows_the_feed_to_one_kind_of_news(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    colleague = await make_user(session, tenant.org, role=Role.rep)
    reason = ok(await client.get(f"{API}/lost-reasons", headers=rep))["items"][0]["id"]
    pipelines = ok(await client.get(f"{API}/pipelines", headers=rep))["items"]
    qualified = pipelines[0]["stages"][1]["id"]
    won = ok(await client.post(DEALS, json={"title": "Won"}, headers=rep), 201)
    ok(await client.post(f"{DEALS}/{won['id']}/move", json={"stage_id": qualified}, headers=rep))
    ok(await client.post(f"{DEALS}/{won['id']}/win", headers=rep))
    lost = ok(await client.post(DEALS, json={"title": "Lost"}, headers=rep), 201)
    ok(await client.post(f"{DEALS}/{lost['id']}/lose", json={"lost_reason_id": reason}, headers=rep))
    ok(await client.post(f"{DEALS}/{lost['id']}/reopen", headers=rep))
    body = {"kind": "note", "deal_id": won["id"], "mentioned_ids": [str(colleague.id)]}
    ok(await client.post(ACTIVITIES, json=body, headers=rep), 201)
    ok(
        await client.post(
            ACTIVITIES, json={"kind": "task", "subject": "Plan", "due_at": "2099-01-01T09:00:00Z"}, headers=rep
        ),
        201,
    )

    def shown(items: list[Json]) -> list[tuple[str, str | None]]:
        return [(i["kind"], i["deal"]["title"] if i["deal"] else None) for i in items]

    everything = shown(await pages(client, rep, FEED, limit=50))
    assert everything == [
        ("mentioned", "Won"),
        ("activity", "Won"),
        ("deal_reopened", "Lost"),
        ("deal_lost", "Lost"),
        ("deal_created", "Lost"),
        ("deal_won", "Won"),
        ("stage_moved", "Won"),
        ("deal_created", "Won"),
    ]
    expected = {
        "wins": [("deal_won", "Won")],
        "losses": [("deal_lost", "Lost")],
        "activities": [("activity", "Won")],
        "stage_moves": [("deal_reopened", "Lost"), ("deal_lost", "Lost"), ("deal_won", "Won"), ("stage_moved", "Won")],
        "mentions": [("mentioned", "Won")],
    }
    for only, kinds in expected.items():
        assert shown(await pages(client, rep, FEED, limit=2, only=only)) == kinds, only
    assert shown(await pages(client, rep, FEED, limit=50, only="wins", scope="me")) == [("deal_won", "Won")]
    won_item = (await pages(client, rep, FEED, limit=50, only="wins"))[0]
    assert won_item["deal"]["status"] == "won" and won_item["data"]["to_stage"] == "Won"
    refused(await client.get(FEED, params={"only": "gossip"}, headers=rep), 422)


async def test_pages_run_newest_first_without_gaps_or_repeats(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    # Logged out of order, several at the very same instant (ties are broken by id).
    base = datetime(2026, 11, 2, 9, tzinfo=UTC)
    offsets = [5, 1, 3, 3, 3, 0, 7, 2, 3, 6, 1, 4, 3, 3, 0, 5, 2, 8, 3, 1, 6, 3]
    for index, minutes in enumerate(offsets):
        done_at = (base + timedelta(minutes=minutes)).isoformat()
        await make_activity(session, tenant.rep, kind="call", subject=f"call {index}", done_at=done_at)

    whole = ok(await client.get(FEED, params={"limit": 200}, headers=rep))["items"]
    assert len(whole) == len(offsets) and whole[0]["activity"]["done_at"] is not None
    keys = [(i["at"], i["id"]) for i in whole]
    assert keys == sorted(keys, reverse=True)
    assert whole[0]["at"].startswith("2026-11-02T09:08")
    for limit in (1, 3, 4, 7):
        assert [i["id"] for i in await pages(client, rep, FEED, limit=limit)] == [i["id"] for i in whole], limit

    # Something new while paging does not shift the pages still to come.
    first = ok(await client.get(FEED, params={"limit": 5}, headers=rep))
    await make_activity(session, tenant.rep, kind="note", subject="new")
    rest = await pages(client, rep, FEED, limit=5, cursor=first["next_cursor"])
    assert [i["id"] for i in first["items"] + rest] == [i["id"] for i in whole]
    assert ok(await client.get(FEED, params={"limit": 1}, headers=rep))["items"][0]["activity"]["subject"] == "new"
    refused(await client.get(FEED, params={"cursor": "not-a-cursor"}, headers=rep), 400)
    # A cursor belongs to its list: the org feed's is not the "me" feed's.
    refused(await client.get(FEED, params={"scope": "me", "cursor": first["next_cursor"]}, headers=rep), 400)


async def test_a_page_for_someone_who_sees_little_stops_early_and_misses_nothing(
    session: AsyncSession, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A page of a filtered viewer reads a bounded number of events (a new rep must not make it read them all);
    # a small window here stands for the real one over a large organisation.
    monkeypatch.setattr(visibility, "SCAN_WINDOW", 4)
    tenant = await make_tenant(session, client)
    other = await make_user(session, tenant.org, role=Role.rep, team=tenant.team)
    mine = await make_company(session, tenant.rep, name="Mine")
    theirs = await make_company(session, other, name="Theirs")
    for index in range(30):
        # One event in five is about the rep's client; the others are a colleague's, hidden from the rep.
        owner, company = (tenant.rep, mine) if index % 5 == 0 else (other, theirs)
        await make_activity(session, owner, kind="call", subject=f"call {index}", company_id=company.id)
    rep = await sign_in(client, tenant.rep)

    seen = await pages(client, rep, FEED, limit=3, short=True)
    assert [i["activity"]["subject"] for i in seen] == [f"call {i}" for i in range(25, -1, -5)]
    short = ok(await client.get(FEED, params={"limit": 3}, headers=rep))
    assert len(short["items"]) < 3 and short["next_cursor"] is not None
    # The window also bounds pages with `only=` and the "me" scope; an admin's page is never cut short.
    assert len(await pages(client, rep, FEED, limit=2, short=True, scope="me", only="activities")) == 6
    admin = ok(await client.get(FEED, params={"limit": 10}, headers=tenant.headers))["items"]
    assert len(admin) == 10


async def test_deleted_deals_and_activities_leave_the_feed(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    colleague = await make_user(session, tenant.org, role=Role.rep)
    company = await make_company(session, tenant.rep, name="Acme Corp")
    await share_with(session, tenant.rep, "company", company.id, colleague)
    deal = ok(await client.post(DEALS, json={"title": "Fleet", "company_id": str(company.id)}, headers=rep), 201)
    on_deal = ok(await client.post(ACTIVITIES, json={"kind": "call", "deal_id": deal["id"]}, headers=rep), 201)
    body = {"kind": "note", "company_id": str(company.id), "mentioned_ids": [str(colleague.id)]}
    note = ok(await client.post(ACTIVITIES, json=body, headers=rep), 201)["activity"]
    theirs = await sign_in(client, colleague)
    mentions = ok(await client.get(FEED, params={"only": "mentions"}, headers=theirs))["items"]
    assert [i["activity"]["id"] for i in mentions] == [note["id"]]

    def kinds(items: list[Json]) -> list[str]:
        return [i["kind"] for i in items]

    timeline = f"{API}/clients/{company.id}/timeline"
    assert kinds(ok(await client.get(timeline, headers=rep))["items"]) == [
        "mentioned",
        "activity",
        "activity",
        "deal_created",
        "shared",
    ]

    ok(await client.delete(f"{ACTIVITIES}/{note['id']}", headers=rep), 204)
    assert ok(await client.get(FEED, params={"only": "mentions"}, headers=theirs))["items"] == []
    assert kinds(ok(await client.get(FEED, params={"scope": "me"}, headers=theirs))["items"]) == ["shared"]
    assert kinds(ok(await client.get(FEED, params={"scope": "me"}, headers=rep))["items"]) == [
        "activity",
        "deal_created",
        "shared",
    ]
    assert kinds(ok(await client.get(timeline, headers=rep))["items"]) == ["activity", "deal_created", "shared"]

    # A deleted deal takes what happened on it along, activities included; restored, it brings them back.
    ok(await client.delete(f"{DEALS}/{deal['id']}", headers=rep), 204)
    assert kinds(ok(await client.get(FEED, params={"scope": "me"}, headers=rep))["items"]) == ["shared"]
    assert kinds(ok(await client.get(FEED, params={"only": "activities"}, headers=rep))["items"]) == []
    assert kinds(ok(await client.get(timeline, headers=rep))["items"]) == ["shared"]
    ok(await client.post(f"{DEALS}/{deal['id']}/restore", headers=rep))
    restored = ok(await client.get(FEED, params={"only": "activities"}, headers=rep))["items"]
    assert [i["activity"]["id"] for i in restored] == [on_deal["activity"]["id"]]
    assert kinds(ok(await client.get(timeline, headers=rep))["items"]) == ["activity", "deal_created", "shared"]


async def test_a_company_s_timeline_gathers_its_contacts_and_deals(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    colleague = await make_user(session, tenant.org, role=Role.rep)
    company = await make_company(session, tenant.rep, name="Transportes Núñez")
    other_company = await make_company(session, tenant.rep, name="Other")
    lucia = await make_contact(session, tenant.rep, name="Lucía", company_id=company.id)
    pablo = await make_contact(session, tenant.rep, name="Pablo", company_id=company.id)
    deal = await make_deal(session, tenant.rep, title="Vans", contact_id=lucia.id)
    await make_activity(session, tenant.rep, kind="call", subject="Lucía called", contact_id=lucia.id)
    await make_activity(session, tenant.rep, kind="email", subject="Pablo mailed", contact_id=pablo.id)
    await make_activity(
        session, tenant.rep, kind="meeting", subject="At the depot", company_id=company.id, done_at=utcnow().isoformat()
    )
    await make_activity(session, tenant.rep, kind="call", subject="Elsewhere", company_id=other_company.id)
    await make_activity(session, tenant.rep, kind="note", subject="About the vans", deal_id=deal.id)

    def about(items: list[Json]) -> list[str]:
        return [i["activity"]["subject"] if i["activity"] else i["kind"] for i in items]

    company_line = await pages(client, rep, f"{API}/clients/{company.id}/timeline", limit=2)
    assert about(company_line) == ["About the vans", "At the depot", "Pablo mailed", "Lucía called", "deal_created"]
    assert {i["company"]["id"] for i in company_line} == {str(company.id)}
    lucia_line = await pages(client, rep, f"{API}/clients/{lucia.id}/timeline", limit=2)
    assert about(lucia_line) == ["About the vans", "Lucía called", "deal_created"]
    only_activities = ok(
        await client.get(f"{API}/clients/{company.id}/timeline", params={"only": "activities"}, headers=rep)
    )
    assert about(only_activities["items"]) == ["About the vans", "At the depot", "Pablo mailed", "Lucía called"]
    deal_line = ok(await client.get(f"{DEALS}/{deal.id}/timeline", headers=rep))["items"]
    assert about(deal_line) == ["About the vans", "deal_created"]

    # Nobody reads the timeline of a client or deal they cannot see.
    theirs = await sign_in(client, colleague)
    refused(await client.get(f"{API}/clients/{company.id}/timeline", headers=theirs), 404)
    refused(await client.get(f"{DEALS}/{deal.id}/timeline", headers=theirs), 404)
    refused(await client.get(f"{API}/clients/{uuid.uuid4()}/timeline", headers=rep), 404)
    # Marketing reads client timelines (the card), not deal timelines.
    marketing = await sign_in(client, await make_user(session, tenant.org, role=Role.marketing))
    assert len(ok(await client.get(f"{API}/clients/{company.id}/timeline", headers=marketing))["items"]) == 5
    refused(await client.get(f"{DEALS}/{deal.id}/timeline", headers=marketing), 403)
