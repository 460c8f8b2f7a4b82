"""A pull holds one connection at a time: it gives its read connection back before it stores its view, so pulls in
flight never wait on each other for a second one (15 at once had exhausted the default pool)."""

from collections.abc import AsyncIterator

import httpx
import pytest

from api.auth.models import Role
from api.core.db import Database
from tests.conftest import serving
from tests.factories import make_company, make_org, make_team, make_user, sign_in
from tests.sync.device import Device

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def one_connection(committed_url: str) -> AsyncIterator[tuple[Database, httpx.AsyncClient]]:
    # A pool of exactly one: a request that wanted a second connection would wait out the timeout and fail.
    async with serving(committed_url, pool_size=1, max_overflow=0, pool_timeout=3) as served:
        yield served


async def test_a_pull_needs_one_connection(one_connection: tuple[Database, httpx.AsyncClient]) -> None:
    db, http = one_connection
    async with db.writer() as session:
        org = await make_org(session)
        rep = await make_user(session, org, role=Role.rep, team=await make_team(session, org))
        for i in range(3):
            await make_company(session, rep, name=f"Client {i}")
    device = Device(await sign_in(http, rep))
    await device.pull(http, limit=4)
    assert device.pulls > 1 and len(device.held()["company"]) == 3
