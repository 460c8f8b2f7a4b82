"""Live fan-out: what a committed transaction announces reaches the open streams of every API process.

Two channels use it: the live feed (the ids of new feed events) and sync pokes (an organisation's data changed:
open apps pull). PostgreSQL: the writing transaction sends `pg_notify` (delivered only if and when it commits),
and one LISTEN connection per process and channel hands the news to local subscribers, so every API process
hears every other's writes. SQLite (one process): the session hands it to local subscribers right after commit.
Subscribers then read what they may see through their own queries; an announcement carries no data.
"""

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from fastapi import Request
from fastapi.sse import ServerSentEvent
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from api.core.db import after_commit, before_commit, get_database

# NOTIFY payloads are capped at 8000 bytes: send ids in batches that fit.
IDS_PER_NOTIFY = 150
QUEUE_SIZE = 1000
# A comment this often keeps proxies from closing an idle stream; a client reconnects after RETRY_MS.
KEEPALIVE_SECONDS = 15
RETRY_MS = 5000

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    # The app.state attribute holding this channel's Broker.
    broker: str
    # Whether the ids only narrow down whom the news concerns (sync pokes): past one notification's worth, the news
    # goes out bare (it concerns everyone) rather than in many notifications.
    hints: bool = False


FEED = Channel("fieldbook_feed", "broker")
SYNC = Channel("fieldbook_sync", "pokes", hints=True)


class Broker:
    """One per app and channel: local subscribers by organisation, and (PostgreSQL) the LISTEN connection."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._subscribers: dict[uuid.UUID, set[asyncio.Queue[list[uuid.UUID]]]] = defaultdict(set)
        self._listener: AsyncConnection | None = None
        self._lock = asyncio.Lock()

    def publish(self, org_id: uuid.UUID, ids: list[uuid.UUID]) -> None:
        for queue in list(self._subscribers.get(org_id, ())):
            with contextlib.suppress(asyncio.QueueFull):
                # A subscriber this far behind has gone away in all but name; it misses news, never blocks others.
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
            await raw.driver_connection.add_listener(self.channel.name, self._on_notify)  # type: ignore[union-attr]
            self._listener = connection

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            org, _, ids = payload.partition(":")
            self.publish(uuid.UUID(org), [uuid.UUID(i) for i in ids.split(",") if i])
        except ValueError:
            log.warning("ignoring a malformed %s notification: %r", self.channel.name, payload[:100])

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None


Pending = list[tuple[uuid.UUID, uuid.UUID | None]]


def _by_org(channel: Channel, pending: Pending) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The ids announced per organisation; none (bare news: something changed) where one announcement was bare."""
    by_org: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    bare = set()
    for org_id, item_id in pending:
        ids = by_org[org_id]
        if item_id is None:
            bare.add(org_id)
        else:
            ids.append(item_id)
    if channel.hints:
        bare.update(org_id for org_id, ids in by_org.items() if len(ids) > IDS_PER_NOTIFY)
    return {org_id: [] if org_id in bare else ids for org_id, ids in by_org.items()}


async def _notify(session: AsyncSession, channel: Channel, pending: Pending) -> None:
    """PostgreSQL, before commit: queue the notifications that the commit will deliver."""
    for org_id, ids in _by_org(channel, pending).items():
        batches: Sequence[list[uuid.UUID]] = [ids[i : i + IDS_PER_NOTIFY] for i in range(0, len(ids), IDS_PER_NOTIFY)]
        for batch in batches or [[]]:
            payload = f"{org_id}:{','.join(str(i) for i in batch)}"
            await session.execute(sa.select(sa.func.pg_notify(channel.name, payload)))


def _deliver(broker: Broker, pending: Pending) -> None:
    """SQLite, after commit: hand the news to this process's subscribers."""
    for org_id, ids in _by_org(broker.channel, pending).items():
        broker.publish(org_id, ids)


def announce(session: AsyncSession, channel: Channel, org_id: uuid.UUID, item_id: uuid.UUID | None = None) -> None:
    """Tell `channel`'s subscribers in the organisation, once this transaction commits (never if it rolls back),
    about `item_id` (or, without one, that something changed: one announcement per transaction)."""
    key = f"fieldbook_pending_{channel.name}"
    if key not in session.info:
        session.info[key] = []

        def forget() -> Pending:
            return session.info.pop(key, [])  # type: ignore[no-any-return]

        if session.get_bind().dialect.name == "postgresql":
            before_commit(session, lambda s: _notify(s, channel, forget()))
        else:
            after_commit(session, lambda app: _deliver(getattr(app.state, channel.broker), forget()))
    pending: Pending = session.info[key]
    if item_id is not None or (org_id, None) not in pending:
        pending.append((org_id, item_id))


async def news(
    request: Request, channel: Channel, org_id: uuid.UUID, *, every: float = 0.0
) -> AsyncIterator[ServerSentEvent | list[uuid.UUID]]:
    """A server-sent event stream's source: "connected" once subscribed, a keep-alive comment when idle, and the
    ids each committed announcement carried (empty for a bare "something changed"). With `every`, what arrives
    less than `every` seconds after the last news yielded waits for that time and goes out with whatever else came
    meanwhile, as one (bare if any of it was)."""
    broker: Broker = getattr(request.app.state, channel.broker)
    loop = asyncio.get_running_loop()
    last = -every
    async with broker.subscribe(get_database(request).engine, org_id) as queue:
        # Said once subscribed: the client knows nothing committed from now on is missed (and proxies flush).
        yield ServerSentEvent(comment="connected", retry=RETRY_MS)
        while True:
            try:
                ids = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ServerSentEvent(comment="keep-alive")
                continue
            if every:
                await asyncio.sleep(last + every - loop.time())
                while not queue.empty():
                    more = queue.get_nowait()
                    ids = ids + more if ids and more else []
                last = loop.time()
            yield ids
