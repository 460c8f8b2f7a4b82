"""Password hashing (Argon2id), access tokens (JWT, HS256 pinned) and opaque secrets stored as hashes."""

import asyncio
import hashlib
import hmac
import secrets
import uuid
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from api.core.errors import Unauthorized
from api.core.types import utcnow
from api.settings import get_settings

ALGORITHM = "HS256"
API_KEY_PREFIX = "fbk_"


@lru_cache
def _hasher() -> tuple[PasswordHasher, str]:
    settings = get_settings()
    hasher = PasswordHasher(time_cost=settings.password_time_cost, memory_cost=settings.password_memory_kib)
    # Verified against when the e-mail is unknown, so a wrong address costs the same time as a wrong password.
    return hasher, hasher.hash("fieldbook-timing-equaliser")


# Argon2 takes ~0.2 s of CPU by design: it runs in a worker thread so the event loop keeps serving requests.


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher()[0].hash, password)


def _verify(password_hash: str | None, password: str) -> bool:
    hasher, dummy = _hasher()
    try:
        return hasher.verify(password_hash or dummy, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(_verify, password_hash, password)


def password_needs_rehash(password_hash: str) -> bool:
    return _hasher()[0].check_needs_rehash(password_hash)


def create_access_token(*, user_id: uuid.UUID, org_id: uuid.UUID, session_id: uuid.UUID) -> tuple[str, int]:
    settings = get_settings()
    now = utcnow()
    lifetime = timedelta(minutes=settings.access_token_minutes)
    claims = {
        "sub": str(user_id),
        "org": str(org_id),
        "sid": str(session_id),
        "typ": "access",
        "iat": now,
        "exp": now + lifetime,
    }
    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM), int(lifetime.total_seconds())


def decode_access_token(token: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            get_settings().secret_key,
            algorithms=[ALGORITHM],  # pinned: "none" and RS/HS confusion are refused
            options={"require": ["sub", "org", "sid", "exp", "iat", "typ"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The access token has expired; refresh it.") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("The access token is not valid.") from exc
    if claims.get("typ") != "access":
        raise Unauthorized("The access token is not valid.")
    return claims


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def digest(secret: str) -> str:
    """SHA-256 of a high-entropy secret (tokens, keys): enough there, unlike for passwords."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_digest(secret: str, expected: str) -> bool:
    return hmac.compare_digest(digest(secret), expected)


def new_api_key() -> tuple[str, str, str]:
    """(full key shown once, lookup prefix, digest stored)."""
    prefix = API_KEY_PREFIX + secrets.token_hex(6)
    key = f"{prefix}_{new_secret(32)}"
    return key, prefix, digest(key)


def expires_in(days: int) -> datetime:
    return utcnow() + timedelta(days=days)
