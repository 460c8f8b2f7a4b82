"""Activities: log what happened (a call and its outcome, a meeting, an e-mail, a note), plan what comes next
(tasks, scheduled calls and meetings), complete and reopen; and each user's agenda."""

import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.activities.models import Activity, ActivityKind
from api.activities.schemas import (
    ActivityComplete,
    ActivityCreate,
    ActivityRead,
    ActivityUpdate,
    Agenda,
    NextStep,
)
from api.auth.models import Organization
from api.clients.models import Company, Contact
from api.core import changes
from api.core.errors import Conflict, Forbidden, ValidationFailed
from api.core.etags import ensure_version
from api.core.ids import new_id
from api.core.pagination import keyset_page
from api.core.schemas import changed_fields
from api.core.types import utcnow
from api.deals import deals
from api.deals.models import Deal
from api.feed.models import FeedKind
from api.feed.service import emit
from api.sharing.visibility import (
    Viewer,
    activity_filter,
    can_see,
    check_colleagues,
    check_owner,
    company_of_contact,
    ensure_owner,
    ensure_visible_ref,
    get_visible,
    get_writable,
    in_org,
    scan_window,
)

KIND_NAMES = {
    "en": {"call": "Call", "meeting": "Meeting", "email": "E-mail", "note": "Note", "task": "Task"},
    "es": {"call": "Llamada", "meeting": "Reunión", "email": "Correo", "note": "Nota", "task": "Tarea"},
}
# Planned kinds: created without done_at they need a due time.
PLANNED = (ActivityKind.task, ActivityKind.meeting)
AGENDA_LIMIT = 100


def _overdue(due_at: datetime | None, done_at: datetime | None, now: datetime) -> bool:
    return done_at is None and due_at is not None and due_at < now


def overdue_sql(columns: Any, now: Any) -> dict[str, sa.ColumnElement[Any]]:
    """`_overdue` in SQL, over an activity row's `columns`, for responses PostgreSQL writes."""
    return {"overdue": sa.and_(columns.done_at.is_(None), columns.due_at.is_not(None), columns.due_at < now)}


def present(activity: Activity, now: datetime | None = None) -> ActivityRead:
    overdue = _overdue(activity.due_at, activity.done_at, now or utcnow())
    return ActivityRead.model_validate({**activity.model_dump(), "overdue": overdue})


async def _org_settings(session: AsyncSession, org_id: uuid.UUID) -> dict[str, Any]:
    found = await session.scalar(select(Organization.settings).where(col(Organization.id) == org_id))
    return dict(found or {})


async def _default_subject(session: AsyncSession, org_id: uuid.UUID, kind: ActivityKind) -> str:
    language = str((await _org_settings(session, org_id)).get("locale", "en")).split("-")[0]
    return KIND_NAMES.get(language, KIND_NAMES["en"])[kind.value]


async def _links(session: AsyncSession, viewer: Viewer, fields: dict[str, Any]) -> None:
    """Check the company, contact and deal an activity is about, and fill in what they imply (a contact's company,
    a deal's client) so that every card the activity belongs to finds it by one column."""
    given_company = fields.get("company_id")
    if given_company is not None:
        await ensure_visible_ref(session, viewer, Company, given_company, "#/company_id")
    if fields.get("contact_id") is not None:
        await ensure_visible_ref(session, viewer, Contact, fields["contact_id"], "#/contact_id")
    if fields.get("deal_id") is not None:
        await ensure_visible_ref(session, viewer, Deal, fields["deal_id"], "#/deal_id")
        deal = await session.get(Deal, fields["deal_id"])
        assert deal is not None
        # The deal's client, as far as the viewer sees it (the deal is visible; its client may not be).
        if (
            fields.get("contact_id") is None
            and deal.contact_id
            and await can_see(session, viewer, Contact, deal.contact_id)
        ):
            fields["contact_id"] = deal.contact_id
        if given_company is None and deal.company_id and await can_see(session, viewer, Company, deal.company_id):
            fields["company_id"] = deal.company_id
    if fields.get("company_id") is None and fields.get("contact_id") is not None:
        fields["company_id"] = await company_of_contact(session, viewer, fields["contact_id"])


def _check_call_fields(kind: ActivityKind, fields: dict[str, Any]) -> None:
    for name in ("direction", "outcome"):
        if fields.get(name) is not None and kind is not ActivityKind.call:
            raise ValidationFailed.field(f"#/{name}", "Only calls have a direction and an outcome.")


async def _done(session: AsyncSession, viewer: Viewer, activity: Activity) -> None:
    """An activity happened: the feed hears of it and its deal is fresh again."""
    assert activity.done_at is not None
    if activity.deal_id is not None:
        await deals.touch(session, activity.deal_id, activity.done_at)
    await emit(
        session,
        viewer.principal,
        FeedKind.activity,
        at=activity.done_at,
        company_id=activity.company_id,
        contact_id=activity.contact_id,
        deal_id=activity.deal_id,
        activity_id=activity.id,
    )


async def _schedule(session: AsyncSession, viewer: Viewer, parent: Activity, step: NextStep) -> Activity:
    assignee_id = step.assignee_id or viewer.user_id or parent.assignee_id
    await check_colleagues(session, viewer, [assignee_id], "#/next_step/assignee_id")
    follow_up = Activity(
        id=step.id or new_id(),
        org_id=viewer.org_id,
        kind=step.kind.value,
        subject=step.subject or await _default_subject(session, viewer.org_id, step.kind),
        company_id=parent.company_id,
        contact_id=parent.contact_id,
        deal_id=parent.deal_id,
        owner_id=parent.owner_id,
        assignee_id=assignee_id,
        due_at=step.due_at,
    )
    await changes.create(session, viewer.principal, "activity", follow_up)
    return follow_up


async def create_activity(
    *, session: AsyncSession, viewer: Viewer, data: ActivityCreate
) -> tuple[Activity, Activity | None]:
    """Log or plan an activity, and schedule its next step in the same transaction when one is given."""
    if viewer.read_only:
        raise Forbidden("Your role does not log activities.")
    fields = data.model_dump(exclude={"id", "next_step", "mentioned_ids"})
    _check_call_fields(data.kind, fields)
    owner_id = data.owner_id or viewer.user_id
    if owner_id is None:
        raise ValidationFailed.field("#/owner_id", "Name who logged it: an API key is no one.")
    if owner_id != viewer.user_id:
        await check_owner(session, viewer, owner_id)
    fields["owner_id"] = owner_id
    fields["assignee_id"] = data.assignee_id or owner_id
    await check_colleagues(session, viewer, [fields["assignee_id"]], "#/assignee_id")
    await check_colleagues(session, viewer, data.mentioned_ids, "#/mentioned_ids/{index}")
    await _links(session, viewer, fields)
    if data.done_at is None and data.due_at is None:
        if data.kind in PLANNED:
            raise ValidationFailed.field(
                "#/due_at", f"A {data.kind.value} needs a due time (or done_at if it is done)."
            )
        fields["done_at"] = utcnow()
    fields["subject"] = data.subject or await _default_subject(session, viewer.org_id, data.kind)
    activity = Activity(
        **fields,
        id=data.id or new_id(),
        org_id=viewer.org_id,
        mentioned_ids=[str(u) for u in dict.fromkeys(data.mentioned_ids)],
    )
    follow_up = await _schedule(session, viewer, activity, data.next_step) if data.next_step else None
    activity.next_step_id = follow_up.id if follow_up else None
    await changes.create(session, viewer.principal, "activity", activity)
    if activity.done_at is not None:
        await _done(session, viewer, activity)
    for user_id in dict.fromkeys(data.mentioned_ids):
        await emit(
            session,
            viewer.principal,
            FeedKind.mentioned,
            at=activity.created_at,
            company_id=activity.company_id,
            contact_id=activity.contact_id,
            deal_id=activity.deal_id,
            activity_id=activity.id,
            user_id=user_id,
        )
    return activity, follow_up


async def get_activity(*, session: AsyncSession, viewer: Viewer, activity_id: uuid.UUID) -> Activity:
    return await get_visible(session, viewer, Activity, activity_id, "activity")


async def _writable(
    session: AsyncSession, viewer: Viewer, activity_id: uuid.UUID, expected_version: int | None
) -> Activity:
    activity = await get_writable(session, viewer, Activity, activity_id, "activity")
    ensure_version(activity, expected_version, present)
    return activity


async def update_activity(
    *,
    session: AsyncSession,
    viewer: Viewer,
    activity_id: uuid.UUID,
    data: ActivityUpdate,
    expected_version: int | None,
) -> Activity:
    activity = await _writable(session, viewer, activity_id, expected_version)
    fields = changed_fields(data)
    _check_call_fields(ActivityKind(activity.kind), fields)
    if "assignee_id" in fields:
        await check_colleagues(session, viewer, [fields["assignee_id"]], "#/assignee_id")
    if {"company_id", "contact_id", "deal_id"} & fields.keys():
        links = {name: fields.get(name, getattr(activity, name)) for name in ("company_id", "contact_id", "deal_id")}
        await _links(session, viewer, links)
        fields.update(links)
    if "due_at" in fields and fields["due_at"] is None and activity.done_at is None:
        raise ValidationFailed.field("#/due_at", "A planned activity needs a due time.")
    await changes.update(session, viewer.principal, "activity", activity, fields)
    return activity


async def complete_activity(
    *,
    session: AsyncSession,
    viewer: Viewer,
    activity_id: uuid.UUID,
    data: ActivityComplete,
    expected_version: int | None,
) -> tuple[Activity, Activity | None]:
    """Mark a planned activity done (a task ticked off, a scheduled call made), optionally with the call's
    outcome and the next step."""
    activity = await _writable(session, viewer, activity_id, expected_version)
    if activity.done_at is not None:
        raise Conflict("This activity is done already.")
    fields = data.model_dump(exclude={"next_step"}, exclude_none=True)
    _check_call_fields(ActivityKind(activity.kind), fields)
    fields["done_at"] = fields.get("done_at") or utcnow()
    follow_up = await _schedule(session, viewer, activity, data.next_step) if data.next_step else None
    if follow_up is not None:
        fields["next_step_id"] = follow_up.id
    await changes.update(session, viewer.principal, "activity", activity, fields)
    await _done(session, viewer, activity)
    return activity, follow_up


async def reopen_activity(
    *, session: AsyncSession, viewer: Viewer, activity_id: uuid.UUID, expected_version: int | None
) -> Activity:
    activity = await _writable(session, viewer, activity_id, expected_version)
    if activity.done_at is None:
        raise Conflict("This activity is not done.")
    if activity.due_at is None:
        raise Conflict("Only planned activities (with a due time) can be reopened.")
    await changes.update(session, viewer.principal, "activity", activity, {"done_at": None})
    return activity


async def delete_activity(
    *, session: AsyncSession, viewer: Viewer, activity_id: uuid.UUID, expected_version: int | None
) -> None:
    activity = await _writable(session, viewer, activity_id, expected_version)
    if viewer.user_id not in (activity.owner_id, activity.assignee_id):
        ensure_owner(viewer, activity.owner_id)
    await changes.delete(session, viewer.principal, "activity", activity)


@dataclass(frozen=True)
class ActivityFilters:
    """What a list of activities (and its export) is narrowed to."""

    kind: ActivityKind | None = None
    company_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    deal_id: uuid.UUID | None = None
    assignee_id: uuid.UUID | None = None
    # Only planned (True) or only done (False).
    planned: bool | None = None


def matching_activities(viewer: Viewer, filters: ActivityFilters) -> Any:
    """The activities matching the filters, before visibility (`activity_filter`): the list and the export start
    from this."""
    stmt = in_org(viewer, Activity)
    equal = {
        col(Activity.kind): filters.kind.value if filters.kind else None,
        col(Activity.company_id): filters.company_id,
        col(Activity.contact_id): filters.contact_id,
        col(Activity.deal_id): filters.deal_id,
        col(Activity.assignee_id): filters.assignee_id,
    }
    for column, value in equal.items():
        if value is not None:
            stmt = stmt.where(column == value)
    if filters.planned is not None:
        done = col(Activity.done_at)
        stmt = stmt.where(done.is_(None) if filters.planned else done.is_not(None))
    return stmt


async def list_activities(
    *, session: AsyncSession, viewer: Viewer, filters: ActivityFilters, limit: int, cursor: str | None
) -> tuple[list[Activity], str | None]:
    """Newest first."""
    stmt = matching_activities(viewer, filters)
    scope, keys = "activity-list", [col(Activity.id)]
    return await keyset_page(
        session,
        stmt.where(activity_filter(viewer)),
        scope=scope,
        keys=keys,
        key_of=lambda a: (a.id,),
        limit=limit,
        cursor=cursor,
        descending=True,
        until=await scan_window(session, viewer, stmt, scope=scope, keys=keys, cursor=cursor),
    )


async def time_zone(session: AsyncSession, org_id: uuid.UUID, requested: str | None) -> ZoneInfo:
    name = requested or str((await _org_settings(session, org_id)).get("time_zone", "UTC"))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(
            "Unknown time zone.",
            errors=[{"in": "query", "parameter": "tz", "detail": "an IANA name, e.g. Europe/Madrid"}],
        ) from exc


async def agenda(*, session: AsyncSession, viewer: Viewer, tz: str | None, days: int) -> Agenda:
    """The caller's planned activities: overdue (due before now), the rest of today (in their time zone), and the
    next `days` days."""
    zone = await time_zone(session, viewer.org_id, tz)
    now = utcnow()
    start = datetime.combine(now.astimezone(zone).date(), time(), zone)
    end_of_today = start + timedelta(days=1)
    horizon = start + timedelta(days=days + 1)
    base = (
        select(Activity)
        .where(
            col(Activity.org_id) == viewer.org_id,
            col(Activity.deleted_at).is_(None),
            col(Activity.assignee_id) == viewer.user_id,
            col(Activity.done_at).is_(None),
        )
        .order_by(col(Activity.due_at), col(Activity.id))
        .limit(AGENDA_LIMIT)
    )

    async def between(low: datetime | None, high: datetime) -> list[ActivityRead]:
        stmt = base.where(col(Activity.due_at) < high)
        if low is not None:
            stmt = stmt.where(col(Activity.due_at) >= low)
        return [present(a, now) for a in (await session.scalars(stmt)).all()]

    return Agenda(
        time_zone=zone.key,
        overdue=await between(None, now),
        today=await between(now, end_of_today),
        upcoming=await between(end_of_today, horizon),
    )


def present_row(row: Any, now: datetime) -> ActivityRead:
    """An activity read as a Core row (hot read paths: cards)."""
    values = dict(row._mapping)
    return ActivityRead.model_validate({**values, "overdue": _overdue(values["due_at"], values["done_at"], now)})
