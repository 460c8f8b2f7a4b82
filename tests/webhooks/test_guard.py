"""The SSRF guard: loopback, private, link-local, metadata and other non-public addresses are refused, whether named
in the URL or reached through a name, before any traffic is sent; redirects are never followed."""

import ipaddress
import uuid
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.core.types import utcnow
from api.webhooks import guard
from api.webhooks.models import EventStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from tests.factories import Tenant
from tests.webhooks.conftest import Hooks
from tests.webhooks.receiver import Receiver, serve

REFUSED = [
    "127.0.0.1",
    "127.1.2.3",
    "0.0.0.0",
    "10.0.0.7",
    "172.16.4.1",
    "192.168.1.20",
    "100.64.0.1",
    "169.254.169.254",  # the cloud metadata service
    "169.254.0.1",
    "224.0.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",  # AWS's IPv6 metadata service
    "::ffff:10.0.0.1",
    "::ffff:127.0.0.1",
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2001:db8::1",
    "64:ff9b:1::a9fe:a9fe",  # local-use NAT64
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "::a9fe:a9fe",  # IPv4-compatible (deprecated)
    "::ffff:0:a9fe:a9fe",  # SIIT
    "fec0::1",  # site-local (deprecated)
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo of 10.0.0.1
]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str) -> None:
    with pytest.raises(guard.Refused, match="not a public address"):
        guard.check_address(ipaddress.ip_address(address), allow_loopback=False)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    guard.check_address(ipaddress.ip_address(address), allow_loopback=False)


def test_the_test_setting_opens_loopback_only() -> None:
    guard.check_address(ipaddress.ip_address("127.0.0.1"), allow_loopback=True)
    with pytest.raises(guard.Refused):
        guard.check_address(ipaddress.ip_address("10.0.0.1"), allow_loopback=True)
    with pytest.raises(guard.Refused):
        guard.check_address(ipaddress.ip_address("169.254.169.254"), allow_loopback=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://93.184.216.34/hook", "must use https"),
        ("ftp://93.184.216.34/hook", "must use https"),
        ("https://user:pw@93.184.216.34/hook", "user name or password"),
        ("https:///hook", "has no host"),
        ("https://93.184.216.34:99999/", "not a valid URL"),
        ("https://ⓛocalhost/", "not a valid URL"),
    ],
)
def test_urls_must_be_plain_https(url: str, reason: str) -> None:
    with pytest.raises(guard.Refused, match=reason):
        guard.check_url(url, allow_loopback=False)


async def test_a_name_is_checked_through_every_address_it_resolves_to() -> None:
    with pytest.raises(guard.Refused, match=r"127\.0\.0\.1 is not a public address"):
        await guard.resolve("https://localhost/hook", allow_loopback=False)
    with pytest.raises(guard.Refused, match="does not resolve"):
        await guard.resolve("https://no-such-host.invalid/hook", allow_loopback=False)


async def test_the_connection_goes_to_the_checked_address_under_the_original_name() -> None:
    target = await guard.resolve("https://93.184.216.34:8443/a/b?c=1", allow_loopback=False)
    assert target == guard.Target("https://93.184.216.34:8443/a/b?c=1", "93.184.216.34:8443", "93.184.216.34")
    target = await guard.resolve("http://localhost:9000/x", allow_loopback=True)
    assert target.url in ("http://127.0.0.1:9000/x", "http://[::1]:9000/x")
    assert target.host_header == "localhost:9000"
    assert target.server_name == "localhost"


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[fd00:ec2::254]/hook",
        "http://93.184.216.34/hook",
    ],
)
async def test_the_api_refuses_to_subscribe_such_urls(
    session: AsyncSession, strict: Hooks, tenant: Tenant, url: str
) -> None:
    response = await strict.client.post("/api/v1/webhooks", json={"url": url, "events": ["*"]}, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["pointer"] == "#/url"
    endpoints = await session.scalars(select(WebhookEndpoint).where(col(WebhookEndpoint.org_id) == tenant.org.id))
    assert endpoints.all() == []


async def _endpoint_at(session: AsyncSession, tenant: Tenant, url: str) -> WebhookEndpoint:
    """An endpoint saved with a URL the API would refuse now (a name that resolved elsewhere when it was saved)."""
    endpoint = WebhookEndpoint(org_id=tenant.org.id, url=url, events=["*"], secret="whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=")
    session.add(endpoint)
    await session.commit()
    return endpoint


async def test_a_delivery_to_a_non_public_address_sends_nothing(
    session: AsyncSession, strict: Hooks, tenant: Tenant
) -> None:
    with serve(Receiver()) as receiver:
        endpoint = await _endpoint_at(session, tenant, receiver.url.replace("http:", "https:"))
        await strict.company(tenant)
        assert await strict.round() == 1
    assert receiver.received == [], "no byte may reach a refused address"
    delivery = (
        await session.scalars(select(WebhookDelivery).where(col(WebhookDelivery.endpoint_id) == endpoint.id))
    ).one()
    assert delivery.error == "refused: 127.0.0.1 is not a public address"
    assert delivery.status_code is None
    assert not delivery.is_success


async def test_redirects_are_not_followed(hooks: Hooks, tenant: Tenant, session: AsyncSession) -> None:
    with serve(Receiver()) as elsewhere, serve(Receiver(then=("redirect", elsewhere.url))) as receiver:
        endpoint = await hooks.create(tenant, receiver.url, ["*"])
        await hooks.company(tenant)
        assert await hooks.round() == 1
    assert len(receiver.received) == 1
    assert elsewhere.received == []
    delivery = (
        await session.scalars(
            select(WebhookDelivery).where(col(WebhookDelivery.endpoint_id) == uuid.UUID(endpoint["id"]))
        )
    ).one()
    assert (delivery.status_code, delivery.is_success) == (307, False)
    assert delivery.error == "answered with a redirect, which webhooks do not follow"
    event = (await session.scalars(select(WebhookEvent).where(col(WebhookEvent.id) == delivery.event_id))).one()
    assert event.status == EventStatus.pending
    assert event.next_attempt_at > utcnow() - timedelta(seconds=1)
