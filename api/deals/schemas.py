"""API shapes for deals and their reference data: products, pipelines, stages and lost reasons."""

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_extra_types.currency_code import ISO4217

from api.core import examples as ex
from api.core.examples import example_of, examples, record
from api.core.schemas import Input, Output, RecordRead, optional
from api.core.types import Name, no_nul
from api.deals.models import DealStatus, StageKind

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

    model_config = ConfigDict(
        json_schema_extra=examples(
            record(
                ex.PRODUCT, name="Terminal TPV Pro", sku="TPV-PRO", price_minor=45000, currency="EUR", is_active=True
            ),
        ),
    )


class ProductCreate(Input):
    name: Name
    sku: Sku | None = None
    price_minor: MinorUnits = 0
    currency: ISO4217 | None = Field(default=None, description="Defaults to the organisation's currency.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"name": "Terminal TPV Pro", "sku": "TPV-PRO", "price_minor": 45000, "currency": "EUR"},
        ),
    )


class ProductUpdate(Input):
    name: Name | None = optional()
    sku: Sku | None = None
    price_minor: MinorUnits | None = optional()
    currency: ISO4217 | None = optional()
    is_active: bool | None = optional()

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"price_minor": 42500},
        ),
    )


# Pipelines and stages


class StageRead(RecordRead):
    pipeline_id: uuid.UUID
    name: str
    position: int
    kind: StageKind
    probability: int
    rotten_days: int | None

    model_config = ConfigDict(
        json_schema_extra=examples(
            record(
                ex.STAGE_PROPOSAL,
                pipeline_id=ex.PIPELINE,
                name="Propuesta",
                position=2,
                kind="open",
                probability=50,
                rotten_days=21,
            ),
        ),
    )


class StageSpec(Input):
    name: Name
    probability: Probability = 0
    rotten_days: RottenDays | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"name": "Propuesta", "probability": 50, "rotten_days": 21},
        ),
    )


class StageCreate(StageSpec):
    position: int | None = Field(
        default=None, ge=1, description="Place among the open stages (1 = first); the end when left out."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"name": "Demostración", "probability": 30, "rotten_days": 10, "position": 2},
        ),
    )


class StageUpdate(Input):
    name: Name | None = optional()
    probability: Probability | None = optional()
    rotten_days: RottenDays | None = None
    position: int | None = optional(ge=1, description="New place among the open stages (open stages only).")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"probability": 60, "rotten_days": 14},
        ),
    )


class PipelineSummary(RecordRead):
    """A pipeline without its stages (sync sends those as records of their own)."""

    name: str
    team_id: uuid.UUID | None
    is_default: bool

    model_config = ConfigDict(
        json_schema_extra=examples(
            record(ex.PIPELINE, name="Ventas", team_id=None, is_default=True),
        ),
    )


class PipelineRead(PipelineSummary):
    stages: list[StageRead]

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                **example_of(PipelineSummary),
                "stages": [
                    record(
                        ex.STAGE_PROSPECT,
                        pipeline_id=ex.PIPELINE,
                        name="Prospecto",
                        position=1,
                        kind="open",
                        probability=10,
                        rotten_days=14,
                    ),
                    example_of(StageRead),
                    record(
                        ex.STAGE_WON,
                        pipeline_id=ex.PIPELINE,
                        name="Ganado",
                        position=5,
                        kind="won",
                        probability=100,
                        rotten_days=None,
                    ),
                ],
            },
        ),
    )


class PipelineCreate(Input):
    name: Name
    team_id: uuid.UUID | None = None
    stages: list[StageSpec] = Field(
        min_length=1, max_length=20, description="Open stages in order; won and lost stages are added after them."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {
                "name": "Renovaciones",
                "team_id": ex.TEAM,
                "stages": [
                    {"name": "Contactado", "probability": 20},
                    {"name": "Presupuesto enviado", "probability": 60, "rotten_days": 21},
                ],
            }
        ),
    )


class PipelineUpdate(Input):
    name: Name | None = optional()
    team_id: uuid.UUID | None = None
    is_default: bool | None = optional(description="Make this the organisation's default pipeline (true only).")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"name": "Ventas Valencia", "team_id": ex.TEAM},
        ),
    )


# Lost reasons


class LostReasonRead(RecordRead):
    name: str
    position: int
    is_active: bool

    model_config = ConfigDict(
        json_schema_extra=examples(
            record(ex.LOST_REASON, name="Precio demasiado alto", position=1, is_active=True),
        ),
    )


class LostReasonCreate(Input):
    name: Name

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"name": "Se quedan con su proveedor actual"},
        ),
    )


class LostReasonUpdate(Input):
    name: Name | None = optional()
    is_active: bool | None = optional()
    position: int | None = optional(ge=1)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"name": "Precio", "position": 2},
        ),
    )


# Deals

Amount = Annotated[int, Field(ge=0, le=10**15, description="In the currency's minor unit (cents).")]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), AfterValidator(no_nul)]


class DealLineIn(Input):
    product_id: uuid.UUID | None = Field(default=None, description="Name and price default to the product's.")
    name: Name | None = None
    quantity: int = Field(default=1, ge=1, le=1_000_000)
    unit_price_minor: Amount | None = None
    discount_percent: int = Field(default=0, ge=0, le=100)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"product_id": ex.PRODUCT, "quantity": 30, "discount_percent": 10},
        ),
    )


class DealLineRead(Output):
    id: uuid.UUID
    product_id: uuid.UUID | None
    name: str
    quantity: int
    unit_price_minor: int
    discount_percent: int
    amount_minor: int

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "id": ex.LINE,
                "product_id": ex.PRODUCT,
                "name": "Terminal TPV Pro",
                "quantity": 30,
                "unit_price_minor": 45000,
                "discount_percent": 10,
                "amount_minor": 1215000,
            },
        ),
    )


class DealRead(RecordRead):
    title: str
    company_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID
    owner_id: uuid.UUID
    amount_minor: int
    currency: str
    expected_close_on: date | None
    status: DealStatus
    lost_reason_id: uuid.UUID | None
    lost_note: str | None
    won_at: datetime | None
    lost_at: datetime | None
    previous_deal_id: uuid.UUID | None
    stage_entered_at: datetime
    last_activity_at: datetime | None
    rots_at: datetime | None
    rotten: bool = Field(description="Open, and nothing happened for the stage's `rotten_days`.")
    custom: dict[str, Any]
    deleted_at: datetime | None

    model_config = ConfigDict(
        json_schema_extra=examples(
            record(
                ex.DEAL,
                version=3,
                title="Renovación TPV · Frutas Martínez S.L.",
                company_id=ex.COMPANY,
                contact_id=ex.CONTACT,
                pipeline_id=ex.PIPELINE,
                stage_id=ex.STAGE_PROPOSAL,
                owner_id=ex.MARTA,
                amount_minor=1215000,
                currency="EUR",
                expected_close_on="2026-03-31",
                status="open",
                lost_reason_id=None,
                lost_note=None,
                won_at=None,
                lost_at=None,
                previous_deal_id=ex.PREVIOUS_DEAL,
                stage_entered_at="2026-03-09T10:20:00Z",
                last_activity_at=ex.CALLED,
                rots_at="2026-03-31T16:32:00Z",
                rotten=False,
                custom={},
                deleted_at=None,
            ),
        ),
    )


class DealDetail(DealRead):
    lines: list[DealLineRead]

    model_config = ConfigDict(
        json_schema_extra=examples(
            {**example_of(DealRead), "lines": [example_of(DealLineRead)]},
        ),
    )


class DealCreate(Input):
    id: uuid.UUID | None = Field(default=None, description="A UUIDv7 made by the client; one is made when left out.")
    title: Name
    company_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    pipeline_id: uuid.UUID | None = Field(default=None, description="Defaults to the default pipeline.")
    stage_id: uuid.UUID | None = Field(default=None, description="An open stage; defaults to the pipeline's first.")
    owner_id: uuid.UUID | None = Field(default=None, description="Defaults to you (an API key must name one).")
    amount_minor: Amount = 0
    currency: ISO4217 | None = Field(default=None, description="Defaults to the organisation's currency.")
    expected_close_on: date | None = None
    previous_deal_id: uuid.UUID | None = Field(default=None, description="The deal this one repeats (a resale).")
    lines: list[DealLineIn] | None = Field(default=None, max_length=100, description="The amount is their total.")
    custom: dict[str, Any] = Field(default_factory=dict, max_length=100)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {
                "title": "Renovación TPV · Frutas Martínez S.L.",
                "company_id": ex.COMPANY,
                "contact_id": ex.CONTACT,
                "expected_close_on": "2026-03-31",
                "previous_deal_id": ex.PREVIOUS_DEAL,
                "lines": [{"product_id": ex.PRODUCT, "quantity": 30, "discount_percent": 10}],
            },
            {"title": "Formación del personal · Frutas Martínez S.L.", "company_id": ex.COMPANY, "amount_minor": 90000},
        ),
    )


class DealUpdate(Input):
    title: Name | None = optional()
    company_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = optional(description="Reassign: a manager within their team, an admin anywhere.")
    amount_minor: Amount | None = optional(description="Only for deals without lines.")
    currency: ISO4217 | None = optional()
    expected_close_on: date | None = None
    previous_deal_id: uuid.UUID | None = None
    custom: dict[str, Any] | None = optional(max_length=100)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"expected_close_on": "2026-04-15", "contact_id": ex.CONTACT},
        ),
    )


class DealMove(Input):
    stage_id: uuid.UUID = Field(description="An open stage of the deal's pipeline.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"stage_id": ex.STAGE_NEGOTIATION},
        ),
    )


class DealLose(Input):
    lost_reason_id: uuid.UUID
    note: Note | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"lost_reason_id": ex.LOST_REASON, "note": "Se quedan con su proveedor actual, un 8 % más barato."},
        ),
    )


class DealReopen(Input):
    stage_id: uuid.UUID | None = Field(default=None, description="Defaults to the stage it was in before closing.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"stage_id": ex.STAGE_NEGOTIATION},
        ),
    )


class DealLines(Input):
    lines: list[DealLineIn] = Field(max_length=100)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {
                "lines": [
                    {"product_id": ex.PRODUCT, "quantity": 30, "discount_percent": 10},
                    {"name": "Instalación y puesta en marcha", "quantity": 1, "unit_price_minor": 60000},
                ]
            },
        ),
    )


class StageColumn(BaseModel):
    stage: StageRead
    count: int
    totals: dict[str, int] = Field(description="Sum of amounts per currency, in minor units.")
    weighted: dict[str, int] = Field(description="Totals weighted by the stage's probability.")
    items: list[DealRead]
    next_cursor: str | None = Field(description="For `GET /deals?stage_id=...&cursor=`.")

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "stage": example_of(StageRead),
                "count": 12,
                "totals": {"EUR": 8460000},
                "weighted": {"EUR": 4230000},
                "items": [example_of(DealRead)],
                "next_cursor": ex.CURSOR,
            },
        ),
    )


class Board(BaseModel):
    pipeline_id: uuid.UUID
    stages: list[StageColumn]

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"pipeline_id": ex.PIPELINE, "stages": [example_of(StageColumn)]},
        ),
    )
