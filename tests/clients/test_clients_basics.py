"""Companies and contacts through HTTP: normalisation, duplicates, custom fields, the bin."""

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import make_tenant, sign_in

pytestmark = pytest.mark.asyncio


async def test_contact_is_normalised_and_a_duplicate_needs_confirming(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    tenant.org.settings = {**tenant.org.settings, "phone_region": "ES"}
    await session.commit()
    rep = await sign_in(client, tenant.rep)
    body = {"name": "José Pérez", "emails": ["Jose.Perez@Example.COM"], "phones": ["611 22 33 44"]}
    created = await client.post("/api/v1/contacts", json=body, headers=rep)
    assert created.status_code == 201, created.text
    assert created.json()["emails"] == ["jose.perez@example.com"]
    assert created.json()["phones"] == ["+34611223344"]
    assert created.json()["owner_id"] == str(tenant.rep.id)

    again = await client.post(
        "/api/v1/contacts", json={"name": "J. Perez", "phones": ["+34 611-22-33-44"]}, headers=rep
    )
    assert again.status_code == 409, again.text
    assert again.json()["duplicates"][0]["id"] == created.json()["id"]
    assert again.json()["duplicates"][0]["matched"] == "phone"

    confirmed = await client.post(
        "/api/v1/contacts?confirm_duplicate=true",
        json={"name": "J. Perez", "phones": ["+34 611-22-33-44"]},
        headers=rep,
    )
    assert confirmed.status_code == 201, confirmed.text


async def test_company_domain_custom_fields_and_bin(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    field = await client.post(
        "/api/v1/custom-fields",
        json={"entity": "company", "key": "tier", "label": "Tier", "kind": "choice", "choices": ["A", "B"]},
        headers=tenant.headers,
    )
    assert field.status_code == 201, field.text
    rep = await sign_in(client, tenant.rep)
    bad = await client.post("/api/v1/companies", json={"name": "Acme", "custom": {"tier": "Z"}}, headers=rep)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["pointer"] == "#/custom/tier"
    made = await client.post(
        "/api/v1/companies",
        json={"name": "Acme Corp", "domain": "https://www.ACME.es/contacto", "custom": {"tier": "A"}, "tags": ["vip"]},
        headers=rep,
    )
    assert made.status_code == 201, made.text
    assert made.json()["domain"] == "acme.es"
    listed = await client.get("/api/v1/companies?q=acme&tag=vip", headers=rep)
    assert [c["id"] for c in listed.json()["items"]] == [made.json()["id"]]
    company_id = made.json()["id"]
    assert (await client.delete(f"/api/v1/companies/{company_id}", headers=rep)).status_code == 204
    assert (await client.get(f"/api/v1/companies/{company_id}", headers=rep)).status_code == 404
    binned = await client.get("/api/v1/companies?deleted=true", headers=rep)
    assert [c["id"] for c in binned.json()["items"]] == [company_id]
    restored = await client.post(f"/api/v1/companies/{company_id}/restore", headers=rep)
    assert restored.status_code == 200, restored.text
    assert restored.json()["deleted_at"] is None
