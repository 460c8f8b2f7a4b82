"""The OpenAPI document is a public contract: integrators generate clients from it and copy its examples, so every
operation must say what it does, what it takes and answers, and how it fails.

For every operation (read from `create_app().openapi()`, so a new route is checked the day it is added):

- a `summary`, and an `operationId` `<tag>-<name>` (first tag, then lower-case words joined by `-`), unique;
- the operationIds are the ones listed in tests/operation_ids.txt: generated clients name their methods after them,
  so a removed or renamed id breaks every client built from the document (a new one is appended to the list);
- a JSON request body carries an example: on its media type (`example`/`examples`) or on its schema (followed
  through `$ref`, a nullable `anyOf` and an array's `items`). Multipart uploads are exempt (a file is no example);
- each 2xx JSON response carries an example by the same rule. Exempt: answers without a body (204) and non-JSON
  ones (server-sent event streams, CSV/XLSX files, printable HTML), whose formats their descriptions and docs give;
- every documented error (4xx/5xx) is `application/problem+json` with the `Problem` schema;
- errors the API answers mechanically are documented (most are added by `document_problems` in api/core/errors.py):
  an authenticated operation 401, 403 (unless it cannot refuse any caller: CANNOT_REFUSE) and 429; one with a path
  parameter 404; one that reads `If-Match` 412; one with a body 400, 413 and 422; a POST 409 (the Idempotency-Key
  in use) and 422; one with any parameter 422; one that takes a keyset cursor 400 (a cursor that does not verify).

The failure lists each offending operation with everything it lacks. The examples themselves are checked against
their models below (Pydantic's own validation: the same validators the API runs, e.g. e-mails, time zones, ISO
currency and country codes, aware datetimes, which JSON Schema cannot express), and an example may not carry a key
its model does not have.
"""

import functools
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import routing
from pydantic import BaseModel, TypeAdapter

from api.core.errors import PROBLEM_JSON
from api.core.pagination import CursorQuery
from api.core.schemas import Input
from api.main import create_app

OPERATION_IDS = Path(__file__).with_name("operation_ids.txt")
METHODS = ("get", "put", "post", "patch", "delete")
PROBLEM_REF = "#/components/schemas/Problem"
# Authenticated operations that admit every signed-in user and every API key, so never answer 403.
CANNOT_REFUSE = {"me-get": "any user or key may ask who it is"}
# How a keyset cursor (`CursorQuery`) is documented: the sync pull's and the changes feed's cursors are not one.
KEYSET_CURSOR = typing.get_args(CursorQuery)[1].description


@functools.cache
def document() -> dict[str, Any]:
    spec: dict[str, Any] = create_app().openapi()
    return spec


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method, path, operation


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema an example would sit on: through `$ref`, a nullable `anyOf` and an array's items."""
    schemas = document()["components"]["schemas"]
    for _ in range(10):
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
        elif "anyOf" in schema and len(variants := [s for s in schema["anyOf"] if s.get("type") != "null"]) == 1:
            schema = variants[0]
        elif schema.get("type") == "array" and "examples" not in schema:
            schema = schema.get("items", {})
        else:
            break
    return schema


def _is_json(media_type: str) -> bool:
    return media_type.split(";")[0].strip() in ("application/json",) or media_type.endswith("+json")


def _has_example(media: dict[str, Any]) -> bool:
    return "example" in media or "examples" in media or "examples" in _resolve(media.get("schema", {}))


def _parameters(operation: dict[str, Any], where: str) -> list[str]:
    return [p["name"].lower() for p in operation.get("parameters", []) if p["in"] == where]


def missing(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    """What the operation lacks, in words."""
    found: list[str] = []
    op_id = operation.get("operationId", "")
    tags = operation.get("tags") or ["?"]
    if not operation.get("summary"):
        found.append("a summary")
    if not re.fullmatch(rf"{re.escape(tags[0])}-[a-z0-9]+(-[a-z0-9]+)*", op_id):
        found.append(f"an operationId `{tags[0]}-<name>` (has {op_id!r})")

    body = operation.get("requestBody", {}).get("content", {})
    for media_type, media in body.items():
        if _is_json(media_type) and not _has_example(media):
            found.append(f"a request example ({media_type})")
    responses: dict[str, Any] = operation.get("responses", {})
    for code, response in responses.items():
        if code.startswith("2"):
            for media_type, media in response.get("content", {}).items():
                if _is_json(media_type) and not _has_example(media):
                    found.append(f"a {code} response example ({media_type})")
        elif code[0] in "45":
            content = response.get("content", {})
            if set(content) != {PROBLEM_JSON} or content[PROBLEM_JSON].get("schema", {}).get("$ref") != PROBLEM_REF:
                found.append(f"{code} as application/problem+json (has {sorted(content)})")

    needed: dict[str, str] = {}
    if operation.get("security"):
        needed["401"] = "authenticated"
        needed["429"] = "authenticated (rate limit)"
        if op_id not in CANNOT_REFUSE:
            needed["403"] = "authenticated"
    if _parameters(operation, "path"):
        needed["404"] = "path parameter"
    if "if-match" in _parameters(operation, "header"):
        needed["412"] = "reads If-Match"
    if body:
        needed.update({"400": "body", "413": "body", "422": "body"})
    if method == "post":
        needed.update({"409": "POST (Idempotency-Key in use)", "422": "POST"})
    if any(p["in"] == "query" and p.get("description") == KEYSET_CURSOR for p in operation.get("parameters", [])):
        needed["400"] = "keyset cursor"
    if operation.get("parameters") and "422" not in needed:
        needed["422"] = "parameters"
    found.extend(f"error {code} ({why})" for code, why in needed.items() if code not in responses)
    return found


def test_every_operation_has_a_summary_a_stable_id_examples_and_its_errors() -> None:
    lacking = {
        f"{method.upper()} {path} [{operation.get('operationId')}]": gaps
        for method, path, operation in operations()
        if (gaps := missing(method, path, operation))
    }
    report = "\n".join(f"- {op}: lacks {'; '.join(gaps)}" for op, gaps in sorted(lacking.items()))
    assert not lacking, f"{len(lacking)} operations are not fully documented:\n{report}"


def test_operation_ids_are_unique() -> None:
    seen: dict[str, list[str]] = {}
    for method, path, operation in operations():
        seen.setdefault(operation.get("operationId", ""), []).append(f"{method.upper()} {path}")
    repeated = {op_id: where for op_id, where in seen.items() if len(where) > 1}
    assert not repeated, f"operationIds used more than once: {repeated}"


def test_operation_ids_are_a_public_contract() -> None:
    listed = [line.strip() for line in OPERATION_IDS.read_text().splitlines() if line.strip()]
    current = {operation["operationId"] for _, _, operation in operations()}
    removed = sorted(set(listed) - current)
    added = sorted(current - set(listed))
    assert not removed, (
        f"operationIds removed or renamed: {removed}. They are a public contract (generated clients name their "
        "methods after them): keep the route's name and tag, or deprecate the old operation instead."
    )
    assert not added, f"new operationIds: append them to tests/operation_ids.txt: {added}"


# The examples are valid


def _models(annotation: Any, seen: set[type[BaseModel]]) -> None:
    """Every model `annotation` names, its fields' models included."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return
        seen.add(annotation)
        for field in annotation.model_fields.values():
            _models(field.annotation, seen)
        return
    if typing.get_origin(annotation) is typing.Annotated:
        _models(typing.get_args(annotation)[0], seen)
        return
    for arg in typing.get_args(annotation):
        _models(arg, seen)


@functools.cache
def _routes() -> list[Any]:
    """The app's API routes as FastAPI sees them once included (prefix, tags and unique id applied)."""
    return [
        context
        for context in routing.iter_route_contexts(create_app().routes)
        if isinstance(context.original_route, routing.APIRoute) and context.include_in_schema
    ]


def _documented_models() -> set[type[BaseModel]]:
    seen: set[type[BaseModel]] = set()
    for route in _routes():
        if route.body_field is not None:
            _models(route.body_field.field_info.annotation, seen)
        _models(route.response_model, seen)
    return seen


def _unknown_keys(example: Any, dumped: Any, at: str = "#") -> list[str]:
    """Keys of `example` that validation dropped: misspelt or removed fields."""
    if isinstance(example, dict) and isinstance(dumped, dict):
        found = [f"{at}/{key}" for key in example if key not in dumped]
        for key, value in example.items():
            if key in dumped:
                found.extend(_unknown_keys(value, dumped[key], f"{at}/{key}"))
        return found
    if isinstance(example, list) and isinstance(dumped, list):
        pairs = enumerate(zip(example, dumped, strict=False))
        return [u for i, (e, d) in pairs for u in _unknown_keys(e, d, f"{at}/{i}")]
    return []


def _check(adapter: TypeAdapter[Any], example: Any) -> str | None:
    try:
        value = adapter.validate_python(example)
    except ValueError as exc:
        return str(exc)
    unknown = _unknown_keys(example, adapter.dump_python(value, mode="json", by_alias=True))
    return f"unknown keys {unknown}" if unknown else None


def test_every_example_is_valid_for_its_model() -> None:
    bad: dict[str, str] = {}
    checked = 0
    for model in sorted(_documented_models(), key=lambda m: m.__name__):
        for index, example in enumerate(model.model_json_schema().get("examples", [])):
            checked += 1
            if error := _check(TypeAdapter(model), example):
                bad[f"{model.__module__}.{model.__name__} example {index}"] = error
    # Examples written on a route (its `responses` or `openapi_examples`) against the route's own types.
    spec_ops = {op["operationId"]: op for _, _, op in operations()}
    for route in _routes():
        operation = spec_ops.get(route.unique_id)
        if operation is None:
            continue
        typed: list[tuple[str, Any, dict[str, Any]]] = [
            (f"{code} response", route.response_model, media)
            for code, response in operation["responses"].items()
            if code.startswith("2") and route.response_model is not None
            for media in response.get("content", {}).values()
        ]
        if route.body_field is not None:
            typed.extend(
                ("request", route.body_field.field_info.annotation, media)
                for media in operation.get("requestBody", {}).get("content", {}).values()
            )
        for what, annotation, media in typed:
            examples = [media["example"]] if "example" in media else []
            examples += [e["value"] for e in media.get("examples", {}).values() if "value" in e]
            for example in examples:
                checked += 1
                if error := _check(TypeAdapter(annotation), example):
                    bad[f"{route.unique_id} {what} example"] = error
    assert checked > 50
    assert not bad, "invalid examples:\n" + "\n".join(f"- {where}: {error}" for where, error in sorted(bad.items()))


def test_request_bodies_still_refuse_unknown_fields() -> None:
    """A model that declares examples sets its own `model_config`: it must keep the `extra="forbid"` of Input."""
    bodies: set[type[BaseModel]] = set()
    for route in _routes():
        if route.body_field is not None:
            _models(route.body_field.field_info.annotation, bodies)
    open_bodies = sorted(m.__name__ for m in bodies if issubclass(m, Input) and m.model_config.get("extra") != "forbid")
    assert not open_bodies, f"request models that accept unknown fields: {open_bodies}"


def test_examples_carry_only_realistic_money() -> None:
    """Amounts are integers in minor units (cents): 1250000 is 12,500.00 €, never 12500.0."""
    floats = [
        f"{name}.{key}"
        for name, schema in document()["components"]["schemas"].items()
        for example in schema.get("examples", [])
        if isinstance(example, dict)
        for key, value in _flatten(example)
        if key.endswith("_minor") and not isinstance(value, int)
    ]
    assert not floats, f"amounts in minor units must be integers: {floats}"


def _flatten(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _flatten(v, key)
    else:
        yield key, value


async def test_the_interactive_documentation_renders() -> None:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        page = await http.get("/docs")
        assert page.status_code == 200 and "swagger-ui" in page.text and "/api/v1/openapi.json" in page.text
        spec = await http.get("/api/v1/openapi.json")
        assert spec.status_code == 200 and spec.json()["paths"]
