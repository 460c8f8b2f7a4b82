"""Column types that behave the same on SQLite and PostgreSQL, and input string types shared by schemas."""

import re
import unicodedata
from datetime import UTC, date, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, StringConstraints
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler


class UTCDateTime(sa.TypeDecorator[datetime]):
    """timestamptz on PostgreSQL; on SQLite, which has no time zones, stored as UTC and returned aware."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


# JSONB on PostgreSQL (indexable, compact); JSON text on SQLite.
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class json_array_has(sa.sql.functions.FunctionElement[bool]):
    """`json_array_has(column, value)`: the JSON array in `column` holds `value` (a tag filter)."""

    type = sa.Boolean()
    inherit_cache = True


@compiles(json_array_has, "postgresql")
def _json_array_has_pg(element: json_array_has, compiler: SQLCompiler, **kw: Any) -> str:
    column, value = list(element.clauses)
    # jsonb containment: the GIN-indexable form.
    return f"({compiler.process(column, **kw)} @> jsonb_build_array(CAST({compiler.process(value, **kw)} AS TEXT)))"


@compiles(json_array_has, "sqlite")
def _json_array_has_sqlite(element: json_array_has, compiler: SQLCompiler, **kw: Any) -> str:
    column, value = list(element.clauses)
    return (
        f"EXISTS (SELECT 1 FROM json_each({compiler.process(column, **kw)}) "
        f"WHERE json_each.value = {compiler.process(value, **kw)})"
    )


class json_array_length(sa.sql.functions.FunctionElement[int]):
    """`json_array_length(column)`: how many items the JSON array in `column` holds."""

    type = sa.Integer()
    inherit_cache = True


@compiles(json_array_length, "postgresql")
def _json_array_length_pg(element: json_array_length, compiler: SQLCompiler, **kw: Any) -> str:
    return f"jsonb_array_length({compiler.process(next(iter(element.clauses)), **kw)})"


@compiles(json_array_length, "sqlite")
def _json_array_length_sqlite(element: json_array_length, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_array_length({compiler.process(next(iter(element.clauses)), **kw)})"


class seconds_between(sa.sql.functions.FunctionElement[float]):
    """`seconds_between(later, earlier)`: the time from one timestamp to another, in seconds."""

    type = sa.Float()
    inherit_cache = True


@compiles(seconds_between, "postgresql")
def _seconds_between_pg(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"


@compiles(seconds_between, "sqlite")
def _seconds_between_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    # julianday is fractional days; rounding to the microsecond keeps equal instants exactly 0 apart.
    return f"ROUND((julianday({later}) - julianday({earlier})) * 86400.0, 6)"


class local_day(sa.sql.functions.FunctionElement[str]):
    """`local_day(at, offset_seconds)`: the calendar day (YYYY-MM-DD text) of a UTC timestamp at a fixed UTC offset.

    A fixed offset (the organisation's at the end of the period), not a zone: SQLite knows no zones, and both
    databases must count the same days."""

    type = sa.String()
    inherit_cache = True


@compiles(local_day, "postgresql")
def _local_day_pg(element: local_day, compiler: SQLCompiler, **kw: Any) -> str:
    at, offset = (compiler.process(c, **kw) for c in element.clauses)
    return f"to_char(({at} AT TIME ZONE 'UTC') + {offset} * INTERVAL '1 second', 'YYYY-MM-DD')"


@compiles(local_day, "sqlite")
def _local_day_sqlite(element: local_day, compiler: SQLCompiler, **kw: Any) -> str:
    at, offset = (compiler.process(c, **kw) for c in element.clauses)
    return f"date({at}, ({offset}) || ' seconds')"


def utcnow() -> datetime:
    return datetime.now(UTC)


def no_nul(value: str) -> str:
    # PostgreSQL refuses U+0000 in text; reject it as bad input rather than fail at write time.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def fold(value: str) -> str:
    """Lower-case and strip accents, so that 'jose' finds 'José' (Spanish-speaking teams type without them)."""
    decomposed = unicodedata.normalize("NFKD", value.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_pattern(term: str) -> str:
    """A LIKE pattern (escape character `\\`) matching `term` anywhere."""
    return f"%{_escape_like(term)}%"


def prefix_pattern(term: str) -> str:
    """A LIKE pattern (escape character `\\`) matching values that start with `term`: it can use an index."""
    return f"{_escape_like(term)}%"


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# A moment sent by a client: it must say its offset (a phone's local wall time is ambiguous); kept and echoed in UTC.
Instant = Annotated[AwareDatetime, AfterValidator(_to_utc)]

# Calendar days people type (goals, go-lives, report periods): bounded so that date arithmetic and time zones never
# overflow (a day next to year 1 or 9999 has no midnight in every zone).
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2199, 12, 31)
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_day(value: Any) -> Any:
    # Pydantic reads a number, or a string of digits, as a Unix time: `?to=0` was 1970-01-01. A day is sent as the
    # document says, `YYYY-MM-DD`.
    if isinstance(value, date) or (isinstance(value, str) and _ISO_DAY.fullmatch(value)):
        return value
    raise ValueError("Expected a day as YYYY-MM-DD")


Day = Annotated[date, BeforeValidator(_iso_day), Field(ge=FIRST_DAY, le=LAST_DAY)]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(no_nul)]
ShortText = Annotated[str, StringConstraints(max_length=200), AfterValidator(no_nul)]
SearchText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100), AfterValidator(no_nul)]
Password = Annotated[str, StringConstraints(min_length=10, max_length=256), AfterValidator(no_nul)]


def jsonable(value: Any) -> Any:
    """What a column value looks like in the change log (JSON has no UUID, datetime or enum)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if hasattr(value, "value"):  # enums
        return jsonable(value.value)
    return str(value)
