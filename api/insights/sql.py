"""Statistics in SQL that read the same on SQLite and PostgreSQL."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

DAY = 86_400.0


async def percentiles(
    session: AsyncSession, values: Any, *, by: list[str], value: str, percents: tuple[int, ...]
) -> list[Any]:
    """Per group of `values` (a subquery with the `by` columns and a numeric `value` column): the given percentiles,
    interpolated between the two nearest values. PostgreSQL has `percentile_cont`; SQLite has none, so there they
    are built from window functions and integer arithmetic to the same definition (PostgreSQL rounds where SQLite
    truncates when casting to integer, so no cast is used). The PostgreSQL function is the faster: one sort, not two
    window passes."""
    keys = [values.c[name] for name in by]
    if session.get_bind().dialect.name == "postgresql":
        columns = [
            sa.func.percentile_cont(percent / 100).within_group(values.c[value]).label(f"p{percent}")
            for percent in percents
        ]
        return await fetch(session, sa.select(*keys, *columns).group_by(*keys))
    ranked = sa.select(
        *keys,
        values.c[value].label("v"),
        (sa.func.row_number().over(partition_by=keys, order_by=values.c[value]) - 1).label("rn"),
        sa.func.count().over(partition_by=keys).label("n"),
    ).subquery("ranked")
    interpolated: list[Any] = []
    for percent in percents:
        scaled = (ranked.c.n - 1) * percent
        low = scaled // 100
        fraction = sa.func.max((scaled % 100) / 100.0)
        at_low = sa.func.max(sa.case((ranked.c.rn == low, ranked.c.v)))
        at_high = sa.func.coalesce(sa.func.max(sa.case((ranked.c.rn == low + 1, ranked.c.v))), at_low)
        interpolated.append((at_low + (at_high - at_low) * fraction).label(f"p{percent}"))
    by_keys = [ranked.c[name] for name in by]
    return await fetch(session, sa.select(*by_keys, *interpolated).group_by(*by_keys))


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def days(seconds: float | None) -> float | None:
    return None if seconds is None else round(float(seconds) / DAY, 2)


async def fetch(session: AsyncSession, stmt: sa.Select[Any]) -> list[Any]:
    """The rows of an aggregate query, loosely typed: what SUM or a percentile returns is the database's to say."""
    return list((await session.execute(stmt)).all())
