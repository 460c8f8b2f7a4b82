"""Delivery to a real receiver on 127.0.0.1: retries through failures, the same id and a valid signature on every
attempt, no event lost when a worker is killed mid-delivery, and the delivery log."""

import asyncio
import contextlib
import json
import threading

from standardwebhooks import Webhook

from api.webhooks.models import EventStatus
from tests.factories import Tenant
from tests.webhooks.conftest import Hooks
from tests.webhooks.receiver import Receiver, reserve_port, serve


async def rounds(hooks: Hooks, until: int, receiver: Receiver, limit: int = 200) -> None:
    """Run the worker until the receiver has seen `until` requests (retries fall due within milliseconds)."""
    for _ in range(limit):
        if len(receiver.received) >= until:
            return
        await hooks.round()
        await asyncio.sleep(0.03)
    raise AssertionError(f"the receiver got {len(receiver.received)} request(s), not {until}")


async def events_of(hooks: Hooks, tenant: Tenant, webhook_id: str) -> list[dict]:
    response = await hooks.client.get(f"/api/v1/webhooks/{webhook_id}/events", headers=tenant.headers)
    assert response.status_code == 200, response.text
    items: list[dict] = response.json()["items"]
    return items


async def test_an_event_survives_refusal_500_and_timeout_and_arrives_signed_with_one_id(
    hooks: Hooks, tenant: Tenant
) -> None:
    sock = reserve_port()
    receiver = Receiver(script=[500, ("sleep", 5)], then=204)
    receiver.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    endpoint = await hooks.create(tenant, receiver.url, ["company.created"])
    company = await hooks.company(tenant)

    # Nothing listens yet: the first attempt is refused at the TCP level.
    assert await hooks.round() == 1
    with serve(receiver, sock):
        await rounds(hooks, 3, receiver)  # 500, then a timeout, then 204
        await asyncio.sleep(0.05)
        await hooks.round()

    [event] = await events_of(hooks, tenant, endpoint["id"])
    assert event["status"] == EventStatus.delivered
    assert event["attempts"] == 4
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert ids == {event["id"]}
    verifier = Webhook(endpoint["secret"])
    for request in receiver.received:
        payload = verifier.verify(request.body, request.headers)
        assert payload["id"] == event["id"]
        assert payload["type"] == "company.created"
        assert payload["data"]["id"] == company["id"]
        assert payload["data"]["version"] == company["version"]
        assert payload["data"]["object"]["name"] == company["name"]
    assert len({r.body for r in receiver.received}) == 1, "every attempt sends the same bytes"

    log = await hooks.client.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries", headers=tenant.headers)
    attempts = sorted(log.json()["items"], key=lambda d: d["attempt"])
    assert [(a["attempt"], a["status_code"], a["is_success"]) for a in attempts] == [
        (1, None, False),
        (2, 500, False),
        (3, None, False),
        (4, 204, True),
    ]
    assert "ConnectError" in attempts[0]["error"]
    assert attempts[1]["response_excerpt"] == "answer 500"
    assert attempts[2]["error"] == "no answer within 2 s"
    assert attempts[2]["latency_ms"] >= 1900
    assert all(a["event_id"] == event["id"] for a in attempts)


async def test_a_worker_killed_mid_delivery_loses_no_event(hooks: Hooks, tenant: Tenant) -> None:
    released = threading.Event()
    with serve(Receiver(script=[("hang", released)])) as receiver:
        endpoint = await hooks.create(tenant, receiver.url, ["*"])
        await hooks.company(tenant)
        killed = asyncio.create_task(hooks.round())
        for _ in range(300):
            if receiver.received:
                break
            await asyncio.sleep(0.01)
        killed.cancel()  # the worker dies while the receiver holds the request
        with contextlib.suppress(asyncio.CancelledError):
            await killed
        released.set()

        assert await hooks.round() == 0, "the dead worker's claim holds until its lease ends"
        await asyncio.sleep(hooks.settings.webhook_lease_seconds)
        assert await hooks.round() == 1
    [event] = await events_of(hooks, tenant, endpoint["id"])
    assert event["status"] == EventStatus.delivered
    assert [r.headers["webhook-id"] for r in receiver.received] == [event["id"], event["id"]]


async def test_events_follow_the_filters_and_a_win_is_its_own_event(hooks: Hooks, tenant: Tenant) -> None:
    with serve(Receiver()) as receiver:
        wins = await hooks.create(tenant, receiver.url, ["deal.won"])
        created = await hooks.create(tenant, receiver.url, ["*.created"])
        deal = await hooks.client.post("/api/v1/deals", json={"title": "Flota 2027"}, headers=tenant.headers)
        assert deal.status_code == 201, deal.text
        won = await hooks.client.post(f"/api/v1/deals/{deal.json()['id']}/win", json={}, headers=tenant.headers)
        assert won.status_code == 200, won.text

        assert [e["type"] for e in await events_of(hooks, tenant, wins["id"])] == ["deal.won"]
        assert [e["type"] for e in await events_of(hooks, tenant, created["id"])] == ["deal.created"]
        while await hooks.round():
            pass
    by_type = {json.loads(r.body)["type"]: json.loads(r.body) for r in receiver.received}
    assert set(by_type) == {"deal.won", "deal.created"}
    assert by_type["deal.won"]["data"]["changes"]["status"] == {"before": "open", "after": "won"}
    assert by_type["deal.won"]["data"]["version"] == won.json()["version"]


async def test_a_refused_write_writes_no_event(hooks: Hooks, tenant: Tenant) -> None:
    endpoint = await hooks.create(tenant, "https://93.184.216.34/hook", ["*"])
    company = await hooks.company(tenant)
    bad = await hooks.client.patch(
        f"/api/v1/companies/{company['id']}", json={"name": "x" * 5000}, headers=tenant.headers
    )
    assert bad.status_code == 422
    assert [e["type"] for e in await events_of(hooks, tenant, endpoint["id"])] == ["company.created"]
