"""HTTP routes for imports (admins): upload, map, decide, dry run, import, undo, report."""

import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.auth.deps import AdminDep
from api.auth.principals import Principal
from api.clients.models import CustomField
from api.core.db import SessionDep, get_database
from api.core.errors import problems
from api.core.etags import IfMatchDep, set_etag
from api.core.models import live
from api.core.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from api.core.tabular import FILE_RESPONSE, csv_stream, download, xlsx_stream
from api.imports import runner, service
from api.imports.fields import MATCH_KEYS, specs
from api.imports.models import ImportEntity, ImportJob, ImportMapping, Outcome
from api.imports.schemas import (
    Decisions,
    FieldInfo,
    ImportJobRead,
    ImportMappingRead,
    ImportRowRead,
    ImportValueRead,
    MappingIn,
)

router = APIRouter(prefix="/imports", tags=["imports"])
REQUIRED_KEYS = {k for keys in service.REQUIRED.values() for group in keys for k in group}


async def present(session: Any, job: ImportJob) -> ImportJobRead:
    return (await _present_page(session, [job]))[0]


async def _present_page(session: Any, jobs: list[ImportJob]) -> list[ImportJobRead]:
    """Jobs as the API shows them, with the custom fields and the waiting values read once for the page."""
    if not jobs:
        return []
    custom = list((await session.scalars(live(CustomField, jobs[0].org_id))).all())
    waiting = await runner.undecided_by_job(session, jobs)
    return [_shown(job, custom, waiting.get(job.id, 0)) for job in jobs]


def _shown(job: ImportJob, custom: list[CustomField], undecided: int) -> ImportJobRead:
    entity = ImportEntity(job.entity)
    totals = job.counts if job.status in ("imported", "undoing", "undone") else job.planned
    return ImportJobRead.model_validate(
        {
            **job.model_dump(),
            "fields": [
                FieldInfo(key=s.key, label=s.label, kind=s.kind.value, required=s.key in _required(entity))
                for s in specs(entity, custom).values()
            ],
            "match_keys": list(MATCH_KEYS[entity]),
            "undecided": undecided,
            # Before a dry run there are no totals, and a file of no rows has nothing to account for.
            "balanced": (bool(totals) or job.rows_total == 0) and sum(totals.values()) == job.rows_total,
        }
    )


def _required(entity: ImportEntity) -> set[str]:
    return {group[0] for group in service.REQUIRED[entity]}


@router.post(
    "",
    name="upload",
    status_code=201,
    summary="Upload a CSV or XLSX file",
    description="Reads every row into a new import, with the columns mapped as their headers suggest (English or "
    "Spanish names) or as a saved mapping for the same headers says. Nothing is written to the CRM yet. Files up "
    "to the server's upload limit (25 MB by default) and 200,000 rows.",
    responses=problems(401, 403, 413, 422),
)
async def upload(
    principal: AdminDep,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="A .csv (UTF-8 or Windows-1252, any delimiter) or .xlsx file.")],
    entity: Annotated[ImportEntity, Form(description="What each row is.")],
    sheet: Annotated[str | None, Form(description="The sheet to read (XLSX); the first with data by default.")] = None,
) -> ImportJobRead:
    job = await service.upload(
        session=session,
        principal=principal,
        entity=entity,
        file_name=file.filename or "file",
        data=file.file,
        sheet=sheet,
    )
    return await present(session, job)


@router.get("", name="list", summary="Imports, newest first", responses=problems(400, 401, 403))
async def list_imports(
    principal: AdminDep, session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> Page[ImportJobRead]:
    jobs, next_cursor = await service.list_jobs(session=session, principal=principal, limit=limit, cursor=cursor)
    return Page(items=await _present_page(session, jobs), next_cursor=next_cursor)


@router.get("/mappings", name="mappings", summary="Saved column mappings", responses=problems(401, 403))
async def list_mappings(principal: AdminDep, session: SessionDep) -> list[ImportMappingRead]:
    found = await session.scalars(live(ImportMapping, principal.org_id).order_by(col(ImportMapping.name)))
    return [ImportMappingRead.model_validate(m, from_attributes=True) for m in found.all()]


@router.delete(
    "/mappings/{mapping_id}",
    name="delete-mapping",
    status_code=204,
    summary="Forget a saved mapping",
    responses=problems(401, 403, 404, 412),
)
async def delete_mapping(mapping_id: uuid.UUID, principal: AdminDep, session: SessionDep, if_match: IfMatchDep) -> None:
    await service.delete_mapping(session=session, principal=principal, mapping_id=mapping_id, expected_version=if_match)


@router.get("/{job_id}", name="get", summary="An import and its progress", responses=problems(401, 403, 404))
async def get_import(job_id: uuid.UUID, principal: AdminDep, session: SessionDep, response: Response) -> ImportJobRead:
    job = await runner.get_job(session, principal.org_id, job_id)
    set_etag(response, job.version)
    return await present(session, job)


@router.delete(
    "/{job_id}",
    name="discard",
    status_code=204,
    summary="Discard an import that wrote nothing",
    responses=problems(401, 403, 404, 409, 412),
)
async def discard(job_id: uuid.UUID, principal: AdminDep, session: SessionDep, if_match: IfMatchDep) -> None:
    await service.discard(session=session, principal=principal, job_id=job_id, expected_version=if_match)


@router.put(
    "/{job_id}/mapping",
    name="set-mapping",
    summary="Map the columns",
    description="Sets which field each column fills and how records are matched; reads how the file writes dates and "
    "amounts, and lists the values of reference columns (owners, stages, companies...) that match nothing exactly.",
    responses=problems(401, 403, 404, 409, 412, 422),
)
async def set_mapping(
    job_id: uuid.UUID,
    data: MappingIn,
    principal: AdminDep,
    session: SessionDep,
    if_match: IfMatchDep,
    response: Response,
) -> ImportJobRead:
    job = await service.set_mapping(
        session=session, principal=principal, job_id=job_id, data=data, expected_version=if_match
    )
    set_etag(response, job.version)
    return await present(session, job)


@router.get(
    "/{job_id}/values",
    name="values",
    summary="Values that match nothing",
    description="Each distinct value of a reference column that names no record exactly, with its closest records.",
    responses=problems(400, 401, 403, 404),
)
async def list_values(
    job_id: uuid.UUID,
    principal: AdminDep,
    session: SessionDep,
    field: Annotated[str | None, Query(max_length=40)] = None,
    undecided: Annotated[bool | None, Query(description="Only those waiting (true) or decided (false).")] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[ImportValueRead]:
    found, next_cursor = await service.list_values(
        session=session,
        principal=principal,
        job_id=job_id,
        field=field,
        undecided=undecided,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[ImportValueRead.model_validate(v, from_attributes=True) for v in found], next_cursor=next_cursor)


@router.put(
    "/{job_id}/values",
    name="decide",
    summary="Decide on values that match nothing",
    description="Map a value to a record, have it created (companies) or have its rows rejected; `defaults` decide "
    "for every value of a field nobody decided on.",
    responses=problems(401, 403, 404, 409, 412, 422),
)
async def decide(
    job_id: uuid.UUID,
    data: Decisions,
    principal: AdminDep,
    session: SessionDep,
    if_match: IfMatchDep,
    response: Response,
) -> ImportJobRead:
    job = await service.decide(
        session=session, principal=principal, job_id=job_id, data=data, expected_version=if_match
    )
    set_etag(response, job.version)
    return await present(session, job)


async def _run(
    request: Request, session: AsyncSession, principal: Principal, job_id: uuid.UUID, phase: str, response: Response
) -> ImportJobRead:
    # The request's transaction (which checked the caller) ends here. Each batch commits in a transaction of its own,
    # and on SQLite the request's write transaction would hold the lock they wait for.
    await session.commit()
    job = await runner.step(get_database(request), request.app, principal, job_id, phase)
    async with get_database(request).reader() as session:
        if job.status == runner.PHASES[phase][1].value:
            response.status_code = 202
        return await present(session, job)


_STEP = (
    " Works for about a second and a half and answers with the progress: 202 while rows remain (call again), 200 "
    "once done. An interrupted run resumes where it stopped, without doing a row twice."
)


def _phase_route(phase: str, name: str, summary: str, description: str) -> None:
    """POST /imports/{id}/<name>: one step of the phase (the three phases answer alike)."""

    async def step(
        job_id: uuid.UUID, request: Request, principal: AdminDep, session: SessionDep, response: Response
    ) -> ImportJobRead:
        return await _run(request, session, principal, job_id, phase, response)

    router.post(
        f"/{{job_id}}/{name}",
        name=name,
        summary=summary,
        description=description + _STEP,
        responses=problems(401, 403, 404, 409),
    )(step)


_phase_route(
    runner.PREVIEW,
    "preview",
    "Dry run",
    "What each row would become (create, update, merge, reject with its reason and column, skip); nothing is written.",
)
_phase_route(
    runner.IMPORT,
    "commit",
    "Import",
    "Applies the rows in batches, each row whole or not at all. Refused while values that match nothing wait for a "
    "decision.",
)
_phase_route(
    runner.UNDO,
    "undo",
    "Undo an import",
    "Deletes what it created and puts back what it updated or merged. Refused when a record it wrote has been "
    "changed since.",
)


@router.get(
    "/{job_id}/rows", name="rows", summary="The rows and what became of them", responses=problems(400, 401, 403, 404)
)
async def list_rows(
    job_id: uuid.UUID,
    principal: AdminDep,
    session: SessionDep,
    outcome: Annotated[Outcome | None, Query()] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[ImportRowRead]:
    rows, next_cursor = await service.list_rows(
        session=session,
        principal=principal,
        job_id=job_id,
        outcome=outcome.value if outcome else None,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[ImportRowRead.model_validate(r, from_attributes=True) for r in rows], next_cursor=next_cursor)


@router.get(
    "/{job_id}/report",
    name="report",
    summary="The reconciliation report",
    description="Every original row with its outcome, record id, column and reason, as CSV or XLSX.",
    response_class=StreamingResponse,
    responses={**FILE_RESPONSE, **problems(401, 403, 404)},
)
async def report(
    job_id: uuid.UUID,
    request: Request,
    principal: AdminDep,
    session: SessionDep,
    format: Annotated[Literal["csv", "xlsx"], Query()] = "csv",
) -> Response:
    job = await runner.get_job(session, principal.org_id, job_id)
    database = get_database(request)

    async def rows() -> AsyncIterator[list[Any]]:
        # The request's session is closed once the route returns; the file is written after, from a session of its own.
        async with database.reader() as reading:
            async for row in service.report_rows(reading, job):
                yield row

    headers = service.report_headers(job)
    body = csv_stream(headers, rows()) if format == "csv" else xlsx_stream(headers, rows(), sheet="Report")
    stem = job.file_name.rsplit(".", 1)[0]
    return download(body, filename=f"{stem}-report-{date.today().isoformat()}.{format}", file_format=format)
