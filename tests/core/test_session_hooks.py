"""The request session's before-commit hooks: one that registers another (a goal reached writes a feed entry, whose
notification is itself a hook) still sees it run in the same transaction."""

from types import SimpleNamespace

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from api.core.db import Database, before_commit, get_session


async def test_a_hook_registered_by_a_hook_runs_before_the_commit(db: Database) -> None:
    app = SimpleNamespace(state=SimpleNamespace(db=db))
    request = Request({"type": "http", "method": "POST", "app": app, "headers": []})
    ran: list[str] = []

    async def second(_session: AsyncSession) -> None:
        ran.append("second")

    async def first(session: AsyncSession) -> None:
        ran.append("first")
        before_commit(session, second)

    requests = get_session(request)
    session = await anext(requests)
    before_commit(session, first)
    # The route returned: the dependency runs its hooks, then commits.
    with pytest.raises(StopAsyncIteration):
        await anext(requests)

    assert ran == ["first", "second"]
