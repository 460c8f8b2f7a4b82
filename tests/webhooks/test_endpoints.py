"""Managing endpoints: the secret shown once, rotation with both signatures, disabling on 410 and on sustained
failure (with the admins told in their feed), giving up, redelivery, the test ping, and key-made endpoints."""

import asyncio
import uuid
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from standardwebhooks import Webhook

from api.auth.models import Role
from api.core.types import utcnow
from api.webhooks.models import EventStatus, WebhookEndpoint, WebhookEvent
from tests.auth.test_login import bearer
from tests.factories import Tenant, make_api_key, make_tenant, make_user, sign_in
from tests.webhooks.conftest import Hooks
from tests.webhooks.receiver import Receiver, serve
from tests.webhooks.test_delivery import events_of


async def drain(hooks: Hooks) -> None:
    while await hooks.round():
        pass


async def test_the_secret_is_shown_once_and_never_logged(hooks: Hooks, tenant: Tenant) -> None:
    endpoint = await hooks.create(tenant, "https://93.184.216.34/hook", ["deal.*"], description="ERP")
    assert endpoint["secret"].startswith("whsec_")
    got = await hooks.client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=tenant.headers)
    assert got.status_code == 200
    assert "secret" not in got.json()
    assert got.headers["etag"] == '"1"'
    listed = await hooks.client.get("/api/v1/webhooks", headers=tenant.headers)
    assert [e["id"] for e in listed.json()["items"]] == [endpoint["id"]]
    assert "secret" not in listed.json()["items"][0]
    audit = await hooks.client.get("/api/v1/audit", params={"entity": "webhook_endpoint"}, headers=tenant.headers)
    assert audit.status_code == 200, audit.text
    assert endpoint["secret"] not in audit.text


async def test_filters_must_name_known_events(hooks: Hooks, tenant: Tenant) -> None:
    for events, pointer in (
        (["deal.signed"], "#/events/0"),
        (["deal.won", "nonsense"], "#/events/1"),
        ([], "#/events"),
    ):
        response = await hooks.client.post(
            "/api/v1/webhooks", json={"url": "https://93.184.216.34/h", "events": events}, headers=tenant.headers
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["pointer"] == pointer
    catalogue = await hooks.client.get("/api/v1/webhooks/event-types", headers=tenant.headers)
    assert {"deal.won", "company.created", "activity.deleted", "webhook.ping"} <= {t["type"] for t in catalogue.json()}


async def test_a_rotation_signs_with_both_secrets_during_the_overlap(hooks: Hooks, tenant: Tenant) -> None:
    with serve(Receiver()) as receiver:
        endpoint = await hooks.create(tenant, receiver.url, ["company.*"])
        rotated = await hooks.client.post(
            f"/api/v1/webhooks/{endpoint['id']}/rotate-secret", json={"overlap_hours": 24}, headers=tenant.headers
        )
        assert rotated.status_code == 200, rotated.text
        await hooks.company(tenant)
        await drain(hooks)
        cut = await hooks.client.post(
            f"/api/v1/webhooks/{endpoint['id']}/rotate-secret", json={"overlap_hours": 0}, headers=tenant.headers
        )
        await hooks.company(tenant)
        await drain(hooks)
    overlapping, after = receiver.received
    assert len(overlapping.headers["webhook-signature"].split(" ")) == 2
    Webhook(endpoint["secret"]).verify(overlapping.body, overlapping.headers)
    Webhook(rotated.json()["secret"]).verify(overlapping.body, overlapping.headers)
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    Webhook(cut.json()["secret"]).verify(after.body, after.headers)


async def test_410_disables_the_endpoint_and_tells_the_admins(hooks: Hooks, tenant: Tenant) -> None:
    with serve(Receiver(then=410)) as receiver:
        endpoint = await hooks.create(tenant, receiver.url, ["*"])
        await hooks.company(tenant)
        await drain(hooks)
        await hooks.company(tenant)
        await drain(hooks)
    assert len(receiver.received) == 1, "a disabled endpoint gets nothing more"
    got = (await hooks.client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=tenant.headers)).json()
    assert got["is_enabled"] is False
    assert got["disabled_reason"] == "The endpoint answered 410 Gone."
    [event] = await events_of(hooks, tenant, endpoint["id"])
    assert event["status"] == EventStatus.failed

    feed = await hooks.client.get("/api/v1/feed", params={"scope": "org"}, headers=tenant.headers)
    notices = [i for i in feed.json()["items"] if i["kind"] == "webhook_disabled"]
    assert [n["data"]["url"] for n in notices] == [receiver.url]
    rep = await sign_in(hooks.client, tenant.rep)
    rep_feed = await hooks.client.get("/api/v1/feed", params={"scope": "org"}, headers=rep)
    assert all(i["kind"] != "webhook_disabled" for i in rep_feed.json()["items"])

    # Turned back on (its receiver fixed), it can be sent what it refused.
    with serve(Receiver()) as fixed:
        turned_on = await hooks.client.patch(
            f"/api/v1/webhooks/{endpoint['id']}",
            json={"is_enabled": True, "url": fixed.url},
            headers=tenant.headers,
        )
        assert turned_on.json()["disabled_reason"] is None
        await hooks.client.post(
            f"/api/v1/webhooks/{endpoint['id']}/events/{event['id']}/redeliver", headers=tenant.headers
        )
        await drain(hooks)
    assert [r.headers["webhook-id"] for r in fixed.received] == [event["id"]]


async def test_sustained_failure_disables_the_endpoint(session: AsyncSession, hooks: Hooks, tenant: Tenant) -> None:
    with serve(Receiver(then=503)) as receiver:
        endpoint = await hooks.create(tenant, receiver.url, ["*"])
        await hooks.company(tenant)
        assert await hooks.round() == 1
        # It has been failing for longer than the setting allows.
        await session.execute(
            sa.update(WebhookEndpoint)
            .where(col(WebhookEndpoint.id) == uuid.UUID(endpoint["id"]))
            .values(failing_since=utcnow() - timedelta(seconds=hooks.settings.webhook_disable_after_seconds + 1))
        )
        await session.commit()
        await asyncio.sleep(0.1)  # the retry falls due
        assert await hooks.round() == 1
    got = (await hooks.client.get(f"/api/v1/webhooks/{endpoint['id']}", headers=tenant.headers)).json()
    assert got["is_enabled"] is False
    assert got["disabled_reason"].startswith("Every delivery has failed since ")


async def test_retries_stop_at_the_horizon_and_a_redeliver_sends_it_again(
    session: AsyncSession, hooks: Hooks, tenant: Tenant
) -> None:
    with serve(Receiver(script=[500])) as receiver:
        endpoint = await hooks.create(tenant, receiver.url, ["*"])
        await hooks.company(tenant)
        await session.execute(sa.update(WebhookEvent).values(give_up_at=utcnow()))
        await session.commit()
        await drain(hooks)
        [event] = await events_of(hooks, tenant, endpoint["id"])
        assert (event["status"], event["attempts"], event["next_attempt_at"]) == (EventStatus.failed, 1, None)

        again = await hooks.client.post(
            f"/api/v1/webhooks/{endpoint['id']}/events/{event['id']}/redeliver", headers=tenant.headers
        )
        assert again.status_code == 202, again.text
        await drain(hooks)
    [event] = await events_of(hooks, tenant, endpoint["id"])
    assert (event["status"], event["attempts"]) == (EventStatus.delivered, 2)
    assert [r.headers["webhook-id"] for r in receiver.received] == [event["id"], event["id"]]


async def test_a_ping_reaches_the_endpoint_whatever_its_filters(hooks: Hooks, tenant: Tenant) -> None:
    with serve(Receiver()) as receiver:
        endpoint = await hooks.create(tenant, receiver.url, ["deal.won"])
        ping = await hooks.client.post(f"/api/v1/webhooks/{endpoint['id']}/ping", headers=tenant.headers)
        assert ping.status_code == 202, ping.text
        await drain(hooks)
    [request] = receiver.received
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert payload["type"] == "webhook.ping"
    assert payload["id"] == ping.json()["event_id"]


async def test_an_api_key_endpoint_gets_only_what_the_key_may_read(
    session: AsyncSession, hooks: Hooks, tenant: Tenant
) -> None:
    _, secret = await make_api_key(session, tenant.org, "webhooks:manage", "deals:read")
    key = bearer(secret)
    refused = await hooks.client.post(
        "/api/v1/webhooks", json={"url": "https://93.184.216.34/h", "events": ["company.*"]}, headers=key
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["pointer"] == "#/events/0"
    made = await hooks.client.post(
        "/api/v1/webhooks", json={"url": "https://93.184.216.34/h", "events": ["*"]}, headers=key
    )
    assert made.status_code == 201, made.text
    await hooks.company(tenant)
    deal = await hooks.client.post("/api/v1/deals", json={"title": "Flota"}, headers=tenant.headers)
    assert deal.status_code == 201
    types = [e["type"] for e in await events_of(hooks, tenant, made.json()["id"])]
    assert types == ["deal.created"]


async def test_only_admins_and_managing_keys_reach_webhooks(
    session: AsyncSession, hooks: Hooks, tenant: Tenant
) -> None:
    manager = await make_user(session, tenant.org, role=Role.manager, team=tenant.team)
    _, reader = await make_api_key(session, tenant.org, "clients:read", "deals:read")
    for headers in (await sign_in(hooks.client, manager), bearer(reader)):
        response = await hooks.client.get("/api/v1/webhooks", headers=headers)
        assert response.status_code == 403, response.text


async def test_another_organisations_endpoints_and_events_are_not_found(
    session: AsyncSession, hooks: Hooks, tenant: Tenant
) -> None:
    other = await make_tenant(session, hooks.client, "Globex")
    endpoint = await hooks.create(other, "https://93.184.216.34/h", ["*"])
    await hooks.company(other)
    [event] = await events_of(hooks, other, endpoint["id"])
    base = f"/api/v1/webhooks/{endpoint['id']}"
    for method, path in (
        ("GET", base),
        ("PATCH", base),
        ("DELETE", base),
        ("POST", f"{base}/ping"),
        ("GET", f"{base}/events"),
        ("GET", f"{base}/deliveries"),
        ("POST", f"{base}/events/{event['id']}/redeliver"),
    ):
        body = {"description": "mine"} if method == "PATCH" else None
        response = await hooks.client.request(method, path, json=body, headers=tenant.headers)
        assert response.status_code == 404, f"{method} {path}: {response.text}"
    listed = await hooks.client.get("/api/v1/webhooks", headers=tenant.headers)
    assert listed.json()["items"] == []
    # And the other organisation's changes never reach this one's endpoints.
    mine = await hooks.create(tenant, "https://93.184.216.34/mine", ["*"])
    await hooks.company(other)
    assert await events_of(hooks, tenant, mine["id"]) == []
