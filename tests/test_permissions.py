"""Who may call what: every caller against every operation of the API.

EXPECTED is the product's permission table, written out by hand. The operations come from the app's own OpenAPI
document, so a new route fails the suite until someone decides who may call it. An allowed caller is never refused
(and, given the valid input each call sends, succeeds); a refused one gets a problem+json 401 (anonymous, with
`WWW-Authenticate: Bearer`) or 403 (signed in), and writes nothing.
"""

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import service
from api.auth.models import Role
from api.auth.schemas import SCOPES, UserCreate
from api.core.db import Database
from api.core.errors import PROBLEM_JSON
from api.deals import service as deals
from api.deals.models import Pipeline, Stage
from api.deals.schemas import LostReasonCreate, PipelineCreate, ProductCreate, StageSpec
from api.main import create_app
from tests.auth.test_login import bearer, tokens
from tests.factories import PASSWORD, make_api_key, make_team, make_user, sign_in, system
from tests.test_tenant_isolation import ID_OF, Operation, Records, _records, versions

# The callers: no credentials, a user of each role, and two API keys of the same organisation.
ROLE_OF = {"admin": Role.admin, "manager": Role.manager, "rep": Role.rep, "marketing": Role.marketing}
SCOPES_OF = {"all_scopes_key": SCOPES, "no_scope_key": ("changes:read",)}
CALLERS = ("anonymous", *ROLE_OF, *SCOPES_OF)

EVERYONE = frozenset(CALLERS)
AUTHENTICATED = EVERYONE - {"anonymous"}
SIGNED_IN_USERS = frozenset(ROLE_OF)
ADMIN = frozenset({"admin"})

# The product's rules, one line per operation. Keys reach no admin endpoint and no team endpoint (there is no
# teams scope); they need `users:read` for the users endpoints.
EXPECTED: dict[str, frozenset[str]] = {
    # Public: no credentials needed, and sending some is no reason to refuse.
    "health-live": EVERYONE,
    "health-ready": EVERYONE,
    "auth-login": EVERYONE,
    "auth-refresh": EVERYONE,
    "auth-logout": EVERYONE,
    "auth-accept-invite": EVERYONE,
    # Any authenticated caller, whatever its role or scopes.
    "me-get": AUTHENTICATED,
    # Every role reads colleagues and teams; a key reads colleagues with `users:read`.
    "users-list": SIGNED_IN_USERS | {"all_scopes_key"},
    "users-get": SIGNED_IN_USERS | {"all_scopes_key"},
    "teams-list": SIGNED_IN_USERS,
    "teams-get": SIGNED_IN_USERS,
    # Admins manage users, teams and keys, and read the audit log.
    "users-create": ADMIN,
    "users-update": ADMIN,
    "users-invite": ADMIN,
    "teams-create": ADMIN,
    "teams-update": ADMIN,
    "teams-delete": ADMIN,
    "api-keys-list": ADMIN,
    "api-keys-get": ADMIN,
    "api-keys-create": ADMIN,
    "api-keys-revoke": ADMIN,
    "audit-list": ADMIN,
    "audit-get": ADMIN,
    # Sales reference data: every role reads it (pickers, the board), keys with `deals:read`; admins change it.
    **dict.fromkeys(
        ("pipelines-list", "pipelines-get", "products-list", "products-get", "lost-reasons-list"),
        SIGNED_IN_USERS | {"all_scopes_key"},
    ),
    **dict.fromkeys(
        (
            "pipelines-create",
            "pipelines-update",
            "pipelines-delete",
            "pipelines-add-stage",
            "stages-update",
            "stages-delete",
            "products-create",
            "products-update",
            "products-delete",
            "lost-reasons-create",
            "lost-reasons-update",
            "lost-reasons-delete",
        ),
        ADMIN,
    ),
}


@dataclass(frozen=True)
class World:
    """One organisation, its records, and the auth headers of every caller."""

    session: AsyncSession
    client: httpx.AsyncClient
    records: Records
    headers: dict[str, dict[str, str]]


RecordsOf = Callable[[World], Awaitable[Records]]
BodyOf = Callable[[World], Awaitable[dict[str, Any] | None]]


async def shared_records(world: World) -> Records:
    return world.records


async def empty_team(world: World) -> Records:
    team = await make_team(world.session, world.records.tenant.org, name=f"Empty {uuid.uuid4().hex[:8]}")
    return dataclasses.replace(world.records, team=team)


async def unused_key(world: World) -> Records:
    key, _ = await make_api_key(world.session, world.records.tenant.org, "users:read")
    return dataclasses.replace(world.records, key=key)


async def spare_pipeline(world: World) -> Records:
    """A pipeline that is not the default, with two open stages: one may be deleted, and so may the pipeline."""
    created = await deals.create_pipeline(
        session=world.session,
        principal=system(world.records.tenant.org),
        data=PipelineCreate(name=f"Spare {uuid.uuid4().hex[:8]}", stages=[StageSpec(name="A"), StageSpec(name="B")]),
    )
    await world.session.commit()
    pipeline = await world.session.get(Pipeline, created.id)
    stage = await world.session.get(Stage, created.stages[0].id)
    assert pipeline is not None and stage is not None
    return dataclasses.replace(world.records, pipeline=pipeline, stage=stage)


async def spare_product(world: World) -> Records:
    product = await deals.create_product(
        session=world.session, principal=system(world.records.tenant.org), data=ProductCreate(name="Spare")
    )
    await world.session.commit()
    return dataclasses.replace(world.records, product=product)


async def spare_lost_reason(world: World) -> Records:
    reason = await deals.create_lost_reason(
        session=world.session, principal=system(world.records.tenant.org), data=LostReasonCreate(name="Spare")
    )
    await world.session.commit()
    return dataclasses.replace(world.records, lost_reason=reason)


# The records a call addresses, for operations whose call consumes or deletes them (others share one set).
FRESH: dict[str, RecordsOf] = {
    "teams-delete": empty_team,
    "api-keys-revoke": unused_key,
    "pipelines-delete": spare_pipeline,
    "stages-delete": spare_pipeline,
    "products-delete": spare_product,
    "lost-reasons-delete": spare_lost_reason,
}


def static(body: dict[str, Any]) -> BodyOf:
    async def same(_world: World) -> dict[str, Any]:
        return body

    return same


async def no_body(_world: World) -> None:
    return None


async def credentials(world: World) -> dict[str, Any]:
    return {"email": world.records.user.email, "password": PASSWORD}


async def refresh_token(world: World) -> dict[str, Any]:
    return {"refresh_token": (await tokens(world.client, world.records.user))["refresh_token"]}


async def invitation(world: World) -> dict[str, Any]:
    _, token = await service.create_user(
        session=world.session,
        principal=system(world.records.tenant.org),
        data=UserCreate(email=f"invited-{uuid.uuid4().hex[:8]}@example.com", name="Invited", role=Role.rep),
    )
    await world.session.commit()
    return {"token": token, "password": "another-horse-battery"}


async def new_user(_world: World) -> dict[str, Any]:
    return {"email": f"new-{uuid.uuid4().hex[:8]}@example.com", "name": "New Colleague", "role": "rep"}


# A valid body for each operation that takes one, made afresh for each call (tokens are single use, e-mails unique).
BODIES: dict[str, BodyOf] = {
    "auth-login": credentials,
    "auth-refresh": refresh_token,
    "auth-logout": refresh_token,
    "auth-accept-invite": invitation,
    "users-create": new_user,
    "users-update": static({"name": "Renamed Colleague"}),
    "teams-create": static({"name": "New Team"}),
    "teams-update": static({"name": "Renamed Team"}),
    "api-keys-create": static({"name": "Sync", "scopes": ["users:read"]}),
    "pipelines-create": static({"name": "Renewals", "stages": [{"name": "Contacted"}]}),
    "pipelines-update": static({"name": "Renamed Pipeline"}),
    "pipelines-add-stage": static({"name": "Demo", "probability": 40}),
    "stages-update": static({"name": "Renamed Stage"}),
    "products-create": static({"name": "Consulting day", "price_minor": 80000}),
    "products-update": static({"price_minor": 90000}),
    "lost-reasons-create": static({"name": "Went silent"}),
    "lost-reasons-update": static({"name": "Renamed reason"}),
}


def operations(db: Database) -> dict[str, Operation]:
    """Every operation of the app by operationId, from its OpenAPI document. `body` holds the operation's OpenAPI
    requestBody (None when it takes none) until a call puts a real body in its place."""
    found: dict[str, Operation] = {}
    for path, item in create_app(database=db).openapi()["paths"].items():
        for method, operation in item.items():
            params = tuple(p["name"] for p in operation.get("parameters", []) if p["in"] == "path")
            found[operation["operationId"]] = Operation(method.upper(), path, params, operation.get("requestBody"))
    return found


@pytest.fixture
async def world(session: AsyncSession, client: httpx.AsyncClient) -> World:
    records = await _records(session, client, "Acme")
    org = records.tenant.org
    # The colleague the calls address, and sign in as: none of the callers, so no call can lock a caller out.
    target = await make_user(session, org, role=Role.rep)
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    for caller, role in ROLE_OF.items():
        user = records.tenant.rep if role is Role.rep else await make_user(session, org, role=role)
        headers[caller] = records.tenant.headers if role is Role.admin else await sign_in(client, user)
    for caller, scopes in SCOPES_OF.items():
        headers[caller] = bearer((await make_api_key(session, org, *scopes))[1])
    return World(session, client, dataclasses.replace(records, user=target), headers)


def refusal_faults(response: httpx.Response, status: int) -> list[str]:
    """What is wrong with a response that should refuse the caller with `status`."""
    faults = []
    if response.status_code != status:
        faults.append(f"answered {response.status_code}, not {status}: {response.text}")
    if not response.headers.get("content-type", "").startswith(PROBLEM_JSON):
        faults.append(f"is not {PROBLEM_JSON}: {response.headers.get('content-type')}")
    elif response.json().get("status") != response.status_code:
        faults.append(f"has a problem body whose status is not {response.status_code}: {response.text}")
    if status == 401 and response.headers.get("www-authenticate", "").split(" ")[0] != "Bearer":
        faults.append(f"has no `WWW-Authenticate: Bearer` header: {dict(response.headers)}")
    return faults


def allowed_faults(response: httpx.Response) -> list[str]:
    if response.status_code in (401, 403):
        return [f"refused an allowed caller with {response.status_code}: {response.text}"]
    if not response.is_success:
        return [f"answered {response.status_code}, though the call's input is valid: {response.text}"]
    return []


# The table itself


def test_every_operation_of_the_api_has_a_permission_decision(db: Database) -> None:
    ops = operations(db)

    missing = sorted(ops.keys() - EXPECTED.keys())
    if missing:
        pytest.fail(
            f"operation(s) {missing} have no permission decision: add each to EXPECTED in tests/test_permissions.py "
            "with the set of callers allowed to call it"
        )
    assert not EXPECTED.keys() - ops.keys(), "EXPECTED names an operation that no longer exists"


def test_every_operation_can_be_called_with_valid_input(db: Database) -> None:
    ops = operations(db)

    for op_id, op in sorted(ops.items()):
        if op.body is not None and op_id not in BODIES:
            pytest.fail(f"{op_id} takes a body: add a valid one to BODIES in tests/test_permissions.py")
        if op.method == "DELETE" and op_id not in FRESH:
            pytest.fail(
                f"{op_id} deletes: add a maker of a fresh record per call to FRESH in tests/test_permissions.py"
            )
        unknown = sorted(set(op.params) - ID_OF.keys())
        assert not unknown, f"{op_id} has path parameter(s) {unknown}: add them to ID_OF in test_tenant_isolation.py"
    assert BODIES.keys() <= {k for k, op in ops.items() if op.body is not None}, "BODIES names a stale operation"
    assert FRESH.keys() <= ops.keys(), "FRESH names an operation that no longer exists"


@pytest.mark.parametrize("op_id", sorted(EXPECTED))
async def test_each_caller_is_allowed_or_refused_as_the_table_says(
    db: Database, session: AsyncSession, world: World, op_id: str
) -> None:
    op = operations(db).get(op_id)
    assert op is not None, f"{op_id} is in EXPECTED but not in the API any more"
    org_id = world.records.tenant.org.id

    failures: list[str] = []
    for caller in CALLERS:
        records = await FRESH.get(op_id, shared_records)(world)
        call = dataclasses.replace(op, body=await BODIES.get(op_id, no_body)(world))
        before = await versions(session, org_id)
        response = await call.call(world.client, records, world.headers[caller])
        if caller in EXPECTED[op_id]:
            faults = allowed_faults(response)
        else:
            faults = refusal_faults(response, 401 if caller == "anonymous" else 403)
            if await versions(session, org_id) != before:
                faults.append("refused, yet changed the organisation's records or its change log")
        failures += [f"{op.method} {op.path} as {caller}: {fault}" for fault in faults]

    assert not failures, "\n".join(failures)
