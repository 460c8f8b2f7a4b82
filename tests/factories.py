"""Plain async factories: keyword arguments in, committed (savepoint-released) rows out."""

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from api.activities import service as activity_service
from api.activities.models import Activity
from api.activities.schemas import ActivityCreate
from api.auth.models import ApiKey, Organization, Role, Team, User
from api.auth.principals import Principal
from api.auth.schemas import ApiKeyCreate, TeamCreate, UserCreate
from api.auth.service import create_api_key, create_organization, create_team, create_user
from api.clients import service as clients
from api.clients.models import Company, Contact
from api.clients.schemas import CompanyCreate, ContactCreate
from api.deals import deals as deal_service
from api.deals.models import Deal
from api.deals.schemas import DealCreate
from api.sharing import service as sharing
from api.sharing.schemas import ShareCreate
from api.sharing.visibility import Viewer, viewer_for

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


# CRM records, made through the services as the given user would (owner defaults to that user).


async def viewer_of_user(session: AsyncSession, user: User) -> Viewer:
    principal = Principal(kind="user", org_id=user.org_id, id=user.id, role=Role(user.role), team_id=user.team_id)
    return await viewer_for(session, principal)


async def make_company(session: AsyncSession, owner: User, *, name: str = "Acme Corp", **fields: Any) -> Company:
    viewer = await viewer_of_user(session, owner)
    company: Company = await clients.create_client(
        session=session,
        viewer=viewer,
        spec=clients.COMPANY,
        data=CompanyCreate(name=name, **fields),
        confirm_duplicate=True,
    )
    await session.commit()
    return company


async def make_contact(session: AsyncSession, owner: User, *, name: str = "Ana Núñez", **fields: Any) -> Contact:
    viewer = await viewer_of_user(session, owner)
    contact: Contact = await clients.create_client(
        session=session,
        viewer=viewer,
        spec=clients.CONTACT,
        data=ContactCreate(name=name, **fields),
        confirm_duplicate=True,
    )
    await session.commit()
    return contact


async def make_deal(session: AsyncSession, owner: User, *, title: str = "Fleet renewal", **fields: Any) -> Deal:
    viewer = await viewer_of_user(session, owner)
    deal = await deal_service.create_deal(session=session, viewer=viewer, data=DealCreate(title=title, **fields))
    await session.commit()
    return deal


async def make_activity(session: AsyncSession, owner: User, *, kind: str = "call", **fields: Any) -> Activity:
    viewer = await viewer_of_user(session, owner)
    activity, _ = await activity_service.create_activity(
        session=session, viewer=viewer, data=ActivityCreate.model_validate({"kind": kind, **fields})
    )
    await session.commit()
    return activity


async def share_with(session: AsyncSession, owner: User, entity: str, entity_id: uuid.UUID, *users: User) -> None:
    viewer = await viewer_of_user(session, owner)
    await sharing.share(
        session=session,
        viewer=viewer,
        data=ShareCreate.model_validate({"entity": entity, "entity_id": entity_id, "user_ids": [u.id for u in users]}),
    )
    await session.commit()
