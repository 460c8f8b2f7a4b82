"""Audit: who changed what, field by field, read from the change log (admins only)."""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.auth.deps import AdminDep
from api.auth.principals import Principal
from api.core import examples as ex
from api.core.changes import Change
from api.core.db import SessionDep
from api.core.errors import NotFound, problems
from api.core.examples import examples
from api.core.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, keyset_page

EntityName = Literal[
    "organization",
    "user",
    "team",
    "api_key",
    "product",
    "pipeline",
    "stage",
    "lost_reason",
    "custom_field",
    "company",
    "contact",
    "deal",
    "deal_line",
    "deal_stage_event",
    "activity",
    "import_job",
    "import_mapping",
    "share",
    "webhook_endpoint",
    "segment",
]


class FieldChange(BaseModel):
    field: str
    before: Any = None
    after: Any = None

    model_config = ConfigDict(json_schema_extra=examples({"field": "amount_minor", "before": 980000, "after": 1215000}))


class AuditEntry(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra=examples(
            {
                "id": ex.CHANGE,
                "seq": 1042,
                "entity": "deal",
                "entity_id": ex.DEAL,
                "op": "update",
                "version": 3,
                "actor_kind": "user",
                "actor_id": ex.MARTA,
                "at": "2026-03-09T10:20:00Z",
                "changes": [
                    {
                        "field": "stage_entered_at",
                        "before": "2026-03-02T09:15:00+00:00",
                        "after": "2026-03-09T10:20:00+00:00",
                    },
                    {"field": "stage_id", "before": ex.STAGE_PROSPECT, "after": ex.STAGE_PROPOSAL},
                ],
            }
        ),
    )

    id: uuid.UUID
    seq: int
    entity: str
    entity_id: uuid.UUID
    op: Literal["create", "update", "delete"]
    version: int
    actor_kind: Literal["user", "api_key", "system"]
    actor_id: uuid.UUID | None
    at: datetime
    changes: list[FieldChange]


def _entry(change: Change) -> AuditEntry:
    fields = [FieldChange(field=name, **values) for name, values in sorted(change.fields.items())]
    return AuditEntry.model_validate({**change.model_dump(exclude={"fields"}), "changes": fields})


async def history(
    *,
    session: AsyncSession,
    principal: Principal,
    entity: str | None,
    entity_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Change], str | None]:
    stmt = select(Change).where(col(Change.org_id) == principal.org_id)
    if entity is not None:
        stmt = stmt.where(col(Change.entity) == entity)
    if entity_id is not None:
        stmt = stmt.where(col(Change.entity_id) == entity_id)
    page, next_cursor = await keyset_page(
        session,
        stmt,
        scope="audit",
        keys=[col(Change.seq)],
        key_of=lambda c: (c.seq,),
        limit=limit,
        cursor=cursor,
        descending=True,
    )
    # Every record has a "create" entry, so an empty first page for an id means it is not this organisation's.
    if entity_id is not None and not page and cursor is None:
        raise NotFound("No such record.")
    return page, next_cursor


router = APIRouter(prefix="/audit", tags=["audit"], responses=problems(401, 403))


@router.get("", name="list", summary="Field-level history, newest first (admin)", responses=problems(400, 404, 422))
async def list_audit(
    principal: AdminDep,
    session: SessionDep,
    entity: Annotated[EntityName | None, Query(description="Only this kind of record.")] = None,
    entity_id: Annotated[uuid.UUID | None, Query(description="Only this record.")] = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[AuditEntry]:
    page, next_cursor = await history(
        session=session, principal=principal, entity=entity, entity_id=entity_id, limit=limit, cursor=cursor
    )
    return Page(items=[_entry(c) for c in page], next_cursor=next_cursor)


@router.get("/{change_id}", name="get", summary="One audit entry (admin)", responses=problems(404))
async def get_audit(change_id: uuid.UUID, principal: AdminDep, session: SessionDep) -> AuditEntry:
    change = (
        await session.scalars(select(Change).where(col(Change.id) == change_id, col(Change.org_id) == principal.org_id))
    ).first()
    if change is None:
        raise NotFound("No such audit entry.")
    return _entry(change)
