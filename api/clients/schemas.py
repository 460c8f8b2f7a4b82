"""API shapes for companies, contacts, custom fields and client cards."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints
from pydantic_extra_types.country import CountryAlpha2

from api.clients.models import FieldKind
from api.core.schemas import Input, Output, RecordRead, optional
from api.core.types import Name, no_nul

Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), AfterValidator(no_nul)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), AfterValidator(no_nul)]
Handle = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320), AfterValidator(no_nul)]
Tags = Annotated[list[Label], Field(max_length=20, description="Free labels, e.g. `vip`, `feria-2026`.")]
Custom = Annotated[
    dict[str, Any],
    Field(max_length=100, description="Values of the organisation's custom fields, by key (see /custom-fields)."),
]
ClientId = Annotated[
    uuid.UUID | None,
    Field(description="A UUIDv7 made by the client (offline apps); one is made when left out."),
]


# Custom fields

FieldKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class CustomFieldRead(RecordRead):
    entity: str
    key: str
    label: str
    kind: FieldKind
    choices: list[str]
    is_required: bool
    position: int


class CustomFieldCreate(Input):
    entity: Annotated[str, Field(pattern="^(company|contact|deal)$")]
    key: FieldKey
    label: Label
    kind: FieldKind
    choices: Annotated[list[Label], Field(max_length=100)] = Field(default_factory=list)
    is_required: bool = False


class CustomFieldUpdate(Input):
    label: Label | None = optional()
    choices: Annotated[list[Label], Field(max_length=100)] | None = optional()
    is_required: bool | None = optional()
    position: Annotated[int, Field(ge=0, le=1000)] | None = optional()


# Companies and contacts


class ClientRead(RecordRead):
    name: str
    owner_id: uuid.UUID
    tags: list[str]
    segment: str | None
    source: str | None
    custom: dict[str, Any]
    deleted_at: datetime | None


class CompanyRead(ClientRead):
    domain: str | None
    industry: str | None
    size: int | None
    phone: str | None
    address: str | None
    city: str | None
    country: str | None


class ContactRead(ClientRead):
    title: str | None
    company_id: uuid.UUID | None
    emails: list[str]
    phones: list[str]
    email_consent: bool
    phone_consent: bool


class ClientCreate(Input):
    id: ClientId = None
    name: Name
    owner_id: uuid.UUID | None = Field(default=None, description="Defaults to you (an API key must name one).")
    tags: Tags = Field(default_factory=list)
    segment: Label | None = None
    source: Label | None = Field(default=None, description="Where the client came from: `web`, `referral`, ...")
    custom: Custom = Field(default_factory=dict)


class CompanyFields(Input):
    domain: Handle | None = Field(default=None, description="Web domain or address; stored as `acme.es`.")
    industry: Label | None = None
    size: Annotated[int, Field(ge=0, le=10_000_000, description="Employees.")] | None = None
    phone: Handle | None = Field(default=None, description="Any formatting; stored in E.164.")
    address: LongText | None = None
    city: Label | None = None
    country: CountryAlpha2 | None = None


class CompanyCreate(ClientCreate, CompanyFields):
    pass


Emails = Annotated[list[Handle], Field(max_length=10)]
Phones = Annotated[list[Handle], Field(max_length=10, description="Any formatting; stored in E.164.")]


class ContactFields(Input):
    title: Label | None = None
    company_id: uuid.UUID | None = None


class ContactCreate(ClientCreate, ContactFields):
    emails: Emails = Field(default_factory=list)
    phones: Phones = Field(default_factory=list)
    email_consent: bool = False
    phone_consent: bool = False


class ClientUpdate(Input):
    name: Name | None = optional()
    owner_id: uuid.UUID | None = optional(description="Reassign: a manager within their team, an admin anywhere.")
    tags: Tags | None = optional()
    segment: Label | None = None
    source: Label | None = None
    custom: Custom | None = optional(description="Keys to set; a key set to null clears that field.")


class CompanyUpdate(ClientUpdate, CompanyFields):
    pass


class ContactUpdate(ClientUpdate, ContactFields):
    emails: Emails | None = optional()
    phones: Phones | None = optional()
    email_consent: bool | None = optional()
    phone_consent: bool | None = optional()


class DuplicateMatch(Output):
    id: uuid.UUID
    kind: str = Field(description="`company` or `contact`.")
    owner_id: uuid.UUID
    matched: str = Field(description="`email`, `phone` or `domain`.")
    value: str
