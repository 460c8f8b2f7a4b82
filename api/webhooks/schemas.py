"""API shapes for webhook endpoints, their events and the delivery log."""

import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from api.core.schemas import Input, Output, RecordRead, optional
from api.webhooks import events
from api.webhooks.models import EventStatus

EXAMPLE_URL = "https://hooks.example.com/fieldbook"
EXAMPLE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw+bD/IwpI14Q="


def _known_pattern(pattern: str) -> str:
    if not events.matching_types(pattern):
        raise ValueError(f"`{pattern}` matches no event type (see GET /api/v1/webhooks/event-types)")
    return pattern


Pattern = Annotated[
    str,
    StringConstraints(min_length=1, max_length=60, pattern=r"^(\*|[a-z_]+)\.(\*|[a-z_]+)$|^\*$"),
    AfterValidator(_known_pattern),
]
Url = Annotated[str, StringConstraints(min_length=8, max_length=2000, strip_whitespace=True)]
Patterns = Annotated[
    list[Pattern],
    Field(
        min_length=1,
        max_length=50,
        description="Event types to receive: exact (`deal.won`), per record (`deal.*`), per action (`*.created`), "
        "or `*` for all.",
    ),
]


class WebhookCreate(Input):
    url: Url = Field(description="A public https URL. Redirects are not followed.")
    events: Patterns
    description: str = Field(default="", max_length=500)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"url": EXAMPLE_URL, "events": ["deal.won", "company.*"], "description": "ERP sync"}]
        },
    )


class WebhookUpdate(Input):
    url: Url | None = optional(description="A public https URL.")
    events: Patterns | None = optional()
    description: str | None = optional(max_length=500)
    is_enabled: bool | None = optional(
        description="false turns the endpoint off (no events are kept for it meanwhile); true turns it back on and "
        "clears its failure state."
    )

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"is_enabled": True}]})


EXAMPLE_ENDPOINT: dict[str, Any] = {
    "id": "01937c4e-8f2a-7b3c-9d4e-5f6a7b8c9d0e",
    "url": EXAMPLE_URL,
    "description": "ERP sync",
    "events": ["deal.won", "company.*"],
    "is_enabled": True,
    "disabled_reason": None,
    "failing_since": None,
    "previous_secret_until": None,
    "created_by_user_id": "01937c4e-1111-7b3c-9d4e-5f6a7b8c9d0e",
    "created_by_key_id": None,
    "created_at": "2026-11-30T09:15:00Z",
    "updated_at": "2026-11-30T09:15:00Z",
    "version": 1,
}


class WebhookRead(RecordRead):
    url: str
    description: str
    events: list[str]
    is_enabled: bool
    disabled_reason: str | None = Field(
        description="Why Fieldbook disabled the endpoint (410 Gone, or failing for days)."
    )
    failing_since: datetime | None = Field(description="Since when every delivery has failed; null while they succeed.")
    previous_secret_until: datetime | None = Field(
        description="Until then, deliveries carry a signature with the previous secret too (a rotation's overlap)."
    )
    created_by_user_id: uuid.UUID | None
    created_by_key_id: uuid.UUID | None

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [EXAMPLE_ENDPOINT]})


class WebhookCreated(WebhookRead):
    secret: str = Field(description="The signing secret. Shown once: store it now.")

    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [{**EXAMPLE_ENDPOINT, "secret": EXAMPLE_SECRET}]}
    )


class RotateSecret(Input):
    overlap_hours: int = Field(
        default=24,
        ge=0,
        le=168,
        description="For how long deliveries are signed with the old secret too, while the receiver switches.",
    )

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"overlap_hours": 24}]})


class SecretRotated(BaseModel):
    secret: str = Field(description="The new signing secret. Shown once: store it now.")
    previous_secret_until: datetime | None

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"secret": EXAMPLE_SECRET, "previous_secret_until": "2026-12-01T09:15:00Z"}]}
    )


class EventType(BaseModel):
    type: str
    description: str

    model_config = ConfigDict(json_schema_extra={"examples": [{"type": "deal.won", "description": "A deal was won"}]})


EXAMPLE_ID = "01937c50-2a1b-7c3d-8e4f-5a6b7c8d9e0f"
EXAMPLE_PAYLOAD: dict[str, Any] = {
    "id": EXAMPLE_ID,
    "type": "deal.won",
    "created_at": "2026-11-30T10:02:11.418000+00:00",
    "data": {
        "entity": "deal",
        "id": "01937c4f-0000-7abc-8def-0123456789ab",
        "version": 7,
        "seq": 48213,
        "op": "update",
        "occurred_at": "2026-11-30T10:02:11.401000+00:00",
        "actor": {"kind": "user", "id": "01937c4e-1111-7b3c-9d4e-5f6a7b8c9d0e"},
        "changes": {"status": {"before": "open", "after": "won"}},
        "object": {"title": "Flota 2027 — Transportes Ruiz", "status": "won", "amount_minor": 1250000},
    },
}


class WebhookEventRead(Output):
    id: uuid.UUID = Field(description="The message id: the `webhook-id` header of every attempt.")
    type: str
    status: EventStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="When the next attempt is due; null once settled.")
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="The body every attempt sends.")

    @field_validator("payload", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_ID,
                    "type": "deal.won",
                    "status": "pending",
                    "attempts": 2,
                    "created_at": "2026-11-30T10:02:11Z",
                    "next_attempt_at": "2026-11-30T10:03:40Z",
                    "delivered_at": None,
                    "payload": EXAMPLE_PAYLOAD,
                }
            ]
        },
    )


class DeliveryRead(Output):
    id: uuid.UUID
    event_id: uuid.UUID
    attempt: int
    at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status; null when none came (see `error`).")
    latency_ms: int
    is_success: bool
    error: str | None
    response_excerpt: str = Field(description="The first 500 bytes of the receiver's answer.")

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "01937c51-0000-7abc-8def-0123456789ab",
                    "event_id": EXAMPLE_ID,
                    "attempt": 1,
                    "at": "2026-11-30T10:02:11Z",
                    "status_code": 500,
                    "latency_ms": 212,
                    "is_success": False,
                    "error": None,
                    "response_excerpt": "Internal Server Error",
                }
            ]
        },
    )


class Queued(BaseModel):
    event_id: uuid.UUID = Field(description="The message queued: follow it in the endpoint's events and deliveries.")

    model_config = ConfigDict(json_schema_extra={"examples": [{"event_id": EXAMPLE_ID}]})
