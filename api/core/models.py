"""The table base shared by every domain: naming convention and the common columns (DESIGN §3)."""

import uuid
from datetime import datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.sql.expression import SelectOfScalar

from api.core.errors import NotFound
from api.core.ids import new_id
from api.core.types import UTCDateTime, utcnow

# Set before any table is declared, so constraint names are stable in Alembic diffs on both dialects.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Record(SQLModel):
    """Columns every organisation-owned record has: id, owner organisation, timestamps, version, tombstone."""

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    org_id: uuid.UUID = Field(foreign_key="organization.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


R = TypeVar("R", bound=Record)


def live(model: type[R], org_id: uuid.UUID) -> SelectOfScalar[R]:
    """The organisation's records of a kind that are not deleted: where every read of them starts."""
    return select(model).where(col(model.org_id) == org_id, col(model.deleted_at).is_(None))


async def get_record(session: AsyncSession, model: type[R], org_id: uuid.UUID, record_id: uuid.UUID, what: str) -> R:
    """A live (not deleted) record of the organisation, or 404: another organisation's id is simply not found."""
    found = (
        await session.scalars(
            select(model).where(
                col(model.id) == record_id, col(model.org_id) == org_id, col(model.deleted_at).is_(None)
            )
        )
    ).first()
    if found is None:
        raise NotFound(f"No such {what}.")
    return found
