"""Load a benchmark-sized CRM into a fresh PostgreSQL database, fast.

    python -m bench.load [--database fieldbook_bench] [--scale 1.0] [--seed 7]

One organisation with 3 teams and 32 users, 100k companies, 200k contacts, 50k deals with their stage history,
1M activities over 12 months and the feed events for all of it; plus two small organisations so that every
query's `org_id` filter has something to leave out. The schema comes from the Alembic migrations; rows go in with
COPY (asyncpg `copy_records_to_table`), not through the services: the change log is therefore empty, as after an
import. Primary keys, secondary indexes and foreign keys of the bulk tables are dropped for the load and rebuilt
afterwards (which checks every key at once), then the tables are vacuumed and analysed. Data is deterministic
for a given seed (ids included: UUIDv7 made from the record's own time, so ids are time-ordered).
"""

import argparse
import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from argon2 import PasswordHasher
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from api.auth.service import create_organization
from api.core.db import Database, make_engine
from api.core.migrate import upgrade
from api.core.types import fold
from api.settings import get_settings
from bench import common

console = Console()

DAY = 86_400.0
CHUNK = 50_000
# The tables loaded in bulk: their keys and indexes are rebuilt after the load.
BULK_TABLES = ("company", "contact", "contact_point", "deal", "deal_stage_event", "activity", "feed_event", "share")

RECORD = ("id", "org_id", "created_at", "updated_at", "version", "deleted_at")
COLUMNS: dict[str, tuple[str, ...]] = {
    "team": (*RECORD, "name", "parent_id"),
    "user": (*RECORD, "email", "name", "name_folded", "role", "team_id", "is_active", "password_hash"),
    "company": (
        *RECORD,
        *("name", "name_folded", "owner_id", "tags", "segment", "source", "custom"),
        *("domain", "industry", "size", "phone", "address", "city", "country"),
    ),
    "contact": (
        *RECORD,
        *("name", "name_folded", "owner_id", "tags", "segment", "source", "custom"),
        *("title", "company_id", "emails", "phones", "email_consent", "phone_consent"),
    ),
    "contact_point": (*RECORD, "kind", "value", "client_kind", "client_id"),
    "deal": (
        *RECORD,
        *("title", "title_folded", "company_id", "contact_id", "pipeline_id", "stage_id", "owner_id"),
        *("amount_minor", "currency", "expected_close_on", "status", "lost_reason_id", "lost_note"),
        *("won_at", "lost_at", "stage_entered_at", "last_activity_at", "rots_at", "custom"),
    ),
    "deal_stage_event": (*RECORD, "deal_id", "from_stage_id", "to_stage_id", "at", "by_id", "seconds_in_previous"),
    "activity": (
        *RECORD,
        *("kind", "subject", "body", "company_id", "contact_id", "deal_id", "owner_id", "assignee_id"),
        *("due_at", "done_at", "duration_seconds", "direction", "outcome", "mentioned_ids"),
    ),
    "feed_event": (
        *("id", "org_id", "kind", "at", "actor_id", "company_id", "contact_id", "deal_id", "activity_id", "user_id"),
        "data",
    ),
    "share": (*RECORD, "entity", "entity_id", "user_id", "by_id"),
}

# Words to build names from (some accented: the folded columns must differ from the names).
FIRST = "Ana Luis Marta Jorge Sofía Diego Elena Javier Lucía Pablo Carmen Andrés Inés Raúl Nuria Iván Beatriz Óscar"
LAST = "García López Martínez Núñez Fernández Ruiz Díaz Moreno Álvarez Romero Navarro Torres Domínguez Gil Peña"
COMPANY_A = "Ibérica Andina Global Norte Atlántica Central Nueva Pacífica Unida Moderna Técnica Rápida Solar Verde"
COMPANY_B = "Logística Construcciones Alimentos Farmacia Transportes Seguros Energía Textil Hoteles Maquinaria Óptica"
COMPANY_C = "S.A. S.L. Hermanos Grupo Ltda. Corp. & Cía."
INDUSTRIES = ("retail", "logistics", "construction", "food", "health", "energy", "hospitality", "manufacturing")
SEGMENTS = ("smb", "mid-market", "enterprise")
SOURCES = ("referral", "fair", "web", "cold-call", "partner")
CITIES = (("Madrid", "ES"), ("Sevilla", "ES"), ("Bogotá", "CO"), ("Lima", "PE"), ("Santiago", "CL"), ("Quito", "EC"))
TITLES = ("Purchasing manager", "CEO", "Operations lead", "CFO", "Store manager", "Logistics coordinator")
PRODUCTS = ("Fleet renewal", "Annual supply", "Maintenance plan", "Pilot order", "Expansion", "Upgrade", "Licences")
KINDS = ("call", "email", "meeting", "note", "task")
KIND_WEIGHTS = (35, 25, 15, 15, 10)
SUBJECTS = {
    "call": ("Follow-up call", "Call about the proposal", "Price check call", "Intro call"),
    "email": ("Sent the proposal", "Answered questions", "Sent the catalogue", "Re: delivery dates"),
    "meeting": ("Visit at their office", "Demo", "Quarterly review", "Site visit"),
    "note": ("Note", "Budget approved in Q3", "New buyer in charge", "Competitor is cheaper"),
    "task": ("Send the quote", "Prepare the contract", "Call back", "Update the price list"),
}
BODIES = (
    "They asked for a better price on the second year; I said we would look at volume discounts.",
    "Good meeting. The buyer wants a trial order next month and references from two customers.",
    "No answer. Left a voicemail and will try again on Thursday morning.",
    "Delivery problems last quarter: they want a dedicated contact and weekly status updates.",
    "Budget confirmed. Decision by the end of the month, with the CFO in the last meeting.",
)
OUTCOMES = ("connected", "no_answer", "voicemail", "busy")


def _at(table: str, column: str) -> int:
    return COLUMNS[table].index(column)


# Positions in the row tuples (rows are tuples in COLUMNS order: what COPY takes).
DELETED_AT = _at("company", "deleted_at")
CO_NAME, CO_OWNER = _at("company", "name"), _at("company", "owner_id")
CO_DOMAIN, CO_PHONE = _at("company", "domain"), _at("company", "phone")
CT_OWNER, CT_COMPANY = _at("contact", "owner_id"), _at("contact", "company_id")
CT_EMAILS, CT_PHONES = _at("contact", "emails"), _at("contact", "phones")
AC_DEAL = _at("activity", "deal_id")
US_ROLE, US_TEAM = _at("user", "role"), _at("user", "team_id")


@dataclass(frozen=True)
class Plan:
    """What one organisation gets."""

    name: str
    domain: str
    teams: tuple[str, ...]
    reps_per_team: int
    companies: int
    contacts: int
    deals: int
    activities: int
    shares: int
    # Companies owned by the benchmark rep, with this many activities each (cards of a long-standing client).
    big_companies: tuple[int, ...] = ()


def plans(scale: float) -> list[Plan]:
    def n(value: int) -> int:
        return max(1, round(value * scale))

    return [
        Plan(
            name=common.MAIN_ORG,
            domain=common.MAIN_DOMAIN,
            teams=("north", "south", "central"),
            reps_per_team=9,
            companies=n(100_000),
            contacts=n(200_000),
            deals=n(50_000),
            activities=n(1_000_000),
            shares=n(2_000),
            big_companies=(1_200, 1_500, 2_000, 3_000, 5_000),
        ),
        *(
            Plan(
                name=f"Bench Other {i}",
                domain=f"other{i}.bench.example",
                teams=("sales",),
                reps_per_team=3,
                companies=1_000,
                contacts=2_000,
                deals=500,
                activities=10_000,
                shares=20,
            )
            for i in (1, 2)
        ),
    ]


# Ids and times


class Ids:
    """UUIDv7 from a seeded generator: the 48-bit millisecond prefix is the record's own time."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def at(self, seconds: float) -> uuid.UUID:
        ms = int(seconds * 1000)
        bits = self.rng.getrandbits(74)
        return uuid.UUID(int=(ms << 80) | (0x7 << 76) | ((bits >> 62) << 64) | (0b10 << 62) | (bits & (2**62 - 1)))


def ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# The organisation skeleton


@dataclass
class Org:
    id: uuid.UUID
    plan: Plan
    stages: list[asyncpg.Record]  # open stages by position, then won, then lost
    lost_reasons: list[asyncpg.Record]
    admin: uuid.UUID = field(default_factory=uuid.uuid4)
    sales: list[uuid.UUID] = field(default_factory=list)
    team_of: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)
    bench_rep: uuid.UUID | None = None


async def create_orgs(url: str, all_plans: Sequence[Plan]) -> list[uuid.UUID]:
    """Organisations through the service, so they get the default pipeline and lost reasons the app makes."""
    engine = make_engine(url, null_pool=True)
    try:
        ids = []
        async with Database(engine).writer() as session:
            for plan in all_plans:
                org = await create_organization(
                    session, name=plan.name, settings={"locale": "en", "currency": "EUR", "phone_region": "ES"}
                )
                ids.append(org.id)
            await session.commit()
        return ids
    finally:
        await engine.dispose()


# Row generation


class Generator:
    def __init__(self, seed: int, now: float) -> None:
        self.rng = random.Random(seed)
        self.ids = Ids(self.rng)
        self.now = now
        settings = get_settings()
        # One hash for every user (hashing is slow by design); the app's cost settings, so no rehash at login.
        self.password_hash = PasswordHasher(
            time_cost=settings.password_time_cost, memory_cost=settings.password_memory_kib
        ).hash(common.PASSWORD)
        self.first = FIRST.split()
        self.last = LAST.split()

    def record(self, org: uuid.UUID, created: float, deleted: bool = False) -> tuple[Any, ...]:
        at = ts(created)
        gone = ts(min(self.now, created + self.rng.uniform(1, 30) * DAY)) if deleted else None
        return (self.ids.at(created), org, at, gone or at, 2 if deleted else 1, gone)

    def people(self, org: Org, created: float) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        plan, teams, users = org.plan, [], []

        def user(email: str, name: str, role: str, team: uuid.UUID | None) -> uuid.UUID:
            row = (*self.record(org.id, created), email, name, fold(name), role, team, True, self.password_hash)
            users.append(row)
            user_id: uuid.UUID = row[0]
            return user_id

        org.admin = user(f"admin@{plan.domain}", "Admin User", "admin", None)
        user(f"marketing@{plan.domain}", "Marketing User", "marketing", None)
        for team_name in plan.teams:
            team = (*self.record(org.id, created), team_name.title(), None)
            teams.append(team)
            members = [user(f"{team_name}.manager@{plan.domain}", f"{team_name.title()} Manager", "manager", team[0])]
            for i in range(1, plan.reps_per_team + 1):
                name = f"{self.rng.choice(self.first)} {self.rng.choice(self.last)}"
                members.append(user(f"{team_name}.rep{i}@{plan.domain}", name, "rep", team[0]))
            for member in members:
                org.team_of[member] = members
            org.sales += members
            if org.bench_rep is None:
                org.bench_rep = members[1]
                # Not among the owners records are drawn from.
                user(f"{team_name}.new@{plan.domain}", "New Rep", "rep", team[0])
        return teams, users

    def owner(self, org: Org) -> uuid.UUID:
        # Reps own most records; managers a few.
        return self.rng.choices(org.sales, weights=[0.4 if i % 10 == 0 else 1.0 for i in range(len(org.sales))])[0]

    def colleague(self, org: Org, owner: uuid.UUID) -> uuid.UUID:
        return owner if self.rng.random() < 0.85 else self.rng.choice(org.team_of[owner])

    def companies(self, org: Org) -> tuple[list[tuple[Any, ...]], list[float], list[float]]:
        """Rows, their creation times, and how much activity each attracts (heavy-tailed)."""
        a, b, c = COMPANY_A.split(), COMPANY_B.split(), COMPANY_C.split()
        rows, created, weights = [], [], []
        rng = self.rng
        for i in range(org.plan.companies):
            big = i < len(org.plan.big_companies)
            start = self.now - rng.uniform(30, 730) * DAY if not big else self.now - 700 * DAY
            name = f"{rng.choice(a)} {rng.choice(b)} {rng.choice(c)} {i}"
            domain = f"{fold(name).split()[0]}{i}.example" if rng.random() < 0.8 else None
            city, country = rng.choice(CITIES)
            owner = org.bench_rep if big else self.owner(org)
            rows.append(
                (
                    *self.record(org.id, start, deleted=not big and rng.random() < 0.003),
                    name,
                    fold(name),
                    owner,
                    '["vip"]' if rng.random() < 0.05 else "[]",
                    rng.choice(SEGMENTS),
                    rng.choice(SOURCES),
                    "{}",
                    domain,
                    rng.choice(INDUSTRIES),
                    rng.choice((5, 20, 50, 200, 1000)),
                    f"+349{rng.randrange(10**7, 10**8)}" if rng.random() < 0.7 else None,
                    f"Calle {rng.choice(self.last)} {rng.randint(1, 200)}",
                    city,
                    country,
                )
            )
            created.append(start)
            weights.append(0.0 if big else min(rng.paretovariate(2.0), 50.0))
        return rows, created, weights

    def contacts(
        self, org: Org, companies: list[tuple[Any, ...]], created: list[float], weights: list[float]
    ) -> tuple[list[tuple[Any, ...]], list[float]]:
        rng, rows, times = self.rng, [], []
        # Big companies have a long contact list (the card shows the first 50).
        picks = [i for i in range(len(org.plan.big_companies)) for _ in range(80)]
        picks += rng.choices(range(len(companies)), weights=weights, k=max(0, org.plan.contacts - len(picks)))
        for n, index in enumerate(picks):
            company = companies[index] if rng.random() < 0.92 or index < len(org.plan.big_companies) else None
            start = (created[index] if company else self.now - 700 * DAY) + rng.uniform(0, 20) * DAY
            owner = company[CO_OWNER] if company and rng.random() < 0.9 else self.owner(org)
            first, last = rng.choice(self.first), rng.choice(self.last)
            name = f"{first} {last}"
            host = company[CO_DOMAIN] if company and company[CO_DOMAIN] else "mail.example"
            phones = f'["+346{rng.randrange(10**7, 10**8)}"]' if rng.random() < 0.5 else "[]"
            rows.append(
                (
                    *self.record(org.id, min(start, self.now - DAY), deleted=rng.random() < 0.003),
                    name,
                    fold(name),
                    owner,
                    "[]",
                    None,
                    rng.choice(SOURCES),
                    "{}",
                    rng.choice(TITLES),
                    company[0] if company else None,
                    json.dumps([f"{fold(first)}.{fold(last)}{n}@{host}"]),
                    phones,
                    rng.random() < 0.6,
                    rng.random() < 0.4,
                )
            )
            times.append(min(start, self.now - DAY))
        return rows, times

    def contact_points(
        self, org: Org, companies: list[tuple[Any, ...]], contacts: list[tuple[Any, ...]]
    ) -> Iterator[Any]:
        for row in companies:
            if row[DELETED_AT] is not None:
                continue
            for kind, value in (("domain", row[CO_DOMAIN]), ("phone", row[CO_PHONE])):
                if value:
                    yield (*self.record(org.id, row[2].timestamp()), kind, value, "company", row[0])
        for row in contacts:
            if row[DELETED_AT] is not None:
                continue
            for kind, values in (("email", row[CT_EMAILS]), ("phone", row[CT_PHONES])):
                for value in json.loads(values):
                    yield (*self.record(org.id, row[2].timestamp()), kind, value, "contact", row[0])

    def deals(
        self,
        org: Org,
        companies: list[tuple[Any, ...]],
        company_created: list[float],
        weights: list[float],
        contacts_of: dict[uuid.UUID, list[tuple[Any, ...]]],
    ) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Deals (as dicts: their last activity is filled in later), their stage history and their feed events."""
        rng, now = self.rng, self.now
        opens = [s for s in org.stages if s["kind"] == "open"]
        won = next(s for s in org.stages if s["kind"] == "won")
        lost = next(s for s in org.stages if s["kind"] == "lost")
        picks = [i for i in range(len(org.plan.big_companies)) for _ in range(60)]
        picks += rng.choices(range(len(companies)), weights=weights, k=max(0, org.plan.deals - len(picks)))
        deals, events, feed = [], [], []
        for index in picks:
            company = companies[index]
            people = contacts_of.get(company[0], [])
            contact = rng.choice(people) if people and rng.random() < 0.6 else None
            owner = company[CO_OWNER] if rng.random() < 0.85 else self.owner(org)
            start = max(company_created[index], now - 365 * DAY) + rng.uniform(0, 1) * DAY
            start = rng.uniform(start, now - DAY)
            age = (now - start) / DAY
            closed = rng.random() < min(0.9, age / 120)
            reached = rng.choices(range(len(opens)), weights=(40, 30, 20, 10))[0]
            end = rng.uniform(start + min(age, 7) * DAY, min(now, start + 120 * DAY)) if closed else now
            path = [*opens[: reached + 1]]
            status = "open"
            if closed:
                status = "won" if rng.random() < 0.35 else "lost"
                path.append(won if status == "won" else lost)
            # Entered each stage at increasing times between creation and the end (closing, or now).
            times = sorted([start] + [rng.uniform(start, end) for _ in path[1:]])
            if closed:
                times[-1] = end
            amount = rng.randint(5, 500) * 10_000
            deal_id = self.ids.at(start)
            title = f"{rng.choice(PRODUCTS)} for {company[CO_NAME]}"
            reason = rng.choice(org.lost_reasons) if status == "lost" else None
            deleted = rng.random() < 0.003 and index >= len(org.plan.big_companies)
            deal = {
                "id": deal_id,
                "created": start,
                "end": end,
                "deleted": ts(min(now, end + DAY)) if deleted else None,
                "title": title,
                "company_id": company[0],
                "contact_id": contact[0] if contact else None,
                "stage": path[-1],
                "owner_id": owner,
                "amount_minor": amount,
                "expected_close_on": date.fromtimestamp(start + rng.uniform(30, 90) * DAY),
                "status": status,
                "lost_reason_id": reason["id"] if reason else None,
                "lost_note": "Went with the cheaper offer." if reason and rng.random() < 0.3 else None,
                "won_at": ts(end) if status == "won" else None,
                "lost_at": ts(end) if status == "lost" else None,
                "stage_entered_at": times[-1],
                "last_activity_at": None,
            }
            deals.append(deal)
            money = {"amount_minor": amount, "currency": "EUR"}
            refs = (company[0], deal["contact_id"], deal_id)
            for step, (stage, at) in enumerate(zip(path, times, strict=True)):
                previous = path[step - 1] if step else None
                seconds = int(at - times[step - 1]) if step else None
                events.append(
                    (
                        *self.record(org.id, at),
                        deal_id,
                        previous["id"] if previous else None,
                        stage["id"],
                        ts(at),
                        owner,
                        seconds,
                    )
                )
                if previous is None:
                    kind, data = "deal_created", {"stage": stage["name"], **money}
                else:
                    kind = {"open": "stage_moved", "won": "deal_won", "lost": "deal_lost"}[stage["kind"]]
                    data = {
                        "from_stage": previous["name"],
                        "to_stage": stage["name"],
                        "days_in_previous": int((at - times[step - 1]) / DAY),
                        **money,
                    }
                    if kind != "stage_moved":
                        data["days_open"] = int((at - start) / DAY)
                    if reason is not None and kind == "deal_lost":
                        data["reason"] = reason["name"]
                feed.append((self.ids.at(at), org.id, kind, ts(at), owner, *refs, None, None, json.dumps(data)))
        return deals, events, feed

    def deal_rows(self, org: Org, deals: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        rows = []
        pipeline = org.stages[0]["pipeline_id"]
        for d in deals:
            stage = d["stage"]
            last = d["last_activity_at"]
            rots = None
            if d["status"] == "open" and stage["rotten_days"] is not None:
                since = max(d["stage_entered_at"], last or 0.0)
                rots = ts(since + stage["rotten_days"] * DAY)
            created = ts(d["created"])
            changed = ts(max(d["stage_entered_at"], last or 0.0))
            rows.append(
                (
                    d["id"],
                    org.id,
                    created,
                    d["deleted"] or changed,
                    2 if d["deleted"] else 1,
                    d["deleted"],
                    d["title"],
                    fold(d["title"]),
                    d["company_id"],
                    d["contact_id"],
                    pipeline,
                    stage["id"],
                    d["owner_id"],
                    d["amount_minor"],
                    d.get("currency", "EUR"),
                    d["expected_close_on"],
                    d["status"],
                    d["lost_reason_id"],
                    d["lost_note"],
                    d["won_at"],
                    d["lost_at"],
                    ts(d["stage_entered_at"]),
                    ts(last) if last else None,
                    rots,
                    "{}",
                )
            )
        return rows

    def activity_targets(
        self,
        org: Org,
        companies: list[tuple[Any, ...]],
        company_created: list[float],
        weights: list[float],
        contacts: list[tuple[Any, ...]],
        contact_created: list[float],
        deals: list[dict[str, Any]],
    ) -> Iterator[tuple[Any, ...]]:
        """(company_id, contact_id, deal, owner, earliest, latest) for each activity: a third about a deal, a third
        about a contact, the rest about a company alone; the big companies get theirs on top."""
        rng, now = self.rng, self.now
        year_ago = now - 365 * DAY
        by_company: dict[uuid.UUID, tuple[list[tuple[Any, ...]], list[dict[str, Any]]]] = {}
        for index, count in enumerate(org.plan.big_companies):
            company_id = companies[index][0]
            people = [c for c in contacts if c[CT_COMPANY] == company_id]
            own_deals = [d for d in deals if d["company_id"] == company_id]
            by_company[company_id] = (people, own_deals)
            for _ in range(count):
                roll = rng.random()
                if roll < 0.4 and own_deals:
                    deal = rng.choice(own_deals)
                    yield (company_id, deal["contact_id"], deal, deal["owner_id"], deal["created"], deal["end"])
                elif roll < 0.8 and people:
                    person = rng.choice(people)
                    yield (company_id, person[0], None, org.bench_rep, year_ago, now)
                else:
                    yield (company_id, None, None, org.bench_rep, year_ago, now)
        company_picks = iter(rng.choices(range(len(companies)), weights=weights, k=org.plan.activities))
        for _ in range(org.plan.activities):
            roll = rng.random()
            if roll < 0.35 and deals:
                deal = rng.choice(deals)
                yield (deal["company_id"], deal["contact_id"], deal, deal["owner_id"], deal["created"], deal["end"])
            elif roll < 0.7 and contacts:
                i = rng.randrange(len(contacts))
                person = contacts[i]
                yield (person[CT_COMPANY], person[0], None, person[CT_OWNER], max(contact_created[i], year_ago), now)
            else:
                i = next(company_picks)
                company = companies[i]
                yield (company[0], None, None, company[CO_OWNER], max(company_created[i], year_ago), now)

    def activities(
        self, org: Org, targets: Iterator[tuple[Any, ...]], on_chunk: Callable[[int], None]
    ) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
        """Chunks of (activity rows, their feed events). Done activities reach the feed; 4% are still planned."""
        rng, now = self.rng, self.now
        rows: list[tuple[Any, ...]] = []
        feed: list[tuple[Any, ...]] = []
        for company_id, contact_id, deal, owner_of_target, earliest, latest in targets:
            owner = self.colleague(org, owner_of_target)
            due: float | None
            done: float | None
            if rng.random() < 0.04:  # still planned
                kind = rng.choices(("task", "meeting", "call"), weights=(60, 25, 15))[0]
                due = now + rng.uniform(-14, 30) * DAY
                created = now - rng.uniform(0, 20) * DAY
                done = None
            else:
                kind = rng.choices(KINDS, weights=KIND_WEIGHTS)[0]
                done = rng.uniform(earliest, max(earliest, latest))
                due = done - rng.uniform(0, 3) * DAY if kind in ("task", "meeting") else None
                created = due - rng.uniform(0, 7) * DAY if due is not None else done
            call = kind == "call"
            duration = (
                rng.randint(20, 1_800) if call and done else rng.choice((1_800, 3_600)) if kind == "meeting" else None
            )
            row = (
                *self.record(org.id, created, deleted=rng.random() < 0.003),
                kind,
                rng.choice(SUBJECTS[kind]),
                rng.choice(BODIES) if rng.random() < 0.5 else None,
                company_id,
                contact_id,
                deal["id"] if deal else None,
                owner,
                owner,
                ts(due) if due is not None else None,
                ts(done) if done is not None else None,
                duration,
                rng.choice(("inbound", "outbound")) if call else None,
                rng.choice(OUTCOMES) if call and done else None,
                "[]",
            )
            rows.append(row)
            if done is not None:
                if deal is not None and (deal["last_activity_at"] or 0.0) < done and row[DELETED_AT] is None:
                    deal["last_activity_at"] = done
                event = (self.ids.at(done), org.id, "activity", ts(done), owner, company_id, contact_id)
                feed.append((*event, row[AC_DEAL], row[0], None, "{}"))
            if len(rows) >= CHUNK:
                on_chunk(len(rows))
                yield rows, feed
                rows, feed = [], []
        if rows:
            on_chunk(len(rows))
            yield rows, feed

    def shares(
        self,
        org: Org,
        companies: list[tuple[Any, ...]],
        contacts: list[tuple[Any, ...]],
        deals: list[dict[str, Any]],
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Colleagues given access to a record they do not own (the benchmark rep gets some), and the feed's news."""
        rng = self.rng
        seen: set[tuple[str, uuid.UUID, uuid.UUID]] = set()
        rows: list[tuple[Any, ...]] = []
        feed: list[tuple[Any, ...]] = []
        wanted = org.plan.shares + (50 if org.bench_rep else 0)
        while len(rows) < wanted:
            rep = org.bench_rep
            user = rep if rep is not None and len(rows) >= org.plan.shares else rng.choice(org.sales)
            entity = rng.choices(("company", "deal", "contact"), weights=(50, 30, 20))[0]
            if entity == "deal":
                d = rng.choice(deals)
                target, owner, refs = d["id"], d["owner_id"], (d["company_id"], d["contact_id"], d["id"])
            else:
                r = rng.choice(companies if entity == "company" else contacts)
                target, owner = r[0], r[CO_OWNER if entity == "company" else CT_OWNER]
                refs = (r[0], None, None) if entity == "company" else (r[CT_COMPANY], r[0], None)
            if owner == user or (entity, target, user) in seen:
                continue
            seen.add((entity, target, user))
            at = self.now - rng.uniform(0, 365) * DAY
            rows.append((*self.record(org.id, at), entity, target, user, owner))
            feed.append((self.ids.at(at), org.id, "shared", ts(at), owner, *refs, None, user, "{}"))
        return rows, feed


# Loading


class Loader:
    def __init__(self, conn: asyncpg.Connection, progress: Progress) -> None:
        self.conn = conn
        self.progress = progress
        self.rows: dict[str, int] = {}
        self.copy_s = 0.0  # time spent waiting for COPY (the rest of the load is generating rows in Python)

    async def copy(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        started = time.perf_counter()
        await self.conn.copy_records_to_table(table, records=rows, columns=list(COLUMNS[table]))
        self.copy_s += time.perf_counter() - started
        self.rows[table] = self.rows.get(table, 0) + len(rows)


@dataclass(frozen=True)
class Deferred:
    """What is dropped for the load and rebuilt after it: the bulk tables' primary keys and secondary indexes, and
    every foreign key on them or pointing at them (ALTER TABLE ... ADD rebuilds and checks each in one pass)."""

    primary_keys: list[tuple[str, str, str]]  # (table, name, definition)
    indexes: list[tuple[str, str]]  # (name, CREATE INDEX statement)
    foreign_keys: list[tuple[str, str, str]]

    @classmethod
    async def read(cls, conn: asyncpg.Connection) -> "Deferred":
        constraints = await conn.fetch(
            """SELECT c.contype::text AS kind, c.conrelid::regclass::text AS tbl, c.conname,
                      pg_get_constraintdef(c.oid) AS def
               FROM pg_constraint c
               WHERE (c.contype = 'p' AND c.conrelid::regclass::text = ANY($1::text[]))
                  OR (c.contype = 'f' AND (c.conrelid::regclass::text = ANY($1::text[])
                                           OR c.confrelid::regclass::text = ANY($1::text[])))
               ORDER BY 2, 3""",
            list(BULK_TABLES),
        )
        indexes = await conn.fetch(
            """SELECT i.indexname, i.indexdef FROM pg_indexes i
               WHERE i.schemaname = 'public' AND i.tablename = ANY($1::text[])
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
               ORDER BY 1""",
            list(BULK_TABLES),
        )
        return cls(
            primary_keys=[(r["tbl"], r["conname"], r["def"]) for r in constraints if r["kind"] == "p"],
            indexes=[(r["indexname"], r["indexdef"]) for r in indexes],
            foreign_keys=[(r["tbl"], r["conname"], r["def"]) for r in constraints if r["kind"] == "f"],
        )

    def __len__(self) -> int:
        return len(self.primary_keys) + len(self.indexes) + len(self.foreign_keys)

    async def drop(self, conn: asyncpg.Connection) -> None:
        for table, name, _ in self.foreign_keys:
            await conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        for table, name, _ in self.primary_keys:
            await conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        for name, _ in self.indexes:
            await conn.execute(f'DROP INDEX "{name}"')

    async def rebuild(self, conn: asyncpg.Connection, step: Callable[[], None]) -> None:
        for table, name, definition in self.primary_keys:
            await conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
            step()
        for _, definition in self.indexes:
            await conn.execute(definition)
            step()
        for table, name, definition in self.foreign_keys:
            await conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
            step()


async def create_database(name: str) -> None:
    conn = await asyncpg.connect(common.dsn("postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def load(database: str, all_plans: list[Plan], seed: int) -> dict[str, Any]:
    url = common.sqlalchemy_url(database)
    org_ids = await create_orgs(url, all_plans)
    conn = await asyncpg.connect(common.dsn(database))
    timings: dict[str, float] = {}
    try:
        await conn.execute("SET synchronous_commit = off; SET maintenance_work_mem = '1GB'")
        deferred = await Deferred.read(conn)
        await deferred.drop(conn)
        now = time.time()
        gen = Generator(seed, now)
        started = time.perf_counter()
        with Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            loader = Loader(conn, progress)
            for org_id, plan in zip(org_ids, all_plans, strict=True):
                await _load_org(loader, gen, conn, org_id, plan)
            timings["generate_and_copy_s"] = time.perf_counter() - started
            timings["copy_s"] = loader.copy_s
            step = time.perf_counter()
            task = progress.add_task("keys, indexes, foreign keys", total=len(deferred))
            await deferred.rebuild(conn, lambda: progress.advance(task))
            timings["index_s"] = time.perf_counter() - step
            step = time.perf_counter()
            task = progress.add_task("vacuum analyze", total=1)
            await conn.execute("VACUUM (ANALYZE)")
            progress.advance(task)
            timings["analyze_s"] = time.perf_counter() - step
        if await Deferred.read(conn) != deferred:
            raise RuntimeError("the schema after the load differs from the migrated one")
        timings["total_load_s"] = time.perf_counter() - started
        return {"rows": loader.rows, **timings}
    finally:
        await conn.close()


async def _load_org(loader: Loader, gen: Generator, conn: asyncpg.Connection, org_id: uuid.UUID, plan: Plan) -> None:
    stages = await conn.fetch(
        """SELECT s.id, s.pipeline_id, s.name, s.kind, s.position, s.rotten_days FROM stage s
           JOIN pipeline p ON p.id = s.pipeline_id AND p.is_default
           WHERE s.org_id = $1 ORDER BY s.position""",
        org_id,
    )
    reasons = await conn.fetch("SELECT id, name FROM lost_reason WHERE org_id = $1 ORDER BY position", org_id)
    org = Org(id=org_id, plan=plan, stages=list(stages), lost_reasons=list(reasons))
    progress = loader.progress
    label = plan.name.removeprefix("Bench ").lower()

    def task(what: str, total: int) -> Any:
        return progress.add_task(f"{label}: {what}", total=total)

    setup = gen.now - 800 * DAY
    teams, users = gen.people(org, setup)
    await loader.copy("team", teams)
    await loader.copy("user", users)
    for team in teams:
        head = next(u[0] for u in users if u[US_TEAM] == team[0] and u[US_ROLE] == "manager")
        await conn.execute("UPDATE team SET head_id = $1 WHERE id = $2", head, team[0])

    t = task("companies", plan.companies)
    companies, company_created, weights = gen.companies(org)
    await loader.copy("company", companies)
    progress.update(t, completed=plan.companies)

    t = task("contacts", plan.contacts)
    contacts, contact_created = gen.contacts(org, companies, company_created, weights)
    await loader.copy("contact", contacts)
    await loader.copy("contact_point", list(gen.contact_points(org, companies, contacts)))
    progress.update(t, completed=plan.contacts)

    contacts_of: dict[uuid.UUID, list[tuple[Any, ...]]] = {}
    for row in contacts:
        if row[CT_COMPANY] is not None and row[DELETED_AT] is None:
            contacts_of.setdefault(row[CT_COMPANY], []).append(row)
    deals, stage_events, deal_feed = gen.deals(org, companies, company_created, weights, contacts_of)

    total = plan.activities + sum(plan.big_companies)
    t = task("activities + feed", total)
    targets = gen.activity_targets(org, companies, company_created, weights, contacts, contact_created, deals)
    for rows, feed in gen.activities(org, targets, lambda n: progress.advance(t, n)):
        await loader.copy("activity", rows)
        await loader.copy("feed_event", feed)

    t = task("deals + history + shares", len(deals))
    await loader.copy("deal", gen.deal_rows(org, deals))
    await loader.copy("deal_stage_event", stage_events)
    await loader.copy("feed_event", deal_feed)
    shares, share_feed = gen.shares(org, companies, contacts, deals)
    await loader.copy("share", shares)
    await loader.copy("feed_event", share_feed)
    progress.update(t, completed=len(deals))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=common.DEFAULT_DATABASE, help="database to (re)create")
    parser.add_argument("--scale", type=float, default=1.0, help="size of the main organisation (1.0: 100k companies)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    console.print(f"[bold]Creating[/] {args.database} on {common.server().rsplit('@', 1)[-1]}")
    asyncio.run(create_database(args.database))
    step = time.perf_counter()
    upgrade(common.sqlalchemy_url(args.database))
    migrate_s = time.perf_counter() - step
    stats = asyncio.run(load(args.database, plans(args.scale), args.seed))
    stats = {"migrate_s": migrate_s, **stats, "wall_s": time.perf_counter() - started, "scale": args.scale}
    stats["loaded_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    asyncio.run(_remember(args.database, stats))
    console.print(
        f"[bold green]Loaded[/] in {stats['wall_s']:.0f} s: "
        + ", ".join(f"{k} {v:,}" for k, v in stats["rows"].items())
    )


async def _remember(database: str, stats: dict[str, Any]) -> None:
    """Keep the load's figures with the database (its comment), for the read-path report."""
    conn = await asyncpg.connect(common.dsn(database))
    try:
        text = json.dumps(stats).replace("'", "''")
        await conn.execute(f"COMMENT ON DATABASE \"{database}\" IS '{text}'")
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
