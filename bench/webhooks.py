"""Webhooks (issue 8): what the outbox adds to a write, and how fast the worker delivers what it holds, on SQLite and
PostgreSQL in one run.

    python -m bench.webhooks [--writes 200] [--events 1000] [--db sqlite|postgres|both] [--rounds 20]

**Databases.** Each part starts on a fresh database migrated by Alembic (`api.core.migrate.upgrade`): a SQLite file
in a temporary directory, or the PostgreSQL database `--database` (dropped and made again, and dropped at the end).
One organisation, "Bench Webhooks", made by the app's `create_organization`, and its admin by `create_user`.

**The write path.** The app is built by `create_app` (as in production, with the in-process webhook worker off, so
nothing is delivered, and rate limits far above what the run sends) and called in-process through httpx's
ASGITransport, the admin signed in through `/api/v1/auth/login`. The admin creates companies, `POST
/api/v1/companies {"name": …}`, one after another, in four conditions on the same app: (a) no webhook endpoint;
(b) one endpoint subscribed to `*`; (c) five endpoints, subscribed to `*`, `company.*`, `deal.*`, `*.created` and
`company.created` (four of them want `company.created`); (ref) the outbox's listener taken out of
`api.core.changes` (the write path as it was before issue 8: no snapshot of the record, no endpoint query). The
endpoints point at a public IP literal, so the API accepts them, and are made through `POST /api/v1/webhooks` at the
start of the condition's turn and deleted at its end. The conditions take turns, `--rounds` times, each turn with
its share of the `--writes` measured writes (the first turn after `--warmup` unmeasured ones), so that drift on the
machine hits all alike. Every statement the app's engine sends is counted and its execute timed
(`before_cursor_execute` / `after_cursor_execute`); those that name a `webhook_` table are the outbox's.
`outbox.collect` (which runs before the commit: the endpoints' query, the filters, the events' bodies) is timed by
wrapping the registered listener; the events' INSERT is sent by the commit's flush, after it.

**Delivery.** `--events` events for one endpoint whose URL is a receiver on 127.0.0.1 (uvicorn in a child process,
so it does not share this process's interpreter; it answers every request with the status its path names and "ok"),
with `webhook_allow_loopback`. The first event comes from a company created through the API; the others are written
by `outbox.enqueue` with that event's data, in one transaction, all due at once. Then `worker.deliver_due` (the
worker's round: claim what is due, up to `worker.BATCH`, send it, `worker.CONCURRENCY` at a time, settle it) runs
until it finds nothing due, with the worker's own httpx client; `claim` and `settle` are timed by wrapping them.
Once with the receiver answering 200 (every event delivered), then, for a second endpoint with the same number of
events, 500 (every attempt logged and the event rescheduled; the retry base is raised to an hour so each event is
attempted once). The attempts' own `latency_ms` is read back from `webhook_delivery`, and the drain's statements are
counted by kind. Both parts record the process's CPU time (all its threads; PostgreSQL's work is not in it) and the
load average, since other work on the machine stretches wall times. Report to stdout and between the markers of the
"Webhooks (issue 8)" section of bench/RESULTS.md.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import common
from bench.common import create_database
from bench.read_paths import percentile

console = Console(width=160)
RESULTS = Path(__file__).with_name("RESULTS.md")
ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Webhooks (issue 8)"
START, END = "<!-- webhooks:start -->", "<!-- webhooks:end -->"

DEFAULT_DATABASE = "fieldbook_webhooks"
ORG_NAME = "Bench Webhooks"
DOMAIN = "webhooks.bench.example"
ADMIN_EMAIL = f"admin@{DOMAIN}"
# A public address (example.com's old one), so the API takes it; nothing is ever sent there (no worker runs).
PUBLIC_URL = "https://93.184.216.34/bench"
# Far above anything the run sends: the limiter still runs on every request, and never refuses one.
RATE_LIMITS: dict[str, Any] = {"rate_limit_per_minute": 1_000_000, "rate_limit_burst": 1_000_000}
# The delivery part: a failed attempt is retried in 30-60 min, after the drain, so each event is attempted once.
RETRY_BASE_SECONDS = 3600.0
CHUNK = 500


@dataclass(frozen=True)
class Condition:
    key: str
    label: str
    # None: the outbox's listener is taken out (the write path before issue 8).
    patterns: tuple[str, ...] | None


CONDITIONS = (
    Condition("a", "0 endpoints", ()),
    Condition("b", "1 endpoint: `*`", ("*",)),
    Condition(
        "c",
        "5 endpoints, 4 want `company.created`",
        ("*", "company.*", "deal.*", "*.created", "company.created"),
    ),
    Condition("ref", "no outbox listener (before issue 8)", None),
)
STATUSES = (200, 500)


# The databases


def _backends(args: argparse.Namespace) -> list[str]:
    return [name for name, key in (("SQLite", "sqlite"), ("PostgreSQL", "postgres")) if args.db in (key, "both")]


async def fresh(name: str, directory: Path, database: str) -> str:
    """The URL of a new database, migrated, with the organisation and its admin."""
    from api.auth.models import Role
    from api.auth.principals import Principal
    from api.auth.schemas import UserCreate
    from api.auth.service import create_organization, create_user
    from api.core.db import Database, commit, make_engine
    from api.core.migrate import upgrade

    if name == "SQLite":
        path = directory / "webhooks.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        await create_database(database)
        url = common.sqlalchemy_url(database)
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(url, null_pool=True)
    try:
        async with Database(engine).writer() as session:
            org = await create_organization(session, name=ORG_NAME)
            await create_user(
                session=session,
                principal=Principal.system(org.id),
                data=UserCreate(email=ADMIN_EMAIL, name="Admin User", role=Role.admin, password=common.PASSWORD),
            )
            await commit(session, None)
    finally:
        await engine.dispose()
    return url


async def _drop_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(common.dsn("postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _server_version(database: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(common.dsn(database))
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


# What every part measures with


@dataclass
class Statement:
    text: str
    ms: float = 0.0

    @property
    def is_outbox(self) -> bool:
        return "webhook_" in self.text


class Probe:
    """Every statement the app's engine sends, and how long its execute took."""

    def __init__(self) -> None:
        self.statements: list[Statement] = []
        self.collect_ms: list[float] = []

    def before(self, conn: Any, _cursor: Any, statement: str, _parameters: Any, _context: Any, _many: bool) -> None:
        self.statements.append(Statement(statement))
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def after(self, conn: Any, _cursor: Any, _statement: str, _parameters: Any, _context: Any, _many: bool) -> None:
        started = conn.info["bench_started"].pop()
        self.statements[-1].ms = (time.perf_counter() - started) * 1000

    def take(self) -> tuple[list[Statement], list[float]]:
        taken = self.statements, self.collect_ms
        self.statements, self.collect_ms = [], []
        return taken


@contextlib.contextmanager
def probed(engine: Any, probe: Probe) -> Iterator[None]:
    from sqlalchemy import event

    event.listen(engine.sync_engine, "before_cursor_execute", probe.before)
    event.listen(engine.sync_engine, "after_cursor_execute", probe.after)
    try:
        yield
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", probe.before)
        event.remove(engine.sync_engine, "after_cursor_execute", probe.after)


@contextlib.contextmanager
def timed_collect(probe: Probe) -> Iterator[Callable[[bool], None]]:
    """`outbox.collect`, as `api.hooks.install` registered it, replaced by a wrapper that times it; the function
    yielded takes the outbox out of `api.core.changes` (False: no listener, no entity followed, so no snapshot)
    and puts it back (True)."""
    from api.core import changes
    from api.webhooks import outbox

    original: Callable[..., Awaitable[None]] = outbox.collect

    async def timed(*args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        try:
            await original(*args, **kwargs)
        finally:
            probe.collect_ms.append((time.perf_counter() - started) * 1000)

    index = changes._listeners.index(original)
    changes._listeners[index] = timed
    # The entities listeners follow (when changes keeps them): without any, records carry no snapshot.
    followed: set[str] | None = getattr(changes, "_followed", None)
    kept = set(followed or ())

    def switch(on: bool) -> None:
        if on and timed not in changes._listeners:
            changes._listeners.insert(index, timed)
            if followed is not None:
                followed.update(kept)
        elif not on and timed in changes._listeners:
            changes._listeners.remove(timed)
            if followed is not None:
                followed.clear()

    try:
        yield switch
    finally:
        switch(True)
        changes._listeners[changes._listeners.index(timed)] = original


def _cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of this process (all its threads), or of `pid` (from /proc)."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _settings(url: str, **extra: Any) -> Any:
    from api.settings import Settings

    # The environment gives the rest (production, the bench's secret: see main).
    return Settings(database_url=url, webhook_worker=False, **RATE_LIMITS, **extra)


async def _login(client: Any) -> dict[str, str]:
    response = await client.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": common.PASSWORD})
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _endpoint(client: Any, admin: dict[str, str], url: str, patterns: list[str]) -> str:
    response = await client.post("/api/v1/webhooks", json={"url": url, "events": patterns}, headers=admin)
    if response.status_code != 201:
        raise RuntimeError(f"POST /api/v1/webhooks: {response.status_code} {response.text[:300]}")
    endpoint_id: str = response.json()["id"]
    return endpoint_id


async def _delete_endpoint(client: Any, admin: dict[str, str], endpoint_id: str) -> None:
    response = await client.delete(f"/api/v1/webhooks/{endpoint_id}", headers=admin)
    if response.status_code != 204:
        raise RuntimeError(f"DELETE /api/v1/webhooks: {response.status_code} {response.text[:300]}")


async def _company(client: Any, admin: dict[str, str], n: int) -> dict[str, Any]:
    body = {"name": f"Transportes Bench {n:05d} {uuid.uuid4().hex[:6]}"}
    response = await client.post("/api/v1/companies", json=body, headers=admin)
    if response.status_code != 201:
        raise RuntimeError(f"POST /api/v1/companies: {response.status_code} {response.text[:300]}")
    company: dict[str, Any] = response.json()
    return company


async def _count_events(db: Any) -> int:
    import sqlalchemy as sa

    async with db.reader() as session:
        return int((await session.execute(sa.text("SELECT count(*) FROM webhook_event"))).scalar_one())


# Part 1: the write path


@dataclass
class Measured:
    condition: Condition
    ms: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)
    outbox: list[int] = field(default_factory=list)
    outbox_sql_ms: list[float] = field(default_factory=list)
    collect_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    writes: int = 0
    events: int = 0
    loads: list[float] = field(default_factory=list)


async def _turn(s: dict[str, Any], result: Measured, switch: Callable[[bool], None], writes: int, warmup: int) -> None:
    """One stretch of writes in one condition: its endpoints made first (by the admin) and deleted after."""
    client, admin, probe, db = s["client"], s["admin"], s["probe"], s["db"]
    patterns = result.condition.patterns
    endpoints = [
        await _endpoint(client, admin, f"{PUBLIC_URL}/{i}", [pattern]) for i, pattern in enumerate(patterns or ())
    ]
    events_before = await _count_events(db)
    switch(patterns is not None)
    result.loads.append(os.getloadavg()[0])
    try:
        for i in range(warmup + writes):
            probe.take()
            cpu = _cpu_seconds()
            started = time.perf_counter()
            await _company(client, admin, s["n"])
            ms = (time.perf_counter() - started) * 1000
            cpu = _cpu_seconds() - cpu
            s["n"] += 1
            statements, collect_ms = probe.take()
            if i < warmup:
                continue
            result.ms.append(ms)
            result.cpu_s += cpu
            result.statements.append(len(statements))
            outbox = [st for st in statements if st.is_outbox]
            result.outbox.append(len(outbox))
            result.outbox_sql_ms.append(sum(st.ms for st in outbox))
            result.collect_ms.extend(collect_ms)
    finally:
        switch(True)
    result.writes += warmup + writes
    result.events += await _count_events(db) - events_before
    for endpoint_id in endpoints:
        await _delete_endpoint(client, admin, endpoint_id)


async def write_path(url: str, args: argparse.Namespace) -> list[Measured]:
    import httpx

    from api.main import create_app

    app = create_app(_settings(url))
    probe = Probe()
    results = [Measured(condition) for condition in CONDITIONS]
    async with app.router.lifespan_context(app):
        db = app.state.db
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
            s = {"client": client, "admin": await _login(client), "probe": probe, "db": db, "n": 0}
            with probed(db.engine, probe), timed_collect(probe) as switch:
                # Rounds of every condition in turn: drift on the machine (autovacuum, a checkpoint, other
                # processes) hits all alike.
                for round_ in range(args.rounds):
                    writes = args.writes // args.rounds + (args.writes % args.rounds if round_ == 0 else 0)
                    for result in results:
                        await _turn(s, result, switch, writes, args.warmup if round_ == 0 else 0)
    return results


# Part 2: delivery


@dataclass
class Drained:
    status: int
    events: int = 0
    rounds: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0
    receiver_cpu_s: float = 0.0
    load: float = 0.0
    claim_ms: list[float] = field(default_factory=list)
    settle_ms: list[float] = field(default_factory=list)
    round_ms: list[float] = field(default_factory=list)
    statements: int = 0
    # What the drain sent, by statement kind ("UPDATE webhook_event"): how many.
    census: Counter[str] = field(default_factory=Counter)
    latency_ms: list[int] = field(default_factory=list)
    outcome: str = ""


@contextlib.contextmanager
def timed_worker(drained: list[Drained]) -> Iterator[None]:
    """`worker.claim` and `worker.settle`, which `deliver_due` calls by their module names, timed."""
    from api.webhooks import worker

    claim, settle = worker.claim, worker.settle

    async def timed_claim(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await claim(*args, **kwargs)
        finally:
            drained[-1].claim_ms.append((time.perf_counter() - started) * 1000)

    async def timed_settle(*args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        try:
            await settle(*args, **kwargs)
        finally:
            drained[-1].settle_ms.append((time.perf_counter() - started) * 1000)

    worker.claim, worker.settle = timed_claim, timed_settle
    try:
        yield
    finally:
        worker.claim, worker.settle = claim, settle


async def _enqueue(db: Any, endpoint_id: str, data: dict[str, Any], count: int) -> None:
    """`count` events for the endpoint, as the outbox writes them, in one transaction."""
    from api.core.db import commit
    from api.webhooks import outbox
    from api.webhooks.models import WebhookEndpoint

    async with db.writer() as session:
        endpoint = await session.get(WebhookEndpoint, uuid.UUID(endpoint_id))
        for i in range(count):
            outbox.enqueue(session, endpoint, "company.created", data)
            if (i + 1) % CHUNK == 0:
                await session.flush()
        await commit(session, None)


async def _drain(db: Any, settings: Any, http: Any, probe: Probe, drained: Drained, receiver: int) -> None:
    from api.webhooks import worker

    probe.take()
    drained.load = os.getloadavg()[0]
    cpu, receiver_cpu = _cpu_seconds(), _cpu_seconds(receiver)
    started = time.perf_counter()
    ended = started
    while True:
        round_started = time.perf_counter()
        handled = await worker.deliver_due(db, settings, http)
        if not handled:
            break
        ended = time.perf_counter()
        drained.round_ms.append((ended - round_started) * 1000)
        drained.rounds += 1
        drained.events += handled
    drained.seconds = ended - started
    drained.cpu_s = _cpu_seconds() - cpu
    drained.receiver_cpu_s = _cpu_seconds(receiver) - receiver_cpu
    statements = probe.take()[0]
    drained.statements = len(statements)
    drained.census = Counter(_kind(st.text) for st in statements)


def _kind(text: str) -> str:
    """A statement's verb and table: `SELECT webhook_event`, `INSERT webhook_delivery`, `BEGIN IMMEDIATE`."""
    words = " ".join(text.split())
    verb = words.split(" ", 1)[0].upper()
    found = re.search(r"\b(?:FROM|INTO|UPDATE)\s+(\w+)", words, re.IGNORECASE)
    if verb not in ("SELECT", "INSERT", "UPDATE", "DELETE") or not found:
        return words[:40]
    joined = re.search(r"\bJOIN\s+(\w+)", words, re.IGNORECASE)
    return f"{verb} {found.group(1)}" + (f" JOIN {joined.group(1)}" if joined else "")


async def _outcome(db: Any, endpoint_id: str, drained: Drained) -> None:
    from sqlalchemy import func
    from sqlmodel import col, select

    from api.webhooks.models import WebhookDelivery, WebhookEvent

    endpoint = uuid.UUID(endpoint_id)
    async with db.reader() as session:
        attempts = (
            await session.execute(
                select(WebhookDelivery.latency_ms, WebhookDelivery.status_code).where(
                    col(WebhookDelivery.endpoint_id) == endpoint
                )
            )
        ).all()
        events = (
            await session.execute(
                select(WebhookEvent.status, WebhookEvent.attempts, func.count())
                .where(col(WebhookEvent.endpoint_id) == endpoint)
                .group_by(col(WebhookEvent.status), col(WebhookEvent.attempts))
                .order_by(col(WebhookEvent.status), col(WebhookEvent.attempts))
            )
        ).all()
    drained.latency_ms = [latency for latency, _ in attempts]
    codes = ", ".join(str(code) for code in sorted({code for _, code in attempts}, key=str))
    by_status = ", ".join(f"{n:,} {status} after {tries} attempt(s)" for status, tries, n in events)
    drained.outcome = f"{len(attempts):,} attempts logged (status {codes}); events: {by_status}"


async def delivery(url: str, args: argparse.Namespace, base_url: str, receiver: int) -> list[Drained]:
    import httpx
    from sqlmodel import col, select

    from api.main import create_app
    from api.webhooks import worker
    from api.webhooks.models import WebhookEvent

    # Loopback is refused in production: this app runs as the tests do.
    settings = _settings(url, env="test", webhook_allow_loopback=True, webhook_retry_base_seconds=RETRY_BASE_SECONDS)
    app = create_app(settings)
    probe = Probe()
    drained: list[Drained] = []
    async with app.router.lifespan_context(app):
        db = app.state.db
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client,
            worker.http_client() as http,
        ):
            admin = await _login(client)
            data: dict[str, Any] = {}
            with probed(db.engine, probe), timed_worker(drained):
                for status in STATUSES:
                    endpoint_id = await _endpoint(client, admin, f"{base_url}/{status}", ["company.*"])
                    count = args.events
                    if not data:
                        # A real event first: the others carry its data.
                        await _company(client, admin, 0)
                        async with db.reader() as session:
                            stmt = select(WebhookEvent).where(col(WebhookEvent.endpoint_id) == uuid.UUID(endpoint_id))
                            data = json.loads((await session.scalars(stmt)).one().body)["data"]
                        count -= 1
                    await _enqueue(db, endpoint_id, data, count)
                    drained.append(Drained(status))
                    await _drain(db, settings, http, probe, drained[-1], receiver)
                    await _outcome(db, endpoint_id, drained[-1])
                    await _delete_endpoint(client, admin, endpoint_id)
    return drained


# The receiver (a child process)


def receiver_main() -> None:
    """Answer every POST with the status the path ends in (`/200`, `/500`) and "ok"; print the port first."""
    import uvicorn

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        status = int(scope["path"].rsplit("/", 1)[1])
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


@contextlib.contextmanager
def receiver() -> Iterator[tuple[str, int]]:
    """The receiver's base URL and process id."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.webhooks", "--receiver"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/hook", process.pid
    finally:
        process.terminate()
        process.wait(10)


# Reporting


@dataclass
class Run:
    name: str
    written: list[Measured] = field(default_factory=list)
    drained: list[Drained] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    postgres: str = ""


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _n(values: list[int]) -> str:
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low} to {high}"


def _loads(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.1f}" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f} to {high:.1f}"


HEADER = ["database", "condition", "n", "p50 ms", "p95 ms", "p50 ÷ (a)", "p95 ÷ (a)", "events / write"]
HEADER += ["statements / write", "of them outbox", "outbox SQL p50 ms", "`collect` p50 ms", "CPU ms / write"]
HEADER += ["load (1 min)"]


def rows(runs: list[Run]) -> list[list[str]]:
    out = []
    for run in runs:
        base = run.written[0]
        b50, b95 = percentile(base.ms, 50), percentile(base.ms, 95)
        for r in run.written:
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
                    f"{r.events / r.writes:.1f}",
                    _n(r.statements),
                    _n(r.outbox),
                    _ms(percentile(r.outbox_sql_ms, 50)),
                    _ms(percentile(r.collect_ms, 50)) if r.collect_ms else "-",
                    f"{r.cpu_s * 1000 / len(r.ms):.1f}",
                    _loads(r.loads),
                ]
            )
    return out


DELIVERY_HEADER = ["database", "receiver answers", "events", "rounds", "wall s", "events / s", "attempt p50 ms"]
DELIVERY_HEADER += ["attempt p95 ms", "round p50 ms", "claim p50 ms", "settle p50 ms", "statements / event"]
DELIVERY_HEADER += ["CPU ms / event (worker / receiver)", "load (1 min) at start"]


def delivery_rows(runs: list[Run]) -> list[list[str]]:
    out = []
    for run in runs:
        for d in run.drained:
            out.append(
                [
                    run.name,
                    f"{d.status}" + (" (delivered)" if d.status < 300 else " (logged, rescheduled)"),
                    f"{d.events:,}",
                    str(d.rounds),
                    f"{d.seconds:.1f}",
                    f"{d.events / d.seconds:,.0f}",
                    _ms(percentile([float(v) for v in d.latency_ms], 50)),
                    _ms(percentile([float(v) for v in d.latency_ms], 95)),
                    _ms(percentile(d.round_ms, 50)),
                    _ms(percentile(d.claim_ms[: d.rounds], 50)),
                    _ms(percentile(d.settle_ms, 50)),
                    f"{d.statements / d.events:.2f}",
                    f"{d.cpu_s * 1000 / d.events:.1f} / {d.receiver_cpu_s * 1000 / d.events:.1f}",
                    f"{d.load:.1f}",
                ]
            )
    return out


def tables(runs: list[Run]) -> list[Table]:
    t = Table(title="POST /api/v1/companies by the admin, ms")
    for name in HEADER:
        t.add_column(name, justify="left" if name in ("database", "condition") else "right")
    for row in rows(runs):
        t.add_row(*row)
    d = Table(title="Delivery: deliver_due rounds until nothing is due")
    for name in DELIVERY_HEADER:
        d.add_column(name, justify="left" if name in ("database", "receiver answers") else "right")
    for row in delivery_rows(runs):
        d.add_row(*row)
    return [t, d]


def _md(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in body)]


def _code() -> str:
    """The commit measured, and whether api/ differed from it when the run started (when its modules were read)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "api"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "unknown (no git)"
    changed = "with uncommitted changes in api/" if dirty.stdout.strip() else "api/ as committed"
    return f"commit {head.stdout.strip()}, {changed}"


def _facts(runs: list[Run], args: argparse.Namespace, load_before: tuple[float, ...], code: str) -> list[str]:
    import httpx
    import sqlalchemy
    import uvicorn

    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as lines:
        cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    postgres = next((run.postgres for run in runs if run.postgres), "not run")
    out = [
        f"- {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, "
        f"SQLite {sqlite3.sqlite_version}, PostgreSQL {postgres}, httpx {httpx.__version__}, uvicorn "
        f"{uvicorn.__version__} (the receiver); code: {code}",
        f"- write path: per condition {args.warmup} warm-up and {args.writes} measured writes, one at a time, in "
        f"{args.rounds} rounds; delivery: {args.events:,} events per receiver answer",
    ]
    for run in runs:
        out.append(
            f"- {run.name}: write path measured in {run.seconds['write']:.0f} s, delivery (events written, then "
            f"drained, twice) in {run.seconds['delivery']:.0f} s"
        )
    for run in runs:
        for d in run.drained:
            census = ", ".join(f"{n:,} `{kind}`" for kind, n in d.census.most_common())
            out.append(f"- {run.name}, receiver answering {d.status}: {d.outcome}; the drain sent {census}")
    out.append(
        "- load average (1/5/15 min): "
        f"{' / '.join(f'{v:.2f}' for v in load_before)} before the run, "
        f"{' / '.join(f'{v:.2f}' for v in os.getloadavg())} after"
    )
    return out


def markdown(
    runs: list[Run], command: str, args: argparse.Namespace, total_s: float, load_before: tuple[float, ...], code: str
) -> str:
    from api.webhooks import worker

    batch, concurrency = worker.BATCH, worker.CONCURRENCY
    return "\n".join(
        [
            START,
            f"_Generated by `{command}` at {datetime.now(UTC).isoformat(timespec='seconds')} in {total_s:.0f} s; "
            "the text between the markers is rewritten on each run._",
            "",
            *_facts(runs, args, load_before, code),
            "",
            "#### One company created (`POST /api/v1/companies`), ms",
            "",
            *_md(HEADER, rows(runs)),
            "",
            "#### Delivery to a receiver on 127.0.0.1",
            "",
            *_md(DELIVERY_HEADER, delivery_rows(runs)),
            "",
            "How to read it. `p50 ÷ (a)`: against the same database with no endpoint. `events / write`: the "
            "`webhook_event` rows each write added (one per endpoint that wants the event). `statements / write`: "
            "every statement the app's engine sent for one request; `of them outbox`: those naming a `webhook_` table"
            " (the endpoints' query; the events' INSERT, one statement however many rows), and `outbox SQL`: their "
            "time in the driver's execute. (c)'s endpoints subscribe to `*`, `company.*`, `deal.*`, `*.created` and "
            "`company.created`. `collect`: the time inside `outbox.collect`, before the commit (its query, the "
            "filters, the bodies' JSON); the INSERT is flushed by the commit. `CPU ms / write`: this process's CPU "
            "per write (PostgreSQL's own work is not in it), steadier than wall time on a loaded machine. `(ref)` is "
            "the write path without the outbox's listener, as before issue 8. Delivery: `events / s` is the events "
            f"handled over the wall time of the `deliver_due` rounds ({batch} claimed a round, {concurrency} sent at "
            "a time); "
            "`attempt` is each attempt's own `latency_ms` from `webhook_delivery` (whole milliseconds, from the "
            "guard's check to the answer read, waits for the event loop); `round`, `claim` and "
            "`settle`: one round, and its claim and settle transactions; `statements / event`: what the engine sent "
            "during the drain, per event. `load`: the machine's 1-minute load average (2 cores: above 2, work waits "
            "for a CPU).",
            END,
        ]
    )


INTRO = """What issue 8's outbox adds to every write (one `webhook_event` row per event and subscribed endpoint, written
in the change's transaction), and how fast `worker.deliver_due` drains the outbox to a receiver that answers 200 or
500, on SQLite and PostgreSQL in one run (`bench/webhooks.py`, whose docstring says how the data is made).

```sh
.venv/bin/python -m bench.webhooks                # both databases: ~2-3 min
.venv/bin/python -m bench.webhooks --writes 40 --events 200 --db sqlite --no-write
```
"""


async def run_all(args: argparse.Namespace, directory: Path) -> list[Run]:
    runs = []
    with receiver() as (base_url, receiver_pid):
        for name in _backends(args):
            run = Run(name)
            url = await fresh(name, directory, args.database)
            started = time.perf_counter()
            run.written = await write_path(url, args)
            run.seconds["write"] = time.perf_counter() - started
            for r in run.written:
                console.log(
                    f"{name:<10} ({r.condition.key}) {r.condition.label:<75} p50 {percentile(r.ms, 50):6.1f} ms, "
                    f"p95 {percentile(r.ms, 95):6.1f} ms, {r.events / r.writes:.1f} events/write, "
                    f"{max(r.statements)} statements"
                )
            url = await fresh(name, directory, args.database)
            started = time.perf_counter()
            run.drained = await delivery(url, args, base_url, receiver_pid)
            run.seconds["delivery"] = time.perf_counter() - started
            for d in run.drained:
                console.log(
                    f"{name:<10} receiver {d.status}: {d.events:,} events in {d.seconds:.1f} s "
                    f"({d.events / d.seconds:,.0f}/s); {d.outcome}"
                )
            if name == "PostgreSQL":
                run.postgres = await _server_version(args.database)
                await _drop_database(args.database)
            runs.append(run)
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=200, help="measured writes per condition")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured writes first, per condition")
    parser.add_argument("--rounds", type=int, default=20, help="the conditions in turn this many times")
    parser.add_argument("--events", type=int, default=1_000, help="events to deliver, per receiver answer")
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--database", default=DEFAULT_DATABASE, help="PostgreSQL database to (re)create and drop")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the Markdown file to write the report into")
    parser.add_argument("--no-write", action="store_true", help="print only; write no report")
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.receiver:
        receiver_main()
        return
    if args.rounds < 1 or args.writes < 2 * args.rounds or args.events < 2:
        parser.error("--writes: at least 2 per round; --rounds: at least 1; --events: at least 2")
    # Before anything reads the settings (get_settings is cached): production, with the bench's secret.
    os.environ["FIELDBOOK_ENV"] = "production"
    os.environ["FIELDBOOK_SECRET_KEY"] = common.SECRET_KEY
    os.environ["FIELDBOOK_ACCESS_TOKEN_MINUTES"] = str(24 * 60)
    load_before, code = os.getloadavg(), _code()
    started = time.perf_counter()
    directory = Path(tempfile.mkdtemp(prefix="fieldbook-webhooks-"))
    try:
        runs = asyncio.run(run_all(args, directory))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    total = time.perf_counter() - started
    for t in tables(runs):
        console.print(t)
    console.print(f"Done in {total:.0f} s")
    if not args.no_write:
        command = "python -m bench.webhooks " + " ".join(argv if argv is not None else sys.argv[1:])
        common.write_section(
            args.results,
            (START, END),
            markdown(runs, command.strip(), args, total, load_before, code),
            f"{SECTION}\n\n{INTRO.rstrip()}",
        )
        console.print(f"Written to {args.results}")


if __name__ == "__main__":
    main()
