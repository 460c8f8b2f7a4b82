"""Plain async factories: keyword arguments in, committed (savepoint-released) rows out."""

import uuid
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import ApiKey, Organization, Role, Team, User
from api.auth.principals import Principal
from api.auth.schemas import ApiKeyCreate, TeamCreate, UserCreate
from api.auth.service import create_api_key, create_organization, create_team, create_user

PASSWORD = "correct-horse-battery"


async def make_org(session: AsyncSession, name: str = "Acme", locale: str = "en") -> Organization:
    org = await create_organization(session, name=name, settings={"locale": locale, "currency": "EUR"})
    await session.commit()
    return org


def system(org: Organization) -> Principal:
    return Principal.system(org.id)


async def make_user(
    session: AsyncSession,
    org: Organization,
    *,
    role: Role = Role.rep,
    name: str | None = None,
    email: str | None = None,
    team: Team | None = None,
    password: str | None = PASSWORD,
) -> User:
    tag = uuid.uuid4().hex[:8]
    data = UserCreate(
        email=email or f"{role.value}-{tag}@example.com",
        name=name or f"{role.value.title()} {tag}",
        role=role,
        team_id=team.id if team else None,
        password=password,
    )
    user, _ = await create_user(session=session, principal=system(org), data=data)
    await session.commit()
    return user


async def make_team(
    session: AsyncSession, org: Organization, *, name: str = "Sales", parent: Team | None = None
) -> Team:
    team = await create_team(
        session=session,
        principal=system(org),
        data=TeamCreate(name=name, parent_id=parent.id if parent else None),
    )
    await session.commit()
    return team


async def make_api_key(session: AsyncSession, org: Organization, *scopes: str) -> tuple[ApiKey, str]:
    key, secret = await create_api_key(
        session=session,
        principal=system(org),
        data=ApiKeyCreate.model_validate({"name": "CRM sync", "scopes": scopes}),
    )
    await session.commit()
    return key, secret


async def sign_in(client: httpx.AsyncClient, user: User, password: str = PASSWORD) -> dict[str, str]:
    response = await client.post("/api/v1/auth/login", json={"email": user.email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@dataclass
class Tenant:
    """An organisation with an admin, a rep, a team and an API key, and the admin's auth headers."""

    org: Organization
    admin: User
    rep: User
    team: Team
    key: ApiKey
    key_secret: str
    headers: dict[str, str]


async def make_tenant(session: AsyncSession, client: httpx.AsyncClient, name: str = "Acme") -> Tenant:
    org = await make_org(session, name)
    team = await make_team(session, org)
    admin = await make_user(session, org, role=Role.admin)
    rep = await make_user(session, org, role=Role.rep, team=team)
    key, secret = await make_api_key(session, org, "users:read")
    return Tenant(org, admin, rep, team, key, secret, await sign_in(client, admin))
