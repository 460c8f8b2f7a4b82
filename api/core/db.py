"""Engine, sessions and dialect helpers.

One AsyncSession per request: it commits when the route succeeds and rolls back when it fails, before the
response is sent (so a failed commit is reported, never hidden). Services flush, never commit.
"""

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.engine import Connection, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from api.core.errors import AppError, DatabaseUnavailable

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_IMMEDIATE = "fieldbook_begin_immediate"
_BEFORE_COMMIT = "fieldbook_before_commit"
_AFTER_COMMIT = "fieldbook_after_commit"

log = logging.getLogger("fieldbook")

UNREACHABLE = "The database is not reachable; try again shortly."
UNREACHABLE_RETRY_AFTER = 5
# SQLite errors that say the storage, not the request, is at fault (by the start of their name: READONLY covers
# READONLY_DIRECTORY and the like). Not soon over: callers are asked to wait longer.
_SQLITE_STORAGE = (
    ("SQLITE_READONLY", "The database's storage is read-only: nothing can be saved until it is writable again."),
    ("SQLITE_FULL", "The database's disk is full: nothing can be saved until space is freed."),
    ("SQLITE_IOERR", "The database's disk could not be written (it is full or failing): nothing can be saved now."),
    ("SQLITE_CANTOPEN", "The database file cannot be opened (its storage is read-only or unavailable)."),
)
STORAGE_RETRY_AFTER = 60
# PostgreSQL refusing or dropping connections: class 08 (connection exception), shutting down or starting up
# (57P01-57P03), out of connection slots (53300).
_POSTGRES_DOWN = frozenset({"57P01", "57P02", "57P03", "53300"})
# A database that stays down fails every request: one warning per reason this often is enough to see it.
_WARN_EVERY = 60.0


def before_commit(session: AsyncSession, hook: Callable[[AsyncSession], Awaitable[None]]) -> None:
    """Run `hook` in the request's transaction just before it commits (e.g. a NOTIFY, delivered by the commit)."""
    session.info.setdefault(_BEFORE_COMMIT, []).append(hook)


def after_commit(session: AsyncSession, hook: Callable[[Any], None]) -> None:
    """Run `hook(app)` once the request's transaction has committed (never if it rolls back)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(hook)


def pool_options(settings: Any) -> dict[str, Any]:
    """The request pool of an API or worker process. No pre-ping: on asyncpg it costs three round trips (BEGIN, a
    ping, ROLLBACK) at every checkout, i.e. on every request; a connection found dead on use is invalidated, with
    every older one, so after a database restart the requests in flight fail once and the next ones reconnect."""
    if settings.database_url.startswith("sqlite"):
        return {}
    return {"pool_size": settings.db_pool_size, "max_overflow": settings.db_max_overflow}


def unavailable(exc: BaseException, *, is_disconnect: bool = False) -> DatabaseUnavailable | None:
    """What a driver error means when the database cannot serve anyone (down, restarting, read-only or full
    storage); None when it is about the request."""
    if is_disconnect or isinstance(exc, OSError):
        return DatabaseUnavailable(UNREACHABLE, retry_after=UNREACHABLE_RETRY_AFTER)
    sqlstate = getattr(exc, "sqlstate", None) or ""
    if sqlstate.startswith("08") or sqlstate in _POSTGRES_DOWN:
        return DatabaseUnavailable(UNREACHABLE, retry_after=UNREACHABLE_RETRY_AFTER)
    name = getattr(exc, "sqlite_errorname", "")
    for prefix, detail in _SQLITE_STORAGE:
        if name.startswith(prefix):
            return DatabaseUnavailable(detail, retry_after=STORAGE_RETRY_AFTER)
    return None


def _report_unavailable(engine: AsyncEngine) -> None:
    """Driver errors that mean the database cannot serve become `DatabaseUnavailable` (a 503 with Retry-After, not a
    500), at connect time too. The pool still invalidates a connection found dead, with every older one, so the
    first requests after a restart fail and the next ones reconnect."""
    warned: dict[str, float] = {}

    def replace(exc: BaseException, *, is_disconnect: bool = False) -> DatabaseUnavailable | None:
        refusal = unavailable(exc, is_disconnect=is_disconnect)
        if refusal is not None:
            now = time.monotonic()
            if now - warned.get(refusal.detail, -_WARN_EVERY) >= _WARN_EVERY:
                warned[refusal.detail] = now
                log.warning("database unavailable: %s (%s: %s)", refusal.detail, type(exc).__name__, exc)
        return refusal

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: ExceptionContext) -> BaseException | None:
        return replace(context.original_exception, is_disconnect=context.is_disconnect)

    @event.listens_for(engine.sync_engine, "do_connect")
    def _on_connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        # A refused or timed-out connection is raised as the driver's own error (an OSError), which `handle_error`
        # never sees.
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            refusal = replace(exc)
            if refusal is None:
                raise
            raise refusal from exc


def make_engine(url: str, *, null_pool: bool = False, **kwargs: Any) -> AsyncEngine:
    if null_pool:
        kwargs["poolclass"] = NullPool
    if url.startswith("postgresql"):
        # PostgreSQL's JIT compiles any query whose estimated cost is high, which costs 0.5-2 s per statement on
        # the visibility-filtered reads (measured in bench/RESULTS.md) and never pays back on short OLTP queries.
        server_settings = kwargs.setdefault("connect_args", {}).setdefault("server_settings", {})
        server_settings.setdefault("jit", "off")
    engine = create_async_engine(url, **kwargs)
    _report_unavailable(engine)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the driver (it would defer it and break SAVEPOINT); see _on_begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "foreign_keys=ON",
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "busy_timeout=10000",
            # Reads go through the operating system's page cache, shared by every connection, instead of each
            # copying pages into a private 2 MB cache: 13 → 51 feed pages/s with 8 concurrent readers of
            # bench-data's small set (550 MB). The size is address space, not memory.
            f"mmap_size={1 << 30}",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write transaction takes the write lock up front: a deferred one that reads first and writes later
        # fails with SQLITE_BUSY (no waiting) when another writer committed in between.
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


async def advisory_lock(session: AsyncSession, key: str) -> None:
    """Serialise transactions that name the same key, until commit. PostgreSQL only: SQLite's write
    transactions are serialised already (BEGIN IMMEDIATE)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0))))


class Database:
    """The engine and the two session factories (reads and writes) an app or a CLI command uses."""

    def __init__(self, engine: AsyncEngine, bind: Any = None) -> None:
        self.engine = engine
        target = bind if bind is not None else engine
        options: dict[str, Any] = {"expire_on_commit": False}
        if bind is not None:
            # Tests bind to one connection inside an outer transaction: commits become savepoint releases.
            options["join_transaction_mode"] = "create_savepoint"
            self.reader = async_sessionmaker(bind=target, **options)
            self.writer = self.reader
        else:
            self.reader = async_sessionmaker(bind=engine, **options)
            self.writer = async_sessionmaker(bind=engine.execution_options(**{_IMMEDIATE: True}), **options)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def commit(session: AsyncSession, app: Any) -> None:
    """Commit with the hooks the transaction registered: before-commit ones in it, after-commit ones (given the app,
    which a CLI command has not) once it is durable. Work that commits in several transactions (an import) uses it."""
    # Until none are left: a hook may write what registers another (a goal reached writes a feed entry).
    while hooks := session.info.pop(_BEFORE_COMMIT, None):
        for hook in hooks:
            await hook(session)
    await session.commit()
    for after in session.info.pop(_AFTER_COMMIT, []):
        if app is not None:
            after(app)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    db = get_database(request)
    maker = db.writer if request.method in WRITE_METHODS else db.reader
    async with maker() as session:
        try:
            yield session
        except AppError as exc:
            # Some refusals must leave a trace (a failed login counts towards throttling; a reused refresh
            # token revokes its family): such errors keep what was written before them.
            await (session.commit() if exc.keep_writes else session.rollback())
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            await commit(session, request.app)
        finally:
            session.info.pop(_BEFORE_COMMIT, None)
            session.info.pop(_AFTER_COMMIT, None)


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
