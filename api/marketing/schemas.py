"""API shapes for marketing: client cards (what a promotion is built from), their filters, and saved segments."""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints

from api.clients.models import ClientKind
from api.clients.schemas import Label
from api.core.schemas import Input, Output, RecordRead, optional
from api.core.types import Day, Name, no_nul

Consent = Literal["email", "phone", "any"]
MAX_VALUES = 20
Values = Annotated[list[Label], Field(max_length=MAX_VALUES)]
Minor = Annotated[int, Field(ge=0, le=10**15)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000), AfterValidator(no_nul)]

# Filters that read deals: an API key needs `deals:read` to use them, as to see the numbers they filter on.
DEAL_FILTERS = ("last_purchase_from", "last_purchase_to", "lifetime_value_min", "lifetime_value_max", "has_open_deal")

FILTERS_EXAMPLE: dict[str, Any] = {
    "tag": ["vip"],
    "industry": ["Logistics", "Retail"],
    "last_purchase_from": "2025-01-01",
    "lifetime_value_min": 500000,
    "has_open_deal": False,
    "consent": "email",
}


class CardFilters(Input):
    """Which client cards a list, an export or a saved segment holds. Every filter given must match; left out, it
    does not narrow. `GET /client-cards` takes the same names as query parameters."""

    kind: ClientKind | None = Field(default=None, description="Only company cards, or only cards of lone contacts.")
    tag: Values | None = Field(default=None, description="Cards carrying every one of these tags.")
    any_tag: Values | None = Field(default=None, description="Cards carrying at least one of these tags.")
    segment: Values | None = Field(default=None, description="Cards in one of these segments.")
    industry: Values | None = Field(
        default=None, description="Companies in one of these industries (lone contacts have none: never match)."
    )
    last_purchase_from: Day | None = Field(
        default=None, description="Last won deal on or after this day (the organisation's time zone)."
    )
    last_purchase_to: Day | None = Field(
        default=None, description="Last won deal on or before this day (the organisation's time zone)."
    )
    lifetime_value_min: Minor | None = Field(
        default=None, description="Won deals total at least this, in minor units of the organisation's currency."
    )
    lifetime_value_max: Minor | None = Field(
        default=None, description="Won deals total at most this, in minor units of the organisation's currency."
    )
    has_open_deal: bool | None = Field(default=None, description="Cards with (true) or without (false) an open deal.")
    consent: Consent | None = Field(
        default=None,
        description="Cards with at least one contact who agreed to marketing by this channel (`any`: either); "
        "their contacts are narrowed to those.",
    )

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [FILTERS_EXAMPLE]})


class CardContact(Output):
    """A person of a card who agreed to marketing. E-mails are shown only with e-mail consent, phones only with
    phone consent (empty otherwise)."""

    id: uuid.UUID
    name: str
    title: str | None
    emails: list[str]
    phones: list[str]
    email_consent: bool
    phone_consent: bool


CARD_EXAMPLE: dict[str, Any] = {
    "id": "0193a0f4-6b1e-7c4e-9a51-1d2f3e4a5b6c",
    "kind": "company",
    "name": "Transportes Norte",
    "domain": "transportesnorte.es",
    "industry": "Logistics",
    "size": 120,
    "phone": "+34910000001",
    "city": "Bilbao",
    "country": "ES",
    "segment": "smb",
    "tags": ["vip"],
    "source": "referral",
    "owner_id": "0193a0f4-0000-7000-8000-000000000001",
    "currency": "EUR",
    "lifetime_value_minor": 1250000,
    "last_purchase_at": "2026-03-14T10:02:00Z",
    "open_deals": 1,
    "won_deals": 3,
    "contacts": [
        {
            "id": "0193a0f4-6b1e-7c4e-9a51-000000000002",
            "name": "Ana Núñez",
            "title": "Fleet manager",
            "emails": ["ana@transportesnorte.es"],
            "phones": [],
            "email_consent": True,
            "phone_consent": False,
        }
    ],
    "contact_count": 1,
    "created_at": "2025-05-02T08:00:00Z",
    "updated_at": "2026-03-14T10:02:00Z",
}


class ClientCardRow(Output):
    """A client card for marketing: a company with its contacts, or a contact without a company. With `fields=`, an
    item holds only the fields asked for (and `id`). Deal numbers are null for an API key without `deals:read`."""

    id: uuid.UUID = Field(description="The company's id (company cards) or the contact's (contact cards).")
    kind: ClientKind | None = None
    name: str | None = None
    domain: str | None = Field(default=None, description="Company cards only, as `industry` ... `country`.")
    industry: str | None = None
    size: int | None = Field(default=None, description="Employees.")
    phone: str | None = Field(default=None, description="The company's switchboard (a person's phones are theirs).")
    city: str | None = None
    country: str | None = None
    segment: str | None = None
    tags: list[str] | None = None
    source: str | None = None
    owner_id: uuid.UUID | None = None
    currency: str | None = Field(default=None, description="The organisation's currency, which values are in.")
    lifetime_value_minor: int | None = Field(
        default=None, description="Won deals in the organisation's currency, minor units (others are not counted)."
    )
    last_purchase_at: datetime | None = Field(default=None, description="When the last deal was won.")
    open_deals: int | None = None
    won_deals: int | None = Field(default=None, description="Won deals in any currency.")
    contacts: list[CardContact] | None = Field(
        default=None, description="The card's contacts who agreed to marketing, by name (first 50; exports hold all)."
    )
    contact_count: int | None = Field(default=None, description="How many contacts `contacts` would hold uncut.")
    created_at: datetime | None = None
    updated_at: datetime | None = None

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [CARD_EXAMPLE]})


CARD_FIELDS: tuple[str, ...] = tuple(ClientCardRow.model_fields)


PAGE_EXAMPLE: dict[str, Any] = {"items": [CARD_EXAMPLE], "next_cursor": None}


class ClientCardPage(Output):
    items: list[ClientCardRow]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; null on the last.")

    model_config = ConfigDict(json_schema_extra={"examples": [PAGE_EXAMPLE]})


# Saved segments

SegmentName = Name
SEGMENT_EXAMPLE: dict[str, Any] = {
    "name": "VIP logistics, no open deal",
    "description": "Spring promotion: big spenders who are not buying right now.",
    "filters": FILTERS_EXAMPLE,
}


class SegmentCreate(Input):
    name: SegmentName
    description: Description = ""
    filters: CardFilters = Field(default_factory=CardFilters)

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SEGMENT_EXAMPLE]})


class SegmentUpdate(Input):
    name: SegmentName | None = optional()
    description: Description | None = optional()
    filters: CardFilters | None = optional(description="Replaces the saved filters as a whole.")

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"filters": {"tag": ["vip"], "consent": "any"}}]}
    )


class SegmentRead(RecordRead):
    name: str
    description: str
    filters: CardFilters
    created_by_user_id: uuid.UUID | None
    created_by_key_id: uuid.UUID | None

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0193a0f4-7777-7000-8000-00000000000a",
                    **SEGMENT_EXAMPLE,
                    "created_by_user_id": "0193a0f4-0000-7000-8000-000000000003",
                    "created_by_key_id": None,
                    "created_at": "2026-03-01T09:00:00Z",
                    "updated_at": "2026-03-01T09:00:00Z",
                    "version": 1,
                }
            ]
        },
    )
