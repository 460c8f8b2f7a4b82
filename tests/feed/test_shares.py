"""Shares over HTTP: colleagues of the organisation only, idempotent, announced in the colleague's feed, and undone
by whoever runs the record or by the colleague leaving."""

import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from tests.factories import make_activity, make_company, make_contact, make_deal, make_tenant, make_user, sign_in
from tests.feed.crm import ACTIVITIES, API, DEALS, FEED, SHARES, Headers, Json, ok, refused, written

pytestmark = pytest.mark.asyncio

COMPANIES = f"{API}/companies"


async def _share(
    client: httpx.AsyncClient, headers: Headers, entity: str, entity_id: object, *users: object
) -> httpx.Response:
    body = {"entity": entity, "entity_id": str(entity_id), "user_ids": [str(u) for u in users]}
    return await client.post(SHARES, json=body, headers=headers)


async def test_sharing_is_with_colleagues_only_and_says_so_once(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    colleague = await make_user(session, tenant.org, role=Role.rep)
    second = await make_user(session, tenant.org, role=Role.rep)
    rival = await make_tenant(session, client, "Rival")
    company = await make_company(session, tenant.rep, name="Transportes Núñez")
    before = await written(session, tenant.org.id)

    refused(await _share(client, rep, "company", company.id, rival.rep.id), 422, "#/user_ids/0")
    refused(await _share(client, rep, "company", company.id, colleague.id, rival.rep.id), 422, "#/user_ids/1")
    refused(await _share(client, rep, "company", company.id, uuid.uuid4()), 422, "#/user_ids/0")
    refused(await _share(client, rep, "company", company.id), 422, "#/user_ids")
    refused(await _share(client, rep, "planet", company.id, colleague.id), 422, "#/entity")
    # A record the sharer cannot see, or another organisation's, is not found.
    refused(await _share(client, rep, "company", uuid.uuid4(), colleague.id), 404)
    rival_company = await make_company(session, rival.rep, name="Rival Corp")
    refused(await _share(client, rep, "company", rival_company.id, colleague.id), 404)
    refused(await _share(client, rep, "deal", company.id, colleague.id), 404)
    assert await written(session, tenant.org.id) == before
    theirs = await sign_in(client, colleague)
    refused(await client.get(f"{COMPANIES}/{company.id}", headers=theirs), 404)

    made = ok(await _share(client, rep, "company", company.id, colleague.id, colleague.id), 201)["items"]
    assert [(s["user_id"], s["by_id"], s["entity"]) for s in made] == [
        (str(colleague.id), str(tenant.rep.id), "company")
    ]
    # Again, or with the owner: nothing new; a newcomer in the same request is added.
    assert ok(await _share(client, rep, "company", company.id, colleague.id), 201)["items"] == []
    assert ok(await _share(client, rep, "company", company.id, tenant.rep.id), 201)["items"] == []
    added = ok(await _share(client, rep, "company", company.id, colleague.id, second.id), 201)["items"]
    assert [s["user_id"] for s in added] == [str(second.id)]
    listed = ok(await client.get(SHARES, params={"entity": "company", "entity_id": str(company.id)}, headers=rep))
    assert [s["user_id"] for s in listed["items"]] == [str(colleague.id), str(second.id)]

    ok(await client.get(f"{COMPANIES}/{company.id}", headers=theirs))
    mine = ok(await client.get(FEED, params={"scope": "me"}, headers=theirs))["items"]
    assert [(i["kind"], i["actor_id"], i["user_id"], i["company"]["name"]) for i in mine] == [
        ("shared", str(tenant.rep.id), str(colleague.id), "Transportes Núñez")
    ]


async def test_a_share_opens_the_record_and_what_hangs_off_it(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    colleague = await make_user(session, tenant.org, role=Role.rep)
    theirs = await sign_in(client, colleague)
    company = await make_company(session, tenant.rep, name="Acme Corp")
    contact = await make_contact(session, tenant.rep, name="Ana", company_id=company.id)
    deal = await make_deal(session, tenant.rep, title="Fleet", company_id=company.id, contact_id=contact.id)
    call = await make_activity(session, tenant.rep, kind="call", deal_id=deal.id)
    lone_deal = await make_deal(session, tenant.rep, title="Alone")
    paths = [
        f"{COMPANIES}/{company.id}",
        f"{API}/contacts/{contact.id}",
        f"{DEALS}/{deal.id}",
        f"{ACTIVITIES}/{call.id}",
    ]
    for path in paths:
        refused(await client.get(path, headers=theirs), 404)

    ok(await _share(client, rep, "company", company.id, colleague.id), 201)
    for path in paths:
        ok(await client.get(path, headers=theirs))
    refused(await client.get(f"{DEALS}/{lone_deal.id}", headers=theirs), 404)
    # A shared deal alone opens that deal, and the colleague hears of it.
    ok(await _share(client, rep, "deal", lone_deal.id, colleague.id), 201)
    ok(await client.get(f"{DEALS}/{lone_deal.id}", headers=theirs))
    shared = ok(await client.get(FEED, params={"scope": "me"}, headers=theirs))["items"]
    assert [(i["kind"], i["deal"]["title"] if i["deal"] else None) for i in shared] == [
        ("shared", "Alone"),
        ("shared", None),
    ]
    # A share lets them work the record, not take it: deleting it stays with its owner's side.
    ok(await client.patch(f"{DEALS}/{lone_deal.id}", json={"title": "Alone, renamed"}, headers=theirs))
    refused(await client.delete(f"{DEALS}/{lone_deal.id}", headers=theirs), 403)


async def test_unsharing_and_leaving_take_the_access_away(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    colleague = await make_user(session, tenant.org, role=Role.rep)
    theirs = await sign_in(client, colleague)
    outsider = await sign_in(client, await make_user(session, tenant.org, role=Role.rep))
    rival = await make_tenant(session, client, "Rival")
    company = await make_company(session, tenant.rep, name="Acme Corp")
    path = f"{COMPANIES}/{company.id}"

    first: Json = ok(await _share(client, rep, "company", company.id, colleague.id), 201)["items"][0]
    # Someone who cannot change the record cannot undo its shares; another organisation does not find them.
    refused(await client.delete(f"{SHARES}/{first['id']}", headers=outsider), 404)
    refused(await client.delete(f"{SHARES}/{first['id']}", headers=rival.headers), 404)
    ok(await client.get(path, headers=theirs))

    ok(await client.delete(f"{SHARES}/{first['id']}", headers=rep), 204)
    refused(await client.get(path, headers=theirs), 404)
    refused(await client.get(f"{API}/clients/{company.id}/card", headers=theirs), 404)
    refused(await client.delete(f"{SHARES}/{first['id']}", headers=rep), 404)
    listed = ok(await client.get(SHARES, params={"entity": "company", "entity_id": str(company.id)}, headers=rep))
    assert listed["items"] == []

    # Shared again (a new share), then the colleague leaves it.
    again: Json = ok(await _share(client, rep, "company", company.id, colleague.id), 201)["items"][0]
    assert again["id"] != first["id"]
    ok(await client.get(path, headers=theirs))
    ok(await client.delete(f"{SHARES}/{again['id']}", headers=theirs), 204)
    refused(await client.get(path, headers=theirs), 404)
    # The admin, who runs everything, may undo anyone's share.
    third: Json = ok(await _share(client, rep, "company", company.id, colleague.id), 201)["items"][0]
    ok(await client.delete(f"{SHARES}/{third['id']}", headers=tenant.headers), 204)
    refused(await client.get(path, headers=theirs), 404)
