"""The whole import through HTTP on both databases: a messy contacts file in Spanish, mapped from its headers,
its unknown values decided, a dry run that writes nothing, the import agreeing with it row for row, totals that
add up, the report, and an undo that puts every record back."""

import csv
import io
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from api.imports import runner
from tests.clients.crm import API, set_region
from tests.conftest import serving
from tests.factories import make_company, make_contact, make_org, make_tenant, make_user, sign_in
from tests.imports.flow import adds_up, csv_bytes, mapped, rows, run, snapshot, uploaded

pytestmark = pytest.mark.asyncio

HEADER = ["Nombre", "Apellidos", "Correo", "Teléfono", "Empresa", "Etiquetas", "Responsable"]


def contacts_file(admin_email: str) -> bytes:
    rows = [
        ["Clientes 2025", None, None, None, None, None, None],  # a title row above the header
        HEADER,
        ["Ana", "Peña", "ana@nueva.es", "611 22 33 44", "Acme Corp", "vip; feria", admin_email],
        ["Luis", "Gómez", "LUIS@existing.es", "622 33 44 55", "", "", ""],
        ["Ana", "P.", "ana@nueva.es", "633 44 55 66", "", "", ""],
        ["Malo", "Correo", "no-es-un-correo", "", "", "", ""],
        ["", "", "", "", "", "", ""],
        ["Ana", "Peña", "ana@nueva.es", "611 22 33 44", "Acme Corp", "vip; feria", admin_email],
        ["Eva", "Ruiz", "eva@nueva.es", "600 123 456 (móvil)", "Nueva Distribuciones SL", "", ""],
        ["Juan", "Nadie", "juan@nueva.es", "", "", "", "Juan Pérez Desconocido"],
    ]
    return csv_bytes(rows, delimiter=";", encoding="cp1252")


async def test_a_messy_contacts_file_is_accounted_for_row_by_row_and_undone_exactly(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    await set_region(client, tenant, "ES")
    acme = await make_company(session, tenant.admin, name="ACME Corporation")
    luis = await make_contact(session, tenant.admin, name="Luis Gómez", emails=["luis@existing.es"])
    before = await snapshot(session, tenant.org.id)

    job = await uploaded(client, admin, "contact", contacts_file(tenant.admin.email), name="clientes.csv")
    assert (job["file_format"], job["encoding"], job["delimiter"], job["header_row"]) == ("csv", "cp1252", ";", 2)
    assert job["rows_total"] == 8
    assert job["mapping"] == {
        "Nombre": "first_name",
        "Apellidos": "last_name",
        "Correo": "emails",
        "Teléfono": "phones",
        "Empresa": "company",
        "Etiquetas": "tags",
        "Responsable": "owner",
    }
    job = await mapped(client, admin, job, job["mapping"])
    assert job["undecided"] == 3

    values = (await client.get(f"{API}/imports/{job['id']}/values", headers=admin)).json()["items"]
    by_value = {v["value"]: v for v in values}
    assert set(by_value) == {"Acme Corp", "Nueva Distribuciones SL", "Juan Pérez Desconocido"}
    assert by_value["Acme Corp"]["candidates"][0]["id"] == str(acme.id)
    assert by_value["Acme Corp"]["rows"] == 2

    # The import waits for every value to be decided.
    refused = await client.post(f"{API}/imports/{job['id']}/commit", headers=admin)
    assert refused.status_code == 409 and "3 values" in refused.json()["detail"]

    decided = await client.put(
        f"{API}/imports/{job['id']}/values",
        json={
            "decisions": [
                {"field": "company", "value": "Acme Corp", "action": "map", "target_id": str(acme.id)},
                {"field": "owner", "value": "Juan Pérez Desconocido", "action": "reject"},
            ],
            "defaults": {"company": "create"},
        },
        headers=admin,
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["undecided"] == 0

    previewed = await run(client, admin, job["id"], "preview")
    assert previewed["status"] == "previewed" and adds_up(previewed, "planned")
    assert previewed["planned"] == {"create": 2, "merge": 2, "reject": 2, "skip": 2}
    assert await snapshot(session, tenant.org.id) == before, "a dry run writes nothing"
    planned = await rows(client, admin, job["id"])

    imported = await run(client, admin, job["id"], "commit")
    assert imported["status"] == "imported" and imported["balanced"] and adds_up(imported, "counts")
    assert imported["counts"] == previewed["planned"]
    done = await rows(client, admin, job["id"])
    assert {n: r["outcome"] for n, r in done.items()} == {n: r["planned"] for n, r in planned.items()}
    assert done[6]["outcome"] == "reject" and done[6]["column"] == "Correo"
    assert done[7]["outcome"] == "skip" and done[8]["reason"] == "The same as row 3."
    assert done[10]["column"] == "Responsable" and "rejected" in done[10]["reason"]
    assert done[4]["outcome"] == "merge" and done[4]["record_id"] == str(luis.id)
    assert done[5]["outcome"] == "merge" and done[5]["record_id"] == done[3]["record_id"]
    assert "left out '(móvil)'" in done[9]["reason"]

    ana = (await client.get(f"{API}/contacts/{done[3]['record_id']}", headers=admin)).json()
    assert ana["name"] == "Ana Peña" and ana["company_id"] == str(acme.id) and ana["tags"] == ["vip", "feria"]
    assert ana["phones"] == ["+34611223344", "+34633445566"]
    eva = (await client.get(f"{API}/contacts/{done[9]['record_id']}", headers=admin)).json()
    assert eva["phones"] == ["+34600123456"]
    new_company = (await client.get(f"{API}/companies/{eva['company_id']}", headers=admin)).json()
    assert new_company["name"] == "Nueva Distribuciones SL"
    luis_now = (await client.get(f"{API}/contacts/{luis.id}", headers=admin)).json()
    assert luis_now["phones"] == ["+34622334455"] and luis_now["name"] == "Luis Gómez"

    report = await client.get(f"{API}/imports/{job['id']}/report", params={"format": "csv"}, headers=admin)
    assert report.status_code == 200
    lines = list(csv.reader(io.StringIO(report.content.decode("utf-8-sig"))))
    assert lines[0] == ["Row", *HEADER, "Outcome", "Record id", "Column", "Reason", "Undone at"]
    assert [line[0] for line in lines[1:]] == [str(n) for n in range(3, 11)]
    assert lines[4][len(HEADER) + 1 : len(HEADER) + 4] == ["reject", "", "Correo"]

    undone = await run(client, admin, job["id"], "undo")
    assert undone["status"] == "undone"
    assert await snapshot(session, tenant.org.id) == before


async def test_undo_is_refused_when_someone_changed_an_imported_record(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    job = await uploaded(client, admin, "company", csv_bytes([["Name", "Website"], ["Globex", "globex.com"]]))
    await mapped(client, admin, job, job["mapping"])
    imported = await run(client, admin, job["id"], "commit")
    assert imported["counts"] == {"create": 1}
    record_id = (await rows(client, admin, job["id"]))[2]["record_id"]
    changed = await client.patch(f"{API}/companies/{record_id}", json={"industry": "Energy"}, headers=admin)
    assert changed.status_code == 200
    refused = await client.post(f"{API}/imports/{job['id']}/undo", headers=admin)
    assert refused.status_code == 409 and refused.json()["rows"] == [2]
    company: Any = (await client.get(f"{API}/companies/{record_id}", headers=admin)).json()
    assert company["deleted_at"] is None and company["industry"] == "Energy"


async def test_a_dry_run_split_across_processes_plans_every_row_as_one_run_does(
    session: AsyncSession, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a phase learns as it goes (earlier rows' e-mails, the companies it would create, company names) is
    rebuilt from the rows when the next step runs in a process that did not see the previous one."""
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    content = csv_bytes(
        [
            ["Name", "Email", "Company"],
            ["Ana", "ana@x.es", "Nueva SL"],
            ["Ana Bis", "ANA@x.es", "Nueva S.L."],
            ["Eva", "eva@x.es", "Nueva SL"],
            ["Eva", "eva@x.es", "Nueva SL"],
            ["Leo", "leo@x.es", "Otra"],
        ]
    )
    plans = []
    for forget in (False, True):
        job = await uploaded(client, admin, "contact", content)
        await mapped(client, admin, job, job["mapping"])
        await client.put(f"{API}/imports/{job['id']}/values", json={"defaults": {"company": "create"}}, headers=admin)
        monkeypatch.setattr(runner, "BATCH", 1 if forget else 200)
        monkeypatch.setattr(runner, "BUDGET_SECONDS", 0 if forget else 60)
        if forget:
            monkeypatch.setattr(runner, "_memory", ForgetfulDict())
        previewed = await run(client, admin, job["id"], "preview")
        assert adds_up(previewed, "planned")
        plans.append({n: (r["planned"], r["reason"]) for n, r in (await rows(client, admin, job["id"])).items()})
    assert plans[0] == plans[1]
    assert plans[0][3] == ("merge", "A duplicate of row 2.")
    assert plans[0][5] == ("skip", "The same as row 4.")
    imported = await run(client, admin, job["id"], "commit")
    done = await rows(client, admin, job["id"])
    companies = {
        (await client.get(f"{API}/contacts/{done[n]['record_id']}", headers=admin)).json()["company_id"] for n in (2, 4)
    }
    assert len(companies) == 1 and imported["counts"] == {"create": 3, "merge": 1, "skip": 1}


class ForgetfulDict(dict[Any, Any]):
    """A process memory that never keeps anything: every step starts as if in another process."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


async def test_every_phase_runs_over_a_real_pool_where_each_batch_commits_on_its_own(committed_url: str) -> None:
    """Over separate connections (not the tests' single one), a phase's batches open write transactions of their
    own while the request that runs them is open: the request must not hold the write lock they wait for (SQLite)."""
    async with serving(committed_url) as (db, http):
        async with db.writer() as session:
            org = await make_org(session)
            admin_user = await make_user(session, org, role=Role.admin)
            await session.commit()
        admin = await sign_in(http, admin_user)
        content = csv_bytes([["Name", "Website"], *([f"Company {i}", f"c{i}.example"] for i in range(30))])
        job = await uploaded(http, admin, "company", content)
        await mapped(http, admin, job, job["mapping"])
        previewed = await run(http, admin, job["id"], "preview")
        assert previewed["planned"] == {"create": 30}
        imported = await run(http, admin, job["id"], "commit")
        assert imported["counts"] == {"create": 30} and imported["balanced"]
        undone = await run(http, admin, job["id"], "undo")
        assert undone["status"] == "undone" and undone["counts"] == {"create": 30}
        listed = (await http.get(f"{API}/companies", headers=admin)).json()["items"]
        assert listed == []


async def test_two_admins_mapping_one_import_do_not_overwrite_each_other(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    """The mapping and the decisions are versioned like any record: a stale If-Match gets 412 and changes nothing."""
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    job = await uploaded(client, admin, "company", csv_bytes([["Name", "Website"], ["Globex", "globex.com"]]))
    read = await client.get(f"{API}/imports/{job['id']}", headers=admin)
    etag = read.headers["ETag"]
    first = await client.put(
        f"{API}/imports/{job['id']}/mapping",
        json={"columns": {"Name": "name", "Website": None}},
        headers={**admin, "If-Match": etag},
    )
    assert first.status_code == 200 and first.headers["ETag"] != etag
    stale = await client.put(
        f"{API}/imports/{job['id']}/mapping",
        json={"columns": {"Name": "name", "Website": "domain"}},
        headers={**admin, "If-Match": etag},
    )
    assert stale.status_code == 412 and stale.json()["current"]["mapping"] == {"Name": "name"}
    refused = await client.delete(f"{API}/imports/{job['id']}", headers={**admin, "If-Match": etag})
    assert refused.status_code == 412
    assert (await client.get(f"{API}/imports/{job['id']}", headers=admin)).json()["mapping"] == {"Name": "name"}


async def test_the_list_of_imports_counts_each_jobs_waiting_values(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    """A page of jobs is shown with one grouped count: each job keeps its own number, and its field's default."""
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    two = await uploaded(
        client, admin, "contact", csv_bytes([["Name", "Company"], ["Ana", "Uno SL"], ["Eva", "Dos SL"]])
    )
    one = await uploaded(client, admin, "contact", csv_bytes([["Name", "Company"], ["Leo", "Tres SL"]]))
    none = await uploaded(client, admin, "contact", csv_bytes([["Name", "Company"], ["Ada", "Cuatro SL"]]))
    await client.put(f"{API}/imports/{none['id']}/values", json={"defaults": {"company": "create"}}, headers=admin)
    listed = (await client.get(f"{API}/imports", headers=admin)).json()["items"]
    assert {j["id"]: j["undecided"] for j in listed} == {two["id"]: 2, one["id"]: 1, none["id"]: 0}
    assert all(j["fields"] for j in listed)
