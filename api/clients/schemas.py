"""API shapes for companies, contacts, custom fields and client cards."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints
from pydantic_extra_types.country import CountryAlpha2

from api.clients.models import FieldKind
from api.core import examples as ex
from api.core.examples import examples, record
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

    model_config = ConfigDict(
        json_schema_extra=examples(
            record(
                ex.FIELD,
                entity="company",
                key="zona",
                label="Zona de reparto",
                kind="choice",
                choices=["Valencia Norte", "Valencia Sur", "Castellón"],
                is_required=False,
                position=1,
            ),
        ),
    )


class CustomFieldCreate(Input):
    entity: Annotated[str, Field(pattern="^(company|contact|deal)$")]
    key: FieldKey
    label: Label
    kind: FieldKind
    choices: Annotated[list[Label], Field(max_length=100)] = Field(default_factory=list)
    is_required: bool = False

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {
                "entity": "company",
                "key": "zona",
                "label": "Zona de reparto",
                "kind": "choice",
                "choices": ["Valencia Norte", "Valencia Sur", "Castellón"],
            },
        ),
    )


class CustomFieldUpdate(Input):
    label: Label | None = optional()
    choices: Annotated[list[Label], Field(max_length=100)] | None = optional()
    is_required: bool | None = optional()
    position: Annotated[int, Field(ge=0, le=1000)] | None = optional()

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"label": "Zona", "choices": ["Valencia Norte", "Valencia Sur", "Castellón", "Alicante"]},
        ),
    )


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

    model_config = ConfigDict(
        json_schema_extra=examples(
            record(
                ex.COMPANY,
                version=4,
                name="Frutas Martínez S.L.",
                owner_id=ex.MARTA,
                tags=["cliente", "feria-2026"],
                segment="Pyme",
                source="Feria",
                custom={"zona": "Valencia Norte"},
                deleted_at=None,
                domain="frutasmartinez.es",
                industry="Alimentación",
                size=35,
                phone="+34961234567",
                address="Avenida del Puerto, 112",
                city="Valencia",
                country="ES",
            ),
        ),
    )


class ContactRead(ClientRead):
    title: str | None
    company_id: uuid.UUID | None
    emails: list[str]
    phones: list[str]
    email_consent: bool
    phone_consent: bool

    model_config = ConfigDict(
        json_schema_extra=examples(
            record(
                ex.CONTACT,
                version=2,
                name="Lucía Martínez Soler",
                owner_id=ex.MARTA,
                tags=["decisor"],
                segment=None,
                source="Feria",
                custom={},
                deleted_at=None,
                title="Gerente",
                company_id=ex.COMPANY,
                emails=["lucia.martinez@frutasmartinez.es"],
                phones=["+34612345678"],
                email_consent=True,
                phone_consent=True,
            ),
        ),
    )


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
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {
                "name": "Frutas Martínez S.L.",
                "domain": "www.frutasmartinez.es",
                "industry": "Alimentación",
                "size": 35,
                "phone": "961 23 45 67",
                "address": "Avenida del Puerto, 112",
                "city": "Valencia",
                "country": "ES",
                "tags": ["feria-2026"],
                "segment": "Pyme",
                "source": "Feria",
                "custom": {"zona": "Valencia Norte"},
            },
        ),
    )


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

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {
                "name": "Lucía Martínez Soler",
                "title": "Gerente",
                "company_id": ex.COMPANY,
                "emails": ["lucia.martinez@frutasmartinez.es"],
                "phones": ["612 34 56 78"],
                "email_consent": True,
                "phone_consent": True,
                "tags": ["decisor"],
                "source": "Feria",
            },
        ),
    )


class ClientUpdate(Input):
    name: Name | None = optional()
    owner_id: uuid.UUID | None = optional(description="Reassign: a manager within their team, an admin anywhere.")
    tags: Tags | None = optional()
    segment: Label | None = None
    source: Label | None = None
    custom: Custom | None = optional(description="Keys to set; a key set to null clears that field.")


class CompanyUpdate(ClientUpdate, CompanyFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"segment": "Cuenta clave", "tags": ["cliente", "feria-2026"], "custom": {"zona": "Valencia Sur"}},
        ),
    )


class ContactUpdate(ClientUpdate, ContactFields):
    emails: Emails | None = optional()
    phones: Phones | None = optional()
    email_consent: bool | None = optional()
    phone_consent: bool | None = optional()

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"title": "Directora general", "phones": ["+34 612 34 56 78", "961 23 45 60"]},
        ),
    )


class DuplicateMatch(Output):
    id: uuid.UUID
    kind: str = Field(description="`company` or `contact`.")
    owner_id: uuid.UUID
    matched: str = Field(description="`email`, `phone` or `domain`.")
    value: str

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "id": ex.COMPANY,
                "kind": "company",
                "owner_id": ex.MARTA,
                "matched": "domain",
                "value": "frutasmartinez.es",
            },
        ),
    )
