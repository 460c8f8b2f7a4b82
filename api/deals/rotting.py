"""When an open deal goes rotten: the stage's `rotten_days` after it entered the stage or last saw activity,
whichever is later. Stored on the deal (`rots_at`) so that "rotten" is an indexed comparison with now."""

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.core.models import live
from api.deals.models import Deal, DealStatus, Stage


def rots_at(status: str, since: datetime, stage: Stage) -> datetime | None:
    if status != DealStatus.open.value or stage.rotten_days is None:
        return None
    return since + timedelta(days=stage.rotten_days)


def fresh_since(deal: Deal) -> datetime:
    return max(deal.stage_entered_at, deal.last_activity_at or deal.stage_entered_at)


async def restage(session: AsyncSession, stage: Stage) -> None:
    """The stage's rotten_days changed: recompute its open deals' `rots_at`. Derived, so not a change of the
    deals (no version bump, no change-log entry)."""
    deals = await session.scalars(
        live(Deal, stage.org_id).where(col(Deal.stage_id) == stage.id, col(Deal.status) == DealStatus.open.value)
    )
    for deal in deals.all():
        await session.execute(
            sa.update(Deal)
            .where(col(Deal.id) == deal.id)
            .values(rots_at=rots_at(deal.status, fresh_since(deal), stage))
            .execution_options(synchronize_session=False)
        )
