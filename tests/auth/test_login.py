"""Sign-in over HTTP: passwords, throttling, refresh-token rotation and reuse, logout, access-token pinning."""

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from sqlmodel import col

from api.auth.models import LoginFailure, RefreshToken, Role, User
from api.auth.security import digest
from api.core.db import Database
from api.core.types import utcnow
from api.main import create_app
from api.settings import get_settings
from tests.factories import PASSWORD, make_org, make_tenant, make_user

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/me"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def attempt(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(LOGIN, json={"email": email, "password": password})


async def tokens(client: httpx.AsyncClient, user: User, password: str = PASSWORD) -> dict[str, Any]:
    response = await attempt(client, user.email, password)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def me_status(client: httpx.AsyncClient, access_token: str) -> int:
    return (await client.get(ME, headers=bearer(access_token))).status_code


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post(REFRESH, json={"refresh_token": refresh_token})


@asynccontextmanager
async def client_at(db: Database, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A second client on the same database, calling from another address."""
    transport = httpx.ASGITransport(app=create_app(database=db), client=(address, 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as other:
        yield other


def assert_retry_after(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit(), retry_after
    assert 0 < int(retry_after) <= get_settings().login_window_seconds + 1


async def active_user(session, **kwargs: Any) -> User:
    return await make_user(session, await make_org(session), **kwargs)


# Passwords


async def test_login_returns_an_access_and_a_refresh_token(session, client):
    user = await active_user(session)
    body = await tokens(client, user)
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == get_settings().access_token_minutes * 60
    assert body["refresh_token"]
    me = await client.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["user"]["id"] == str(user.id)


async def test_login_accepts_the_email_typed_in_capitals(session, client):
    user = await active_user(session)
    assert (await attempt(client, user.email.upper())).status_code == 200


async def test_wrong_password_and_unknown_email_get_the_same_401(session, client):
    user = await active_user(session)
    wrong_password = await attempt(client, user.email, "not-the-password")
    unknown_email = await attempt(client, "nobody-here@example.com")
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json()["detail"] == unknown_email.json()["detail"]
    assert "access_token" not in wrong_password.json()


@pytest.mark.parametrize(
    ("user_kwargs", "deactivate"),
    [({"password": None}, False), ({}, True)],
    ids=["pending_invite_without_password", "deactivated"],
)
async def test_user_who_may_not_sign_in_gets_401(session, client, user_kwargs, deactivate):
    user = await active_user(session, **user_kwargs)
    if deactivate:
        user.is_active = False
        session.add(user)
        await session.commit()
    response = await attempt(client, user.email)
    assert response.status_code == 401, response.text
    assert "access_token" not in response.json()


# Throttling


@pytest.mark.parametrize("typed", [str.lower, str.upper], ids=["same_case", "other_case"])
async def test_account_is_throttled_after_max_failures_even_with_the_right_password(session, client, db, typed):
    user = await active_user(session)
    for _ in range(get_settings().login_max_failures_per_account):
        assert (await attempt(client, typed(user.email), "not-the-password")).status_code == 401
    assert_retry_after(await attempt(client, user.email))
    # The account is throttled wherever the next attempt comes from.
    async with client_at(db, "192.0.2.7") as elsewhere:
        assert_retry_after(await attempt(elsewhere, user.email))


async def test_success_before_the_limit_resets_the_account_counter(session, client):
    user = await active_user(session)
    below_limit = get_settings().login_max_failures_per_account - 1
    for _ in range(2):
        for _ in range(below_limit):
            assert (await attempt(client, user.email, "not-the-password")).status_code == 401
        assert (await attempt(client, user.email)).status_code == 200


async def test_address_is_throttled_after_max_failures_across_many_emails(session, client, db):
    user = await active_user(session)
    for n in range(get_settings().login_max_failures_per_address):
        assert (await attempt(client, f"stranger-{n}@example.com", "not-the-password")).status_code == 401
    assert_retry_after(await attempt(client, user.email))
    # Only that address: the account itself had no failures.
    async with client_at(db, "192.0.2.8") as elsewhere:
        assert (await attempt(elsewhere, user.email)).status_code == 200


async def test_failures_older_than_the_window_no_longer_count(session, client):
    user = await active_user(session)
    for _ in range(get_settings().login_max_failures_per_account):
        assert (await attempt(client, user.email, "not-the-password")).status_code == 401
    assert (await attempt(client, user.email)).status_code == 429
    window = timedelta(seconds=get_settings().login_window_seconds)
    await session.execute(sa.update(LoginFailure).values(at=utcnow() - window - timedelta(seconds=1)))
    await session.commit()
    assert (await attempt(client, user.email)).status_code == 200


# Refresh tokens and sessions


async def test_refresh_rotates_the_refresh_token(session, client):
    first = await tokens(client, await active_user(session))
    response = await refresh(client, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert await me_status(client, second["access_token"]) == 200
    assert (await refresh(client, second["refresh_token"])).status_code == 200


async def test_reused_refresh_token_ends_its_whole_family_but_not_other_sessions(session, client):
    user = await active_user(session)
    phone = await tokens(client, user)
    laptop = await tokens(client, user)
    rotated = (await refresh(client, phone["refresh_token"])).json()

    replay = await refresh(client, phone["refresh_token"])
    assert replay.status_code == 401, replay.text

    assert (await refresh(client, rotated["refresh_token"])).status_code == 401
    assert await me_status(client, rotated["access_token"]) == 401
    assert await me_status(client, phone["access_token"]) == 401
    assert await me_status(client, laptop["access_token"]) == 200
    assert (await refresh(client, laptop["refresh_token"])).status_code == 200


async def test_logout_ends_the_session_at_once(session, client):
    user = await active_user(session)
    ending = await tokens(client, user)
    other = await tokens(client, user)
    response = await client.post(LOGOUT, json={"refresh_token": ending["refresh_token"]})
    assert response.status_code == 204, response.text
    assert await me_status(client, ending["access_token"]) == 401
    assert (await refresh(client, ending["refresh_token"])).status_code == 401
    assert await me_status(client, other["access_token"]) == 200


async def test_expired_refresh_token_is_refused(session, client):
    pair = await tokens(client, await active_user(session))
    await session.execute(
        sa.update(RefreshToken)
        .where(col(RefreshToken.token_hash) == digest(pair["refresh_token"]))
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    await session.commit()
    response = await refresh(client, pair["refresh_token"])
    assert response.status_code == 401, response.text
    assert "expired" in response.json()["detail"]


# "database" skips the session revocation the API does, to show every request checks the user itself.
@pytest.mark.parametrize("via", ["admin_patch", "database"])
async def test_deactivated_user_is_refused_at_once_and_cannot_refresh(session, client, via):
    tenant = await make_tenant(session, client)
    pair = await tokens(client, tenant.rep)
    assert await me_status(client, pair["access_token"]) == 200
    if via == "admin_patch":
        response = await client.patch(
            f"/api/v1/users/{tenant.rep.id}", json={"is_active": False}, headers=tenant.headers
        )
        assert response.status_code == 200, response.text
    else:
        await session.execute(sa.update(User).where(col(User.id) == tenant.rep.id).values(is_active=False))
        await session.commit()
    assert await me_status(client, pair["access_token"]) == 401
    assert (await refresh(client, pair["refresh_token"])).status_code == 401


async def test_refresh_of_an_admin_keeps_its_role(session, client):
    org = await make_org(session)
    admin = await make_user(session, org, role=Role.admin)
    rotated = (await refresh(client, (await tokens(client, admin))["refresh_token"])).json()
    response = await client.get("/api/v1/api-keys", headers=bearer(rotated["access_token"]))
    assert response.status_code == 200, response.text


# Access-token pinning

SECRET = get_settings().secret_key
Forgery = Callable[[dict[str, Any]], str]


def _hs256(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _without(name: str) -> Forgery:
    return lambda claims: _hs256({k: v for k, v in claims.items() if k != name})


def _with(**changed: Any) -> Forgery:
    return lambda claims: _hs256({**claims, **changed})


def _by_hand(alg: str, *, signed: bool) -> Forgery:
    """A token whose header names `alg`, HMAC-SHA256-signed with the server's secret (or unsigned): a server that
    took the algorithm from the header (RS256 "verified" with the secret as its public key) would accept it."""

    def forge(claims: dict[str, Any]) -> str:
        def part(data: dict[str, Any] | bytes) -> str:
            raw = data if isinstance(data, bytes) else json.dumps(data, default=lambda t: int(t.timestamp())).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        signing_input = f"{part({'alg': alg, 'typ': 'JWT'})}.{part(claims)}"
        signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest() if signed else b""
        return f"{signing_input}.{part(signature)}"

    return forge


FORGERIES: dict[str, tuple[Forgery, int]] = {
    # The control: the same claims, signed as the server signs them, are accepted.
    "genuine_hs256": (_hs256, 200),
    "alg_none": (lambda claims: jwt.encode(claims, None, algorithm="none"), 401),
    # The hand-made control is accepted, so the refusals below are the header's doing.
    "by_hand_hs256": (_by_hand("HS256", signed=True), 200),
    "by_hand_rs256": (_by_hand("RS256", signed=True), 401),
    "by_hand_none_capitalised": (_by_hand("None", signed=False), 401),
    "by_hand_hs256_unsigned": (_by_hand("HS256", signed=False), 401),
    "hs512": (lambda claims: jwt.encode(claims, SECRET, algorithm="HS512"), 401),
    "wrong_secret": (lambda claims: jwt.encode(claims, SECRET[::-1], algorithm="HS256"), 401),
    "typ_refresh": (_with(typ="refresh"), 401),
    "typ_missing": (_without("typ"), 401),
    "expired": (_with(iat=utcnow() - timedelta(hours=2), exp=utcnow() - timedelta(hours=1)), 401),
    "sid_missing": (_without("sid"), 401),
    "sid_unknown": (_with(sid=str(uuid.uuid4())), 401),
    "sub_unknown": (_with(sub=str(uuid.uuid4())), 401),
    "sub_not_a_uuid": (_with(sub="admin"), 401),
    "org_other": (_with(org=str(uuid.uuid4())), 401),
}


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize(("forge", "status"), FORGERIES.values(), ids=FORGERIES.keys())
async def test_access_token_is_pinned_to_hs256_access_tokens_of_a_live_session(session, client, forge, status):
    user = await active_user(session)
    genuine = jwt.decode((await tokens(client, user))["access_token"], options={"verify_signature": False})
    claims = {**genuine, "iat": utcnow(), "exp": utcnow() + timedelta(minutes=5)}
    assert await me_status(client, forge(claims)) == status
