"""Security headers on every answer (app, API, errors, docs), HSTS behind its setting, and the CORS allow-list.
No database: these are the app's edges. tests/pwa/test_csp.py shows the app itself works under the policy."""

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from api.core.db import Database, make_engine
from api.core.security_headers import CORS_REQUEST_HEADERS, CORS_RESPONSE_HEADERS, SWAGGER_CDN, inline_hashes
from api.main import create_app
from api.settings import Settings

ALLOWED = "https://crm.example.com"
FOREIGN = "https://evil.example.net"
PREFLIGHT_HEADERS = "authorization, content-type, idempotency-key, if-match"


@pytest.fixture(scope="module")
async def apps(tmp_path_factory: pytest.TempPathFactory, sqlite_url: str) -> AsyncIterator[dict[str, FastAPI]]:
    """Built once (an app takes a second to build): with the default settings, and with HSTS and an allow-list. On
    a database only so that API routes answer (nothing here writes)."""
    pwa = tmp_path_factory.mktemp("pwa")
    (pwa / "index.html").write_text('<!doctype html><div id="app"></div>')
    engine = make_engine(sqlite_url, null_pool=True)
    database = Database(engine)
    default = create_app(Settings(pwa_dir=pwa), database=database)

    @default.get("/api/test-only/fails")
    async def fails() -> None:
        raise RuntimeError("a bug")

    yield {
        "default": default,
        "configured": create_app(
            Settings(pwa_dir=pwa, hsts_seconds=31_536_000, cors_origins=[ALLOWED]), database=database
        ),
    }
    await engine.dispose()


@asynccontextmanager
async def serving(apps: dict[str, FastAPI], which: str = "default") -> AsyncIterator[httpx.AsyncClient]:
    # The app's 500 is the answer under test, not an exception for the test to see.
    transport = httpx.ASGITransport(app=apps[which], raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def directives(policy: str) -> dict[str, list[str]]:
    return {name: sources for name, *sources in (part.split() for part in policy.split(";"))}


Call = Callable[[httpx.AsyncClient], object]
ANSWERS: dict[str, tuple[Call, int]] = {
    "app_shell": (lambda http: http.get("/clients/company/x"), 200),
    "health": (lambda http: http.get("/healthz"), 200),
    "unauthenticated": (lambda http: http.get("/api/v1/me"), 401),
    "not_found": (lambda http: http.get("/api/v1/nowhere"), 404),
    "too_large": (lambda http: http.post("/api/v1/me", content=b"{}", headers={"content-length": "99999999"}), 413),
    "server_error": (lambda http: http.get("/api/test-only/fails"), 500),
}


@pytest.mark.parametrize(("call", "status"), ANSWERS.values(), ids=ANSWERS.keys())
async def test_every_answer_carries_the_security_headers(apps: dict[str, FastAPI], call: Call, status: int) -> None:
    async with serving(apps) as http:
        response = await call(http)  # type: ignore[misc]
    assert response.status_code == status
    policy = directives(response.headers["content-security-policy"])
    assert policy["script-src"] == ["'self'"]  # no inline script, no eval, no other host
    assert policy["default-src"] == ["'self'"] and policy["connect-src"] == ["'self'"]
    assert policy["object-src"] == policy["base-uri"] == policy["frame-ancestors"] == ["'none'"]
    assert policy["img-src"] == policy["worker-src"] == policy["manifest-src"] == ["'self'"]
    # Styles: the app's own, and the printable diagnosis's inline sheet by its hash, not any inline style.
    assert policy["style-src"][0] == "'self'" and all(s.startswith("'sha256-") for s in policy["style-src"][1:])
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["cross-origin-opener-policy"] == "same-origin"
    assert "geolocation=()" in response.headers["permissions-policy"]
    assert "strict-transport-security" not in response.headers  # off unless set: HTTPS is the deployment's to know


async def test_hsts_is_sent_when_the_setting_turns_it_on(apps: dict[str, FastAPI]) -> None:
    async with serving(apps, "configured") as http:
        for path in ("/", "/healthz", "/api/v1/me"):
            response = await http.get(path)
            assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


async def test_the_interactive_docs_have_their_own_policy(apps: dict[str, FastAPI]) -> None:
    async with serving(apps) as http:
        page = await http.get("/docs")
    assert page.status_code == 200
    policy = directives(page.headers["content-security-policy"])
    # Its inline script by hash (so no other inline script runs), and Swagger UI from the one CDN path FastAPI uses.
    assert policy["script-src"] == [SWAGGER_CDN, *inline_hashes(page.text, "script")]
    assert len(policy["script-src"]) == 2
    loaded = re.findall(r'(?:src|href)="(https://[^"]+)"', page.text)
    assert loaded and all(url.startswith(SWAGGER_CDN) for url in loaded if url.endswith((".js", ".css")))
    assert policy["default-src"] == policy["frame-ancestors"] == ["'none'"]
    assert page.headers["x-content-type-options"] == "nosniff"  # the other headers still apply


# CORS


async def test_an_allowed_origin_may_call_the_api_and_read_what_integrators_need(apps: dict[str, FastAPI]) -> None:
    async with serving(apps, "configured") as http:
        preflight = await http.options(
            "/api/v1/deals/x",
            headers={
                "origin": ALLOWED,
                "access-control-request-method": "PATCH",
                "access-control-request-headers": PREFLIGHT_HEADERS,
            },
        )
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == ALLOWED
        assert "PATCH" in preflight.headers["access-control-allow-methods"]
        allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
        assert {h.lower() for h in CORS_REQUEST_HEADERS} <= allowed
        assert "access-control-allow-credentials" not in preflight.headers  # bearer tokens, never cookies
        assert preflight.headers["x-content-type-options"] == "nosniff"

        # A refusal too must be readable by the other site, with what it needs to act on it.
        simple = await http.get("/api/v1/me", headers={"origin": ALLOWED})
        assert simple.status_code == 401
        assert simple.headers["access-control-allow-origin"] == ALLOWED
        exposed = {h.strip().lower() for h in simple.headers["access-control-expose-headers"].split(",")}
        assert {h.lower() for h in CORS_RESPONSE_HEADERS} <= exposed
        assert {"etag", "location", "retry-after", "ratelimit-remaining"} <= exposed


# With the allow-list, a foreign origin; by default (same origin only), even the origin allowed elsewhere.
@pytest.mark.parametrize(("which", "origin"), [("configured", FOREIGN), ("default", ALLOWED)])
async def test_another_origin_gets_no_cors_headers(apps: dict[str, FastAPI], which: str, origin: str) -> None:
    async with serving(apps, which) as http:
        preflight = await http.options(
            "/api/v1/deals/x",
            headers={"origin": origin, "access-control-request-method": "PATCH"},
        )
        simple = await http.get("/api/v1/me", headers={"origin": origin})
    assert preflight.status_code in (400, 405)
    # Starlette lists its methods and headers all the same: without Allow-Origin a browser reads nothing of it.
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in simple.headers


def test_the_allow_list_is_comma_separated_origins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIELDBOOK_CORS_ORIGINS", f"{ALLOWED}, http://localhost:5173")
    assert Settings().cors_origins == [ALLOWED, "http://localhost:5173"]
    for wrong in ("*", f"{ALLOWED}/", "crm.example.com", f"{ALLOWED}/app"):
        with pytest.raises(ValidationError, match="cors_origins"):
            Settings(cors_origins=[wrong])
