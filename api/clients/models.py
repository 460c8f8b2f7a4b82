"""Clients: companies and the people (contacts) we sell to, their custom fields and their contact points."""

import uuid
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from api.core.models import Record
from api.core.types import JSONType


class ClientKind(StrEnum):
    company = "company"
    contact = "contact"


class Client(Record):
    """What companies and contacts share: ownership, classification and organisation-defined fields."""

    name: str = Field(max_length=200)
    # Case- and accent-folded name: ordering, prefix search and the trigram index use it.
    name_folded: str = Field(max_length=200)
    owner_id: uuid.UUID = Field(foreign_key="user.id")
    tags: list[str] = Field(default_factory=list, sa_type=JSONType)
    segment: str | None = Field(default=None, max_length=100)
    source: str | None = Field(default=None, max_length=100)
    custom: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)


class Company(Client, table=True):
    __table_args__ = (
        sa.Index("ix_company_org_id_name_folded_id", "org_id", "name_folded", "id"),
        sa.Index("ix_company_org_id_owner_id_name_folded", "org_id", "owner_id", "name_folded"),
    )

    domain: str | None = Field(default=None, max_length=253)
    industry: str | None = Field(default=None, max_length=100)
    size: int | None = Field(default=None)
    phone: str | None = Field(default=None, max_length=40)
    address: str | None = Field(default=None, max_length=500)
    city: str | None = Field(default=None, max_length=100)
    country: str | None = Field(default=None, max_length=2)


class Contact(Client, table=True):
    __table_args__ = (
        sa.Index("ix_contact_org_id_name_folded_id", "org_id", "name_folded", "id"),
        sa.Index("ix_contact_org_id_owner_id_name_folded", "org_id", "owner_id", "name_folded"),
        sa.Index("ix_contact_org_id_company_id", "org_id", "company_id"),
    )

    title: str | None = Field(default=None, max_length=200)
    company_id: uuid.UUID | None = Field(default=None, foreign_key="company.id")
    # Normalised: e-mails lower-cased and checked, phones in E.164.
    emails: list[str] = Field(default_factory=list, sa_type=JSONType)
    phones: list[str] = Field(default_factory=list, sa_type=JSONType)
    email_consent: bool = Field(default=False)
    phone_consent: bool = Field(default=False)


class ContactPoint(Record, table=True):
    """One normalised e-mail, phone or web domain of a live client: duplicate checks and exact search use it.

    Derived from the client rows (rewritten with them), so it is not in the change log.
    """

    __tablename__ = "contact_point"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('email', 'phone', 'domain')", name="kind"),
        sa.Index("ix_contact_point_org_id_kind_value", "org_id", "kind", "value"),
        sa.Index("ix_contact_point_client_id", "client_id"),
    )

    kind: str = Field(max_length=10)
    value: str = Field(max_length=320)
    client_kind: str = Field(max_length=10)
    client_id: uuid.UUID


class FieldKind(StrEnum):
    text = "text"
    number = "number"
    date = "date"
    choice = "choice"


class CustomField(Record, table=True):
    """A field an organisation adds to its companies, contacts or deals; values live in their `custom` JSON."""

    __tablename__ = "custom_field"
    __table_args__ = (
        sa.CheckConstraint("entity IN ('company', 'contact', 'deal')", name="entity"),
        sa.CheckConstraint("kind IN ('text', 'number', 'date', 'choice')", name="kind"),
        sa.Index(
            "uq_custom_field_org_id_entity_key",
            "org_id",
            "entity",
            "key",
            unique=True,
            sqlite_where=sa.text("deleted_at IS NULL"),
            postgresql_where=sa.text("deleted_at IS NULL"),
        ),
    )

    entity: str = Field(max_length=10)
    key: str = Field(max_length=40)
    label: str = Field(max_length=100)
    kind: str = Field(max_length=10)
    choices: list[str] = Field(default_factory=list, sa_type=JSONType)
    is_required: bool = Field(default=False)
    position: int = Field(default=0)
