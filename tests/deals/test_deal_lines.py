"""A deal's lines over HTTP: what a product fills in, discounts and rounding, the amount as their total, products
priced in another currency, and the amount that only the lines may change."""

import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.factories import make_tenant, sign_in
from tests.feed.crm import API, DEALS, Headers, Json, if_match, ok, refused, written

pytestmark = pytest.mark.asyncio


async def _product(client: httpx.AsyncClient, admin: Headers, **body: object) -> Json:
    product: Json = ok(await client.post(f"{API}/products", json=body, headers=admin), 201)
    return product


async def _lines(client: httpx.AsyncClient, headers: Headers, deal_id: str, *lines: Json) -> httpx.Response:
    return await client.put(f"{DEALS}/{deal_id}/lines", json={"lines": list(lines)}, headers=headers)


async def test_lines_take_the_product_s_name_and_price_and_make_the_amount(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    van = await _product(client, tenant.headers, name="Van", sku="VAN-1", price_minor=2_500_000)
    deal = ok(await client.post(DEALS, json={"title": "Fleet", "amount_minor": 7}, headers=rep), 201)

    made = ok(
        await _lines(
            client,
            rep,
            deal["id"],
            {"product_id": van["id"]},
            {"product_id": van["id"], "name": "Van, long wheelbase", "unit_price_minor": 2_700_000, "quantity": 2},
            {"name": "Setup", "unit_price_minor": 999, "quantity": 1, "discount_percent": 15},
            # Halves round up to the next cent, as on an invoice: 1 x 1 cent at 50 % is 1 cent, 3 x 1 at 50 % is 2.
            {"name": "Sticker", "unit_price_minor": 1, "discount_percent": 50},
            {"name": "Sticker pack", "unit_price_minor": 1, "quantity": 3, "discount_percent": 50},
            {"name": "Free mats", "unit_price_minor": 4000, "quantity": 4, "discount_percent": 100},
        )
    )
    shown = [
        (line["product_id"], line["name"], line["quantity"], line["unit_price_minor"], line["amount_minor"])
        for line in made["lines"]
    ]
    assert shown == [
        (van["id"], "Van", 1, 2_500_000, 2_500_000),
        (van["id"], "Van, long wheelbase", 2, 2_700_000, 5_400_000),
        (None, "Setup", 1, 999, 849),
        (None, "Sticker", 1, 1, 1),
        (None, "Sticker pack", 3, 1, 2),
        (None, "Free mats", 4, 4000, 0),
    ]
    assert [line["discount_percent"] for line in made["lines"]] == [0, 0, 15, 50, 50, 100]
    assert made["amount_minor"] == sum(line["amount_minor"] for line in made["lines"]) == 7_900_852
    assert made["version"] == deal["version"] + 1
    # The product's later price change does not reach lines already on the deal.
    ok(await client.patch(f"{API}/products/{van['id']}", json={"price_minor": 1}, headers=tenant.headers))
    again = ok(await client.get(f"{DEALS}/{deal['id']}", headers=rep))
    assert again["lines"] == made["lines"] and again["amount_minor"] == 7_900_852

    # Lines given on creation make the amount too (an amount sent alongside is overruled).
    created = ok(
        await client.post(
            DEALS,
            json={"title": "Two vans", "amount_minor": 1, "lines": [{"product_id": van["id"], "quantity": 2}]},
            headers=rep,
        ),
        201,
    )
    assert created["amount_minor"] == 2 and [line["amount_minor"] for line in created["lines"]] == [2]


async def test_a_product_in_another_currency_needs_a_price(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    usd = await _product(client, tenant.headers, name="Import", price_minor=900, currency="USD")
    eur = await _product(client, tenant.headers, name="Local", price_minor=100)
    rival = await make_tenant(session, client, "Rival")
    foreign = await _product(client, rival.headers, name="Theirs", price_minor=100)
    deal = ok(await client.post(DEALS, json={"title": "Imports"}, headers=rep), 201)
    before = await written(session, tenant.org.id)

    refused(await _lines(client, rep, deal["id"], {"product_id": usd["id"]}), 422, "#/lines/0/unit_price_minor")
    refused(
        await _lines(client, rep, deal["id"], {"product_id": eur["id"]}, {"product_id": usd["id"]}),
        422,
        "#/lines/1/unit_price_minor",
    )
    refused(
        await client.post(DEALS, json={"title": "x", "lines": [{"product_id": usd["id"]}]}, headers=rep),
        422,
        "#/lines/0/unit_price_minor",
    )
    refused(await _lines(client, rep, deal["id"], {"product_id": foreign["id"]}), 422, "#/lines/0/product_id")
    refused(await _lines(client, rep, deal["id"], {"product_id": str(uuid.uuid4())}), 422, "#/lines/0/product_id")
    assert await written(session, tenant.org.id) == before

    priced = ok(await _lines(client, rep, deal["id"], {"product_id": usd["id"], "unit_price_minor": 850}))
    assert [(line["name"], line["unit_price_minor"]) for line in priced["lines"]] == [("Import", 850)]
    assert (priced["amount_minor"], priced["currency"]) == (850, "EUR")
    # A deal in dollars takes the dollar product's price as it is.
    dollars = ok(await client.post(DEALS, json={"title": "US", "currency": "USD"}, headers=rep), 201)
    assert ok(await _lines(client, rep, dollars["id"], {"product_id": usd["id"]}))["amount_minor"] == 900


async def test_the_amount_of_a_deal_with_lines_is_theirs_to_change(
    session: AsyncSession, client: httpx.AsyncClient
) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    deal = ok(await client.post(DEALS, json={"title": "Fleet", "amount_minor": 500}, headers=rep), 201)
    path = f"{DEALS}/{deal['id']}"
    # Without lines the amount and currency are the deal's own.
    manual = ok(await client.patch(path, json={"amount_minor": 800, "currency": "USD"}, headers=rep))
    assert (manual["amount_minor"], manual["currency"]) == (800, "USD")

    with_lines = ok(await _lines(client, rep, deal["id"], {"name": "Van", "unit_price_minor": 300, "quantity": 2}))
    assert with_lines["amount_minor"] == 600
    before = await written(session, tenant.org.id)
    refused(await client.patch(path, json={"amount_minor": 1000}, headers=rep), 422, "#/amount_minor")
    refused(await client.patch(path, json={"currency": "EUR"}, headers=rep), 422, "#/currency")
    refused(await client.patch(path, json={"title": "Fleet II", "amount_minor": 1}, headers=rep), 422, "#/amount_minor")
    assert await written(session, tenant.org.id) == before
    # Other fields still change.
    assert ok(await client.patch(path, json={"title": "Fleet II"}, headers=rep))["amount_minor"] == 600

    # Once the lines are gone, the amount is the deal's own again.
    cleared = ok(await _lines(client, rep, deal["id"]))
    assert cleared["lines"] == []
    assert ok(await client.patch(path, json={"amount_minor": 1000}, headers=rep))["amount_minor"] == 1000


async def test_changed_lines_give_the_deal_a_new_version(session: AsyncSession, client: httpx.AsyncClient) -> None:
    tenant = await make_tenant(session, client)
    rep = await sign_in(client, tenant.rep)
    deal = ok(await client.post(DEALS, json={"title": "Fleet"}, headers=rep), 201)
    first = await _lines(client, rep, deal["id"], {"name": "Van", "unit_price_minor": 100})
    etag = first.headers["ETag"]
    # Two phones read the deal at this version; the first swaps the line for another of the same price.
    swapped = await client.put(
        f"{DEALS}/{deal['id']}/lines",
        json={"lines": [{"name": "Truck", "unit_price_minor": 100}]},
        headers={**rep, "If-Match": etag},
    )
    ok(swapped)
    assert swapped.headers["ETag"] != etag
    # The second phone's edit, made on what it read before, must not silently replace the first one's.
    stale = await client.put(
        f"{DEALS}/{deal['id']}/lines",
        json={"lines": [{"name": "Bus", "unit_price_minor": 100}]},
        headers=if_match(rep, etag.strip('"')),
    )
    refused(stale, 412)
