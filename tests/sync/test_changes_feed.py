"""`GET /changes`: the change log for integrations, in commit order, names only, one organisation's."""

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import make_api_key, make_company, make_tenant, sign_in

pytestmark = pytest.mark.asyncio

CHANGES = "/api/v1/changes"


async def test_changes_come_in_order_with_field_names_and_page_on(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    _key, secret = await make_api_key(session, tenant.org, "changes:read")
    key = {"Authorization": f"Bearer {secret}"}
    start = (await client.get(CHANGES, params={"limit": 1000}, headers=key)).json()
    cursor = start["next_cursor"]
    while start["has_more"]:
        start = (await client.get(CHANGES, params={"cursor": cursor, "limit": 1000}, headers=key)).json()
        cursor = start["next_cursor"]

    company = await make_company(session, tenant.rep, name="Feed SA")
    renamed = await client.patch(f"/api/v1/companies/{company.id}", json={"name": "Feed SL"}, headers=tenant.headers)
    assert renamed.status_code == 200
    assert (await client.delete(f"/api/v1/companies/{company.id}", headers=tenant.headers)).status_code == 204

    first = (await client.get(CHANGES, params={"cursor": cursor, "limit": 2}, headers=key)).json()
    assert first["has_more"]
    rest = (await client.get(CHANGES, params={"cursor": first["next_cursor"]}, headers=key)).json()
    items = [i for i in first["items"] + rest["items"] if i["entity"] == "company"]
    assert [(i["op"], i["version"]) for i in items] == [("create", 1), ("update", 2), ("delete", 3)]
    assert all(i["entity_id"] == str(company.id) for i in items)
    assert items[1]["fields"] == ["name"] and "name" in items[0]["fields"]
    seqs = [i["seq"] for i in first["items"] + rest["items"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert int(cursor) < seqs[0]
    # Nothing new: the same cursor back, and no values ever (only names).
    idle = (await client.get(CHANGES, params={"cursor": rest["next_cursor"]}, headers=key)).json()
    assert idle == {"items": [], "next_cursor": rest["next_cursor"], "has_more": False}
    assert "Feed SL" not in str(first) + str(rest)


async def test_only_admins_and_keys_with_the_scope_read_it_and_only_their_organisation(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    other = await make_tenant(session, client, "Other")
    await make_company(session, other.rep, name="Elsewhere SA")
    assert (await client.get(CHANGES, headers=await sign_in(client, tenant.rep))).status_code == 403
    assert (await client.get(CHANGES, headers={"Authorization": f"Bearer {tenant.key_secret}"})).status_code == 403
    mine = (await client.get(CHANGES, params={"limit": 1000}, headers=tenant.headers)).json()["items"]
    theirs = (await client.get(CHANGES, params={"limit": 1000}, headers=other.headers)).json()["items"]
    assert not {i["entity_id"] for i in mine} & {i["entity_id"] for i in theirs}
    bad = await client.get(CHANGES, params={"cursor": "abc"}, headers=tenant.headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["parameter"] == "cursor"
