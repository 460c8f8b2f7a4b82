"""What must not go wrong in production: one bad message never holds up the others, a change rolled back inside a
savepoint sends nothing, an endpoint turned off or deleted keeps nothing waiting, a revoked key's endpoints stop,
a key manages only what it may read, and old messages are purged."""

import asyncio
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, func, select

from api.clients import service as clients
from api.clients.schemas import CompanyCreate
from api.core.db import commit
from api.core.types import utcnow
from api.webhooks import worker
from api.webhooks.models import EventStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from tests.auth.test_login import bearer
from tests.factories import Tenant, make_api_key, viewer_of_user
from tests.webhooks.conftest import Hooks
from tests.webhooks.receiver import Receiver, serve
from tests.webhooks.test_delivery import events_of


async def test_an_unsendable_message_and_a_nul_answer_hold_up_nothing(
    session: AsyncSession, hooks: Hooks, tenant: Tenant
) -> None:
    with serve(Receiver(then=("body", b"ok\x00binary"))) as receiver:
        good = await hooks.create(tenant, receiver.url, ["*"])
        # Saved before the guard learnt to refuse it (as an old row would be): a host httpx cannot send to.
        session.add(
            WebhookEndpoint(org_id=tenant.org.id, url="http://ⓛocalhost:1/x", events=["*"], secret="whsec_YWJjZA==")
        )
        await session.commit()
        await hooks.company(tenant)
        assert await hooks.round() == 2
        await asyncio.sleep(0.1)
        assert await hooks.round() == 1, "only the unsendable one is retried"
    assert len(receiver.received) == 1, "the good endpoint got its event once"
    [event] = await events_of(hooks, tenant, good["id"])
    assert event["status"] == EventStatus.delivered
    deliveries = (await session.scalars(select(WebhookDelivery).order_by(col(WebhookDelivery.is_success)))).all()
    assert [d.is_success for d in deliveries] == [False, False, True]
    assert deliveries[0].error is not None and deliveries[0].error.startswith("refused: it is not a valid URL")
    assert deliveries[-1].response_excerpt == "ok\ufffdbinary"


async def test_a_change_rolled_back_in_a_savepoint_sends_nothing(
    session: AsyncSession, hooks: Hooks, tenant: Tenant
) -> None:
    endpoint = await hooks.create(tenant, "https://93.184.216.34/hook", ["company.*"])
    viewer = await viewer_of_user(session, tenant.admin)
    spec, confirm = clients.COMPANY, True
    savepoint = await session.begin_nested()
    await clients.create_client(
        session=session, viewer=viewer, spec=spec, data=CompanyCreate(name="Refused"), confirm_duplicate=confirm
    )
    await savepoint.rollback()
    await clients.create_client(
        session=session, viewer=viewer, spec=spec, data=CompanyCreate(name="Kept"), confirm_duplicate=confirm
    )
    await commit(session, None)
    [event] = await events_of(hooks, tenant, endpoint["id"])
    assert event["payload"]["data"]["object"]["name"] == "Kept"


async def test_turning_an_endpoint_off_or_deleting_it_keeps_nothing_waiting(hooks: Hooks, tenant: Tenant) -> None:
    paused = await hooks.create(tenant, "https://93.184.216.34/a", ["*"])
    deleted = await hooks.create(tenant, "https://93.184.216.34/b", ["*"])
    await hooks.company(tenant)
    off = await hooks.client.patch(
        f"/api/v1/webhooks/{paused['id']}", json={"is_enabled": False}, headers=tenant.headers
    )
    assert off.status_code == 200, off.text
    gone = await hooks.client.delete(f"/api/v1/webhooks/{deleted['id']}", headers=tenant.headers)
    assert gone.status_code == 204, gone.text
    assert [e["status"] for e in await events_of(hooks, tenant, paused["id"])] == [EventStatus.failed]
    assert await hooks.round() == 0
    ping = await hooks.client.post(f"/api/v1/webhooks/{paused['id']}/ping", headers=tenant.headers)
    assert ping.status_code == 409, ping.text


async def test_a_revoked_keys_endpoints_stop(session: AsyncSession, hooks: Hooks, tenant: Tenant) -> None:
    key, secret = await make_api_key(session, tenant.org, "webhooks:manage", "clients:read")
    made = await hooks.client.post(
        "/api/v1/webhooks", json={"url": "https://93.184.216.34/k", "events": ["*"]}, headers=bearer(secret)
    )
    assert made.status_code == 201, made.text
    await hooks.company(tenant)
    revoked = await hooks.client.delete(f"/api/v1/api-keys/{key.id}", headers=tenant.headers)
    assert revoked.status_code == 204, revoked.text
    await hooks.company(tenant)
    [waiting] = await events_of(hooks, tenant, made.json()["id"])
    assert await hooks.round() == 0
    [settled] = await events_of(hooks, tenant, made.json()["id"])
    assert (settled["id"], settled["status"], settled["attempts"]) == (waiting["id"], EventStatus.failed, 0)


async def test_a_key_manages_only_what_it_may_read(session: AsyncSession, hooks: Hooks, tenant: Tenant) -> None:
    admins = await hooks.create(tenant, "https://93.184.216.34/admin", ["*"])
    _, wide = await make_api_key(session, tenant.org, "webhooks:manage", "clients:read", "deals:read")
    _, narrow = await make_api_key(session, tenant.org, "webhooks:manage", "deals:read")
    wides = await hooks.client.post(
        "/api/v1/webhooks", json={"url": "https://93.184.216.34/w", "events": ["*"]}, headers=bearer(wide)
    )
    narrows = await hooks.client.post(
        "/api/v1/webhooks", json={"url": "https://93.184.216.34/n", "events": ["*"]}, headers=bearer(narrow)
    )
    listed = await hooks.client.get("/api/v1/webhooks", headers=bearer(narrow))
    assert [e["id"] for e in listed.json()["items"]] == [narrows.json()["id"]]
    listed = await hooks.client.get("/api/v1/webhooks", headers=bearer(wide))
    assert {e["id"] for e in listed.json()["items"]} == {wides.json()["id"], narrows.json()["id"]}
    for target in (admins["id"], wides.json()["id"]):
        for method, path in (("GET", ""), ("GET", "/events"), ("POST", "/rotate-secret"), ("PATCH", "")):
            body = {} if method == "POST" else ({"url": "https://93.184.216.35/x"} if method == "PATCH" else None)
            response = await hooks.client.request(
                method, f"/api/v1/webhooks/{target}{path}", json=body, headers=bearer(narrow)
            )
            assert response.status_code == 404, f"{method} {path}: {response.text}"
    admin_view = await hooks.client.get("/api/v1/webhooks", headers=tenant.headers)
    assert len(admin_view.json()["items"]) == 3, "admins see every endpoint, whoever made it"


async def test_settled_messages_are_purged_after_the_retention(
    session: AsyncSession, hooks: Hooks, tenant: Tenant
) -> None:
    await hooks.create(tenant, "https://93.184.216.34/p", ["*"])
    await hooks.company(tenant)
    await hooks.company(tenant)
    old = utcnow() - timedelta(days=hooks.settings.webhook_retention_days, hours=1)
    first = (await session.scalars(select(WebhookEvent.id).order_by(col(WebhookEvent.id)))).first()
    await session.execute(sa.update(WebhookEvent).values(status=EventStatus.delivered.value))
    await session.execute(sa.update(WebhookEvent).where(col(WebhookEvent.id) == first).values(created_at=old))
    await session.commit()
    await worker.purge(hooks.db, hooks.settings)
    remaining = await session.scalar(select(func.count()).select_from(WebhookEvent))
    assert remaining == 1
    assert (await session.scalars(select(WebhookEvent.id))).all() != [first]
