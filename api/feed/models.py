"""The feed: what happened to clients and deals, in order, for people to follow and learn from."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api.core.ids import new_id
from api.core.types import JSONType, UTCDateTime


class FeedKind(StrEnum):
    activity = "activity"
    deal_created = "deal_created"
    stage_moved = "stage_moved"
    deal_won = "deal_won"
    deal_lost = "deal_lost"
    deal_reopened = "deal_reopened"
    shared = "shared"
    mentioned = "mentioned"
    goal_reached = "goal_reached"
    # For admins only: a webhook endpoint was disabled (410 Gone, or failing for days).
    webhook_disabled = "webhook_disabled"


class FeedEvent(SQLModel, table=True):
    """One feed entry. Append-only; it points at the records it is about, which are read (and their visibility
    checked) when the feed is.

    `company_id` is filled from the contact or deal when the event names none, so a client's timeline is one
    index range.
    """

    __tablename__ = "feed_event"
    __table_args__ = (
        sa.Index("ix_feed_event_org_id_at_id", "org_id", "at", "id"),
        sa.Index("ix_feed_event_org_id_company_id_at_id", "org_id", "company_id", "at", "id"),
        sa.Index("ix_feed_event_org_id_contact_id_at_id", "org_id", "contact_id", "at", "id"),
        sa.Index("ix_feed_event_org_id_deal_id_at_id", "org_id", "deal_id", "at", "id"),
        sa.Index("ix_feed_event_org_id_actor_id_at_id", "org_id", "actor_id", "at", "id"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    org_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE")
    kind: str = Field(max_length=20)
    at: datetime = Field(sa_type=UTCDateTime)
    actor_id: uuid.UUID | None = Field(default=None, foreign_key="user.id")
    company_id: uuid.UUID | None = Field(default=None, foreign_key="company.id")
    contact_id: uuid.UUID | None = Field(default=None, foreign_key="contact.id")
    deal_id: uuid.UUID | None = Field(default=None, foreign_key="deal.id")
    activity_id: uuid.UUID | None = Field(default=None, foreign_key="activity.id")
    # The colleague a share or a mention is addressed to.
    user_id: uuid.UUID | None = Field(default=None, foreign_key="user.id")
    # Small facts frozen at the time: stage names, amount at closing, lost reason.
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
