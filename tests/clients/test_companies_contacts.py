"""Companies and contacts through HTTP: the record's life with ETags, normalisation in the organisation's phone
region, duplicates on create and on update, references, who may write, and the list's filters and pages."""

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from api.core.ids import new_id
from tests.auth.test_login import bearer
from tests.clients.crm import API, created, every_page, pointers, set_region, written
from tests.factories import make_api_key, make_company, make_tenant, make_user, share_with, sign_in

pytestmark = pytest.mark.asyncio

KINDS = ["companies", "contacts"]


# The record's life: create, read, update, delete, restore, with ETags


@pytest.mark.parametrize("path", KINDS)
async def test_a_client_lives_and_is_binned_with_etags_guarding_every_write(
    session: AsyncSession, client: httpx.AsyncClient, path: str
) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    response = await client.post(f"{API}/{path}", json={"name": "  Núñez & Co  "}, headers=rep)
    assert response.status_code == 201, response.text
    record = response.json()
    assert response.headers["Location"] == f"{API}/{path}/{record['id']}"
    assert response.headers["ETag"] == '"1"'
    assert record["name"] == "Núñez & Co" and record["version"] == 1 and record["deleted_at"] is None
    assert record["owner_id"] == str(tenant.rep.id)
    url = f"{API}/{path}/{record['id']}"

    read = await client.get(url, headers=rep)
    assert read.status_code == 200 and read.headers["ETag"] == '"1"'
    assert read.json() == record

    renamed = await client.patch(url, json={"name": "Núñez y Cía"}, headers={**rep, "If-Match": '"1"'})
    assert renamed.status_code == 200, renamed.text
    assert renamed.headers["ETag"] == '"2"' and renamed.json()["version"] == 2
    assert renamed.json()["name"] == "Núñez y Cía"

    # A stale version loses nothing: 412 with the record as it is now.
    stale = await client.patch(url, json={"name": "Lost update"}, headers={**rep, "If-Match": '"1"'})
    assert stale.status_code == 412, stale.text
    assert stale.headers["ETag"] == '"2"'
    assert stale.json()["current"]["name"] == "Núñez y Cía" and stale.json()["current"]["version"] == 2
    assert (await client.get(url, headers=rep)).json()["name"] == "Núñez y Cía"

    # Weak ETags and `*` are accepted; a malformed If-Match is refused before anything happens.
    weak = await client.patch(url, json={"segment": "retail"}, headers={**rep, "If-Match": 'W/"2"'})
    assert weak.status_code == 200 and weak.json()["version"] == 3
    anything = await client.patch(url, json={"source": "web"}, headers={**rep, "If-Match": "*"})
    assert anything.status_code == 200 and anything.json()["version"] == 4
    garbled = await client.patch(url, json={"source": "fair"}, headers={**rep, "If-Match": "4"})
    assert garbled.status_code == 422, garbled.text
    # A PATCH that changes nothing is not a new version.
    same = await client.patch(url, json={"source": "web"}, headers=rep)
    assert same.status_code == 200 and same.json()["version"] == 4 and same.headers["ETag"] == '"4"'

    stale_delete = await client.delete(url, headers={**rep, "If-Match": '"3"'})
    assert stale_delete.status_code == 412 and stale_delete.json()["current"]["version"] == 4
    assert (await client.get(url, headers=rep)).status_code == 200
    assert (await client.delete(url, headers={**rep, "If-Match": '"4"'})).status_code == 204

    assert (await client.get(url, headers=rep)).status_code == 404
    assert (await client.patch(url, json={"name": "Ghost"}, headers=rep)).status_code == 404
    assert (await client.delete(url, headers=rep)).status_code == 404
    assert record["id"] not in {r["id"] for r in await every_page(client, f"/{path}", rep)}
    binned = await every_page(client, f"/{path}", rep, deleted="true")
    assert [(r["id"], r["version"]) for r in binned] == [(record["id"], 5)]
    assert binned[0]["deleted_at"] is not None

    restored = await client.post(f"{url}/restore", headers=rep)
    assert restored.status_code == 200, restored.text
    assert restored.headers["ETag"] == '"6"'
    assert restored.json()["deleted_at"] is None and restored.json()["name"] == "Núñez y Cía"
    assert (await client.get(url, headers=rep)).status_code == 200
    assert await every_page(client, f"/{path}", rep, deleted="true") == []
    # Only deleted records come back from the bin.
    assert (await client.post(f"{url}/restore", headers=rep)).status_code == 404


@pytest.mark.parametrize("path", KINDS)
async def test_the_client_may_choose_the_id_and_server_fields_are_refused(
    session: AsyncSession, client: httpx.AsyncClient, path: str
) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    chosen = str(new_id())
    record = await created(client, f"/{path}", {"id": chosen, "name": "Offline made"}, rep)
    assert record["id"] == chosen
    for field, value in (("version", 7), ("deleted_at", "2026-01-01T00:00:00Z"), ("org_id", str(uuid.uuid4()))):
        refused = await client.post(f"{API}/{path}", json={"name": "Sneaky", field: value}, headers=rep)
        assert refused.status_code == 422, refused.text
        assert pointers(refused) == [f"#/{field}"]
        patched = await client.patch(f"{API}/{path}/{chosen}", json={field: value}, headers=rep)
        assert patched.status_code == 422, patched.text
    assert (await client.get(f"{API}/{path}/{chosen}", headers=rep)).json()["version"] == 1


async def test_company_fields_are_kept_and_cleared(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    await set_region(client, tenant, "ES")
    rep = await sign_in(client, tenant.rep)
    body = {
        "name": "Acme Corp",
        "domain": "HTTPS://www.Acme.ES/contacto?x=1",
        "phone": "91 123 45 67",
        "industry": "Logistics",
        "size": 250,
        "address": "Calle Mayor 1",
        "city": "Madrid",
        "country": "ES",
        "segment": "enterprise",
        "source": "referral",
        "tags": ["vip", " vip ", "feria-2026", "vip"],
    }
    company = await created(client, "/companies", body, rep)
    expected = {**body, "domain": "acme.es", "phone": "+34911234567", "tags": ["vip", "feria-2026"]}
    assert {k: company[k] for k in body} == expected
    url = f"{API}/companies/{company['id']}"

    cleared = await client.patch(url, json={"segment": None, "source": None, "domain": None, "tags": []}, headers=rep)
    assert cleared.status_code == 200, cleared.text
    assert {k: cleared.json()[k] for k in ("segment", "source", "domain", "tags")} == {
        "segment": None,
        "source": None,
        "domain": None,
        "tags": [],
    }
    for bad in ({"country": "XX"}, {"size": -1}, {"tags": [f"t{n}" for n in range(21)]}, {"tags": [""]}):
        refused = await client.patch(url, json=bad, headers=rep)
        assert refused.status_code == 422, (bad, refused.text)
        assert pointers(refused)[0].startswith(f"#/{next(iter(bad))}")
    # Fields that may not be emptied say so.
    for field in ("name", "tags", "owner_id", "custom"):
        refused = await client.patch(url, json={field: None}, headers=rep)
        assert refused.status_code == 422 and pointers(refused) == [f"#/{field}"], refused.text


# Owners


async def test_owner_defaults_to_the_author_and_only_who_runs_the_record_reassigns_it(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    colleague = await make_user(session, tenant.org, role=Role.rep, team=tenant.team)
    mine = await created(client, "/contacts", {"name": "Ana"}, rep)
    assert mine["owner_id"] == str(tenant.rep.id)

    # A rep assigns to themselves only; an unknown or foreign owner is a bad field, not a leak.
    for owner in (colleague.id, uuid.uuid4(), tenant.admin.id):
        refused = await client.post(f"{API}/contacts", json={"name": "B", "owner_id": str(owner)}, headers=rep)
        assert refused.status_code == 422 and pointers(refused) == ["#/owner_id"], refused.text
        moved = await client.patch(f"{API}/contacts/{mine['id']}", json={"owner_id": str(owner)}, headers=rep)
        assert moved.status_code == 422 and pointers(moved) == ["#/owner_id"], moved.text

    # The admin assigns to anyone active in the organisation.
    for_rep = await created(client, "/contacts", {"name": "C", "owner_id": str(tenant.rep.id)}, tenant.headers)
    assert for_rep["owner_id"] == str(tenant.rep.id)
    handed = await client.patch(
        f"{API}/contacts/{mine['id']}", json={"owner_id": str(colleague.id)}, headers=tenant.headers
    )
    assert handed.status_code == 200 and handed.json()["owner_id"] == str(colleague.id)
    # The rep no longer sees it (reps see their own by default): a 404, as if it did not exist.
    assert (await client.get(f"{API}/contacts/{mine['id']}", headers=rep)).status_code == 404
    rival = await make_tenant(session, client, "Rival")
    foreign = await client.post(
        f"{API}/contacts", json={"name": "D", "owner_id": str(rival.rep.id)}, headers=tenant.headers
    )
    assert foreign.status_code == 422 and pointers(foreign) == ["#/owner_id"]

    # An API key owns nothing: it must name the owner.
    _, secret = await make_api_key(session, tenant.org, "clients:read", "clients:write")
    key = bearer(secret)
    nameless = await client.post(f"{API}/companies", json={"name": "Via API"}, headers=key)
    assert nameless.status_code == 422 and pointers(nameless) == ["#/owner_id"]
    named = await created(client, "/companies", {"name": "Via API", "owner_id": str(tenant.rep.id)}, key)
    assert named["owner_id"] == str(tenant.rep.id)
    me = await client.get(f"{API}/companies", params={"owner_id": "me"}, headers=key)
    assert me.status_code == 422, me.text
    # Each item with the `detail` the document's ProblemItem requires (schemathesis found it missing).
    assert [(e["parameter"], bool(e.get("detail"))) for e in me.json()["errors"]] == [("owner_id", True)], me.text


# Normalisation in the organisation's phone region


async def test_phones_are_read_in_the_organisations_region(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    before = await written(session, tenant.org.id)
    # Without a region, a number without its country code cannot be read.
    unknown = await client.post(f"{API}/contacts", json={"name": "Ana", "phones": ["611 22 33 44"]}, headers=rep)
    assert unknown.status_code == 422 and pointers(unknown) == ["#/phones/0"], unknown.text
    assert await written(session, tenant.org.id) == before

    await set_region(client, tenant, "ES")
    spanish = await created(
        client,
        "/contacts",
        {
            "name": "Ana",
            "phones": ["611 22 33 44", "+34 611-22-33-44", "0034 611 223 344", "(91) 123.45.67"],
            "emails": ["Ana.Nunez@Example.COM", "ana.nunez@example.com", "otra@ACME.es"],
        },
        rep,
    )
    assert spanish["phones"] == ["+34611223344", "+34911234567"]
    assert spanish["emails"] == ["ana.nunez@example.com", "otra@acme.es"]

    await set_region(client, tenant, "US")
    american = await created(client, "/contacts", {"name": "Bob", "phones": ["(415) 555-2671"]}, rep)
    assert american["phones"] == ["+14155552671"]
    # Numbers written with their country code keep it whatever the region.
    updated = await client.patch(f"{API}/contacts/{american['id']}", json={"phones": ["+34 611 99 88 77"]}, headers=rep)
    assert updated.status_code == 200 and updated.json()["phones"] == ["+34611998877"]


INVALID = [
    ("contacts", {"emails": ["ok@example.com", "not-an-email"]}, "#/emails/1"),
    ("contacts", {"emails": ["ana@example.com", "ana@@example.com", "x"]}, "#/emails/1"),
    ("contacts", {"emails": [""]}, "#/emails/0"),
    ("contacts", {"phones": ["abc"]}, "#/phones/0"),
    ("contacts", {"phones": ["611 22 33 44", "12"]}, "#/phones/1"),
    ("companies", {"domain": "not a domain"}, "#/domain"),
    ("companies", {"domain": "localhost"}, "#/domain"),
    ("companies", {"phone": "call me"}, "#/phone"),
]


async def test_an_invalid_handle_is_named_by_its_pointer_and_nothing_is_written(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    await set_region(client, tenant, "ES")
    rep = await sign_in(client, tenant.rep)
    existing = {path: await created(client, f"/{path}", {"name": "Existing"}, rep) for path in KINDS}
    before = await written(session, tenant.org.id)
    for path, body, pointer in INVALID:
        refused = await client.post(f"{API}/{path}", json={"name": "New", **body}, headers=rep)
        assert refused.status_code == 422, (body, refused.text)
        assert pointers(refused) == [pointer], body
        assert refused.json()["type"] == "/problems/validation" and refused.json()["status"] == 422

        record = existing[path]
        patched = await client.patch(f"{API}/{path}/{record['id']}", json=body, headers=rep)
        assert patched.status_code == 422, (body, patched.text)
        assert pointers(patched) == [pointer], body
        assert (await client.get(f"{API}/{path}/{record['id']}", headers=rep)).json() == record
    assert await written(session, tenant.org.id) == before


# Duplicates


async def test_a_duplicate_contact_is_refused_on_create_with_the_existing_id(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    await set_region(client, tenant, "ES")
    rep = await sign_in(client, tenant.rep)
    ana = await created(client, "/contacts", {"name": "Ana", "emails": ["ana@acme.es"], "phones": ["611223344"]}, rep)
    other = await sign_in(client, await make_user(session, tenant.org, role=Role.rep))
    before = await written(session, tenant.org.id)

    cases = [
        ({"phones": ["+34 611 22 33 44"]}, "phone", "+34611223344"),
        ({"emails": ["ANA@Acme.ES"]}, "email", "ana@acme.es"),
    ]
    for handles, matched, value in cases:
        response = await client.post(f"{API}/contacts", json={"name": "Someone", **handles}, headers=rep)
        assert response.status_code == 409, response.text
        assert response.json()["duplicates"] == [
            {"id": ana["id"], "kind": "contact", "owner_id": str(tenant.rep.id), "matched": matched, "value": value}
        ]
    # A duplicate seen by someone who cannot see the original still names it (so they can ask its owner).
    blind = await client.post(f"{API}/contacts", json={"name": "X", "emails": ["ana@acme.es"]}, headers=other)
    assert blind.status_code == 409 and blind.json()["duplicates"][0]["id"] == ana["id"]
    assert await written(session, tenant.org.id) == before

    # A company sharing the contact's phone is not a duplicate of it: kinds are checked apart.
    await created(client, "/companies", {"name": "Ana's shop", "phone": "611223344"}, rep)
    confirmed = await client.post(
        f"{API}/contacts?confirm_duplicate=true", json={"name": "Ana again", "phones": ["611223344"]}, headers=rep
    )
    assert confirmed.status_code == 201, confirmed.text
    # Now both are found.
    third = await client.post(f"{API}/contacts", json={"name": "Ana 3", "phones": ["611223344"]}, headers=rep)
    assert third.status_code == 409
    assert {d["id"] for d in third.json()["duplicates"]} == {ana["id"], confirmed.json()["id"]}


async def test_a_duplicate_company_is_refused_by_domain_or_phone(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    await set_region(client, tenant, "ES")
    rep = await sign_in(client, tenant.rep)
    acme = await created(client, "/companies", {"name": "Acme", "domain": "acme.es", "phone": "911234567"}, rep)
    for body, matched in (({"domain": "http://WWW.acme.es/"}, "domain"), ({"phone": "+34 91 123 45 67"}, "phone")):
        response = await client.post(f"{API}/companies", json={"name": "Acme Madrid", **body}, headers=rep)
        assert response.status_code == 409, response.text
        assert [(d["id"], d["matched"]) for d in response.json()["duplicates"]] == [(acme["id"], matched)]
        forced = await client.post(
            f"{API}/companies", params={"confirm_duplicate": "true"}, json={"name": "Acme Madrid", **body}, headers=rep
        )
        assert forced.status_code == 201, forced.text


async def test_a_duplicate_is_refused_on_update_too(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    await set_region(client, tenant, "ES")
    rep = await sign_in(client, tenant.rep)
    ana = await created(client, "/contacts", {"name": "Ana", "phones": ["611223344"]}, rep)
    bea = await created(client, "/contacts", {"name": "Bea", "phones": ["622334455"], "emails": ["bea@b.es"]}, rep)
    before = await written(session, tenant.org.id)
    url = f"{API}/contacts/{bea['id']}"

    clash = await client.patch(url, json={"phones": ["611-22-33-44"]}, headers={**rep, "If-Match": '"1"'})
    assert clash.status_code == 409, clash.text
    assert [(d["id"], d["matched"], d["value"]) for d in clash.json()["duplicates"]] == [
        (ana["id"], "phone", "+34611223344")
    ]
    assert await written(session, tenant.org.id) == before
    assert (await client.get(url, headers=rep)).json() == bea
    # Ana's phone still belongs to Ana alone: the refused change left no contact point behind.
    found = (await client.get(f"{API}/search", params={"q": "611223344"}, headers=rep)).json()["items"]
    assert [h["id"] for h in found] == [ana["id"]]

    forced = await client.patch(
        url, params={"confirm_duplicate": "true"}, json={"phones": ["611-22-33-44"]}, headers={**rep, "If-Match": '"1"'}
    )
    assert forced.status_code == 200, forced.text
    assert forced.json()["phones"] == ["+34611223344"] and forced.json()["version"] == 2

    acme = await created(client, "/companies", {"name": "Acme", "domain": "acme.es"}, rep)
    zeta = await created(client, "/companies", {"name": "Zeta", "domain": "zeta.es"}, rep)
    moved = await client.patch(f"{API}/companies/{zeta['id']}", json={"domain": "www.ACME.es"}, headers=rep)
    assert moved.status_code == 409 and moved.json()["duplicates"][0]["id"] == acme["id"], moved.text
    # Changing anything else on a record is no duplicate check; nor is keeping its own handles.
    assert (
        await client.patch(f"{API}/companies/{zeta['id']}", json={"domain": "zeta.es"}, headers=rep)
    ).status_code == 200
    assert (await client.patch(f"{API}/companies/{zeta['id']}", json={"city": "Vigo"}, headers=rep)).status_code == 200


async def test_a_confirmed_duplicate_is_not_refused_again_for_an_unrelated_handle(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    await set_region(client, tenant, "ES")
    rep = await sign_in(client, tenant.rep)
    await created(client, "/contacts", {"name": "Ana", "phones": ["611223344"]}, rep)
    twin = await client.post(
        f"{API}/contacts?confirm_duplicate=true", json={"name": "Ana (shop)", "phones": ["611223344"]}, headers=rep
    )
    assert twin.status_code == 201
    added = await client.patch(f"{API}/contacts/{twin.json()['id']}", json={"emails": ["shop@ana.es"]}, headers=rep)
    assert added.status_code == 200, added.text


async def test_deleted_clients_are_not_duplicates(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    await set_region(client, tenant, "ES")
    rep = await sign_in(client, tenant.rep)
    old = await created(client, "/contacts", {"name": "Old", "phones": ["611223344"]}, rep)
    assert (await client.delete(f"{API}/contacts/{old['id']}", headers=rep)).status_code == 204
    new = await created(client, "/contacts", {"name": "New", "phones": ["+34611223344"]}, rep)
    old_company = await created(client, "/companies", {"name": "Old Co", "domain": "old.es"}, rep)
    assert (await client.delete(f"{API}/companies/{old_company['id']}", headers=rep)).status_code == 204
    await created(client, "/companies", {"name": "New Co", "domain": "old.es"}, rep)
    other = await created(client, "/contacts", {"name": "Other", "phones": ["622000000"]}, rep)
    moved = await client.patch(f"{API}/contacts/{other['id']}", json={"phones": ["611223344"]}, headers=rep)
    assert moved.status_code == 409 and [d["id"] for d in moved.json()["duplicates"]] == [new["id"]]

    # Restored, it counts again.
    assert (await client.post(f"{API}/contacts/{old['id']}/restore", headers=rep)).status_code == 200
    again = await client.post(f"{API}/contacts", json={"name": "Third", "phones": ["611 22 33 44"]}, headers=rep)
    assert again.status_code == 409
    assert {d["id"] for d in again.json()["duplicates"]} == {old["id"], new["id"]}


async def test_other_organisations_never_count_as_duplicates_nor_show(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    rival = await make_tenant(session, client, "Rival")
    for who in (tenant, rival):
        await set_region(client, who, "ES")
    rival_rep = await sign_in(client, rival.rep)
    theirs = await created(
        client, "/contacts", {"name": "Ana", "phones": ["611223344"], "emails": ["ana@acme.es"]}, rival_rep
    )
    their_company = await created(client, "/companies", {"name": "Acme", "domain": "acme.es"}, rival_rep)

    rep = await sign_in(client, tenant.rep)
    mine = await client.post(
        f"{API}/contacts", json={"name": "Ana", "phones": ["611 22 33 44"], "emails": ["ANA@acme.es"]}, headers=rep
    )
    assert mine.status_code == 201, mine.text
    my_company = await client.post(f"{API}/companies", json={"name": "Acme", "domain": "acme.es"}, headers=rep)
    assert my_company.status_code == 201, my_company.text
    other = await created(client, "/contacts", {"name": "Bea"}, rep)
    changed = await client.patch(f"{API}/contacts/{other['id']}", json={"emails": ["ana@acme.es"]}, headers=rep)
    assert changed.status_code == 409
    assert [d["id"] for d in changed.json()["duplicates"]] == [mine.json()["id"]]
    assert theirs["id"] not in changed.text

    for path, record in (("contacts", theirs), ("companies", their_company)):
        url = f"{API}/{path}/{record['id']}"
        assert (await client.get(url, headers=tenant.headers)).status_code == 404
        assert (await client.patch(url, json={"name": "Mine now"}, headers=tenant.headers)).status_code == 404
        assert (await client.delete(url, headers=tenant.headers)).status_code == 404
        assert (await client.post(f"{url}/restore", headers=tenant.headers)).status_code == 404
    assert (await client.get(f"{API}/contacts/{theirs['id']}", headers=rival_rep)).json()["name"] == "Ana"


# References


async def test_a_contacts_company_must_be_one_the_author_sees(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rival = await make_tenant(session, client, "Rival")
    rep = await sign_in(client, tenant.rep)
    colleague = await make_user(session, tenant.org, role=Role.rep)
    hidden = await make_company(session, colleague, name="Hidden Co")
    foreign = await make_company(session, rival.rep, name="Foreign Co")
    gone = await make_company(session, tenant.rep, name="Gone Co")
    assert (await client.delete(f"{API}/companies/{gone.id}", headers=rep)).status_code == 204
    before = await written(session, tenant.org.id)

    mine = await created(client, "/contacts", {"name": "Ana"}, rep)
    for company_id in (hidden.id, foreign.id, gone.id, uuid.uuid4()):
        refused = await client.post(f"{API}/contacts", json={"name": "Bea", "company_id": str(company_id)}, headers=rep)
        assert refused.status_code == 422 and pointers(refused) == ["#/company_id"], refused.text
        # The message is the same whether the company exists elsewhere or not at all.
        assert refused.json()["detail"] == "No such company."
        moved = await client.patch(f"{API}/contacts/{mine['id']}", json={"company_id": str(company_id)}, headers=rep)
        assert moved.status_code == 422 and pointers(moved) == ["#/company_id"], moved.text
    assert (await written(session, tenant.org.id))["contact"] == before["contact"] + 1

    await share_with(session, colleague, "company", hidden.id, tenant.rep)
    joined = await client.patch(f"{API}/contacts/{mine['id']}", json={"company_id": str(hidden.id)}, headers=rep)
    assert joined.status_code == 200 and joined.json()["company_id"] == str(hidden.id)
    left = await client.patch(f"{API}/contacts/{mine['id']}", json={"company_id": None}, headers=rep)
    assert left.status_code == 200 and left.json()["company_id"] is None


# Who may write


@pytest.mark.parametrize("path", KINDS)
async def test_marketing_reads_clients_but_cannot_change_them(
    session: AsyncSession, client: httpx.AsyncClient, path: str
) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    record = await created(client, f"/{path}", {"name": "Acme"}, rep)
    marketing = await sign_in(client, await make_user(session, tenant.org, role=Role.marketing))
    url = f"{API}/{path}/{record['id']}"
    assert (await client.get(url, headers=marketing)).status_code == 200
    assert [r["id"] for r in await every_page(client, f"/{path}", marketing)] == [record["id"]]
    before = await written(session, tenant.org.id)

    assert (await client.post(f"{API}/{path}", json={"name": "Mine"}, headers=marketing)).status_code == 403
    assert (await client.patch(url, json={"name": "Renamed"}, headers=marketing)).status_code == 403
    assert (await client.delete(url, headers=marketing)).status_code == 403
    assert (await client.delete(url, headers=rep)).status_code == 204
    assert (await client.post(f"{url}/restore", headers=marketing)).status_code == 403
    after = await written(session, tenant.org.id)
    assert after["change"] == before["change"] + 1  # the rep's delete only

    # An API key writes only with clients:write.
    _, secret = await make_api_key(session, tenant.org, "clients:read")
    reader = bearer(secret)
    assert (await client.get(f"{API}/{path}", headers=reader)).status_code == 200
    body = {"name": "Via key", "owner_id": str(tenant.rep.id)}
    assert (await client.post(f"{API}/{path}", json=body, headers=reader)).status_code == 403


@pytest.mark.parametrize("path", KINDS)
async def test_a_client_shared_with_a_rep_is_theirs_to_edit_not_to_delete(
    session: AsyncSession, client: httpx.AsyncClient, path: str
) -> None:
    tenant = await make_tenant(session, client)
    owner = await sign_in(client, tenant.rep)
    colleague = await make_user(session, tenant.org, role=Role.rep, team=tenant.team)
    guest = await sign_in(client, colleague)
    record = await created(client, f"/{path}", {"name": "Acme"}, owner)
    url = f"{API}/{path}/{record['id']}"
    assert (await client.get(url, headers=guest)).status_code == 404
    entity = "company" if path == "companies" else "contact"
    await share_with(session, tenant.rep, entity, uuid.UUID(record["id"]), colleague)

    assert (await client.get(url, headers=guest)).status_code == 200
    edited = await client.patch(url, json={"name": "Acme Iberia"}, headers=guest)
    assert edited.status_code == 200, edited.text
    refused = await client.delete(url, headers=guest)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"] == "/problems/forbidden"
    taken = await client.patch(url, json={"owner_id": str(colleague.id)}, headers=guest)
    assert taken.status_code == 403, taken.text
    assert (await client.get(url, headers=owner)).json()["owner_id"] == str(tenant.rep.id)

    assert (await client.delete(url, headers=owner)).status_code == 204
    assert (await client.post(f"{url}/restore", headers=guest)).status_code == 403
    assert (await client.post(f"{url}/restore", headers=tenant.headers)).status_code == 200


# The list: filters and pages


async def test_list_filters(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    admin = tenant.headers

    def body(name: str, **fields: Any) -> dict[str, Any]:
        return {"name": name, **fields}

    jose = await created(client, "/contacts", body("José Pérez", tags=["vip"], segment="smb"), rep)
    josefa = await created(client, "/contacts", body("Josefa Ortega", tags=["vip", "feria"]), rep)
    perez = await created(client, "/contacts", body("Pérez Galdós", segment="smb"), rep)
    percent = await created(client, "/contacts", body("50% Ofertas"), rep)
    await created(client, "/contacts", body("500 Club"), rep)
    other = await created(client, "/contacts", body("Joselito", owner_id=str(tenant.admin.id)), admin)
    binned = await created(client, "/contacts", body("José Binned", tags=["vip"]), rep)
    assert (await client.delete(f"{API}/contacts/{binned['id']}", headers=rep)).status_code == 204

    async def names(headers: dict[str, str], **params: Any) -> list[str]:
        return [c["name"] for c in await every_page(client, "/contacts", headers, **params)]

    # Accents and case ignored; a prefix of the name, not a word inside it.
    assert await names(rep, q="jose") == ["José Pérez", "Josefa Ortega"]
    assert await names(rep, q="JOSÉ P") == ["José Pérez"]
    assert await names(rep, q="perez") == ["Pérez Galdós"]
    assert await names(admin, q="jose") == ["José Pérez", "Josefa Ortega", "Joselito"]
    # LIKE wildcards in q are literal.
    assert await names(rep, q="50%") == ["50% Ofertas"]
    assert await names(rep, q="_") == []

    assert await names(admin, owner_id="me") == ["Joselito"]
    assert len(await names(admin, owner_id=str(tenant.rep.id))) == 5
    assert await names(admin, tag="vip") == ["José Pérez", "Josefa Ortega"]
    assert await names(admin, tag="feria") == ["Josefa Ortega"]
    assert await names(admin, tag="vi") == []
    assert await names(admin, segment="smb") == ["José Pérez", "Pérez Galdós"]
    assert await names(admin, q="jos", tag="vip", segment="smb") == ["José Pérez"]
    assert [c["id"] for c in await every_page(client, "/contacts", admin, deleted="true")] == [binned["id"]]
    assert await names(admin, deleted="true", tag="vip") == ["José Binned"]
    assert await names(admin, deleted="true", q="perez") == []
    assert {jose["id"], josefa["id"], perez["id"], percent["id"], other["id"]} <= {
        c["id"] for c in await every_page(client, "/contacts", admin)
    }

    acme = await created(client, "/companies", body("Acme"), rep)
    zeta = await created(client, "/companies", body("Zeta"), rep)
    for contact, company in ((jose, acme), (perez, acme), (josefa, zeta)):
        moved = await client.patch(f"{API}/contacts/{contact['id']}", json={"company_id": company["id"]}, headers=rep)
        assert moved.status_code == 200, moved.text
    assert await names(rep, company_id=acme["id"]) == ["José Pérez", "Pérez Galdós"]
    assert await names(rep, company_id=acme["id"], q="pe") == ["Pérez Galdós"]
    assert await names(rep, company_id=str(uuid.uuid4())) == []

    bad_filters = (
        {"owner_id": "someone"},
        {"owner_id": "-" * 36},  # UUID-shaped enough for a loose pattern: it once got through to a 500
        {"limit": 0},
        {"limit": 201},
        {"deleted": "maybe"},
        {"company_id": "x"},
    )
    for bad in bad_filters:
        refused = await client.get(f"{API}/contacts", params=bad, headers=rep)
        assert refused.status_code == 422, (bad, refused.text)


async def test_keyset_pages_walk_every_record_once_in_name_order(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    made = []
    # Equal names force the id tie-break across page boundaries.
    for n, name in enumerate(["Beta"] * 7 + [f"Álamo {n:02d}" for n in range(9)] + ["alamo 00", "Zeta", "zeta"]):
        made.append(await created(client, "/companies", {"name": name, "tags": ["even" if n % 2 == 0 else "odd"]}, rep))
    colleague = await make_user(session, tenant.org, role=Role.rep)
    await make_company(session, colleague, name="Not mine")

    everything = await every_page(client, "/companies", rep, limit=200)
    assert len(everything) == len(made)
    for limit in (1, 4, 7):
        walked = await every_page(client, "/companies", rep, limit=limit)
        assert [c["id"] for c in walked] == [c["id"] for c in everything]
    ids = [c["id"] for c in everything]
    assert len(set(ids)) == len(made) and set(ids) == {c["id"] for c in made}
    # By folded name, then id.
    beta = [c["id"] for c in everything if c["name"] == "Beta"]
    assert beta == sorted(beta)
    folded = [c["name"].lower().replace("á", "a") for c in everything]
    assert folded == sorted(folded)

    odd = await every_page(client, "/companies", rep, limit=3, tag="odd")
    assert [c["id"] for c in odd] == [c["id"] for c in everything if "odd" in c["tags"]]
    assert len(await every_page(client, "/companies", tenant.headers, limit=5)) == len(made) + 1

    # Cursors belong to their list.
    first = (await client.get(f"{API}/companies", params={"limit": 2}, headers=rep)).json()
    assert first["next_cursor"]
    for params in ({"cursor": first["next_cursor"][:-2] + "xx"}, {"cursor": "garbage"}):
        refused = await client.get(f"{API}/companies", params=params, headers=rep)
        assert refused.status_code == 400, refused.text
    other_list = await client.get(f"{API}/contacts", params={"cursor": first["next_cursor"]}, headers=rep)
    assert other_list.status_code == 400, other_list.text
