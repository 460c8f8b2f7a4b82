"""HTTP routes for the insights and goals."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import HTMLResponse

from api.auth.deps import AdminDep, allow
from api.auth.models import Role
from api.auth.principals import Principal
from api.core.db import SessionDep
from api.core.errors import problems
from api.core.etags import IfMatchDep, set_etag
from api.core.pagination import CursorQuery, LimitQuery, Page
from api.core.types import utcnow
from api.insights import diagnosis as report
from api.insights import goals, sales, team
from api.insights.schemas import (
    Adoption,
    DataQuality,
    Diagnosis,
    Discipline,
    Funnel,
    GoalCreate,
    GoalRead,
    GoalUpdate,
    GoalWithProgress,
    Leaderboard,
    Playbook,
    Retention,
    WinStory,
)
from api.insights.scope import BoardDep, FiltersDep, InsightReaderDep, ScopeDep, resolve

RepeatDaysQuery = Annotated[
    int, Query(ge=1, le=1095, description="A client who has not bought again this many days after a first purchase.")
]
ThresholdQuery = Annotated[
    int, Query(ge=1, le=100, description="Completeness (%) from which a card is well developed.")
]
# Retention is also marketing's: whom to win back, and why clients refuse.
RetentionReaderDep = Annotated[
    Principal, Depends(allow(Role.admin, Role.manager, Role.rep, Role.marketing, scope="insights:read"))
]
SellerDep = Annotated[Principal, Depends(allow(Role.admin, Role.manager, Role.rep))]

router = APIRouter(prefix="/insights", tags=["insights"], responses=problems(401, 403, 404, 422))
goals_router = APIRouter(prefix="/goals", tags=["goals"], responses=problems(401, 403))


@router.get("/funnel", name="funnel", summary="Where deals break: the period's new deals through one pipeline")
async def funnel(scope: ScopeDep, session: SessionDep) -> Funnel:
    return await sales.funnel(session, scope)


@router.get("/leaderboard", name="leaderboard", summary="Who wins: deals won, amounts, win rates, cycle times")
async def leaderboard(scope: BoardDep, session: SessionDep) -> Leaderboard:
    return await sales.leaderboard(session, scope)


@router.get("/playbook", name="playbook", summary="How the top quartile wins, against the rest")
async def playbook(scope: BoardDep, session: SessionDep) -> Playbook:
    return await sales.playbook(session, scope)


@router.get(
    "/wins/{deal_id}", name="win-story", summary="A teammate's won deal, whole timeline oldest first, to learn from"
)
async def win_story(deal_id: uuid.UUID, principal: SellerDep, session: SessionDep) -> WinStory:
    return await sales.win_story(session, principal, deal_id)


@router.get("/retention", name="retention", summary="Repeat purchases, clients who did not come back, lost reasons")
async def retention(
    principal: RetentionReaderDep, session: SessionDep, wanted: FiltersDep, repeat_days: RepeatDaysQuery = 180
) -> Retention:
    scope = await resolve(session, principal, wanted)
    return await sales.retention(session, scope, repeat_days=repeat_days)


@router.get("/discipline", name="discipline", summary="Who misses deadlines: overdue and late tasks per person")
async def discipline(scope: ScopeDep, session: SessionDep) -> Discipline:
    return await team.discipline(session, scope)


@router.get("/data-quality", name="data-quality", summary="Card completeness and well-developed clients per rep")
async def data_quality(
    scope: ScopeDep, session: SessionDep, threshold: ThresholdQuery = team.WELL_DEVELOPED
) -> DataQuality:
    return await team.data_quality(session, scope, threshold=threshold)


@router.get("/adoption", name="adoption", summary="Who works in Fieldbook: per team (from its go-live) and person")
async def adoption(scope: ScopeDep, session: SessionDep) -> Adoption:
    return await team.adoption(session, scope)


@router.get("/diagnosis", name="diagnosis", summary="Where the company loses money, against the previous period")
async def diagnosis(scope: ScopeDep, session: SessionDep, repeat_days: RepeatDaysQuery = 180) -> Diagnosis:
    return await report.diagnosis(session, scope, repeat_days=repeat_days)


@router.get(
    "/diagnosis/print",
    name="diagnosis-print",
    summary="The diagnosis as a printable page, in English or Spanish",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}, "description": "A self-contained HTML page."}},
)
async def diagnosis_print(
    scope: ScopeDep,
    session: SessionDep,
    repeat_days: RepeatDaysQuery = 180,
    lang: Annotated[str | None, Query(pattern="^(en|es)$", description="Default: the browser's language.")] = None,
    accept_language: Annotated[str | None, Header()] = None,
) -> HTMLResponse:
    found = await report.diagnosis(session, scope, repeat_days=repeat_days)
    chosen = report.language(lang, accept_language)
    html = report.render(
        found, lang=chosen, repeat_days=repeat_days, today=utcnow().astimezone(scope.period.zone).date()
    )
    return HTMLResponse(html, headers={"Content-Language": chosen, "Cache-Control": "no-store"})


# Goals


@goals_router.get(
    "", name="list", summary="Goals with each person's progress (yours, or your team's)", responses=problems(400)
)
async def list_goals(
    principal: InsightReaderDep,
    session: SessionDep,
    current: Annotated[bool, Query(description="Only goals running today.")] = False,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> Page[GoalWithProgress]:
    items, next_cursor = await goals.list_goals(
        session=session, principal=principal, current=current, limit=limit, cursor=cursor
    )
    return Page(items=items, next_cursor=next_cursor)


@goals_router.get("/{goal_id}", name="get", summary="One goal with progress", responses=problems(404))
async def get_goal(
    goal_id: uuid.UUID, principal: InsightReaderDep, session: SessionDep, response: Response
) -> GoalWithProgress:
    found = await goals.get_goal(session=session, principal=principal, goal_id=goal_id)
    set_etag(response, found.version)
    return found


@goals_router.post("", name="create", summary="Set a goal (admin)", status_code=201, responses=problems(422))
async def create_goal(data: GoalCreate, principal: AdminDep, session: SessionDep, response: Response) -> GoalRead:
    goal = await goals.create_goal(session=session, principal=principal, data=data)
    response.headers["Location"] = f"/api/v1/goals/{goal.id}"
    set_etag(response, goal.version)
    return GoalRead.model_validate(goal)


@goals_router.patch(
    "/{goal_id}", name="update", summary="Change a goal (admin)", responses=problems(400, 404, 412, 422)
)
async def update_goal(
    goal_id: uuid.UUID,
    data: GoalUpdate,
    principal: AdminDep,
    session: SessionDep,
    response: Response,
    if_match: IfMatchDep,
) -> GoalRead:
    goal = await goals.update_goal(
        session=session, principal=principal, goal_id=goal_id, data=data, expected_version=if_match
    )
    set_etag(response, goal.version)
    return GoalRead.model_validate(goal)


@goals_router.delete(
    "/{goal_id}", name="delete", summary="Remove a goal (admin)", status_code=204, responses=problems(400, 404, 412)
)
async def delete_goal(goal_id: uuid.UUID, principal: AdminDep, session: SessionDep, if_match: IfMatchDep) -> None:
    await goals.delete_goal(session=session, principal=principal, goal_id=goal_id, expected_version=if_match)


routers = (router, goals_router)
