"""Bad input gets a clear 4xx problem+json that names the bad field or parameter, and nothing is written."""

import asyncio
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from itsdangerous import URLSafeSerializer
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, func, select

from api.auth.models import ApiKey, AuthSession, Team, User
from api.core.changes import Change
from api.core.db import Database, make_engine, unavailable
from api.main import create_app
from api.settings import Settings
from tests.conftest import own_database
from tests.factories import PASSWORD, Tenant, make_api_key, make_team, make_tenant

PROBLEM_JSON = "application/problem+json"
LONG_NAME = "x" * 201
SIZE_CAP = 2048


# Helpers


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 body with the four required members, the right status, and no leaked stack trace."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    assert "Traceback" not in response.text
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys(), body
    assert body["status"] == status
    assert all(isinstance(body[k], str) and body[k] for k in ("type", "title", "detail")), body
    return body


def pointers(body: dict[str, Any]) -> list[str]:
    return [e["pointer"] for e in body.get("errors", []) if "pointer" in e]


def parameters(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["in"], e["parameter"]) for e in body.get("errors", []) if "parameter" in e]


async def snapshot(session: AsyncSession, org_id: uuid.UUID) -> dict[str, int]:
    """What a write would change: the change log, and the organisation's users, teams and keys (and versions)."""
    counts: dict[str, int] = {"change": int(await session.scalar(select(func.count()).select_from(Change)) or 0)}
    for model in (User, Team, ApiKey):
        rows, versions = (
            await session.execute(
                select(func.count(), func.coalesce(func.sum(model.version), 0)).where(col(model.org_id) == org_id)
            )
        ).one()
        counts[f"{model.__tablename__}.rows"] = int(rows)
        counts[f"{model.__tablename__}.versions"] = int(versions)
    counts["auth_session"] = int(await session.scalar(select(func.count()).select_from(AuthSession)) or 0)
    return counts


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str) and "{" in value:
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _ids(tenant: Tenant) -> dict[str, str]:
    return {"user_id": str(tenant.rep.id), "team_id": str(tenant.team.id), "admin_email": tenant.admin.email}


# Bad input on real endpoints


@dataclass(frozen=True)
class Bad:
    method: str
    path: str
    status: int
    json: Any = None
    content: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    pointer: str | None = None
    param: tuple[str, str] | None = None  # (in, name) of a bad query or header parameter


USERS, TEAMS, KEYS = "/api/v1/users", "/api/v1/teams", "/api/v1/api-keys"
USER, TEAM = "/api/v1/users/{user_id}", "/api/v1/teams/{team_id}"
NEW_USER = {"email": "new.colleague@example.com", "name": "New Colleague", "role": "rep"}
NEW_KEY = {"name": "Sync", "scopes": ["users:read"]}
RANDOM_ID = str(uuid.UUID(int=0xDEADBEEF))


def _malformed(method: str, path: str, content: bytes) -> Any:
    return pytest.param(
        Bad(method, path, 400, content=content, pointer="#"), id=f"malformed-json-{method.lower()}-{path.split('/')[3]}"
    )


def _limit(value: str, path: str = USERS) -> Any:
    return pytest.param(Bad("GET", f"{path}?limit={value}", 422, param=("query", "limit")), id=f"limit={value[:8]}")


def _if_match(value: str, path: str) -> Any:
    case = Bad(
        "PATCH", path, 422, json={"name": "Renamed"}, headers=(("If-Match", value),), param=("header", "if-match")
    )
    return pytest.param(case, id=f"if-match={value[:12]}-{path.split('/')[3]}")


BAD_INPUT = [
    _malformed("POST", USERS, b'{"email": "a@example.com",'),
    _malformed("POST", TEAMS, b"{name: 'Sales'}"),
    _malformed("PATCH", USER, b'{"name": "x",}'),
    _malformed("POST", KEYS, b"not json at all"),
    # Unknown fields are refused, not ignored.
    pytest.param(Bad("POST", USERS, 422, json={**NEW_USER, "is_admin": True}, pointer="#/is_admin"), id="unknown-user"),
    pytest.param(Bad("POST", TEAMS, 422, json={"name": "Ops", "colour": "red"}, pointer="#/colour"), id="unknown-team"),
    pytest.param(Bad("PATCH", USER, 422, json={"org_id": RANDOM_ID}, pointer="#/org_id"), id="unknown-patch-org_id"),
    pytest.param(Bad("PATCH", USER, 422, json={"name": "x", "version": 9}, pointer="#/version"), id="unknown-version"),
    pytest.param(Bad("POST", KEYS, 422, json={**NEW_KEY, "key": "fbk_x"}, pointer="#/key"), id="unknown-key-secret"),
    # Wrong types.
    pytest.param(Bad("POST", USERS, 422, json={**NEW_USER, "name": 5}, pointer="#/name"), id="type-name-int"),
    pytest.param(Bad("POST", USERS, 422, json={**NEW_USER, "role": "owner"}, pointer="#/role"), id="type-role-enum"),
    pytest.param(Bad("POST", USERS, 422, json={**NEW_USER, "team_id": 7}, pointer="#/team_id"), id="type-team_id"),
    pytest.param(Bad("PATCH", USER, 422, json={"is_active": "maybe"}, pointer="#/is_active"), id="type-is_active"),
    pytest.param(
        Bad("POST", TEAMS, 422, json={"name": "Ops", "parent_id": "no"}, pointer="#/parent_id"), id="type-uuid"
    ),
    pytest.param(
        Bad("POST", KEYS, 422, json={"name": "k", "scopes": "users:read"}, pointer="#/scopes"), id="type-list"
    ),
    pytest.param(Bad("POST", TEAMS, 422, json=["Ops"], pointer="#"), id="type-body-array"),
    pytest.param(Bad("PATCH", USER, 422, json={"name": None}, pointer="#/name"), id="type-name-null"),
    # Over-long and blank strings.
    pytest.param(Bad("POST", USERS, 422, json={**NEW_USER, "name": LONG_NAME}, pointer="#/name"), id="long-user-name"),
    pytest.param(Bad("POST", TEAMS, 422, json={"name": LONG_NAME}, pointer="#/name"), id="long-team-name"),
    pytest.param(Bad("PATCH", USER, 422, json={"name": LONG_NAME}, pointer="#/name"), id="long-patch-name"),
    pytest.param(Bad("POST", KEYS, 422, json={**NEW_KEY, "name": LONG_NAME}, pointer="#/name"), id="long-key-name"),
    pytest.param(Bad("POST", TEAMS, 422, json={"name": "   "}, pointer="#/name"), id="blank-team-name"),
    # NUL characters (PostgreSQL cannot store them: they must be refused as input, never reach the database).
    pytest.param(Bad("POST", USERS, 422, json={**NEW_USER, "name": "a\u0000b"}, pointer="#/name"), id="nul-user-name"),
    pytest.param(Bad("POST", TEAMS, 422, json={"name": "a\u0000b"}, pointer="#/name"), id="nul-team-name"),
    pytest.param(Bad("PATCH", USER, 422, json={"name": "a\u0000b"}, pointer="#/name"), id="nul-patch-name"),
    pytest.param(Bad("POST", KEYS, 422, json={**NEW_KEY, "name": "a\u0000b"}, pointer="#/name"), id="nul-key-name"),
    pytest.param(
        Bad("POST", USERS, 422, json={**NEW_USER, "password": "correct-horse\u0000battery"}, pointer="#/password"),
        id="nul-password",
    ),
    pytest.param(Bad("GET", f"{USERS}?q=a%00b", 422, param=("query", "q")), id="nul-search"),
    # E-mail addresses that are not.
    pytest.param(
        Bad("POST", USERS, 422, json={**NEW_USER, "email": "not-an-email"}, pointer="#/email"), id="email-no-at"
    ),
    pytest.param(
        Bad("POST", USERS, 422, json={**NEW_USER, "email": "a@b@example.com"}, pointer="#/email"), id="email-2at"
    ),
    pytest.param(Bad("PATCH", USER, 422, json={"email": "ana@"}, pointer="#/email"), id="email-patch-no-domain"),
    pytest.param(Bad("PATCH", USER, 422, json={"email": None}, pointer="#/email"), id="email-patch-null"),
    pytest.param(
        Bad("POST", USERS, 422, json={**NEW_USER, "email": "x" * 330 + "@example.com"}, pointer="#/email"),
        id="email-too-long",
    ),
    # Page size.
    _limit("0"),
    _limit("-1"),
    _limit("201"),
    _limit("99999999999999999999999999"),
    _limit("ten"),
    _limit("0", TEAMS),
    # If-Match that is not an ETag.
    _if_match("3", USER),
    _if_match('"three"', USER),
    _if_match('"1", "2"', USER),
    _if_match('"' + "9" * 19 + '"', USER),
    _if_match("W/3", TEAM),
    # API key scopes.
    pytest.param(
        Bad("POST", KEYS, 422, json={"name": "k", "scopes": ["users:read", "root"]}, pointer="#/scopes/1"),
        id="scope-unknown",
    ),
    pytest.param(Bad("POST", KEYS, 422, json={"name": "k", "scopes": []}, pointer="#/scopes"), id="scope-none"),
    # Well-formed input the service refuses: whatever it did before refusing is rolled back.
    pytest.param(
        Bad("PATCH", USER, 422, json={"name": "Renamed", "team_id": RANDOM_ID}, pointer="#/team_id"),
        id="service-patch-unknown-team",
    ),
    pytest.param(
        Bad("POST", USERS, 422, json={**NEW_USER, "team_id": RANDOM_ID}, pointer="#/team_id"),
        id="service-create-unknown-team",
    ),
    pytest.param(
        Bad("POST", TEAMS, 422, json={"name": "Ops", "head_id": RANDOM_ID}, pointer="#/head_id"),
        id="service-unknown-head",
    ),
    pytest.param(
        Bad("POST", USERS, 409, json={**NEW_USER, "email": "{admin_email}"}, pointer="#/email"),
        id="service-email-taken",
    ),
    pytest.param(
        Bad("PATCH", USER, 412, json={"name": "Renamed"}, headers=(("If-Match", '"99"'),)), id="service-stale-if-match"
    ),
]


@pytest.mark.parametrize("case", BAD_INPUT)
async def test_bad_input_gets_a_problem_naming_the_field_and_writes_nothing(
    session: AsyncSession, client: httpx.AsyncClient, case: Bad
) -> None:
    tenant = await make_tenant(session, client)
    ids = _ids(tenant)
    before = await snapshot(session, tenant.org.id)
    headers = {**tenant.headers, **dict(case.headers)}
    kwargs: dict[str, Any] = {"json": _fill(case.json, ids)} if case.content is None else {"content": case.content}
    if case.content is not None:
        headers["Content-Type"] = "application/json"

    response = await client.request(case.method, case.path.format(**ids), headers=headers, **kwargs)

    body = assert_problem(response, case.status)
    if case.pointer is not None:
        assert case.pointer in pointers(body), body
    if case.param is not None:
        assert case.param in parameters(body), body
    assert await snapshot(session, tenant.org.id) == before


GOOD_WRITES = [
    pytest.param("POST", USERS, {**NEW_USER, "name": "x" * 200}, 201, id="create-user-200-char-name"),
    pytest.param("POST", TEAMS, {"name": "x" * 200}, 201, id="create-team-200-char-name"),
    pytest.param("PATCH", USER, {"name": "Renamed"}, 200, id="rename-user"),
    pytest.param("POST", KEYS, NEW_KEY, 201, id="create-api-key"),
]


@pytest.mark.parametrize(("method", "path", "payload", "status"), GOOD_WRITES)
async def test_the_same_endpoints_with_good_input_do_write(
    session: AsyncSession, client: httpx.AsyncClient, method: str, path: str, payload: dict[str, Any], status: int
) -> None:
    """The control for the table above: the snapshot does see a write on these endpoints."""
    tenant = await make_tenant(session, client)
    before = await snapshot(session, tenant.org.id)

    response = await client.request(method, path.format(**_ids(tenant)), json=payload, headers=tenant.headers)

    assert response.status_code == status, response.text
    after = await snapshot(session, tenant.org.id)
    assert after["change"] == before["change"] + 1
    assert after != before


@pytest.mark.parametrize("route", ["login", "accept-invite"])
async def test_nul_in_the_sign_in_device_name_is_refused_as_bad_input(
    session: AsyncSession, client: httpx.AsyncClient, route: str
) -> None:
    tenant = await make_tenant(session, client)
    if route == "login":
        payload = {"email": tenant.admin.email, "password": PASSWORD, "device": "Pixel\u00008"}
    else:
        invited = await client.post(USERS, json=NEW_USER, headers=tenant.headers)
        assert invited.status_code == 201, invited.text
        payload = {"token": invited.json()["invite_token"], "password": PASSWORD, "device": "Pixel\u00008"}
    before = await snapshot(session, tenant.org.id)

    response = await client.post(f"/api/v1/auth/{route}", json=payload)

    body = assert_problem(response, 422)
    assert "#/device" in pointers(body)
    assert await snapshot(session, tenant.org.id) == before


# Cursors


async def _next_cursor(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> str:
    response = await client.get(path, params={"limit": 1}, headers=headers)
    assert response.status_code == 200, response.text
    cursor: str | None = response.json()["next_cursor"]
    assert cursor, f"{path} has a single page; the test needs two"
    return cursor


def _resign(token: str, scope: str) -> str:
    """The same payload, signed with a key that is not the server's."""
    forger = URLSafeSerializer("not-the-server-key-" * 3, salt=f"cursor:{scope}")
    _, payload = forger.loads_unsafe(token)
    assert payload, "the genuine cursor's payload is readable"
    return str(forger.dumps(payload))


def _tamper(token: str) -> str:
    payload, signature = token.rsplit(".", 1)
    return f"{payload[:-1]}{'A' if payload[-1] != 'A' else 'B'}.{signature}"


BadCursor = Callable[[dict[str, str]], str]
BAD_CURSORS: list[Any] = [
    pytest.param("users", lambda c: "garbage", id="garbled-users"),
    pytest.param("users", lambda c: "a.b.c", id="garbled-dots-users"),
    pytest.param("teams", lambda c: "%%%", id="garbled-teams"),
    pytest.param("users", lambda c: _tamper(c["users"]), id="tampered-users"),
    pytest.param("users", lambda c: _resign(c["users"], "users"), id="resigned-other-key-users"),
    pytest.param("audit", lambda c: _resign(c["audit"], "audit"), id="resigned-other-key-audit"),
    pytest.param("users", lambda c: c["teams"], id="teams-cursor-on-users"),
    pytest.param("users", lambda c: c["audit"], id="audit-cursor-on-users"),
    pytest.param("teams", lambda c: c["users"], id="users-cursor-on-teams"),
    pytest.param("api-keys", lambda c: c["audit"], id="audit-cursor-on-api-keys"),
    pytest.param("audit", lambda c: c["api-keys"], id="api-keys-cursor-on-audit"),
]


@pytest.fixture
async def cursors(session: AsyncSession, client: httpx.AsyncClient) -> AsyncIterator[tuple[Tenant, dict[str, str]]]:
    """A tenant whose users, teams, API keys and audit log each have a second page, and a genuine cursor of each."""
    tenant = await make_tenant(session, client)
    await make_team(session, tenant.org, name="Support")
    await make_api_key(session, tenant.org, "deals:read")
    names = ("users", "teams", "api-keys", "audit")
    yield tenant, {name: await _next_cursor(client, f"/api/v1/{name}", tenant.headers) for name in names}


@pytest.mark.parametrize(("target", "make_cursor"), BAD_CURSORS)
async def test_a_garbled_forged_or_foreign_cursor_is_a_400_naming_cursor(
    client: httpx.AsyncClient, cursors: tuple[Tenant, dict[str, str]], target: str, make_cursor: BadCursor
) -> None:
    tenant, genuine = cursors

    response = await client.get(
        f"/api/v1/{target}", params={"limit": 1, "cursor": make_cursor(genuine)}, headers=tenant.headers
    )

    body = assert_problem(response, 400)
    assert ("query", "cursor") in parameters(body)


@pytest.mark.parametrize("target", ["users", "teams", "api-keys", "audit"])
async def test_a_genuine_cursor_is_accepted_on_its_own_list(
    client: httpx.AsyncClient, cursors: tuple[Tenant, dict[str, str]], target: str
) -> None:
    tenant, genuine = cursors
    first = await client.get(f"/api/v1/{target}", params={"limit": 1}, headers=tenant.headers)

    second = await client.get(
        f"/api/v1/{target}", params={"limit": 1, "cursor": genuine[target]}, headers=tenant.headers
    )

    assert second.status_code == 200, second.text
    assert second.json()["items"], second.json()
    assert second.json()["items"][0]["id"] != first.json()["items"][0]["id"]


# Routing, body size and health


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/api/v1/no-such-thing", 404, None),
        ("GET", "/docs/nowhere", 404, None),  # any other path is the app's (tests/test_web.py)
        ("POST", "/api/v1/users/not-a-route/at-all", 404, None),
        ("DELETE", "/api/v1/users", 405, "GET, POST"),
        ("PUT", "/api/v1/teams/" + str(uuid.UUID(int=1)), 405, "DELETE, GET, PATCH"),
        ("POST", "/healthz", 405, "GET"),
    ],
)
async def test_unknown_routes_and_wrong_methods_are_problems(
    session: AsyncSession, client: httpx.AsyncClient, method: str, path: str, status: int, allow: str | None
) -> None:
    tenant = await make_tenant(session, client)
    before = await snapshot(session, tenant.org.id)

    response = await client.request(method, path, headers=tenant.headers)

    assert_problem(response, status)
    # A 405 names every method the path accepts, not only those of the first route that matched it.
    assert response.headers.get("allow") == allow
    assert await snapshot(session, tenant.org.id) == before


@pytest.fixture
async def capped_client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(max_body_bytes=SIZE_CAP), database=db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1024):
        yield data[start : start + 1024]


@pytest.mark.parametrize(
    "framing",
    [
        pytest.param("chunked", id="streamed-without-content-length"),
        pytest.param("content-length", id="declared-content-length"),
    ],
)
async def test_a_body_over_the_size_cap_is_a_413_problem_and_writes_nothing(
    session: AsyncSession, client: httpx.AsyncClient, capped_client: httpx.AsyncClient, framing: str
) -> None:
    tenant = await make_tenant(session, client)
    before = await snapshot(session, tenant.org.id)
    data = json.dumps({"name": "Ops", "padding": "x" * (2 * SIZE_CAP)}).encode()
    content: bytes | AsyncIterator[bytes] = data if framing == "content-length" else _chunks(data)

    response = await capped_client.post(
        TEAMS, content=content, headers={**tenant.headers, "Content-Type": "application/json"}
    )

    assert_problem(response, 413)
    assert await snapshot(session, tenant.org.id) == before


async def test_a_body_under_the_size_cap_is_accepted(
    session: AsyncSession, client: httpx.AsyncClient, capped_client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)

    response = await capped_client.post(TEAMS, json={"name": "x" * 200}, headers=tenant.headers)

    assert response.status_code == 201, response.text


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_health_checks_answer_200_without_signing_in(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}


async def test_readyz_is_a_503_problem_when_the_database_does_not_answer() -> None:
    # Nothing listens on port 1: the database is unreachable, the process is still alive.
    engine = make_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none", null_pool=True, connect_args={"timeout": 2})
    app = create_app(database=Database(engine))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        ready = await client.get("/readyz")
        live = await client.get("/healthz")
    await engine.dispose()
    assert_problem(ready, 503)
    assert live.status_code == 200


async def _login_on(url: str, **engine: Any) -> httpx.Response:
    """A sign-in (it reads the user, and writes the attempt) on an app over the database at `url`."""
    db_engine = make_engine(url, null_pool=True, **engine)
    app = create_app(database=Database(db_engine))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.post("/api/v1/auth/login", json={"email": "a@example.com", "password": PASSWORD})
    finally:
        await db_engine.dispose()


async def test_an_unreachable_postgres_is_a_503_problem_with_retry_after_not_a_500() -> None:
    response = await _login_on("postgresql+asyncpg://nobody@127.0.0.1:1/none", connect_args={"timeout": 2})

    body = assert_problem(response, 503)
    assert body["detail"] == "The database is not reachable; try again shortly."
    assert int(response.headers["retry-after"]) > 0


def test_a_read_only_sqlite_database_is_a_503_problem_saying_so(tmp_path: Path) -> None:
    with own_database("sqlite", tmp_path) as url:
        # Opened read-only, as on a read-only disk.
        response = asyncio.run(_login_on(f"sqlite+aiosqlite:///file:{make_url(url).database}?mode=ro&uri=true"))

    body = assert_problem(response, 503)
    assert "read-only" in body["detail"], body
    assert response.headers["retry-after"] == "60"


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("SQLITE_READONLY", "read-only"),
        ("SQLITE_READONLY_DIRECTORY", "read-only"),
        ("SQLITE_FULL", "full"),
        ("SQLITE_IOERR_WRITE", "full or failing"),
        ("SQLITE_CANTOPEN", "cannot be opened"),
    ],
)
def test_sqlite_storage_errors_mean_the_service_is_unavailable(name: str, says: str) -> None:
    error = sqlite3.OperationalError("storage")
    error.sqlite_errorname = name  # type: ignore[attr-defined]

    refusal = unavailable(error)

    assert refusal is not None and says in refusal.detail


def test_errors_about_the_request_are_not_unavailability() -> None:
    constraint = sqlite3.IntegrityError("UNIQUE constraint failed")
    constraint.sqlite_errorname = "SQLITE_CONSTRAINT_UNIQUE"  # type: ignore[attr-defined]

    assert unavailable(constraint) is None
    assert unavailable(ValueError("no")) is None
