"""Responses written by PostgreSQL: the hot reads build their JSON in the statement that reads the rows, so the
app neither turns rows into Python objects nor serialises them (bench/RESULTS.md measures what this saves).

The fields and their formats are the read schemas' (Pydantic's JSON): tests compare each response built this way
with the same response built from Python objects. PostgreSQL only; SQLite builds its responses in Python."""

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.dialects.postgresql import aggregate_order_by

from api.core.types import UTCDateTime

EMPTY_LIST = sa.text("'[]'::json")


def _text(value: str) -> sa.ColumnElement[str]:
    # Written into the statement, not bound: the statements are built once, and every bound value costs per request.
    return sa.literal_column(f"'{value}'", sa.Text)


def iso(column: Any) -> sa.ColumnElement[str]:
    """A timestamp as Pydantic writes it: `2026-01-01T05:04:03Z`, with `.ffffff` when it has microseconds."""
    utc = sa.func.timezone(_text("UTC"), column)
    micros = sa.cast(sa.extract("microseconds", utc), sa.BigInteger)
    whole = micros % sa.literal_column("1000000") == sa.literal_column("0")
    fraction = sa.case((whole, _text("")), else_=sa.func.to_char(utc, _text('"."US')))
    return sa.func.to_char(utc, _text('YYYY-MM-DD"T"HH24:MI:SS')) + fraction + _text("Z")


def field(column: Any) -> Any:
    """A column as its schema field reads in JSON (timestamps are the one type whose text differs)."""
    return iso(column) if isinstance(column.type, UTCDateTime) else column


def obj(pairs: Iterable[tuple[str, Any]]) -> sa.ColumnElement[Any]:
    """`json_build_object(name, value, …)`."""
    return sa.func.json_build_object(*(part for name, value in pairs for part in (sa.literal(name), value)))


def record(
    schema: type[BaseModel], columns: Any, computed: Mapping[str, sa.ColumnElement[Any]] | None = None
) -> sa.ColumnElement[Any]:
    """The JSON object of one `schema` record from a row's `columns` (a table's or a subquery's `.c`); fields that
    are not columns come from `computed`."""
    extra = computed or {}
    return obj((name, extra[name] if name in extra else field(columns[name])) for name in schema.model_fields)


def array(element: Any, *order_by: Any, where: Any = None) -> sa.ColumnElement[Any]:
    """`coalesce(json_agg(element ORDER BY …) FILTER (WHERE …), '[]')`: a list, empty rather than null."""
    aggregated: Any = sa.func.json_agg(aggregate_order_by(element, *order_by) if order_by else element)
    if where is not None:
        aggregated = aggregated.filter(where)
    return sa.func.coalesce(aggregated, EMPTY_LIST)


def text(expression: Any) -> sa.ColumnElement[str]:
    """The JSON as text: what the response sends, unparsed (asyncpg would decode a `json` value into objects)."""
    return sa.cast(expression, sa.Text)
