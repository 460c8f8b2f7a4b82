"""HTTP routes for sign-in, the current principal, users, teams and API keys."""

import ipaddress
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from api.auth import login, service
from api.auth.deps import AdminDep, MemberDep, PrincipalDep, allow
from api.auth.principals import Principal
from api.auth.schemas import (
    AcceptInvite,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    Invitation,
    LoginRequest,
    Me,
    OrganizationRead,
    OrganizationUpdate,
    RefreshRequest,
    TeamCreate,
    TeamRead,
    TeamUpdate,
    TokenPair,
    UserCreate,
    UserCreated,
    UserRead,
    UserUpdate,
    user_read,
)
from api.core.db import SessionDep
from api.core.errors import problems
from api.core.etags import IfMatchDep, set_etag
from api.core.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from api.core.types import SearchText

UsersReader = Annotated[Principal, Depends(allow(scope="users:read"))]

auth_router = APIRouter(prefix="/auth", tags=["auth"])
me_router = APIRouter(tags=["me"])
org_router = APIRouter(prefix="/organization", tags=["organization"], responses=problems(401, 403))
users_router = APIRouter(prefix="/users", tags=["users"], responses=problems(401, 403))
teams_router = APIRouter(prefix="/teams", tags=["teams"], responses=problems(401, 403))
keys_router = APIRouter(prefix="/api-keys", tags=["api-keys"], responses=problems(401, 403))


def _address(request: Request) -> str:
    """The client's IP address, normalised; a forwarded value that is not one counts as "unknown"."""
    try:
        return str(ipaddress.ip_address(request.client.host if request.client else ""))
    except ValueError:
        return "unknown"


# Sign-in


@auth_router.post("/login", name="login", summary="Sign in with e-mail and password", responses=problems(401, 422, 429))
async def login_route(data: LoginRequest, request: Request, session: SessionDep) -> TokenPair:
    return await login.login(session=session, data=data, address=_address(request))


@auth_router.post(
    "/refresh",
    name="refresh",
    summary="Exchange a refresh token for a new token pair",
    responses=problems(401, 422),
)
async def refresh_route(data: RefreshRequest, session: SessionDep) -> TokenPair:
    return await login.refresh(session=session, token=data.refresh_token)


@auth_router.post(
    "/logout",
    name="logout",
    summary="End the session a refresh token belongs to",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(422),
)
async def logout_route(data: RefreshRequest, session: SessionDep) -> None:
    await login.logout(session=session, token=data.refresh_token)


@auth_router.post(
    "/accept-invite",
    name="accept-invite",
    summary="Set a password from an invitation and sign in",
    responses=problems(401, 422),
)
async def accept_invite_route(data: AcceptInvite, session: SessionDep) -> TokenPair:
    return await login.accept_invite(session=session, data=data)


# The current principal


@me_router.get(
    "/me",
    name="get",
    summary="Who am I: the signed-in user or API key, and the organisation",
    responses=problems(401),
)
async def me(principal: PrincipalDep, session: SessionDep) -> Me:
    org = OrganizationRead.model_validate(await service.get_organization(session, principal))
    if principal.kind == "api_key":
        return Me(kind="api_key", organization=org, scopes=sorted(principal.scopes))
    assert principal.id is not None
    user = await service.get_user(session, principal, principal.id)
    return Me(kind="user", organization=org, user=user_read(user))


@org_router.patch(
    "",
    name="update",
    summary="Rename the organisation or change its defaults and visibility setting (admin)",
    responses=problems(412, 422),
)
async def update_organization(
    data: OrganizationUpdate, principal: AdminDep, session: SessionDep, response: Response, if_match: IfMatchDep
) -> OrganizationRead:
    org = await service.update_organization(session=session, principal=principal, data=data, expected_version=if_match)
    set_etag(response, org.version)
    return OrganizationRead.model_validate(org)


# Users


@users_router.get(
    "",
    name="list",
    summary="Colleagues, for pickers and admin (active only unless asked)",
    responses=problems(400, 422),
)
async def list_users(
    principal: UsersReader,
    session: SessionDep,
    q: Annotated[SearchText | None, Query(description="Part of a name or e-mail; accents ignored.")] = None,
    include_inactive: Annotated[bool, Query(description="Admins only: include deactivated users.")] = False,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[UserRead]:
    users, next_cursor = await service.list_users(
        session=session,
        principal=principal,
        q=q,
        include_inactive=include_inactive,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[user_read(u) for u in users], next_cursor=next_cursor)


@users_router.get("/{user_id}", name="get", summary="One colleague", responses=problems(404))
async def get_user(user_id: uuid.UUID, principal: UsersReader, session: SessionDep, response: Response) -> UserRead:
    user = await service.get_user(session, principal, user_id)
    set_etag(response, user.version)
    return user_read(user)


@users_router.post(
    "",
    name="create",
    summary="Create or invite a user (admin)",
    status_code=201,
    responses=problems(409, 422),
)
async def create_user(data: UserCreate, principal: AdminDep, session: SessionDep, response: Response) -> UserCreated:
    user, token = await service.create_user(session=session, principal=principal, data=data)
    response.headers["Location"] = f"/api/v1/users/{user.id}"
    set_etag(response, user.version)
    return UserCreated(
        **user_read(user).model_dump(),
        invite_token=token,
        invite_expires_at=user.invite_expires_at if token else None,
    )


@users_router.patch(
    "/{user_id}",
    name="update",
    summary="Change a user's name, e-mail, role or team, or (de)activate them (admin)",
    responses=problems(400, 404, 409, 412, 422),
)
async def update_user(
    user_id: uuid.UUID,
    data: UserUpdate,
    principal: AdminDep,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
) -> UserRead:
    user = await service.update_user(
        session=session, principal=principal, user_id=user_id, data=data, expected_version=if_match
    )
    set_etag(response, user.version)
    return user_read(user)


@users_router.post(
    "/{user_id}/invite",
    name="invite",
    summary="Issue a new one-time sign-in invitation (admin)",
    responses=problems(404, 409),
)
async def reissue_invite(user_id: uuid.UUID, principal: AdminDep, session: SessionDep) -> Invitation:
    token, expires_at = await service.reissue_invite(session=session, principal=principal, user_id=user_id)
    return Invitation(invite_token=token, invite_expires_at=expires_at)


# Teams


@teams_router.get("", name="list", summary="Teams of the organisation", responses=problems(400, 422))
async def list_teams(
    principal: MemberDep, session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> Page[TeamRead]:
    teams, next_cursor = await service.list_teams(session=session, principal=principal, limit=limit, cursor=cursor)
    return Page(items=[TeamRead.model_validate(t) for t in teams], next_cursor=next_cursor)


@teams_router.get("/{team_id}", name="get", summary="One team", responses=problems(404))
async def get_team(team_id: uuid.UUID, principal: MemberDep, session: SessionDep, response: Response) -> TeamRead:
    team = await service.get_team(session, principal, team_id)
    set_etag(response, team.version)
    return TeamRead.model_validate(team)


@teams_router.post("", name="create", summary="Create a team (admin)", status_code=201, responses=problems(422))
async def create_team(data: TeamCreate, principal: AdminDep, session: SessionDep, response: Response) -> TeamRead:
    team = await service.create_team(session=session, principal=principal, data=data)
    response.headers["Location"] = f"/api/v1/teams/{team.id}"
    set_etag(response, team.version)
    return TeamRead.model_validate(team)


@teams_router.patch(
    "/{team_id}",
    name="update",
    summary="Rename, move or change the head of a team (admin)",
    responses=problems(400, 404, 412, 422),
)
async def update_team(
    team_id: uuid.UUID,
    data: TeamUpdate,
    principal: AdminDep,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
) -> TeamRead:
    team = await service.update_team(
        session=session, principal=principal, team_id=team_id, data=data, expected_version=if_match
    )
    set_etag(response, team.version)
    return TeamRead.model_validate(team)


@teams_router.delete(
    "/{team_id}",
    name="delete",
    summary="Delete an empty team (admin)",
    status_code=204,
    responses=problems(400, 404, 409, 412),
)
async def delete_team(team_id: uuid.UUID, principal: AdminDep, session: SessionDep, if_match: IfMatchDep) -> None:
    await service.delete_team(session=session, principal=principal, team_id=team_id, expected_version=if_match)


# API keys


@keys_router.get("", name="list", summary="API keys (admin)", responses=problems(400, 422))
async def list_api_keys(
    principal: AdminDep, session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> Page[ApiKeyRead]:
    keys, next_cursor = await service.list_api_keys(session=session, principal=principal, limit=limit, cursor=cursor)
    return Page(items=[ApiKeyRead.model_validate(k) for k in keys], next_cursor=next_cursor)


@keys_router.get("/{key_id}", name="get", summary="One API key (admin)", responses=problems(404))
async def get_api_key(key_id: uuid.UUID, principal: AdminDep, session: SessionDep) -> ApiKeyRead:
    return ApiKeyRead.model_validate(await service.get_api_key(session, principal, key_id))


@keys_router.post(
    "",
    name="create",
    summary="Create an API key; the secret is shown once (admin)",
    status_code=201,
    responses=problems(422),
)
async def create_api_key(
    data: ApiKeyCreate, principal: AdminDep, session: SessionDep, response: Response
) -> ApiKeyCreated:
    key, secret = await service.create_api_key(session=session, principal=principal, data=data)
    response.headers["Location"] = f"/api/v1/api-keys/{key.id}"
    return ApiKeyCreated(**ApiKeyRead.model_validate(key).model_dump(), key=secret)


@keys_router.delete(
    "/{key_id}",
    name="revoke",
    summary="Revoke an API key at once (admin)",
    status_code=204,
    responses=problems(404),
)
async def revoke_api_key(key_id: uuid.UUID, principal: AdminDep, session: SessionDep) -> None:
    await service.revoke_api_key(session=session, principal=principal, key_id=key_id)


routers = (auth_router, me_router, org_router, users_router, teams_router, keys_router)
