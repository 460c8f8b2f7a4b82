"""Webhook endpoints, the outbox of events to deliver to them, and the log of every delivery attempt (DESIGN §8)."""

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api.core.ids import new_id
from api.core.models import Record
from api.core.types import JSONType, UTCDateTime, utcnow


class EventStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    # Retried for the whole retry horizon without success; a redeliver makes it pending again.
    failed = "failed"


class WebhookEndpoint(Record, table=True):
    __tablename__ = "webhook_endpoint"

    url: str = Field(max_length=2000)
    description: str = Field(default="", max_length=500)
    # Event type patterns: "deal.won", "deal.*", "*.created", "*".
    events: list[str] = Field(default_factory=list, sa_type=JSONType)
    # The signing secret ("whsec_<base64>"), and the one it replaced while the rotation's overlap lasts.
    secret: str = Field(max_length=100)
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    is_enabled: bool = Field(default=True)
    disabled_reason: str | None = Field(default=None, max_length=500)
    # Since when every delivery has failed (None while the last one succeeded): sustained failure disables it.
    failing_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_by_user_id: uuid.UUID | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_by_key_id: uuid.UUID | None = Field(default=None, foreign_key="api_key.id", ondelete="SET NULL")
    # An endpoint made with an API key receives only what the key may read: its read scopes, frozen at creation.
    # None: made by an admin, everything.
    read_scopes: list[str] | None = Field(default=None, sa_type=JSONType)


class WebhookEvent(SQLModel, table=True):
    """The outbox: one message per event and endpoint, written in the transaction of the change it reports. Its id
    is the `webhook-id` the receiver sees on every attempt; its body is fixed when written, so every attempt
    (and every signature) is over the same bytes."""

    __tablename__ = "webhook_event"
    __table_args__ = (
        # The worker's claim: due messages, oldest due first.
        sa.Index("ix_webhook_event_status_next_attempt_at", "status", "next_attempt_at"),
        # An endpoint's messages, newest first (ids are UUIDv7: time-ordered).
        sa.Index("ix_webhook_event_endpoint_id_id", "endpoint_id", "id"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    org_id: uuid.UUID = Field(foreign_key="organization.id", index=True, ondelete="CASCADE")
    endpoint_id: uuid.UUID = Field(foreign_key="webhook_endpoint.id", ondelete="CASCADE")
    type: str = Field(max_length=60)
    body: str = Field(sa_type=sa.Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    status: str = Field(default=EventStatus.pending.value, max_length=10)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # A worker's claim: until then no other worker takes the message. A worker killed mid-delivery leaves it to
    # expire, and the message is delivered again, with the same id.
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Retries stop at this time (created_at + the retry horizon; a redeliver moves it).
    give_up_at: datetime = Field(sa_type=UTCDateTime)


class WebhookDelivery(SQLModel, table=True):
    """One attempt to deliver a message, as the delivery log shows it."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        sa.Index("ix_webhook_delivery_endpoint_id_id", "endpoint_id", "id"),
        sa.Index("ix_webhook_delivery_event_id_attempt", "event_id", "attempt"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    org_id: uuid.UUID = Field(foreign_key="organization.id", index=True, ondelete="CASCADE")
    endpoint_id: uuid.UUID = Field(foreign_key="webhook_endpoint.id", ondelete="CASCADE")
    event_id: uuid.UUID = Field(foreign_key="webhook_event.id", ondelete="CASCADE")
    attempt: int
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # None when no HTTP answer came (refused address, connection error, timeout): `error` says which.
    status_code: int | None = None
    latency_ms: int
    error: str | None = Field(default=None, max_length=500)
    response_excerpt: str = Field(default="", max_length=1000)
    is_success: bool
