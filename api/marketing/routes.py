"""HTTP routes for marketing: client cards (a page, or a file of all of them) and saved segments.

Who: admins and marketing users, and API keys with `clients:read`, read cards and segments; admins and marketing
users (never a key) save, change and delete segments. Managers and reps work from their lists and /exports.
"""

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from api.auth.deps import allow
from api.auth.models import Role
from api.auth.principals import Principal
from api.clients.models import ClientKind
from api.clients.schemas import Label
from api.core.db import SessionDep, get_database
from api.core.errors import ValidationFailed, problems
from api.core.etags import IfMatchDep, set_etag
from api.core.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from api.core.tabular import MEDIA_TYPES, csv_stream, download
from api.core.types import Day
from api.marketing import service
from api.marketing.schemas import (
    CARD_FIELDS,
    MAX_VALUES,
    CardFilters,
    ClientCardPage,
    Consent,
    Minor,
    SegmentCreate,
    SegmentRead,
    SegmentUpdate,
)
from api.sharing.visibility import Viewer, viewer_of

CardReaderDep = Annotated[Viewer, Depends(viewer_of(Role.admin, Role.marketing, scope="clients:read"))]
SegmentReaderDep = Annotated[Principal, Depends(allow(Role.admin, Role.marketing, scope="clients:read"))]
SegmentWriterDep = Annotated[Principal, Depends(allow(Role.admin, Role.marketing))]

NDJSON = "application/x-ndjson"


def _about(name: str) -> str:
    return CardFilters.model_fields[name].description or ""


async def card_filters(
    kind: Annotated[ClientKind | None, Query(description=_about("kind"))] = None,
    tag: Annotated[list[Label] | None, Query(max_length=MAX_VALUES, description=_about("tag"))] = None,
    any_tag: Annotated[list[Label] | None, Query(max_length=MAX_VALUES, description=_about("any_tag"))] = None,
    segment: Annotated[list[Label] | None, Query(max_length=MAX_VALUES, description=_about("segment"))] = None,
    industry: Annotated[list[Label] | None, Query(max_length=MAX_VALUES, description=_about("industry"))] = None,
    last_purchase_from: Annotated[Day | None, Query(description=_about("last_purchase_from"))] = None,
    last_purchase_to: Annotated[Day | None, Query(description=_about("last_purchase_to"))] = None,
    lifetime_value_min: Annotated[Minor | None, Query(description=_about("lifetime_value_min"))] = None,
    lifetime_value_max: Annotated[Minor | None, Query(description=_about("lifetime_value_max"))] = None,
    has_open_deal: Annotated[bool | None, Query(description=_about("has_open_deal"))] = None,
    consent: Annotated[Consent | None, Query(description=_about("consent"))] = None,
) -> dict[str, Any]:
    """The filters the query gives (each repeatable one as `?tag=a&tag=b`), by name: with `segment_id`, these replace
    the saved segment's filters of the same name."""
    given = {
        "kind": kind,
        "tag": tag,
        "any_tag": any_tag,
        "segment": segment,
        "industry": industry,
        "last_purchase_from": last_purchase_from,
        "last_purchase_to": last_purchase_to,
        "lifetime_value_min": lifetime_value_min,
        "lifetime_value_max": lifetime_value_max,
        "has_open_deal": has_open_deal,
        "consent": consent,
    }
    return {name: value for name, value in given.items() if value is not None}


CardFiltersDep = Annotated[dict[str, Any], Depends(card_filters)]
SegmentIdQuery = Annotated[
    uuid.UUID | None,
    Query(description="Apply a saved segment's filters; the query's own filters replace those of the same name."),
]
FieldsQuery = Annotated[
    str | None,
    Query(
        max_length=1000,
        description=f"Sparse output: a comma-separated list of card fields (`id` is always sent). Fields: "
        f"{', '.join(CARD_FIELDS)}.",
        examples=["name,industry,lifetime_value_minor,contacts"],
    ),
]

cards_router = APIRouter(prefix="/client-cards", tags=["client-cards"], responses=problems(401, 403))


@cards_router.get(
    "",
    name="list",
    summary="Client cards for marketing (companies with their consenting contacts, and lone contacts), filtered",
    response_model=ClientCardPage,
    responses=problems(400, 404, 422),
)
async def list_cards(
    viewer: CardReaderDep,
    session: SessionDep,
    given: CardFiltersDep,
    segment_id: SegmentIdQuery = None,
    fields: FieldsQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Response:
    wanted = service.parse_fields(fields)
    filters = await service.resolve_filters(session=session, viewer=viewer, segment_id=segment_id, given=given)
    page = await service.list_cards(
        session=session, viewer=viewer, filters=filters, fields=wanted, limit=limit, cursor=cursor
    )
    return Response(page, media_type="application/json")


EXPORT_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file, streamed, with `Content-Disposition: attachment`. NDJSON: a card per line (every "
        "contact). CSV: a row per consenting contact with its card's facts (`docs/marketing.md`).",
        "content": {
            NDJSON: {"schema": {"type": "string"}, "example": '{"id":"0193a0f4-...","kind":"company",...}\n'},
            MEDIA_TYPES["csv"]: {"schema": {"type": "string"}, "example": ",".join(service.CSV_COLUMNS) + "\r\n"},
        },
    }
}


@cards_router.get(
    "/export",
    name="export",
    summary="Every client card the filters select, as an NDJSON or CSV file",
    response_class=StreamingResponse,
    responses={**EXPORT_RESPONSE, **problems(404, 422)},
)
async def export_cards(
    request: Request,
    viewer: CardReaderDep,
    session: SessionDep,
    given: CardFiltersDep,
    file_format: Annotated[
        Literal["csv", "ndjson"],
        Query(alias="format", description="`csv` (a row per contact, for mail tools) or `ndjson` (a card per line)."),
    ] = "csv",
    segment_id: SegmentIdQuery = None,
    fields: FieldsQuery = None,
) -> StreamingResponse:
    if fields is not None and file_format == "csv":
        detail = "`fields` shapes NDJSON cards; a CSV file has its fixed columns."
        raise ValidationFailed(detail, errors=[{**service.in_query("fields"), "detail": detail}])
    wanted = service.parse_fields(fields)
    filters = await service.resolve_filters(session=session, viewer=viewer, segment_id=segment_id, given=given)
    ctx = await service.context(session, viewer)
    # The rows are read as the response is sent, after the request's session has closed.
    reader = get_database(request).reader
    filename = f"fieldbook-client-cards-{service.today(ctx)}.{file_format}"
    if file_format == "csv":
        body = csv_stream(list(service.CSV_COLUMNS), service.csv_rows(reader, viewer, filters, ctx))
        return download(body, filename=filename, file_format="csv")
    response = download(service.ndjson(reader, viewer, filters, ctx, wanted), filename=filename, file_format="csv")
    # `download` knows the spreadsheet types only: same headers, NDJSON's type.
    response.headers["content-type"] = NDJSON
    return response


segments_router = APIRouter(prefix="/segments", tags=["segments"], responses=problems(401, 403))


@segments_router.get("", name="list", summary="Saved segments, by name", responses=problems(400, 422))
async def list_segments(
    principal: SegmentReaderDep, session: SessionDep, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> Page[SegmentRead]:
    items, next_cursor = await service.list_segments(session=session, principal=principal, limit=limit, cursor=cursor)
    return Page(items=[SegmentRead.model_validate(s) for s in items], next_cursor=next_cursor)


@segments_router.get("/{segment_id}", name="get", summary="One saved segment", responses=problems(404, 422))
async def get_segment(
    segment_id: uuid.UUID, principal: SegmentReaderDep, session: SessionDep, response: Response
) -> SegmentRead:
    segment = await service.get_segment(session=session, principal=principal, segment_id=segment_id)
    set_etag(response, segment.version)
    return SegmentRead.model_validate(segment)


@segments_router.post(
    "",
    name="create",
    summary="Save a segment: a name for a set of client-card filters (admins, marketing)",
    status_code=201,
    responses=problems(422),
)
async def create_segment(
    data: SegmentCreate, principal: SegmentWriterDep, session: SessionDep, response: Response
) -> SegmentRead:
    segment = await service.create_segment(session=session, principal=principal, data=data)
    response.headers["Location"] = f"/api/v1/segments/{segment.id}"
    set_etag(response, segment.version)
    return SegmentRead.model_validate(segment)


@segments_router.patch(
    "/{segment_id}",
    name="update",
    summary="Rename a segment or change its filters (admins, marketing)",
    responses=problems(404, 412, 422),
)
async def update_segment(
    segment_id: uuid.UUID,
    data: SegmentUpdate,
    principal: SegmentWriterDep,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
) -> SegmentRead:
    segment = await service.update_segment(
        session=session, principal=principal, segment_id=segment_id, data=data, expected_version=if_match
    )
    set_etag(response, segment.version)
    return SegmentRead.model_validate(segment)


@segments_router.delete(
    "/{segment_id}",
    name="delete",
    summary="Delete a saved segment (admins, marketing)",
    status_code=204,
    responses=problems(404, 412, 422),
)
async def delete_segment(
    segment_id: uuid.UUID, principal: SegmentWriterDep, session: SessionDep, if_match: IfMatchDep
) -> None:
    await service.delete_segment(session=session, principal=principal, segment_id=segment_id, expected_version=if_match)


routers = (cards_router, segments_router)
