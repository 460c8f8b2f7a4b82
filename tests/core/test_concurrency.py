"""Concurrent requests over HTTP against a real connection pool (committed data, not the rolled-back fixture):
checks that span rows hold when two writers race, and parallel password guesses are still counted."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlmodel import col, func, select

from api.auth.models import Role, Team, User
from api.core.changes import Change
from api.core.db import Database, make_engine
from api.core.migrate import upgrade
from api.main import create_app
from api.settings import get_settings
from tests.factories import PASSWORD, make_org, make_team, make_user

PARALLEL = 12


@pytest.fixture(params=["sqlite", "postgres"])
def live_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    upgrade(url)
    return url


@pytest.fixture
async def live(live_url: str) -> AsyncIterator[Database]:
    engine = make_engine(live_url, pool_size=PARALLEL + 4, max_overflow=0)
    yield Database(engine)
    await engine.dispose()


@pytest.fixture
async def http(live: Database) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(database=live), client=("192.0.2.10", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def _admin_headers(live: Database, http: httpx.AsyncClient):
    async with live.writer() as s:
        org = await make_org(s)
        admin = await make_user(s, org, role=Role.admin)
    response = await http.post("/api/v1/auth/login", json={"email": admin.email, "password": PASSWORD})
    return org, admin, {"Authorization": f"Bearer {response.json()['access_token']}"}


def _statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(r.status_code for r in responses)


async def test_only_one_of_two_writers_holding_the_same_version_wins(live, http):
    org, _, headers = await _admin_headers(live, http)
    async with live.writer() as s:
        team = await make_team(s, org)
    stale = {**headers, "If-Match": f'"{team.version}"'}
    responses = await asyncio.gather(
        *(http.patch(f"/api/v1/teams/{team.id}", json={"name": f"Name {i}"}, headers=stale) for i in range(PARALLEL))
    )
    assert _statuses(responses) == {200: 1, 412: PARALLEL - 1}
    async with live.reader() as s:
        versions = (await s.scalars(select(Change.version).where(col(Change.entity_id) == team.id))).all()
    assert sorted(versions) == [1, 2]


async def test_teams_cannot_be_moved_under_each_other_at_once(live, http):
    org, _, headers = await _admin_headers(live, http)
    pairs = []
    async with live.writer() as s:
        for i in range(PARALLEL // 2):
            pairs.append((await make_team(s, org, name=f"North {i}"), await make_team(s, org, name=f"South {i}")))
    responses = await asyncio.gather(
        *(
            http.patch(f"/api/v1/teams/{a.id}", json={"parent_id": str(b.id)}, headers=headers)
            for north, south in pairs
            for a, b in ((north, south), (south, north))
        )
    )
    assert _statuses(responses) == {200: len(pairs), 422: len(pairs)}
    async with live.reader() as s:
        roots = await s.scalar(select(func.count()).where(col(Team.org_id) == org.id, col(Team.parent_id).is_(None)))
    assert roots == len(pairs)


async def test_two_admins_cannot_demote_each_other_and_leave_no_admin(live, http):
    org, first, first_headers = await _admin_headers(live, http)
    async with live.writer() as s:
        second = await make_user(s, org, role=Role.admin)
    login = await http.post("/api/v1/auth/login", json={"email": second.email, "password": PASSWORD})
    second_headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    responses = await asyncio.gather(
        http.patch(f"/api/v1/users/{second.id}", json={"role": "rep"}, headers=first_headers),
        http.patch(f"/api/v1/users/{first.id}", json={"role": "rep"}, headers=second_headers),
    )
    # The loser is refused: either because no admin would be left, or because its caller is no longer an admin.
    assert sorted(r.status_code for r in responses)[0] == 200
    assert sorted(r.status_code for r in responses)[1] in {403, 409}
    async with live.reader() as s:
        admins = await s.scalar(
            select(func.count()).where(col(User.org_id) == org.id, col(User.role) == Role.admin.value)
        )
    assert admins == 1


async def test_the_same_email_created_in_parallel_gives_one_user_and_clean_conflicts(live, http):
    _, _, headers = await _admin_headers(live, http)
    body = {"email": "same.person@example.com", "name": "Same Person", "role": "rep"}
    responses = await asyncio.gather(*(http.post("/api/v1/users", json=body, headers=headers) for _ in range(6)))
    assert _statuses(responses) == {201: 1, 409: 5}
    assert all(r.headers["content-type"].startswith("application/problem+json") for r in responses[1:] if r.is_error)


async def test_parallel_password_guesses_are_all_counted(live, http):
    async with live.writer() as s:
        org = await make_org(s)
        victim = await make_user(s, org)
    limit = get_settings().login_max_failures_per_account
    guesses = await asyncio.gather(
        *(
            http.post("/api/v1/auth/login", json={"email": victim.email, "password": f"guess-{i}-wrong"})
            for i in range(PARALLEL)
        )
    )
    assert _statuses(guesses) == {401: limit, 429: PARALLEL - limit}
    right = await http.post("/api/v1/auth/login", json={"email": victim.email, "password": PASSWORD})
    assert right.status_code == 429
