"""API shapes for sign-in, users, teams and API keys."""

import uuid
from datetime import date, datetime
from typing import Annotated, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints
from pydantic_extra_types.country import CountryAlpha2
from pydantic_extra_types.currency_code import ISO4217

from api.auth.models import Role, User
from api.core import examples as ex
from api.core.examples import example_of, examples, record
from api.core.schemas import Input, Output, optional
from api.core.types import Day, Name, Password, ShortText

Scope = Literal[
    "clients:read",
    "clients:write",
    "deals:read",
    "deals:write",
    "activities:read",
    "activities:write",
    "users:read",
    "changes:read",
    "insights:read",
    "webhooks:manage",
]
SCOPES: tuple[str, ...] = get_args(Scope)
Device = ShortText
Token = Annotated[str, StringConstraints(min_length=1, max_length=200)]


# Sign-in


class LoginRequest(Input):
    email: EmailStr = Field(max_length=320)
    password: str = Field(min_length=1, max_length=256)
    device: Device = ""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"email": "marta.lopez@comerciallevante.es", "password": "•••••••••••", "device": "Pixel 8"}
        ),
    )


class RefreshRequest(Input):
    refresh_token: Token

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"refresh_token": "37CoorbyQOI4geRMdg5L9UZ6yyF-Fmm-xNyROxgZKKg"},
        ),
    )


class AcceptInvite(Input):
    token: Token
    password: Password
    device: Device = ""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"token": "kq7Zr2XhVb0mN4tLwYc9pE1sGdUa6fJi", "password": "Naranjos-de-Alzira-26", "device": "iPhone 15"},
        ),
    )


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str = Field(description="Single use: each refresh returns a new one.")

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIwMTljYWRlNy05MDAwIn0.3q2Jx0VnWkT",
                "token_type": "bearer",
                "expires_in": 900,
                "refresh_token": "37CoorbyQOI4geRMdg5L9UZ6yyF-Fmm-xNyROxgZKKg",
            },
        ),
    )


# Users


class UserRead(Output):
    id: uuid.UUID
    email: str
    name: str
    role: Role
    team_id: uuid.UUID | None
    is_active: bool
    has_password: bool = Field(description="False while an invitation is pending.")
    created_at: datetime
    updated_at: datetime
    version: int

    model_config = ConfigDict(
        json_schema_extra=examples(
            record(
                ex.MARTA,
                email="marta.lopez@comerciallevante.es",
                name="Marta López",
                role="rep",
                team_id=ex.TEAM,
                is_active=True,
                has_password=True,
            ),
        ),
    )


def user_read(user: User) -> UserRead:
    return UserRead.model_validate({**user.model_dump(), "has_password": user.password_hash is not None})


class UserCreate(Input):
    email: EmailStr = Field(max_length=320)
    name: Name
    role: Role
    team_id: uuid.UUID | None = None
    password: Password | None = Field(
        default=None, description="Set a password now, or leave it out to get a one-time invitation token."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"email": "javier.ruiz@comerciallevante.es", "name": "Javier Ruiz", "role": "rep", "team_id": ex.TEAM},
        ),
    )


class UserUpdate(Input):
    email: EmailStr | None = optional(max_length=320)
    name: Name | None = optional()
    role: Role | None = optional()
    team_id: uuid.UUID | None = None
    is_active: bool | None = optional()

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"role": "manager", "team_id": ex.TEAM},
        ),
    )


class UserCreated(UserRead):
    invite_token: str | None = Field(default=None, description="Shown once; give it to the new colleague.")
    invite_expires_at: datetime | None = None

    model_config = ConfigDict(
        json_schema_extra=examples(
            record(
                ex.JAVIER,
                email="javier.ruiz@comerciallevante.es",
                name="Javier Ruiz",
                role="rep",
                team_id=ex.TEAM,
                is_active=True,
                has_password=False,
                invite_token="kq7Zr2XhVb0mN4tLwYc9pE1sGdUa6fJi",
                invite_expires_at="2026-03-09T09:15:00Z",
            ),
        ),
    )


class Invitation(BaseModel):
    invite_token: str = Field(description="Shown once; give it to the colleague.")
    invite_expires_at: datetime

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"invite_token": "kq7Zr2XhVb0mN4tLwYc9pE1sGdUa6fJi", "invite_expires_at": "2026-03-09T09:15:00Z"},
        ),
    )


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("not an IANA time zone (e.g. Europe/Madrid)") from exc
    return value


TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_time_zone)]
Locale = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")]


class OrganizationSettings(Input):
    """The organisation's defaults. Every field may be left out; an update changes only what it names."""

    locale: Locale | None = optional(description="Language of defaults (stage names, activity subjects): `es-ES`.")
    currency: ISO4217 | None = optional(description="Currency of new deals and products.")
    phone_region: CountryAlpha2 | None = optional(description="Country assumed for phones typed without a prefix.")
    time_zone: TimeZone | None = optional(description="What 'today' means on agendas: `Europe/Madrid`.")
    reps_see_team: bool | None = optional(description="Reps see their team's clients and deals, not only their own.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {
                "locale": "es-ES",
                "currency": "EUR",
                "phone_region": "ES",
                "time_zone": "Europe/Madrid",
                "reps_see_team": False,
            },
        ),
    )


class OrganizationRead(Output):
    id: uuid.UUID
    name: str
    settings: dict[str, object]
    version: int

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "id": ex.ORG,
                "name": "Comercial Levante S.L.",
                "settings": {"locale": "es-ES", "currency": "EUR", "phone_region": "ES", "time_zone": "Europe/Madrid"},
                "version": 3,
            },
        ),
    )


class OrganizationUpdate(Input):
    name: Name | None = optional()
    settings: OrganizationSettings | None = optional()

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"name": "Comercial Levante S.L.", "settings": {"time_zone": "Europe/Madrid", "reps_see_team": True}},
        ),
    )


class Me(BaseModel):
    kind: Literal["user", "api_key"]
    organization: OrganizationRead
    user: UserRead | None = None
    scopes: list[str] = Field(default_factory=list)

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"kind": "user", "organization": example_of(OrganizationRead), "user": example_of(UserRead), "scopes": []},
            {
                "kind": "api_key",
                "organization": example_of(OrganizationRead),
                "user": None,
                "scopes": ["changes:read", "clients:read"],
            },
        ),
    )


# Teams


class TeamRead(Output):
    id: uuid.UUID
    name: str
    parent_id: uuid.UUID | None
    head_id: uuid.UUID | None
    go_live_on: date | None
    created_at: datetime
    updated_at: datetime
    version: int

    model_config = ConfigDict(
        json_schema_extra=examples(
            record(ex.TEAM, name="Ventas Valencia", parent_id=None, head_id=ex.LUIS, go_live_on="2026-03-02"),
        ),
    )


GoLiveOn = Annotated[
    Day | None,
    Field(description="The day the team starts working in Fieldbook: its numbers count from then. Empty: always."),
]


class TeamCreate(Input):
    name: Name
    parent_id: uuid.UUID | None = None
    head_id: uuid.UUID | None = None
    go_live_on: GoLiveOn = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"name": "Ventas Valencia", "head_id": ex.LUIS, "go_live_on": "2026-03-02"},
        ),
    )


class TeamUpdate(Input):
    name: Name | None = optional()
    parent_id: uuid.UUID | None = None
    head_id: uuid.UUID | None = None
    go_live_on: GoLiveOn = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"name": "Ventas Valencia y Castellón", "head_id": ex.LUIS},
        ),
    )


# API keys


class ApiKeyRead(Output):
    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_by: uuid.UUID | None
    created_at: datetime
    last_used_at: datetime | None

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "id": ex.KEY,
                "name": "Sincronización ERP",
                "prefix": ex.KEY_PREFIX,
                "scopes": ["changes:read", "clients:read", "deals:read"],
                "created_by": ex.ANA,
                "created_at": ex.CREATED,
                "last_used_at": ex.UPDATED,
            },
        ),
    )


class ApiKeyCreate(Input):
    name: Name
    scopes: list[Scope] = Field(min_length=1, max_length=len(SCOPES))

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"name": "Sincronización ERP", "scopes": ["changes:read", "clients:read", "deals:read"]},
        ),
    )


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The secret key. Shown once: store it now.")

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                **example_of(ApiKeyRead),
                "last_used_at": None,
                "key": f"{ex.KEY_PREFIX}_T2xhLUVzdG8tRXMtVW4tU2VjcmV0by1kZS1FamVtcGxv",
            },
        ),
    )
