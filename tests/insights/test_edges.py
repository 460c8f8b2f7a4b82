"""The insights at their edges: days no calendar arithmetic survives, work that reaches a goal after its last day,
a client who came back to a colleague, the browser's language weights, people with work but no closed deal, and a
diagnosis whose period lost nothing."""

import itertools
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.deals.models import Deal, DealStageEvent
from api.insights import sales
from tests.factories import make_company, share_with
from tests.feed.crm import ACTIVITIES, DEALS, ok, refused
from tests.insights.test_goals_and_access import (
    GOALS,
    INSIGHTS,
    TEAMS,
    _goal,
    _param_refused,
    _progress,
    _reached,
    _set_goal,
    _today,
    _world,
)

pytestmark = pytest.mark.asyncio


async def _lost_deal(client: httpx.AsyncClient, rep: dict[str, str], admin: dict[str, str]) -> Any:
    """A rep's deal worth 500.00, lost today for the organisation's first reason."""
    reason = ok(await client.get("/api/v1/lost-reasons", headers=admin))["items"][0]["id"]
    deal = ok(await client.post(DEALS, json={"title": "Fleet", "amount_minor": 50_000}, headers=rep), 201)
    ok(await client.post(f"{DEALS}/{deal['id']}/lose", json={"lost_reason_id": reason}, headers=rep))
    return deal


async def _date_deal(session: AsyncSession, deal_id: str, days_ago: int) -> None:
    """Move a deal, closed today, and its stage history back in time."""
    moment = datetime.combine(_today() - timedelta(days=days_ago), time(10), UTC)
    deal, event = sa.inspect(Deal).local_table, sa.inspect(DealStageEvent).local_table
    await session.execute(
        sa.update(deal)
        .where(deal.c.id == uuid.UUID(deal_id))
        .values(
            created_at=moment,
            won_at=sa.case((deal.c.won_at.is_(None), None), else_=moment),
            lost_at=sa.case((deal.c.lost_at.is_(None), None), else_=moment),
            stage_entered_at=moment,
        )
    )
    await session.execute(sa.update(event).where(event.c.deal_id == uuid.UUID(deal_id)).values(at=moment))
    await session.commit()


async def test_days_out_of_calendar_reach_are_refused_naming_the_field(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    admin = w.h["admin"]

    for fields, pointer in (
        ({"ends_on": "9999-12-31"}, "#/ends_on"),
        ({"starts_on": "0001-01-01"}, "#/starts_on"),
        # Longer than any period an insight reads.
        ({"ends_on": str(_today() + timedelta(days=1100))}, "#/ends_on"),
    ):
        refused(await client.post(GOALS, json=_goal(**fields), headers=admin), 422, pointer)
    goal = await _set_goal(client, w)
    refused(
        await client.patch(
            f"{GOALS}/{goal['id']}", json={"ends_on": "9999-12-31"}, headers={**admin, "If-Match": '"1"'}
        ),
        422,
        "#/ends_on",
    )
    refused(await client.patch(f"{TEAMS}/{w.sales.id}", json={"go_live_on": "0001-01-01"}, headers=admin), 422)
    for params in ({"from": "9999-12-01", "to": "9999-12-31"}, {"from": "0001-01-05", "to": "0001-02-01"}):
        _param_refused(await client.get(f"{INSIGHTS}/diagnosis", params=params, headers=admin), "from")
    # A day is YYYY-MM-DD; a number was once read as a Unix time (1970-01-01).
    _param_refused(await client.get(f"{INSIGHTS}/diagnosis", params={"to": "0"}, headers=admin), "to")

    # Nothing was stored, so every write and insight still works.
    ok(await client.post(ACTIVITIES, json={"kind": "call", "subject": "Hello"}, headers=w.h["ana"]), 201)
    ok(await client.get(f"{INSIGHTS}/leaderboard", headers=admin))


async def test_work_that_arrives_after_a_goal_ended_still_reaches_it(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    today = _today()
    goal = await _set_goal(
        client, w, target=1, starts_on=str(today - timedelta(days=7)), ends_on=str(today - timedelta(days=1))
    )
    # A call made yesterday on a phone that was offline, sent today.
    yesterday = f"{today - timedelta(days=1)}T10:00:00+00:00"
    ok(await client.post(ACTIVITIES, json={"kind": "call", "done_at": yesterday}, headers=w.h["ana"]), 201)

    ana = next(p for p in await _progress(client, w.h["admin"], goal) if p["user_id"] == str(w.ana.id))
    assert ana["value"] == 1 and ana["reached_at"] is not None
    assert [e["data"]["name"] for e in await _reached(client, w.h["ana"])] == [goal["name"]]


async def test_a_client_who_came_back_to_a_colleague_is_not_lost(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    company = await make_company(session, w.ana, name="Talleres Ruiz")
    await share_with(session, w.ana, "company", company.id, w.carl)
    won: list[Any] = []
    for who in ("ana", "carl"):
        deal = ok(
            await client.post(DEALS, json={"title": f"Order {who}", "company_id": str(company.id)}, headers=w.h[who]),
            201,
        )
        ok(await client.post(f"{DEALS}/{deal['id']}/win", headers=w.h[who]))
        won.append(deal["id"])
    for deal_id, days_ago in zip(won, (200, 170), strict=True):
        await _date_deal(session, deal_id, days_ago)

    params = {"repeat_days": 180, "from": str(_today() - timedelta(days=89)), "to": str(_today())}
    ana = ok(await client.get(f"{INSIGHTS}/retention", params=params, headers=w.h["ana"]))
    # Ana's client bought again, from Carl, 30 days later: not lost, and a repeat buyer.
    assert (ana["buyers"], ana["repeat_buyers"], ana["no_repeat"], ana["no_repeat_clients"]) == (1, 1, 0, [])
    carl = ok(await client.get(f"{INSIGHTS}/retention", params=params, headers=w.h["carl"]))
    # The client is Ana's (she sold to it first), not Carl's.
    assert carl["buyers"] == 0


async def test_the_print_follows_the_browsers_weights_and_says_worse_in_words(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    await _lost_deal(client, w.h["ana"], w.h["admin"])

    page = await client.get(
        f"{INSIGHTS}/diagnosis/print", headers={**w.h["admin"], "Accept-Language": "en;q=0.1, es;q=0.9"}
    )

    assert page.headers["content-language"] == "es"
    # More lost than the period before: worse, said in words as well as in red.
    assert '<span class="verdict">peor</span>' in page.text


async def test_the_leaderboard_lists_whoever_worked_in_the_period(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    ok(await client.post(ACTIVITIES, json={"kind": "call", "subject": "Hello"}, headers=w.h["admin"]), 201)

    board = ok(await client.get(f"{INSIGHTS}/leaderboard", headers=w.h["admin"]))

    admin = next(r for r in board["reps"] if r["user_id"] == str(w.admin.id))
    assert (admin["won"], admin["activities"], admin["calls"], admin["top_quartile"]) == (0, 1, 1, False)


async def test_a_diagnosis_that_lost_nothing_shows_where_the_last_period_lost(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    deal = await _lost_deal(client, w.h["ana"], w.h["admin"])
    # Created and lost in the previous 90 days.
    await _date_deal(session, deal["id"], 120)

    found = ok(await client.get(f"{INSIGHTS}/diagnosis", headers=w.h["admin"]))

    weakest = found["weakest_stage"]
    assert weakest is not None
    assert weakest["lost"] == {"value": 0, "previous": 1, "change": -1}
    assert weakest["lost_amount_minor"] == {"value": 0, "previous": 50_000, "change": -50_000}


async def test_a_card_completed_after_its_call_reaches_a_well_developed_goal(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    goal = await _set_goal(client, w, metric="well_developed_clients", target=1)
    company = ok(await client.post("/api/v1/companies", json={"name": "Talleres Ruiz"}, headers=w.h["ana"]), 201)
    ok(await client.post(ACTIVITIES, json={"kind": "call", "company_id": company["id"]}, headers=w.h["ana"]), 201)
    # Worked on, but 0% complete: not yet.
    assert await _reached(client, w.h["ana"]) == []

    details = {
        "domain": "talleres-ruiz.example",
        "phone": "+34 912 345 678",
        "industry": "Automotive",
        "size": 12,
        "address": "Calle Mayor 1",
        "city": "Madrid",
        "country": "ES",
        "segment": "SMB",
    }
    ok(
        await client.patch(
            f"/api/v1/companies/{company['id']}", json=details, headers={**w.h["ana"], "If-Match": '"1"'}
        )
    )

    # 8 of its 10 fields: 80%, and worked in the period.
    ana = next(p for p in await _progress(client, w.h["admin"], goal) if p["user_id"] == str(w.ana.id))
    assert ana["value"] == 1 and ana["reached_at"] is not None
    assert len(await _reached(client, w.h["ana"])) == 1


async def test_moving_someone_into_a_goals_team_records_them_if_they_are_over_it(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    for _ in range(2):
        ok(await client.post(ACTIVITIES, json={"kind": "call", "subject": "Hello"}, headers=w.h["dan"]), 201)
    goal = await _set_goal(client, w, team_id=str(w.sales.id))
    # Dan is in East: the Sales goal is not his.
    assert str(w.dan.id) not in [p["user_id"] for p in await _progress(client, w.h["admin"], goal)]

    ok(
        await client.patch(
            f"/api/v1/users/{w.dan.id}", json={"team_id": str(w.sales.id)}, headers={**w.h["admin"], "If-Match": '"1"'}
        )
    )

    dan = next(p for p in await _progress(client, w.h["admin"], goal) if p["user_id"] == str(w.dan.id))
    assert dan["value"] == 2 and dan["reached_at"] is not None
    assert [e["data"]["name"] for e in await _reached(client, w.h["dan"])] == [goal["name"]]


async def test_a_long_win_story_is_read_from_its_beginning(
    session: AsyncSession, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = await _world(session, client)
    deal = ok(await client.post(DEALS, json={"title": "Fleet"}, headers=w.h["ana"]), 201)
    for n in range(3):
        ok(
            await client.post(
                ACTIVITIES, json={"kind": "call", "subject": f"Call {n}", "deal_id": deal["id"]}, headers=w.h["ana"]
            ),
            201,
        )
    ok(await client.post(f"{DEALS}/{deal['id']}/win", headers=w.h["ana"]))
    monkeypatch.setattr(sales, "STORY_ITEMS", 2)

    story = ok(await client.get(f"{INSIGHTS}/wins/{deal['id']}", headers=w.h["carl"]))

    # The first two entries (the deal made, its first call), not the last two.
    assert [i["kind"] for i in story["items"]] == ["deal_created", "activity"]
    assert story["items"][1]["activity"]["subject"] == "Call 0"


async def test_lost_reasons_that_tie_come_in_the_organisations_order(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    w = await _world(session, client)
    reasons = ok(await client.get("/api/v1/lost-reasons", headers=w.h["admin"]))["items"]
    # Two reasons whose names sort against their order: names sort differently on the two databases.
    first, second = next((a, b) for a, b in itertools.pairwise(reasons) if a["name"].casefold() > b["name"].casefold())
    for reason in (second, first):
        deal = ok(await client.post(DEALS, json={"title": "Fleet", "amount_minor": 1_000}, headers=w.h["ana"]), 201)
        ok(await client.post(f"{DEALS}/{deal['id']}/lose", json={"lost_reason_id": reason["id"]}, headers=w.h["ana"]))

    kept = ok(await client.get(f"{INSIGHTS}/retention", headers=w.h["admin"]))

    assert [r["lost_reason_id"] for r in kept["lost_reasons"]] == [first["id"], second["id"]]


async def test_from_alone_after_today_is_refused(session: AsyncSession, client: httpx.AsyncClient) -> None:
    w = await _world(session, client)

    response = await client.get(
        f"{INSIGHTS}/leaderboard", params={"from": str(_today() + timedelta(days=3))}, headers=w.h["admin"]
    )

    _param_refused(response, "from")
    assert "after today" in response.json()["detail"]
