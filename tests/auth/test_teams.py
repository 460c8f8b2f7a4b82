"""Teams over HTTP: the hierarchy and its cycles, team heads, deleting, who may write."""

import uuid
from typing import Any

import httpx
import pytest

from api.auth.models import Role
from tests.auth.test_api_keys import caller_headers
from tests.factories import Tenant, make_org, make_team, make_tenant, make_user

TEAMS = "/api/v1/teams"


async def post_team(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post(TEAMS, json={"name": "North", **body}, headers=headers)


async def patch_team(client: httpx.AsyncClient, headers: dict[str, str], team_id: Any, **body: Any) -> httpx.Response:
    return await client.patch(f"{TEAMS}/{team_id}", json=body, headers=headers)


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def team_ids(client: httpx.AsyncClient, headers: dict[str, str]) -> set[str]:
    response = await client.get(TEAMS, headers=headers)
    assert response.status_code == 200, response.text
    return {t["id"] for t in response.json()["items"]}


async def chain(client: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    """Region > District > Branch, created through the API."""
    teams: list[dict[str, Any]] = []
    for name in ("Region", "District", "Branch"):
        parent = {"parent_id": teams[-1]["id"]} if teams else {}
        teams.append(created(await post_team(client, tenant.headers, name=name, **parent)))
    return teams


async def test_teams_form_a_hierarchy(session, client):
    tenant = await make_tenant(session, client)
    region, district, branch = await chain(client, tenant)
    assert region["parent_id"] is None
    shown = await client.get(f"{TEAMS}/{branch['id']}", headers=tenant.headers)
    assert shown.json()["parent_id"] == district["id"]
    assert shown.headers["ETag"] == '"1"'
    assert {region["id"], district["id"], branch["id"], str(tenant.team.id)} == await team_ids(client, tenant.headers)

    moved = await patch_team(client, tenant.headers, branch["id"], parent_id=region["id"])
    assert moved.status_code == 200, moved.text
    assert (moved.json()["parent_id"], moved.json()["version"]) == (region["id"], 2)


@pytest.mark.parametrize("below", [0, 1, 2], ids=["itself", "child", "grandchild"])
async def test_team_cannot_move_under_itself_or_a_descendant(session, client, below):
    tenant = await make_tenant(session, client)
    teams = await chain(client, tenant)
    response = await patch_team(client, tenant.headers, teams[0]["id"], parent_id=teams[below]["id"])
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["pointer"] == "#/parent_id"
    assert (await client.get(f"{TEAMS}/{teams[0]['id']}", headers=tenant.headers)).json() == teams[0]


async def test_parent_from_another_organisation_is_refused(session, client):
    tenant = await make_tenant(session, client)
    foreign = await make_team(session, await make_org(session, "Rival"))
    response = await post_team(client, tenant.headers, parent_id=str(foreign.id))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["pointer"] == "#/parent_id"


async def head_candidate(session, client: httpx.AsyncClient, tenant: Tenant, kind: str) -> uuid.UUID:
    if kind == "unknown":
        return uuid.uuid4()
    if kind == "other_org":
        return (await make_user(session, await make_org(session, "Rival"))).id
    user = await make_user(session, tenant.org, role=Role.manager)
    if kind == "inactive":
        deactivated = await client.patch(f"/api/v1/users/{user.id}", json={"is_active": False}, headers=tenant.headers)
        assert deactivated.status_code == 200, deactivated.text
    return user.id


@pytest.mark.parametrize("via", ["create", "update"])
@pytest.mark.parametrize(
    ("kind", "status"), [("active", None), ("inactive", 422), ("other_org", 422), ("unknown", 422)]
)
async def test_team_head_must_be_an_active_user_of_the_organisation(session, client, via, kind, status):
    tenant = await make_tenant(session, client)
    head_id = str(await head_candidate(session, client, tenant, kind))
    if via == "create":
        response = await post_team(client, tenant.headers, head_id=head_id)
    else:
        response = await patch_team(client, tenant.headers, tenant.team.id, head_id=head_id)
    assert response.status_code == (status or {"create": 201, "update": 200}[via]), response.text
    if status:
        assert response.json()["errors"][0]["pointer"] == "#/head_id"
    else:
        assert response.json()["head_id"] == head_id


@pytest.mark.parametrize("holds", ["member", "sub_team"])
async def test_team_with_members_or_sub_teams_cannot_be_deleted(session, client, holds):
    tenant = await make_tenant(session, client)
    team = created(await post_team(client, tenant.headers))
    if holds == "member":
        moved = await client.patch(
            f"/api/v1/users/{tenant.rep.id}", json={"team_id": team["id"]}, headers=tenant.headers
        )
        assert moved.status_code == 200, moved.text
    else:
        created(await post_team(client, tenant.headers, name="Below", parent_id=team["id"]))
    response = await client.delete(f"{TEAMS}/{team['id']}", headers=tenant.headers)
    assert response.status_code == 409, response.text
    assert team["id"] in await team_ids(client, tenant.headers)


async def test_empty_team_is_deleted_and_disappears(session, client):
    tenant = await make_tenant(session, client)
    team = created(await post_team(client, tenant.headers))
    response = await client.delete(f"{TEAMS}/{team['id']}", headers=tenant.headers)
    assert response.status_code == 204, response.text
    assert (await client.get(f"{TEAMS}/{team['id']}", headers=tenant.headers)).status_code == 404
    assert team["id"] not in await team_ids(client, tenant.headers)
    # A deleted team can no longer be anyone's team.
    reassigned = await client.patch(
        f"/api/v1/users/{tenant.rep.id}", json={"team_id": team["id"]}, headers=tenant.headers
    )
    assert reassigned.status_code == 422, reassigned.text


@pytest.mark.parametrize("who", ["rep", "manager"])
@pytest.mark.parametrize("action", ["create", "update", "delete"])
async def test_only_admins_write_teams(session, client, who, action):
    tenant = await make_tenant(session, client)
    headers = await caller_headers(session, client, tenant, who)
    empty = await make_team(session, tenant.org, name="Empty")
    if action == "create":
        response = await post_team(client, headers, name="Rogue")
    elif action == "update":
        response = await patch_team(client, headers, empty.id, name="Rogue")
    else:
        response = await client.delete(f"{TEAMS}/{empty.id}", headers=headers)
    assert response.status_code == 403, response.text
    listing = (await client.get(TEAMS, headers=headers)).json()["items"]
    assert sorted(t["name"] for t in listing) == ["Empty", "Sales"]
