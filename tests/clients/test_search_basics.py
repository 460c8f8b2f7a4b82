"""Search: typo-tolerant names, exact handles in any formatting, only what the caller may see."""

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from tests.factories import make_tenant, make_user, sign_in

pytestmark = pytest.mark.asyncio


async def test_search_forgives_typos_and_formats(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    tenant.org.settings = {**tenant.org.settings, "phone_region": "ES"}
    await session.commit()
    rep = await sign_in(client, tenant.rep)
    acme = (await client.post("/api/v1/companies", json={"name": "Acme Corp", "domain": "acme.es"}, headers=rep)).json()
    await client.post("/api/v1/companies", json={"name": "Zeta Logística"}, headers=rep)
    ana = (
        await client.post(
            "/api/v1/contacts",
            json={"name": "Ana Núñez", "emails": ["ana@acme.es"], "phones": ["611223344"]},
            headers=rep,
        )
    ).json()
    deal = (await client.post("/api/v1/deals", json={"title": "Acme renewal"}, headers=rep)).json()

    found = (await client.get("/api/v1/search", params={"q": "Acme Copr"}, headers=rep)).json()["items"]
    assert found[0]["id"] == acme["id"], found
    assert deal["id"] in [h["id"] for h in found]
    assert all(h["name"] != "Zeta Logística" for h in found)

    by_prefix = (await client.get("/api/v1/search", params={"q": "zet"}, headers=rep)).json()["items"]
    assert [h["name"] for h in by_prefix] == ["Zeta Logística"]
    by_accentless = (await client.get("/api/v1/search", params={"q": "ana nunez"}, headers=rep)).json()["items"]
    assert by_accentless[0]["id"] == ana["id"]
    by_phone = (await client.get("/api/v1/search", params={"q": "+34 611 22 33 44"}, headers=rep)).json()["items"]
    assert by_phone[0] == {**by_phone[0], "id": ana["id"], "matched": "phone", "score": 1.0}
    by_email = (await client.get("/api/v1/search", params={"q": "ANA@acme.es"}, headers=rep)).json()["items"]
    assert by_email[0]["id"] == ana["id"] and by_email[0]["matched"] == "email"
    by_domain = (await client.get("/api/v1/search", params={"q": "www.acme.es"}, headers=rep)).json()["items"]
    assert by_domain[0]["id"] == acme["id"] and by_domain[0]["matched"] == "domain"

    stranger = await sign_in(client, await make_user(session, tenant.org, role=Role.rep))
    assert (await client.get("/api/v1/search", params={"q": "Acme"}, headers=stranger)).json()["items"] == []
