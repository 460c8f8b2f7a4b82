"""An import that stops half-way resumes without doing a row twice; two requests never run a step at once; and
`fieldbook import FILE` does the whole flow from a terminal, on a database of its own (both dialects)."""

import asyncio
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from api.auth.models import Role
from api.auth.principals import Principal
from api.cli import app
from api.clients.models import Company, Contact
from api.core.db import Database, make_engine
from api.core.types import utcnow
from api.imports import apply as applying
from api.imports import runner
from api.imports.models import ImportJob
from api.settings import get_settings
from tests.clients.crm import API, set_region
from tests.conftest import serving
from tests.factories import Tenant, make_tenant
from tests.imports.flow import assert_balanced, csv_bytes, mapped, rows, run, snapshot, uploaded

HEADER = ["Nombre", "Correo", "Teléfono", "Empresa"]


def contacts_file(company: str = "") -> bytes:
    """Twelve rows in batches of three: creates, merges into earlier rows, a reject and a skip. The 7th record
    written is row 10's; row 8, earlier in the same batch, names `company`."""
    return csv_bytes(
        [
            HEADER,
            ["A1", "a1@x.es", "", ""],  # 2
            ["A2", "a2@x.es", "", ""],  # 3
            ["A3", "a3@x.es", "", ""],  # 4
            ["Malo", "malo@", "", ""],  # 5: reject
            ["A4", "a4@x.es", "", ""],  # 6
            ["A1 bis", "A1@x.es", "611 22 33 44", ""],  # 7: merges into row 2's
            ["A5", "a5@x.es", "", company],  # 8
            ["A2", "a2@x.es", "", ""],  # 9: row 3 again, skipped
            ["A6", "a6@x.es", "", company],  # 10
            ["A7", "a7@x.es", "", ""],  # 11
            ["A4 bis", "a4@x.es", "622 33 44 55", ""],  # 12: merges into row 6's
            ["A8", "a8@x.es", "", ""],  # 13
        ]
    )


async def interrupted(
    client: httpx.AsyncClient, tenant: Tenant, job_id: str, monkeypatch: pytest.MonkeyPatch, at: int
) -> Any:
    """The import in batches of 3, interrupted by a failure on the `at`th record it writes (its batch rolls back):
    the job as it is then."""
    monkeypatch.setattr(runner, "BATCH", 3)
    real = applying.apply
    calls = 0

    async def failing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == at:
            raise RuntimeError("the database went away")
        return await real(*args, **kwargs)

    monkeypatch.setattr(applying, "apply", failing)
    with pytest.raises(RuntimeError, match="went away"):
        await run(client, tenant.headers, job_id, "commit")
    monkeypatch.setattr(applying, "apply", real)
    stopped = (await client.get(f"{API}/imports/{job_id}", headers=tenant.headers)).json()
    assert stopped["status"] == "importing"
    return stopped


async def crash_on_the_7th_write(
    client: httpx.AsyncClient, tenant: Tenant, job_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped = await interrupted(client, tenant, job_id, monkeypatch, at=7)
    # Rows 2 to 7 are done (two batches); the third, rows 8 to 10, was rolled back whole.
    assert (stopped["rows_done"], stopped["counts"]) == (6, {"create": 4, "reject": 1, "merge": 1})
    done = await rows(client, tenant.headers, job_id)
    assert [n for n, r in done.items() if r["outcome"]] == [2, 3, 4, 5, 6, 7]


def admin_of(tenant: Tenant) -> Principal:
    admin = tenant.admin
    return Principal(kind="user", org_id=tenant.org.id, id=admin.id, role=Role.admin, team_id=admin.team_id)


async def resumed(client: httpx.AsyncClient, tenant: Tenant, job_id: str, session: AsyncSession) -> dict[int, Any]:
    """Commit again until done: every row has one outcome, as the dry run planned, and no record is made twice."""
    imported = await run(client, tenant.headers, job_id, "commit")
    assert imported["status"] == "imported"
    assert_balanced(imported, "counts")
    assert imported["counts"] == imported["planned"] == {"create": 8, "merge": 2, "reject": 1, "skip": 1}
    done = await rows(client, tenant.headers, job_id)
    assert {n: r["outcome"] for n, r in done.items()} == {n: r["planned"] for n, r in done.items()}
    created = [r["record_id"] for r in done.values() if r["outcome"] == "create"]
    assert len(set(created)) == 8
    contacts = (
        await session.execute(sa.select(Contact.name, Contact.emails).where(Contact.org_id == tenant.org.id))
    ).all()
    assert len(contacts) == 8
    emails = Counter(e for _, found in contacts for e in found)
    assert set(emails.values()) == {1} and len(emails) == 8
    return done


async def test_an_interrupted_import_resumes_without_duplicates(
    session: AsyncSession, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await make_tenant(session, client)
    await set_region(client, tenant, "ES")
    job = await uploaded(client, tenant.headers, "contact", contacts_file())
    job = await mapped(client, tenant.headers, job, job["mapping"])
    await run(client, tenant.headers, job["id"], "preview")

    await crash_on_the_7th_write(client, tenant, job["id"], monkeypatch)
    done = await resumed(client, tenant, job["id"], session)

    assert done[7]["record_id"] == done[2]["record_id"] and done[12]["record_id"] == done[6]["record_id"]


async def test_a_resumed_import_creates_again_the_companies_its_lost_batch_had_created(
    session: AsyncSession, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await make_tenant(session, client)
    await set_region(client, tenant, "ES")
    job = await uploaded(client, tenant.headers, "contact", contacts_file(company="Nueva Logística SL"))
    job = await mapped(client, tenant.headers, job, job["mapping"])
    assert job["mapping"]["Empresa"] == "company"
    decided = await client.put(
        f"{API}/imports/{job['id']}/values", json={"defaults": {"company": "create"}}, headers=tenant.headers
    )
    assert decided.status_code == 200, decided.text
    await run(client, tenant.headers, job["id"], "preview")

    await crash_on_the_7th_write(client, tenant, job["id"], monkeypatch)
    done = await resumed(client, tenant, job["id"], session)

    companies = (await session.execute(sa.select(Company.id).where(Company.org_id == tenant.org.id))).scalars().all()
    assert len(companies) == 1
    for n in (8, 10):
        contact = (await client.get(f"{API}/contacts/{done[n]['record_id']}", headers=tenant.headers)).json()
        assert contact["company_id"] == str(companies[0])


async def test_a_resumed_company_import_does_not_merge_into_companies_of_its_lost_batch(
    session: AsyncSession, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await make_tenant(session, client)
    names = ["Alpha", "Beta", "Gamma", "Umbrella", "Delta", "Epsilon"]
    job = await uploaded(client, tenant.headers, "company", csv_bytes([["Name"], *([n] for n in names)]))
    job = await mapped(client, tenant.headers, job, job["mapping"])

    # Rows 5 (Umbrella) and 6 were written in the batch that failed on row 6, and rolled back.
    stopped = await interrupted(client, tenant, job["id"], monkeypatch, at=5)
    assert (stopped["rows_done"], stopped["counts"]) == (3, {"create": 3})
    imported = await run(client, tenant.headers, job["id"], "commit")

    assert imported["counts"] == {"create": 6}
    listed = (await client.get(f"{API}/companies", params={"limit": 50}, headers=tenant.headers)).json()["items"]
    assert sorted(c["name"] for c in listed) == sorted(names)


async def test_a_step_is_refused_while_another_request_holds_the_lease(
    session: AsyncSession, client: httpx.AsyncClient, db: Database
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    job = await uploaded(client, admin, "company", csv_bytes([["Name"], ["Globex"], ["Initech"]]))
    job = await mapped(client, admin, job, job["mapping"])
    before = await snapshot(session, tenant.org.id)

    # Another request has started the import and holds the lease.
    await runner._claim(db, None, admin_of(tenant), uuid.UUID(job["id"]), runner.IMPORT)
    second = await client.post(f"{API}/imports/{job['id']}/commit", headers=admin)
    preview = await client.post(f"{API}/imports/{job['id']}/preview", headers=admin)

    assert second.status_code == 409, second.text
    assert second.headers["retry-after"] == "2"
    assert preview.status_code == 409, preview.text
    held = (await client.get(f"{API}/imports/{job['id']}", headers=admin)).json()
    assert (held["status"], held["rows_done"], held["counts"]) == ("importing", 0, {})
    assert await snapshot(session, tenant.org.id) == before

    # That request died: once its lease has run out, the next call carries on.
    await session.execute(
        sa.update(ImportJob).where(ImportJob.id == uuid.UUID(job["id"])).values(lease_until=utcnow() - runner.LEASE)
    )
    await session.commit()
    imported = await run(client, admin, job["id"], "commit")
    assert imported["counts"] == {"create": 2}
    assert_balanced(imported, "counts")


async def test_two_commits_at_once_over_a_real_pool_import_once(committed_url: str) -> None:
    """Over separate connections (not the tests' single one), two requests run the import's first step at once:
    one imports, the other is refused (the lease, or the import already done), and nothing is written twice."""
    async with serving(committed_url) as (db, http):
        async with db.writer() as session:
            tenant = await make_tenant(session, http)
        admin = tenant.headers
        job = await uploaded(http, admin, "company", csv_bytes([["Name"], ["Globex"], ["Initech"]]))
        job = await mapped(http, admin, job, job["mapping"])

        calls = (http.post(f"{API}/imports/{job['id']}/commit", headers=admin) for _ in range(2))
        first, second = await asyncio.wait_for(asyncio.gather(*calls), 30)

        assert sorted([first.status_code, second.status_code]) == [200, 409], (first.text, second.text)
        imported = (await http.get(f"{API}/imports/{job['id']}", headers=admin)).json()
        assert imported["counts"] == {"create": 2}
        assert_balanced(imported, "counts")
        listed = (await http.get(f"{API}/companies", headers=admin)).json()["items"]
        assert sorted(c["name"] for c in listed) == ["Globex", "Initech"]


# The command line

cli = CliRunner()
CLI_HEADER = ["Nombre", "Apellidos", "Correo", "Empresa", "Responsable"]
CLI_ROWS = [
    ["Clientes 2025"],
    CLI_HEADER,
    ["Ana", "Peña", "ana@x.es", "Nueva SL", "admin@ventas.es"],  # 3
    ["Luis", "Gómez", "luis@", "", ""],  # 4: reject
    ["Ana", "Peña", "ana@x.es", "Nueva SL", "admin@ventas.es"],  # 5: skip
    ["Eva", "Ruiz", "eva@x.es", "nueva sl", "Nadie Conocido"],  # 6: reject (an owner nobody is)
    ["Ana María", "Peña", "ANA@x.es", "", ""],  # 7: merge into row 3's
    [],  # 8: skip
    ["Fede", "Sanz", "fede@x.es", "Otra SA", ""],  # 9
]


async def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url, null_pool=True)
    try:
        async with engine.connect() as connection:
            return {
                model.__tablename__: int(await connection.scalar(sa.select(sa.func.count()).select_from(model)) or 0)
                for model in (Company, Contact, ImportJob)
            }
    finally:
        await engine.dispose()


def _report(path: Path) -> list[tuple[Any, ...]]:
    sheet = load_workbook(path, read_only=True).active
    assert sheet is not None
    return [tuple(row) for row in sheet.iter_rows(values_only=True)]


def test_the_cli_dry_run_writes_nothing_and_the_import_reports_every_row(
    committed_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIELDBOOK_DATABASE_URL", committed_url)
    get_settings.cache_clear()
    try:
        made = cli.invoke(
            app,
            ["user", "create", "--email", "admin@ventas.es", "--name", "Admin", "--org", "Ventas"],
            input="a-long-password\na-long-password\n",
        )
        assert made.exit_code == 0, made.output
        path = tmp_path / "clientes.csv"
        path.write_bytes(csv_bytes(CLI_ROWS, delimiter=";", encoding="cp1252"))
        args = ["import", str(path), "--entity", "contact", "--yes", "--create-companies", "--as", "admin@ventas.es"]

        dry = cli.invoke(app, [*args, "--dry-run", "--report", str(tmp_path / "dry.xlsx")])

        assert dry.exit_code == 0, dry.output
        said = " ".join(dry.stderr.split())  # as a terminal shows it, without the console's line breaks
        assert "Read 7 rows from clientes.csv (csv, header on row 2)." in said
        assert "The dry run says: 2 create, 0 update, 1 merge, 2 reject, 2 skip — 7 of 7 rows (adds up)." in said
        assert "Imported:" not in said and dry.stdout.strip().endswith(": previewed.")
        assert asyncio.run(_counts(committed_url)) == {"company": 0, "contact": 0, "import_job": 1}
        planned = _report(tmp_path / "dry.xlsx")

        done = cli.invoke(app, [*args, "--report", str(tmp_path / "report.xlsx")])

        assert done.exit_code == 0, done.output
        said = " ".join(done.stderr.split())
        assert "Imported: 2 create, 0 update, 1 merge, 2 reject, 2 skip — 7 of 7 rows (adds up)." in said
        assert done.stdout.strip().endswith(": imported.")
        assert asyncio.run(_counts(committed_url)) == {"company": 2, "contact": 2, "import_job": 2}
        report = _report(tmp_path / "report.xlsx")
        assert report[0] == ("Row", *CLI_HEADER, "Outcome", "Record id", "Column", "Reason", "Undone at")
        assert [(r[0], r[6]) for r in report[1:]] == [(r[0], r[6]) for r in planned[1:]]
        outcomes = {r[0]: (r[6], r[8]) for r in report[1:]}
        assert outcomes == {
            3: ("create", None),
            4: ("reject", "Correo"),
            5: ("skip", None),
            6: ("reject", "Responsable"),
            7: ("merge", None),
            8: ("skip", None),
            9: ("create", None),
        }
        assert report[1][1:6] == tuple(CLI_ROWS[2]) and report[1][7] is not None
    finally:
        get_settings.cache_clear()
