"""How complete a client card is: one set of SQL flags, read by the card for one client and summed by the insights
over all of a rep's clients, so the two can never disagree."""

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.clients.models import ClientKind, Company, Contact, CustomField
from api.core.types import json_array_length

# What a complete card has, besides the organisation's custom fields (and, for a company, at least one contact).
COMPANY_FIELDS = ("domain", "phone", "industry", "size", "address", "city", "country", "segment", "source")
CONTACT_FIELDS = ("emails", "phones", "title", "company_id", "segment", "source")
LIST_FIELDS = frozenset({"emails", "phones"})


async def custom_keys(session: AsyncSession, org_id: uuid.UUID, kind: ClientKind) -> list[str]:
    rows = await session.scalars(
        sa.select(col(CustomField.key))
        .where(
            col(CustomField.org_id) == org_id,
            col(CustomField.entity) == kind.value,
            col(CustomField.deleted_at).is_(None),
        )
        .order_by(col(CustomField.position), col(CustomField.key))
    )
    return list(rows)


def _filled(column: Any, name: str) -> sa.ColumnElement[bool]:
    if name in LIST_FIELDS:
        return sa.and_(column.is_not(None), json_array_length(column) > 0)
    if isinstance(column.type, sa.String):
        return sa.and_(column.is_not(None), column != "")
    filled: sa.ColumnElement[bool] = column.is_not(None)
    return filled


def flags(kind: ClientKind, keys: list[str], table: Any = None) -> list[tuple[str, sa.ColumnElement[int]]]:
    """(name, 1 when filled else 0) for every expected field of a company or contact row of `table`."""
    model = Company if kind is ClientKind.company else Contact
    table = table if table is not None else sa.inspect(model).local_table
    names = COMPANY_FIELDS if kind is ClientKind.company else CONTACT_FIELDS
    conditions = [(name, _filled(table.c[name], name)) for name in names]
    if kind is ClientKind.company:
        contact = sa.inspect(Contact).local_table
        has_contact = (
            sa.select(sa.literal(1))
            .where(
                contact.c.org_id == table.c.org_id, contact.c.company_id == table.c.id, contact.c.deleted_at.is_(None)
            )
            .exists()
        )
        conditions.append(("contacts", has_contact))
    for key in keys:
        value = table.c.custom[key].as_string()
        conditions.append((f"custom.{key}", sa.and_(value.is_not(None), value != "")))
    return [(name, sa.case((condition, 1), else_=0)) for name, condition in conditions]


def filled_count(kind: ClientKind, keys: list[str], table: Any = None) -> tuple[sa.ColumnElement[int], int]:
    """How many expected fields a row fills, and how many there are."""
    parts = flags(kind, keys, table)
    return sum((flag for _, flag in parts[1:]), parts[0][1]), len(parts)
