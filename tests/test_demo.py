"""The demo organisation: its size, its consistency (what the services would have written alongside each record),
its determinism, its shape (good reps win more, faster, with more touches; overdue tasks, rotten deals, repeat
sales), and the API reading it. Loads are scaled down (`scale`), but for one full-size load on SQLite."""

import asyncio
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import phonenumbers
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from api import demo
from api.activities.models import Activity
from api.auth.models import Organization, Team, User
from api.cli import app
from api.clients import normalise
from api.clients.models import Company, Contact, ContactPoint
from api.core.changes import Change, diff
from api.core.db import Database, make_engine
from api.core.migrate import upgrade
from api.core.types import jsonable
from api.deals.models import Deal, DealLine, DealStageEvent, LostReason, Pipeline, Product, Stage
from api.feed.models import FeedEvent
from api.main import create_app
from api.settings import get_settings

# One day for every load of this module, so that two loads compare equal even across midnight.
TODAY = datetime.now(demo.TIME_ZONE).date()
NOW = datetime.combine(TODAY, time(), demo.TIME_ZONE)
ORG = demo.DEMO_ORG_ID
LOGGED = {
    "team": Team,
    "user": User,
    "product": Product,
    "pipeline": Pipeline,
    "stage": Stage,
    "lost_reason": LostReason,
    "company": Company,
    "contact": Contact,
    "deal": Deal,
    "deal_line": DealLine,
    "deal_stage_event": DealStageEvent,
    "activity": Activity,
}


@pytest.fixture
async def sqlite_db(sqlite_url: str) -> AsyncIterator[Database]:
    """Like `db`, on SQLite only: for the checks that need not run twice."""
    engine = make_engine(sqlite_url, null_pool=True)
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield Database(engine, bind=connection)
        finally:
            await transaction.rollback()
    await engine.dispose()


async def _load(db: Database, scale: float, seed: int = demo.DEFAULT_SEED) -> None:
    async with db.writer() as session:
        await demo.load(session, seed=seed, scale=scale, today=TODAY)
        await session.commit()


async def _rows(session: AsyncSession, model: Any, *where: Any) -> list[dict[str, Any]]:
    table = model.__table__
    result = await session.execute(sa.select(table).where(table.c.org_id == ORG, *where).order_by(table.c.id))
    return [dict(row._mapping) for row in result]


async def _count(session: AsyncSession, model: Any) -> int:
    table = model.__table__
    return int(await session.scalar(sa.select(sa.func.count()).select_from(table).where(table.c.org_id == ORG)) or 0)


def _aware(value: datetime) -> datetime:
    # Core rows read the UTC type: aware already; this keeps comparisons honest if a driver returns naive.
    return value if value.tzinfo else value.replace(tzinfo=NOW.tzinfo)


async def test_the_scaled_demo_has_its_counts_and_is_consistent(db: Database) -> None:
    await _load(db, 0.05)
    async with db.reader() as session:
        await _check_counts(session, demo.counts(0.05))
        await _check_change_log(session)
        await _check_contact_points(session)
        await _check_deal_history(session)
        await _check_activities(session)
        await _check_handles(session)


async def _check_counts(session: AsyncSession, size: demo.Counts) -> None:
    users = await _rows(session, User)
    assert Counter(u["role"] for u in users) == {"admin": 1, "manager": 3, "rep": 9, "marketing": 1}
    assert all(u["email"].endswith("@demo.fieldbook.app") for u in users)
    teams = await _rows(session, Team)
    assert len(teams) == 3 and all(t["head_id"] for t in teams)
    heads = {u["id"]: u for u in users if u["role"] == "manager"}
    assert {heads[t["head_id"]]["team_id"] for t in teams} == {t["id"] for t in teams}
    assert Counter(u["team_id"] for u in users if u["role"] == "rep") == {t["id"]: 3 for t in teams}
    org = await session.get(Organization, ORG)
    assert org is not None and org.settings == demo.ORG_SETTINGS

    counted = {model: await _count(session, model) for model in (Company, Contact, Deal, Activity)}
    assert counted == {
        Company: size.companies,
        Contact: size.contacts,
        Deal: size.deals,
        Activity: size.activities,
    }


async def _check_change_log(session: AsyncSession) -> None:
    """Each record has its one `create` entry, in time order, and the organisation's counter is the last seq."""
    org = await session.get(Organization, ORG)
    assert org is not None
    changes = await _rows(session, Change)
    seqs = sorted(c["seq"] for c in changes)
    assert seqs == list(range(1, len(changes) + 1)) and org.change_seq == seqs[-1]
    assert {c["op"] for c in changes} == {"create"}
    for entity, model in LOGGED.items():
        ids = {r["id"] for r in await _rows(session, model)}
        logged = [c["entity_id"] for c in changes if c["entity"] == entity]
        assert len(logged) == len(ids) and set(logged) == ids, entity
    by_seq = sorted(changes, key=lambda c: c["seq"])
    assert all(_aware(a["at"]) <= _aware(b["at"]) for a, b in pairwise(by_seq))


async def _check_contact_points(session: AsyncSession) -> None:
    """Every client's e-mails, phones and domain are contact points, each unique (no false duplicates)."""
    points = await _rows(session, ContactPoint)
    expected = Counter()
    for company in await _rows(session, Company):
        expected.update((k, company[k], company["id"]) for k in ("domain", "phone") if company[k])
    for contact in await _rows(session, Contact):
        expected.update(("email", e, contact["id"]) for e in contact["emails"])
        expected.update(("phone", p, contact["id"]) for p in contact["phones"])
    assert Counter((p["kind"], p["value"], p["client_id"]) for p in points) == expected
    assert len({(p["kind"], p["value"]) for p in points}) == len(points)


async def _check_deal_history(session: AsyncSession) -> None:
    """Deals walk the pipeline stage by stage; their state, rotting, lines and feed agree with that walk."""
    stages = {s["id"]: s for s in await _rows(session, Stage)}
    reasons = {r["id"] for r in await _rows(session, LostReason)}
    deals = await _rows(session, Deal)
    events: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for event in sorted(await _rows(session, DealStageEvent), key=lambda e: (e["at"], e["id"])):
        events[event["deal_id"]].append(event)
    activities = await _rows(session, Activity)
    done_on: dict[uuid.UUID, list[datetime]] = defaultdict(list)
    for activity in activities:
        if activity["deal_id"] and activity["done_at"]:
            done_on[activity["deal_id"]].append(_aware(activity["done_at"]))
    feed = Counter((f["kind"], f["deal_id"]) for f in await _rows(session, FeedEvent) if f["deal_id"])
    lines = Counter(line["deal_id"] for line in await _rows(session, DealLine))

    for deal in deals:
        walk = events[deal["id"]]
        # Created in the first stage, then stage by stage (never skipping), ending where the deal is.
        assert walk[0]["from_stage_id"] is None and stages[walk[0]["to_stage_id"]]["position"] == 1
        for before, after in pairwise(walk):
            assert after["from_stage_id"] == before["to_stage_id"]
            assert stages[after["to_stage_id"]]["position"] == stages[before["to_stage_id"]]["position"] + 1 or (
                stages[after["to_stage_id"]]["kind"] == "lost"
            )
            assert after["seconds_in_previous"] == int((after["at"] - before["at"]).total_seconds())
        assert walk[-1]["to_stage_id"] == deal["stage_id"] and walk[-1]["at"] == deal["stage_entered_at"]
        assert stages[deal["stage_id"]]["kind"] == deal["status"]
        assert (deal["status"] == "lost") == (deal["lost_reason_id"] in reasons)
        assert (deal["won_at"] is not None) == (deal["status"] == "won")
        assert lines[deal["id"]] >= 1 and deal["amount_minor"] > 0
        last = max(done_on[deal["id"]], default=None)
        assert (_aware(deal["last_activity_at"]) if deal["last_activity_at"] else None) == last
        if deal["status"] == "open":
            since = max(_aware(deal["stage_entered_at"]), last or _aware(deal["stage_entered_at"]))
            assert _aware(deal["rots_at"]) == since + timedelta(days=stages[deal["stage_id"]]["rotten_days"])
        else:
            assert deal["rots_at"] is None
        assert all(_aware(d) <= NOW for d in done_on[deal["id"]])
        # The feed tells each step: created, moves, and the win or loss.
        assert feed[("deal_created", deal["id"])] == 1
        moves = feed[("stage_moved", deal["id"])] + feed[("deal_won", deal["id"])] + feed[("deal_lost", deal["id"])]
        assert moves == len(walk) - 1


async def _check_activities(session: AsyncSession) -> None:
    activities = await _rows(session, Activity)
    done = [a for a in activities if a["done_at"]]
    activity_events = [f for f in await _rows(session, FeedEvent) if f["kind"] == "activity"]
    assert sorted(f["activity_id"] for f in activity_events) == sorted(a["id"] for a in done)
    for activity in activities:
        assert activity["done_at"] or activity["due_at"]
        assert _aware(activity["created_at"]) <= NOW
        if activity["kind"] == "call" and activity["done_at"]:
            assert activity["direction"] and activity["outcome"] and activity["duration_seconds"] is not None
    next_steps = {a["id"]: a for a in activities}
    linked = [a for a in activities if a["next_step_id"]]
    assert linked and all(next_steps[a["next_step_id"]]["done_at"] is None for a in linked)


async def _check_handles(session: AsyncSession) -> None:
    """Valid Spanish e-mails, mobiles (E.164), landlines and web domains, as the services would store them."""
    contacts = await _rows(session, Contact)
    companies = await _rows(session, Company)
    for contact in contacts:
        for email in contact["emails"]:
            assert normalise.email(email, "#") == email
        for phone in contact["phones"]:
            number = phonenumbers.parse(phone)
            assert phonenumbers.is_valid_number(number) and number.country_code == 34 and phone[3] in "67"
    for company in companies:
        if company["phone"]:
            assert phonenumbers.is_valid_number(phonenumbers.parse(company["phone"]))
        if company["domain"]:
            assert normalise.domain(company["domain"], "#") == company["domain"]
        assert company["city"] and company["industry"] and company["country"] == "ES"


def test_the_change_log_holds_what_changes_create_would_write() -> None:
    built = demo._Demo(seed=7, size=demo.counts(0.02), today=TODAY, progress=demo._quiet)
    built.build()
    entries = {c["entity_id"]: c for c in built.rows[Change]}
    for _at, entity, row, _actor in built.logged:
        values = {name: jsonable(row[name]) for name in demo.TRACKED[entity]}
        assert entries[row["id"]]["fields"] == diff({}, values), entity
    user = next(c for c in built.rows[Change] if c["entity"] == "user")
    assert user["fields"]["password_hash"]["after"] == "[redacted]" and user["actor_kind"] == "system"
    company = next(c for c in built.rows[Change] if c["entity"] == "company")
    assert company["actor_kind"] == "user" and company["actor_id"] is not None


def test_ids_are_uuid7s_stamped_with_the_creation_time() -> None:
    built = demo._Demo(seed=7, size=demo.counts(0.02), today=TODAY, progress=demo._quiet)
    built.build()
    for model in (Company, Deal, Activity, Change):
        for row in built.rows[model]:
            at = row["at"] if model is Change else row["created_at"]
            assert row["id"].version == 7 and row["id"].variant == uuid.RFC_4122
            assert row["id"].int >> 80 == int(at.timestamp() * 1000)


def test_the_same_seed_builds_the_same_organisation() -> None:
    def rows(seed: int) -> dict[str, list[dict[str, Any]]]:
        built = demo._Demo(seed=seed, size=demo.counts(0.02), today=TODAY, progress=demo._quiet)
        built.build()
        return {model.__name__: rows for model, rows in built.rows.items()}

    first = rows(11)
    assert rows(11) == first
    assert rows(12)["Deal"] != first["Deal"]


async def test_the_same_seed_writes_the_same_rows_and_another_seed_does_not(sqlite_db: Database) -> None:
    async def load(seed: int) -> dict[str, list[dict[str, Any]]]:
        async with sqlite_db.writer() as session:
            await demo.load(session, seed=seed, scale=0.02, today=TODAY)
            await session.flush()
            found = {model.__name__: await _rows(session, model) for model in (User, Deal, Activity, Change)}
            await session.rollback()  # back to an empty database for the next load
        return found

    first = await load(5)
    again = await load(5)
    other = await load(6)
    assert first["Deal"] and first["Activity"]
    for table, rows in first.items():
        assert again[table] == rows, table
        assert other[table] != rows, table


async def test_better_reps_win_more_close_faster_and_touch_more(sqlite_db: Database) -> None:
    await _load(sqlite_db, 0.1)
    async with sqlite_db.reader() as session:
        users = {u["email"]: u["id"] for u in await _rows(session, User)}
        deals = await _rows(session, Deal)
        activities = await _rows(session, Activity)
        stages = {s["id"]: s for s in await _rows(session, Stage)}
    touches = Counter(a["deal_id"] for a in activities if a["deal_id"] and a["done_at"])

    def stats(sellers: set[uuid.UUID]) -> tuple[float, float, float]:
        mine = [d for d in deals if d["owner_id"] in sellers]
        won = [d for d in mine if d["status"] == "won"]
        lost = [d for d in mine if d["status"] == "lost"]
        cycle = median((d["won_at"] - d["created_at"]).total_seconds() / 86_400 for d in won)
        per_deal = sum(touches[d["id"]] for d in won + lost) / len(won + lost)
        return len(won) / len(won + lost), cycle, per_deal

    def group(profile: demo.Profile, team: str | None = None) -> set[uuid.UUID]:
        return {users[p.email] for p in demo.PEOPLE if p.profile is profile and team in (None, p.team)}

    top, steady, learning = stats(group(demo.TOP)), stats(group(demo.STEADY)), stats(group(demo.LEARNING))
    assert top[0] > steady[0] > learning[0] and top[0] > 1.5 * learning[0]  # win rate
    assert top[1] < steady[1] < learning[1]  # days to win
    assert top[2] > steady[2] > learning[2]  # touches per closed deal
    for team in demo.TEAMS:
        best, weakest = stats(group(demo.TOP, team)), stats(group(demo.LEARNING, team))
        assert best[0] > weakest[0] and best[1] < weakest[1] and best[2] > weakest[2], team

    now = NOW
    overdue = [a for a in activities if a["done_at"] is None and _aware(a["due_at"]) < now]
    planned = [a for a in activities if a["done_at"] is None and _aware(a["due_at"]) >= now]
    assert len(overdue) >= 10 and len(planned) > len(overdue)
    open_deals = [d for d in deals if d["status"] == "open"]
    rotten = [d for d in open_deals if _aware(d["rots_at"]) <= now]
    assert 0 < len(rotten) < len(open_deals)
    assert {stages[d["stage_id"]]["position"] for d in open_deals} == {1, 2, 3, 4}
    by_id = {d["id"]: d for d in deals}
    repeats = [d for d in deals if d["previous_deal_id"]]
    assert len(repeats) >= 0.05 * len(deals)
    for repeat in repeats:
        previous = by_id[repeat["previous_deal_id"]]
        assert previous["status"] == "won" and previous["company_id"] == repeat["company_id"]
        assert previous["won_at"] < repeat["created_at"]
    reasons = Counter(d["lost_reason_id"] for d in deals if d["status"] == "lost")
    assert len(reasons) == 5


async def test_a_rep_reads_board_feed_and_a_client_card(db: Database) -> None:
    await _load(db, 0.05)
    rep = next(p for p in demo.PEOPLE if p.profile is demo.TOP)
    async with db.reader() as session:
        rep_id = await session.scalar(sa.select(User.id).where(User.email == rep.email))
        company_id = await session.scalar(
            sa.select(Deal.company_id).where(Deal.org_id == ORG, Deal.owner_id == rep_id).order_by(Deal.id).limit(1)
        )
    transport = httpx.ASGITransport(app=create_app(database=db))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        login = await client.post("/api/v1/auth/login", json={"email": rep.email, "password": demo.DEMO_PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

        board = await client.get("/api/v1/deals/board", headers=headers)
        assert board.status_code == 200, board.text
        columns = board.json()["stages"]
        assert [c["stage"]["name"] for c in columns][:4] == ["Prospecto", "Calificado", "Propuesta", "Negociación"]
        assert sum(c["count"] for c in columns) > 0 and any(c["items"] for c in columns)

        feed = await client.get("/api/v1/feed", headers=headers)
        assert feed.status_code == 200, feed.text
        kinds = {item["kind"] for item in feed.json()["items"]}
        assert feed.json()["items"] and "activity" in kinds

        card = await client.get(f"/api/v1/clients/{company_id}/card", headers=headers)
        assert card.status_code == 200, card.text
        body = card.json()
        assert body["company"]["id"] == str(company_id) and body["contacts"] and body["timeline"]["items"]
        assert sum(body["deal_counts"].values()) >= 1 and body["last_touch"] is not None

        agenda = await client.get("/api/v1/me/agenda", params={"days": 31}, headers=headers)
        assert agenda.status_code == 200, agenda.text
        assert agenda.json()["overdue"] or agenda.json()["upcoming"] or agenda.json()["today"]

        # This month's and this quarter's goals, each with the rep's progress; who was over a target at load time
        # is recorded as reached, with a feed entry.
        goals = await client.get("/api/v1/goals", params={"current": "true"}, headers=headers)
        assert goals.status_code == 200, goals.text
        assert {g["metric"] for g in goals.json()["items"]} == {"well_developed_clients", "deals_won"}
        for goal in goals.json()["items"]:
            (mine,) = goal["progress"]
            assert mine["user_id"] == str(rep_id)
            assert (mine["reached_at"] is not None) == (mine["value"] >= goal["target"])


async def test_loading_twice_changes_nothing(sqlite_db: Database) -> None:
    await _load(sqlite_db, 0.02)
    async with sqlite_db.reader() as session:
        before = {m.__name__: await _count(session, m) for m in (Company, Deal, Activity, Change)}
    await _load(sqlite_db, 0.02, seed=99)
    async with sqlite_db.reader() as session:
        assert {m.__name__: await _count(session, m) for m in (Company, Deal, Activity, Change)} == before


def test_the_full_demo_on_a_fresh_sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `make run` does, at full size: about 15 s here (the one slow test of this module)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'full.db'}"
    upgrade(url)
    monkeypatch.setenv("FIELDBOOK_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["demo"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output

    async def count() -> tuple[dict[str, int], int, int]:
        engine = make_engine(url, null_pool=True)
        try:
            async with Database(engine).reader() as session:
                models = (Company, Contact, Deal, Activity, User, Team)
                counted = {model.__name__: await _count(session, model) for model in models}
                seq = await session.scalar(sa.select(Organization.change_seq).where(Organization.id == ORG))
                last = await session.scalar(sa.select(sa.func.max(Change.seq)).where(Change.org_id == ORG))
                return counted, int(seq or 0), int(last or 0)
        finally:
            await engine.dispose()

    counted, seq, last = asyncio.run(count())
    for path in tmp_path.glob("full.db*"):
        path.unlink()  # 200 MB that pytest would otherwise keep for a few runs
    assert counted == {"Company": 2_000, "Contact": 4_000, "Deal": 3_000, "Activity": 40_000, "User": 14, "Team": 3}
    assert seq == last > 0
