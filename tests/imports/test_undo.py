"""Undo puts the database back exactly as it was before the import, for every kind of record an import creates,
updates or merges; and it is refused when that would overwrite work done since, or when there is nothing to undo."""

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.clients.crm import API, created, set_region
from tests.factories import Tenant, make_activity, make_company, make_contact, make_deal, make_tenant
from tests.imports.flow import csv_bytes, differences, dry_run_and_import, mapped, rows, run, snapshot, uploaded

pytestmark = pytest.mark.asyncio


async def imported(
    client: httpx.AsyncClient,
    session: AsyncSession,
    tenant: Tenant,
    entity: str,
    content: bytes,
    decisions: dict[str, Any] | None = None,
) -> tuple[Any, dict[int, Any]]:
    """A file mapped as its headers suggest, its unknown values decided, dry run and imported."""
    job = await uploaded(client, tenant.headers, entity, content)
    job = await mapped(client, tenant.headers, job, job["mapping"])
    if decisions:
        response = await client.put(f"{API}/imports/{job['id']}/values", json=decisions, headers=tenant.headers)
        assert response.status_code == 200, response.text
    return await dry_run_and_import(client, tenant.headers, job["id"], session, tenant.org.id)


async def undone(client: httpx.AsyncClient, headers: dict[str, str], job_id: str) -> Any:
    job = await run(client, headers, job_id, "undo")
    assert job["status"] == "undone"
    assert all(r["undone_at"] for r in (await rows(client, headers, job_id)).values() if r["record_id"])
    return job


async def test_undo_restores_every_record_created_updated_or_merged_by_imports_of_each_kind(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    # (Renaming records and moving deals are left to the tests below, which show what undo then misses.)
    tenant = await make_tenant(session, client)
    await set_region(client, tenant, "ES")
    rep = tenant.rep
    acme = await make_company(session, rep, name="ACME Corporation", domain="acme.com")
    globex = await make_company(session, rep, name="Globex", domain="globex.com", industry="Energy")
    await make_contact(session, rep, name="Luis Gómez", emails=["luis@existing.es"], company_id=globex.id)
    marta = await make_contact(session, rep, name="Marta Ruiz", title="Buyer")
    old_deal = await make_deal(session, rep, title="Flota Vieja", company_id=acme.id, amount_minor=100)
    old_call = await make_activity(session, rep, kind="call", subject="Llamada vieja", deal_id=old_deal.id)
    await created(client, "/products", {"name": "Pro Plan", "price_minor": 90000}, tenant.headers)
    before = await snapshot(session, tenant.org.id)

    companies, done = await imported(
        client,
        session,
        tenant,
        "company",
        csv_bytes(
            [
                ["ID", "Name", "Website", "Industry"],
                ["", "Acme Corp", "", "Retail"],
                [str(globex.id), "Globex", "", "Mining"],
                ["", "Umbrella", "umbrella.com", "Pharma"],
            ]
        ),
    )
    assert [done[n]["outcome"] for n in (2, 3, 4)] == ["merge", "update", "create"]
    contacts, done = await imported(
        client,
        session,
        tenant,
        "contact",
        csv_bytes(
            [
                ["ID", "Nombre", "Correo", "Teléfono", "Empresa", "Etiquetas"],
                ["", "Luis", "LUIS@existing.es", "611 22 33 44", "", "vip"],
                [str(marta.id), "Marta Ruiz", "marta@x.es", "", "Umbrella", ""],
                ["", "Ana Peña", "ana@x.es", "622 33 44 55", "Nueva SL", "feria"],
            ]
        ),
        {"defaults": {"company": "create"}},
    )
    assert [done[n]["outcome"] for n in (2, 3, 4)] == ["merge", "update", "create"]
    deals, done = await imported(
        client,
        session,
        tenant,
        "deal",
        csv_bytes(
            [
                ["ID", "Título", "Importe", "Fecha de cierre", "Etapa", "Producto", "Cantidad", "Cerrado el", "Motivo"],
                [str(old_deal.id), "Flota Vieja", "5000", "31/12/2025", "", "", "", "", ""],
                ["", "Flota Nueva", "3000", "", "Won", "Pro Plan", "3", "15/11/2025", ""],
                ["", "Flota Perdida", "", "", "Lost", "", "", "20/11/2025", "No budget"],
            ]
        ),
    )
    assert [done[n]["outcome"] for n in (2, 3, 4)] == ["update", "create", "create"]
    activities, done = await imported(
        client,
        session,
        tenant,
        "activity",
        csv_bytes(
            [
                ["ID", "Tipo", "Asunto", "Fecha", "Empresa"],
                [str(old_call.id), "Llamada", "Llamada editada", "", ""],
                ["", "Nota", "Nota nueva", "30/12/2025", "Umbrella"],
            ]
        ),
    )
    assert [done[n]["outcome"] for n in (2, 3)] == ["update", "create"]
    assert len(differences(before, await snapshot(session, tenant.org.id))) > 10

    for job in (activities, deals, contacts, companies):
        await undone(client, tenant.headers, job["id"])

    assert not differences(before, await snapshot(session, tenant.org.id))


async def test_undo_of_renamed_records_and_a_moved_deal_restores_their_derived_columns(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    globex = await make_company(session, tenant.rep, name="Globex")
    marta = await make_contact(session, tenant.rep, name="Marta Ruiz")
    deal = await make_deal(session, tenant.rep, title="Flota Vieja")
    before = await snapshot(session, tenant.org.id)
    jobs = []
    for entity, content in (
        ("company", [["ID", "Name"], [str(globex.id), "Globex Intl"]]),
        ("contact", [["ID", "Nombre"], [str(marta.id), "Marta Ruiz Díaz"]]),
        ("deal", [["ID", "Título", "Etapa"], [str(deal.id), "Flota Nueva", "Proposal"]]),
    ):
        job, done = await imported(client, session, tenant, entity, csv_bytes(content))
        assert done[2]["outcome"] == "update"
        jobs.append(job)

    for job in reversed(jobs):
        await undone(client, tenant.headers, job["id"])

    assert not differences(before, await snapshot(session, tenant.org.id))


async def test_undo_of_activities_on_an_existing_deal_restores_the_deal(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    await make_deal(session, tenant.rep, title="Flota Vieja")
    before = await snapshot(session, tenant.org.id)

    job, done = await imported(
        client,
        session,
        tenant,
        "activity",
        csv_bytes(
            [["Tipo", "Asunto", "Fecha", "Negocio"], ["Llamada", "Seguimiento", "30/12/2025 10:00", "Flota Vieja"]]
        ),
    )
    assert done[2]["outcome"] == "create"
    await undone(client, tenant.headers, job["id"])

    assert differences(before, await snapshot(session, tenant.org.id)) == []


async def test_undo_is_refused_once_a_record_changed_after_an_undo_and_before_an_import(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    luis = await make_contact(session, tenant.rep, name="Luis Gómez", emails=["luis@existing.es"])
    deal = await make_deal(session, tenant.rep, title="Flota")
    before = await snapshot(session, tenant.org.id)
    contacts, done = await imported(
        client,
        session,
        tenant,
        "contact",
        csv_bytes([["Nombre", "Correo", "Cargo"], ["Ana", "ana@x.es", ""], ["Luis", "luis@existing.es", "CTO"]]),
    )
    assert (done[3]["outcome"], done[3]["record_id"]) == ("merge", str(luis.id))
    deals, done = await imported(
        client, session, tenant, "deal", csv_bytes([["ID", "Título", "Importe"], [str(deal.id), "Flota", "10"]])
    )
    assert done[2]["outcome"] == "update"

    # Someone works on the merged contact and on the updated deal: undoing would overwrite their work.
    edited = await client.patch(f"{API}/contacts/{luis.id}", json={"title": "CEO"}, headers=admin)
    assert edited.status_code == 200, edited.text
    moved = await client.patch(f"{API}/deals/{deal.id}", json={"amount_minor": 999}, headers=admin)
    assert moved.status_code == 200, moved.text
    changed = await snapshot(session, tenant.org.id)
    for job, row in ((contacts, 3), (deals, 2)):
        refused = await client.post(f"{API}/imports/{job['id']}/undo", headers=admin)
        assert refused.status_code == 409, refused.text
        assert refused.json()["rows"] == [row]
        assert (await client.get(f"{API}/imports/{job['id']}", headers=admin)).json()["status"] == "imported"
    assert await snapshot(session, tenant.org.id) == changed

    # Put back as the import left them, both undo; a second undo finds nothing to undo.
    for path, body in ((f"contacts/{luis.id}", {"title": "CTO"}), (f"deals/{deal.id}", {"amount_minor": 1000})):
        assert (await client.patch(f"{API}/{path}", json=body, headers=admin)).status_code == 200
    for job in (deals, contacts):
        await undone(client, admin, job["id"])
        again = await client.post(f"{API}/imports/{job['id']}/undo", headers=admin)
        assert again.status_code == 409 and "undone" in again.json()["detail"], again.text
    assert not differences(before, await snapshot(session, tenant.org.id))

    # Nor can a job that has imported nothing yet.
    job = await uploaded(client, admin, "company", csv_bytes([["Name"], ["Globex"]]))
    for status in ("mapping", "previewed"):
        if status == "previewed":
            await run(client, admin, job["id"], "preview")
        refused = await client.post(f"{API}/imports/{job['id']}/undo", headers=admin)
        assert refused.status_code == 409, refused.text
        assert (await client.get(f"{API}/imports/{job['id']}", headers=admin)).json()["status"] == status
