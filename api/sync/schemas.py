"""API shapes of the sync protocol (DESIGN §7) and the changes feed."""

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from api.activities.schemas import ActivityRead
from api.auth.schemas import TeamRead, UserRead
from api.clients.schemas import CompanyRead, ContactRead, CustomFieldRead
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


class PushRequest(Input):
    client_id: uuid.UUID = Field(description="This installed app's id, made once on the device.")
    mutations: list[Mutation] = Field(max_length=MAX_MUTATIONS, description="In the order they were made.")


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


class PushResult(BaseModel):
    last_mutation_id: int = Field(description="The newest mutation the server has taken: drop those up to it.")
    results: list[MutationResult]


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


class ChangesPage(BaseModel):
    items: list[ChangeItem]
    next_cursor: str = Field(description="Pass as `cursor` to read on; the same value when there is nothing new.")
    has_more: bool
