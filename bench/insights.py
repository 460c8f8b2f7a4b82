"""The leaderboard and the funnel over one year of a big organisation, through the app and as the same SQL on raw
asyncpg, in one run.

    python -m bench.insights [--database fieldbook_insights] [--runs 7] [--budget 60] [--reuse] [--scale 1.0]

**Data.** Its own database (`fieldbook_insights`, made fresh unless `--reuse` finds it), migrated by Alembic. One
organisation, "Bench Insights" (time zone Europe/Madrid, EUR), made by the app's `create_organization`: the default
pipeline (Lead → Qualified → Proposal → Negotiation → Won / Lost) and lost reasons are the app's. An admin and 10
teams of a manager and 20 reps; 8,000 companies (40 per rep); 200,000 deals created over the last 365 days. Each
deal is walked through the pipeline: it stays in each open stage an exponential time (a mean of 6 to 14 days,
times its owner's pace; 4% stall), then moves on (now and then skipping a stage) or is lost there (a lost reason
drawn, earlier reasons more often); moving on from Negotiation is a win; what has not finished by now is still
open. How likely a deal moves on depends on its owner's skill: a tenth of the reps are stars, 15% struggle, so win
rates run from under 10% to over 40%. Owners also differ in deal volume and in activities per deal. Amounts are
log-normal around €8k (2% in USD, which the insights leave out of sums). Deals and their `deal_stage_event` rows
(the creation, each move, the close; `seconds_in_previous` set) are made in Python and sent with COPY. The
2,000,000 activities are made by PostgreSQL (`INSERT … SELECT` over `generate_series`, `setseed` first): 70%
about a deal, done between its creation and its close (more for deals that went further and for busier owners),
30% about a company (heavy-tailed) over the year; calls, e-mails, meetings, notes and tasks; 4% still planned,
0.3% deleted. The deals go in last, with their last activity (and when an open one goes rotten) as the app
keeps them. No contacts, no feed events: these insights read neither. Keys, indexes and foreign keys are
dropped for the load and rebuilt after it (`bench.load.Deferred`), then VACUUM ANALYZE.

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
import json
import math
import os
import re
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import greenlet
from rich.console import Console
from rich.table import Table

from api.core.types import fold
from bench import common, read_paths
from bench.load import (
    BODIES,
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
    SUBJECTS,
    Deferred,
    Generator,
    Org,
    Plan,
    create_database,
    ts,
)
from bench.read_paths import JIT_APP, Capture, Explained, Jit, _avg, _configure_app, percentile

console = Console(width=160)
RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Insights: leaderboard and funnel"
START, END = "<!-- insights:start -->", "<!-- insights:end -->"

DEFAULT_DATABASE = "fieldbook_insights"
ORG_NAME = "Bench Insights"
DOMAIN = "insights.bench.example"
TIME_ZONE = "Europe/Madrid"
TEAM_NAMES = ("north", "south", "east", "west", "central", "coast", "islands", "mountains", "capital", "export")
REPS_PER_TEAM = 20
COMPANIES, DEALS, ACTIVITIES = 8_000, 200_000, 2_000_000
YEAR_DAYS = 365
# Of the activities: the share about a deal (the rest are about a company alone), still planned, deleted.
ON_DEALS, PLANNED, DELETED = 0.7, 0.04, 0.003
# Per open stage (Lead, Qualified, Proposal, Negotiation): how likely an average rep's deal moves on (a rep of skill
# s: MOVE_ON ** (1 / s)), and the mean days it stays first (times the rep's pace).
MOVE_ON = (0.7, 0.7, 0.6, 0.7)
STAY_DAYS = (6.0, 9.0, 14.0, 10.0)
SKIP, STALL, USD, DEAL_DELETED = 0.05, 0.04, 0.02, 0.003
ADMIN_EMAIL = f"admin@{DOMAIN}"
MANAGER_EMAIL = f"{TEAM_NAMES[0]}.manager@{DOMAIN}"
ROLES = {"admin": ADMIN_EMAIL, "manager": MANAGER_EMAIL}
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


# Data


@dataclass(frozen=True)
class Seller:
    id: uuid.UUID
    team: int
    role: str
    skill: float  # a deal moves on from stage i with probability MOVE_ON[i] ** (1 / skill)
    volume: float  # relative number of deals
    pace: float  # relative days in each stage
    effort: float  # relative activities per deal


@dataclass
class Year:
    """The organisation's rows, in bench.load's layouts (COLUMNS order)."""

    teams: list[tuple[Any, ...]] = field(default_factory=list)
    users: list[tuple[Any, ...]] = field(default_factory=list)
    heads: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    sellers: list[Seller] = field(default_factory=list)
    companies: list[tuple[Any, ...]] = field(default_factory=list)
    deals: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    # What the activities are about: (deal_id, company_id, owner_id, from, to (epoch seconds), how many).
    targets: list[tuple[Any, ...]] = field(default_factory=list)


class YearMaker:
    def __init__(self, gen: Generator, org: Org, scale: float) -> None:
        self.gen, self.org, self.rng, self.now = gen, org, gen.rng, gen.now
        self.scale = scale
        self.opens = [s for s in org.stages if s["kind"] == "open"]
        self.won = next(s for s in org.stages if s["kind"] == "won")
        self.lost = next(s for s in org.stages if s["kind"] == "lost")
        if len(self.opens) != len(MOVE_ON):
            raise SystemExit(
                f"bench.insights expects {len(MOVE_ON)} open stages, the default pipeline has {self.opens}"
            )
        self.year = Year()

    def record(self, created: float, deleted: bool = False) -> tuple[Any, ...]:
        return self.gen.record(self.org.id, created, deleted)

    def people(self) -> None:
        rng, gen, year = self.rng, self.gen, self.year
        setup = self.now - 800 * DAY

        def user(email: str, name: str, role: str, team: uuid.UUID | None) -> uuid.UUID:
            row = (*self.record(setup), email, name, fold(name), role, team, True, gen.password_hash)
            year.users.append(row)
            user_id: uuid.UUID = row[0]
            return user_id

        user(ADMIN_EMAIL, "Admin User", "admin", None)
        for index, team_name in enumerate(TEAM_NAMES):
            team = (*self.record(setup), team_name.title(), None)
            year.teams.append(team)
            head = user(f"{team_name}.manager@{DOMAIN}", f"{team_name.title()} Manager", "manager", team[0])
            year.heads.append((team[0], head))
            year.sellers.append(Seller(head, index, "manager", 1.2, 0.1, 1.0, 0.8))
            for i in range(1, REPS_PER_TEAM + 1):
                name = f"{rng.choice(gen.first)} {rng.choice(gen.last)} {index * REPS_PER_TEAM + i}"
                rep = user(f"{team_name}.rep{i:02d}@{DOMAIN}", name, "rep", team[0])
                roll = rng.random()
                skill = (
                    rng.uniform(1.8, 2.4)
                    if roll < 0.1
                    else rng.uniform(0.5, 0.75)
                    if roll < 0.25
                    else rng.uniform(0.8, 1.3)
                )
                year.sellers.append(
                    Seller(
                        rep, index, "rep", skill, rng.uniform(0.6, 1.4), rng.uniform(0.7, 1.4), rng.uniform(0.6, 1.6)
                    )
                )

    def clients(self) -> dict[uuid.UUID, tuple[list[tuple[Any, ...]], list[float]]]:
        """The reps' companies, and how much business each brings (heavy-tailed): {rep: (rows, weights)}."""
        rng, gen = self.rng, self.gen
        a, b, c = COMPANY_A.split(), COMPANY_B.split(), COMPANY_C.split()
        reps = [s for s in self.year.sellers if s.role == "rep"]
        per_rep = max(1, round(COMPANIES * self.scale / len(reps)))
        owned: dict[uuid.UUID, tuple[list[tuple[Any, ...]], list[float]]] = {}
        n = 0
        for rep in reps:
            rows, weights = owned.setdefault(rep.id, ([], []))
            for _ in range(per_rep):
                n += 1
                created = self.now - rng.uniform(380, 1500) * DAY
                name = f"{rng.choice(a)} {rng.choice(b)} {rng.choice(c)} {n}"
                city, country = rng.choice(CITIES)
                company = (
                    *self.record(created),
                    *(name, fold(name), rep.id, "[]", rng.choice(SEGMENTS), rng.choice(SOURCES), "{}"),
                    f"insights{n}.example",
                    rng.choice(INDUSTRIES),
                    rng.choice((5, 20, 50, 200, 1000)),
                    f"+349{rng.randrange(10**7, 10**8)}",
                    f"Calle {rng.choice(gen.last)} {rng.randint(1, 200)}",
                    city,
                    country,
                )
                rows.append(company)
                weights.append(rng.paretovariate(1.5))
                self.year.companies.append(company)
        return owned

    def walk(self, seller: Seller, created: float) -> tuple[list[tuple[asyncpg.Record, float]], str]:
        """The stages a deal entered and when (its creation first), and how it ends up."""
        rng, opens, now = self.rng, self.opens, self.now
        path = [(opens[0], created)]
        at, i = created, 0
        slow = 20.0 if rng.random() < STALL else 1.0
        while True:
            at += rng.expovariate(1.0 / (STAY_DAYS[i] * seller.pace * slow * DAY))
            if at >= now:
                return path, "open"
            if rng.random() >= MOVE_ON[i] ** (1.0 / seller.skill):
                path.append((self.lost, at))
                return path, "lost"
            i += 2 if i + 2 < len(opens) and rng.random() < SKIP else 1
            if i == len(opens):
                path.append((self.won, at))
                return path, "won"
            path.append((opens[i], at))

    def deals(self, owned: dict[uuid.UUID, tuple[list[tuple[Any, ...]], list[float]]]) -> None:
        rng, now, year, org = self.rng, self.now, self.year, self.org
        teams = {s.team: s for s in year.sellers if s.role == "rep"}
        reasons = org.lost_reasons
        reason_weights = [1.0 / (i + 1) for i in range(len(reasons))]
        count = max(1, round(DEALS * self.scale))
        owners = rng.choices(year.sellers, weights=[s.volume for s in year.sellers], k=count)
        weights: list[float] = []
        for seller in owners:
            # A manager's deals are with a client of one of the team's reps.
            companies, company_weights = owned[seller.id if seller.role == "rep" else teams[seller.team].id]
            company = rng.choices(companies, weights=company_weights)[0]
            created = now - rng.random() * YEAR_DAYS * DAY
            path, status = self.walk(seller, created)
            stage, entered = path[-1]
            end = entered if status != "open" else now
            deal_id = self.gen.ids.at(created)
            reason = rng.choices(reasons, weights=reason_weights)[0] if status == "lost" else None
            deleted = rng.random() < DEAL_DELETED
            amount = round(rng.lognormvariate(math.log(8_000), 0.9) * (0.85 + 0.15 * seller.skill) / 10) * 1_000
            year.deals.append(
                {
                    "id": deal_id,
                    "created": created,
                    "deleted": ts(min(now, end + DAY)) if deleted else None,
                    "title": f"{rng.choice(PRODUCTS)} for {company[6]}",
                    "company_id": company[0],
                    "contact_id": None,
                    "stage": stage,
                    "owner_id": seller.id,
                    "amount_minor": amount,
                    "currency": "USD" if rng.random() < USD else "EUR",
                    "expected_close_on": date.fromtimestamp(created + rng.uniform(30, 90) * DAY),
                    "status": status,
                    "lost_reason_id": reason["id"] if reason else None,
                    "lost_note": None,
                    "won_at": ts(end) if status == "won" else None,
                    "lost_at": ts(end) if status == "lost" else None,
                    "stage_entered_at": entered,
                    "last_activity_at": None,
                }
            )
            for step, (to, at) in enumerate(path):
                previous = path[step - 1] if step else None
                year.events.append(
                    (
                        *self.record(at),
                        deal_id,
                        previous[0]["id"] if previous else None,
                        to["id"],
                        ts(at),
                        seller.id,
                        int(at - previous[1]) if previous else None,
                    )
                )
            weights.append(seller.effort * (1 + 1.5 * (len(path) - 1)) * rng.uniform(0.5, 1.5))
            year.targets.append((deal_id, company[0], seller.id, created, end, 0))
        self._spread(year.targets, weights, round(ACTIVITIES * self.scale * ON_DEALS))
        start = len(year.targets)
        weights = []
        for rep_id, (companies, company_weights) in owned.items():
            for company, weight in zip(companies, company_weights, strict=True):
                year.targets.append((None, company[0], rep_id, now - YEAR_DAYS * DAY, now, 0))
                weights.append(weight)
        wanted = round(ACTIVITIES * self.scale) - sum(t[5] for t in year.targets)
        year.targets[start:] = self._spread(year.targets[start:], weights, wanted)

    def _spread(self, targets: list[tuple[Any, ...]], weights: list[float], total: int) -> list[tuple[Any, ...]]:
        """Share `total` activities among `targets` in proportion to `weights` (rounded at random), in place."""
        unit = total / sum(weights)
        for i, weight in enumerate(weights):
            targets[i] = (*targets[i][:5], int(weight * unit + self.rng.random()))
        return targets


def _uuid7(at: str, r: str) -> str:
    """SQL for a UUIDv7 whose time is `at` (a timestamptz) and whose 74 random bits come from the columns
    {r}1..{r}4 (random() values)."""
    return (
        f"(lpad(to_hex(floor(extract(epoch FROM {at}) * 1000)::bigint), 12, '0') || '7' "
        f"|| lpad(to_hex(floor({r}1 * 4096)::int), 3, '0') || to_hex(8 + floor({r}2 * 4)::int) "
        f"|| lpad(to_hex(floor({r}3 * 4096)::int), 3, '0') "
        f"|| lpad(to_hex(floor({r}4 * 281474976710656)::bigint), 12, '0'))::uuid"
    )


# $1 organisation, $2 now (epoch seconds), $3 bodies, $4..$8 subjects of call, email, meeting, note, task, $9 outcomes.
ACTIVITIES_SQL = f"""
INSERT INTO activity (id, org_id, created_at, updated_at, version, deleted_at, kind, subject, body, company_id,
    deal_id, owner_id, assignee_id, due_at, done_at, duration_seconds, direction, outcome, mentioned_ids)
SELECT {_uuid7("w.created_at", "w.u")}, $1, w.created_at, coalesce(w.deleted_at, w.created_at),
    CASE WHEN w.deleted_at IS NULL THEN 1 ELSE 2 END, w.deleted_at, w.kind,
    (CASE w.kind WHEN 'call' THEN $4::text[] WHEN 'email' THEN $5::text[] WHEN 'meeting' THEN $6::text[]
        WHEN 'note' THEN $7::text[] ELSE $8::text[] END)[1 + floor(w.p_subject * 4)::int],
    CASE WHEN w.p_body < 0.5 THEN ($3::text[])[1 + floor(w.p_body * 2 * array_length($3::text[], 1))::int] END,
    w.company_id, w.deal_id, w.owner_id, w.owner_id, w.due_at, w.done_at,
    CASE WHEN w.kind = 'call' AND w.done_at IS NOT NULL THEN 20 + floor(w.p_call * 1780)::int
        WHEN w.kind = 'meeting' THEN CASE WHEN w.p_call < 0.5 THEN 1800 ELSE 3600 END END,
    CASE WHEN w.kind = 'call' THEN CASE WHEN w.p_direction < 0.5 THEN 'inbound' ELSE 'outbound' END END,
    CASE WHEN w.kind = 'call' AND w.done_at IS NOT NULL THEN ($9::text[])[1 + floor(w.p_outcome * 4)::int] END,
    '[]'
FROM (
    SELECT d.*, CASE WHEN d.p_gone < {DELETED} THEN least(to_timestamp($2), d.created_at + interval '2 days') END
        AS deleted_at
    FROM (
        SELECT k.*, CASE WHEN k.done_at IS NULL THEN to_timestamp($2) - k.p_made * interval '20 days'
            ELSE coalesce(k.due_at - k.p_made * interval '7 days', k.done_at) END AS created_at
        FROM (
            SELECT t.*,
                CASE WHEN t.done_at IS NULL THEN to_timestamp($2) + (t.p_due * 44 - 14) * interval '1 day'
                    WHEN t.kind IN ('task', 'meeting') THEN t.done_at - t.p_due * interval '3 days' END AS due_at
            FROM (
                SELECT r.*,
                    CASE WHEN r.p_planned < {PLANNED}
                        THEN (ARRAY['task', 'task', 'task', 'meeting', 'call'])[1 + floor(r.p_kind * 5)::int]
                        WHEN r.p_kind < 0.35 THEN 'call' WHEN r.p_kind < 0.60 THEN 'email'
                        WHEN r.p_kind < 0.75 THEN 'meeting' WHEN r.p_kind < 0.90 THEN 'note' ELSE 'task' END AS kind,
                    CASE WHEN r.p_planned >= {PLANNED} THEN to_timestamp(r.t0 + (r.t1 - r.t0) * r.p_at) END AS done_at
                FROM (
                    SELECT t.deal_id, t.company_id, t.owner_id, t.t0, t.t1,
                        random() AS p_planned, random() AS p_kind, random() AS p_at, random() AS p_due,
                        random() AS p_made, random() AS p_subject, random() AS p_body, random() AS p_call,
                        random() AS p_direction, random() AS p_outcome, random() AS p_gone,
                        random() AS u1, random() AS u2, random() AS u3, random() AS u4
                    FROM bench_target t CROSS JOIN LATERAL generate_series(1, t.n)
                    OFFSET 0
                ) r
            ) t
        ) k
    ) d
) w
"""

# Each deal's last done activity (epoch seconds): the deals go in after their activities, with it.
LAST_ACTIVITY_SQL = """SELECT deal_id, extract(epoch FROM max(done_at))::float8 FROM activity
WHERE deal_id IS NOT NULL AND done_at IS NOT NULL AND deleted_at IS NULL GROUP BY deal_id"""


async def _organisation(url: str) -> uuid.UUID:
    from api.auth.service import create_organization
    from api.core.db import Database, make_engine

    engine = make_engine(url, null_pool=True)
    try:
        async with Database(engine).writer() as session:
            org = await create_organization(
                session,
                name=ORG_NAME,
                settings={"locale": "en", "currency": "EUR", "phone_region": "ES", "time_zone": TIME_ZONE},
            )
            await session.commit()
            return org.id
    finally:
        await engine.dispose()


async def load(database: str, args: argparse.Namespace) -> dict[str, Any]:
    """Make the organisation's year in a fresh database; the figures of the load."""
    started = time.perf_counter()
    await create_database(database)
    from api.core.migrate import upgrade

    # Alembic runs its own event loop: off this one.
    await asyncio.to_thread(upgrade, common.sqlalchemy_url(database))
    org_id = await _organisation(common.sqlalchemy_url(database))
    timings: dict[str, Any] = {"migrate_and_organisation_s": time.perf_counter() - started}
    conn = await asyncpg.connect(common.dsn(database))
    try:
        await conn.execute("SET synchronous_commit = off; SET maintenance_work_mem = '1GB'")
        stages = await conn.fetch(
            """SELECT s.id, s.pipeline_id, s.name, s.kind, s.position, s.rotten_days FROM stage s
               JOIN pipeline p ON p.id = s.pipeline_id AND p.is_default WHERE s.org_id = $1 ORDER BY s.position""",
            org_id,
        )
        reasons = await conn.fetch("SELECT id, name FROM lost_reason WHERE org_id = $1 ORDER BY position", org_id)
        plan = Plan(ORG_NAME, DOMAIN, TEAM_NAMES, REPS_PER_TEAM, COMPANIES, 0, DEALS, ACTIVITIES, 0)
        org = Org(id=org_id, plan=plan, stages=list(stages), lost_reasons=list(reasons))
        deferred = await Deferred.read(conn)
        await deferred.drop(conn)

        step = time.perf_counter()
        gen = Generator(args.seed, time.time())
        maker = YearMaker(gen, org, args.scale)
        maker.people()
        owned = maker.clients()
        maker.deals(owned)
        year = maker.year
        timings["generate_s"] = time.perf_counter() - step
        console.log(
            f"generated {len(year.deals):,} deals, {len(year.events):,} stage events in {timings['generate_s']:.0f} s"
        )

        step = time.perf_counter()
        rows: Counter[str] = Counter()

        async def copy(table: str, records: list[tuple[Any, ...]]) -> None:
            await conn.copy_records_to_table(table, records=records, columns=list(COLUMNS[table]))
            rows[table] += len(records)

        await copy("team", year.teams)
        await copy("user", year.users)
        for team_id, head in year.heads:
            await conn.execute("UPDATE team SET head_id = $1 WHERE id = $2", head, team_id)
        await copy("company", year.companies)
        await copy("deal_stage_event", year.events)
        timings["copy_s"] = time.perf_counter() - step
        console.log(f"copied in {timings['copy_s']:.0f} s")

        step = time.perf_counter()
        await conn.execute(
            """CREATE TEMPORARY TABLE bench_target (deal_id uuid, company_id uuid NOT NULL, owner_id uuid NOT NULL,
               t0 float8 NOT NULL, t1 float8 NOT NULL, n int NOT NULL)"""
        )
        await conn.copy_records_to_table("bench_target", records=[t for t in year.targets if t[5] > 0])
        await conn.execute("SELECT setseed($1)", (args.seed % 1000) / 1000)
        kinds = ("call", "email", "meeting", "note", "task")
        status = await conn.execute(
            ACTIVITIES_SQL, org_id, gen.now, list(BODIES), *(list(SUBJECTS[k]) for k in kinds), list(OUTCOMES)
        )
        rows["activity"] = int(status.split()[-1])
        timings["activities_s"] = time.perf_counter() - step
        console.log(f"{rows['activity']:,} activities in {timings['activities_s']:.0f} s")
        step = time.perf_counter()
        last = dict(await conn.fetch(LAST_ACTIVITY_SQL))
        for deal in year.deals:
            deal["last_activity_at"] = last.get(deal["id"])
        await copy("deal", gen.deal_rows(org, year.deals))
        timings["deals_s"] = time.perf_counter() - step

        step = time.perf_counter()
        await deferred.rebuild(conn, lambda: None)
        timings["index_s"] = time.perf_counter() - step
        console.log(f"keys, indexes and foreign keys in {timings['index_s']:.0f} s")
        step = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE)")
        timings["analyze_s"] = time.perf_counter() - step
        if await Deferred.read(conn) != deferred:
            raise RuntimeError("the schema after the load differs from the migrated one")
        timings["total_s"] = time.perf_counter() - started
        timings["rows"] = dict(rows)
        timings["scale"] = args.scale
        timings["loaded_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        text = json.dumps(timings).replace("'", "''")
        await conn.execute(f"COMMENT ON DATABASE \"{database}\" IS '{text}'")
        return timings
    finally:
        await conn.close()


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
        f"{load.get('total_s', 0):.0f} s (migrate + organisation {load.get('migrate_and_organisation_s', 0):.1f} s, "
        f"generate {load.get('generate_s', 0):.0f} s, COPY {load.get('copy_s', 0):.0f} s, activities in SQL "
        f"{load.get('activities_s', 0):.0f} s, deals with their last activity {load.get('deals_s', 0):.0f} s, keys, "
        f"indexes and foreign keys {load.get('index_s', 0):.0f} s, VACUUM ANALYZE {load.get('analyze_s', 0):.0f} s; "
        f"scale {load.get('scale')}), loaded {load.get('loaded_at')}"
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


INTRO = """What the leaderboard and the funnel cost over a year of a big organisation: 200 reps in 10 teams, 200k deals
with their stage history, 2M activities, on PostgreSQL; through the app and as the same SQL on raw asyncpg, in the
same run (`bench/insights.py`, whose docstring says how the data is made and what each side does).

```sh
bash .ci/postgres-setup                      # once: PostgreSQL up, role fieldbook (CREATEDB)
.venv/bin/python -m bench.insights           # (re)makes fieldbook_insights (~1.5 min), measures (~2 min)
.venv/bin/python -m bench.insights --reuse   # keeps the database of an earlier run
.venv/bin/python -m bench.insights --runs 7 --scale 0.1 --no-write
```
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.insights", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=DEFAULT_DATABASE, help="database to (re)create")
    parser.add_argument("--runs", type=int, default=7, help="measured requests per scenario")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured requests first")
    parser.add_argument("--budget", type=float, default=60.0, help=f"seconds per scenario, at least {MIN_RUNS} runs")
    parser.add_argument("--reuse", action="store_true", help="keep the database if an earlier run made it")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="of the companies, deals and activities (1.0: 200k deals)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--results", type=Path, default=RESULTS, help="the Markdown file to write the report into")
    parser.add_argument("--no-write", action="store_true", help="print only; write no report")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs: at least 1")
    _configure_app(args.database)
    started = time.perf_counter()
    if not args.reuse or not asyncio.run(_exists(args.database)):
        console.print(f"[bold]Creating[/] {args.database} on {common.server().rsplit('@', 1)[-1]}")
        stats = asyncio.run(load(args.database, args))
        console.print(f"[bold green]Loaded[/] in {stats['total_s']:.0f} s: {stats['rows']}")
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
