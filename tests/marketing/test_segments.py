"""Saved segments: create, read, change (If-Match), delete, the change log, applying one to the cards and their
export, who may write them, validation, and another organisation's segments."""

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.core.changes import Change
from tests.marketing.crm import CARDS, EXPORT, SEGMENTS, Base, csv_rows, make_base, names, ndjson

VIP_LOGISTICS = {
    "name": "VIP logistics",
    "description": "Spring promotion",
    "filters": {"tag": ["vip"], "industry": ["Logistics"], "consent": "any"},
}


@pytest.fixture
async def base(session: AsyncSession, client: httpx.AsyncClient) -> Base:
    return await make_base(session, client)


async def saved(client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(SEGMENTS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    segment: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/api/v1/segments/{segment['id']}"
    assert response.headers["etag"] == '"1"'
    return segment


async def test_a_segment_is_saved_read_changed_and_deleted(
    session: AsyncSession, client: httpx.AsyncClient, base: Base
) -> None:
    segment = await saved(client, base.marketing, VIP_LOGISTICS)
    path = f"{SEGMENTS}/{segment['id']}"

    assert segment["filters"] == {**dict.fromkeys(_filter_names(), None), **VIP_LOGISTICS["filters"]}
    assert segment["created_by_key_id"] is None and segment["created_by_user_id"] is not None
    got = await client.get(path, headers=base.cards_key)
    assert got.status_code == 200 and got.headers["etag"] == '"1"' and got.json() == segment

    stale = await client.patch(path, json={"name": "x"}, headers={**base.marketing, "If-Match": '"7"'})
    assert stale.status_code == 412, stale.text
    changed = await client.patch(
        path,
        json={"name": "VIP anywhere", "filters": {"tag": ["vip"]}},
        headers={**base.marketing, "If-Match": '"1"'},
    )
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == '"2"'
    assert changed.json()["name"] == "VIP anywhere"
    assert changed.json()["filters"]["industry"] is None and changed.json()["filters"]["tag"] == ["vip"]

    listed = await client.get(SEGMENTS, headers=base.tenant.headers)
    assert [s["id"] for s in listed.json()["items"]] == [segment["id"]]
    deleted = await client.delete(path, headers={**base.tenant.headers, "If-Match": '"2"'})
    assert deleted.status_code == 204, deleted.text
    assert (await client.get(path, headers=base.marketing)).status_code == 404
    assert (await client.get(SEGMENTS, headers=base.marketing)).json()["items"] == []

    logged = await session.scalars(
        select(Change.op).where(col(Change.entity) == "segment", col(Change.entity_id) == uuid.UUID(segment["id"]))
    )
    assert sorted(logged.all()) == ["create", "delete", "update"]


def _filter_names() -> list[str]:
    from api.marketing.schemas import CardFilters

    return list(CardFilters.model_fields)


async def test_segments_are_listed_by_name_a_page_at_a_time(client: httpx.AsyncClient, base: Base) -> None:
    for name in ("Charlie", "Alpha", "Bravo", "Delta", "Echo"):
        await saved(client, base.marketing, {"name": name})

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(SEGMENTS, params=params, headers=base.cards_key)).json()
        seen += [s["name"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]


async def test_applying_a_segment_gives_its_cards_in_the_list_and_the_exports(
    client: httpx.AsyncClient, base: Base
) -> None:
    segment = await saved(client, base.marketing, VIP_LOGISTICS)
    params = {"segment_id": segment["id"]}

    assert await names(client, base.marketing, **params) == [base.alfa.name]
    assert [c["name"] for c in await ndjson(client, base.cards_key, **params)] == [base.alfa.name]
    assert [r["contact_name"] for r in await csv_rows(client, base.marketing, **params)] == [
        base.ana.name,
        base.carla.name,
    ]


async def test_the_querys_filters_replace_the_segments_of_the_same_name(client: httpx.AsyncClient, base: Base) -> None:
    segment = await saved(client, base.marketing, VIP_LOGISTICS)

    # industry replaced: the VIP cards with a consenting contact in any industry but Retail's none.
    replaced = await names(client, base.marketing, segment_id=segment["id"], industry=["Logistics", "Retail"])
    narrowed = await names(client, base.marketing, segment_id=segment["id"], consent="phone")

    assert replaced == [base.alfa.name]
    assert narrowed == [base.alfa.name]
    assert await names(client, base.marketing, segment_id=segment["id"], tag="feria-2025", industry="Retail") == [
        base.beta.name
    ]


async def test_a_segment_with_deal_filters_needs_deals_read_to_apply(client: httpx.AsyncClient, base: Base) -> None:
    segment = await saved(client, base.marketing, {"name": "Big spenders", "filters": {"lifetime_value_min": 50000}})

    refused = await client.get(CARDS, params={"segment_id": segment["id"]}, headers=base.clients_key)
    allowed = await names(client, base.cards_key, segment_id=segment["id"])

    assert refused.status_code == 403, refused.text
    assert allowed == [base.alfa.name]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"name": ""}, "#/name"),
        ({"name": "x", "filters": {"lifetime_value_min": 10, "lifetime_value_max": 5}}, "#/filters/lifetime_value_max"),
        (
            {"name": "x", "filters": {"last_purchase_from": "2026-03-01", "last_purchase_to": "2026-01-01"}},
            "#/filters/last_purchase_to",
        ),
        ({"name": "x", "filters": {"consent": "fax"}}, "#/filters/consent"),
        ({"name": "x", "filters": {"owner": "me"}}, "#/filters/owner"),
        ({"name": "x", "filters": {"tag": "vip"}}, "#/filters/tag"),
        ({"name": "x", "created_by_user_id": str(uuid.uuid4())}, "#/created_by_user_id"),
    ],
)
async def test_bad_segments_are_a_422_naming_the_field(
    client: httpx.AsyncClient, base: Base, body: dict[str, Any], pointer: str
) -> None:
    response = await client.post(SEGMENTS, json=body, headers=base.marketing)

    assert response.status_code == 422, response.text
    assert pointer in [e.get("pointer") for e in response.json()["errors"]], response.text


async def test_a_bad_change_to_the_filters_is_a_422_and_changes_nothing(client: httpx.AsyncClient, base: Base) -> None:
    segment = await saved(client, base.marketing, VIP_LOGISTICS)
    path = f"{SEGMENTS}/{segment['id']}"

    response = await client.patch(
        path, json={"filters": {"lifetime_value_min": 9, "lifetime_value_max": 1}}, headers=base.marketing
    )
    null_name = await client.patch(path, json={"name": None}, headers=base.marketing)

    assert response.status_code == 422, response.text
    assert [e["pointer"] for e in response.json()["errors"]] == ["#/filters/lifetime_value_max"]
    assert null_name.status_code == 422, null_name.text
    assert (await client.get(path, headers=base.marketing)).json() == segment


async def test_keys_read_segments_but_never_write_them(client: httpx.AsyncClient, base: Base) -> None:
    segment = await saved(client, base.tenant.headers, VIP_LOGISTICS)
    path = f"{SEGMENTS}/{segment['id']}"

    assert (await client.get(SEGMENTS, headers=base.clients_key)).status_code == 200
    assert (await client.get(path, headers=base.clients_key)).status_code == 200
    for response in (
        await client.post(SEGMENTS, json={"name": "Mine"}, headers=base.cards_key),
        await client.patch(path, json={"name": "Mine"}, headers=base.cards_key),
        await client.delete(path, headers=base.cards_key),
    ):
        assert response.status_code == 403, response.text
    assert (await client.get(path, headers=base.marketing)).json() == segment


async def test_another_organisations_segments_are_not_found(
    session: AsyncSession, client: httpx.AsyncClient, base: Base
) -> None:
    other = await make_base(session, client, "Bravo Corp")
    theirs = await saved(client, other.marketing, {**VIP_LOGISTICS, "name": "Bravo secret segment"})
    path = f"{SEGMENTS}/{theirs['id']}"

    answers = [
        await client.get(path, headers=base.marketing),
        await client.patch(path, json={"name": "Mine now"}, headers=base.marketing),
        await client.delete(path, headers=base.tenant.headers),
        await client.get(CARDS, params={"segment_id": theirs["id"]}, headers=base.marketing),
        await client.get(EXPORT, params={"segment_id": theirs["id"]}, headers=base.cards_key),
    ]
    listed = await client.get(SEGMENTS, headers=base.marketing)

    for response in answers:
        assert response.status_code == 404, response.text
        assert "Bravo" not in response.text
    assert listed.json()["items"] == []
    assert (await client.get(path, headers=other.marketing)).json() == theirs
