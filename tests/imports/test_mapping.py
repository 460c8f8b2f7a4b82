"""Mapping columns and deciding on values, through HTTP on both databases: saved mappings offered again for files
with the same headers, and every refusal of a mapping or a decision that cannot be carried out."""

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.clients.crm import API, pointers
from tests.factories import make_tenant
from tests.imports.flow import csv_bytes, dry_run_and_import, mapped, uploaded

pytestmark = pytest.mark.asyncio

# Headers no suggestion maps: only a saved mapping knows them.
HEADER = ["Cliente final", "Mail principal", "Móvil de guardia"]


def contacts(*names: str) -> bytes:
    return csv_bytes([HEADER, *([n, f"{n.lower()}@x.es", ""] for n in names)])


async def test_a_saved_mapping_is_offered_for_files_with_the_same_headers_until_it_is_deleted(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    columns = {"Cliente final": "name", "Mail principal": "emails"}

    first = await uploaded(client, admin, "contact", contacts("Ana"))
    assert first["mapping"]["Cliente final"] == "company"
    first = await mapped(client, admin, first, columns, match_key="emails", save_as="  CRM antiguo  ")
    saved = (await client.get(f"{API}/imports/mappings", headers=admin)).json()
    assert [(m["name"], m["entity"], m["columns"], m["match_key"]) for m in saved] == [
        ("CRM antiguo", "contact", columns, "emails")
    ]
    # Saved again under the same name, it is replaced, not doubled.
    await mapped(client, admin, first, columns, match_key="emails", save_as="CRM antiguo")
    assert len((await client.get(f"{API}/imports/mappings", headers=admin)).json()) == 1

    # Another file with the same headers (in another order, with one more) gets the saved mapping.
    again = await uploaded(
        client, admin, "contact", csv_bytes([["Notas", *reversed(HEADER)], ["", "", "bea@x.es", "Bea"]])
    )
    assert (again["mapping"], again["match_key"]) == (columns, "emails")
    # Not a file of other records, nor one that lacks a saved column.
    assert (await uploaded(client, admin, "company", contacts("Ana")))["mapping"] != columns
    assert (await uploaded(client, admin, "contact", csv_bytes([HEADER[:1], ["Ana"]])))["mapping"] != columns

    other = await make_tenant(session, client, "Otra")
    assert (await client.get(f"{API}/imports/mappings", headers=other.headers)).json() == []
    assert (await uploaded(client, other.headers, "contact", contacts("Ana")))["mapping"] != columns
    foreign = await client.delete(f"{API}/imports/mappings/{saved[0]['id']}", headers=other.headers)
    assert foreign.status_code == 404, foreign.text

    deleted = await client.delete(f"{API}/imports/mappings/{saved[0]['id']}", headers=admin)
    assert deleted.status_code == 204, deleted.text
    assert (await client.get(f"{API}/imports/mappings", headers=admin)).json() == []
    assert (await uploaded(client, admin, "contact", contacts("Ana")))["mapping"] != columns
    gone = await client.delete(f"{API}/imports/mappings/{saved[0]['id']}", headers=admin)
    assert gone.status_code == 404, gone.text


async def put_mapping(client: httpx.AsyncClient, headers: dict[str, str], job: Any, **body: Any) -> httpx.Response:
    return await client.put(f"{API}/imports/{job['id']}/mapping", json=body, headers=headers)


async def test_a_mapping_that_cannot_be_carried_out_is_refused_with_its_pointer(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    job = await uploaded(
        client, admin, "contact", csv_bytes([["Nombre", "Correo", "Otro correo"], ["Ana", "a@x.es", ""]])
    )
    put = await put_mapping(client, admin, job, columns={"Nombre": "name"})
    assert put.status_code == 200, put.text
    before = put.json()

    cases: list[tuple[dict[str, Any], str]] = [
        ({"columns": {"Nombre": "name", "Correo": "salary"}}, "#/columns/Correo"),
        ({"columns": {"Nombre": "name", "Correo": "title", "Otro correo": "title"}}, "#/columns/Otro correo"),
        ({"columns": {"Correo": "emails"}}, "#/columns"),
        ({"columns": {"Nombre": "name", "Teléfono": "phones"}}, "#/columns/Teléfono"),
        ({"columns": {"Nombre": "name"}, "match_key": "domain"}, "#/match_key"),
        ({"columns": {"Nombre": "name"}, "match_key": "emails"}, "#/match_key"),
        ({"columns": {"Nombre": "name"}, "date_order": "ymd"}, "#/date_order"),
        ({"columns": {"Nombre": "name"}, "fuzzy_threshold": 50}, "#/fuzzy_threshold"),
    ]
    for body, pointer in cases:
        refused = await put_mapping(client, admin, job, **body)
        assert refused.status_code == 422, (body, refused.text)
        assert pointers(refused) == [pointer], body
    after = (await client.get(f"{API}/imports/{job['id']}", headers=admin)).json()
    assert (after["mapping"], after["version"]) == (before["mapping"], before["version"])


async def test_decisions_that_cannot_be_carried_out_are_refused(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    other = await make_tenant(session, client, "Otra")
    job = await uploaded(
        client, admin, "contact", csv_bytes([["Nombre", "Empresa", "Responsable"], ["Ana", "Nueva SL", "Nadie"]])
    )
    job = await mapped(client, admin, job, job["mapping"])
    assert job["undecided"] == 2

    cases: list[tuple[dict[str, Any], str]] = [
        ({"decisions": [{"field": "company", "value": "Vieja SL", "action": "create"}]}, "#/decisions/0/value"),
        ({"decisions": [{"field": "owner", "value": "Nadie", "action": "create"}]}, "#/decisions/0/action"),
        ({"decisions": [{"field": "owner", "value": "Nadie", "action": "map"}]}, "#/decisions/0/target_id"),
        (
            {"decisions": [{"field": "owner", "value": "nadie", "action": "map", "target_id": str(other.admin.id)}]},
            "#/decisions/0/target_id",
        ),
        ({"defaults": {"owner": "create"}}, "#/defaults/owner"),
        ({"defaults": {"title": "reject"}}, "#/defaults/title"),
        ({"defaults": {"company": "keep"}}, "#/defaults/company"),
    ]
    for body, pointer in cases:
        refused = await client.put(f"{API}/imports/{job['id']}/values", json=body, headers=admin)
        assert refused.status_code == 422, (body, refused.text)
        assert pointer in pointers(refused), (body, refused.text)
    assert (await client.get(f"{API}/imports/{job['id']}", headers=admin)).json()["undecided"] == 2


async def test_the_mapping_and_the_decisions_cannot_change_once_imported(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    job = await uploaded(client, admin, "contact", csv_bytes([["Nombre", "Empresa"], ["Ana", "Nueva SL"]]))
    job = await mapped(client, admin, job, job["mapping"])
    decided = {"defaults": {"company": "create"}}
    assert (await client.put(f"{API}/imports/{job['id']}/values", json=decided, headers=admin)).status_code == 200
    imported, _ = await dry_run_and_import(client, admin, job["id"], session, tenant.org.id)
    assert imported["counts"] == {"create": 1}

    remap = await put_mapping(client, admin, job, columns={"Nombre": "name"})
    redecide = await client.put(
        f"{API}/imports/{job['id']}/values", json={"defaults": {"company": "reject"}}, headers=admin
    )
    discard = await client.delete(f"{API}/imports/{job['id']}", headers=admin)
    again = await client.post(f"{API}/imports/{job['id']}/commit", headers=admin)
    preview = await client.post(f"{API}/imports/{job['id']}/preview", headers=admin)

    for refused in (remap, redecide, discard, again, preview):
        assert refused.status_code == 409, refused.text
    after = (await client.get(f"{API}/imports/{job['id']}", headers=admin)).json()
    assert (after["status"], after["mapping"], after["defaults"], after["counts"]) == (
        "imported",
        imported["mapping"],
        {"company": "create"},
        {"create": 1},
    )
