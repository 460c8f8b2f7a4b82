"""Running a phase of an import (dry run, import, undo) in steps: each request works through batches of rows,
each batch in its own transaction with the job's cursor, for about a second and a half, and answers with the
progress. The caller asks again until the job is done, so progress is visible and an interrupted job resumes where
its last committed batch ended, without doing a row twice."""

import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.auth.models import Organization
from api.auth.principals import Principal
from api.clients.models import CustomField
from api.core.db import Database, commit
from api.core.errors import Conflict, NotFound
from api.core.models import live
from api.core.types import fold, utcnow
from api.feed import service as feed
from api.imports import apply as applying
from api.imports.fields import Ref, specs
from api.imports.models import ImportEntity, ImportJob, ImportRow, ImportValue, JobStatus, Outcome
from api.imports.plan import MODELS, NEW, Column, Context, Plan, RowError, plan_row
from api.imports.refs import Choices, core_name, load
from api.sharing.visibility import Viewer, viewer_for

BATCH = 200
BUDGET_SECONDS = 1.5
LEASE = timedelta(minutes=2)

PREVIEW, IMPORT, UNDO = "preview", "import", "undo"
# Phase -> (the statuses it may start from, its running status, its final status).
PHASES = {
    PREVIEW: ({JobStatus.mapping, JobStatus.previewed}, JobStatus.previewing, JobStatus.previewed),
    IMPORT: ({JobStatus.mapping, JobStatus.previewed}, JobStatus.importing, JobStatus.imported),
    # An import that stopped half-way can be undone too: what it did so far is taken back.
    UNDO: ({JobStatus.imported, JobStatus.importing}, JobStatus.undoing, JobStatus.undone),
}
WRITTEN = (Outcome.create.value, Outcome.update.value, Outcome.merge.value)


@dataclass
class Memory:
    """What a phase learns as it goes (the records it created, the keys of rows before): kept between steps in
    this process, rebuilt from the rows when a step runs elsewhere or after a restart."""

    phase: str
    cursor: int
    version: int
    choices: dict[Ref, Choices]
    planned_keys: dict[tuple[str, str], int] = field(default_factory=dict)
    digests: dict[str, int] = field(default_factory=dict)
    new_company_ids: dict[str, uuid.UUID] = field(default_factory=dict)


_memory: dict[uuid.UUID, Memory] = {}


async def get_job(session: AsyncSession, org_id: uuid.UUID, job_id: uuid.UUID, *, lock: bool = False) -> ImportJob:
    stmt = live(ImportJob, org_id).where(col(ImportJob.id) == job_id)
    job = (await session.scalars(stmt.with_for_update() if lock else stmt)).first()
    if job is None:
        raise NotFound("No such import.")
    return job


def columns_of(job: ImportJob, fields: dict[str, Any]) -> list[Column]:
    return [
        Column(job.headers.index(h), h, fields[k]) for h, k in job.mapping.items() if h in job.headers and k in fields
    ]


async def context(session: AsyncSession, job: ImportJob, phase: str) -> Context:
    org = await session.get(Organization, job.org_id)
    settings = org.settings if org else {}
    custom = list((await session.scalars(live(CustomField, job.org_id))).all())
    columns = columns_of(job, specs(ImportEntity(job.entity), custom))
    memory = _memory.get(job.id)
    # The job's version moves with its mapping and decisions: a memory of an earlier run of the phase is stale.
    if memory is None or (memory.phase, memory.cursor, memory.version) != (phase, job.cursor, job.version):
        memory = await _remember(session, job, phase, columns)
        _memory.clear()
        _memory[job.id] = memory
    decisions = await session.scalars(
        select(ImportValue).where(col(ImportValue.job_id) == job.id, col(ImportValue.action).is_not(None))
    )
    return Context(
        session=session,
        job=job,
        entity=ImportEntity(job.entity),
        columns=columns,
        org_id=job.org_id,
        tz=ZoneInfo(str(settings.get("time_zone", "UTC"))),
        region=settings.get("phone_region"),
        currency=str(settings.get("currency", "EUR")),
        choices=memory.choices,
        decisions={(d.field, d.folded): d for d in decisions},
        planned_keys=memory.planned_keys,
        digests=memory.digests,
        new_company_ids=memory.new_company_ids,
    )


async def _remember(session: AsyncSession, job: ImportJob, phase: str, columns: list[Column]) -> Memory:
    refs = {c.spec.ref for c in columns if c.spec.ref is not None}
    if job.entity == ImportEntity.company.value:
        refs.add(Ref.company)
    memory = Memory(phase, job.cursor, job.version, {ref: await load(session, job.org_id, ref) for ref in refs})
    if job.cursor == 0 or phase == UNDO:
        return memory
    outcome = col(ImportRow.planned) if phase == PREVIEW else col(ImportRow.outcome)
    rows: Any = await session.execute(
        sa.select(
            col(ImportRow.row_number), col(ImportRow.digest), col(ImportRow.planned_keys), col(ImportRow.steps), outcome
        ).where(col(ImportRow.job_id) == job.id, col(ImportRow.row_number) <= job.cursor)
    )
    for number, digest, keys, steps, done in rows:
        if digest and done not in (Outcome.reject.value, Outcome.skip.value):
            memory.digests.setdefault(digest, number)
        if phase == PREVIEW:
            _remember_plan(memory, job, number, [(k, v) for k, v in keys])
        for step in steps:
            if step["entity"] == "company" and step["op"] == "create" and job.entity != "company":
                memory.new_company_ids[core_name(step["after"]["name"])] = uuid.UUID(step["id"])
    return memory


def _remember_plan(memory: Memory | Context, job: ImportJob, number: int, keys: list[tuple[str, str]]) -> None:
    """A dry run's planned record, so later rows of the file find it as they would find it once imported."""
    for kind, value in keys:
        if kind == "new_company":
            memory.new_company_ids.setdefault(value, NEW)
        elif kind == "name":
            placeholder = uuid.uuid5(job.id, str(number))
            memory.choices[Ref.company].add(placeholder, value)
            memory.planned_keys[("company", str(placeholder))] = number
        else:
            memory.planned_keys.setdefault((kind, value), number)


async def _claim(db: Database, app: Any, principal: Principal, job_id: uuid.UUID, phase: str) -> None:
    """Take the job's lease for this step (starting the phase if it is not running) in a transaction of its own."""
    allowed, running, _ = PHASES[phase]
    async with db.writer() as session:
        job = await get_job(session, principal.org_id, job_id, lock=True)
        now = utcnow()
        if job.lease_until is not None and job.lease_until > now:
            raise Conflict("This import is running in another request: wait for it.", headers={"Retry-After": "2"})
        if job.status != running.value:
            if JobStatus(job.status) not in allowed:
                raise Conflict(f"This import is {job.status}: it cannot {phase} now.")
            await _check_start(session, job, phase)
            job.status, job.rows_done = running.value, 0
            # Undo walks the rows backwards, from past the last one.
            job.cursor = 0 if phase != UNDO else 2**31 - 1
            if phase == PREVIEW:
                job.planned = {}
            elif phase == IMPORT:
                job.counts = {}
            else:
                job.not_undone = 0
        if phase != UNDO:
            await _check_fields(session, job)
        job.lease_until = now + LEASE
        job.updated_at = now
        await commit(session, app)


async def _check_fields(session: AsyncSession, job: ImportJob) -> None:
    """Every mapped field still exists (a custom field may have been deleted since the mapping was set)."""
    custom = list((await session.scalars(live(CustomField, job.org_id))).all())
    fields = specs(ImportEntity(job.entity), custom)
    gone = [h for h, key in job.mapping.items() if key not in fields]
    if gone:
        raise Conflict(
            f"The column {gone[0]} is mapped to a field that no longer exists: map the columns again.",
            errors=[{"pointer": f"#/columns/{gone[0]}", "detail": "no such field"}],
        )


async def undecided(session: AsyncSession, job: ImportJob) -> int:
    return (await undecided_by_job(session, [job])).get(job.id, 0)


async def undecided_by_job(session: AsyncSession, jobs: list[ImportJob]) -> dict[uuid.UUID, int]:
    """Per job, the values that wait for the admin: no decision, and no default for their field (or several records
    match). One grouped query for a page of jobs."""
    waiting = sa.or_(
        *(
            sa.and_(
                col(ImportValue.job_id) == job.id,
                sa.or_(col(ImportValue.field).not_in(list(job.defaults)), col(ImportValue.matches) > 0),
            )
            for job in jobs
        )
    )
    rows = await session.execute(
        select(col(ImportValue.job_id), sa.func.count())
        .where(col(ImportValue.action).is_(None), waiting)
        .group_by(col(ImportValue.job_id))
    )
    return {job_id: int(count) for job_id, count in rows}


async def _check_start(session: AsyncSession, job: ImportJob, phase: str) -> None:
    if phase == IMPORT:
        waiting = await undecided(session, job)
        if waiting:
            raise Conflict(
                f"{waiting} values match no record (or several): map each to a record, or say to create or reject "
                "them, before importing.",
                extra={"undecided": waiting},
            )
    if phase == UNDO:
        conflicts = await _undo_conflicts(session, job)
        if conflicts:
            raise Conflict(
                f"{len(conflicts)} records this import wrote have been changed since: undoing would overwrite that "
                f"work (rows {', '.join(str(n) for n in conflicts[:10])}).",
                extra={"rows": conflicts[:100]},
            )


async def _undo_conflicts(session: AsyncSession, job: ImportJob) -> list[int]:
    """The rows whose records changed after the import. Each record is checked against its last step (later rows
    of the same job may have changed a record an earlier row created), the records read a thousand at a time."""
    rows = await session.execute(
        select(col(ImportRow.row_number), col(ImportRow.steps))
        .where(col(ImportRow.job_id) == job.id, col(ImportRow.outcome).in_(WRITTEN), col(ImportRow.undone_at).is_(None))
        .order_by(col(ImportRow.row_number).desc())
    )
    last: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    for number, steps in rows:
        for taken in steps:
            last.setdefault((taken["entity"], taken["id"]), (number, taken))
    conflicts: set[int] = set()
    keys = list(last)
    for start in range(0, len(keys), 1_000):
        chunk = keys[start : start + 1_000]
        for entity in {e for e, _ in chunk}:
            model = MODELS[ImportEntity(entity)]
            ids = [uuid.UUID(i) for e, i in chunk if e == entity]
            found = {r.id: r for r in (await session.scalars(select(model).where(col(model.id).in_(ids)))).all()}
            for record_id in ids:
                number, taken = last[(entity, str(record_id))]
                if applying.changed_since(found.get(record_id), taken):
                    conflicts.add(number)
    return sorted(conflicts)


async def step(db: Database, app: Any, principal: Principal, job_id: uuid.UUID, phase: str) -> ImportJob:
    """Work through the phase for about BUDGET_SECONDS; the job as it then stands."""
    await _claim(db, app, principal, job_id, phase)
    try:
        return await _work(db, app, principal, job_id, phase)
    except BaseException:
        # What the failed batch learnt was rolled back with it (a company it created is gone).
        _memory.pop(job_id, None)
        # Free the lease at once: the next call resumes after the last committed batch, without waiting it out.
        async with db.writer() as session:
            await session.execute(sa.update(ImportJob).where(col(ImportJob.id) == job_id).values(lease_until=None))
            await session.commit()
        raise


async def _work(db: Database, app: Any, principal: Principal, job_id: uuid.UUID, phase: str) -> ImportJob:
    started = time.monotonic()
    while True:
        async with db.writer() as session:
            feed.quiet(session)
            job = await get_job(session, principal.org_id, job_id)
            viewer = await viewer_for(session, principal)
            more = await (_undo_batch(session, viewer, job) if phase == UNDO else _batch(session, viewer, job, phase))
            if not more:
                job.status = PHASES[phase][2].value
                job.lease_until, job.finished_at = None, utcnow()
            elif time.monotonic() - started > BUDGET_SECONDS:
                job.lease_until = None
            job.updated_at = utcnow()
            await commit(session, app)
        if not more or job.lease_until is None:
            return job


async def _batch(session: AsyncSession, viewer: Viewer, job: ImportJob, phase: str) -> bool:
    ctx = await context(session, job, phase)
    rows = (
        await session.scalars(
            select(ImportRow)
            .where(col(ImportRow.job_id) == job.id, col(ImportRow.row_number) > job.cursor)
            .order_by(col(ImportRow.row_number))
            .limit(BATCH)
        )
    ).all()
    totals = dict(job.planned if phase == PREVIEW else job.counts)
    for row in rows:
        plan = await plan_row(ctx, row.row_number, row.cells)
        if phase == PREVIEW:
            _preview(ctx, row, plan)
        else:
            await _import(ctx, viewer, row, plan)
        outcome = row.planned if phase == PREVIEW else row.outcome
        totals[str(outcome)] = totals.get(str(outcome), 0) + 1
        if row.digest and outcome not in (Outcome.reject.value, Outcome.skip.value):
            ctx.digests.setdefault(row.digest, row.row_number)
    if phase == PREVIEW:
        job.planned = totals
    else:
        job.counts = totals
    if rows:
        job.cursor = rows[-1].row_number
        job.rows_done += len(rows)
    memory = _memory.get(job.id)
    if memory is not None:
        memory.cursor = job.cursor
    return len(rows) == BATCH


def _keys(ctx: Context, plan: Plan) -> list[tuple[str, str]]:
    keys = list(plan.keys)
    if ctx.entity is ImportEntity.company and plan.outcome is Outcome.create and plan.fields.get("name"):
        keys.append(("name", plan.fields["name"]))
    keys += [("new_company", core_name(name)) for name in plan.new_companies.values()]
    return keys


def _preview(ctx: Context, row: ImportRow, plan: Plan) -> None:
    row.planned, row.planned_target_id, row.digest = plan.outcome.value, plan.target_id, plan.digest
    row.reason, row.column = _reason(plan), plan.column
    row.planned_keys = [list(k) for k in _keys(ctx, plan)] if plan.outcome is Outcome.create else []
    if plan.outcome is Outcome.create:
        _remember_plan(ctx, ctx.job, row.row_number, _keys(ctx, plan))
    else:
        _remember_plan(ctx, ctx.job, row.row_number, [k for k in _keys(ctx, plan) if k[0] == "new_company"])


def _reason(plan: Plan, filled: str | None = None) -> str | None:
    parts = [p for p in (plan.reason, f"Filled in: {filled}." if filled else None, *plan.notes) if p]
    return " ".join(parts)[:2000] or None


async def _import(ctx: Context, viewer: Viewer, row: ImportRow, plan: Plan) -> None:
    row.digest, row.column = plan.digest, plan.column
    if plan.outcome in (Outcome.reject, Outcome.skip):
        row.outcome, row.reason = plan.outcome.value, _reason(plan)
        return
    try:
        # The row whole or not at all: a refusal half-way rolls back what it had written.
        async with ctx.session.begin_nested():
            record_id, steps, filled = await applying.apply(ctx, viewer, plan)
    except RowError as exc:
        _forget_companies(ctx, plan)
        row.outcome, row.reason, row.column = Outcome.reject.value, exc.reason, exc.column
        return
    if ctx.entity is ImportEntity.company and plan.outcome is Outcome.create and record_id is not None:
        # Later rows of the file that spell this company another way merge into it.
        ctx.choices[Ref.company].add(record_id, plan.fields["name"])
    row.outcome, row.record_id, row.steps = plan.outcome.value, record_id, steps
    row.reason = _reason(plan, filled if plan.outcome is Outcome.merge else None)


def _forget_companies(ctx: Context, plan: Plan) -> None:
    """Companies a rejected row created were rolled back with it: the next row that names them creates them."""
    for name in plan.new_companies.values():
        company_id = ctx.new_company_ids.pop(core_name(name), None)
        if company_id is not None:
            ctx.choices[Ref.company].exact.get(fold(name).strip(), set()).discard(company_id)


async def _undo_batch(session: AsyncSession, viewer: Viewer, job: ImportJob) -> bool:
    """The last rows first, so a record is put back through its steps in the reverse order they were taken. A row
    whose record someone changed while the undo ran is left as it is, and says so."""
    rows = (
        await session.scalars(
            select(ImportRow)
            .where(
                col(ImportRow.job_id) == job.id,
                col(ImportRow.row_number) < job.cursor,
                col(ImportRow.outcome).in_(WRITTEN),
                col(ImportRow.undone_at).is_(None),
            )
            .order_by(col(ImportRow.row_number).desc())
            .limit(BATCH)
        )
    ).all()
    for row in rows:
        try:
            async with session.begin_nested():
                for taken in reversed(row.steps):
                    await applying.undo(session, viewer, taken)
        except applying.Changed:
            job.not_undone += 1
            row.reason = "Not undone: its record was changed while the import was being undone."
            continue
        row.undone_at = utcnow()
    job.rows_done += len(rows)
    if rows:
        job.cursor = rows[-1].row_number
    return len(rows) == BATCH
