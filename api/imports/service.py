"""Imports from the admin's side: upload a file, map its columns, decide on values that match nothing, read the
rows and the report. Running a phase is runner.py's."""

import asyncio
import itertools
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.auth.models import Organization
from api.auth.principals import Principal
from api.clients.models import CustomField
from api.core import changes
from api.core.errors import Conflict, NotFound, ValidationFailed
from api.core.etags import ensure_version
from api.core.ids import new_id
from api.core.models import live
from api.core.pagination import keyset_page
from api.core.types import fold, utcnow
from api.imports import values
from api.imports.fields import LISTS, MATCH_KEYS, Kind, Ref, Spec, specs, suggest
from api.imports.models import ImportEntity, ImportJob, ImportMapping, ImportRow, ImportValue, JobStatus
from api.imports.reading import SpreadsheetError, column_title, open_table
from api.imports.refs import load
from api.imports.runner import columns_of, get_job
from api.imports.schemas import Decisions, ImportJobState, ImportMappingRead, MappingIn

INSERT_CHUNK = 1_000
# Cells per column read to tell how its dates and amounts are written: plenty to find a 31/12 or a "1.234,56".
EVIDENCE = 20_000
# A phase's rows must be read the same way from the first to the last: these change only with the mapping.
# A dry run that stopped half-way may be remapped too: it wrote nothing.
EDITABLE = (JobStatus.mapping.value, JobStatus.previewing.value, JobStatus.previewed.value)
REQUIRED: dict[ImportEntity, tuple[tuple[str, ...], ...]] = {
    ImportEntity.company: (("name",),),
    ImportEntity.contact: (("name", "first_name", "last_name"),),
    ImportEntity.deal: (("title",),),
    ImportEntity.activity: (("kind",),),
}


async def fields_of(session: AsyncSession, org_id: uuid.UUID, entity: ImportEntity) -> dict[str, Spec]:
    return specs(entity, list((await session.scalars(live(CustomField, org_id))).all()))


def _save_upload(upload: IO[bytes]) -> Path:
    with tempfile.NamedTemporaryFile(prefix="fieldbook-import-", delete=False) as out:
        shutil.copyfileobj(upload, out, 1 << 20)
        return Path(out.name)


def _take(rows: Iterator[tuple[int, list[Any]]], count: int) -> list[tuple[int, list[Any]]]:
    return list(itertools.islice(rows, count))


async def upload(
    *,
    session: AsyncSession,
    principal: Principal,
    entity: ImportEntity,
    file_name: str,
    data: IO[bytes],
    sheet: str | None,
) -> ImportJob:
    """Read the file into a new job, one import_row per data row, with the columns mapped as the headers suggest
    (or as a saved mapping for the same headers says)."""
    path = await asyncio.to_thread(_save_upload, data)
    try:
        return await _read_into_job(session, principal, entity, file_name, path, sheet)
    except SpreadsheetError as exc:
        raise ValidationFailed.field("#/file", str(exc)) from exc
    finally:
        path.unlink(missing_ok=True)


async def _read_into_job(
    session: AsyncSession, principal: Principal, entity: ImportEntity, file_name: str, path: Path, sheet: str | None
) -> ImportJob:
    # The file is read in a thread, a chunk at a time: the event loop stays free and memory stays flat.
    opened, rows = (await asyncio.to_thread(open_table, path, sheet=sheet))[:2]
    fields = await fields_of(session, principal.org_id, entity)
    headers = [h.replace("\x00", "") for h in opened.headers]
    mapping, match_key = await _initial_mapping(session, principal.org_id, entity, headers, fields)
    assert principal.user_id is not None
    job = ImportJob(
        org_id=principal.org_id,
        entity=entity.value,
        created_by_id=principal.user_id,
        file_name=file_name[:255] or "file",
        file_format=opened.format,
        sheets=opened.sheets,
        sheet=opened.sheet,
        encoding=opened.encoding,
        delimiter=opened.delimiter,
        header_row=opened.header_row,
        headers=headers,
        mapping=mapping,
        match_key=match_key,
    )
    await changes.create(session, principal, "import_job", job)
    now = utcnow()
    width = len(job.headers)
    while chunk := await asyncio.to_thread(_take, rows, INSERT_CHUNK):
        job.rows_total += len(chunk)
        width = max(width, *(len(cells) for _, cells in chunk))
        await session.execute(
            sa.insert(ImportRow),
            [
                {
                    "id": new_id(),
                    "org_id": principal.org_id,
                    "created_at": now,
                    "updated_at": now,
                    "version": 1,
                    "job_id": job.id,
                    "row_number": number,
                    "cells": [_storable(c) for c in cells],
                    "planned_keys": [],
                    "steps": [],
                }
                for number, cells in chunk
            ],
        )
    # Values right of the last titled column get titles of their own, to be mapped or seen in the report.
    job.headers = job.headers + [column_title(n) for n in range(len(job.headers) + 1, width + 1)]
    await _prepare(session, job, fields)
    return job


def _storable(cell: Any) -> Any:
    # A NUL is not text anyone typed, and PostgreSQL's JSON refuses it: the cell becomes an error its row reports.
    if isinstance(cell, str) and "\x00" in cell:
        return {"error": "The cell holds a NUL character: it is not text."}
    return cell


async def _initial_mapping(
    session: AsyncSession, org_id: uuid.UUID, entity: ImportEntity, headers: list[str], fields: dict[str, Spec]
) -> tuple[dict[str, str], str | None]:
    saved = await session.scalars(
        live(ImportMapping, org_id)
        .where(col(ImportMapping.entity) == entity.value)
        .order_by(col(ImportMapping.updated_at).desc())
    )
    for mapping in saved.all():
        if mapping.columns and set(mapping.columns) <= set(headers) and set(mapping.columns.values()) <= set(fields):
            return dict(mapping.columns), mapping.match_key
    return suggest(headers, fields), None


def _state(job: ImportJob) -> ImportJobState:
    return ImportJobState.model_validate(job, from_attributes=True)


async def set_mapping(
    *, session: AsyncSession, principal: Principal, job_id: uuid.UUID, data: MappingIn, expected_version: int | None
) -> ImportJob:
    job = await get_job(session, principal.org_id, job_id, lock=True)
    ensure_version(job, expected_version, _state)
    if job.status not in EDITABLE:
        raise Conflict(f"This import is {job.status}: its mapping cannot change now.")
    entity = ImportEntity(job.entity)
    fields = await fields_of(session, principal.org_id, entity)
    mapping: dict[str, str] = {}
    for header, key in data.columns.items():
        if header not in job.headers:
            raise ValidationFailed.field(f"#/columns/{header}", "The file has no such column.")
        if key is None:
            continue
        if key not in fields:
            raise ValidationFailed.field(f"#/columns/{header}", f"'{key}' is not a field of a {entity.value}.")
        # E-mails, phones and tags add up ("Email", "Email 2"); any other field takes one column.
        if key in mapping.values() and fields[key].kind not in LISTS:
            raise ValidationFailed.field(f"#/columns/{header}", f"Two columns are mapped to '{key}'.")
        mapping[header] = key
    for keys in REQUIRED[entity]:
        if not set(keys) & set(mapping.values()):
            raise ValidationFailed.field("#/columns", f"Map a column to {fields[keys[0]].label}.")
    if data.match_key is not None:
        if data.match_key not in MATCH_KEYS[entity]:
            raise ValidationFailed.field(
                "#/match_key", f"A {entity.value} can be matched on: {', '.join(MATCH_KEYS[entity])}."
            )
        if data.match_key not in mapping.values():
            raise ValidationFailed.field("#/match_key", "Map a column to the field records are matched on.")
    job.mapping, job.match_key = mapping, data.match_key
    job.options = {
        k: v
        for k, v in {
            "date_order": data.date_order,
            "decimal_mark": data.decimal_mark,
            "fuzzy_threshold": data.fuzzy_threshold,
        }.items()
        if v is not None
    }
    job.status, job.planned, job.cursor, job.rows_done = JobStatus.mapping.value, {}, 0, 0
    job.version += 1
    job.updated_at = utcnow()
    if data.save_as:
        await _save_mapping(session, principal, job, data.save_as)
    await _prepare(session, job, fields)
    return job


async def _save_mapping(session: AsyncSession, principal: Principal, job: ImportJob, name: str) -> None:
    existing = await session.scalar(
        live(ImportMapping, principal.org_id).where(
            col(ImportMapping.entity) == job.entity, col(ImportMapping.name) == name
        )
    )
    if existing is not None:
        await changes.update(
            session, principal, "import_mapping", existing, {"columns": job.mapping, "match_key": job.match_key}
        )
        return
    saved = ImportMapping(
        org_id=principal.org_id, name=name, entity=job.entity, columns=job.mapping, match_key=job.match_key
    )
    await changes.create(session, principal, "import_mapping", saved)


async def _column_values(session: AsyncSession, job: ImportJob, indices: set[int]) -> AsyncIterator[list[Any]]:
    if not indices:
        return
    result = await session.stream_scalars(
        select(ImportRow.cells)
        .where(col(ImportRow.job_id) == job.id)
        .order_by(col(ImportRow.row_number))
        .execution_options(yield_per=1_000)
    )
    async for cells in result:
        yield cells


async def _prepare(session: AsyncSession, job: ImportJob, fields: dict[str, Spec]) -> None:
    """Read the mapped columns once: how dates and amounts are written (unless the admin said), and which values of
    reference columns match nothing exactly (each then waits for the admin's decision)."""
    columns = columns_of(job, fields)
    org = await session.get(Organization, job.org_id)
    locale = str((org.settings if org else {}).get("locale", "es-ES"))
    dates = {
        c.index: c.header for c in columns if c.spec.kind in (Kind.date, Kind.datetime) or _custom_is(c.spec, "date")
    }
    amounts = {c.index: c.header for c in columns if c.spec.kind is Kind.amount or _custom_is(c.spec, "number")}
    refs = {c.index: c.spec for c in columns if c.spec.ref is not None}
    samples: dict[int, list[Any]] = {i: [] for i in dates | amounts}
    seen: dict[int, Counter[str]] = {i: Counter() for i in refs}
    spelled: dict[tuple[int, str], str] = {}
    async for cells in _column_values(session, job, set(samples) | set(refs)):
        for index, sample in samples.items():
            if index < len(cells) and cells[index] is not None and len(sample) < EVIDENCE:
                sample.append(cells[index])
        for index in refs:
            cell = cells[index] if index < len(cells) else None
            if cell is not None and not isinstance(cell, dict) and str(cell).strip():
                text = str(cell).strip()
                folded = fold(text).strip()
                seen[index][folded] += 1
                spelled.setdefault((index, folded), text)
    options = dict(job.options)
    us = locale.lower() in ("en-us", "en-ph", "en-ca")
    # Each column is read as its own values show (a US export pasted next to a Spanish one); a column without
    # evidence is read as the file's first column with some, else as the locale says. What the admin sets wins.
    if "date_order" not in options:
        orders = {dates[i]: o for i in dates if (o := values.date_order(samples[i]))}
        options["date_orders"] = orders
        options["date_order"] = next(iter(orders.values()), "mdy" if us else "dmy")
    if "decimal_mark" not in options:
        marks = {amounts[i]: m for i in amounts if (m := values.decimal_mark(samples[i]))}
        options["decimal_marks"] = marks
        options["decimal_mark"] = next(iter(marks.values()), "." if locale.startswith("en") else ",")
    job.options = options
    await _unknown_values(session, job, refs, seen, spelled)


def _custom_is(spec: Spec, kind: str) -> bool:
    return spec.custom is not None and spec.custom.kind == kind


async def _unknown_values(
    session: AsyncSession,
    job: ImportJob,
    refs: dict[int, Spec],
    seen: dict[int, Counter[str]],
    spelled: dict[tuple[int, str], str],
) -> None:
    previous = {
        (v.field, v.folded): v
        for v in (await session.scalars(select(ImportValue).where(col(ImportValue.job_id) == job.id))).all()
    }
    await session.execute(sa.delete(ImportValue).where(col(ImportValue.job_id) == job.id))
    for index, spec in refs.items():
        assert spec.ref is not None
        choices = await load(session, job.org_id, spec.ref)
        for folded, count in seen[index].items():
            found = choices.find(folded)
            # A stage's name may recur in several pipelines: each row's pipeline picks one (plan._stage).
            if len(found) == 1 or (found and spec.ref is Ref.stage):
                continue
            kept = previous.get((spec.key, folded))
            session.add(
                ImportValue(
                    org_id=job.org_id,
                    job_id=job.id,
                    field=spec.key,
                    value=spelled[(index, folded)][:500],
                    folded=folded[:500],
                    rows=count,
                    matches=len(found),
                    candidates=choices.closest(folded),
                    action=kept.action if kept else None,
                    target_id=kept.target_id if kept else None,
                )
            )
    await session.flush()


async def list_values(
    *,
    session: AsyncSession,
    principal: Principal,
    job_id: uuid.UUID,
    field: str | None,
    undecided: bool | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[ImportValue], str | None]:
    job = await get_job(session, principal.org_id, job_id)
    stmt = select(ImportValue).where(col(ImportValue.job_id) == job.id)
    if field:
        stmt = stmt.where(col(ImportValue.field) == field)
    if undecided is not None:
        stmt = stmt.where(col(ImportValue.action).is_(None) if undecided else col(ImportValue.action).is_not(None))
    return await keyset_page(
        session,
        stmt,
        scope=f"import-values-{job.id}",
        keys=[col(ImportValue.field), col(ImportValue.folded)],
        key_of=lambda v: (v.field, v.folded),
        limit=limit,
        cursor=cursor,
    )


async def decide(
    *, session: AsyncSession, principal: Principal, job_id: uuid.UUID, data: Decisions, expected_version: int | None
) -> ImportJob:
    job = await get_job(session, principal.org_id, job_id, lock=True)
    ensure_version(job, expected_version, _state)
    if job.status not in EDITABLE:
        raise Conflict(f"This import is {job.status}: its values cannot change now.")
    fields = await fields_of(session, principal.org_id, ImportEntity(job.entity))
    for field, action in data.defaults.items():
        spec = fields.get(field)
        if spec is None or spec.ref is None:
            raise ValidationFailed.field(f"#/defaults/{field}", "Not a reference field of this import.")
        if action == "create" and spec.key != "company":
            raise ValidationFailed.field(f"#/defaults/{field}", "Only companies can be created from an import.")
    job.defaults = {k: v for k, v in {**job.defaults, **data.defaults}.items() if v is not None}
    for index, decision in enumerate(data.decisions):
        pointer = f"#/decisions/{index}"
        found = await session.scalar(
            select(ImportValue).where(
                col(ImportValue.job_id) == job.id,
                col(ImportValue.field) == decision.field,
                col(ImportValue.folded) == fold(decision.value).strip(),
            )
        )
        if found is None:
            raise ValidationFailed.field(f"{pointer}/value", "No such value waits for a decision in this import.")
        spec = fields[found.field]
        assert spec.ref is not None
        if decision.action == "create" and spec.key != "company":
            raise ValidationFailed.field(f"{pointer}/action", "Only companies can be created from an import.")
        if decision.action == "map":
            choices = await load(session, job.org_id, spec.ref)
            if decision.target_id is None or decision.target_id not in choices.labels:
                raise ValidationFailed.field(f"{pointer}/target_id", f"No such {spec.ref.value}.")
        found.action = decision.action
        found.target_id = decision.target_id if decision.action == "map" else None
    job.status, job.planned, job.cursor = JobStatus.mapping.value, {}, 0
    job.version += 1
    job.updated_at = utcnow()
    await session.flush()
    return job


async def list_rows(
    *,
    session: AsyncSession,
    principal: Principal,
    job_id: uuid.UUID,
    outcome: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[ImportRow], str | None]:
    job = await get_job(session, principal.org_id, job_id)
    stmt = select(ImportRow).where(col(ImportRow.job_id) == job.id)
    if outcome:
        imported = job.status not in EDITABLE and job.status != JobStatus.previewing.value
        stmt = stmt.where((col(ImportRow.outcome) if imported else col(ImportRow.planned)) == outcome)
    return await keyset_page(
        session,
        stmt,
        scope=f"import-rows-{job.id}",
        keys=[col(ImportRow.row_number)],
        key_of=lambda r: (r.row_number,),
        limit=limit,
        cursor=cursor,
    )


async def list_jobs(
    *, session: AsyncSession, principal: Principal, limit: int, cursor: str | None
) -> tuple[list[ImportJob], str | None]:
    return await keyset_page(
        session,
        live(ImportJob, principal.org_id),
        scope="import-list",
        keys=[col(ImportJob.id)],
        key_of=lambda j: (j.id,),
        limit=limit,
        cursor=cursor,
        descending=True,
    )


async def discard(
    *, session: AsyncSession, principal: Principal, job_id: uuid.UUID, expected_version: int | None
) -> None:
    """Drop a job that has written nothing (or whose import was undone), with its rows."""
    job = await get_job(session, principal.org_id, job_id, lock=True)
    ensure_version(job, expected_version, _state)
    if job.status not in (*EDITABLE, JobStatus.undone.value):
        raise Conflict(f"This import is {job.status}: undo it first; an imported job is kept as its record.")
    await session.execute(sa.delete(ImportRow).where(col(ImportRow.job_id) == job.id))
    await session.execute(sa.delete(ImportValue).where(col(ImportValue.job_id) == job.id))
    await changes.delete(session, principal, "import_job", job)


async def report_rows(session: AsyncSession, job: ImportJob) -> AsyncIterator[list[Any]]:
    """Each original row with what the import did (or, before it, what the dry run said it would do)."""
    imported = job.status not in EDITABLE and job.status != JobStatus.previewing.value
    result: Any = await session.stream(
        sa.select(
            col(ImportRow.row_number),
            col(ImportRow.cells),
            col(ImportRow.outcome if imported else ImportRow.planned),
            col(ImportRow.record_id if imported else ImportRow.planned_target_id),
            col(ImportRow.column),
            col(ImportRow.reason),
            col(ImportRow.undone_at),
        )
        .where(col(ImportRow.job_id) == job.id)
        .order_by(col(ImportRow.row_number))
        .execution_options(yield_per=1_000)
    )
    async for number, cells, outcome, record_id, column, reason, undone_at in result:
        padded = [_plain(c) for c in cells] + [None] * (len(job.headers) - len(cells))
        yield [number, *padded, outcome, record_id, column, reason, undone_at]


def _plain(cell: Any) -> Any:
    return cell.get("error") if isinstance(cell, dict) else cell


def report_headers(job: ImportJob) -> list[str]:
    return ["Row", *job.headers, "Outcome", "Record id", "Column", "Reason", "Undone at"]


async def delete_mapping(
    *, session: AsyncSession, principal: Principal, mapping_id: uuid.UUID, expected_version: int | None
) -> None:
    found = await session.scalar(live(ImportMapping, principal.org_id).where(col(ImportMapping.id) == mapping_id))
    if found is None:
        raise NotFound("No such saved mapping.")
    ensure_version(found, expected_version, lambda m: ImportMappingRead.model_validate(m, from_attributes=True))
    await changes.delete(session, principal, "import_mapping", found)
