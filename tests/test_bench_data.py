"""`fieldbook bench-data` and api/benchdata, on a tiny plan, on SQLite and PostgreSQL: the rows are as planned and
deterministic, every reference stays within its organisation, the app reads the data (sign-in, a client card), and
the command refuses what it must."""

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import pysqlite
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel
from typer.testing import CliRunner

from api.benchdata import dataset
from api.benchdata.plans import (
    MAIN_DOMAIN,
    NEW_REP_EMAIL,
    PASSWORD,
    REP_EMAIL,
    SMALL_MAIN,
    SMALL_OTHER,
    TEAMS,
)
from api.benchdata.rows import COLUMNS
from api.benchdata.sqlite import converters
from api.cli import app
from api.core.db import Database, make_engine
from api.core.types import UTCDateTime
from api.main import create_app
from api.settings import Settings
from tests.conftest import IN_CI, POSTGRES_URL, _admin

NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
TINY = (
    replace(
        SMALL_MAIN,
        teams=TEAMS[:2],
        reps_per_team=3,
        companies=200,
        contacts=400,
        deals=200,
        activities=2_000,
        shares=20,
        big_companies=(30, 50),
    ),
    replace(SMALL_OTHER, reps_per_team=2, companies=20, contacts=40, deals=20, activities=200, shares=5),
)
# The generated tables, and their columns that name a row the app made for the organisation (compared by name).
GENERATED = ("team", "user", "company", "contact", "contact_point", "deal", "deal_stage_event", "activity")
GENERATED += ("feed_event", "share")
REFERENCE = {"stage_id": "stage", "from_stage_id": "stage", "to_stage_id": "stage"}
REFERENCE |= {"pipeline_id": "pipeline", "lost_reason_id": "lost_reason"}
# Columns that name another organisation-owned row: (table, column, the table it names).
REFERENCES = [
    (table, column, target)
    for table, columns in {
        "company": {"owner_id": "user"},
        "contact": {"owner_id": "user", "company_id": "company"},
        "contact_point": {},
        "deal": {"owner_id": "user", "company_id": "company", "contact_id": "contact", "stage_id": "stage"},
        "deal_stage_event": {"deal_id": "deal", "by_id": "user", "to_stage_id": "stage"},
        "activity": {"owner_id": "user", "company_id": "company", "contact_id": "contact", "deal_id": "deal"},
        "feed_event": {"actor_id": "user", "company_id": "company", "deal_id": "deal", "activity_id": "activity"},
        "share": {"user_id": "user", "by_id": "user"},
        "user": {"team_id": "team"},
    }.items()
    for column, target in columns.items()
]


@contextlib.contextmanager
def _place(dialect: str, directory: Path) -> Iterator[str]:
    """Where a load may go: a SQLite file, or a PostgreSQL database that does not exist yet (dropped afterwards).
    Without PostgreSQL the test is skipped, except in CI, where it fails."""
    if dialect == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / 'bench.db'}"
        return
    try:
        asyncio.run(_admin(POSTGRES_URL, "SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        message = f"PostgreSQL not reachable at {POSTGRES_URL} ({exc}); set FIELDBOOK_TEST_POSTGRES_URL"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    name = f"fieldbook_test_bench_{secrets.token_hex(4)}"
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def bench_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with _place(request.param, tmp_path) as url:
        yield url


@dataclass(frozen=True)
class Loaded:
    url: str
    result: dataset.Result
    rows: dict[str, list[dict[str, Any]]]  # as loaded, before any test signs in


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """The tiny plan loaded once per database, for the tests that only read it."""
    with _place(request.param, tmp_path_factory.mktemp("bench")) as url:
        result = asyncio.run(_load(url))
        yield Loaded(url, result, asyncio.run(_dump(url)))


@pytest.fixture
def again(loaded: Loaded, tmp_path: Path) -> Iterator[str]:
    """Another place on the database `loaded` is on."""
    with _place("sqlite" if loaded.url.startswith("sqlite") else "postgres", tmp_path) as url:
        yield url


async def _load(url: str, *, seed: int = 7, **options: Any) -> dataset.Result:
    return await dataset.load(url, scale="small", seed=seed, now=NOW, organisations=TINY, **options)


async def _query(url: str, sql: str, **params: Any) -> list[sa.Row[Any]]:
    engine = make_engine(url, null_pool=True)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(sa.text(sql), params)).all())
    finally:
        await engine.dispose()


async def _dump(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every generated row, by table in id order; references to the app's own rows (stages, the pipeline, lost
    reasons: their ids are made when the organisation is) as those rows' names."""
    engine = make_engine(url, null_pool=True)
    try:
        async with engine.connect() as conn:
            names: dict[Any, str] = {}
            for table in set(REFERENCE.values()):
                rows = await conn.execute(
                    sa.text(f"SELECT o.name AS org, t.id, t.name FROM {table} t JOIN organization o ON o.id = t.org_id")
                )
                names |= {row.id: f"{row.org}/{row.name}" for row in rows}
            out = {}
            for table in GENERATED:
                rows = await conn.execute(sa.text(f'SELECT * FROM "{table}" ORDER BY id'))
                out[table] = [
                    {k: names.get(v, v) if k in REFERENCE else v for k, v in row._mapping.items()} for row in rows
                ]
            return out
    finally:
        await engine.dispose()


async def _counts(url: str) -> dict[tuple[str, str], int]:
    out = {}
    for table in GENERATED:
        rows = await _query(
            url, f'SELECT o.name, count(*) FROM "{table}" t JOIN organization o ON o.id = t.org_id GROUP BY o.name'
        )
        out |= {(table, org): n for org, n in rows}
    return out


async def test_a_load_holds_what_was_planned_within_each_organisation(loaded: Loaded) -> None:
    bench_url, result = loaded.url, loaded.result
    assert not result.skipped and result.meta["fingerprint"] == dataset.fingerprint("small", 7, TINY)
    counts = await _counts(bench_url)
    main = TINY[0]
    for plan in TINY:
        name = plan.name
        people = len(plan.teams) * (1 + plan.reps_per_team) + 1 + plan.marketing + plan.newcomer
        assert counts["user", name] == people
        assert counts["team", name] == len(plan.teams)
        assert counts["company", name] == plan.companies
        assert counts["contact", name] == plan.contacts
        assert counts["deal", name] == plan.deals
        assert counts["activity", name] == plan.activities + sum(plan.big_companies)
        assert counts["share", name] == plan.shares + (50 if plan.big_companies else 0)
    assert counts["contact_point", main.name] > main.companies + main.contacts
    # A feed event for each deal's creation and move, each share and each done activity.
    feed = await _query(
        bench_url,
        """SELECT o.name,
                  (SELECT count(*) FROM deal_stage_event e WHERE e.org_id = o.id)
                  + (SELECT count(*) FROM share s WHERE s.org_id = o.id)
                  + (SELECT count(*) FROM activity a WHERE a.org_id = o.id AND a.done_at IS NOT NULL)
           FROM organization o""",
    )
    assert {name: counts["feed_event", name] for name, _ in feed} == dict(feed)
    assert result.meta["rows"]["activity"] == sum(p.activities + sum(p.big_companies) for p in TINY)
    # Deals were won and lost, and some activities are still to do.
    statuses = dict(await _query(bench_url, "SELECT status, count(*) FROM deal GROUP BY status"))
    assert statuses.keys() == {"open", "won", "lost"}
    planned = await _query(bench_url, "SELECT count(*) FROM activity WHERE done_at IS NULL")
    assert 0 < planned[0][0] < 0.1 * result.meta["rows"]["activity"]

    for table, column, target in REFERENCES:
        crossing = await _query(
            bench_url,
            f'SELECT count(*) FROM "{table}" r JOIN "{target}" t ON t.id = r.{column} WHERE t.org_id <> r.org_id',
        )
        assert crossing[0][0] == 0, f"{table}.{column} names another organisation's {target}"


async def test_the_same_seed_and_moment_give_the_same_rows_another_seed_others(loaded: Loaded, again: str) -> None:
    await _load(again)
    assert await _dump(again) == loaded.rows
    await _load(again, seed=8, replace=True)
    other = await _dump(again)
    for table in ("company", "activity", "feed_event"):
        assert {r["id"] for r in other[table]}.isdisjoint(r["id"] for r in loaded.rows[table]), table
    assert [r["name"] for r in other["company"]] != [r["name"] for r in loaded.rows["company"]]


async def test_a_rep_signs_in_and_reads_a_client_card_the_newcomer_sees_nothing(loaded: Loaded) -> None:
    bench_url = loaded.url
    engine = make_engine(bench_url, null_pool=True)
    try:
        transport = httpx.ASGITransport(app=create_app(Settings(database_url=bench_url), database=Database(engine)))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            tokens = {}
            for who in (REP_EMAIL, NEW_REP_EMAIL):
                response = await client.post("/api/v1/auth/login", json={"email": who, "password": PASSWORD})
                assert response.status_code == 200, response.text
                tokens[who] = {"Authorization": f"Bearer {response.json()['access_token']}"}
            companies = await client.get("/api/v1/companies?limit=200", headers=tokens[REP_EMAIL])
            assert companies.status_code == 200
            mine = companies.json()["items"]
            # The rep owns the big companies (and more), and sees no other organisation's.
            big = next(c for c in mine if c["name"].endswith(" 0"))
            card = await client.get(f"/api/v1/clients/{big['id']}/card", headers=tokens[REP_EMAIL])
            assert card.status_code == 200, card.text
            body = card.json()
            # Its 80 contacts and 60 deals (some soft-deleted), and a timeline of its activities and deals.
            assert body["company"]["name"] == big["name"] and 70 < body["contact_count"] <= 80
            assert 50 < sum(body["deal_counts"].values()) <= 60 and body["timeline"]["items"]
            nothing = await client.get("/api/v1/companies", headers=tokens[NEW_REP_EMAIL])
            assert nothing.json()["items"] == []
            assert (
                await client.get(f"/api/v1/clients/{big['id']}/card", headers=tokens[NEW_REP_EMAIL])
            ).status_code == 404
    finally:
        await engine.dispose()


runner = CliRunner()


@pytest.fixture
def tiny_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset, "plans", lambda scale: TINY)


def test_the_command_loads_keeps_the_same_data_set_and_refuses_to_overwrite_another(
    bench_url: str, tiny_plans: None
) -> None:
    options = ["bench-data", "--database-url", bench_url]
    first = runner.invoke(app, options)
    assert first.exit_code == 0, first.output
    assert f"sign in as admin@{MAIN_DOMAIN}" in first.stdout and PASSWORD in first.stdout
    assert "Bench Main: activities" in first.stderr

    kept = runner.invoke(app, [*options, "--if-changed"])
    assert kept.exit_code == 0, kept.output
    assert "kept as it is" in kept.stdout and "activities" not in kept.stderr

    # Another data set (another seed) would replace this one: not without --replace.
    refused = runner.invoke(app, [*options, "--seed", "8", "--if-changed"])
    assert refused.exit_code == 1
    assert "holds 2 organisation(s)" in refused.stderr and "--replace" in refused.stderr


def test_the_sqlite_load_stores_ids_and_times_as_sqlalchemy_binds_them() -> None:
    dialect = pysqlite.dialect()
    madrid = timezone(timedelta(hours=2))
    samples = {
        sa.Uuid: [uuid.uuid4(), uuid.UUID(int=0), None],
        UTCDateTime: [datetime(2026, 5, 1, 9, 30, tzinfo=UTC), datetime(2026, 5, 1, 9, 30, 0, 1500, madrid), None],
        sa.Date: [date(2026, 5, 1), None],
    }
    checked = set()
    for table, columns in COLUMNS.items():
        for name, convert in zip(columns, converters(table), strict=True):
            kind = SQLModel.metadata.tables[table].c[name].type
            values = next((v for k, v in samples.items() if isinstance(kind, k)), None)
            if convert is None or values is None:
                continue
            process = kind.dialect_impl(dialect).bind_processor(dialect)
            assert convert(values) == [process(v) for v in values], f"{table}.{name}"
            checked.add(type(kind))
    assert checked == set(samples)


def test_the_command_refuses_the_large_data_set_on_sqlite_and_what_is_not_fieldbooks(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bench.db'}"
    large = runner.invoke(app, ["bench-data", "--scale", "large", "--database-url", url])
    assert large.exit_code == 1
    assert "--scale large needs PostgreSQL" in large.stderr
    assert not (tmp_path / "bench.db").exists()

    (tmp_path / "bench.db").write_text("someone's notes")
    foreign = runner.invoke(app, ["bench-data", "--database-url", url])
    assert foreign.exit_code == 1 and "not Fieldbook's" in foreign.stderr
    assert (tmp_path / "bench.db").read_text() == "someone's notes"

    server = make_url(POSTGRES_URL).set(database="postgres").render_as_string(hide_password=False)
    system = runner.invoke(app, ["bench-data", "--replace", "--database-url", server])
    assert system.exit_code == 1 and "the server's own database" in system.stderr
