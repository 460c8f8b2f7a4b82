"""Goals on the write path: what `api.insights.goals.check`, run before every write commits, costs a rep who logs
calls, on SQLite and PostgreSQL in one run.

    python -m bench.goals_write [--requests 200] [--warmup 10] [--rounds 4] [--database fieldbook_goals_write]

**Data.** Each database is made fresh and migrated by Alembic: a SQLite file in a temporary directory and the
PostgreSQL database `--database`. One organisation, "Bench Goals" (Europe/Madrid, EUR), made by the app's
`create_organization` (default pipeline, lost reasons); an admin and one team of a manager and 20 reps. The rep
(`north.rep01`) owns 4,000 companies, 2,400 contacts (one for 60% of the companies) and 20,000 done activities on
them over the last 90 days (calls, e-mails, meetings, notes, tasks; 15% also name the contact), plus 300 planned
tasks; most cards fill most of the completeness fields (`api/clients/completeness.py`), so most cards count as
"well developed" once worked. Each other rep owns 150 companies, 90 contacts and 600 activities, the manager a few. Rows
go in with SQLAlchemy Core bulk inserts on the app's own types; then PostgreSQL gets VACUUM ANALYZE (autovacuum
would do it soon), SQLite nothing (the app never runs ANALYZE).

**Measure.** The app is built by `create_app` and called in-process (httpx + ASGITransport), the rep signed in
through `/api/v1/auth/login`. The rep logs calls, `POST /api/v1/activities {"kind": "call", "company_id": …}` on
one of their companies drawn at random, one after another, in three conditions on the same app: (a) no goal; (b) a
running `calls` goal; (c) a running `well_developed_clients` goal. The conditions take turns, `--rounds` times, each
turn with its share of the `--requests` measured calls (the first turn after `--warmup` unmeasured ones), so that
drift on the machine hits all three alike. Both goals are for everyone who sells, run from 59 days ago to 30 days
ahead and have an unreachable target (10^9), so every check computes the metric and nobody reaches it. The admin
sets each goal through `POST /api/v1/goals` and removes it (`DELETE`, a soft delete) at the end of the turn. Every
statement the app's engine sends is counted and timed (`before_cursor_execute` / `after_cursor_execute`) and
labelled with the function of api/ that sent it and whether `goals.check` was on the stack; `goals.check` itself is
timed by wrapping the registered watcher (which first flushes what the request wrote: the commit would, and the check's
first query would otherwise autoflush it on SQLite and count its INSERTs). The statements that take most of the
check's time are shown with their plan.
"""

import argparse
import asyncio
import contextlib
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import greenlet
from rich.console import Console
from rich.table import Table

from api.benchdata.rows import (
    CITIES,
    COMPANY_A,
    COMPANY_B,
    COMPANY_C,
    DAY,
    FIRST,
    INDUSTRIES,
    KIND_WEIGHTS,
    KINDS,
    LAST,
    OUTCOMES,
    SEGMENTS,
    SOURCES,
    SUBJECTS,
    TITLES,
    Ids,
    ts,
)
from bench import common
from bench.common import create_database
from bench.read_paths import percentile

console = Console(width=160)
RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Goals on the write path"
START, END = "<!-- goals-write:start -->", "<!-- goals-write:end -->"

DEFAULT_DATABASE = "fieldbook_goals_write"
ORG_NAME = "Bench Goals"
DOMAIN = "goals.bench.example"
TIME_ZONE = "Europe/Madrid"
ADMIN_EMAIL = f"admin@{DOMAIN}"
MANAGER_EMAIL = f"north.manager@{DOMAIN}"
REP_EMAIL = f"north.rep01@{DOMAIN}"
REPS = 20
HISTORY_DAYS = 90
# The rep's book, and each other rep's.
REP_COMPANIES, REP_CONTACT_SHARE, REP_ACTIVITIES, REP_PLANNED = 4_000, 0.6, 20_000, 300
OTHER_COMPANIES, OTHER_CONTACTS, OTHER_ACTIVITIES = 150, 90, 600
WITH_CONTACT = 0.15
# The goals run from GOAL_BACK days ago to GOAL_AHEAD days ahead (the organisation's days), out of reach.
GOAL_BACK, GOAL_AHEAD, UNREACHABLE = 59, 30, 10**9
CHUNK = 2_000
# Modules whose functions run statements for others (the sender is their caller).
HELPERS = ("/api/core/db.py", "/api/insights/sql.py")
GOALS_FILE = "/api/insights/goals.py"
TOP_STATEMENTS = 4
# The report shows the plan of each statement that takes this share of the check's SQL time, or more.
PLAN_SHARE = 0.2


@dataclass(frozen=True)
class Condition:
    key: str
    label: str
    metric: str | None


CONDITIONS = (
    Condition("a", "no goal", None),
    Condition("b", "`calls` goal running", "calls"),
    Condition("c", "`well_developed_clients` goal running", "well_developed_clients"),
)


# Data


@dataclass
class Book:
    """What the load made, and what the measurement needs of it."""

    org_id: uuid.UUID
    rep_id: uuid.UUID
    rep_companies: list[uuid.UUID]
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class Maker:
    def __init__(self, org_id: uuid.UUID, seed: int, now: float, password_hash: str) -> None:
        self.org_id, self.now, self.password_hash = org_id, now, password_hash
        self.rng = random.Random(seed)
        self.ids = Ids(self.rng)
        self.rows: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def record(self, created: float) -> dict[str, Any]:
        at = ts(created)
        return {
            "id": self.ids.at(created),
            "org_id": self.org_id,
            "created_at": at,
            "updated_at": at,
            "version": 1,
            "deleted_at": None,
        }

    def people(self) -> tuple[uuid.UUID, uuid.UUID, list[uuid.UUID]]:
        """The admin, the manager, the reps (the rep first); the team is made with them."""
        from api.core.types import fold

        setup = self.now - 400 * DAY
        team = {**self.record(setup), "name": "North", "parent_id": None, "head_id": None, "go_live_on": None}
        self.rows["team"].append(team)

        def user(email: str, name: str, role: str, team_id: uuid.UUID | None) -> uuid.UUID:
            row = {
                **self.record(setup),
                **{"email": email, "name": name, "name_folded": fold(name), "role": role, "team_id": team_id},
                **{"is_active": True, "password_hash": self.password_hash},
            }
            self.rows["user"].append(row)
            user_id: uuid.UUID = row["id"]
            return user_id

        admin = user(ADMIN_EMAIL, "Admin User", "admin", None)
        manager = user(MANAGER_EMAIL, "North Manager", "manager", team["id"])
        team["head_id"] = manager
        reps = [
            user(
                f"north.rep{i:02d}@{DOMAIN}",
                f"{self.rng.choice(FIRST.split())} {self.rng.choice(LAST.split())} {i}",
                "rep",
                team["id"],
            )
            for i in range(1, REPS + 1)
        ]
        return admin, manager, reps

    def book(self, owner: uuid.UUID, companies: int, contacts: int, activities: int, planned: int) -> list[uuid.UUID]:
        """One seller's companies, contacts and activities; their companies' ids."""
        from api.core.types import fold

        rng = self.rng
        a, b, c = COMPANY_A.split(), COMPANY_B.split(), COMPANY_C.split()
        made: list[dict[str, Any]] = []
        for _ in range(companies):
            n = len(self.rows["company"]) + 1
            name = f"{rng.choice(a)} {rng.choice(b)} {rng.choice(c)} {n}"
            city, country = rng.choice(CITIES)
            # Most cards are complete; some miss a field or two, a few are sparse.
            roll = rng.random()
            missing = 0 if roll < 0.7 else rng.randint(1, 2) if roll < 0.85 else rng.randint(3, 6)
            values = {
                "domain": f"goals{n}.example",
                "phone": f"+349{rng.randrange(10**7, 10**8)}",
                "industry": rng.choice(INDUSTRIES),
                "size": rng.choice((5, 20, 50, 200, 1000)),
                "address": f"Calle {rng.choice(LAST.split())} {rng.randint(1, 200)}",
                "city": city,
                "country": country,
                "segment": rng.choice(SEGMENTS),
                "source": rng.choice(SOURCES),
            }
            for key in rng.sample(sorted(values), missing):
                values[key] = None
            row = {
                **self.record(self.now - rng.uniform(120, 1_200) * DAY),
                **{"name": name, "name_folded": fold(name), "owner_id": owner, "tags": [], "custom": {}},
                **values,
            }
            made.append(row)
        self.rows["company"] += made
        people: dict[uuid.UUID, uuid.UUID] = {}
        for company in rng.sample(made, min(contacts, len(made))):
            first, last = rng.choice(FIRST.split()), rng.choice(LAST.split())
            name = f"{first} {last}"
            row = {
                **self.record(company["created_at"].timestamp() + rng.uniform(0, 20) * DAY),
                **{"name": name, "name_folded": fold(name), "owner_id": owner, "tags": [], "custom": {}},
                "segment": company["segment"] if rng.random() < 0.9 else None,
                "source": company["source"] if rng.random() < 0.9 else None,
                "title": rng.choice(TITLES) if rng.random() < 0.8 else None,
                "company_id": company["id"],
                "emails": [f"{fold(first)}.{fold(last)}.{len(self.rows['contact'])}@example.com"]
                if rng.random() < 0.9
                else [],
                "phones": [f"+346{rng.randrange(10**7, 10**8)}"] if rng.random() < 0.7 else [],
                "email_consent": False,
                "phone_consent": False,
            }
            self.rows["contact"].append(row)
            people[company["id"]] = row["id"]
        # Some clients are called far more than others.
        weights = [min(rng.paretovariate(2.0), 20.0) for _ in made]
        targets = rng.choices(made, weights=weights, k=activities + planned)
        for i, company in enumerate(targets):
            kind = rng.choices(KINDS, weights=KIND_WEIGHTS)[0] if i < activities else "task"
            done = self.now - rng.uniform(0, HISTORY_DAYS) * DAY if i < activities else None
            due = None if done is not None else self.now + rng.uniform(0, 14) * DAY
            contact = people.get(company["id"]) if rng.random() < WITH_CONTACT else None
            call = kind == "call" and done is not None
            self.rows["activity"].append(
                {
                    **self.record(done if done is not None else self.now - rng.uniform(0, 5) * DAY),
                    "kind": kind,
                    "subject": rng.choice(SUBJECTS[kind]),
                    "body": None,
                    "company_id": company["id"],
                    "contact_id": contact,
                    "deal_id": None,
                    "owner_id": owner,
                    "assignee_id": owner,
                    "due_at": ts(due) if due is not None else None,
                    "done_at": ts(done) if done is not None else None,
                    "duration_seconds": rng.randint(20, 1_800) if call else None,
                    "direction": rng.choice(("inbound", "outbound")) if kind == "call" else None,
                    "outcome": rng.choice(OUTCOMES) if call else None,
                    "next_step_id": None,
                    "mentioned_ids": [],
                }
            )
        return [row["id"] for row in made]


async def load(url: str, seed: int) -> Book:
    """A fresh, migrated database with the organisation's people and books."""
    from api.activities.models import Activity
    from api.auth.models import Team, User
    from api.auth.security import hash_password
    from api.auth.service import create_organization
    from api.clients.models import Company, Contact
    from api.core.db import Database, make_engine
    from api.core.migrate import upgrade

    started = time.perf_counter()
    # Alembic runs its own event loop: off this one.
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(url, null_pool=True)
    try:
        async with Database(engine).writer() as session:
            org = await create_organization(
                session,
                name=ORG_NAME,
                settings={"locale": "en", "currency": "EUR", "phone_region": "ES", "time_zone": TIME_ZONE},
            )
            await session.commit()
            org_id = org.id
        maker = Maker(org_id, seed, time.time(), await hash_password(common.PASSWORD))
        _, manager, reps = maker.people()
        rep_companies = maker.book(reps[0], REP_COMPANIES, round(REP_COMPANIES * REP_CONTACT_SHARE), REP_ACTIVITIES, 0)
        for other in reps[1:]:
            maker.book(other, OTHER_COMPANIES, OTHER_CONTACTS, OTHER_ACTIVITIES, 10)
        maker.book(manager, 50, 30, 200, 5)
        # The rep's open tasks, drawn last so they do not shift the draws above.
        _planned(maker, reps[0], rep_companies)
        head = {row["id"]: row.pop("head_id") for row in maker.rows["team"]}
        async with engine.begin() as conn:
            for model in (Team, User, Company, Contact, Activity):
                table = model.__table__  # type: ignore[attr-defined]
                rows = maker.rows[table.name]
                for i in range(0, len(rows), CHUNK):
                    await conn.execute(table.insert(), rows[i : i + CHUNK])
            for team_id, head_id in head.items():
                await conn.execute(
                    Team.__table__.update().where(Team.__table__.c.id == team_id).values(head_id=head_id)
                )  # type: ignore[attr-defined]
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql("VACUUM (ANALYZE)")
    finally:
        await engine.dispose()
    return Book(
        org_id=org_id,
        rep_id=reps[0],
        rep_companies=rep_companies,
        rows={name: len(rows) for name, rows in maker.rows.items()},
        seconds=time.perf_counter() - started,
    )


def _planned(maker: Maker, rep: uuid.UUID, companies: list[uuid.UUID]) -> None:
    """The rep's open tasks, due over the next two weeks."""
    rng = maker.rng
    for _ in range(REP_PLANNED):
        due = maker.now + rng.uniform(0, 14) * DAY
        maker.rows["activity"].append(
            {
                **maker.record(maker.now - rng.uniform(0, 5) * DAY),
                **{"kind": "task", "subject": rng.choice(SUBJECTS["task"]), "body": None},
                **{"company_id": rng.choice(companies), "contact_id": None, "deal_id": None},
                **{"owner_id": rep, "assignee_id": rep, "due_at": ts(due), "done_at": None},
                **{"duration_seconds": None, "direction": None, "outcome": None, "next_step_id": None},
                "mentioned_ids": [],
            }
        )


# The measurement


@dataclass
class Statement:
    sender: str
    in_check: bool
    text: str
    parameters: Any
    ms: float = 0.0


class Probe:
    """Every statement the app's engine sends: who sent it, whether `goals.check` did, and how long it took."""

    def __init__(self) -> None:
        self.statements: list[Statement] = []
        self.check_ms: list[float] = []

    def before(self, conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        parent = greenlet.getcurrent().parent
        frame = parent.gr_frame if parent is not None else sys._getframe(1)
        sender, in_check = "?", False
        while frame is not None:
            name = frame.f_code.co_filename
            if "/api/" in name and not name.endswith(HELPERS) and sender == "?":
                sender = frame.f_code.co_name
            if frame.f_code.co_name == "check" and name.endswith(GOALS_FILE):
                in_check = True
                break
            frame = frame.f_back
        self.statements.append(Statement(sender, in_check, statement, parameters))
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def after(self, conn: Any, _cursor: Any, _statement: str, _parameters: Any, _context: Any, _many: bool) -> None:
        started = conn.info["bench_started"].pop()
        self.statements[-1].ms = (time.perf_counter() - started) * 1000

    def take(self) -> tuple[list[Statement], list[float]]:
        taken = self.statements, self.check_ms
        self.statements, self.check_ms = [], []
        return taken


@contextlib.contextmanager
def timed_check(probe: Probe) -> Iterator[None]:
    """`goals.check`, as registered by create_app, replaced by a wrapper that times it."""
    from api.core import changes
    from api.insights import goals

    original: Callable[..., Awaitable[None]] = goals.check

    async def timed(session: Any, org_id: uuid.UUID, touched: dict[str, set[uuid.UUID]]) -> None:
        # What the request wrote is sent first (the commit would send it anyway): the check's first query would
        # autoflush it, and its INSERTs would count as the check's.
        await session.flush()
        started = time.perf_counter()
        try:
            await original(session, org_id, touched)
        finally:
            probe.check_ms.append((time.perf_counter() - started) * 1000)

    index = changes._watchers.index(original)
    changes._watchers[index] = timed
    try:
        yield
    finally:
        changes._watchers[index] = original


@dataclass
class Measured:
    condition: Condition
    ms: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    in_check: list[int] = field(default_factory=list)
    check_ms: list[float] = field(default_factory=list)
    check_sql_ms: list[float] = field(default_factory=list)
    # (sender, statement) → its times, over the measured requests, for the statements sent inside the check.
    by_statement: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    sample: dict[tuple[str, str], Any] = field(default_factory=dict)
    setup_ms: list[float] = field(default_factory=list)
    progress: str = ""

    def top(self) -> list[tuple[tuple[str, str], float, int]]:
        """The check's statements by their time per request, largest first: (key, ms per request, runs)."""
        n = len(self.ms)
        found = [(key, sum(times) / n, len(times)) for key, times in self.by_statement.items()]
        return sorted(found, key=lambda item: -item[1])


@dataclass
class Run:
    name: str
    url: str
    book: Book
    results: list[Measured] = field(default_factory=list)
    plans: dict[tuple[str, str], str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


async def _login(client: Any, email: str) -> dict[str, str]:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": common.PASSWORD})
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _goal_body(metric: str, today: date) -> dict[str, Any]:
    return {
        "name": f"Bench {metric}",
        "metric": metric,
        "target": UNREACHABLE,
        "starts_on": (today - timedelta(days=GOAL_BACK)).isoformat(),
        "ends_on": (today + timedelta(days=GOAL_AHEAD)).isoformat(),
    }


@dataclass
class Caller:
    """What a condition runs with: the app's client, the rep's and the admin's headers, the probe."""

    client: Any
    rep: dict[str, str]
    admin: dict[str, str]
    probe: Probe
    rng: random.Random
    today: date


async def _call(s: Caller, run: Run, result: Measured, measured: bool) -> None:
    """The rep logs one call on one of their companies."""
    body = {"kind": "call", "company_id": str(s.rng.choice(run.book.rep_companies))}
    started = time.perf_counter()
    response = await s.client.post("/api/v1/activities", json=body, headers=s.rep)
    ms = (time.perf_counter() - started) * 1000
    if response.status_code != 201:
        raise RuntimeError(f"POST /api/v1/activities: {response.status_code} {response.text[:300]}")
    statements, check_ms = s.probe.take()
    if not measured:
        return
    result.ms.append(ms)
    result.statements.append(len(statements))
    inside = [st for st in statements if st.in_check]
    result.in_check.append(len(inside))
    result.check_ms.append(sum(check_ms))
    result.check_sql_ms.append(sum(st.ms for st in inside))
    for st in inside:
        key = (st.sender, st.text)
        result.by_statement[key].append(st.ms)
        result.sample[key] = st.parameters


async def _segment(s: Caller, run: Run, result: Measured, calls: int, warmup: int) -> None:
    """One stretch of calls in one condition: its goal set first (by the admin) and removed after."""
    metric = result.condition.metric
    goal: tuple[str, str] | None = None
    if metric is not None:
        started = time.perf_counter()
        response = await s.client.post("/api/v1/goals", json=_goal_body(metric, s.today), headers=s.admin)
        result.setup_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/v1/goals: {response.status_code} {response.text[:300]}")
        goal = (response.json()["id"], response.headers["ETag"])
    s.probe.take()
    for i in range(warmup + calls):
        await _call(s, run, result, measured=i >= warmup)
    if goal is not None:
        response = await s.client.get(f"/api/v1/goals/{goal[0]}", headers=s.admin)
        response.raise_for_status()
        mine = next(p for p in response.json()["progress"] if p["user_id"] == str(run.book.rep_id))
        if mine["reached_at"] is not None:
            raise RuntimeError("the rep reached an unreachable goal")
        result.progress = f"the rep's {metric}: {mine['value']:,}"
        response = await s.client.delete(f"/api/v1/goals/{goal[0]}", headers={**s.admin, "If-Match": goal[1]})
        if response.status_code != 204:
            raise RuntimeError(f"DELETE /api/v1/goals: {response.status_code} {response.text[:300]}")
    s.probe.take()


async def measure(run: Run, args: argparse.Namespace) -> None:
    import httpx
    from sqlalchemy import event

    from api.main import create_app
    from api.settings import get_settings

    app = create_app(get_settings().model_copy(update={"database_url": run.url}))
    probe = Probe()
    run.results = [Measured(condition) for condition in CONDITIONS]
    async with app.router.lifespan_context(app):
        engine = app.state.db.engine
        event.listen(engine.sync_engine, "before_cursor_execute", probe.before)
        event.listen(engine.sync_engine, "after_cursor_execute", probe.after)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
            s = Caller(
                client,
                rep=await _login(client, REP_EMAIL),
                admin=await _login(client, ADMIN_EMAIL),
                probe=probe,
                rng=random.Random(args.seed),
                today=datetime.now(ZoneInfo(TIME_ZONE)).date(),
            )
            with timed_check(probe):
                # Rounds of (a), (b), (c): drift on the machine (autovacuum, a checkpoint) hits all three alike.
                for round_ in range(args.rounds):
                    calls = args.requests // args.rounds + (args.requests % args.rounds if round_ == 0 else 0)
                    for result in run.results:
                        await _segment(s, run, result, calls, args.warmup if round_ == 0 else 0)
    for result in run.results:
        console.log(
            f"{run.name:<10} ({result.condition.key}) {result.condition.label:<40} "
            f"p50 {percentile(result.ms, 50):7.1f} ms, p95 {percentile(result.ms, 95):7.1f} ms, "
            f"check p50 {percentile(result.check_ms, 50):6.1f} ms, {max(result.statements)} statements; "
            f"{result.progress}"
        )
    await explain(run)


async def explain(run: Run) -> None:
    """The plans of the statements that take most of the check's SQL time (EXPLAIN ANALYZE on PostgreSQL, EXPLAIN
    QUERY PLAN on SQLite), with the parameters of their last run."""
    for result in run.results[1:]:
        check_sql = sum(result.check_sql_ms) / len(result.check_sql_ms)
        for key, per_request, _ in result.top():
            if per_request < PLAN_SHARE * check_sql:
                break
            text, parameters = key[1], result.sample[key]
            if key in run.plans or not text.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            if run.url.startswith("sqlite"):
                run.plans[key] = _sqlite_plan(run.url, text, parameters)
            else:
                run.plans[key] = await _postgres_plan(run.url, text, parameters)


def _sqlite_plan(url: str, text: str, parameters: Any) -> str:
    path = url.split("///", 1)[1]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {text}", parameters or ()).fetchall()
    depth: dict[int, int] = {0: -1}
    lines = []
    for node, parent, _, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + detail)
    return "\n".join(lines)


async def _postgres_plan(url: str, text: str, parameters: Any) -> str:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        async with conn.transaction():
            # As the check runs it: resolve() sets this in the write transaction.
            await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL jit = off")
            # The second of two: the first on a new connection pays for its catalogue lookups.
            for _ in range(2):
                rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {text}", *(parameters or ()))
    finally:
        await conn.close()
    return "\n".join(r[0] for r in rows)


# Reporting


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _n(values: list[int]) -> str:
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low} to {high}"


HEADER = ["database", "condition", "n", "p50 ms", "p95 ms", "p50 ÷ (a)", "p95 ÷ (a)", "statements / request"]
HEADER += ["of them in check", "check p50 ms", "check p95 ms", "check's SQL p50 ms"]


def rows(runs: list[Run]) -> list[list[str]]:
    out = []
    for run in runs:
        base = run.results[0]
        b50, b95 = percentile(base.ms, 50), percentile(base.ms, 95)
        for r in run.results:
            p50, p95 = percentile(r.ms, 50), percentile(r.ms, 95)
            out.append(
                [
                    run.name,
                    f"({r.condition.key}) {r.condition.label}",
                    str(len(r.ms)),
                    _ms(p50),
                    _ms(p95),
                    f"{p50 / b50:.2f}x",
                    f"{p95 / b95:.2f}x",
                    _n(r.statements),
                    _n(r.in_check),
                    _ms(percentile(r.check_ms, 50)),
                    _ms(percentile(r.check_ms, 95)),
                    _ms(percentile(r.check_sql_ms, 50)),
                ]
            )
    return out


def _label(key: tuple[str, str]) -> str:
    sender, text = key
    words = " ".join(text.split())
    if sender == "cards":
        kind = "company" if "FROM company" in words else "contact" if "FROM contact" in words else "?"
        return f"cards: {kind} completeness per owner" if "GROUP BY" in words else "cards: custom fields"
    if "plan_cache_mode" in words:
        return f"{sender}: SET LOCAL plan_cache_mode"
    return sender


def _short(text: str, width: int = 90) -> str:
    words = " ".join(text.split())
    return words if len(words) <= width else words[: width - 1] + "…"


def top_rows(runs: list[Run]) -> list[list[str]]:
    out = []
    for run in runs:
        for r in run.results[1:]:
            total = percentile(r.ms, 50)
            check_sql = sum(r.check_sql_ms) / len(r.check_sql_ms)
            for i, (key, per_request, count) in enumerate(r.top()[:TOP_STATEMENTS]):
                out.append(
                    [
                        run.name,
                        f"({r.condition.key})",
                        str(i + 1),
                        _label(key),
                        f"`{_short(key[1])}`",
                        f"{count / len(r.ms):.0f}",
                        _ms(per_request),
                        f"{per_request / check_sql:.0%}",
                        f"{per_request / total:.0%}",
                    ]
                )
    return out


TOP_HEADER = ["database", "cond.", "#", "sent by", "statement", "runs / request", "ms / request (mean)"]
TOP_HEADER += ["of check's SQL", "of request p50"]


def tables(runs: list[Run]) -> list[Table]:
    t = Table(title="POST /api/v1/activities (a call) by the rep, ms")
    for name in HEADER:
        t.add_column(name, justify="left" if name in ("database", "condition") else "right")
    for row in rows(runs):
        t.add_row(*row)
    top = Table(title="The check's heaviest statements")
    for name in TOP_HEADER:
        top.add_column(name)
    for row in top_rows(runs):
        top.add_row(*row)
    return [t, top]


def _md(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in body)]


def _facts(runs: list[Run]) -> list[str]:
    import sqlalchemy

    cpu = next((line.split(":", 1)[1].strip() for line in _lines("/proc/cpuinfo") if line.startswith("model name")), "")
    out = [
        f"- {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, "
        f"SQLite {sqlite3.sqlite_version}, PostgreSQL {runs[0].extra.get('postgres', '?') if runs else '?'}"
    ]
    for run in runs:
        rows_ = ", ".join(f"{n:,} {t}" for t, n in run.book.rows.items())
        out.append(
            f"- {run.name}: loaded in {run.book.seconds:.0f} s ({rows_}); measured in {run.extra['seconds']:.0f} s"
        )
    for run in runs:
        for r in run.results[1:]:
            out.append(
                f"- {run.name} ({r.condition.key}): setting the goal (`POST /api/v1/goals`, which checks everyone) "
                f"took {_ms(percentile(r.setup_ms, 50))} ms (median of {len(r.setup_ms)}); after the calls, "
                f"{r.progress}"
            )
    return out


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def markdown(runs: list[Run], command: str, args: argparse.Namespace, total_s: float) -> str:
    load = os.getloadavg()
    out = [
        START,
        f"_Generated by `{command}` at {datetime.now(UTC).isoformat(timespec='seconds')} in {total_s:.0f} s; "
        "the text between the markers is rewritten on each run._",
        "",
        *_facts(runs),
        f"- per condition: {args.warmup} warm-up and {args.requests} measured requests, one at a time; load average "
        f"(1/5/15 min) at the end: {' / '.join(f'{v:.2f}' for v in load)}",
        "",
        "#### One call logged (`POST /api/v1/activities`), ms",
        "",
        *_md(HEADER, rows(runs)),
        "",
        "`p50 ÷ (a)`: against the same database with no goal. `statements / request`: every statement the app's "
        "engine sent for one request (sign-in check, organisation lock, the write, change log, feed, check); "
        "`of them in check`: those sent by `goals.check`. `check`: the time inside `goals.check`, Python included, "
        "which runs in the write transaction, under the organisation's row lock, before the commit; `check's SQL`: "
        "the time its statements took in the driver's execute (the rows' fetch and the statements' making are the "
        "rest).",
        "",
        "#### Where the check's time goes",
        "",
        "The statements `goals.check` sent, by their time per request (mean over the measured requests); below, the "
        f"plans of those that take {PLAN_SHARE:.0%}+ of the check's SQL.",
        "",
        *_md(TOP_HEADER, top_rows(runs)),
        "",
    ]
    for run in runs:
        for key, plan in run.plans.items():
            out += [
                f"<details><summary>{run.name}: {_label(key)}</summary>",
                "",
                "```sql",
                key[1].strip(),
                "```",
                "",
                "```",
                plan,
                "```",
                "",
                "</details>",
                "",
            ]
    out.append(END)
    return "\n".join(out)


INTRO = """What `api.insights.goals.check` adds to a write: it runs in every write transaction, under the
organisation's row lock, before the commit. A rep with a big book (4,000 companies, 20k activities in 90 days)
logs calls through the API with no goal running, with a `calls` goal, and with a `well_developed_clients` goal,
on SQLite and PostgreSQL in one run (`bench/goals_write.py`, whose docstring says how the data is made).

```sh
.venv/bin/python -m bench.goals_write             # makes both databases and measures: ~70 s
.venv/bin/python -m bench.goals_write --requests 50 --no-write
```
"""


async def _server_version(database: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(common.dsn(database))
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def run_all(args: argparse.Namespace, directory: Path) -> list[Run]:
    runs = []
    backends = [("SQLite", f"sqlite+aiosqlite:///{directory}/goals_write.db")]
    if not args.sqlite_only:
        backends.append(("PostgreSQL", common.sqlalchemy_url(args.database)))
    for name, url in backends:
        if url.startswith("postgresql"):
            await create_database(args.database)
        book = await load(url, args.seed)
        console.log(f"{name}: loaded in {book.seconds:.0f} s: {book.rows}")
        run = Run(name, url, book)
        started = time.perf_counter()
        await measure(run, args)
        run.extra["seconds"] = time.perf_counter() - started
        if url.startswith("postgresql"):
            run.extra["postgres"] = await _server_version(args.database)
        runs.append(run)
    if runs[-1].extra.get("postgres"):
        runs[0].extra["postgres"] = runs[-1].extra["postgres"]
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.goals_write", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="measured calls per condition")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured calls first, per condition")
    parser.add_argument("--rounds", type=int, default=4, help="(a), (b), (c) in turn this many times")
    parser.add_argument("--database", default=DEFAULT_DATABASE, help="PostgreSQL database to (re)create")
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--results", type=Path, default=RESULTS, help="the Markdown file to write the report into")
    parser.add_argument("--no-write", action="store_true", help="print only; write no report")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.requests < 2 * args.rounds:
        parser.error("--requests: at least 2 per round; --rounds: at least 1")
    # Before anything reads the settings (get_settings is cached): production, with the bench's secret.
    os.environ["FIELDBOOK_ENV"] = "production"
    os.environ["FIELDBOOK_SECRET_KEY"] = common.SECRET_KEY
    os.environ["FIELDBOOK_ACCESS_TOKEN_MINUTES"] = str(24 * 60)
    started = time.perf_counter()
    directory = Path(tempfile.mkdtemp(prefix="fieldbook-goals-write-"))
    try:
        runs = asyncio.run(run_all(args, directory))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    total = time.perf_counter() - started
    for t in tables(runs):
        console.print(t)
    for run in runs:
        for key, plan in run.plans.items():
            console.print(f"[bold]{run.name}[/]: {_label(key)}")
            console.print(key[1].strip(), markup=False, highlight=False)
            console.print(plan, markup=False, highlight=False)
    console.print(f"Done in {total:.0f} s")
    if not args.no_write:
        command = "python -m bench.goals_write " + " ".join(argv if argv is not None else sys.argv[1:])
        common.write_section(
            args.results,
            (START, END),
            markdown(runs, command.strip(), args, total),
            f"{SECTION}\n\n{INTRO.rstrip()}",
        )
        console.print(f"Written to {args.results}")


if __name__ == "__main__":
    main()
