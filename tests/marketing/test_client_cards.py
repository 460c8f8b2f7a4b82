"""GET /client-cards and its export: the cards, each filter, keyset pages, sparse fields, NDJSON and CSV files, the
consent rule everywhere, validation, and what an API key's scopes show."""

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.db import Database
from tests.factories import make_company, make_contact
from tests.marketing.crm import (
    CARDS,
    EXPORT,
    Base,
    cards,
    csv_rows,
    make_base,
    names,
    ndjson,
    secrets_of_refusers,
    won,
)


@pytest.fixture
async def base(session: AsyncSession, client: httpx.AsyncClient) -> Base:
    return await make_base(session, client)


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in items}


async def test_cards_are_companies_with_their_consenting_contacts_and_lone_consenting_contacts(
    client: httpx.AsyncClient, base: Base
) -> None:
    items = await cards(client, base.marketing)

    assert [c["name"] for c in items] == [
        base.alfa.name,
        base.beta.name,
        base.eva.name,
        base.gamma.name,
        base.orphan.name,
    ]
    alfa, beta, eva, gamma, _ = items
    assert alfa["kind"] == "company" and eva["kind"] == "contact"
    assert alfa["industry"] == "Logistics" and alfa["tags"] == ["vip", "feria-2026"] and alfa["segment"] == "smb"
    assert [p["name"] for p in alfa["contacts"]] == [base.ana.name, base.carla.name]
    assert alfa["contact_count"] == 2
    ana, carla = alfa["contacts"]
    assert ana == {
        "id": str(base.ana.id),
        "name": base.ana.name,
        "title": "Buyer",
        "emails": base.ana.emails,
        "phones": [],
        "email_consent": True,
        "phone_consent": False,
    }
    assert carla["emails"] == [] and carla["phones"] == base.carla.phones
    assert beta["contacts"][0]["emails"] == base.dora.emails and beta["contacts"][0]["phones"] == base.dora.phones
    assert eva["contacts"] == [
        {
            "id": str(base.eva.id),
            "name": base.eva.name,
            "title": None,
            "emails": base.eva.emails,
            "phones": [],
            "email_consent": True,
            "phone_consent": False,
        }
    ]
    assert gamma["contacts"] == [] and gamma["contact_count"] == 0


async def test_deal_numbers_count_won_deals_in_the_organisations_currency(
    client: httpx.AsyncClient, base: Base
) -> None:
    found = by_name(await cards(client, base.marketing))

    alfa, beta, eva, gamma = (found[c.name] for c in (base.alfa, base.beta, base.eva, base.gamma))
    # The USD win is a won deal, but not converted into the EUR lifetime value.
    assert (alfa["lifetime_value_minor"], alfa["won_deals"], alfa["open_deals"]) == (100000, 2, 0)
    assert alfa["currency"] == "EUR"
    assert alfa["last_purchase_at"] == "2025-06-01T10:00:00Z"
    assert (beta["lifetime_value_minor"], beta["won_deals"], beta["open_deals"]) == (30000, 1, 1)
    assert (eva["lifetime_value_minor"], eva["last_purchase_at"]) == (5000, "2024-12-31T23:00:00Z")
    assert (gamma["lifetime_value_minor"], gamma["won_deals"], gamma["last_purchase_at"]) == (0, 0, None)


@pytest.mark.parametrize("reader", ["admin", "marketing", "key"])
async def test_contacts_without_consent_never_leave_by_any_route(
    client: httpx.AsyncClient, base: Base, reader: str
) -> None:
    headers = base.readers[reader]
    secrets = secrets_of_refusers(base)
    answers = [
        await client.get(CARDS, params={"limit": 200}, headers=headers),
        await client.get(CARDS, params={"tag": "vip"}, headers=headers),
        await client.get(CARDS, params={"kind": "contact"}, headers=headers),
        await client.get(CARDS, params={"fields": "contacts"}, headers=headers),
        await client.get(EXPORT, params={"format": "ndjson"}, headers=headers),
        await client.get(EXPORT, params={"format": "csv"}, headers=headers),
        await client.get(EXPORT, params={"format": "csv", "kind": "contact"}, headers=headers),
    ]

    for response in answers:
        assert response.status_code == 200, response.text
        leaked = [s for s in secrets if s.lower() in response.text.lower()]
        assert not leaked, f"{response.request.url} leaked {leaked}"
        assert base.ana.name in response.text or "kind=contact" in str(response.request.url)


async def test_a_contact_of_a_deleted_company_is_a_card_of_its_own(client: httpx.AsyncClient, base: Base) -> None:
    found = by_name(await cards(client, base.marketing, consent="phone"))

    assert found[base.orphan.name]["kind"] == "contact"
    assert found[base.orphan.name]["contacts"][0]["phones"] == base.orphan.phones


# Each filter's cards (keys of `cards_of` below); filters given together must all match.
FILTER_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({"tag": "vip"}, ["alfa", "eva"]),
    ({"tag": ["vip", "feria-2026"]}, ["alfa"]),
    ({"any_tag": ["feria-2025", "feria-2026"]}, ["alfa", "beta"]),
    ({"segment": "enterprise"}, ["beta"]),
    ({"segment": ["smb", "enterprise"]}, ["alfa", "beta"]),
    ({"industry": "Logistics"}, ["alfa", "gamma"]),
    ({"industry": ["Logistics", "Retail"]}, ["alfa", "beta", "gamma"]),
    ({"kind": "company"}, ["alfa", "beta", "gamma"]),
    ({"kind": "contact"}, ["eva", "orphan"]),
    ({"last_purchase_from": "2025-06-01"}, ["alfa", "beta"]),
    ({"last_purchase_to": "2025-05-31"}, ["eva"]),
    ({"last_purchase_from": "2025-01-01", "last_purchase_to": "2025-12-31"}, ["alfa"]),
    ({"lifetime_value_min": 30000}, ["alfa", "beta"]),
    ({"lifetime_value_max": 30000}, ["beta", "eva", "gamma", "orphan"]),
    ({"lifetime_value_min": 1, "lifetime_value_max": 29999}, ["eva"]),
    ({"has_open_deal": "true"}, ["beta"]),
    ({"has_open_deal": "false"}, ["alfa", "eva", "gamma", "orphan"]),
    ({"consent": "email"}, ["alfa", "beta", "eva"]),
    ({"consent": "phone"}, ["alfa", "beta", "orphan"]),
    ({"consent": "any"}, ["alfa", "beta", "eva", "orphan"]),
    ({"industry": "Logistics", "consent": "any", "lifetime_value_min": 1}, ["alfa"]),
    ({"tag": "nobody-has-this"}, []),
]


async def test_each_filter_narrows_the_cards_in_the_list_and_the_export(client: httpx.AsyncClient, base: Base) -> None:
    cards_of = {
        "alfa": base.alfa.name,
        "beta": base.beta.name,
        "gamma": base.gamma.name,
        "eva": base.eva.name,
        "orphan": base.orphan.name,
    }

    failures = []
    for params, expected in FILTER_CASES:
        found = await names(client, base.marketing, **params)
        exported = [c["name"] for c in await ndjson(client, base.marketing, **params)]
        wanted = sorted(cards_of[e] for e in expected)
        if sorted(found) != wanted or exported != found:
            failures.append(f"{params}: listed {found}, exported {exported}, expected {wanted}")

    assert not failures, "\n".join(failures)


async def test_the_last_purchase_days_are_the_organisations_days(
    client: httpx.AsyncClient, base: Base, session: AsyncSession
) -> None:
    """Eva's deal was won at 23:00 UTC on 31 December: 1 January in Madrid."""
    response = await client.patch(
        "/api/v1/organization", json={"settings": {"time_zone": "Europe/Madrid"}}, headers=base.tenant.headers
    )
    assert response.status_code == 200, response.text

    assert await names(client, base.marketing, last_purchase_from="2025-01-01", last_purchase_to="2025-01-01") == [
        base.eva.name
    ]
    assert await names(client, base.marketing, last_purchase_to="2024-12-31") == []


async def test_consent_narrows_a_cards_contacts_to_that_channel(client: httpx.AsyncClient, base: Base) -> None:
    found = by_name(await cards(client, base.marketing, consent="email"))

    assert [p["name"] for p in found[base.alfa.name]["contacts"]] == [base.ana.name]
    assert found[base.alfa.name]["contact_count"] == 1


async def test_pages_hold_every_card_once(session: AsyncSession, client: httpx.AsyncClient, base: Base) -> None:
    # Names that fold alike ("Ñandú" sorts with "nandu") and share a prefix, so the keyset's id tiebreak matters.
    for name in ("Ñandú", "nandu", "Nandu", "Zeta", "Ábaco", "abaco"):
        await make_company(session, base.tenant.rep, name=name, tags=["page"])
    await make_contact(session, base.tenant.rep, name="nandu", email_consent=True, tags=["page"])

    everything = await cards(client, base.marketing, limit=200)
    for limit in (1, 2, 3):
        paged = await cards(client, base.marketing, limit=limit)
        assert [c["id"] for c in paged] == [c["id"] for c in everything]
    assert len({c["id"] for c in everything}) == len(everything) == 4 + 7 + 1
    tagged = await cards(client, base.marketing, tag="page", limit=2)
    assert len(tagged) == 7


async def test_a_list_card_shows_its_first_50_contacts_and_the_file_all(
    session: AsyncSession, client: httpx.AsyncClient, base: Base
) -> None:
    for i in range(52):
        await make_contact(
            session, base.tenant.rep, name=f"Person {i:02d}", company_id=base.gamma.id, email_consent=True
        )

    listed = by_name(await cards(client, base.marketing, fields="name,contacts,contact_count"))[base.gamma.name]
    exported = by_name(await ndjson(client, base.marketing))[base.gamma.name]
    rows = [r for r in await csv_rows(client, base.marketing) if r["card_id"] == str(base.gamma.id)]

    assert len(listed["contacts"]) == 50 and listed["contact_count"] == 52
    assert [p["name"] for p in listed["contacts"]] == [f"Person {i:02d}" for i in range(50)]
    assert len(exported["contacts"]) == exported["contact_count"] == 52
    assert [r["contact_name"] for r in rows] == [f"Person {i:02d}" for i in range(52)]


async def test_fields_gives_sparse_cards(client: httpx.AsyncClient, base: Base) -> None:
    items = await cards(client, base.marketing, fields="name, industry,lifetime_value_minor")
    lines = await ndjson(client, base.marketing, fields="contacts")

    assert items[0] == {
        "id": str(base.alfa.id),
        "name": base.alfa.name,
        "industry": "Logistics",
        "lifetime_value_minor": 100000,
    }
    assert all(set(c) == {"id", "name", "industry", "lifetime_value_minor"} for c in items)
    assert all(set(c) == {"id", "contacts"} for c in lines)


BAD_FILTERS: list[tuple[dict[str, Any], str]] = [
    ({"fields": "name,secret_sauce"}, "fields"),
    ({"fields": ","}, "fields"),
    ({"kind": "deal"}, "kind"),
    ({"consent": "fax"}, "consent"),
    ({"lifetime_value_min": "-1"}, "lifetime_value_min"),
    ({"lifetime_value_max": "lots"}, "lifetime_value_max"),
    ({"lifetime_value_min": "10", "lifetime_value_max": "5"}, "lifetime_value_max"),
    ({"last_purchase_from": "2026-02-30"}, "last_purchase_from"),
    ({"last_purchase_from": "2026-03-01", "last_purchase_to": "2026-02-01"}, "last_purchase_to"),
    ({"has_open_deal": "perhaps"}, "has_open_deal"),
    ({"tag": ""}, "tag.0"),
    ({"tag": [f"t{i}" for i in range(21)]}, "tag"),
    ({"segment_id": "not-a-uuid"}, "segment_id"),
]


@pytest.mark.parametrize("path", [CARDS, EXPORT])
async def test_bad_filters_are_a_422_naming_the_parameter(client: httpx.AsyncClient, base: Base, path: str) -> None:
    failures = []
    for params, parameter in BAD_FILTERS:
        query = {**params, "format": "ndjson"} if path == EXPORT and "fields" in params else params
        response = await client.get(path, params=query, headers=base.marketing)
        named = [e.get("parameter") for e in response.json().get("errors", [])]
        if response.status_code != 422 or parameter not in named:
            failures.append(f"{params}: {response.status_code} {response.text}")
        assert response.headers["content-type"].startswith("application/problem+json")

    assert not failures, "\n".join(failures)


async def test_fields_on_a_csv_export_is_a_422(client: httpx.AsyncClient, base: Base) -> None:
    response = await client.get(EXPORT, params={"format": "csv", "fields": "name"}, headers=base.marketing)

    assert response.status_code == 422, response.text
    assert [e["parameter"] for e in response.json()["errors"]] == ["fields"]


async def test_a_forged_cursor_is_a_400(client: httpx.AsyncClient, base: Base) -> None:
    response = await client.get(CARDS, params={"cursor": "forged"}, headers=base.marketing)

    assert response.status_code == 400, response.text


async def test_the_csv_has_a_row_per_consenting_contact(client: httpx.AsyncClient, base: Base) -> None:
    response = await client.get(EXPORT, headers=base.marketing)
    rows = await csv_rows(client, base.marketing)

    assert response.headers["content-disposition"].startswith('attachment; filename="fieldbook-client-cards-')
    assert response.headers["cache-control"] == "no-store"
    assert list(rows[0]) == [
        "card_id",
        "card_kind",
        "card_name",
        "industry",
        "segment",
        "tags",
        "domain",
        "city",
        "country",
        "lifetime_value",
        "currency",
        "last_purchase_at",
        "open_deals",
        "contact_id",
        "contact_name",
        "title",
        "email",
        "phone",
        "emails",
        "phones",
        "email_consent",
        "phone_consent",
    ]
    # Gamma has no consenting contact, so no row; Bruno and Fede none either.
    assert [r["contact_name"] for r in rows] == [
        base.ana.name,
        base.carla.name,
        base.dora.name,
        base.eva.name,
        base.orphan.name,
    ]
    ana = rows[0]
    assert ana["card_name"] == base.alfa.name and ana["card_kind"] == "company"
    assert (ana["email"], ana["phone"], ana["email_consent"], ana["phone_consent"]) == (
        base.ana.emails[0],
        "",
        "true",
        "false",
    )
    assert (ana["lifetime_value"], ana["currency"], ana["tags"]) == ("1000.00", "EUR", "vip; feria-2026")
    assert ana["last_purchase_at"] == "2025-06-01T10:00:00+00:00"
    carla = rows[1]
    # Phones start with "+": neutralised against formula injection, as in every export.
    assert (carla["email"], carla["phone"]) == ("", "'" + base.carla.phones[0])
    eva = rows[3]
    assert (eva["card_kind"], eva["card_id"], eva["contact_id"]) == ("contact", str(base.eva.id), str(base.eva.id))


async def test_ndjson_lines_are_the_lists_cards(client: httpx.AsyncClient, base: Base) -> None:
    listed = await cards(client, base.marketing, limit=2)
    lines = await ndjson(client, base.marketing)

    assert lines == listed


async def test_an_export_pages_through_the_keyset(
    monkeypatch: pytest.MonkeyPatch, session: AsyncSession, client: httpx.AsyncClient, base: Base
) -> None:
    from api.marketing import service

    for i in range(7):
        company = await make_company(session, base.tenant.rep, name=f"Paged {i}")
        await make_contact(
            session, base.tenant.rep, name=f"Paged person {i}", company_id=company.id, phone_consent=True
        )
    monkeypatch.setattr(service, "EXPORT_PAGE", 2)

    lines = await ndjson(client, base.marketing)
    rows = await csv_rows(client, base.marketing)

    assert [c["id"] for c in lines] == [c["id"] for c in await cards(client, base.marketing, limit=200)]
    assert len(rows) == 5 + 7


async def test_a_key_without_deals_read_sees_no_deal_numbers_and_cannot_filter_on_them(
    client: httpx.AsyncClient, base: Base
) -> None:
    items = await cards(client, base.clients_key)
    refused = await client.get(CARDS, params={"lifetime_value_min": 1}, headers=base.clients_key)
    exported = await client.get(EXPORT, params={"has_open_deal": "true"}, headers=base.clients_key)

    assert {(c["lifetime_value_minor"], c["open_deals"], c["last_purchase_at"]) for c in items} == {(None, None, None)}
    assert refused.status_code == 403, refused.text
    assert [e["parameter"] for e in refused.json()["errors"]] == ["lifetime_value_min"]
    assert exported.status_code == 403, exported.text


@pytest.mark.parametrize("path", [CARDS, EXPORT])
async def test_reps_and_managers_are_refused(
    session: AsyncSession, client: httpx.AsyncClient, base: Base, path: str
) -> None:
    from api.auth.models import Role
    from tests.factories import make_user, sign_in

    for role in (Role.rep, Role.manager):
        user = await make_user(session, base.tenant.org, role=role, team=base.tenant.team)
        response = await client.get(path, headers=await sign_in(client, user))
        assert response.status_code == 403, response.text


async def test_another_organisations_cards_are_never_listed(
    session: AsyncSession, client: httpx.AsyncClient, base: Base
) -> None:
    other = await make_base(session, client, "Bravo Corp")
    theirs = [
        other.alfa.name,
        other.beta.name,
        other.eva.name,
        str(other.alfa.id),
        *other.ana.emails,
        *other.dora.phones,
    ]

    for response in (
        await client.get(CARDS, params={"limit": 200}, headers=base.marketing),
        await client.get(EXPORT, params={"format": "ndjson"}, headers=base.marketing),
        await client.get(EXPORT, params={"format": "csv"}, headers=base.cards_key),
    ):
        assert response.status_code == 200, response.text
        assert base.alfa.name in response.text
        leaked = [s for s in theirs if s.lower() in response.text.lower()]
        assert not leaked, f"{response.request.url} leaked {leaked}"


async def test_an_unknown_segment_is_a_404(client: httpx.AsyncClient, base: Base) -> None:
    for path in (CARDS, EXPORT):
        response = await client.get(path, params={"segment_id": str(uuid.uuid4())}, headers=base.marketing)
        assert response.status_code == 404, response.text


async def test_a_page_costs_the_same_statements_whatever_it_holds(
    session: AsyncSession, client: httpx.AsyncClient, db: Database, base: Base
) -> None:
    """No statement per card: the page, then its deal numbers and its people, each one grouped query."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    async def cost(**params: Any) -> int:
        statements.clear()
        event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        try:
            response = await client.get(CARDS, params=params, headers=base.marketing)
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", count)
        assert response.status_code == 200, response.text
        return len(statements)

    small = await cost(limit=3)  # a company card and a contact card, as the bigger page
    for i in range(15):
        company = await make_company(session, base.tenant.rep, name=f"Bulk {i}")
        await make_contact(session, base.tenant.rep, name=f"Bulk person {i}", company_id=company.id, email_consent=True)
        await won(session, base.tenant.rep, datetime(2026, 1, 1, tzinfo=UTC), 100, company_id=company.id)

    assert await cost(limit=200) == small
