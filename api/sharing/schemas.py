"""API shapes for shares."""

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from api.core import examples as ex
from api.core.examples import examples
from api.core.schemas import Input, Output

SharedEntity = Literal["company", "contact", "deal"]


class ShareCreate(Input):
    entity: SharedEntity
    entity_id: uuid.UUID
    user_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=50, description="Colleagues from /users.")]

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"entity": "deal", "entity_id": ex.DEAL, "user_ids": [ex.JAVIER]},
        ),
    )


class ShareRead(Output):
    id: uuid.UUID
    entity: SharedEntity
    entity_id: uuid.UUID
    user_id: uuid.UUID
    by_id: uuid.UUID | None
    created_at: datetime

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "id": ex.SHARE,
                "entity": "deal",
                "entity_id": ex.DEAL,
                "user_id": ex.JAVIER,
                "by_id": ex.MARTA,
                "created_at": ex.UPDATED,
            },
        ),
    )
