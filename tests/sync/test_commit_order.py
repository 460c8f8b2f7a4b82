"""Change numbers follow commit order, so a reader that continues from its cursor never skips a change.

Two write transactions of one organisation, each on its own connection and written through the service layer as
a write request does (the organisation lock first, `changes.serialise_writes`, then the write, whose change-log
entry takes the next number), are interleaved step by step. The second one waits for the first's lock; the test
proves it is waiting (PostgreSQL's `pg_blocking_pids`, not a sleep). Meanwhile an integration reads
`GET /changes` and an installed app pulls: neither sees anything uncommitted. After both commit, both readers,
continuing from their cursors, get both changes, numbered without a gap in the order they committed, also when
the transaction that commits second began (and read) first.

PostgreSQL only: SQLite has one writer at a time (BEGIN IMMEDIATE), so two write transactions never overlap there.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.auth.models import Organization, Role
from api.clients import service as clients
from api.clients.models import Company
from api.clients.schemas import CompanyCreate, CompanyRead, CompanyUpdate
from api.core.changes import serialise_writes
from api.core.db import Database
from api.sharing.visibility import Viewer
from tests.conftest import own_database, serving
from tests.factories import make_api_key, make_company, make_org, make_team, make_user, sign_in, viewer_of_user
from tests.sync.device import Device

pytestmark = pytest.mark.asyncio

CHANGES = "/api/v1/changes"
# How long a step that should happen at once may take before the test gives up (never slept: polled).
WAIT = 5.0
POLL = 0.02

T = TypeVar("T")


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    with own_database("postgres", tmp_path) as url:
        yield url


@dataclass
class Feed:
    """An integration reading `GET /changes` with an API key, page after page, from where it left off."""

    http: httpx.AsyncClient
    headers: dict[str, str]
    cursor: str | None = None
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def read(self) -> list[dict[str, Any]]:
        new: list[dict[str, Any]] = []
        while True:
            params: dict[str, Any] = {"limit": 50}
            if self.cursor is not None:
                params["cursor"] = self.cursor
            response = await self.http.get(CHANGES, params=params, headers=self.headers)
            assert response.status_code == 200, response.text
            page = response.json()
            new.extend(page["items"])
            self.cursor = page["next_cursor"]
            if not page["has_more"]:
                break
        self.seen.extend(new)
        return new


@dataclass
class World:
    db: Database
    http: httpx.AsyncClient
    org_id: uuid.UUID
    viewer: Viewer  # the rep, as the writes' service calls see them
    seeded: Company  # one of the rep's companies, for an update
    feed: Feed
    device: Device  # the rep's installed app


@pytest.fixture
async def world(pg_url: str) -> AsyncIterator[World]:
    async with serving(pg_url, pool_size=10, max_overflow=0) as (db, http):
        async with db.writer() as session:
            org = await make_org(session)
            team = await make_team(session, org)
            rep = await make_user(session, org, role=Role.rep, team=team)
            _, secret = await make_api_key(session, org, "changes:read")
            seeded = await make_company(session, rep, name="Seeded SA")
            viewer = await viewer_of_user(session, rep)
        feed = Feed(http, {"Authorization": f"Bearer {secret}"})
        device = Device(await sign_in(http, rep))
        # Both readers are up to date before the writes begin.
        await feed.read()
        await device.pull(http)
        assert device.get("company", seeded.id) is not None
        yield World(db, http, org.id, viewer, seeded, feed, device)


# Writes, as a write request makes them: the organisation lock first, then the service call (flush, no commit).


async def _create(session: AsyncSession, world: World, name: str) -> Company:
    await serialise_writes(session, world.org_id)
    company: Company = await clients.create_client(
        session=session,
        viewer=world.viewer,
        spec=clients.COMPANY,
        data=CompanyCreate(name=name),
        confirm_duplicate=True,
    )
    return company


async def _update(session: AsyncSession, world: World, company_id: uuid.UUID, **fields: Any) -> Company:
    await serialise_writes(session, world.org_id)
    company: Company = await clients.update_client(
        session=session,
        viewer=world.viewer,
        spec=clients.COMPANY,
        client_id=company_id,
        data=CompanyUpdate.model_validate(fields),
        expected_version=None,
        confirm_duplicate=True,
        present=CompanyRead.model_validate,
    )
    return company


async def _pid(session: AsyncSession) -> int:
    pid: int = (await session.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
    return pid


async def _waiting_for(db: Database, holders: set[int]) -> list[tuple[int, str]]:
    """(pid, statement) of the backends of this database that wait for a lock one of `holders` holds."""
    async with db.reader() as session:
        rows = await session.execute(
            sa.text(
                "SELECT pid, query FROM pg_stat_activity"
                " WHERE datname = current_database() AND pg_blocking_pids(pid) && CAST(:holders AS integer[])"
            ),
            {"holders": sorted(holders)},
        )
        return [(row.pid, row.query) for row in rows]


async def _blocked(db: Database, task: asyncio.Task[Any], pid: int, holder: int) -> None:
    """Return once the backend `pid` (the one `task` writes through) waits for a lock `holder` holds."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while pid not in dict(await _waiting_for(db, {holder})):
        assert not task.done(), "the second writer went ahead while the first one held the organisation lock"
        assert asyncio.get_running_loop().time() < deadline, "the second writer never waited for the first"
        await asyncio.wait({task}, timeout=POLL)
    assert not task.done()


async def _unblocked(db: Database, what: str, call: Awaitable[T], writers: set[int]) -> T:
    """`call`'s result, provided it never waits for a lock held by the open write transactions (`writers`, the
    pids of their backends): a read must not queue behind the organisation's writers. When it does, fails at once,
    naming the statement that waits."""
    task = asyncio.ensure_future(call)
    deadline = asyncio.get_running_loop().time() + WAIT
    try:
        while not task.done():
            waiting = [(pid, query) for pid, query in await _waiting_for(db, writers) if pid not in writers]
            if waiting:
                pytest.fail(
                    f"{what} waits for the lock of an uncommitted write of the organisation: {waiting[0][1]!r}",
                    pytrace=False,
                )
            assert asyncio.get_running_loop().time() < deadline, f"{what} did not answer"
            await asyncio.wait({task}, timeout=POLL)
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


@contextlib.asynccontextmanager
async def _transaction(db: Database) -> AsyncIterator[tuple[AsyncSession, int]]:
    """A write transaction on a connection of its own, and its backend's pid; rolled back unless committed."""
    async with db.writer() as session:
        yield session, await _pid(session)


async def _finish(task: asyncio.Task[Any]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(BaseException):
        await task


def _company_changes(items: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [(item["entity_id"], item["op"], item["version"]) for item in items if item["entity"] == "company"]


async def _check_log_has_no_gap(world: World) -> None:
    """Everything the feed read, from the beginning, in pieces: every number once, none missing, up to the
    organisation's counter."""
    seqs = [item["seq"] for item in world.feed.seen]
    assert seqs == list(range(1, len(seqs) + 1))
    async with world.db.reader() as session:
        counter = await session.scalar(select(Organization.change_seq).where(col(Organization.id) == world.org_id))
    assert counter == seqs[-1]


async def test_a_writer_waiting_for_the_lock_commits_after_and_is_numbered_after(world: World) -> None:
    db, http, feed, device = world.db, world.http, world.feed, world.device
    before = feed.cursor
    async with _transaction(db) as (a, a_pid), _transaction(db) as (b, b_pid):
        # A writes (its change takes the next number) and does not commit yet.
        first = await _create(a, world, "Alfa SL")
        # B starts to write: it waits for A's organisation lock.
        second_task = asyncio.create_task(_create(b, world, "Bravo SL"))
        try:
            await _blocked(db, second_task, b_pid, a_pid)

            # Readers meanwhile see nothing of either, and do not wait for them.
            assert await _unblocked(db, "GET /changes (A and B open)", feed.read(), {a_pid, b_pid}) == []
            assert feed.cursor == before
            page = await _unblocked(db, "GET /sync/pull (A and B open)", device.pull_page(http), {a_pid, b_pid})
            assert page["put"]["company"] == [] and not page["has_more"]

            await a.commit()
            second = await asyncio.wait_for(second_task, WAIT)  # B goes ahead once A has committed

            # A is visible, B (written, not committed) is not.
            assert _company_changes(
                await _unblocked(db, "GET /changes (A committed, B open)", feed.read(), {b_pid})
            ) == [(str(first.id), "create", 1)]
            page = await _unblocked(db, "GET /sync/pull (A committed, B open)", device.pull_page(http), {b_pid})
            assert [c["id"] for c in page["put"]["company"]] == [str(first.id)]

            await b.commit()
        finally:
            await _finish(second_task)

    # Continuing from their cursors, both readers get B too; the log has every number, in commit order.
    assert _company_changes(await feed.read()) == [(str(second.id), "create", 1)]
    await _check_log_has_no_gap(world)
    ordered = [item["entity_id"] for item in world.feed.seen if item["entity"] == "company"]
    assert ordered[-2:] == [str(first.id), str(second.id)]
    await device.pull(http)
    stored = device.store["company"]
    assert (stored[str(first.id)]["name"], stored[str(second.id)]["name"]) == ("Alfa SL", "Bravo SL")


async def test_a_writer_that_began_first_but_commits_second_is_numbered_second(world: World) -> None:
    db, http, feed, device = world.db, world.http, world.feed, world.device
    async with _transaction(db) as (b, b_pid):
        # B begins first, and reads (no lock yet: a read takes none).
        read = await b.scalar(select(Company.version).where(col(Company.id) == world.seeded.id))
        assert read == 1
        async with _transaction(db) as (a, a_pid):
            # A begins after B, writes, and holds the organisation lock.
            first = await _create(a, world, "Alfa SL")
            # B now writes: it waits for A.
            update_task = asyncio.create_task(_update(b, world, world.seeded.id, industry="Logistics"))
            try:
                await _blocked(db, update_task, b_pid, a_pid)
                assert await _unblocked(db, "GET /changes (A and B open)", feed.read(), {a_pid, b_pid}) == []
                page = await _unblocked(db, "GET /sync/pull (A and B open)", device.pull_page(http), {a_pid, b_pid})
                assert page["put"]["company"] == []

                await a.commit()
                updated = await asyncio.wait_for(update_task, WAIT)
            finally:
                await _finish(update_task)
        assert updated.version == 2
        # A is visible, B (written, not committed) is not.
        assert _company_changes(await _unblocked(db, "GET /changes (A committed, B open)", feed.read(), {b_pid})) == [
            (str(first.id), "create", 1)
        ]
        page = await _unblocked(db, "GET /sync/pull (A committed, B open)", device.pull_page(http), {b_pid})
        assert [c["id"] for c in page["put"]["company"]] == [str(first.id)]
        await b.commit()

    # B began first and committed second: its change is numbered after A's, and nobody reading skipped either.
    assert _company_changes(await feed.read()) == [(str(world.seeded.id), "update", 2)]
    await _check_log_has_no_gap(world)
    company_seqs = {item["entity_id"]: item["seq"] for item in feed.seen if item["entity"] == "company"}
    assert company_seqs[str(world.seeded.id)] == company_seqs[str(first.id)] + 1
    await device.pull(http)
    stored = device.store["company"]
    assert stored[str(first.id)]["name"] == "Alfa SL"
    assert (stored[str(world.seeded.id)]["version"], stored[str(world.seeded.id)]["industry"]) == (2, "Logistics")
