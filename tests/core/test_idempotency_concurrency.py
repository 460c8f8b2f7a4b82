"""Twenty concurrent copies of one request take effect once, on a real, committed database and a real connection
pool (not the rolled-back fixture, which puts every session on one connection and so cannot race).

Two ways a client says "this is the same request": an `Idempotency-Key` header (the middleware reserves the key
in a transaction of its own, so the copies that lose the race answer 409 while the first one runs and replay its
response afterwards), and a sync push's `client_id` + mutation ids (`sync_client.last_mutation_id`, moved in the
push's own transaction, under the organisation lock). On SQLite the writers queue on the database's write lock
(BEGIN IMMEDIATE, busy_timeout); on PostgreSQL on the key's unique index and the organisation row lock."""

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlmodel import col, func, select

from api.auth.models import Organization, Role, User
from api.clients.models import Company
from api.core.changes import Change
from api.core.db import Database
from api.core.ids import new_id
from api.sync.models import SyncClient
from tests.conftest import serving
from tests.factories import make_org, make_team, make_user, sign_in
from tests.sync.device import PUSH

pytestmark = pytest.mark.asyncio

COMPANIES = "/api/v1/companies"
PARALLEL = 20


@dataclass
class Live:
    db: Database
    http: httpx.AsyncClient
    org: Organization
    rep: User
    headers: dict[str, str]


@pytest.fixture
async def live(committed_url: str) -> AsyncIterator[Live]:
    """The app over its own connection pool (big enough for every request at once), its lifespan running, and an
    organisation with an admin and a signed-in rep."""
    async with serving(committed_url, pool_size=PARALLEL + 4, max_overflow=0) as (db, http):
        async with db.writer() as session:
            org = await make_org(session)
            team = await make_team(session, org)
            await make_user(session, org, role=Role.admin)
            rep = await make_user(session, org, role=Role.rep, team=team)
        yield Live(db, http, org, rep, await sign_in(http, rep))


def _seen(responses: list[httpx.Response]) -> list[tuple[int, str | None]]:
    return [(r.status_code, r.headers.get("idempotent-replayed")) for r in responses]


async def test_twenty_concurrent_posts_with_one_key_create_one_company(live: Live) -> None:
    headers = {**live.headers, "Idempotency-Key": f"new-company-{uuid.uuid4().hex}"}
    responses = await asyncio.gather(
        *(live.http.post(COMPANIES, json={"name": "Acme"}, headers=headers) for _ in range(PARALLEL))
    )

    originals = [r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    replays = [r for r in responses if r.status_code == 201 and r.headers.get("idempotent-replayed") == "true"]
    in_flight = [r for r in responses if r.status_code == 409]
    # Every answer is the one that ran, a replay of it, or "still running": nothing else, and only one ran.
    assert len(originals) == 1, _seen(responses)
    assert len(originals) + len(replays) + len(in_flight) == PARALLEL, _seen(responses)
    original = originals[0]
    company_id = original.json()["id"]
    for replay in replays:
        assert replay.content == original.content
        assert replay.headers["location"] == original.headers["location"]
        assert replay.headers["etag"] == original.headers["etag"]
    for busy in in_flight:
        assert busy.headers["content-type"].startswith("application/problem+json")
        assert busy.json()["errors"][0]["parameter"] == "Idempotency-Key"

    # Once everything has finished, the key answers with the stored response.
    retry = await live.http.post(COMPANIES, json={"name": "Acme"}, headers=headers)
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["id"] == company_id
    assert retry.content == original.content

    async with live.db.reader() as session:
        ids = (
            await session.scalars(
                select(Company.id).where(col(Company.org_id) == live.org.id, col(Company.name) == "Acme")
            )
        ).all()
        logged = (await session.scalars(select(Change.op).where(col(Change.entity_id) == uuid.UUID(company_id)))).all()
    assert [str(i) for i in ids] == [company_id]
    assert logged == ["create"]


async def test_twenty_concurrent_pushes_of_one_outbox_apply_each_mutation_once(live: Live) -> None:
    client_id = uuid.uuid4()
    company_id = new_id()
    outbox = {
        "client_id": str(client_id),
        "mutations": [
            {"id": 1, "name": "company.create", "args": {"id": str(company_id), "name": "Acme"}},
            {"id": 2, "name": "company.update", "args": {"id": str(company_id), "industry": "Logistics"}},
        ],
    }
    # No Idempotency-Key: the outbox's own ids are what make a resent push harmless.
    responses = await asyncio.gather(
        *(live.http.post(PUSH, json=outbox, headers=live.headers) for _ in range(PARALLEL))
    )

    assert [r.status_code for r in responses] == [200] * PARALLEL, [r.text for r in responses if r.status_code != 200]
    results = [r.json() for r in responses]
    assert all(body["last_mutation_id"] == 2 for body in results)
    per_mutation = {
        mutation_id: Counter(
            result["status"] for body in results for result in body["results"] if result["id"] == mutation_id
        )
        for mutation_id in (1, 2)
    }
    assert per_mutation == {1: {"applied": 1, "duplicate": PARALLEL - 1}, 2: {"applied": 1, "duplicate": PARALLEL - 1}}
    # A push is one transaction: the push that applied the first mutation applied the second too.
    applying = [body for body in results if body["results"][0]["status"] == "applied"]
    assert [m["status"] for m in applying[0]["results"]] == ["applied", "applied"]
    assert applying[0]["results"][1]["record"]["industry"] == "Logistics"

    async with live.db.reader() as session:
        companies = (await session.scalars(select(Company).where(col(Company.org_id) == live.org.id))).all()
        logged = (
            await session.scalars(
                select(Change.op).where(col(Change.entity_id) == company_id).order_by(col(Change.seq))
            )
        ).all()
        clients = await session.scalar(
            select(func.count()).select_from(SyncClient).where(col(SyncClient.client_id) == client_id)
        )
    assert [(c.id, c.name, c.industry, c.version) for c in companies] == [(company_id, "Acme", "Logistics", 2)]
    assert logged == ["create", "update"]
    assert clients == 1
