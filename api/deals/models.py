"""Deals and what they are built on: products, pipelines and their stages, lost reasons."""

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from api.core.models import Record
from api.core.types import JSONType, UTCDateTime


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


class DealStatus(StrEnum):
    open = "open"
    won = "won"
    lost = "lost"


class Deal(Record, table=True):
    __table_args__ = (
        sa.CheckConstraint("status IN ('open', 'won', 'lost')", name="status"),
        sa.CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
        sa.CheckConstraint("status <> 'lost' OR lost_reason_id IS NOT NULL", name="lost_has_reason"),
        # Lists and board columns page newest first by id (time-ordered UUIDv7).
        sa.Index("ix_deal_org_id_id", "org_id", "id"),
        sa.Index("ix_deal_org_id_owner_id_id", "org_id", "owner_id", "id"),
        sa.Index("ix_deal_org_id_stage_id_id", "org_id", "stage_id", "id"),
        sa.Index("ix_deal_org_id_company_id", "org_id", "company_id"),
        sa.Index("ix_deal_org_id_contact_id", "org_id", "contact_id"),
    )

    title: str = Field(max_length=200)
    title_folded: str = Field(max_length=200)
    company_id: uuid.UUID | None = Field(default=None, foreign_key="company.id")
    contact_id: uuid.UUID | None = Field(default=None, foreign_key="contact.id")
    pipeline_id: uuid.UUID = Field(foreign_key="pipeline.id")
    stage_id: uuid.UUID = Field(foreign_key="stage.id")
    owner_id: uuid.UUID = Field(foreign_key="user.id")
    amount_minor: int = Field(default=0, sa_type=sa.BigInteger)
    currency: str = Field(max_length=3)
    expected_close_on: date | None = None
    status: str = Field(default=DealStatus.open.value, max_length=10)
    lost_reason_id: uuid.UUID | None = Field(default=None, foreign_key="lost_reason.id")
    lost_note: str | None = Field(default=None, max_length=2000)
    won_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    lost_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # A repeat sale points at the deal it follows.
    previous_deal_id: uuid.UUID | None = Field(default=None, foreign_key="deal.id")
    stage_entered_at: datetime = Field(sa_type=UTCDateTime)
    last_activity_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When the deal goes rotten if nothing happens: the later of entering the stage and the last activity, plus
    # the stage's rotten_days. Stored (not computed per read) so "rotten" is an indexable, portable comparison.
    rots_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    custom: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)


class DealLine(Record, table=True):
    __tablename__ = "deal_line"
    __table_args__ = (
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint("unit_price_minor >= 0", name="price_not_negative"),
        sa.CheckConstraint("discount_percent BETWEEN 0 AND 100", name="discount"),
    )

    deal_id: uuid.UUID = Field(foreign_key="deal.id", index=True)
    product_id: uuid.UUID | None = Field(default=None, foreign_key="product.id")
    name: str = Field(max_length=200)
    quantity: int
    unit_price_minor: int = Field(sa_type=sa.BigInteger)
    discount_percent: int = Field(default=0)
    position: int


class DealStageEvent(Record, table=True):
    """A deal entering a stage (its creation included): the history funnels and cycle times are read from."""

    __tablename__ = "deal_stage_event"
    __table_args__ = (sa.Index("ix_deal_stage_event_org_id_deal_id_at", "org_id", "deal_id", "at"),)

    deal_id: uuid.UUID = Field(foreign_key="deal.id")
    from_stage_id: uuid.UUID | None = Field(default=None, foreign_key="stage.id")
    to_stage_id: uuid.UUID = Field(foreign_key="stage.id")
    at: datetime = Field(sa_type=UTCDateTime)
    by_id: uuid.UUID | None = Field(default=None, foreign_key="user.id")
    # Seconds the deal spent in from_stage.
    seconds_in_previous: int | None = Field(default=None, sa_type=sa.BigInteger)
