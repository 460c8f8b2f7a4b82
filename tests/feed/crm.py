"""HTTP helpers shared by the deal, activity, feed and share tests: status checks that show the body on failure,
If-Match headers, paging a list to its end, and a count of what an organisation has written (to prove that a
refused request left nothing behind)."""

import uuid
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.activities.models import Activity
from api.core.changes import Change
from api.core.errors import PROBLEM_JSON
from api.deals.models import Deal, DealLine, DealStageEvent
from api.feed.models import FeedEvent
from api.sharing.models import Share

API = "/api/v1"
DEALS = f"{API}/deals"
ACTIVITIES = f"{API}/activities"
FEED = f"{API}/feed"
SHARES = f"{API}/shares"
PIPELINES = f"{API}/pipelines"
STAGES = f"{API}/stages"

Json = dict[str, Any]
Headers = dict[str, str]


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def refused(response: httpx.Response, status: int, pointer: str | None = None) -> Json:
    """A problem+json answer with `status`; with `pointer`, one of its errors names that body field."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: Json = response.json()
    if pointer is not None:
        assert pointer in [e.get("pointer") for e in body.get("errors", [])], body
    return body


def if_match(headers: Headers, version: int | str) -> Headers:
    return {**headers, "If-Match": f'"{version}"'}


async def pages(
    client: httpx.AsyncClient, headers: Headers, path: str, *, limit: int, short: bool = False, **params: Any
) -> list[Json]:
    """Every item of a keyset-paged list, page by page; no item may come twice. Pages before the last are full
    unless `short` (a feed page of a viewer who sees little stops after a bounded scan)."""
    items: list[Json] = []
    cursor = None
    for _ in range(1000):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = ok(await client.get(path, params=query, headers=headers))
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert short or len(page["items"]) == limit, "a page before the last one is full"
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids)), "an item came twice"
    return items


async def default_pipeline(client: httpx.AsyncClient, headers: Headers) -> Json:
    pipelines = ok(await client.get(PIPELINES, headers=headers))["items"]
    default: Json = next(p for p in pipelines if p["is_default"])
    return default


def stage(pipeline: Json, name: str) -> str:
    """The id of the pipeline's stage called `name`."""
    return str(next(s["id"] for s in pipeline["stages"] if s["name"] == name))


async def written(session: AsyncSession, org_id: uuid.UUID) -> dict[str, int]:
    """What the organisation holds: rows per table, and the sum of deal and activity versions (a write that bumps
    a version without adding a row shows too)."""
    found: dict[str, int] = {}
    for model in (Deal, DealLine, DealStageEvent, Activity, Share, FeedEvent, Change):
        table = model.__table__  # type: ignore[attr-defined]
        found[table.name] = int(
            await session.scalar(sa.select(sa.func.count()).select_from(table).where(table.c.org_id == org_id)) or 0
        )
    for model in (Deal, DealLine, Activity, Share):
        table = model.__table__  # type: ignore[attr-defined]
        versions = sa.select(sa.func.coalesce(sa.func.sum(table.c.version), 0)).where(table.c.org_id == org_id)
        found[f"{table.name}.versions"] = int(await session.scalar(versions) or 0)
    return found
