"""Every table, imported in one place so that Alembic and the tests see the whole schema."""

from api.auth.models import ApiKey, AuthSession, LoginFailure, Organization, RefreshToken, Team, User
from api.core.changes import Change
from api.deals.models import LostReason, Pipeline, Product, Stage

__all__ = [
    "ApiKey",
    "AuthSession",
    "Change",
    "LoginFailure",
    "LostReason",
    "Organization",
    "Pipeline",
    "Product",
    "RefreshToken",
    "Stage",
    "Team",
    "User",
]
