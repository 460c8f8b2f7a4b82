"""Benchmark data on SQLite: every row made in Python and written through one connection in one transaction, with
`executemany` and the values stored as the app's column types store them. The bulk tables' secondary indexes are
dropped for the load and made again after it (one sort each instead of a b-tree insert per row); foreign keys are
not enforced while loading and are all checked at the end (`PRAGMA foreign_key_check`)."""

import functools
import json
import sqlite3
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import pysqlite
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

import api.models  # noqa: F401  (registers every table)
from api.benchdata.rows import BULK_TABLES, COLUMNS, Activities, Row, each
from api.core.types import UTCDateTime


def path_of(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise ValueError(f"{url}: a SQLite file is needed")
    return Path(database)


def meta_path(path: Path) -> Path:
    """Where the load's fingerprint and figures are kept: next to the database file."""
    return path.with_name(path.name + ".bench.json")


@dataclass(frozen=True)
class State:
    exists: bool
    organisations: int
    foreign: bool  # not a SQLite database, or one with tables but no Fieldbook organisation table
    meta: dict[str, Any] | None


def state(url: str) -> State:
    path = path_of(url)
    if not path.exists():
        return State(exists=False, organisations=0, foreign=False, meta=None)
    conn = sqlite3.connect(path)
    try:
        count, foreign = 0, False
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "organization" in tables:
            count = conn.execute("SELECT count(*) FROM organization").fetchone()[0]
        else:
            foreign = bool(tables)
    except sqlite3.DatabaseError:
        foreign = True
    finally:
        conn.close()
    try:
        meta = json.loads(meta_path(path).read_text())
    except (OSError, ValueError):
        meta = None
    return State(exists=True, organisations=count, foreign=foreign, meta=meta if isinstance(meta, dict) else None)


def remove(url: str) -> None:
    """The database file, its write-ahead log and what a load kept next to it."""
    path = path_of(url)
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal"), meta_path(path)):
        file.unlink(missing_ok=True)


Values = Sequence[Any]


def _uuid_texts(values: Values) -> list[Any]:
    return [value if value is None else value.hex for value in values]


def _utc_texts(values: Values) -> list[Any]:
    # SQLAlchemy's SQLite DATETIME format ("2026-05-01 09:30:00.000000"), of the UTC time UTCDateTime binds.
    return [value if value is None else value.astimezone(UTC).isoformat(" ", "microseconds")[:26] for value in values]


def converters(table: str) -> list[Callable[[Values], Values] | None]:
    """Per column of COLUMNS[table], what turns its values into what SQLAlchemy's own statements would bind for its
    type, or None for as is. Ids and times (most of the values) in one comprehension per column, which is several
    times faster than SQLAlchemy's processors called per value and gives the same text (tests/test_bench_data.py
    compares them); JSON columns are passed through (the rows hold their JSON text already)."""
    dialect = pysqlite.dialect()
    columns = SQLModel.metadata.tables[table].c
    out: list[Callable[[Values], Values] | None] = []
    for name in COLUMNS[table]:
        kind = columns[name].type
        process = kind.dialect_impl(dialect).bind_processor(dialect)
        if isinstance(kind, sa.JSON) or process is None:
            out.append(None)
        elif isinstance(kind, sa.Uuid):
            out.append(_uuid_texts)
        elif isinstance(kind, UTCDateTime):
            out.append(_utc_texts)
        else:
            out.append(functools.partial(_each, process))
    return out


def _each(process: Callable[[Any], Any], values: Values) -> list[Any]:
    return list(map(process, values))


class Writer:
    def __init__(self, url: str) -> None:
        self.path = path_of(url)
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.rows: Counter[str] = Counter()
        self.timings: defaultdict[str, float] = defaultdict(float)
        self.converters = {table: converters(table) for table in COLUMNS}
        self.statements = {
            table: f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({", ".join("?" * len(columns))})'
            for table, columns in COLUMNS.items()
        }
        self.conn.execute("PRAGMA foreign_keys = OFF")
        # The file is made for the data set: a load that fails leaves it to be replaced, so it needs no crash safety.
        self.conn.execute("PRAGMA journal_mode = MEMORY")
        self.conn.execute("PRAGMA synchronous = OFF")
        # Room to sort the indexes in memory (the default cache is 2 MiB).
        self.conn.execute("PRAGMA cache_size = -262144")
        self.conn.execute("PRAGMA temp_store = MEMORY")
        self.indexes = self.conn.execute(
            f"""SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL
                AND tbl_name IN ({", ".join("?" * len(BULK_TABLES))}) ORDER BY name""",
            BULK_TABLES,
        ).fetchall()
        self.conn.execute("BEGIN IMMEDIATE")
        for name, _ in self.indexes:
            self.conn.execute(f'DROP INDEX "{name}"')

    async def close(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.conn.close()

    async def reference(self, org_id: uuid.UUID) -> tuple[list[Any], list[Any]]:
        """The organisation's default pipeline stages (by position) and lost reasons, as the app made them."""
        stages = self.conn.execute(
            """SELECT s.id, s.pipeline_id, s.name, s.kind, s.position, s.rotten_days FROM stage s
               JOIN pipeline p ON p.id = s.pipeline_id AND p.is_default
               WHERE s.org_id = ? ORDER BY s.position""",
            (org_id.hex,),
        ).fetchall()
        reasons = self.conn.execute(
            "SELECT id, name FROM lost_reason WHERE org_id = ? ORDER BY position", (org_id.hex,)
        ).fetchall()
        return (
            [
                {"id": uuid.UUID(i), "pipeline_id": uuid.UUID(p), "name": n, "kind": k, "position": o, "rotten_days": r}
                for i, p, n, k, o, r in stages
            ],
            [{"id": uuid.UUID(i), "name": n} for i, n in reasons],
        )

    async def write(self, table: str, rows: Sequence[Row]) -> None:
        if not rows:
            return
        started = time.perf_counter()
        # Column by column: one conversion per column instead of a Python loop per row.
        columns = [
            column if convert is None else convert(column)
            for convert, column in zip(self.converters[table], zip(*rows, strict=True), strict=True)
        ]
        stored = list(zip(*columns, strict=True))
        self.conn.executemany(self.statements[table], stored)
        self.timings["write_s"] += time.perf_counter() - started
        self.rows[table] += len(rows)

    async def set_heads(self, heads: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
        self.conn.executemany("UPDATE team SET head_id = ? WHERE id = ?", [(h.hex, t.hex) for t, h in heads])

    async def activities(self, job: Activities) -> None:
        """Made by the generator, one per target in turn (it moves each deal's last activity on as it goes); then the
        deals, with their last activity."""
        started = time.perf_counter()
        for rows, feed in job.gen.activities(job.org, each(job.targets), job.step):
            await self.write("activity", rows)
            await self.write("feed_event", feed)
        at = time.perf_counter()
        self.timings["activities_s"] += at - started
        await self.write("deal", job.gen.deal_rows(job.org, job.deals))
        self.timings["deals_s"] += time.perf_counter() - at

    async def finish(self, step: Callable[[int], object]) -> None:
        started = time.perf_counter()
        for _, sql in self.indexes:
            self.conn.execute(sql)
            step(1)
        broken = self.conn.execute("PRAGMA foreign_key_check").fetchmany(5)
        if broken:
            raise RuntimeError(f"the loaded rows break foreign keys: {broken}")
        self.conn.execute("COMMIT")
        # What the app sets on every connection; WAL mode stays with the file.
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.timings["index_s"] += time.perf_counter() - started

    @property
    def deferred_steps(self) -> int:
        return len(self.indexes)

    async def analyze(self) -> None:
        self.conn.execute("ANALYZE")

    async def remember(self, url: str, meta: dict[str, Any]) -> None:
        meta_path(self.path).write_text(json.dumps(meta, indent=1) + "\n")
