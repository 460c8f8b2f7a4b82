"""API shapes for products, pipelines, stages and lost reasons."""

import uuid
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints
from pydantic_extra_types.currency_code import ISO4217

from api.core.schemas import Input, RecordRead, optional
from api.core.types import Name, no_nul
from api.deals.models import StageKind

Probability = Annotated[int, Field(ge=0, le=100, description="Chance of winning a deal in this stage, in %.")]
RottenDays = Annotated[int, Field(ge=1, le=3650, description="Days without activity before a deal is rotten.")]
Sku = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), AfterValidator(no_nul)]
MinorUnits = Annotated[int, Field(ge=0, le=10**15, description="Price in the currency's minor unit (cents).")]


# Products


class ProductRead(RecordRead):
    name: str
    sku: str | None
    price_minor: int
    currency: str
    is_active: bool


class ProductCreate(Input):
    name: Name
    sku: Sku | None = None
    price_minor: MinorUnits = 0
    currency: ISO4217 | None = Field(default=None, description="Defaults to the organisation's currency.")


class ProductUpdate(Input):
    name: Name | None = optional()
    sku: Sku | None = None
    price_minor: MinorUnits | None = optional()
    currency: ISO4217 | None = optional()
    is_active: bool | None = optional()


# Pipelines and stages


class StageRead(RecordRead):
    pipeline_id: uuid.UUID
    name: str
    position: int
    kind: StageKind
    probability: int
    rotten_days: int | None


class StageSpec(Input):
    name: Name
    probability: Probability = 0
    rotten_days: RottenDays | None = None


class StageCreate(StageSpec):
    position: int | None = Field(
        default=None, ge=1, description="Place among the open stages (1 = first); the end when left out."
    )


class StageUpdate(Input):
    name: Name | None = optional()
    probability: Probability | None = optional()
    rotten_days: RottenDays | None = None
    position: int | None = optional(ge=1, description="New place among the open stages (open stages only).")


class PipelineRead(RecordRead):
    name: str
    team_id: uuid.UUID | None
    is_default: bool
    stages: list[StageRead]


class PipelineCreate(Input):
    name: Name
    team_id: uuid.UUID | None = None
    stages: list[StageSpec] = Field(
        min_length=1, max_length=20, description="Open stages in order; won and lost stages are added after them."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Renewals",
                    "stages": [{"name": "Contacted", "probability": 20}, {"name": "Quote sent", "probability": 60}],
                }
            ]
        },
    )


class PipelineUpdate(Input):
    name: Name | None = optional()
    team_id: uuid.UUID | None = None
    is_default: bool | None = optional(description="Make this the organisation's default pipeline (true only).")


# Lost reasons


class LostReasonRead(RecordRead):
    name: str
    position: int
    is_active: bool


class LostReasonCreate(Input):
    name: Name


class LostReasonUpdate(Input):
    name: Name | None = optional()
    is_active: bool | None = optional()
    position: int | None = optional(ge=1)
