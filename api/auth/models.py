"""Organisations, teams, users, login sessions, refresh tokens, API keys and login throttling."""

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api.core.ids import new_id
from api.core.models import Record
from api.core.types import JSONType, UTCDateTime, utcnow


class Role(StrEnum):
    admin = "admin"
    manager = "manager"
    rep = "rep"
    marketing = "marketing"


class Organization(SQLModel, table=True):
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    name: str = Field(max_length=200)
    # Defaults that later domains read: phone region, currency, locale, time zone.
    settings: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    # The change log's counter: taken with UPDATE ... RETURNING, whose row lock orders changes by commit.
    change_seq: int = Field(default=0, sa_type=sa.BigInteger)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1)


class Team(Record, table=True):
    name: str = Field(max_length=200)
    parent_id: uuid.UUID | None = Field(default=None, foreign_key="team.id", index=True)
    head_id: uuid.UUID | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.Uuid, sa.ForeignKey("user.id", use_alter=True, name="fk_team_head_id_user"), nullable=True
        ),
    )
    # Teams start using Fieldbook one at a time: their numbers count from this day (the organisation's time zone).
    go_live_on: date | None = None


class User(Record, table=True):
    __table_args__ = (sa.CheckConstraint("role IN ('admin', 'manager', 'rep', 'marketing')", name="role"),)

    email: str = Field(max_length=320, unique=True)
    name: str = Field(max_length=200)
    # Accent- and case-folded name for the colleague picker.
    name_folded: str = Field(max_length=200, index=True)
    role: str = Field(max_length=20)
    team_id: uuid.UUID | None = Field(default=None, foreign_key="team.id", index=True)
    is_active: bool = Field(default=True)
    password_hash: str | None = Field(default=None, max_length=200)
    invite_hash: str | None = Field(default=None, max_length=64, unique=True)
    invite_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AuthSession(SQLModel, table=True):
    """One signed-in device: the family of refresh tokens that rotate from one login."""

    __tablename__ = "auth_session"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    org_id: uuid.UUID = Field(foreign_key="organization.id", index=True, ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    device: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_reason: str | None = Field(default=None, max_length=40)


class RefreshToken(SQLModel, table=True):
    __tablename__ = "refresh_token"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    session_id: uuid.UUID = Field(foreign_key="auth_session.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    # Set when the token is exchanged; presenting it again is reuse.
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ApiKey(Record, table=True):
    __tablename__ = "api_key"

    name: str = Field(max_length=200)
    prefix: str = Field(max_length=32, unique=True)
    key_hash: str = Field(max_length=64)
    scopes: list[str] = Field(default_factory=list, sa_type=JSONType)
    created_by: uuid.UUID | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    # Revoking a key deletes it (deleted_at): it stops working at once and its history stays in the audit log.
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class LoginFailure(SQLModel, table=True):
    """Failed sign-ins, kept for the throttling window; in the database so every API process sees them."""

    __tablename__ = "login_failure"
    __table_args__ = (
        sa.Index("ix_login_failure_email_at", "email", "at"),
        sa.Index("ix_login_failure_address_at", "address", "at"),
        sa.Index("ix_login_failure_at", "at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    email: str = Field(max_length=320)
    address: str = Field(max_length=64)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
