"""Sales reference data over HTTP: the seeded default pipeline and lost reasons, pipelines and their stages,
products, lost reasons, who may read and write them, and the change log every write leaves."""

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from api.auth.models import Role
from api.core.errors import PROBLEM_JSON
from tests.auth.test_login import bearer
from tests.factories import Tenant, make_api_key, make_org, make_tenant, make_user, sign_in

API = "/api/v1"
PIPELINES = f"{API}/pipelines"
STAGES = f"{API}/stages"
PRODUCTS = f"{API}/products"
REASONS = f"{API}/lost-reasons"
AUDIT = f"{API}/audit"

Json = dict[str, Any]
Headers = dict[str, str]


# Helpers


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def refused(response: httpx.Response, status: int, pointer: str | None = None) -> Json:
    """A problem+json answer with `status`; with `pointer`, one of its errors names that body field."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: Json = response.json()
    if pointer is not None:
        assert pointer in [e.get("pointer") for e in body.get("errors", [])], body
    return body


def if_match(headers: Headers, version: int) -> Headers:
    return {**headers, "If-Match": f'"{version}"'}


async def get(client: httpx.AsyncClient, headers: Headers, path: str, **params: Any) -> Any:
    return ok(await client.get(path, params=params, headers=headers))


async def post(client: httpx.AsyncClient, headers: Headers, path: str, body: Json) -> Json:
    response = await client.post(path, json=body, headers=headers)
    created: Json = ok(response, 201)
    assert response.headers["ETag"] == f'"{created["version"]}"'
    return created


async def patch(client: httpx.AsyncClient, headers: Headers, path: str, **body: Any) -> httpx.Response:
    return await client.patch(path, json=body, headers=headers)


async def all_pipelines(client: httpx.AsyncClient, headers: Headers) -> list[Json]:
    items: list[Json] = (await get(client, headers, PIPELINES))["items"]
    return items


async def pipeline(client: httpx.AsyncClient, headers: Headers, pipeline_id: str) -> Json:
    found: Json = await get(client, headers, f"{PIPELINES}/{pipeline_id}")
    return found


async def default_pipeline(client: httpx.AsyncClient, headers: Headers) -> Json:
    (found,) = [p for p in await all_pipelines(client, headers) if p["is_default"]]
    return found


async def new_pipeline(client: httpx.AsyncClient, headers: Headers, *stages: str, **extra: Any) -> Json:
    body = {"name": "Renewals", "stages": [{"name": s} for s in stages or ("A", "B", "C")], **extra}
    return await post(client, headers, PIPELINES, body)


def open_names(found: Json) -> list[str]:
    """The pipeline's open stage names, after checking the order rule: open stages, then won, then lost, at
    positions 1..n with no gap."""
    stages = found["stages"]
    assert [s["position"] for s in stages] == list(range(1, len(stages) + 1)), stages
    assert [s["kind"] for s in stages] == ["open"] * (len(stages) - 2) + ["won", "lost"], stages
    assert {s["pipeline_id"] for s in stages} == {found["id"]}
    return [s["name"] for s in stages[:-2]]


def stage_named(found: Json, name: str) -> Json:
    (stage,) = [s for s in found["stages"] if s["name"] == name]
    return stage


def stage_of_kind(found: Json, kind: str) -> Json:
    (stage,) = [s for s in found["stages"] if s["kind"] == kind]
    return stage


async def reasons(client: httpx.AsyncClient, headers: Headers, **params: Any) -> list[Json]:
    items: list[Json] = (await get(client, headers, REASONS, **params))["items"]
    return items


async def reason_names(client: httpx.AsyncClient, headers: Headers, **params: Any) -> list[str]:
    """Names in list order, after checking that positions are 1..n with no gap or tie."""
    items = await reasons(client, headers, include_inactive=True)
    assert [r["position"] for r in items] == list(range(1, len(items) + 1)), items
    shown = await reasons(client, headers, **params) if params else items
    return [r["name"] for r in shown]


async def product_names(client: httpx.AsyncClient, headers: Headers, **params: Any) -> list[str]:
    return [p["name"] for p in (await get(client, headers, PRODUCTS, **params))["items"]]


async def audit(client: httpx.AsyncClient, headers: Headers, entity: str, entity_id: str) -> list[Json]:
    items: list[Json] = (await get(client, headers, AUDIT, entity=entity, entity_id=entity_id))["items"]
    return items


async def newest_seq(client: httpx.AsyncClient, headers: Headers) -> int:
    seq: int = (await get(client, headers, AUDIT, limit=1))["items"][0]["seq"]
    return seq


@pytest.fixture
async def tenant(session, client) -> Tenant:
    return await make_tenant(session, client)


# A new organisation's defaults


EN_REASONS = ("Price too high", "Chose a competitor", "No budget", "No decision", "Bad timing")
ES_REASONS = ("Precio demasiado alto", "Eligió a la competencia", "Sin presupuesto", "Sin decisión", "Mal momento")
EN = ("Sales", ("Lead", "Qualified", "Proposal", "Negotiation"), ("Won", "Lost"), EN_REASONS)
ES = ("Ventas", ("Prospecto", "Calificado", "Propuesta", "Negociación"), ("Ganado", "Perdido"), ES_REASONS)


@pytest.mark.parametrize(
    ("locale", "expected"),
    [("en", EN), ("es-ES", ES), ("es", ES), ("fr-FR", EN)],
    ids=["english", "spanish_spain", "spanish", "unknown_language_falls_back_to_english"],
)
async def test_new_organisation_has_one_default_pipeline_and_lost_reasons_in_its_language(
    session, client, locale, expected
):
    pipeline_name, open_stages, (won, lost), lost_reasons = expected
    org = await make_org(session, "Acme", locale=locale)
    headers = await sign_in(client, await make_user(session, org, role=Role.admin))

    (default,) = await all_pipelines(client, headers)
    assert (default["name"], default["is_default"], default["team_id"], default["version"]) == (
        pipeline_name,
        True,
        None,
        1,
    )
    assert [(s["name"], s["position"], s["kind"], s["probability"], s["rotten_days"]) for s in default["stages"]] == [
        (open_stages[0], 1, "open", 10, 14),
        (open_stages[1], 2, "open", 25, 14),
        (open_stages[2], 3, "open", 50, 21),
        (open_stages[3], 4, "open", 75, 21),
        (won, 5, "won", 100, None),
        (lost, 6, "lost", 0, None),
    ]
    assert await pipeline(client, headers, default["id"]) == default

    listed = await reasons(client, headers)
    assert [(r["name"], r["position"], r["is_active"]) for r in listed] == [
        (name, position, True) for position, name in enumerate(lost_reasons, start=1)
    ]
    # The seed is logged too, as the system's doing.
    (entry,) = await audit(client, headers, "pipeline", default["id"])
    assert (entry["op"], entry["actor_kind"], entry["actor_id"]) == ("create", "system", None)

    # A pipeline the organisation creates later gets its won and lost stages in the same language.
    created = await new_pipeline(client, headers, "Contacted")
    assert [s["name"] for s in created["stages"]] == ["Contacted", won, lost]


# Pipelines


async def test_create_pipeline_adds_its_open_stages_in_order_then_won_and_lost(tenant, client):
    body = {
        "name": "Renewals",
        "team_id": str(tenant.team.id),
        "stages": [
            {"name": "Contacted", "probability": 20, "rotten_days": 7},
            {"name": "Quote sent", "probability": 60},
            {"name": "  Verbal yes  ", "probability": 90, "rotten_days": 3},
        ],
    }
    response = await client.post(PIPELINES, json=body, headers=tenant.headers)
    created = ok(response, 201)
    assert response.headers["Location"] == f"{PIPELINES}/{created['id']}"
    assert response.headers["ETag"] == '"1"'
    assert (created["name"], created["team_id"], created["is_default"], created["version"]) == (
        "Renewals",
        str(tenant.team.id),
        False,
        1,
    )
    assert open_names(created) == ["Contacted", "Quote sent", "Verbal yes"]
    assert [(s["probability"], s["rotten_days"]) for s in created["stages"]] == [
        (20, 7),
        (60, None),
        (90, 3),
        (100, None),
        (0, None),
    ]
    assert await pipeline(client, tenant.headers, created["id"]) == created
    # The default comes first, then the others by name.
    alpha = await new_pipeline(client, tenant.headers, name="Alpha")
    listed = await all_pipelines(client, tenant.headers)
    assert [(p["is_default"], p["id"]) for p in listed][1:] == [(False, alpha["id"]), (False, created["id"])]
    assert listed[0]["is_default"] is True


UNKNOWN = str(uuid.uuid4())


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"team_id": UNKNOWN}, "#/team_id"),
        ({"stages": []}, "#/stages"),
        ({"stages": [{"name": "A", "probability": 101}]}, "#/stages/0/probability"),
        ({"stages": [{"name": "A"}, {"name": "B", "probability": -1}]}, "#/stages/1/probability"),
        ({"stages": [{"name": "A", "rotten_days": 0}]}, "#/stages/0/rotten_days"),
        ({"stages": [{"name": " "}]}, "#/stages/0/name"),
        ({"stages": [{"name": f"S{i}"} for i in range(21)]}, "#/stages"),
        ({"name": ""}, "#/name"),
        ({"is_default": True}, "#/is_default"),
    ],
    ids=[
        "unknown_team",
        "no_stages",
        "probability_101",
        "probability_negative",
        "rotten_days_0",
        "blank_stage_name",
        "21_stages",
        "blank_name",
        "is_default_not_settable",
    ],
)
async def test_invalid_pipeline_is_refused_with_the_field_named(tenant, client, change, pointer):
    body = {"name": "Renewals", "stages": [{"name": "A"}], **change}
    refused(await client.post(PIPELINES, json=body, headers=tenant.headers), 422, pointer)
    assert len(await all_pipelines(client, tenant.headers)) == 1


async def test_making_another_pipeline_the_default_moves_the_flag(tenant, client):
    old = await default_pipeline(client, tenant.headers)
    other = await new_pipeline(client, tenant.headers)
    response = await patch(client, if_match(tenant.headers, 1), f"{PIPELINES}/{other['id']}", is_default=True)
    moved = ok(response)
    assert (moved["is_default"], moved["version"], response.headers["ETag"]) == (True, 2, '"2"')
    assert moved["stages"] == other["stages"]

    listed = await all_pipelines(client, tenant.headers)
    assert [(p["id"], p["is_default"], p["version"]) for p in listed] == [
        (other["id"], True, 2),
        (old["id"], False, 2),
    ]
    # Making it the default again changes nothing.
    again = ok(await patch(client, tenant.headers, f"{PIPELINES}/{other['id']}", is_default=True))
    assert again["version"] == 2


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"is_default": False}, "#/is_default"),
        ({"is_default": None}, "#/is_default"),
        ({"name": None}, "#/name"),
        ({"team_id": UNKNOWN}, "#/team_id"),
        ({"stages": []}, "#/stages"),
    ],
    ids=["undefault", "null_default", "null_name", "unknown_team", "stages_not_patchable"],
)
async def test_invalid_pipeline_update_is_refused_and_changes_nothing(tenant, client, change, pointer):
    default = await default_pipeline(client, tenant.headers)
    refused(await patch(client, tenant.headers, f"{PIPELINES}/{default['id']}", **change), 422, pointer)
    assert await pipeline(client, tenant.headers, default["id"]) == default


async def test_pipeline_can_be_scoped_to_a_team_and_back(tenant, client):
    other = await new_pipeline(client, tenant.headers)
    path = f"{PIPELINES}/{other['id']}"
    scoped = ok(await patch(client, tenant.headers, path, team_id=str(tenant.team.id), name="North renewals"))
    assert (scoped["team_id"], scoped["name"], scoped["version"]) == (str(tenant.team.id), "North renewals", 2)
    unscoped = ok(await patch(client, tenant.headers, path, team_id=None))
    assert (unscoped["team_id"], unscoped["version"]) == (None, 3)


async def test_default_pipeline_cannot_be_deleted(tenant, client):
    default = await default_pipeline(client, tenant.headers)
    refused(await client.delete(f"{PIPELINES}/{default['id']}", headers=tenant.headers), 409)
    assert await all_pipelines(client, tenant.headers) == [default]


async def test_deleting_a_pipeline_removes_it_and_its_stages(tenant, client):
    default = await default_pipeline(client, tenant.headers)
    other = await new_pipeline(client, tenant.headers)
    response = await client.delete(f"{PIPELINES}/{other['id']}", headers=if_match(tenant.headers, 1))
    assert response.status_code == 204, response.text
    assert await all_pipelines(client, tenant.headers) == [default]
    refused(await client.get(f"{PIPELINES}/{other['id']}", headers=tenant.headers), 404)
    for stage in other["stages"]:
        refused(await patch(client, tenant.headers, f"{STAGES}/{stage['id']}", name="Ghost"), 404)
    refused(await client.post(f"{PIPELINES}/{other['id']}/stages", json={"name": "X"}, headers=tenant.headers), 404)


@pytest.mark.parametrize(("method", "body"), [("PATCH", {"name": "Stale"}), ("DELETE", None)])
async def test_stale_if_match_on_a_pipeline_is_412_with_the_current_pipeline(tenant, client, method, body):
    other = await new_pipeline(client, tenant.headers)
    path = f"{PIPELINES}/{other['id']}"
    ok(await patch(client, if_match(tenant.headers, 1), path, name="Renewals 2024"))
    current = await pipeline(client, tenant.headers, other["id"])

    response = await client.request(method, path, json=body, headers=if_match(tenant.headers, 1))
    problem = refused(response, 412)
    assert response.headers["ETag"] == '"2"'
    assert problem["current"] == current
    assert [s["id"] for s in problem["current"]["stages"]] == [s["id"] for s in other["stages"]]
    assert await pipeline(client, tenant.headers, other["id"]) == current


# Stages


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        (1, ["X", "A", "B", "C"]),
        (2, ["A", "X", "B", "C"]),
        (3, ["A", "B", "X", "C"]),
        (None, ["A", "B", "C", "X"]),
        (4, ["A", "B", "C", "X"]),
        (99, ["A", "B", "C", "X"]),
    ],
    ids=["first", "second", "third", "end_by_default", "just_before_won", "past_the_end"],
)
async def test_added_stage_goes_to_its_position_among_the_open_stages(tenant, client, position, expected):
    other = await new_pipeline(client, tenant.headers)
    body = {"name": "X", "probability": 40, "rotten_days": 5} | ({"position": position} if position else {})
    response = await client.post(f"{PIPELINES}/{other['id']}/stages", json=body, headers=tenant.headers)
    added = ok(response, 201)
    assert response.headers["Location"] == f"{PIPELINES}/{other['id']}"
    assert (added["name"], added["kind"], added["probability"], added["rotten_days"]) == ("X", "open", 40, 5)
    assert added["position"] == expected.index("X") + 1

    found = await pipeline(client, tenant.headers, other["id"])
    assert open_names(found) == expected
    assert stage_named(found, "X") == added


async def test_a_pipeline_has_at_most_20_open_stages(tenant, client):
    full = await new_pipeline(client, tenant.headers, *(f"S{i}" for i in range(1, 21)))
    assert len(open_names(full)) == 20
    refused(await client.post(f"{PIPELINES}/{full['id']}/stages", json={"name": "S21"}, headers=tenant.headers), 409)
    assert await pipeline(client, tenant.headers, full["id"]) == full


@pytest.mark.parametrize("position", [0, -1])
async def test_stage_position_below_1_is_refused(tenant, client, position):
    other = await new_pipeline(client, tenant.headers)
    url = f"{PIPELINES}/{other['id']}/stages"
    refused(await client.post(url, json={"name": "X", "position": position}, headers=tenant.headers), 422, "#/position")
    assert await pipeline(client, tenant.headers, other["id"]) == other


@pytest.mark.parametrize(
    ("moved", "position", "expected"),
    [
        ("A", 3, ["B", "C", "A"]),
        ("C", 1, ["C", "A", "B"]),
        ("B", 1, ["B", "A", "C"]),
        ("A", 2, ["B", "A", "C"]),
        ("B", 99, ["A", "C", "B"]),
        ("B", 2, ["A", "B", "C"]),
    ],
    ids=["first_to_last", "last_to_first", "middle_up", "first_down_one", "past_the_end", "same_place"],
)
async def test_moving_a_stage_renumbers_the_open_stages(tenant, client, moved, position, expected):
    other = await new_pipeline(client, tenant.headers)
    stage = stage_named(other, moved)
    response = await patch(client, tenant.headers, f"{STAGES}/{stage['id']}", position=position)
    updated = ok(response)
    assert updated["position"] == expected.index(moved) + 1
    assert response.headers["ETag"] == f'"{updated["version"]}"'
    assert open_names(await pipeline(client, tenant.headers, other["id"])) == expected


async def test_stage_can_be_renamed_and_given_a_probability_and_rotting(tenant, client):
    other = await new_pipeline(client, tenant.headers)
    stage = stage_named(other, "B")
    path = f"{STAGES}/{stage['id']}"
    updated = ok(await patch(client, if_match(tenant.headers, 1), path, name="Demo", probability=35, rotten_days=9))
    assert (updated["name"], updated["probability"], updated["rotten_days"], updated["version"]) == ("Demo", 35, 9, 2)
    cleared = ok(await patch(client, tenant.headers, path, rotten_days=None))
    assert (cleared["rotten_days"], cleared["version"]) == (None, 3)
    assert stage_named(await pipeline(client, tenant.headers, other["id"]), "Demo") == cleared
    problem = refused(await patch(client, if_match(tenant.headers, 1), path, name="Late"), 412)
    assert problem["current"] == cleared


@pytest.mark.parametrize("kind", ["won", "lost"])
@pytest.mark.parametrize(
    ("change", "pointer"),
    [({"position": 1}, "#/position"), ({"probability": 50}, "#/probability"), ({"rotten_days": 5}, "#/rotten_days")],
    ids=["position", "probability", "rotten_days"],
)
async def test_won_and_lost_stages_keep_their_place_and_probability(tenant, client, kind, change, pointer):
    default = await default_pipeline(client, tenant.headers)
    stage = stage_of_kind(default, kind)
    refused(await patch(client, tenant.headers, f"{STAGES}/{stage['id']}", **change), 422, pointer)
    assert await pipeline(client, tenant.headers, default["id"]) == default
    # They may be renamed.
    renamed = ok(await patch(client, tenant.headers, f"{STAGES}/{stage['id']}", name="Closed"))
    assert (renamed["name"], renamed["position"], renamed["probability"]) == (
        "Closed",
        stage["position"],
        stage["probability"],
    )


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"probability": 101}, "#/probability"),
        ({"probability": -1}, "#/probability"),
        ({"rotten_days": 0}, "#/rotten_days"),
        ({"position": 0}, "#/position"),
        ({"position": None}, "#/position"),
        ({"name": None}, "#/name"),
        ({"kind": "won"}, "#/kind"),
    ],
    ids=[
        "probability_101",
        "probability_negative",
        "rotten_days_0",
        "position_0",
        "null_position",
        "null_name",
        "kind",
    ],
)
async def test_invalid_stage_update_is_refused(tenant, client, change, pointer):
    default = await default_pipeline(client, tenant.headers)
    stage = default["stages"][0]
    refused(await patch(client, tenant.headers, f"{STAGES}/{stage['id']}", **change), 422, pointer)
    assert await pipeline(client, tenant.headers, default["id"]) == default


@pytest.mark.parametrize("kind", ["won", "lost"])
async def test_won_and_lost_stages_cannot_be_deleted(tenant, client, kind):
    default = await default_pipeline(client, tenant.headers)
    refused(await client.delete(f"{STAGES}/{stage_of_kind(default, kind)['id']}", headers=tenant.headers), 409)
    assert await pipeline(client, tenant.headers, default["id"]) == default


async def test_last_open_stage_cannot_be_deleted(tenant, client):
    other = await new_pipeline(client, tenant.headers, "Only")
    refused(await client.delete(f"{STAGES}/{stage_named(other, 'Only')['id']}", headers=tenant.headers), 409)
    assert await pipeline(client, tenant.headers, other["id"]) == other


@pytest.mark.parametrize(
    ("deleted", "expected"),
    [("A", ["B", "C"]), ("B", ["A", "C"]), ("C", ["A", "B"])],
    ids=["first", "middle", "last"],
)
async def test_deleting_an_open_stage_closes_the_gap(tenant, client, deleted, expected):
    other = await new_pipeline(client, tenant.headers)
    stage = stage_named(other, deleted)
    response = await client.delete(f"{STAGES}/{stage['id']}", headers=if_match(tenant.headers, 1))
    assert response.status_code == 204, response.text
    found = await pipeline(client, tenant.headers, other["id"])
    assert open_names(found) == expected
    refused(await patch(client, tenant.headers, f"{STAGES}/{stage['id']}", name="Ghost"), 404)
    refused(await client.delete(f"{STAGES}/{stage['id']}", headers=tenant.headers), 404)


# Products


@pytest.mark.parametrize(
    ("extra", "currency"),
    [({}, "EUR"), ({"currency": "USD"}, "USD"), ({"currency": None}, "EUR")],
    ids=["organisation_currency", "explicit_currency", "null_currency"],
)
async def test_product_is_created_with_its_price_and_currency(tenant, client, extra, currency):
    body = {"name": "Consulting day", "sku": " CONS-1 ", "price_minor": 80000, **extra}
    response = await client.post(PRODUCTS, json=body, headers=tenant.headers)
    created = ok(response, 201)
    assert response.headers["Location"] == f"{PRODUCTS}/{created['id']}"
    assert response.headers["ETag"] == '"1"'
    expected = {"name": "Consulting day", "sku": "CONS-1", "price_minor": 80000, "currency": currency}
    assert {k: created[k] for k in expected} == expected
    assert (created["is_active"], created["version"]) == (True, 1)
    assert await get(client, tenant.headers, f"{PRODUCTS}/{created['id']}") == created


async def test_product_needs_only_a_name(tenant, client):
    created = await post(client, tenant.headers, PRODUCTS, {"name": "Sticker"})
    assert (created["sku"], created["price_minor"], created["currency"]) == (None, 0, "EUR")


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"currency": "XYZ"}, "#/currency"),
        ({"currency": "EURO"}, "#/currency"),
        ({"price_minor": -1}, "#/price_minor"),
        ({"price_minor": 10**15 + 1}, "#/price_minor"),
        ({"price_minor": 1.5}, "#/price_minor"),
        ({"name": "  "}, "#/name"),
        ({"sku": ""}, "#/sku"),
        ({"sku": "x" * 65}, "#/sku"),
        ({"is_active": False}, "#/is_active"),
    ],
    ids=[
        "unknown_currency",
        "not_a_code",
        "negative_price",
        "huge_price",
        "fractional_price",
        "blank_name",
        "blank_sku",
        "long_sku",
        "is_active_not_settable",
    ],
)
async def test_invalid_product_is_refused_with_the_field_named(tenant, client, change, pointer):
    body = {"name": "Consulting day", "price_minor": 100, **change}
    refused(await client.post(PRODUCTS, json=body, headers=tenant.headers), 422, pointer)
    assert await product_names(client, tenant.headers, include_inactive=True) == []


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"currency": "XYZ"}, "#/currency"),
        ({"price_minor": -1}, "#/price_minor"),
        ({"currency": None}, "#/currency"),
        ({"price_minor": None}, "#/price_minor"),
        ({"is_active": None}, "#/is_active"),
    ],
    ids=["unknown_currency", "negative_price", "null_currency", "null_price", "null_is_active"],
)
async def test_invalid_product_update_is_refused(tenant, client, change, pointer):
    created = await post(client, tenant.headers, PRODUCTS, {"name": "Consulting day", "price_minor": 100})
    path = f"{PRODUCTS}/{created['id']}"
    refused(await patch(client, tenant.headers, path, **change), 422, pointer)
    assert await get(client, tenant.headers, path) == created


async def test_duplicate_sku_is_a_conflict(tenant, client):
    first = await post(client, tenant.headers, PRODUCTS, {"name": "Consulting day", "sku": "CONS-1"})
    second = await post(client, tenant.headers, PRODUCTS, {"name": "Training", "sku": "TRAIN-1"})
    refused(await client.post(PRODUCTS, json={"name": "Copy", "sku": "CONS-1 "}, headers=tenant.headers), 409, "#/sku")
    refused(await patch(client, tenant.headers, f"{PRODUCTS}/{second['id']}", sku="CONS-1"), 409, "#/sku")
    assert await product_names(client, tenant.headers) == ["Consulting day", "Training"]
    # A product may keep its own SKU, and a deleted product's SKU is free again.
    kept = ok(await patch(client, tenant.headers, f"{PRODUCTS}/{first['id']}", sku="CONS-1", name="Consulting"))
    assert (kept["sku"], kept["name"]) == ("CONS-1", "Consulting")
    assert (await client.delete(f"{PRODUCTS}/{first['id']}", headers=tenant.headers)).status_code == 204
    moved = ok(await patch(client, tenant.headers, f"{PRODUCTS}/{second['id']}", sku="CONS-1"))
    assert moved["sku"] == "CONS-1"


async def test_products_are_listed_by_name_a_page_at_a_time(tenant, client):
    names = ["Easel", "Bolt", "Drill", "Anvil", "Crate"]
    for name in names:
        await post(client, tenant.headers, PRODUCTS, {"name": name})
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await get(client, tenant.headers, PRODUCTS, **params)
        pages.append([p["name"] for p in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [["Anvil", "Bolt"], ["Crate", "Drill"], ["Easel"]]
    refused(await client.get(PRODUCTS, params={"cursor": "forged"}, headers=tenant.headers), 400)


async def test_inactive_products_are_listed_only_when_asked(tenant, client):
    for name in ("Anvil", "Bolt", "Crate"):
        await post(client, tenant.headers, PRODUCTS, {"name": name})
    (bolt,) = [p for p in (await get(client, tenant.headers, PRODUCTS))["items"] if p["name"] == "Bolt"]
    retired = ok(await patch(client, tenant.headers, f"{PRODUCTS}/{bolt['id']}", is_active=False))
    assert (retired["is_active"], retired["version"]) == (False, 2)

    assert await product_names(client, tenant.headers) == ["Anvil", "Crate"]
    assert await product_names(client, tenant.headers, include_inactive=False) == ["Anvil", "Crate"]
    assert await product_names(client, tenant.headers, include_inactive=True) == ["Anvil", "Bolt", "Crate"]
    assert await get(client, tenant.headers, f"{PRODUCTS}/{bolt['id']}") == retired

    back = ok(await patch(client, tenant.headers, f"{PRODUCTS}/{bolt['id']}", is_active=True))
    assert back["version"] == 3
    assert await product_names(client, tenant.headers) == ["Anvil", "Bolt", "Crate"]


async def test_product_update_changes_only_the_fields_sent(tenant, client):
    created = await post(
        client, tenant.headers, PRODUCTS, {"name": "Consulting day", "sku": "CONS-1", "price_minor": 80000}
    )
    path = f"{PRODUCTS}/{created['id']}"
    response = await patch(client, if_match(tenant.headers, 1), path, price_minor=90000, currency="USD")
    updated = ok(response)
    assert response.headers["ETag"] == '"2"'
    assert updated == created | {
        "price_minor": 90000,
        "currency": "USD",
        "version": 2,
        "updated_at": updated["updated_at"],
    }
    cleared = ok(await patch(client, tenant.headers, path, sku=None))
    assert (cleared["sku"], cleared["version"]) == (None, 3)
    assert await get(client, tenant.headers, path) == cleared
    # Nothing to change: no new version.
    assert ok(await patch(client, tenant.headers, path, price_minor=90000))["version"] == 3


async def test_stale_if_match_on_a_product_is_412_with_the_current_product(tenant, client):
    created = await post(client, tenant.headers, PRODUCTS, {"name": "Consulting day"})
    path = f"{PRODUCTS}/{created['id']}"
    current = ok(await patch(client, tenant.headers, path, name="Consulting"))
    for response in (
        await patch(client, if_match(tenant.headers, 1), path, name="Late"),
        await client.delete(path, headers=if_match(tenant.headers, 1)),
    ):
        assert refused(response, 412)["current"] == current
    assert await get(client, tenant.headers, path) == current


async def test_deleted_product_is_gone(tenant, client):
    created = await post(client, tenant.headers, PRODUCTS, {"name": "Consulting day"})
    path = f"{PRODUCTS}/{created['id']}"
    response = await client.delete(path, headers=if_match(tenant.headers, 1))
    assert response.status_code == 204, response.text
    refused(await client.get(path, headers=tenant.headers), 404)
    assert await product_names(client, tenant.headers, include_inactive=True) == []
    refused(await patch(client, tenant.headers, path, name="Ghost"), 404)
    refused(await client.delete(path, headers=tenant.headers), 404)


# Lost reasons


async def test_new_lost_reason_goes_at_the_end(tenant, client):
    response = await client.post(REASONS, json={"name": " Went silent "}, headers=tenant.headers)
    created = ok(response, 201)
    assert response.headers["Location"] == REASONS
    assert (created["name"], created["position"], created["is_active"], created["version"]) == (
        "Went silent",
        len(EN_REASONS) + 1,
        True,
        1,
    )
    assert await reason_names(client, tenant.headers) == [*EN_REASONS, "Went silent"]


@pytest.mark.parametrize(
    ("moved", "position", "expected"),
    [
        (4, 1, [4, 0, 1, 2, 3]),
        (0, 3, [1, 2, 0, 3, 4]),
        (1, 99, [0, 2, 3, 4, 1]),
        (3, 4, [0, 1, 2, 3, 4]),
    ],
    ids=["last_to_first", "first_to_third", "past_the_end", "same_place"],
)
async def test_moving_a_lost_reason_renumbers_the_list(tenant, client, moved, position, expected):
    reason = (await reasons(client, tenant.headers))[moved]
    updated = ok(await patch(client, tenant.headers, f"{REASONS}/{reason['id']}", position=position))
    assert updated["position"] == expected.index(moved) + 1
    assert await reason_names(client, tenant.headers) == [EN_REASONS[i] for i in expected]


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"position": 0}, "#/position"),
        ({"position": None}, "#/position"),
        ({"name": ""}, "#/name"),
        ({"is_active": None}, "#/is_active"),
    ],
    ids=["position_0", "null_position", "blank_name", "null_is_active"],
)
async def test_invalid_lost_reason_update_is_refused(tenant, client, change, pointer):
    before = await reasons(client, tenant.headers)
    refused(await patch(client, tenant.headers, f"{REASONS}/{before[0]['id']}", **change), 422, pointer)
    assert await reasons(client, tenant.headers) == before


async def test_inactive_lost_reason_is_listed_only_when_asked(tenant, client):
    reason = (await reasons(client, tenant.headers))[1]
    path = f"{REASONS}/{reason['id']}"
    retired = ok(await patch(client, if_match(tenant.headers, 1), path, is_active=False, name="Competitor"))
    assert (retired["is_active"], retired["name"], retired["position"], retired["version"]) == (
        False,
        "Competitor",
        2,
        2,
    )
    others = [n for n in EN_REASONS if n != reason["name"]]
    assert await reason_names(client, tenant.headers, include_inactive=False) == others
    assert await reason_names(client, tenant.headers) == [EN_REASONS[0], "Competitor", *EN_REASONS[2:]]
    refused(await patch(client, if_match(tenant.headers, 1), path, is_active=True), 412)


async def test_deleted_lost_reason_is_gone(tenant, client):
    reason = (await reasons(client, tenant.headers))[-1]
    path = f"{REASONS}/{reason['id']}"
    response = await client.delete(path, headers=if_match(tenant.headers, 1))
    assert response.status_code == 204, response.text
    assert await reason_names(client, tenant.headers) == list(EN_REASONS[:-1])
    refused(await patch(client, tenant.headers, path, name="Ghost"), 404)
    refused(await client.delete(path, headers=tenant.headers), 404)


async def test_lost_reason_added_after_a_deletion_goes_at_the_end(tenant, client):
    reason = (await reasons(client, tenant.headers))[1]
    assert (await client.delete(f"{REASONS}/{reason['id']}", headers=tenant.headers)).status_code == 204
    created = await post(client, tenant.headers, REASONS, {"name": "Went silent"})
    listed = await reasons(client, tenant.headers, include_inactive=True)
    assert [r["name"] for r in listed] == [EN_REASONS[0], *EN_REASONS[2:], "Went silent"]
    positions = [r["position"] for r in listed]
    assert positions == sorted(set(positions)), positions
    assert created["position"] == positions[-1]


# Who may read and write, and what every write logs


@dataclass(frozen=True)
class Refs:
    """Ids of the records a call addresses: the default pipeline, a second pipeline with open stages A and B,
    its first and won stages, a product and a lost reason, all created by the admin."""

    ids: dict[str, str]

    def path(self, template: str) -> str:
        return API + template.format(**self.ids)


async def make_refs(client: httpx.AsyncClient, headers: Headers) -> Refs:
    default = await default_pipeline(client, headers)
    other = await new_pipeline(client, headers, "A", "B")
    product = await post(client, headers, PRODUCTS, {"name": "Consulting day", "sku": "CONS-1", "price_minor": 100})
    reason = await post(client, headers, REASONS, {"name": "Went silent"})
    return Refs(
        {
            "default": default["id"],
            "pipeline": other["id"],
            "stage": stage_named(other, "A")["id"],
            "won": stage_of_kind(other, "won")["id"],
            "product": product["id"],
            "reason": reason["id"],
        }
    )


SET = object()  # in a Log: the field changed to some non-null value


@dataclass(frozen=True)
class Log:
    """A change-log entry a write must leave: on `entity` `target` (a key of Refs.ids, or "new..." for the
    record in the response: "new" itself, "new.stages.0" its first stage), with these fields' new values."""

    entity: str
    target: str
    op: str
    after: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Write:
    method: str
    path: str
    body: Json | None
    logs: tuple[Log, ...]


GONE = {"deleted_at": SET}

WRITES: dict[str, Write] = {
    "pipelines-create": Write(
        "POST",
        "/pipelines",
        {"name": "Field sales", "stages": [{"name": "Visit", "probability": 30}]},
        (
            Log("pipeline", "new", "create", {"name": "Field sales", "is_default": False}),
            Log("stage", "new.stages.0", "create", {"name": "Visit", "position": 1, "kind": "open", "probability": 30}),
            Log("stage", "new.stages.1", "create", {"name": "Won", "position": 2, "kind": "won", "probability": 100}),
            Log("stage", "new.stages.2", "create", {"name": "Lost", "position": 3, "kind": "lost"}),
        ),
    ),
    "pipelines-update": Write(
        "PATCH",
        "/pipelines/{pipeline}",
        {"name": "Renamed", "team_id": None},
        (Log("pipeline", "pipeline", "update", {"name": "Renamed"}),),
    ),
    "pipelines-make-default": Write(
        "PATCH",
        "/pipelines/{pipeline}",
        {"is_default": True},
        (
            Log("pipeline", "pipeline", "update", {"is_default": True}),
            Log("pipeline", "default", "update", {"is_default": False}),
        ),
    ),
    "pipelines-delete": Write(
        "DELETE",
        "/pipelines/{pipeline}",
        None,
        (Log("pipeline", "pipeline", "delete", GONE), Log("stage", "stage", "delete", GONE)),
    ),
    "pipelines-add-stage": Write(
        "POST",
        "/pipelines/{pipeline}/stages",
        {"name": "Demo", "position": 1},
        (
            Log("stage", "new", "create", {"name": "Demo", "kind": "open"}),
            Log("stage", "new", "update", {"position": 1}),
            Log("stage", "stage", "update", {"position": 2}),
            Log("stage", "won", "update", {"position": 4}),
        ),
    ),
    "stages-update": Write(
        "PATCH",
        "/stages/{stage}",
        {"name": "First call", "probability": 15, "position": 2},
        (
            Log("stage", "stage", "update", {"name": "First call", "probability": 15}),
            Log("stage", "stage", "update", {"position": 2}),
        ),
    ),
    "stages-delete": Write(
        "DELETE",
        "/stages/{stage}",
        None,
        (Log("stage", "stage", "delete", GONE), Log("stage", "won", "update", {"position": 2})),
    ),
    "products-create": Write(
        "POST",
        "/products",
        {"name": "Training", "price_minor": 50000},
        (
            Log(
                "product",
                "new",
                "create",
                {"name": "Training", "price_minor": 50000, "currency": "EUR", "is_active": True},
            ),
        ),
    ),
    "products-update": Write(
        "PATCH",
        "/products/{product}",
        {"price_minor": 90000, "is_active": False, "sku": None},
        (Log("product", "product", "update", {"price_minor": 90000, "is_active": False, "sku": None}),),
    ),
    "products-delete": Write("DELETE", "/products/{product}", None, (Log("product", "product", "delete", GONE),)),
    "lost-reasons-create": Write(
        "POST",
        "/lost-reasons",
        {"name": "Went dark"},
        (Log("lost_reason", "new", "create", {"name": "Went dark", "position": 7, "is_active": True}),),
    ),
    "lost-reasons-update": Write(
        "PATCH",
        "/lost-reasons/{reason}",
        {"position": 1, "is_active": False},
        (
            Log("lost_reason", "reason", "update", {"is_active": False}),
            Log("lost_reason", "reason", "update", {"position": 1}),
        ),
    ),
    "lost-reasons-delete": Write(
        "DELETE", "/lost-reasons/{reason}", None, (Log("lost_reason", "reason", "delete", GONE),)
    ),
}


async def send(client: httpx.AsyncClient, headers: Headers, refs: Refs, write: Write) -> httpx.Response:
    return await client.request(write.method, refs.path(write.path), json=write.body, headers=headers)


# Callers other than the admin: users sign in, keys are issued with these scopes.
KEY_SCOPES = {
    "deals_read_key": ("deals:read",),
    "deals_write_key": ("deals:read", "deals:write"),
    "users_key": ("users:read",),
}


async def caller(session, client: httpx.AsyncClient, tenant: Tenant, who: str) -> Headers:
    if who in KEY_SCOPES:
        _, secret = await make_api_key(session, tenant.org, *KEY_SCOPES[who])
        return bearer(secret)
    user = tenant.rep if who == "rep" else await make_user(session, tenant.org, role=Role(who))
    return await sign_in(client, user)


READS = {
    "pipelines-list": ("/pipelines", "pipeline"),
    "pipelines-get": ("/pipelines/{pipeline}", "stage"),
    "products-list": ("/products", "product"),
    "products-get": ("/products/{product}", "product"),
    "lost-reasons-list": ("/lost-reasons", "reason"),
}


@pytest.mark.parametrize("who", ["rep", "manager", "marketing", "deals_read_key"])
async def test_every_role_and_a_deals_read_key_read_the_reference_data(session, client, tenant, who):
    refs = await make_refs(client, tenant.headers)
    headers = await caller(session, client, tenant, who)
    for template, shows in READS.values():
        response = await client.get(refs.path(template), headers=headers)
        assert response.status_code == 200, (template, response.text)
        assert refs.ids[shows] in response.text, template


@pytest.mark.parametrize("read", list(READS))
async def test_key_without_deals_read_cannot_read_the_reference_data(session, client, tenant, read):
    refs = await make_refs(client, tenant.headers)
    response = await client.get(refs.path(READS[read][0]), headers=await caller(session, client, tenant, "users_key"))
    body = refused(response, 403)
    assert "deals:read" in body["detail"]
    assert refs.ids[READS[read][1]] not in response.text


@pytest.mark.parametrize("who", ["rep", "manager", "deals_read_key", "deals_write_key"])
@pytest.mark.parametrize("write", list(WRITES))
async def test_only_admins_write_the_reference_data(session, client, tenant, write, who):
    refs = await make_refs(client, tenant.headers)
    headers = await caller(session, client, tenant, who)
    before = await newest_seq(client, tenant.headers)
    refused(await send(client, headers, refs, WRITES[write]), 403)
    assert await newest_seq(client, tenant.headers) == before


def _resolve(target: str, refs: Refs, created: Any) -> str:
    if not target.startswith("new"):
        return refs.ids[target]
    node = created
    for part in target.split(".")[1:]:
        node = node[int(part)] if part.isdigit() else node[part]
    return str(node["id"])


def _matches(entry: Json, log: Log) -> bool:
    after = {c["field"]: c["after"] for c in entry["changes"]}
    return entry["op"] == log.op and all(
        name in after and (after[name] is not None if value is SET else after[name] == value)
        for name, value in log.after.items()
    )


@pytest.mark.parametrize("write", list(WRITES))
async def test_every_write_is_in_the_audit_log(client, tenant, write):
    refs = await make_refs(client, tenant.headers)
    spec = WRITES[write]
    response = await send(client, tenant.headers, refs, spec)
    assert response.status_code in (200, 201, 204), response.text
    created = response.json() if response.content else None
    for log in spec.logs:
        entries = await audit(client, tenant.headers, log.entity, _resolve(log.target, refs, created))
        found = [e for e in entries if _matches(e, log)]
        assert found, (log, entries)
        assert {(e["actor_kind"], e["actor_id"]) for e in found} == {("user", str(tenant.admin.id))}


async def test_products_are_listed_by_name_ignoring_case_and_accents(tenant, client):
    for name in ("zeta", "Banana", "Ábaco", "apple"):
        await post(client, tenant.headers, PRODUCTS, {"name": name})
    assert await product_names(client, tenant.headers) == ["Ábaco", "apple", "Banana", "zeta"]
