"""The hot read paths over HTTP: throughput and latency of the app next to a hand-written raw-asyncpg endpoint
serving the same SQL, both as real single-process servers, in one run.

    python -m bench.read_paths [--database fieldbook_bench] [--seconds 5] [--warmup 1] [--json numbers.json]

**Paths**, each as the reps of organisation "Bench Main" (`--org`; users looked up by SQL: active reps who own a
company, taken in turn from each team, up to `--users`), signed in through the served app's `/api/v1/auth/login`:
`card` (`GET /api/v1/clients/{id}/card` of a company the rep owns, `--cards` per rep), `deals` (`GET /api/v1/deals`,
the first page at the default limit), `board` (`GET /api/v1/deals/board`, the default pipeline; at most
`--board-users` reps: it is the slow one) and `feed` (`GET /api/v1/feed?scope=org` and `?scope=team`, first pages).

**App side.** `bench.servers.app`: `create_app` under uvicorn (uvloop, httptools, no access log), one worker, in a
child process, with production settings and rate limits nobody reaches (the limiter's statement still runs).

**Capture.** Before the load, in this process, the app is built the same way (`create_app(get_settings())` with its
lifespan and the same environment) and called through httpx's ASGITransport, four requests at a time. SQLAlchemy
listeners on the engines a request uses (the app's, and the rate limiter's own autocommit engine) record every
statement with its parameters as handed to asyncpg, per request (a context variable tells requests apart; the
webhook worker's polling is not recorded). First the first request of each path for five users (no cache of the app
changes which statements a request sends: they keep expression trees, not rows), then every URL the load will send,
once (which also leaves their rows in PostgreSQL's cache for both sides).

**Raw side.** `bench.raw` (its docstring says exactly what it does) under the same uvicorn options, one worker,
started once the capture is written: per request, the statements the app sent for that same (method, URL,
Authorization) on one pooled asyncpg connection, the request's in one transaction, answered as JSON.

**Load.** `bench.loader.closed_loop` (aiohttp, keep-alive) at 1, 10 and 50 connections: each connection sends its
next request when the previous answer is in; connection i cycles through the URLs of its own users (the users
dealt out over the connections, so 50 connections are 50 people when there are 50 users), in a shuffled order
that both sides get alike. Per path and concurrency, a cell on the app and the same cell on raw, back to back and
alternating which goes first (drift hits both alike), each `--warmup` seconds unmeasured then `--seconds`
measured (a cell whose requests are slower than that measures on until ten requests sent in it are answered, up to
`--max-seconds`). Before a path's cells, each user's first request of it goes once to both servers, unmeasured
(the app keeps per-viewer caches of its visibility filters: in steady state they are warm; the board's readers are
the deal list's, whose pass warms them). Any answer but a 2xx is an error, counted and reported. Both servers are
up for the whole run. The loader shares the two cores with both servers and PostgreSQL: its own cost per request is
the same for both sides, and lowers both throughputs.

**SQL alone and plans.** After the load, 6 captured requests per path are replayed one at a time on one connection
as bench.raw runs them, timed statement by statement (after six unmeasured runs of the first, as PostgreSQL settles
on a plan for a prepared statement after five): what the SQL costs without any concurrency. Statements that took
20 ms or more there run once more under EXPLAIN (ANALYZE, BUFFERS): which indexes, how many rows of the big tables
they read, how many buffers (a first run, so a custom plan: its planning time is shown apart).

The report goes between the markers of bench/RESULTS.md (the text around them is kept), the charts to
bench/charts/, and `--json` writes the key numbers.
"""

import argparse
import asyncio
import concurrent.futures
import contextvars
import itertools
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console

from bench import common, loader, raw, servers

console = Console(width=160)
RESULTS = Path(__file__).with_name("RESULTS.md")
CHARTS = Path(__file__).with_name("charts")
START, END = "<!-- results:start -->", "<!-- results:end -->"
# Tables big enough that a sequential scan of them on a hot path is a finding.
BIG_TABLES = frozenset({"company", "contact", "contact_point", "deal", "deal_stage_event", "activity", "feed_event"})
BIG_SCAN_ROWS = 10_000
JIT_APP, JIT_ON, JIT_OFF = "app", "on", "off"

PATHS = ("card", "deals", "board", "feed")
# The paths with a throughput target (issue 9): at least this share of the raw endpoint's requests/s.
TARGET_PATHS, TARGET_RATIO = ("card", "deals", "feed"), 0.8
CONCURRENCY = (1, 10, 50)
SIDES = ("app", "raw")
# A statement this slow in the replay gets an EXPLAIN (ANALYZE, BUFFERS); at most so many per path.
SLOW_STATEMENT_MS = 20.0
EXPLAIN_PER_PATH = 3
# Captured requests per path whose SQL is replayed alone, statement by statement.
REPLAY_PER_PATH = 6
# PostgreSQL plans a prepared statement afresh (a custom plan) for its first five runs, then may keep a generic one.
PLAN_SETTLES = 6
CAPTURE_CONCURRENCY = 4
CAPTURE_WARM_USERS = 5
# Tokens outlive the run (the default is 15 minutes); nothing else differs from production.
SERVED = {**servers.UNLIMITED, "FIELDBOOK_ACCESS_TOKEN_MINUTES": "120"}


# Shared with the other benchmarks (bench.sync, bench.insights, bench.goals_write, bench.webhooks import these)


@dataclass
class Scan:
    """A plan node that reads many rows of a big table (a sequential scan, or an index used as one)."""

    node: str
    table: str
    index: str | None
    rows: int

    def __str__(self) -> str:
        how = f"{self.node} using {self.index}" if self.index else self.node
        return f"{how} on `{self.table}` ({self.rows:,} rows read)"


@dataclass
class Explained:
    statement: str
    planning_ms: float
    execution_ms: float
    jit_ms: float
    indexes: list[str]
    scans: list[Scan]
    text: str = ""
    rows: int = 0  # what the statement returned
    hit: int = 0  # shared buffers found in memory, the whole plan
    read: int = 0  # shared buffers read in

    @property
    def ms(self) -> float:
        return self.planning_ms + self.execution_ms


def percentile(values: list[float], p: int) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def _configure_app(database: str) -> None:
    # Before anything reads the settings (get_settings is cached): the JWT secret, the cursor signing key and the
    # URL must be the same ones the app is built with.
    os.environ["FIELDBOOK_ENV"] = "production"
    os.environ["FIELDBOOK_SECRET_KEY"] = common.SECRET_KEY
    os.environ["FIELDBOOK_DATABASE_URL"] = common.sqlalchemy_url(database)
    # Sign in once for a run that may take an hour.
    os.environ["FIELDBOOK_ACCESS_TOKEN_MINUTES"] = str(24 * 60)
    # No webhook worker in a process that captures the statements a request sends: its polls would land among them.
    os.environ["FIELDBOOK_WEBHOOK_WORKER"] = "false"


class Capture:
    """Every statement the app's engine sends to PostgreSQL while `on` is set."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []

    def listener(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        self.statements.append((statement, parameters))

    def take(self) -> list[tuple[str, Any]]:
        taken, self.statements = self.statements, []
        return taken


class Jit:
    """PostgreSQL's JIT for the app's and the baseline's sessions: as the app sets it (`app`: the baseline then
    copies the app's value), or forced `on` or `off` on both (a SET on each new connection of the app's engine)."""

    def __init__(self) -> None:
        self.forced: str | None = None

    def on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        if self.forced is not None:
            setting = f"SET jit = {self.forced}"
            dbapi_connection.run_async(lambda connection: connection.execute(setting))

    async def apply(self, variant: str, engine: Any, base: asyncpg.Connection) -> str:
        """Switch to `variant`; the label of what both sides now run with."""
        self.forced = None if variant == JIT_APP else variant
        await engine.dispose()  # pooled connections keep their settings: start new ones
        async with engine.connect() as connection:
            value = str((await connection.exec_driver_sql("SHOW jit")).scalar_one())
        await base.execute(f"SET jit = {value}")
        return f"jit={value} ({'as the app sets it' if self.forced is None else 'forced'})"


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _walk(child)


def _scans(nodes: list[dict[str, Any]]) -> list[Scan]:
    found = []
    for n in nodes:
        table = n.get("Relation Name")
        if table not in BIG_TABLES or "Scan" not in n["Node Type"]:
            continue
        rows = int((n["Actual Rows"] + n.get("Rows Removed by Filter", 0)) * n["Actual Loops"])
        if rows >= BIG_SCAN_ROWS:
            found.append(Scan(n["Node Type"], table, n.get("Index Name"), rows))
    return found


async def explain(conn: asyncpg.Connection, statement: str, parameters: Any) -> Explained:
    raw_plan = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}", *(parameters or ()))
    plan = json.loads(raw_plan)[0]
    nodes = list(_walk(plan["Plan"]))
    return Explained(
        statement,
        planning_ms=plan["Planning Time"],
        execution_ms=plan["Execution Time"],
        jit_ms=float(plan.get("JIT", {}).get("Timing", {}).get("Total", 0.0)),
        indexes=sorted({n["Index Name"] for n in nodes if "Index Name" in n}),
        scans=_scans(nodes),
        rows=int(plan["Plan"].get("Actual Rows", 0)),
        hit=int(plan["Plan"].get("Shared Hit Blocks", 0)),
        read=int(plan["Plan"].get("Shared Read Blocks", 0)),
    )


async def explain_text(conn: asyncpg.Connection, statement: str, parameters: Any) -> str:
    rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", *(parameters or ()))
    return "\n".join(r[0] for r in rows)


def _table(statement: str) -> str:
    """The first table a statement reads FROM."""
    words = statement.replace("\n", " ").split()
    tables = (
        words[i + 1] for i, w in enumerate(words[:-1]) if w.upper() == "FROM" and not words[i + 1].startswith("(")
    )
    return next(tables, "?").strip('"()')


def _short(statement: str) -> str:
    words = statement.split(maxsplit=3)
    verb = words[0].upper()
    if verb in ("INSERT", "DELETE") and len(words) > 2:
        return f"{verb} {words[1].upper()} {words[2]}"
    if verb == "UPDATE" and len(words) > 1:
        return f"UPDATE {words[1]}"
    return f"{words[0]} … FROM {_table(statement)}"


def _scans_md(scans: list[Scan]) -> str:
    """The scans of a plan, the same ones counted (a visibility subquery is often planned several times)."""
    counted = Counter(str(scan) for scan in scans)
    return "; ".join(f"{text} x{n}" if n > 1 else text for text, n in counted.items()) or "-"


async def machine_facts(conn: asyncpg.Connection) -> dict[str, Any]:
    """The machine, PostgreSQL's version and key settings, the database's size, the time."""
    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")), "")
    mem_kb = next((int(line.split()[1]) for line in _lines("/proc/meminfo") if line.startswith("MemTotal")), 0)
    names = ("shared_buffers", "work_mem", "effective_cache_size", "random_page_cost", "jit", "jit_above_cost")
    settings = {name: await conn.fetchval("SELECT current_setting($1)", name) for name in names}
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "postgres": await conn.fetchval("SHOW server_version"),
        "pg_settings": settings,
        "database_bytes": await conn.fetchval("SELECT pg_database_size(current_database())"),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


async def _facts(conn: asyncpg.Connection, database: str) -> dict[str, Any]:
    """`machine_facts`, with the rows and size of the bulk tables and what `fieldbook bench-data` recorded."""
    facts = await machine_facts(conn)
    sizes = []
    for table in ("company", "contact", "contact_point", "deal", "deal_stage_event", "activity", "feed_event", "share"):
        count = await conn.fetchval(f"SELECT count(*) FROM {table}")
        size = await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", table)
        sizes.append((table, count, size))
    comment = await conn.fetchval(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", database
    )
    try:
        load = json.loads(comment) if comment else None
    except ValueError:
        load = None
    return {**facts, "sizes": sizes, "load": load}


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _avg(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


# Who signs in, what they read (shared with bench.curve)


@dataclass
class User:
    id: uuid.UUID
    email: str
    team_id: uuid.UUID | None
    headers: dict[str, str] = field(default_factory=dict)
    companies: list[uuid.UUID] = field(default_factory=list)


async def org_id(conn: asyncpg.Connection, name: str) -> uuid.UUID:
    found: uuid.UUID | None = await conn.fetchval("SELECT id FROM organization WHERE name = $1", name)
    if found is None:
        raise SystemExit(f'No organisation "{name}" in the database: load the benchmark data first.')
    return found


async def reps(conn: asyncpg.Connection, org: uuid.UUID, count: int, companies: int, seed: int) -> list[User]:
    """Up to `count` active reps of `org` who own a company, taken in turn from each team (so a handful of them come
    from every team), each with `companies` of their own companies (sampled, not deleted)."""
    rows = await conn.fetch(
        """SELECT u.id, u.email, u.team_id FROM "user" u
           WHERE u.org_id = $1 AND u.role = 'rep' AND u.is_active
             AND EXISTS (SELECT 1 FROM company c WHERE c.org_id = u.org_id AND c.owner_id = u.id
                         AND c.deleted_at IS NULL)
           ORDER BY u.email""",
        org,
    )
    rng = random.Random(seed)
    teams: dict[Any, list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        teams[row["team_id"]].append(row)
    for members in teams.values():
        rng.shuffle(members)
    dealt = [r for turn in itertools.zip_longest(*teams.values()) for r in turn if r is not None][:count]
    users = [User(r["id"], r["email"], r["team_id"]) for r in dealt]
    owned: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for row in await conn.fetch(
        """SELECT owner_id, id FROM company WHERE org_id = $1 AND owner_id = ANY($2::uuid[]) AND deleted_at IS NULL
           ORDER BY id""",
        org,
        [u.id for u in users],
    ):
        owned[row["owner_id"]].append(row["id"])
    for user in users:
        user.companies = rng.sample(owned[user.id], min(companies, len(owned[user.id])))
    return users


async def sign_in(base: str, users: list[User]) -> None:
    headers = await loader.sign_in(base, [u.email for u in users], common.PASSWORD)
    for user in users:
        user.headers = headers[user.email]


def card_url(company: uuid.UUID) -> str:
    return f"/api/v1/clients/{company}/card"


DEALS_URL, BOARD_URL = "/api/v1/deals", "/api/v1/deals/board"
FEED_URLS = ("/api/v1/feed?scope=org", "/api/v1/feed?scope=team")


def requests_of(users: list[User], path: str) -> list[list[loader.Request]]:
    """Per user, the requests of `path`."""

    def mine(user: User) -> list[str]:
        return {
            "card": [card_url(c) for c in user.companies],
            "deals": [DEALS_URL],
            "board": [BOARD_URL],
            "feed": list(FEED_URLS),
        }[path]

    return [[loader.Request("GET", url, user.headers, label=path) for url in mine(user)] for user in users]


def dealer(per_user: list[list[loader.Request]], concurrency: int, seed: int) -> Callable[[int], loader.Request]:
    """`next_request` for the loader: connection i cycles through the requests of its own users (users dealt out
    over the connections; with more connections than users, users repeat), in a seeded shuffled order."""
    count = len(per_user)
    cycles = []
    for i in range(concurrency):
        owned = (
            [r for u in range(i, count, concurrency) for r in per_user[u]]
            if concurrency <= count
            else list(per_user[i % count])
        )
        random.Random(seed * 1_000 + i).shuffle(owned)
        cycles.append(itertools.cycle(owned))
    return lambda i: next(cycles[i])


# The capture: every statement the app sends per request


CURRENT: contextvars.ContextVar[list[raw.Statement] | None] = contextvars.ContextVar("bench_capture", default=None)


def record(engine: Any, *, autocommit: bool) -> None:
    """Record each statement `engine` sends into the list of the request being served (CURRENT). On the rate
    limiter's engine (autocommit) the parameters named `now` are marked, for the raw side to refresh."""
    from sqlalchemy import event

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, context: Any, _many: bool) -> None:
        taken = CURRENT.get()
        if taken is None:
            return
        names = context.compiled.positiontup if context is not None and context.compiled is not None else None
        now_at = tuple(i for i, name in enumerate(names or ()) if name == "now") if autocommit else ()
        taken.append(raw.Statement(statement, tuple(parameters or ()), autocommit, now_at))

    event.listen(engine.sync_engine, "before_cursor_execute", before)


@dataclass
class Captures:
    """What the capture found: the raw side's file contents, and per path each request's statements."""

    statements: raw.Capture = field(default_factory=dict)
    by_path: dict[str, list[list[raw.Statement]]] = field(default_factory=lambda: defaultdict(list))


def build_app() -> Any:
    """The app in-process, as the server builds it (call `configure` first: get_settings() reads the environment)."""
    from api.main import create_app
    from api.settings import get_settings

    return create_app(get_settings())


async def capture(app: Any, requests: dict[str, list[list[loader.Request]]]) -> Captures:
    """Run the app built by `build_app` (its lifespan too), warm it, then send every request once and keep what each
    sent to PostgreSQL. No cache of the app changes which statements a request sends (they keep expression trees,
    not rows: checked by capturing the same URLs twice), so the warm-up is short: the first request of each path for
    a few users."""
    import httpx

    found = Captures()
    async with app.router.lifespan_context(app):
        record(app.state.db.engine, autocommit=False)
        # The limiter's own pool (PostgreSQL): its upsert is part of every request (api/core/ratelimit.py).
        limiter_engine = getattr(app.state.rate_limiter, "_engine", None)
        if limiter_engine is not None:
            record(limiter_engine, autocommit=True)
        gate = asyncio.Semaphore(CAPTURE_CONCURRENCY)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:

            async def one(request: loader.Request) -> list[raw.Statement]:
                async with gate:
                    CURRENT.set([])  # this task's own list (gather runs each in a task with a copy of the context)
                    response = await client.get(request.path, headers=request.headers)
                    if response.status_code != 200:
                        raise RuntimeError(f"capture: GET {request.path}: {response.status_code} {response.text[:300]}")
                    return CURRENT.get() or []

            firsts = [user[0] for per_user in requests.values() for user in per_user[:CAPTURE_WARM_USERS] if user]
            await asyncio.gather(*(one(r) for r in firsts))
            everything = [r for per_user in requests.values() for user in per_user for r in user]
            results = await asyncio.gather(*(one(r) for r in everything))
    for request, statements in zip(everything, results, strict=True):
        found.statements[raw.key(request.method, request.path, request.headers.get("Authorization", ""))] = statements
        found.by_path[request.label].append(statements)
    return found


# What the SQL alone costs: a sample of the captured requests replayed one at a time, each statement timed


@dataclass
class Timed:
    statement: raw.Statement
    ms: float


async def replay(conn: asyncpg.Connection, found: Captures, per_path: int) -> dict[str, list[list[Timed]]]:
    """Up to `per_path` captured requests of each path (spread over the capture), run as `bench.raw` runs them, on one
    connection, timed statement by statement. Before, unmeasured, the first of them as often as PostgreSQL runs a
    prepared statement before it settles on a generic or a custom plan (the requests of a path send the same texts
    with other parameters): the servers' connections are in that steady state, and the first runs can cost tens of
    milliseconds of planning more (the card's largest statement plans in 30-40 ms)."""
    out: dict[str, list[list[Timed]]] = {}
    for path, requests in found.by_path.items():
        step = max(1, len(requests) // per_path)
        sample = requests[::step][:per_path]
        for _ in range(PLAN_SETTLES):
            await raw.run(conn, sample[0])
        timed_requests = []
        for statements in sample:
            timed: list[Timed] = []
            now = time.time()
            for s in (s for s in statements if s.autocommit):
                timed.append(await _timed(conn, s, now))
            async with conn.transaction():
                for s in (s for s in statements if not s.autocommit):
                    timed.append(await _timed(conn, s, now))
            timed_requests.append(timed)
        out[path] = timed_requests
    return out


async def _timed(conn: asyncpg.Connection, statement: raw.Statement, now: float) -> Timed:
    started = time.perf_counter()
    await conn.fetch(statement.sql, *raw.parameters(statement, now))
    return Timed(statement, (time.perf_counter() - started) * 1000)


def configure(database: str) -> dict[str, str]:
    """This process's environment for the in-process app: the one the served app gets (get_settings() reads it)."""
    env = servers.app_env(common.sqlalchemy_url(database), SERVED)
    os.environ.update(env)
    return env


# The load


@dataclass
class Cell:
    path: str
    concurrency: int
    side: str
    run: loader.Run

    @property
    def latencies(self) -> list[float]:
        return self.run.latencies_ms()

    def numbers(self) -> dict[str, Any]:
        s = loader.summary(self.latencies)
        sizes = [x.size for x in self.run.samples if 200 <= x.status < 300]
        return {
            "path": self.path,
            "concurrency": self.concurrency,
            "side": self.side,
            "n": len(self.run.samples),
            "p50": round(s["p50"], 2),
            "p95": round(s["p95"], 2),
            "p99": round(s["p99"], 2),
            "rps": round(self.run.requests_per_second, 1),
            "errors": len(self.run.errors),
            "statuses": {str(k): v for k, v in sorted(self.run.statuses().items())},
            "bytes": round(statistics.fmean(sizes)) if sizes else 0,
        }


async def warm(base: str, requests: list[loader.Request], concurrency: int = 10) -> int:
    """Send each request once (unmeasured); the number of non-2xx answers."""
    gate = asyncio.Semaphore(concurrency)
    async with loader.session(concurrency) as http:

        async def one(request: loader.Request) -> int:
            async with gate:
                return (await loader.send(http, base, request, time.perf_counter())).status

        statuses = await asyncio.gather(*(one(r) for r in requests))
    return sum(1 for status in statuses if not 200 <= status < 300)


async def load(
    bases: dict[str, str], requests: dict[str, list[list[loader.Request]]], args: argparse.Namespace
) -> list[Cell]:
    cells = []
    order = 0
    for path in args.paths:
        if path != "board":  # the board's readers are the deal list's: their visibility trees are warm by then
            firsts = [user[0] for user in requests[path] if user]
            errors = {side: await warm(base, firsts) for side, base in bases.items()}
            if any(errors.values()):
                console.log(f"{path}: non-2xx answers while warming: {errors}")
        for concurrency in args.concurrency:
            sides = SIDES if order % 2 == 0 else SIDES[::-1]
            order += 1
            for side in sides:
                run = await loader.closed_loop(
                    bases[side],
                    dealer(requests[path], concurrency, args.seed),
                    concurrency=concurrency,
                    seconds=args.seconds,
                    warmup=args.warmup,
                    # A slow path at 50 connections may answer its first requests after the window: wait for some.
                    min_samples=min(concurrency, 10),
                    max_seconds=args.max_seconds,
                )
                cell = Cell(path, concurrency, side, run)
                cells.append(cell)
                n = cell.numbers()
                console.log(
                    f"{path:<6} c={concurrency:<3} {side}: {n['rps']:8.1f} req/s, p50 {n['p50']:7.1f} ms, "
                    f"p95 {n['p95']:7.1f} ms, errors {n['errors']}"
                )
    return cells


# Plans of the slow statements


@dataclass
class Slow:
    path: str
    statement: raw.Statement
    seen: int  # replayed requests in which this text took over the threshold
    ms: float  # the slowest of them
    plan: Explained | None = None


async def slow_statements(conn: asyncpg.Connection, timings: dict[str, list[list[Timed]]]) -> list[Slow]:
    out = []
    for path, requests in timings.items():
        by_text: dict[str, list[Timed]] = defaultdict(list)
        for statements in requests:
            for t in statements:
                if t.ms >= SLOW_STATEMENT_MS:
                    by_text[t.statement.sql].append(t)
        ranked = sorted(by_text.values(), key=lambda ts: -max(t.ms for t in ts))[:EXPLAIN_PER_PATH]
        for ts in ranked:
            worst = max(ts, key=lambda t: t.ms)
            slow = Slow(path, worst.statement, len(ts), worst.ms)
            if worst.statement.sql.lstrip().upper().startswith(("SELECT", "WITH")) and not worst.statement.autocommit:
                slow.plan = await explain(conn, worst.statement.sql, worst.statement.parameters)
            out.append(slow)
    return out


# The run


class Phases:
    """Wall time of each part of the run, for the report (the run has a time budget)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.last, self.last_cpu = time.perf_counter(), time.process_time()

    def done(self, name: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.seconds[name] = now - self.last
        console.log(f"{name}: {self.seconds[name]:.1f} s (this process's CPU: {cpu - self.last_cpu:.1f} s)")
        self.last, self.last_cpu = now, cpu


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    phases = Phases()
    env = configure(args.database)
    # As bench.raw's connections (and so the app's: api/core/db.py).
    conn = await asyncpg.connect(common.dsn(args.database), **raw.CONNECTION)
    load_before = os.getloadavg()
    org = await org_id(conn, args.org)
    users = await reps(conn, org, args.users, args.cards, args.seed)
    if not users:
        raise SystemExit(f'"{args.org}" has no rep who owns a company.')
    data = await org_data(conn, org)
    phases.done("fixtures")
    # Built while the server starts (importing the app and building its routes takes seconds).
    prebuilt = concurrent.futures.ThreadPoolExecutor(1).submit(build_app)
    with servers.app(env["FIELDBOOK_DATABASE_URL"], workers=1, extra=SERVED) as app_base:
        phases.done("app server start")
        await sign_in(app_base, users)
        phases.done(f"sign-in of {len(users)} reps")
        requests = {p: requests_of(users[: args.board_users] if p == "board" else users, p) for p in args.paths}
        found = await capture(prebuilt.result(), requests)
        phases.done(f"capture of {len(found.statements)} requests")
        with tempfile.TemporaryDirectory(prefix="bench-raw-") as tmp:
            capture_file = Path(tmp) / "capture.pickle"
            raw.write_capture(capture_file, found.statements)
            raw_env = {raw.CAPTURE_ENV: str(capture_file), raw.DSN_ENV: common.dsn(args.database)}
            with servers.uvicorn("bench.raw:app", env=raw_env, workers=1) as raw_base:
                phases.done("raw server start")
                cells = await load({"app": app_base, "raw": raw_base}, requests, args)
                phases.done("load")
    profile = None
    if args.profile is not None:
        profile = await profile_app(env["FIELDBOOK_DATABASE_URL"], requests, args)
        phases.done("profile")
    timings = await replay(conn, found, REPLAY_PER_PATH)
    slow = await slow_statements(conn, timings)
    phases.done("replay and EXPLAIN")
    facts = await machine_facts(conn)
    await conn.close()
    phases.done("facts")
    facts["load_before"], facts["load_after"] = load_before, os.getloadavg()
    return {
        "cells": cells,
        "found": found,
        "timings": timings,
        "slow": slow,
        "facts": facts,
        "users": users,
        "data": data,
        "org": args.org,
        "phases": phases.seconds,
        "profile": profile,
    }


@dataclass
class Profile:
    path: str
    concurrency: int
    run: loader.Run
    tree: str
    flat: str


async def profile_app(url: str, requests: dict[str, list[list[loader.Request]]], args: argparse.Namespace) -> Profile:
    """One more app cell (`--profile path:connections`) on a fresh app server under pyinstrument: each user's first
    request, the warm-up, then `--seconds` profiled. The sessions signed in on the first server are valid here."""
    path, concurrency = args.profile
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        out = Path(tmp) / "profile.txt"
        with servers.app(url, workers=1, extra=SERVED, profile=out) as base:
            await warm(base, [user[0] for user in requests[path] if user])
            next_request = dealer(requests[path], concurrency, args.seed)
            await loader.closed_loop(base, next_request, concurrency=concurrency, seconds=args.warmup, warmup=0)
            servers.start_profile(base)
            run = await loader.closed_loop(base, next_request, concurrency=concurrency, seconds=args.seconds, warmup=0)
            servers.stop_profile(base)
        return Profile(path, concurrency, run, out.read_text(), out.with_suffix(".flat").read_text())


async def org_data(conn: asyncpg.Connection, org: uuid.UUID) -> dict[str, int]:
    """What the organisation holds (its reps, companies, deals, activities)."""
    out = {}
    for label, sql in (
        ("reps", """SELECT count(*) FROM "user" WHERE org_id = $1 AND role = 'rep'"""),
        ("teams", "SELECT count(*) FROM team WHERE org_id = $1"),
        ("companies", "SELECT count(*) FROM company WHERE org_id = $1"),
        ("deals", "SELECT count(*) FROM deal WHERE org_id = $1"),
        ("activities", "SELECT count(*) FROM activity WHERE org_id = $1"),
        ("feed events", "SELECT count(*) FROM feed_event WHERE org_id = $1"),
    ):
        out[label] = int(await conn.fetchval(sql, org))
    return out


# Reporting


def _cell(cells: list[Cell], path: str, concurrency: int, side: str) -> dict[str, Any] | None:
    return next((c.numbers() for c in cells if (c.path, c.concurrency, c.side) == (path, concurrency, side)), None)


def ratios(cells: list[Cell]) -> list[dict[str, Any]]:
    out = []
    for path, concurrency in dict.fromkeys((c.path, c.concurrency) for c in cells):
        a, b = _cell(cells, path, concurrency, "app"), _cell(cells, path, concurrency, "raw")
        if a is None or b is None:
            continue
        out.append(
            {
                "path": path,
                "concurrency": concurrency,
                "rps_ratio": round(a["rps"] / b["rps"], 3) if b["rps"] else None,
                "p95_ratio": round(a["p95"] / b["p95"], 3) if b["p95"] else None,
                "target": TARGET_RATIO if path in TARGET_PATHS else None,
            }
        )
    return out


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _spread(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low} to {high}"


def throughput_table(cells: list[Cell]) -> list[str]:
    head = ["path", "conns", "app req/s", "raw req/s", "app/raw req/s", "app p50", "app p95", "app p99"]
    head += ["raw p50", "raw p95", "raw p99", "app/raw p95", "errors app / raw", "KiB app / raw"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in ratios(cells):
        a = _cell(cells, r["path"], r["concurrency"], "app")
        b = _cell(cells, r["path"], r["concurrency"], "raw")
        assert a is not None and b is not None
        mark = ""
        if r["target"] is not None and r["rps_ratio"] is not None:
            mark = " ✓" if r["rps_ratio"] >= r["target"] else " ✗"
        row = [
            r["path"],
            str(r["concurrency"]),
            f"{a['rps']:,.0f}",
            f"{b['rps']:,.0f}",
            f"{r['rps_ratio']:.2f}{mark}" if r["rps_ratio"] is not None else "-",
            *(_ms(a[k]) for k in ("p50", "p95", "p99")),
            *(_ms(b[k]) for k in ("p50", "p95", "p99")),
            f"{r['p95_ratio']:.2f}" if r["p95_ratio"] is not None else "-",
            f"{a['errors']} / {b['errors']}",
            f"{a['bytes'] / 1024:.1f} / {b['bytes'] / 1024:.1f}",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def request_table(result: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """Per path: what a request sends, what its SQL costs alone, and the latency at one connection on each side."""
    found, timings, cells = result["found"], result["timings"], result["cells"]
    lines = [
        "| path | URLs | users | statements per request | SQL alone, p50 | app p50, 1 conn | raw p50, 1 conn | "
        "app p50 minus SQL |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for path in args.paths:
        requests = found.by_path[path]
        sql = percentile([sum(t.ms for t in r) for r in timings[path]], 50)
        app, base = _cell(cells, path, 1, "app"), _cell(cells, path, 1, "raw")
        n_users = min(len(result["users"]), args.board_users) if path == "board" else len(result["users"])
        row = [path, str(len(requests)), str(n_users), _spread([len(r) for r in requests]), f"{_ms(sql)} ms"]
        row += [f"{_ms(c['p50'])} ms" if c else "-" for c in (app, base)]
        row.append(f"{_ms(app['p50'] - sql)} ms" if app else "-")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def slow_table(slow: list[Slow]) -> list[str]:
    if not slow:
        return [f"No statement took {SLOW_STATEMENT_MS:.0f} ms or more in the replay."]
    lines = [
        "| path | statement | replayed requests where ≥20 ms | slowest | EXPLAIN ANALYZE plan + exec | rows out | "
        "indexes | big scans (≥10k rows read) | buffers hit / read |",
        "|---|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for s in slow:
        p = s.plan
        plan = (
            [
                f"{p.planning_ms:.1f} + {p.execution_ms:,.1f} ms",
                f"{p.rows:,}",
                ", ".join(f"`{i}`" for i in p.indexes) or "-",
                _scans_md(p.scans),
                f"{p.hit:,} / {p.read:,}",
            ]
            if p is not None
            else ["-"] * 5
        )
        what = _short(s.statement.sql) + (" (rate limiter)" if s.statement.autocommit else "")
        lines.append(f"| {s.path} | {what} | {s.seen} | {_ms(s.ms)} ms | " + " | ".join(plan) + " |")
    return lines


def machine_lines(facts: dict[str, Any]) -> list[str]:
    pg = ", ".join(f"{k} {v}" for k, v in facts["pg_settings"].items())
    return [
        f"- {facts['cores']} cores ({facts['cpu']}), {facts['memory_gib']} GiB, Python {facts['python']}",
        f"- PostgreSQL {facts['postgres']} ({pg})",
        f"- load average (1/5/15 min): {_avg(facts['load_before'])} before the run, {_avg(facts['load_after'])} after",
    ]


def data_line(facts: dict[str, Any], org: str, data: dict[str, int]) -> str:
    held = ", ".join(f"{v:,} {k}" for k, v in data.items())
    return f'- database `{facts["database"]}`, {facts["database_bytes"] / 1024**3:.2f} GiB; "{org}": {held}'


def charts(cells: list[Cell], directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    paths = list(dict.fromkeys(c.path for c in cells))
    levels = list(dict.fromkeys(c.concurrency for c in cells))
    out = []
    for metric, label, name, log in (
        ("rps", "requests/s", "read_paths_rps.png", False),
        ("p95", "p95 latency (ms, log scale)", "read_paths_p95.png", True),
    ):
        fig, axes = plt.subplots(1, len(paths), figsize=(3.2 * len(paths), 3.4), squeeze=False)
        for ax, path in zip(axes[0], paths, strict=True):
            width = 0.38
            for offset, side, color in ((-width / 2, "app", "#d9622b"), (width / 2, "raw", "#4a7ab5")):
                values = [(_cell(cells, path, c, side) or {}).get(metric, 0.0) for c in levels]
                bars = ax.bar([i + offset for i in range(len(levels))], values, width, label=side, color=color)
                ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=7, padding=1)
            ax.set_xticks(range(len(levels)), [f"{c} conn" for c in levels])
            ax.set_title(path)
            if log:
                ax.set_yscale("log")
            ax.margins(y=0.15)
        axes[0][0].set_ylabel(label)
        axes[0][0].legend(fontsize=8)
        fig.suptitle(f"Read paths, app vs raw asyncpg: {label}", fontsize=10)
        fig.tight_layout()
        target = directory / name
        fig.savefig(target, dpi=110)
        plt.close(fig)
        out.append(target)
    return out


INTRO = """How the four hot reads of the field app hold up over HTTP at 1, 10 and 50 connections, next to a hand-written
endpoint (raw asyncpg, no framework) that runs the same SQL for the same requests, both served by uvicorn with one
worker in the same run (`bench/read_paths.py`; its docstring and `bench/raw.py`'s say exactly what each side does).

```sh
.venv/bin/python -m bench.read_paths                     # ~3.5 min on the large data set
.venv/bin/python -m bench.read_paths --seconds 2 --warmup 0.5 --concurrency 1,10 --no-write
```"""


def markdown(result: dict[str, Any], args: argparse.Namespace, command: str, wall: float) -> str:
    cells, facts = result["cells"], result["facts"]
    phases = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in result["phases"].items())
    links = [os.path.relpath(p, args.results.parent) for p in result["charts"]]
    out = [
        START,
        f"_Generated by `{command}` at {facts['at']} in {wall:.0f} s; the text between the markers is rewritten on "
        "each run._",
        "",
        "### Machine and data",
        "",
        *machine_lines(facts),
        data_line(facts, result["org"], result["data"]),
        f"- per cell: {args.warmup:g} s of warm-up then {args.seconds:g} s measured, closed loop (each connection "
        "sends its next request when the previous answer is in); app and raw cells alternate; a slow cell measures "
        f"on until ten requests sent in it are answered (at most {args.max_seconds:g} s)",
        f"- wall time: {phases}",
        "",
        "### Throughput and latency (ms)",
        "",
        f"`app/raw req/s`: the app's throughput as a share of raw's; ✓/✗ against the target of {TARGET_RATIO}x "
        "(card, deals, feed; the board has no target). `KiB`: mean response body (raw answers the rows it read, "
        "as JSON, not the app's shape).",
        "",
        *throughput_table(cells),
        "",
        f"![requests/s, app vs raw]({links[0]})",
        "",
        f"![p95 latency, app vs raw]({links[1]})",
        "",
        "### Per request",
        "",
        f"`SQL alone`: {REPLAY_PER_PATH} captured requests per path replayed one at a time on one connection, as "
        "bench.raw runs them (after six unmeasured runs of the first: prepared, plans settled), the time of their "
        "statements summed. "
        "`app p50 minus SQL`: roughly what the app spends outside PostgreSQL per request (Python, and its extra "
        "round trips).",
        "",
        *request_table(result, args),
        "",
        f"### Statements over {SLOW_STATEMENT_MS:.0f} ms",
        "",
        "Of the replay above, the slowest instance of each (at most three per path), run again under EXPLAIN "
        "(ANALYZE, BUFFERS) with its parameters (a custom plan for them).",
        "",
        *slow_table(result["slow"]),
        *profile_lines(result["profile"]),
        END,
    ]
    return "\n".join(out)


PROFILE_LINES = 30


def _profile_body(text: str) -> list[str]:
    """pyinstrument's report without its banner (which ends with "Profile at …")."""
    lines = [line for line in text.splitlines() if line.strip()]
    start = next((i + 1 for i, line in enumerate(lines) if line.startswith("Profile at")), 0)
    return lines[start:]


def profile_lines(profile: Profile | None) -> list[str]:
    if profile is None:
        return []
    n = profile.run
    flat, tree = _profile_body(profile.flat), _profile_body(profile.tree)
    return [
        "",
        f"### Where the app's time goes: {profile.path} at {profile.concurrency} connections",
        "",
        f"pyinstrument in the served app (a fresh server, warmed), sampling its event loop's thread every "
        f"millisecond for {n.seconds:.0f} s: {len(n.samples)} requests, {n.requests_per_second:.0f} req/s (the "
        "profiler slows the app down; the shares are what counts). Functions by their own time, in seconds "
        "(`Runner.run`: the event loop idle, waiting for PostgreSQL or the network):",
        "",
        "```",
        *flat[:PROFILE_LINES],
        "```",
        "",
        "<details><summary>The call tree</summary>",
        "",
        "```",
        *tree[: PROFILE_LINES * 4],
        "```",
        "",
        "</details>",
    ]


def by_path(cells: list[Cell]) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for cell in cells:
        out.setdefault(cell.path, {}).setdefault(str(cell.concurrency), {})[cell.side] = cell.numbers()
    return out


def to_json(result: dict[str, Any], command: str, wall: float) -> dict[str, Any]:
    facts = result["facts"]
    found: Captures = result["found"]
    return {
        "benchmark": "read_paths",
        "command": command,
        "at": facts["at"],
        "wall_s": round(wall, 1),
        "org": result["org"],
        "data": result["data"],
        # Per path, per concurrency (a string, as JSON keys are), per side: n, p50/p95/p99 (ms), rps, errors, bytes.
        "paths": by_path(result["cells"]),
        "ratios": ratios(result["cells"]),
        "statements_per_request": {p: sorted({len(r) for r in rs}) for p, rs in found.by_path.items()},
        "slow_statements": [
            {
                "path": s.path,
                "statement": _short(s.statement.sql),
                "replay_ms": round(s.ms, 1),
                "execution_ms": round(s.plan.execution_ms, 1) if s.plan else None,
            }
            for s in result["slow"]
        ],
        "sql_alone_p50_ms": {
            p: round(percentile([sum(t.ms for t in r) for r in rs], 50), 2) for p, rs in result["timings"].items()
        },
        "phases_s": {k: round(v, 1) for k, v in result["phases"].items()},
        "profile": (
            {"path": profile.path, "concurrency": profile.concurrency, "rps": round(profile.run.requests_per_second, 1)}
            if (profile := result["profile"]) is not None
            else None
        ),
        "load_before": facts["load_before"],
        "load_after": facts["load_after"],
    }


def _csv(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    return lambda value: [kind(v) for v in value.split(",") if v]


def _profile_arg(value: str) -> tuple[str, int]:
    path, _, concurrency = value.partition(":")
    if path not in PATHS:
        raise argparse.ArgumentTypeError(f"a path of {', '.join(PATHS)}, then :connections")
    return path, int(concurrency or 10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.read_paths", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=common.DEFAULT_DATABASE)
    parser.add_argument("--org", default=common.MAIN_ORG, help="the organisation whose reps sign in")
    parser.add_argument("--users", type=int, default=60, help="reps who sign in (dealt out over the connections)")
    parser.add_argument("--board-users", type=int, default=50, help="of them, how many read the board")
    parser.add_argument("--cards", type=int, default=3, help="cards per rep (companies they own)")
    parser.add_argument("--paths", type=_csv(str), default=list(PATHS), help="comma-separated, of " + ",".join(PATHS))
    parser.add_argument("--concurrency", type=_csv(int), default=list(CONCURRENCY), help="connections, e.g. 1,10,50")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first, per cell")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=20.0,
        help="a slow cell may measure this long (to get ten answers)",
    )
    parser.add_argument(
        "--profile",
        type=_profile_arg,
        help="then profile the app on one cell, e.g. card:10 (needs pyinstrument; ~20 s more)",
    )
    common.output_options(parser, RESULTS, CHARTS)
    args = parser.parse_args(argv)
    if unknown := set(args.paths) - set(PATHS):
        parser.error(f"--paths: unknown {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    result = asyncio.run(measure(args))
    result["facts"]["database"] = args.database
    wall = time.perf_counter() - started
    command = "python -m bench.read_paths " + " ".join(argv if argv is not None else sys.argv[1:])
    for line in throughput_table(result["cells"]):
        console.print(line, markup=False, highlight=False)
    for line in request_table(result, args) + slow_table(result["slow"]):
        console.print(line, markup=False, highlight=False)
    if result["profile"] is not None:
        console.print(result["profile"].tree, markup=False, highlight=False)
    console.print(f"Done in {wall:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(to_json(result, command.strip(), wall), indent=2) + "\n")
    if not args.no_write:
        result["charts"] = charts(result["cells"], args.charts)
        common.write_section(args.results, (START, END), markdown(result, args, command.strip(), wall), INTRO)
        console.print(f"Written to {args.results}")


if __name__ == "__main__":
    main()
