"""Mass assignment: no request sets a field the server owns. Every POST, PATCH and PUT body, and every sync
mutation's arguments, carrying fields the server keeps for itself (ids of existing records, versions, timestamps,
a deal's status, a key's secret, an organisation) is refused with a 422 naming each such field, and changes nothing.

The fields tried come from the app's own OpenAPI document: for each operation, what its answer holds that its body
does not declare, and the fields no client ever writes. Hypothesis picks which of them, and their values (of every
JSON type), on top of a body that is otherwise valid (tests/test_permissions.py's BODIES), so a refusal can only be
for the fields the server owns.
"""

import uuid
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.ids import new_id
from api.core.types import utcnow
from api.sync.push import KINDS
from tests.factories import make_activity
from tests.test_openapi import document
from tests.test_openapi import operations as operations_of_the_document
from tests.test_permissions import BODIES, FRESH, QUERIES, World, make_world, operations, shared_records
from tests.test_tenant_isolation import Records, versions

# Written by the server alone, whatever the record: no request schema may declare one of them.
SERVER_OWNED = frozenset(
    {
        "org_id",
        "version",
        "created_at",
        "updated_at",
        "deleted_at",
        "created_by",
        "created_by_id",
        "created_by_user_id",
        "created_by_key_id",
        "password_hash",
        "key_hash",
        "secret_hash",
        "last_used_at",
        "invite_token",
        "invite_expires_at",
    }
)

# Any JSON value: what an attacker, or a careless integration that posts back what it read, might send.
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    st.uuids().map(str),
    st.datetimes(timezones=st.just(UTC)).map(lambda moment: moment.isoformat()),
    st.lists(st.integers(min_value=0, max_value=9), max_size=2),
    st.fixed_dictionaries({"after": st.integers()}),
)
SETTINGS = settings(
    max_examples=3,
    deadline=None,
    derandomize=True,  # the same bodies on every run and machine
    database=None,
    # The world (an organisation and its records) is made once per database; each example is refused and changes
    # nothing, which the test checks, so the examples cannot leak into one another.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _properties(schema: dict[str, Any] | None, components: dict[str, Any]) -> dict[str, Any]:
    """The properties an object schema (or the object member of a union) declares."""
    if not schema:
        return {}
    if "$ref" in schema:
        return _properties(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    for member in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
        if found := _properties(member, components):
            return found
    properties: dict[str, Any] = schema.get("properties", {})
    return properties


def _json_schema(content: dict[str, Any] | None) -> dict[str, Any] | None:
    schema: dict[str, Any] | None = (content or {}).get("content", {}).get("application/json", {}).get("schema")
    return schema


def server_owned_fields() -> dict[str, frozenset[str]]:
    """For each operation taking a JSON body: the fields it must refuse. Those its answer (or the record its answer
    wraps) holds and its body does not declare, and those no client writes."""
    components = document()["components"]["schemas"]
    found: dict[str, frozenset[str]] = {}
    for _method, _path, operation in operations_of_the_document():
        request = _json_schema(operation.get("requestBody"))
        if request is None:
            continue
        declared = _properties(request, components)
        responses = operation["responses"]
        answer = next((_json_schema(responses[code]) for code in ("200", "201") if code in responses), None)
        answered = _properties(answer, components)
        # A wrapper of one record ({"activity": {...}}) answers with that record's fields.
        if len(answered) == 1:
            answered = _properties(next(iter(answered.values())), components) or answered
        found[operation["operationId"]] = frozenset((answered.keys() | SERVER_OWNED) - declared.keys())
    return found


OWNED = server_owned_fields()


@pytest.fixture
async def world(session: AsyncSession, client: httpx.AsyncClient) -> World:
    return await make_world(session, client)


def test_no_request_body_declares_a_field_the_server_owns() -> None:
    components = document()["components"]["schemas"]
    declared = {
        operation["operationId"]: _properties(_json_schema(operation.get("requestBody")), components).keys()
        for _method, _path, operation in operations_of_the_document()
    }
    offenders = {op: sorted(fields & SERVER_OWNED) for op, fields in declared.items() if fields & SERVER_OWNED}
    assert not offenders, offenders
    # The sync mutations' arguments are request bodies too (`id` there is the device's id for a new record, or the
    # record a change addresses).
    for name, kind in KINDS.items():
        assert not kind.args.model_fields.keys() & SERVER_OWNED, name


def test_every_operation_with_a_body_is_tried() -> None:
    assert OWNED.keys() <= BODIES.keys(), sorted(OWNED.keys() - BODIES.keys())


@given(data=st.data())
@SETTINGS
async def test_server_owned_fields_in_a_body_are_refused_and_change_nothing(
    session: AsyncSession, world: World, data: st.DataObject
) -> None:
    ops = operations()
    org_id = world.records.tenant.org.id
    failures: list[str] = []
    for op_id, owned in sorted(OWNED.items()):
        op = ops[op_id]
        smuggled = data.draw(
            st.dictionaries(st.sampled_from(sorted(owned)), JSON_VALUES, min_size=1, max_size=3), label=op_id
        )
        records = await FRESH.get(op_id, shared_records)(world)
        body = await BODIES[op_id](world)
        assert isinstance(body, dict), f"{op_id} takes JSON"
        before = await versions(session, org_id)

        response = await world.client.request(
            op.method,
            op.url(records),
            json={**body, **smuggled},
            params=QUERIES[op_id](records) if op_id in QUERIES else None,
            headers=world.headers["admin"],
        )

        failures += [f"{op.method} {op.path} with {smuggled}: {fault}" for fault in _refusal_faults(response, smuggled)]
        if await versions(session, org_id) != before:
            failures.append(f"{op.method} {op.path} with {smuggled}: changed the organisation's records")
    assert not failures, "\n".join(failures)


def _refusal_faults(response: httpx.Response, smuggled: dict[str, Any]) -> list[str]:
    if response.status_code != 422:
        return [f"answered {response.status_code}, not 422: {response.text[:300]}"]
    pointers = {error.get("pointer") for error in response.json().get("errors", [])}
    missing = sorted(name for name in smuggled if f"#/{name}" not in pointers)
    return [f"the problem does not name {missing}: {response.text[:300]}"] if missing else []


# Sync: a phone's mutations are bodies too. Valid arguments for each mutation, from the world's records (`task`: a
# planned task of the rep's; a new record's id is the device's).
SyncArgs = Callable[[Records, uuid.UUID], dict[str, Any]]
SYNC_ARGS: dict[str, SyncArgs] = {
    "company.create": lambda _r, _t: {"id": str(new_id()), "name": "Pushed SA"},
    "company.update": lambda r, _t: {"id": str(r.company.id), "name": "Renamed SA"},
    "contact.create": lambda _r, _t: {"id": str(new_id()), "name": "Pushed Person"},
    "contact.update": lambda r, _t: {"id": str(r.contact.id), "title": "Buyer"},
    "deal.create": lambda _r, _t: {"id": str(new_id()), "title": "Pushed deal"},
    "deal.update": lambda r, _t: {"id": str(r.deal.id), "title": "Renamed deal"},
    "deal.move": lambda r, _t: {"id": str(r.deal.id), "stage_id": str(r.deal.stage_id)},
    "deal.win": lambda r, _t: {"id": str(r.deal.id)},
    "deal.lose": lambda r, _t: {"id": str(r.deal.id), "lost_reason_id": str(r.lost_reason.id)},
    "activity.log": lambda r, _t: {"id": str(new_id()), "kind": "call", "company_id": str(r.company.id)},
    "task.create": lambda _r, _t: {
        "id": str(new_id()),
        "subject": "Call back",
        "due_at": (utcnow() + timedelta(days=1)).isoformat(),
    },
    "task.complete": lambda _r, task: {"id": str(task)},
    "share.create": lambda r, _t: {"entity": "company", "entity_id": str(r.company.id), "user_ids": [str(r.user.id)]},
}


def test_every_sync_mutation_is_tried() -> None:
    assert SYNC_ARGS.keys() == KINDS.keys()


@given(data=st.data())
@SETTINGS
async def test_server_owned_fields_in_a_sync_mutation_are_rejected_and_change_nothing(
    session: AsyncSession, world: World, data: st.DataObject
) -> None:
    org_id = world.records.tenant.org.id
    task = await make_activity(session, world.records.tenant.rep, kind="task", due_at=utcnow() + timedelta(days=1))
    mutations = []
    for number, name in enumerate(sorted(KINDS), start=1):
        smuggled = data.draw(
            st.dictionaries(st.sampled_from(sorted(SERVER_OWNED)), JSON_VALUES, min_size=1, max_size=3), label=name
        )
        mutations.append({"id": number, "name": name, "args": {**SYNC_ARGS[name](world.records, task.id), **smuggled}})
    before = await versions(session, org_id)

    response = await world.client.post(
        "/api/v1/sync/push",
        json={"client_id": str(uuid.uuid4()), "mutations": mutations},
        headers=world.headers["rep"],
    )

    assert response.status_code == 200, response.text
    failures = []
    for mutation, result in zip(mutations, response.json()["results"], strict=True):
        smuggled = {k: v for k, v in mutation["args"].items() if k in SERVER_OWNED}
        if result["status"] != "rejected":
            failures.append(f"{mutation['name']} with {smuggled}: {result['status']}")
            continue
        problem = result["problem"]
        pointers = {error.get("pointer") for error in problem.get("errors", [])}
        if problem["status"] != 422 or any(f"#/{name}" not in pointers for name in smuggled):
            failures.append(f"{mutation['name']} with {smuggled}: {problem}")
    assert not failures, "\n".join(failures)
    # The pushes were refused one by one: the organisation's records are as they were (the device's own
    # bookkeeping, its last mutation id, is not a record).
    assert await versions(session, org_id) == before
