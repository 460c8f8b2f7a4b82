"""Make a benchmark data set in a database of its own: create it, migrate it, create the organisations through the
app, then load everything else in bulk (see the package's docstring)."""

import asyncio
import gc
import hashlib
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.engine import make_url

from api.auth.service import create_organization
from api.benchdata import postgres, sqlite
from api.benchdata.plans import ORG_SETTINGS, Plan, Scale, email, plans
from api.benchdata.rows import CT_COMPANY, DAY, DELETED_AT, Activities, Generator, Ids, Org, Row, Target
from api.core.db import Database, make_engine
from api.core.migrate import upgrade
from api.demo import Progress

# Bump when the generator makes different rows for the same seed: `--if-changed` then loads again.
GENERATOR = "bench-data 1"
# The organisations and their people were set up this long before `now`.
SETUP_DAYS = 800


def _quiet(phase: str, total: int) -> Callable[[int], object]:
    return lambda done: None


class BenchDataError(Exception):
    """Why the data set cannot be loaded where it was asked to go (shown to the user as is)."""


@dataclass(frozen=True)
class Result:
    """What the database holds now: the load's fingerprint, row counts and timings (the stored ones when
    `skipped`: the same data set was there already), and whom to sign in as."""

    skipped: bool
    meta: dict[str, Any]
    logins: list[tuple[str, list[str]]]


class Writer(Protocol):
    """What postgres.Writer and sqlite.Writer do."""

    rows: Counter[str]
    timings: defaultdict[str, float]

    async def reference(self, org_id: Any) -> tuple[list[Any], list[Any]]: ...
    async def write(self, table: str, rows: Sequence[Row]) -> None: ...
    async def set_heads(self, heads: list[Any]) -> None: ...
    async def activities(self, job: Activities) -> None: ...
    async def finish(self, step: Callable[[int], object]) -> None: ...
    @property
    def deferred_steps(self) -> int: ...
    async def analyze(self) -> None: ...
    async def remember(self, url: str, meta: dict[str, Any]) -> None: ...
    async def close(self) -> None: ...


def fingerprint(scale: Scale, seed: int, organisations: Sequence[Plan]) -> str:
    """Names what a load makes: the generator's version, the scale, the seed and the plans (not `now`)."""
    text = json.dumps(
        {"generator": GENERATOR, "scale": scale, "seed": seed, "plans": [asdict(p) for p in organisations]},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def logins(organisations: Sequence[Plan]) -> list[tuple[str, list[str]]]:
    """Who to sign in as, per organisation: its admin, first manager, first rep (and newcomer)."""
    out = []
    for plan in organisations:
        team = plan.teams[0]
        people = [f"admin@{plan.domain}", email(plan.domain, team, "manager"), email(plan.domain, team, "rep", 1)]
        if plan.newcomer:
            people.append(email(plan.domain, team, "new"))
        out.append((plan.name, people))
    return out


async def load(
    url: str,
    *,
    scale: Scale,
    seed: int = 7,
    now: datetime | None = None,
    replace: bool = False,
    if_changed: bool = False,
    organisations: Sequence[Plan] | None = None,
    progress: Progress = _quiet,
) -> Result:
    """Load the `scale` data set (or the `organisations` given) into the database `url` names, made for it.

    A database that holds any organisation is refused unless `replace` (then it is dropped and made again);
    with `if_changed`, one that holds this very data set (same generator, scale, seed and plans) is kept as it is.
    Times are relative to `now` (default: the real now)."""
    organisations = tuple(organisations or plans(scale))
    backend = make_url(url).get_backend_name()
    if backend not in ("postgresql", "sqlite"):
        raise BenchDataError(f"{backend}: bench data goes into PostgreSQL or SQLite")
    on_postgres = backend == "postgresql"
    if not on_postgres and scale == "large":
        raise BenchDataError("--scale large needs PostgreSQL (give --database-url postgresql+asyncpg://…)")
    if on_postgres and postgres.database_name(url) in postgres.SYSTEM_DATABASES:
        raise BenchDataError(f"{postgres.database_name(url)} is the server's own database: name another one")
    print_ = fingerprint(scale, seed, organisations)
    found = await postgres.state(url) if on_postgres else sqlite.state(url)
    if if_changed and found.meta and found.meta.get("fingerprint") == print_:
        return Result(skipped=True, meta=found.meta, logins=logins(organisations))
    if (found.organisations or found.foreign) and not replace:
        where = postgres.database_name(url) if on_postgres else sqlite.path_of(url)
        what = f"{found.organisations} organisation(s)" if found.organisations else "something that is not Fieldbook's"
        raise BenchDataError(f"{where} holds {what}: give --replace to drop it and load afresh")
    moment = (now or datetime.now(UTC)).timestamp()
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str, since: float) -> float:
        at = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + at - since
        return at

    if on_postgres:
        if not found.exists or replace:
            await postgres.create(url, drop=found.exists)
    else:
        if not sqlite.path_of(url).parent.is_dir():
            raise BenchDataError(f"{sqlite.path_of(url).parent}: no such directory")
        sqlite.remove(url)
    at = lap("create_s", started)
    # Alembic runs its own event loop: off this one.
    await asyncio.to_thread(upgrade, url)
    at = lap("migrate_s", at)
    setup = moment - SETUP_DAYS * DAY
    ids = Ids(random.Random(f"organisations {seed}"))
    org_ids = [ids.at(setup) for _ in organisations]
    await _create_organisations(url, organisations, org_ids)
    at = lap("organisations_s", at)

    writer: Writer = await postgres.Writer.open(url, seed) if on_postgres else sqlite.Writer(url)
    # Millions of tuples are made and kept until they are written: the cyclic garbage collector would walk them over
    # and over (measured: 40% of the generator's time) and has no cycles to find among them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        gen = Generator(seed, moment)
        for org_id, plan in zip(org_ids, organisations, strict=True):
            stages, reasons = await writer.reference(org_id)
            org = Org(id=org_id, plan=plan, stages=stages, lost_reasons=reasons)
            at = time.perf_counter()
            targets, deals = await _records(writer, gen, org, setup, progress)
            lap("records_s", at)
            step = progress(f"{plan.name}: activities + feed", sum(t.n for t in targets))
            await writer.activities(Activities(gen, org, targets, deals, step))
        await writer.finish(progress("keys, indexes, foreign keys", writer.deferred_steps))
        at = time.perf_counter()
        analyze = progress("analyze", 1)
        await writer.analyze()
        analyze(1)
        lap("analyze_s", at)
        timings |= writer.timings
        timings["wall_s"] = time.perf_counter() - started
        meta = {
            "generator": GENERATOR,
            "fingerprint": print_,
            "scale": scale,
            "seed": seed,
            "now": datetime.fromtimestamp(moment, UTC).isoformat(),
            "loaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "organisations": [p.name for p in organisations],
            "rows": dict(sorted(writer.rows.items())),
            **{name: round(seconds, 2) for name, seconds in timings.items()},
        }
        await writer.remember(url, meta)
    finally:
        if collecting:
            gc.enable()
        await writer.close()
    return Result(skipped=False, meta=meta, logins=logins(organisations))


async def _create_organisations(url: str, organisations: Sequence[Plan], org_ids: Sequence[Any]) -> None:
    """Through the app's service, so that each gets the default pipeline and lost reasons a new organisation gets."""
    engine = make_engine(url, null_pool=True)
    try:
        async with Database(engine).writer() as session:
            for plan, org_id in zip(organisations, org_ids, strict=True):
                await create_organization(session, name=plan.name, settings=dict(ORG_SETTINGS), org_id=org_id)
            await session.commit()
    finally:
        await engine.dispose()


async def _records(
    writer: Writer, gen: Generator, org: Org, setup: float, progress: Progress
) -> tuple[list[Target], list[dict[str, Any]]]:
    """The organisation's rows but its activities and deals; what its activities are about, and its deals (written
    once their last activity is known). The generator runs in a worker thread, so that the event loop keeps the writer's
    background work going (PostgreSQL makes the previous organisation's activities meanwhile)."""
    run = asyncio.to_thread
    plan = org.plan
    done = progress(f"{plan.name}: records", plan.companies + plan.contacts + plan.deals)
    teams, users, heads = gen.people(org, setup)
    await writer.write("team", teams)
    await writer.write("user", users)
    await writer.set_heads(heads)

    companies, company_created, weights = await run(gen.companies, org)
    await writer.write("company", companies)
    done(len(companies))
    contacts, contact_created = await run(gen.contacts, org, companies, company_created, weights)
    await writer.write("contact", contacts)
    await writer.write("contact_point", await run(lambda: list(gen.contact_points(org, companies, contacts))))
    done(len(contacts))

    contacts_of: dict[Any, list[Row]] = {}
    for row in contacts:
        if row[CT_COMPANY] is not None and row[DELETED_AT] is None:
            contacts_of.setdefault(row[CT_COMPANY], []).append(row)
    deals, stage_events, deal_feed = await run(gen.deals, org, companies, company_created, weights, contacts_of)
    await writer.write("deal_stage_event", stage_events)
    await writer.write("feed_event", deal_feed)
    done(len(deals))
    shares, share_feed = await run(gen.shares, org, companies, contacts, deals)
    await writer.write("share", shares)
    await writer.write("feed_event", share_feed)
    targets = await run(gen.targets, org, companies, company_created, weights, contacts, contact_created, deals)
    return targets, deals
