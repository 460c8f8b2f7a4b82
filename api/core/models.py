"""The table base shared by every domain: naming convention and the common columns (DESIGN §3)."""

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

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
