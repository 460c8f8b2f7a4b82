"""Deals through HTTP: create in the default pipeline, move, win, lose with a reason, reopen, lines, board."""

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import make_tenant, sign_in

pytestmark = pytest.mark.asyncio


async def test_a_deal_moves_along_its_pipeline(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    pipelines = (await client.get("/api/v1/pipelines", headers=rep)).json()["items"]
    stages = pipelines[0]["stages"]
    made = await client.post("/api/v1/deals", json={"title": "Fleet renewal", "amount_minor": 500000}, headers=rep)
    assert made.status_code == 201, made.text
    deal = made.json()
    assert deal["stage_id"] == stages[0]["id"] and deal["status"] == "open" and not deal["rotten"]
    assert deal["rots_at"] is not None

    moved = await client.post(f"/api/v1/deals/{deal['id']}/move", json={"stage_id": stages[2]["id"]}, headers=rep)
    assert moved.status_code == 200, moved.text
    assert moved.json()["stage_id"] == stages[2]["id"]

    no_reason = await client.post(f"/api/v1/deals/{deal['id']}/lose", json={}, headers=rep)
    assert no_reason.status_code == 422
    reasons = (await client.get("/api/v1/lost-reasons", headers=rep)).json()["items"]
    lost = await client.post(
        f"/api/v1/deals/{deal['id']}/lose", json={"lost_reason_id": reasons[0]["id"], "note": "Too dear"}, headers=rep
    )
    assert lost.status_code == 200, lost.text
    assert lost.json()["status"] == "lost" and lost.json()["rots_at"] is None

    reopened = await client.post(f"/api/v1/deals/{deal['id']}/reopen", headers=rep)
    assert reopened.status_code == 200, reopened.text
    assert reopened.json()["stage_id"] == stages[2]["id"] and reopened.json()["lost_reason_id"] is None

    won = await client.post(f"/api/v1/deals/{deal['id']}/win", headers=rep)
    assert won.status_code == 200 and won.json()["status"] == "won"

    product = await client.post("/api/v1/products", json={"name": "Van", "price_minor": 100000}, headers=tenant.headers)
    other = await client.post("/api/v1/deals", json={"title": "Vans", "previous_deal_id": deal["id"]}, headers=rep)
    lines = await client.put(
        f"/api/v1/deals/{other.json()['id']}/lines",
        json={"lines": [{"product_id": product.json()["id"], "quantity": 3, "discount_percent": 10}]},
        headers=rep,
    )
    assert lines.status_code == 200, lines.text
    assert lines.json()["amount_minor"] == 270000
    assert lines.json()["lines"][0]["name"] == "Van"

    board = await client.get("/api/v1/deals/board", headers=rep)
    assert board.status_code == 200, board.text
    columns = {c["stage"]["id"]: c for c in board.json()["stages"]}
    assert columns[stages[0]["id"]]["count"] == 1
    assert columns[stages[0]["id"]]["totals"] == {"EUR": 270000}
    assert columns[stages[0]["id"]]["weighted"] == {"EUR": 27000}

    foreign_stage = await client.post(
        "/api/v1/pipelines", json={"name": "Other", "stages": [{"name": "X"}]}, headers=tenant.headers
    )
    wrong = await client.post(
        f"/api/v1/deals/{other.json()['id']}/move",
        json={"stage_id": foreign_stage.json()["stages"][0]["id"]},
        headers=rep,
    )
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["pointer"] == "#/stage_id"
