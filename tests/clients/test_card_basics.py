"""The client card and timelines through HTTP, and a share opening a client to a colleague."""

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from tests.factories import make_tenant, make_user, sign_in

pytestmark = pytest.mark.asyncio


async def test_card_shows_the_client_whole(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    company = (await client.post("/api/v1/companies", json={"name": "Acme Corp"}, headers=rep)).json()
    contact = (
        await client.post("/api/v1/contacts", json={"name": "Ana", "company_id": company["id"]}, headers=rep)
    ).json()
    won = (
        await client.post(
            "/api/v1/deals", json={"title": "A", "company_id": company["id"], "amount_minor": 1000}, headers=rep
        )
    ).json()
    await client.post(f"/api/v1/deals/{won['id']}/win", headers=rep)
    await client.post("/api/v1/deals", json={"title": "B", "contact_id": contact["id"]}, headers=rep)
    await client.post("/api/v1/activities", json={"kind": "call", "contact_id": contact["id"]}, headers=rep)
    await client.post(
        "/api/v1/activities",
        json={"kind": "task", "subject": "Visit", "company_id": company["id"], "due_at": "2099-01-01T10:00:00Z"},
        headers=rep,
    )
    response = await client.get(f"/api/v1/clients/{company['id']}/card", headers=rep)
    assert response.status_code == 200, response.text
    card = response.json()
    assert card["kind"] == "company" and card["company"]["name"] == "Acme Corp"
    assert [c["name"] for c in card["contacts"]] == ["Ana"] and card["contact_count"] == 1
    # B is for Ana, so it is Acme's too.
    assert card["deal_counts"] == {"open": 1, "won": 1, "lost": 0}
    assert card["lifetime_value"] == {"EUR": 1000}
    assert card["last_touch"]["kind"] == "call"
    assert card["next_touch"]["subject"] == "Visit"
    assert [t["subject"] for t in card["open_tasks"]] == ["Visit"]
    assert "domain" in card["completeness"]["missing"] and 0 <= card["completeness"]["score"] < 100
    kinds = [item["kind"] for item in card["timeline"]["items"]]
    assert "deal_won" in kinds and "activity" in kinds

    contact_card = (await client.get(f"/api/v1/clients/{contact['id']}/card", headers=rep)).json()
    assert contact_card["kind"] == "contact" and contact_card["company"]["id"] == company["id"]
    assert [d["title"] for d in contact_card["open_deals"]] == ["B"]

    other = await make_user(session, tenant.org, role=Role.rep)
    other_headers = await sign_in(client, other)
    assert (await client.get(f"/api/v1/clients/{company['id']}/card", headers=other_headers)).status_code == 404
    shared = await client.post(
        "/api/v1/shares",
        json={"entity": "company", "entity_id": company["id"], "user_ids": [str(other.id)]},
        headers=rep,
    )
    assert shared.status_code == 201, shared.text
    assert (await client.get(f"/api/v1/clients/{company['id']}/card", headers=other_headers)).status_code == 200
    mine = (await client.get("/api/v1/feed?scope=me", headers=other_headers)).json()
    assert [i["kind"] for i in mine["items"]] == ["shared"]
    wins = (await client.get("/api/v1/feed?only=wins", headers=rep)).json()
    assert [i["deal"]["title"] for i in wins["items"]] == ["A"]
    deal_timeline = (await client.get(f"/api/v1/deals/{won['id']}/timeline", headers=rep)).json()
    assert [i["kind"] for i in deal_timeline["items"]] == ["deal_won", "deal_created"]
    share_id = shared.json()["items"][0]["id"]
    assert (await client.delete(f"/api/v1/shares/{share_id}", headers=rep)).status_code == 204
    assert (await client.get(f"/api/v1/clients/{company['id']}/card", headers=other_headers)).status_code == 404
