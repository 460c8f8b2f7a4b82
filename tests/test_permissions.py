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
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col

from api.auth import service
from api.auth.models import Role
from api.auth.schemas import SCOPES, UserCreate
from api.clients import service as clients
from api.clients.models import FieldKind
from api.clients.schemas import CustomFieldCreate
from api.core.db import Database
from api.core.errors import PROBLEM_JSON
from api.core.models import live
from api.core.types import utcnow
from api.deals import deals as deal_service
from api.deals import service as deals
from api.deals.models import Pipeline, Stage
from api.deals.schemas import LostReasonCreate, PipelineCreate, ProductCreate, StageSpec
from api.insights import goals
from api.insights.models import GoalMetric
from api.insights.schemas import GoalCreate
from api.marketing.models import Segment
from api.sharing.models import Share
from tests.auth.test_login import bearer, tokens
from tests.conftest import made_on
from tests.factories import (
    PASSWORD,
    make_activity,
    make_api_key,
    make_company,
    make_contact,
    make_deal,
    make_team,
    make_user,
    share_with,
    sign_in,
    system,
    viewer_of_user,
)
from tests.test_tenant_isolation import (
    ID_OF,
    Operation,
    Records,
    Upload,
    _records,
    api_paths,
    save_import_mapping,
    subscribe_webhook,
    upload_import,
    versions,
)

# The callers: no credentials, a user of each role, and two API keys of the same organisation.
ROLE_OF = {"admin": Role.admin, "manager": Role.manager, "rep": Role.rep, "marketing": Role.marketing}
SCOPES_OF = {"all_scopes_key": SCOPES, "no_scope_key": ("changes:read",)}
CALLERS = ("anonymous", *ROLE_OF, *SCOPES_OF)

EVERYONE = frozenset(CALLERS)
AUTHENTICATED = EVERYONE - {"anonymous"}
SIGNED_IN_USERS = frozenset(ROLE_OF)
ADMIN = frozenset({"admin"})
# Who sells: every role but marketing (which reads clients and deals and writes nothing).
SELLERS = frozenset({"admin", "manager", "rep"})

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
    # The organisation's name, defaults and visibility setting, and the custom fields clients and deals carry.
    "organization-update": ADMIN,
    **dict.fromkeys(("custom-fields-create", "custom-fields-update", "custom-fields-delete"), ADMIN),
    # Clients and deals: every role reads them (marketing too: client cards and deal summaries), and so does a key
    # with the read scopes; marketing changes nothing.
    **dict.fromkeys(
        (
            "companies-list",
            "companies-get",
            "contacts-list",
            "contacts-get",
            "clients-card",
            "clients-timeline",
            "search-search",
            "custom-fields-list",
            "deals-list",
            "deals-get",
            "deals-board",
        ),
        SIGNED_IN_USERS | {"all_scopes_key"},
    ),
    **dict.fromkeys(
        (
            "companies-create",
            "companies-update",
            "companies-delete",
            "companies-restore",
            "contacts-create",
            "contacts-update",
            "contacts-delete",
            "contacts-restore",
            "deals-create",
            "deals-update",
            "deals-set-lines",
            "deals-move",
            "deals-win",
            "deals-lose",
            "deals-reopen",
            "deals-delete",
            "deals-restore",
        ),
        SELLERS | {"all_scopes_key"},
    ),
    # Activities and the feed (which carries them): marketing sees activities only on a client's card and timeline.
    **dict.fromkeys(
        (
            "deals-timeline",
            "activities-list",
            "activities-get",
            "activities-create",
            "activities-update",
            "activities-complete",
            "activities-reopen",
            "activities-delete",
            "feed-list",
            "feed-stream",
        ),
        SELLERS | {"all_scopes_key"},
    ),
    # A user's own agenda: a key is no one and has none; marketing plans no activities.
    "me-agenda": SELLERS,
    # Shares are between colleagues: no key. Everyone may see who a record is shared with; sellers share.
    "shares-list": SIGNED_IN_USERS,
    "shares-create": SELLERS,
    "shares-delete": SELLERS,
    # Sync is for people's apps (marketing's mutations are refused one by one); integrations read the changes feed.
    "sync-push": SIGNED_IN_USERS,
    "sync-pull": SIGNED_IN_USERS,
    "sync-events": SIGNED_IN_USERS,
    "changes-list": ADMIN | {"all_scopes_key", "no_scope_key"},
    # Insights: whoever sells, each within their reach, and keys with `insights:read`; retention is marketing's too
    # (whom to win back). A win story is between colleagues; goals are the admins' to set.
    **dict.fromkeys(
        (
            "insights-funnel",
            "insights-leaderboard",
            "insights-playbook",
            "insights-discipline",
            "insights-data-quality",
            "insights-adoption",
            "insights-diagnosis",
            "insights-diagnosis-print",
            "goals-list",
            "goals-get",
        ),
        SELLERS | {"all_scopes_key"},
    ),
    "insights-retention": SIGNED_IN_USERS | {"all_scopes_key"},
    "insights-win-story": SELLERS,
    **dict.fromkeys(("goals-create", "goals-update", "goals-delete"), ADMIN),
    # Exports: admins, managers (what they see) and marketing, and keys with the records' read scope; never reps.
    # Marketing exports no activities, as it lists none.
    **dict.fromkeys(
        ("exports-companies", "exports-contacts", "exports-deals"),
        frozenset({"admin", "manager", "marketing", "all_scopes_key"}),
    ),
    "exports-activities": frozenset({"admin", "manager", "all_scopes_key"}),
    # Imports write records of everyone's, as the admin who runs them: admins only, and no key.
    **dict.fromkeys(
        (
            "imports-upload",
            "imports-list",
            "imports-mappings",
            "imports-delete-mapping",
            "imports-get",
            "imports-discard",
            "imports-set-mapping",
            "imports-values",
            "imports-decide",
            "imports-preview",
            "imports-commit",
            "imports-undo",
            "imports-rows",
            "imports-report",
        ),
        ADMIN,
    ),
    # Webhooks: admins, and keys with `webhooks:manage` (an integration subscribes itself).
    **dict.fromkeys(
        (
            "webhooks-event-types",
            "webhooks-list",
            "webhooks-create",
            "webhooks-get",
            "webhooks-update",
            "webhooks-delete",
            "webhooks-rotate-secret",
            "webhooks-ping",
            "webhooks-events",
            "webhooks-deliveries",
            "webhooks-redeliver",
        ),
        ADMIN | {"all_scopes_key"},
    ),
    # Marketing's client cards (consenting contacts only) and saved segments: admins and marketing, and keys with
    # `clients:read`; managers and reps work from their lists and exports. Segments are marketing's working objects:
    # admins and marketing users save and change them, a key only reads and applies them.
    **dict.fromkeys(
        ("client-cards-list", "client-cards-export", "segments-list", "segments-get"),
        frozenset({"admin", "marketing", "all_scopes_key"}),
    ),
    **dict.fromkeys(("segments-create", "segments-update", "segments-delete"), frozenset({"admin", "marketing"})),
}

# Operations whose answer never ends (server-sent events): through the ASGI test transport, which waits for the
# whole body, an allowed call would hang the suite. Only their refusals are checked here; the stream itself is the
# feed's tests' business.
STREAMS = frozenset({"feed-stream", "sync-events"})


NEW_GOAL = GoalCreate(
    name="Ten calls", metric=GoalMetric.calls, target=10, starts_on=date(2026, 1, 1), ends_on=date(2026, 12, 31)
)


@dataclass(frozen=True)
class World:
    """One organisation, its records, and the auth headers of every caller."""

    session: AsyncSession
    client: httpx.AsyncClient
    records: Records
    headers: dict[str, dict[str, str]]


RecordsOf = Callable[[World], Awaitable[Records]]
BodyOf = Callable[[World], Awaitable[dict[str, Any] | Upload | None]]


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


# Fresh CRM records are the rep's, as the shared ones are: every seller caller may change them.


def _tag() -> str:
    return uuid.uuid4().hex[:8]


async def spare_company(world: World) -> Records:
    company = await make_company(world.session, world.records.tenant.rep, name=f"Spare {_tag()}")
    return dataclasses.replace(world.records, company=company)


async def spare_contact(world: World) -> Records:
    contact = await make_contact(world.session, world.records.tenant.rep, name=f"Spare {_tag()}")
    return dataclasses.replace(world.records, contact=contact)


async def deleted_company(world: World) -> Records:
    records = await spare_company(world)
    await _delete_client(world, clients.COMPANY, records.company.id)
    return records


async def deleted_contact(world: World) -> Records:
    records = await spare_contact(world)
    await _delete_client(world, clients.CONTACT, records.contact.id)
    return records


async def _delete_client(world: World, spec: clients.ClientKindSpec, client_id: uuid.UUID) -> None:
    viewer = await viewer_of_user(world.session, world.records.tenant.rep)
    await clients.delete_client(
        session=world.session, viewer=viewer, spec=spec, client_id=client_id, expected_version=None, present=repr
    )
    await world.session.commit()


async def open_deal(world: World) -> Records:
    deal = await make_deal(world.session, world.records.tenant.rep, title=f"Spare {_tag()}")
    return dataclasses.replace(world.records, deal=deal)


async def won_deal(world: World) -> Records:
    records = await open_deal(world)
    viewer = await viewer_of_user(world.session, world.records.tenant.rep)
    await deal_service.win_deal(session=world.session, viewer=viewer, deal_id=records.deal.id, expected_version=None)
    await world.session.commit()
    return records


async def deleted_deal(world: World) -> Records:
    records = await open_deal(world)
    viewer = await viewer_of_user(world.session, world.records.tenant.rep)
    await deal_service.delete_deal(session=world.session, viewer=viewer, deal_id=records.deal.id, expected_version=None)
    await world.session.commit()
    return records


async def planned_task(world: World) -> Records:
    activity = await make_activity(
        world.session, world.records.tenant.rep, kind="task", due_at=utcnow() + timedelta(days=1)
    )
    return dataclasses.replace(world.records, activity=activity)


async def done_task(world: World) -> Records:
    now = utcnow()
    activity = await make_activity(world.session, world.records.tenant.rep, kind="task", due_at=now, done_at=now)
    return dataclasses.replace(world.records, activity=activity)


async def spare_share(world: World) -> Records:
    """The rep's company shared with a colleague who is none of the callers (so no caller merely leaves it)."""
    colleague = await make_user(world.session, world.records.tenant.org, role=Role.rep)
    await share_with(world.session, world.records.tenant.rep, "company", world.records.company.id, colleague)
    share = (
        await world.session.scalars(live(Share, world.records.tenant.org.id).where(col(Share.user_id) == colleague.id))
    ).one()
    return dataclasses.replace(world.records, share=share)


async def spare_field(world: World) -> Records:
    field = await clients.create_custom_field(
        session=world.session,
        principal=system(world.records.tenant.org),
        data=CustomFieldCreate(entity="deal", key=f"spare_{_tag()}", label="Spare", kind=FieldKind.text),
    )
    await world.session.commit()
    return dataclasses.replace(world.records, custom_field=field)


async def spare_goal(world: World) -> Records:
    goal = await goals.create_goal(session=world.session, principal=system(world.records.tenant.org), data=NEW_GOAL)
    await world.session.commit()
    return dataclasses.replace(world.records, goal=goal)


async def spare_import(world: World) -> Records:
    job = await upload_import(world.session, world.client, world.records.tenant, f"Spare {_tag()}")
    return dataclasses.replace(world.records, import_job=job)


async def finished_import(world: World) -> Records:
    """An import that has run (so it can be undone)."""
    records = await spare_import(world)
    path = f"/api/v1/imports/{records.import_job.id}/commit"
    for _ in range(100):
        response = await world.client.post(path, headers=world.records.tenant.headers)
        assert response.status_code in (200, 202), response.text
        if response.status_code == 200:
            return records
    raise AssertionError("the import never finished")


async def spare_mapping(world: World) -> Records:
    tenant = world.records.tenant
    job = await upload_import(world.session, world.client, tenant, f"Spare {_tag()}")
    mapping = await save_import_mapping(world.session, world.client, tenant, job, f"Spare {_tag()}")
    return dataclasses.replace(world.records, import_mapping=mapping)


async def spare_webhook(world: World) -> Records:
    webhook, event = await subscribe_webhook(world.session, world.client, world.records.tenant, f"Spare {_tag()}")
    return dataclasses.replace(world.records, webhook=webhook, webhook_event=event)


async def spare_segment(world: World) -> Records:
    made = await world.client.post(
        "/api/v1/segments", json={"name": f"Spare {_tag()}"}, headers=world.records.tenant.headers
    )
    assert made.status_code == 201, made.text
    segment = await world.session.get(Segment, uuid.UUID(made.json()["id"]))
    assert segment is not None
    return dataclasses.replace(world.records, segment=segment)


# The records a call addresses, for operations whose call consumes or deletes them (others share one set).
FRESH: dict[str, RecordsOf] = {
    "teams-delete": empty_team,
    "api-keys-revoke": unused_key,
    "pipelines-delete": spare_pipeline,
    "stages-delete": spare_pipeline,
    "products-delete": spare_product,
    "lost-reasons-delete": spare_lost_reason,
    "custom-fields-delete": spare_field,
    "companies-delete": spare_company,
    "companies-restore": deleted_company,
    "contacts-delete": spare_contact,
    "contacts-restore": deleted_contact,
    "deals-win": open_deal,
    "deals-lose": open_deal,
    "deals-reopen": won_deal,
    "deals-delete": open_deal,
    "deals-restore": deleted_deal,
    "activities-complete": planned_task,
    "activities-reopen": done_task,
    "activities-delete": planned_task,
    "shares-delete": spare_share,
    "goals-delete": spare_goal,
    "imports-discard": spare_import,
    "imports-undo": finished_import,
    "imports-delete-mapping": spare_mapping,
    "webhooks-delete": spare_webhook,
    "segments-delete": spare_segment,
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


def owned(body: dict[str, Any]) -> BodyOf:
    """A new record owned by the rep: a key must name an owner, and the rep is in every seller caller's charge."""

    async def make(world: World) -> dict[str, Any]:
        return {**body, "owner_id": str(world.records.tenant.rep.id)}

    return make


async def new_field(_world: World) -> dict[str, Any]:
    return {"entity": "company", "key": f"new_{_tag()}", "label": "Region", "kind": "text"}


async def another_open_stage(world: World) -> dict[str, Any]:
    """The last open stage of the deal's pipeline (the deal starts in the first)."""
    deal = world.records.deal
    stages = await world.session.scalars(
        live(Stage, deal.org_id)
        .where(col(Stage.pipeline_id) == deal.pipeline_id, col(Stage.kind) == "open")
        .order_by(col(Stage.position).desc())
    )
    stage = stages.first()
    assert stage is not None and stage.id != deal.stage_id
    return {"stage_id": str(stage.id)}


async def lost_reason(world: World) -> dict[str, Any]:
    return {"lost_reason_id": str(world.records.lost_reason.id), "note": "Went with a competitor"}


async def companies_file(_world: World) -> Upload:
    return Upload(data={"entity": "company"}, files={"file": ("clients.csv", b"Name\r\nNew Company\r\n")})


async def share_company(world: World) -> dict[str, Any]:
    return {"entity": "company", "entity_id": str(world.records.company.id), "user_ids": [str(world.records.user.id)]}


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
    "organization-update": static({"settings": {"time_zone": "Europe/Madrid"}}),
    "custom-fields-create": new_field,
    "custom-fields-update": static({"label": "Renamed field"}),
    "companies-create": owned({"name": "New Company"}),
    "companies-update": static({"industry": "Logistics"}),
    "contacts-create": owned({"name": "New Contact"}),
    "contacts-update": static({"title": "Buyer"}),
    "deals-create": owned({"title": "New Deal"}),
    "deals-update": static({"amount_minor": 150000}),
    "deals-set-lines": static({"lines": [{"name": "Consulting day", "quantity": 2, "unit_price_minor": 80000}]}),
    "deals-move": another_open_stage,
    "deals-lose": lost_reason,
    "deals-reopen": static({}),
    "activities-create": owned({"kind": "note", "body": "Spoke about the renewal."}),
    "activities-update": static({"subject": "Renamed task"}),
    "activities-complete": static({}),
    "shares-create": share_company,
    "sync-push": static({"client_id": str(uuid.uuid4()), "mutations": []}),
    "goals-create": static(NEW_GOAL.model_dump(mode="json")),
    "goals-update": static({"name": "Renamed goal"}),
    "imports-upload": companies_file,
    "imports-set-mapping": static({"columns": {"Name": "name", "Website": "domain"}}),
    "imports-decide": static({"decisions": [], "defaults": {"owner": "reject"}}),
    "webhooks-create": static({"url": "https://93.184.216.34/new-hook", "events": ["deal.*"]}),
    "webhooks-update": static({"description": "ERP"}),
    "webhooks-rotate-secret": static({"overlap_hours": 1}),
    "segments-create": static({"name": "VIP", "filters": {"tag": ["vip"], "consent": "email"}}),
    "segments-update": static({"filters": {"tag": ["vip"], "has_open_deal": False}}),
}

# Values for each operation's required query parameters, from the records the call addresses.
QUERIES: dict[str, Callable[[Records], dict[str, str]]] = {
    "search-search": lambda r: {"q": r.company.name},
    "sync-pull": lambda _r: {"client_id": str(uuid.uuid4())},
    "shares-list": lambda r: {"entity": "company", "entity_id": str(r.company.id)},
}


def operations() -> dict[str, Operation]:
    """Every operation of the app by operationId, from its OpenAPI document. `body` holds the operation's OpenAPI
    requestBody (None when it takes none), and `query` its required query parameters, until a call puts real
    values in their place."""
    found: dict[str, Operation] = {}
    for path, item in api_paths().items():
        for method, operation in item.items():
            parameters = operation.get("parameters", [])
            params = tuple(p["name"] for p in parameters if p["in"] == "path")
            # Like `body`: the required query parameters' OpenAPI objects (None when there are none) until a call
            # puts real values in their place.
            query = {p["name"]: p for p in parameters if p["in"] == "query" and p.get("required")} or None
            found[operation["operationId"]] = Operation(
                method.upper(), path, params, operation.get("requestBody"), query
            )
    return found


@pytest.fixture
def db(savepoint_db: Database) -> Database:
    return savepoint_db


@pytest.fixture(scope="module")
async def made_world(module_connection: AsyncConnection) -> World:
    async with made_on(module_connection) as (session, client):
        return await make_world(session, client)


@pytest.fixture
def world(made_world: World, session: AsyncSession, client: httpx.AsyncClient) -> World:
    """The organisation made once for the module, seen through the test's own session and client."""
    return dataclasses.replace(made_world, session=session, client=client)


async def make_world(session: AsyncSession, client: httpx.AsyncClient) -> World:
    records = await _records(session, client, "Acme")
    org = records.tenant.org
    # The colleague the calls address, and sign in as: none of the callers, so no call can lock a caller out.
    target = await make_user(session, org, role=Role.rep)
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    for caller, role in ROLE_OF.items():
        # The records are the rep's; the manager is in the rep's team, so the rep is in the manager's charge.
        team = records.tenant.team if role is Role.manager else None
        user = records.tenant.rep if role is Role.rep else await make_user(session, org, role=role, team=team)
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


def test_every_operation_of_the_api_has_a_permission_decision() -> None:
    ops = operations()

    missing = sorted(ops.keys() - EXPECTED.keys())
    if missing:
        pytest.fail(
            f"operation(s) {missing} have no permission decision: add each to EXPECTED in tests/test_permissions.py "
            "with the set of callers allowed to call it"
        )
    assert not EXPECTED.keys() - ops.keys(), "EXPECTED names an operation that no longer exists"


def test_every_operation_can_be_called_with_valid_input() -> None:
    ops = operations()

    for op_id, op in sorted(ops.items()):
        if op.body is not None and op_id not in BODIES:
            pytest.fail(f"{op_id} takes a body: add a valid one to BODIES in tests/test_permissions.py")
        if op.query is not None and op_id not in QUERIES:
            pytest.fail(
                f"{op_id} has required query parameter(s) {sorted(op.query)}: add values to QUERIES in "
                "tests/test_permissions.py"
            )
        if op.method == "DELETE" and op_id not in FRESH:
            pytest.fail(
                f"{op_id} deletes: add a maker of a fresh record per call to FRESH in tests/test_permissions.py"
            )
        unknown = sorted(set(op.params) - ID_OF.keys())
        assert not unknown, f"{op_id} has path parameter(s) {unknown}: add them to ID_OF in test_tenant_isolation.py"
    assert BODIES.keys() <= {k for k, op in ops.items() if op.body is not None}, "BODIES names a stale operation"
    assert FRESH.keys() <= ops.keys(), "FRESH names an operation that no longer exists"
    assert QUERIES.keys() <= {k for k, op in ops.items() if op.query is not None}, "QUERIES names a stale operation"
    assert ops.keys() >= STREAMS, "STREAMS names an operation that no longer exists"


@pytest.mark.parametrize("op_id", sorted(EXPECTED))
async def test_each_caller_is_allowed_or_refused_as_the_table_says(
    session: AsyncSession, world: World, op_id: str
) -> None:
    op = operations().get(op_id)
    assert op is not None, f"{op_id} is in EXPECTED but not in the API any more"
    org_id = world.records.tenant.org.id

    failures: list[str] = []
    for caller in CALLERS:
        if op_id in STREAMS and caller in EXPECTED[op_id]:
            continue  # it would never answer: see STREAMS
        records = await FRESH.get(op_id, shared_records)(world)
        query = QUERIES[op_id](records) if op_id in QUERIES else None
        call = dataclasses.replace(op, body=await BODIES.get(op_id, no_body)(world), query=query)
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


# API keys and their scopes: the OpenAPI document names the scope each operation needs (`x-api-key-scope`); a key
# lacking it is refused, and a key holding only read scopes (what marketing tools get) writes nothing anywhere.

READ_SCOPES = tuple(s for s in SCOPES if s.endswith(":read"))


def key_scopes() -> dict[str, str | None]:
    return {
        op["operationId"]: op.get("x-api-key-scope")
        for item in api_paths().values()
        for op in item.values()
        if op.get("security")
    }


def test_the_documented_scope_is_the_one_keys_are_checked_against() -> None:
    scopes = key_scopes()
    for op_id, scope in scopes.items():
        assert scope is None or scope in SCOPES, f"{op_id} names an unknown scope {scope}"
        if "all_scopes_key" in EXPECTED[op_id]:
            assert scope is not None or "no_scope_key" in EXPECTED[op_id], f"{op_id} admits keys but names no scope"
        else:
            assert scope is None, f"{op_id} refuses keys but documents the `{scope}` scope"


async def _refused_as(world: World, op_id: str, headers: dict[str, str]) -> list[str]:
    op = operations()[op_id]
    records = await FRESH.get(op_id, shared_records)(world)
    query = QUERIES[op_id](records) if op_id in QUERIES else None
    call = dataclasses.replace(op, body=await BODIES.get(op_id, no_body)(world), query=query)
    org_id = world.records.tenant.org.id
    before = await versions(world.session, org_id)
    faults = refusal_faults(await call.call(world.client, records, headers), 403)
    if await versions(world.session, org_id) != before:
        faults.append("refused, yet changed the organisation's records or its change log")
    return [f"{op.method} {op.path}: {fault}" for fault in faults]


# One world for every operation (the calls take fresh records where they consume them): the refusals are cheap.


async def test_a_key_lacking_the_operations_scope_is_refused(world: World) -> None:
    failures = []
    for op_id, needed in sorted(key_scopes().items()):
        if needed is None:
            continue
        _, secret = await make_api_key(world.session, world.records.tenant.org, *(s for s in SCOPES if s != needed))
        failures += await _refused_as(world, op_id, bearer(secret))
    assert not failures, "\n".join(failures)


async def test_a_read_only_key_writes_nothing(world: World) -> None:
    _, secret = await make_api_key(world.session, world.records.tenant.org, *READ_SCOPES)
    failures = []
    for op_id, op in sorted(operations().items()):
        if op.method != "GET" and op_id in key_scopes():
            failures += await _refused_as(world, op_id, bearer(secret))
    assert not failures, "\n".join(failures)
