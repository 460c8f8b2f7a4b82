"""Users, teams and API keys of an organisation: rules, permissions and queries."""

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, func, select

from api.auth import login
from api.auth.models import ApiKey, Organization, Role, Team, User
from api.auth.passwords import check_new_password
from api.auth.principals import Principal
from api.auth.schemas import (
    ApiKeyCreate,
    OrganizationUpdate,
    TeamCreate,
    TeamRead,
    TeamUpdate,
    UserCreate,
    UserUpdate,
    user_read,
)
from api.auth.security import digest, expires_in, hash_password, new_api_key, new_secret
from api.core import changes
from api.core.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from api.core.etags import ensure_version
from api.core.models import get_record, live
from api.core.pagination import keyset_page
from api.core.schemas import changed_fields
from api.core.types import contains_pattern, fold
from api.deals import service as deals
from api.settings import get_settings

# Organisation


async def create_organization(
    session: AsyncSession, *, name: str, settings: dict[str, Any] | None = None, org_id: uuid.UUID | None = None
) -> Organization:
    """A new organisation, ready to sell: it gets its default pipeline and lost reasons in its language."""
    org = Organization(name=name, settings=settings or {})
    if org_id is not None:
        org.id = org_id
    session.add(org)
    await session.flush()
    await deals.seed_defaults(session, Principal.system(org.id), org)
    return org


async def get_organization(session: AsyncSession, principal: Principal) -> Organization:
    org = await session.get(Organization, principal.org_id)
    if org is None:
        raise NotFound("Organisation not found.")
    return org


async def update_organization(
    *, session: AsyncSession, principal: Principal, data: OrganizationUpdate, expected_version: int | None
) -> Organization:
    org = await get_organization(session, principal)
    if expected_version is not None and expected_version != org.version:
        raise PreconditionFailed(
            f"The organisation changed since you read it (you had version {expected_version}, it is {org.version}).",
            headers={"ETag": f'"{org.version}"'},
        )
    fields = changed_fields(data)
    settings = fields.get("settings") or {}
    if data.settings is not None:
        changed_fields(data.settings, at="#/settings")  # refuses a setting sent as null
    after = {"name": fields.get("name", org.name), "settings": {**org.settings, **settings}}
    changed = changes.diff({"name": org.name, "settings": org.settings}, after)
    if changed:
        org.name, org.settings = after["name"], after["settings"]
        org.version += 1
        await session.flush()
        await changes.record_change(
            session,
            principal=principal,
            entity="organization",
            entity_id=org.id,
            op="update",
            version=org.version,
            fields=changed,
        )
    return org


# Users


async def get_user(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> User:
    return await get_record(session, User, principal.org_id, user_id, "user")


async def list_users(
    *,
    session: AsyncSession,
    principal: Principal,
    q: str | None,
    include_inactive: bool,
    limit: int,
    cursor: str | None,
) -> tuple[list[User], str | None]:
    stmt = live(User, principal.org_id)
    if not (include_inactive and principal.is_admin):
        stmt = stmt.where(col(User.is_active).is_(True))
    if q:
        stmt = stmt.where(
            sa.or_(
                col(User.name_folded).like(contains_pattern(fold(q)), escape="\\"),
                col(User.email).like(contains_pattern(q.lower()), escape="\\"),
            )
        )
    return await keyset_page(
        session,
        stmt,
        scope="users",
        keys=[col(User.name_folded), col(User.id)],
        key_of=lambda u: (u.name_folded, u.id),
        limit=limit,
        cursor=cursor,
    )


async def _check_team_ref(session: AsyncSession, principal: Principal, team_id: uuid.UUID | None, field: str) -> None:
    if team_id is None:
        return
    found = await session.scalar(
        select(Team.id).where(
            col(Team.id) == team_id, col(Team.org_id) == principal.org_id, col(Team.deleted_at).is_(None)
        )
    )
    if found is None:
        raise ValidationFailed.field(f"#/{field}", "No such team.")


async def _check_email_free(session: AsyncSession, email: str, except_id: uuid.UUID | None = None) -> None:
    stmt = select(User.id).where(col(User.email) == email)
    if except_id is not None:
        stmt = stmt.where(col(User.id) != except_id)
    if await session.scalar(stmt) is not None:
        raise Conflict(
            "A user with this e-mail already exists.",
            errors=[{"pointer": "#/email", "detail": "already in use"}],
        )


def _new_invite() -> tuple[str, str, datetime]:
    token = new_secret()
    return token, digest(token), expires_in(get_settings().invite_days)


async def create_user(*, session: AsyncSession, principal: Principal, data: UserCreate) -> tuple[User, str | None]:
    """Create a colleague with a password, or with a one-time invitation token (returned, never stored)."""
    email = data.email.lower()
    await _check_email_free(session, email)
    await _check_team_ref(session, principal, data.team_id, "team_id")
    user = User(
        org_id=principal.org_id,
        email=email,
        name=data.name,
        name_folded=fold(data.name),
        role=data.role.value,
        team_id=data.team_id,
    )
    token = None
    if data.password is not None:
        check_new_password(data.password, email=email, name=data.name)
        user.password_hash = await hash_password(data.password)
    else:
        token, user.invite_hash, user.invite_expires_at = _new_invite()
    await changes.create(session, principal, "user", user)
    return user, token


async def _active_admins(session: AsyncSession, org_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count()).where(
            col(User.org_id) == org_id,
            col(User.role) == Role.admin.value,
            col(User.is_active).is_(True),
            col(User.deleted_at).is_(None),
        )
    )
    return int(count or 0)


async def update_user(
    *,
    session: AsyncSession,
    principal: Principal,
    user_id: uuid.UUID,
    data: UserUpdate,
    expected_version: int | None,
) -> User:
    user = await get_user(session, principal, user_id)
    ensure_version(user, expected_version, user_read)
    fields = changed_fields(data)
    if "email" in fields:
        fields["email"] = fields["email"].lower()
        await _check_email_free(session, fields["email"], except_id=user.id)
    if "name" in fields:
        fields["name_folded"] = fold(fields["name"])
    if "role" in fields:
        fields["role"] = Role(fields["role"]).value
    if "team_id" in fields:
        await _check_team_ref(session, principal, fields["team_id"], "team_id")
    loses_admin = (
        user.role == Role.admin.value
        and user.is_active
        and (fields.get("role", user.role) != Role.admin.value or fields.get("is_active") is False)
    )
    if loses_admin and await _active_admins(session, principal.org_id) <= 1:
        raise Conflict("An organisation needs at least one active administrator.")
    await changes.update(session, principal, "user", user, fields)
    if fields.get("is_active") is False:
        await login.revoke_user_sessions(session, user.id, "deactivated")
    return user


async def reissue_invite(*, session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> tuple[str, datetime]:
    """A new one-time token for a colleague who never signed in or forgot the password."""
    user = await get_user(session, principal, user_id)
    if not user.is_active:
        raise Conflict("This user is deactivated; reactivate them first.")
    token, invite_hash, invite_expires_at = _new_invite()
    await changes.update(
        session, principal, "user", user, {"invite_hash": invite_hash, "invite_expires_at": invite_expires_at}
    )
    return token, invite_expires_at


# Teams


def team_subtree(org_id: uuid.UUID, root_id: uuid.UUID, name: str = "subtree") -> sa.Select[tuple[uuid.UUID]]:
    """The ids of a team and every team below it (a recursive CTE: the same SQL on SQLite and PostgreSQL). Two
    subtrees in one statement need two `name`s."""
    tree = (
        select(col(Team.id).label("id"))
        .where(col(Team.id) == root_id, col(Team.org_id) == org_id)
        .cte(name, recursive=True)
    )
    # UNION (not UNION ALL): should a cycle ever exist, the walk still ends.
    tree = tree.union(
        select(col(Team.id)).where(
            col(Team.parent_id) == tree.c.id, col(Team.org_id) == org_id, col(Team.deleted_at).is_(None)
        )
    )
    return select(tree.c.id)


async def get_team(session: AsyncSession, principal: Principal, team_id: uuid.UUID) -> Team:
    return await get_record(session, Team, principal.org_id, team_id, "team")


async def list_teams(
    *, session: AsyncSession, principal: Principal, limit: int, cursor: str | None
) -> tuple[list[Team], str | None]:
    stmt = live(Team, principal.org_id)
    return await keyset_page(
        session,
        stmt,
        scope="teams",
        keys=[col(Team.name), col(Team.id)],
        key_of=lambda t: (t.name, t.id),
        limit=limit,
        cursor=cursor,
    )


async def _check_head(session: AsyncSession, principal: Principal, head_id: uuid.UUID | None) -> None:
    if head_id is None:
        return
    found = await session.scalar(
        select(User.id).where(
            col(User.id) == head_id, col(User.org_id) == principal.org_id, col(User.is_active).is_(True)
        )
    )
    if found is None:
        raise ValidationFailed.field("#/head_id", "No such active user.")


async def create_team(*, session: AsyncSession, principal: Principal, data: TeamCreate) -> Team:
    await _check_team_ref(session, principal, data.parent_id, "parent_id")
    await _check_head(session, principal, data.head_id)
    team = Team(
        org_id=principal.org_id,
        name=data.name,
        parent_id=data.parent_id,
        head_id=data.head_id,
        go_live_on=data.go_live_on,
    )
    await changes.create(session, principal, "team", team)
    return team


async def update_team(
    *,
    session: AsyncSession,
    principal: Principal,
    team_id: uuid.UUID,
    data: TeamUpdate,
    expected_version: int | None,
) -> Team:
    team = await get_team(session, principal, team_id)
    ensure_version(team, expected_version, TeamRead.model_validate)
    fields = changed_fields(data)
    if fields.get("parent_id") is not None:
        await _check_team_ref(session, principal, fields["parent_id"], "parent_id")
        below = set((await session.scalars(team_subtree(principal.org_id, team.id))).all())
        if fields["parent_id"] in below:
            raise ValidationFailed.field("#/parent_id", "A team cannot sit under itself or one of its sub-teams.")
    if "head_id" in fields:
        await _check_head(session, principal, fields["head_id"])
    await changes.update(session, principal, "team", team, fields)
    return team


async def delete_team(
    *, session: AsyncSession, principal: Principal, team_id: uuid.UUID, expected_version: int | None
) -> None:
    team = await get_team(session, principal, team_id)
    ensure_version(team, expected_version, TeamRead.model_validate)
    members = await session.scalar(
        select(func.count()).where(col(User.team_id) == team.id, col(User.deleted_at).is_(None))
    )
    children = await session.scalar(
        select(func.count()).where(col(Team.parent_id) == team.id, col(Team.deleted_at).is_(None))
    )
    if members or children:
        raise Conflict(f"The team still has {members} member(s) and {children} sub-team(s); move them first.")
    await changes.delete(session, principal, "team", team)


# API keys


async def get_api_key(session: AsyncSession, principal: Principal, key_id: uuid.UUID) -> ApiKey:
    return await get_record(session, ApiKey, principal.org_id, key_id, "API key")


async def list_api_keys(
    *, session: AsyncSession, principal: Principal, limit: int, cursor: str | None
) -> tuple[list[ApiKey], str | None]:
    stmt = live(ApiKey, principal.org_id)
    return await keyset_page(
        session,
        stmt,
        scope="api_keys",
        keys=[col(ApiKey.id)],
        key_of=lambda k: (k.id,),
        limit=limit,
        cursor=cursor,
        descending=True,
    )


async def create_api_key(*, session: AsyncSession, principal: Principal, data: ApiKeyCreate) -> tuple[ApiKey, str]:
    secret, prefix, key_hash = new_api_key()
    key = ApiKey(
        org_id=principal.org_id,
        name=data.name,
        prefix=prefix,
        key_hash=key_hash,
        scopes=sorted(set(data.scopes)),
        created_by=principal.user_id,
    )
    await changes.create(session, principal, "api_key", key)
    return key, secret


async def revoke_api_key(*, session: AsyncSession, principal: Principal, key_id: uuid.UUID) -> None:
    await changes.delete(session, principal, "api_key", await get_api_key(session, principal, key_id))
