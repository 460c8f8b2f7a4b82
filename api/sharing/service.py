"""Sharing a client or a deal with colleagues: they see it (and its card) as if it were theirs to follow."""

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.clients.models import Company, Contact
from api.core import changes
from api.core.errors import NotFound
from api.core.models import get_record, live
from api.core.types import utcnow
from api.deals.models import Deal
from api.feed.models import FeedKind
from api.feed.service import emit
from api.sharing.models import Share
from api.sharing.schemas import ShareCreate
from api.sharing.visibility import Viewer, check_colleagues, get_visible, get_writable

MODELS: dict[str, Any] = {"company": Company, "contact": Contact, "deal": Deal}


async def _shares_of(session: AsyncSession, viewer: Viewer, entity: str, entity_id: uuid.UUID) -> list[Share]:
    stmt = (
        live(Share, viewer.org_id)
        .where(col(Share.entity) == entity, col(Share.entity_id) == entity_id)
        .order_by(col(Share.created_at), col(Share.id))
    )
    return list((await session.scalars(stmt)).all())


async def list_shares(*, session: AsyncSession, viewer: Viewer, entity: str, entity_id: uuid.UUID) -> list[Share]:
    await get_visible(session, viewer, MODELS[entity], entity_id, entity)
    return await _shares_of(session, viewer, entity, entity_id)


async def share(*, session: AsyncSession, viewer: Viewer, data: ShareCreate) -> list[Share]:
    """Give colleagues access; each gets a feed entry. Sharing again with someone who has access changes nothing."""
    record = await get_writable(session, viewer, MODELS[data.entity], data.entity_id, data.entity)
    user_ids = list(dict.fromkeys(data.user_ids))
    await check_colleagues(session, viewer, user_ids, "#/user_ids/{index}")
    already = {s.user_id for s in await _shares_of(session, viewer, data.entity, record.id)} | {record.owner_id}
    company_id, contact_id, deal_id = _refs(data.entity, record)
    created = []
    for user_id in user_ids:
        if user_id in already:
            continue
        row = Share(
            org_id=viewer.org_id, entity=data.entity, entity_id=record.id, user_id=user_id, by_id=viewer.user_id
        )
        await changes.create(session, viewer.principal, "share", row)
        await emit(
            session,
            viewer.principal,
            FeedKind.shared,
            at=utcnow(),
            user_id=user_id,
            company_id=company_id,
            contact_id=contact_id,
            deal_id=deal_id,
        )
        created.append(row)
    return created


def _refs(entity: str, record: Any) -> tuple[uuid.UUID | None, uuid.UUID | None, uuid.UUID | None]:
    """(company, contact, deal) a share is about, for the feed."""
    if entity == "deal":
        return record.company_id, record.contact_id, record.id
    if entity == "contact":
        return record.company_id, record.id, None
    return record.id, None, None


async def unshare(*, session: AsyncSession, viewer: Viewer, share_id: uuid.UUID) -> None:
    """Remove a colleague's access: whoever may change the record can, and so can the colleague (to leave)."""
    row = await get_record(session, Share, viewer.org_id, share_id, "share")
    if row.user_id != viewer.user_id:
        try:
            await get_writable(session, viewer, MODELS[row.entity], row.entity_id, row.entity)
        except NotFound as exc:
            raise NotFound("No such share.") from exc
    await changes.delete(session, viewer.principal, "share", row)
