"""Helpers shared by the client tests: HTTP shortcuts, the organisation's phone region, row counts."""

from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.clients.models import Company, Contact, ContactPoint, CustomField
from api.core.changes import Change
from tests.factories import Tenant

API = "/api/v1"


async def created(client: httpx.AsyncClient, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    """POST that must succeed with 201: the JSON body."""
    response = await client.post(f"{API}{path}", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def set_region(client: httpx.AsyncClient, tenant: Tenant, region: str) -> None:
    """The country phones typed without a prefix are read in, set as the admin would."""
    response = await client.patch(
        f"{API}/organization", json={"settings": {"phone_region": region}}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["settings"]["phone_region"] == region


async def every_page(client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any) -> list[Any]:
    """Every item of a list, following next_cursor; checks each page's size."""
    items: list[Any] = []
    cursor = None
    limit = int(params.get("limit", 50))
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(f"{API}{path}", params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        # A page that promises more is full.
        assert page["next_cursor"] is None or len(page["items"]) == limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def written(session: AsyncSession, org_id: Any) -> dict[str, int]:
    """How many rows of each kind the organisation has (deleted ones included): to show a refusal wrote nothing."""
    counts = {}
    for name, model in (
        ("company", Company),
        ("contact", Contact),
        ("contact_point", ContactPoint),
        ("custom_field", CustomField),
        ("change", Change),
    ):
        table = model.__table__  # type: ignore[attr-defined]
        counts[name] = await session.scalar(
            sa.select(sa.func.count()).select_from(table).where(table.c.org_id == org_id)
        )
    return counts


def pointers(response: httpx.Response) -> list[str]:
    """The JSON pointers a problem response names."""
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return [e.get("pointer") for e in response.json().get("errors", [])]
