"""Keyset pagination with opaque, signed cursors.

A cursor carries the sort key of the last row of a page. It is signed (itsdangerous) and salted with the list
it belongs to, so a forged, garbled or foreign cursor is a 400, never a 500 or another list's rows.
"""

import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar, get_args

import sqlalchemy as sa
from fastapi import Query
from itsdangerous import BadSignature, URLSafeSerializer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from api.core.errors import BadRequest
from api.core.examples import CURSOR
from api.settings import get_settings

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")]
CursorQuery = Annotated[
    str | None, Query(max_length=1000, description="Opaque cursor from a previous page's `next_cursor`.")
]


T = TypeVar("T")


def _page_examples(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """A page of `Page[Item]` shows one item, `Item`'s example, and the cursor of the next page."""
    (item, *_) = get_args(cls.model_fields["items"].annotation) or (None,)
    extra = getattr(item, "model_config", {}).get("json_schema_extra")
    if isinstance(extra, dict) and isinstance(extra.get("examples"), list) and extra["examples"]:
        schema["examples"] = [{"items": extra["examples"][:1], "next_cursor": CURSOR}]


class Page(BaseModel, Generic[T]):
    model_config = ConfigDict(json_schema_extra=_page_examples)

    items: list[T]
    next_cursor: str | None = Field(
        default=None,
        description="Pass as `cursor` for the next page; null on the last one. A feed or timeline page may hold "
        "fewer items than `limit`, even none, and still have a cursor: keep going until it is null.",
    )


def _tag(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return {"u": str(value)}
    if isinstance(value, datetime):
        return {"d": value.isoformat()}
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        if "u" in value:
            return uuid.UUID(value["u"])
        if "d" in value:
            return datetime.fromisoformat(value["d"])
        raise ValueError("unknown cursor value")
    return value


def _serializer(scope: str) -> URLSafeSerializer:
    return URLSafeSerializer(get_settings().secret_key, salt=f"cursor:{scope}")


def encode_cursor(scope: str, values: Sequence[Any]) -> str:
    return str(_serializer(scope).dumps([_tag(v) for v in values]))


def decode_cursor(scope: str, token: str, *, size: int) -> list[Any]:
    try:
        raw = _serializer(scope).loads(token)
        if not isinstance(raw, list) or len(raw) != size:
            raise ValueError("wrong shape")
        return [_untag(v) for v in raw]
    except (BadSignature, ValueError, TypeError, KeyError) as exc:
        raise BadRequest(
            "The cursor is not valid for this list; start again without it.",
            errors=[{"in": "query", "parameter": "cursor", "detail": "invalid cursor"}],
        ) from exc


# The cursor's and the scan's keys, and the page size, are bound values: a statement built once can serve every page
# (see `Templates`), and one built per request compiles to the same cached SQL.
_LIMIT = sa.bindparam("keyset_limit", type_=sa.Integer)


def _bound(keys: Sequence[Any], name: str) -> Any:
    return sa.tuple_(*(sa.bindparam(f"keyset_{name}_{i}", type_=k.type) for i, k in enumerate(keys)))


def after_cursor(scope: str, cursor: str | None, keys: Sequence[Any]) -> list[Any] | None:
    """The sort key a page starts after (None for the first page); 400 for a cursor of another list."""
    return decode_cursor(scope, cursor, size=len(keys)) if cursor else None


def keyset_params(
    *, after: Sequence[Any] | None = None, until: Sequence[Any] | None = None, limit: int | None = None
) -> dict[str, Any]:
    """The values `ordered` and `scan` statements are run with."""
    params: dict[str, Any] = {} if limit is None else {"keyset_limit": limit + 1}
    for name, values in (("after", after), ("until", until)):
        params.update({f"keyset_{name}_{i}": v for i, v in enumerate(values or ())})
    return params


def ordered(stmt: Any, keys: Sequence[Any], *, after: bool, until: bool, descending: bool) -> Any:
    """`stmt` in `keys` order, one row more than a page (to tell whether another follows), starting after the
    cursor's key (`after`) and stopping at the scan's (`until`) when they are given."""
    row_key = sa.tuple_(*keys)
    if until:
        stmt = stmt.where(row_key >= _bound(keys, "until") if descending else row_key <= _bound(keys, "until"))
    if after:
        stmt = stmt.where(row_key < _bound(keys, "after") if descending else row_key > _bound(keys, "after"))
    return stmt.order_by(*(k.desc() if descending else k.asc() for k in keys)).limit(_LIMIT)


def scan(stmt: Any, keys: Sequence[Any], *, after: bool, size: int, descending: bool) -> Any:
    """The key of the `size`-th row of `stmt` after the cursor's (see `scan_end`)."""
    ordered_keys = ordered(stmt.with_only_columns(*keys), keys, after=after, until=False, descending=descending)
    return ordered_keys.offset(size - 1).limit(1)


def cut(
    rows: list[T], scope: str, key_of: Callable[[T], Sequence[Any]], limit: int, until: Sequence[Any] | None
) -> tuple[list[T], str | None]:
    """A page of the rows an `ordered` statement read, and the cursor of the next one."""
    if len(rows) <= limit:
        # Rows stopped at `until`: the next page starts after it (this one may be short, even empty).
        return rows, None if until is None else encode_cursor(scope, until)
    rows = rows[:limit]
    return rows, encode_cursor(scope, key_of(rows[-1]))


class Templates:
    """Statements built once per shape and run with bound values. A hot read whose statement carries a large
    expression (the visibility conditions) pays more for building it and computing its cache key than for
    running it; a statement kept here pays neither again. Bounded: least recently used shapes go first."""

    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self._built: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        try:
            self._built.move_to_end(key)
            found: T = self._built[key]
            return found
        except KeyError:
            made = self._built[key] = build()
            if len(self._built) > self.size:
                self._built.popitem(last=False)
            return made


async def keyset_page(
    session: AsyncSession,
    stmt: SelectOfScalar[T],
    *,
    scope: str,
    # Columns or ORM attributes (Mapped[...]): typed loosely because SQLModel's col() returns the latter.
    keys: Sequence[Any],
    key_of: Callable[[T], Sequence[Any]],
    limit: int,
    cursor: str | None,
    descending: bool = False,
    until: Sequence[Any] | None = None,
) -> tuple[list[T], str | None]:
    """One page of `stmt` ordered by `keys` (unique together), and the cursor of the next page if any. With `until`
    (from `scan_end`), rows stop at that key: a short page then still has a cursor, starting after it."""
    after = after_cursor(scope, cursor, keys)
    page = ordered(stmt, keys, after=after is not None, until=until is not None, descending=descending)
    rows = (await session.scalars(page, keyset_params(after=after, until=until, limit=limit))).all()
    return cut(list(rows), scope, key_of, limit, until)


async def keyset_rows(
    session: AsyncSession,
    stmt: sa.Select[Any],
    *,
    scope: str,
    keys: Sequence[Any],
    key_of: Callable[[sa.Row[Any]], Sequence[Any]],
    limit: int,
    cursor: str | None,
    descending: bool = False,
    until: Sequence[Any] | None = None,
) -> tuple[list[sa.Row[Any]], str | None]:
    """`keyset_page` for a Core select of several columns: plain rows, no ORM objects (hot read paths)."""
    after = after_cursor(scope, cursor, keys)
    page = ordered(stmt, keys, after=after is not None, until=until is not None, descending=descending)
    rows = (await session.execute(page, keyset_params(after=after, until=until, limit=limit))).all()
    return cut(list(rows), scope, key_of, limit, until)


async def scan_end(
    session: AsyncSession,
    stmt: sa.Select[Any],
    *,
    scope: str,
    keys: Sequence[Any],
    cursor: str | None,
    size: int,
    descending: bool = False,
) -> Sequence[Any] | None:
    """The key of the `size`-th row of `stmt` after `cursor` (None when fewer remain): where a page filtered by a
    condition that may reject nearly every row stops looking, so that its cost stays bounded."""
    after = after_cursor(scope, cursor, keys)
    found = scan(stmt, keys, after=after is not None, size=size, descending=descending)
    row = (await session.execute(found, keyset_params(after=after))).first()
    return None if row is None else tuple(row)
