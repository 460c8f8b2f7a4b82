"""Products, pipelines with their stages, and lost reasons: the reference data deals are built on.

Everyone in the organisation reads them (pickers, the board); only admins change them.
"""

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, func, select

from api.auth.models import Organization, Team
from api.auth.principals import Principal
from api.core import changes
from api.core.errors import Conflict, ValidationFailed
from api.core.etags import ensure_version
from api.core.models import get_record, live
from api.core.pagination import keyset_page
from api.core.schemas import changed_fields
from api.core.types import fold
from api.deals import rotting
from api.deals.models import Deal, LostReason, Pipeline, Product, Stage, StageKind
from api.deals.schemas import (
    LostReasonCreate,
    LostReasonRead,
    LostReasonUpdate,
    PipelineCreate,
    PipelineRead,
    PipelineUpdate,
    ProductCreate,
    ProductRead,
    ProductUpdate,
    StageCreate,
    StageRead,
    StageSpec,
    StageUpdate,
)

MAX_PIPELINES = 50
MAX_LOST_REASONS = 100


@dataclass(frozen=True)
class Defaults:
    """What a new organisation starts with, in its language."""

    pipeline: str
    stages: tuple[tuple[str, int, int | None], ...]  # (name, probability, rotten_days) of the open stages
    won: str
    lost: str
    lost_reasons: tuple[str, ...]


DEFAULTS = {
    "en": Defaults(
        pipeline="Sales",
        stages=(("Lead", 10, 14), ("Qualified", 25, 14), ("Proposal", 50, 21), ("Negotiation", 75, 21)),
        won="Won",
        lost="Lost",
        lost_reasons=("Price too high", "Chose a competitor", "No budget", "No decision", "Bad timing"),
    ),
    "es": Defaults(
        pipeline="Ventas",
        stages=(("Prospecto", 10, 14), ("Calificado", 25, 14), ("Propuesta", 50, 21), ("Negociación", 75, 21)),
        won="Ganado",
        lost="Perdido",
        lost_reasons=(
            "Precio demasiado alto",
            "Eligió a la competencia",
            "Sin presupuesto",
            "Sin decisión",
            "Mal momento",
        ),
    ),
}


def _defaults(org: Organization) -> Defaults:
    language = str(org.settings.get("locale", "en")).split("-")[0].lower()
    return DEFAULTS.get(language, DEFAULTS["en"])


async def seed_defaults(session: AsyncSession, principal: Principal, org: Organization) -> None:
    """Give a new organisation its default pipeline (Lead → Qualified → Proposal → Negotiation → Won / Lost)
    and a starting list of lost reasons."""
    defaults = _defaults(org)
    specs = [StageSpec(name=n, probability=p, rotten_days=r) for n, p, r in defaults.stages]
    await _create_pipeline(session, principal, PipelineCreate(name=defaults.pipeline, stages=specs), is_default=True)
    for name in defaults.lost_reasons:
        await create_lost_reason(session=session, principal=principal, data=LostReasonCreate(name=name))


# Pipelines and stages


async def _stages_of(session: AsyncSession, principal: Principal, pipeline_ids: list[uuid.UUID]) -> list[Stage]:
    stmt = live(Stage, principal.org_id).where(col(Stage.pipeline_id).in_(pipeline_ids)).order_by(col(Stage.position))
    return list((await session.scalars(stmt)).all())


def present_pipeline(pipeline: Pipeline, stages: list[Stage]) -> PipelineRead:
    return PipelineRead.model_validate(
        {**pipeline.model_dump(), "stages": [StageRead.model_validate(s) for s in stages]}
    )


async def list_pipelines(*, session: AsyncSession, principal: Principal) -> list[PipelineRead]:
    stmt = live(Pipeline, principal.org_id).order_by(col(Pipeline.is_default).desc(), col(Pipeline.name))
    pipelines = list((await session.scalars(stmt)).all())
    stages = await _stages_of(session, principal, [p.id for p in pipelines])
    return [present_pipeline(p, [s for s in stages if s.pipeline_id == p.id]) for p in pipelines]


async def get_pipeline(*, session: AsyncSession, principal: Principal, pipeline_id: uuid.UUID) -> PipelineRead:
    pipeline = await get_record(session, Pipeline, principal.org_id, pipeline_id, "pipeline")
    return await _present_by_id(session, principal, pipeline)


async def _check_team(session: AsyncSession, principal: Principal, team_id: uuid.UUID | None) -> None:
    if (
        team_id is not None
        and await session.scalar(live(Team, principal.org_id).where(col(Team.id) == team_id)) is None
    ):
        raise ValidationFailed.field("#/team_id", "No such team.")


async def _create_pipeline(
    session: AsyncSession, principal: Principal, data: PipelineCreate, *, is_default: bool
) -> Pipeline:
    org = await session.get(Organization, principal.org_id)
    assert org is not None
    defaults = _defaults(org)
    pipeline = Pipeline(org_id=principal.org_id, name=data.name, team_id=data.team_id, is_default=is_default)
    await changes.create(session, principal, "pipeline", pipeline)
    ends = ((defaults.won, StageKind.won, 100), (defaults.lost, StageKind.lost, 0))
    rows = [(s.name, StageKind.open, s.probability, s.rotten_days) for s in data.stages]
    rows += [(name, kind, probability, None) for name, kind, probability in ends]
    for position, (name, kind, probability, rotten_days) in enumerate(rows, start=1):
        stage = Stage(
            org_id=principal.org_id,
            pipeline_id=pipeline.id,
            name=name,
            position=position,
            kind=kind.value,
            probability=probability,
            rotten_days=rotten_days,
        )
        await changes.create(session, principal, "stage", stage)
    return pipeline


async def create_pipeline(*, session: AsyncSession, principal: Principal, data: PipelineCreate) -> PipelineRead:
    await _check_team(session, principal, data.team_id)
    count = await session.scalar(select(func.count()).select_from(live(Pipeline, principal.org_id).subquery()))
    if (count or 0) >= MAX_PIPELINES:
        raise Conflict(f"An organisation can have at most {MAX_PIPELINES} pipelines.")
    pipeline = await _create_pipeline(session, principal, data, is_default=False)
    return await _present_by_id(session, principal, pipeline)


async def _present_by_id(session: AsyncSession, principal: Principal, obj: Pipeline) -> PipelineRead:
    return present_pipeline(obj, await _stages_of(session, principal, [obj.id]))


async def _ensure_pipeline_version(
    session: AsyncSession, principal: Principal, pipeline: Pipeline, expected: int | None
) -> None:
    if expected is not None and expected != pipeline.version:
        current = await _present_by_id(session, principal, pipeline)
        ensure_version(pipeline, expected, lambda _: current)


async def update_pipeline(
    *,
    session: AsyncSession,
    principal: Principal,
    pipeline_id: uuid.UUID,
    data: PipelineUpdate,
    expected_version: int | None,
) -> PipelineRead:
    pipeline = await get_record(session, Pipeline, principal.org_id, pipeline_id, "pipeline")
    await _ensure_pipeline_version(session, principal, pipeline, expected_version)
    fields = changed_fields(data)
    if "team_id" in fields:
        await _check_team(session, principal, fields["team_id"])
    if fields.get("is_default") is False and pipeline.is_default:
        raise ValidationFailed.field("#/is_default", "Make another pipeline the default instead.")
    if fields.get("is_default") and not pipeline.is_default:
        previous = (await session.scalars(live(Pipeline, principal.org_id).where(col(Pipeline.is_default)))).all()
        for other in previous:
            await changes.update(session, principal, "pipeline", other, {"is_default": False})
    await changes.update(session, principal, "pipeline", pipeline, fields)
    return await _present_by_id(session, principal, pipeline)


async def delete_pipeline(
    *, session: AsyncSession, principal: Principal, pipeline_id: uuid.UUID, expected_version: int | None
) -> None:
    pipeline = await get_record(session, Pipeline, principal.org_id, pipeline_id, "pipeline")
    await _ensure_pipeline_version(session, principal, pipeline, expected_version)
    if pipeline.is_default:
        raise Conflict("The default pipeline cannot be deleted; make another pipeline the default first.")
    await _refuse_if_deals(session, principal, col(Deal.pipeline_id) == pipeline.id, "pipeline")
    for stage in await _stages_of(session, principal, [pipeline.id]):
        await changes.delete(session, principal, "stage", stage)
    await changes.delete(session, principal, "pipeline", pipeline)


async def _refuse_if_deals(session: AsyncSession, principal: Principal, where: Any, what: str) -> None:
    count = await session.scalar(select(func.count()).select_from(live(Deal, principal.org_id).where(where).subquery()))
    if count:
        raise Conflict(f"{count} deal(s) are in this {what}: move them first.", extra={"deal_count": count})


async def _renumber(
    session: AsyncSession, principal: Principal, entity: str, ordered: list[Stage] | list[LostReason]
) -> None:
    """Positions 1..n in the given order (only the records whose position changes are written)."""
    for position, item in enumerate(ordered, start=1):
        await changes.update(session, principal, entity, item, {"position": position})


def _split(stages: list[Stage]) -> tuple[list[Stage], list[Stage]]:
    open_stages = [s for s in stages if s.kind == StageKind.open.value]
    # Won before lost, after every open stage.
    ends = sorted((s for s in stages if s.kind != StageKind.open.value), key=lambda s: s.kind != StageKind.won.value)
    return open_stages, ends


async def add_stage(*, session: AsyncSession, principal: Principal, pipeline_id: uuid.UUID, data: StageCreate) -> Stage:
    pipeline = await get_record(session, Pipeline, principal.org_id, pipeline_id, "pipeline")
    open_stages, ends = _split(await _stages_of(session, principal, [pipeline.id]))
    if len(open_stages) >= 20:
        raise Conflict("A pipeline can have at most 20 open stages.")
    stage = Stage(
        org_id=principal.org_id,
        pipeline_id=pipeline.id,
        name=data.name,
        position=len(open_stages) + len(ends) + 1,
        kind=StageKind.open.value,
        probability=data.probability,
        rotten_days=data.rotten_days,
    )
    await changes.create(session, principal, "stage", stage)
    index = min(data.position or len(open_stages) + 1, len(open_stages) + 1) - 1
    await _renumber(session, principal, "stage", [*open_stages[:index], stage, *open_stages[index:], *ends])
    return stage


async def update_stage(
    *,
    session: AsyncSession,
    principal: Principal,
    stage_id: uuid.UUID,
    data: StageUpdate,
    expected_version: int | None,
) -> Stage:
    stage = await get_record(session, Stage, principal.org_id, stage_id, "stage")
    ensure_version(stage, expected_version, StageRead.model_validate)
    fields = changed_fields(data)
    is_open = stage.kind == StageKind.open.value
    for name in ("probability", "rotten_days", "position"):
        if name in fields and not is_open:
            raise ValidationFailed.field(f"#/{name}", "The won and lost stages keep their place and probability.")
    position = fields.pop("position", None)
    rotting_changed = "rotten_days" in fields and fields["rotten_days"] != stage.rotten_days
    await changes.update(session, principal, "stage", stage, fields)
    if rotting_changed:
        await rotting.restage(session, stage)
    if position is not None:
        open_stages, ends = _split(await _stages_of(session, principal, [stage.pipeline_id]))
        others = [s for s in open_stages if s.id != stage.id]
        index = min(position, len(open_stages)) - 1
        await _renumber(session, principal, "stage", [*others[:index], stage, *others[index:], *ends])
    return stage


async def delete_stage(
    *, session: AsyncSession, principal: Principal, stage_id: uuid.UUID, expected_version: int | None
) -> None:
    stage = await get_record(session, Stage, principal.org_id, stage_id, "stage")
    ensure_version(stage, expected_version, StageRead.model_validate)
    if stage.kind != StageKind.open.value:
        raise Conflict("The won and lost stages cannot be deleted.")
    open_stages, ends = _split(await _stages_of(session, principal, [stage.pipeline_id]))
    if len(open_stages) == 1:
        raise Conflict("A pipeline needs at least one open stage.")
    await _refuse_if_deals(session, principal, col(Deal.stage_id) == stage.id, "stage")
    await changes.delete(session, principal, "stage", stage)
    await _renumber(session, principal, "stage", [*(s for s in open_stages if s.id != stage.id), *ends])


# Products


async def list_products(
    *, session: AsyncSession, principal: Principal, include_inactive: bool, limit: int, cursor: str | None
) -> tuple[list[Product], str | None]:
    stmt = live(Product, principal.org_id)
    if not include_inactive:
        stmt = stmt.where(col(Product.is_active))
    return await keyset_page(
        session,
        stmt,
        scope="products",
        keys=[col(Product.name_folded), col(Product.id)],
        key_of=lambda p: (p.name_folded, p.id),
        limit=limit,
        cursor=cursor,
    )


async def get_product(*, session: AsyncSession, principal: Principal, product_id: uuid.UUID) -> Product:
    return await get_record(session, Product, principal.org_id, product_id, "product")


async def _check_sku_free(
    session: AsyncSession, principal: Principal, sku: str | None, except_id: uuid.UUID | None = None
) -> None:
    if sku is None:
        return
    stmt = live(Product, principal.org_id).where(col(Product.sku) == sku)
    if except_id is not None:
        stmt = stmt.where(col(Product.id) != except_id)
    if (await session.scalars(stmt)).first() is not None:
        raise Conflict("Another product has this SKU.", errors=[{"pointer": "#/sku", "detail": "already in use"}])


async def create_product(*, session: AsyncSession, principal: Principal, data: ProductCreate) -> Product:
    await _check_sku_free(session, principal, data.sku)
    org = await session.get(Organization, principal.org_id)
    assert org is not None
    currency = data.currency or str(org.settings.get("currency", "EUR"))
    product = Product(
        org_id=principal.org_id,
        name=data.name,
        name_folded=fold(data.name),
        sku=data.sku,
        price_minor=data.price_minor,
        currency=currency,
    )
    await changes.create(session, principal, "product", product)
    return product


async def update_product(
    *,
    session: AsyncSession,
    principal: Principal,
    product_id: uuid.UUID,
    data: ProductUpdate,
    expected_version: int | None,
) -> Product:
    product = await get_record(session, Product, principal.org_id, product_id, "product")
    ensure_version(product, expected_version, ProductRead.model_validate)
    fields = changed_fields(data)
    if "name" in fields:
        fields["name_folded"] = fold(fields["name"])
    if fields.get("sku") is not None:
        await _check_sku_free(session, principal, fields["sku"], except_id=product.id)
    await changes.update(session, principal, "product", product, fields)
    return product


# Lost reasons


async def list_lost_reasons(*, session: AsyncSession, principal: Principal, include_inactive: bool) -> list[LostReason]:
    stmt = live(LostReason, principal.org_id).order_by(col(LostReason.position))
    if not include_inactive:
        stmt = stmt.where(col(LostReason.is_active))
    return list((await session.scalars(stmt)).all())


async def create_lost_reason(*, session: AsyncSession, principal: Principal, data: LostReasonCreate) -> LostReason:
    reasons = await list_lost_reasons(session=session, principal=principal, include_inactive=True)
    if len(reasons) >= MAX_LOST_REASONS:
        raise Conflict(f"An organisation can have at most {MAX_LOST_REASONS} lost reasons.")
    reason = LostReason(org_id=principal.org_id, name=data.name, position=len(reasons) + 1)
    await changes.create(session, principal, "lost_reason", reason)
    return reason


async def update_lost_reason(
    *,
    session: AsyncSession,
    principal: Principal,
    lost_reason_id: uuid.UUID,
    data: LostReasonUpdate,
    expected_version: int | None,
) -> LostReason:
    reason = await get_record(session, LostReason, principal.org_id, lost_reason_id, "lost reason")
    ensure_version(reason, expected_version, LostReasonRead.model_validate)
    fields = changed_fields(data)
    position = fields.pop("position", None)
    await changes.update(session, principal, "lost_reason", reason, fields)
    if position is not None:
        reasons = await list_lost_reasons(session=session, principal=principal, include_inactive=True)
        others = [r for r in reasons if r.id != reason.id]
        index = min(position, len(others) + 1) - 1
        await _renumber(session, principal, "lost_reason", [*others[:index], reason, *others[index:]])
    return reason


async def delete_product(
    *, session: AsyncSession, principal: Principal, product_id: uuid.UUID, expected_version: int | None
) -> None:
    product = await get_record(session, Product, principal.org_id, product_id, "product")
    ensure_version(product, expected_version, ProductRead.model_validate)
    await changes.delete(session, principal, "product", product)


async def delete_lost_reason(
    *, session: AsyncSession, principal: Principal, lost_reason_id: uuid.UUID, expected_version: int | None
) -> None:
    reason = await get_record(session, LostReason, principal.org_id, lost_reason_id, "lost reason")
    ensure_version(reason, expected_version, LostReasonRead.model_validate)
    await changes.delete(session, principal, "lost_reason", reason)
    remaining = await list_lost_reasons(session=session, principal=principal, include_inactive=True)
    await _renumber(session, principal, "lost_reason", remaining)
