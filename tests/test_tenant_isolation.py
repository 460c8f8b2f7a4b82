"""One organisation can never see or touch another's records: every route that takes an id answers 404 for an id
of another organisation, and says nothing about it.

The matrix is built from the app's own OpenAPI document, so a new route with a path parameter is covered as soon as
it exists, or the suite fails until someone says how to get the other organisation's id for that parameter.
"""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, func, select

from api.auth.models import ApiKey, Organization, Team, User
from api.core.changes import Change
from api.core.db import Database
from api.core.models import live
from api.deals import service as deals
from api.deals.models import LostReason, Pipeline, Product, Stage
from api.deals.schemas import ProductCreate
from api.main import create_app
from tests.factories import Tenant, make_api_key, make_team, make_tenant, system


@dataclass(frozen=True)
class Records:
    """One organisation's records that the routes address by id."""

    tenant: Tenant
    user: User
    team: Team
    key: ApiKey
    change_id: uuid.UUID
    # Chosen so that a call on the organisation's own record changes nothing the later calls need: the default
    # pipeline and its won stage cannot be deleted (409), the product and lost reason are deleted last.
    pipeline: Pipeline
    stage: Stage
    product: Product
    lost_reason: LostReason


# How to get an organisation's id for each path parameter. A route with a parameter not listed here fails the suite.
ID_OF: dict[str, Callable[[Records], uuid.UUID]] = {
    "user_id": lambda r: r.user.id,
    "team_id": lambda r: r.team.id,
    "key_id": lambda r: r.key.id,
    "change_id": lambda r: r.change_id,
    "pipeline_id": lambda r: r.pipeline.id,
    "stage_id": lambda r: r.stage.id,
    "product_id": lambda r: r.product.id,
    "lost_reason_id": lambda r: r.lost_reason.id,
}

# A minimal valid body for each operation that takes one (keyed by method and path template).
BODY_OF: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/api/v1/users/{user_id}"): {"name": "x"},
    ("PATCH", "/api/v1/teams/{team_id}"): {"name": "x"},
    ("PATCH", "/api/v1/pipelines/{pipeline_id}"): {"name": "x"},
    ("POST", "/api/v1/pipelines/{pipeline_id}/stages"): {"name": "x"},
    ("PATCH", "/api/v1/stages/{stage_id}"): {"name": "x"},
    ("PATCH", "/api/v1/products/{product_id}"): {"name": "x"},
    ("PATCH", "/api/v1/lost-reasons/{lost_reason_id}"): {"name": "x"},
}

# Routes known to exist today: a check that the enumeration itself works (new routes are found without this list).
KNOWN_OPERATIONS = {
    ("GET", "/api/v1/users/{user_id}"),
    ("PATCH", "/api/v1/users/{user_id}"),
    ("POST", "/api/v1/users/{user_id}/invite"),
    ("GET", "/api/v1/teams/{team_id}"),
    ("PATCH", "/api/v1/teams/{team_id}"),
    ("DELETE", "/api/v1/teams/{team_id}"),
    ("GET", "/api/v1/api-keys/{key_id}"),
    ("DELETE", "/api/v1/api-keys/{key_id}"),
    ("GET", "/api/v1/audit/{change_id}"),
    ("DELETE", "/api/v1/pipelines/{pipeline_id}"),
    ("DELETE", "/api/v1/stages/{stage_id}"),
    ("DELETE", "/api/v1/products/{product_id}"),
    ("DELETE", "/api/v1/lost-reasons/{lost_reason_id}"),
}

_PARAM = re.compile(r"{(\w+)}")
# Deletes last, so that the same-organisation control calls see every record still there.
_METHOD_ORDER = {"get": 0, "post": 1, "patch": 2, "put": 3, "delete": 4}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    params: tuple[str, ...]
    body: dict[str, Any] | None

    def url(self, records: Records) -> str:
        return self.path.format(**{name: ID_OF[name](records) for name in self.params})

    async def call(self, client: httpx.AsyncClient, records: Records, headers: dict[str, str]) -> httpx.Response:
        return await client.request(self.method, self.url(records), json=self.body, headers=headers)


def operations_with_ids(db: Database) -> list[Operation]:
    """Every operation of the app whose path has a parameter; fails on a parameter or body it cannot fill."""
    found: list[Operation] = []
    for path, item in create_app(database=db).openapi()["paths"].items():
        params = tuple(_PARAM.findall(path))
        if not params:
            continue
        unknown = sorted(set(params) - ID_OF.keys())
        if unknown:
            pytest.fail(
                f"{path} has path parameter(s) {unknown} with no tenant-isolation coverage: "
                "add them to ID_OF in tests/test_tenant_isolation.py"
            )
        for method, operation in sorted(item.items(), key=lambda kv: _METHOD_ORDER.get(kv[0], 9)):
            body = BODY_OF.get((method.upper(), path))
            if "requestBody" in operation and body is None:
                pytest.fail(
                    f"{method.upper()} {path} takes a body and has no tenant-isolation coverage: "
                    "add a minimal valid body to BODY_OF in tests/test_tenant_isolation.py"
                )
            found.append(Operation(method.upper(), path, params, body))
    return found


async def _first_audit_id(client: httpx.AsyncClient, tenant: Tenant) -> uuid.UUID:
    response = await client.get("/api/v1/audit", params={"limit": 1}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return uuid.UUID(response.json()["items"][0]["id"])


async def _records(session: AsyncSession, client: httpx.AsyncClient, name: str) -> Records:
    tenant = await make_tenant(session, client, name)
    # A team of its own, with a name no other organisation uses (the tenant's default team is called "Sales").
    team = await make_team(session, tenant.org, name=f"{name} Private Team")
    org_id = tenant.org.id
    pipeline = (await session.scalars(live(Pipeline, org_id).where(col(Pipeline.is_default)))).one()
    won = (await session.scalars(live(Stage, org_id).where(col(Stage.kind) == "won"))).one()
    product = await deals.create_product(
        session=session, principal=system(tenant.org), data=ProductCreate(name=f"{name} Widget", sku=name[:8])
    )
    reason = (await session.scalars(live(LostReason, org_id).order_by(col(LostReason.position)))).first()
    assert reason is not None
    await session.commit()
    audit_id = await _first_audit_id(client, tenant)
    return Records(tenant, tenant.rep, team, tenant.key, audit_id, pipeline, won, product, reason)


@pytest.fixture
async def orgs(session: AsyncSession, client: httpx.AsyncClient) -> tuple[Records, Records]:
    """Organisation A (the caller) and organisation B (the target)."""
    return await _records(session, client, "Alpha Ltd"), await _records(session, client, "Bravo Corp")


def secrets_of(b: Records) -> list[str]:
    """What a response to A must never mention about B."""
    t = b.tenant
    values: list[Any] = [
        t.org.id,
        t.org.name,
        b.change_id,
        b.team.id,
        b.team.name,
        t.team.id,
        b.key.id,
        b.key.prefix,
        b.pipeline.id,
        b.stage.id,
        b.product.id,
        b.product.name,
        b.lost_reason.id,
        *(x for user in (t.admin, t.rep) for x in (user.id, user.email, user.name)),
    ]
    return [str(v) for v in values]


def assert_mentions_none(response: httpx.Response, secrets: list[str]) -> None:
    leaked = [s for s in secrets if s.lower() in response.text.lower()]
    assert not leaked, f"{response.request.method} {response.request.url} leaked {leaked}: {response.text}"


async def versions(session: AsyncSession, org_id: uuid.UUID) -> dict[str, Any]:
    """The state of an organisation's records as the database has it (not as the session remembers it)."""
    state: dict[str, Any] = {}
    for model in (User, Team, ApiKey, Pipeline, Stage, Product, LostReason):
        rows = await session.execute(
            select(model.id, model.version, model.deleted_at).where(col(model.org_id) == org_id)
        )
        state.update({f"{model.__tablename__}:{r.id}": (r.version, r.deleted_at) for r in rows})
    state["changes"] = await session.scalar(select(func.count()).where(col(Change.org_id) == org_id))
    return state


# The matrix


def test_every_path_parameter_of_the_api_has_a_way_to_get_another_orgs_id(db: Database) -> None:
    ops = operations_with_ids(db)

    assert {p for op in ops for p in op.params} == ID_OF.keys(), "ID_OF lists a parameter no route has any more"
    assert {(op.method, op.path) for op in ops} >= BODY_OF.keys(), "BODY_OF names an operation that no longer exists"


async def test_every_route_with_an_id_answers_404_for_another_orgs_record_and_leaks_nothing(
    session: AsyncSession, client: httpx.AsyncClient, db: Database, orgs: tuple[Records, Records]
) -> None:
    a, b = orgs
    ops = operations_with_ids(db)
    assert {(op.method, op.path) for op in ops} >= KNOWN_OPERATIONS, "the enumeration missed routes it should find"
    before = await versions(session, b.tenant.org.id)
    secrets = secrets_of(b)

    failures: list[str] = []
    for op in ops:
        response = await op.call(client, b, a.tenant.headers)
        if response.status_code != 404:
            failures.append(f"{op.method} {op.path} with B's id answered {response.status_code}: {response.text}")
        assert_mentions_none(response, secrets)
        # The control: the same call on A's own record is not a 404, so the 404 above is the isolation at work.
        own = await op.call(client, a, a.tenant.headers)
        if own.status_code == 404:
            failures.append(f"{op.method} {op.path} with A's own id answered 404 too: {own.text}")
        assert_mentions_none(own, secrets)

    assert not failures, "\n".join(failures)
    assert await versions(session, b.tenant.org.id) == before


# Lists, search and audit


async def test_audit_filtered_by_another_orgs_record_is_404(
    client: httpx.AsyncClient, orgs: tuple[Records, Records]
) -> None:
    a, b = orgs
    params = {"entity_id": str(b.user.id)}

    response = await client.get("/api/v1/audit", params=params, headers=a.tenant.headers)
    own = await client.get("/api/v1/audit", params=params, headers=b.tenant.headers)

    assert response.status_code == 404, response.text
    assert_mentions_none(response, secrets_of(b))
    assert own.status_code == 200 and own.json()["items"], own.text


async def test_audit_log_lists_none_of_another_orgs_changes(
    client: httpx.AsyncClient, orgs: tuple[Records, Records]
) -> None:
    a, b = orgs

    response = await client.get("/api/v1/audit", params={"limit": 200}, headers=a.tenant.headers)

    assert response.status_code == 200, response.text
    assert response.json()["items"], "A's own changes are listed"
    assert_mentions_none(response, secrets_of(b))


async def test_user_search_finds_none_of_another_orgs_users(
    client: httpx.AsyncClient, orgs: tuple[Records, Records]
) -> None:
    a, b = orgs
    params = {"q": b.user.name}

    response = await client.get("/api/v1/users", params=params, headers=a.tenant.headers)
    own = await client.get("/api/v1/users", params=params, headers=b.tenant.headers)

    assert response.status_code == 200, response.text
    assert response.json()["items"] == []
    assert_mentions_none(response, secrets_of(b))
    assert [u["id"] for u in own.json()["items"]] == [str(b.user.id)], "the search term does find B's user for B"


@pytest.mark.parametrize("path", ["/api/v1/users", "/api/v1/teams", "/api/v1/api-keys"])
async def test_lists_show_none_of_another_orgs_records(
    client: httpx.AsyncClient, orgs: tuple[Records, Records], path: str
) -> None:
    a, b = orgs

    response = await client.get(path, params={"limit": 200}, headers=a.tenant.headers)

    assert response.status_code == 200, response.text
    listed = {item["id"] for item in response.json()["items"]}
    assert listed, "A's own records are listed"
    assert_mentions_none(response, secrets_of(b))


def _secret_part(key: ApiKey, secret: str) -> str:
    return secret.removeprefix(f"{key.prefix}_")


async def _key_with_secret(session: AsyncSession, org: Organization, *, underscore: bool) -> str:
    """A users:read key of the organisation whose random secret part does (or does not) contain "_"."""
    for _ in range(60):  # about half of all secrets contain "_": 60 tries miss with odds of 1e-18
        key, secret = await make_api_key(session, org, "users:read")
        if ("_" in _secret_part(key, secret)) is underscore:
            return secret
    pytest.fail("could not make a key of the wanted shape")


async def test_an_api_key_cannot_read_another_orgs_user(
    session: AsyncSession, client: httpx.AsyncClient, orgs: tuple[Records, Records]
) -> None:
    a, b = orgs
    headers = {"Authorization": f"Bearer {a.tenant.key_secret}"}

    response = await client.get(f"/api/v1/users/{b.user.id}", headers=headers)
    own = await client.get(f"/api/v1/users/{a.user.id}", headers=headers)

    assert response.status_code == 404, response.text
    assert_mentions_none(response, secrets_of(b))
    assert own.status_code == 200, own.text


async def test_an_api_key_whose_secret_contains_an_underscore_authenticates(
    session: AsyncSession, client: httpx.AsyncClient, orgs: tuple[Records, Records]
) -> None:
    a, _ = orgs
    secret = await _key_with_secret(session, a.tenant.org, underscore=True)

    response = await client.get(f"/api/v1/users/{a.user.id}", headers={"Authorization": f"Bearer {secret}"})

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("method", "path", "payload", "pointer"),
    [
        (
            "POST",
            "/api/v1/users",
            {"email": "n@example.com", "name": "N", "role": "rep", "team_id": "{team}"},
            "team_id",
        ),
        ("PATCH", "/api/v1/users/{own_user}", {"team_id": "{team}"}, "team_id"),
        ("POST", "/api/v1/teams", {"name": "Sub", "parent_id": "{team}"}, "parent_id"),
        ("PATCH", "/api/v1/teams/{own_team}", {"parent_id": "{team}"}, "parent_id"),
        ("POST", "/api/v1/teams", {"name": "Led", "head_id": "{user}"}, "head_id"),
        ("PATCH", "/api/v1/teams/{own_team}", {"head_id": "{user}"}, "head_id"),
        ("PATCH", "/api/v1/pipelines/{own_pipeline}", {"team_id": "{team}"}, "team_id"),
    ],
)
async def test_references_to_another_orgs_records_are_refused(
    session: AsyncSession,
    client: httpx.AsyncClient,
    orgs: tuple[Records, Records],
    method: str,
    path: str,
    payload: dict[str, str],
    pointer: str,
) -> None:
    a, b = orgs
    ids = {
        "team": str(b.team.id),
        "user": str(b.user.id),
        "own_user": str(a.user.id),
        "own_team": str(a.team.id),
        "own_pipeline": str(a.pipeline.id),
    }
    before = await versions(session, a.tenant.org.id)

    response = await client.request(
        method,
        path.format(**ids),
        json={k: v.format(**ids) for k, v in payload.items()},
        headers=a.tenant.headers,
    )

    assert response.status_code == 422, response.text
    assert f"#/{pointer}" in [e.get("pointer") for e in response.json()["errors"]]
    assert await versions(session, a.tenant.org.id) == before
