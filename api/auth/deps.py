"""Request authentication and route-level permissions.

Every request is checked against the database: a deactivated user, a revoked session (logout, refresh-token
reuse) or a revoked key is refused on its next request, not when its token expires.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, cast

import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, _APIRouteLike, iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select
from starlette.routing import BaseRoute

from api.auth.models import ApiKey, AuthSession, Role, User
from api.auth.principals import Principal
from api.auth.security import API_KEY_PREFIX, decode_access_token, same_digest
from api.core import changes, ratelimit
from api.core.db import WRITE_METHODS, SessionDep, get_database
from api.core.errors import Forbidden, Unauthorized
from api.core.types import utcnow

_bearer = HTTPBearer(auto_error=False, description="A user's access token, or an API key (`fbk_...`).")
# last_used_at is a hint for admins, not an audit trail: write it at most once a minute per key.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


_users, _sessions = User.__table__, AuthSession.__table__  # type: ignore[attr-defined]
# Built once, with its values bound per request: every request runs it, and a Core statement reused costs a third
# of an ORM select built anew (cache key, ORM compile state; bench/RESULTS.md).
_SIGNED_IN = (
    sa.select(_users.c.role, _users.c.team_id)
    .select_from(_users.join(_sessions, _sessions.c.user_id == _users.c.id))
    .where(
        _users.c.id == sa.bindparam("user_id"),
        _users.c.org_id == sa.bindparam("org_id"),
        _users.c.is_active.is_(True),
        _sessions.c.id == sa.bindparam("session_id"),
        _sessions.c.revoked_at.is_(None),
    )
)


async def _user_principal(session: AsyncSession, token: str) -> Principal:
    claims = decode_access_token(token)
    try:
        user_id, org_id, session_id = (uuid.UUID(claims[k]) for k in ("sub", "org", "sid"))
    except (ValueError, TypeError) as exc:
        raise Unauthorized("The access token is not valid.") from exc
    row = (await session.execute(_SIGNED_IN, {"user_id": user_id, "org_id": org_id, "session_id": session_id})).first()
    if row is None:
        raise Unauthorized("This session has ended; sign in again.")
    return Principal(
        kind="user",
        org_id=org_id,
        id=user_id,
        role=Role(row.role),
        team_id=row.team_id,
        session_id=session_id,
    )


async def _key_principal(session: AsyncSession, key: str) -> tuple[Principal, ApiKey]:
    # "fbk_<hex>_<secret>": the secret may itself contain "_", so split from the left.
    prefix = "_".join(key.split("_", 2)[:2])
    api_key = (
        await session.scalars(
            select(ApiKey).where(
                col(ApiKey.prefix) == prefix,
                col(ApiKey.deleted_at).is_(None),
            )
        )
    ).first()
    if api_key is None or not same_digest(key, api_key.key_hash):
        raise Unauthorized("The API key is not valid or has been revoked.")
    principal = Principal(kind="api_key", org_id=api_key.org_id, id=api_key.id, scopes=frozenset(api_key.scopes))
    return principal, api_key


async def identify(session: AsyncSession, authorization: str) -> tuple[str, uuid.UUID] | None:
    """Who sent a request, from its Authorization header, for the idempotency middleware: "<kind>:<id>" and the
    organisation; None when it carries no bearer credentials. Raises like the route would on bad ones."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    if token.startswith(API_KEY_PREFIX):
        principal, _ = await _key_principal(session, token)
    else:
        principal = await _user_principal(session, token)
    return f"{principal.kind}:{principal.id}", principal.org_id


async def _touch_key(request: Request, session: AsyncSession, key_id: uuid.UUID, now: datetime) -> None:
    stmt = sa.update(ApiKey).where(col(ApiKey.id) == key_id).values(last_used_at=now)
    if request.method in WRITE_METHODS:
        await session.execute(stmt)
        return
    # A read request gets its own short write transaction rather than turning its read into a write (on SQLite
    # a read transaction that starts writing can fail at once when another writer committed meanwhile).
    async with get_database(request).writer() as writer:
        await writer.execute(stmt)
        await writer.commit()


async def current_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Sign in, or send an API key, as `Authorization: Bearer <token>`.")
    token = credentials.credentials
    api_key = None
    if token.startswith(API_KEY_PREFIX):
        principal, api_key = await _key_principal(session, token)
    else:
        principal = await _user_principal(session, token)
    # Before the write lock below: a refused request has taken no lock and changes nothing.
    await ratelimit.enforce(request, principal)
    if request.method in WRITE_METHODS:
        # Before any check a write makes, and before any other row lock (no deadlock with the key update below).
        await changes.serialise_writes(session, principal.org_id)
    now = utcnow()
    if api_key is not None and (api_key.last_used_at is None or now - api_key.last_used_at > _LAST_USED_RESOLUTION):
        await _touch_key(request, session, api_key.id, now)
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


@dataclass(frozen=True, slots=True)
class Allow:
    """A dependency that admits users with one of `roles` (any role when none are named) and API keys that hold
    `scope` (no key when scope is None). The OpenAPI document names both for each operation."""

    roles: tuple[Role, ...]
    scope: str | None
    # What a user of another role is told (the default names no roles).
    refusal: str = "Your role does not allow this."

    async def __call__(self, principal: PrincipalDep) -> Principal:
        if principal.kind == "api_key":
            if self.scope is None or self.scope not in principal.scopes:
                needed = f"the `{self.scope}` scope" if self.scope else "a signed-in user"
                raise Forbidden(f"This API key cannot do this: it needs {needed}.")
        elif principal.kind == "user" and self.roles and principal.role not in self.roles:
            raise Forbidden(self.refusal)
        return principal


def allow(*roles: Role, scope: str | None = None) -> Allow:
    return Allow(roles, scope)


AdminDep = Annotated[Principal, Depends(allow(Role.admin))]
MemberDep = Annotated[Principal, Depends(allow())]


def _allow_of(dependant: Dependant) -> Allow | None:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, Allow):
            return dependency.call
        if (found := _allow_of(dependency)) is not None:
            return found
    return None


def document_access(spec: dict[str, Any], routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """Say in the OpenAPI document who may call each operation: `x-roles` and `x-api-key-scope` (null: no API key),
    and a line of its description, so integrators know which scope a key needs before they get a 403."""
    for context in iter_route_contexts(routes):
        if not isinstance(context.original_route, APIRoute):
            continue
        route = cast(_APIRouteLike, context)
        if (found := _allow_of(route.dependant)) is None:
            continue
        roles = ", ".join(found.roles) if found.roles else "every role"
        key = f"API keys with the `{found.scope}` scope" if found.scope else "no API key"
        for method in route.methods:
            operation = spec["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            operation["x-roles"] = [role.value for role in found.roles] or [role.value for role in Role]
            operation["x-api-key-scope"] = found.scope
            who = f"**Who may call it:** users ({roles}); {key}."
            operation["description"] = f"{operation['description']}\n\n{who}" if operation.get("description") else who
    return spec
