"""The outbox: webhook events written in the transaction of the changes they report (DESIGN §4, step 5).

Nothing is sent here: the worker delivers committed events. A change that rolls back leaves no event, and a
committed change always has its events.
"""

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.core.changes import Recorded
from api.core.db import after_commit
from api.core.ids import new_id
from api.core.types import utcnow
from api.settings import get_settings
from api.webhooks import events
from api.webhooks.models import WebhookEndpoint, WebhookEvent


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


async def collect(session: AsyncSession, org_id: uuid.UUID, recorded: list[Recorded]) -> None:
    """The changes' events, one message per event and subscribed endpoint."""
    typed = [(r, t) for r in recorded if (t := events.type_of(r)) is not None]
    if not typed:
        return
    endpoints = (
        await session.scalars(
            select(WebhookEndpoint).where(
                col(WebhookEndpoint.org_id) == org_id,
                col(WebhookEndpoint.deleted_at).is_(None),
                col(WebhookEndpoint.is_enabled).is_(True),
            )
        )
    ).all()
    for endpoint in endpoints:
        for r, event_type in typed:
            if events.wanted(endpoint.events, endpoint.read_scopes, event_type):
                enqueue(session, endpoint, event_type, events.change_data(r))
