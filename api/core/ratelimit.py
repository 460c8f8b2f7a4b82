"""Rate limits per API key and per user (DESIGN §6): a token bucket per caller, shared by every API process.

**Algorithm.** GCRA, the generic cell rate algorithm, which admits exactly what a token bucket admits but keeps one
number per caller instead of a token count and a refill time: the *theoretical arrival time* (`tat`) of the caller's
next request. With an emission interval `T = 60 / per_minute` seconds and a capacity of `burst` requests, a request
at `now` is admitted when `max(tat, now) + T - now <= burst * T`, and then `tat = max(tat, now) + T`. A caller idle
long enough holds a full bucket (`burst` requests at once); beyond it, one request every `T`. A refused request
changes nothing, so hammering a full bucket does not push the caller's recovery further away.

**Where.** `enforce` runs in `current_principal` (api/auth/deps.py) once the caller is known (the key's or the
user's id; a key and a user, or two keys, never share a bucket), before a write takes its organisation lock, so a
refused write has done nothing. Sign-in has its own throttle (failed attempts, api/auth). The values go on
`request.state`; `RateLimitHeaders` (ASGI middleware) adds the `RateLimit-*` fields to the response, errors
included. Idempotent replays answer from the stored response without running the route: they are not counted and
carry no `RateLimit-*` fields.

**Where the buckets live.**
- PostgreSQL (several API processes): the `rate_bucket` table, changed by ONE atomic statement per request
  (`INSERT ... ON CONFLICT (key) DO UPDATE SET tat = greatest(tat, now) + T WHERE <admitted> RETURNING tat`; the row
  lock orders concurrent requests of one caller, whichever process serves them). It runs on a small pool of its own
  in autocommit: it never holds the request transaction's locks, is not undone when the request fails (a 422 costs
  its token), and never waits for a second connection of the request pool while the request holds the first (15
  requests holding one connection and each waiting for another would exhaust the default pool). The table is
  UNLOGGED (the migration): no WAL, no fsync and nothing replicated per request; a crash empties it, which only
  gives every caller a full bucket (measured here, one connection, one run: 0.25 ms per request, as long as a
  `SELECT 1`; 0.42 ms on a logged table). One row per caller: bounded by the number of users and keys.
  Clocks: `now` comes from the API process; instances a few milliseconds apart (NTP) let a caller gain at most that
  skew times the rate.
- SQLite (one embedded process, DESIGN §1): a dict in the process. Writing the bucket to the database would turn
  every read into a write transaction, and SQLite has one writer: every GET would queue behind an import or a sync
  push holding the write lock (busy_timeout), for state that nobody else reads. With several `--workers` on SQLite
  (not supported) each worker would keep its own buckets.

**No library.** `limits` (5.8, behind slowapi) keeps its counters in memory, Redis, Memcached or MongoDB only, none
of which this deployment has. `pyrate-limiter` (4.5) has a PostgresBucket, but on synchronous psycopg (blocking
the event loop, beside asyncpg), as a row per request in a table per bucket that it creates at run time (outside
the migrations), counted then inserted under `LOCK TABLE ... NOWAIT`, which refuses a request that merely arrives
while another is being counted. GCRA is one statement on a table we already migrate.

**Headers** follow draft-ietf-httpapi-ratelimit-headers-06 (the last version with the four separate fields):
`RateLimit-Limit` is the bucket's capacity (`burst`), `RateLimit-Remaining` the requests that may be sent at once
now, `RateLimit-Reset` the seconds until the bucket is full again, `RateLimit-Policy` the sustained rate with the
burst (`600;w=60;burst=120`). A 429 carries `Retry-After` (whole seconds until one request is admitted) and, as the
draft asks, a `RateLimit-Reset` naming the same moment. docs/rate-limits.md tells integrators.
"""

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from fastapi import Request
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.core.db import Database, get_database, make_engine
from api.core.errors import TooManyRequests

if TYPE_CHECKING:
    from api.auth.principals import Principal
    from api.settings import Settings

STATE_KEY = "rate_limit"
# Float rounding (tat is seconds since the epoch, ~1e-7 s precise): never show one request fewer than there is.
_EPSILON = 1e-6
# The in-process store forgets full buckets (they read the same as absent) when it grows past this.
_MEMORY_PURGE_AT = 10_000


class RateBucket(SQLModel, table=True):
    """One caller's bucket, as GCRA keeps it: the theoretical arrival time of the next request (seconds since
    the epoch). One row per caller, updated in one atomic statement per request."""

    __tablename__ = "rate_bucket"

    key: str = Field(primary_key=True, max_length=100)
    tat: float


@dataclass(frozen=True, slots=True)
class Policy:
    per_minute: int
    burst: int

    @property
    def interval(self) -> float:
        """Seconds between two requests at the sustained rate (GCRA's emission interval T)."""
        return 60.0 / self.per_minute

    @property
    def tolerance(self) -> float:
        """How far ahead of `now` the theoretical arrival time may run: a full bucket's worth of requests."""
        return self.burst * self.interval

    @property
    def header(self) -> str:
        return f"{self.per_minute};w=60;burst={self.burst}"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    policy: Policy
    remaining: int
    # Seconds until the bucket is full again (admitted), or until one request is admitted (refused).
    reset: int

    @property
    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.policy.burst),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
            "RateLimit-Policy": self.policy.header,
        }


def decide(policy: Policy, now: float, tat: float, *, allowed: bool) -> Decision:
    """What the caller is told, from its bucket: `tat` after an admitted request, or as it stands on a refusal."""
    debt = max(tat - now, 0.0)
    if allowed:
        remaining = math.floor((policy.tolerance - debt + _EPSILON) / policy.interval)
        return Decision(True, policy, max(remaining, 0), math.ceil(debt - _EPSILON))
    wait = debt + policy.interval - policy.tolerance
    return Decision(False, policy, 0, max(1, math.ceil(wait - _EPSILON)))


class MemoryBuckets:
    """The buckets of one process (SQLite). Called from the event loop only, without awaiting: atomic as it is."""

    def __init__(self) -> None:
        self.tats: dict[str, float] = {}
        self.purge_at = _MEMORY_PURGE_AT

    def take(self, key: str, now: float, policy: Policy) -> tuple[bool, float]:
        current = self.tats.get(key, now)
        new = max(current, now) + policy.interval
        if new - now > policy.tolerance + _EPSILON:
            return False, current
        if len(self.tats) >= self.purge_at:
            self.tats = {k: t for k, t in self.tats.items() if t > now}
            # As many busy callers as that: purge again only once as many more have come (linear time overall).
            self.purge_at = max(_MEMORY_PURGE_AT, 2 * len(self.tats))
        self.tats[key] = new
        return True, new


def _statements() -> tuple[Any, Any]:
    """The GCRA step as one upsert (built once; executed with `key`, `now`, `step` and `tolerance`), and the read of
    a refused caller's bucket."""
    table = RateBucket.__table__  # type: ignore[attr-defined]
    now = sa.bindparam("now", type_=sa.Float)
    step = sa.bindparam("step", type_=sa.Float)
    new = sa.func.greatest(table.c.tat, now) + step
    take = (
        pg_insert(table)
        .values(key=sa.bindparam("key", type_=sa.String), tat=now + step)
        .on_conflict_do_update(
            index_elements=[table.c.key],
            set_={"tat": new},
            where=new - now <= sa.bindparam("tolerance", type_=sa.Float),
        )
        .returning(table.c.tat)
    )
    read = sa.select(table.c.tat).where(table.c.key == sa.bindparam("key", type_=sa.String))
    return take, read


_TAKE, _READ = _statements()


def _take_params(key: str, now: float, policy: Policy) -> dict[str, Any]:
    return {"key": key, "now": now, "step": policy.interval, "tolerance": policy.tolerance + _EPSILON}


class RateLimiter:
    """The limits of one app (`app.state.rate_limiter`). `clock` gives seconds since the epoch (tests move it)."""

    def __init__(self, settings: "Settings", *, clock: Callable[[], float] = time.time) -> None:
        self.users = Policy(settings.rate_limit_per_minute, settings.rate_limit_burst)
        self.keys = Policy(settings.rate_limit_key_per_minute, settings.rate_limit_key_burst)
        self.clock = clock
        self.memory = MemoryBuckets()
        self._engine: AsyncEngine | None = None

    async def open(self, db: Database) -> None:
        """At start-up (the app's lifespan): on PostgreSQL, the small autocommit pool the buckets are updated through.
        Without it (tests that do not run the lifespan) the request's database answers, in a short transaction of
        its own; a test database bound to one connection then undoes the bucket's change with the request's."""
        if db.dialect != "postgresql":
            return
        # Every request checks a connection out: no pre-ping (a round trip each time; the request pool has none
        # either), and enough kept open that bursts of concurrent requests do not open and close connections.
        self._engine = make_engine(
            db.engine.url.render_as_string(hide_password=False),
            pool_size=4,
            max_overflow=4,
            isolation_level="AUTOCOMMIT",
            # A bucket lost in a crash costs nothing (callers get a fresh burst); waiting for the WAL flush on every
            # request's upsert cost most of the limiter's time (bench/RESULTS.md, offline sync).
            connect_args={"server_settings": {"synchronous_commit": "off"}},
        )

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    def policy(self, principal: "Principal") -> Policy | None:
        policy = self.keys if principal.kind == "api_key" else self.users
        return policy if policy.per_minute > 0 else None

    async def take(self, db: Database, principal: "Principal") -> Decision | None:
        """Spend one request of the caller's bucket; None when its kind of caller is not limited."""
        policy = self.policy(principal)
        if policy is None or principal.id is None:
            return None
        key = bucket_key(principal.kind, principal.id)
        now = self.clock()
        if db.dialect == "sqlite":
            allowed, tat = self.memory.take(key, now, policy)
        else:
            allowed, tat = await self._take_in_database(db, key, now, policy)
        return decide(policy, now, tat, allowed=allowed)

    async def _take_in_database(self, db: Database, key: str, now: float, policy: Policy) -> tuple[bool, float]:
        params = _take_params(key, now, policy)
        if self._engine is not None:
            async with self._engine.connect() as connection:
                tat = (await connection.execute(_TAKE, params)).scalar()
                if tat is not None:
                    return True, tat
                current = (await connection.execute(_READ, {"key": key})).scalar()
        else:
            async with db.writer() as session:
                tat = (await session.execute(_TAKE, params)).scalar()
                current = None if tat is not None else (await session.execute(_READ, {"key": key})).scalar()
                await session.commit()
            if tat is not None:
                return True, tat
        # The row was there a moment ago (its conflict refused the request); `now` if it has gone meanwhile.
        return False, now if current is None else current


async def enforce(request: Request, principal: "Principal") -> None:
    """Spend one request of the caller's bucket; 429 when it is empty. The decision is kept for the headers."""
    limiter: RateLimiter = request.app.state.rate_limiter
    decision = await limiter.take(get_database(request), principal)
    if decision is None:
        return
    request.state.rate_limit = decision
    if not decision.allowed:
        raise TooManyRequests(
            f"Too many requests: this {'API key' if principal.kind == 'api_key' else 'user'} may send "
            f"{decision.policy.per_minute} a minute, {decision.policy.burst} at once. Retry in {decision.reset} s.",
            retry_after=decision.reset,
        )


class RateLimitHeaders:
    """Adds the `RateLimit-*` fields to every response of a request whose caller was counted (`enforce`), whatever
    its status. Runs outside the idempotency middleware, so a stored response never keeps them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The dict request.state writes into, made here so this middleware and the route share it.
        state: dict[str, Any] = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            decision: Decision | None = state.get(STATE_KEY)
            if message["type"] == "http.response.start" and decision is not None:
                extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in decision.headers.items()]
                # A new list: whoever sent the message (the idempotency middleware) may keep its own.
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def bucket_key(kind: str, principal_id: uuid.UUID) -> str:
    """The row of a caller's bucket (for tests and operators): `key:<api key id>` or `user:<user id>`."""
    return f"{'key' if kind == 'api_key' else 'user'}:{principal_id}"
