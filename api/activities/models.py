"""Activities: calls, meetings, e-mails, notes and tasks, planned or done."""

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field

from api.core.models import Record
from api.core.types import JSONType, UTCDateTime


class ActivityKind(StrEnum):
    call = "call"
    meeting = "meeting"
    email = "email"
    note = "note"
    task = "task"


class CallDirection(StrEnum):
    inbound = "inbound"
    outbound = "outbound"


class CallOutcome(StrEnum):
    connected = "connected"
    no_answer = "no_answer"
    voicemail = "voicemail"
    busy = "busy"


# Kinds that touch the client (a note or a task alone does not).
TOUCH_KINDS = (ActivityKind.call.value, ActivityKind.meeting.value, ActivityKind.email.value)


class Activity(Record, table=True):
    """Planned while `done_at` is empty (a task, a scheduled call or meeting), done once it is set."""

    __table_args__ = (
        sa.CheckConstraint("kind IN ('call', 'meeting', 'email', 'note', 'task')", name="kind"),
        sa.CheckConstraint("direction IS NULL OR direction IN ('inbound', 'outbound')", name="direction"),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('connected', 'no_answer', 'voicemail', 'busy')", name="outcome"
        ),
        sa.CheckConstraint("duration_seconds IS NULL OR duration_seconds >= 0", name="duration"),
        sa.CheckConstraint("done_at IS NOT NULL OR due_at IS NOT NULL", name="planned_or_done"),
        sa.Index("ix_activity_org_id_assignee_id_done_at_due_at", "org_id", "assignee_id", "done_at", "due_at"),
        sa.Index("ix_activity_org_id_company_id_done_at", "org_id", "company_id", "done_at"),
        sa.Index("ix_activity_org_id_contact_id_done_at", "org_id", "contact_id", "done_at"),
        sa.Index("ix_activity_org_id_deal_id_done_at", "org_id", "deal_id", "done_at"),
        sa.Index("ix_activity_org_id_owner_id_done_at", "org_id", "owner_id", "done_at"),
        sa.Index("ix_activity_org_id_id", "org_id", "id"),
    )

    kind: str = Field(max_length=10)
    subject: str = Field(max_length=200)
    body: str | None = Field(default=None, max_length=10_000)
    company_id: uuid.UUID | None = Field(default=None, foreign_key="company.id")
    contact_id: uuid.UUID | None = Field(default=None, foreign_key="contact.id")
    deal_id: uuid.UUID | None = Field(default=None, foreign_key="deal.id")
    # Who logged it; the assignee is who has to do it (the owner unless delegated).
    owner_id: uuid.UUID = Field(foreign_key="user.id")
    assignee_id: uuid.UUID = Field(foreign_key="user.id")
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    duration_seconds: int | None = None
    direction: str | None = Field(default=None, max_length=10)
    outcome: str | None = Field(default=None, max_length=10)
    # The follow-up scheduled when this one was logged.
    next_step_id: uuid.UUID | None = Field(default=None, foreign_key="activity.id")
    mentioned_ids: list[str] = Field(default_factory=list, sa_type=JSONType)
