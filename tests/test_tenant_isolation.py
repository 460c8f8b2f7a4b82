"""One organisation can never see or touch another's records: every route that takes an id answers 404 for an id
of another organisation, and says nothing about it.

The matrix is built from the app's own OpenAPI document, so a new route with a path parameter is covered as soon as
it exists, or the suite fails until someone says how to get the other organisation's id for that parameter.
"""

import functools
import io
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import openpyxl
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlmodel import col, func, select

from api.activities.models import Activity
from api.auth.models import ApiKey, Organization, Team, User
from api.clients import service as clients
from api.clients.models import Company, Contact, ContactPoint, CustomField, FieldKind
from api.clients.schemas import CustomFieldCreate
from api.core.changes import Change
from api.core.db import Database
from api.core.ids import new_id
from api.core.models import live
from api.core.types import utcnow
from api.deals import service as deals
from api.deals.deals import win_deal
from api.deals.models import Deal, DealLine, DealStageEvent, LostReason, Pipeline, Product, Stage
from api.deals.schemas import ProductCreate
from api.feed.models import FeedEvent
from api.imports.models import ImportJob, ImportMapping
from api.insights import goals
from api.insights.models import Goal, GoalMetric
from api.insights.schemas import GoalCreate
from api.main import create_app
from api.marketing.models import Segment
from api.sharing.models import Share
from api.sync.push import KINDS
from api.webhooks.models import WebhookEndpoint, WebhookEvent
from tests.conftest import made_on
from tests.factories import (
    Tenant,
    make_activity,
    make_api_key,
    make_company,
    make_contact,
    make_deal,
    make_team,
    make_tenant,
    share_with,
    sign_in,
    system,
    viewer_of_user,
)


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
    # The CRM records, all owned by the tenant's rep: a company, a contact of it, a deal with both, a planned task
    # on the deal (so that completing and then reopening it both succeed), the company shared with the admin, and
    # a custom field of companies.
    company: Company
    contact: Contact
    deal: Deal
    activity: Activity
    share: Share
    custom_field: CustomField
    # A won deal of the rep (its story is the team's to learn from) and a goal.
    won_deal: Deal
    goal: Goal
    # An import of a companies file (uploaded and mapped, not run) and a saved column mapping.
    import_job: ImportJob
    import_mapping: ImportMapping
    # A webhook endpoint (to a public address no test reaches) and the ping it was sent.
    webhook: WebhookEndpoint
    webhook_event: WebhookEvent
    # A saved marketing segment.
    segment: Segment


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
    # A company: the client routes take a company's or a contact's id (contacts' routes are told apart in ID_AT).
    "client_id": lambda r: r.company.id,
    "deal_id": lambda r: r.deal.id,
    "activity_id": lambda r: r.activity.id,
    "field_id": lambda r: r.custom_field.id,
    "share_id": lambda r: r.share.id,
    "goal_id": lambda r: r.goal.id,
    "job_id": lambda r: r.import_job.id,
    "mapping_id": lambda r: r.import_mapping.id,
    "webhook_id": lambda r: r.webhook.id,
    "event_id": lambda r: r.webhook_event.id,
    "segment_id": lambda r: r.segment.id,
}

# Where one parameter names a different kind of record on some routes: (path prefix, parameter) -> id.
ID_AT: dict[tuple[str, str], Callable[[Records], uuid.UUID]] = {
    ("/api/v1/contacts/", "client_id"): lambda r: r.contact.id,
    ("/api/v1/insights/wins/", "deal_id"): lambda r: r.won_deal.id,
}


def id_of(path: str, name: str, records: Records) -> uuid.UUID:
    """The organisation's id for the path parameter `name` of the route `path`."""
    for (prefix, param), get in ID_AT.items():
        if param == name and path.startswith(prefix):
            return get(records)
    return ID_OF[name](records)


# A minimal valid body for each operation that takes one (keyed by method and path template); a function of the
# calling organisation's records when the body names one of them (so the control call on the caller's own record
# is a valid call, and the call on the other organisation's record differs from it only by the path's id).
BodyOf = dict[str, Any] | Callable[[Records], dict[str, Any]]
BODY_OF: dict[tuple[str, str], BodyOf] = {
    ("PATCH", "/api/v1/users/{user_id}"): {"name": "x"},
    ("PATCH", "/api/v1/teams/{team_id}"): {"name": "x"},
    ("PATCH", "/api/v1/pipelines/{pipeline_id}"): {"name": "x"},
    ("POST", "/api/v1/pipelines/{pipeline_id}/stages"): {"name": "x"},
    ("PATCH", "/api/v1/stages/{stage_id}"): {"name": "x"},
    ("PATCH", "/api/v1/products/{product_id}"): {"name": "x"},
    ("PATCH", "/api/v1/lost-reasons/{lost_reason_id}"): {"name": "x"},
    ("PATCH", "/api/v1/companies/{client_id}"): {"name": "x"},
    ("PATCH", "/api/v1/contacts/{client_id}"): {"name": "x"},
    ("PATCH", "/api/v1/custom-fields/{field_id}"): {"label": "x"},
    ("PATCH", "/api/v1/deals/{deal_id}"): {"title": "x"},
    ("PUT", "/api/v1/deals/{deal_id}/lines"): {"lines": [{"name": "x"}]},
    # To the stage the deal is in: a valid move that changes nothing.
    ("POST", "/api/v1/deals/{deal_id}/move"): lambda r: {"stage_id": str(r.deal.stage_id)},
    ("POST", "/api/v1/deals/{deal_id}/lose"): lambda r: {"lost_reason_id": str(r.lost_reason.id)},
    ("POST", "/api/v1/deals/{deal_id}/reopen"): {},
    ("PATCH", "/api/v1/activities/{activity_id}"): {"subject": "x"},
    ("POST", "/api/v1/activities/{activity_id}/complete"): {},
    ("PATCH", "/api/v1/goals/{goal_id}"): {"name": "x"},
    ("PUT", "/api/v1/imports/{job_id}/mapping"): {"columns": {"Name": "name"}},
    ("PUT", "/api/v1/imports/{job_id}/values"): {"decisions": [], "defaults": {}},
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): {"description": "x"},
    ("POST", "/api/v1/webhooks/{webhook_id}/rotate-secret"): {},
    ("PATCH", "/api/v1/segments/{segment_id}"): {"name": "x"},
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
    ("GET", "/api/v1/companies/{client_id}"),
    ("PATCH", "/api/v1/companies/{client_id}"),
    ("DELETE", "/api/v1/companies/{client_id}"),
    ("POST", "/api/v1/companies/{client_id}/restore"),
    ("GET", "/api/v1/contacts/{client_id}"),
    ("PATCH", "/api/v1/contacts/{client_id}"),
    ("DELETE", "/api/v1/contacts/{client_id}"),
    ("POST", "/api/v1/contacts/{client_id}/restore"),
    ("PATCH", "/api/v1/custom-fields/{field_id}"),
    ("DELETE", "/api/v1/custom-fields/{field_id}"),
    ("GET", "/api/v1/clients/{client_id}/card"),
    ("GET", "/api/v1/clients/{client_id}/timeline"),
    ("GET", "/api/v1/deals/{deal_id}"),
    ("PATCH", "/api/v1/deals/{deal_id}"),
    ("DELETE", "/api/v1/deals/{deal_id}"),
    ("PUT", "/api/v1/deals/{deal_id}/lines"),
    ("POST", "/api/v1/deals/{deal_id}/move"),
    ("POST", "/api/v1/deals/{deal_id}/win"),
    ("POST", "/api/v1/deals/{deal_id}/lose"),
    ("POST", "/api/v1/deals/{deal_id}/reopen"),
    ("POST", "/api/v1/deals/{deal_id}/restore"),
    ("GET", "/api/v1/deals/{deal_id}/timeline"),
    ("GET", "/api/v1/activities/{activity_id}"),
    ("PATCH", "/api/v1/activities/{activity_id}"),
    ("DELETE", "/api/v1/activities/{activity_id}"),
    ("POST", "/api/v1/activities/{activity_id}/complete"),
    ("POST", "/api/v1/activities/{activity_id}/reopen"),
    ("DELETE", "/api/v1/shares/{share_id}"),
    ("GET", "/api/v1/insights/wins/{deal_id}"),
    ("GET", "/api/v1/goals/{goal_id}"),
    ("PATCH", "/api/v1/goals/{goal_id}"),
    ("DELETE", "/api/v1/goals/{goal_id}"),
    ("DELETE", "/api/v1/imports/mappings/{mapping_id}"),
    ("GET", "/api/v1/imports/{job_id}"),
    ("DELETE", "/api/v1/imports/{job_id}"),
    ("PUT", "/api/v1/imports/{job_id}/mapping"),
    ("GET", "/api/v1/imports/{job_id}/values"),
    ("PUT", "/api/v1/imports/{job_id}/values"),
    ("POST", "/api/v1/webhooks/{webhook_id}/events/{event_id}/redeliver"),
    ("GET", "/api/v1/segments/{segment_id}"),
    ("PATCH", "/api/v1/segments/{segment_id}"),
    ("DELETE", "/api/v1/segments/{segment_id}"),
    ("POST", "/api/v1/imports/{job_id}/preview"),
    ("POST", "/api/v1/imports/{job_id}/commit"),
    ("POST", "/api/v1/imports/{job_id}/undo"),
    ("GET", "/api/v1/imports/{job_id}/rows"),
    ("GET", "/api/v1/imports/{job_id}/report"),
}

_PARAM = re.compile(r"{(\w+)}")
_METHOD_ORDER = {"GET": 0, "POST": 1, "PATCH": 2, "PUT": 3, "DELETE": 4}


@dataclass(frozen=True)
class Upload:
    """A multipart body, for a route that takes a file (and form fields) rather than JSON."""

    data: dict[str, str]
    files: dict[str, tuple[str, bytes]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    params: tuple[str, ...]
    body: dict[str, Any] | Upload | None
    # Query parameters to send (None: none).
    query: dict[str, Any] | None = None

    def url(self, records: Records) -> str:
        return self.path.format(**{name: id_of(self.path, name, records) for name in self.params})

    async def call(self, client: httpx.AsyncClient, records: Records, headers: dict[str, str]) -> httpx.Response:
        if isinstance(self.body, Upload):
            return await client.request(
                self.method,
                self.url(records),
                data=self.body.data,
                files=self.body.files,
                params=self.query,
                headers=headers,
            )
        return await client.request(self.method, self.url(records), json=self.body, params=self.query, headers=headers)


def _call_order(ops: list[Operation]) -> list[Operation]:
    """Reads, then writes, then deletes, then restores, so that every same-organisation control call finds the
    record it addresses: deletes come last, in reverse route order (a share goes before the client it is on, an
    activity before its deal), and restores after them (they need a deleted record, and put it back)."""

    def key(indexed: tuple[int, Operation]) -> tuple[int, int]:
        index, op = indexed
        if op.method == "POST" and op.path.endswith("/restore"):
            return 6, index
        if op.method == "DELETE":
            return 5, -index
        return _METHOD_ORDER.get(op.method, 9), index

    return [op for _, op in sorted(enumerate(ops), key=key)]


@functools.cache
def api_paths() -> dict[str, Any]:
    """The `paths` of the app's OpenAPI document. Made once per test process: the routes do not depend on the
    database, and building the document takes over a second (once per test, it was most of the suites' time)."""
    paths: dict[str, Any] = create_app().openapi()["paths"]
    return paths


def operations_with_ids(caller: Records | None = None) -> list[Operation]:
    """Every operation of the app whose path has a parameter, in call order; fails on a parameter or body it cannot
    fill. Bodies that name records are made from `caller`'s (left out when there is no caller)."""
    found: list[Operation] = []
    for path, item in api_paths().items():
        params = tuple(_PARAM.findall(path))
        if not params:
            continue
        unknown = sorted(set(params) - ID_OF.keys())
        if unknown:
            pytest.fail(
                f"{path} has path parameter(s) {unknown} with no tenant-isolation coverage: "
                "add them to ID_OF in tests/test_tenant_isolation.py"
            )
        for method, operation in item.items():
            body = BODY_OF.get((method.upper(), path))
            if "requestBody" in operation and body is None:
                pytest.fail(
                    f"{method.upper()} {path} takes a body and has no tenant-isolation coverage: "
                    "add a minimal valid body to BODY_OF in tests/test_tenant_isolation.py"
                )
            if callable(body):
                body = body(caller) if caller is not None else None
            found.append(Operation(method.upper(), path, params, body))
    return _call_order(found)


async def _first_audit_id(client: httpx.AsyncClient, tenant: Tenant) -> uuid.UUID:
    response = await client.get("/api/v1/audit", params={"limit": 1}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return uuid.UUID(response.json()["items"][0]["id"])


async def upload_import(session: AsyncSession, client: httpx.AsyncClient, tenant: Tenant, name: str) -> ImportJob:
    """An import of a one-row companies file, uploaded by the tenant's admin (and so mapped as its headers say)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    content = f"Name,Website\r\n{name} Imported Co,{slug}-imported.example\r\n".encode()
    response = await client.post(
        "/api/v1/imports",
        files={"file": (f"{slug}-clients.csv", content)},
        data={"entity": "company"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    job = await session.get(ImportJob, uuid.UUID(response.json()["id"]))
    assert job is not None
    return job


async def save_import_mapping(
    session: AsyncSession, client: httpx.AsyncClient, tenant: Tenant, job: ImportJob, name: str
) -> ImportMapping:
    """The job's column mapping, saved under `name` as the admin saves one."""
    body = {"columns": {"Name": "name", "Website": "domain"}, "save_as": name}
    response = await client.put(f"/api/v1/imports/{job.id}/mapping", json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text
    stmt = live(ImportMapping, tenant.org.id).where(col(ImportMapping.name) == name)
    return (await session.scalars(stmt)).one()


async def subscribe_webhook(
    session: AsyncSession, client: httpx.AsyncClient, tenant: Tenant, name: str
) -> tuple[WebhookEndpoint, WebhookEvent]:
    url = f"https://93.184.216.34/{re.sub(r'[^a-z0-9]+', '-', name.lower())}-hook"
    # Made by an integration's key that reads clients, deals and activities: admins and any key that reads as much
    # manage it (a key never manages what an admin subscribed).
    _, secret = await make_api_key(
        session, tenant.org, "webhooks:manage", "clients:read", "deals:read", "activities:read"
    )
    key = {"Authorization": f"Bearer {secret}"}
    made = await client.post("/api/v1/webhooks", json={"url": url, "events": ["*"]}, headers=key)
    assert made.status_code == 201, made.text
    ping = await client.post(f"/api/v1/webhooks/{made.json()['id']}/ping", headers=tenant.headers)
    assert ping.status_code == 202, ping.text
    endpoint = await session.get(WebhookEndpoint, uuid.UUID(made.json()["id"]))
    event = await session.get(WebhookEvent, uuid.UUID(ping.json()["event_id"]))
    assert endpoint is not None and event is not None
    return endpoint, event


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
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    rep = tenant.rep
    company = await make_company(session, rep, name=f"{name} Client Co", domain=f"{slug.replace('_', '-')}.example")
    contact = await make_contact(
        session, rep, name=f"{name} Buyer", company_id=company.id, emails=[f"buyer@{slug.replace('_', '-')}.example"]
    )
    deal = await make_deal(session, rep, title=f"{name} Fleet Deal", company_id=company.id, contact_id=contact.id)
    activity = await make_activity(
        session, rep, kind="task", subject=f"{name} follow-up", deal_id=deal.id, due_at=utcnow() + timedelta(days=1)
    )
    await share_with(session, rep, "company", company.id, tenant.admin)
    share = (await session.scalars(live(Share, org_id).where(col(Share.entity_id) == company.id))).one()
    field = await clients.create_custom_field(
        session=session,
        principal=system(tenant.org),
        data=CustomFieldCreate(entity="company", key=f"{slug}_tier", label=f"{name} Tier", kind=FieldKind.text),
    )
    won_deal = await make_deal(session, rep, title=f"{name} Won Deal", company_id=company.id)
    await win_deal(
        session=session, viewer=await viewer_of_user(session, rep), deal_id=won_deal.id, expected_version=None
    )
    goal = await goals.create_goal(
        session=session,
        principal=system(tenant.org),
        data=GoalCreate(
            name=f"{name} Calls",
            metric=GoalMetric.calls,
            target=50,
            starts_on=date(2026, 1, 1),
            ends_on=date(2026, 12, 31),
        ),
    )
    await session.commit()
    import_job = await upload_import(session, client, tenant, name)
    import_mapping = await save_import_mapping(session, client, tenant, import_job, f"{name} Mapping")
    webhook, webhook_event = await subscribe_webhook(session, client, tenant, name)
    made = await client.post(
        "/api/v1/segments", json={"name": f"{name} Segment", "filters": {"tag": ["vip"]}}, headers=tenant.headers
    )
    assert made.status_code == 201, made.text
    segment = await session.get(Segment, uuid.UUID(made.json()["id"]))
    assert segment is not None
    return Records(
        tenant,
        rep,
        team,
        tenant.key,
        audit_id,
        pipeline,
        won,
        product,
        reason,
        company,
        contact,
        deal,
        activity,
        share,
        field,
        won_deal,
        goal,
        import_job,
        import_mapping,
        webhook,
        webhook_event,
        segment,
    )


@pytest.fixture(scope="module")
async def made_orgs(module_connection: AsyncConnection) -> tuple[Records, Records]:
    async with made_on(module_connection) as (session, client):
        return await _records(session, client, "Alpha Ltd"), await _records(session, client, "Bravo Corp")


@pytest.fixture
def db(savepoint_db: Database) -> Database:
    return savepoint_db


@pytest.fixture
async def orgs(made_orgs: tuple[Records, Records], db: Database) -> tuple[Records, Records]:
    """Organisation A (the caller) and organisation B (the target), as they were made (`db`'s savepoint undoes what
    the test before did to them)."""
    return made_orgs


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
        b.company.id,
        b.company.name,
        b.company.domain,
        b.contact.id,
        b.contact.name,
        *b.contact.emails,
        b.deal.id,
        b.deal.title,
        b.activity.id,
        b.activity.subject,
        b.share.id,
        b.custom_field.id,
        b.custom_field.key,
        b.custom_field.label,
        b.won_deal.id,
        b.won_deal.title,
        b.goal.id,
        b.goal.name,
        b.import_job.id,
        b.import_job.file_name,
        b.import_mapping.id,
        b.import_mapping.name,
        b.webhook.id,
        b.webhook.url,
        b.webhook_event.id,
        b.segment.id,
        b.segment.name,
    ]
    return [str(v) for v in values]


def assert_mentions_none(response: httpx.Response, secrets: list[str]) -> None:
    leaked = [s for s in secrets if s.lower() in response.text.lower()]
    assert not leaked, f"{response.request.method} {response.request.url} leaked {leaked}: {response.text}"


async def versions(session: AsyncSession, org_id: uuid.UUID) -> dict[str, Any]:
    """The state of an organisation's records as the database has it (not as the session remembers it)."""
    state: dict[str, Any] = {}
    for model in (
        User,
        Team,
        ApiKey,
        Pipeline,
        Stage,
        Product,
        LostReason,
        Company,
        Contact,
        ContactPoint,
        CustomField,
        Deal,
        DealLine,
        DealStageEvent,
        Activity,
        Share,
        Goal,
        ImportJob,
        ImportMapping,
        WebhookEndpoint,
        Segment,
    ):
        rows = await session.execute(
            select(model.id, model.version, model.deleted_at).where(col(model.org_id) == org_id)
        )
        state.update({f"{model.__tablename__}:{r.id}": (r.version, r.deleted_at) for r in rows})
    state["organization"] = await session.scalar(select(Organization.version).where(col(Organization.id) == org_id))
    state["changes"] = await session.scalar(select(func.count()).where(col(Change.org_id) == org_id))
    state["feed_events"] = await session.scalar(select(func.count()).where(col(FeedEvent.org_id) == org_id))
    events = select(func.count(), func.max(WebhookEvent.next_attempt_at)).where(col(WebhookEvent.org_id) == org_id)
    state["webhook_events"] = tuple((await session.execute(events)).one())
    return state


# The matrix


def test_every_path_parameter_of_the_api_has_a_way_to_get_another_orgs_id() -> None:
    ops = operations_with_ids()

    assert {p for op in ops for p in op.params} == ID_OF.keys(), "ID_OF lists a parameter no route has any more"
    assert {(op.method, op.path) for op in ops} >= BODY_OF.keys(), "BODY_OF names an operation that no longer exists"


async def test_every_route_with_an_id_answers_404_for_another_orgs_record_and_leaks_nothing(
    session: AsyncSession, client: httpx.AsyncClient, orgs: tuple[Records, Records]
) -> None:
    a, b = orgs
    # Bodies name A's records: the call on B's id differs from A's own control call only by that id.
    ops = operations_with_ids(caller=a)
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


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/users",
        "/api/v1/teams",
        "/api/v1/api-keys",
        "/api/v1/companies",
        "/api/v1/contacts",
        "/api/v1/custom-fields",
        "/api/v1/deals",
        "/api/v1/activities",
        "/api/v1/feed",
        "/api/v1/goals",
        "/api/v1/imports",
        "/api/v1/segments",
        "/api/v1/client-cards",
    ],
)
async def test_lists_show_none_of_another_orgs_records(
    client: httpx.AsyncClient, orgs: tuple[Records, Records], path: str
) -> None:
    a, b = orgs

    response = await client.get(path, params={"limit": 200}, headers=a.tenant.headers)

    assert response.status_code == 200, response.text
    listed = {item["id"] for item in response.json()["items"]}
    assert listed, "A's own records are listed"
    assert_mentions_none(response, secrets_of(b))


def exported_text(response: httpx.Response) -> str:
    """An export's cells as text, whichever its format (an XLSX file is a zip: its bytes would hide any leak)."""
    if not response.headers["content-type"].startswith("application/vnd.openxmlformats"):
        return response.text
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    assert sheet is not None
    return "\n".join("\t".join(str(v) for v in row) for row in sheet.iter_rows(values_only=True))


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
@pytest.mark.parametrize(
    ("entity", "shows"),
    [
        ("companies", lambda r: r.company.id),
        ("contacts", lambda r: r.contact.id),
        ("deals", lambda r: r.deal.id),
        ("activities", lambda r: r.activity.id),
    ],
)
async def test_exports_hold_none_of_another_orgs_records(
    client: httpx.AsyncClient,
    orgs: tuple[Records, Records],
    entity: str,
    shows: Callable[[Records], uuid.UUID],
    file_format: str,
) -> None:
    a, b = orgs

    response = await client.get(f"/api/v1/exports/{entity}", params={"format": file_format}, headers=a.tenant.headers)

    assert response.status_code == 200, response.text
    text = exported_text(response)
    assert str(shows(a)) in text, "A's own records are exported"
    leaked = [s for s in secrets_of(b) if s.lower() in text.lower()]
    assert not leaked, f"the {entity} export leaked {leaked}"


@pytest.mark.parametrize(
    ("path", "shows"), [("/api/v1/deals/board", lambda r: r.deal.id), ("/api/v1/me/agenda", lambda r: r.activity.id)]
)
async def test_views_show_none_of_another_orgs_records(
    client: httpx.AsyncClient, orgs: tuple[Records, Records], path: str, shows: Callable[[Records], uuid.UUID]
) -> None:
    a, b = orgs
    # As A's rep: the deal and the task are theirs, so the views are not empty.
    response = await client.get(path, headers=await sign_in(client, a.tenant.rep))

    assert response.status_code == 200, response.text
    assert str(shows(a)) in response.text, "A's own record is shown"
    assert_mentions_none(response, secrets_of(b))


async def test_deleted_records_list_none_of_another_orgs(
    client: httpx.AsyncClient, orgs: tuple[Records, Records]
) -> None:
    a, b = orgs
    deleted = await client.delete(f"/api/v1/companies/{b.company.id}", headers=b.tenant.headers)
    assert deleted.status_code == 204, deleted.text

    response = await client.get("/api/v1/companies", params={"deleted": "true"}, headers=a.tenant.headers)
    own = await client.get("/api/v1/companies", params={"deleted": "true"}, headers=b.tenant.headers)

    assert response.status_code == 200, response.text
    assert response.json()["items"] == []
    assert_mentions_none(response, secrets_of(b))
    assert [c["id"] for c in own.json()["items"]] == [str(b.company.id)], "B's bin does hold the company"


INSIGHTS = (
    "funnel",
    "leaderboard",
    "playbook",
    "retention",
    "discipline",
    "data-quality",
    "adoption",
    "diagnosis",
    "diagnosis/print",
)


@pytest.mark.parametrize("view", INSIGHTS)
async def test_insights_count_none_of_another_orgs_records(
    client: httpx.AsyncClient, orgs: tuple[Records, Records], view: str
) -> None:
    a, b = orgs

    response = await client.get(f"/api/v1/insights/{view}", headers=a.tenant.headers)

    assert response.status_code == 200, response.text
    assert_mentions_none(response, secrets_of(b))
    if view in ("leaderboard", "discipline", "adoption", "data-quality"):
        assert a.tenant.rep.name in response.text, "A's own people are counted"


# Query parameters naming another organisation's record: answered as for an id that exists nowhere.
FILTERS: list[tuple[str, str, Callable[[Records], Any]]] = [
    ("/api/v1/companies", "owner_id", lambda r: r.tenant.rep.id),
    ("/api/v1/contacts", "company_id", lambda r: r.company.id),
    ("/api/v1/contacts", "owner_id", lambda r: r.tenant.rep.id),
    ("/api/v1/deals", "company_id", lambda r: r.company.id),
    ("/api/v1/deals", "contact_id", lambda r: r.contact.id),
    ("/api/v1/deals", "pipeline_id", lambda r: r.pipeline.id),
    ("/api/v1/deals", "stage_id", lambda r: r.deal.stage_id),
    ("/api/v1/deals", "owner_id", lambda r: r.tenant.rep.id),
    ("/api/v1/deals/board", "pipeline_id", lambda r: r.pipeline.id),
    ("/api/v1/deals/board", "owner_id", lambda r: r.tenant.rep.id),
    ("/api/v1/activities", "company_id", lambda r: r.company.id),
    ("/api/v1/activities", "contact_id", lambda r: r.contact.id),
    ("/api/v1/activities", "deal_id", lambda r: r.deal.id),
    ("/api/v1/activities", "assignee_id", lambda r: r.tenant.rep.id),
    ("/api/v1/client-cards", "segment_id", lambda r: r.segment.id),
    ("/api/v1/client-cards/export", "segment_id", lambda r: r.segment.id),
    *(
        (f"/api/v1/insights/{view}", name, get)
        for view in INSIGHTS
        for name, get in (
            ("team_id", lambda r: r.team.id),
            ("user_id", lambda r: r.tenant.rep.id),
            ("pipeline_id", lambda r: r.pipeline.id),
        )
    ),
]


@pytest.mark.parametrize(("path", "name", "id_of_b"), FILTERS, ids=[f"{p}?{n}" for p, n, _ in FILTERS])
async def test_filters_by_another_orgs_record_answer_as_for_no_record(
    client: httpx.AsyncClient, orgs: tuple[Records, Records], path: str, name: str, id_of_b: Callable[[Records], Any]
) -> None:
    a, b = orgs

    response = await client.get(path, params={name: str(id_of_b(b))}, headers=a.tenant.headers)
    nowhere = await client.get(path, params={name: str(uuid.uuid4())}, headers=a.tenant.headers)
    own = await client.get(path, params={name: str(id_of_b(b))}, headers=b.tenant.headers)

    assert response.status_code == nowhere.status_code, f"{response.text} / {nowhere.text}"
    assert_mentions_none(response, secrets_of(b))
    if response.status_code == 200 and "items" in response.json():
        assert response.json()["items"] == []
    assert own.status_code == 200, own.text


# The list filters that name a record, on the export of the same records.
EXPORT_FILTERS = [
    (path.replace("/api/v1/", "/api/v1/exports/"), name, get)
    for path, name, get in FILTERS
    if path in ("/api/v1/companies", "/api/v1/contacts", "/api/v1/deals", "/api/v1/activities")
]


@pytest.mark.parametrize(("path", "name", "id_of_b"), EXPORT_FILTERS, ids=[f"{p}?{n}" for p, n, _ in EXPORT_FILTERS])
async def test_exports_filtered_by_another_orgs_record_hold_nothing(
    client: httpx.AsyncClient, orgs: tuple[Records, Records], path: str, name: str, id_of_b: Callable[[Records], Any]
) -> None:
    a, b = orgs
    params = {name: str(id_of_b(b))}

    response = await client.get(path, params=params, headers=a.tenant.headers)
    own = await client.get(path, params=params, headers=b.tenant.headers)

    assert response.status_code == 200, response.text
    assert len(response.text.strip().splitlines()) == 1, f"only the header row: {response.text}"
    assert_mentions_none(response, secrets_of(b))
    assert own.status_code == 200 and len(own.text.strip().splitlines()) > 1, own.text


async def test_shares_of_another_orgs_record_are_404(client: httpx.AsyncClient, orgs: tuple[Records, Records]) -> None:
    a, b = orgs
    params = {"entity": "company", "entity_id": str(b.company.id)}

    response = await client.get("/api/v1/shares", params=params, headers=a.tenant.headers)
    own = await client.get("/api/v1/shares", params=params, headers=b.tenant.headers)

    assert response.status_code == 404, response.text
    assert_mentions_none(response, secrets_of(b))
    assert [s["id"] for s in own.json()["items"]] == [str(b.share.id)], own.text


@pytest.mark.parametrize("entity", ["company", "contact", "deal"])
async def test_sharing_another_orgs_record_is_404_and_changes_nothing(
    session: AsyncSession, client: httpx.AsyncClient, orgs: tuple[Records, Records], entity: str
) -> None:
    a, b = orgs
    record = {"company": b.company, "contact": b.contact, "deal": b.deal}[entity]
    before = await versions(session, b.tenant.org.id)

    response = await client.post(
        "/api/v1/shares",
        json={"entity": entity, "entity_id": str(record.id), "user_ids": [str(a.user.id)]},
        headers=a.tenant.headers,
    )

    assert response.status_code == 404, response.text
    assert_mentions_none(response, secrets_of(b))
    assert await versions(session, b.tenant.org.id) == before


@pytest.mark.parametrize("view", ["card", "timeline"])
async def test_another_orgs_contact_card_is_404(
    client: httpx.AsyncClient, orgs: tuple[Records, Records], view: str
) -> None:
    """The matrix addresses /clients/{client_id} with a company's id; a contact's goes through it too."""
    a, b = orgs

    response = await client.get(f"/api/v1/clients/{b.contact.id}/{view}", headers=a.tenant.headers)
    own = await client.get(f"/api/v1/clients/{a.contact.id}/{view}", headers=a.tenant.headers)

    assert response.status_code == 404, response.text
    assert_mentions_none(response, secrets_of(b))
    assert own.status_code == 200, own.text


@pytest.mark.parametrize(
    "path", ["/api/v1/companies/{}/restore", "/api/v1/contacts/{}/restore", "/api/v1/deals/{}/restore"]
)
async def test_another_orgs_deleted_record_cannot_be_restored(
    session: AsyncSession, client: httpx.AsyncClient, orgs: tuple[Records, Records], path: str
) -> None:
    """The matrix restores B's live records; this one is in B's bin, so only isolation can stop A."""
    a, b = orgs
    record = {"companies": b.company, "contacts": b.contact, "deals": b.deal}[path.split("/")[3]]
    deleted = await client.delete(path.removesuffix("/restore").format(record.id), headers=b.tenant.headers)
    assert deleted.status_code == 204, deleted.text
    before = await versions(session, b.tenant.org.id)

    response = await client.post(path.format(record.id), headers=a.tenant.headers)

    assert response.status_code == 404, response.text
    assert_mentions_none(response, secrets_of(b))
    assert await versions(session, b.tenant.org.id) == before
    assert (await client.post(path.format(record.id), headers=b.tenant.headers)).status_code == 200


@pytest.mark.parametrize(
    "q",
    [
        lambda r: r.company.name,
        lambda r: r.contact.name,
        lambda r: r.deal.title,
        lambda r: r.contact.emails[0],
        lambda r: r.company.domain,
    ],
    ids=["company name", "contact name", "deal title", "contact e-mail", "company domain"],
)
async def test_search_finds_none_of_another_orgs_records(
    client: httpx.AsyncClient, orgs: tuple[Records, Records], q: Callable[[Records], str]
) -> None:
    a, b = orgs
    params = {"q": q(b)}

    response = await client.get("/api/v1/search", params=params, headers=a.tenant.headers)
    own = await client.get("/api/v1/search", params=params, headers=b.tenant.headers)

    assert response.status_code == 200, response.text
    # Typos are forgiven, so A's own look-alikes may come up ("Alpha Ltd Client Co" for "Bravo Corp Client Co").
    assert {hit["id"] for hit in response.json()["items"]} <= {str(r.id) for r in (a.company, a.contact, a.deal)}
    assert_mentions_none(response, secrets_of(b))
    assert own.json()["items"], f"the search term does find B's record for B: {own.text}"


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
        ("POST", "/api/v1/companies", {"name": "N", "owner_id": "{user}"}, "owner_id"),
        ("PATCH", "/api/v1/companies/{own_company}", {"owner_id": "{user}"}, "owner_id"),
        ("POST", "/api/v1/contacts", {"name": "N", "company_id": "{company}"}, "company_id"),
        ("PATCH", "/api/v1/contacts/{own_contact}", {"company_id": "{company}"}, "company_id"),
        ("POST", "/api/v1/deals", {"title": "T", "company_id": "{company}"}, "company_id"),
        ("POST", "/api/v1/deals", {"title": "T", "contact_id": "{contact}"}, "contact_id"),
        ("POST", "/api/v1/deals", {"title": "T", "previous_deal_id": "{deal}"}, "previous_deal_id"),
        ("POST", "/api/v1/deals", {"title": "T", "pipeline_id": "{pipeline}"}, "pipeline_id"),
        ("POST", "/api/v1/deals", {"title": "T", "owner_id": "{user}"}, "owner_id"),
        ("POST", "/api/v1/deals", {"title": "T", "lines": [{"product_id": "{product}"}]}, "lines/0/product_id"),
        ("PATCH", "/api/v1/deals/{own_deal}", {"company_id": "{company}"}, "company_id"),
        ("PATCH", "/api/v1/deals/{own_deal}", {"owner_id": "{user}"}, "owner_id"),
        ("PUT", "/api/v1/deals/{own_deal}/lines", {"lines": [{"product_id": "{product}"}]}, "lines/0/product_id"),
        ("POST", "/api/v1/deals/{own_deal}/move", {"stage_id": "{open_stage}"}, "stage_id"),
        ("POST", "/api/v1/deals/{own_deal}/lose", {"lost_reason_id": "{lost_reason}"}, "lost_reason_id"),
        ("POST", "/api/v1/activities", {"kind": "note", "deal_id": "{deal}"}, "deal_id"),
        ("POST", "/api/v1/activities", {"kind": "note", "company_id": "{company}"}, "company_id"),
        ("POST", "/api/v1/activities", {"kind": "note", "contact_id": "{contact}"}, "contact_id"),
        ("POST", "/api/v1/activities", {"kind": "note", "owner_id": "{user}"}, "owner_id"),
        ("POST", "/api/v1/activities", {"kind": "note", "assignee_id": "{user}"}, "assignee_id"),
        ("POST", "/api/v1/activities", {"kind": "note", "mentioned_ids": ["{user}"]}, "mentioned_ids/0"),
        (
            "POST",
            "/api/v1/activities",
            {"kind": "note", "next_step": {"due_at": "2030-01-01T09:00:00Z", "assignee_id": "{user}"}},
            "next_step/assignee_id",
        ),
        ("PATCH", "/api/v1/activities/{own_activity}", {"deal_id": "{deal}"}, "deal_id"),
        ("PATCH", "/api/v1/activities/{own_activity}", {"assignee_id": "{user}"}, "assignee_id"),
        (
            "POST",
            "/api/v1/activities/{own_activity}/complete",
            {"next_step": {"due_at": "2030-01-01T09:00:00Z", "assignee_id": "{user}"}},
            "next_step/assignee_id",
        ),
        (
            "POST",
            "/api/v1/shares",
            {"entity": "company", "entity_id": "{own_company}", "user_ids": ["{user}"]},
            "user_ids/0",
        ),
    ],
)
async def test_references_to_another_orgs_records_are_refused(
    session: AsyncSession,
    client: httpx.AsyncClient,
    orgs: tuple[Records, Records],
    method: str,
    path: str,
    payload: dict[str, Any],
    pointer: str,
) -> None:
    a, b = orgs
    ids = await references(session, a, b)
    before = await versions(session, a.tenant.org.id)

    response = await client.request(method, path.format(**ids), json=_filled(payload, ids), headers=a.tenant.headers)

    assert response.status_code == 422, response.text
    assert f"#/{pointer}" in [e.get("pointer") for e in response.json()["errors"]]
    assert_mentions_none(response, secrets_of(b))
    assert await versions(session, a.tenant.org.id) == before


async def references(session: AsyncSession, a: Records, b: Records) -> dict[str, str]:
    """B's records (by kind) and A's own ("own_" + kind), to fill a body that names them."""
    open_stage = (await session.scalars(live(Stage, b.tenant.org.id).where(col(Stage.id) == b.deal.stage_id))).one()
    return {
        "team": str(b.team.id),
        "user": str(b.user.id),
        "company": str(b.company.id),
        "contact": str(b.contact.id),
        "deal": str(b.deal.id),
        "pipeline": str(b.pipeline.id),
        "open_stage": str(open_stage.id),
        "product": str(b.product.id),
        "lost_reason": str(b.lost_reason.id),
        "own_user": str(a.user.id),
        "own_team": str(a.team.id),
        "own_pipeline": str(a.pipeline.id),
        "own_company": str(a.company.id),
        "own_contact": str(a.contact.id),
        "own_deal": str(a.deal.id),
        "own_activity": str(a.activity.id),
        "own_lost_reason": str(a.lost_reason.id),
        "activity": str(b.activity.id),
        "new": str(new_id()),
    }


def _filled(value: Any, ids: dict[str, str]) -> Any:
    """`value` with every "{name}" in its strings replaced by that id."""
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [_filled(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _filled(v, ids) for k, v in value.items()}
    return value


# Sync: a phone's mutations name records as the REST bodies do. Each mutation, naming B's records: one that addresses
# a record of B's is 404 (as for a record that does not exist), one that refers to one is 422 on that field.
SYNC_REFERENCES: list[tuple[str, dict[str, Any], int, str | None]] = [
    ("company.create", {"id": "{new}", "name": "N", "owner_id": "{user}"}, 422, "owner_id"),
    ("company.update", {"id": "{company}", "name": "Hijacked"}, 404, None),
    ("company.update", {"id": "{own_company}", "owner_id": "{user}"}, 422, "owner_id"),
    ("contact.create", {"id": "{new}", "name": "N", "company_id": "{company}"}, 422, "company_id"),
    ("contact.update", {"id": "{contact}", "title": "Hijacked"}, 404, None),
    ("contact.update", {"id": "{own_contact}", "company_id": "{company}"}, 422, "company_id"),
    ("deal.create", {"id": "{new}", "title": "T", "company_id": "{company}"}, 422, "company_id"),
    ("deal.create", {"id": "{new}", "title": "T", "pipeline_id": "{pipeline}"}, 422, "pipeline_id"),
    ("deal.update", {"id": "{deal}", "title": "Hijacked"}, 404, None),
    ("deal.update", {"id": "{own_deal}", "contact_id": "{contact}"}, 422, "contact_id"),
    ("deal.move", {"id": "{deal}", "stage_id": "{open_stage}"}, 404, None),
    ("deal.move", {"id": "{own_deal}", "stage_id": "{open_stage}"}, 422, "stage_id"),
    ("deal.win", {"id": "{deal}"}, 404, None),
    ("deal.lose", {"id": "{deal}", "lost_reason_id": "{own_lost_reason}"}, 404, None),
    ("deal.lose", {"id": "{own_deal}", "lost_reason_id": "{lost_reason}"}, 422, "lost_reason_id"),
    ("activity.log", {"id": "{new}", "kind": "call", "deal_id": "{deal}"}, 422, "deal_id"),
    ("activity.log", {"id": "{new}", "kind": "note", "mentioned_ids": ["{user}"]}, 422, "mentioned_ids/0"),
    (
        "task.create",
        {"id": "{new}", "subject": "S", "due_at": "2030-01-01T09:00:00Z", "assignee_id": "{user}"},
        422,
        "assignee_id",
    ),
    ("task.complete", {"id": "{activity}"}, 404, None),
    ("share.create", {"entity": "company", "entity_id": "{company}", "user_ids": ["{own_user}"]}, 404, None),
    ("share.create", {"entity": "company", "entity_id": "{own_company}", "user_ids": ["{user}"]}, 422, "user_ids/0"),
]


def test_every_sync_mutation_is_tried_with_another_orgs_records() -> None:
    assert {name for name, *_ in SYNC_REFERENCES} == KINDS.keys()


async def test_sync_mutations_naming_another_orgs_records_are_rejected_and_change_nothing(
    session: AsyncSession, client: httpx.AsyncClient, orgs: tuple[Records, Records]
) -> None:
    a, b = orgs
    ids = await references(session, a, b)
    mutations = [
        {"id": number, "name": name, "args": _filled(args, ids)}
        for number, (name, args, _status, _pointer) in enumerate(SYNC_REFERENCES, start=1)
    ]
    before = [await versions(session, org.tenant.org.id) for org in orgs]

    response = await client.post(
        "/api/v1/sync/push",
        json={"client_id": str(uuid.uuid4()), "mutations": mutations},
        headers=await sign_in(client, a.tenant.admin),
    )

    assert response.status_code == 200, response.text
    assert_mentions_none(response, secrets_of(b))
    for (name, _args, status, pointer), result in zip(SYNC_REFERENCES, response.json()["results"], strict=True):
        assert result["status"] == "rejected", (name, result)
        assert result["problem"]["status"] == status, (name, result)
        if pointer is not None:
            assert f"#/{pointer}" in [e.get("pointer") for e in result["problem"]["errors"]], (name, result)
    assert [await versions(session, org.tenant.org.id) for org in orgs] == before


async def test_a_sync_pull_holds_none_of_another_orgs_records(
    client: httpx.AsyncClient, orgs: tuple[Records, Records]
) -> None:
    a, b = orgs
    headers = await sign_in(client, a.tenant.admin)
    params: dict[str, str] = {"client_id": str(uuid.uuid4())}
    pages = []
    while True:
        page = await client.get("/api/v1/sync/pull", params=params, headers=headers)
        assert page.status_code == 200, page.text
        assert_mentions_none(page, secrets_of(b))
        pages.append(page.text)
        if not page.json()["has_more"]:
            break
        params["cursor"] = page.json()["cursor"]
    assert str(a.company.id) in "".join(pages), "A's own records are pulled"


async def test_the_changes_feed_lists_none_of_another_orgs_changes(
    client: httpx.AsyncClient, orgs: tuple[Records, Records]
) -> None:
    a, b = orgs
    for headers in (a.tenant.headers, {"Authorization": f"Bearer {a.tenant.key_secret}"}):
        response = await client.get("/api/v1/changes", params={"limit": 1000}, headers=headers)
        assert response.status_code in (200, 403), response.text
        assert_mentions_none(response, secrets_of(b))


async def test_webhooks_carry_none_of_another_orgs_events(
    session: AsyncSession, client: httpx.AsyncClient, orgs: tuple[Records, Records]
) -> None:
    a, b = orgs
    made = await client.post("/api/v1/companies", json={"name": "Bravo Late SA"}, headers=b.tenant.headers)
    assert made.status_code == 201, made.text

    listed = await client.get(f"/api/v1/webhooks/{a.webhook.id}/events", headers=a.tenant.headers)

    assert listed.status_code == 200, listed.text
    assert_mentions_none(listed, [*secrets_of(b), made.json()["id"], "Bravo Late SA"])
    queued = await session.scalars(select(WebhookEvent.org_id).where(col(WebhookEvent.endpoint_id) == a.webhook.id))
    assert set(queued) == {a.tenant.org.id}
