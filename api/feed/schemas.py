"""API shapes for the feed and timelines."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from api.activities.models import ActivityKind, CallDirection, CallOutcome
from api.deals.models import DealStatus
from api.feed.models import FeedKind


class Only(StrEnum):
    """Narrow a feed to one kind of news."""

    wins = "wins"
    losses = "losses"
    activities = "activities"
    stage_moves = "stage_moves"
    mentions = "mentions"


ONLY_KINDS = {
    Only.wins: (FeedKind.deal_won,),
    Only.losses: (FeedKind.deal_lost,),
    Only.activities: (FeedKind.activity,),
    Only.stage_moves: (FeedKind.stage_moved, FeedKind.deal_won, FeedKind.deal_lost, FeedKind.deal_reopened),
    Only.mentions: (FeedKind.mentioned,),
}


class Scope(StrEnum):
    me = "me"
    team = "team"
    org = "org"


class ClientRef(BaseModel):
    id: uuid.UUID
    name: str


class DealRef(BaseModel):
    id: uuid.UUID
    title: str
    status: DealStatus
    amount_minor: int
    currency: str


class ActivityRef(BaseModel):
    id: uuid.UUID
    kind: ActivityKind
    subject: str
    body: str | None
    direction: CallDirection | None
    outcome: CallOutcome | None
    duration_seconds: int | None
    due_at: datetime | None
    done_at: datetime | None


class FeedItem(BaseModel):
    id: uuid.UUID
    kind: FeedKind
    at: datetime
    actor_id: uuid.UUID | None
    user_id: uuid.UUID | None
    company: ClientRef | None
    contact: ClientRef | None
    deal: DealRef | None
    activity: ActivityRef | None
    data: dict[str, Any]
