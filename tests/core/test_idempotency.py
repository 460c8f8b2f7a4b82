"""`Idempotency-Key` on POST: a retry is answered with the first response and does the work once; the same key
with another request is refused; a key still being worked on answers 409; keys are per caller and expire."""

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from api.core.idempotency import IdempotencyKey
from api.core.types import utcnow
from tests.factories import make_tenant, make_user, sign_in

pytestmark = pytest.mark.asyncio

COMPANIES = "/api/v1/companies"


async def _names(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    response = await client.get(COMPANIES, params={"limit": 200}, headers=headers)
    assert response.status_code == 200, response.text
    return [c["name"] for c in response.json()["items"]]


async def test_a_retried_post_gets_the_first_response_and_creates_once(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    headers = {**tenant.headers, "Idempotency-Key": "call-log-7f3a"}
    first = await client.post(COMPANIES, json={"name": "Talleres Ruiz"}, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = await client.post(COMPANIES, json={"name": "Talleres Ruiz"}, headers=headers)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["etag"] == first.headers["etag"]
    assert await _names(client, tenant.headers) == ["Talleres Ruiz"]


async def test_the_same_key_with_another_request_is_refused_and_changes_nothing(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    headers = {**tenant.headers, "Idempotency-Key": "k-1"}
    assert (await client.post(COMPANIES, json={"name": "Uno"}, headers=headers)).status_code == 201
    refused = await client.post(COMPANIES, json={"name": "Dos"}, headers=headers)
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["errors"][0]["parameter"] == "Idempotency-Key"
    # Another path is another request too.
    other = await client.post("/api/v1/contacts", json={"name": "Uno"}, headers=headers)
    assert other.status_code == 422
    assert await _names(client, tenant.headers) == ["Uno"]


async def test_keys_belong_to_their_caller(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    colleague = await sign_in(client, await make_user(session, tenant.org, role=Role.rep, team=tenant.team))
    for headers in (rep, colleague):
        response = await client.post(COMPANIES, json={"name": "Mismo"}, headers={**headers, "Idempotency-Key": "same"})
        assert response.status_code == 201, response.text
        assert "idempotent-replayed" not in response.headers
    # Two companies, one each (the second one confirmed as a duplicate is not needed: no handle is shared).
    assert sorted(await _names(client, tenant.headers)) == ["Mismo", "Mismo"]


async def test_a_key_still_being_worked_on_answers_409_and_an_expired_one_is_free(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    body = {"name": "En curso"}
    headers = {**tenant.headers, "Idempotency-Key": "busy"}
    # The first request with this key is still running (its row has no response yet).
    first = await client.post(COMPANIES, json=body, headers=headers)
    await session.execute(sa.update(IdempotencyKey).values(status=None))
    await session.commit()
    busy = await client.post(COMPANIES, json=body, headers=headers)
    assert busy.status_code == 409 and busy.json()["errors"][0]["parameter"] == "Idempotency-Key"
    # A day later the key is forgotten: the same key and body do the work again.
    await session.execute(sa.update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
    await session.commit()
    later = await client.post(COMPANIES, json=body, headers=headers)
    assert later.status_code == 201 and later.json()["id"] != first.json()["id"]
    assert (await session.scalar(sa.select(sa.func.count()).select_from(IdempotencyKey))) == 1


async def test_answers_that_depend_on_the_moment_are_not_kept(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    headers = {**tenant.headers, "Idempotency-Key": "dup"}
    assert (await client.post(COMPANIES, json={"name": "A", "domain": "a.example"}, headers=tenant.headers)).is_success
    # A duplicate (409) is about the data at that moment: the same retry is checked again, not replayed.
    for _ in range(2):
        conflict = await client.post(COMPANIES, json={"name": "B", "domain": "a.example"}, headers=headers)
        assert conflict.status_code == 409 and "idempotent-replayed" not in conflict.headers
    # A validation error is kept: the same request can only fail the same way.
    bad = {**tenant.headers, "Idempotency-Key": "bad"}
    assert (await client.post(COMPANIES, json={"name": ""}, headers=bad)).status_code == 422
    assert (await client.post(COMPANIES, json={"name": ""}, headers=bad)).headers["idempotent-replayed"] == "true"


async def test_a_bad_key_or_no_caller(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    for key in ("x" * 256, "with space", "ñ".encode()):
        response = await client.post(COMPANIES, json={"name": "X"}, headers={**tenant.headers, "Idempotency-Key": key})
        assert response.status_code == 422, key
    # Without credentials the route answers as it would without the key.
    assert (await client.post(COMPANIES, json={"name": "X"}, headers={"Idempotency-Key": "anon"})).status_code == 401
    assert await _names(client, tenant.headers) == []


async def test_a_body_over_the_cap_is_refused_before_it_is_kept(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: the cap is found while reading
        for _ in range(300):
            yield b"x" * 4096

    headers = {**tenant.headers, "Idempotency-Key": "big", "content-type": "application/json"}
    response = await client.post(COMPANIES, content=streamed(), headers=headers)
    assert response.status_code == 413 and response.json()["status"] == 413
    assert await session.scalar(sa.select(sa.func.count()).select_from(IdempotencyKey)) == 0
