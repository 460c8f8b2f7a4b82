"""Audit over the CRM: every write to companies, contacts, custom fields, deals (and their moves, wins and lines),
activities, shares and the organisation is listed by GET /audit?entity=..., field by field, with its actor."""

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from tests.clients.crm import API, created, every_page
from tests.factories import Tenant, make_tenant, make_user, sign_in

pytestmark = pytest.mark.asyncio


async def audit(client: httpx.AsyncClient, tenant: Tenant, entity: str, entity_id: Any) -> list[dict[str, Any]]:
    """The record's entries, newest first, as listed under ?entity= (every page of it)."""
    listed = await every_page(client, "/audit", tenant.headers, entity=entity, limit=7)
    assert {e["entity"] for e in listed} == {entity}
    seqs = [e["seq"] for e in listed]
    assert seqs == sorted(seqs, reverse=True)
    return [e for e in listed if e["entity_id"] == str(entity_id)]


def fields(entry: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {c["field"]: (c["before"], c["after"]) for c in entry["changes"]}


def ops(entries: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["op"], e["version"]) for e in entries]


def by(entries: list[dict[str, Any]], actor: Any) -> None:
    assert {(e["actor_kind"], e["actor_id"]) for e in entries} == {("user", str(actor))}


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if status != 204 else None


async def world(session: AsyncSession, client: httpx.AsyncClient) -> tuple[Tenant, dict[str, str]]:
    tenant = await make_tenant(session, client)
    await ok(
        await client.patch(f"{API}/organization", json={"settings": {"phone_region": "ES"}}, headers=tenant.headers)
    )
    return tenant, await sign_in(client, tenant.rep)


async def test_company_writes_are_audited(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep = await world(session, client)
    await created(
        client, "/custom-fields", {"entity": "company", "key": "tier", "label": "T", "kind": "text"}, tenant.headers
    )
    company = await created(
        client,
        "/companies",
        {
            "name": "Acme",
            "domain": "https://www.ACME.es",
            "phone": "911234567",
            "tags": ["vip", "vip"],
            "custom": {"tier": "A"},
        },
        rep,
    )
    url = f"{API}/companies/{company['id']}"
    await ok(
        await client.patch(
            url, json={"name": "Acme Corp", "tags": ["vip", "fair"], "custom": {"tier": None}}, headers=rep
        )
    )
    await ok(await client.patch(url, json={"name": "Acme Corp"}, headers=rep))  # no change, no entry
    await ok(await client.delete(url, headers=rep), 204)
    await ok(await client.post(f"{url}/restore", headers=rep))

    entries = await audit(client, tenant, "company", company["id"])
    assert ops(entries) == [("update", 4), ("delete", 3), ("update", 2), ("create", 1)]
    by(entries, tenant.rep.id)
    restored, deleted, updated, made = (fields(e) for e in entries)
    assert restored["deleted_at"][0] is not None and restored["deleted_at"][1] is None
    assert deleted == {"deleted_at": (None, deleted["deleted_at"][1])} and deleted["deleted_at"][1]
    assert updated == {
        "name": ("Acme", "Acme Corp"),
        "tags": (["vip"], ["vip", "fair"]),
        "custom": ({"tier": "A"}, {}),
    }
    # What was stored, normalised; derived and bookkeeping columns are not history.
    assert {k: made[k] for k in ("name", "domain", "phone", "tags", "custom", "owner_id")} == {
        "name": (None, "Acme"),
        "domain": (None, "acme.es"),
        "phone": (None, "+34911234567"),
        "tags": (None, ["vip"]),
        "custom": (None, {"tier": "A"}),
        "owner_id": (None, str(tenant.rep.id)),
    }
    assert not {"name_folded", "version", "updated_at", "org_id", "id"} & made.keys()
    one = await client.get(f"{API}/audit/{entries[2]['id']}", headers=tenant.headers)
    assert one.status_code == 200 and one.json() == entries[2]


async def test_contact_writes_are_audited(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep = await world(session, client)
    company = await created(client, "/companies", {"name": "Acme"}, rep)
    contact = await created(
        client,
        "/contacts",
        {"name": "Ana", "emails": ["Ana@Acme.es"], "phones": ["611 22 33 44"], "company_id": company["id"]},
        rep,
    )
    url = f"{API}/contacts/{contact['id']}"
    await ok(
        await client.patch(
            url,
            json={"phones": ["622334455"], "email_consent": True, "company_id": None},
            headers={**rep, "If-Match": '"1"'},
        )
    )
    await ok(await client.patch(url, json={"owner_id": str(tenant.admin.id)}, headers=tenant.headers))
    await ok(await client.delete(url, headers=tenant.headers), 204)

    entries = await audit(client, tenant, "contact", contact["id"])
    assert ops(entries) == [("delete", 4), ("update", 3), ("update", 2), ("create", 1)]
    assert [e["actor_id"] for e in entries] == [str(tenant.admin.id)] * 2 + [str(tenant.rep.id)] * 2
    assert fields(entries[1]) == {"owner_id": (str(tenant.rep.id), str(tenant.admin.id))}
    assert fields(entries[2]) == {
        "phones": (["+34611223344"], ["+34622334455"]),
        "email_consent": (False, True),
        "company_id": (company["id"], None),
    }
    made = fields(entries[3])
    assert made["emails"] == (None, ["ana@acme.es"]) and made["company_id"] == (None, company["id"])


async def test_custom_field_writes_are_audited(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, _ = await world(session, client)
    field = await created(
        client,
        "/custom-fields",
        {"entity": "contact", "key": "tier", "label": "Tier", "kind": "choice", "choices": ["A"]},
        tenant.headers,
    )
    url = f"{API}/custom-fields/{field['id']}"
    await ok(
        await client.patch(
            url, json={"label": "Level", "choices": ["A", "B"], "is_required": True}, headers=tenant.headers
        )
    )
    await ok(await client.delete(url, headers=tenant.headers), 204)

    entries = await audit(client, tenant, "custom_field", field["id"])
    assert ops(entries) == [("delete", 3), ("update", 2), ("create", 1)]
    by(entries, tenant.admin.id)
    assert fields(entries[1]) == {
        "label": ("Tier", "Level"),
        "choices": (["A"], ["A", "B"]),
        "is_required": (False, True),
    }
    made = fields(entries[2])
    assert {k: made[k] for k in ("entity", "key", "kind", "choices")} == {
        "entity": (None, "contact"),
        "key": (None, "tier"),
        "kind": (None, "choice"),
        "choices": (None, ["A"]),
    }


async def test_deal_writes_moves_wins_and_lines_are_audited(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep = await world(session, client)
    pipeline = (await client.get(f"{API}/pipelines", headers=rep)).json()["items"][0]
    open_stages = [s for s in pipeline["stages"] if s["kind"] == "open"]
    won_stage = next(s for s in pipeline["stages"] if s["kind"] == "won")
    deal = await created(client, "/deals", {"title": "Fleet", "amount_minor": 1000}, rep)
    url = f"{API}/deals/{deal['id']}"
    await ok(await client.patch(url, json={"title": "Fleet renewal", "amount_minor": 2000}, headers=rep))
    await ok(await client.post(f"{url}/move", json={"stage_id": open_stages[1]["id"]}, headers=rep))
    lines = await ok(
        await client.put(
            f"{url}/lines",
            json={
                "lines": [
                    {"name": "Truck", "quantity": 2, "unit_price_minor": 500},
                    {"name": "Van", "unit_price_minor": 300},
                ]
            },
            headers=rep,
        )
    )
    first_lines = [line["id"] for line in lines["lines"]]
    replaced = await ok(
        await client.put(f"{url}/lines", json={"lines": [{"name": "Bus", "unit_price_minor": 4000}]}, headers=rep)
    )
    await ok(await client.post(f"{url}/win", headers=rep))
    await ok(await client.delete(url, headers=rep), 204)

    entries = await audit(client, tenant, "deal", deal["id"])
    by(entries, tenant.rep.id)
    assert [e["op"] for e in entries] == ["delete", "update", "update", "update", "update", "update", "create"]
    assert [e["version"] for e in entries] == [7, 6, 5, 4, 3, 2, 1]
    deleted, won, second_total, first_total, moved, edited, made = (fields(e) for e in entries)
    assert set(deleted) == {"deleted_at"}
    assert won["status"] == ("open", "won")
    assert won["stage_id"] == (open_stages[1]["id"], won_stage["id"])
    assert won["won_at"][0] is None and won["won_at"][1]
    # The lines are part of the deal: each replacement is a version of it, with the lines before and after.
    truck, van, bus = [None, "Truck", 2, 500, 0], [None, "Van", 1, 300, 0], [None, "Bus", 1, 4000, 0]
    assert second_total == {"amount_minor": (1300, 4000), "lines": ([truck, van], [bus])}
    assert first_total == {"amount_minor": (2000, 1300), "lines": ([], [truck, van])}
    assert moved["stage_id"] == (open_stages[0]["id"], open_stages[1]["id"]) and "stage_entered_at" in moved
    assert edited == {"title": ("Fleet", "Fleet renewal"), "amount_minor": (1000, 2000)}
    assert made["title"] == (None, "Fleet") and made["status"] == (None, "open")
    assert made["stage_id"] == (None, open_stages[0]["id"]) and "title_folded" not in made

    # Lines: made, then replaced (the old ones deleted).
    line_entries = await every_page(client, "/audit", tenant.headers, entity="deal_line")
    by(line_entries, tenant.rep.id)
    history = {(e["entity_id"], e["op"]) for e in line_entries}
    bus = replaced["lines"][0]["id"]
    assert history == {(i, "create") for i in [*first_lines, bus]} | {(i, "delete") for i in first_lines}
    truck = next(e for e in line_entries if e["entity_id"] == first_lines[0] and e["op"] == "create")
    assert {k: v for k, v in fields(truck).items() if k in ("deal_id", "name", "quantity", "unit_price_minor")} == {
        "deal_id": (None, deal["id"]),
        "name": (None, "Truck"),
        "quantity": (None, 2),
        "unit_price_minor": (None, 500),
    }

    # Every stage entry: made in the first stage, moved, won.
    events = [
        fields(e)
        for e in reversed(await every_page(client, "/audit", tenant.headers, entity="deal_stage_event"))
        if e["op"] == "create"
    ]
    mine = [e for e in events if e["deal_id"][1] == deal["id"]]
    # A create lists the fields it set: the first entry has no from_stage_id.
    assert [(e.get("from_stage_id", (None, None))[1], e["to_stage_id"][1]) for e in mine] == [
        (None, open_stages[0]["id"]),
        (open_stages[0]["id"], open_stages[1]["id"]),
        (open_stages[1]["id"], won_stage["id"]),
    ]


async def test_activity_writes_are_audited(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep = await world(session, client)
    company = await created(client, "/companies", {"name": "Acme"}, rep)
    logged = await created(
        client,
        "/activities",
        {"kind": "task", "subject": "Visit", "company_id": company["id"], "due_at": "2099-01-01T10:00:00Z"},
        rep,
    )
    activity = logged["activity"]
    url = f"{API}/activities/{activity['id']}"
    await ok(
        await client.patch(url, json={"subject": "Visit the depot", "due_at": "2099-01-02T10:00:00Z"}, headers=rep)
    )
    await ok(await client.post(f"{url}/complete", json={}, headers=rep))
    await ok(await client.delete(url, headers=rep), 204)

    entries = await audit(client, tenant, "activity", activity["id"])
    assert ops(entries) == [("delete", 4), ("update", 3), ("update", 2), ("create", 1)]
    by(entries, tenant.rep.id)
    assert fields(entries[1])["done_at"][0] is None and fields(entries[1])["done_at"][1]
    assert fields(entries[2]) == {
        "subject": ("Visit", "Visit the depot"),
        "due_at": ("2099-01-01T10:00:00+00:00", "2099-01-02T10:00:00+00:00"),
    }
    made = fields(entries[3])
    assert made["kind"] == (None, "task") and made["company_id"] == (None, company["id"])


async def test_share_writes_are_audited(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant, rep = await world(session, client)
    colleague = await make_user(session, tenant.org, role=Role.rep)
    company = await created(client, "/companies", {"name": "Acme"}, rep)
    shared = await created(
        client, "/shares", {"entity": "company", "entity_id": company["id"], "user_ids": [str(colleague.id)]}, rep
    )
    share_id = shared["items"][0]["id"]
    await ok(await client.delete(f"{API}/shares/{share_id}", headers=rep), 204)

    entries = await audit(client, tenant, "share", share_id)
    assert ops(entries) == [("delete", 2), ("create", 1)]
    by(entries, tenant.rep.id)
    made = fields(entries[1])
    assert {k: made[k] for k in ("entity", "entity_id", "user_id", "by_id")} == {
        "entity": (None, "company"),
        "entity_id": (None, company["id"]),
        "user_id": (None, str(colleague.id)),
        "by_id": (None, str(tenant.rep.id)),
    }
    assert set(fields(entries[0])) == {"deleted_at"}


async def test_organization_changes_are_audited(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    before = dict(tenant.org.settings)
    url = f"{API}/organization"
    first = await ok(
        await client.patch(
            url, json={"name": "Acme Iberia", "settings": {"phone_region": "ES"}}, headers=tenant.headers
        )
    )
    await ok(
        await client.patch(
            url,
            json={"settings": {"reps_see_team": True}},
            headers={**tenant.headers, "If-Match": f'"{first["version"]}"'},
        )
    )
    await ok(await client.patch(url, json={"name": "Acme Iberia"}, headers=tenant.headers))  # no change, no entry

    entries = await audit(client, tenant, "organization", tenant.org.id)
    assert [e["op"] for e in entries] == ["update", "update"]
    by(entries, tenant.admin.id)
    assert fields(entries[1]) == {
        "name": ("Acme", "Acme Iberia"),
        "settings": (before, {**before, "phone_region": "ES"}),
    }
    assert fields(entries[0]) == {
        "settings": ({**before, "phone_region": "ES"}, {**before, "phone_region": "ES", "reps_see_team": True})
    }


async def test_crm_audit_is_the_admins_and_the_organisations_own(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant, rep = await world(session, client)
    _, rival_rep = await world(session, client)
    company = await created(client, "/companies", {"name": "Acme"}, rep)
    theirs = await created(client, "/companies", {"name": "Acme"}, rival_rep)
    assert (await client.get(f"{API}/audit", params={"entity": "company"}, headers=rep)).status_code == 403
    listed = await every_page(client, "/audit", tenant.headers, entity="company")
    assert [e["entity_id"] for e in listed] == [company["id"]]
    response = await client.get(f"{API}/audit", params={"entity_id": theirs["id"]}, headers=tenant.headers)
    assert response.status_code == 404, response.text
    assert (
        await client.get(f"{API}/audit", params={"entity": "contact_point"}, headers=tenant.headers)
    ).status_code == 422
