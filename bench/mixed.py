"""Mixed load: field managers (reps) working on their phones at once, against the app as `fieldbook serve` runs it
(PostgreSQL with 2 workers, SQLite with 1), each phone sending exactly what the PWA sends. p50/p95/p99 and every
error.

    python -m bench.mixed [--db postgres|sqlite|both] [--users 50] [--seconds 60] [--warmup 5] [--json PATH]

**Data.** PostgreSQL: `--postgres-url` (default: database `fieldbook_bench`, made by `fieldbook bench-data --scale
large`). SQLite: `--sqlite-url` (default: /tmp/fieldbook_bench_small.db, made by `fieldbook bench-data --scale small`
when missing, then reused). `--org` and `--password` name the organisation and its users' password (default "Bench
Main" and `bench.common.PASSWORD`).

**Whom.** The active reps of the organisation `--org` ("Bench Main"), looked up by SQL and ordered by e-mail,
leaving out reps with no client of their own or shared with them (a rep hired today has nothing to work on). Phone
`i` belongs to rep `i mod reps`: with more phones than reps, a rep has two phones (a phone and a tablet), each with
its own sign-in, `client_id` (the same every run, as the same phone comes back each morning: its mutation ids go
on from the last run's), cursor and share of the rep's open deals (so two devices never move the same deal).
Each phone signs in through `POST /api/v1/auth/login` before the run (`bench.loader.sign_in`: two at a time, Argon2
is slow on purpose); a failed sign-in is tried again, up to five times, and each failure is reported.

**What the app sends** (pwa/src). The PWA is offline-first: Today, the client list and search, the client card and
the deal list and board read IndexedDB only and send nothing. Writes (a logged call, a deal moved to another stage)
go to the local database and its outbox at once, and the sync engine (pwa/src/sync/engine.ts) sends them 300 ms
later: `POST /api/v1/sync/push` with the outbox (no Idempotency-Key: each mutation's increasing id makes a push
exactly-once), then `GET /api/v1/sync/pull?client_id=…&limit=500&cursor=…` until `has_more` is false. The engine
also runs push-then-pull when the app comes back to the foreground (after a phone call, `visibilitychange`), every
60 s while shown, and on every `poke` of `GET /api/v1/sync/events` (a server-sent event stream each open app keeps:
a poke when a committed write concerns the phone's working set, at most one a second, and one to every phone after a
change that can take records out of some working set); a sync asked for while
one runs runs once more after it; a failed one is retried with the app's backoff (full jitter, 1 s doubling to 60 s;
after a 429 not before 1 s: the loader keeps no headers to read Retry-After from). The feed screen is the one screen
that reads the server: `GET /api/v1/feed?scope=team`, reading on while a page is empty and has a cursor. A simulated
phone does all of this with the same requests, bodies and headers (bearer token; JSON bodies).

**The phone's state before the run.** A phone works all day from the cursor of its last pull; its first pull, at
sign-in, sends its whole working set (thousands to tens of thousands of records per rep: minutes for 50
phones, which is `bench.sync`'s morning storm, not this benchmark's subject). So each phone starts as after that
first pull: the view a complete first pull leaves on the server (`sync_view`: the version of every record of the
rep's working set, listed by the app's own `api.sync.working_set.members`, encoded by `api.sync.pull`) is written
for its `client_id` while the server starts, and the phone pulls from it. What the phone knows of its data (its
clients: up to 300 of those it owns or that are shared with it; its open deals, their stage and version; the
pipelines' stages) is read by SQL at the same time, and kept up to date from what its pushes and pulls return.

**A simulated user** (its own `random.Random(seed * 1000 + phone)`), from a random moment of the warm-up on: opens
the app (the start-up sync: push, then pull), opens the event stream and starts the 60 s timer (at a random phase),
then loops until the end: picks an action by weight, does it, and thinks: a pause drawn from an exponential
distribution of mean `--think` (2 s), capped at `--think-cap` (10 s). `--no-pokes`: phones without the event stream
(they pull after their own changes, on return to the app and on the timer only). Actions and weights (a rep's day is
mostly looking things up between visits; the writes are the calls and, more rarely, a deal moving on):

- Today (22): the agenda. Local: sends nothing.
- client card (18): one of the rep's clients. Local: sends nothing.
- search (12): the client list filtered by a few letters. Local: sends nothing.
- deals (10): the deal list or board. Local: sends nothing.
- feed (14): the team feed, `GET /api/v1/feed?scope=team` (reading on while a page is empty and has a cursor); a
  quarter of the time the user thinks, scrolls to the end and loads the next page.
- log call (18): one of the rep's clients, as from its card: the user taps the number (the dialler takes over: the
  call lasts one think), comes back to the app (a sync: pull), fills in the call sheet (another think) and saves:
  the mutation `activity.log` (kind call, outbound, a random outcome, a subject, done now, the call's length; a
  follow-up task three mornings out a third of the time) is queued and pushed 300 ms later, then a pull.
- move deal (6): one of the phone's open deals to the next open stage of its pipeline: `deal.move` with
  `base_version`, pushed 300 ms later, then a pull.

At this pace a phone does something every ~3 s and logs a call every ~16 s: a busy hour compressed many times over.
Requests grow with phones and pace; pulls on pokes grow with the writes that concern each phone (its own, and its
colleagues' on its clients), plus every phone once per change that can take records out of a working set.

Each request is a sample: `bench.loader.send` over the phone's own aiohttp session of at most 3 keep-alive
connections (the screen's, the sync engine's, the event stream: as a browser opens them per origin, so no request
waits for another of its phone and a client-side wait never counts as server time), 30 s timeout. Samples sent in
the measured window (after `--warmup`, for `--seconds`) count; every non-2xx answer and every transport failure (a
timeout included) is an error, counted by status with one example, and so are an event stream that fails to open or
drops and a mutation a push answers `conflict` or `rejected`. After the window no sync starts, those under way get
30 s to finish, and what is still queued is pushed (unmeasured, retried for up to 30 s more), so every call and move
a phone made reaches the server; the run then checks by SQL that each phone's `sync_client` row took exactly the
mutations it made.

**Writes.** The data set is reused: phones add calls (and follow-up tasks), move deals forward and leave their last
`sync_view` (the next run's first pull forgets the older ones, as the app's pulls do; a view stored for a pull whose
answer never arrived, a timeout, stays until the app's 30-day retention); nothing is deleted. Moves only go forward
through open stages, so repeated runs slowly push deals towards the last open stage. The server's stderr goes to a
file (kept; its path is printed): the report counts the exceptions in it and shows its end. A database whose run
cannot finish (the server does not start, sign-in keeps failing) is reported as failed, and the other one still
runs.

The report (stdout, and the "Mixed load" section of bench/RESULTS.md between its markers), the chart
bench/charts/mixed.png and, with `--json`, the key numbers for the orchestrator.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import aiohttp
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.db import make_engine
from bench import common, servers
from bench.loader import Request, Sample, percentile, send, session, sign_in

RESULTS = Path(__file__).with_name("RESULTS.md")
CHART = Path(__file__).with_name("charts") / "mixed.png"
MARKERS = ("<!-- mixed:start -->", "<!-- mixed:end -->")
SECTION = "## Mixed load"
# The small data set (`fieldbook bench-data --scale small`): made there when missing, then reused.
SQLITE_DEFAULT = f"sqlite+aiosqlite:///{Path(tempfile.gettempdir()) / 'fieldbook_bench_small.db'}"
TARGET_MS = 100.0
BUCKET_S = 5

# Action: (weight, what it sends). The docstring says why these weights.
ACTIONS: dict[str, tuple[int, str]] = {
    "today": (22, "nothing (IndexedDB)"),
    "client card": (18, "nothing (IndexedDB)"),
    "search": (12, "nothing (IndexedDB)"),
    "deals": (10, "nothing (IndexedDB)"),
    "feed": (14, "GET /feed?scope=team (+ next page 1 in 4)"),
    "log call": (18, "pull on return, then push activity.log + pull"),
    "move deal": (6, "push deal.move (base_version) + pull"),
}
OUTCOMES = ("connected", "no_answer", "voicemail", "busy")
PUSH_BATCH = 100  # pwa/src/sync/engine.ts
FOREVER = aiohttp.ClientTimeout(total=None, sock_read=None)
PULL_LIMIT = 500
AFTER_CHANGE_S = 0.3
TIMER_S = 60.0
COMPANIES_PER_PHONE = 300
PHONES = uuid.UUID("5b0c1a52-7f3e-4d21-9c3b-6a1f0e2d4c88")  # the namespace of the simulated apps' client ids
DRAIN_S = 30.0  # after the window, how long the syncs under way may take to finish
SIGN_IN_ATTEMPTS = 5


# --- the data a phone starts from -----------------------------------------------------------------------------


@dataclass
class Deal:
    id: str
    version: int
    stage_id: str
    pipeline_id: str


@dataclass
class Rep:
    user_id: uuid.UUID
    email: str
    team_id: uuid.UUID | None
    companies: list[tuple[str, str]] = field(default_factory=list)  # (id, name)
    deals: list[Deal] = field(default_factory=list)


@dataclass
class World:
    """What the run starts from: the organisation, its reps, the pipelines' next open stage after each stage."""

    org_id: uuid.UUID
    reps: list[Rep]
    next_stage: dict[str, str]
    seconds: float = 0.0


def _id(value: Any) -> str:
    return str(uuid.UUID(str(value)))


async def read_world(url: str, org: str, seed: int) -> World:
    """The reps of `org` with their clients and open deals, by SQL through the app's own tables (so ids read the
    same on both dialects)."""
    from api.auth.models import Organization, User
    from api.clients.models import Company
    from api.deals.models import Deal as DealRow
    from api.deals.models import Stage
    from api.sharing.models import Share

    started = time.perf_counter()
    engine = make_engine(url)
    o, u, c, d, s, sh = (m.__table__ for m in (Organization, User, Company, DealRow, Stage, Share))
    try:
        async with engine.connect() as db:
            org_id = await db.scalar(sa.select(o.c.id).where(o.c.name == org))
            if org_id is None:
                raise SystemExit(f"no organisation named {org!r} in {url}")
            users = (
                await db.execute(
                    sa.select(u.c.id, u.c.email, u.c.team_id)
                    .where(u.c.org_id == org_id, u.c.role == "rep", u.c.is_active, u.c.deleted_at.is_(None))
                    .order_by(u.c.email)
                )
            ).all()
            reps = {_id(row.id): Rep(uuid.UUID(_id(row.id)), row.email, row.team_id) for row in users}
            owned = sa.select(c.c.owner_id.label("user_id"), c.c.id, c.c.name).where(
                c.c.org_id == org_id, c.c.deleted_at.is_(None), c.c.owner_id.in_([r.user_id for r in reps.values()])
            )
            shared = (
                sa.select(sh.c.user_id, c.c.id, c.c.name)
                .join(c, sa.and_(c.c.id == sh.c.entity_id, c.c.org_id == sh.c.org_id))
                .where(
                    sh.c.org_id == org_id,
                    sh.c.entity == "company",
                    sh.c.deleted_at.is_(None),
                    c.c.deleted_at.is_(None),
                    sh.c.user_id.in_([r.user_id for r in reps.values()]),
                )
            )
            for row in await db.execute(sa.union(owned, shared)):
                reps[_id(row.user_id)].companies.append((_id(row.id), row.name))
            deals = sa.select(d.c.id, d.c.owner_id, d.c.version, d.c.stage_id, d.c.pipeline_id).where(
                d.c.org_id == org_id,
                d.c.status == "open",
                d.c.deleted_at.is_(None),
                d.c.owner_id.in_([r.user_id for r in reps.values()]),
            )
            for row in await db.execute(deals):
                deal = Deal(_id(row.id), row.version, _id(row.stage_id), _id(row.pipeline_id))
                reps[_id(row.owner_id)].deals.append(deal)
            stages = (
                await db.execute(
                    sa.select(s.c.id, s.c.pipeline_id, s.c.kind)
                    .where(s.c.org_id == org_id, s.c.deleted_at.is_(None))
                    .order_by(s.c.pipeline_id, s.c.position)
                )
            ).all()
    finally:
        await engine.dispose()
    next_stage: dict[str, str] = {}
    for before, after in itertools.pairwise(stages):
        if before.pipeline_id == after.pipeline_id and before.kind == "open" and after.kind == "open":
            next_stage[_id(before.id)] = _id(after.id)
    rng = random.Random(seed)
    working = [r for r in reps.values() if r.companies]
    for rep in working:
        rep.companies.sort()
        rep.companies = rng.sample(rep.companies, min(COMPANIES_PER_PHONE, len(rep.companies)))
        rep.deals.sort(key=lambda deal: deal.id)
    if not working:
        raise SystemExit(f"{org!r} has no active rep with a client in {url}")
    return World(uuid.UUID(_id(org_id)), working, next_stage, time.perf_counter() - started)


async def seed_views(url: str, world: World, phones: list[tuple[Rep, uuid.UUID]]) -> tuple[dict[uuid.UUID, str], int]:
    """Leave, for each phone's client id, the view a complete first pull would have left (the app's working-set
    listing and encoding): the phone pulls from there. Returns the cursors and the records a rep holds (mean)."""
    from api.auth.models import Organization, Role
    from api.auth.principals import Principal
    from api.core.types import utcnow
    from api.sharing.visibility import viewer_for
    from api.sync import pull, working_set
    from api.sync.models import SyncView

    engine = make_engine(url)
    # Two listings at a time (two cores; SQLite reads in parallel on two connections in WAL mode).
    gate = asyncio.Semaphore(2)
    since = working_set.window_start(utcnow())
    by_rep: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for rep, client_id in phones:
        by_rep[rep.user_id].append(client_id)

    async def listing(rep: Rep) -> tuple[Rep, int, bytes]:
        async with gate, AsyncSession(engine) as db:
            principal = Principal(kind="user", org_id=world.org_id, id=rep.user_id, role=Role.rep, team_id=rep.team_id)
            held = await working_set.members(db, await viewer_for(db, principal), since)
        return rep, sum(len(v) for v in held.values()), pull._encode(held, [])

    cursors: dict[uuid.UUID, str] = {}
    try:
        async with AsyncSession(engine) as db:
            # Read before the working set, as a pull does: a write meanwhile leaves the counter behind the view.
            seq = await db.scalar(sa.select(Organization.change_seq).where(Organization.id == world.org_id))
        listed = await asyncio.gather(*(listing(rep) for rep in world.reps if rep.user_id in by_rep))
        async with AsyncSession(engine, expire_on_commit=False) as db:
            for rep, _, entries in listed:
                for client_id in by_rep[rep.user_id]:
                    view = SyncView(
                        org_id=world.org_id,
                        user_id=rep.user_id,
                        client_id=client_id,
                        change_seq=seq or 0,
                        window_start=since,
                        entries=entries,
                    )
                    db.add(view)
                    cursors[client_id] = str(view.id)
            await db.commit()
    finally:
        await engine.dispose()
    return cursors, round(sum(n for _, n, _ in listed) / max(len(listed), 1))


async def taken_mutations(url: str, client_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    from api.sync.models import SyncClient

    engine = make_engine(url)
    try:
        async with engine.connect() as db:
            rows = await db.execute(
                sa.select(SyncClient.client_id, SyncClient.last_mutation_id).where(SyncClient.client_id.in_(client_ids))
            )
            return {uuid.UUID(_id(r.client_id)): r.last_mutation_id for r in rows}
    finally:
        await engine.dispose()


async def server_version(url: str) -> str:
    engine = make_engine(url)
    try:
        async with engine.connect() as db:
            if engine.dialect.name == "postgresql":
                return f"PostgreSQL {await db.scalar(sa.text('SHOW server_version'))}"
            return f"SQLite {await db.scalar(sa.text('SELECT sqlite_version()'))}"
    finally:
        await engine.dispose()


# --- the phones -------------------------------------------------------------------------------------------------


@dataclass
class Errors:
    """Every failure, by kind and status, with the first example of each."""

    counts: Counter[tuple[str, int]] = field(default_factory=Counter)
    examples: dict[tuple[str, int], str] = field(default_factory=dict)

    def add(self, kind: str, status: int, example: str) -> None:
        self.counts[kind, status] += 1
        self.examples.setdefault((kind, status), example[:300])

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class Window:
    base: str
    started: float  # perf_counter at t = 0
    warmup: float
    seconds: float
    samples: list[Sample] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    errors: Errors = field(default_factory=Errors)  # in the window
    late_errors: Errors = field(default_factory=Errors)  # sign-in, warm-up, drain: shown, not in the verdict
    next_stage: dict[str, str] = field(default_factory=dict)  # a pipeline's next open stage after each one
    outcomes: Counter[str] = field(default_factory=Counter)  # what pushes said of each mutation
    pokes: int = 0
    resets: int = 0
    streams_open: int = 0

    def inside(self, at: float) -> bool:
        return self.warmup <= at < self.warmup + self.seconds

    @property
    def end(self) -> float:
        return self.started + self.warmup + self.seconds

    @property
    def closing(self) -> bool:
        """The window is over: no sync starts any more (the syncs under way finish)."""
        return time.perf_counter() >= self.end


class Failure(Exception):
    """A database's run that could not finish (the server failed to start, sign-in kept failing, ...)."""

    def __init__(self, name: str, error: str, server_log: str, log_path: Path) -> None:
        super().__init__(f"{name}: {error}")
        self.name, self.error, self.server_log, self.log_path = name, error, server_log, log_path


class SyncFailed(Exception):
    def __init__(self, retry_after: float = 0.0) -> None:
        self.retry_after = retry_after


class Phone:
    """One installed app: its token, client id, cursor, outbox and sync engine, and the user holding it."""

    def __init__(
        self,
        window: Window,
        rep: Rep,
        deals: list[Deal],
        headers: dict[str, str],
        client_id: uuid.UUID,
        cursor: str,
        rng: random.Random,
    ) -> None:
        self.w = window
        self.rep = rep
        self.deals = deals
        self.headers = headers
        self.client_id = client_id
        self.cursor: str | None = cursor
        self.rng = rng
        # The phone's own connections, as a browser has per origin: the screen's request, the sync engine's and the
        # event stream never wait for each other (a wait for a connection would count as server time).
        self.http = session(3)
        self.outbox: list[dict[str, Any]] = []
        self.mutation_id = self.first_mutation = 0  # the last mutation id this app used, at the start and now
        self.running: asyncio.Future[None] | None = None
        self.again = False
        self.trigger = "start"
        self.failures = 0
        self.soon: asyncio.TimerHandle | None = None
        self.retry: asyncio.TimerHandle | None = None
        self.think_mean = 2.0
        self.think_cap = 10.0
        self.pokes = True

    # Requests.

    async def request(self, request: Request) -> Sample:
        sample = await send(self.http, self.w.base, request, self.w.started, keep_body=True)
        inside = self.w.inside(sample.at)
        if inside:
            self.w.samples.append(replace(sample, body=b""))
        if not 200 <= sample.status < 300:
            detail = sample.error or sample.body[:240].decode(errors="replace")
            (self.w.errors if inside else self.w.late_errors).add(
                request.label, sample.status, f"{request.method} {request.path.split('?')[0]}: {detail}"
            )
        return sample

    def think(self) -> float:
        return min(self.rng.expovariate(1 / self.think_mean), self.think_cap)

    async def pause(self, seconds: float) -> bool:
        """Wait, but not past the end of the window; whether the window is still open."""
        left = self.w.end - time.perf_counter()
        await asyncio.sleep(max(0.0, min(seconds, left)))
        return seconds < left

    # The sync engine (pwa/src/sync/engine.ts): push then pull, one run at a time, once more if asked meanwhile.

    def sync(self, trigger: str) -> asyncio.Future[None]:
        if self.w.closing:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        self.trigger = trigger
        if self.running is not None:
            self.again = True
            return self.running
        self.running = asyncio.ensure_future(self._loop())
        return self.running

    async def _loop(self) -> None:
        try:
            while True:
                self.again = False
                await self._once(self.trigger)
                if not self.again or self.w.closing:
                    return
        finally:
            self.running = None

    async def _once(self, trigger: str) -> None:
        if self.retry is not None:
            self.retry.cancel()
        try:
            await self.push()
            await self.pull(trigger)
            self.failures = 0
        except SyncFailed as failed:
            self.failures += 1
            delay = self.rng.random() * min(60.0, 2.0 ** min(self.failures, 6))
            self.retry = asyncio.get_running_loop().call_later(
                max(delay, failed.retry_after), lambda: self.sync("retry")
            )

    async def push(self) -> None:
        while self.outbox:
            batch = self.outbox[:PUSH_BATCH]
            body = {"client_id": str(self.client_id), "mutations": batch}
            sample = await self.request(Request("POST", "/api/v1/sync/push", self.headers, body, "push"))
            if sample.status != 200:
                raise SyncFailed(_retry_after(sample))
            answer = json.loads(sample.body)
            for result in answer["results"]:
                self.w.outcomes[result["status"]] += 1
                if result["status"] in ("conflict", "rejected"):
                    sent = next(m for m in batch if m["id"] == result["id"])
                    (self.w.errors if self.w.inside(sample.at) else self.w.late_errors).add(
                        f"push: {sent['name']} {result['status']}", 200, json.dumps(result.get("problem"))
                    )
                self._learn("deal", [result["record"]] if result.get("record") else [])
            self.outbox = [m for m in self.outbox if m["id"] > answer["last_mutation_id"]]

    async def pull(self, trigger: str) -> None:
        while True:
            query = f"client_id={self.client_id}&limit={PULL_LIMIT}" + (f"&cursor={self.cursor}" if self.cursor else "")
            sample = await self.request(
                Request("GET", f"/api/v1/sync/pull?{query}", self.headers, label=f"pull: {trigger}")
            )
            if sample.status != 200:
                raise SyncFailed(_retry_after(sample))
            page = json.loads(sample.body)
            if page["reset_required"]:
                # The server no longer knows the cursor: the app starts afresh (a whole first pull).
                self.w.resets += 1
                self.cursor = None
                continue
            self.cursor = page["cursor"]
            self._learn("deal", page["put"].get("deal", []))
            gone = set(page["remove"].get("deal", []))
            if gone:
                self.deals = [d for d in self.deals if d.id not in gone]
            if not page["has_more"]:
                return

    def _learn(self, _entity: str, records: list[dict[str, Any]]) -> None:
        """Keep the phone's deals at the server's versions (what the app's IndexedDB does with pulled records)."""
        mine = {d.id: d for d in self.deals}
        for record in records:
            deal = mine.get(str(record.get("id")))
            if deal is not None and "stage_id" in record and "version" in record:
                deal.version, deal.stage_id = record["version"], record["stage_id"]

    def mutate(self, name: str, args: dict[str, Any], base_version: int | None = None) -> None:
        """A local change: queued in the outbox, pushed 300 ms after the last one (pwa/src/sync/triggers.ts)."""
        self.mutation_id += 1
        mutation: dict[str, Any] = {"id": self.mutation_id, "name": name, "args": args}
        if base_version:
            mutation["base_version"] = base_version
        self.outbox.append(mutation)
        if self.soon is not None:
            self.soon.cancel()
        self.soon = asyncio.get_running_loop().call_later(AFTER_CHANGE_S, lambda: self.sync("after a change"))

    # Background: the event stream and the minute timer.

    async def listen(self) -> None:
        listened = False
        failures = 0
        while not self.w.closing:
            try:
                url = self.w.base + "/api/v1/sync/events"
                async with self.http.get(url, headers=self.headers, timeout=FOREVER) as r:
                    if r.status != 200:
                        raise aiohttp.ClientResponseError(r.request_info, (), status=r.status, message=r.reason or "")
                    failures = 0
                    self.w.streams_open += 1
                    if listened:  # pokes sent while the stream was down are lost: catch up
                        self.sync("poke")
                    listened = True
                    event = ""
                    async for raw in r.content:
                        line = raw.decode().rstrip("\r\n")
                        if line.startswith("event:"):
                            event = line[6:].strip()
                        elif not line:
                            if event == "poke":
                                self.w.pokes += 1
                                self.sync("poke")
                            event = ""
                    raise aiohttp.ClientPayloadError("the server closed the stream")
            except (aiohttp.ClientError, TimeoutError) as exc:
                if self.w.closing:
                    return
                status = exc.status if isinstance(exc, aiohttp.ClientResponseError) else 0
                at = time.perf_counter() - self.w.started
                (self.w.errors if self.w.inside(at) else self.w.late_errors).add(
                    "events stream", status, f"GET /api/v1/sync/events: {type(exc).__name__}: {exc}"
                )
                failures += 1
            await asyncio.sleep(min(60.0, 2.0 * 2 ** min(failures, 5)))

    async def tick(self) -> None:
        await asyncio.sleep(self.rng.uniform(0, TIMER_S))
        while True:
            self.sync("timer")
            await asyncio.sleep(TIMER_S)

    # The user.

    async def live(self) -> None:
        names = list(ACTIONS)
        weights = [w for w, _ in ACTIONS.values()]
        await asyncio.sleep(self.rng.uniform(0, self.w.warmup))
        background = [asyncio.ensure_future(self.tick())]
        if self.pokes:
            background.append(asyncio.ensure_future(self.listen()))
        try:
            self.sync("start")  # the app shows what IndexedDB holds at once: nobody waits for this sync
            while time.perf_counter() < self.w.end:
                action = self.rng.choices(names, weights)[0]
                if self.w.inside(time.perf_counter() - self.w.started):
                    self.w.actions[action] += 1
                if action == "feed":
                    await self.feed()
                elif action == "log call":
                    await self.log_call()
                elif action == "move deal":
                    self.move_deal()
                await self.pause(self.think())
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)

    async def feed(self) -> None:
        cursor: str | None = None
        for page in range(2):
            items: list[Any] = []
            while True:
                path = "/api/v1/feed?scope=team" + (f"&cursor={cursor}" if cursor else "")
                sample = await self.request(Request("GET", path, self.headers, label="feed"))
                if sample.status != 200:
                    return
                answer = json.loads(sample.body)
                items += answer["items"]
                cursor = answer["next_cursor"]
                if items or not cursor:
                    break
            if page or not cursor or self.rng.random() >= 0.25:
                return
            if not await self.pause(self.think()):  # reads, scrolls to the end, taps "more"
                return

    async def log_call(self) -> None:
        company_id, name = self.rng.choice(self.rep.companies)
        length = self.think()
        if not await self.pause(length):  # on the phone: the dialler has the screen
            return
        self.sync("back in app")  # visibilitychange
        if not await self.pause(self.think()):  # the call sheet
            return
        now = datetime.now(UTC)
        follow_up = None
        if self.rng.random() < 1 / 3:
            due = (now + timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
            follow_up = {"id": _new_id(), "kind": "task", "subject": f"Follow up: {name}", "due_at": _iso(due)}
        self.mutate(
            "activity.log",
            {
                "id": _new_id(),
                "kind": "call",
                "subject": f"Call with {name}",
                "direction": "outbound",
                "outcome": self.rng.choice(OUTCOMES),
                "body": None,
                "done_at": _iso(now),
                "duration_seconds": max(5, round(length * 60)),
                "next_step": follow_up,
                "company_id": company_id,
                "contact_id": None,
                "deal_id": None,
            },
        )

    def move_deal(self) -> None:
        movable = [d for d in self.deals if d.stage_id in self.w.next_stage]
        if not movable:
            return
        deal = self.rng.choice(movable)
        after = self.w.next_stage[deal.stage_id]
        self.mutate("deal.move", {"id": deal.id, "stage_id": after}, base_version=deal.version)
        deal.stage_id = after  # shown at once; the version comes back with the push


def _new_id() -> str:
    from api.core.ids import new_id

    return str(new_id())


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _retry_after(sample: Sample) -> float:
    # The loader keeps no headers; the app's 429 body says when in its detail, the header is what the app reads.
    return 1.0 if sample.status == 429 else 0.0


# --- one database ---------------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    url: str
    workers: int
    phones: int
    reps: int
    users_per_rep: str
    window: Window
    setup: dict[str, float]
    held: int
    engine: str
    load_before: tuple[float, ...]
    load_after: tuple[float, ...]
    mutations_made: int = 0
    mutations_taken: int = 0
    server_log: str = ""
    log_path: Path | None = None
    wall: float = 0.0

    @property
    def samples(self) -> list[Sample]:
        return self.window.samples

    def latencies(self, label: str | None = None) -> list[float]:
        return [s.seconds * 1000 for s in self.samples if label is None or s.label == label]

    @property
    def p95(self) -> float:
        return percentile(self.latencies(), 95)

    @property
    def met(self) -> bool:
        return self.p95 <= TARGET_MS and self.window.errors.total == 0


@contextlib.contextmanager
def child_stderr(out: IO[bytes]) -> Iterator[None]:
    """Child processes started inside the block (the server and its workers) write their stderr to `out` for the
    rest of their lives: they inherit descriptor 2 as it is when they start."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(out.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


async def drive(
    base: str,
    world: World,
    devices: list[tuple[Rep, int]],
    cursors: dict[uuid.UUID, str],
    client_ids: list[uuid.UUID],
    before: dict[uuid.UUID, int],
    setup: dict[str, float],
    args: argparse.Namespace,
) -> tuple[Window, list["Phone"], Counter[uuid.UUID]]:
    """Sign the phones in, let their users work through the window, then let the phones finish what they send."""
    t = time.perf_counter()
    headers: dict[int, dict[str, str]] = {}
    refused = Errors()
    gate = asyncio.Semaphore(2)  # as bench.loader.sign_in: two at a time, Argon2 is slow on purpose

    async def one(i: int) -> None:
        email = devices[i][0].email
        for attempt in range(SIGN_IN_ATTEMPTS):  # as a person would: a failed sign-in is tried again (and counted)
            try:
                async with gate:
                    headers[i] = (await sign_in(base, [email], args.password))[email]
                return
            except aiohttp.ClientError as exc:
                status = exc.status if isinstance(exc, aiohttp.ClientResponseError) else 0
                refused.add("sign-in", status, f"POST /api/v1/auth/login: {type(exc).__name__}: {exc}")
                if attempt == SIGN_IN_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(2.0 * (attempt + 1))

    await asyncio.gather(*(one(i) for i in range(len(devices))))
    setup["sign-in"] = time.perf_counter() - t
    window = Window(base, time.perf_counter(), args.warmup, args.seconds, next_stage=world.next_stage)
    window.late_errors = refused
    per_rep = Counter(rep.user_id for rep, _ in devices)
    phones = []
    for i, ((rep, device), cid) in enumerate(zip(devices, client_ids, strict=True)):
        # Two devices of one rep never move the same deal.
        deals = [d for k, d in enumerate(rep.deals) if k % per_rep[rep.user_id] == device]
        phone = Phone(window, rep, deals, headers[i], cid, cursors[cid], random.Random(args.seed * 1000 + i))
        phone.think_mean, phone.think_cap, phone.pokes = args.think, args.think_cap, args.pokes
        phone.mutation_id = phone.first_mutation = before.get(cid, 0)
        phones.append(phone)
    try:
        await asyncio.gather(*(p.live() for p in phones))
        # The window is over: the syncs under way finish, then what is still queued is pushed (unmeasured).
        for phone in phones:
            for handle in (phone.soon, phone.retry):
                if handle is not None:
                    handle.cancel()
        drained = time.perf_counter() + DRAIN_S
        running = [p.running for p in phones if p.running is not None]
        if running:
            await asyncio.wait(running, timeout=DRAIN_S)
        # As the app would, push until the server has taken everything (for a while: then the check says what not).
        while any(p.outbox for p in phones) and time.perf_counter() < drained + DRAIN_S:
            await asyncio.gather(*(p.push() for p in phones if p.outbox), return_exceptions=True)
            if any(p.outbox for p in phones):
                await asyncio.sleep(1.0)
    finally:
        await asyncio.gather(*(p.http.close() for p in phones))
    return window, phones, per_rep


async def run_one(name: str, url: str, workers: int, args: argparse.Namespace) -> Result:
    started = time.perf_counter()
    load_before = os.getloadavg()
    setup: dict[str, float] = {}
    client_ids: list[uuid.UUID] = []
    before: dict[uuid.UUID, int] = {}

    async def prepare() -> tuple[World, list[tuple[Rep, int]], dict[uuid.UUID, str], int]:
        world = await read_world(url, args.org, args.seed)
        devices = [(world.reps[i % len(world.reps)], i // len(world.reps)) for i in range(args.users)]
        # The same installed apps every run (a rep's phone comes back each morning): their mutation ids go on from
        # where the last run left them, and a new view replaces the last one instead of piling up.
        client_ids.extend(uuid.uuid5(PHONES, f"{rep.user_id}:{device}") for rep, device in devices)
        before.update(await taken_mutations(url, client_ids))
        t = time.perf_counter()
        cursors, held = await seed_views(url, world, [(r, c) for (r, _), c in zip(devices, client_ids, strict=True)])
        setup["read data"], setup["views"] = world.seconds, time.perf_counter() - t
        return world, devices, cursors, held

    # Kept after the run (its path is printed): the evidence when the server failed.
    log_path = Path(tempfile.mkstemp(prefix=f"fieldbook-mixed-{name.lower()}-", suffix=".log")[1])
    with log_path.open("w+b") as log, contextlib.ExitStack() as stack:

        def start() -> str:
            with child_stderr(log):
                return stack.enter_context(servers.app(url, workers=workers))

        # The server starts (seconds of imports per worker) while the phones' data is read and their views written.
        starting = asyncio.ensure_future(asyncio.to_thread(start))
        try:
            try:
                world, devices, cursors, held = await prepare()
            finally:
                base = await starting
            setup["server ready"] = time.perf_counter() - started
            window, phones, per_rep = await drive(base, world, devices, cursors, client_ids, before, setup, args)
        except Exception as exc:
            stack.close()
            log.seek(0)
            raise Failure(name, f"{type(exc).__name__}: {exc}", log.read().decode(errors="replace"), log_path) from exc
        stack.close()  # the server stops (its last words go to the log too)
        log.seek(0)
        server_log = log.read().decode(errors="replace")
    taken = await taken_mutations(url, client_ids)
    result = Result(
        name=name,
        url=url,
        workers=workers,
        phones=args.users,
        reps=len(per_rep),
        users_per_rep="/".join(str(n) for n in sorted(set(per_rep.values()))),
        window=window,
        setup=setup,
        held=held,
        engine=await server_version(url),
        load_before=load_before,
        load_after=os.getloadavg(),
        mutations_made=sum(p.mutation_id - p.first_mutation for p in phones),
        mutations_taken=sum(taken.get(c, 0) - before.get(c, 0) for c in client_ids),
        server_log=server_log,
        log_path=log_path,
        wall=time.perf_counter() - started,
    )
    return result


# --- the report -----------------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "—" if value != value else f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _md(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _kinds(results: list[Result]) -> list[str]:
    order = ["feed", "push", "pull: start", "pull: after a change", "pull: back in app", "pull: poke", "pull: timer"]
    seen = {s.label for r in results for s in r.samples}
    return [k for k in order if k in seen] + sorted(seen - set(order))


def overview_rows(results: list[Result], failures: Sequence[Failure] = ()) -> list[list[str]]:
    rows = [[f.name, "", "", "", "", "", "", "", "", "", "", f"**failed**: {f.error}"] for f in failures]
    for r in results:
        w = r.window
        lat = r.latencies()
        verdict = "**met**" if r.met else f"**missed** (p95 {_ms(r.p95)} ms, {w.errors.total:,} errors)"
        rows.append(
            [
                r.name,
                f"{r.workers} worker{'s' * (r.workers > 1)}",
                f"{r.phones} ({r.reps} reps, {r.users_per_rep} each)",
                f"{len(lat):,}",
                f"{len(lat) / w.seconds:,.1f}",
                f"{sum(w.actions.values()) / w.seconds:,.1f}",
                f"{w.errors.total:,}",
                _ms(percentile(lat, 50)),
                _ms(percentile(lat, 95)),
                _ms(percentile(lat, 99)),
                _ms(max(lat, default=float("nan"))),
                verdict,
            ]
        )
    return rows


OVERVIEW = [
    "database",
    "server",
    "phones",
    "requests",
    "requests/s",
    "actions/s",
    "errors",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "max ms",
    f"p95 ≤ {TARGET_MS:.0f} ms, 0 errors",
]


def kind_rows(results: list[Result]) -> list[list[str]]:
    rows = []
    for kind in _kinds(results):
        for r in results:
            lat = r.latencies(kind)
            if not lat:
                continue
            failed = sum(n for (k, _), n in r.window.errors.counts.items() if k == kind)
            rows.append(
                [
                    kind,
                    r.name,
                    f"{len(lat):,}",
                    f"{len(lat) / len(r.samples):.0%}",
                    f"{failed:,}",
                    _ms(percentile(lat, 50)),
                    _ms(percentile(lat, 95)),
                    _ms(percentile(lat, 99)),
                    _ms(max(lat)),
                ]
            )
    return rows


KINDS = ["request", "database", "n", "share", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms"]


def action_rows(results: list[Result]) -> list[list[str]]:
    rows = []
    for action, (weight, sends) in ACTIONS.items():
        cells = [action, str(weight), sends]
        for r in results:
            cells.append(f"{r.window.actions[action]:,} ({r.window.actions[action] / r.window.seconds:.2f}/s)")
        rows.append(cells)
    return rows


def error_rows(results: list[Result]) -> list[list[str]]:
    rows = []
    for r in results:
        for errors, when in ((r.window.errors, "window"), (r.window.late_errors, "sign-in, warm-up, drain")):
            for (kind, status), n in errors.counts.most_common():
                example = errors.examples[kind, status].replace("|", "\\|").replace("\n", " ")
                rows.append([r.name, when, kind, str(status or "no answer"), f"{n:,}", f"`{example}`"])
    return rows


def sync_lines(results: list[Result]) -> list[str]:
    out = []
    for r in results:
        w = r.window
        pulls = Counter(s.label for s in r.samples if s.label.startswith("pull"))
        why = ", ".join(f"{k.removeprefix('pull: ')} {n:,}" for k, n in pulls.most_common())
        out.append(
            f"- {r.name}: {r.mutations_made:,} mutations made by the phones, {r.mutations_taken:,} taken by the server "
            f"(`sync_client`: {'every one, once' if r.mutations_made == r.mutations_taken else 'MISMATCH'}); push "
            f"outcomes {dict(w.outcomes)}; {w.pokes:,} pokes received ({w.streams_open} streams opened); "
            f"{sum(pulls.values()):,} pulls in the window ({why}); "
            f"{w.resets} cursor resets; each phone's working set: {r.held:,} records (mean over reps)"
        )
    return out


def facts(results: list[Result]) -> list[str]:
    import sqlalchemy

    def first(path: str, key: str) -> str:
        try:
            line = next(x for x in Path(path).read_text().splitlines() if x.startswith(key))
        except (OSError, StopIteration):
            return "?"
        return line.split(":", 1)[1].strip()

    ram = first("/proc/meminfo", "MemTotal")
    gib = f"{int(ram.split()[0]) / 2**20:.1f} GiB" if ram != "?" else "?"
    out = [
        f"- {os.cpu_count()} cores ({first('/proc/cpuinfo', 'model name')}), {gib}, Python "
        f"{platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, aiohttp {aiohttp.__version__}, "
        f"SQLite {sqlite3.sqlite_version}"
    ]
    for r in results:
        s = r.setup
        out.append(
            f"- {r.name}: {r.engine}, `{_safe(r.url)}`; load average (1/5/15 min) "
            f"{' / '.join(f'{v:.2f}' for v in r.load_before)} before, "
            f"{' / '.join(f'{v:.2f}' for v in r.load_after)} after; set-up: data {s['read data']:.1f} s and views "
            f"{s['views']:.1f} s while the server started (ready at {s['server ready']:.1f} s), sign-in "
            f"{s['sign-in']:.1f} s; "
            f"{r.wall:.0f} s in all"
        )
    return out


def _safe(url: str) -> str:
    """The URL without its password."""
    head, sep, tail = url.partition("@")
    if not sep:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.split(':')[0]}@{tail}"


def where_it_goes(results: list[Result]) -> list[str]:
    """Which request kinds make up the slowest 5%: where the p95 comes from."""
    out = []
    for r in results:
        lat = r.latencies()
        if not lat:
            continue
        cut = percentile(lat, 95)
        slow = Counter(s.label for s in r.samples if s.seconds * 1000 >= cut)
        total = sum(slow.values())
        parts = ", ".join(f"{k} {n / total:.0%}" for k, n in slow.most_common(4))
        out.append(f"- {r.name}: the slowest 5% (≥ {_ms(cut)} ms) are {parts}")
    return out


def log_lines(results: Sequence[Result | Failure]) -> list[str]:
    """What the server wrote to stderr: the exceptions (the last line of each traceback), counted."""
    out = []
    for r in results:
        lines = r.server_log.splitlines()
        found = Counter(line[:200] for line in lines if EXCEPTION.match(line))
        said = "; ".join(f"{n} times `{line}`" for line, n in found.most_common(5)) or "no exception"
        out.append(f"- {r.name}: the server wrote {len(lines):,} lines to stderr: {said}")
    return out


EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Timeout|Exit)\w*: ")


def markdown(
    results: list[Result], failures: list[Failure], args: argparse.Namespace, command: str, total: float
) -> str:
    names = " and ".join([*(r.name for r in results), *(f.name for f in failures)])
    errors = error_rows(results)
    out = [
        MARKERS[0],
        f"_Generated by `{command}` at {datetime.now(UTC).isoformat(timespec='seconds')} in {total:.0f} s; the text "
        "between the markers is rewritten on each run._",
        "",
        *facts(results),
        f"- {args.users} phones; {args.warmup:.0f} s warm-up, {args.seconds:.0f} s measured; think time exponential, "
        f"mean {args.think:g} s, capped at {args.think_cap:g} s; event stream and pull on every poke: "
        f"{'yes (as the app)' if args.pokes else 'no (--no-pokes)'}; organisation {args.org!r}; seed {args.seed}",
        "",
        f"#### {names}",
        "",
        *_md(OVERVIEW, overview_rows(results, failures)),
        "",
        "Requests: every request the phones sent in the measured window (sent in it; answered whenever). `actions/s`: "
        "what the users did per second, local screens included (see below: most send nothing). Errors: every "
        "non-2xx answer, transport failure, event stream that failed or dropped, and mutation a push refused or "
        "reported in conflict, in the window.",
        "",
        "#### By request",
        "",
        *_md(KINDS, kind_rows(results)),
        "",
        "`pull: <why>`: what made the sync engine pull: a change on the phone, the user back in the app after a "
        "call, a poke (a write that concerns the phone's data), the minute timer, the app's start.",
        "",
        *where_it_goes(results),
        "",
        "#### Actions",
        "",
        *_md(["action", "weight", "sends", *(r.name for r in results)], action_rows(results)),
        "",
        "#### Sync",
        "",
        *sync_lines(results),
        "",
        "#### Errors",
        "",
        *(_md(["database", "when", "request", "status", "n", "first example"], errors) if errors else ["None."]),
        "",
        *log_lines([*results, *failures]),
        "",
        f"![p95 by request and over time]({CHART.parent.name}/{CHART.name})" if results else "",
        "",
    ]
    for r in [*results, *failures]:
        if r.server_log.strip():
            tail = r.server_log.strip()[-4000:]
            out += [
                f"<details><summary>{r.name}: the server's stderr (last 4 KB)</summary>",
                "",
                "```",
                tail,
                "```",
                "",
                "</details>",
                "",
            ]
    out.append(MARKERS[1])
    return "\n".join(out)


INTRO = """How the app holds up when a whole sales force uses it at once: 50 field managers on their phones, each
doing what the PWA does (reading its local database, logging calls, moving deals, reading the team feed, and the
sync engine's pushes and pulls, including the pull every open app makes when anyone writes), for a minute, against
the app as `fieldbook serve` runs it: 2 workers on PostgreSQL, 1 on SQLite. `bench/mixed.py` says in its
docstring exactly what a simulated user does.

```sh
.venv/bin/python -m bench.mixed                   # both: 50 phones, 5 s warm-up + 60 s each, plus set-up and sign-in
.venv/bin/python -m bench.mixed --no-pokes        # phones without the event stream (no pull on others' writes)
.venv/bin/python -m bench.mixed --db postgres --users 10 --seconds 10 --no-write
.venv/bin/python -m bench.mixed --postgres-url postgresql+asyncpg://…/db --sqlite-url sqlite+aiosqlite:////path/small.db
```"""


def chart(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = _kinds(results)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1.1, 1]})
    height = 0.8 / max(len(results), 1)
    for i, r in enumerate(results):
        values = [percentile(r.latencies(k), 95) for k in kinds]
        ys = [k + i * height for k in range(len(kinds))]
        left.barh(ys, [0 if v != v else v for v in values], height=height, label=r.name)
    left.set_yticks([k + height * (len(results) - 1) / 2 for k in range(len(kinds))], kinds)
    left.invert_yaxis()
    left.axvline(TARGET_MS, color="red", linestyle="--", linewidth=1, label=f"target {TARGET_MS:.0f} ms")
    left.set_xscale("log")
    left.set_xlabel("p95, ms (log)")
    left.set_title("p95 by request")
    left.legend(fontsize=8)
    for r in results:
        buckets: dict[int, list[float]] = defaultdict(list)
        for s in r.samples:
            buckets[int((s.at - r.window.warmup) // BUCKET_S)].append(s.seconds * 1000)
        xs = sorted(buckets)
        line = right.plot(
            [(x + 1) * BUCKET_S for x in xs],
            [percentile(buckets[x], 95) for x in xs],
            marker="o",
            label=f"{r.name} p95",
        )
        right.plot(
            [(x + 1) * BUCKET_S for x in xs],
            [percentile(buckets[x], 50) for x in xs],
            linestyle=":",
            color=line[0].get_color(),
            label=f"{r.name} p50",
        )
    right.axhline(TARGET_MS, color="red", linestyle="--", linewidth=1)
    right.set_yscale("log")
    right.set_xlabel(f"seconds into the measured window ({BUCKET_S} s buckets)")
    right.set_ylabel("ms (log)")
    right.set_title("latency over time")
    right.legend(fontsize=8)
    fig.suptitle(f"Mixed load: {results[0].phones} phones", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def key_numbers(
    results: list[Result], failures: list[Failure], args: argparse.Namespace, total: float
) -> dict[str, Any]:
    """For the orchestrator (bench/run.py reads `databases.<name>.p95/errors/requests`): milliseconds throughout."""
    databases: dict[str, Any] = {}
    for f in failures:
        nan = float("nan")
        databases[f.name] = {"failed": f.error, "requests": 0, "errors": 1, "p50": nan, "p95": nan, "p99": nan}
        databases[f.name]["target_met"] = False
    for r in results:
        lat = r.latencies()
        databases[r.name] = {
            "workers": r.workers,
            "phones": r.phones,
            "requests": len(lat),
            "requests_per_second": len(lat) / r.window.seconds,
            "actions_per_second": sum(r.window.actions.values()) / r.window.seconds,
            "errors": r.window.errors.total,
            "errors_by_status": {f"{k} {s}": n for (k, s), n in r.window.errors.counts.items()},
            "p50": percentile(lat, 50),
            "p95": percentile(lat, 95),
            "p99": percentile(lat, 99),
            "by_request": {
                k: {"n": len(v), "p50": percentile(v, 50), "p95": percentile(v, 95), "p99": percentile(v, 99)}
                for k in _kinds([r])
                if (v := r.latencies(k))
            },
            "target_met": r.met,
            "mutations_made": r.mutations_made,
            "mutations_taken": r.mutations_taken,
            "setup_seconds": r.setup,
            "wall_seconds": r.wall,
        }
    return {
        "users": args.users,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "pokes": args.pokes,
        "think_mean_s": args.think,
        "target": {"p95": TARGET_MS, "errors": 0},
        "wall_seconds": total,
        "databases": databases,
    }


def print_report(results: list[Result], failures: list[Failure]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=170)
    for title, header, rows in (
        ("Mixed load", OVERVIEW, overview_rows(results, failures)),
        ("By request", KINDS, kind_rows(results)),
        ("Actions", ["action", "weight", "sends", *(r.name for r in results)], action_rows(results)),
        ("Errors", ["database", "when", "request", "status", "n", "first example"], error_rows(results)),
    ):
        table = Table(title=title)
        for name in header:
            table.add_column(name.replace("*", ""))
        for row in rows:
            table.add_row(*(c.replace("*", "") for c in row))
        console.print(table)
    for line in [*facts(results), *sync_lines(results), *where_it_goes(results), *log_lines([*results, *failures])]:
        console.print(line, markup=False, highlight=False)
    for r in [*results, *failures]:
        if r.server_log.strip():
            console.print(f"[bold]{r.name}: the server's stderr (last 4 KB; all of it in {r.log_path})[/]")
            console.print(r.server_log.strip()[-4000:], markup=False, highlight=False)


async def run_all(args: argparse.Namespace) -> tuple[list[Result], list[Failure]]:
    runs = []
    if args.db in ("postgres", "both"):
        runs.append(("PostgreSQL", args.postgres_url, 2))
    if args.db in ("sqlite", "both"):
        path = args.sqlite_url.split(":///", 1)[-1]
        if not Path(path).exists():
            # The small data set, made once (a few minutes) and reused by later runs.
            fieldbook = str(Path(sys.executable).with_name("fieldbook"))
            argv = [fieldbook, "bench-data", "--scale", "small", "--database-url", args.sqlite_url]
            print(f"{path} does not exist: making it with {' '.join(argv[1:])}", flush=True)
            subprocess.run(argv, check=True)
        # SQLite has one writer: `fieldbook serve` runs it with one worker.
        runs.append(("SQLite", args.sqlite_url, 1))
    results, failures = [], []
    for name, url, workers in runs:
        try:
            results.append(await run_one(name, url, workers, args))
        except Failure as failure:  # reported, and the other database still runs
            print(f"{name} failed: {failure.error} (the server's stderr: {failure.log_path})", file=sys.stderr)
            failures.append(failure)
    return results, failures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mixed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("postgres", "sqlite", "both"), default="both")
    parser.add_argument("--users", type=int, default=50, help="phones (simulated field managers)")
    parser.add_argument("--seconds", type=float, default=60.0, help="the measured window")
    parser.add_argument("--warmup", type=float, default=5.0, help="phones start at random within it; not measured")
    parser.add_argument("--think", type=float, default=2.0, help="mean think time between actions, s (exponential)")
    parser.add_argument("--think-cap", type=float, default=10.0, help="longest think time, s")
    parser.add_argument("--postgres-url", default=common.sqlalchemy_url(common.DEFAULT_DATABASE))
    parser.add_argument("--sqlite-url", default=SQLITE_DEFAULT, help="the small data set in a SQLite file")
    parser.add_argument("--org", default=common.MAIN_ORG, help="whose reps hold the phones")
    parser.add_argument("--password", default=common.PASSWORD, help="the reps' password")
    parser.add_argument(
        "--pokes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="phones keep the event stream open and pull on every poke, as the app does (--no-pokes: they don't)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="write the key numbers here")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the Markdown file to write the report into")
    parser.add_argument("--no-write", action="store_true", help="print only: no RESULTS.md section, no chart")
    args = parser.parse_args(argv)
    if args.users < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--users ≥ 1, --seconds > 0, --warmup ≥ 0")
    started = time.perf_counter()
    results, failures = asyncio.run(run_all(args))
    total = time.perf_counter() - started
    print_report(results, failures)
    print(f"Done in {total:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(key_numbers(results, failures, args, total), indent=2) + "\n")
    if not args.no_write:
        command = "python -m bench.mixed " + " ".join(argv if argv is not None else sys.argv[1:])
        if results:
            chart(results, CHART)
        report = markdown(results, failures, args, command.strip(), total)
        common.write_section(args.results, MARKERS, report, f"{SECTION}\n\n{INTRO}")
        print(f"Written to {args.results}" + (f" and {CHART}" if results else ""))
    # A database that failed is in the report and the JSON as a missed target; the exit status stays 0 so that an
    # orchestrator running every benchmark goes on to the next.


if __name__ == "__main__":
    main()
