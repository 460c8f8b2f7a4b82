"""Deals over HTTP, past the basics: what a new deal defaults to, which stages and deals it may name, the stage
history and feed a move leaves, the win / lose / reopen state machine, stale writes (If-Match), the read-only
marketing role, and bad input that must leave nothing behind."""

import uuid
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.auth.models import Role
from api.core.types import utcnow
from api.deals.models import Deal, DealStageEvent
from tests.auth.test_login import bearer
from tests.factories import Tenant, make_api_key, make_deal, make_tenant, make_user, share_with, sign_in
from tests.feed.crm import (
    API,
    DEALS,
    FEED,
    PIPELINES,
    Headers,
    Json,
    default_pipeline,
    if_match,
    ok,
    refused,
    stage,
    written,
)

pytestmark = pytest.mark.asyncio


async def _start(session: AsyncSession, client: httpx.AsyncClient) -> tuple[Tenant, Headers, Json]:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    return tenant, rep, await default_pipeline(client, rep)


async def _new(client: httpx.AsyncClient, headers: Headers, **body: object) -> Json:
    response = await client.post(DEALS, json={"title": "Fleet renewal", **body}, headers=headers)
    deal: Json = ok(response, 201)
    return deal


async def _timeline(client: httpx.AsyncClient, headers: Headers, deal_id: str) -> list[Json]:
    items: list[Json] = ok(await client.get(f"{DEALS}/{deal_id}/timeline", headers=headers))["items"]
    return items


async def _stage_events(session: AsyncSession, deal_id: str) -> list[DealStageEvent]:
    stmt = (
        select(DealStageEvent).where(col(DealStageEvent.deal_id) == uuid.UUID(deal_id)).order_by(col(DealStageEvent.at))
    )
    return list((await session.scalars(stmt)).all())


async def test_a_new_deal_takes_its_defaults(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep, pipeline = await _start(session, client)
    response = await client.post(DEALS, json={"title": "Fleet renewal"}, headers=rep)
    deal = ok(response, 201)
    assert response.headers["Location"] == f"{DEALS}/{deal['id']}"
    assert response.headers["ETag"] == '"1"'
    assert deal["pipeline_id"] == pipeline["id"]
    assert deal["stage_id"] == pipeline["stages"][0]["id"] and pipeline["stages"][0]["kind"] == "open"
    assert deal["owner_id"] == str(tenant.rep.id)
    assert (deal["currency"], deal["amount_minor"], deal["status"], deal["version"]) == ("EUR", 0, "open", 1)
    assert deal["won_at"] is deal["lost_at"] is deal["lost_reason_id"] is deal["previous_deal_id"] is None
    assert deal["lines"] == [] and deal["last_activity_at"] is None

    # The organisation's currency is read when the deal is made; an explicit one wins.
    ok(await client.patch(f"{API}/organization", json={"settings": {"currency": "USD"}}, headers=tenant.headers))
    assert (await _new(client, rep))["currency"] == "USD"
    assert (await _new(client, rep, currency="GBP"))["currency"] == "GBP"

    # Another pipeline: its first open stage; or the open stage asked for.
    other = ok(
        await client.post(
            PIPELINES,
            json={"name": "Renewals", "stages": [{"name": "Call"}, {"name": "Offer"}]},
            headers=tenant.headers,
        ),
        201,
    )
    in_other = await _new(client, rep, pipeline_id=other["id"])
    assert (in_other["pipeline_id"], in_other["stage_id"]) == (other["id"], stage(other, "Call"))
    at_offer = await _new(client, rep, pipeline_id=other["id"], stage_id=stage(other, "Offer"))
    assert at_offer["stage_id"] == stage(other, "Offer")
    # A stage alone implies nothing else: it must belong to the default pipeline then.
    assert (await _new(client, rep, stage_id=stage(pipeline, "Proposal")))["stage_id"] == stage(pipeline, "Proposal")


async def test_an_api_key_must_name_the_owner(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep, _ = await _start(session, client)
    _, secret = await make_api_key(session, tenant.org, "deals:read", "deals:write")
    key = bearer(secret)
    rival = await make_tenant(session, client, "Rival")
    colleague = await make_user(session, tenant.org, role=Role.rep)
    before = await written(session, tenant.org.id)
    refused(await client.post(DEALS, json={"title": "From the ERP"}, headers=key), 422, "#/owner_id")
    refused(
        await client.post(DEALS, json={"title": "x", "owner_id": str(rival.rep.id)}, headers=key), 422, "#/owner_id"
    )
    refused(
        await client.post(DEALS, json={"title": "x", "owner_id": str(uuid.uuid4())}, headers=key), 422, "#/owner_id"
    )
    # A rep cannot hand a new deal to a colleague outside their charge.
    refused(
        await client.post(DEALS, json={"title": "x", "owner_id": str(colleague.id)}, headers=rep), 422, "#/owner_id"
    )
    assert await written(session, tenant.org.id) == before

    made = await _new(client, key, owner_id=str(tenant.rep.id))
    assert made["owner_id"] == str(tenant.rep.id)
    assert ok(await client.get(f"{DEALS}/{made['id']}", headers=rep))["id"] == made["id"]


async def test_stages_must_belong_to_the_deal_s_pipeline(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep, pipeline = await _start(session, client)
    other = ok(
        await client.post(PIPELINES, json={"name": "Other", "stages": [{"name": "X"}]}, headers=tenant.headers), 201
    )
    rival = await make_tenant(session, client, "Rival")
    rival_pipeline = await default_pipeline(client, rival.headers)
    before = await written(session, tenant.org.id)

    refused(
        await client.post(DEALS, json={"title": "x", "stage_id": stage(other, "X")}, headers=rep), 422, "#/stage_id"
    )
    refused(
        await client.post(
            DEALS, json={"title": "x", "pipeline_id": other["id"], "stage_id": stage(pipeline, "Lead")}, headers=rep
        ),
        422,
        "#/stage_id",
    )
    for end in ("Won", "Lost"):
        refused(
            await client.post(DEALS, json={"title": "x", "stage_id": stage(pipeline, end)}, headers=rep),
            422,
            "#/stage_id",
        )
    refused(
        await client.post(DEALS, json={"title": "x", "pipeline_id": rival_pipeline["id"]}, headers=rep),
        422,
        "#/pipeline_id",
    )
    refused(
        await client.post(DEALS, json={"title": "x", "stage_id": stage(rival_pipeline, "Lead")}, headers=rep),
        422,
        "#/stage_id",
    )
    assert await written(session, tenant.org.id) == before

    deal = await _new(client, rep)
    move = f"{DEALS}/{deal['id']}/move"
    refused(await client.post(move, json={"stage_id": stage(other, "X")}, headers=rep), 422, "#/stage_id")
    refused(
        await client.post(move, json={"stage_id": stage(rival_pipeline, "Qualified")}, headers=rep), 422, "#/stage_id"
    )
    refused(await client.post(move, json={"stage_id": str(uuid.uuid4())}, headers=rep), 422, "#/stage_id")
    refused(await client.post(move, json={"stage_id": "not-a-uuid"}, headers=rep), 422, "#/stage_id")

    ok(await client.post(f"{DEALS}/{deal['id']}/win", headers=rep))
    reopen = f"{DEALS}/{deal['id']}/reopen"
    refused(await client.post(reopen, json={"stage_id": stage(other, "X")}, headers=rep), 422, "#/stage_id")
    refused(await client.post(reopen, json={"stage_id": stage(pipeline, "Lost")}, headers=rep), 422, "#/stage_id")
    assert ok(await client.get(f"{DEALS}/{deal['id']}", headers=rep))["status"] == "won"


async def test_a_move_records_the_stage_history_and_tells_the_feed(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant, rep, pipeline = await _start(session, client)
    deal = await _new(client, rep)
    # The deal entered its stage three days (and 100 seconds) ago.
    entered = utcnow() - timedelta(days=3, seconds=100)
    await session.execute(
        sa.update(Deal)
        .where(col(Deal.id) == uuid.UUID(deal["id"]))
        .values(stage_entered_at=entered)
        .execution_options(synchronize_session=False)
    )
    await session.commit()

    moved = ok(
        await client.post(f"{DEALS}/{deal['id']}/move", json={"stage_id": stage(pipeline, "Qualified")}, headers=rep)
    )
    assert moved["stage_id"] == stage(pipeline, "Qualified") and moved["version"] == 2
    events = await _stage_events(session, deal["id"])
    lead, qualified = uuid.UUID(stage(pipeline, "Lead")), uuid.UUID(stage(pipeline, "Qualified"))
    assert [(e.from_stage_id, e.to_stage_id) for e in events] == [(None, lead), (lead, qualified)]
    assert events[0].seconds_in_previous is None
    expected = 3 * 86400 + 100
    assert events[1].seconds_in_previous is not None and expected <= events[1].seconds_in_previous < expected + 60
    assert events[1].by_id == tenant.rep.id

    timeline = await _timeline(client, rep, deal["id"])
    assert [i["kind"] for i in timeline] == ["stage_moved", "deal_created"]
    assert timeline[0]["actor_id"] == str(tenant.rep.id)
    assert {k: timeline[0]["data"][k] for k in ("from_stage", "to_stage", "days_in_previous")} == {
        "from_stage": "Lead",
        "to_stage": "Qualified",
        "days_in_previous": 3,
    }
    moves = ok(await client.get(FEED, params={"only": "stage_moves"}, headers=rep))["items"]
    assert [(i["kind"], i["deal"]["id"]) for i in moves] == [("stage_moved", deal["id"])]

    # Moving to the stage it is in changes nothing.
    same = ok(
        await client.post(f"{DEALS}/{deal['id']}/move", json={"stage_id": stage(pipeline, "Qualified")}, headers=rep)
    )
    assert same["version"] == 2 and len(await _stage_events(session, deal["id"])) == 2

    # Moving to the won stage wins the deal.
    won = ok(await client.post(f"{DEALS}/{deal['id']}/move", json={"stage_id": stage(pipeline, "Won")}, headers=rep))
    assert (won["status"], won["stage_id"]) == ("won", stage(pipeline, "Won"))
    assert won["won_at"] is not None and won["rots_at"] is None and not won["rotten"]
    last = (await _stage_events(session, deal["id"]))[-1]
    assert (last.from_stage_id, last.to_stage_id) == (qualified, uuid.UUID(stage(pipeline, "Won")))
    assert [i["kind"] for i in await _timeline(client, rep, deal["id"])] == ["deal_won", "stage_moved", "deal_created"]

    # The lost stage is not a move: losing needs a reason.
    other = await _new(client, rep)
    problem = refused(
        await client.post(f"{DEALS}/{other['id']}/move", json={"stage_id": stage(pipeline, "Lost")}, headers=rep),
        422,
        "#/stage_id",
    )
    assert "lose" in problem["detail"]
    after = ok(await client.get(f"{DEALS}/{other['id']}", headers=rep))
    assert (after["status"], after["stage_id"], after["version"]) == ("open", stage(pipeline, "Lead"), 1)


async def test_win_lose_and_reopen_follow_the_state_machine(session: AsyncSession, client: httpx.AsyncClient) -> None:
    _, rep, pipeline = await _start(session, client)
    reasons = ok(await client.get(f"{API}/lost-reasons", headers=rep))["items"]
    rival = await make_tenant(session, client, "Rival")
    rival_reason = ok(await client.get(f"{API}/lost-reasons", headers=rival.headers))["items"][0]
    deal = await _new(client, rep)
    path = f"{DEALS}/{deal['id']}"
    ok(await client.post(f"{path}/move", json={"stage_id": stage(pipeline, "Proposal")}, headers=rep))

    refused(await client.post(f"{path}/reopen", headers=rep), 409)
    won = ok(await client.post(f"{path}/win", headers=rep))
    assert won["status"] == "won" and won["won_at"] is not None and won["stage_id"] == stage(pipeline, "Won")
    refused(await client.post(f"{path}/win", headers=rep), 409)
    refused(await client.post(f"{path}/lose", json={"lost_reason_id": reasons[0]["id"]}, headers=rep), 409)
    refused(await client.post(f"{path}/move", json={"stage_id": stage(pipeline, "Lead")}, headers=rep), 409)

    # Reopened without a stage: back where it was closed from, with the closing undone.
    reopened = ok(await client.post(f"{path}/reopen", headers=rep))
    assert (reopened["status"], reopened["stage_id"]) == ("open", stage(pipeline, "Proposal"))
    assert reopened["won_at"] is None and reopened["rots_at"] is not None

    # A lost reason must be one of this organisation's.
    version = reopened["version"]
    refused(
        await client.post(f"{path}/lose", json={"lost_reason_id": rival_reason["id"]}, headers=rep),
        422,
        "#/lost_reason_id",
    )
    refused(
        await client.post(f"{path}/lose", json={"lost_reason_id": str(uuid.uuid4())}, headers=rep),
        422,
        "#/lost_reason_id",
    )
    refused(await client.post(f"{path}/lose", json={}, headers=rep), 422, "#/lost_reason_id")
    assert ok(await client.get(path, headers=rep))["version"] == version

    lost = ok(
        await client.post(
            f"{path}/lose", json={"lost_reason_id": reasons[1]["id"], "note": "Went with Rival"}, headers=rep
        )
    )
    assert (lost["status"], lost["stage_id"]) == ("lost", stage(pipeline, "Lost"))
    assert (lost["lost_reason_id"], lost["lost_note"]) == (reasons[1]["id"], "Went with Rival")
    assert lost["lost_at"] is not None and lost["won_at"] is None and lost["rots_at"] is None
    refused(await client.post(f"{path}/lose", json={"lost_reason_id": reasons[0]["id"]}, headers=rep), 409)
    refused(await client.post(f"{path}/win", headers=rep), 409)

    # Reopened into a given open stage: the loss is forgotten.
    again = ok(await client.post(f"{path}/reopen", json={"stage_id": stage(pipeline, "Negotiation")}, headers=rep))
    assert (again["status"], again["stage_id"]) == ("open", stage(pipeline, "Negotiation"))
    assert again["lost_at"] is again["lost_reason_id"] is again["lost_note"] is again["won_at"] is None

    # Closed again from Negotiation: a reopening goes back there, not to where it was closed the first time.
    ok(await client.post(f"{path}/win", headers=rep))
    assert ok(await client.post(f"{path}/reopen", headers=rep))["stage_id"] == stage(pipeline, "Negotiation")
    kinds = [i["kind"] for i in await _timeline(client, rep, deal["id"])]
    assert kinds == [
        "deal_reopened",
        "deal_won",
        "deal_reopened",
        "deal_lost",
        "deal_reopened",
        "deal_won",
        "stage_moved",
        "deal_created",
    ]
    lost_item = next(i for i in await _timeline(client, rep, deal["id"]) if i["kind"] == "deal_lost")
    assert lost_item["data"]["reason"] == reasons[1]["name"]


async def test_every_deal_write_checks_if_match(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep, pipeline = await _start(session, client)
    reason = ok(await client.get(f"{API}/lost-reasons", headers=rep))["items"][0]["id"]
    deal = await _new(client, rep)
    path = f"{DEALS}/{deal['id']}"
    writes: list[tuple[str, str, Json | None]] = [
        ("PATCH", path, {"title": "Fleet renewal 2027"}),
        ("PUT", f"{path}/lines", {"lines": [{"name": "Van", "unit_price_minor": 100}]}),
        ("POST", f"{path}/move", {"stage_id": stage(pipeline, "Qualified")}),
        ("POST", f"{path}/win", None),
        ("POST", f"{path}/lose", {"lost_reason_id": reason}),
        ("POST", f"{path}/reopen", None),
        ("DELETE", path, None),
    ]
    before = await written(session, tenant.org.id)
    for method, url, body in writes:
        stale = await client.request(method, url, json=body, headers=if_match(rep, 7))
        problem = refused(stale, 412)
        assert stale.headers["ETag"] == '"1"' and problem["current"]["version"] == 1, (method, url)
    assert await written(session, tenant.org.id) == before

    # With the version just read, each write goes through and hands back the next ETag; the one before is stale.
    etag = '"1"'
    patch, lines, move, win, lose, reopen, _ = writes
    for method, url, body in (patch, lines, move, win, reopen, lose, reopen):
        response = await client.request(method, url, json=body, headers={**rep, "If-Match": etag})
        ok(response)
        assert response.headers["ETag"] != etag, (method, url)
        refused(await client.request(method, url, json=body, headers={**rep, "If-Match": etag}), 412)
        etag = response.headers["ETag"]
    ok(await client.delete(path, headers={**rep, "If-Match": etag}), 204)
    refused(await client.get(path, headers=rep), 404)


async def test_marketing_reads_deals_but_cannot_change_them(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep, pipeline = await _start(session, client)
    marketing = await sign_in(client, await make_user(session, tenant.org, role=Role.marketing))
    reason = ok(await client.get(f"{API}/lost-reasons", headers=rep))["items"][0]["id"]
    deal = await _new(client, rep)
    closed = await _new(client, rep, title="Closed")
    ok(await client.post(f"{DEALS}/{closed['id']}/win", headers=rep))
    binned = await _new(client, rep, title="Binned")
    ok(await client.delete(f"{DEALS}/{binned['id']}", headers=rep), 204)

    assert ok(await client.get(f"{DEALS}/{deal['id']}", headers=marketing))["title"] == "Fleet renewal"
    assert {d["id"] for d in ok(await client.get(DEALS, headers=marketing))["items"]} == {deal["id"], closed["id"]}
    ok(await client.get(f"{DEALS}/board", headers=marketing))

    path = f"{DEALS}/{deal['id']}"
    before = await written(session, tenant.org.id)
    for method, url, body in [
        ("POST", DEALS, {"title": "Campaign lead", "owner_id": str(tenant.rep.id)}),
        ("PATCH", path, {"title": "Renamed"}),
        ("PUT", f"{path}/lines", {"lines": [{"name": "Van", "unit_price_minor": 100}]}),
        ("POST", f"{path}/move", {"stage_id": stage(pipeline, "Qualified")}),
        ("POST", f"{path}/win", None),
        ("POST", f"{path}/lose", {"lost_reason_id": reason}),
        ("POST", f"{DEALS}/{closed['id']}/reopen", None),
        ("DELETE", path, None),
        ("POST", f"{DEALS}/{binned['id']}/restore", None),
    ]:
        refused(await client.request(method, url, json=body, headers=marketing), 403)
    assert await written(session, tenant.org.id) == before


async def test_a_repeat_sale_names_a_deal_it_can_see_other_than_itself(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant, rep, _ = await _start(session, client)
    first = await _new(client, rep, title="First order")
    colleague = await make_user(session, tenant.org, role=Role.rep)
    hidden = await make_deal(session, colleague, title="Colleague's")
    rival = await make_tenant(session, client, "Rival")
    foreign = await make_deal(session, rival.rep, title="Rival's")
    before = await written(session, tenant.org.id)

    for missing in (hidden.id, foreign.id, uuid.uuid4()):
        refused(
            await client.post(DEALS, json={"title": "Again", "previous_deal_id": str(missing)}, headers=rep),
            422,
            "#/previous_deal_id",
        )
    own_id = "01900000-0000-7000-8000-000000000001"
    refused(
        await client.post(DEALS, json={"id": own_id, "title": "Again", "previous_deal_id": own_id}, headers=rep),
        422,
        "#/previous_deal_id",
    )
    path = f"{DEALS}/{first['id']}"
    refused(await client.patch(path, json={"previous_deal_id": first["id"]}, headers=rep), 422, "#/previous_deal_id")
    refused(await client.patch(path, json={"previous_deal_id": str(hidden.id)}, headers=rep), 422, "#/previous_deal_id")
    assert await written(session, tenant.org.id) == before

    again = await _new(client, rep, title="Second order", previous_deal_id=first["id"])
    assert again["previous_deal_id"] == first["id"]
    # Shared with the rep, the colleague's deal becomes one they may follow up.
    await share_with(session, colleague, "deal", hidden.id, tenant.rep)
    patched = ok(await client.patch(path, json={"previous_deal_id": str(hidden.id)}, headers=rep))
    assert patched["previous_deal_id"] == str(hidden.id)
    cleared = ok(await client.patch(path, json={"previous_deal_id": None}, headers=rep))
    assert cleared["previous_deal_id"] is None


async def test_bad_input_changes_nothing(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep, pipeline = await _start(session, client)
    usd = ok(
        await client.post(
            f"{API}/products", json={"name": "Import", "price_minor": 900, "currency": "USD"}, headers=tenant.headers
        ),
        201,
    )
    deal = await _new(client, rep, lines=[{"name": "Van", "unit_price_minor": 1000, "quantity": 2}])
    assert deal["amount_minor"] == 2000
    colleague = await make_user(session, tenant.org, role=Role.rep)
    path = f"{DEALS}/{deal['id']}"
    before = await written(session, tenant.org.id)

    bad: list[tuple[str, str, Json, int, str | None]] = [
        ("POST", DEALS, {"title": "x", "lines": [{"product_id": usd["id"]}]}, 422, "#/lines/0/unit_price_minor"),
        ("POST", DEALS, {"title": "  "}, 422, "#/title"),
        ("POST", DEALS, {"title": "x", "status": "won"}, 422, "#/status"),
        ("POST", DEALS, {"title": "x", "amount_minor": -1}, 422, "#/amount_minor"),
        ("POST", DEALS, {"title": "x", "currency": "EURO"}, 422, "#/currency"),
        (
            "PUT",
            f"{path}/lines",
            {"lines": [{"name": "ok"}, {"product_id": usd["id"]}]},
            422,
            "#/lines/1/unit_price_minor",
        ),
        ("PUT", f"{path}/lines", {"lines": [{"unit_price_minor": 5}]}, 422, "#/lines/0/name"),
        (
            "PUT",
            f"{path}/lines",
            {"lines": [{"name": "x", "discount_percent": 101}]},
            422,
            "#/lines/0/discount_percent",
        ),
        ("PATCH", path, {"amount_minor": 5}, 422, "#/amount_minor"),
        ("PATCH", path, {"title": None}, 422, "#/title"),
        ("PATCH", path, {"won_at": "2026-01-01T00:00:00Z"}, 422, "#/won_at"),
        ("PATCH", path, {"owner_id": str(colleague.id)}, 422, "#/owner_id"),
        ("POST", f"{path}/lose", {"lost_reason_id": str(uuid.uuid4())}, 422, "#/lost_reason_id"),
        ("POST", f"{path}/move", {"stage_id": stage(pipeline, "Lost")}, 422, "#/stage_id"),
        ("POST", f"{path}/reopen", {}, 409, None),
    ]
    for method, url, body, status, pointer in bad:
        refused(await client.request(method, url, json=body, headers=rep), status, pointer)
    assert await written(session, tenant.org.id) == before
    kept = ok(await client.get(path, headers=rep))
    assert [(line["name"], line["quantity"]) for line in kept["lines"]] == [("Van", 2)]
    assert (kept["amount_minor"], kept["version"], kept["status"]) == (2000, deal["version"], "open")
