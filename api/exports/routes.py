"""HTTP routes for exports: GET /exports/{companies,contacts,deals,activities} with the list's filters, as CSV or
XLSX. Who may export: admins, managers (what they see) and marketing (not activities); API keys with the read
scope of the records."""

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from api.activities.routes import activity_filters
from api.auth.deps import Allow
from api.auth.models import Role
from api.auth.principals import Principal
from api.clients.routes import client_filters
from api.core.db import SessionDep, get_database
from api.core.errors import problems
from api.core.tabular import FILE_RESPONSE, FileFormat, csv_stream, download, xlsx_stream
from api.deals.deal_routes import deal_filters
from api.exports import service
from api.exports.columns import Language
from api.exports.service import Export
from api.sharing.visibility import Viewer, viewer_for

router = APIRouter(prefix="/exports", tags=["exports"], responses=problems(401, 403))

ALL_EXPORTERS = (Role.admin, Role.manager, Role.marketing)
REFUSED = {
    ALL_EXPORTERS: "Exports are for managers, admins and marketing.",
    (Role.admin, Role.manager): "Exports of activities are for managers and admins (marketing exports companies, "
    "contacts and deals).",
}


@dataclass(frozen=True)
class ExportOptions:
    file_format: FileFormat
    delimiter: str
    language: Language


def language_of(accept_language: str | None) -> Language:
    """English or Spanish, whichever the Accept-Language header prefers (English when it names neither)."""
    best: tuple[float, Language] = (0.0, "en")
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().split("-")[0].lower()
        if primary not in ("en", "es"):
            continue
        try:
            weight = float(params.strip().removeprefix("q=")) if params.strip().startswith("q=") else 1.0
        except ValueError:
            continue
        if weight > best[0]:
            best = (weight, "es" if primary == "es" else "en")
    return best[1]


async def export_options(
    file_format: Annotated[FileFormat, Query(alias="format", description="`csv` (UTF-8) or `xlsx`.")] = "csv",
    delimiter: Annotated[
        Literal[",", ";"],
        Query(description="CSV only: `;` for Excel in Spain and other decimal-comma locales (decimals then use `,`)."),
    ] = ",",
    lang: Annotated[
        Language | None, Query(description="Language of the column headers; else Accept-Language; else English.")
    ] = None,
    accept_language: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> ExportOptions:
    return ExportOptions(file_format, delimiter, lang or language_of(accept_language))


ExportOptionsDep = Annotated[ExportOptions, Depends(export_options)]


def exporter(scope: str, *roles: Role) -> Callable[..., Coroutine[Any, Any, Viewer]]:
    """A route dependency: the caller, if it may export these records, with what it sees resolved."""
    checked = Allow(roles, scope, REFUSED[roles])

    async def resolve(principal: Annotated[Principal, Depends(checked)], session: SessionDep) -> Viewer:
        return await viewer_for(session, principal)

    return resolve


def _route(export: Export, who: Callable[..., Any], filters: Callable[..., Any]) -> None:
    @router.get(
        f"/{export.entity}",
        name=export.entity,
        summary=f"The {export.entity} list as a CSV or XLSX file: the list's filters, the columns of docs/exports.md",
        response_class=StreamingResponse,
        responses={**FILE_RESPONSE, **problems(400, 422)},
    )
    async def export_file(
        request: Request,
        viewer: Annotated[Viewer, Depends(who)],
        session: SessionDep,
        chosen: Annotated[Any, Depends(filters)],
        options: ExportOptionsDep,
    ) -> StreamingResponse:
        prepared = await service.prepare(
            session=session,
            # The rows are read as the response is sent, after the request's session has closed.
            reader=get_database(request).reader,
            viewer=viewer,
            export=export,
            filters=chosen,
            language=options.language,
            extension=options.file_format,
        )
        if options.file_format == "xlsx":
            body = xlsx_stream(prepared.headers, prepared.rows, sheet=prepared.sheet)
        else:
            body = csv_stream(prepared.headers, prepared.rows, delimiter=options.delimiter)
        return download(body, filename=prepared.filename, file_format=options.file_format)


_route(service.COMPANIES, exporter("clients:read", *ALL_EXPORTERS), client_filters)
_route(service.CONTACTS, exporter("clients:read", *ALL_EXPORTERS), client_filters)
_route(service.DEALS, exporter("deals:read", *ALL_EXPORTERS), deal_filters)
_route(service.ACTIVITIES, exporter("activities:read", Role.admin, Role.manager), activity_filters)

routers = (router,)
