"""The outbox: webhook events written in the transaction of the changes they report (DESIGN §4, step 5).

Nothing is sent here: the worker delivers committed events. A change that rolls back leaves no event, and a
committed change always has its events.
"""

import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.auth.models import ApiKey
from api.core.changes import Recorded
from api.core.db import after_commit
from api.core.ids import new_id
from api.core.types import utcnow
from api.settings import get_settings
from api.webhooks import events
from api.webhooks.models import EventStatus, WebhookEndpoint, WebhookEvent


def wake(app: Any) -> None:
    """Tell the in-process worker (when `fieldbook serve` runs one) that events are waiting."""
    signal = getattr(app.state, "webhook_wake", None)
    if signal is not None:
        signal.set()


def enqueue(session: AsyncSession, endpoint: WebhookEndpoint, event_type: str, data: dict[str, Any]) -> WebhookEvent:
    now = utcnow()
    event_id = new_id()
    horizon = timedelta(seconds=get_settings().webhook_retry_horizon_seconds)
    event = WebhookEvent(
        id=event_id,
        org_id=endpoint.org_id,
        endpoint_id=endpoint.id,
        type=event_type,
        body=events.body(event_id, event_type, now, data),
        created_at=now,
        next_attempt_at=now,
        give_up_at=now + horizon,
    )
    session.add(event)
    after_commit(session, wake)
    return event


async def drop_pending(session: AsyncSession, endpoint_id: uuid.UUID) -> None:
    """An endpoint turned off or deleted keeps nothing waiting: its pending messages fail (a redeliver, once it is on
    again, still sends one)."""
    await session.execute(
        sa.update(WebhookEvent)
        .where(col(WebhookEvent.endpoint_id) == endpoint_id, col(WebhookEvent.status) == EventStatus.pending.value)
        .values(status=EventStatus.failed.value)
    )


def receiving(org_id: uuid.UUID) -> Any:
    """The organisation's endpoints that receive events: enabled, not deleted, and not made by a key since revoked
    (revoking an integration's key cuts its webhooks too)."""
    key = ApiKey.__table__.c  # type: ignore[attr-defined]
    return (
        select(WebhookEndpoint)
        .outerjoin(ApiKey, key.id == col(WebhookEndpoint.created_by_key_id))
        .where(
            col(WebhookEndpoint.org_id) == org_id,
            col(WebhookEndpoint.deleted_at).is_(None),
            col(WebhookEndpoint.is_enabled).is_(True),
            sa.or_(col(WebhookEndpoint.created_by_key_id).is_(None), key.deleted_at.is_(None)),
        )
    )


async def collect(session: AsyncSession, recorded: list[Recorded]) -> None:
    """The changes' events, one message per event and subscribed endpoint of the change's organisation."""
    by_org: dict[uuid.UUID, list[tuple[Recorded, str]]] = {}
    for r in recorded:
        if (event_type := events.type_of(r)) is not None:
            by_org.setdefault(r.change.org_id, []).append((r, event_type))
    for org_id, typed in by_org.items():
        for endpoint in (await session.scalars(receiving(org_id))).all():
            for r, event_type in typed:
                if events.wanted(endpoint.events, endpoint.read_scopes, event_type):
                    enqueue(session, endpoint, event_type, events.change_data(r))
