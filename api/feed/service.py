"""Writing feed events (reading them: feed.queries)."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.auth.principals import Principal
from api.clients.models import Contact
from api.core.live import FEED, announce
from api.feed.models import FeedEvent, FeedKind

_QUIET = "fieldbook_feed_quiet"


def quiet(session: AsyncSession) -> None:
    """Post nothing for this session's writes: an import of 100,000 rows is one piece of news, not 100,000."""
    session.info[_QUIET] = True


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
) -> FeedEvent | None:
    if session.info.get(_QUIET):
        return None
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
    announce(session, FEED, event.org_id, event.id)
    return event
