"""API shapes of the sync protocol (DESIGN §7) and the changes feed."""

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.activities.schemas import ActivityRead
from api.auth.schemas import TeamRead, UserRead
from api.clients.schemas import CompanyRead, ContactRead, CustomFieldRead
from api.core import examples as ex
from api.core.examples import example_of, examples
from api.core.schemas import Input
from api.deals.schemas import DealRead, LostReasonRead, PipelineSummary, ProductRead, StageRead

MAX_MUTATIONS = 100
MAX_PULL = 1000
DEFAULT_PULL = 500


class SyncPut(BaseModel):
    """Records to store (insert or replace), by kind, as the API's own reads show them."""

    user: list[UserRead] = Field(default_factory=list)
    team: list[TeamRead] = Field(default_factory=list)
    pipeline: list[PipelineSummary] = Field(default_factory=list)
    stage: list[StageRead] = Field(default_factory=list)
    lost_reason: list[LostReasonRead] = Field(default_factory=list)
    product: list[ProductRead] = Field(default_factory=list)
    custom_field: list[CustomFieldRead] = Field(default_factory=list)
    company: list[CompanyRead] = Field(default_factory=list)
    contact: list[ContactRead] = Field(default_factory=list)
    deal: list[DealRead] = Field(default_factory=list)
    activity: list[ActivityRead] = Field(default_factory=list)

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "company": [example_of(CompanyRead)],
                "contact": [example_of(ContactRead)],
                "deal": [example_of(DealRead)],
                "activity": [example_of(ActivityRead), example_of(ActivityRead, 1)],
            },
        ),
    )


class SyncRemove(BaseModel):
    """Ids of records to drop, by kind: they left your working set (deleted, reassigned, unshared, closed, aged out)."""

    user: list[uuid.UUID] = Field(default_factory=list)
    team: list[uuid.UUID] = Field(default_factory=list)
    pipeline: list[uuid.UUID] = Field(default_factory=list)
    stage: list[uuid.UUID] = Field(default_factory=list)
    lost_reason: list[uuid.UUID] = Field(default_factory=list)
    product: list[uuid.UUID] = Field(default_factory=list)
    custom_field: list[uuid.UUID] = Field(default_factory=list)
    company: list[uuid.UUID] = Field(default_factory=list)
    contact: list[uuid.UUID] = Field(default_factory=list)
    deal: list[uuid.UUID] = Field(default_factory=list)
    activity: list[uuid.UUID] = Field(default_factory=list)

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"deal": [ex.PREVIOUS_DEAL], "activity": ["019b8e2c-51a0-7f3e-a2c4-6d0e9b1f7a58"]},
        ),
    )


class PullPage(BaseModel):
    cursor: str | None = Field(
        description="Keep it, and pass it to the next pull once this page is stored. Null with `reset_required`."
    )
    has_more: bool = Field(description="Pull again at once: the difference did not fit in this page.")
    reset_required: bool = Field(
        description="Your cursor is unknown or too old: drop every stored record (keep the outbox) and pull "
        "without a cursor."
    )
    put: SyncPut
    remove: SyncRemove

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "cursor": "019cae9a-0180-7c3d-9f21-5e8b7a6c4d3e",
                "has_more": False,
                "reset_required": False,
                "put": example_of(SyncPut),
                "remove": example_of(SyncRemove),
            },
        ),
    )


MutationName = Literal[
    "company.create",
    "company.update",
    "contact.create",
    "contact.update",
    "deal.create",
    "deal.update",
    "deal.move",
    "deal.win",
    "deal.lose",
    "activity.log",
    "task.create",
    "task.complete",
    "share.create",
]


class Mutation(Input):
    id: int = Field(ge=1, description="Increasing per app: each mutation takes effect once, however often it is sent.")
    name: MutationName
    args: dict[str, Any] = Field(
        description="What the matching REST call takes: its body, plus `id` of the record for updates and actions."
    )
    base_version: int | None = Field(
        default=None,
        ge=1,
        description="The record's version when the change was made. A deal's stage, amount and owner changed by "
        "someone else since then are not overwritten: the mutation reports a conflict.",
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {
                "id": 42,
                "name": "deal.move",
                "args": {"id": ex.DEAL, "stage_id": ex.STAGE_NEGOTIATION},
                "base_version": 3,
            },
        ),
    )


class PushRequest(Input):
    client_id: uuid.UUID = Field(description="This installed app's id, made once on the device.")
    mutations: list[Mutation] = Field(max_length=MAX_MUTATIONS, description="In the order they were made.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {
                "client_id": ex.CLIENT_APP,
                "mutations": [
                    {
                        "id": 41,
                        "name": "activity.log",
                        "args": {
                            "id": ex.ACTIVITY,
                            "kind": "call",
                            "company_id": ex.COMPANY,
                            "contact_id": ex.CONTACT,
                            "deal_id": ex.DEAL,
                            "done_at": "2026-03-10T17:32:00+01:00",
                            "duration_seconds": 420,
                            "direction": "outbound",
                            "outcome": "connected",
                        },
                    },
                    {
                        "id": 42,
                        "name": "deal.move",
                        "args": {"id": ex.DEAL, "stage_id": ex.STAGE_NEGOTIATION},
                        "base_version": 3,
                    },
                ],
            },
        ),
    )


class MutationResult(BaseModel):
    id: int
    status: Literal["applied", "duplicate", "conflict", "rejected"] = Field(
        description="`duplicate`: applied by an earlier push. `conflict`: the fields in `conflicts` were changed "
        "by someone else since `base_version` and were kept as they are (the rest was applied); `record` is the "
        "server's. `rejected`: nothing was applied; `problem` says why."
    )
    record: dict[str, Any] | None = Field(default=None, description="The record as the server now has it.")
    conflicts: list[str] = Field(default_factory=list)
    problem: dict[str, Any] | None = Field(
        default=None, description="RFC 9457 problem; its pointers are relative to the mutation's `args`."
    )

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"id": 41, "status": "applied", "record": example_of(ActivityRead), "conflicts": [], "problem": None},
            {
                "id": 43,
                "status": "rejected",
                "record": None,
                "conflicts": [],
                "problem": {
                    "type": "/problems/validation",
                    "title": "Validation failed",
                    "status": 422,
                    "detail": "No such lost reason (or it is retired).",
                    "errors": [{"pointer": "#/lost_reason_id", "detail": "No such lost reason (or it is retired)."}],
                },
            },
        ),
    )


class PushResult(BaseModel):
    last_mutation_id: int = Field(description="The newest mutation the server has taken: drop those up to it.")
    results: list[MutationResult]

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "last_mutation_id": 42,
                "results": [
                    example_of(MutationResult),
                    {
                        "id": 42,
                        "status": "conflict",
                        "record": example_of(DealRead),
                        "conflicts": ["stage_id"],
                        "problem": None,
                    },
                ],
            },
        ),
    )


class ChangeItem(BaseModel):
    seq: int = Field(description="Position in the organisation's log; the cursor of the next page starts after it.")
    entity: str
    entity_id: uuid.UUID
    op: Literal["create", "update", "delete"]
    version: int
    fields: list[str] = Field(description="The names of the fields this change set.")
    at: datetime
    actor_kind: str
    actor_id: uuid.UUID | None

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "seq": 1042,
                "entity": "deal",
                "entity_id": ex.DEAL,
                "op": "update",
                "version": 3,
                "fields": ["stage_entered_at", "stage_id"],
                "at": "2026-03-09T10:20:00Z",
                "actor_kind": "user",
                "actor_id": ex.MARTA,
            },
            {
                "seq": 1043,
                "entity": "activity",
                "entity_id": ex.ACTIVITY,
                "op": "create",
                "version": 1,
                "fields": ["company_id", "deal_id", "done_at", "kind", "outcome", "subject"],
                "at": ex.CALLED,
                "actor_kind": "user",
                "actor_id": ex.MARTA,
            },
        ),
    )


class ChangesPage(BaseModel):
    items: list[ChangeItem]
    next_cursor: str = Field(description="Pass as `cursor` to read on; the same value when there is nothing new.")
    has_more: bool

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "items": [example_of(ChangeItem), example_of(ChangeItem, 1)],
                "next_cursor": "1043",
                "has_more": True,
            },
        ),
    )
