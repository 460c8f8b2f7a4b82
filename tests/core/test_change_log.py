"""The change log's counter: numbers follow commit order, so a reader at cursor N never misses a later commit.

These tests commit for real (several connections at once), so they use their own organisation instead of the
rolled-back `session` fixture.
"""

import asyncio
import random

import httpx
import pytest
from sqlmodel import col, select

from api.auth.models import Organization, Role
from api.auth.principals import Principal
from api.core.changes import Change, record_change
from api.core.db import Database, make_engine
from api.core.ids import new_id
from api.core.migrate import upgrade
from api.main import create_app
from tests.factories import PASSWORD, make_user

WRITERS = 40


async def _new_org(db: Database) -> Organization:
    async with db.writer() as s:
        org = Organization(name=f"concurrency-{new_id().hex[:8]}")
        s.add(org)
        await s.commit()
        return org


async def _seqs(db: Database, org: Organization) -> list[int]:
    async with db.reader() as s:
        return list(
            (await s.scalars(select(Change.seq).where(col(Change.org_id) == org.id).order_by(Change.seq))).all()
        )


async def _log_one(db: Database, org: Organization, *, hold: float = 0.0) -> int:
    async with db.writer() as s:
        change = await record_change(
            s, principal=Principal.system(org.id), entity="team", entity_id=new_id(), op="create", version=1, fields={}
        )
        await asyncio.sleep(hold)
        await s.commit()
        return change.seq


@pytest.fixture
async def pg(postgres_url: str):
    engine = make_engine(postgres_url, pool_size=WRITERS + 2, max_overflow=0)
    yield Database(engine)
    await engine.dispose()


async def test_a_second_writer_waits_for_the_first_to_commit(pg: Database):
    org = await _new_org(pg)
    async with pg.writer() as first:
        seq_first = (
            await record_change(
                first,
                principal=Principal.system(org.id),
                entity="team",
                entity_id=new_id(),
                op="create",
                version=1,
                fields={},
            )
        ).seq
        second = asyncio.create_task(_log_one(pg, org))
        await asyncio.sleep(0.3)
        assert not second.done(), "the second writer took a number while the first was uncommitted"
        await first.commit()
    assert await second == seq_first + 1
    assert await _seqs(pg, org) == [seq_first, seq_first + 1]


async def test_concurrent_writers_never_leave_a_gap_that_a_reader_could_skip(pg: Database):
    org = await _new_org(pg)
    random.seed(7)
    writers = [asyncio.create_task(_log_one(pg, org, hold=random.uniform(0, 0.02))) for _ in range(WRITERS)]
    snapshots = []
    while not all(w.done() for w in writers):
        snapshots.append(await _seqs(pg, org))
        await asyncio.sleep(0.005)
    await asyncio.gather(*writers)
    snapshots.append(await _seqs(pg, org))
    assert len(snapshots) > 3
    for seen in snapshots:
        # What a reader sees is always 1..k: a committed number above an uncommitted one would be a gap.
        assert seen == list(range(1, len(seen) + 1))
    assert snapshots[-1] == list(range(1, WRITERS + 1))


async def test_sqlite_serialises_concurrent_writers_without_database_is_locked(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'concurrent.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(url)
    db = Database(engine)
    try:
        org = await _new_org(db)
        async with db.writer() as s:
            admin = await make_user(s, org, role=Role.admin)
        app = create_app(database=db)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            login = await client.post("/api/v1/auth/login", json={"email": admin.email, "password": PASSWORD})
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            responses = await asyncio.gather(
                *(client.post("/api/v1/teams", json={"name": f"Team {i}"}, headers=headers) for i in range(WRITERS)),
                *(client.get("/api/v1/teams", headers=headers) for _ in range(WRITERS // 2)),
            )
        assert [r.status_code for r in responses] == [201] * WRITERS + [200] * (WRITERS // 2)
        seqs = await _seqs(db, org)
        assert seqs == list(range(1, len(seqs) + 1))
        assert len(seqs) == WRITERS + 1  # the admin's creation and one per team
    finally:
        await engine.dispose()
