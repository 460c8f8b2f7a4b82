"""Writing feed events (reading them: feed.queries)."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.auth.principals import Principal
from api.clients.models import Contact
from api.core.db import after_commit, before_commit
from api.feed import live
from api.feed.models import FeedEvent, FeedKind

PENDING = "fieldbook_feed_events"


async def emit(
    session: AsyncSession,
    principal: Principal,
    kind: FeedKind,
    *,
    at: datetime,
    company_id: uuid.UUID | None = None,
    contact_id: uuid.UUID | None = None,
    deal_id: uuid.UUID | None = None,
    activity_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> FeedEvent:
    if company_id is None and contact_id is not None:
        company_id = await session.scalar(select(Contact.company_id).where(col(Contact.id) == contact_id))
    event = FeedEvent(
        org_id=principal.org_id,
        kind=kind.value,
        at=at,
        actor_id=principal.user_id,
        company_id=company_id,
        contact_id=contact_id,
        deal_id=deal_id,
        activity_id=activity_id,
        user_id=user_id,
        data=data or {},
    )
    session.add(event)
    _pending(session).append((event.org_id, event.id))
    return event


def _pending(session: AsyncSession) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """This transaction's new feed events, announced to live streams when it commits."""
    if PENDING not in session.info:
        pending: list[tuple[uuid.UUID, uuid.UUID]] = []
        session.info[PENDING] = pending

        def forget() -> list[tuple[uuid.UUID, uuid.UUID]]:
            return session.info.pop(PENDING, [])  # type: ignore[no-any-return]

        if session.get_bind().dialect.name == "postgresql":
            before_commit(session, lambda s: live.notify(s, forget()))
        else:
            after_commit(session, lambda app: live.deliver(app.state.broker, forget()))
    found: list[tuple[uuid.UUID, uuid.UUID]] = session.info[PENDING]
    return found
