"""The hand-written baseline of the HTTP benchmarks: a bare ASGI app on an asyncpg pool that answers each GET by
running the SQL the app sent for that same request, and nothing else.

    BENCH_RAW_CAPTURE=capture.pickle BENCH_RAW_DSN=postgresql://… uvicorn bench.raw:app   # as bench.servers runs it

The benchmark captures, in its own process, every statement the app sends for each request it will send (statement
text and parameters as SQLAlchemy hands them to asyncpg; see `bench.read_paths`) and writes them to the file named by
BENCH_RAW_CAPTURE, keyed by (method, path with query string, Authorization header), before this server starts.

Per request, this app: looks the key up (unknown: 404); takes a connection from its pool; runs the statements that
the app ran on its rate limiter's autocommit connection first, outside any transaction, with `now` taken afresh (a
bucket update in the past would be refused and skip its write); then the others in their order, in one transaction
(`conn.fetch` with the same text and parameters; asyncpg's statement cache prepares each text once per connection,
whatever its size, as the app's driver does); and answers 200 with every fetched row as a JSON object, all
statements' rows in one array, encoded by the standard library's `json.dumps` (UUIDs, decimals as strings, times in
ISO 8601). No FastAPI, Starlette, ORM or pydantic; no
authentication beyond the key (the app checks the session in SQL, and that statement is replayed), no validation.

What it does not do that the app does: building and compiling SQL, result processing, response models, and
whatever the app's engines send besides statements (SQLAlchemy's `pool_pre_ping`, where an engine sets it, checks
each connection out with a round trip: BEGIN, `;`, ROLLBACK). Its connections get `jit = off`, as
`api.core.db.make_engine` gives the app's; its pool holds BENCH_RAW_POOL_MIN to BENCH_RAW_POOL_MAX connections (5 to
15 by default: the app's SQLAlchemy pool, 5 plus an overflow of 10; the app's rate limiter has a small pool of its own
besides).
"""

import json
import os
import pickle
import time
import uuid
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg

CAPTURE_ENV, DSN_ENV = "BENCH_RAW_CAPTURE", "BENCH_RAW_DSN"
POOL_MIN_ENV, POOL_MAX_ENV = "BENCH_RAW_POOL_MIN", "BENCH_RAW_POOL_MAX"
# SQLAlchemy's default QueuePool, which the app's engine uses: 5 connections kept, 10 more under load.
POOL_MIN, POOL_MAX = 5, 15
# Each connection prepares every statement once and keeps it, as SQLAlchemy's asyncpg dialect does (its own cache of
# prepared statements has no size limit; asyncpg's would not keep a statement over 15 KiB, such as the card's), with
# the app's JIT setting.
CONNECTION: dict[str, Any] = {"max_cacheable_statement_size": 0, "server_settings": {"jit": "off"}}


class Statement(NamedTuple):
    """One statement the app sent: its text and positional parameters as asyncpg received them."""

    sql: str
    parameters: tuple[Any, ...]
    # Sent on the app's rate limiter connection (autocommit), outside the request's transaction.
    autocommit: bool = False
    # Positions of parameters that hold the wall-clock time (seconds since the epoch) the app took for the request.
    now_at: tuple[int, ...] = ()


Key = tuple[str, str, str]  # method, path with query string, Authorization header
Capture = dict[Key, list[Statement]]


def key(method: str, target: str, authorization: str) -> Key:
    return method.upper(), target, authorization


def write_capture(path: Path, capture: Capture) -> None:
    """The file the server reads at start-up (pickle: written and read by the benchmark's own processes)."""
    path.write_bytes(pickle.dumps(capture, protocol=pickle.HIGHEST_PROTOCOL))


def read_capture(path: Path) -> Capture:
    capture: Capture = pickle.loads(path.read_bytes())
    return capture


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date | dtime):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode(results: list[list[asyncpg.Record]]) -> bytes:
    return json.dumps([dict(row) for rows in results for row in rows], default=_default).encode()


def parameters(statement: Statement, now: float) -> tuple[Any, ...]:
    if not statement.now_at:
        return statement.parameters
    values = list(statement.parameters)
    for i in statement.now_at:
        values[i] = now
    return tuple(values)


async def run(conn: asyncpg.Connection, statements: list[Statement]) -> list[list[asyncpg.Record]]:
    """The statements of one request on one connection: the autocommit ones first, then the rest in a transaction."""
    now = time.time()
    results = [await conn.fetch(s.sql, *parameters(s, now)) for s in statements if s.autocommit]
    async with conn.transaction():
        results += [await conn.fetch(s.sql, *parameters(s, now)) for s in statements if not s.autocommit]
    return results


class Raw:
    """The ASGI app: `lifespan` opens the pool and reads the capture, `http` answers from them."""

    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None
        self.capture: Capture = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http":
            await self.http(scope, send)

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.capture = read_capture(Path(os.environ[CAPTURE_ENV]))
                    self.pool = await asyncpg.create_pool(
                        os.environ[DSN_ENV],
                        min_size=int(os.environ.get(POOL_MIN_ENV, POOL_MIN)),
                        max_size=int(os.environ.get(POOL_MAX_ENV, POOL_MAX)),
                        **CONNECTION,
                    )
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.pool is not None:
                    await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def http(self, scope: dict[str, Any], send: Any) -> None:
        if scope["path"] == "/healthz":
            await _answer(send, 200, b"{}")
            return
        query = scope.get("query_string", b"").decode("latin-1")
        target = scope["path"] + (f"?{query}" if query else "")
        authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), "")
        statements = self.capture.get(key(scope["method"], target, authorization))
        if statements is None or self.pool is None:
            await _answer(send, 404, b'{"detail": "not captured"}')
            return
        try:
            async with self.pool.acquire() as conn:
                results = await run(conn, statements)
        except (asyncpg.PostgresError, OSError) as exc:
            await _answer(send, 500, json.dumps({"detail": f"{type(exc).__name__}: {exc}"}).encode())
            return
        await _answer(send, 200, encode(results))


async def _answer(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


app = Raw()
