"""API shapes for the feed and timelines."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from api.activities.models import ActivityKind, CallDirection, CallOutcome
from api.core import examples as ex
from api.core.examples import example_of, examples
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

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"id": ex.COMPANY, "name": "Frutas Martínez S.L."},
        ),
    )


class DealRef(BaseModel):
    id: uuid.UUID
    title: str
    status: DealStatus
    amount_minor: int
    currency: str

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "id": ex.DEAL,
                "title": "Renovación TPV · Frutas Martínez S.L.",
                "status": "open",
                "amount_minor": 1215000,
                "currency": "EUR",
            },
        ),
    )


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

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "id": ex.ACTIVITY,
                "kind": "call",
                "subject": "Llamada de seguimiento",
                "body": "Quieren cambiar los 30 terminales antes de Fallas; piden precio con instalación.",
                "direction": "outbound",
                "outcome": "connected",
                "duration_seconds": 420,
                "due_at": None,
                "done_at": ex.CALLED,
            },
        ),
    )


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

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "id": ex.FEED_ITEM,
                "kind": "activity",
                "at": ex.CALLED,
                "actor_id": ex.MARTA,
                "user_id": None,
                "company": example_of(ClientRef),
                "contact": {"id": ex.CONTACT, "name": "Lucía Martínez Soler"},
                "deal": example_of(DealRef),
                "activity": example_of(ActivityRef),
                "data": {},
            },
            {
                "id": "019d1f3a-8c40-7b12-9e55-0c4d2a7b9e31",
                "kind": "deal_won",
                "at": ex.WON,
                "actor_id": ex.MARTA,
                "user_id": None,
                "company": example_of(ClientRef),
                "contact": {"id": ex.CONTACT, "name": "Lucía Martínez Soler"},
                "deal": {**example_of(DealRef), "status": "won"},
                "activity": None,
                "data": {
                    "from_stage": "Negociación",
                    "to_stage": "Ganado",
                    "days_in_previous": 6,
                    "amount_minor": 1215000,
                    "currency": "EUR",
                    "days_open": 22,
                },
            },
        ),
    )
