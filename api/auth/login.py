"""Sign-in: passwords, rotating refresh tokens with reuse detection, logout, invitations, throttling."""

import uuid
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped
from sqlmodel import col, func, select

from api.auth.models import AuthSession, LoginFailure, RefreshToken, User
from api.auth.passwords import check_new_password
from api.auth.principals import Principal
from api.auth.schemas import AcceptInvite, LoginRequest, TokenPair
from api.auth.security import (
    create_access_token,
    digest,
    expires_in,
    hash_password,
    new_secret,
    password_needs_rehash,
    verify_password,
)
from api.core import changes
from api.core.db import advisory_lock
from api.core.errors import TooManyRequests, Unauthorized
from api.core.types import utcnow
from api.settings import get_settings


class InvalidCredentials(Unauthorized):
    keep_writes = True  # the failure is recorded for throttling

    def __init__(self, detail: str = "The e-mail or password is not right.") -> None:
        super().__init__(detail)


class SessionRevoked(Unauthorized):
    keep_writes = True  # the revocation of the token family must stick


async def _throttle(session: AsyncSession, column: Mapped[str], value: str, limit: int) -> None:
    settings = get_settings()
    window = timedelta(seconds=settings.login_window_seconds)
    now = utcnow()
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(LoginFailure.at)).where(column == value, col(LoginFailure.at) > now - window)
        )
    ).one()
    if count >= limit:
        retry_after = int(((oldest or now) + window - now).total_seconds()) + 1
        raise TooManyRequests("Too many failed sign-in attempts; wait before trying again.", retry_after=retry_after)


async def _record_failure(session: AsyncSession, email: str, address: str) -> None:
    now = utcnow()
    # Failures older than the window count for nothing: dropping them here keeps the table small.
    expired = now - timedelta(seconds=get_settings().login_window_seconds)
    await session.execute(sa.delete(LoginFailure).where(col(LoginFailure.at) < expired))
    session.add(LoginFailure(email=email, address=address, at=now))
    await session.flush()


async def _start_session(session: AsyncSession, user: User, device: str) -> TokenPair:
    auth_session = AuthSession(org_id=user.org_id, user_id=user.id, device=device)
    session.add(auth_session)
    await session.flush()
    return await _issue(session, user, auth_session.id)


async def _issue(session: AsyncSession, user: User, session_id: uuid.UUID) -> TokenPair:
    refresh = new_secret()
    session.add(
        RefreshToken(
            session_id=session_id,
            token_hash=digest(refresh),
            expires_at=expires_in(get_settings().refresh_token_days),
        )
    )
    access, lifetime = create_access_token(user_id=user.id, org_id=user.org_id, session_id=session_id)
    await session.flush()
    return TokenPair(access_token=access, expires_in=lifetime, refresh_token=refresh)


async def login(*, session: AsyncSession, data: LoginRequest, address: str) -> TokenPair:
    settings = get_settings()
    email = data.email.lower()
    # Attempts on one account queue up, so parallel guesses cannot all pass the count before any is recorded.
    await advisory_lock(session, f"login:{email}")
    await _throttle(session, col(LoginFailure.email), email, settings.login_max_failures_per_account)
    await _throttle(session, col(LoginFailure.address), address, settings.login_max_failures_per_address)
    user = (await session.scalars(select(User).where(col(User.email) == email))).first()
    # A deactivated account answers like a wrong password: the answer must not confirm a guessed password.
    if user is None or not await verify_password(user.password_hash, data.password) or not user.is_active:
        await _record_failure(session, email, address)
        raise InvalidCredentials()
    await session.execute(sa.delete(LoginFailure).where(col(LoginFailure.email) == email))
    # Sign-in bookkeeping, not an edit of the user: it bypasses the change log on purpose.
    user.last_login_at = utcnow()
    if user.password_hash and password_needs_rehash(user.password_hash):
        user.password_hash = await hash_password(data.password)
    return await _start_session(session, user, data.device)


async def refresh(*, session: AsyncSession, token: str) -> TokenPair:
    row = (
        await session.execute(
            select(RefreshToken, AuthSession, User)
            .join(AuthSession, col(AuthSession.id) == col(RefreshToken.session_id))
            .join(User, col(User.id) == col(AuthSession.user_id))
            .where(col(RefreshToken.token_hash) == digest(token))
            .with_for_update(of=RefreshToken)
        )
    ).first()
    if row is None:
        raise Unauthorized("The refresh token is not valid.")
    stored, auth_session, user = row
    if auth_session.revoked_at is not None or not user.is_active:
        raise Unauthorized("This session has ended; sign in again.")
    now = utcnow()
    if stored.used_at is not None:
        # A token that was already exchanged is being replayed: someone else may hold this family. End it.
        auth_session.revoked_at, auth_session.revoked_reason = now, "refresh_token_reuse"
        await session.flush()
        raise SessionRevoked("This refresh token was already used; the session has been ended for safety.")
    if stored.expires_at <= now:
        raise Unauthorized("The refresh token has expired; sign in again.")
    stored.used_at = now
    return await _issue(session, user, auth_session.id)


async def logout(*, session: AsyncSession, token: str) -> None:
    stmt = (
        sa.update(AuthSession)
        .where(
            col(AuthSession.id).in_(
                select(RefreshToken.session_id).where(col(RefreshToken.token_hash) == digest(token))
            ),
            col(AuthSession.revoked_at).is_(None),
        )
        .values(revoked_at=utcnow(), revoked_reason="logout")
    )
    await session.execute(stmt)


async def revoke_user_sessions(session: AsyncSession, user_id: uuid.UUID, reason: str) -> None:
    await session.execute(
        sa.update(AuthSession)
        .where(col(AuthSession.user_id) == user_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )


async def accept_invite(*, session: AsyncSession, data: AcceptInvite) -> TokenPair:
    user = (
        await session.scalars(
            select(User)
            .where(col(User.invite_hash) == digest(data.token), col(User.is_active).is_(True))
            .with_for_update()
        )
    ).first()
    if user is None or user.invite_expires_at is None or user.invite_expires_at <= utcnow():
        raise Unauthorized("This invitation is not valid or has expired; ask your administrator for a new one.")
    check_new_password(data.password, email=user.email, name=user.name)
    actor = Principal(kind="user", org_id=user.org_id, id=user.id)
    await changes.update(
        session,
        actor,
        "user",
        user,
        {"password_hash": await hash_password(data.password), "invite_hash": None, "invite_expires_at": None},
    )
    # A password reset by invitation ends the sessions that the old password opened.
    await revoke_user_sessions(session, user.id, "password_reset")
    user.last_login_at = utcnow()
    return await _start_session(session, user, data.device)
