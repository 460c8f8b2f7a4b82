"""Test fixtures: every database test runs on SQLite and on PostgreSQL, each inside a transaction that is rolled
back, against a schema built by the real Alembic migrations."""

import asyncio
import contextlib
import functools
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("FIELDBOOK_ENV", "test")
os.environ.setdefault("FIELDBOOK_SECRET_KEY", "test-secret-key-that-is-long-enough-0123456789")
# Argon2 at its cheapest: the tests check behaviour, not hashing cost.
os.environ.setdefault("FIELDBOOK_PASSWORD_TIME_COST", "1")
os.environ.setdefault("FIELDBOOK_PASSWORD_MEMORY_KIB", "64")
# Rate limits out of the way of tests that send many requests; tests/core/test_rate_limits.py sets its own.
os.environ.setdefault("FIELDBOOK_RATE_LIMIT_PER_MINUTE", "1000000")
os.environ.setdefault("FIELDBOOK_RATE_LIMIT_BURST", "1000000")
os.environ.setdefault("FIELDBOOK_RATE_LIMIT_KEY_PER_MINUTE", "1000000")
os.environ.setdefault("FIELDBOOK_RATE_LIMIT_KEY_BURST", "1000000")
# Apps under test deliver no webhooks by themselves: the webhook tests run the worker where they need it.
os.environ.setdefault("FIELDBOOK_WEBHOOK_WORKER", "false")

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from api.core.db import Database, make_engine
from api.core.migrate import upgrade
from api.main import create_app, install_state
from api.settings import Settings, get_settings

POSTGRES_URL = os.environ.get(
    "FIELDBOOK_TEST_POSTGRES_URL", "postgresql+asyncpg://fieldbook:fieldbook@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def own_database(dialect: str, directory: Path) -> Iterator[str]:
    """A migrated database of the caller's own whose writes really commit: a SQLite file in `directory`, or a fresh
    PostgreSQL database (so parallel runs never collide), dropped afterwards. Without PostgreSQL the test is
    skipped, except in CI, where it fails."""
    if dialect == "sqlite":
        url = f"sqlite+aiosqlite:///{directory / 'fieldbook-test.db'}"
        upgrade(url)
        yield url
        return
    name = f"fieldbook_test_{secrets.token_hex(4)}"
    try:
        asyncio.run(_admin(POSTGRES_URL, f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        message = f"PostgreSQL not reachable at {POSTGRES_URL} ({exc}); set FIELDBOOK_TEST_POSTGRES_URL"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        asyncio.run(_admin(POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with own_database("sqlite", tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with own_database("postgres", tmp_path_factory.mktemp("db")) as url:
        yield url


@contextlib.asynccontextmanager
async def serving(url: str, **pool: Any) -> AsyncIterator[tuple[Database, httpx.AsyncClient]]:
    """The app on a committed database (`own_database`), over a pool of its own (`pool`: the engine's pool
    options) with its lifespan running, and an HTTP client to it: for requests that really run side by side."""
    engine = make_engine(url, **pool)
    db = Database(engine)
    app = create_app(Settings(database_url=url), database=db)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.30", 5000))
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as http,
        ):
            yield db, http
    finally:
        await engine.dispose()


@contextlib.contextmanager
def uvicorn_serving(app: FastAPI) -> Iterator[str]:
    """uvicorn serving `app` on a free port of 127.0.0.1 (in a thread of this process), stopped and its thread
    joined however the caller ends: for clients that need a real server (streams, browsers)."""
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    instance = uvicorn.Server(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not instance.started:
            assert thread.is_alive(), "the server stopped while starting"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        instance.should_exit = True
        thread.join(10)
        if thread.is_alive():
            instance.force_exit = True
            thread.join(5)
        sock.close()
        assert not thread.is_alive(), "the server did not stop"


@pytest.fixture(params=["sqlite", "postgres"])
def committed_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """For tests that need real commits (concurrency, live streams): a database of the test's own."""
    with own_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@contextlib.asynccontextmanager
async def one_connection(url: str) -> AsyncIterator[AsyncConnection]:
    """A connection whose outer transaction is rolled back at the end."""
    engine = make_engine(url, null_pool=True)
    try:
        async with engine.connect() as connection:
            transaction = await connection.begin()
            try:
                yield connection
            finally:
                await transaction.rollback()
    finally:
        await engine.dispose()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The app's database, bound to one connection whose outer transaction is rolled back after the test."""
    async with one_connection(database_url) as connection:
        yield Database(connection.engine, bind=connection)


@pytest.fixture(scope="module")
async def module_connection(database_url: str) -> AsyncIterator[AsyncConnection]:
    """One connection for a module whose tests share records made once (they are most of each test's cost), rolled
    back after the module. Such a module overrides `db` with `savepoint_db`."""
    async with one_connection(database_url) as connection:
        yield connection


@pytest.fixture
async def savepoint_db(module_connection: AsyncConnection) -> AsyncIterator[Database]:
    """`db` on the module's connection: what the test writes is rolled back with its savepoint, and the records the
    module made stay as they were made."""
    savepoint = await module_connection.begin_nested()
    try:
        yield Database(module_connection.engine, bind=module_connection)
    finally:
        await savepoint.rollback()


@contextlib.asynccontextmanager
async def made_on(connection: AsyncConnection) -> AsyncIterator[tuple[AsyncSession, httpx.AsyncClient]]:
    """A session and an app client on a module's connection, for the records its tests share; what they wrote is
    kept (the session's own savepoint is released, not rolled back, when it closes)."""
    db = Database(connection.engine, bind=connection)
    transport = httpx.ASGITransport(app=create_app(database=db), client=("10.0.251.1", 4000))
    async with db.writer() as session, httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield session, client
        # Closing the session would roll back its savepoint, and with it what the app's requests wrote inside it.
        await session.commit()


@pytest.fixture
async def session(db: Database) -> AsyncIterator[object]:
    async with db.writer() as s:
        yield s


@functools.cache
def routed_app() -> FastAPI:
    """One app per test process, for its routes (building them is half a second, most of a small test's time)."""
    return create_app()


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the test's database, with state of its own (brokers, rate limits)."""
    app = routed_app()
    install_state(app, get_settings(), db)
    transport = httpx.ASGITransport(app=app, client=(f"10.0.{uuid.uuid4().int % 250}.1", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c
