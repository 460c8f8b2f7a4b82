"""Offline sync under load: a morning pull storm and a reconnect push storm, each next to a raw-asyncpg baseline.

    python -m bench.sync [--database fieldbook_sync] [--devices 50] [--concurrency 10] [--reuse]

**Data.** Its own fresh database (not the benchmark data set): one organisation, "Bench Sync", made by the app's
`create_organization` (default pipeline and lost reasons), with products and custom fields through the services;
the rest goes in with COPY, reusing api/benchdata (its row layouts, its id, row and activity generators, and the
drop-and-rebuild of keys and indexes). Teams of ten reps and a manager; each rep owns 500 companies, each with one
contact; five companies of a teammate are shared with each rep; 5 open and 3 closed deals per rep; 5,000
activities per rep about the last 88 days and 800 older ones (92-365 days), made by api/benchdata's generator: 4% of
them still planned instead (due from 14 days ago to 30 days ahead), 0.3% deleted, about 13% by a teammate; 10% about a
deal, 40% about a contact, the rest about a company. Contact points for the duplicate check, one stage event per
deal; no feed events (sync does not read them). One signed-in session per user: tokens are minted for them
directly (`create_access_token`), so nobody pays Argon2 at sign-in. `--reuse` keeps a database made by an earlier
run.

**Pull storm.** One device per rep, all started at once with `--concurrency` in flight: each pulls from no cursor,
1,000 records a page (the maximum), until `has_more` is false, through `create_app` in-process (httpx +
ASGITransport, as `bench.read_paths`). The baseline (`sql`), in the same run and at the same concurrency, follows
the same protocol (api/sync/pull.py) on raw asyncpg, one transaction a page: the per-request reads of the sign-in
and the viewer, then the organisation's counter and the base view in one statement (the app's); when there is no
base view or the counter or the window moved (the first page), the working set listed by the app's own statement
(compiled once from `api.sync.working_set`: same SQL, same parameters), the difference (`pull._difference`) and a
new view (`pull.Entries`: what the app held, and the steps the listing found) stored in one statement that also
forgets the older ones, as the app does on PostgreSQL; otherwise the page goes on through the base view's steps,
counted in the cursor, and writes nothing. The page's steps (`pull._take`) are sent by one statement, built per
combination of kinds as the app's, that writes the whole page with PostgreSQL's JSON functions. Both sides end
holding the same records (checked). The app also takes its caller's rate-limit bucket on every request (an upsert
on a connection of its own); the baseline does not. Since issue 9 the stored view is written only by a listing (it
used to be rewritten, held versions and what was left to send, by every page), and neither side parses a page to
learn what it sent; the baseline changed with the app.

**Push storm.** One push of `--mutations` per device (activity.log calls with an outcome, task.create,
company.update, deal.move, contact.create), all at once with `--concurrency` in flight; then every mutation is
checked to have been applied exactly once (the records, their versions and their change-log rows), and all the
pushes are sent again and must come back `duplicate` with nothing changed. The baseline writes the same rows
(records, change-log rows and the organisation's counter, feed events, stage events, contact points, the deal's
last activity, the app's `sync_client` row: made or locked first, its position written once at the end) with
asyncpg, one transaction per device, at the same concurrency, taking the organisation's lock first as every write
of the app does.

First, one device pulls alone and pushes alone (a few rounds, the sides in turn, warm), with the time of every
statement the app sends, to show where the time goes; `--profile` adds a cProfile of one pull through the app, and
`--pool-probe N` asks the app for N first pages at once. The report goes to stdout and between the markers of
the "Offline sync" section of bench/RESULTS.md (the rest of the file is kept).
"""

import argparse
import asyncio
import cProfile
import functools
import json
import logging
import os
import pstats
import random
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from rich.console import Console
from rich.table import Table

from api.benchdata.plans import Plan
from api.benchdata.postgres import Deferred
from api.benchdata.rows import (
    CITIES,
    COLUMNS,
    COMPANY_A,
    COMPANY_B,
    COMPANY_C,
    DAY,
    INDUSTRIES,
    OUTCOMES,
    PRODUCTS,
    SEGMENTS,
    SOURCES,
    TITLES,
    Generator,
    Org,
    ts,
)
from api.core.types import fold
from bench import common, read_paths
from bench.common import create_database
from bench.read_paths import _avg, _configure_app, percentile

console = Console(width=160)
RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Offline sync"
START, END = "<!-- sync:start -->", "<!-- sync:end -->"

DEFAULT_DATABASE = "fieldbook_sync"
ORG_NAME = "Bench Sync"
DOMAIN = "sync.bench.example"
TEAM_NAMES = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett")
REPS_PER_TEAM = 10
SHARED_PER_REP = 5
OPEN_DEALS, CLOSED_DEALS = 5, 3
OLD_PER_REP = 800
# Recent activities fall within the last RECENT_DAYS days: inside the 90-day window (whole days) with room to spare.
RECENT_DAYS = 88
PULL = "/api/v1/sync/pull"
PUSH = "/api/v1/sync/push"
PAGE = 1000
# One device alone: pulls per side, and pushes on each side after a warm-up one.
ALONE_ROUNDS = 3
# The mix of one device's push, repeated to the size asked for.
MIX = (
    "activity.log",
    "task.create",
    "company.update",
    "activity.log",
    "deal.move",
    "activity.log",
    "contact.create",
    "company.update",
    "task.create",
    "activity.log",
)


# Data


class StormData:
    """The storm's rows, in api/benchdata's layouts (COLUMNS order), made with its Generator's id and row helpers."""

    def __init__(self, gen: Generator, org: Org, args: argparse.Namespace) -> None:
        self.gen, self.org, self.args = gen, org, args
        self.rng = gen.rng
        self.now = gen.now
        self.teams: list[tuple[Any, ...]] = []
        self.users: list[tuple[Any, ...]] = []
        self.heads: list[tuple[uuid.UUID, uuid.UUID]] = []
        self.reps: list[uuid.UUID] = []
        self.companies: list[tuple[Any, ...]] = []
        self.contacts: list[tuple[Any, ...]] = []
        self.deals: list[dict[str, Any]] = []
        self.stage_events: list[tuple[Any, ...]] = []
        self.shares: list[tuple[Any, ...]] = []
        self.sessions: list[tuple[Any, ...]] = []

    def record(self, created: float) -> tuple[Any, ...]:
        return self.gen.record(self.org.id, created)

    def people(self) -> None:
        gen, rng = self.gen, self.rng
        setup = self.now - 800 * DAY
        first, last = gen.first, gen.last

        def user(email: str, name: str, role: str, team: uuid.UUID | None) -> uuid.UUID:
            row = (*self.record(setup), email, name, fold(name), role, team, True, gen.password_hash)
            self.users.append(row)
            user_id: uuid.UUID = row[0]
            return user_id

        user(f"admin@{DOMAIN}", "Admin User", "admin", None)
        teams = -(-self.args.devices // REPS_PER_TEAM)
        for t in range(teams):
            name = TEAM_NAMES[t % len(TEAM_NAMES)] + ("" if t < len(TEAM_NAMES) else str(t))
            team = (*self.record(setup), name.title(), None)
            self.teams.append(team)
            self.heads.append(
                (team[0], user(f"{name}.manager@{DOMAIN}", f"{name.title()} Manager", "manager", team[0]))
            )
            members = []
            for i in range(1, min(REPS_PER_TEAM, self.args.devices - t * REPS_PER_TEAM) + 1):
                person = f"{rng.choice(first)} {rng.choice(last)}"
                members.append(user(f"{name}.rep{i:02d}@{DOMAIN}", person, "rep", team[0]))
            for member in members:
                # api/benchdata's activity generator gives a teammate some of a rep's activities.
                self.org.team_of[member] = members
            self.reps += members
        for row in self.users:
            # One signed-in device per user (the session the minted tokens name).
            self.sessions.append((self.gen.ids.at(self.now), self.org.id, row[0], "bench-sync", ts(self.now)))

    def clients(self) -> dict[uuid.UUID, list[tuple[tuple[Any, ...], tuple[Any, ...]]]]:
        """Each rep's companies, each with one contact: {rep: [(company row, contact row)]}."""
        rng, gen = self.rng, self.gen
        a, b, c = COMPANY_A.split(), COMPANY_B.split(), COMPANY_C.split()
        owned: dict[uuid.UUID, list[tuple[tuple[Any, ...], tuple[Any, ...]]]] = {}
        n = 0
        for rep in self.reps:
            mine = owned.setdefault(rep, [])
            for _ in range(self.args.companies):
                n += 1
                created = self.now - rng.uniform(100, 700) * DAY
                name = f"{rng.choice(a)} {rng.choice(b)} {rng.choice(c)} {n}"
                domain = f"sync{n}.example" if rng.random() < 0.8 else None
                city, country = rng.choice(CITIES)
                company = (
                    *self.record(created),
                    *(name, fold(name), rep, '["vip"]' if rng.random() < 0.05 else "[]"),
                    *(rng.choice(SEGMENTS), rng.choice(SOURCES), "{}", domain, rng.choice(INDUSTRIES)),
                    rng.choice((5, 20, 50, 200, 1000)),
                    f"+349{rng.randrange(10**7, 10**8)}" if rng.random() < 0.7 else None,
                    f"Calle {rng.choice(gen.last)} {rng.randint(1, 200)}",
                    city,
                    country,
                )
                person_first, person_last = rng.choice(gen.first), rng.choice(gen.last)
                person = f"{person_first} {person_last}"
                email = f"{person_first.lower()}.{person_last.lower()}{n}@{domain or 'mail.example'}"
                phones = f'["+346{rng.randrange(10**7, 10**8)}"]' if rng.random() < 0.5 else "[]"
                contact = (
                    *self.record(created + rng.uniform(0, 20) * DAY),
                    *(person, fold(person), rep, "[]", None, rng.choice(SOURCES), "{}", rng.choice(TITLES)),
                    *(company[0], json.dumps([email]), phones, rng.random() < 0.6, rng.random() < 0.4),
                )
                mine.append((company, contact))
                self.companies.append(company)
                self.contacts.append(contact)
        return owned

    def deals_of(self, rep: uuid.UUID, clients: list[tuple[tuple[Any, ...], tuple[Any, ...]]]) -> list[dict[str, Any]]:
        rng, now, org = self.rng, self.now, self.org
        opens = [s for s in org.stages if s["kind"] == "open"]
        won = next(s for s in org.stages if s["kind"] == "won")
        lost = next(s for s in org.stages if s["kind"] == "lost")
        made = []
        for i in range(OPEN_DEALS + CLOSED_DEALS):
            company, contact = rng.choice(clients)
            closed = i >= OPEN_DEALS
            start = now - rng.uniform(5, 80 if not closed else 300) * DAY
            end = rng.uniform(start + DAY, now - DAY) if closed else now
            status = ("won" if rng.random() < 0.5 else "lost") if closed else "open"
            stage = won if status == "won" else lost if status == "lost" else rng.choice(opens)
            entered = end if closed else rng.uniform(start, now - DAY)
            reason = rng.choice(org.lost_reasons) if status == "lost" else None
            deal = {
                "id": self.gen.ids.at(start),
                "created": start,
                "end": end,
                "deleted": None,
                "title": f"{rng.choice(PRODUCTS)} for {company[6]}",
                "company_id": company[0],
                "contact_id": contact[0] if rng.random() < 0.6 else None,
                "stage": stage,
                "owner_id": rep,
                "amount_minor": rng.randint(5, 500) * 10_000,
                "expected_close_on": date.fromtimestamp(start + rng.uniform(30, 90) * DAY),
                "status": status,
                "lost_reason_id": reason["id"] if reason else None,
                "lost_note": None,
                "won_at": ts(end) if status == "won" else None,
                "lost_at": ts(end) if status == "lost" else None,
                "stage_entered_at": entered,
                "last_activity_at": None,
            }
            made.append(deal)
            self.stage_events.append((*self.record(start), deal["id"], None, stage["id"], ts(entered), rep, None))
        self.deals += made
        return made

    def share(self, owned: dict[uuid.UUID, list[tuple[tuple[Any, ...], tuple[Any, ...]]]]) -> None:
        """Each rep sees a few companies of the next rep in their team through a share."""
        for rep in self.reps:
            team = self.org.team_of[rep]
            if len(team) < 2:
                continue
            giver = team[(team.index(rep) + 1) % len(team)]
            for company, _contact in self.rng.sample(owned[giver], SHARED_PER_REP):
                at = self.now - self.rng.uniform(1, 200) * DAY
                self.shares.append((*self.record(at), "company", company[0], rep, giver))

    def activity_targets(
        self, rep: uuid.UUID, clients: list[tuple[tuple[Any, ...], tuple[Any, ...]]], deals: list[dict[str, Any]]
    ) -> Iterator[tuple[Any, ...]]:
        """What `Generator.activities` takes: (company_id, contact_id, deal, owner, earliest, latest) for each of a
        rep's activities, in the window and older: 10% about a deal, 40% about a contact, the rest about a company."""
        rng, now = self.rng, self.now
        recent, old = (now - RECENT_DAYS * DAY, now - 60), (now - 365 * DAY, now - 92 * DAY)
        for count, (earliest, latest) in ((self.args.activities, recent), (OLD_PER_REP, old)):
            for _ in range(count):
                roll = rng.random()
                if roll < 0.1:
                    deal = rng.choice(deals)
                    yield deal["company_id"], deal["contact_id"], deal, rep, earliest, latest
                else:
                    company, contact = rng.choice(clients)
                    yield company[0], contact[0] if roll < 0.5 else None, None, rep, earliest, latest


async def _reference_data(url: str) -> uuid.UUID:
    """The organisation and its reference data, through the services (as the app makes them)."""
    from api.auth.principals import Principal
    from api.auth.service import create_organization
    from api.clients.schemas import CustomFieldCreate
    from api.clients.service import create_custom_field
    from api.core.db import Database, make_engine
    from api.deals.schemas import ProductCreate
    from api.deals.service import create_product

    engine = make_engine(url, null_pool=True)
    try:
        async with Database(engine).writer() as session:
            org = await create_organization(
                session, name=ORG_NAME, settings={"locale": "en", "currency": "EUR", "phone_region": "ES"}
            )
            system = Principal.system(org.id)
            for i, name in enumerate(PRODUCTS):
                data = ProductCreate(name=name, sku=f"SKU-{i:03d}", price_minor=(i + 1) * 25_000)
                await create_product(session=session, principal=system, data=data)
            fields = (
                CustomFieldCreate(entity="company", key="tier", label="Tier", kind="choice", choices=["A", "B", "C"]),
                CustomFieldCreate(entity="contact", key="birthday", label="Birthday", kind="date"),
                CustomFieldCreate(entity="deal", key="po_number", label="PO number", kind="text"),
            )
            for custom in fields:
                await create_custom_field(session=session, principal=system, data=custom)
            await session.commit()
            return org.id
    finally:
        await engine.dispose()


async def load(database: str, args: argparse.Namespace) -> dict[str, Any]:
    """Make the storm's organisation in a fresh database; the figures of the load."""
    started = time.perf_counter()
    await create_database(database)
    from api.core.migrate import upgrade

    # Alembic runs its own event loop: off this one.
    await asyncio.to_thread(upgrade, common.sqlalchemy_url(database))
    org_id = await _reference_data(common.sqlalchemy_url(database))
    conn = await asyncpg.connect(common.dsn(database))
    timings: dict[str, Any] = {"migrate_and_reference_s": time.perf_counter() - started}
    try:
        await conn.execute("SET synchronous_commit = off; SET maintenance_work_mem = '1GB'")
        stages = await conn.fetch(
            """SELECT s.id, s.pipeline_id, s.name, s.kind, s.position, s.rotten_days FROM stage s
               JOIN pipeline p ON p.id = s.pipeline_id AND p.is_default WHERE s.org_id = $1 ORDER BY s.position""",
            org_id,
        )
        reasons = await conn.fetch("SELECT id, name FROM lost_reason WHERE org_id = $1 ORDER BY position", org_id)
        plan = Plan(ORG_NAME, DOMAIN, (), REPS_PER_TEAM, args.companies, args.companies, 0, args.activities, 0)
        org = Org(id=org_id, plan=plan, stages=list(stages), lost_reasons=list(reasons))
        deferred = await Deferred.read(conn)
        await deferred.drop(conn)
        step = time.perf_counter()
        gen = Generator(args.seed, time.time())
        data = StormData(gen, org, args)
        data.people()
        owned = data.clients()
        data.share(owned)
        rows: dict[str, int] = Counter()

        async def copy(table: str, records: list[tuple[Any, ...]], columns: Iterable[str] | None = None) -> None:
            await conn.copy_records_to_table(table, records=records, columns=list(columns or COLUMNS[table]))
            rows[table] += len(records)

        await copy("team", data.teams)
        await copy("user", data.users)
        for team_id, head in data.heads:
            await conn.execute("UPDATE team SET head_id = $1 WHERE id = $2", head, team_id)
        await copy("auth_session", data.sessions, ("id", "org_id", "user_id", "device", "created_at"))
        await copy("company", data.companies)
        await copy("contact", data.contacts)
        await copy("contact_point", list(gen.contact_points(org, data.companies, data.contacts)))
        await copy("share", data.shares)
        for rep in data.reps:
            mine = data.deals_of(rep, owned[rep])
            # Their feed events are left out: sync does not read the feed.
            for chunk, _feed in gen.activities(org, data.activity_targets(rep, owned[rep], mine), lambda _n: None):
                await copy("activity", chunk)
        await copy("deal", gen.deal_rows(org, data.deals))
        await copy("deal_stage_event", data.stage_events)
        timings["generate_and_copy_s"] = time.perf_counter() - step
        step = time.perf_counter()
        await deferred.rebuild(conn, lambda: None)
        timings["index_s"] = time.perf_counter() - step
        step = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE)")
        timings["analyze_s"] = time.perf_counter() - step
        if await Deferred.read(conn) != deferred:
            raise RuntimeError("the schema after the load differs from the migrated one")
        timings["total_s"] = time.perf_counter() - started
        timings["rows"] = dict(rows)
        timings["loaded_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        text = json.dumps(timings).replace("'", "''")
        await conn.execute(f"COMMENT ON DATABASE \"{database}\" IS '{text}'")
        return timings
    finally:
        await conn.close()


# Who pulls and pushes


@dataclass
class Device:
    """One rep's phone: who signs in, and the session its token names."""

    index: int
    user_id: uuid.UUID
    org_id: uuid.UUID
    team_id: uuid.UUID
    session_id: uuid.UUID
    email: str
    headers: dict[str, str] = field(default_factory=dict)


async def find_devices(conn: asyncpg.Connection, count: int) -> list[Device]:
    from api.auth.security import create_access_token

    org_id = await conn.fetchval("SELECT id FROM organization WHERE name = $1", ORG_NAME)
    if org_id is None:
        raise SystemExit(f"No '{ORG_NAME}' organisation in this database: run without --reuse.")
    rows = await conn.fetch(
        """SELECT u.id, u.email, u.team_id, s.id AS session_id FROM "user" u
           JOIN auth_session s ON s.user_id = u.id AND s.revoked_at IS NULL AND s.device = 'bench-sync'
           WHERE u.org_id = $1 AND u.role = 'rep' AND u.is_active ORDER BY u.email""",
        org_id,
    )
    if len(rows) < count:
        raise SystemExit(f"The database has {len(rows)} reps, not {count}: run without --reuse.")
    found = []
    for index, row in enumerate(rows[:count]):
        device = Device(index, row["id"], org_id, row["team_id"], row["session_id"], row["email"])
        token, _ = create_access_token(user_id=device.user_id, org_id=org_id, session_id=device.session_id)
        device.headers = {"Authorization": f"Bearer {token}"}
        found.append(device)
    return found


# What the sides of a storm measure


@dataclass
class Side:
    label: str
    wall_s: float = 0.0
    # The time of each request: a page of a pull, or a push.
    ms: list[float] = field(default_factory=list)


@dataclass
class PullSide(Side):
    device_s: list[float] = field(default_factory=list)
    page_bytes: list[int] = field(default_factory=list)
    # What each device ends up holding: {device: {entity: {id: version}}}; device 0's records in full.
    held: dict[int, dict[str, dict[str, int]]] = field(default_factory=dict)
    first: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return sum(len(ids) for held in self.held.values() for ids in held.values())


def _store(page: dict[str, Any], held: dict[str, dict[str, int]], keep: dict[str, dict[str, Any]] | None) -> None:
    """What a device does with a page: drop the removed records, store the others."""
    for entity, ids in page["remove"].items():
        for record_id in ids:
            held.get(entity, {}).pop(record_id, None)
            if keep is not None:
                keep.pop(f"{entity}:{record_id}", None)
    for entity, records in page["put"].items():
        mine = held.setdefault(entity, {})
        for record in records:
            mine[record["id"]] = record["version"]
            if keep is not None:
                keep[f"{entity}:{record['id']}"] = record


async def _storm(devices: list[Device], concurrency: int, one: Callable[[Device], Awaitable[Any]]) -> float:
    """Start every device at once, `concurrency` of them in flight; the wall time until the last is done."""
    gate = asyncio.Semaphore(concurrency)

    async def run(device: Device) -> None:
        async with gate:
            await one(device)

    started = time.perf_counter()
    await asyncio.gather(*(run(d) for d in devices))
    return time.perf_counter() - started


# The app's side: GET /sync/pull through create_app, in-process


async def get_page(client: Any, device: Device, client_id: str, cursor: str | None, limit: int) -> Any:
    """One GET /sync/pull of this device's app."""
    params: dict[str, Any] = {"client_id": client_id, "limit": limit}
    if cursor:
        params["cursor"] = cursor
    return await client.get(PULL, params=params, headers=device.headers)


async def app_pull(client: Any, device: Device, side: PullSide, limit: int) -> None:
    client_id, cursor = str(uuid.uuid4()), None
    held: dict[str, dict[str, int]] = {}
    keep = side.first if device.index == 0 else None
    started = time.perf_counter()
    for _ in range(10_000):
        sent = time.perf_counter()
        response = await get_page(client, device, client_id, cursor, limit)
        side.ms.append((time.perf_counter() - sent) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{device.email} GET {PULL}: {response.status_code} {response.text[:300]}")
        side.page_bytes.append(len(response.content))
        page = json.loads(response.content)
        _store(page, held, keep)
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    side.device_s.append(time.perf_counter() - started)
    side.held[device.index] = held


# The baseline: the same protocol on raw asyncpg, pages written by PostgreSQL's JSON functions

# The per-request reads the app makes before a pull (session check, the viewer's organisation settings).
AUTH_SQL = """SELECT "user".role, "user".team_id FROM "user" JOIN auth_session ON auth_session.user_id = "user".id
WHERE "user".id = $1 AND "user".org_id = $2 AND "user".is_active IS true AND auth_session.id = $3
AND auth_session.revoked_at IS NULL"""
SETTINGS_SQL = "SELECT organization.settings FROM organization WHERE organization.id = $1"
# The counter and the base view in one round trip, as the app reads them (api/sync/pull.py's BASE).
BASE_SQL = """SELECT o.change_seq, v.change_seq, v.window_start, v.created_at, v.entries FROM organization o
LEFT JOIN sync_view v ON v.id = $1 AND v.user_id = $2 AND v.client_id = $3 WHERE o.id = $4"""
# A listing's view stored and the older ones forgotten in one statement, in the page's transaction (as the app does
# on PostgreSQL): $9 the base view's time (null after a fresh start), $10 the retention's limit.
SAVE_VIEW_SQL = """WITH forgotten AS (DELETE FROM sync_view WHERE (user_id = $3 AND client_id = $4
AND (created_at < $9 OR ($9::timestamptz IS NULL AND id <> $1))) OR created_at < $10)
INSERT INTO sync_view (id, org_id, user_id, client_id, created_at, change_seq, window_start, entries)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"""
# Fields of the read schemas that are not columns, as PostgreSQL computes them ($2: the page's "now").
COMPUTED = {
    "user": {"has_password": "t.password_hash IS NOT NULL"},
    "deal": {"rotten": "(t.rots_at IS NOT NULL AND t.rots_at <= $2)"},
    "activity": {"overdue": "(t.done_at IS NULL AND t.due_at IS NOT NULL AND t.due_at < $2)"},
}


def _iso(column: str) -> str:
    """A timestamp as Pydantic writes it (`...T05:04:03Z`, `.ffffff` only when there are microseconds)."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"""to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS') || CASE WHEN extract(microseconds FROM {utc})::bigint """
        f"""% 1000000 = 0 THEN '' ELSE to_char({utc}, '"."US') END || 'Z'"""
    )


@functools.cache
def page_sql(kinds: tuple[str, ...]) -> str:
    """One statement for a whole page that puts records of `kinds` (a statement per combination, as the app builds
    its own): $1 cursor, $2 now, $3 has_more, $4 organisation, then the ids to remove of every kind (comma-separated
    text or null), kinds in the order pages send them, then the ids to put of each of `kinds` (comma-separated
    text). Written by hand from the read schemas (the app's own statement is built the same way)."""
    import sqlalchemy as sa

    from api.core.types import UTCDateTime
    from api.sync.working_set import BY_ENTITY, ENTITIES

    first_put = 5 + len(ENTITIES)
    puts = []
    for kind in ENTITIES:
        if kind not in kinds:
            puts.append(f"'{kind}', '[]'::json")
            continue
        synced = BY_ENTITY[kind]
        table = sa.inspect(synced.model).local_table
        computed = COMPUTED.get(kind, {})
        fields = []
        for name in synced.schema.model_fields:
            if name in computed:
                expression = computed[name]
            elif name in table.c:
                column = f't."{name}"'
                expression = _iso(column) if isinstance(table.c[name].type, UTCDateTime) else column
            else:
                raise SystemExit(f"bench.sync: {kind}.{name} is neither a column nor in COMPUTED")
            fields.append(f'{expression} AS "{name}"')
        records = (
            f'SELECT {", ".join(fields)} FROM "{table.name}" t WHERE t.org_id = $4 AND t.deleted_at IS NULL '
            f"AND t.id = ANY(string_to_array(${first_put + kinds.index(kind)}, ',')::uuid[])"
        )
        puts.append(f"'{kind}', (SELECT coalesce(json_agg(r), '[]'::json) FROM ({records}) r)")
    removes = [
        f"'{kind}', coalesce(to_json(string_to_array(${5 + i}, ',')), '[]'::json)" for i, kind in enumerate(ENTITIES)
    ]
    return (
        "SELECT json_build_object('cursor', $1::text, 'has_more', $3::boolean, 'reset_required', false, "
        f"'put', json_build_object({', '.join(puts)}), 'remove', json_build_object({', '.join(removes)}))::text "
        # Every parameter typed even when no kind uses it (PostgreSQL refuses to prepare an untyped one).
        "FROM (SELECT $2::timestamptz, $4::uuid) AS bound"
    )


@functools.cache
def _listing_sql() -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """The app's working-set statement compiled for asyncpg: its SQL, its parameters' names in order, and the
    constants it binds (kinds of share, the open status)."""
    from sqlalchemy.dialects.postgresql.asyncpg import dialect

    from api.sync.working_set import listing_statement

    compiled = listing_statement().compile(dialect=dialect())  # type: ignore[no-untyped-call]
    return compiled.string, tuple(compiled.positiontup or ()), compiled.params


def member_statement(device: Device, since: datetime) -> tuple[str, list[Any]]:
    """The app's own working-set statement for this device: (SQL, parameters)."""
    from api.auth.models import Role
    from api.auth.principals import Principal
    from api.sharing.visibility import Viewer
    from api.sync.working_set import listing_parameters

    principal = Principal(
        kind="user",
        org_id=device.org_id,
        id=device.user_id,
        role=Role.rep,
        team_id=device.team_id,
        session_id=device.session_id,
    )
    me = frozenset({device.user_id})
    sql, names, constants = _listing_sql()
    values = {
        **constants,
        **listing_parameters(Viewer(principal, everything=False, owner_ids=me, charge_ids=me), since),
    }
    return sql, [values[name] for name in names]


async def base_pull(pool: asyncpg.Pool, device: Device, side: PullSide, limit: int) -> None:
    """The app's pull protocol (api/sync/pull.py), a page per round, minus FastAPI, SQLAlchemy and Pydantic: the
    working set is listed, and a view stored (the older ones forgotten), when there is no base view or the counter
    or the window moved (the first page); later pages go on through the view's steps, counted in the cursor, and
    write nothing. The view's entries are read and made by the app's own functions (`pull.Entries`,
    `pull._difference`, `pull._take`)."""
    from api.core.ids import new_id
    from api.core.types import utcnow
    from api.settings import get_settings
    from api.sync import pull, working_set

    retention = timedelta(days=get_settings().sync_retention_days)
    client_id = uuid.uuid4()
    # The cursor: the view, when it was made, and the steps sent.
    base: tuple[uuid.UUID, datetime] | None = None
    taken = 0
    keep = side.first if device.index == 0 else None
    started = time.perf_counter()
    async with pool.acquire() as conn:
        for _ in range(10_000):
            sent = time.perf_counter()
            now = utcnow()
            since = working_set.window_start(now)
            async with conn.transaction():
                await conn.fetchrow(AUTH_SQL, device.user_id, device.org_id, device.session_id)
                await conn.fetchval(SETTINGS_SQL, device.org_id)
                seq, base_seq, window, _, stored = await conn.fetchrow(
                    BASE_SQL, base[0] if base else None, device.user_id, client_id, device.org_id
                )
                view = pull.Entries.decode(stored) if stored is not None else pull.Entries()
                assert view is not None
                entries = b""
                if base and base_seq == seq and window == since:
                    runs = view.pending()
                    page, left = pull._take(runs, taken, limit)
                    view_id = base[0]
                else:
                    statement, parameters = member_statement(device, since)
                    row = await conn.fetchrow(statement, *parameters)
                    current = {e: (ids or "", v or "") for e, (ids, v) in zip(working_set.ENTITIES, row, strict=True)}
                    held = view.held(taken)
                    runs = pull._difference(held, current)
                    parts = view.parts[:-1] + ([(taken, view.parts[-1][1])] if taken else [])
                    if len(parts) > pull.MAX_PARTS:
                        parts = [pull._whole(held)]
                    page, left = pull._take(runs, 0, limit)
                    view_id, taken = new_id(), 0
                    entries = pull.Entries([*parts, (0, pull._pack(runs))]).encode()
                    save = (view_id, device.org_id, device.user_id, client_id, now, seq, since, entries)
                    forget = (base[1] if base else None, now - retention)
                    base = (view_id, now)
                taken += sum(pull._count(ids) for _, _, ids, _ in page)
                put = {e: ids for e, is_put, ids, _ in page if is_put}
                gone = {e: ids for e, is_put, ids, _ in page if not is_put}
                text = await conn.fetchval(
                    page_sql(tuple(put)),
                    f"{view_id}.{taken}",
                    now,
                    left > 0,
                    device.org_id,
                    *(gone.get(e) for e in working_set.ENTITIES),
                    *put.values(),
                )
                if entries:
                    await conn.execute(SAVE_VIEW_SQL, *save, *forget)
            side.ms.append((time.perf_counter() - sent) * 1000)
            side.page_bytes.append(len(text))
            # The device reads the page (outside the page's time, as on the app's side).
            _store(json.loads(text), side.held.setdefault(device.index, {}), keep)
            if not left:
                break
    side.device_s.append(time.perf_counter() - started)


# The push storm


@dataclass
class Targets:
    """What one device's push is about: the rep's companies (with their contact), open deals and stages."""

    companies: list[tuple[uuid.UUID, int, uuid.UUID | None]]  # (id, version, its contact)
    deals: list[dict[str, Any]]  # id, version, stage_id, company_id, contact_id
    stages: list[uuid.UUID]  # open stages of the default pipeline, in order


async def find_targets(conn: asyncpg.Connection, device: Device) -> Targets:
    companies = await conn.fetch(
        """SELECT c.id, c.version, (SELECT min(p.id::text)::uuid FROM contact p WHERE p.company_id = c.id) AS contact
           FROM company c WHERE c.org_id = $1 AND c.owner_id = $2 AND c.deleted_at IS NULL ORDER BY c.id""",
        device.org_id,
        device.user_id,
    )
    deals = await conn.fetch(
        """SELECT id, version, stage_id, company_id, contact_id FROM deal
           WHERE org_id = $1 AND owner_id = $2 AND status = 'open' AND deleted_at IS NULL ORDER BY id""",
        device.org_id,
        device.user_id,
    )
    stages = await conn.fetch(
        """SELECT s.id FROM stage s JOIN pipeline p ON p.id = s.pipeline_id AND p.is_default
           WHERE s.org_id = $1 AND s.kind = 'open' AND s.deleted_at IS NULL ORDER BY s.position""",
        device.org_id,
    )
    return Targets(
        [(r["id"], r["version"], r["contact"]) for r in companies], [dict(r) for r in deals], [r["id"] for r in stages]
    )


@dataclass
class Outbox:
    """One device's mutations, and what they must leave behind once applied."""

    device: Device
    client_id: uuid.UUID
    mutations: list[dict[str, Any]]
    created: dict[str, list[uuid.UUID]] = field(default_factory=lambda: defaultdict(list))  # entity: ids made
    updated: dict[str, dict[uuid.UUID, int]] = field(default_factory=lambda: defaultdict(dict))  # entity: {id: v}
    moved: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # deal: the stage it must be in

    def body(self) -> bytes:
        return json.dumps({"client_id": str(self.client_id), "mutations": self.mutations}).encode()


def outbox(device: Device, targets: Targets, count: int, half: int, rng: random.Random) -> Outbox:
    """`count` mutations in MIX's proportions, about records no other outbox of the device touches: `half` 0, 1
    and 2 take every third company from the first, second and third on, and the open deals after each other
    (the app's storm, the baseline's and the warm-ups each get their own)."""
    from api.core.ids import new_id

    box = Outbox(device, uuid.uuid4(), [])
    companies = targets.companies[half::3]
    rng.shuffle(companies)
    names = [MIX[i % len(MIX)] for i in range(count)]
    moves = names.count("deal.move")
    deals = targets.deals[half * moves : (half + 1) * moves] or targets.deals[:1]
    now = datetime.now(UTC)
    used = 0

    def company() -> tuple[uuid.UUID, int, uuid.UUID | None]:
        nonlocal used
        used += 1
        return companies[(used - 1) % len(companies)]

    for number, name in enumerate(names, 1):
        args: dict[str, Any]
        base_version = None
        if name in ("activity.log", "task.create", "contact.create"):
            made = new_id()
            company_id, _version, contact_id = company()
            if name == "activity.log":
                args = {"kind": "call", "direction": "outbound", "outcome": rng.choice(OUTCOMES)}
                args |= {"subject": "Call from the road", "duration_seconds": rng.randint(30, 900)}
                args |= {"company_id": str(company_id), "contact_id": str(contact_id) if contact_id else None}
                if number % 4 == 0 and deals:
                    deal = deals[number % len(deals)]
                    args |= {"deal_id": str(deal["id"]), "company_id": str(deal["company_id"]), "contact_id": None}
                box.created["activity"].append(made)
            elif name == "task.create":
                due = now + timedelta(days=rng.randint(1, 10))
                args = {"subject": "Send the quote", "company_id": str(company_id), "due_at": due.isoformat()}
                box.created["activity"].append(made)
            else:
                tag = f"{box.client_id.hex[:12]}.{number}"
                args = {"name": f"New Buyer {tag}", "title": "Buyer", "company_id": str(company_id)}
                args |= {"emails": [f"buyer.{tag}@new.sync.example"], "email_consent": True}
                box.created["contact"].append(made)
            args["id"] = str(made)
        elif name == "company.update":
            company_id, version, _contact = company()
            # A city of its own, so that the update changes something on a database kept from an earlier run.
            city = f"Lima {box.client_id.hex[:8]}"
            args = {"id": str(company_id), "segment": "enterprise", "city": city, "tags": ["visited"]}
            base_version = version
            box.updated["company"][company_id] = version + 1
        else:
            deal = deals[len(box.moved) % len(deals)]
            stage = next(s for s in targets.stages if s != deal["stage_id"])
            args = {"id": str(deal["id"]), "stage_id": str(stage)}
            base_version = deal["version"]
            deal["stage_id"], deal["version"] = stage, deal["version"] + 1
            box.moved[deal["id"]] = stage
            box.updated["deal"][deal["id"]] = deal["version"]
        mutation: dict[str, Any] = {"id": number, "name": name, "args": args}
        if base_version is not None:
            mutation["base_version"] = base_version
        box.mutations.append(mutation)
    return box


@dataclass
class PushSide(Side):
    statuses: Counter[str] = field(default_factory=Counter)
    mutations: int = 0


async def app_push(client: Any, box: Outbox, side: PushSide | None, expect: str = "applied") -> Counter[str]:
    headers = {**box.device.headers, "Content-Type": "application/json"}
    sent = time.perf_counter()
    response = await client.post(PUSH, content=box.body(), headers=headers)
    took = (time.perf_counter() - sent) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{box.device.email} POST {PUSH}: {response.status_code} {response.text[:300]}")
    result = response.json()
    statuses = Counter(r["status"] for r in result["results"])
    if statuses[expect] != len(box.mutations):
        odd = [r for r in result["results"] if r["status"] != expect][:3]
        raise RuntimeError(f"{box.device.email}: expected every mutation {expect}, got {dict(statuses)}: {odd}")
    if side is not None:
        side.ms.append(took)
        side.statuses += statuses
        side.mutations += len(box.mutations)
    return statuses


# The baseline's writes: what the app's services write for each mutation (rows into the same tables), without
# the checks they make first (visibility of what a mutation refers to, colleagues, duplicates, custom fields).
LOCK_SQL = "SELECT id FROM organization WHERE id = $1 FOR NO KEY UPDATE"
CLIENT_SQL = """INSERT INTO sync_client (user_id, client_id, org_id, last_mutation_id, created_at)
VALUES ($1, $2, $3, 0, now()) ON CONFLICT (user_id, client_id) DO UPDATE SET org_id = excluded.org_id
RETURNING last_mutation_id"""
CLIENT_DONE_SQL = (
    "UPDATE sync_client SET last_mutation_id = $3, pushed_at = now() WHERE user_id = $1 AND client_id = $2"
)
SEQ_NEXT_SQL = "UPDATE organization SET change_seq = change_seq + 1 WHERE id = $1 RETURNING change_seq"
CHANGE_SQL = """INSERT INTO change (id, org_id, seq, entity, entity_id, op, version, actor_kind, actor_id, at, fields)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'user', $8, now(), $9::jsonb)"""
FEED_SQL = """INSERT INTO feed_event (id, org_id, kind, at, actor_id, company_id, contact_id, deal_id, activity_id,
data) VALUES ($1, $2, $3, now(), $4, $5, $6, $7, $8, $9::jsonb)"""
ACTIVITY_SQL = """INSERT INTO activity (id, org_id, created_at, updated_at, version, kind, subject, body, company_id,
contact_id, deal_id, owner_id, assignee_id, due_at, done_at, duration_seconds, direction, outcome, mentioned_ids)
VALUES ($1, $2, now(), now(), 1, $3, $4, NULL, $5, $6, $7, $8, $8, $9, $10, $11, $12, $13, '[]')"""
TOUCH_SQL = """UPDATE deal d SET last_activity_at = now(), rots_at = CASE WHEN s.rotten_days IS NULL THEN NULL
ELSE greatest(now(), d.stage_entered_at) + make_interval(days => s.rotten_days) END
FROM stage s WHERE d.id = $1 AND s.id = d.stage_id"""
COMPANY_SQL = """UPDATE company SET segment = $2, city = $3, tags = $4::jsonb, version = version + 1, updated_at = now()
WHERE id = $1 RETURNING version"""
MOVE_SQL = """WITH old AS (SELECT id, stage_id, stage_entered_at FROM deal WHERE id = $1 FOR UPDATE)
UPDATE deal d SET stage_id = $2, stage_entered_at = now(), version = d.version + 1, updated_at = now(),
rots_at = (SELECT now() + make_interval(days => s.rotten_days) FROM stage s WHERE s.id = $2)
FROM old WHERE d.id = old.id RETURNING d.version, old.stage_id, old.stage_entered_at, d.company_id, d.contact_id"""
STAGE_EVENT_SQL = """INSERT INTO deal_stage_event (id, org_id, created_at, updated_at, version, deal_id, from_stage_id,
to_stage_id, at, by_id, seconds_in_previous) VALUES ($1, $2, now(), now(), 1, $3, $4, $5, now(), $6, $7)"""
CONTACT_SQL = """INSERT INTO contact (id, org_id, created_at, updated_at, version, name, name_folded, owner_id, tags,
custom, title, company_id, emails, phones, email_consent, phone_consent)
VALUES ($1, $2, now(), now(), 1, $3, $4, $5, '[]', '{}', $6, $7, $8::jsonb, '[]', $9, false)"""
POINT_SQL = """INSERT INTO contact_point (id, org_id, created_at, updated_at, version, kind, value, client_kind,
client_id) VALUES ($1, $2, now(), now(), 1, 'email', $3, 'contact', $4)"""


async def base_push(pool: asyncpg.Pool, box: Outbox, side: PushSide | None) -> None:
    from api.core.ids import new_id
    from api.core.types import fold

    device = box.device
    org, me = device.org_id, device.user_id
    sent = time.perf_counter()
    async with pool.acquire() as conn, conn.transaction():

        async def log(entity: str, entity_id: uuid.UUID, op: str, version: int, fields: dict[str, Any]) -> None:
            seq = await conn.fetchval(SEQ_NEXT_SQL, org)
            changed = {name: {"before": None, "after": value} for name, value in fields.items()}
            await conn.execute(CHANGE_SQL, new_id(), org, seq, entity, entity_id, op, version, me, json.dumps(changed))

        await conn.execute(LOCK_SQL, org)
        last = await conn.fetchval(CLIENT_SQL, me, box.client_id, org)
        for mutation in box.mutations:
            if mutation["id"] <= last:
                continue
            args = mutation["args"]
            name = mutation["name"]
            if name in ("activity.log", "task.create"):
                done = name == "activity.log"
                ids = [
                    uuid.UUID(args[k]) if args.get(k) else None for k in ("id", "company_id", "contact_id", "deal_id")
                ]
                activity_id, company_id, contact_id, deal_id = ids
                assert activity_id is not None
                due = datetime.fromisoformat(args["due_at"]) if "due_at" in args else None
                kind = args.get("kind", "task")
                await conn.execute(
                    ACTIVITY_SQL,
                    activity_id,
                    org,
                    kind,
                    args["subject"],
                    company_id,
                    contact_id,
                    deal_id,
                    me,
                    due,
                    datetime.now(UTC) if done else None,
                    args.get("duration_seconds"),
                    args.get("direction"),
                    args.get("outcome"),
                )
                await log("activity", activity_id, "create", 1, {k: v for k, v in args.items() if k != "id"})
                if done:
                    if deal_id is not None:
                        await conn.execute(TOUCH_SQL, deal_id)
                    refs = (company_id, contact_id, deal_id, activity_id)
                    await conn.execute(FEED_SQL, new_id(), org, "activity", me, *refs, "{}")
            elif name == "company.update":
                company_id = uuid.UUID(args["id"])
                version = await conn.fetchval(
                    COMPANY_SQL, company_id, args["segment"], args["city"], json.dumps(args["tags"])
                )
                await log("company", company_id, "update", version, {k: v for k, v in args.items() if k != "id"})
            elif name == "deal.move":
                deal_id, stage_id = uuid.UUID(args["id"]), uuid.UUID(args["stage_id"])
                moved = await conn.fetchrow(MOVE_SQL, deal_id, stage_id)
                event_id = new_id()
                seconds = int((datetime.now(UTC) - moved["stage_entered_at"]).total_seconds())
                await conn.execute(STAGE_EVENT_SQL, event_id, org, deal_id, moved["stage_id"], stage_id, me, seconds)
                await log("deal_stage_event", event_id, "create", 1, {"deal_id": str(deal_id)})
                await log("deal", deal_id, "update", moved["version"], {"stage_id": str(stage_id)})
                news = json.dumps({"to_stage": str(stage_id)})
                await conn.execute(
                    FEED_SQL,
                    new_id(),
                    org,
                    "stage_moved",
                    me,
                    moved["company_id"],
                    moved["contact_id"],
                    deal_id,
                    None,
                    news,
                )
            else:
                contact_id, company_id = uuid.UUID(args["id"]), uuid.UUID(args["company_id"])
                emails = [e.lower() for e in args["emails"]]
                await conn.execute(
                    CONTACT_SQL,
                    contact_id,
                    org,
                    args["name"],
                    fold(args["name"]),
                    me,
                    args["title"],
                    company_id,
                    json.dumps(emails),
                    args["email_consent"],
                )
                await log("contact", contact_id, "create", 1, {k: v for k, v in args.items() if k != "id"})
                for email in emails:
                    await conn.execute(POINT_SQL, new_id(), org, email, contact_id)
        await conn.execute(CLIENT_DONE_SQL, me, box.client_id, box.mutations[-1]["id"])
    if side is not None:
        side.ms.append((time.perf_counter() - sent) * 1000)
        side.statuses["applied"] += len(box.mutations)
        side.mutations += len(box.mutations)


async def verify(conn: asyncpg.Connection, boxes: list[Outbox], since: datetime) -> dict[str, int]:
    """That every mutation of these outboxes took effect once: each record made exists once and was logged once;
    each update left the version it should and one change-log entry; each app's position is its last mutation.
    Raises on any difference; the counts checked."""
    made: dict[str, list[uuid.UUID]] = defaultdict(list)
    updated: dict[str, dict[uuid.UUID, int]] = defaultdict(dict)
    stages: dict[uuid.UUID, uuid.UUID] = {}
    for box in boxes:
        for entity, ids in box.created.items():
            made[entity] += ids
        for entity, versions in box.updated.items():
            updated[entity] |= versions
        stages |= box.moved
    counts: dict[str, int] = {}
    problems = []
    for entity, ids in made.items():
        found = await conn.fetchval(f'SELECT count(*) FROM "{entity}" WHERE id = ANY($1::uuid[])', ids)
        logged = await conn.fetchval(
            "SELECT count(*) FROM change WHERE entity = $1 AND op = 'create' AND entity_id = ANY($2::uuid[])",
            entity,
            ids,
        )
        counts[f"{entity} created"] = found
        if found != len(ids) or logged != len(ids):
            problems.append(f"{entity}: {len(ids)} made, {found} found, {logged} creations logged")
    points = await conn.fetchval(
        "SELECT count(*) FROM contact_point WHERE client_id = ANY($1::uuid[])", made["contact"]
    )
    if points != len(made["contact"]):
        problems.append(f"contact points: {points} for {len(made['contact'])} new contacts (one e-mail each)")
    for entity, versions in updated.items():
        rows = await conn.fetch(f'SELECT id, version FROM "{entity}" WHERE id = ANY($1::uuid[])', list(versions))
        wrong = [r["id"] for r in rows if r["version"] != versions[r["id"]]]
        logged = await conn.fetchval(
            "SELECT count(*) FROM change WHERE entity = $1 AND op = 'update' AND entity_id = ANY($2::uuid[]) "
            "AND at >= $3",
            entity,
            list(versions),
            since,
        )
        counts[f"{entity} updated"] = len(rows) - len(wrong)
        expected = sum(1 for box in boxes for m in box.mutations if m["name"].startswith(f"{entity}."))
        if wrong or len(rows) != len(versions) or logged != expected:
            problems.append(f"{entity}: {len(wrong)} at the wrong version, {logged} updates logged of {expected}")
    if stages:
        rows = await conn.fetch("SELECT id, stage_id FROM deal WHERE id = ANY($1::uuid[])", list(stages))
        wrong = [r["id"] for r in rows if r["stage_id"] != stages[r["id"]]]
        if wrong:
            problems.append(f"deals: {len(wrong)} not in the stage they were moved to")
    positions = await conn.fetch(
        "SELECT client_id, last_mutation_id FROM sync_client WHERE client_id = ANY($1::uuid[])",
        [box.client_id for box in boxes],
    )
    last = {r["client_id"]: r["last_mutation_id"] for r in positions}
    behind = [box for box in boxes if last.get(box.client_id) != box.mutations[-1]["id"]]
    if behind:
        problems.append(f"{len(behind)} apps whose position is not their last mutation")
    counts["apps at their last mutation"] = len(boxes) - len(behind)
    if problems:
        raise RuntimeError("push check failed: " + "; ".join(problems))
    return counts


# One device alone: where a page's time goes


class Clock:
    """The time of every statement the app's engines send while attached, by what it is for."""

    def __init__(self, kind: Callable[[str], str]) -> None:
        self.kind = kind
        self.spent: dict[str, float] = defaultdict(float)
        self.count: Counter[str] = Counter()

    def before(self, _conn: Any, _cursor: Any, _statement: str, _parameters: Any, context: Any, _many: bool) -> None:
        context._bench_sync_started = time.perf_counter()

    def after(self, _conn: Any, _cursor: Any, statement: str, _parameters: Any, context: Any, _many: bool) -> None:
        kind = self.kind(statement)
        self.spent[kind] += (time.perf_counter() - context._bench_sync_started) * 1000
        self.count[kind] += 1

    async def around(self, engines: list[Any], work: Awaitable[Any]) -> None:
        from sqlalchemy import event

        for engine in engines:
            event.listen(engine.sync_engine, "before_cursor_execute", self.before)
            event.listen(engine.sync_engine, "after_cursor_execute", self.after)
        try:
            await work
        finally:
            for engine in engines:
                event.remove(engine.sync_engine, "before_cursor_execute", self.before)
                event.remove(engine.sync_engine, "after_cursor_execute", self.after)


def pull_statement(statement: str) -> str:
    head = statement.lstrip()[:200]
    if "json_agg" in statement:
        return "page JSON"
    if "json_object_agg" in statement:
        return "working set"
    if "sync_view" in head:
        return "counter and view (read; stored by a listing)"
    return "sign-in, rate limit, viewer"


def push_statement(statement: str) -> str:
    words = statement.split(maxsplit=3)
    verb = words[0].upper()
    if verb in ("SAVEPOINT", "RELEASE", "ROLLBACK"):
        return "savepoints"
    if verb == "SELECT" and "pg_notify" in statement:
        return "pg_notify"
    if verb == "INSERT" and len(words) > 2:
        return f"INSERT {words[2]}"
    if verb == "UPDATE" and len(words) > 1:
        return f"UPDATE {words[1]}"
    return "SELECT (checks, reads, locks)" if verb == "SELECT" else verb


@dataclass
class Alone:
    pages: int
    app_ms: float
    sql_ms: dict[str, float]
    statements: dict[str, int]
    base_ms: float
    push_ms: float = 0.0
    push_sql: dict[str, float] = field(default_factory=dict)
    push_statements: dict[str, int] = field(default_factory=dict)
    base_push_ms: float = 0.0
    profile: list[tuple[str, float]] = field(default_factory=list)
    top: list[tuple[str, float, float, int]] = field(default_factory=list)


# The pull's JSON is written by PostgreSQL; what json parses in the process is mostly the device reading its pages.
JSON_AREA = "json (mostly the device parsing pages)"


def _area(filename: str, function: str) -> str:
    """Which part of the stack a profiled function belongs to."""
    if filename == "~":
        for lib, area in (
            ("poll", "idle: waiting for PostgreSQL (epoll)"),
            ("socket", "socket I/O"),
            ("zlib", "zlib (view entries)"),
            ("json", JSON_AREA),
            ("uuid", "uuid"),
        ):
            if lib in function:
                return area
        return "builtins (other)"
    for part, area in (
        ("/sqlalchemy/", "SQLAlchemy"),
        ("/sqlmodel/", "SQLAlchemy"),
        ("asyncpg", "asyncpg"),
        ("/pydantic", "Pydantic"),
        ("/fastapi/", "FastAPI + Starlette"),
        ("/starlette/", "FastAPI + Starlette"),
        ("/httpx/", "httpx client (bench side)"),
        ("/anyio/", "anyio"),
        ("/api/", "app code (api/)"),
        ("/bench/", "bench code (device side)"),
        ("selector_events.py", "asyncio reading sockets (incl. asyncpg's C protocol)"),
        ("/asyncio/", "asyncio event loop"),
        ("/json/", JSON_AREA),
        ("uuid.py", "uuid"),
    ):
        if part in filename:
            return area
    return "other Python"


def _profiled(profile: cProfile.Profile) -> tuple[list[tuple[str, float]], list[tuple[str, float, float, int]]]:
    stats = pstats.Stats(profile)
    areas: dict[str, float] = defaultdict(float)
    rows = []
    for (filename, line, function), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        areas[_area(filename, function)] += tottime
        where = f"{Path(filename).name}:{line}({function})" if filename != "~" else function
        rows.append((where, tottime, cumtime, calls))
    rows.sort(key=lambda r: -r[1])
    return sorted(areas.items(), key=lambda a: -a[1]), rows[:15]


async def alone(client: Any, engines: list[Any], pool: asyncpg.Pool, device: Device, profile: bool) -> Alone:
    """One device pulls by itself (warm), on each side; the app's pages with the time of each statement."""
    for _ in range(2):
        await app_pull(client, device, PullSide("warm-up"), PAGE)
        await base_pull(pool, device, PullSide("warm-up"), PAGE)
    # Rounds of app and baseline back to back, so that load from elsewhere hits both alike.
    clock = Clock(pull_statement)
    app, base = PullSide("app"), PullSide("sql")
    for _ in range(ALONE_ROUNDS):
        await clock.around(engines, app_pull(client, device, app, PAGE))
        await base_pull(pool, device, base, PAGE)
    pages = len(app.ms)
    found = Alone(
        pages=pages // ALONE_ROUNDS,
        app_ms=statistics.fmean(app.ms),
        sql_ms={k: v / pages for k, v in clock.spent.items()},
        statements={k: round(v / pages) for k, v in clock.count.items()},
        base_ms=statistics.fmean(base.ms),
    )
    if profile:
        # CPU time (not wall time): what the process spends, without the waits for PostgreSQL, and without the
        # time the machine's other work takes the core away in the middle of a call.
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        await app_pull(client, device, PullSide("profiled"), PAGE)
        profiler.disable()
        found.profile, found.top = _profiled(profiler)
    return found


async def push_alone(
    client: Any,
    engines: list[Any],
    pool: asyncpg.Pool,
    conn: asyncpg.Connection,
    devices: list[Device],
    found: Alone,
    n: int,
) -> None:
    """Pushes by themselves, app and baseline in turn, after a warm-up push on each side; the app's with the time
    of each statement. About their own records (the third share of each device's): the storms' outboxes are made
    after."""
    rng = random.Random(len(devices))

    async def box(device: Device) -> Outbox:
        return outbox(device, await find_targets(conn, device), n, 2, rng)

    await app_push(client, await box(devices[0]), None)
    await base_push(pool, await box(devices[-1]), None)
    clock, app, base = Clock(push_statement), PushSide("app"), PushSide("sql")
    for i in range(1, ALONE_ROUNDS + 1):
        await clock.around(engines, app_push(client, await box(devices[i % len(devices)]), app))
        await base_push(pool, await box(devices[-1 - i % len(devices)]), base)
    found.push_ms, found.base_push_ms = statistics.fmean(app.ms), statistics.fmean(base.ms)
    found.push_sql = {k: v / ALONE_ROUNDS for k, v in clock.spent.items()}
    found.push_statements = {k: round(v / ALONE_ROUNDS) for k, v in clock.count.items()}


async def pool_probe(client: Any, devices: list[Device], n: int) -> str:
    """`n` first pages asked for at once: what the app's connection pool does when more pulls are in flight than
    it holds connections."""

    async def first(device: Device) -> tuple[int, float]:
        sent = time.perf_counter()
        try:
            response = await get_page(client, device, str(uuid.uuid4()), None, PAGE)
            return response.status_code, time.perf_counter() - sent
        except Exception:  # the in-process transport re-raises what the app did not handle
            return 500, time.perf_counter() - sent

    quiet = logging.getLogger("fieldbook")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    started = time.perf_counter()
    try:
        results = await asyncio.gather(*(first(devices[i % len(devices)]) for i in range(n)))
    finally:
        quiet.setLevel(level)
    wall = time.perf_counter() - started
    statuses = Counter(status for status, _ in results)
    slowest = max(t for _, t in results)
    return (
        f"pool probe: {n} first pages at once (app pool {_pool()}): {wall:.1f} s in all, statuses "
        f"{dict(sorted(statuses.items()))}, slowest {slowest:.1f} s"
    )


def _pool() -> str:
    from api.settings import get_settings

    settings = get_settings()
    return f"{settings.db_pool_size} + {settings.db_max_overflow} overflow"


# The run


@dataclass
class Run:
    pulls: list[PullSide]
    pushes: list[PushSide]
    checks: list[str]
    alone: Alone
    facts: dict[str, Any]


def _same_holdings(app: PullSide, base: PullSide) -> str:
    if app.held != base.held:
        differ = [d for d in app.held if app.held[d] != base.held.get(d)]
        raise RuntimeError(f"{base.label} holds other records than the app for devices {differ[:5]}")
    mismatched = [k for k, record in app.first.items() if base.first.get(k) != record]
    if mismatched or app.first.keys() != base.first.keys():
        raise RuntimeError(f"{base.label}: device 0's records differ from the app's, e.g. {mismatched[:3]}")
    return (
        f"{base.label} ends holding the same records as the app on every device (ids and versions), and device 1's "
        f"{len(app.first):,} records are equal field by field"
    )


async def measure(args: argparse.Namespace) -> Run:
    import httpx

    from api.main import create_app
    from api.settings import get_settings

    conn = await asyncpg.connect(common.dsn(args.database))
    devices = await find_devices(conn, args.devices)
    app = create_app(get_settings())
    pool = await asyncpg.create_pool(
        common.dsn(args.database), min_size=args.concurrency, max_size=args.concurrency, server_settings={"jit": "off"}
    )
    load_before = os.getloadavg()
    checks: list[str] = []
    try:
        async with app.router.lifespan_context(app):
            # The app's engine, and the rate limiter's own (its bucket is taken on a connection of its own).
            limiter = app.state.rate_limiter._engine
            engines = [app.state.db.engine, *([limiter] if limiter is not None else [])]
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
                console.log(f"{len(devices)} devices; one alone first (warm-up, and where a page's time goes)")
                single = await alone(client, engines, pool, devices[0], args.profile)
                if args.pool_probe:
                    checks.append(await pool_probe(client, devices, args.pool_probe))
                    console.log(checks[-1])
                pulls = [PullSide("app"), PullSide("sql")]
                runners: list[Callable[[Device], Awaitable[None]]] = [
                    lambda d: app_pull(client, d, pulls[0], PAGE),
                    lambda d: base_pull(pool, d, pulls[1], PAGE),
                ]
                for side, one in zip(pulls, runners, strict=True):
                    side.wall_s = await _storm(devices, args.concurrency, one)
                    console.log(
                        f"pull storm, {side.label}: {side.wall_s:.1f} s, {len(side.ms)} pages, {side.records:,} records"
                    )
                checks.append(_same_holdings(*pulls))

                # Push: one alone on each side (after a warm-up push), then the outboxes, then the storms.
                rng = random.Random(args.seed)
                await push_alone(client, engines, pool, conn, devices, single, args.mutations)
                targets = [await find_targets(conn, d) for d in devices]
                app_boxes = [outbox(d, t, args.mutations, 0, rng) for d, t in zip(devices, targets, strict=True)]
                base_boxes = [outbox(d, t, args.mutations, 1, rng) for d, t in zip(devices, targets, strict=True)]
                pushes = [PushSide("app"), PushSide("sql")]
                started = await conn.fetchval("SELECT now()")
                by_device = {box.device.index: box for box in app_boxes}
                pushes[0].wall_s = await _storm(
                    devices, args.concurrency, lambda d: app_push(client, by_device[d.index], pushes[0])
                )
                console.log(f"push storm, app: {pushes[0].wall_s:.1f} s")
                counts = await verify(conn, app_boxes, started)
                changes = await conn.fetchval("SELECT change_seq FROM organization WHERE id = $1", devices[0].org_id)
                replay = PushSide("replay")
                await _storm(
                    devices, args.concurrency, lambda d: app_push(client, by_device[d.index], replay, "duplicate")
                )
                again = await verify(conn, app_boxes, started)
                after = await conn.fetchval("SELECT change_seq FROM organization WHERE id = $1", devices[0].org_id)
                if again != counts or after != changes:
                    raise RuntimeError(f"the replayed pushes changed something: {counts} → {again}")
                checks.append(
                    f"app: all {pushes[0].mutations:,} mutations `applied`; "
                    + ", ".join(f"{v:,} {k}" for k, v in counts.items())
                    + f" (each once in the change log); the same {len(app_boxes)} pushes sent again came back "
                    f"{replay.statuses['duplicate']:,} times `duplicate` and changed nothing (change counter still "
                    f"{after:,})"
                )
                base_by_device = {box.device.index: box for box in base_boxes}
                started = await conn.fetchval("SELECT now()")
                pushes[1].wall_s = await _storm(
                    devices, args.concurrency, lambda d: base_push(pool, base_by_device[d.index], pushes[1])
                )
                console.log(f"push storm, sql: {pushes[1].wall_s:.1f} s")
                counts = await verify(conn, base_boxes, started)
                checks.append("sql: the same checks pass: " + ", ".join(f"{v:,} {k}" for k, v in counts.items()))
        facts = await _facts(conn, args)
        facts["load_before"], facts["load_after"] = load_before, os.getloadavg()
        return Run(pulls, pushes, checks, single, facts)
    finally:
        await pool.close()
        await conn.close()


async def _facts(conn: asyncpg.Connection, args: argparse.Namespace) -> dict[str, Any]:
    """bench.read_paths' (machine, PostgreSQL, the bulk tables, the load's figures), with what sync adds."""
    facts = await read_paths._facts(conn, args.database)
    for name in ("max_connections", "synchronous_commit"):
        facts["pg_settings"][name] = await conn.fetchval("SELECT current_setting($1)", name)
    for table in ("change", "sync_client", "sync_view"):
        count = await conn.fetchval(f"SELECT count(*) FROM {table}")
        facts["sizes"].append((table, count, await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", table)))
    facts["args"] = {
        k: getattr(args, k) for k in ("database", "devices", "concurrency", "companies", "activities", "mutations")
    }
    return facts


# Reporting

PULL_HEADER = [
    "side",
    "devices",
    "pages",
    "records",
    "wall s",
    "device p50 s",
    "device p95 s",
    "page p50 ms",
    "page p95 ms",
    "records/s",
    "KiB/page",
]
PUSH_HEADER = ["side", "pushes", "mutations", "wall s", "push p50 ms", "push p95 ms", "mutations/s"]


def _pull_row(side: PullSide) -> list[str]:
    return [
        side.label,
        str(len(side.device_s)),
        str(len(side.ms)),
        f"{side.records:,}",
        f"{side.wall_s:,.1f}",
        f"{percentile(side.device_s, 50):,.2f}",
        f"{percentile(side.device_s, 95):,.2f}",
        f"{percentile(side.ms, 50):,.0f}",
        f"{percentile(side.ms, 95):,.0f}",
        f"{side.records / side.wall_s:,.0f}",
        f"{statistics.fmean(side.page_bytes) / 1024:,.0f}",
    ]


def _pull_ratio(app: PullSide, base: PullSide) -> list[str]:
    def r(a: float, b: float) -> str:
        return f"{a / b:.2f}x"

    return [
        f"app / {base.label}",
        "",
        "",
        "",
        r(app.wall_s, base.wall_s),
        r(percentile(app.device_s, 50), percentile(base.device_s, 50)),
        r(percentile(app.device_s, 95), percentile(base.device_s, 95)),
        r(percentile(app.ms, 50), percentile(base.ms, 50)),
        r(percentile(app.ms, 95), percentile(base.ms, 95)),
        r(app.records / app.wall_s, base.records / base.wall_s),
        r(statistics.fmean(app.page_bytes), statistics.fmean(base.page_bytes)),
    ]


def _push_row(side: PushSide) -> list[str]:
    return [
        side.label,
        str(len(side.ms)),
        f"{side.mutations:,}",
        f"{side.wall_s:,.1f}",
        f"{percentile(side.ms, 50):,.0f}",
        f"{percentile(side.ms, 95):,.0f}",
        f"{side.mutations / side.wall_s:,.0f}",
    ]


def _push_ratio(app: PushSide, base: PushSide) -> list[str]:
    return [
        "app / sql",
        "",
        "",
        f"{app.wall_s / base.wall_s:.2f}x",
        f"{percentile(app.ms, 50) / percentile(base.ms, 50):.2f}x",
        f"{percentile(app.ms, 95) / percentile(base.ms, 95):.2f}x",
        f"{(app.mutations / app.wall_s) / (base.mutations / base.wall_s):.2f}x",
    ]


def numbers(run: Run) -> dict[str, Any]:
    """The storms' key numbers, per side: what bench.run checks the targets against."""

    def pull(side: PullSide) -> dict[str, float]:
        return {"records_per_s": side.records / side.wall_s, "page_p50_ms": percentile(side.ms, 50)}

    def push(side: PushSide) -> dict[str, float]:
        return {"wall_s": side.wall_s, "p95_ms": percentile(side.ms, 95)}

    return {
        "pull": {side.label: pull(side) for side in run.pulls},
        "push": {side.label: push(side) for side in run.pushes},
    }


def _pull_rows(run: Run) -> list[list[str]]:
    return [*(_pull_row(s) for s in run.pulls), _pull_ratio(*run.pulls)]


def _push_rows(run: Run) -> list[list[str]]:
    return [*(_push_row(s) for s in run.pushes), _push_ratio(*run.pushes)]


def _alone_rows(single: Alone) -> list[list[str]]:
    sql = sum(single.sql_ms.values())
    rows = [[kind, f"{ms:,.0f}", str(single.statements[kind])] for kind, ms in sorted(single.sql_ms.items())]
    return [
        [
            "app: the whole page (GET through the ASGI app)",
            f"{single.app_ms:,.0f}",
            str(sum(single.statements.values())),
        ],
        *[[f"  SQL: {k}", v, n] for k, v, n in rows],
        ["  Python (FastAPI, SQLAlchemy, the pull's own code)", f"{single.app_ms - sql:,.0f}", ""],
        ["sql: the whole page", f"{single.base_ms:,.0f}", ""],
    ]


def _push_alone_rows(single: Alone, mutations: int) -> list[list[str]]:
    sql = sum(single.push_sql.values())
    rows = sorted(single.push_sql.items(), key=lambda kv: -kv[1])
    return [
        [
            f"app: one push of {mutations} (POST through the ASGI app)",
            f"{single.push_ms:,.0f}",
            str(sum(single.push_statements.values())),
        ],
        *[[f"  SQL: {kind}", f"{ms:,.1f}", str(single.push_statements[kind])] for kind, ms in rows],
        ["  Python (FastAPI, Pydantic, SQLAlchemy ORM, the services)", f"{single.push_ms - sql:,.0f}", ""],
        ["sql: the same rows on asyncpg, one transaction", f"{single.base_push_ms:,.0f}", ""],
    ]


def tables(run: Run) -> list[Table]:
    out = []
    for title, header, rows in (
        ("Pull storm: every device pulls its working set from scratch", PULL_HEADER, _pull_rows(run)),
        ("Push storm: one push per device", PUSH_HEADER, _push_rows(run)),
        (
            f"One device alone, mean per page ({run.alone.pages} pages)",
            ["", "ms", "statements"],
            _alone_rows(run.alone),
        ),
        ("One push alone", ["", "ms", "statements"], _push_alone_rows(run.alone, run.facts["args"]["mutations"])),
    ):
        t = Table(title=title)
        for name in header:
            t.add_column(name, justify="left" if name in ("side", "") else "right")
        for row in rows:
            t.add_row(*row)
        out.append(t)
    return out


def _md(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def markdown(run: Run, command: str) -> str:
    facts = run.facts
    load = facts["load"] or {}
    a = facts["args"]
    sizes = [[t, f"{n:,}", f"{s / 1024**2:,.0f} MiB"] for t, n, s in facts["sizes"]]
    pg = ", ".join(f"{k} {v}" for k, v in facts["pg_settings"].items())
    load_line = (
        f"{load.get('total_s', 0):.0f} s (migrate + reference data {load.get('migrate_and_reference_s', 0):.1f} s, "
        f"generate + COPY {load.get('generate_and_copy_s', 0):.0f} s, keys and indexes {load.get('index_s', 0):.0f} s,"
        f" VACUUM ANALYZE {load.get('analyze_s', 0):.0f} s), loaded {load.get('loaded_at')}"
        if load
        else "unknown"
    )
    out = [
        START,
        f"_Generated by `{command}` at {facts['at']}; the text between the markers is rewritten on each run._",
        "",
        "#### Machine and data",
        "",
        f"- {facts['cores']} cores ({facts['cpu']}), {facts['memory_gib']} GiB, Python {facts['python']}; "
        f"PostgreSQL {facts['postgres']} ({pg}; JIT off on both sides' connections); app pool: {_pool()}",
        f"- load average (1/5/15 min): {_avg(facts['load_before'])} before, {_avg(facts['load_after'])} after",
        f"- database `{a['database']}`, load {load_line}",
        f"- {a['devices']} devices, {a['concurrency']} in flight; per rep {a['companies']} companies (one contact "
        f"each, plus {SHARED_PER_REP} shared companies), {a['activities']:,} activities about the window + "
        f"{OLD_PER_REP} older (4% of them still planned instead), {OPEN_DEALS} open deals; pages of {PAGE}; "
        f"{a['mutations']} mutations per push",
        "",
        *_md(["table", "rows (after the run)", "size with indexes"], sizes),
        "",
        "#### Morning sync storm",
        "",
        *_md(PULL_HEADER, _pull_rows(run)),
        "",
        "`app`: GET /api/v1/sync/pull through the ASGI app in-process. `sql`: the app's pull protocol on raw "
        "asyncpg, one transaction a page: the sign-in reads, the counter and the base view in one statement, on the "
        "first page only the app's own working-set statement, the difference and the new view stored (the old ones "
        "forgotten in the same statement), on later pages the next steps of the base view (counted in the cursor, "
        "nothing written), and one statement that writes the page's JSON (PostgreSQL's JSON functions). The "
        "app also takes its caller's rate-limit bucket (an upsert on a connection of its own), which the baseline "
        "does not. Page times exclude the device parsing the page; device times include it (same parser on both "
        "sides).",
        "",
        "#### Reconnect push storm",
        "",
        *_md(PUSH_HEADER, _push_rows(run)),
        "",
        "`app`: POST /api/v1/sync/push through the ASGI app. `sql`: the same rows written by asyncpg, one "
        "transaction per device, after the organisation's lock (records, change-log rows and counter, feed and stage "
        "events, contact points, the deal's last activity, the app's position once at the end), without the app's "
        "checks "
        "(visibility, colleagues, duplicates, custom fields, conflicts).",
        "",
        "Checks:",
        "",
        *(f"- {c}" for c in run.checks),
        "",
        f"#### One device alone, mean per page ({run.alone.pages} pages a pull, {ALONE_ROUNDS} pulls a side, warm)",
        "",
        *_md(["", "ms", "statements"], _alone_rows(run.alone)),
        "",
        f"#### One push alone (mean of {ALONE_ROUNDS}, warm, about records the storms do not touch)",
        "",
        *_md(["", "ms", "statements"], _push_alone_rows(run.alone, a["mutations"])),
    ]
    if run.alone.profile:
        total = sum(t for _, t in run.alone.profile)
        out += [
            "",
            "cProfile of the app's side of that pull (own CPU time by part of the stack; the bench's httpx client "
            "and the device's parsing run in the same process):",
            "",
            *_md(["part", "s", "share"], [[k, f"{v:.3f}", f"{v / total:.0%}"] for k, v in run.alone.profile]),
            "",
            *_md(
                ["function", "own s", "cumulative s", "calls"],
                [[f"`{w}`", f"{t:.3f}", f"{c:.3f}", f"{n:,}"] for w, t, c, n in run.alone.top[:10]],
            ),
        ]
    out.append(END)
    return "\n".join(out)


INTRO = """How long 50 phones take to pull their working set at 8 a.m., and to push what they did offline when they
come back into coverage; each next to a baseline on raw asyncpg in the same run (`bench/sync.py`, which says in
its docstring exactly what each side does).

```sh
bash .ci/postgres-setup                                   # once: PostgreSQL up, role fieldbook (CREATEDB)
.venv/bin/python -m bench.sync --profile --pool-probe 20  # what made the report below: ~2 min on this machine
.venv/bin/python -m bench.sync                            # (re)makes database fieldbook_sync (~15 s), then ~2 min
.venv/bin/python -m bench.sync --reuse                    # keeps the database of an earlier run
.venv/bin/python -m bench.sync --devices 50 --concurrency 10 --mutations 20 --no-write
```

Its own database (`fieldbook_sync`, made fresh each run unless `--reuse`; not the benchmark data set): one
organisation of 5 teams, 50 reps with 500 companies each (one contact each, 5 more companies shared by a teammate),
8 deals each (5 open), 5,800 activities each (5,000 about the last 88 days and 800 older, made by api/benchdata's
generator: 4% of them still planned, 0.3% deleted, ~13% by a teammate); about 290k activities in all. Each phone's
working set is ~6,850 records: 7 pages of 1,000.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=DEFAULT_DATABASE, help="database to (re)create")
    parser.add_argument("--devices", type=int, default=50, help="phones, one per rep")
    parser.add_argument("--concurrency", type=int, default=10, help="devices in flight at once (both sides)")
    parser.add_argument("--companies", type=int, default=500, help="companies per rep (one contact each)")
    parser.add_argument("--activities", type=int, default=5000, help="activities per rep in the 90-day window")
    parser.add_argument("--mutations", type=int, default=20, help="mutations per push")
    parser.add_argument("--reuse", action="store_true", help="keep the database if an earlier run made it")
    parser.add_argument("--profile", action="store_true", help="cProfile one device's pull through the app")
    parser.add_argument(
        "--pool-probe", type=int, default=0, metavar="N", help="also ask for N first pages at once (the app's pool)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--results", type=Path, default=RESULTS, help="the Markdown file to write the report into")
    parser.add_argument("--no-write", action="store_true", help="print only; write no report")
    parser.add_argument("--json", type=Path, help="also write the key numbers here (for bench.run's targets)")
    args = parser.parse_args(argv)
    if not 1 <= args.mutations <= 100:
        parser.error("--mutations: 1 to 100 (the API's limit per push)")
    _configure_app(args.database)
    started = time.perf_counter()
    if not args.reuse or not asyncio.run(_exists(args.database)):
        console.print(f"[bold]Creating[/] {args.database} on {common.server().rsplit('@', 1)[-1]}")
        stats = asyncio.run(load(args.database, args))
        console.print(f"[bold green]Loaded[/] in {stats['total_s']:.0f} s: {stats['rows']}")
    run = asyncio.run(measure(args))
    for t in tables(run):
        console.print(t)
    console.print("\n".join(run.checks))
    if run.alone.profile:
        console.print("cProfile, own CPU time by part of the stack:")
        for area, seconds in run.alone.profile:
            console.print(f"  {area:<32} {seconds:7.3f} s")
        for where, own, cumulative, calls in run.alone.top:
            console.print(f"  {own:7.3f} {cumulative:7.3f} {calls:8,}  {where}")
    console.print(f"Done in {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(numbers(run), indent=2))
    if not args.no_write:
        command = "python -m bench.sync " + " ".join(argv if argv is not None else sys.argv[1:])
        common.write_section(args.results, (START, END), markdown(run, command.strip()), f"{SECTION}\n\n{INTRO}")
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
