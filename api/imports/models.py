"""Spreadsheet imports: the job, every input row and what became of it, the values the admin must confirm, and
saved column mappings (DESIGN §3)."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from api.core.models import Record
from api.core.types import JSONType, UTCDateTime


class ImportEntity(StrEnum):
    company = "company"
    contact = "contact"
    deal = "deal"
    activity = "activity"


class JobStatus(StrEnum):
    # Uploaded: the columns wait to be mapped (and unknown values to be confirmed); a dry run may follow. A phase
    # that stopped half-way (its step failed) stays in its running status until it is called again.
    mapping = "mapping"
    previewing = "previewing"
    previewed = "previewed"
    importing = "importing"
    imported = "imported"
    undoing = "undoing"
    undone = "undone"


class Outcome(StrEnum):
    create = "create"
    update = "update"
    merge = "merge"
    reject = "reject"
    skip = "skip"


class ImportJob(Record, table=True):
    __tablename__ = "import_job"

    entity: str = Field(max_length=10)
    created_by_id: uuid.UUID = Field(foreign_key="user.id")
    file_name: str = Field(max_length=255)
    file_format: str = Field(max_length=4)
    sheets: list[str] = Field(default_factory=list, sa_type=JSONType)
    sheet: str | None = Field(default=None, max_length=255)
    encoding: str | None = Field(default=None, max_length=20)
    delimiter: str | None = Field(default=None, max_length=2)
    header_row: int = 1
    headers: list[str] = Field(default_factory=list, sa_type=JSONType)
    # {header: field key}; unmapped headers are left out.
    mapping: dict[str, str] = Field(default_factory=dict, sa_type=JSONType)
    # The field an existing record is matched on for an update (`id`, `email`, `domain`, ...), or none.
    match_key: str | None = Field(default=None, max_length=20)
    # Column-level readings (date order, decimal mark) and the fuzzy threshold, fixed when the mapping is set so a
    # dry run and the import read every cell the same way.
    options: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    # What to do with unknown values nobody decided on, per field: "reject" or "create" (companies only).
    defaults: dict[str, str] = Field(default_factory=dict, sa_type=JSONType)
    status: str = Field(default=JobStatus.mapping.value, max_length=12)
    rows_total: int = 0
    # The last row number the running phase has finished (dry run, import or undo): where it resumes.
    cursor: int = 0
    rows_done: int = 0
    # Totals per outcome, of the dry run and of the import.
    planned: dict[str, int] = Field(default_factory=dict, sa_type=JSONType)
    counts: dict[str, int] = Field(default_factory=dict, sa_type=JSONType)
    # Rows an undo left as they were, because someone changed their records while it ran (each row says so).
    not_undone: int = 0
    # A step of a phase runs under a lease, so two requests (or a crashed one) never run it twice at once.
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ImportRow(Record, table=True):
    """One data row of the file, as read, and what the dry run said and the import did with it."""

    __tablename__ = "import_row"
    __table_args__ = (sa.Index("uq_import_row_job_id_row_number", "job_id", "row_number", unique=True),)

    job_id: uuid.UUID = Field(foreign_key="import_job.id", ondelete="CASCADE")
    row_number: int
    cells: list[Any] = Field(default_factory=list, sa_type=JSONType)
    # A hash of the mapped cells: a row the same as an earlier one is skipped, not imported twice.
    digest: str | None = Field(default=None, max_length=40)
    planned: str | None = Field(default=None, max_length=10)
    planned_target_id: uuid.UUID | None = None
    # Dry run only: the duplicate keys of a row that would create a record, so later rows of the file match it.
    planned_keys: list[list[str]] = Field(default_factory=list, sa_type=JSONType)
    outcome: str | None = Field(default=None, max_length=10)
    record_id: uuid.UUID | None = None
    # Why a row was rejected, merged or skipped, and the column at fault.
    reason: str | None = Field(default=None, max_length=2000)
    column: str | None = Field(default=None, max_length=255)
    # What the import did, record by record, with the values before and after: what an undo puts back.
    steps: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)
    undone_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ImportValue(Record, table=True):
    """A value of a reference column (an owner, a stage, a company...) that matches nothing exactly: the admin
    maps it to a record, has it created (companies) or has its rows rejected."""

    __tablename__ = "import_value"
    __table_args__ = (sa.Index("uq_import_value_job_id_field_folded", "job_id", "field", "folded", unique=True),)

    job_id: uuid.UUID = Field(foreign_key="import_job.id", ondelete="CASCADE")
    field: str = Field(max_length=40)
    value: str = Field(max_length=500)
    folded: str = Field(max_length=500)
    rows: int = 0
    # Records called exactly this: none (a field's default may decide for it) or several (the admin must choose).
    matches: int = 0
    # [{"id", "label", "score"}], best first.
    candidates: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)
    # None until decided; then "map" (with target_id), "create" or "reject".
    action: str | None = Field(default=None, max_length=10)
    target_id: uuid.UUID | None = None


class ImportMapping(Record, table=True):
    """A column mapping saved by name, offered again for files with the same headers."""

    __tablename__ = "import_mapping"

    name: str = Field(max_length=100)
    entity: str = Field(max_length=10)
    columns: dict[str, str] = Field(default_factory=dict, sa_type=JSONType)
    match_key: str | None = Field(default=None, max_length=20)
