"""Search on both databases: names with typos, prefixes and accents forgiven and ranked; e-mails, phones and domains
in any formatting; the kinds asked for, the limit; and only live records the caller may see, under their current
names."""

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from tests.auth.test_login import bearer
from tests.clients.crm import API, created, set_region
from tests.factories import Tenant, make_api_key, make_tenant, make_user, sign_in

pytestmark = pytest.mark.asyncio

SEARCH = f"{API}/search"


async def search(client: httpx.AsyncClient, headers: dict[str, str], q: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(SEARCH, params={"q": q, **params}, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    scores = [h["score"] for h in items]
    assert scores == sorted(scores, reverse=True), items
    return items


def names(hits: list[dict[str, Any]]) -> list[str]:
    return [h["name"] for h in hits]


async def setup(session: AsyncSession, client: httpx.AsyncClient) -> tuple[Tenant, dict[str, str]]:
    tenant = await make_tenant(session, client)
    await set_region(client, tenant, "ES")
    return tenant, await sign_in(client, tenant.rep)


# Names


async def test_names_are_found_despite_typos_case_accents_and_missing_endings(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    _, rep = await setup(session, client)
    for name in ("Acme Corp", "Zeta Logística", "Hierros del Norte"):
        await created(client, "/companies", {"name": name}, rep)
    for name in ("José Pérez", "Ana Núñez", "Josefa Ortega"):
        await created(client, "/contacts", {"name": name}, rep)
    await created(client, "/deals", {"title": "Renovación flota"}, rep)

    cases = {
        "Acme Copr": "Acme Corp",
        "acme corp": "Acme Corp",
        "ACME": "Acme Corp",
        "zeta logistica": "Zeta Logística",
        "logistca": "Zeta Logística",
        "hierros": "Hierros del Norte",
        "jose peres": "José Pérez",
        "ANA NUÑEZ": "Ana Núñez",
        "nunez": "Ana Núñez",
        "renovacion": "Renovación flota",
        "ac": "Acme Corp",
    }
    for q, expected in cases.items():
        hits = await search(client, rep, q)
        assert hits and hits[0]["name"] == expected, (q, hits)
        assert hits[0]["matched"] == "name"
    assert await search(client, rep, "Xylophone") == []
    assert await search(client, rep, "qqqq zzzz") == []
    # Punctuation alone is no error, and finds nothing.
    assert await search(client, rep, "   -  ") == []
    assert [h["kind"] for h in await search(client, rep, "renovacion flota")] == ["deal"]


async def test_exact_names_outrank_prefixes_and_prefixes_outrank_typos(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    _, rep = await setup(session, client)
    for name in ("Acne Corp", "Acme Corporation Iberia", "Acme Corp"):
        await created(client, "/companies", {"name": name}, rep)
    hits = await search(client, rep, "acme corp")
    assert names(hits) == ["Acme Corp", "Acme Corporation Iberia", "Acne Corp"], hits
    assert hits[0]["score"] == 1.0
    assert hits[0]["score"] > hits[1]["score"] > hits[2]["score"]
    # The prefix a user is typing finds the names it starts.
    assert set(names(await search(client, rep, "acme cor"))[:2]) == {"Acme Corp", "Acme Corporation Iberia"}


async def test_only_an_exact_name_scores_1_and_it_ranks_first(session: AsyncSession, client: httpx.AsyncClient) -> None:
    _, rep = await setup(session, client)
    for name in ("Abc Acme", "Acme Corp", "Acme"):
        await created(client, "/companies", {"name": name}, rep)
    hits = await search(client, rep, "acme")
    assert hits[0]["name"] == "Acme" and hits[0]["score"] == 1.0, hits
    assert all(h["score"] < 1.0 for h in hits[1:]), hits


async def test_a_typo_ranks_the_closest_name_first(session: AsyncSession, client: httpx.AsyncClient) -> None:
    _, rep = await setup(session, client)
    for name in ("Acme", "Acme Corp", "Acmeco"):
        await created(client, "/companies", {"name": name}, rep)
    hits = await search(client, rep, "Acme Copr")
    assert hits[0]["name"] == "Acme Corp", hits


# E-mails, phones and domains


async def test_handles_are_found_exactly_in_any_formatting(session: AsyncSession, client: httpx.AsyncClient) -> None:
    _, rep = await setup(session, client)
    acme = await created(client, "/companies", {"name": "Acme", "domain": "acme.es", "phone": "911234567"}, rep)
    ana = await created(
        client,
        "/contacts",
        {"name": "Ana", "emails": ["ana@acme.es", "ana.nunez@gmail.com"], "phones": ["611223344", "622334455"]},
        rep,
    )
    cases = [
        ("ana@acme.es", ana, "email"),
        ("ANA@ACME.ES", ana, "email"),
        ("  ana.nunez@Gmail.com ", ana, "email"),
        ("611223344", ana, "phone"),
        ("+34 611 22 33 44", ana, "phone"),
        ("0034 611-22-33-44", ana, "phone"),
        ("(611) 22.33.44", ana, "phone"),
        ("622 33 44 55", ana, "phone"),
        ("91 123 45 67", acme, "phone"),
        ("+34911234567", acme, "phone"),
        ("acme.es", acme, "domain"),
        ("https://www.ACME.es/contacto", acme, "domain"),
        ("www.acme.es", acme, "domain"),
    ]
    for q, record, matched in cases:
        hits = await search(client, rep, q)
        exact = [h for h in hits if h["matched"] != "name"]
        assert [(h["id"], h["matched"], h["score"]) for h in exact] == [(record["id"], matched, 1.0)], (q, hits)
    # Close is not enough for a handle.
    for q in ("ana@acme.com", "611223345", "acme.com", "+33 611 22 33 44"):
        assert all(h["matched"] == "name" for h in await search(client, rep, q)), q
    # Not a handle at all: still a fine name query.
    for q in ("@", "a@b", "12345", "acme.", "x@y@z"):
        await search(client, rep, q)


async def test_an_exact_handle_ranks_first(session: AsyncSession, client: httpx.AsyncClient) -> None:
    _, rep = await setup(session, client)
    await created(client, "/companies", {"name": "Acme"}, rep)
    ana = await created(client, "/contacts", {"name": "Ana", "emails": ["ana@acme.es"]}, rep)
    hits = await search(client, rep, "ana@acme.es")
    assert (hits[0]["id"], hits[0]["matched"]) == (ana["id"], "email"), hits
    assert all(h["score"] < 1.0 for h in hits[1:]), hits


# Kinds and limit


async def test_kinds_and_limit(session: AsyncSession, client: httpx.AsyncClient) -> None:
    _, rep = await setup(session, client)
    for n in range(4):
        await created(client, "/companies", {"name": f"Acme {n}"}, rep)
        await created(client, "/contacts", {"name": f"Acme person {n}"}, rep)
        await created(client, "/deals", {"title": f"Acme deal {n}"}, rep)
    everything = await search(client, rep, "acme")
    assert {h["kind"] for h in everything} == {"company", "contact", "deal"} and len(everything) == 12
    assert {h["kind"] for h in await search(client, rep, "acme", kinds="company")} == {"company"}
    both = await search(client, rep, "acme", kinds=["contact", "deal"])
    assert {h["kind"] for h in both} == {"contact", "deal"} and len(both) == 8
    limited = await search(client, rep, "acme", limit=5)
    assert len(limited) == 5
    assert [h["score"] for h in limited] == [h["score"] for h in everything[:5]]
    assert len(await search(client, rep, "acme", kinds="deal", limit=2)) == 2
    for bad in ({"q": ""}, {"q": "x" * 101}, {"q": "acme", "limit": 0}, {"q": "acme", "limit": 51}):
        assert (await client.get(SEARCH, params=bad, headers=rep)).status_code == 422, bad
    assert (await client.get(SEARCH, params={"q": "acme", "kinds": "user"}, headers=rep)).status_code == 422
    assert (await client.get(SEARCH, headers=rep)).status_code == 422


async def test_an_api_key_finds_deals_only_with_deals_read(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep = await setup(session, client)
    company = await created(client, "/companies", {"name": "Acme Corp"}, rep)
    deal = await created(client, "/deals", {"title": "Acme renewal", "company_id": company["id"]}, rep)
    clients_only = bearer((await make_api_key(session, tenant.org, "clients:read"))[1])
    for params in ({}, {"kinds": "deal"}, {"kinds": ["company", "deal"]}):
        hits = await search(client, clients_only, "acme", **params)
        assert deal["id"] not in {h["id"] for h in hits}, params
    assert [h["id"] for h in await search(client, clients_only, "acme")] == [company["id"]]
    with_deals = bearer((await make_api_key(session, tenant.org, "clients:read", "deals:read"))[1])
    assert {h["id"] for h in await search(client, with_deals, "acme")} == {company["id"], deal["id"]}
    deals_only = bearer((await make_api_key(session, tenant.org, "deals:read"))[1])
    assert (await client.get(SEARCH, params={"q": "acme"}, headers=deals_only)).status_code == 403


# Only what the caller may see


async def test_other_organisations_never_appear(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep = await setup(session, client)
    rival, rival_rep = await setup(session, client)
    body = {"name": "Acme Corp", "domain": "acme.es", "phone": "911234567"}
    theirs = [
        await created(client, "/companies", body, rival_rep),
        await created(
            client, "/contacts", {"name": "Ana", "emails": ["ana@acme.es"], "phones": ["611223344"]}, rival_rep
        ),
        await created(client, "/deals", {"title": "Acme renewal"}, rival_rep),
    ]
    mine = await created(client, "/companies", {"name": "Acme Iberia"}, rep)
    marketing = await sign_in(client, await make_user(session, tenant.org, role=Role.marketing))
    key = bearer((await make_api_key(session, tenant.org, "clients:read", "deals:read"))[1])
    for headers in (rep, tenant.headers, marketing, key):
        for q in ("Acme Corp", "acme", "Ana", "ana@acme.es", "611 22 33 44", "acme.es", "91 123 45 67", "renewal"):
            hits = await search(client, headers, q)
            assert not {h["id"] for h in hits} & {r["id"] for r in theirs}, (q, hits)
    assert [h["id"] for h in await search(client, tenant.headers, "acme")] == [mine["id"]]
    assert rival.org.id != tenant.org.id


async def test_a_rep_finds_only_what_they_see(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep = await setup(session, client)
    colleague = await make_user(session, tenant.org, role=Role.rep)
    other = await sign_in(client, colleague)
    hidden = await created(client, "/contacts", {"name": "Hidden Ana", "phones": ["611223344"]}, other)
    assert await search(client, rep, "Hidden Ana") == []
    assert await search(client, rep, "611223344") == []
    admin_hits = await search(client, tenant.headers, "611223344")
    assert [h["id"] for h in admin_hits] == [hidden["id"]]
    shared = await client.post(
        f"{API}/shares",
        json={"entity": "contact", "entity_id": hidden["id"], "user_ids": [str(tenant.rep.id)]},
        headers=other,
    )
    assert shared.status_code == 201, shared.text
    assert [h["id"] for h in await search(client, rep, "611223344")] == [hidden["id"]]
    assert [h["id"] for h in await search(client, rep, "hidden ana")] == [hidden["id"]]


async def test_deleted_records_never_appear_until_restored(session: AsyncSession, client: httpx.AsyncClient) -> None:
    _, rep = await setup(session, client)
    company = await created(client, "/companies", {"name": "Acme Corp", "domain": "acme.es"}, rep)
    contact = await created(client, "/contacts", {"name": "Ana Núñez", "emails": ["ana@acme.es"]}, rep)
    deal = await created(client, "/deals", {"title": "Acme renewal"}, rep)
    queries = ("acme", "Acme Copr", "ana nunez", "ana@acme.es", "acme.es", "renewal")
    records = {"companies": company, "contacts": contact, "deals": deal}
    for path, record in records.items():
        assert (await client.delete(f"{API}/{path}/{record['id']}", headers=rep)).status_code == 204
    for q in queries:
        assert await search(client, rep, q) == [], q
    for path, record in records.items():
        assert (await client.post(f"{API}/{path}/{record['id']}/restore", headers=rep)).status_code == 200
    assert [h["id"] for h in await search(client, rep, "ana@acme.es") if h["matched"] == "email"] == [contact["id"]]
    assert [h["id"] for h in await search(client, rep, "acme.es") if h["matched"] == "domain"] == [company["id"]]
    assert {company["id"], deal["id"]} <= {h["id"] for h in await search(client, rep, "acme")}


async def test_the_index_follows_renames_and_new_handles(session: AsyncSession, client: httpx.AsyncClient) -> None:
    _, rep = await setup(session, client)
    company = await created(client, "/companies", {"name": "Acme Corp", "domain": "acme.es"}, rep)
    contact = await created(client, "/contacts", {"name": "Ana Núñez", "phones": ["611223344"]}, rep)
    deal = await created(client, "/deals", {"title": "Fleet renewal"}, rep)
    renames = [
        (f"/companies/{company['id']}", {"name": "Zephyr Holdings", "domain": "zephyr.io"}),
        (f"/contacts/{contact['id']}", {"name": "Beatriz Ortega", "phones": ["622334455"]}),
        (f"/deals/{deal['id']}", {"title": "Warehouse robots"}),
    ]
    for path, body in renames:
        response = await client.patch(f"{API}{path}", json=body, headers=rep)
        assert response.status_code == 200, response.text

    for old in ("Acme Corp", "acme", "Ana Núñez", "nunez", "Fleet renewal", "fleet", "acme.es", "611223344"):
        assert await search(client, rep, old) == [], old
    expected = {
        "Zephyr Holdings": company,
        "zephyr": company,
        "Zephir Holdngs": company,
        "zephyr.io": company,
        "beatriz": contact,
        "Beatriz Ortega": contact,
        "622 33 44 55": contact,
        "warehouse robots": deal,
        "robots": deal,
    }
    for q, record in expected.items():
        hits = await search(client, rep, q)
        assert [h["id"] for h in hits] == [record["id"]], (q, hits)
    current = (await search(client, rep, "zephyr"))[0]
    assert current["name"] == "Zephyr Holdings"
