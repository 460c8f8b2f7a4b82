"""HTTP routes for activities and the agenda."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from api.activities import service
from api.activities.models import Activity, ActivityKind
from api.activities.schemas import (
    ActivityComplete,
    ActivityCreate,
    ActivityRead,
    ActivityUpdate,
    Agenda,
    Logged,
)
from api.activities.service import ActivityFilters
from api.auth.models import Role
from api.core.db import SessionDep
from api.core.errors import problems
from api.core.etags import IfMatchDep, set_etag
from api.core.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from api.core.types import utcnow
from api.sharing.visibility import Viewer, viewer_of

# Marketing reads activities only as part of a client card's timeline.
ReaderDep = Annotated[Viewer, Depends(viewer_of(Role.admin, Role.manager, Role.rep, scope="activities:read"))]
WriterDep = Annotated[Viewer, Depends(viewer_of(Role.admin, Role.manager, Role.rep, scope="activities:write"))]
UserDep = Annotated[Viewer, Depends(viewer_of(Role.admin, Role.manager, Role.rep))]

router = APIRouter(prefix="/activities", tags=["activities"], responses=problems(401, 403))
me_router = APIRouter(prefix="/me", tags=["me"], responses=problems(401, 403))


def _read(response: Response, activity: Activity) -> ActivityRead:
    set_etag(response, activity.version)
    return service.present(activity)


def _logged(response: Response, activity: Activity, follow_up: Activity | None) -> Logged:
    return Logged(activity=_read(response, activity), next_step=service.present(follow_up) if follow_up else None)


async def activity_filters(
    kind: ActivityKind | None = None,
    company_id: uuid.UUID | None = None,
    contact_id: uuid.UUID | None = None,
    deal_id: uuid.UUID | None = None,
    assignee_id: uuid.UUID | None = None,
    planned: Annotated[bool | None, Query(description="Only planned (true) or only done (false) activities.")] = None,
) -> ActivityFilters:
    """The list's filters, which the export takes too."""
    return ActivityFilters(
        kind=kind,
        company_id=company_id,
        contact_id=contact_id,
        deal_id=deal_id,
        assignee_id=assignee_id,
        planned=planned,
    )


ActivityFiltersDep = Annotated[ActivityFilters, Depends(activity_filters)]


@router.get("", name="list", summary="Activities you can see, newest first", responses=problems(400, 422))
async def list_activities(
    viewer: ReaderDep,
    session: SessionDep,
    filters: ActivityFiltersDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[ActivityRead]:
    found, next_cursor = await service.list_activities(
        session=session, viewer=viewer, filters=filters, limit=limit, cursor=cursor
    )
    now = utcnow()
    return Page(items=[service.present(a, now) for a in found], next_cursor=next_cursor)


@router.get("/{activity_id}", name="get", summary="One activity", responses=problems(404))
async def get_activity(
    activity_id: uuid.UUID, viewer: ReaderDep, session: SessionDep, response: Response
) -> ActivityRead:
    return _read(response, await service.get_activity(session=session, viewer=viewer, activity_id=activity_id))


@router.post(
    "",
    name="create",
    summary="Log or plan an activity, and optionally schedule its next step",
    status_code=201,
    responses=problems(409, 422),
)
async def create_activity(data: ActivityCreate, viewer: WriterDep, session: SessionDep, response: Response) -> Logged:
    activity, follow_up = await service.create_activity(session=session, viewer=viewer, data=data)
    response.headers["Location"] = f"/api/v1/activities/{activity.id}"
    return _logged(response, activity, follow_up)


@router.patch("/{activity_id}", name="update", summary="Change an activity", responses=problems(404, 412, 422))
async def update_activity(
    activity_id: uuid.UUID,
    data: ActivityUpdate,
    viewer: WriterDep,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
) -> ActivityRead:
    activity = await service.update_activity(
        session=session, viewer=viewer, activity_id=activity_id, data=data, expected_version=if_match
    )
    return _read(response, activity)


@router.post(
    "/{activity_id}/complete",
    name="complete",
    summary="Mark a planned activity done, optionally with its outcome and next step",
    responses=problems(404, 409, 412, 422),
)
async def complete_activity(
    activity_id: uuid.UUID,
    viewer: WriterDep,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
    data: ActivityComplete | None = None,
) -> Logged:
    activity, follow_up = await service.complete_activity(
        session=session,
        viewer=viewer,
        activity_id=activity_id,
        data=data or ActivityComplete(),
        expected_version=if_match,
    )
    return _logged(response, activity, follow_up)


@router.post(
    "/{activity_id}/reopen", name="reopen", summary="Mark a done task as not done", responses=problems(404, 409, 412)
)
async def reopen_activity(
    activity_id: uuid.UUID, viewer: WriterDep, session: SessionDep, response: Response, if_match: IfMatchDep
) -> ActivityRead:
    activity = await service.reopen_activity(
        session=session, viewer=viewer, activity_id=activity_id, expected_version=if_match
    )
    return _read(response, activity)


@router.delete(
    "/{activity_id}",
    name="delete",
    summary="Delete an activity (its owner or assignee, their manager or an admin)",
    status_code=204,
    responses=problems(404, 412, 422),
)
async def delete_activity(activity_id: uuid.UUID, viewer: WriterDep, session: SessionDep, if_match: IfMatchDep) -> None:
    await service.delete_activity(session=session, viewer=viewer, activity_id=activity_id, expected_version=if_match)


@me_router.get(
    "/agenda",
    name="agenda",
    summary="Your planned tasks, calls and meetings: overdue, today, and the days ahead",
    responses=problems(422),
)
async def agenda(
    viewer: UserDep,
    session: SessionDep,
    tz: Annotated[
        str | None,
        Query(max_length=64, description="IANA time zone for 'today'; defaults to the organisation's."),
    ] = None,
    days: Annotated[int, Query(ge=1, le=31, description="How many days ahead 'upcoming' covers.")] = 7,
) -> Agenda:
    return await service.agenda(session=session, viewer=viewer, tz=tz, days=days)


routers = (router, me_router)
