"""Every table, imported in one place so that Alembic and the tests see the whole schema."""

from api.auth.models import ApiKey, AuthSession, LoginFailure, Organization, RefreshToken, Team, User
from api.core.changes import Change

__all__ = ["ApiKey", "AuthSession", "Change", "LoginFailure", "Organization", "RefreshToken", "Team", "User"]
