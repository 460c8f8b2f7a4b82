"""Custom fields: the admin defines them; every value written to a company, contact or deal is checked against its
field's kind, at its own JSON pointer, and a refused value writes nothing."""

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from tests.auth.test_login import bearer
from tests.clients.crm import API, created, every_page, pointers, written
from tests.factories import Tenant, make_api_key, make_tenant, make_user, sign_in

pytestmark = pytest.mark.asyncio

FIELDS = f"{API}/custom-fields"


async def define(client: httpx.AsyncClient, tenant: Tenant, **spec: Any) -> dict[str, Any]:
    body = {"entity": "company", "label": spec.get("key", "x").title(), **spec}
    field: dict[str, Any] = await created(client, "/custom-fields", body, tenant.headers)
    return field


# Definitions


async def test_admin_defines_changes_and_removes_fields(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    response = await client.post(
        FIELDS,
        json={"entity": "company", "key": "tier", "label": "Tier", "kind": "choice", "choices": ["A", "B"]},
        headers=admin,
    )
    assert response.status_code == 201, response.text
    assert response.headers["ETag"] == '"1"'
    tier = response.json()
    assert {k: tier[k] for k in ("entity", "key", "label", "kind", "choices", "is_required", "position")} == {
        "entity": "company",
        "key": "tier",
        "label": "Tier",
        "kind": "choice",
        "choices": ["A", "B"],
        "is_required": False,
        "position": 1,
    }
    since = await define(client, tenant, key="since", kind="date")
    assert since["position"] == 2
    budget = await define(client, tenant, entity="deal", key="budget", kind="number", is_required=True)
    # The same key on another kind of record is another field.
    contact_tier = await define(client, tenant, entity="contact", key="tier", kind="text")

    listed = (await client.get(FIELDS, headers=admin)).json()["items"]
    assert [(f["entity"], f["key"]) for f in listed] == [
        ("company", "tier"),
        ("company", "since"),
        ("contact", "tier"),
        ("deal", "budget"),
    ]
    only = (await client.get(FIELDS, params={"entity": "deal"}, headers=admin)).json()["items"]
    assert [f["id"] for f in only] == [budget["id"]]
    assert (await client.get(FIELDS, params={"entity": "user"}, headers=admin)).status_code == 422

    url = f"{FIELDS}/{tier['id']}"
    changed = await client.patch(
        url,
        json={"label": "Customer tier", "choices": ["A", "B", "C"], "is_required": True, "position": 5},
        headers={**admin, "If-Match": '"1"'},
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["ETag"] == '"2"'
    assert {k: changed.json()[k] for k in ("label", "choices", "is_required", "position", "key", "kind")} == {
        "label": "Customer tier",
        "choices": ["A", "B", "C"],
        "is_required": True,
        "position": 5,
        "key": "tier",
        "kind": "choice",
    }
    listed = (await client.get(FIELDS, params={"entity": "company"}, headers=admin)).json()["items"]
    assert [f["key"] for f in listed] == ["since", "tier"]
    stale = await client.patch(url, json={"label": "Old"}, headers={**admin, "If-Match": '"1"'})
    assert stale.status_code == 412 and stale.json()["current"]["label"] == "Customer tier", stale.text
    # Key and kind are for good: changing them is refused as unknown fields.
    for frozen in ({"key": "level"}, {"kind": "text"}, {"entity": "contact"}):
        refused = await client.patch(url, json=frozen, headers=admin)
        assert refused.status_code == 422 and pointers(refused) == [f"#/{next(iter(frozen))}"], refused.text
    for nulled in ("label", "choices", "is_required", "position"):
        refused = await client.patch(url, json={nulled: None}, headers=admin)
        assert refused.status_code == 422 and pointers(refused) == [f"#/{nulled}"], refused.text

    assert (await client.delete(url, headers={**admin, "If-Match": '"1"'})).status_code == 412
    assert (await client.delete(url, headers={**admin, "If-Match": '"2"'})).status_code == 204
    assert (await client.delete(url, headers=admin)).status_code == 404
    assert (await client.patch(url, json={"label": "Back"}, headers=admin)).status_code == 404
    listed = (await client.get(FIELDS, headers=admin)).json()["items"]
    assert [f["id"] for f in listed] == [since["id"], contact_tier["id"], budget["id"]]
    # A deleted field's key is free again.
    again = await define(client, tenant, key="tier", kind="number")
    assert again["id"] != tier["id"] and again["kind"] == "number"


BAD_DEFINITIONS = [
    ({"key": "Tier"}, "#/key"),
    ({"key": "1tier"}, "#/key"),
    ({"key": "t" * 41}, "#/key"),
    ({"key": "ti-er"}, "#/key"),
    ({"entity": "deal_line"}, "#/entity"),
    ({"kind": "boolean"}, "#/kind"),
    ({"label": ""}, "#/label"),
    ({"kind": "choice"}, "#/choices"),
    ({"kind": "choice", "choices": []}, "#/choices"),
    ({"kind": "choice", "choices": ["A", "A"]}, "#/choices"),
    ({"kind": "text", "choices": ["A"]}, "#/choices"),
    ({"position": 3}, "#/position"),
]


async def test_a_bad_definition_is_refused_at_its_field(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    before = await written(session, tenant.org.id)
    for change, pointer in BAD_DEFINITIONS:
        body = {"entity": "company", "key": "tier", "label": "Tier", "kind": "text", **change}
        refused = await client.post(FIELDS, json=body, headers=tenant.headers)
        assert refused.status_code == 422, (change, refused.text)
        assert pointers(refused) == [pointer], change
    assert await written(session, tenant.org.id) == before


async def test_keys_are_unique_per_kind_of_record_and_bounded(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    text = await define(client, tenant, key="tier", kind="text")
    taken = await client.post(
        FIELDS, json={"entity": "company", "key": "tier", "label": "Again", "kind": "number"}, headers=tenant.headers
    )
    assert taken.status_code == 409 and pointers(taken) == ["#/key"], taken.text
    # Choices are for single-choice fields only, on update as on create.
    refused = await client.patch(f"{FIELDS}/{text['id']}", json={"choices": ["A"]}, headers=tenant.headers)
    assert refused.status_code == 422 and pointers(refused) == ["#/choices"]
    choice = await define(client, tenant, key="size_band", kind="choice", choices=["S", "M"])
    emptied = await client.patch(f"{FIELDS}/{choice['id']}", json={"choices": []}, headers=tenant.headers)
    assert emptied.status_code == 422 and pointers(emptied) == ["#/choices"]

    for n in range(48):
        await define(client, tenant, key=f"f{n}", kind="text")
    full = await client.post(
        FIELDS, json={"entity": "company", "key": "one_more", "label": "More", "kind": "text"}, headers=tenant.headers
    )
    assert full.status_code == 409, full.text
    # The limit is per kind of record.
    await define(client, tenant, entity="contact", key="one_more", kind="text")


@pytest.mark.parametrize("who", ["rep", "manager", "marketing", "api_key"])
async def test_only_admins_define_fields_everyone_reads_them(
    session: AsyncSession, client: httpx.AsyncClient, who: str
) -> None:
    tenant = await make_tenant(session, client)
    rival = await make_tenant(session, client, "Rival")
    field = await define(client, tenant, key="tier", kind="text")
    theirs = await define(client, rival, key="tier", kind="text")
    if who == "api_key":
        headers = bearer((await make_api_key(session, tenant.org, "clients:read", "clients:write"))[1])
    else:
        headers = await sign_in(client, await make_user(session, tenant.org, role=Role(who)))
    listed = await client.get(FIELDS, headers=headers)
    assert listed.status_code == 200 and [f["id"] for f in listed.json()["items"]] == [field["id"]]

    body = {"entity": "company", "key": "mine", "label": "Mine", "kind": "text"}
    assert (await client.post(FIELDS, json=body, headers=headers)).status_code == 403
    assert (await client.patch(f"{FIELDS}/{field['id']}", json={"label": "X"}, headers=headers)).status_code == 403
    assert (await client.delete(f"{FIELDS}/{field['id']}", headers=headers)).status_code == 403
    # Another organisation's field is not found, even by an admin.
    assert (
        await client.patch(f"{FIELDS}/{theirs['id']}", json={"label": "X"}, headers=tenant.headers)
    ).status_code == 404
    assert (await client.delete(f"{FIELDS}/{theirs['id']}", headers=tenant.headers)).status_code == 404


# Values


VALUES: dict[str, list[tuple[Any, Any]]] = {
    # kind: [(value sent, value stored or None when refused)]
    "text": [
        ("Gold customer", "Gold customer"),
        ("x" * 2000, "x" * 2000),
        ("x" * 2001, None),
        ("a\u0000b", None),
        (12, None),
        (["a"], None),
    ],
    "number": [(12, 12), (-3.5, -3.5), (0, 0), ("12", None), (True, None), ({"n": 1}, None)],
    "date": [
        ("2026-03-01", "2026-03-01"),
        ("20260301", "2026-03-01"),
        ("2026-13-01", None),
        ("01/03/2026", None),
        ("2026-02-30", None),
        (20260301, None),
    ],
    "choice": [("Gold", "Gold"), ("gold", None), ("Platinum", None), (1, None), (["Gold"], None)],
}


@pytest.mark.parametrize("kind", VALUES)
async def test_each_kind_takes_its_values_and_refuses_others_at_its_pointer(
    session: AsyncSession, client: httpx.AsyncClient, kind: str
) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    choices = ["Gold", "Silver"] if kind == "choice" else []
    for path, entity in (("companies", "company"), ("contacts", "contact")):
        await define(client, tenant, entity=entity, key="extra", kind=kind, choices=choices)
        existing = await created(client, f"/{path}", {"name": "Existing"}, rep)
        for value, stored in VALUES[kind]:
            before = await written(session, tenant.org.id)
            made = await client.post(f"{API}/{path}", json={"name": "New", "custom": {"extra": value}}, headers=rep)
            updated = await client.patch(
                f"{API}/{path}/{existing['id']}", json={"custom": {"extra": value}}, headers=rep
            )
            if stored is None:
                for refused in (made, updated):
                    assert refused.status_code == 422, (path, value, refused.text)
                    assert pointers(refused) == ["#/custom/extra"]
                assert await written(session, tenant.org.id) == before
            else:
                assert made.status_code == 201, (path, value, made.text)
                assert made.json()["custom"] == {"extra": stored}
                assert updated.status_code == 200, (path, value, updated.text)
                assert updated.json()["custom"] == {"extra": stored}
                current = await client.get(f"{API}/{path}/{existing['id']}", headers=rep)
                assert current.json()["custom"] == {"extra": stored}


async def test_deals_custom_values_are_checked_too(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    await define(client, tenant, entity="deal", key="budget", kind="number")
    rep = await sign_in(client, tenant.rep)
    refused = await client.post(f"{API}/deals", json={"title": "Big", "custom": {"budget": "lots"}}, headers=rep)
    assert refused.status_code == 422 and pointers(refused) == ["#/custom/budget"], refused.text
    deal = await created(client, "/deals", {"title": "Big", "custom": {"budget": 5000}}, rep)
    assert deal["custom"] == {"budget": 5000}
    # A company's field is not a deal's.
    await define(client, tenant, entity="company", key="tier", kind="text")
    wrong = await client.patch(f"{API}/deals/{deal['id']}", json={"custom": {"tier": "A"}}, headers=rep)
    assert wrong.status_code == 422 and pointers(wrong) == ["#/custom/tier"], wrong.text


async def test_unknown_keys_are_refused(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    await define(client, tenant, entity="contact", key="tier", kind="text")
    rep = await sign_in(client, tenant.rep)
    existing = await created(client, "/companies", {"name": "Acme"}, rep)
    before = await written(session, tenant.org.id)
    for body in ({"nope": "x"}, {"tier": "A"}, {"Tier": "A"}):
        made = await client.post(f"{API}/companies", json={"name": "Acme 2", "custom": body}, headers=rep)
        assert made.status_code == 422, made.text
        assert pointers(made) == [f"#/custom/{next(iter(body))}"]
        changed = await client.patch(f"{API}/companies/{existing['id']}", json={"custom": body}, headers=rep)
        assert changed.status_code == 422 and pointers(changed) == [f"#/custom/{next(iter(body))}"]
    assert await written(session, tenant.org.id) == before


async def test_required_fields_and_clearing(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    before_the_rule = await created(client, "/companies", {"name": "Old"}, rep)
    await define(client, tenant, key="tier", kind="choice", choices=["A", "B"], is_required=True)
    await define(client, tenant, key="since", kind="date")

    missing = await client.post(
        f"{API}/companies", json={"name": "Acme", "custom": {"since": "2020-01-01"}}, headers=rep
    )
    assert missing.status_code == 422 and pointers(missing) == ["#/custom/tier"], missing.text
    nothing = await client.post(f"{API}/companies", json={"name": "Acme"}, headers=rep)
    assert nothing.status_code == 422 and pointers(nothing) == ["#/custom/tier"]
    nulled = await client.post(f"{API}/companies", json={"name": "Acme", "custom": {"tier": None}}, headers=rep)
    assert nulled.status_code == 422 and pointers(nulled) == ["#/custom/tier"]
    acme = await created(client, "/companies", {"name": "Acme", "custom": {"tier": "A", "since": "2020-01-01"}}, rep)
    url = f"{API}/companies/{acme['id']}"

    # Keys not sent are kept; null clears one; a required one cannot be cleared.
    kept = await client.patch(url, json={"custom": {"since": "2021-05-05"}}, headers=rep)
    assert kept.status_code == 200 and kept.json()["custom"] == {"tier": "A", "since": "2021-05-05"}
    cleared = await client.patch(url, json={"custom": {"since": None}}, headers=rep)
    assert cleared.status_code == 200 and cleared.json()["custom"] == {"tier": "A"}
    assert cleared.json()["version"] == 3
    unchanged = await client.patch(url, json={"custom": {}}, headers=rep)
    assert unchanged.status_code == 200 and unchanged.json()["version"] == 3
    refused = await client.patch(url, json={"custom": {"tier": None}}, headers=rep)
    assert refused.status_code == 422 and pointers(refused) == ["#/custom/tier"], refused.text
    assert (await client.get(url, headers=rep)).json()["custom"] == {"tier": "A"}

    # A record made before the field became required is not blocked from other changes.
    old_url = f"{API}/companies/{before_the_rule['id']}"
    renamed = await client.patch(old_url, json={"name": "Old Co", "custom": {"since": "2019-09-09"}}, headers=rep)
    assert renamed.status_code == 200, renamed.text

    # Required for contacts is a different field: contacts are unaffected.
    await created(client, "/contacts", {"name": "Ana"}, rep)


async def test_a_deleted_field_is_no_longer_checked(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    tier = await define(client, tenant, key="tier", kind="choice", choices=["A"], is_required=True)
    acme = await created(client, "/companies", {"name": "Acme", "custom": {"tier": "A"}}, rep)
    assert (await client.delete(f"{FIELDS}/{tier['id']}", headers=tenant.headers)).status_code == 204

    # Not required any more, and its key is unknown now.
    await created(client, "/companies", {"name": "Zeta"}, rep)
    unknown = await client.post(f"{API}/companies", json={"name": "Beta", "custom": {"tier": "Z"}}, headers=rep)
    assert unknown.status_code == 422 and pointers(unknown) == ["#/custom/tier"]
    # Records holding an old value can still be changed.
    renamed = await client.patch(f"{API}/companies/{acme['id']}", json={"name": "Acme Corp"}, headers=rep)
    assert renamed.status_code == 200, renamed.text
    # A new field under the same key checks by its own kind.
    await define(client, tenant, key="tier", kind="number")
    assert (
        await client.post(f"{API}/companies", json={"name": "C", "custom": {"tier": "A"}}, headers=rep)
    ).status_code == 422
    assert (
        await client.post(f"{API}/companies", json={"name": "C", "custom": {"tier": 2}}, headers=rep)
    ).status_code == 201


async def test_a_deleted_fields_values_are_no_longer_shown(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    tier = await define(client, tenant, key="tier", kind="text")
    acme = await created(client, "/companies", {"name": "Acme", "custom": {"tier": "Gold"}}, rep)
    assert (await client.delete(f"{FIELDS}/{tier['id']}", headers=tenant.headers)).status_code == 204
    await define(client, tenant, key="tier", kind="number")
    shown = (await client.get(f"{API}/companies/{acme['id']}", headers=rep)).json()
    assert "tier" not in shown["custom"], shown["custom"]


async def test_a_choice_field_checks_new_writes_against_its_current_choices(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    tier = await define(client, tenant, key="tier", kind="choice", choices=["A", "B"])
    await created(client, "/companies", {"name": "Acme", "custom": {"tier": "B"}}, rep)
    changed = await client.patch(f"{FIELDS}/{tier['id']}", json={"choices": ["A", "C"]}, headers=tenant.headers)
    assert changed.status_code == 200, changed.text
    gone = await client.post(f"{API}/companies", json={"name": "Zeta", "custom": {"tier": "B"}}, headers=rep)
    assert gone.status_code == 422 and pointers(gone) == ["#/custom/tier"]
    await created(client, "/companies", {"name": "Zeta", "custom": {"tier": "C"}}, rep)
    assert {c["name"] for c in await every_page(client, "/companies", rep)} == {"Acme", "Zeta"}
