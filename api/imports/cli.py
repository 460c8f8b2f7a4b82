"""`fieldbook import FILE`: the API's import flow from a terminal, with a progress bar for each phase."""

import asyncio
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.auth.models import Role, User
from api.auth.principals import Principal
from api.core.db import Database, commit, make_engine
from api.core.errors import AppError
from api.core.tabular import csv_stream, xlsx_stream
from api.imports import runner, service
from api.imports.models import ImportEntity, ImportJob, ImportValue
from api.imports.schemas import Decision, Decisions
from api.settings import Settings

# With --yes, a candidate this close is taken as the value's record; anything less is decided by --create/--reject.
ACCEPT_AT = 90
DECISIONS_PER_CALL = 1_000
err = Console(stderr=True)


def run(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A .csv or .xlsx file.")],
    entity: Annotated[ImportEntity, typer.Option(help="What each row is.")] = ImportEntity.contact,
    admin: Annotated[
        str | None, typer.Option("--as", help="The administrator importing (e-mail); needed with several.")
    ] = None,
    sheet: Annotated[str | None, typer.Option(help="The sheet to read (XLSX).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what each row would become; write nothing.")] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help=f"Take candidates scoring {ACCEPT_AT}+ for values that match nothing.")
    ] = False,
    create_companies: Annotated[
        bool, typer.Option("--create-companies", help="Create the companies rows name that match nothing.")
    ] = False,
    report: Annotated[Path | None, typer.Option(help="Write the report (.csv or .xlsx) here.")] = None,
) -> None:
    """Import a spreadsheet: map its columns, confirm unknown values, dry run, import, report."""
    from api.cli import _settings

    try:
        asyncio.run(_main(_settings(), file, entity, admin, sheet, dry_run, yes, create_companies, report))
    except AppError as exc:
        err.print(f"[red]{exc.title}: {exc.detail}[/red]")
        for item in exc.errors:
            err.print(f"[red]  {item.get('pointer') or item.get('parameter')}: {item['detail']}[/red]")
        raise typer.Exit(1) from exc


async def _main(
    settings: Settings,
    file: Path,
    entity: ImportEntity,
    admin: str | None,
    sheet: str | None,
    dry_run: bool,
    yes: bool,
    create_companies: bool,
    report: Path | None,
) -> None:
    engine = make_engine(settings.database_url, null_pool=True)
    db = Database(engine)
    try:
        async with db.writer() as session:
            principal = await _principal(session, admin)
            with file.open("rb") as data:
                job = await service.upload(
                    session=session, principal=principal, entity=entity, file_name=file.name, data=data, sheet=sheet
                )
            await commit(session, None)
        err.print(f"Read {job.rows_total:,} rows from {file.name} ({job.file_format}, header on row {job.header_row}).")
        _show_mapping(job)
        await _decide(db, principal, job, yes, create_companies)
        job = await _phase(db, principal, job.id, runner.PREVIEW, "Dry run")
        _show_totals("The dry run says", job.planned, job.rows_total)
        if not dry_run:
            job = await _phase(db, principal, job.id, runner.IMPORT, "Importing")
            _show_totals("Imported", job.counts, job.rows_total)
        if report is not None:
            await _write_report(db, job, report)
            err.print(f"Report written to {report}.")
        typer.echo(f"Import {job.id}: {job.status}.")
    finally:
        await engine.dispose()


async def _principal(session: AsyncSession, email: str | None) -> Principal:
    stmt = select(User).where(col(User.role) == Role.admin.value, col(User.deleted_at).is_(None), col(User.is_active))
    if email:
        stmt = stmt.where(col(User.email) == email.lower())
    admins = list((await session.scalars(stmt)).all())
    if len(admins) != 1:
        what = f"No administrator has the e-mail {email}." if email else "Name the administrator: --as EMAIL."
        raise typer.BadParameter(what if admins == [] or email else "Name the administrator: --as EMAIL.")
    user = admins[0]
    return Principal(kind="user", org_id=user.org_id, id=user.id, role=Role.admin, team_id=user.team_id)


def _show_mapping(job: ImportJob) -> None:
    table = Table("Column", "Field", title="Mapping (from the headers)")
    for header in job.headers:
        table.add_row(header, job.mapping.get(header, "[dim]left out[/dim]"))
    err.print(table)


async def _decide(db: Database, principal: Principal, job: ImportJob, yes: bool, create: bool) -> None:
    """A decision for each value that matches nothing: asked on a terminal, or taken by --yes/--create-companies."""
    async with db.reader() as session:
        waiting = list(
            (
                await session.scalars(
                    select(ImportValue)
                    .where(col(ImportValue.job_id) == job.id, col(ImportValue.action).is_(None))
                    .order_by(col(ImportValue.field), col(ImportValue.rows).desc())
                )
            ).all()
        )
    if not waiting:
        return
    decisions = [_decision(value, yes, create) for value in waiting]
    defaults: dict[str, Any] = {"company": "create"} if create else {}
    # The API takes a thousand decisions at a time.
    for start in range(0, max(len(decisions), 1), DECISIONS_PER_CALL):
        chunk = decisions[start : start + DECISIONS_PER_CALL]
        async with db.writer() as session:
            data = Decisions(decisions=chunk, defaults=defaults)
            await service.decide(session=session, principal=principal, job_id=job.id, data=data, expected_version=None)
            await commit(session, None)


def _decision(value: ImportValue, yes: bool, create: bool) -> Decision:
    best = value.candidates[0] if value.candidates else None
    shown = f"{value.field} '{value.value}' ({value.rows} rows)"
    if yes and value.matches > 1:
        err.print(f"{shown} names {value.matches} records: its rows will be rejected (choose one in the app).")
        return Decision(field=value.field, value=value.value, action="reject")
    if yes and best and best["score"] >= ACCEPT_AT:
        err.print(f"{shown} -> {best['label']} ({best['score']}%)")
        return Decision(field=value.field, value=value.value, action="map", target_id=uuid.UUID(best["id"]))
    if yes or not err.is_terminal:
        action = "create" if create and value.field == "company" else "reject"
        err.print(f"{shown} matches nothing close: its rows will be {'created' if action == 'create' else 'rejected'}.")
        return Decision(field=value.field, value=value.value, action=action)
    err.print(f"{shown} matches nothing exactly.")
    for index, candidate in enumerate(value.candidates, 1):
        err.print(f"  {index}. {candidate['label']} ({candidate['score']}%)")
    options = "number, c to create, r to reject" if value.field == "company" else "number or r to reject"
    answer = typer.prompt(f"  Which is it ({options})", default="1" if value.candidates else "r")
    if answer.isdigit() and 1 <= int(answer) <= len(value.candidates):
        target = uuid.UUID(value.candidates[int(answer) - 1]["id"])
        return Decision(field=value.field, value=value.value, action="map", target_id=target)
    action = "create" if answer.lower().startswith("c") and value.field == "company" else "reject"
    return Decision(field=value.field, value=value.value, action=action)


async def _phase(db: Database, principal: Principal, job_id: uuid.UUID, phase: str, title: str) -> ImportJob:
    columns = (TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err) as bars:
        task = None
        while True:
            job = await runner.step(db, None, principal, job_id, phase)
            if task is None:
                task = bars.add_task(title, total=job.rows_total)
            bars.update(task, completed=job.rows_done)
            if job.status != runner.PHASES[phase][1].value:
                return job


def _show_totals(title: str, totals: dict[str, int], rows: int) -> None:
    parts = ", ".join(f"{totals.get(k, 0):,} {k}" for k in ("create", "update", "merge", "reject", "skip"))
    balanced = "adds up" if sum(totals.values()) == rows else "DOES NOT ADD UP"
    err.print(f"{title}: {parts} — {sum(totals.values()):,} of {rows:,} rows ({balanced}).")


async def _write_report(db: Database, job: ImportJob, path: Path) -> None:
    async with db.reader() as session:
        rows = service.report_rows(session, job)
        headers = service.report_headers(job)
        body = xlsx_stream(headers, rows, sheet="Report") if path.suffix == ".xlsx" else csv_stream(headers, rows)
        with path.open("wb") as out:
            async for chunk in body:
                out.write(chunk)
