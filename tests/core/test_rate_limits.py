"""Rate limits per caller (api/core/ratelimit.py): every authenticated answer tells the caller where it stands
(`RateLimit-*`, draft-ietf-httpapi-ratelimit-headers-06), a caller past its burst gets 429 problem+json with
`Retry-After` and changes nothing, the bucket refills with time, callers never share a bucket, and on PostgreSQL
every API process spends from the same bucket.

The tests give the app limits of their own (the suite's defaults are out of reach) and a clock they move, so
nothing sleeps."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from api.core.db import Database, make_engine
from api.core.ratelimit import bucket_key
from api.main import create_app
from api.settings import Settings
from tests.factories import PASSWORD, make_api_key, make_org, make_tenant, make_user, sign_in

pytestmark = pytest.mark.asyncio

ME = "/api/v1/me"
COMPANIES = "/api/v1/companies"
START = 1_900_000_000.0


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def _settings(**limits: Any) -> Settings:
    defaults = {
        "rate_limit_per_minute": 6,  # one request every 10 s
        "rate_limit_burst": 3,
        "rate_limit_key_per_minute": 12,  # one every 5 s
        "rate_limit_key_burst": 4,
    }
    return Settings(**{**defaults, **limits})


@contextlib.asynccontextmanager
async def _app(db: Database, **limits: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, Clock]]:
    app = create_app(_settings(**limits), database=db)
    clock = Clock()
    app.state.rate_limiter.clock = clock
    transport = httpx.ASGITransport(app=app, client=(f"10.1.{uuid.uuid4().int % 250}.1", 4000))
    # With its lifespan: on PostgreSQL the buckets are then written through their own pool and committed at once,
    # as in production, rather than inside the test's transaction.
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield app, http, clock


def _limits(response: httpx.Response) -> tuple[int, int, int]:
    h = response.headers
    return int(h["ratelimit-limit"]), int(h["ratelimit-remaining"]), int(h["ratelimit-reset"])


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_every_authenticated_answer_says_where_the_caller_stands(session: AsyncSession, db: Database) -> None:
    async with _app(db) as (_, http, _clock):
        tenant = await make_tenant(session, http)
        seen = []
        for _ in range(3):
            response = await http.get(ME, headers=tenant.headers)
            assert response.status_code == 200, response.text
            assert response.headers["ratelimit-policy"] == "6;w=60;burst=3"
            seen.append(_limits(response))
        # Capacity 3, one spent per request; the bucket is full again 10 s after each request spent.
        assert seen == [(3, 2, 10), (3, 1, 20), (3, 0, 30)]


async def test_errors_carry_the_fields_too_and_sign_in_is_not_counted(session: AsyncSession, db: Database) -> None:
    async with _app(db) as (_, http, _clock):
        org = await make_org(session)
        user = await make_user(session, org)
        signed_in = await http.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
        assert signed_in.status_code == 200
        assert "ratelimit-limit" not in signed_in.headers  # sign-in has its own throttle (failed attempts)
        headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
        missing = await http.get(f"{COMPANIES}/{uuid.uuid4()}", headers=headers)
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert _limits(missing) == (3, 2, 10)
        invalid = await http.post(COMPANIES, json={"name": ""}, headers=headers)
        assert invalid.status_code == 422
        assert _limits(invalid) == (3, 1, 20)  # a refused request costs its token like any other
        anonymous = await http.get(ME)
        assert anonymous.status_code == 401
        assert "ratelimit-limit" not in anonymous.headers


async def test_past_the_burst_a_caller_gets_429_with_retry_after(session: AsyncSession, db: Database) -> None:
    async with _app(db) as (_, http, clock):
        tenant = await make_tenant(session, http)
        for _ in range(3):
            assert (await http.get(ME, headers=tenant.headers)).status_code == 200
        refused = await http.get(ME, headers=tenant.headers)
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/problem+json")
        problem = refused.json()
        assert problem["type"] == "/problems/rate-limited"
        assert problem["status"] == 429
        assert "6 a minute, 3 at once" in problem["detail"]
        assert refused.headers["retry-after"] == "10"
        # The draft: RateLimit-Reset names the same moment as Retry-After.
        assert _limits(refused) == (3, 0, 10)
        assert refused.headers["ratelimit-policy"] == "6;w=60;burst=3"
        # A refused request spends nothing: the wait does not grow while the caller keeps asking.
        clock.now += 4
        again = await http.get(ME, headers=tenant.headers)
        assert again.status_code == 429
        assert again.headers["retry-after"] == "6"


async def test_the_bucket_refills_as_time_passes(session: AsyncSession, db: Database) -> None:
    async with _app(db) as (_, http, clock):
        tenant = await make_tenant(session, http)
        for _ in range(3):
            await http.get(ME, headers=tenant.headers)
        assert (await http.get(ME, headers=tenant.headers)).status_code == 429
        clock.now += 10  # one request's worth
        one = await http.get(ME, headers=tenant.headers)
        assert one.status_code == 200
        assert _limits(one) == (3, 0, 30)
        assert (await http.get(ME, headers=tenant.headers)).status_code == 429
        clock.now += 3600  # idle: a full bucket, no more
        full = await http.get(ME, headers=tenant.headers)
        assert _limits(full) == (3, 2, 10)


async def test_callers_never_share_a_bucket(session: AsyncSession, db: Database) -> None:
    async with _app(db) as (_, http, _clock):
        tenant = await make_tenant(session, http)
        colleague = await sign_in(http, tenant.rep)
        other = await make_tenant(session, http, name="Globex")
        second_key, second_secret = await make_api_key(session, tenant.org, "users:read")
        for _ in range(3):
            await http.get(ME, headers=tenant.headers)
        assert (await http.get(ME, headers=tenant.headers)).status_code == 429
        # A colleague, another organisation's admin, the organisation's API key: full buckets of their own.
        assert _limits(await http.get(ME, headers=colleague)) == (3, 2, 10)
        assert _limits(await http.get(ME, headers=other.headers)) == (3, 2, 10)
        key = await http.get(ME, headers=_bearer(tenant.key_secret))
        assert key.status_code == 200
        # Keys have limits of their own (FIELDBOOK_RATE_LIMIT_KEY_*).
        assert _limits(key) == (4, 3, 5)
        assert key.headers["ratelimit-policy"] == "12;w=60;burst=4"
        for _ in range(3):
            await http.get(ME, headers=_bearer(tenant.key_secret))
        assert (await http.get(ME, headers=_bearer(tenant.key_secret))).status_code == 429
        # One key's exhaustion is not another's, nor the users'.
        assert _limits(await http.get(ME, headers=_bearer(second_secret))) == (4, 3, 5)
        assert (await http.get(ME, headers=colleague)).status_code == 200
        assert second_key.id != tenant.key.id


async def test_a_throttled_write_changes_nothing(session: AsyncSession, db: Database) -> None:
    async with _app(db) as (_, http, clock):
        tenant = await make_tenant(session, http)
        for _ in range(3):
            await http.get(COMPANIES, headers=tenant.headers)
        write = {**tenant.headers, "Idempotency-Key": "log-the-visit-1"}
        refused = await http.post(COMPANIES, json={"name": "Talleres Ruiz"}, headers=write)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "10"
        clock.now += 60
        listed = await http.get(COMPANIES, headers=tenant.headers)
        assert listed.json()["items"] == []
        # The Idempotency-Key was not kept for the refusal: the retry does the work, once.
        created = await http.post(COMPANIES, json={"name": "Talleres Ruiz"}, headers=write)
        assert created.status_code == 201, created.text
        assert "idempotent-replayed" not in created.headers
        assert _limits(created)[1] == 1


async def test_a_replayed_post_is_not_counted(session: AsyncSession, db: Database) -> None:
    async with _app(db) as (_, http, _clock):
        tenant = await make_tenant(session, http)
        write = {**tenant.headers, "Idempotency-Key": "replay-me"}
        first = await http.post(COMPANIES, json={"name": "Uno"}, headers=write)
        assert _limits(first) == (3, 2, 10)
        again = await http.post(COMPANIES, json={"name": "Uno"}, headers=write)
        assert again.headers["idempotent-replayed"] == "true"
        # Answered from the stored response without running the route: no stale fields stored, none spent.
        assert "ratelimit-remaining" not in again.headers
        assert _limits(await http.get(ME, headers=tenant.headers)) == (3, 1, 20)


async def test_zero_a_minute_turns_the_limit_off(session: AsyncSession, db: Database) -> None:
    async with _app(db, rate_limit_per_minute=0) as (_, http, _clock):
        tenant = await make_tenant(session, http)
        for _ in range(5):
            response = await http.get(ME, headers=tenant.headers)
            assert response.status_code == 200
            assert "ratelimit-limit" not in response.headers
        # Keys keep theirs.
        assert _limits(await http.get(ME, headers=_bearer(tenant.key_secret))) == (4, 3, 5)


# Across processes: two apps, each with its own engine, on one committed database.


@contextlib.asynccontextmanager
async def _instance(url: str, **limits: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    engine = make_engine(url)
    app = create_app(_settings(database_url=url, **limits), database=Database(engine))
    transport = httpx.ASGITransport(app=app, client=("192.0.2.40", 5000))
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as http,
        ):
            yield app, http
    finally:
        await engine.dispose()


async def _signed_in_user(url: str, http: httpx.AsyncClient) -> tuple[uuid.UUID, dict[str, str]]:
    engine = make_engine(url, null_pool=True)
    try:
        async with Database(engine).writer() as session:
            org = await make_org(session)
            user = await make_user(session, org, role=Role.admin)
    finally:
        await engine.dispose()
    return user.id, await sign_in(http, user)


async def test_api_processes_share_one_bucket_on_postgresql(committed_url: str) -> None:
    """On PostgreSQL two app instances spend from one bucket, exactly `burst` requests of a concurrent flood get
    through, and the bucket is a row of rate_bucket. On SQLite (one embedded process) each instance keeps its own
    buckets in memory: two instances on one file each admit a full burst."""
    # One request a minute: nothing refills while the test runs, whatever the real clock does.
    limits = {"rate_limit_per_minute": 1, "rate_limit_burst": 8}
    async with _instance(committed_url, **limits) as (app, a), _instance(committed_url, **limits) as (_, b):
        user_id, headers = await _signed_in_user(committed_url, a)
        if app.state.rate_limiter._engine is not None:
            # A bucket lost in a crash only hands out a fresh burst: its upserts need not wait for the WAL flush.
            async with app.state.rate_limiter._engine.connect() as limiter:
                assert await limiter.scalar(sa.text("SHOW synchronous_commit")) == "off"
        flood = [(a if i % 2 else b).get(ME, headers=headers) for i in range(24)]
        answers = await asyncio.gather(*flood)
        statuses = sorted(r.status_code for r in answers)
        shared = "postgresql" in committed_url
        admitted = 8 if shared else 16
        assert statuses == [200] * admitted + [429] * (24 - admitted)
        assert all(r.headers["ratelimit-limit"] == "8" for r in answers)
        assert all(r.headers["retry-after"].isdigit() for r in answers if r.status_code == 429)
        # Whichever instance answers next refuses too.
        assert (await a.get(ME, headers=headers)).status_code == 429
        assert (await b.get(ME, headers=headers)).status_code == 429
    engine = make_engine(committed_url, null_pool=True)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(sa.text("SELECT key FROM rate_bucket"))).scalars().all()
    finally:
        await engine.dispose()
    assert rows == ([bucket_key("user", user_id)] if shared else [])
