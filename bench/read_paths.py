"""Latency of the hot read paths through the app, next to raw asyncpg running the same SQL, in one run.

    python -m bench.read_paths [--database fieldbook_bench] [--iterations 200] [--warmup 20]

For each path (client card, deal list, org feed; a first and a deep page) and each role (rep, manager, admin):
the app is called in-process (httpx + ASGITransport on `create_app`, as a signed-in user), and every SQL
statement it sends is captured (statement text and bound parameters, as SQLAlchemy hands them to asyncpg). Right
after each request the baseline replays those same statements on one raw asyncpg connection, in one transaction
as the app's session does, without FastAPI, the ORM or pydantic. Pairs run back to back so that load from
elsewhere on the machine hits both sides alike. Then every captured statement is run once more under
EXPLAIN (ANALYZE, BUFFERS) to show which indexes it uses.

The report goes to stdout and between the markers of bench/RESULTS.md (the text around them is kept).
"""

import argparse
import asyncio
import json
import math
import os
import platform
import random
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console
from rich.table import Table

from bench import common

console = Console(width=160)
RESULTS = Path(__file__).with_name("RESULTS.md")
START, END = "<!-- results:start -->", "<!-- results:end -->"
# Tables big enough that a sequential scan of them on a hot path is a finding.
BIG_TABLES = frozenset({"company", "contact", "contact_point", "deal", "deal_stage_event", "activity", "feed_event"})
SLOW_P95_MS = 50.0
BIG_SCAN_ROWS = 10_000
JIT_FLAG_MS = 10.0
# Measure at least this many times, unless that takes longer than so many budgets (a request can take a minute).
MIN_SAMPLES = 3
MIN_SAMPLES_BUDGETS = 5
JIT_APP, JIT_ON, JIT_OFF = "app", "on", "off"
# Whose full plans the report shows (the plans of the other cells are alike and long): a filtered and an unfiltered
# viewer, on the first page of each path.
TEXT_PLAN_ROLES = frozenset({"rep", "admin"})
TEXT_PLAN_PATHS = frozenset({"card", "deals p1", "feed p1"})
# What every request reads before its path's own query: the session check and the viewer's settings and team.
PER_REQUEST_TABLES = frozenset({"user", "organization", "team", "auth_session"})
ROLES = ("rep", "manager", "admin")
DEEP_DAYS = 180


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

    @property
    def ms(self) -> float:
        return self.planning_ms + self.execution_ms


@dataclass
class Cell:
    """One path for one role under one server setting: the timings of both sides and what the app sent."""

    variant: str
    path: str
    role: str
    app_ms: list[float] = field(default_factory=list)
    base_ms: list[float] = field(default_factory=list)
    warmed: int = 0
    statements: int = 0
    response_bytes: int = 0
    sample: list[tuple[str, Any]] = field(default_factory=list)
    plans: list[Explained] = field(default_factory=list)


def percentile(values: list[float], p: int) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


# The app under test


def _configure_app(database: str) -> None:
    # Before anything reads the settings (get_settings is cached): the JWT secret, the cursor signing key and the
    # URL must be the same ones the app is built with.
    os.environ["FIELDBOOK_ENV"] = "production"
    os.environ["FIELDBOOK_SECRET_KEY"] = common.SECRET_KEY
    os.environ["FIELDBOOK_DATABASE_URL"] = common.sqlalchemy_url(database)
    # Sign in once for a run that may take an hour.
    os.environ["FIELDBOOK_ACCESS_TOKEN_MINUTES"] = str(24 * 60)


class Capture:
    """Every statement the app's engine sends to PostgreSQL while `on` is set."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []

    def listener(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        self.statements.append((statement, parameters))

    def take(self) -> list[tuple[str, Any]]:
        taken, self.statements = self.statements, []
        return taken


async def replay(conn: asyncpg.Connection, statements: list[tuple[str, Any]]) -> None:
    async with conn.transaction():
        for statement, parameters in statements:
            await conn.fetch(statement, *(parameters or ()))


# Fixtures: who signs in, which records they look at


@dataclass
class Role:
    name: str
    email: str
    headers: dict[str, str] = field(default_factory=dict)
    companies: list[uuid.UUID] = field(default_factory=list)


async def _fixtures(conn: asyncpg.Connection, seed: int) -> tuple[dict[str, Role], list[uuid.UUID]]:
    org_id = await conn.fetchval("SELECT id FROM organization WHERE name = $1", common.MAIN_ORG)
    if org_id is None:
        raise SystemExit("No benchmark data: run `python -m bench.load` first.")
    big = [
        r["company_id"]
        for r in await conn.fetch(
            """SELECT company_id, count(*) FROM activity WHERE org_id = $1 AND company_id IS NOT NULL
               GROUP BY company_id ORDER BY count(*) DESC LIMIT 5""",
            org_id,
        )
    ]
    users = {r["email"]: r for r in await conn.fetch('SELECT id, email, team_id FROM "user" WHERE org_id = $1', org_id)}
    rep, manager = users[common.REP_EMAIL], users[common.MANAGER_EMAIL]
    team = [r["id"] for r in users.values() if r["team_id"] == manager["team_id"]]
    owners = {"rep": [rep["id"]], "manager": team, "admin": [r["id"] for r in users.values()]}
    rng = random.Random(seed)
    roles = {}
    for name, email in (("rep", common.REP_EMAIL), ("manager", common.MANAGER_EMAIL), ("admin", common.ADMIN_EMAIL)):
        ids = await conn.fetch(
            """SELECT id FROM company WHERE org_id = $1 AND owner_id = ANY($2::uuid[]) AND deleted_at IS NULL
               AND NOT id = ANY($3::uuid[]) ORDER BY id""",
            org_id,
            owners[name],
            big,
        )
        roles[name] = Role(name, email, companies=rng.sample([r["id"] for r in ids], min(500, len(ids))))
    # Sees no company, so reads only the lists and feeds.
    roles["new rep"] = Role("new rep", common.NEW_REP_EMAIL)
    return roles, big


def _deep_deal_cursor(now: datetime) -> str:
    from api.core.pagination import encode_cursor
    from api.deals.deals import LIST_SCOPE

    ms = int((now - timedelta(days=DEEP_DAYS)).timestamp() * 1000)
    bound = uuid.UUID(int=(ms << 80) | (0x7 << 76) | (0xFFF << 64) | (0b10 << 62) | (2**62 - 1))
    return encode_cursor(LIST_SCOPE, [bound])


def _deep_feed_cursor(now: datetime) -> str:
    from api.core.pagination import encode_cursor

    return encode_cursor("feed:org", [now - timedelta(days=DEEP_DAYS), uuid.UUID(int=2**128 - 1)])


def paths(roles: dict[str, Role], big: list[uuid.UUID], seed: int) -> dict[str, Callable[[Role], Iterator[str]]]:
    """For each path, an endless supply of URLs for a role."""
    now = datetime.now(UTC)
    deals_deep, feed_deep = _deep_deal_cursor(now), _deep_feed_cursor(now)

    def cards(role: Role) -> Iterator[str]:
        rng = random.Random(seed)
        while True:
            yield f"/api/v1/clients/{rng.choice(role.companies)}/card"

    def big_cards(_role: Role) -> Iterator[str]:
        while True:
            for company_id in big:
                yield f"/api/v1/clients/{company_id}/card"

    def constant(url: str) -> Callable[[Role], Iterator[str]]:
        def urls(_role: Role) -> Iterator[str]:
            while True:
                yield url

        return urls

    return {
        "card": cards,
        "card (1k+ activities)": big_cards,
        "deals p1": constant("/api/v1/deals?limit=50"),
        f"deals @{DEEP_DAYS}d": constant(f"/api/v1/deals?limit=50&cursor={deals_deep}"),
        "board": constant("/api/v1/deals/board?limit=10"),
        "feed p1": constant("/api/v1/feed?scope=org&limit=30"),
        f"feed @{DEEP_DAYS}d": constant(f"/api/v1/feed?scope=org&limit=30&cursor={feed_deep}"),
    }


# EXPLAIN


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
    raw = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}", *(parameters or ()))
    plan = json.loads(raw)[0]
    nodes = list(_walk(plan["Plan"]))
    return Explained(
        statement,
        planning_ms=plan["Planning Time"],
        execution_ms=plan["Execution Time"],
        jit_ms=float(plan.get("JIT", {}).get("Timing", {}).get("Total", 0.0)),
        indexes=sorted({n["Index Name"] for n in nodes if "Index Name" in n}),
        scans=_scans(nodes),
    )


async def explain_text(conn: asyncpg.Connection, statement: str, parameters: Any) -> str:
    rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", *(parameters or ()))
    return "\n".join(r[0] for r in rows)


# The run


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


@dataclass
class Pair:
    """One request to the app, then the baseline replaying the SQL it sent."""

    client: Any  # httpx.AsyncClient
    capture: Capture
    base: asyncpg.Connection

    async def __call__(self, role: Role, url: str) -> tuple[float, float, int, list[tuple[str, Any]]]:
        started = time.perf_counter()
        response = await self.client.get(url, headers=role.headers)
        app_ms = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{role.name} GET {url}: {response.status_code} {response.text[:300]}")
        statements = self.capture.take()
        started = time.perf_counter()
        await replay(self.base, statements)
        return app_ms, (time.perf_counter() - started) * 1000, len(response.content), statements


async def run_cell(pair: Pair, cell: Cell, role: Role, urls: Iterator[str], args: argparse.Namespace) -> None:
    """Warm up for at most a quarter of the budget, then measure until done or out of budget (at least MIN_SAMPLES
    times, within MIN_SAMPLES_BUDGETS budgets): a path that takes seconds must not make the run take hours."""
    started = time.perf_counter()
    while cell.warmed < args.warmup and (not cell.warmed or time.perf_counter() - started < args.budget / 4):
        await pair(role, next(urls))
        cell.warmed += 1
    while len(cell.app_ms) < args.iterations and (
        time.perf_counter() - started < args.budget
        or (len(cell.app_ms) < MIN_SAMPLES and time.perf_counter() - started < MIN_SAMPLES_BUDGETS * args.budget)
    ):
        app_ms, base_ms, size, statements = await pair(role, next(urls))
        cell.app_ms.append(app_ms)
        cell.base_ms.append(base_ms)
        cell.response_bytes = max(cell.response_bytes, size)
        cell.statements = len(statements)
        cell.sample = statements
    console.log(
        f"{cell.variant:<30} {cell.path:<24} {cell.role:<8} n={len(cell.app_ms):<4} "
        f"app p50 {percentile(cell.app_ms, 50):8.1f} ms, sql p50 {percentile(cell.base_ms, 50):8.1f} ms"
    )


def _text_plan(cell: Cell) -> bool:
    return cell.role in TEXT_PLAN_ROLES and cell.path in TEXT_PLAN_PATHS


async def explain_cell(base: asyncpg.Connection, cell: Cell, with_text: bool) -> None:
    """EXPLAIN what the last request of the cell sent, and the text plan of its slowest statement about the path's
    own records (not the sign-in and viewer look-ups every request starts with)."""
    cell.plans = [await explain(base, statement, parameters) for statement, parameters in cell.sample]
    if with_text:
        own = [i for i, p in enumerate(cell.plans) if _table(p.statement) not in PER_REQUEST_TABLES]
        slowest = max(own or range(len(cell.plans)), key=lambda i: cell.plans[i].ms)
        cell.plans[slowest].text = await explain_text(base, *cell.sample[slowest])


async def measure(args: argparse.Namespace) -> tuple[list[Cell], dict[str, Any]]:
    _configure_app(args.database)
    import httpx
    from sqlalchemy import event

    from api.main import create_app
    from api.settings import get_settings

    base = await asyncpg.connect(common.dsn(args.database))
    roles, big = await _fixtures(base, args.seed)
    app = create_app(get_settings())
    capture, jit = Capture(), Jit()
    cells: list[Cell] = []
    load_before = os.getloadavg()
    async with app.router.lifespan_context(app):
        engine = app.state.db.engine
        event.listen(engine.sync_engine, "before_cursor_execute", capture.listener)
        event.listen(engine.sync_engine, "connect", jit.on_connect)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
            for role in roles.values():
                response = await client.post(
                    "/api/v1/auth/login", json={"email": role.email, "password": common.PASSWORD}
                )
                response.raise_for_status()
                role.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
            capture.take()
            pair = Pair(client, capture, base)
            for variant in args.jit:
                label = await jit.apply(variant, engine, base)
                mine = []
                for path, urls_of in paths(roles, big, args.seed).items():
                    for role in roles.values():
                        if path.startswith("card") and not role.companies:
                            continue
                        cell = Cell(label, path, role.name)
                        await run_cell(pair, cell, role, urls_of(role), args)
                        mine.append(cell)
                for cell in mine:
                    await explain_cell(base, cell, with_text=variant == args.jit[-1] and _text_plan(cell))
                cells += mine
    facts = await _facts(base, args.database)
    facts["load_before"], facts["load_after"] = load_before, os.getloadavg()
    facts["iterations"], facts["warmup"], facts["budget"] = args.iterations, args.warmup, args.budget
    await base.close()
    return cells, facts


async def _facts(conn: asyncpg.Connection, database: str) -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")), "")
    mem_kb = next((int(line.split()[1]) for line in _lines("/proc/meminfo") if line.startswith("MemTotal")), 0)
    names = ("shared_buffers", "work_mem", "effective_cache_size", "random_page_cost", "jit", "jit_above_cost")
    settings = {name: await conn.fetchval("SELECT current_setting($1)", name) for name in names}
    sizes = []
    for table in ("company", "contact", "contact_point", "deal", "deal_stage_event", "activity", "feed_event", "share"):
        count = await conn.fetchval(f"SELECT count(*) FROM {table}")
        size = await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", table)
        sizes.append((table, count, size))
    comment = await conn.fetchval(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", database
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "postgres": await conn.fetchval("SHOW server_version"),
        "pg_settings": settings,
        "sizes": sizes,
        "database_bytes": await conn.fetchval("SELECT pg_database_size(current_database())"),
        "load": json.loads(comment) if comment else None,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


# Reporting

HEADER = [
    "path",
    "role",
    "n",
    "app p50",
    "app p95",
    "app p99",
    "sql p50",
    "sql p95",
    "sql p99",
    "app/sql",
    "stmts",
    "KiB",
]


def _row(cell: Cell) -> list[str]:
    a = [percentile(cell.app_ms, p) for p in (50, 95, 99)]
    b = [percentile(cell.base_ms, p) for p in (50, 95, 99)]
    return [
        cell.path,
        cell.role,
        str(len(cell.app_ms)),
        *(f"{v:,.1f}" for v in a),
        *(f"{v:,.1f}" for v in b),
        f"{a[0] / b[0]:.1f}x",
        str(cell.statements),
        f"{cell.response_bytes / 1024:.0f}",
    ]


def _variants(cells: list[Cell]) -> list[str]:
    return list(dict.fromkeys(c.variant for c in cells))


def tables(cells: list[Cell]) -> list[Table]:
    out = []
    for variant in _variants(cells):
        t = Table(title=f"Read paths, ms, {variant}: app (FastAPI + SQLAlchemy + pydantic) vs its SQL on raw asyncpg")
        for name in HEADER:
            t.add_column(name, justify="left" if name in ("path", "role") else "right")
        for cell in cells:
            if cell.variant == variant:
                t.add_row(*_row(cell))
        out.append(t)
    return out


def chart(cells: list[Cell], width: int = 48) -> str:
    """p50 bars on a log scale (the paths span four orders of magnitude), app above its SQL."""
    top = math.log10(max(max(percentile(c.app_ms, 50), percentile(c.base_ms, 50)) for c in cells) * 10)
    lines = []
    for cell in cells:
        for side, values in (("app", cell.app_ms), ("sql", cell.base_ms)):
            value = percentile(values, 50)
            bar = "█" * max(1, round(math.log10(max(value, 0.1) * 10) / top * width))
            label = f"{cell.path} · {cell.role}" if side == "app" else ""
            lines.append(f"{label:<34} {side} {bar} {value:,.1f}")
    return "\n".join(lines)


def _table(statement: str) -> str:
    """The first table a statement reads FROM."""
    words = statement.replace("\n", " ").split()
    tables = (
        words[i + 1] for i, w in enumerate(words[:-1]) if w.upper() == "FROM" and not words[i + 1].startswith("(")
    )
    return next(tables, "?").strip('"()')


def _short(statement: str) -> str:
    return f"{statement.split(maxsplit=1)[0]} … FROM {_table(statement)}"


def findings(cells: list[Cell]) -> list[str]:
    found = []
    for cell in cells:
        where = f"{cell.path} · {cell.role}"
        p95 = percentile(cell.app_ms, 95)
        if p95 > SLOW_P95_MS:
            found.append(f"- **slow** {where}: app p95 {p95:,.1f} ms, its SQL {percentile(cell.base_ms, 95):,.1f} ms")
        for number, plan in enumerate(cell.plans, 1):
            what = f"statement {number} ({_short(plan.statement)}, {plan.ms:,.1f} ms)"
            if plan.jit_ms >= JIT_FLAG_MS:
                found.append(f"- **JIT** {where}, {what}: {plan.jit_ms:,.0f} ms of it compiling")
            if plan.scans:
                found.append(f"- **big scans** {where}, {what}: {_scans_md(plan.scans)}")
    return found or ["- none"]


def _scans_md(scans: list[Scan]) -> str:
    """The scans of a plan, the same ones counted (a visibility subquery is often planned several times)."""
    counted = Counter(str(scan) for scan in scans)
    return "; ".join(f"{text} x{n}" if n > 1 else text for text, n in counted.items()) or "-"


def _plans_md(cells: list[Cell]) -> str:
    out = []
    for cell in cells:
        rows = [
            f"| {n} | {_short(p.statement)} | {p.planning_ms:.2f} + {p.execution_ms:,.2f} | "
            f"{', '.join(p.indexes) or '-'} | {_scans_md(p.scans)} |"
            for n, p in enumerate(cell.plans, 1)
        ]
        slowest = next((p for p in cell.plans if p.text), None)
        out += [
            f"#### {cell.path} · {cell.role}",
            "",
            "| # | statement | ms plan + exec | indexes used | big scans (≥10k rows read) |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
        if slowest is not None:
            out += [
                "<details><summary>Its slowest statement (after sign-in), with EXPLAIN (ANALYZE, BUFFERS)</summary>",
                "",
                "```sql",
                slowest.statement.strip(),
                "```",
                "",
                "```",
                slowest.text,
                "```",
                "",
                "</details>",
                "",
            ]
    return "\n".join(out)


def markdown(cells: list[Cell], facts: dict[str, Any]) -> str:
    load = facts["load"] or {}
    sizes = "\n".join(f"| {t} | {n:,} | {s / 1024**2:,.0f} MiB |" for t, n, s in facts["sizes"])
    load_line = (
        f"{load.get('wall_s', 0):.0f} s in all: migrate {load.get('migrate_s', 0):.1f} s, generate + COPY "
        f"{load.get('generate_and_copy_s', 0):.0f} s (of which waiting for COPY {load.get('copy_s', 0):.0f} s), "
        f"keys + indexes + foreign keys {load.get('index_s', 0):.0f} s, VACUUM ANALYZE "
        f"{load.get('analyze_s', 0):.0f} s; scale {load.get('scale')}, loaded {load.get('loaded_at')}"
        if load
        else "unknown (the database was not made by bench.load)"
    )
    pg = ", ".join(f"{k} {v}" for k, v in facts["pg_settings"].items())
    out = [
        START,
        f"_Generated by `python -m bench.read_paths` at {facts['at']}; the text between the markers is rewritten on "
        "each run._",
        "",
        "### Machine",
        "",
        f"- {facts['cores']} cores ({facts['cpu']}), {facts['memory_gib']} GiB, Python {facts['python']}",
        f"- PostgreSQL {facts['postgres']} ({pg})",
        f"- load average (1/5/15 min): {_avg(facts['load_before'])} before the run, {_avg(facts['load_after'])} after",
        f"- up to {facts['iterations']} measured requests per cell after up to {facts['warmup']} warm-up requests, "
        f"within {facts['budget']:.0f} s per cell (`n`: how many were measured)",
        "",
        "### Data",
        "",
        f"Load: {load_line}. Database size {facts['database_bytes'] / 1024**3:.2f} GiB.",
        "",
        "| table | rows (3 organisations) | size with indexes |",
        "|---|---|---|",
        sizes,
        "",
        "`app`: the GET through FastAPI in-process (ASGITransport): auth, visibility, queries, JSON response.",
        "`sql`: the same statements with the same parameters on one raw asyncpg connection, in one transaction.",
        "`stmts`: SQL statements per request; `KiB`: largest response body. Times in ms.",
    ]
    variants = _variants(cells)
    for variant in variants:
        mine = [c for c in cells if c.variant == variant]
        out += [
            "",
            f"### Latency, {variant}",
            "",
            "| " + " | ".join(HEADER) + " |",
            "|" + "---|" * len(HEADER),
            *("| " + " | ".join(_row(c)) + " |" for c in mine),
            "",
            "p50, app above its SQL (log scale):",
            "",
            "```",
            chart(mine),
            "```",
            "",
            f"Flags, {variant} (app p95 over {SLOW_P95_MS:.0f} ms; JIT over {JIT_FLAG_MS:.0f} ms; big tables read "
            f"{BIG_SCAN_ROWS:,}+ rows at a time):",
            "",
            *findings(mine),
        ]
    out += [
        "",
        f"### Plans, {variants[-1]}: EXPLAIN ANALYZE of each statement of the last request of each cell",
        "",
        "A first execution, so a custom plan for these parameters. The timed loop runs each statement hundreds of "
        "times as a prepared statement, and PostgreSQL may switch such a statement to a generic plan after five runs: "
        "where a timing and a plan here disagree, that is why.",
        "",
        _plans_md([c for c in cells if c.variant == variants[-1]]),
        END,
    ]
    return "\n".join(out)


def _avg(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.read_paths", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=common.DEFAULT_DATABASE)
    parser.add_argument("--iterations", type=int, default=200, help="measured requests per cell (path, role)")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests first")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per cell, at least 3 requests")
    parser.add_argument(
        "--jit",
        type=lambda v: v.split(","),
        default=[JIT_APP],
        help="PostgreSQL JIT for both sides, one run per value in order: `app` (as the app sets it), `on`, `off`",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--results", type=Path, default=RESULTS, help="the Markdown file to write the report into")
    parser.add_argument("--no-write", action="store_true", help="print only; write no report")
    args = parser.parse_args(argv)
    if not set(args.jit) <= {JIT_APP, JIT_ON, JIT_OFF}:
        parser.error("--jit takes a comma-separated list of `app`, `on` and `off`")
    cells, facts = asyncio.run(measure(args))
    for t in tables(cells):
        console.print(t)
    console.print("\n".join(findings(cells)))
    if not args.no_write:
        common.write_section(args.results, (START, END), markdown(cells, facts))
        console.print(f"Written to {args.results}")


if __name__ == "__main__":
    main()
