"""The leaderboard and the funnel over one year of a big organisation, through the app and as the same SQL on raw
asyncpg, in one run.

    python -m bench.insights [--database fieldbook_bench] [--runs 7] [--budget 60]

**Data.** The large benchmark data set (`fieldbook bench-data --scale large`, api/benchdata), in the benchmark
database (`fieldbook_bench`, which `make bench` loads): its main organisation, "Bench Main" (time zone
Europe/Madrid, EUR): an admin and 10 teams of a manager and 20 reps; 100k deals created over the last 365 days,
each walked through the app's default pipeline (Lead → Qualified → Proposal → Negotiation → Won / Lost) with its
owner's skill (a tenth of the reps are stars, 15% struggle, so win rates run from under 10% to over 40%), lost
ones with a lost reason; their `deal_stage_event` history; 2M activities over the year (a third about a deal,
more for deals that went further and for busier owners); 4% still planned, 0.3% deleted. The other organisations
of the data set are left out by every `org_id` filter.

**Measure.** For the last 365 days (the organisation's today and the 364 days before): the leaderboard and the
funnel, as the admin (the whole organisation) and as the first team's manager (that team):
`GET /api/v1/insights/{leaderboard,funnel}?from=…&to=…` through `create_app` in-process (httpx + ASGITransport),
signed in through `/api/v1/auth/login`. Every statement the app's engine sends during a request is captured (text
and parameters as SQLAlchemy hands them to asyncpg), and right after the request the same statements run again on
one raw asyncpg connection, in one transaction as the app's session does, each timed. Both sides run with JIT as
the app sets it (off), and keep every statement prepared (SQLAlchemy's asyncpg driver does; asyncpg is told to keep
long ones too), so PostgreSQL may switch either to a generic plan after five executions: the report counts generic
and custom plans per statement on both sides. One warm-up pair, then `--runs` measured pairs per scenario (fewer,
but at least 3, when they take longer than `--budget` seconds in all, warm-up included). Then each statement of the
last request runs under EXPLAIN (ANALYZE, BUFFERS): the report shows where the SQL time goes (each statement
labelled with the function of api/ that sent it), and the text plans of each scenario's slowest statement and of
any other taking a fifth of its SQL time. Report to stdout and between the markers of the "Insights" section of
bench/RESULTS.md.
"""

import argparse
import asyncio
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import greenlet
from rich.console import Console
from rich.table import Table

from api.benchdata.plans import ORG_SETTINGS
from bench import common, read_paths
from bench.read_paths import JIT_APP, Capture, Explained, Jit, _avg, _configure_app, percentile

console = Console(width=160)
RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Insights: leaderboard and funnel"
START, END = "<!-- insights:start -->", "<!-- insights:end -->"

DEFAULT_DATABASE = common.DEFAULT_DATABASE
ORG_NAME = common.MAIN_ORG
# The insights count days in the organisation's time zone.
TIME_ZONE = ORG_SETTINGS["time_zone"]
YEAR_DAYS = 365
# The admin (the whole organisation) and the first team's manager (that team).
ROLES = {"admin": common.ADMIN_EMAIL, "manager": common.MANAGER_EMAIL}
INSIGHTS = ("leaderboard", "funnel")
MIN_RUNS = 3
# The report shows the text plan of each statement that takes this share of its request's SQL time, or more.
TEXT_PLAN_SHARE = 0.2
# Modules whose functions run statements for others (the sender is their caller).
HELPERS = ("/api/core/db.py", "/api/insights/sql.py")
# Where the statements come from (the function of api/ that sent each), for the breakdown tables.
LABELS = {
    "_user_principal": "sign-in: session and user",
    "resolve": "scope: settings, people",
    "time_zone": "scope: time zone",
    "_org_settings": "scope: time zone",
    "_pipeline": "funnel: pipeline",
    "_through_stages": "funnel: reached and lost per stage",
    "_times_in_stage": "funnel: days in stage (p50, p75)",
    "closed_deals": "leaderboard: won / lost per owner",
    "activity_counts": "leaderboard: activities per owner",
}


# The measurement


class Labelled(Capture):
    """Capture, with the name of the function of api/ that sent each statement (the innermost one up the call
    stack, helpers aside)."""

    def __init__(self) -> None:
        super().__init__()
        self.senders: list[str] = []

    def listener(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        self.statements.append((statement, parameters))
        # The listener runs in SQLAlchemy's greenlet; the coroutines that awaited the query are on the stack of
        # the greenlet that switched into it (suspended in `greenlet_spawn`).
        parent = greenlet.getcurrent().parent
        frame = parent.gr_frame if parent is not None else sys._getframe(1)
        sender = "?"
        while frame is not None:
            name = frame.f_code.co_filename
            if "/api/" in name and not name.endswith(HELPERS):
                sender = frame.f_code.co_name
                break
            frame = frame.f_back
        self.senders.append(sender)

    def take_senders(self) -> list[str]:
        taken, self.senders = self.senders, []
        return taken


@dataclass
class Scenario:
    insight: str
    role: str
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    app_ms: list[float] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)
    # Per statement of a request: its time in each measured run.
    statement_ms: list[list[float]] = field(default_factory=list)
    sample: list[tuple[str, Any]] = field(default_factory=list)
    senders: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    response_bytes: int = 0
    counted: str = ""
    plans: list[Explained] = field(default_factory=list)
    slowest: int = 0
    # EXPLAIN (ANALYZE, BUFFERS) text of the statements that take a good part of the SQL time.
    texts: dict[int, str] = field(default_factory=dict)
    # Per statement and side (app, sql): how often PostgreSQL ran the prepared statement with a generic plan, and
    # with a custom one (after five runs it may switch to a generic plan, which knows no parameter values).
    plan_kinds: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.insight} · {self.role}"

    def statement_p50(self, i: int) -> float:
        return percentile(self.statement_ms[i], 50)


async def replay(conn: asyncpg.Connection, statements: list[tuple[str, Any]]) -> tuple[float, list[float], list[int]]:
    """The statements on raw asyncpg, in one transaction: the total, each one's time and row count."""
    each, rows = [], []
    started = time.perf_counter()
    async with conn.transaction():
        for statement, parameters in statements:
            at = time.perf_counter()
            found = await conn.fetch(statement, *(parameters or ()))
            each.append((time.perf_counter() - at) * 1000)
            rows.append(len(found))
    return (time.perf_counter() - started) * 1000, each, rows


def _counted(insight: str, body: dict[str, Any]) -> str:
    if insight == "leaderboard":
        reps = body["reps"]
        won, done = sum(r["won"] for r in reps), sum(r["activities"] for r in reps)
        return f"{len(reps)} people, {won:,} won, {done:,} activities"
    return f"{body['deals']:,} deals in the cohort, {body['won']:,} won, {body['lost']:,} lost"


async def pair(client: Any, capture: Labelled, base: asyncpg.Connection, s: Scenario, measured: bool) -> None:
    """One request to the app, then its statements replayed on asyncpg."""
    started = time.perf_counter()
    response = await client.get(s.url, headers=s.headers)
    app_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{s.name} GET {s.url}: {response.status_code} {response.text[:300]}")
    statements, senders = capture.take(), capture.take_senders()
    sql_ms, each, rows = await replay(base, statements)
    if not measured:
        return
    if s.statement_ms and len(s.statement_ms) != len(each):
        raise RuntimeError(f"{s.name}: {len(each)} statements this time, {len(s.statement_ms)} before")
    s.statement_ms = s.statement_ms or [[] for _ in each]
    for times, ms in zip(s.statement_ms, each, strict=True):
        times.append(ms)
    s.app_ms.append(app_ms)
    s.sql_ms.append(sql_ms)
    s.sample, s.senders, s.rows = statements, senders, rows
    s.response_bytes = len(response.content)
    s.counted = _counted(s.insight, response.json())


async def measure(args: argparse.Namespace) -> tuple[list[Scenario], dict[str, Any]]:
    import httpx
    from sqlalchemy import event

    from api.main import create_app
    from api.settings import get_settings

    # Cache every statement, however long, as the app's driver does (SQLAlchemy prepares each one and keeps it):
    # asyncpg would not keep those over 15 KiB, whose plans would then never turn generic on this side.
    base = await asyncpg.connect(common.dsn(args.database), max_cacheable_statement_size=0)
    org_id = await base.fetchval("SELECT id FROM organization WHERE name = $1", ORG_NAME)
    today = datetime.now(ZoneInfo(TIME_ZONE)).date()
    first = today - timedelta(days=YEAR_DAYS - 1)
    scenarios = [
        Scenario(insight, role, url=f"/api/v1/insights/{insight}?from={first}&to={today}")
        for insight in INSIGHTS
        for role in ROLES
    ]
    app = create_app(get_settings())
    capture, jit = Labelled(), Jit()
    load_before = os.getloadavg()
    async with app.router.lifespan_context(app):
        engine = app.state.db.engine
        event.listen(engine.sync_engine, "before_cursor_execute", capture.listener)
        event.listen(engine.sync_engine, "connect", jit.on_connect)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
            headers = {}
            for role, email in ROLES.items():
                response = await client.post("/api/v1/auth/login", json={"email": email, "password": common.PASSWORD})
                response.raise_for_status()
                headers[role] = {"Authorization": f"Bearer {response.json()['access_token']}"}
            jit_label = await jit.apply(JIT_APP, engine, base)
            capture.take()
            capture.take_senders()
            for s in scenarios:
                s.headers = headers[s.role]
                started = time.perf_counter()
                for _ in range(args.warmup):
                    await pair(client, capture, base, s, measured=False)
                # At least MIN_RUNS, more while within the budget: a 10-second funnel must not take minutes.
                while len(s.app_ms) < args.runs and (
                    len(s.app_ms) < MIN_RUNS or time.perf_counter() - started < args.budget
                ):
                    await pair(client, capture, base, s, measured=True)
                app_kinds = await _app_plan_kinds(engine)
                capture.take()
                capture.take_senders()
                s.plan_kinds = [
                    (app_kinds.get(statement, (0, 0)), await _plan_kinds(base, statement)) for statement, _ in s.sample
                ]
                console.log(
                    f"{s.name:<24} n={len(s.app_ms)} app p50 {percentile(s.app_ms, 50):8.1f} ms, "
                    f"sql p50 {percentile(s.sql_ms, 50):8.1f} ms  ({s.counted})"
                )
    for s in scenarios:
        s.plans = [await _explain(base, statement, parameters) for statement, parameters in s.sample]
        s.slowest = max(range(len(s.sample)), key=s.statement_p50)
        total = percentile(s.sql_ms, 50)
        for i in range(len(s.sample)):
            if _planned(s.sample[i][0]) and (i == s.slowest or s.statement_p50(i) >= TEXT_PLAN_SHARE * total):
                s.texts[i] = await read_paths.explain_text(base, *s.sample[i])
    facts = await _facts(base, args.database, org_id)
    facts["load_before"], facts["load_after"] = load_before, os.getloadavg()
    facts["runs"], facts["warmup"], facts["budget"], facts["jit"] = args.runs, args.warmup, args.budget, jit_label
    facts["period"] = (first, today)
    await base.close()
    return scenarios, facts


def _planned(statement: str) -> bool:
    """A query has a plan; the scope's `SET LOCAL plan_cache_mode` has none to explain."""
    return statement.lstrip().upper().startswith(("SELECT", "WITH"))


async def _explain(conn: asyncpg.Connection, statement: str, parameters: Any) -> read_paths.Explained:
    if not _planned(statement):
        return read_paths.Explained(statement, planning_ms=0.0, execution_ms=0.0, jit_ms=0.0, indexes=[], scans=[])
    return await read_paths.explain(conn, statement, parameters)


PLAN_KINDS_SQL = "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"


async def _plan_kinds(conn: asyncpg.Connection, statement: str) -> tuple[int, int]:
    row = await conn.fetchrow(f"{PLAN_KINDS_SQL} WHERE statement = $1", statement)
    return (row["generic_plans"], row["custom_plans"]) if row else (0, 0)


async def _app_plan_kinds(engine: Any) -> dict[str, tuple[int, int]]:
    """The same, on the app's connection (requests one at a time: the pool hands the same one back)."""
    async with engine.connect() as connection:
        rows = (await connection.exec_driver_sql(PLAN_KINDS_SQL)).all()
    return {statement: (generic, custom) for statement, generic, custom in rows}


async def _facts(conn: asyncpg.Connection, database: str, org_id: uuid.UUID) -> dict[str, Any]:
    """bench.read_paths' (machine, PostgreSQL, the tables, the load's figures), with what the year holds."""
    facts = await read_paths._facts(conn, database)
    for name in ("max_parallel_workers_per_gather",):
        facts["pg_settings"][name] = await conn.fetchval("SELECT current_setting($1)", name)
    facts["sizes"] = [(t, n, b) for t, n, b in facts["sizes"] if n]
    facts["users"] = dict(
        await conn.fetch('SELECT role, count(*) FROM "user" WHERE org_id = $1 GROUP BY role ORDER BY role', org_id)
    )
    facts["deals"] = dict(
        await conn.fetch(
            "SELECT status, count(*) FROM deal WHERE org_id = $1 AND deleted_at IS NULL GROUP BY status", org_id
        )
    )
    rates = await conn.fetch(
        """SELECT d.owner_id, count(*) FILTER (WHERE status = 'won')::float / count(*) AS rate
           FROM deal d JOIN "user" u ON u.id = d.owner_id AND u.role = 'rep'
           WHERE d.org_id = $1 AND d.deleted_at IS NULL AND d.status <> 'open' GROUP BY d.owner_id ORDER BY rate""",
        org_id,
    )
    values = [r["rate"] for r in rates]
    facts["win_rates"] = (values[0], percentile(values, 10), percentile(values, 50), percentile(values, 90), values[-1])
    facts["activities"] = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE done_at IS NOT NULL) AS done,
                  count(*) FILTER (WHERE done_at IS NULL) AS planned,
                  count(*) FILTER (WHERE deal_id IS NOT NULL) AS on_deals
           FROM activity WHERE org_id = $1""",
        org_id,
    )
    return facts


# Reporting

HEADER = ["insight", "role", "counts", "n", "app p50", "app p95", "sql p50", "sql p95", "app/sql p50", "app/sql p95"]
HEADER += ["stmts", "KiB", "slowest statement (sql p50)"]


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _label(s: Scenario, i: int) -> str:
    sender, statement = s.senders[i], s.sample[i][0]
    if sender == "closed_deals" and "row_number()" in statement:
        return "leaderboard: median cycle per owner"
    if sender == "funnel":
        return "funnel: stages" if "FROM stage" in statement else "funnel: cohort totals"
    return LABELS.get(sender, sender)


def _row(s: Scenario) -> list[str]:
    app = [percentile(s.app_ms, p) for p in (50, 95)]
    sql = [percentile(s.sql_ms, p) for p in (50, 95)]
    return [
        s.insight,
        s.role,
        s.counted,
        str(len(s.app_ms)),
        *(_ms(v) for v in app),
        *(_ms(v) for v in sql),
        *(f"{a / b:.2f}x" for a, b in zip(app, sql, strict=True)),
        str(len(s.sample)),
        f"{s.response_bytes / 1024:.0f}",
        f"{_label(s, s.slowest)} ({_ms(s.statement_p50(s.slowest))} ms)",
    ]


def _statements(s: Scenario) -> list[list[str]]:
    total = percentile(s.sql_ms, 50)
    out = []
    for i, plan in enumerate(s.plans):
        p50 = s.statement_p50(i)
        out.append(
            [
                str(i + 1),
                _label(s, i),
                read_paths._short(plan.statement),
                f"{s.rows[i]:,}",
                _ms(p50),
                f"{p50 / total:.0%}",
                " · ".join(f"{g} / {c}" for g, c in s.plan_kinds[i]) if s.plan_kinds else "-",
                f"{plan.planning_ms:.1f} + {plan.execution_ms:,.1f}",
                ", ".join(plan.indexes) or "-",
                read_paths._scans_md(plan.scans),
            ]
        )
    return out


def tables(scenarios: list[Scenario]) -> list[Table]:
    t = Table(title="Insights over one year, ms: app (FastAPI + SQLAlchemy + pydantic) vs its SQL on raw asyncpg")
    for name in HEADER:
        t.add_column(
            name, justify="left" if name in ("insight", "role", "counts") or name.startswith("slow") else "right"
        )
    for s in scenarios:
        t.add_row(*_row(s))
    out = [t]
    for s in scenarios:
        each = Table(title=f"{s.name}: statements (sql p50 ms)")
        for name in (
            "#",
            "from",
            "statement",
            "rows",
            "p50",
            "share",
            "generic / custom (app · sql)",
            "explain ms",
            "indexes",
            "big scans",
        ):
            each.add_column(name)
        for row in _statements(s):
            each.add_row(*row)
        out.append(each)
    return out


def compact(text: str) -> str:
    """Long lists of ids shortened: bound parameters in a statement, literal arrays in a plan."""
    text = re.sub(
        r"(\$\d+::UUID)(?:, \$\d+::UUID){3,}, (\$\d+::UUID)",
        lambda m: f"{m[1]}, …, {m[2]} ({m[0].count(',') + 1})",
        text,
    )
    return re.sub(r"'\{(?:[0-9a-f-]{36},){3,}[0-9a-f-]{36}\}'", lambda m: f"'{{…{m[0].count(',') + 1} ids…}}'", text)


def _md(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def markdown(scenarios: list[Scenario], facts: dict[str, Any], command: str) -> str:
    load = facts["load"] or {}
    pg = ", ".join(f"{k} {v}" for k, v in facts["pg_settings"].items())
    load_line = (
        f"`fieldbook bench-data --scale {load.get('scale')} --seed {load.get('seed')}` "
        f"in {load.get('wall_s', 0):.0f} s "
        f"(rows made in Python {load.get('records_s', 0):.0f} s, activities made by PostgreSQL "
        f"{load.get('activities_s', 0):.0f} s, keys, indexes and foreign keys {load.get('index_s', 0):.0f} s, "
        f"VACUUM ANALYZE {load.get('analyze_s', 0):.0f} s), loaded {load.get('loaded_at')}"
        if load
        else "unknown"
    )
    users, deals, acts = facts["users"], facts["deals"], facts["activities"]
    w = facts["win_rates"]
    first, last = facts["period"]
    sizes = [[t, f"{n:,}", f"{b / 1024**2:,.0f} MiB"] for t, n, b in facts["sizes"]]
    out = [
        START,
        f"_Generated by `{command}` at {facts['at']}; the text between the markers is rewritten on each run._",
        "",
        "#### Machine and data",
        "",
        f"- {facts['cores']} cores ({facts['cpu']}), {facts['memory_gib']} GiB, Python {facts['python']}; "
        f"PostgreSQL {facts['postgres']} ({pg}); both sides: {facts['jit']}",
        f"- load average (1/5/15 min): {_avg(facts['load_before'])} before, {_avg(facts['load_after'])} after",
        f"- database `{facts.get('database', DEFAULT_DATABASE)}`, load {load_line}; "
        f"{facts['database_bytes'] / 1024**3:.2f} GiB",
        f"- {users.get('admin', 0)} admin, {users.get('manager', 0)} managers, {users.get('rep', 0):,} reps; deals "
        f"(live): {deals.get('won', 0):,} won, {deals.get('lost', 0):,} lost, {deals.get('open', 0):,} open; reps' "
        f"win rates (won / closed): min {w[0]:.0%}, p10 {w[1]:.0%}, median {w[2]:.0%}, p90 {w[3]:.0%}, max "
        f"{w[4]:.0%}; activities: {acts['done']:,} done, {acts['planned']:,} planned, {acts['on_deals']:,} about "
        "a deal",
        f"- period: {first} to {last} ({YEAR_DAYS} days, {TIME_ZONE}); per scenario {facts['warmup']} warm-up and up "
        f"to {facts['runs']} measured requests (at least {MIN_RUNS}, within {facts['budget']:.0f} s), each followed "
        "by its SQL on asyncpg",
        "",
        *_md(["table", "rows", "size with indexes"], sizes),
        "",
        "#### Latency (ms)",
        "",
        *_md(HEADER, [_row(s) for s in scenarios]),
        "",
        "Each run, in order (app / sql, ms):",
        "",
        *(
            f"- {s.name}: " + ", ".join(f"{_ms(a)} / {_ms(b)}" for a, b in zip(s.app_ms, s.sql_ms, strict=True))
            for s in scenarios
        ),
        "",
        "`app`: GET /api/v1/insights/… through the ASGI app in-process (sign-in check, scope, the insight's "
        "statements, the response model, JSON). `sql`: the same statements with the same parameters on one raw "
        "asyncpg connection, in one transaction. `counts`: what the response counted.",
        "",
        "#### Where the SQL time goes",
        "",
        "Each statement of a request: who sent it, rows returned, its p50 over the measured runs on asyncpg and its "
        "share of the request's SQL; how many of its executions (warm-up included; on the app's connection, and on "
        "asyncpg) PostgreSQL planned generic (for any parameter values: it may switch to such a plan after five "
        "executions of a prepared statement) and custom; then one EXPLAIN (ANALYZE, "
        "BUFFERS) of it (a custom plan for these parameters, so a timing and its plan can differ), the indexes it "
        "used and the plan nodes that read 10k+ rows of a big table.",
        "",
    ]
    for s in scenarios:
        header = [
            "#",
            "from",
            "statement",
            "rows",
            "sql p50",
            "share",
            "generic / custom plans (app · sql)",
            "explain: plan + exec ms",
        ]
        out += [f"##### {s.name}", "", *_md([*header, "indexes", "big scans"], _statements(s)), ""]
    out += [
        "#### Plans of the slow statements",
        "",
        f"The slowest statement of each scenario, and any other that takes {TEXT_PLAN_SHARE:.0%}+ of its SQL time. "
        "Lists of ids are shortened (`$17::UUID, …, $227::UUID (211)`, `'{…211 ids…}'`).",
        "",
    ]
    for s in scenarios:
        for i, text in s.texts.items():
            out += [
                f"<details><summary>{s.name}: statement {i + 1}, {_label(s, i)} ({_ms(s.statement_p50(i))} ms)"
                "</summary>",
                "",
                "```sql",
                compact(s.sample[i][0].strip()),
                "```",
                "",
                "```",
                compact(text),
                "```",
                "",
                "</details>",
                "",
            ]
    out.append(END)
    return "\n".join(out)


INTRO = """What the leaderboard and the funnel cost over a year of a big organisation: 200 reps in 10 teams, 100k deals
with their stage history, 2M activities, on PostgreSQL; through the app and as the same SQL on raw asyncpg, in the
same run (`bench/insights.py`, whose docstring says what each side does), on the large benchmark data set.

```sh
bash .ci/postgres-setup                      # once: PostgreSQL up, role fieldbook (CREATEDB)
.venv/bin/fieldbook bench-data --scale large --if-changed \\
  --database-url postgresql+asyncpg://fieldbook:fieldbook@127.0.0.1:5432/fieldbook_bench
.venv/bin/python -m bench.insights           # measures (~2 min)
.venv/bin/python -m bench.insights --runs 3 --no-write
```
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.insights", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=DEFAULT_DATABASE, help="the database `fieldbook bench-data` loaded")
    parser.add_argument("--runs", type=int, default=7, help="measured requests per scenario")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured requests first")
    parser.add_argument("--budget", type=float, default=60.0, help=f"seconds per scenario, at least {MIN_RUNS} runs")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the Markdown file to write the report into")
    parser.add_argument("--no-write", action="store_true", help="print only; write no report")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs: at least 1")
    _configure_app(args.database)
    started = time.perf_counter()
    if not asyncio.run(_exists(args.database)):
        raise SystemExit(
            f"{args.database} holds no {ORG_NAME!r}: load it with `fieldbook bench-data --scale large --database-url "
            f"{common.sqlalchemy_url(args.database)}`"
        )
    scenarios, facts = asyncio.run(measure(args))
    facts["database"] = args.database
    for t in tables(scenarios):
        console.print(t)
    for s in scenarios:
        for i, text in s.texts.items():
            console.print(f"[bold]{s.name}[/]: statement {i + 1} ({_label(s, i)})")
            console.print(compact(text), markup=False, highlight=False)
    console.print(f"Done in {time.perf_counter() - started:.0f} s")
    if not args.no_write:
        command = "python -m bench.insights " + " ".join(argv if argv is not None else sys.argv[1:])
        common.write_section(
            args.results, (START, END), markdown(scenarios, facts, command.strip()), f"{SECTION}\n\n{INTRO.rstrip()}"
        )
        console.print(f"Written to {args.results}")


async def _exists(database: str) -> bool:
    try:
        conn = await asyncpg.connect(common.dsn(database))
    except asyncpg.InvalidCatalogNameError:
        return False
    try:
        return bool(await conn.fetchval("SELECT 1 FROM organization WHERE name = $1", ORG_NAME))
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
