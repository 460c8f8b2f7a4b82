"""API shapes for activities and the agenda."""

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from api.activities.models import ActivityKind, CallDirection, CallOutcome
from api.core import examples as ex
from api.core.examples import example_of, examples, record
from api.core.schemas import Input, RecordRead, optional
from api.core.types import Instant, no_nul

Subject = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(no_nul)]
Body = Annotated[str, StringConstraints(max_length=10_000), AfterValidator(no_nul)]
Duration = Annotated[int, Field(ge=0, le=86_400, description="Seconds.")]
Mentions = Annotated[list[uuid.UUID], Field(max_length=20, description="Colleagues to notify (@mentions).")]


class ActivityRead(RecordRead):
    kind: ActivityKind
    subject: str
    body: str | None
    company_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    deal_id: uuid.UUID | None
    owner_id: uuid.UUID
    assignee_id: uuid.UUID
    due_at: datetime | None
    done_at: datetime | None
    duration_seconds: int | None
    direction: CallDirection | None
    outcome: CallOutcome | None
    next_step_id: uuid.UUID | None
    mentioned_ids: list[uuid.UUID]
    overdue: bool = Field(description="Planned, and its due time has passed.")

    model_config = ConfigDict(
        json_schema_extra=examples(
            record(
                ex.ACTIVITY,
                kind="call",
                subject="Llamada de seguimiento",
                body="Quieren cambiar los 30 terminales antes de Fallas; piden precio con instalación.",
                company_id=ex.COMPANY,
                contact_id=ex.CONTACT,
                deal_id=ex.DEAL,
                owner_id=ex.MARTA,
                assignee_id=ex.MARTA,
                due_at=None,
                done_at=ex.CALLED,
                duration_seconds=420,
                direction="outbound",
                outcome="connected",
                next_step_id=ex.TASK,
                mentioned_ids=[ex.LUIS],
                overdue=False,
            ),
            record(
                ex.TASK,
                kind="task",
                subject="Enviar propuesta revisada",
                body=None,
                company_id=ex.COMPANY,
                contact_id=ex.CONTACT,
                deal_id=ex.DEAL,
                owner_id=ex.MARTA,
                assignee_id=ex.MARTA,
                due_at=ex.DUE,
                done_at=None,
                duration_seconds=None,
                direction=None,
                outcome=None,
                next_step_id=None,
                mentioned_ids=[],
                overdue=False,
            ),
        ),
    )


class NextStep(Input):
    """The follow-up to schedule with the activity being logged ("call back on Tuesday")."""

    id: uuid.UUID | None = Field(
        default=None, description="A UUIDv7 made by the client (an offline app shows the task before it syncs)."
    )
    kind: ActivityKind = ActivityKind.task
    subject: Subject | None = None
    due_at: Instant
    assignee_id: uuid.UUID | None = Field(default=None, description="Defaults to you.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"kind": "task", "subject": "Enviar propuesta revisada", "due_at": "2026-03-17T09:00:00+01:00"},
        ),
    )


class ActivityCreate(Input):
    id: uuid.UUID | None = Field(default=None, description="A UUIDv7 made by the client; one is made when left out.")
    kind: ActivityKind
    subject: Subject | None = Field(default=None, description="Defaults to the kind's name (e.g. `Call`).")
    body: Body | None = None
    company_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    deal_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = Field(default=None, description="Who logged it; defaults to you.")
    assignee_id: uuid.UUID | None = Field(default=None, description="Who has to do it; defaults to the owner.")
    due_at: Instant | None = Field(default=None, description="When it is planned (tasks and meetings need one).")
    done_at: Instant | None = Field(
        default=None, description="When it happened; calls, e-mails and notes without due_at default to now."
    )
    duration_seconds: Duration | None = None
    direction: CallDirection | None = None
    outcome: CallOutcome | None = None
    mentioned_ids: Mentions = Field(default_factory=list)
    next_step: NextStep | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {
                "kind": "call",
                "subject": "Llamada de seguimiento",
                "body": "Quieren cambiar los 30 terminales antes de Fallas; piden precio con instalación.",
                "company_id": ex.COMPANY,
                "contact_id": ex.CONTACT,
                "deal_id": ex.DEAL,
                "done_at": "2026-03-10T17:32:00+01:00",
                "duration_seconds": 420,
                "direction": "outbound",
                "outcome": "connected",
                "mentioned_ids": [ex.LUIS],
                "next_step": {
                    "kind": "task",
                    "subject": "Enviar propuesta revisada",
                    "due_at": "2026-03-17T09:00:00+01:00",
                },
            },
        ),
    )


class ActivityUpdate(Input):
    subject: Subject | None = optional()
    body: Body | None = None
    company_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    deal_id: uuid.UUID | None = None
    assignee_id: uuid.UUID | None = optional()
    due_at: Instant | None = None
    duration_seconds: Duration | None = None
    direction: CallDirection | None = None
    outcome: CallOutcome | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"subject": "Llamada: precio con instalación", "duration_seconds": 480},
        ),
    )


class ActivityComplete(Input):
    done_at: Instant | None = Field(default=None, description="Defaults to now.")
    outcome: CallOutcome | None = None
    duration_seconds: Duration | None = None
    next_step: NextStep | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {
                "outcome": "connected",
                "duration_seconds": 300,
                "next_step": {
                    "kind": "meeting",
                    "subject": "Demostración en tienda",
                    "due_at": "2026-03-20T10:00:00+01:00",
                },
            },
        ),
    )


class Logged(BaseModel):
    """What one request logged: the activity and, when asked for, its next step."""

    activity: ActivityRead
    next_step: ActivityRead | None = None

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"activity": example_of(ActivityRead), "next_step": example_of(ActivityRead, 1)},
        ),
    )


class Agenda(BaseModel):
    time_zone: str
    overdue: list[ActivityRead]
    today: list[ActivityRead]
    upcoming: list[ActivityRead]

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"time_zone": "Europe/Madrid", "overdue": [], "today": [example_of(ActivityRead, 1)], "upcoming": []},
        ),
    )
