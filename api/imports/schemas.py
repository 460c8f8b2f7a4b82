"""API shapes for imports."""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints

from api.core import examples as ex
from api.core.examples import example_of, examples, record
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

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {
                "columns": {
                    **{"Empresa": "name", "Web": "domain", "Teléfono": "phone", "Ciudad": "city", "Sector": "industry"},
                    "Notas": None,
                },
                "match_key": "domain",
                "save_as": "Clientes de feria",
            },
        ),
    )


class Decision(Input):
    field: str
    value: Annotated[str, StringConstraints(max_length=500)]
    action: Literal["map", "create", "reject"]
    target_id: uuid.UUID | None = Field(default=None, description="With `map`: the record the value stands for.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"field": "owner", "value": "Marta L.", "action": "map", "target_id": ex.MARTA},
        ),
    )


class Decisions(Input):
    decisions: list[Decision] = Field(default_factory=list, max_length=1000)
    defaults: dict[str, Literal["create", "reject"] | None] = Field(
        default_factory=dict,
        description="What happens to the values of a field nobody decided on (`create`: companies only); null "
        "clears it.",
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {
                "decisions": [
                    {"field": "owner", "value": "Marta L.", "action": "map", "target_id": ex.MARTA},
                    {"field": "owner", "value": "comercial2", "action": "reject"},
                ],
                "defaults": {"owner": "reject"},
            },
        ),
    )


class ImportJobState(RecordRead):
    """An import as a 412 shows it: what the stale request would have overwritten."""

    status: JobStatus
    mapping: dict[str, str]
    match_key: str | None
    defaults: dict[str, str]

    model_config = ConfigDict(
        json_schema_extra=examples(
            record(
                ex.JOB,
                version=2,
                status="mapping",
                mapping={
                    "Empresa": "name",
                    "Web": "domain",
                    "Teléfono": "phone",
                    "Ciudad": "city",
                    "Sector": "industry",
                },
                match_key="domain",
                defaults={},
            ),
        ),
    )


class FieldInfo(Output):
    key: str
    label: str
    kind: str
    required: bool

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"key": "domain", "label": "Website", "kind": "domain", "required": False},
        ),
    )


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

    model_config = ConfigDict(
        json_schema_extra=examples(
            record(
                ex.JOB,
                version=3,
                entity="company",
                status="previewed",
                created_by_id=ex.ANA,
                file_name="clientes-feria-2026.csv",
                file_format="csv",
                sheets=[],
                sheet=None,
                encoding="utf-8",
                delimiter=";",
                header_row=1,
                headers=["Empresa", "Web", "Teléfono", "Ciudad", "Sector", "Notas"],
                mapping={
                    "Empresa": "name",
                    "Web": "domain",
                    "Teléfono": "phone",
                    "Ciudad": "city",
                    "Sector": "industry",
                },
                match_key="domain",
                options={"date_order": "dmy", "decimal_mark": ","},
                defaults={},
                rows_total=120,
                rows_done=120,
                planned={"create": 97, "update": 18, "reject": 5},
                counts={},
                not_undone=0,
                finished_at="2026-03-10T16:41:12Z",
                fields=[
                    {"key": "name", "label": "Name", "kind": "text", "required": True},
                    example_of(FieldInfo),
                    {"key": "phone", "label": "Phone", "kind": "phone", "required": False},
                ],
                match_keys=["id", "domain", "name"],
                undecided=0,
                balanced=True,
            ),
        ),
    )


class ImportValueRead(Output):
    field: str
    value: str
    rows: int
    candidates: list[dict[str, Any]] = Field(description='Closest records, best first: {"id", "label", "score"}.')
    action: str | None
    target_id: uuid.UUID | None

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "field": "owner",
                "value": "Marta L.",
                "rows": 14,
                "candidates": [{"id": ex.MARTA, "label": "Marta López", "score": 0.86}],
                "action": None,
                "target_id": None,
            },
        ),
    )


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

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "row_number": 2,
                "cells": [
                    "Frutas Martínez S.L.",
                    "www.frutasmartinez.es",
                    "961 23 45 67",
                    "Valencia",
                    "Alimentación",
                    "",
                ],
                "planned": "update",
                "outcome": None,
                "record_id": None,
                "planned_target_id": ex.COMPANY,
                "column": None,
                "reason": None,
                "undone_at": None,
            },
        ),
    )


class ImportMappingRead(RecordRead):
    name: str
    entity: ImportEntity
    columns: dict[str, str]
    match_key: str | None

    model_config = ConfigDict(
        json_schema_extra=examples(
            record(
                ex.MAPPING,
                name="Clientes de feria",
                entity="company",
                columns={
                    "Empresa": "name",
                    "Web": "domain",
                    "Teléfono": "phone",
                    "Ciudad": "city",
                    "Sector": "industry",
                },
                match_key="domain",
            ),
        ),
    )
