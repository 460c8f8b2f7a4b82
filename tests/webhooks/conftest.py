"""An app whose webhooks may reach 127.0.0.1 (the test setting), with short timeouts and retries."""

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.db import Database
from api.main import create_app
from api.settings import Settings
from api.webhooks import worker
from tests.factories import Tenant, make_tenant

FAST = {
    "webhook_allow_loopback": True,
    # Long enough that a loaded CI machine never times out an answer that came (only the scripted sleep does).
    "webhook_timeout_seconds": 2.0,
    "webhook_lease_seconds": 4.0,
    "webhook_retry_base_seconds": 0.02,
    "webhook_retry_cap_seconds": 0.05,
}


@dataclass
class Hooks:
    """The app under test, its settings and database, and a way to run the worker's rounds by hand."""

    db: Database
    settings: Settings
    client: httpx.AsyncClient
    http: httpx.AsyncClient

    async def round(self) -> int:
        return await worker.deliver_due(self.db, self.settings, self.http)

    async def create(self, tenant: Tenant, url: str, events: list[str], **extra: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/webhooks", json={"url": url, "events": events, **extra}, headers=tenant.headers
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def company(self, tenant: Tenant, name: str = "Transportes Ruiz") -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/companies", json={"name": f"{name} {uuid.uuid4().hex[:6]}"}, headers=tenant.headers
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


def settings_with(**overrides: Any) -> Settings:
    return Settings(**{**FAST, **overrides})


@contextlib.asynccontextmanager
async def hooks_for(db: Database, **overrides: Any) -> AsyncIterator[Hooks]:
    settings = settings_with(**overrides)
    app = create_app(settings, database=db)
    transport = httpx.ASGITransport(app=app, client=(f"10.1.{uuid.uuid4().int % 250}.1", 4000))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        worker.http_client() as http,
    ):
        yield Hooks(db, settings, client, http)


@pytest.fixture
async def hooks(db: Database) -> AsyncIterator[Hooks]:
    async with hooks_for(db) as made:
        yield made


@pytest.fixture
async def strict(db: Database) -> AsyncIterator[Hooks]:
    """As production runs: loopback refused like any other non-public address."""
    async with hooks_for(db, webhook_allow_loopback=False) as made:
        yield made


@pytest.fixture
async def tenant(session: AsyncSession, hooks: Hooks) -> Tenant:
    return await make_tenant(session, hooks.client)
