"""Delivering the outbox: claim due messages, send them signed, log every attempt, schedule retries.

At least once: a message is claimed (a lease, committed) before it is sent and settled after, so a worker killed
in between leaves it to be sent again, with the same `webhook-id`, once the lease expires. Several workers share
the outbox through `FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite runs one process, whose write transactions are
serialised anyway.
"""

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.auth.models import ApiKey
from api.auth.principals import Principal
from api.core import changes
from api.core.db import Database, commit
from api.core.types import utcnow
from api.feed import service as feed
from api.feed.models import FeedKind
from api.settings import Settings
from api.webhooks import guard, outbox, signing
from api.webhooks.models import EventStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent

log = logging.getLogger("fieldbook.webhooks")
EXCERPT_BYTES = 500
# A round claims what it sends at once, so it ends within one timeout (plus settling): well inside its lease.
CONCURRENCY = 10
BATCH = CONCURRENCY
GONE = "The endpoint answered 410 Gone."


@dataclass(frozen=True, slots=True)
class Claimed:
    id: uuid.UUID
    org_id: uuid.UUID
    endpoint_id: uuid.UUID
    body: str
    attempt: int
    url: str
    secrets: list[str]
    locked_until: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    claimed: Claimed
    at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    excerpt: str

    @property
    def is_success(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


def http_client() -> httpx.AsyncClient:
    # No proxies from the environment (the guard checks where the connection goes) and no redirects.
    # No kept-alive connections either: httpx pools them by address, and the URL holds the checked IP, so a pooled
    # connection opened (and its certificate checked) for one name would carry another name's request.
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=0)
    return httpx.AsyncClient(follow_redirects=False, trust_env=False, limits=limits)


def _signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    overlap = endpoint.previous_secret is not None and (endpoint.previous_secret_until or now) > now
    return [endpoint.secret, endpoint.previous_secret] if overlap and endpoint.previous_secret else [endpoint.secret]


async def claim(db: Database, settings: Settings, *, limit: int = BATCH) -> list[Claimed]:
    """Take due messages for this worker (a committed lease). Messages whose endpoint stopped receiving meanwhile
    (turned off, deleted, its key revoked) are settled as failed instead, so they never clog the queue."""
    now = utcnow()
    until = now + timedelta(seconds=settings.webhook_lease_seconds)
    event, endpoint, key = WebhookEvent, WebhookEndpoint, ApiKey.__table__.c  # type: ignore[attr-defined]
    receiving = sa.and_(
        col(endpoint.is_enabled).is_(True),
        col(endpoint.deleted_at).is_(None),
        sa.or_(col(endpoint.created_by_key_id).is_(None), key.deleted_at.is_(None)),
    )
    stmt = (
        select(event, endpoint, receiving.label("receiving"))
        .join(endpoint, col(endpoint.id) == col(event.endpoint_id))
        .outerjoin(ApiKey, key.id == col(endpoint.created_by_key_id))
        .where(
            col(event.status) == EventStatus.pending.value,
            col(event.next_attempt_at) <= now,
            sa.or_(col(event.locked_until).is_(None), col(event.locked_until) < now),
        )
        .order_by(col(event.next_attempt_at))
        .limit(limit)
        .with_for_update(skip_locked=True, of=event)
    )
    async with db.writer() as session:
        claimed = []
        for message, target, is_receiving in (await session.execute(stmt)).all():
            if not is_receiving:
                message.status = EventStatus.failed.value
                continue
            message.locked_until = until
            message.attempts += 1
            claimed.append(
                Claimed(
                    id=message.id,
                    org_id=message.org_id,
                    endpoint_id=target.id,
                    body=message.body,
                    attempt=message.attempts,
                    url=target.url,
                    secrets=_signing_secrets(target, now),
                    locked_until=until,
                )
            )
        await session.commit()
    return claimed


async def _excerpt(response: httpx.Response) -> str:
    received = b""
    async for chunk in response.aiter_bytes():
        received += chunk
        if len(received) >= EXCERPT_BYTES:
            break
    return received[:EXCERPT_BYTES].decode("utf-8", "replace")


async def send(http: httpx.AsyncClient, settings: Settings, claimed: Claimed) -> Outcome:
    """One attempt. Never raises for the receiver's sake: whatever happens is the outcome."""
    at = utcnow()
    started = time.monotonic()
    status_code: int | None = None
    error: str | None = None
    excerpt = ""
    timeout = settings.webhook_timeout_seconds
    try:
        # The whole attempt, not each read: a receiver that trickles bytes cannot hold a worker.
        async with asyncio.timeout(timeout):
            target = await guard.resolve(claimed.url, allow_loopback=settings.webhook_allow_loopback)
            headers = {
                **signing.headers(str(claimed.id), claimed.body, claimed.secrets, at),
                "host": target.host_header,
            }
            request = http.build_request(
                "POST",
                target.url,
                content=claimed.body.encode(),
                headers=headers,
                extensions={"sni_hostname": target.server_name},
            )
            response = await http.send(request, stream=True)
            try:
                status_code = response.status_code
                excerpt = await _excerpt(response)
            finally:
                await response.aclose()
        if response.is_redirect:
            error = "answered with a redirect, which webhooks do not follow"
    except guard.Refused as exc:
        error = f"refused: {exc}"
    except (TimeoutError, httpx.TimeoutException):
        error = f"no answer within {timeout:g} s"
    except httpx.HTTPError as exc:
        error = f"could not deliver: {exc.__class__.__name__}: {exc}"
    except Exception as exc:
        # Whatever else goes wrong with one message (a URL httpx cannot send) fails that attempt, not the round.
        log.exception("webhook %s could not be sent", claimed.id)
        error = f"could not deliver: {exc.__class__.__name__}"
    latency_ms = round((time.monotonic() - started) * 1000)
    # PostgreSQL text holds no NUL byte, which a receiver's answer may.
    return Outcome(claimed, at, status_code, latency_ms, error and _printable(error)[:500], _printable(excerpt))


def _printable(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def next_attempt_at(settings: Settings, attempts: int, now: datetime, jitter: float) -> datetime:
    """Exponential backoff with jitter (`jitter` in [0, 1)): base * 2^(n-1), capped, then spread over 50-100% of
    it, so that endpoints that failed together do not all retry together."""
    delay = min(settings.webhook_retry_cap_seconds, settings.webhook_retry_base_seconds * 2 ** min(attempts - 1, 40))
    return now + timedelta(seconds=delay * (0.5 + jitter / 2))


async def _disable(session: AsyncSession, endpoint: WebhookEndpoint, reason: str, at: datetime) -> None:
    """Turn the endpoint off and tell the admins; `failing_since` in the notice says why for apps to word it
    (null: it answered 410 Gone)."""
    failing_since = None if reason == GONE else endpoint.failing_since
    system = Principal.system(endpoint.org_id)
    await outbox.drop_pending(session, endpoint.id)
    await changes.update(
        session, system, "webhook_endpoint", endpoint, {"is_enabled": False, "disabled_reason": reason}
    )
    # The admins' feed says so: an integration that stops hearing from Fieldbook is a silent failure otherwise.
    await feed.emit(
        session,
        system,
        FeedKind.webhook_disabled,
        at=at,
        data={
            "endpoint_id": str(endpoint.id),
            "url": endpoint.url,
            "reason": reason,
            "failing_since": None if failing_since is None else failing_since.isoformat(),
        },
    )


async def _settle_one(session: AsyncSession, settings: Settings, outcome: Outcome, jitter: Callable[[], float]) -> None:
    claimed = outcome.claimed
    session.add(
        WebhookDelivery(
            org_id=claimed.org_id,
            endpoint_id=claimed.endpoint_id,
            event_id=claimed.id,
            attempt=claimed.attempt,
            at=outcome.at,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
            response_excerpt=outcome.excerpt,
            is_success=outcome.is_success,
        )
    )
    message = await session.get(WebhookEvent, claimed.id)
    endpoint = await session.get(WebhookEndpoint, claimed.endpoint_id)
    if message is None or endpoint is None or message.locked_until != claimed.locked_until:
        return  # redelivered or taken over meanwhile: the attempt is logged, the message is not ours
    message.locked_until = None
    now = utcnow()
    if outcome.is_success:
        message.status = EventStatus.delivered.value
        message.delivered_at = outcome.at
        endpoint.failing_since = None
        return
    if outcome.status_code == 410:
        message.status = EventStatus.failed.value
        if endpoint.is_enabled:
            await _disable(session, endpoint, GONE, now)
        return
    endpoint.failing_since = endpoint.failing_since or outcome.at
    if now >= message.give_up_at:
        message.status = EventStatus.failed.value
    else:
        # The last attempt comes at the horizon, not up to a whole delay after it.
        message.next_attempt_at = min(next_attempt_at(settings, claimed.attempt, now, jitter()), message.give_up_at)
    if endpoint.is_enabled and now - endpoint.failing_since >= timedelta(
        seconds=settings.webhook_disable_after_seconds
    ):
        since = endpoint.failing_since.isoformat(timespec="seconds")
        await _disable(session, endpoint, f"Every delivery has failed since {since}.", now)


async def settle(
    db: Database,
    settings: Settings,
    outcomes: list[Outcome],
    app: Any = None,
    jitter: Callable[[], float] = random.random,
) -> None:
    """Log the attempts and move each message on: delivered, retried later, or given up. Each in a savepoint of its
    own: one that cannot be written (whatever the reason) is left to its lease, and the others are settled."""
    async with db.writer() as session:
        # One query each for the round's messages and endpoints: `session.get` below then finds them in the session.
        ids = [o.claimed.id for o in outcomes]
        (await session.scalars(select(WebhookEvent).where(col(WebhookEvent.id).in_(ids)))).all()
        endpoint_ids = {o.claimed.endpoint_id for o in outcomes}
        (await session.scalars(select(WebhookEndpoint).where(col(WebhookEndpoint.id).in_(endpoint_ids)))).all()
        for outcome in outcomes:
            try:
                async with session.begin_nested():
                    await _settle_one(session, settings, outcome, jitter)
            except Exception:
                log.exception("webhook %s: its attempt could not be recorded", outcome.claimed.id)
        # `app` lets the admins' open feeds hear of a disabled endpoint at once (the in-process worker has it).
        await commit(session, app)


async def deliver_due(db: Database, settings: Settings, http: httpx.AsyncClient, app: Any = None) -> int:
    """One round: claim what is due, send it (several at a time), settle it. The number of messages handled."""
    claimed = await claim(db, settings)
    if not claimed:
        return 0
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(item: Claimed) -> Outcome:
        async with gate:
            return await send(http, settings, item)

    outcomes = list(await asyncio.gather(*(one(item) for item in claimed)))
    await settle(db, settings, outcomes, app)
    return len(claimed)


async def purge(db: Database, settings: Settings) -> None:
    """Forget settled messages (and their attempts, by cascade) older than the retention: the log is for looking
    into recent deliveries, not an archive."""
    before = utcnow() - timedelta(days=settings.webhook_retention_days)
    async with db.writer() as session:
        await session.execute(
            sa.delete(WebhookEvent).where(
                col(WebhookEvent.status) != EventStatus.pending.value, col(WebhookEvent.created_at) < before
            )
        )
        await session.commit()


PURGE_EVERY = 3600.0


async def run(
    db: Database,
    settings: Settings,
    *,
    stop: asyncio.Event,
    wake: asyncio.Event,
    once: bool = False,
    app: Any = None,
) -> None:
    """Deliver until `stop` is set (then `wake` too, to end a wait), waking on `wake` or every poll interval.
    With `once`, until nothing is due."""
    purged_at = -PURGE_EVERY
    async with http_client() as http:
        while not stop.is_set():
            wake.clear()
            if time.monotonic() - purged_at >= PURGE_EVERY:
                purged_at = time.monotonic()
                try:
                    await purge(db, settings)
                except Exception:
                    log.exception("purging old webhook messages failed")
            try:
                handled = await deliver_due(db, settings, http, app)
            except Exception:
                # A database hiccup must not end the worker: the next round retries.
                log.exception("webhook delivery round failed")
                handled = 0
            if handled:
                continue
            if once:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), settings.webhook_poll_seconds)
