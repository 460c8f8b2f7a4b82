"""Benchmark data on PostgreSQL: rows made in Python go in with COPY; the activities and their feed events are made
by PostgreSQL itself (`INSERT … SELECT` over `generate_series`, after `setseed`, in one session and without
parallel workers, so that the same seed gives the same rows). The bulk tables' keys, indexes and foreign keys are
dropped for the load and rebuilt after it (which checks every key at once); then VACUUM (ANALYZE)."""

import asyncio
import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from api.benchdata.rows import (
    BODIES,
    BULK_TABLES,
    BY_OWNER,
    COLUMNS,
    DELETED,
    KIND_WEIGHTS,
    KINDS,
    OUTCOMES,
    PLANNED,
    PLANNED_KINDS,
    PLANNED_WEIGHTS,
    SUBJECTS,
    Activities,
    Row,
    Target,
)

# The bulk tables that are complete once the rows made in Python are in (the background makes the others).
EARLY = ("company", "contact", "contact_point", "deal_stage_event", "share")
# Activities per INSERT … SELECT: a step of the progress bar.
STEP = 250_000


def dsn(url: str, database: str | None = None) -> str:
    """The libpq URL asyncpg takes for a SQLAlchemy one (on another database of the same server if named)."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def database_name(url: str) -> str:
    name = make_url(url).database
    if not name:
        raise ValueError(f"{make_url(url).render_as_string()} names no database")
    return name


# The server's own databases: never a place for benchmark data.
SYSTEM_DATABASES = ("postgres", "template0", "template1")


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class State:
    exists: bool
    organisations: int
    foreign: bool  # holds tables, but no Fieldbook organisation table
    meta: dict[str, Any] | None


async def state(url: str) -> State:
    """Whether the database exists, what it holds, and what the last load left in its comment."""
    name = database_name(url)
    server = await asyncpg.connect(dsn(url, "postgres"))
    try:
        row = await server.fetchrow(
            "SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1", name
        )
    finally:
        await server.close()
    if row is None:
        return State(exists=False, organisations=0, foreign=False, meta=None)
    conn = await asyncpg.connect(dsn(url))
    try:
        count = 0
        if await conn.fetchval("SELECT to_regclass('organization') IS NOT NULL"):
            count = await conn.fetchval("SELECT count(*) FROM organization")
            foreign = False
        else:
            foreign = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") > 0
    finally:
        await conn.close()
    return State(exists=True, organisations=count, foreign=foreign, meta=_meta(row["comment"]))


def _meta(comment: str | None) -> dict[str, Any] | None:
    try:
        meta = json.loads(comment) if comment else None
    except ValueError:
        return None
    return meta if isinstance(meta, dict) else None


async def create(url: str, *, drop: bool) -> None:
    name = _quoted(database_name(url))
    server = await asyncpg.connect(dsn(url, "postgres"))
    try:
        if drop:
            await server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await server.execute(f"CREATE DATABASE {name}")
    finally:
        await server.close()


@dataclass(frozen=True)
class Deferred:
    """What is dropped for the load and rebuilt after it: the bulk tables' primary keys and secondary indexes, and
    every foreign key on them or pointing at them (ALTER TABLE … ADD rebuilds and checks each in one pass)."""

    primary_keys: list[tuple[str, str, str]]  # (table, name, definition)
    indexes: list[tuple[str, str, str]]  # (table, name, CREATE INDEX statement)
    foreign_keys: list[tuple[str, str, str, str]]  # (table, name, definition, the table it refers to)

    @classmethod
    async def read(cls, conn: Any) -> "Deferred":
        constraints = await conn.fetch(
            """SELECT c.contype::text AS kind, c.conrelid::regclass::text AS tbl, c.conname,
                      pg_get_constraintdef(c.oid) AS def, c.confrelid::regclass::text AS refers
               FROM pg_constraint c
               WHERE (c.contype = 'p' AND c.conrelid::regclass::text = ANY($1::text[]))
                  OR (c.contype = 'f' AND (c.conrelid::regclass::text = ANY($1::text[])
                                           OR c.confrelid::regclass::text = ANY($1::text[])))
               ORDER BY 2, 3""",
            list(BULK_TABLES),
        )
        indexes = await conn.fetch(
            """SELECT i.tablename, i.indexname, i.indexdef FROM pg_indexes i
               WHERE i.schemaname = 'public' AND i.tablename = ANY($1::text[])
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
               ORDER BY 2""",
            list(BULK_TABLES),
        )
        return cls(
            primary_keys=[(r["tbl"], r["conname"], r["def"]) for r in constraints if r["kind"] == "p"],
            indexes=[(r["tablename"], r["indexname"], r["indexdef"]) for r in indexes],
            foreign_keys=[(r["tbl"], r["conname"], r["def"], r["refers"]) for r in constraints if r["kind"] == "f"],
        )

    def __len__(self) -> int:
        return len(self.primary_keys) + len(self.indexes) + len(self.foreign_keys)

    def split(self, complete: Sequence[str]) -> tuple["Deferred", "Deferred"]:
        """What can be rebuilt once the bulk tables in `complete` are (it names no other bulk table), and the rest."""

        def ready(*tables: str) -> bool:
            return all(t in complete or t not in BULK_TABLES for t in tables)

        return (
            Deferred(
                [k for k in self.primary_keys if ready(k[0])],
                [i for i in self.indexes if ready(i[0])],
                [f for f in self.foreign_keys if ready(f[0], f[3])],
            ),
            Deferred(
                [k for k in self.primary_keys if not ready(k[0])],
                [i for i in self.indexes if not ready(i[0])],
                [f for f in self.foreign_keys if not ready(f[0], f[3])],
            ),
        )

    async def drop(self, conn: Any) -> None:
        for table, name, *_ in self.foreign_keys:
            await conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        for table, name, _ in self.primary_keys:
            await conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        for _, name, _ in self.indexes:
            await conn.execute(f'DROP INDEX "{name}"')

    async def rebuild(self, conn: Any, step: Callable[[], object]) -> None:
        for table, name, definition in self.primary_keys:
            await conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
            step()
        for _, _, statement in self.indexes:
            await conn.execute(statement)
            step()
        for table, name, definition, _ in self.foreign_keys:
            await conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
            step()


def _uuid7(epoch: str, high: str, low: str) -> str:
    """SQL for a UUIDv7 whose time is `epoch` (seconds) and whose random bits are `high` (12 bits, after the
    version) and `low` (62 bits, after the variant): bigint expressions. Made of two bigints, not of text."""
    return (
        f"encode(int8send((floor({epoch} * 1000)::bigint << 16) | 28672 | ({high})) "
        f"|| int8send(({low}) | -9223372036854775808), 'hex')::uuid"
    )


def _pick(p: str, values: Sequence[str], weights: Sequence[int]) -> str:
    """SQL choosing among `values` with `weights` by `p`, a random() value."""
    total, edge, cases = sum(weights), 0, []
    for value, weight in zip(values[:-1], weights[:-1], strict=True):
        edge += weight
        cases.append(f"WHEN {p} < {edge / total} THEN '{value}'")
    return f"CASE {' '.join(cases)} ELSE '{values[-1]}' END"


# What Generator.activities makes in Python (the SQLite load uses it), made by PostgreSQL over the targets of
# `bench_target` whose `seq` lies in [$3, $4]: `n` activities each. Every random() is drawn in the innermost query
# (behind OFFSET 0, which keeps it from being merged into the others), row after row in the order of the targets,
# so that the same seed draws the same values for the same row. Times are epoch seconds until they are stored.
# Each done activity's feed event comes with it, its id made from the activity's (a hash of it, its own time).
# $1 organisation, $2 now (epoch seconds), $5 bodies, $6…$10 subjects of each kind (KINDS order), $11 call outcomes,
# $12 the sales people team after team, $13 where each team starts in it (0-based), $14 each team's size.
ACTIVITIES_SQL = f"""
WITH made AS (
INSERT INTO activity (id, org_id, created_at, updated_at, version, deleted_at, kind, subject, body, company_id,
    contact_id, deal_id, owner_id, assignee_id, due_at, done_at, duration_seconds, direction, outcome, mentioned_ids)
SELECT {_uuid7("w.created", "floor(w.u_high * 4096)::bigint", "floor(w.u_low * 4611686018427387904)::bigint")},
    $1, to_timestamp(w.created), to_timestamp(coalesce(w.deleted, w.created)),
    CASE WHEN w.deleted IS NULL THEN 1 ELSE 2 END, to_timestamp(w.deleted), w.kind,
    (CASE w.kind WHEN 'call' THEN $6::text[] WHEN 'email' THEN $7::text[] WHEN 'meeting' THEN $8::text[]
        WHEN 'note' THEN $9::text[] ELSE $10::text[] END)[1 + floor(w.p_subject * 4)::int],
    CASE WHEN w.p_body < 0.5 THEN ($5::text[])[1 + floor(w.p_body * 2 * cardinality($5::text[]))::int] END,
    w.company_id, w.contact_id, w.deal_id, w.owner_id, w.owner_id, to_timestamp(w.due), to_timestamp(w.done),
    CASE WHEN w.kind = 'call' AND w.done IS NOT NULL THEN 20 + floor(w.p_call * 1781)::int
        WHEN w.kind = 'meeting' THEN CASE WHEN w.p_call < 0.5 THEN 1800 ELSE 3600 END END,
    CASE WHEN w.kind = 'call' THEN CASE WHEN w.p_direction < 0.5 THEN 'inbound' ELSE 'outbound' END END,
    CASE WHEN w.kind = 'call' AND w.done IS NOT NULL THEN ($11::text[])[1 + floor(w.p_outcome * 4)::int] END,
    '[]'
FROM (
    SELECT c.*, CASE WHEN c.p_gone < {DELETED}
        THEN least($2::float8, c.created + (1 + 29 * c.p_gone_after) * 86400) END AS deleted
    FROM (
        SELECT d.*, CASE WHEN d.done IS NULL THEN $2::float8 - d.p_made * 20 * 86400
            WHEN d.due IS NOT NULL THEN d.due - d.p_made * 7 * 86400 ELSE d.done END AS created
        FROM (
            SELECT k.*, CASE WHEN k.done IS NULL THEN $2::float8 + (k.p_due * 44 - 14) * 86400
                WHEN k.kind IN ('task', 'meeting') THEN k.done - k.p_due * 3 * 86400 END AS due
            FROM (
                SELECT r.*,
                    CASE WHEN r.p_planned < {PLANNED} THEN {_pick("r.p_kind", PLANNED_KINDS, PLANNED_WEIGHTS)}
                        ELSE {_pick("r.p_kind", KINDS, KIND_WEIGHTS)} END AS kind,
                    CASE WHEN r.p_planned >= {PLANNED} THEN r.t0 + greatest(r.t1 - r.t0, 0) * r.p_at END AS done,
                    CASE WHEN r.p_mate < {BY_OWNER} THEN r.target_owner
                        ELSE ($12::uuid[])[($13::int[])[r.team] + 1 + floor(r.p_pick * ($14::int[])[r.team])::int]
                        END AS owner_id
                FROM (
                    SELECT t.deal_id, t.company_id, t.contact_id, t.owner_id AS target_owner, t.team, t.t0, t.t1,
                        random() AS p_mate, random() AS p_pick, random() AS p_planned, random() AS p_kind,
                        random() AS p_at, random() AS p_due, random() AS p_made, random() AS p_subject,
                        random() AS p_body, random() AS p_call, random() AS p_direction, random() AS p_outcome,
                        random() AS p_gone, random() AS p_gone_after, random() AS u_high, random() AS u_low
                    FROM bench_target t CROSS JOIN LATERAL generate_series(1, t.n)
                    WHERE t.seq BETWEEN $3 AND $4
                    OFFSET 0
                ) r
            ) k
        ) d
    ) c
) w
RETURNING id, org_id, owner_id, company_id, contact_id, deal_id, done_at
)
INSERT INTO feed_event (id, org_id, kind, at, actor_id, company_id, contact_id, deal_id, activity_id, user_id, data)
SELECT {_uuid7("date_part('epoch', m.done_at)", "(m.h >> 52) & 4095", "m.h & 4611686018427387903")},
    m.org_id, 'activity', m.done_at, m.owner_id, m.company_id, m.contact_id, m.deal_id, m.id, NULL, '{{}}'
FROM (SELECT made.*, uuid_hash_extended(made.id, 0) AS h FROM made WHERE made.done_at IS NOT NULL) m
"""

# Each deal's last done activity (epoch seconds): the deals go in after their activities, with it.
LAST_ACTIVITY_SQL = """SELECT deal_id, date_part('epoch', max(done_at)) FROM activity
WHERE org_id = $1 AND deal_id IS NOT NULL AND done_at IS NOT NULL AND deleted_at IS NULL GROUP BY deal_id"""
SESSION = (
    # maintenance_work_mem is left as the server has it: measured here, 1 GiB sorted the big indexes with more CPU
    # than the default 64 MiB, not less.
    "SET synchronous_commit = off; SET jit = off;"
    # random() must be drawn in one order: no parallel workers, no scan that starts where another one is.
    "SET max_parallel_workers_per_gather = 0; SET synchronize_seqscans = off"
)


class Writer:
    """Two sessions: one COPYs the rows made in Python while the other makes an organisation's activities (and then
    writes its deals), so that PostgreSQL works while Python generates the next organisation. COPYs are queued, not
    waited for: the next rows are generated while PostgreSQL stores the last ones."""

    def __init__(self, conn: Any, background: Any, seed: int, deferred: Deferred) -> None:
        self.conn = conn
        self.background = background
        self.seed = seed
        self.deferred = deferred
        self.rows: Counter[str] = Counter()
        self.timings: defaultdict[str, float] = defaultdict(float)
        self.pending: asyncio.Task[None] | None = None
        self.copying: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, seed: int) -> "Writer":
        conn = await asyncpg.connect(dsn(url))
        background = await asyncpg.connect(dsn(url))
        for session in (conn, background):
            await session.execute(SESSION)
        await background.execute(
            """CREATE TEMPORARY TABLE bench_target (seq int NOT NULL, deal_id uuid, company_id uuid, contact_id uuid,
               owner_id uuid NOT NULL, team int NOT NULL, t0 float8 NOT NULL, t1 float8 NOT NULL, n int NOT NULL)"""
        )
        deferred = await Deferred.read(conn)
        await deferred.drop(conn)
        return cls(conn, background, seed, deferred)

    async def close(self) -> None:
        """After a failure, what is still queued is dropped."""
        tasks = [task for task in (self.pending, self.copying) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.conn.close()
        await self.background.close()

    async def _copied(self) -> None:
        """Wait for the queued COPYs (the first session can do one thing at a time)."""
        if self.copying is not None:
            await self.copying

    async def reference(self, org_id: uuid.UUID) -> tuple[list[Any], list[Any]]:
        """The organisation's default pipeline stages (by position) and lost reasons, as the app made them."""
        await self._copied()
        stages = await self.conn.fetch(
            """SELECT s.id, s.pipeline_id, s.name, s.kind, s.position, s.rotten_days FROM stage s
               JOIN pipeline p ON p.id = s.pipeline_id AND p.is_default
               WHERE s.org_id = $1 ORDER BY s.position""",
            org_id,
        )
        reasons = await self.conn.fetch("SELECT id, name FROM lost_reason WHERE org_id = $1 ORDER BY position", org_id)
        return list(stages), list(reasons)

    async def write(self, table: str, rows: Sequence[Row]) -> None:
        """Queue a COPY of `rows` into `table`."""
        if rows:
            self.copying = asyncio.create_task(self._copy(self.copying, self.conn, table, rows))

    async def _copy(self, previous: "asyncio.Task[None] | None", conn: Any, table: str, rows: Sequence[Row]) -> None:
        if previous is not None:
            await previous
        started = time.perf_counter()
        await conn.copy_records_to_table(table, records=rows, columns=list(COLUMNS[table]))
        self.timings["write_s"] += time.perf_counter() - started
        self.rows[table] += len(rows)

    async def set_heads(self, heads: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
        await self._copied()
        await self.conn.executemany("UPDATE team SET head_id = $2 WHERE id = $1", heads)

    async def activities(self, job: Activities) -> None:
        """Start making the activities of `targets` and the feed events of the done ones, then the deals with their
        last activity, in the background (after the previous organisation's): `finish` waits for them."""
        previous = self.pending
        self.pending = asyncio.create_task(self._activities(previous, job))

    async def _activities(self, previous: "asyncio.Task[None] | None", job: Activities) -> None:
        if previous is not None:
            await previous
        gen, org, targets, deals, step = job.gen, job.org, job.targets, job.deals, job.step
        conn = self.background
        started = time.perf_counter()
        await conn.execute("TRUNCATE bench_target")
        teams: list[list[uuid.UUID]] = []
        team_no: dict[uuid.UUID, int] = {}
        for user in org.sales:
            if user not in team_no:
                teams.append(org.team_of[user])
                team_no.update({member: len(teams) for member in teams[-1]})
        records = [
            (
                i,
                t.deal["id"] if t.deal else None,
                t.company_id,
                t.contact_id,
                t.owner_id,
                team_no[t.owner_id],
                t.earliest,
                t.latest,
                t.n,
            )
            for i, t in enumerate(targets)
        ]
        await conn.copy_records_to_table("bench_target", records=records)
        members = [member for team in teams for member in team]
        starts = [sum(len(team) for team in teams[:i]) for i in range(len(teams))]
        sizes = [len(team) for team in teams]
        # Seeded afresh for each organisation: its draws do not depend on how many rows the others have.
        await conn.execute("SELECT setseed($1)", _unit(self.seed, org.id))
        subjects = [list(SUBJECTS[kind]) for kind in KINDS]
        for first, last, n in _steps(targets):
            status = await conn.execute(
                ACTIVITIES_SQL,
                org.id,
                gen.now,
                first,
                last,
                list(BODIES),
                *subjects,
                list(OUTCOMES),
                members,
                starts,
                sizes,
            )
            self.rows["activity"] += n
            self.rows["feed_event"] += int(status.split()[-1])
            step(n)
        at = time.perf_counter()
        self.timings["activities_s"] += at - started
        last_done = dict(await conn.fetch(LAST_ACTIVITY_SQL, org.id))
        for deal in deals:
            deal["last_activity_at"] = last_done.get(deal["id"])
        await self._copy(None, conn, "deal", gen.deal_rows(org, deals))
        self.timings["deals_s"] += time.perf_counter() - at

    async def finish(self, step: Callable[[int], object]) -> None:
        """Keys, indexes and foreign keys back (checking them all): first those of the tables that are complete while
        the activities are still being made; then the activities' and the feed's on the two sessions at once, the
        foreign keys last. The schema must be the migrated one again."""
        await self._copied()
        started = time.perf_counter()
        early, late = self.deferred.split(EARLY)
        await early.rebuild(self.conn, lambda: step(1))
        if self.pending is not None:
            waited = time.perf_counter()
            await self.pending
            self.timings["activities_wait_s"] += time.perf_counter() - waited
        feed, rest = Deferred(late.primary_keys, late.indexes, []).split(("feed_event",))
        await asyncio.gather(rest.rebuild(self.conn, lambda: step(1)), feed.rebuild(self.background, lambda: step(1)))
        await Deferred([], [], late.foreign_keys).rebuild(self.conn, lambda: step(1))
        if await Deferred.read(self.conn) != self.deferred:
            raise RuntimeError("the schema after the load differs from the migrated one")
        self.timings["index_s"] += time.perf_counter() - started - self.timings["activities_wait_s"]

    @property
    def deferred_steps(self) -> int:
        return len(self.deferred)

    async def analyze(self) -> None:
        """The two big tables side by side, then the rest (VACUUM passes over what it has just done quickly)."""
        await asyncio.gather(
            self.conn.execute("VACUUM (ANALYZE) activity"), self.background.execute("VACUUM (ANALYZE) feed_event")
        )
        await self.conn.execute("VACUUM (ANALYZE)")

    async def remember(self, url: str, meta: dict[str, Any]) -> None:
        """Keep the load's fingerprint and figures with the database, as its comment."""
        text = json.dumps(meta).replace("'", "''")
        await self.conn.execute(f"COMMENT ON DATABASE {_quoted(database_name(url))} IS '{text}'")


def _steps(targets: list[Target]) -> Iterator[tuple[int, int, int]]:
    """(first seq, last seq, activities) of runs of targets with about STEP activities each."""
    first, n = 0, 0
    for i, t in enumerate(targets):
        n += t.n
        if n >= STEP or i == len(targets) - 1:
            yield first, i, n
            first, n = i + 1, 0


def _unit(seed: int, org_id: uuid.UUID) -> float:
    """setseed's argument (in [-1, 1]) for a seed and an organisation."""
    return ((seed * 1_000_003 + org_id.int) % 2_000_001) / 1_000_000 - 1
