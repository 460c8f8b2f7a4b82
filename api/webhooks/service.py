"""Webhook endpoints: who may manage them, the checks on their URL and filters, their events and delivery log."""

import uuid
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.auth.principals import Principal
from api.core import changes
from api.core.db import after_commit
from api.core.errors import Conflict, NotFound, ValidationFailed
from api.core.etags import ensure_version
from api.core.models import get_record, live
from api.core.pagination import keyset_page
from api.core.schemas import changed_fields
from api.core.types import utcnow
from api.settings import Settings
from api.webhooks import events, guard, outbox, signing
from api.webhooks.models import EventStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from api.webhooks.schemas import WebhookCreate, WebhookEventRead, WebhookRead, WebhookUpdate

ENTITY = "webhook_endpoint"
# Enough for every system an organisation integrates; more usually means a loop creating them.
MAX_ENDPOINTS = 50


async def _check_url(url: str, settings: Settings) -> None:
    try:
        await guard.resolve(url, allow_loopback=settings.webhook_allow_loopback)
    except guard.Refused as exc:
        raise ValidationFailed.field("#/url", f"Webhooks cannot be sent to this URL: {exc}.") from exc


def _read_scopes(principal: Principal) -> list[str] | None:
    """What an endpoint made with an API key may receive: the key's read scopes (an admin's endpoint: all)."""
    if principal.kind != "api_key":
        return None
    return sorted(set(events.ENTITIES.values()) & principal.scopes)


def _check_readable(patterns: list[str], read_scopes: list[str] | None) -> None:
    if read_scopes is None:
        return
    for index, pattern in enumerate(patterns):
        types = [t for t in events.matching_types(pattern) if events.ENTITIES[t.split(".")[0]] in read_scopes]
        if not types:
            raise ValidationFailed.field(
                f"#/events/{index}", f"This API key cannot read the records `{pattern}` is about: add a read scope."
            )


def present(endpoint: WebhookEndpoint) -> WebhookRead:
    return WebhookRead.model_validate(endpoint)


def _manages(principal: Principal, endpoint: WebhookEndpoint) -> bool:
    """An admin manages every endpoint; an API key only those made by keys that read no more than it does (so a
    `webhooks:manage` key cannot read, re-point or re-key what an admin or a wider key subscribed)."""
    if principal.kind != "api_key":
        return True
    return endpoint.read_scopes is not None and set(endpoint.read_scopes) <= principal.scopes


async def get_endpoint(session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await get_record(session, WebhookEndpoint, principal.org_id, endpoint_id, "webhook endpoint")
    if not _manages(principal, endpoint):
        raise NotFound("No such webhook endpoint.")
    return endpoint


def _receiving(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    if not endpoint.is_enabled:
        raise Conflict("The endpoint is turned off: turn it back on (PATCH is_enabled) first.")
    return endpoint


async def list_endpoints(
    *, session: AsyncSession, principal: Principal, limit: int, cursor: str | None
) -> tuple[list[WebhookEndpoint], str | None]:
    stmt = live(WebhookEndpoint, principal.org_id)
    if principal.kind == "api_key":
        stmt = stmt.where(col(WebhookEndpoint.created_by_key_id).is_not(None))
    found, next_cursor = await keyset_page(
        session,
        stmt,
        scope="webhooks",
        keys=[col(WebhookEndpoint.id)],
        key_of=lambda e: (e.id,),
        limit=limit,
        cursor=cursor,
        descending=True,
    )
    # A page may hold fewer than `limit` (what a wider key made is left out), as the Page schema says.
    return [e for e in found if _manages(principal, e)], next_cursor


async def create_endpoint(
    *, session: AsyncSession, principal: Principal, settings: Settings, data: WebhookCreate
) -> WebhookEndpoint:
    read_scopes = _read_scopes(principal)
    _check_readable(data.events, read_scopes)
    await _check_url(data.url, settings)
    count = len((await session.scalars(live(WebhookEndpoint, principal.org_id))).all())
    if count >= MAX_ENDPOINTS:
        raise Conflict(f"An organisation may have {MAX_ENDPOINTS} webhook endpoints; delete one first.")
    endpoint = WebhookEndpoint(
        org_id=principal.org_id,
        url=data.url,
        description=data.description,
        events=list(dict.fromkeys(data.events)),
        secret=signing.new_secret(),
        created_by_user_id=principal.user_id,
        created_by_key_id=principal.id if principal.kind == "api_key" else None,
        read_scopes=read_scopes,
    )
    await changes.create(session, principal, ENTITY, endpoint)
    return endpoint


async def update_endpoint(
    *,
    session: AsyncSession,
    principal: Principal,
    settings: Settings,
    endpoint_id: uuid.UUID,
    data: WebhookUpdate,
    expected_version: int | None,
) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, principal, endpoint_id)
    ensure_version(endpoint, expected_version, present)
    fields = changed_fields(data)
    if "events" in fields:
        fields["events"] = list(dict.fromkeys(fields["events"]))
        _check_readable(fields["events"], endpoint.read_scopes)
    if "url" in fields and fields["url"] != endpoint.url:
        await _check_url(fields["url"], settings)
    if fields.get("is_enabled") and not endpoint.is_enabled:
        # Turned back on: its failures are forgiven.
        fields |= {"disabled_reason": None, "failing_since": None}
    if fields.get("is_enabled") is False and endpoint.is_enabled:
        await outbox.drop_pending(session, endpoint.id)
    await changes.update(session, principal, ENTITY, endpoint, fields)
    return endpoint


async def delete_endpoint(
    *, session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, expected_version: int | None
) -> None:
    endpoint = await get_endpoint(session, principal, endpoint_id)
    ensure_version(endpoint, expected_version, present)
    await outbox.drop_pending(session, endpoint.id)
    await changes.delete(session, principal, ENTITY, endpoint)


async def rotate_secret(
    *, session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, overlap_hours: int
) -> tuple[WebhookEndpoint, str]:
    endpoint = await get_endpoint(session, principal, endpoint_id)
    secret = signing.new_secret()
    overlap = {
        "previous_secret": endpoint.secret if overlap_hours else None,
        "previous_secret_until": utcnow() + timedelta(hours=overlap_hours) if overlap_hours else None,
    }
    await changes.update(session, principal, ENTITY, endpoint, {"secret": secret, **overlap})
    return endpoint, secret


async def ping(*, session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID) -> WebhookEvent:
    endpoint = _receiving(await get_endpoint(session, principal, endpoint_id))
    return outbox.enqueue(session, endpoint, events.PING, {"endpoint_id": str(endpoint.id)})


def present_event(event: WebhookEvent) -> WebhookEventRead:
    read = WebhookEventRead.model_validate({**event.model_dump(), "payload": event.body})
    if event.status != EventStatus.pending.value:
        read.next_attempt_at = None
    return read


L = TypeVar("L", WebhookEvent, WebhookDelivery)


async def _log_page(
    session: AsyncSession,
    principal: Principal,
    endpoint_id: uuid.UUID,
    model: type[L],
    where: list[Any],
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[L], str | None]:
    """A page of an endpoint's messages or attempts, newest first (their ids are UUIDv7, so time-ordered)."""
    await get_endpoint(session, principal, endpoint_id)
    stmt = select(model).where(col(model.org_id) == principal.org_id, col(model.endpoint_id) == endpoint_id, *where)
    return await keyset_page(
        session,
        stmt,
        scope=f"{model.__tablename__}:{endpoint_id}",
        keys=[col(model.id)],
        key_of=lambda row: (row.id,),
        limit=limit,
        cursor=cursor,
        descending=True,
    )


async def list_events(
    *,
    session: AsyncSession,
    principal: Principal,
    endpoint_id: uuid.UUID,
    status: EventStatus | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[WebhookEvent], str | None]:
    where = [] if status is None else [col(WebhookEvent.status) == status.value]
    return await _log_page(session, principal, endpoint_id, WebhookEvent, where, limit=limit, cursor=cursor)


async def list_deliveries(
    *,
    session: AsyncSession,
    principal: Principal,
    endpoint_id: uuid.UUID,
    event_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[WebhookDelivery], str | None]:
    where = [] if event_id is None else [col(WebhookDelivery.event_id) == event_id]
    return await _log_page(session, principal, endpoint_id, WebhookDelivery, where, limit=limit, cursor=cursor)


async def redeliver(
    *, session: AsyncSession, principal: Principal, settings: Settings, endpoint_id: uuid.UUID, event_id: uuid.UUID
) -> WebhookEvent:
    """Send a message again, now (same id and body), with a fresh retry horizon, whatever became of it."""
    _receiving(await get_endpoint(session, principal, endpoint_id))
    event = (
        await session.scalars(
            select(WebhookEvent).where(
                col(WebhookEvent.id) == event_id,
                col(WebhookEvent.org_id) == principal.org_id,
                col(WebhookEvent.endpoint_id) == endpoint_id,
            )
        )
    ).first()
    if event is None:
        raise NotFound("No such event for this endpoint.")
    now = utcnow()
    event.status = EventStatus.pending.value
    event.next_attempt_at = now
    event.locked_until = None
    event.delivered_at = None
    event.give_up_at = now + timedelta(seconds=settings.webhook_retry_horizon_seconds)
    await session.flush()
    after_commit(session, outbox.wake)
    return event
