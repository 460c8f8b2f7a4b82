"""The issue's bad input, through HTTP on both databases: each file is built here, in code, and each row is either
imported correctly or rejected with its reason and column; the totals always add up, and a file that cannot be
read is refused without creating an import or touching anything else."""

import functools
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy.ext.asyncio import AsyncSession

from api.imports import reading, service
from api.imports.reading import UNCALCULATED
from tests.clients.crm import API, pointers, set_region
from tests.factories import make_tenant
from tests.imports.flow import (
    assert_balanced,
    csv_bytes,
    dry_run_and_import,
    job_count,
    mapped,
    rows,
    run,
    snapshot,
    upload,
    uploaded,
    xlsx_built,
)

pytestmark = pytest.mark.asyncio

# 31 December 2025 as Excel counts days.
SERIAL_2025_12_31 = 46022


def messy_deals(sheet: Worksheet) -> None:
    """A title merged over the columns, a header cell merged over two columns (the amount and its currency), blank
    rows, amounts and dates written every which way, and formulas with and without the result Excel stores."""
    sheet["A1"] = "Oportunidades 2025"
    sheet.merge_cells("A1:D1")
    sheet.append(["Negocio", "Importe", None, "Fecha de cierre"])
    sheet.merge_cells("B2:C2")
    for row in [
        ["Flota Norte", "1.234,56", "EUR", "31/12/2025"],  # 3
        ["Flota Sur", "1,234.56", "USD", "2025-12-31"],  # 4
        ["Flota Este", "€ 1 234", None, SERIAL_2025_12_31],  # 5: the currency from the symbol
        [],  # 6: blank
        ["Flota Oeste", "=1000*2", "EUR", date(2025, 12, 31)],  # 7: a formula with its result, a real date cell
        ["Flota Centro", "=1000*3", "EUR", str(SERIAL_2025_12_31)],  # 8: a formula Excel never calculated
        ["Flota Menos", "-500", "EUR", "31/12/2025"],  # 9
        ["Flota Palabras", "unos quinientos", "EUR", "31/12/2025"],  # 10
        ["Flota Error", "=1/0", "EUR", "31/12/2025"],  # 11: a formula whose result is an error
        ["Flota Mañana", "100", "EUR", "mañana"],  # 12
        [],  # 13: blank
        ["Flota Norte", "1.234,56", "EUR", "31/12/2025"],  # 14: row 3 again
        ["Flota Vacía", None, None, None],  # 15: nothing but the title
    ]:
        sheet.append(row)


async def test_a_messy_deals_workbook_is_read_cell_by_cell(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    content = xlsx_built(messy_deals, cached={"B7": "2000", "B11": "#DIV/0!"})

    job = await uploaded(client, admin, "deal", content, name="oportunidades.xlsx")
    assert (job["file_format"], job["sheet"], job["header_row"]) == ("xlsx", "Sheet", 2)
    assert job["headers"] == ["Negocio", "Importe", "Column C", "Fecha de cierre"]
    assert job["rows_total"] == 13
    job = await mapped(client, admin, job, {**job["mapping"], "Column C": "currency"})
    assert job["mapping"] == {
        "Negocio": "title",
        "Importe": "amount",
        "Column C": "currency",
        "Fecha de cierre": "expected_close_on",
    }
    assert job["options"]["date_order"] == "dmy"
    imported, done = await dry_run_and_import(client, admin, job["id"], session, tenant.org.id)

    assert imported["counts"] == {"create": 5, "reject": 5, "skip": 3}
    deals = {
        n: (await client.get(f"{API}/deals/{done[n]['record_id']}", headers=admin)).json() for n in (3, 4, 5, 7, 15)
    }
    assert {n: (d["title"], d["amount_minor"], d["currency"], d["expected_close_on"]) for n, d in deals.items()} == {
        3: ("Flota Norte", 123456, "EUR", "2025-12-31"),
        4: ("Flota Sur", 123456, "USD", "2025-12-31"),
        5: ("Flota Este", 123400, "EUR", "2025-12-31"),
        7: ("Flota Oeste", 200000, "EUR", "2025-12-31"),
        15: ("Flota Vacía", 0, "EUR", None),
    }
    rejected = {n: (done[n]["column"], done[n]["reason"]) for n in (8, 9, 10, 11, 12)}
    assert {n: column for n, (column, _) in rejected.items()} == {
        8: "Importe",
        9: "Importe",
        10: "Importe",
        11: "Importe",
        12: "Fecha de cierre",
    }
    assert rejected[8][1] == UNCALCULATED
    assert "below zero" in rejected[9][1]
    assert "'unos quinientos' is not an amount" in rejected[10][1]
    assert "#DIV/0!" in rejected[11][1]
    assert "'mañana' is not a date" in rejected[12][1]
    assert all(done[n]["record_id"] is None for n in rejected)
    assert [done[n]["reason"] for n in (6, 13, 14)] == ["The row is empty.", "The row is empty.", "The same as row 3."]
    listed = (await client.get(f"{API}/deals", params={"limit": 200}, headers=admin)).json()["items"]
    assert sorted(d["title"] for d in listed) == sorted(d["title"] for d in deals.values()), "nothing else"


async def test_a_month_first_file_is_read_month_first(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    content = csv_bytes(
        [
            ["Deal", "Close date"],
            ["Renewal", "12/31/2025"],
            ["Upsell", "03/04/2026"],  # 4 March, read like the rest of the column
            ["Pilot", "1/15/2026"],
            ["Typo", "31/12/2025"],
        ]
    )

    job = await uploaded(client, admin, "deal", content)
    job = await mapped(client, admin, job, job["mapping"])
    assert job["mapping"] == {"Deal": "title", "Close date": "expected_close_on"}
    assert job["options"]["date_order"] == "mdy"
    imported, done = await dry_run_and_import(client, admin, job["id"], session, tenant.org.id)

    assert imported["counts"] == {"create": 3, "reject": 1}
    closes = [(await client.get(f"{API}/deals/{done[n]['record_id']}", headers=admin)).json() for n in (2, 3, 4)]
    assert [d["expected_close_on"] for d in closes] == ["2025-12-31", "2026-03-04", "2026-01-15"]
    assert done[5]["column"] == "Close date" and "month/day/year" in done[5]["reason"]


def messy_contacts() -> bytes:
    return csv_bytes(
        [
            ["Nombre", "Apellidos", "Correo", "Teléfono"],
            ["Ana", "Peña", "ana@uno.es", "611 22 33 44"],  # 2
            ["Beto", "Ruiz", "beto(at)uno.es", ""],  # 3
            ["Carla", "Gil", "carla@@uno.es", ""],  # 4
            ["Dani", "Sanz", "dani@uno.es", "llamar por la tarde"],  # 5
            ["Eva", "Ruiz", "eva@uno.es", "móvil 600 123 456, fijo 912 345 678"],  # 6
            ["Ana", "Peña", "ana@uno.es", "611 22 33 44"],  # 7: row 2 again
            ["Ana María", "Peña", " ANA@uno.es ", "622 33 44 55"],  # 8: row 2's e-mail, spelled otherwise
            ["", "", "", ""],  # 9
            ["Fede", "", "fede@uno.es; fede.trabajo@uno.es", "+52 55 1234 5678"],  # 10
            ["Gala", "Paz", "", "call 0"],  # 11
        ],
        delimiter=";",
    )


async def test_bad_emails_worded_phones_and_duplicate_rows(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    await set_region(client, tenant, "ES")

    job = await uploaded(client, admin, "contact", messy_contacts())
    job = await mapped(client, admin, job, job["mapping"])
    imported, done = await dry_run_and_import(client, admin, job["id"], session, tenant.org.id)

    assert imported["counts"] == {"create": 3, "merge": 1, "reject": 4, "skip": 2}
    assert {n: done[n]["column"] for n in (3, 4, 5, 11)} == {3: "Correo", 4: "Correo", 5: "Teléfono", 11: "Teléfono"}
    assert "'llamar por la tarde' holds no phone number" in done[5]["reason"]
    assert done[7]["reason"] == "The same as row 2." and done[9]["reason"] == "The row is empty."
    assert done[8]["record_id"] == done[2]["record_id"]
    contact = functools.partial(_contact, client, admin)
    ana = await contact(done[2]["record_id"])
    assert (ana["name"], ana["emails"], ana["phones"]) == ("Ana Peña", ["ana@uno.es"], ["+34611223344", "+34622334455"])
    eva = await contact(done[6]["record_id"])
    assert eva["phones"] == ["+34600123456", "+34912345678"]
    assert "left out 'móvil fijo'" in done[6]["reason"]
    fede = await contact(done[10]["record_id"])
    assert (fede["name"], fede["emails"], fede["phones"]) == (
        "Fede",
        ["fede@uno.es", "fede.trabajo@uno.es"],
        ["+525512345678"],
    )
    listed = (await client.get(f"{API}/contacts", params={"limit": 200}, headers=admin)).json()["items"]
    assert sorted(c["name"] for c in listed) == ["Ana Peña", "Eva Ruiz", "Fede"], "nothing else"


async def _contact(client: httpx.AsyncClient, headers: dict[str, str], record_id: str) -> Any:
    response = await client.get(f"{API}/contacts/{record_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


# Files that are not spreadsheets at all

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06" + bytes(range(256)) * 4
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\ntrailer\n<< >>\n%%EOF\n"
XLS = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 4096


NOT_SPREADSHEETS = [
    (PNG, "clientes.xlsx", reading.NOT_A_SPREADSHEET),
    (PDF, "clientes.csv", reading.NOT_A_SPREADSHEET),
    (b"", "clientes.csv", "The file is empty."),
    (XLS, "clientes.xls", "Old Excel .xls files are not supported: save it as .xlsx or CSV."),
    (b"PK\x03\x04" + b"\x00" * 200, "clientes.xlsx", reading.NOT_A_SPREADSHEET),  # a broken zip
]


async def test_a_file_that_is_not_a_spreadsheet_is_refused_and_creates_no_import(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    before = await snapshot(session, tenant.org.id)

    for content, name, reason in NOT_SPREADSHEETS:
        response = await upload(client, tenant.headers, "contact", content, name=name)

        assert response.status_code == 422, (name, response.text)
        assert pointers(response) == ["#/file"]
        assert response.json()["errors"][0]["detail"] == reason
    await _no_import(session, client, tenant.headers, tenant.org.id, before)


async def _no_import(
    session: AsyncSession, client: httpx.AsyncClient, headers: dict[str, str], org_id: Any, before: Any
) -> None:
    assert await job_count(session, org_id) == 0
    assert (await client.get(f"{API}/imports", headers=headers)).json()["items"] == []
    assert await snapshot(session, org_id) == before


FIFTY_MB = 50 * 1024 * 1024


async def _chunks(total: int) -> AsyncIterator[bytes]:
    """A multipart body with one 50 MB CSV, sent in chunks without a Content-Length (as a proxy may forward it)."""
    yield b'--b\r\nContent-Disposition: form-data; name="entity"\r\n\r\ncontact\r\n'
    yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n'
    line = b"Nombre,Correo\r\n" + b"Ana,ana@example.com\r\n" * 50_000
    sent = 0
    while sent < total:
        yield line
        sent += len(line)
    yield b"\r\n--b--\r\n"


async def test_a_50_mb_file_is_answered_413_without_creating_an_import(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    before = await snapshot(session, tenant.org.id)
    big = b"Nombre,Correo\r\n" + b"Ana,ana@example.com\r\n" * (FIFTY_MB // 21)

    declared = await upload(client, tenant.headers, "contact", big, name="big.csv")
    streamed = await client.post(
        f"{API}/imports",
        content=_chunks(FIFTY_MB),
        headers={**tenant.headers, "Content-Type": "multipart/form-data; boundary=b"},
    )

    assert declared.status_code == 413, declared.text
    assert streamed.status_code == 413, streamed.text
    assert declared.headers["content-type"].startswith("application/problem+json")
    await _no_import(session, client, tenant.headers, tenant.org.id, before)


async def test_a_file_over_the_row_limit_is_refused_without_creating_an_import(
    session: AsyncSession, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The app runs in this process: a limit of 5 rows stands for 200,000 without building a file that large.
    monkeypatch.setattr(service, "open_table", functools.partial(reading.open_table, max_rows=5))
    tenant = await make_tenant(session, client)
    before = await snapshot(session, tenant.org.id)
    fits = csv_bytes([["Nombre"], *([f"Cliente {n}"] for n in range(5))])
    too_many = csv_bytes([["Nombre"], *([f"Cliente {n}"] for n in range(6))])

    response = await upload(client, tenant.headers, "contact", too_many)

    assert response.status_code == 422, response.text
    assert pointers(response) == ["#/file"]
    assert "more than 5 rows" in response.json()["errors"][0]["detail"]
    await _no_import(session, client, tenant.headers, tenant.org.id, before)
    assert (await uploaded(client, tenant.headers, "contact", fits))["rows_total"] == 5


async def test_a_header_only_file_has_no_rows_and_its_totals_add_up_to_zero(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    admin = tenant.headers
    header = [["Clientes 2025"], ["Nombre", "Correo"]]

    def build(sheet: Worksheet) -> None:
        for row in header:
            sheet.append(row)

    for name, content in (("vacio.csv", csv_bytes(header)), ("vacio.xlsx", xlsx_built(build))):
        job = await uploaded(client, admin, "contact", content, name=name)
        assert (job["rows_total"], job["headers"], job["header_row"]) == (0, ["Nombre", "Correo"], 2)
        job = await mapped(client, admin, job, job["mapping"])
        previewed = await run(client, admin, job["id"], "preview")
        assert previewed["status"] == "previewed" and not any(previewed["planned"].values())
        imported = await run(client, admin, job["id"], "commit")
        assert imported["status"] == "imported" and not any(imported["counts"].values())
        assert await rows(client, admin, job["id"]) == {}
        assert_balanced(previewed, "planned")
        assert_balanced(imported, "counts")
