"""Sales reference data: products, pipelines and their stages, lost reasons. (Deals join them later.)"""

import uuid
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field

from api.core.models import Record


class StageKind(StrEnum):
    open = "open"
    won = "won"
    lost = "lost"


class Product(Record, table=True):
    __table_args__ = (
        sa.CheckConstraint("price_minor >= 0", name="price_not_negative"),
        sa.Index("ix_product_org_id_name_folded_id", "org_id", "name_folded", "id"),
    )

    name: str = Field(max_length=200)
    # Case- and accent-folded name: the list's order ("Ábaco" sorts with "abaco", the same on both databases).
    name_folded: str = Field(max_length=200)
    sku: str | None = Field(default=None, max_length=64)
    # Money is an integer count of the currency's minor unit (cents) and the ISO 4217 code.
    price_minor: int = Field(default=0, sa_type=sa.BigInteger)
    currency: str = Field(max_length=3)
    is_active: bool = Field(default=True)


class Pipeline(Record, table=True):
    name: str = Field(max_length=200)
    # A pipeline may belong to one team (and its sub-teams); none means the whole organisation.
    team_id: uuid.UUID | None = Field(default=None, foreign_key="team.id")
    is_default: bool = Field(default=False)


class Stage(Record, table=True):
    __table_args__ = (
        sa.CheckConstraint("kind IN ('open', 'won', 'lost')", name="kind"),
        sa.CheckConstraint("probability BETWEEN 0 AND 100", name="probability"),
        sa.CheckConstraint("rotten_days IS NULL OR rotten_days > 0", name="rotten_days"),
    )

    pipeline_id: uuid.UUID = Field(foreign_key="pipeline.id", index=True)
    name: str = Field(max_length=200)
    # Open stages are ordered 1..n; the won and lost stages always come after them.
    position: int
    kind: str = Field(max_length=10)
    probability: int = Field(default=0)
    # A deal with no activity for this many days in the stage is flagged rotten; None never rots.
    rotten_days: int | None = Field(default=None)


class LostReason(Record, table=True):
    __tablename__ = "lost_reason"

    name: str = Field(max_length=200)
    position: int
    is_active: bool = Field(default=True)
