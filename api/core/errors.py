"""RFC 9457 problem details for every error the API returns."""

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

log = logging.getLogger("fieldbook")

PROBLEM_JSON = "application/problem+json"


class AppError(Exception):
    status = 500
    title = "Internal server error"
    slug = "internal"
    # When True, the request's writes made before the error are committed rather than rolled back.
    keep_writes = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = list(errors)
        self.headers = headers or {}
        self.extra = extra or {}


class BadRequest(AppError):
    status, title, slug = 400, "Bad request", "bad-request"


class Unauthorized(AppError):
    status, title, slug = 401, "Not authenticated", "unauthorized"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(AppError):
    status, title, slug = 404, "Not found", "not-found"


class Conflict(AppError):
    status, title, slug = 409, "Conflict", "conflict"


class PreconditionFailed(AppError):
    status, title, slug = 412, "Precondition failed", "precondition-failed"


class Gone(AppError):
    status, title, slug = 410, "Gone", "gone"


class ValidationFailed(AppError):
    status, title, slug = 422, "Validation failed", "validation"

    @classmethod
    def field(cls, pointer: str, detail: str) -> "ValidationFailed":
        """One bad body field, named by its JSON pointer (e.g. "#/team_id")."""
        return cls(detail, errors=[{"pointer": pointer, "detail": detail}])

    @classmethod
    def of(cls, errors: Sequence[Any]) -> "ValidationFailed":
        """FastAPI's validation errors (their `loc` starts with body, query, ...) as one problem with an item per
        bad field."""
        items = [_validation_item(e) for e in errors]
        fields = ", ".join(i.get("pointer") or i.get("parameter") or "?" for i in items)
        return cls(f"Invalid input: {fields}", errors=items)


class TooManyRequests(AppError):
    status, title, slug = 429, "Too many requests", "rate-limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class ServiceUnavailable(AppError):
    status, title, slug = 503, "Service unavailable", "unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class DatabaseUnavailable(Exception):
    """The database cannot serve anyone (down, restarting, its storage read-only or full): raised by the engine in
    place of the driver's error, answered as a 503. Not an AppError, which code that handles many items refuses one
    item for (a push's mutation, an import's row): the database's state is no item's fault."""

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


def problem(
    status: int,
    title: str,
    *,
    slug: str,
    detail: str,
    errors: Sequence[dict[str, Any]] = (),
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body = problem_body(status, title, slug=slug, detail=detail, errors=errors, extra=extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def problem_body(
    status: int,
    title: str,
    *,
    slug: str,
    detail: str,
    errors: Sequence[dict[str, Any]] = (),
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = list(errors)
    body.update(extra or {})
    return body


def problem_of(exc: AppError) -> dict[str, Any]:
    """The problem body of an error, for answers that carry several (a sync push's refused mutations)."""
    return problem_body(exc.status, exc.title, slug=exc.slug, detail=exc.detail, errors=exc.errors, extra=exc.extra)


def problem_response(exc: AppError) -> JSONResponse:
    return JSONResponse(problem_of(exc), status_code=exc.status, headers=exc.headers, media_type=PROBLEM_JSON)


def _pointer(parts: Sequence[Any]) -> str:
    escaped = (str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return "#/" + "/".join(escaped) if parts else "#"


def _validation_item(err: Any) -> dict[str, Any]:
    loc = list(err.get("loc", ()))
    where = loc[0] if loc else "body"
    item: dict[str, Any] = {"detail": err.get("msg", "invalid"), "code": err.get("type", "invalid")}
    if where == "body":
        item["pointer"] = _pointer(loc[1:])
    else:
        item["in"] = where
        item["parameter"] = ".".join(str(p) for p in loc[1:])
    return item


async def _on_app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem_response(exc)


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errs = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errs):
        return problem(
            400,
            "Malformed JSON",
            slug="malformed-json",
            detail="The request body is not valid JSON.",
            errors=[{"pointer": "#", "detail": "not valid JSON", "code": "json_invalid"}],
        )
    return problem_response(ValidationFailed.of(errs))


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    # Starlette's 405 names only the methods of the first route whose path matched; Allow must name them all.
    def accepts(method: str) -> bool:
        scope = {**request.scope, "method": method}
        return any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes)

    return ", ".join(m for m in _METHODS if accepts(m))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        exc.headers = {**(exc.headers or {}), "Allow": _allowed_methods(request)}
    titles = {400: "Bad request", 404: "Not found", 405: "Method not allowed", 413: "Payload too large"}
    title = titles.get(exc.status_code, "Error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem(
        exc.status_code,
        title,
        slug=title.lower().replace(" ", "-"),
        detail=detail,
        headers=getattr(exc, "headers", None),
    )


async def _on_integrity_error(request: Request, exc: Exception) -> JSONResponse:
    # Checks in the services answer first; this is a concurrent write that won the race to a unique value.
    log.info("integrity error on %s %s: %s", request.method, request.url.path, exc)
    return problem(409, "Conflict", slug="conflict", detail="This conflicts with data saved meanwhile; try again.")


async def _on_database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DatabaseUnavailable)
    return problem_response(ServiceUnavailable(exc.detail, retry_after=exc.retry_after))


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DatabaseUnavailable):
        # Raised in a middleware (the idempotency key's own transactions), outside the app's handlers.
        return await _on_database_unavailable(request, exc)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "Internal server error", slug="internal", detail="Something went wrong on our side.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _on_app_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(IntegrityError, _on_integrity_error)
    app.add_exception_handler(DatabaseUnavailable, _on_database_unavailable)
    app.add_exception_handler(Exception, _on_unexpected)


class ProblemItem(BaseModel):
    detail: str
    pointer: str | None = Field(default=None, description="JSON pointer into the request body, e.g. `#/email`.")
    parameter: str | None = Field(default=None, description="Name of the bad query, path or header parameter.")
    location: str | None = Field(default=None, alias="in", description="Where `parameter` is: query, path, header.")
    code: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(examples=["/problems/validation"])
    title: str = Field(examples=["Validation failed"])
    status: int = Field(examples=[422])
    detail: str = Field(examples=["Invalid input: #/email"])
    errors: list[ProblemItem] | None = None


_DESCRIPTIONS = {
    400: "Bad request (malformed JSON, invalid cursor or header)",
    401: "Not authenticated",
    403: "Not allowed for this role or API key scope",
    404: "Not found (or not visible to you)",
    409: "Conflict with the current state",
    412: "The record changed since you read it (stale If-Match)",
    413: "Request body too large",
    422: "Validation failed; `errors` names each bad field",
    429: "Too many requests; see Retry-After",
    503: "Service unavailable: the database does not answer",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the errors an operation can answer."""
    return {code: {"model": Problem, "description": _DESCRIPTIONS[code]} for code in codes}


_RETRY_AFTER = {"description": "Seconds to wait before trying again.", "schema": {"type": "integer", "minimum": 1}}

IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Any unique string (a UUID): a retry with the same key and body gets the first response again "
    "(with `Idempotent-Replayed: true`) instead of doing the work twice. The same key with another body answers "
    "422; while the first request runs, 409. Keys are kept 24 hours, per user or API key.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}


def _mechanical_problems(method: str, operation: dict[str, Any]) -> list[int]:
    """The errors an operation can answer whatever its route does: from its authentication (401, and 429 from the
    per-caller rate limit), a path parameter naming a record (404), `If-Match` (412), a body (400 malformed, 413
    over the size cap, 422), parameters (422) and, for a POST, the Idempotency-Key (409 while the first request
    runs, 422 for another body). 403 is left to the routes: not every authenticated operation can refuse."""
    parameters = operation.get("parameters", [])
    where = {(p.get("in"), p.get("name", "").lower()) for p in parameters}
    codes = []
    if operation.get("security"):
        codes += [401, 429]
    if any(place == "path" for place, _ in where):
        codes.append(404)
    if ("header", "if-match") in where:
        codes.append(412)
    if "requestBody" in operation:
        codes += [400, 413, 422]
    if parameters:
        codes.append(422)
    if method == "post":
        codes += [409, 422]
    return codes


def document_problems(spec: dict[str, Any]) -> dict[str, Any]:
    """Make the OpenAPI document say what the API does: every error is problem+json (FastAPI documents its
    default 422 and our models as application/json), and every operation names the errors it answers
    mechanically (`_mechanical_problems`); the routes add the ones their rules answer."""
    problem_content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in spec.get("paths", {}).values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in _mechanical_problems(method, operation):
                responses.setdefault(str(code), {"description": _DESCRIPTIONS[code]})
            if method == "post":
                operation.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
            if "429" in responses:
                responses["429"].setdefault("headers", {}).setdefault("Retry-After", _RETRY_AFTER)
            for code, response in responses.items():
                if code.isdigit() and int(code) >= 400:
                    response["content"] = problem_content
                    if code == "422":
                        response["description"] = _DESCRIPTIONS[422]
    schemas = spec.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return spec
