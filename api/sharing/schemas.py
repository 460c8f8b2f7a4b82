"""API shapes for shares."""

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from api.core.schemas import Input, Output

SharedEntity = Literal["company", "contact", "deal"]


class ShareCreate(Input):
    entity: SharedEntity
    entity_id: uuid.UUID
    user_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=50, description="Colleagues from /users.")]


class ShareRead(Output):
    id: uuid.UUID
    entity: SharedEntity
    entity_id: uuid.UUID
    user_id: uuid.UUID
    by_id: uuid.UUID | None
    created_at: datetime
