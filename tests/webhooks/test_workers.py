"""The two ways webhooks leave: the worker `fieldbook serve` runs in its own process (woken by each commit), and
`fieldbook worker` processes; both on a database whose writes really commit."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook
from typer.testing import CliRunner

from api.cli import app as cli
from api.core.db import Database, make_engine
from api.main import create_app
from api.settings import get_settings
from tests.conftest import own_database
from tests.factories import Tenant, make_tenant
from tests.webhooks.conftest import settings_with
from tests.webhooks.receiver import Receiver, serve


@contextlib.asynccontextmanager
async def running(url: str, *, worker: bool) -> AsyncIterator[tuple[httpx.AsyncClient, Tenant]]:
    engine = make_engine(url)
    db = Database(engine)
    app = create_app(settings_with(database_url=url, webhook_worker=worker, webhook_poll_seconds=0.2), database=db)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
        ):
            async with db.writer() as session:
                tenant = await make_tenant(session, client)
            yield client, tenant
    finally:
        await engine.dispose()


async def subscribe_and_change(client: httpx.AsyncClient, tenant: Tenant, url: str) -> str:
    made = await client.post("/api/v1/webhooks", json={"url": url, "events": ["company.*"]}, headers=tenant.headers)
    assert made.status_code == 201, made.text
    company = await client.post("/api/v1/companies", json={"name": "Ferretería Olmo"}, headers=tenant.headers)
    assert company.status_code == 201, company.text
    secret: str = made.json()["secret"]
    return secret


async def test_the_serving_process_delivers_as_soon_as_the_change_commits(committed_url: str) -> None:
    with serve(Receiver()) as receiver:
        async with running(committed_url, worker=True) as (client, tenant):
            secret = await subscribe_and_change(client, tenant, receiver.url)
            for _ in range(500):
                if receiver.received:
                    break
                await asyncio.sleep(0.01)
    [request] = receiver.received
    assert Webhook(secret).verify(request.body, request.headers)["type"] == "company.created"


@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[str]:
    with own_database("sqlite", tmp_path) as url:
        monkeypatch.setenv("FIELDBOOK_DATABASE_URL", url)
        monkeypatch.setenv("FIELDBOOK_WEBHOOK_ALLOW_LOOPBACK", "true")
        get_settings.cache_clear()
        yield url
    get_settings.cache_clear()


def test_fieldbook_worker_delivers_what_is_due(cli_database: str) -> None:
    with serve(Receiver()) as receiver:

        async def prepare() -> str:
            async with running(cli_database, worker=False) as (client, tenant):
                return await subscribe_and_change(client, tenant, receiver.url)

        secret = asyncio.run(prepare())
        assert receiver.received == [], "no worker ran yet"
        result = CliRunner().invoke(cli, ["worker", "--once"])
        assert result.exit_code == 0, result.output
    [request] = receiver.received
    assert Webhook(secret).verify(request.body, request.headers)["type"] == "company.created"
