"""docs/api.md is run, not only read: a documented request whose answer does not match is a defect.

The page marks its blocks for this test with an HTML comment on the line before the fence:
- `<!-- test -->` before a ```python block: run, in order, in one namespace, against a real server (uvicorn, on a
  database of the test's own: SQLite and PostgreSQL), the page's placeholder URLs replaced by the server's;
- `<!-- output: NAME -->` before a ```json block: the value the blocks left in NAME equals it;
- `<!-- shape: NAME -->` before a ```json block: NAME has the same keys, at every level (lists by their first item).
The receiver the page defines is then sent events signed by the API's own signer (api/webhooks/signing.py).
"""

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth.models import Role
from api.core.db import Database, make_engine
from api.deals import deals as deal_service
from api.main import create_app
from api.settings import Settings
from api.webhooks import events, signing
from tests.conftest import uvicorn_serving
from tests.factories import PASSWORD, make_company, make_deal, make_org, make_user, viewer_of_user

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
SERVER = "https://fieldbook.example.com"
RECEIVER = "https://erp.comerciallevante.es"
ADMIN_EMAIL = "ana.garcia@comerciallevante.es"
_BLOCK = re.compile(r"^<!-- (?P<mark>[^>]*?) -->\n```(?P<lang>\w+)\n(?P<body>.*?)^```", re.M | re.S)
_FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```", re.M | re.S)


@dataclass(frozen=True)
class Block:
    mark: str
    lang: str
    body: str
    line: int


def marked_blocks() -> list[Block]:
    text = DOC.read_text()
    return [
        Block(m["mark"].strip(), m["lang"], m["body"], text.count("\n", 0, m.start("body")) + 1)
        for m in _BLOCK.finditer(text)
    ]


def test_every_block_of_the_page_parses() -> None:
    text = DOC.read_text()
    fences = list(_FENCE.finditer(text))
    assert fences
    for fence in fences:
        line = text.count("\n", 0, fence.start("body")) + 1
        if fence["lang"] == "python":
            compile(fence["body"], f"docs/api.md:{line}", "exec")
        elif fence["lang"] == "json":
            json.loads(fence["body"])
    marks = {b.mark.split(":")[0] for b in marked_blocks()}
    assert marks <= {"test", "output", "shape"}, f"unknown marks: {marks}"
    assert sum(b.mark == "test" for b in marked_blocks()) >= 4


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return None


def _same_shape(found: Any, documented: Any) -> bool:
    if isinstance(documented, dict):
        return (
            isinstance(found, dict)
            and found.keys() == documented.keys()
            and all(_same_shape(found[k], documented[k]) for k in documented)
        )
    if isinstance(documented, list):
        return isinstance(found, list) and (not found or not documented or _same_shape(found[0], documented[0]))
    return not isinstance(found, dict | list)


@pytest.fixture
def server(committed_url: str) -> Iterator[str]:
    # No worker: the endpoint the page subscribes is not there; loopback, so the page's https URL can stand in.
    settings = Settings(database_url=committed_url, webhook_worker=False, webhook_allow_loopback=True)
    with uvicorn_serving(create_app(settings)) as url:
        yield url


@dataclass(frozen=True)
class Seeded:
    company_id: str
    deal_id: str
    deleted_deal_id: str


async def _seed(url: str) -> Seeded:
    """What the integration finds: an administrator, a company, a deal, and a deal made then deleted."""
    engine = make_engine(url, null_pool=True)
    try:
        async with Database(engine).writer() as session:
            org = await make_org(session, "Comercial Levante S.L.", locale="es")
            admin = await make_user(session, org, role=Role.admin, name="Ana García", email=ADMIN_EMAIL)
            company = await make_company(session, admin, name="Frutas Martínez S.L.")
            deal = await make_deal(session, admin, title="Renovación TPV", company_id=company.id, amount_minor=1215000)
            gone = await make_deal(session, admin, title="Formación del personal", company_id=company.id)
            viewer = await viewer_of_user(session, admin)
            await deal_service.delete_deal(session=session, viewer=viewer, deal_id=gone.id, expected_version=None)
            await session.commit()
            return Seeded(str(company.id), str(deal.id), str(gone.id))
    finally:
        await engine.dispose()


async def _run(blocks: list[Block], namespace: dict[str, Any], server: str) -> None:
    for block in blocks:
        kind, _, name = block.mark.partition(":")
        name = name.strip()
        where = f"docs/api.md:{block.line}"
        if kind == "test":
            code = block.body.replace(SERVER, server).replace(RECEIVER, "http://127.0.0.1:9")
            await asyncio.to_thread(exec, compile(code, where, "exec"), namespace)
        elif kind == "output":
            assert namespace[name] == json.loads(block.body), f"{where}: `{name}` is not what the page shows"
        elif kind == "shape":
            found, documented = namespace[name], json.loads(block.body)
            shown = f"{where}: `{name}` is {_shape(found)}, the page shows {_shape(documented)}"
            assert _same_shape(found, documented), shown


async def _post(receiver: Any, body: str, headers: dict[str, str]) -> int:
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="https://erp.comerciallevante.es") as http:
        return (await http.post("/fieldbook/webhooks", content=body.encode(), headers=headers)).status_code


async def test_the_integration_the_page_shows_runs(server: str, committed_url: str) -> None:
    seeded = await _seed(committed_url)
    namespace: dict[str, Any] = {"ADMIN_PASSWORD": PASSWORD, "__name__": "docs_api"}
    await _run(marked_blocks(), namespace, server)

    # The key: made once, with its scopes; the changes: read to the end, the copy current, the deleted deal dropped.
    assert namespace["API_KEY"].startswith("fbk_")
    assert set(namespace["created"]["scopes"]) == {"changes:read", "clients:read", "deals:read", "webhooks:manage"}
    copies = namespace["copies"]
    assert seeded.company_id in copies and seeded.deal_id in copies and seeded.deleted_deal_id not in copies
    assert copies[seeded.deal_id]["amount_minor"] == 1215000
    async with httpx.AsyncClient(base_url=f"{server}/api/v1") as http:
        after = await http.get(
            "/changes",
            params={"cursor": namespace["cursor"]},
            headers={"Authorization": f"Bearer {namespace['API_KEY']}"},
        )
    # Read to the end: all that came after is the page's own webhook endpoint (section 4).
    assert [(c["entity"], c["op"]) for c in after.json()["items"]] == [("webhook_endpoint", "create")]

    # The receiver: takes what the API signs, once per id; refuses a forged body, a stale one, another secret's.
    receiver, secret = namespace["receiver"], namespace["WEBHOOK_SECRET"]
    event_id = str(uuid.uuid4())
    data = {"entity": "deal", "id": seeded.deal_id, "version": 2, "op": "update", "changes": {}, "object": {}}
    now = datetime.now(UTC)
    body = events.body(uuid.UUID(event_id), "deal.won", now, data)
    signed = signing.headers(event_id, body, [secret], now)
    assert await _post(receiver, body, signed) == 204
    assert await _post(receiver, body, signed) == 204  # a retry: same id, taken once
    assert namespace["seen"] == {event_id}
    assert await _post(receiver, body.replace('"version":2', '"version":3'), signed) == 400
    stale = now - timedelta(hours=1)
    assert await _post(receiver, body, signing.headers("late", body, [secret], stale)) == 400
    assert await _post(receiver, body, signing.headers("other", body, [signing.new_secret()], now)) == 400
    assert namespace["seen"] == {event_id}
