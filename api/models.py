"""Every table, imported in one place so that Alembic and the tests see the whole schema."""

from api.activities.models import Activity
from api.auth.models import ApiKey, AuthSession, LoginFailure, Organization, RefreshToken, Team, User
from api.clients.models import Company, Contact, ContactPoint, CustomField
from api.core.changes import Change
from api.core.idempotency import IdempotencyKey
from api.core.ratelimit import RateBucket
from api.deals.models import Deal, DealLine, DealStageEvent, LostReason, Pipeline, Product, Stage
from api.feed.models import FeedEvent
from api.imports.models import ImportJob, ImportMapping, ImportRow, ImportValue
from api.insights.models import Goal, GoalAchievement
from api.marketing.models import Segment
from api.sharing.models import Share
from api.sync.models import SyncClient, SyncView
from api.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

__all__ = [
    "Activity",
    "ApiKey",
    "AuthSession",
    "Change",
    "Company",
    "Contact",
    "ContactPoint",
    "CustomField",
    "Deal",
    "DealLine",
    "DealStageEvent",
    "FeedEvent",
    "Goal",
    "GoalAchievement",
    "IdempotencyKey",
    "ImportJob",
    "ImportMapping",
    "ImportRow",
    "ImportValue",
    "LoginFailure",
    "LostReason",
    "Organization",
    "Pipeline",
    "Product",
    "RateBucket",
    "RefreshToken",
    "Segment",
    "Share",
    "Stage",
    "SyncClient",
    "SyncView",
    "Team",
    "User",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
]
