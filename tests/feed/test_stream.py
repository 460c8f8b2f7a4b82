"""The live feed end to end: a real uvicorn server (in a thread of this process) serving `create_app()` on a real,
committed database; streams opened over TCP with httpx; activities logged over HTTP by other users.

httpx's ASGITransport cannot stream an endless response, hence the server. On PostgreSQL the news travels through
NOTIFY (sent by the writing transaction) and the server's LISTEN connection; on SQLite through the in-process
broker after the commit. Either way each stream reads the events back with its own reader's visibility."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from api.auth.models import Role
from api.core.db import Database, make_engine
from api.main import create_app
from api.settings import Settings
from tests.conftest import uvicorn_serving
from tests.factories import PASSWORD, make_company, make_org, make_team, make_user

pytestmark = pytest.mark.asyncio

STREAM = "/api/v1/feed/stream"
WAIT = 10.0  # seconds an expected event may take (generous: CI machines stall)


@pytest.fixture
def server(committed_url: str) -> Iterator[str]:
    with uvicorn_serving(create_app(Settings(database_url=committed_url))) as url:
        yield url


class Stream:
    """One open `GET /feed/stream` (or another event stream), its server-sent events parsed into a queue by a
    background task."""

    def __init__(self, http: httpx.AsyncClient, headers: dict[str, str], path: str = STREAM) -> None:
        self.events: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.status: int | None = None
        self.content_type = ""
        self._task = asyncio.create_task(self._read(http, headers, path))

    async def _read(self, http: httpx.AsyncClient, headers: dict[str, str], path: str) -> None:
        async with http.stream("GET", path, headers=headers, timeout=httpx.Timeout(10, read=None)) as response:
            self.status, self.content_type = response.status_code, response.headers.get("content-type", "")
            fields: dict[str, str] = {}
            async for line in response.aiter_lines():
                if not line:
                    if fields:
                        await self.events.put(fields)
                    fields = {}
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                name = name or "comment"
                fields[name] = f"{fields[name]}\n{value}" if name in fields else value

    async def next(self, timeout: float = WAIT) -> dict[str, str]:
        get = asyncio.ensure_future(self.events.get())
        done, _ = await asyncio.wait({get, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if get in done:
            return get.result()
        get.cancel()
        if self._task in done:
            self._task.result()  # the stream failed: say why
            raise AssertionError(f"the stream ended (status {self.status})")
        raise AssertionError(f"no event within {timeout} s")

    async def opened(self) -> None:
        """Wait for the server's first comment: from then on this stream is subscribed."""
        first = await self.next()
        assert self.status == 200 and self.content_type.startswith("text/event-stream"), self.content_type
        assert first.get("comment") == "connected", first

    async def next_item(self, timeout: float = WAIT) -> dict[str, Any]:
        """The next feed item (keep-alive comments skipped)."""
        while True:
            event = await self.next(timeout)
            if event.get("event") == "feed":
                item: dict[str, Any] = json.loads(event["data"])
                assert event["id"] == item["id"]
                return item

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await self._task


@contextlib.asynccontextmanager
async def streams(http: httpx.AsyncClient, *headers: dict[str, str], path: str = STREAM) -> AsyncIterator[list[Stream]]:
    opened = [Stream(http, h, path) for h in headers]
    try:
        for stream in opened:
            await stream.opened()
        yield opened
    finally:
        for stream in opened:
            await stream.close()


async def _sign_in(http: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _log(http: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await http.post("/api/v1/activities", json=body, headers=headers)
    assert response.status_code == 201, response.text
    activity: dict[str, Any] = response.json()["activity"]
    return activity


async def test_a_logged_call_reaches_the_streams_of_those_who_may_see_it(committed_url: str, server: str) -> None:
    # The cast, committed for real: a manager over the rep's team, a rep of another team, another organisation.
    engine = make_engine(committed_url)
    try:
        async with Database(engine).writer() as session:
            org = await make_org(session, "Acme")
            sales = await make_team(session, org, name="Sales")
            manager = await make_user(session, org, role=Role.manager, team=sales)
            rep = await make_user(session, org, role=Role.rep, team=sales)
            outsider = await make_user(session, org, role=Role.rep, team=await make_team(session, org, name="Other"))
            client_of_rep = await make_company(session, rep, name="Transportes Núñez")
            rival = await make_user(session, await make_org(session, "Rival"), role=Role.rep)
    finally:
        await engine.dispose()

    async with httpx.AsyncClient(base_url=server, timeout=10) as http:
        manager_h, rep_h, outsider_h, rival_h = [
            await _sign_in(http, user.email) for user in (manager, rep, outsider, rival)
        ]
        unauthenticated = await http.get(STREAM)
        assert unauthenticated.status_code == 401

        async with streams(http, manager_h, outsider_h) as (manager_stream, outsider_stream):
            call = await _log(
                http, rep_h, kind="call", company_id=str(client_of_rep.id), direction="outbound", outcome="connected"
            )
            item = await manager_stream.next_item()
            assert (item["kind"], item["actor_id"]) == ("activity", str(rep.id))
            assert item["activity"]["id"] == call["id"] and item["activity"]["outcome"] == "connected"
            assert item["company"]["name"] == "Transportes Núñez"

            # News the manager may not see (an outsider's own note, another organisation's call) never reaches
            # them: the next thing they hear of is the rep's second call.
            note = await _log(http, outsider_h, kind="note", subject="Outsider's note")
            await _log(http, rival_h, kind="call", subject="Rival's call")
            second = await _log(http, rep_h, kind="call", subject="Second call", company_id=str(client_of_rep.id))
            assert (await manager_stream.next_item())["activity"]["id"] == second["id"]

            # And the outsider heard of their own note only: never of the rep's calls, which they may not see.
            heard = await outsider_stream.next_item()
            assert heard["activity"]["id"] == note["id"]
            with pytest.raises(AssertionError, match="no event"):
                await outsider_stream.next_item(timeout=1.0)


async def test_a_committed_write_pokes_the_open_apps_it_concerns(committed_url: str, server: str) -> None:
    engine = make_engine(committed_url)
    try:
        async with Database(engine).writer() as session:
            org = await make_org(session, "Acme")
            rep = await make_user(session, org, role=Role.rep, team=await make_team(session, org, name="Sales"))
            colleague = await make_user(session, org, role=Role.rep)
            rival = await make_user(session, await make_org(session, "Rival"), role=Role.rep)
    finally:
        await engine.dispose()

    async with httpx.AsyncClient(base_url=server, timeout=10) as http:
        rep_h, colleague_h, rival_h = [await _sign_in(http, u.email) for u in (rep, colleague, rival)]
        async with streams(http, rep_h, colleague_h, rival_h, path="/api/v1/sync/events") as (
            rep_s,
            colleague_s,
            rival_s,
        ):
            made = await http.post("/api/v1/companies", json={"name": "Poke SA"}, headers=rep_h)
            assert made.status_code == 201, made.text
            assert (await rep_s.next())["event"] == "poke"
            # Not in the colleague's working set: their app is not asked to pull; the other organisation hears
            # nothing at all, and a refused write commits nothing and pokes no one.
            refused = await http.post("/api/v1/companies", json={"name": ""}, headers=rep_h)
            assert refused.status_code == 422
            for stream in (colleague_s, rival_s, rep_s):
                with pytest.raises(AssertionError, match="no event"):
                    await stream.next(timeout=1)

            # Writes in quick succession: a poke at the first, then one for all the others (a pull catches up
            # with them all), a second later.
            started = asyncio.get_running_loop().time()
            for i in range(4):
                busy = await http.post("/api/v1/companies", json={"name": f"Busy {i}"}, headers=rep_h)
                assert busy.status_code == 201, busy.text
            quick = asyncio.get_running_loop().time() - started < 0.9
            assert (await rep_s.next())["event"] == "poke"
            assert (await rep_s.next())["event"] == "poke"
            if quick:  # on a machine that stalls, the writes may span more than one interval
                with pytest.raises(AssertionError, match="no event"):
                    await rep_s.next(timeout=1.5)

            # A deletion may take a record out of any app: every app of the organisation pulls.
            gone = await http.delete(f"/api/v1/companies/{made.json()['id']}", headers=rep_h)
            assert gone.status_code == 204, gone.text
            assert (await colleague_s.next())["event"] == "poke"
            with pytest.raises(AssertionError, match="no event"):
                await rival_s.next(timeout=1)
