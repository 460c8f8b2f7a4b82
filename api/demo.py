"""The demo organisation: a small Spanish-speaking sales team. Deterministic, and loading it twice is harmless."""

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Organization, Role, Team, User
from api.auth.principals import Principal
from api.auth.schemas import TeamCreate, TeamUpdate, UserCreate
from api.auth.service import create_organization, create_team, create_user, update_team

DEMO_ORG_ID = uuid.UUID("018f0000-0000-7000-8000-00000000d3e0")
DEMO_PASSWORD = "fieldbook-demo"
ADMIN_EMAIL = "admin@demo.fieldbook.app"

# (team, parent team, head's e-mail)
TEAMS = (
    ("Ventas", None, "director@demo.fieldbook.app"),
    ("Ventas Norte", "Ventas", "luis@demo.fieldbook.app"),
    ("Ventas Sur", "Ventas", "carmen@demo.fieldbook.app"),
    ("Marketing", None, None),
)
# (name, e-mail, role, team)
USERS = (
    ("Ana García", ADMIN_EMAIL, Role.admin, None),
    ("Javier Moreno", "director@demo.fieldbook.app", Role.manager, "Ventas"),
    ("Luis Fernández", "luis@demo.fieldbook.app", Role.manager, "Ventas Norte"),
    ("Marta López", "marta@demo.fieldbook.app", Role.rep, "Ventas Norte"),
    ("Jorge Ruiz", "jorge@demo.fieldbook.app", Role.rep, "Ventas Norte"),
    ("Carmen Díaz", "carmen@demo.fieldbook.app", Role.manager, "Ventas Sur"),
    ("Sofía Martín", "sofia@demo.fieldbook.app", Role.rep, "Ventas Sur"),
    ("Diego Torres", "diego@demo.fieldbook.app", Role.rep, "Ventas Sur"),
    ("Elena Navarro", "elena@demo.fieldbook.app", Role.marketing, "Marketing"),
)


@dataclass(frozen=True)
class DemoLogin:
    email: str
    password: str


async def load(session: AsyncSession) -> DemoLogin:
    login = DemoLogin(email=ADMIN_EMAIL, password=DEMO_PASSWORD)
    if await session.get(Organization, DEMO_ORG_ID) is not None:
        return login
    await create_organization(
        session,
        org_id=DEMO_ORG_ID,
        name="Demo Comercial S.L.",
        settings={"phone_region": "ES", "currency": "EUR", "locale": "es-ES", "time_zone": "Europe/Madrid"},
    )
    system = Principal.system(DEMO_ORG_ID)

    teams: dict[str, Team] = {}
    for name, parent, _head in TEAMS:
        parent_id = teams[parent].id if parent else None
        teams[name] = await create_team(
            session=session, principal=system, data=TeamCreate(name=name, parent_id=parent_id)
        )
    users: dict[str, User] = {}
    for name, email, role, team in USERS:
        team_id = teams[team].id if team else None
        data = UserCreate(email=email, name=name, role=role, team_id=team_id, password=DEMO_PASSWORD)
        users[email], _ = await create_user(session=session, principal=system, data=data)
    for name, _parent, head in TEAMS:
        if head:
            await update_team(
                session=session,
                principal=system,
                team_id=teams[name].id,
                data=TeamUpdate(head_id=users[head].id),
                expected_version=None,
            )
    return login
