"""Helpers for import tests: files built in code, the HTTP flow, and a snapshot of every live business record to
show an undo puts the database back."""

import csv
import io
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import sqlalchemy as sa
from openpyxl import Workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy.ext.asyncio import AsyncSession

from api.activities.models import Activity
from api.clients.models import Company, Contact, ContactPoint
from api.core.changes import Change
from api.deals.models import Deal, DealLine
from api.imports.models import ImportJob
from tests.clients.crm import API

OUTCOMES = ("create", "update", "merge", "reject", "skip")


def csv_bytes(rows: list[list[Any]], *, delimiter: str = ",", encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[Any]], *, title: str = "Data") -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def xlsx_built(build: Callable[[Worksheet], None], *, cached: dict[str, str] | None = None) -> bytes:
    """An XLSX file whose one sheet `build` fills (merged cells, formulas...). `cached`: the result Excel would have
    stored for each formula cell ({"B7": "2000"}, or "#DIV/0!" for an error), which openpyxl cannot write; a formula
    left out keeps no result, as files written by programs often do."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    build(sheet)
    out = io.BytesIO()
    book.save(out)
    if not cached:
        return out.getvalue()
    patches = {}
    for ref, result in cached.items():
        formula = sheet[ref].value
        assert isinstance(formula, str) and formula.startswith("="), ref
        old = f'<c r="{ref}"><f>{formula[1:]}</f><v /></c>'
        kind = ' t="e"' if result.startswith("#") else ""
        new = f'<c r="{ref}"{kind}><f>{formula[1:]}</f><v>{result}</v></c>'
        patches[old] = new
    return patch_zip(out.getvalue(), "xl/worksheets/sheet1.xml", patches)


def patch_zip(content: bytes, member: str, patches: dict[str, str]) -> bytes:
    """The zip (an XLSX file) with one part's text rewritten (as tests/imports/test_reading.py does on disk)."""
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    xml = parts[member].decode()
    for old, new in patches.items():
        assert old in xml, old
        xml = xml.replace(old, new)
    parts[member] = xml.encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    entity: str,
    content: bytes,
    *,
    name: str = "file.csv",
    sheet: str | None = None,
) -> httpx.Response:
    data = {"entity": entity, **({"sheet": sheet} if sheet else {})}
    return await client.post(f"{API}/imports", files={"file": (name, content)}, data=data, headers=headers)


async def uploaded(client: httpx.AsyncClient, headers: dict[str, str], entity: str, content: bytes, **kw: Any) -> Any:
    response = await upload(client, headers, entity, content, **kw)
    assert response.status_code == 201, response.text
    return response.json()


async def mapped(
    client: httpx.AsyncClient, headers: dict[str, str], job: Any, columns: dict[str, Any], **kw: Any
) -> Any:
    body = {"columns": dict.fromkeys(job["headers"]) | columns, **kw}
    response = await client.put(f"{API}/imports/{job['id']}/mapping", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def run(client: httpx.AsyncClient, headers: dict[str, str], job_id: str, phase: str) -> Any:
    """Call the phase until it is done, as the app and the CLI do; the job at the end."""
    for _ in range(10_000):
        response = await client.post(f"{API}/imports/{job_id}/{phase}", headers=headers)
        assert response.status_code in (200, 202), response.text
        if response.status_code == 200:
            return response.json()
    raise AssertionError("the phase never finished")


async def rows(client: httpx.AsyncClient, headers: dict[str, str], job_id: str) -> dict[int, Any]:
    found: dict[int, Any] = {}
    cursor = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"{API}/imports/{job_id}/rows", params=params, headers=headers)).json()
        found.update({r["row_number"]: r for r in page["items"]})
        cursor = page["next_cursor"]
        if not cursor:
            return found


def adds_up(job: Any, totals_key: str) -> bool:
    totals = job[totals_key]
    return set(totals) <= set(OUTCOMES) and sum(totals.values()) == job["rows_total"]


def assert_balanced(job: Any, totals_key: str) -> None:
    """rows_total = create + update + merge + reject + skip, by the API's own flag and by the sum."""
    assert adds_up(job, totals_key), f"{job[totals_key]} do not add up to {job['rows_total']} rows"
    assert job["balanced"] is True, job


async def dry_run_and_import(
    client: httpx.AsyncClient, headers: dict[str, str], job_id: str, session: AsyncSession, org_id: Any
) -> tuple[Any, dict[int, Any]]:
    """The dry run (which must write nothing, and add up), then the import (which must add up too, and do to each
    row what the dry run said): the imported job and its rows."""
    before, logged = await snapshot(session, org_id), await change_count(session, org_id)
    previewed = await run(client, headers, job_id, "preview")
    assert previewed["status"] == "previewed"
    assert_balanced(previewed, "planned")
    planned = await rows(client, headers, job_id)
    assert len(planned) == previewed["rows_total"]
    assert await snapshot(session, org_id) == before, "a dry run writes nothing"
    assert await change_count(session, org_id) == logged, "a dry run logs no change"
    imported = await run(client, headers, job_id, "commit")
    assert imported["status"] == "imported"
    assert_balanced(imported, "counts")
    done = await rows(client, headers, job_id)
    differ = {
        n: (f"planned {planned[n]['planned']}: {planned[n]['reason']}", f"{r['outcome']}: {r['reason']}")
        for n, r in done.items()
        if r["outcome"] != planned[n]["planned"]
    }
    assert not differ, f"the import did not do what the dry run said: {differ}"
    assert imported["counts"] == previewed["planned"]
    return imported, done


async def change_count(session: AsyncSession, org_id: Any) -> int:
    count = await session.scalar(sa.select(sa.func.count()).select_from(Change).where(Change.org_id == org_id))
    return int(count or 0)


async def job_count(session: AsyncSession, org_id: Any) -> int:
    count = await session.scalar(
        sa.select(sa.func.count()).select_from(ImportJob).where(ImportJob.org_id == org_id)  # type: ignore[arg-type]
    )
    return int(count or 0)


_SKIP = {"updated_at", "version"}


async def snapshot(session: AsyncSession, org_id: Any) -> dict[str, Any]:
    """Every live record of the organisation's business tables (and the duplicate-check index), as values. A deal
    line counts while its deal is live: a deleted deal keeps its lines, as part of what restoring it brings back."""
    found: dict[str, Any] = {}
    deals = Deal.__table__  # type: ignore[attr-defined]
    for model in (Company, Contact, Deal, DealLine, Activity, ContactPoint):
        table = model.__table__  # type: ignore[attr-defined]
        stmt = sa.select(table).where(table.c.org_id == org_id, table.c.deleted_at.is_(None)).order_by(table.c.id)
        if model is DealLine:
            live_deals = sa.select(deals.c.id).where(deals.c.org_id == org_id, deals.c.deleted_at.is_(None))
            stmt = stmt.where(table.c.deal_id.in_(live_deals))
        result = await session.execute(stmt)
        key = ("kind", "value", "client_id") if model is ContactPoint else None
        records = [{k: v for k, v in r._mapping.items() if k not in _SKIP} for r in result]
        if key:
            records = sorted(({k: r[k] for k in key} for r in records), key=lambda r: tuple(map(str, r.values())))
        found[table.name] = records
    return found


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What changed between two snapshots, field by field: a readable account of an undo that was not exact."""
    found = []
    for table, records in before.items():
        if table == "contact_point":
            if records != after[table]:
                found.append(f"contact_point: {records} -> {after[table]}")
            continue
        old = {r["id"]: r for r in records}
        new = {r["id"]: r for r in after[table]}
        found += [f"{table} {i}: gone" for i in old.keys() - new.keys()]
        found += [f"{table} {i}: new {new[i]}" for i in new.keys() - old.keys()]
        for i in old.keys() & new.keys():
            found += [f"{table} {i} {k}: {old[i][k]!r} -> {new[i][k]!r}" for k in old[i] if old[i][k] != new[i].get(k)]
    return found
