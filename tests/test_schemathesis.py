"""Schemathesis against the app's own OpenAPI document, once per kind of caller: an admin, a manager, a rep, a
marketing user and an API key holding every scope, each in an organisation full of records.

Every operation must answer without a server error, with a status code the document names, in the shape it
documents; data the document forbids must be refused, the operation's credentials enforced, and a deleted record
gone. The run is the one `schemathesis run` makes (`schemathesis.engine`), in-process over ASGI: its explicit
examples, its coverage cases (boundaries and schema-violating values), fuzzing, then a stateful phase that chains
operations through links it infers from `Location` headers and from the document (dependency analysis). Ids seen
in responses are reused as parameters, so calls reach the caller's real records rather than only 404s.
(Schemathesis 4.32's pytest plugin, `@schema.parametrize()`, does not run under pytest 9.2: `Function._nodeid`.)

Sized for CI: each caller runs on one database (both are covered), with a fixed seed and a few examples per
operation; the whole module costs under three CPU-minutes (about two minutes on two cores).
"""

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from schemathesis.engine import events, from_schema
from schemathesis.python import asgi
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from api.core.db import Database, make_engine
from api.main import create_app
from api.settings import Settings
from tests.auth.test_login import bearer
from tests.conftest import own_database
from tests.factories import make_api_key, make_user, sign_in
from tests.test_permissions import ROLE_OF, SCOPES_OF
from tests.test_tenant_isolation import _records

# Each caller on one database, both databases covered. The coverage phase's schema-violating cases cost most of a
# run (about a minute of CPU for the admin, who gets past every refusal to the validation), so only the admin runs
# them; the others fuzz, where negative cases are drawn too.
CALLERS = {
    "admin": ("postgres", True),
    "manager": ("sqlite", False),
    "rep": ("postgres", False),
    "marketing": ("sqlite", False),
    "all_scopes_key": ("sqlite", False),
}

CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "negative_data_rejection",
    "ignored_auth",
    "use_after_free",
)

# Server-sent event streams never end, and the ASGI transport waits for the whole body; their tests are the feed's
# and sync's.
STREAMS = ["feed-stream", "sync-events"]

SEED = 20261201
MAX_EXAMPLES = 3
# Stateful scenarios are cheap (a few calls each, mostly on records just made): more of them chain create, read,
# change and delete, which is where a deleted record still answering (use_after_free) would show.
SCENARIOS = 25


async def _headers_of(url: str, caller: str) -> dict[str, str]:
    """Builds an organisation's records (as the tenant-isolation matrix does) on a committed database, and returns
    the caller's auth headers there. The manager heads the rep's team, whose records these are. The app and the
    factories share one connection, as in the `client` fixture (on SQLite, two would wait on each other's write
    lock), and its transaction commits at the end."""
    engine = make_engine(url, null_pool=True)
    try:
        async with engine.connect() as connection, connection.begin():
            db = Database(engine, bind=connection)
            async with _client(db) as http, db.writer() as session:
                headers = await _sign_in_as(session, http, caller)
        # Once committed, the caller is still signed in: a run as nobody would pass while testing little.
        async with _client(Database(engine)) as http:
            me = await http.get("/api/v1/me", headers=headers)
        assert me.status_code == 200, me.text
        return headers
    finally:
        await engine.dispose()


def _client(db: Database) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(database=db)), base_url="http://test")


async def _sign_in_as(session: AsyncSession, http: httpx.AsyncClient, caller: str) -> dict[str, str]:
    tenant = (await _records(session, http, "Acme")).tenant
    # Its last read left a savepoint open around the requests to come: closing the session would undo a sign-in.
    await session.commit()
    if caller in SCOPES_OF:
        return bearer((await make_api_key(session, tenant.org, *SCOPES_OF[caller]))[1])
    role = ROLE_OF[caller]
    if role is Role.admin:
        return tenant.headers
    if role is Role.rep:
        return await sign_in(http, tenant.rep)
    team = tenant.team if role is Role.manager else None
    return await sign_in(http, await make_user(session, tenant.org, role=role, team=team))


def _config(headers: dict[str, str], *, coverage: bool) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": headers,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "operations": [{"include-operation-id": STREAMS, "enabled": False}],
            "phases": {
                # Probing methods a path lacks (405s) is the unsupported_method check's business, not one of ours.
                "coverage": {"enabled": coverage, "generation": {"mode": "negative"}, "unexpected-methods": []},
                "stateful": {"generation": {"max-examples": SCENARIOS}},
            },
        }
    )


@dataclass
class Run:
    failures: list[str]
    # Calls made, by phase, and answers, by status code: the figures CI reports (in its JUnit XML properties).
    calls: Counter[str]
    statuses: Counter[int]


def _run(schema: schemathesis.BaseSchema) -> Run:
    """Every phase of the engine; each failure once (by operation, check and title), with a curl to reproduce it."""
    run = Run(failures=[], calls=Counter(), statuses=Counter())
    seen: set[tuple[str | None, str, str]] = set()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            interactions = event.recorder.interactions.values()
            run.calls[event.phase.value] += len(interactions)
            run.statuses.update(i.response.status_code for i in interactions if i.response is not None)
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.failure_info is None:
                        continue
                    failure = check.failure_info.failure
                    if (key := (failure.operation, check.name, failure.title)) not in seen:
                        seen.add(key)
                        run.failures.append(
                            f"{failure.operation} [{check.name}] {failure.title}\n{failure.message}\n"
                            f"{check.failure_info.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError):
            run.failures.append(f"{event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            run.failures.append(f"fatal: {event.exception!r}")
    return run


@pytest.mark.parametrize(("caller", "plan"), CALLERS.items(), ids=list(CALLERS))
def test_every_operation_holds_to_its_document(
    caller: str, plan: tuple[str, bool], tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    dialect, coverage = plan
    with own_database(dialect, tmp_path) as url:
        headers = asyncio.run(_headers_of(url, caller))
        # The app runs on schemathesis's own event loop, so it opens its database there (its lifespan).
        app = create_app(Settings(database_url=url))
        schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, config=_config(headers, coverage=coverage))
        try:
            run = _run(schema)
        finally:
            # The app's lifespan (its engine, on PostgreSQL the rate limiter's pool) ends before the database goes.
            asgi.shutdown_lifespans()

    for phase, calls in run.calls.items():
        record_property(f"{phase}_calls", calls)
    record_property("statuses", dict(sorted(run.statuses.items())))
    assert run.calls["stateful"] > 0, f"the stateful phase made no calls: {run.calls}"
    assert not run.failures, f"{len(run.failures)} failure(s) as {caller}:\n\n" + "\n\n".join(run.failures)
