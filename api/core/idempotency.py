"""`Idempotency-Key` on every POST (DESIGN §6): a retried request is answered once.

A phone that lost the response to "log this call" sends it again with the same key; the server answers with the
stored response instead of logging the call twice. Keys belong to the principal that sent them (a user or an API
key); the same key with another body is a client bug (422); a key whose first request is still running answers
409. Keys live 24 hours.

This is ASGI middleware, not a dependency: the key is reserved and the response stored in their own short
transactions, around (never inside) the request's own transaction, so a crash of the request frees the key and
SQLite's single writer is never asked for twice at once.
"""

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel, col, select
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.core.db import Database
from api.core.errors import AppError, problem
from api.core.ids import new_id
from api.core.types import JSONType, UTCDateTime, utcnow

HEADER = "idempotency-key"
REPLAYED = "idempotent-replayed"
LIFETIME = timedelta(hours=24)
MAX_KEY = 255
# Answers that depend on the moment, not on the request (a conflict, a stale version, a rate limit): not kept, so
# a retry with the same key is tried again.
TRANSIENT = frozenset({409, 412, 429})

# Resolves the caller of a request from its Authorization header: ("user:<id>" or "api_key:<id>", org id), or None
# when the request is not authenticated (the route then answers 401 itself).
Identify = Callable[[AsyncSession, str], Awaitable[tuple[str, uuid.UUID] | None]]


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_key"
    __table_args__ = (
        sa.UniqueConstraint("principal", "key"),
        sa.Index("ix_idempotency_key_expires_at", "expires_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    org_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE")
    principal: str = Field(max_length=80)
    key: str = Field(max_length=MAX_KEY)
    # sha256 of method, path, query and body: what "the same request" means.
    fingerprint: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    # Null while the first request runs.
    status: int | None = None
    headers: list[list[str]] = Field(default_factory=list, sa_type=JSONType)
    body: bytes = Field(default=b"", sa_type=sa.LargeBinary)


def _fingerprint(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode("latin-1")):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


def _valid(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY and all(0x20 < ord(c) < 0x7F for c in key)


def _refusal(status: int, title: str, slug: str, detail: str) -> Any:
    return problem(
        status,
        title,
        slug=slug,
        detail=detail,
        errors=[{"in": "header", "parameter": "Idempotency-Key", "detail": detail}],
    )


class Idempotency:
    def __init__(self, app: ASGIApp, identify: Identify) -> None:
        self.app = app
        self.identify = identify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":  # lifespan and websocket scopes have no headers
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = headers.get(HEADER)
        if key is None:
            await self.app(scope, receive, send)
            return
        if not _valid(key):
            detail = f"An Idempotency-Key is 1 to {MAX_KEY} printable ASCII characters."
            await _refusal(422, "Validation failed", "validation", detail)(scope, receive, send)
            return
        authorization = headers.get("authorization", "")
        db: Database = scope["app"].state.db
        async with db.reader() as session:
            try:
                caller = await self.identify(session, authorization)
            except AppError:
                caller = None
        if caller is None:
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
        except HTTPException as exc:  # the body cap, hit here rather than inside the app's error handlers
            await problem(413, "Payload too large", slug="payload-too-large", detail=str(exc.detail))(
                scope, receive, send
            )
            return
        principal, org_id = caller
        fingerprint = _fingerprint(scope, body)
        stored = await _reserve(db, org_id, principal, key, fingerprint)
        if stored is not None:
            await _answer_stored(stored, fingerprint, scope, receive, send)
            return
        await self._run(db, principal, key, scope, body, send)

    async def _run(self, db: Database, principal: str, key: str, scope: Scope, body: bytes, send: Send) -> None:
        start: Message = {}
        chunks: list[bytes] = []
        sent = False

        async def replay_body() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        except BaseException:
            await _release(db, principal, key)
            raise
        status = int(start.get("status", 500))
        if status >= 500 or status in TRANSIENT:
            # Nothing was done (the request's transaction rolled back), and a retry may fare otherwise.
            await _release(db, principal, key)
            return
        raw = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in start.get("headers", [])]
        async with db.writer() as session:
            await session.execute(
                sa.update(IdempotencyKey)
                .where(col(IdempotencyKey.principal) == principal, col(IdempotencyKey.key) == key)
                .values(status=status, headers=raw, body=b"".join(chunks))
            )
            await session.commit()


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def _reserve(
    db: Database, org_id: uuid.UUID, principal: str, key: str, fingerprint: str
) -> IdempotencyKey | None:
    """Claim the key for this request (None), or the row of the request that claimed it first."""
    now = utcnow()
    async with db.writer() as session:
        # Expired keys are freed here rather than by a job: the table stays as small as a day of writes.
        await session.execute(sa.delete(IdempotencyKey).where(col(IdempotencyKey.expires_at) <= now))
        session.add(
            IdempotencyKey(
                org_id=org_id, principal=principal, key=key, fingerprint=fingerprint, expires_at=now + LIFETIME
            )
        )
        try:
            await session.commit()
            return None
        except IntegrityError:
            await session.rollback()
    async with db.reader() as session:
        found: IdempotencyKey | None = (
            await session.scalars(
                select(IdempotencyKey).where(col(IdempotencyKey.principal) == principal, col(IdempotencyKey.key) == key)
            )
        ).first()
    if found is None:  # the first request failed and freed the key meanwhile: claim it again
        return await _reserve(db, org_id, principal, key, fingerprint)
    return found


async def _release(db: Database, principal: str, key: str) -> None:
    async with db.writer() as session:
        await session.execute(
            sa.delete(IdempotencyKey).where(col(IdempotencyKey.principal) == principal, col(IdempotencyKey.key) == key)
        )
        await session.commit()


async def _answer_stored(stored: IdempotencyKey, fingerprint: str, scope: Scope, receive: Receive, send: Send) -> None:
    if stored.fingerprint != fingerprint:
        detail = "This Idempotency-Key was used with another request; use a new key for a new request."
        await _refusal(422, "Validation failed", "validation", detail)(scope, receive, send)
        return
    if stored.status is None:
        detail = "A request with this Idempotency-Key is still running; retry when it has finished."
        await _refusal(409, "Conflict", "conflict", detail)(scope, receive, send)
        return
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored.headers]
    await send(
        {"type": "http.response.start", "status": stored.status, "headers": [*headers, (REPLAYED.encode(), b"true")]}
    )
    await send({"type": "http.response.body", "body": stored.body})
