"""Shares: a colleague given access to a client or a deal they would not otherwise see."""

import uuid

import sqlalchemy as sa
from sqlmodel import Field

from api.core.models import Record


class Share(Record, table=True):
    __table_args__ = (
        sa.CheckConstraint("entity IN ('company', 'contact', 'deal')", name="entity"),
        sa.Index(
            "uq_share_org_id_entity_entity_id_user_id",
            "org_id",
            "entity",
            "entity_id",
            "user_id",
            unique=True,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        ),
        sa.Index("ix_share_org_id_user_id_entity", "org_id", "user_id", "entity"),
    )

    entity: str = Field(max_length=10)
    entity_id: uuid.UUID
    user_id: uuid.UUID = Field(foreign_key="user.id")
    by_id: uuid.UUID | None = Field(default=None, foreign_key="user.id")
