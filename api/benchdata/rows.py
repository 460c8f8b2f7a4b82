"""The benchmark rows, made in Python by one seeded generator, as tuples in each table's column order (what COPY
and executemany take).

Ids are UUIDv7 drawn from the generator and stamped with the record's own time, so they are time-ordered and the
same for the same seed and `now`. bench/sync.py and the other benchmarks build their own data sets from the same
pieces (`COLUMNS`, `Ids`, `Generator.record`, `Generator.activities`, …).
"""

import functools
import itertools
import json
import math
import random
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from argon2 import PasswordHasher

from api.benchdata.plans import PASSWORD, Plan, email
from api.core.types import fold
from api.settings import get_settings

DAY = 86_400.0
CHUNK = 50_000
Row = tuple[Any, ...]

# The tables loaded in bulk (the others get a few rows each): their indexes are made again after the load.
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
# Cumulative, as random.choices would make them on each call (the same draws, without the work).
KIND_CUMULATIVE = tuple(itertools.accumulate(KIND_WEIGHTS))
# An activity still to do: how likely, which kinds, and who else may do a record owner's activity.
PLANNED = 0.04
PLANNED_KINDS = ("task", "meeting", "call")
PLANNED_WEIGHTS = (60, 25, 15)
PLANNED_CUMULATIVE = tuple(itertools.accumulate(PLANNED_WEIGHTS))
BY_OWNER = 0.85
DELETED = 0.003
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

# The deal walk. Per open stage of the default pipeline (Lead, Qualified, Proposal, Negotiation): how likely an
# average rep's deal moves on (a rep of skill s: MOVE_ON ** (1 / s)), and the mean days it stays first (times the
# rep's pace). Some deals skip a stage, some stall (stay 20 times longer); a few are in dollars.
MOVE_ON = (0.7, 0.7, 0.6, 0.7)
STAY_DAYS = (6.0, 9.0, 14.0, 10.0)
SKIP, STALL, USD = 0.05, 0.04, 0.02
# The feed event of a move into a stage of each kind.
FEED_KINDS = {"open": "stage_moved", "won": "deal_won", "lost": "deal_lost"}


# `fold` of the words names are made of, once each: folding works character by character, so a name made of words
# folds word by word (the folded name is the folded words, joined).
fold_word = functools.cache(fold)


def _at(table: str, column: str) -> int:
    return COLUMNS[table].index(column)


# Positions in the row tuples.
DELETED_AT = _at("company", "deleted_at")
CO_NAME, CO_FOLDED, CO_OWNER = _at("company", "name"), _at("company", "name_folded"), _at("company", "owner_id")
CO_DOMAIN, CO_PHONE = _at("company", "domain"), _at("company", "phone")
CT_OWNER, CT_COMPANY = _at("contact", "owner_id"), _at("contact", "company_id")
CT_EMAILS, CT_PHONES = _at("contact", "emails"), _at("contact", "phones")
AC_DEAL = _at("activity", "deal_id")


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


def utc_day(seconds: float) -> date:
    return ts(seconds).date()


@dataclass(frozen=True)
class Seller:
    """How a rep or manager sells: a deal moves on from stage i with probability MOVE_ON[i] ** (1 / skill); `pace`
    stretches the time in each stage, `effort` the activities per deal."""

    skill: float
    pace: float
    effort: float


# The default pipeline's open stages in order, its won stage and its lost one.
Stages = tuple[list[Mapping[str, Any]], Mapping[str, Any], Mapping[str, Any]]


@dataclass
class Org:
    id: uuid.UUID
    plan: Plan
    stages: list[Mapping[str, Any]]  # the default pipeline's, by position: open ones, then won, then lost
    lost_reasons: list[Mapping[str, Any]]
    sales: list[uuid.UUID] = field(default_factory=list)  # managers and reps, who own the records
    team_of: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)
    sellers: dict[uuid.UUID, Seller] = field(default_factory=dict)
    bench_rep: uuid.UUID | None = None
    # Cumulative weights of `sales` as owners: managers own fewer records than reps.
    owner_weights: list[float] = field(default_factory=list)

    def pipeline(self) -> Stages:
        """The open stages in order, the won stage and the lost one."""
        opens = [s for s in self.stages if s["kind"] == "open"]
        if len(opens) != len(MOVE_ON):
            raise ValueError(f"the deal walk expects {len(MOVE_ON)} open stages, the default pipeline has {len(opens)}")
        won = next(s for s in self.stages if s["kind"] == "won")
        lost = next(s for s in self.stages if s["kind"] == "lost")
        return opens, won, lost


class Target(NamedTuple):
    """`n` activities about a deal, a contact or a company, by `owner_id` (or a teammate), done between
    `earliest` and `latest` (epoch seconds)."""

    deal: dict[str, Any] | None
    company_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    owner_id: uuid.UUID
    earliest: float
    latest: float
    n: int


@dataclass(frozen=True)
class Activities:
    """One organisation's activities to make (about `targets`) and its `deals`, whose last activity they set;
    `step` reports progress in activities."""

    gen: "Generator"
    org: Org
    targets: list[Target]
    deals: list[dict[str, Any]]
    step: Callable[[int], object]


def _about(deal: dict[str, Any]) -> tuple[Any, ...]:
    """A target's fields but `n`, for activities about `deal` (between its creation and its close)."""
    return (deal, deal["company_id"], deal["contact_id"], deal["owner_id"], deal["created"], deal["end"])


def each(targets: Iterable[Target]) -> Iterator[tuple[Any, ...]]:
    """One (company_id, contact_id, deal, owner, earliest, latest) per activity: what `Generator.activities` takes."""
    for t in targets:
        item = (t.company_id, t.contact_id, t.deal, t.owner_id, t.earliest, t.latest)
        for _ in range(t.n):
            yield item


class Generator:
    def __init__(self, seed: int, now: float) -> None:
        self.rng = random.Random(seed)
        self.ids = Ids(self.rng)
        self.now = now
        settings = get_settings()
        # One hash for every user (hashing is slow by design), with the app's cost settings so that signing in does
        # not rehash; its salt comes from the seed (not from `rng`, whose sequence the other rows depend on).
        self.password_hash = PasswordHasher(
            time_cost=settings.password_time_cost, memory_cost=settings.password_memory_kib
        ).hash(PASSWORD, salt=random.Random(f"salt {seed}").randbytes(16))
        self.first = FIRST.split()
        self.last = LAST.split()

    def record(self, org: uuid.UUID, created: float, deleted: bool = False) -> Row:
        at = ts(created)
        gone = ts(min(self.now, created + self.rng.uniform(1, 30) * DAY)) if deleted else None
        return (self.ids.at(created), org, at, gone or at, 2 if deleted else 1, gone)

    def people(self, org: Org, created: float) -> tuple[list[Row], list[Row], list[tuple[uuid.UUID, uuid.UUID]]]:
        """Teams, users, and each team's head. A tenth of the reps are stars, 15% struggle, the rest in between."""
        plan, rng, teams, users, heads = org.plan, self.rng, [], [], []

        def user(address: str, name: str, role: str, team: uuid.UUID | None) -> uuid.UUID:
            row = (*self.record(org.id, created), address, name, fold(name), role, team, True, self.password_hash)
            users.append(row)
            user_id: uuid.UUID = row[0]
            return user_id

        user(f"admin@{plan.domain}", "Admin User", "admin", None)
        if plan.marketing:
            user(f"marketing@{plan.domain}", "Marketing User", "marketing", None)
        for team_name in plan.teams:
            team = (*self.record(org.id, created), team_name.title(), None)
            teams.append(team)
            head = user(email(plan.domain, team_name, "manager"), f"{team_name.title()} Manager", "manager", team[0])
            heads.append((team[0], head))
            org.sellers[head] = Seller(skill=1.2, pace=1.0, effort=0.8)
            org.owner_weights.append(0.4)
            members = [head]
            for i in range(1, plan.reps_per_team + 1):
                name = f"{rng.choice(self.first)} {rng.choice(self.last)}"
                rep = user(email(plan.domain, team_name, "rep", i), name, "rep", team[0])
                roll = rng.random()
                skill = (
                    rng.uniform(1.8, 2.4)
                    if roll < 0.1
                    else rng.uniform(0.5, 0.75)
                    if roll < 0.25
                    else rng.uniform(0.8, 1.3)
                )
                org.sellers[rep] = Seller(skill=skill, pace=rng.uniform(0.7, 1.4), effort=rng.uniform(0.6, 1.6))
                org.owner_weights.append(1.0)
                members.append(rep)
            for member in members:
                org.team_of[member] = members
            org.sales += members
            if org.bench_rep is None:
                org.bench_rep = members[1] if len(members) > 1 else head
                if plan.newcomer:
                    # Not among the owners records are drawn from.
                    user(email(plan.domain, team_name, "new"), "New Rep", "rep", team[0])
        total = 0.0
        for i, weight in enumerate(org.owner_weights):
            total += weight
            org.owner_weights[i] = total
        return teams, users, heads

    def owner(self, org: Org) -> uuid.UUID:
        return self.rng.choices(org.sales, cum_weights=org.owner_weights)[0]

    def colleague(self, org: Org, owner: uuid.UUID) -> uuid.UUID:
        return owner if self.rng.random() < BY_OWNER else self.rng.choice(org.team_of[owner])

    def companies(self, org: Org) -> tuple[list[Row], list[float], list[float]]:
        """Rows, their creation times, and how much activity each attracts (heavy-tailed)."""
        a, b, c = COMPANY_A.split(), COMPANY_B.split(), COMPANY_C.split()
        rows, created, weights = [], [], []
        rng = self.rng
        for i in range(org.plan.companies):
            big = i < len(org.plan.big_companies)
            start = self.now - rng.uniform(30, 730) * DAY if not big else self.now - 700 * DAY
            words = (rng.choice(a), rng.choice(b), rng.choice(c))
            name = f"{' '.join(words)} {i}"
            domain = f"{fold_word(words[0])}{i}.example" if rng.random() < 0.8 else None
            city, country = rng.choice(CITIES)
            owner = org.bench_rep if big else self.owner(org)
            rows.append(
                (
                    *self.record(org.id, start, deleted=not big and rng.random() < DELETED),
                    name,
                    f"{' '.join(map(fold_word, words))} {i}",
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
        self, org: Org, companies: list[Row], created: list[float], weights: list[float]
    ) -> tuple[list[Row], list[float]]:
        """About 92% work at a company, picked by its weight (big companies have 80 each: the card shows 50)."""
        rng, rows, times = self.rng, [], []
        big = len(org.plan.big_companies)
        picks = [i for i in range(min(big, len(companies))) for _ in range(80)]
        picks += rng.choices(range(len(companies)), weights=weights, k=max(0, org.plan.contacts - len(picks)))
        for n, index in enumerate(picks):
            company = companies[index] if rng.random() < 0.92 or index < big else None
            start = (created[index] if company else self.now - 700 * DAY) + rng.uniform(0, 20) * DAY
            owner = company[CO_OWNER] if company and rng.random() < 0.9 else self.owner(org)
            first, last = rng.choice(self.first), rng.choice(self.last)
            folded = f"{fold_word(first)} {fold_word(last)}"
            host = company[CO_DOMAIN] if company and company[CO_DOMAIN] else "mail.example"
            phones = f'["+346{rng.randrange(10**7, 10**8)}"]' if rng.random() < 0.5 else "[]"
            rows.append(
                (
                    *self.record(org.id, min(start, self.now - DAY), deleted=rng.random() < DELETED),
                    f"{first} {last}",
                    folded,
                    owner,
                    "[]",
                    None,
                    rng.choice(SOURCES),
                    "{}",
                    rng.choice(TITLES),
                    company[0] if company else None,
                    # The JSON of a one-address list (the address is plain ASCII: folded words, digits, a domain).
                    f'["{fold_word(first)}.{fold_word(last)}{n}@{host}"]',
                    phones,
                    rng.random() < 0.6,
                    rng.random() < 0.4,
                )
            )
            times.append(min(start, self.now - DAY))
        return rows, times

    def contact_points(self, org: Org, companies: list[Row], contacts: list[Row]) -> Iterator[Row]:
        """What the duplicate check reads: live companies' domains and phones, live contacts' e-mails and phones."""
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

    def walk(self, stages: Stages, seller: Seller, created: float) -> tuple[list[tuple[Mapping[str, Any], float]], str]:
        """The stages a deal entered and when (its creation first), and how it ends up: each open stage takes an
        exponential time, then the deal moves on (now and then skipping a stage) or is lost there; moving on from
        the last open stage wins it; what has not finished by now is still open."""
        rng, now = self.rng, self.now
        opens, won, lost = stages
        path: list[tuple[Mapping[str, Any], float]] = [(opens[0], created)]
        at, i = created, 0
        slow = 20.0 if rng.random() < STALL else 1.0
        while True:
            at += rng.expovariate(1.0 / (STAY_DAYS[i] * seller.pace * slow * DAY))
            if at >= now:
                return path, "open"
            if rng.random() >= MOVE_ON[i] ** (1.0 / seller.skill):
                path.append((lost, at))
                return path, "lost"
            i += 2 if i + 2 < len(opens) and rng.random() < SKIP else 1
            if i == len(opens):
                path.append((won, at))
                return path, "won"
            path.append((opens[i], at))

    def deals(
        self,
        org: Org,
        companies: list[Row],
        company_created: list[float],
        weights: list[float],
        contacts_of: dict[uuid.UUID, list[Row]],
    ) -> tuple[list[dict[str, Any]], list[Row], list[Row]]:
        """Deals created over the last year (as dicts: their last activity is filled in later), their stage history
        and their feed events. Heavy clients get more deals (the big companies 60 each); the client's owner owns
        most; each walks the pipeline with its owner's skill, so win rates differ from rep to rep."""
        rng, now = self.rng, self.now
        stages = org.pipeline()
        reasons = org.lost_reasons
        reason_weights = [1.0 / (i + 1) for i in range(len(reasons))]
        big = min(len(org.plan.big_companies), len(companies))
        picks = [i for i in range(big) for _ in range(60)]
        picks += rng.choices(range(len(companies)), weights=weights, k=max(0, org.plan.deals - len(picks)))
        deals, events, feed = [], [], []
        for index in picks:
            company = companies[index]
            people = contacts_of.get(company[0], [])
            contact = rng.choice(people) if people and rng.random() < 0.6 else None
            owner = company[CO_OWNER] if rng.random() < 0.85 else self.owner(org)
            seller = org.sellers[owner]
            start = max(company_created[index], now - 365 * DAY) + rng.uniform(0, 1) * DAY
            start = rng.uniform(start, now - DAY)
            path, status = self.walk(stages, seller, start)
            stage, entered = path[-1]
            end = entered if status != "open" else now
            deal_id = self.ids.at(start)
            product = rng.choice(PRODUCTS)
            reason = rng.choices(reasons, weights=reason_weights)[0] if status == "lost" and reasons else None
            deleted = index >= big and rng.random() < DELETED
            amount = round(rng.lognormvariate(math.log(8_000), 0.9) * (0.85 + 0.15 * seller.skill) / 10) * 1_000
            currency = "USD" if rng.random() < USD else "EUR"
            deal = {
                "id": deal_id,
                "created": start,
                "end": end,
                "steps": len(path) - 1,
                "deleted": ts(min(now, end + DAY)) if deleted else None,
                "title": f"{product} for {company[CO_NAME]}",
                "title_folded": f"{fold_word(product)} for {company[CO_FOLDED]}",
                "company_id": company[0],
                "contact_id": contact[0] if contact else None,
                "stage": stage,
                "owner_id": owner,
                "amount_minor": amount,
                "currency": currency,
                "expected_close_on": utc_day(start + rng.uniform(30, 90) * DAY),
                "status": status,
                "lost_reason_id": reason["id"] if reason else None,
                "lost_note": "Went with the cheaper offer." if reason and rng.random() < 0.3 else None,
                "won_at": ts(end) if status == "won" else None,
                "lost_at": ts(end) if status == "lost" else None,
                "stage_entered_at": entered,
                "last_activity_at": None,
            }
            deals.append(deal)
            money = {"amount_minor": amount, "currency": currency}
            refs = (company[0], deal["contact_id"], deal_id)
            for step, (to, at) in enumerate(path):
                previous = path[step - 1] if step else None
                record = self.record(org.id, at)
                when = record[2]
                seconds = int(at - previous[1]) if previous else None
                events.append(
                    (*record, deal_id, previous[0]["id"] if previous else None, to["id"], when, owner, seconds)
                )
                data: dict[str, Any]
                if previous is None:
                    kind, data = "deal_created", {"stage": to["name"], **money}
                else:
                    kind = FEED_KINDS[to["kind"]]
                    data = {
                        "from_stage": previous[0]["name"],
                        "to_stage": to["name"],
                        "days_in_previous": int((at - previous[1]) / DAY),
                        **money,
                    }
                    if kind != "stage_moved":
                        data["days_open"] = int((at - start) / DAY)
                    if reason is not None and kind == "deal_lost":
                        data["reason"] = reason["name"]
                feed.append((self.ids.at(at), org.id, kind, when, owner, *refs, None, None, json.dumps(data)))
        return deals, events, feed

    def deal_rows(self, org: Org, deals: list[dict[str, Any]]) -> list[Row]:
        """The deal rows, once their last activity is known (it sets when an open one goes rotten)."""
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
                    # Deals made elsewhere (bench/sync.py) come without their folded title.
                    d.get("title_folded") or fold(d["title"]),
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

    def targets(
        self,
        org: Org,
        companies: list[Row],
        company_created: list[float],
        weights: list[float],
        contacts: list[Row],
        contact_created: list[float],
        deals: list[dict[str, Any]],
    ) -> list[Target]:
        """What the activities are about, over the last year: a third about a deal (more for deals that went further
        and for busier owners, between the deal's creation and its close), a third about a contact, the rest about a
        company alone (heavy-tailed, as the contacts and deals already are); the big companies get theirs on top
        (40% about one of their deals, 40% about one of their contacts). Deleted records get none."""
        rng, now = self.rng, self.now
        year_ago = now - 365 * DAY
        out: list[Target] = []
        for company, count in zip(companies, org.plan.big_companies, strict=False):
            company_id, owner = company[0], company[CO_OWNER]
            own = [_about(d) for d in deals if d["company_id"] == company_id and not d["deleted"]]
            people = [
                (None, company_id, c[0], owner, year_ago, now)
                for c in contacts
                if c[CT_COMPANY] == company_id and c[DELETED_AT] is None
            ]
            on_deals = round(count * 0.4) if own else 0
            on_people = round(count * 0.4) if people else 0
            out += self._spread(own, [1.0] * len(own), on_deals)
            out += self._spread(people, [1.0] * len(people), on_people)
            out.append(Target(None, company_id, None, owner, year_ago, now, count - on_deals - on_people))

        third = org.plan.activities // 3
        live = [d for d in deals if not d["deleted"]]
        efforts = [org.sellers[d["owner_id"]].effort * (1 + 1.5 * d["steps"]) * rng.uniform(0.5, 1.5) for d in live]
        out += self._spread([_about(d) for d in live], efforts, third)
        people = [
            (None, c[CT_COMPANY], c[0], c[CT_OWNER], max(at, year_ago), now)
            for c, at in zip(contacts, contact_created, strict=True)
            if c[DELETED_AT] is None
        ]
        out += self._spread(people, [1.0] * len(people), third)
        clients = [i for i, c in enumerate(companies) if c[DELETED_AT] is None and weights[i] > 0]
        alone = [
            (None, companies[i][0], None, companies[i][CO_OWNER], max(company_created[i], year_ago), now)
            for i in clients
        ]
        out += self._spread(alone, [weights[i] for i in clients], org.plan.activities - 2 * third)
        return out

    def _spread(self, about: list[tuple[Any, ...]], weights: Sequence[float], total: int) -> list[Target]:
        """Share `total` activities among what they can be `about` (Target's fields but `n`) in proportion to
        `weights`: each gets its share rounded down or up (systematic sampling from one random offset), together
        exactly `total`; those that get none are left out."""
        if not about or total <= 0:
            return []
        unit = total / sum(weights)
        out, cumulative = [], self.rng.random()
        for fields, w in zip(about, weights, strict=True):
            start = int(cumulative)
            cumulative += w * unit
            if int(cumulative) > start:
                out.append(Target._make((*fields, int(cumulative) - start)))
        return out

    def activities(
        self, org: Org, targets: Iterator[tuple[Any, ...]], on_chunk: Callable[[int], object]
    ) -> Iterator[tuple[list[Row], list[Row]]]:
        """Chunks of (activity rows, their feed events), one activity per target (see `each`). Done activities reach
        the feed; 4% are still planned. A done one about a deal moves the deal's last activity on."""
        rng, now = self.rng, self.now
        rows: list[Row] = []
        feed: list[Row] = []
        for company_id, contact_id, deal, owner_of_target, earliest, latest in targets:
            owner = self.colleague(org, owner_of_target)
            due: float | None
            done: float | None
            if rng.random() < PLANNED:
                kind = rng.choices(PLANNED_KINDS, cum_weights=PLANNED_CUMULATIVE)[0]
                due = now + rng.uniform(-14, 30) * DAY
                created = now - rng.uniform(0, 20) * DAY
                done = None
            else:
                kind = rng.choices(KINDS, cum_weights=KIND_CUMULATIVE)[0]
                done = rng.uniform(earliest, max(earliest, latest))
                due = done - rng.uniform(0, 3) * DAY if kind in ("task", "meeting") else None
                created = due - rng.uniform(0, 7) * DAY if due is not None else done
            call = kind == "call"
            duration = (
                rng.randint(20, 1_800) if call and done else rng.choice((1_800, 3_600)) if kind == "meeting" else None
            )
            row = (
                *self.record(org.id, created, deleted=rng.random() < DELETED),
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
        self, org: Org, companies: list[Row], contacts: list[Row], deals: list[dict[str, Any]]
    ) -> tuple[list[Row], list[Row]]:
        """Colleagues given access to a record they do not own (the benchmark rep gets 50 more), and the feed's
        news of it."""
        rng = self.rng
        seen: set[tuple[str, uuid.UUID, uuid.UUID]] = set()
        rows: list[Row] = []
        feed: list[Row] = []
        rep = org.bench_rep
        wanted = org.plan.shares + (50 if rep is not None and org.plan.big_companies else 0)
        if not (companies and contacts and deals and len(org.sales) > 1):
            return rows, feed
        while len(rows) < wanted:
            user = rep if rep is not None and len(rows) >= org.plan.shares else rng.choice(org.sales)
            entity = rng.choices(("company", "deal", "contact"), weights=(50, 30, 20))[0]
            refs: tuple[Any, ...]
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
