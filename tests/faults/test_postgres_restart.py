"""PostgreSQL crashes (`pg_ctl restart -m immediate`) while phones push their outboxes (DESIGN §7): what the server
acknowledged is there exactly once, what a phone never heard back about and sent again with the same mutation ids is
there exactly once, the API answers 503 (not 500) meanwhile, and it is ready again within 10 s."""

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import col

from api.activities.models import Activity
from api.auth.models import Role
from api.clients.models import Company
from api.core.changes import Change
from api.core.db import UNREACHABLE, Database, make_engine
from api.core.ids import new_id
from api.core.migrate import upgrade
from api.main import create_app
from api.settings import Settings
from api.sync.models import SyncClient
from tests.conftest import uvicorn_serving
from tests.factories import make_org, make_user, sign_in
from tests.faults.cluster import Cluster, private_cluster
from tests.sync.device import PUSH

DEVICES = 4
HEALTHY_WITHIN = 10.0
# A phone waits for Retry-After; these retry sooner, to keep requests arriving all through the outage.
RETRY_PAUSE = 0.1
# Once ready, the first request through each pooled connection the crash left behind fails (and replaces the pool's
# older connections); after this long, none may.
STALE_FOR = 1.0


@dataclass(frozen=True)
class Outage:
    back_in: float  # pg_ctl restart -m immediate: killed, recovered, accepting connections
    ready_in: float  # from the restart to the API's /readyz answering 200
    ready_at: float


@dataclass
class Phone:
    """An installed app pushing batches of new records (a company and a note on it) with ids it made itself. A
    batch whose outcome it does not know (no answer, a 5xx) is sent again, unchanged, until it is answered."""

    headers: dict[str, str]
    client_id: uuid.UUID = field(default_factory=uuid.uuid4)
    next_mutation: int = 1
    acknowledged: dict[str, str] = field(default_factory=dict)  # record id -> entity
    retried: set[str] = field(default_factory=set)
    failures: list[tuple[float, str]] = field(default_factory=list)  # (when, what)
    refusals: list[httpx.Response] = field(default_factory=list)

    def batch(self) -> list[dict[str, Any]]:
        company, note = str(new_id()), str(new_id())
        first = self.next_mutation
        self.next_mutation += 2
        return [
            {"id": first, "name": "company.create", "args": {"id": company, "name": f"Crash SA {company}"}},
            {"id": first + 1, "name": "activity.log", "args": {"id": note, "kind": "note", "company_id": company}},
        ]

    async def run(self, http: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.push(http, self.batch())

    async def push(self, http: httpx.AsyncClient, batch: list[dict[str, Any]]) -> None:
        sent_before = False
        while True:
            try:
                response = await http.post(
                    PUSH, json={"client_id": str(self.client_id), "mutations": batch}, headers=self.headers
                )
            except httpx.TransportError as exc:
                self.failures.append((time.monotonic(), type(exc).__name__))
            else:
                if response.status_code == 200:
                    break
                assert response.status_code >= 500, response.text
                self.failures.append((time.monotonic(), str(response.status_code)))
                self.refusals.append(response)
            sent_before = True
            await asyncio.sleep(RETRY_PAUSE)
        results = response.json()["results"]
        assert [r["status"] for r in results] == ["applied"] * len(batch) or sent_before, results
        assert {r["status"] for r in results} <= {"applied", "duplicate"}, results
        for mutation in batch:
            record_id = mutation["args"]["id"]
            self.acknowledged[record_id] = "company" if mutation["name"] == "company.create" else "activity"
            if sent_before:
                self.retried.add(record_id)


async def _phones(url: str, base: str) -> list[Phone]:
    db = Database(make_engine(url, null_pool=True))
    try:
        async with db.writer() as session:
            org = await make_org(session, "Crash test")
            users = [await make_user(session, org, role=Role.rep) for _ in range(DEVICES)]
    finally:
        await db.engine.dispose()
    async with httpx.AsyncClient(base_url=base) as http:
        return [Phone(await sign_in(http, user)) for user in users]


async def _ready(base: str, started: float) -> float:
    """When /readyz answers 200."""
    async with httpx.AsyncClient(base_url=base, timeout=2) as http:
        while True:
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return time.monotonic()
            except httpx.TransportError:
                pass
            assert time.monotonic() - started < HEALTHY_WITHIN, "not ready within 10 s of the restart"
            await asyncio.sleep(0.05)


async def _crash_while_pushing(cluster: Cluster, base: str, phones: list[Phone]) -> Outage:
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        pushing = [asyncio.create_task(phone.run(http, stop)) for phone in phones]
        try:
            while min(len(p.acknowledged) for p in phones) < 6:
                await asyncio.sleep(0.05)
            started = time.monotonic()
            await asyncio.to_thread(cluster.restart_immediately)
            back = time.monotonic()
            ready = await _ready(base, started)
            await asyncio.sleep(2 * STALE_FOR)
        finally:
            stop.set()
            # Each phone ends with its last batch answered (the database is back: bounded by the test's timeout).
            await asyncio.gather(*pushing)
    return Outage(back - started, ready - started, ready)


async def _stored(url: str) -> tuple[dict[str, str], Counter[uuid.UUID], dict[uuid.UUID, int]]:
    """Every company and activity in the (private) database, the change log's creations of them by record, and each
    app's last mutation taken."""
    engine = make_engine(url, null_pool=True)
    try:
        async with engine.connect() as conn:
            records = {
                str(record_id): entity
                for entity, model in (("company", Company), ("activity", Activity))
                for record_id in await conn.scalars(sa.select(col(model.id)))
            }
            creations = Counter(
                await conn.scalars(
                    sa.select(col(Change.entity_id)).where(
                        col(Change.op) == "create", col(Change.entity).in_(["company", "activity"])
                    )
                )
            )
            apps = await conn.execute(sa.select(col(SyncClient.client_id), col(SyncClient.last_mutation_id)))
            taken = {row.client_id: row.last_mutation_id for row in apps}
    finally:
        await engine.dispose()
    return records, creations, taken


async def _scenario(cluster: Cluster, base: str) -> tuple[list[Phone], Outage]:
    async with asyncio.timeout(60):
        phones = await _phones(cluster.url, base)
        return phones, await _crash_while_pushing(cluster, base, phones)


def test_a_crash_loses_no_acknowledged_mutation_and_applies_retried_ones_once() -> None:
    with private_cluster() as cluster:
        upgrade(cluster.url)
        with uvicorn_serving(create_app(Settings(database_url=cluster.url))) as base:
            phones, outage = asyncio.run(_scenario(cluster, base))
        records, creations, taken = asyncio.run(_stored(cluster.url))

    acknowledged = {k: v for phone in phones for k, v in phone.acknowledged.items()}
    retried = set().union(*(phone.retried for phone in phones))
    failures = [f for phone in phones for f in phone.failures]
    print(
        f"\nPostgreSQL restarted (-m immediate) under {DEVICES} pushing phones: "
        f"{len(acknowledged)} mutations acknowledged ({len(retried)} after an unknown outcome, retried with their "
        f"ids), {len(records)} records found; failed pushes {dict(Counter(what for _, what in failures))}; "
        f"PostgreSQL back {outage.back_in:.2f} s and the API ready {outage.ready_in:.2f} s after the restart"
    )
    assert retried, "the crash met no push: nothing was tested"
    assert records == acknowledged, "a record is missing or one no phone was told of exists"
    assert set(creations) == {uuid.UUID(i) for i in records} and set(creations.values()) == {1}
    assert taken == {p.client_id: p.next_mutation - 1 for p in phones}
    refusals = [r for phone in phones for r in phone.refusals]
    assert refusals, "no request met the outage"
    for refusal in refusals:
        assert refusal.status_code == 503, refusal.text
        assert refusal.headers["content-type"] == "application/problem+json"
        assert int(refusal.headers["retry-after"]) > 0
        assert refusal.json()["detail"] == UNREACHABLE
    assert outage.ready_in < HEALTHY_WITHIN
    assert not [f for f in failures if f[0] > outage.ready_at + STALE_FOR], "stale connections handed out"
