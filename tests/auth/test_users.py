"""Users over HTTP: who may write, e-mail uniqueness, the colleague picker, ETags, admins, invitations."""

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from api.auth.models import Role, User
from api.core.types import utcnow
from tests.auth.test_api_keys import caller_headers
from tests.auth.test_login import attempt, bearer, me_status
from tests.factories import Tenant, make_org, make_team, make_tenant, make_user, sign_in

USERS = "/api/v1/users"
ACCEPT = "/api/v1/auth/accept-invite"
NEW_PASSWORD = "a-brand-new-password"


async def post_user(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> httpx.Response:
    body = {"email": f"new-{uuid.uuid4().hex[:8]}@example.com", "name": "New Colleague", "role": "rep", **fields}
    return await client.post(USERS, json=body, headers=headers)


async def patch_user(
    client: httpx.AsyncClient, headers: dict[str, str], user_id: Any, body: dict[str, Any], if_match: str | None = None
) -> httpx.Response:
    extra = {"If-Match": if_match} if if_match else {}
    return await client.patch(f"{USERS}/{user_id}", json=body, headers={**headers, **extra})


async def get_user(client: httpx.AsyncClient, headers: dict[str, str], user_id: Any) -> httpx.Response:
    response = await client.get(f"{USERS}/{user_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response


async def every_page(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    """Every item a list shows, following next_cursor to the end."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= params.get("limit", 50)
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def listed(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    return await every_page(client, USERS, headers, **params)


async def accept(client: httpx.AsyncClient, token: str, password: str = NEW_PASSWORD) -> httpx.Response:
    return await client.post(ACCEPT, json={"token": token, "password": password})


# Who may write


async def test_admin_creates_a_user_with_a_password_who_can_sign_in(session, client):
    tenant = await make_tenant(session, client)
    response = await post_user(client, tenant.headers, email="Ana.Lopez@Example.com", password=NEW_PASSWORD)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["email"] == "ana.lopez@example.com"
    assert created["has_password"] is True
    assert created["invite_token"] is None
    assert response.headers["Location"] == f"{USERS}/{created['id']}"
    assert response.headers["ETag"] == '"1"'
    assert (await attempt(client, created["email"], NEW_PASSWORD)).status_code == 200


@pytest.mark.parametrize("who", ["rep", "manager", "marketing", "api_key"])
@pytest.mark.parametrize("action", ["create", "update", "invite"])
async def test_only_admins_write_users(session, client, who, action):
    tenant = await make_tenant(session, client)
    headers = await caller_headers(session, client, tenant, who)
    before = (await get_user(client, tenant.headers, tenant.rep.id)).json()
    if action == "create":
        response = await post_user(client, headers, email="intruder@example.com")
    elif action == "update":
        response = await patch_user(client, headers, tenant.rep.id, {"role": "admin", "name": "Promoted"})
    else:
        response = await client.post(f"{USERS}/{tenant.rep.id}/invite", headers=headers)
    assert response.status_code == 403, response.text
    assert (await get_user(client, tenant.headers, tenant.rep.id)).json() == before
    assert not await listed(client, tenant.headers, q="intruder")


@pytest.mark.parametrize("via", ["create", "update"])
async def test_duplicate_email_in_any_case_is_a_conflict(session, client, via):
    tenant = await make_tenant(session, client)
    taken = tenant.rep.email.upper()
    if via == "create":
        response = await post_user(client, tenant.headers, email=taken)
    else:
        other = await make_user(session, tenant.org)
        response = await patch_user(client, tenant.headers, other.id, {"email": taken})
    assert response.status_code == 409, response.text
    assert response.json()["errors"][0]["pointer"] == "#/email"
    assert [u["email"] for u in await listed(client, tenant.headers, q=tenant.rep.email)] == [tenant.rep.email]


@pytest.mark.parametrize("via", ["create", "update"])
@pytest.mark.parametrize("team", ["unknown", "other_org"])
async def test_team_that_does_not_exist_here_is_422_on_team_id(session, client, via, team):
    tenant = await make_tenant(session, client)
    team_id = uuid.uuid4() if team == "unknown" else (await make_team(session, await make_org(session, "Rival"))).id
    if via == "create":
        response = await post_user(client, tenant.headers, team_id=str(team_id))
    else:
        response = await patch_user(client, tenant.headers, tenant.rep.id, {"team_id": str(team_id)})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["pointer"] == "#/team_id"
    assert (await get_user(client, tenant.headers, tenant.rep.id)).json()["team_id"] == str(tenant.team.id)


# The colleague picker


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("jose", {"José Pérez"}),
        ("JOSÉ", {"José Pérez"}),
        ("pérez", {"José Pérez"}),
        ("PEREZ", {"José Pérez"}),
        ("jose p", {"José Pérez"}),
        ("gomez", {"Ana Gómez"}),
        ("ana.gomez@", {"Ana Gómez"}),
        ("%", set()),
        ("_", set()),
    ],
)
async def test_user_search_ignores_accents_and_case_and_treats_wildcards_literally(session, client, q, expected):
    tenant = await make_tenant(session, client)
    await make_user(session, tenant.org, name="José Pérez", email="jose.perez@example.com")
    await make_user(session, tenant.org, name="Ana Gómez", email="ana.gomez@example.com")
    assert {u["name"] for u in await listed(client, tenant.headers, q=q)} == expected


async def test_user_list_never_shows_other_organisations_users(session, client):
    tenant = await make_tenant(session, client)
    rival = await make_tenant(session, client, "Rival")
    stranger = await make_user(session, rival.org, name="José Pérez")
    mine = {u["id"] for u in await listed(client, tenant.headers)}
    assert mine == {str(tenant.admin.id), str(tenant.rep.id)}
    assert await listed(client, tenant.headers, q="jose") == []
    assert (await client.get(f"{USERS}/{stranger.id}", headers=tenant.headers)).status_code == 404


@pytest.mark.parametrize(
    ("who", "include_inactive", "shown"),
    [("admin", False, False), ("admin", True, True), ("rep", True, False), ("api_key", True, False)],
)
async def test_user_list_shows_inactive_users_to_admins_who_ask_only(session, client, who, include_inactive, shown):
    tenant = await make_tenant(session, client)
    gone = await make_user(session, tenant.org)
    assert (await patch_user(client, tenant.headers, gone.id, {"is_active": False})).status_code == 200
    headers = tenant.headers if who == "admin" else await caller_headers(session, client, tenant, who)
    ids = {u["id"] for u in await listed(client, headers, include_inactive=include_inactive)}
    assert str(tenant.rep.id) in ids
    assert (str(gone.id) in ids) is shown


async def test_user_list_pages_through_every_user_once(session, client):
    tenant = await make_tenant(session, client)
    # Equal names: the pages must break ties on the id.
    for name in ["Same Name"] * 5 + ["Zoë Último", "álvaro"]:
        await make_user(session, tenant.org, name=name)
    everyone = await listed(client, tenant.headers, limit=50)
    assert len(everyone) == 9
    paged = await listed(client, tenant.headers, limit=2)
    assert [u["id"] for u in paged] == [u["id"] for u in everyone]


async def test_user_list_refuses_a_forged_cursor(session, client):
    tenant = await make_tenant(session, client)
    response = await client.get(USERS, params={"cursor": "not-a-cursor"}, headers=tenant.headers)
    assert response.status_code == 400, response.text


# Versions and ETags


async def test_etag_is_the_version(session, client):
    tenant = await make_tenant(session, client)
    first = await get_user(client, tenant.headers, tenant.rep.id)
    assert first.headers["ETag"] == f'"{first.json()["version"]}"' == '"1"'
    patched = await patch_user(client, tenant.headers, tenant.rep.id, {"name": "Renamed"}, if_match='"1"')
    assert patched.status_code == 200, patched.text
    assert patched.headers["ETag"] == f'"{patched.json()["version"]}"' == '"2"'
    assert (await get_user(client, tenant.headers, tenant.rep.id)).headers["ETag"] == '"2"'


async def test_stale_if_match_is_412_with_the_current_record_and_changes_nothing(session, client):
    tenant = await make_tenant(session, client)
    assert (
        await patch_user(client, tenant.headers, tenant.rep.id, {"name": "First"}, if_match='"1"')
    ).status_code == 200
    stale = await patch_user(client, tenant.headers, tenant.rep.id, {"name": "Second"}, if_match='"1"')
    assert stale.status_code == 412, stale.text
    current = stale.json()["current"]
    assert (current["id"], current["name"], current["version"]) == (str(tenant.rep.id), "First", 2)
    assert stale.headers["ETag"] == '"2"'
    assert (await get_user(client, tenant.headers, tenant.rep.id)).json() == current


# The last administrator

DEMOTIONS = [{"role": "rep"}, {"is_active": False}]


@pytest.mark.parametrize("demotion", DEMOTIONS, ids=["demote", "deactivate"])
async def test_last_active_admin_cannot_be_demoted_or_deactivated(session, client, demotion):
    tenant = await make_tenant(session, client)
    # Another admin who is not active does not count.
    spare = await make_user(session, tenant.org, role=Role.admin)
    assert (await patch_user(client, tenant.headers, spare.id, {"is_active": False})).status_code == 200
    response = await patch_user(client, tenant.headers, tenant.admin.id, demotion)
    assert response.status_code == 409, response.text
    after = (await get_user(client, tenant.headers, tenant.admin.id)).json()
    assert (after["role"], after["is_active"], after["version"]) == ("admin", True, 1)


@pytest.mark.parametrize("demotion", DEMOTIONS, ids=["demote", "deactivate"])
async def test_admin_can_be_demoted_while_another_active_admin_remains(session, client, demotion):
    tenant = await make_tenant(session, client)
    other = await make_user(session, tenant.org, role=Role.admin)
    response = await patch_user(client, tenant.headers, other.id, demotion)
    assert response.status_code == 200, response.text
    assert response.json() | demotion == response.json()


# Invitations


async def invite(session, client) -> tuple[Tenant, dict[str, Any]]:
    tenant = await make_tenant(session, client)
    response = await post_user(client, tenant.headers)
    assert response.status_code == 201, response.text
    return tenant, response.json()


async def test_invited_user_gets_a_one_time_token_and_accepts_it(session, client):
    tenant, invited = await invite(session, client)
    assert invited["invite_token"]
    assert invited["has_password"] is False
    shown = (await get_user(client, tenant.headers, invited["id"])).text
    assert invited["invite_token"] not in shown
    assert (await attempt(client, invited["email"], NEW_PASSWORD)).status_code == 401

    accepted = await accept(client, invited["invite_token"])
    assert accepted.status_code == 200, accepted.text
    me = await client.get("/api/v1/me", headers=bearer(accepted.json()["access_token"]))
    assert me.json()["user"]["id"] == invited["id"]
    assert me.json()["user"]["has_password"] is True
    assert (await attempt(client, invited["email"], NEW_PASSWORD)).status_code == 200

    assert (await accept(client, invited["invite_token"], "yet-another-password")).status_code == 401
    assert (await attempt(client, invited["email"], "yet-another-password")).status_code == 401


async def test_expired_invitation_is_refused(session, client):
    _, invited = await invite(session, client)
    user = await session.get(User, uuid.UUID(invited["id"]), populate_existing=True)
    user.invite_expires_at = utcnow() - timedelta(seconds=1)
    await session.commit()
    assert (await accept(client, invited["invite_token"])).status_code == 401
    assert (await attempt(client, invited["email"], NEW_PASSWORD)).status_code == 401


async def test_reissued_invitation_replaces_the_old_one(session, client):
    tenant, invited = await invite(session, client)
    response = await client.post(f"{USERS}/{invited['id']}/invite", headers=tenant.headers)
    assert response.status_code == 200, response.text
    fresh = response.json()["invite_token"]
    assert fresh != invited["invite_token"]
    assert (await accept(client, invited["invite_token"])).status_code == 401
    accepted = await accept(client, fresh)
    assert accepted.status_code == 200, accepted.text
    assert await me_status(client, accepted.json()["access_token"]) == 200


async def test_deactivated_user_cannot_accept_an_invitation(session, client):
    tenant, invited = await invite(session, client)
    assert (await patch_user(client, tenant.headers, invited["id"], {"is_active": False})).status_code == 200
    assert (await accept(client, invited["invite_token"])).status_code == 401


async def test_accepting_an_invitation_ends_the_sessions_of_the_old_password(session, client):
    tenant = await make_tenant(session, client)
    old = await sign_in(client, tenant.rep)
    reissued = await client.post(f"{USERS}/{tenant.rep.id}/invite", headers=tenant.headers)
    assert reissued.status_code == 200, reissued.text
    assert (await client.get("/api/v1/me", headers=old)).status_code == 200
    accepted = await accept(client, reissued.json()["invite_token"])
    assert accepted.status_code == 200, accepted.text
    assert (await client.get("/api/v1/me", headers=old)).status_code == 401
    assert await me_status(client, accepted.json()["access_token"]) == 200
    assert (await attempt(client, tenant.rep.email)).status_code == 401
    assert (await attempt(client, tenant.rep.email, NEW_PASSWORD)).status_code == 200


async def test_deactivated_user_gets_no_new_invitation(session, client):
    tenant, invited = await invite(session, client)
    assert (await patch_user(client, tenant.headers, invited["id"], {"is_active": False})).status_code == 200
    response = await client.post(f"{USERS}/{invited['id']}/invite", headers=tenant.headers)
    assert response.status_code == 409, response.text


async def test_role_change_applies_to_the_token_already_held(session, client):
    tenant = await make_tenant(session, client)
    other = await make_user(session, tenant.org, role=Role.admin)
    headers = await sign_in(client, other)
    assert (await client.get("/api/v1/api-keys", headers=headers)).status_code == 200
    assert (await patch_user(client, tenant.headers, other.id, {"role": "rep"})).status_code == 200
    assert (await client.get("/api/v1/api-keys", headers=headers)).status_code == 403
    assert (await client.get("/api/v1/me", headers=headers)).json()["user"]["role"] == "rep"


async def test_reactivated_user_signs_in_again_but_old_sessions_stay_ended(session, client):
    tenant = await make_tenant(session, client)
    old = await sign_in(client, tenant.rep)
    for active in (False, True):
        assert (await patch_user(client, tenant.headers, tenant.rep.id, {"is_active": active})).status_code == 200
    assert (await client.get("/api/v1/me", headers=old)).status_code == 401
    assert (await client.get("/api/v1/me", headers=await sign_in(client, tenant.rep))).status_code == 200
