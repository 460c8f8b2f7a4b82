"""The change log and the audit API: one change per write, numbered per organisation, field by field, secrets
redacted, admins only."""

import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.auth.models import ApiKey, Organization, User
from api.auth.schemas import SCOPES
from api.core.changes import REDACTED, Change
from tests.auth.test_api_keys import caller_headers
from tests.auth.test_users import every_page
from tests.factories import PASSWORD, Tenant, make_team, make_tenant

API = "/api/v1"
AUDIT = f"{API}/audit"


@dataclass
class World:
    """A tenant, plus an invited colleague (with the token), a password-reset token for the rep (an invitation
    to a user who has a password) and an empty team to delete."""

    tenant: Tenant
    pending_id: str
    invite_token: str
    reset_token: str
    empty_team_id: str


async def make_world(session: AsyncSession, client: httpx.AsyncClient, name: str = "Acme") -> World:
    tenant = await make_tenant(session, client, name)
    invited = await client.post(
        f"{API}/users",
        json={"email": f"pending-{uuid.uuid4().hex[:8]}@example.com", "name": "Pending", "role": "rep"},
        headers=tenant.headers,
    )
    assert invited.status_code == 201, invited.text
    reset = await client.post(f"{API}/users/{tenant.rep.id}/invite", headers=tenant.headers)
    assert reset.status_code == 200, reset.text
    empty = await make_team(session, tenant.org, name="Empty")
    return World(
        tenant, invited.json()["id"], invited.json()["invite_token"], reset.json()["invite_token"], str(empty.id)
    )


def placeholders(world: World) -> dict[str, Any]:
    tenant = world.tenant
    return {
        "rep": tenant.rep.id,
        "team": tenant.team.id,
        "key": tenant.key.id,
        "pending": world.pending_id,
        "empty": world.empty_team_id,
        "token": world.invite_token,
        "reset_token": world.reset_token,
        "unique": uuid.uuid4().hex[:12],
    }


@dataclass(frozen=True)
class Write:
    method: str
    path: str
    body: dict[str, Any] | None
    entity: str
    # "created" (the id in the response) or the placeholder naming the record written.
    target: str
    op: str
    by_admin: bool = True


NEW_USER = {"email": "{unique}@example.com", "name": "Nora Núñez", "role": "rep"}
# In this order they can run one after another on one World.
WRITES = {
    "create_user": Write("POST", "/users", {**NEW_USER, "password": PASSWORD}, "user", "created", "create"),
    "invite_user": Write("POST", "/users", NEW_USER, "user", "created", "create"),
    "reset_password": Write(
        "POST",
        "/auth/accept-invite",
        {"token": "{reset_token}", "password": "a-new-password"},
        "user",
        "rep",
        "update",
        False,
    ),
    "update_user": Write("PATCH", "/users/{rep}", {"name": "Renamed Rep"}, "user", "rep", "update"),
    "deactivate_user": Write("PATCH", "/users/{rep}", {"is_active": False}, "user", "rep", "update"),
    "accept_invite": Write(
        "POST", "/auth/accept-invite", {"token": "{token}", "password": PASSWORD}, "user", "pending", "update", False
    ),
    "reissue_invite": Write("POST", "/users/{pending}/invite", None, "user", "pending", "update"),
    "create_team": Write("POST", "/teams", {"name": "East"}, "team", "created", "create"),
    "update_team": Write("PATCH", "/teams/{team}", {"name": "Renamed Team"}, "team", "team", "update"),
    "delete_team": Write("DELETE", "/teams/{empty}", None, "team", "empty", "delete"),
    "create_key": Write(
        "POST", "/api-keys", {"name": "Sync", "scopes": ["users:read"]}, "api_key", "created", "create"
    ),
    "revoke_key": Write("DELETE", "/api-keys/{key}", None, "api_key", "key", "delete"),
}


async def perform(client: httpx.AsyncClient, world: World, write: Write) -> tuple[str, str]:
    """Do one write over HTTP; (id of the record written, id of the actor)."""
    tenant = world.tenant
    names = placeholders(world)
    body = {k: v.format(**names) if isinstance(v, str) else v for k, v in (write.body or {}).items()} or None
    headers = tenant.headers if write.by_admin else {}
    response = await client.request(write.method, API + write.path.format(**names), json=body, headers=headers)
    assert response.status_code in (200, 201, 204), response.text
    entity_id = response.json()["id"] if write.target == "created" else str(names[write.target])
    return entity_id, str(tenant.admin.id) if write.by_admin else entity_id


async def changes_of(session: AsyncSession, org_id: uuid.UUID) -> list[Change]:
    return list((await session.scalars(select(Change).where(col(Change.org_id) == org_id).order_by(Change.seq))).all())


async def assert_numbered_one_to_n(session: AsyncSession, org_id: uuid.UUID) -> int:
    seqs = [c.seq for c in await changes_of(session, org_id)]
    assert seqs == list(range(1, len(seqs) + 1))
    counter = await session.scalar(select(Organization.change_seq).where(col(Organization.id) == org_id))
    assert counter == len(seqs)
    return len(seqs)


# The change log


@pytest.mark.parametrize("name", WRITES)
async def test_each_write_logs_one_change_with_the_next_seq_of_its_org(session, client, name):
    here = await make_world(session, client)
    rival = await make_world(session, client, "Rival")
    before = await changes_of(session, here.tenant.org.id)
    rival_before = [(c.id, c.seq) for c in await changes_of(session, rival.tenant.org.id)]

    entity_id, actor_id = await perform(client, here, WRITES[name])

    after = await changes_of(session, here.tenant.org.id)
    assert [c.id for c in after[: len(before)]] == [c.id for c in before]
    (change,) = after[len(before) :]
    write = WRITES[name]
    assert change.seq == before[-1].seq + 1
    assert (change.entity, str(change.entity_id), change.op) == (write.entity, entity_id, write.op)
    assert (change.actor_kind, str(change.actor_id)) == ("user", actor_id)
    assert [(c.id, c.seq) for c in await changes_of(session, rival.tenant.org.id)] == rival_before


async def test_seq_is_contiguous_and_independent_per_organisation(session, client):
    here = await make_world(session, client)
    rival = await make_world(session, client, "Rival")
    for write in WRITES.values():
        await perform(client, here, write)
        await perform(client, rival, write)
        await perform(client, here, WRITES["create_team"])
    total_here = await assert_numbered_one_to_n(session, here.tenant.org.id)
    total_rival = await assert_numbered_one_to_n(session, rival.tenant.org.id)
    assert total_here == total_rival + len(WRITES)


# The audit API


async def history(
    client: httpx.AsyncClient, tenant: Tenant, entity: str, entity_id: Any, **params: Any
) -> list[dict[str, Any]]:
    return await every_page(client, AUDIT, tenant.headers, entity=entity, entity_id=str(entity_id), **params)


async def test_history_is_field_by_field_and_newest_first(session, client):
    world = await make_world(session, client)
    tenant = world.tenant
    user_id, _ = await perform(client, world, WRITES["create_user"])
    for change in ({"name": "Nora Núñez-Ruiz"}, {"role": "manager", "team_id": str(tenant.team.id)}):
        assert (await client.patch(f"{API}/users/{user_id}", json=change, headers=tenant.headers)).status_code == 200

    entries = await history(client, tenant, "user", user_id)
    assert [(e["op"], e["version"]) for e in entries] == [("update", 3), ("update", 2), ("create", 1)]
    assert [e["seq"] for e in entries] == sorted((e["seq"] for e in entries), reverse=True)
    assert {(e["actor_kind"], e["actor_id"]) for e in entries} == {("user", str(tenant.admin.id))}
    assert entries[0]["changes"] == [
        {"field": "role", "before": "rep", "after": "manager"},
        {"field": "team_id", "before": None, "after": str(tenant.team.id)},
    ]
    assert entries[1]["changes"] == [{"field": "name", "before": "Nora Núñez", "after": "Nora Núñez-Ruiz"}]
    created = {c["field"]: c for c in entries[2]["changes"]}
    assert created["name"] == {"field": "name", "before": None, "after": "Nora Núñez"}
    assert created["is_active"] == {"field": "is_active", "before": None, "after": True}
    assert not {"name_folded", "version", "updated_at"} & created.keys()


async def test_history_pages_through_every_entry_once(session, client):
    tenant = await make_tenant(session, client)
    for n in range(5):
        response = await client.patch(
            f"{API}/teams/{tenant.team.id}", json={"name": f"Sales {n}"}, headers=tenant.headers
        )
        assert response.status_code == 200, response.text
    everything = await history(client, tenant, "team", tenant.team.id)
    assert len(everything) == 6
    paged = await history(client, tenant, "team", tenant.team.id, limit=2)
    assert [e["id"] for e in paged] == [e["id"] for e in everything]


SECRET_COLUMNS = {"user": (User, ("password_hash", "invite_hash")), "api_key": (ApiKey, ("key_hash",))}


async def stored_secrets(session: AsyncSession, entity: str, entity_id: str) -> list[str]:
    if entity not in SECRET_COLUMNS:
        return []
    model, columns = SECRET_COLUMNS[entity]
    table = model.__table__  # type: ignore[attr-defined]
    row = (await session.execute(sa.select(table).where(table.c.id == uuid.UUID(entity_id)))).one()
    return [getattr(row, c) for c in columns if getattr(row, c) is not None]


REDACTIONS = [
    ("create_user", "password_hash", None, REDACTED),
    ("invite_user", "invite_hash", None, REDACTED),
    ("create_key", "key_hash", None, REDACTED),
    ("accept_invite", "password_hash", None, REDACTED),
    ("accept_invite", "invite_hash", REDACTED, None),
    ("reset_password", "invite_hash", REDACTED, None),
    ("reset_password", "password_hash", REDACTED, REDACTED),
    ("reissue_invite", "invite_hash", REDACTED, REDACTED),
]


@pytest.mark.parametrize(("name", "field", "before", "after"), REDACTIONS)
async def test_secrets_show_as_redacted_never_as_their_hash(session, client, name, field, before, after):
    world = await make_world(session, client)
    write = WRITES[name]
    # The hashes a write replaces must not show either.
    target = placeholders(world).get(write.target)
    replaced = await stored_secrets(session, write.entity, str(target)) if target else []
    entity_id, _ = await perform(client, world, write)
    response = await client.get(
        AUDIT, params={"entity": write.entity, "entity_id": entity_id}, headers=world.tenant.headers
    )
    assert response.status_code == 200, response.text
    secrets = replaced + await stored_secrets(session, write.entity, entity_id)
    assert secrets
    logged = json.dumps([c.fields for c in await changes_of(session, world.tenant.org.id)])
    for secret in secrets:
        assert secret not in response.text
        assert secret not in logged
    newest = {c["field"]: c for c in response.json()["items"][0]["changes"]}
    assert newest.get(field) == {"field": field, "before": before, "after": after}


async def test_one_entry_is_read_by_id(session, client):
    tenant = await make_tenant(session, client)
    listed = (await client.get(AUDIT, params={"limit": 1}, headers=tenant.headers)).json()["items"][0]
    response = await client.get(f"{AUDIT}/{listed['id']}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json() == listed


async def test_other_organisations_history_is_not_found(session, client):
    tenant = await make_tenant(session, client)
    rival = await make_tenant(session, client, "Rival")
    rival_entry = (await client.get(AUDIT, params={"limit": 1}, headers=rival.headers)).json()["items"][0]
    assert (await client.get(f"{AUDIT}/{rival_entry['id']}", headers=tenant.headers)).status_code == 404
    assert (await client.get(f"{AUDIT}/{uuid.uuid4()}", headers=tenant.headers)).status_code == 404
    response = await client.get(
        AUDIT, params={"entity": "user", "entity_id": str(rival.rep.id)}, headers=tenant.headers
    )
    assert response.status_code == 404, response.text
    everything = await every_page(client, AUDIT, tenant.headers)
    assert rival_entry["id"] not in {e["id"] for e in everything}


@pytest.mark.parametrize("who", ["rep", "manager", "marketing", "api_key"])
@pytest.mark.parametrize("one", [False, True], ids=["list", "one"])
async def test_non_admins_cannot_read_the_audit(session, client, who, one):
    tenant = await make_tenant(session, client)
    headers = await caller_headers(session, client, tenant, who, SCOPES)
    entry = (await client.get(AUDIT, params={"limit": 1}, headers=tenant.headers)).json()["items"][0]
    response = await client.get(f"{AUDIT}/{entry['id']}" if one else AUDIT, headers=headers)
    assert response.status_code == 403, response.text
