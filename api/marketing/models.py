"""Saved segments: a named set of client-card filters that marketing reuses for promotions."""

import uuid
from typing import Any

from sqlmodel import Field

from api.core.models import Record
from api.core.types import JSONType


class Segment(Record, table=True):
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=1000)
    # The filters of GET /client-cards, as its query parameters name them.
    filters: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    created_by_user_id: uuid.UUID | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_by_key_id: uuid.UUID | None = Field(default=None, foreign_key="api_key.id", ondelete="SET NULL")
