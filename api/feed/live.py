"""Live feed fan-out: the ids of feed events committed by any process reach the open streams of this process.

PostgreSQL: the writing transaction sends `pg_notify` (delivered only if and when it commits), and one LISTEN
connection per process hands the ids to local subscribers, so every API process hears every other's writes.
SQLite (one process): the session hands the ids to the local subscribers right after its commit.
Subscribers then read the events back through the feed query, which applies their own visibility.
"""

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

CHANNEL = "fieldbook_feed"
# NOTIFY payloads are capped at 8000 bytes: send ids in batches that fit.
IDS_PER_NOTIFY = 150
QUEUE_SIZE = 1000

log = logging.getLogger(__name__)


class Broker:
    """One per app: local subscribers by organisation, and (PostgreSQL) the LISTEN connection feeding them."""

    def __init__(self) -> None:
        self._subscribers: dict[uuid.UUID, set[asyncio.Queue[list[uuid.UUID]]]] = defaultdict(set)
        self._listener: AsyncConnection | None = None
        self._lock = asyncio.Lock()

    def publish(self, org_id: uuid.UUID, ids: list[uuid.UUID]) -> None:
        for queue in list(self._subscribers.get(org_id, ())):
            with contextlib.suppress(asyncio.QueueFull):
                # A subscriber this far behind has gone away in all but name; it misses events, never blocks others.
                queue.put_nowait(ids)

    @contextlib.asynccontextmanager
    async def subscribe(self, engine: AsyncEngine, org_id: uuid.UUID) -> AsyncIterator[asyncio.Queue[list[uuid.UUID]]]:
        if engine.dialect.name == "postgresql":
            await self._listen(engine)
        queue: asyncio.Queue[list[uuid.UUID]] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers[org_id].add(queue)
        try:
            yield queue
        finally:
            self._subscribers[org_id].discard(queue)
            if not self._subscribers[org_id]:
                del self._subscribers[org_id]

    async def _listen(self, engine: AsyncEngine) -> None:
        async with self._lock:
            if self._listener is not None and not self._listener.closed:
                return
            connection = await engine.connect()
            raw = await connection.get_raw_connection()
            await raw.driver_connection.add_listener(CHANNEL, self._on_notify)  # type: ignore[union-attr]
            self._listener = connection

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            org, _, ids = payload.partition(":")
            self.publish(uuid.UUID(org), [uuid.UUID(i) for i in ids.split(",") if i])
        except ValueError:
            log.warning("ignoring a malformed feed notification: %r", payload[:100])

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None


async def notify(session: AsyncSession, pending: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
    """PostgreSQL, before commit: queue the notifications that the commit will deliver."""
    by_org: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for org_id, event_id in pending:
        by_org[org_id].append(event_id)
    for org_id, ids in by_org.items():
        for start in range(0, len(ids), IDS_PER_NOTIFY):
            payload = f"{org_id}:{','.join(str(i) for i in ids[start : start + IDS_PER_NOTIFY])}"
            await session.execute(sa.select(sa.func.pg_notify(CHANNEL, payload)))


def deliver(broker: Broker, pending: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
    """SQLite, after commit: hand the ids to this process's subscribers."""
    by_org: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for org_id, event_id in pending:
        by_org[org_id].append(event_id)
    for org_id, ids in by_org.items():
        broker.publish(org_id, ids)
