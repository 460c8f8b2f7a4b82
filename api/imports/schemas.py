"""API shapes for imports."""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from api.core.schemas import Input, Output, RecordRead
from api.imports.models import ImportEntity, JobStatus, Outcome

Header = Annotated[str, StringConstraints(max_length=255)]


class MappingIn(Input):
    columns: dict[Header, str | None] = Field(
        max_length=200,
        description="Each column (by its header) to a field key (see `fields` on the job), or null to leave it out.",
    )
    match_key: str | None = Field(
        default=None,
        description="Update the record whose value of this field matches (`id`, `emails`, `phones`, `domain`, "
        "`name`); without it, a match by e-mail, phone, web domain or company name merges instead.",
    )
    date_order: Literal["dmy", "mdy"] | None = Field(
        default=None, description="How 03/04/2025 reads; detected from the file (then the locale) when left out."
    )
    decimal_mark: Literal[",", "."] | None = Field(
        default=None, description="The decimal mark of amounts; detected from the file (then the locale)."
    )
    fuzzy_threshold: int | None = Field(
        default=None, ge=70, le=100, description="How alike two company names must be to merge (default 90)."
    )
    save_as: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = Field(
        default=None, description="Save the mapping under this name; files with the same headers get it again."
    )


class Decision(Input):
    field: str
    value: Annotated[str, StringConstraints(max_length=500)]
    action: Literal["map", "create", "reject"]
    target_id: uuid.UUID | None = Field(default=None, description="With `map`: the record the value stands for.")


class Decisions(Input):
    decisions: list[Decision] = Field(default_factory=list, max_length=1000)
    defaults: dict[str, Literal["create", "reject"] | None] = Field(
        default_factory=dict,
        description="What happens to the values of a field nobody decided on (`create`: companies only); null "
        "clears it.",
    )


class ImportJobState(RecordRead):
    """An import as a 412 shows it: what the stale request would have overwritten."""

    status: JobStatus
    mapping: dict[str, str]
    match_key: str | None
    defaults: dict[str, str]


class FieldInfo(Output):
    key: str
    label: str
    kind: str
    required: bool


class ImportJobRead(RecordRead):
    entity: ImportEntity
    status: JobStatus
    created_by_id: uuid.UUID
    file_name: str
    file_format: str
    sheets: list[str]
    sheet: str | None
    encoding: str | None
    delimiter: str | None
    header_row: int
    headers: list[str]
    mapping: dict[str, str]
    match_key: str | None
    options: dict[str, Any]
    defaults: dict[str, str]
    rows_total: int
    rows_done: int = Field(description="Rows the running (or last) phase has worked through.")
    planned: dict[str, int] = Field(description="The dry run's rows per outcome.")
    counts: dict[str, int] = Field(description="The import's rows per outcome.")
    not_undone: int = Field(description="Rows an undo left as they were: someone changed their records meanwhile.")
    finished_at: datetime | None
    fields: list[FieldInfo] = Field(description="What columns can be mapped to.")
    match_keys: list[str]
    undecided: int = Field(description="Values of reference columns that match nothing and wait for a decision.")
    balanced: bool = Field(
        description="rows_total = create + update + merge + reject + skip, for the import (or the dry run before it)."
    )


class ImportValueRead(Output):
    field: str
    value: str
    rows: int
    candidates: list[dict[str, Any]] = Field(description='Closest records, best first: {"id", "label", "score"}.')
    action: str | None
    target_id: uuid.UUID | None


class ImportRowRead(Output):
    row_number: int
    cells: list[Any]
    planned: Outcome | None
    outcome: Outcome | None
    record_id: uuid.UUID | None
    planned_target_id: uuid.UUID | None
    column: str | None
    reason: str | None
    undone_at: datetime | None


class ImportMappingRead(RecordRead):
    name: str
    entity: ImportEntity
    columns: dict[str, str]
    match_key: str | None
