"""`fieldbook worker` killed (SIGKILL) while messages are on the wire: another worker delivers every event, signed,
with the same `webhook-id` as the lost attempt (at least once; docs/webhooks.md)."""

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col
from standardwebhooks import Webhook

from api.core.db import Database, make_engine
from api.webhooks import worker
from api.webhooks.models import EventStatus, WebhookEvent
from api.webhooks.worker import BATCH
from tests.conftest import own_database
from tests.faults.processes import FIELDBOOK, process
from tests.webhooks.conftest import settings_with
from tests.webhooks.receiver import Receiver, serve
from tests.webhooks.test_workers import running, subscribe_and_change

EVENTS = 40
# Long enough that the kill lands while a round's messages wait for their answers.
ANSWER_AFTER = 0.4
WORKER = {
    "FIELDBOOK_WEBHOOK_ALLOW_LOOPBACK": "true",
    "FIELDBOOK_WEBHOOK_TIMEOUT_SECONDS": "1",
    # What a killed worker's claims keep the messages from others: the shortest the settings allow.
    "FIELDBOOK_WEBHOOK_LEASE_SECONDS": "2",
    "FIELDBOOK_WEBHOOK_POLL_SECONDS": "0.1",
}


async def _write_events(url: str, receiver_url: str) -> str:
    """A subscription to companies and EVENTS company creations; the subscription's signing secret."""
    async with running(url, worker=False) as (client, tenant):
        secret = await subscribe_and_change(client, tenant, receiver_url)
        for number in range(EVENTS - 1):
            made = await client.post("/api/v1/companies", json={"name": f"Kill {number}"}, headers=tenant.headers)
            assert made.status_code == 201, made.text
    return secret


async def _statuses(engine: AsyncEngine) -> Counter[str]:
    async with engine.connect() as conn:
        return Counter(await conn.scalars(sa.select(col(WebhookEvent.status))))


async def _deliver_the_rest(url: str, receiver: Receiver) -> float:
    """Another worker (the loop `fieldbook worker` runs, in this process) until every event is settled as delivered
    (the attempts the kill cut short sent again once their claims expired): how long that took."""
    started = time.monotonic()
    engine = make_engine(url)
    stop, wake = asyncio.Event(), asyncio.Event()
    settings = settings_with(database_url=url, webhook_poll_seconds=0.1)
    delivering = asyncio.create_task(worker.run(Database(engine), settings, stop=stop, wake=wake))
    try:
        async with asyncio.timeout(30):
            while await _statuses(engine) != {EventStatus.delivered.value: EVENTS}:
                await asyncio.sleep(0.05)
            delivered = time.monotonic() - started
    finally:
        stop.set()
        wake.set()
        await delivering
        await engine.dispose()
    return delivered


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_a_killed_worker_loses_no_event(dialect: str, tmp_path: Path) -> None:
    with (
        own_database(dialect, tmp_path) as url,
        serve(Receiver(then=("sleep", ANSWER_AFTER))) as receiver,
    ):
        secret = asyncio.run(_write_events(url, receiver.url))
        with process([FIELDBOOK, "worker"], tmp_path / "worker.log", FIELDBOOK_DATABASE_URL=url, **WORKER) as first:
            # Past its first round: the second round's messages are on the wire, unanswered.
            deadline = time.monotonic() + 30
            while len(receiver.received) <= BATCH:
                assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
                time.sleep(0.02)
            first.send_signal(signal.SIGKILL)
            assert first.wait(5) == -signal.SIGKILL
        delivered_after = asyncio.run(_deliver_the_rest(url, receiver))

    requests = receiver.received
    types = Counter(Webhook(secret).verify(r.body, r.headers)["type"] for r in requests)
    sent = Counter(r.headers["webhook-id"] for r in requests)
    print(
        f"\nwebhook worker SIGKILLed mid-round ({dialect}): {EVENTS} events written, {len(sent)} delivered "
        f"({len(requests)} requests, {len(requests) - len(sent)} duplicates), all settled as delivered "
        f"{delivered_after:.1f} s after the kill"
    )
    assert types == {"company.created": len(requests)}
    assert len(sent) == EVENTS
    assert len(requests) > EVENTS, "the kill lost no attempt in flight: nothing was tested"
