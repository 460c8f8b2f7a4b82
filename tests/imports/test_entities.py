"""Each kind of record an import writes, through HTTP on both databases: companies (merged by name or domain,
updated by id or a chosen key), contacts (names in two columns, companies mapped, created or rejected, consent),
deals (stages, pipelines, owners, amounts, products, won and lost) and activities (Spanish kinds, times, links)."""

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.clients.crm import API, created
from tests.factories import Tenant, make_company, make_contact, make_deal, make_tenant
from tests.imports.flow import csv_bytes, dry_run_and_import, mapped, uploaded

pytestmark = pytest.mark.asyncio


async def get(client: httpx.AsyncClient, headers: dict[str, str], path: str) -> Any:
    response = await client.get(f"{API}{path}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def decide(client: httpx.AsyncClient, headers: dict[str, str], job_id: str, **body: Any) -> Any:
    response = await client.put(f"{API}/imports/{job_id}/values", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def waiting(client: httpx.AsyncClient, headers: dict[str, str], job_id: str) -> dict[tuple[str, str], Any]:
    page = await get(client, headers, f"/imports/{job_id}/values?limit=200")
    return {(v["field"], v["value"]): v for v in page["items"]}


async def set_time_zone(client: httpx.AsyncClient, tenant: Tenant, zone: str) -> None:
    response = await client.patch(f"{API}/organization", json={"settings": {"time_zone": zone}}, headers=tenant.headers)
    assert response.status_code == 200, response.text


# Companies


async def test_companies_merge_by_name_or_domain_update_by_id_and_reject_unknown_ids(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    acme = await make_company(session, tenant.rep, name="ACME Corporation", domain="acme.com")
    globex = await make_company(session, tenant.rep, name="Globex", domain="globex.com", city="Springfield")
    initech = await make_company(session, tenant.rep, name="Initech")
    unknown = uuid.uuid4()
    content = csv_bytes(
        [
            ["ID", "Name", "Website", "Industry", "Employees", "City", "Country"],
            ["", "Acme Corp", "", "Manufacturing", "", "", ""],  # 2: the same name but for its legal form
            ["", "Globex Iberia", "https://www.globex.com/es", "", "1.200", "Madrid", "España"],  # 3: same domain
            ["", "Umbrella", "umbrella.com", "Pharma", "250", "Barcelona", "ES"],  # 4
            ["", "Umbrella S.L.", "", "", "", "Valencia", ""],  # 5: row 4's company
            [str(initech.id), "Initech Spain", "initech.es", "", "", "", ""],  # 6
            [str(unknown), "Nadie", "", "", "", "", ""],  # 7
            ["not-an-id", "Nadie Tampoco", "", "", "", "", ""],  # 8
            ["", "Hooli", "", "", "muchos", "", ""],  # 9
            ["", "Pied Piper", "", "", "", "", "Narnia"],  # 10
        ]
    )

    job = await uploaded(client, admin, "company", content)
    assert job["mapping"] == {
        "ID": "id",
        "Name": "name",
        "Website": "domain",
        "Industry": "industry",
        "Employees": "size",
        "City": "city",
        "Country": "country",
    }
    job = await mapped(client, admin, job, job["mapping"])
    imported, done = await dry_run_and_import(client, admin, job["id"], session, tenant.org.id)

    assert imported["counts"] == {"merge": 3, "create": 1, "update": 1, "reject": 4}
    assert [done[n]["record_id"] for n in (2, 3, 6)] == [str(acme.id), str(globex.id), str(initech.id)]
    assert done[5]["outcome"] == "merge" and done[5]["record_id"] == done[4]["record_id"]
    assert {n: done[n]["column"] for n in (7, 8, 9, 10)} == {7: "ID", 8: "ID", 9: "Employees", 10: "Country"}
    assert done[7]["reason"] == f"No company has the id {unknown}."
    assert "'not-an-id' is not a Fieldbook id" in done[8]["reason"]
    # A merge fills what was empty and keeps the rest; an update by id sets what the row holds.
    acme_now = await get(client, admin, f"/companies/{acme.id}")
    assert (acme_now["name"], acme_now["industry"]) == ("ACME Corporation", "Manufacturing")
    globex_now = await get(client, admin, f"/companies/{globex.id}")
    assert (globex_now["name"], globex_now["size"], globex_now["city"], globex_now["country"]) == (
        "Globex",
        1200,
        "Springfield",
        "ES",
    )
    umbrella = await get(client, admin, f"/companies/{done[4]['record_id']}")
    assert (umbrella["domain"], umbrella["size"], umbrella["city"]) == ("umbrella.com", 250, "Barcelona")
    initech_now = await get(client, admin, f"/companies/{initech.id}")
    assert (initech_now["name"], initech_now["domain"]) == ("Initech Spain", "initech.es")
    listed = (await get(client, admin, "/companies?limit=200"))["items"]
    assert sorted(c["name"] for c in listed) == ["ACME Corporation", "Globex", "Initech Spain", "Umbrella"]


async def test_companies_matched_on_a_chosen_key_are_updated(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    acme = await make_company(session, tenant.rep, name="ACME Corporation", domain="acme.com", industry="Toys")
    twins = {str((await make_company(session, tenant.rep, name="Twin Co")).id) for _ in range(2)}

    # On the web domain: the name is updated; a row whose name two companies have is a duplicate of one of them.
    job = await uploaded(
        client,
        admin,
        "company",
        csv_bytes(
            [
                ["Name", "Website", "Industry"],
                ["ACME Corp.", "www.ACME.com", "Aerospace"],
                ["Newco", "newco.io", "Retail"],
                ["Twin Co", "twin.example", "Food"],
            ]
        ),
    )
    job = await mapped(client, admin, job, job["mapping"], match_key="domain")
    assert job["match_key"] == "domain"
    imported, done = await dry_run_and_import(client, admin, job["id"], session, tenant.org.id)

    assert imported["counts"] == {"update": 1, "create": 1, "merge": 1}
    assert (done[2]["outcome"], done[2]["record_id"]) == ("update", str(acme.id))
    acme_now = await get(client, admin, f"/companies/{acme.id}")
    assert (acme_now["name"], acme_now["industry"]) == ("ACME Corp.", "Aerospace")
    assert done[4]["outcome"] == "merge" and done[4]["record_id"] in twins

    # On the name (spelled in any case): the same, but a name two companies have cannot tell which to update.
    job = await uploaded(
        client,
        admin,
        "company",
        csv_bytes(
            [
                ["Name", "Industry"],
                ["acme corp.", "Defence"],
                ["Brand New", "Food"],
                ["Twin Co", "Food"],
            ]
        ),
    )
    job = await mapped(client, admin, job, job["mapping"], match_key="name")
    imported, done = await dry_run_and_import(client, admin, job["id"], session, tenant.org.id)

    assert imported["counts"] == {"update": 1, "create": 1, "reject": 1}
    assert (done[2]["outcome"], done[2]["record_id"]) == ("update", str(acme.id))
    acme_now = await get(client, admin, f"/companies/{acme.id}")
    assert (acme_now["name"], acme_now["industry"]) == ("acme corp.", "Defence")
    assert done[4]["column"] == "Name" and "2 companies are called 'Twin Co'" in done[4]["reason"]


# Contacts


async def test_contacts_with_names_in_two_columns_companies_decided_and_consent(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    acme = await make_company(session, tenant.rep, name="ACME Corporation")
    content = csv_bytes(
        [
            ["Nombre", "Apellidos", "Empresa", "Correo", "Acepta correos", "Acepta llamadas"],
            ["Ana", "Peña", "Acme Corp", "ana@x.es", "sí", "no"],  # 2
            ["Bea", "Ortiz", "Nueva Logística SL", "bea@x.es", "Sí", "SI"],  # 3
            ["Caro", "Díaz", "nueva logistica sl", "caro@x.es", "no", ""],  # 4: row 3's new company
            ["Dan", "Roca", "Fantasma SA", "dan@x.es", "", ""],  # 5
            ["Eli", "Sol", "ACME Corporation", "eli@x.es", "quizás", ""],  # 6
            ["Fran", "", "", "fran@x.es", "", ""],  # 7
        ]
    )

    job = await uploaded(client, admin, "contact", content)
    assert job["mapping"] == {
        "Nombre": "first_name",
        "Apellidos": "last_name",
        "Empresa": "company",
        "Correo": "emails",
        "Acepta correos": "email_consent",
        "Acepta llamadas": "phone_consent",
    }
    job = await mapped(client, admin, job, job["mapping"])
    values = await waiting(client, admin, job["id"])
    assert set(values) == {("company", "Acme Corp"), ("company", "Nueva Logística SL"), ("company", "Fantasma SA")}
    assert values[("company", "Acme Corp")]["candidates"][0]["id"] == str(acme.id)
    assert values[("company", "Nueva Logística SL")]["rows"] == 2
    job = await decide(
        client,
        admin,
        job["id"],
        decisions=[
            {"field": "company", "value": "acme corp", "action": "map", "target_id": str(acme.id)},
            {"field": "company", "value": "Nueva Logística SL", "action": "create"},
            {"field": "company", "value": "Fantasma SA", "action": "reject"},
        ],
    )
    assert job["undecided"] == 0
    imported, done = await dry_run_and_import(client, admin, job["id"], session, tenant.org.id)

    assert imported["counts"] == {"create": 4, "reject": 2}
    assert (done[5]["column"], done[6]["column"]) == ("Empresa", "Acepta correos")
    assert "'Fantasma SA' was set to be rejected" in done[5]["reason"]
    people = {n: await get(client, admin, f"/contacts/{done[n]['record_id']}") for n in (2, 3, 4, 7)}
    assert {n: (p["name"], p["email_consent"], p["phone_consent"]) for n, p in people.items()} == {
        2: ("Ana Peña", True, False),
        3: ("Bea Ortiz", True, True),
        4: ("Caro Díaz", False, False),
        7: ("Fran", False, False),
    }
    assert people[2]["company_id"] == str(acme.id)
    assert people[3]["company_id"] == people[4]["company_id"] is not None
    assert people[7]["company_id"] is None
    companies = (await get(client, admin, "/companies?limit=200"))["items"]
    assert sorted(c["name"] for c in companies) == ["ACME Corporation", "Nueva Logística SL"], "created once"


async def test_contacts_matched_on_emails_are_updated(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    luis = await make_contact(session, tenant.rep, name="Luis Gómez", emails=["luis@existing.es"], title="Buyer")
    content = csv_bytes(
        [["Nombre", "Correo", "Cargo"], ["Luis G.", "LUIS@existing.es", "CTO"], ["Nuevo", "nuevo@x.es", "CEO"]]
    )

    job = await uploaded(client, admin, "contact", content)
    job = await mapped(client, admin, job, job["mapping"], match_key="emails")
    imported, done = await dry_run_and_import(client, admin, job["id"], session, tenant.org.id)

    assert imported["counts"] == {"update": 1, "create": 1}
    assert done[2]["record_id"] == str(luis.id)
    luis_now = await get(client, admin, f"/contacts/{luis.id}")
    assert (luis_now["name"], luis_now["title"], luis_now["emails"]) == ("Luis G.", "CTO", ["luis@existing.es"])


# Deals

DEAL_HEADER = [
    "Título",
    "Etapa",
    "Embudo",
    "Responsable",
    "Importe",
    "Moneda",
    "Producto",
    "Cantidad",
    "Fecha de cierre",
    "Cerrado el",
    "Motivo de pérdida",
]


async def test_deals_with_stages_pipelines_owners_amounts_products_and_closing(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    await set_time_zone(client, tenant, "America/Mexico_City")
    distribuidores = await created(
        client,
        "/pipelines",
        {"name": "Distribuidores", "stages": [{"name": "Prospecto"}, {"name": "Propuesta"}]},
        admin,
    )
    stages = {
        (p["name"], s["name"]): s["id"] for p in (await get(client, admin, "/pipelines"))["items"] for s in p["stages"]
    }
    product = await created(client, "/products", {"name": "Pro Plan", "price_minor": 90000}, admin)
    reasons = {r["name"]: r["id"] for r in (await get(client, admin, "/lost-reasons"))["items"]}
    rep, boss = tenant.rep, tenant.admin
    content = csv_bytes(
        [
            DEAL_HEADER,
            ["Flota A", "Qualified", "", rep.email, "1.500,00", "EUR", "", "", "31/12/2025", "", ""],  # 2
            ["Flota B", "propuesta", "Distribuidores", boss.name, "2000", "USD", "", "", "", "", ""],  # 3
            ["Flota C", "Propuesta", "Sales", rep.email, "", "", "", "", "", "", ""],  # 4: not a stage of Sales
            ["Flota D", "Won", "", rep.email, "3000", "", "Pro Plan", "3", "", "15/11/2025", ""],  # 5
            ["Flota E", "Lost", "", "", "", "", "", "", "", "20/11/2025", "Price too high"],  # 6
            ["Flota F", "Lost", "", "", "", "", "", "", "", "", ""],  # 7: no reason
            ["Flota G", "Negociación", "", "", "", "", "", "", "", "", ""],  # 8: a Spanish name, mapped
            ["Flota H", "Lead", "", "Nadie Conocido", "", "", "", "", "", "", ""],  # 9
            ["Flota I", "Lead", "", "", "500", "", "ProPlan", "", "", "", "Price too high"],  # 10
        ]
    )

    job = await uploaded(client, admin, "deal", content)
    assert job["mapping"] == {
        "Título": "title",
        "Etapa": "stage",
        "Embudo": "pipeline",
        "Responsable": "owner",
        "Importe": "amount",
        "Moneda": "currency",
        "Producto": "product",
        "Cantidad": "quantity",
        "Fecha de cierre": "expected_close_on",
        "Cerrado el": "closed_on",
        "Motivo de pérdida": "lost_reason",
    }
    job = await mapped(client, admin, job, job["mapping"])
    values = await waiting(client, admin, job["id"])
    assert set(values) == {("stage", "Negociación"), ("owner", "Nadie Conocido"), ("product", "ProPlan")}
    assert values[("product", "ProPlan")]["candidates"][0]["label"] == "Pro Plan"
    await decide(
        client,
        admin,
        job["id"],
        decisions=[
            {"field": "stage", "value": "Negociación", "action": "map", "target_id": stages[("Sales", "Negotiation")]},
            {"field": "owner", "value": "Nadie Conocido", "action": "reject"},
            {"field": "product", "value": "ProPlan", "action": "map", "target_id": product["id"]},
        ],
    )
    imported, done = await dry_run_and_import(client, admin, job["id"], session, tenant.org.id)

    assert imported["counts"] == {"create": 6, "reject": 3}
    assert {n: done[n]["column"] for n in (4, 7, 9)} == {4: "Etapa", 7: "Etapa", 9: "Responsable"}
    assert done[4]["reason"] == "The stage 'Propuesta' is not in the row's pipeline."
    assert "A lost deal needs its lost reason." in done[7]["reason"]
    deal = {n: await get(client, admin, f"/deals/{done[n]['record_id']}") for n in (2, 3, 5, 6, 8, 10)}
    seen = {n: (d["stage_id"], d["owner_id"], d["amount_minor"], d["currency"], d["status"]) for n, d in deal.items()}
    assert seen == {
        2: (stages[("Sales", "Qualified")], str(rep.id), 150000, "EUR", "open"),
        3: (stages[("Distribuidores", "Propuesta")], str(boss.id), 200000, "USD", "open"),
        5: (stages[("Sales", "Won")], str(rep.id), 300000, "EUR", "won"),
        6: (stages[("Sales", "Lost")], str(boss.id), 0, "EUR", "lost"),
        8: (stages[("Sales", "Negotiation")], str(boss.id), 0, "EUR", "open"),
        10: (stages[("Sales", "Lead")], str(boss.id), 50000, "EUR", "open"),
    }
    assert deal[3]["pipeline_id"] == distribuidores["id"]
    assert deal[2]["expected_close_on"] == "2025-12-31"
    # Closed on the day the file says, at noon in the organisation's time zone (UTC-6).
    assert deal[5]["won_at"] == "2025-11-15T18:00:00Z"
    assert (deal[6]["lost_at"], deal[6]["lost_reason_id"]) == ("2025-11-20T18:00:00Z", reasons["Price too high"])
    assert [(ln["product_id"], ln["quantity"], ln["unit_price_minor"]) for ln in deal[5]["lines"]] == [
        (product["id"], 3, 100000)
    ]
    assert [(ln["product_id"], ln["quantity"], ln["unit_price_minor"]) for ln in deal[10]["lines"]] == [
        (product["id"], 1, 50000)
    ]
    assert deal[10]["lost_reason_id"] is None and "not lost" in done[10]["reason"]


# Activities


async def test_activities_with_spanish_kinds_times_durations_and_links(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    await set_time_zone(client, tenant, "Europe/Madrid")
    acme = await make_company(session, tenant.rep, name="ACME Corporation")
    luis = await make_contact(session, tenant.rep, name="Luis Gómez", emails=["luis@x.es"])
    flota = await make_deal(session, tenant.rep, title="Flota A", company_id=acme.id)
    content = csv_bytes(
        [
            ["Tipo", "Asunto", "Fecha", "Vence", "Duración", "Empresa", "Contacto", "Negocio", "Notas"],
            ["Llamada", "Repaso", "31/12/2025 14:30", "", "15", "ACME Corporation", "luis@x.es", "Flota A", "Precios"],
            ["Reunión", "Demo", "", "15/01/2026 10:00", "60", "acme corporation", "", "", ""],  # 3
            ["nota", "", "2025-12-30", "", "", "", "Luis Gómez", "", "Nota libre"],  # 4
            ["Tarea", "Enviar propuesta", "", "20/01/2026", "", "", "", "flota a", ""],  # 5
            ["Cena", "Con el cliente", "31/12/2025", "", "", "", "", "", ""],  # 6
            ["Llamada", "Corta", "31/12/2025", "", "media hora", "", "", "", ""],  # 7
        ]
    )  # fmt: skip

    job = await uploaded(client, admin, "activity", content)
    assert job["mapping"] == {
        "Tipo": "kind",
        "Asunto": "subject",
        "Fecha": "done_at",
        "Vence": "due_at",
        "Duración": "duration",
        "Empresa": "company",
        "Contacto": "contact",
        "Negocio": "deal",
        "Notas": "body",
    }
    job = await mapped(client, admin, job, job["mapping"])
    assert job["undecided"] == 0
    imported, done = await dry_run_and_import(client, admin, job["id"], session, tenant.org.id)

    assert imported["counts"] == {"create": 4, "reject": 2}
    assert {n: done[n]["column"] for n in (6, 7)} == {6: "Tipo", 7: "Duración"}
    made = {n: await get(client, admin, f"/activities/{done[n]['record_id']}") for n in (2, 3, 4, 5)}
    assert {n: (a["kind"], a["done_at"], a["due_at"], a["duration_seconds"]) for n, a in made.items()} == {
        2: ("call", "2025-12-31T13:30:00Z", None, 900),
        3: ("meeting", None, "2026-01-15T09:00:00Z", 3600),
        4: ("note", "2025-12-30T11:00:00Z", None, None),
        5: ("task", None, "2026-01-20T11:00:00Z", None),
    }
    assert {n: (a["company_id"], a["contact_id"], a["deal_id"]) for n, a in made.items()} == {
        2: (str(acme.id), str(luis.id), str(flota.id)),
        3: (str(acme.id), None, None),
        4: (None, str(luis.id), None),
        5: (str(acme.id), None, str(flota.id)),  # the deal's company
    }
    assert (made[2]["subject"], made[2]["body"], made[4]["body"]) == ("Repaso", "Precios", "Nota libre")


async def test_a_task_without_a_due_time_is_rejected_by_the_dry_run_as_by_the_import(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    content = csv_bytes([["Tipo", "Asunto", "Vence"], ["Tarea", "Sin fecha", ""], ["Tarea", "Con fecha", "20/01/2026"]])

    job = await uploaded(client, admin, "activity", content)
    job = await mapped(client, admin, job, job["mapping"])
    imported, done = await dry_run_and_import(client, admin, job["id"], session, tenant.org.id)

    assert imported["counts"] == {"reject": 1, "create": 1}
    assert done[2]["column"] == "Vence" and "due" in done[2]["reason"]
