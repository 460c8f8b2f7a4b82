"""Applying a row's plan through the same service functions the API uses (so every rule, the change log and the
goals apply), recording each record's values before and after: what an undo puts back."""

import uuid
from functools import cache
from typing import Any

from pydantic import BaseModel, TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from api.activities import service as activities
from api.activities.schemas import ActivityCreate, ActivityUpdate
from api.clients import service as clients
from api.clients.schemas import CompanyCreate, CompanyUpdate, ContactUpdate
from api.core import changes
from api.core.errors import AppError
from api.core.models import Record
from api.core.types import jsonable
from api.deals import deals
from api.deals.models import Deal
from api.deals.schemas import DealCreate, DealLineIn, DealUpdate
from api.imports.fields import Ref
from api.imports.models import ImportEntity, Outcome
from api.imports.plan import CREATE, MODELS, Context, Plan, RowError, column_of, validated
from api.imports.refs import core_name
from api.sharing.visibility import Viewer

SPECS = {ImportEntity.company: clients.COMPANY, ImportEntity.contact: clients.CONTACT}
UPDATE: dict[ImportEntity, type[BaseModel]] = {
    ImportEntity.company: CompanyUpdate,
    ImportEntity.contact: ContactUpdate,
    ImportEntity.deal: DealUpdate,
    ImportEntity.activity: ActivityUpdate,
}
# Lists a merge adds to rather than replaces.
_UNION = frozenset({"emails", "phones", "tags"})


# Columns the change log leaves out as derived, which an undo must put back all the same.
DERIVED = ("name_folded", "title_folded", "last_activity_at", "rots_at")


def snapshot(record: Record) -> dict[str, Any]:
    """A record's values as a step records them: what the log tracks, and the derived columns."""
    values = changes.values_of(record)
    values.update({name: jsonable(getattr(record, name)) for name in DERIVED if hasattr(record, name)})
    return values


def _step(entity: str, record: Record, op: str, before: dict[str, Any] | None) -> dict[str, Any]:
    after = snapshot(record)
    changed = {k: v for k, v in after.items() if before is None or before.get(k) != v}
    return {
        "entity": entity,
        "id": str(record.id),
        "op": op,
        "before": None if before is None else {k: before.get(k) for k in changed},
        "after": changed,
    }


async def apply(ctx: Context, viewer: Viewer, plan: Plan) -> tuple[uuid.UUID | None, list[dict[str, Any]], str | None]:
    """Carry out the plan; (the record's id, the steps taken, what a merge filled in). Raises RowError."""
    steps: list[dict[str, Any]] = []
    try:
        for target, name in plan.new_companies.items():
            plan.fields[target] = await _new_company(ctx, viewer, name, plan.fields.get("owner_id"), steps)
        if plan.outcome is Outcome.create:
            deal = await _deal_touched(ctx, plan)
            before = snapshot(deal) if deal is not None else None
            record = await _create(ctx, viewer, plan)
            steps.append(_step(ctx.entity.value, record, "create", None))
            if deal is not None and snapshot(deal) != before:
                # An activity freshens its deal (last activity, rotting): undo puts that back too.
                steps.append(_step("deal", deal, "update", before))
            return record.id, steps, None
        assert plan.target_id is not None
        record = await ctx.session.get(MODELS[ctx.entity], plan.target_id)
        assert record is not None
        before = snapshot(record)
        fields = _merged(record, plan.fields) if plan.outcome is Outcome.merge else _set(plan.fields)
        await _update(ctx, viewer, plan, record, fields)
        step = _step(ctx.entity.value, record, plan.outcome.value, before)
        if step["after"]:
            steps.append(step)
        filled = ", ".join(sorted(step["after"])) or "nothing new"
        return record.id, steps, filled
    except AppError as exc:
        pointer = exc.errors[0].get("pointer") if exc.errors else None
        raise RowError(exc.detail or exc.title, column_of(ctx, pointer)) from exc


async def _deal_touched(ctx: Context, plan: Plan) -> Deal | None:
    deal_id = plan.fields.get("deal_id") if ctx.entity is ImportEntity.activity else None
    return await ctx.session.get(Deal, deal_id) if deal_id else None


async def _new_company(
    ctx: Context, viewer: Viewer, name: str, owner_id: uuid.UUID | None, steps: list[dict[str, Any]]
) -> uuid.UUID:
    key = core_name(name)
    if key in ctx.new_company_ids:
        return ctx.new_company_ids[key]
    data = validated(ctx, CompanyCreate, {"name": name, "owner_id": owner_id})
    company = await clients.create_client(
        session=ctx.session, viewer=viewer, spec=clients.COMPANY, data=data, confirm_duplicate=True
    )
    ctx.new_company_ids[key] = company.id
    ctx.choices[Ref.company].add(company.id, company.name)
    steps.append(_step("company", company, "create", None))
    created: uuid.UUID = company.id
    return created


def _set(fields: dict[str, Any]) -> dict[str, Any]:
    """An update sets what the row holds; an empty cell leaves the field as it is."""
    return {k: v for k, v in fields.items() if v is not None and v != {} and k != "created_at"}


def _merged(record: Record, fields: dict[str, Any]) -> dict[str, Any]:
    """A merge keeps what the record has: it fills empty fields and adds e-mails, phones and tags it lacks."""
    merged: dict[str, Any] = {}
    for name, value in _set(fields).items():
        current: Any = getattr(record, name, None)
        if name in _UNION:
            extra = [v for v in value if v not in current]
            if extra:
                merged[name] = [*current, *extra]
        elif name == "custom":
            missing = {k: v for k, v in value.items() if current.get(k) in (None, "")}
            if missing:
                merged[name] = missing
        elif current in (None, "") and name != "owner_id":
            merged[name] = value
    return merged


async def _create(ctx: Context, viewer: Viewer, plan: Plan) -> Any:
    fields = dict(plan.fields)
    session = ctx.session
    if ctx.entity in SPECS:
        data = validated(ctx, CREATE[ctx.entity], fields)
        return await clients.create_client(
            session=session, viewer=viewer, spec=SPECS[ctx.entity], data=data, confirm_duplicate=True
        )
    if ctx.entity is ImportEntity.deal:
        return await _create_deal(ctx, viewer, plan, fields)
    data = validated(ctx, ActivityCreate, fields)
    activity, _ = await activities.create_activity(session=session, viewer=viewer, data=data)
    return activity


async def _create_deal(ctx: Context, viewer: Viewer, plan: Plan, fields: dict[str, Any]) -> Deal:
    created_at = fields.pop("created_at", None)
    product_id, quantity = fields.pop("product_id", None), fields.pop("quantity", None) or 1
    if product_id is not None:
        line: dict[str, Any] = {"product_id": product_id, "quantity": quantity}
        if "amount_minor" in fields:
            line["unit_price_minor"] = fields.pop("amount_minor") // quantity
        fields["lines"] = [DealLineIn.model_validate(line)]
    data = validated(ctx, DealCreate, fields)
    closing = plan.close[1] if plan.close else None
    deal = await deals.create_deal(session=ctx.session, viewer=viewer, data=data, at=created_at or closing)
    await _close(ctx, viewer, plan, deal)
    return deal


async def _close(ctx: Context, viewer: Viewer, plan: Plan, deal: Deal) -> None:
    if plan.close is None or deal.status == plan.close[0]:
        return
    kind, at, reason_id = plan.close
    if deal.status != "open":
        await deals.reopen_deal(
            session=ctx.session, viewer=viewer, deal_id=deal.id, stage_id=None, expected_version=None
        )
    if kind == "won":
        await deals.win_deal(session=ctx.session, viewer=viewer, deal_id=deal.id, expected_version=None, at=at)
    else:
        assert reason_id is not None
        await deals.lose_deal(
            session=ctx.session,
            viewer=viewer,
            deal_id=deal.id,
            lost_reason_id=reason_id,
            note=None,
            expected_version=None,
            at=at,
        )


async def _update(ctx: Context, viewer: Viewer, plan: Plan, record: Any, fields: dict[str, Any]) -> None:
    session = ctx.session
    if ctx.entity in SPECS:
        data = validated(ctx, UPDATE[ctx.entity], fields)
        await clients.update_client(
            session=session,
            viewer=viewer,
            spec=SPECS[ctx.entity],
            client_id=record.id,
            data=data,
            expected_version=None,
            confirm_duplicate=True,
            present=lambda r: r,
        )
    elif ctx.entity is ImportEntity.deal:
        stage_id = fields.pop("stage_id", None)
        for name in ("pipeline_id", "product_id", "quantity", "lost_reason_id"):
            fields.pop(name, None)
        data = validated(ctx, DealUpdate, fields)
        await deals.update_deal(session=session, viewer=viewer, deal_id=record.id, data=data, expected_version=None)
        if stage_id is not None and stage_id != record.stage_id:
            if record.status != "open":
                await deals.reopen_deal(
                    session=session, viewer=viewer, deal_id=record.id, stage_id=stage_id, expected_version=None
                )
            else:
                await deals.move_deal(
                    session=session, viewer=viewer, deal_id=record.id, stage_id=stage_id, expected_version=None
                )
        await _close(ctx, viewer, plan, record)
    else:
        fields.pop("kind", None)
        fields.pop("owner_id", None)
        done_at = fields.pop("done_at", None)
        data = validated(ctx, ActivityUpdate, fields)
        await activities.update_activity(
            session=session, viewer=viewer, activity_id=record.id, data=data, expected_version=None
        )
        if done_at is not None and record.done_at != done_at:
            await changes.update(session, viewer.principal, "activity", record, {"done_at": done_at})


# Undo


class Changed(Exception):
    """A record the import wrote has been changed since: undoing would overwrite someone's work."""


@cache
def _adapter(model: type[Record], name: str) -> TypeAdapter[Any]:
    annotation: Any = model.model_fields[name].annotation
    return TypeAdapter(annotation)


def changed_since(record: Record | None, step: dict[str, Any]) -> bool:
    if record is None:
        return True
    current = snapshot(record)
    return any(current.get(k) != v for k, v in step["after"].items())


async def undo(session: AsyncSession, viewer: Viewer, step: dict[str, Any]) -> None:
    """Put a record back as it was before the step: a created record is deleted, an updated one gets its previous
    values (its version still moves on, so phones and integrations see the change)."""
    entity = ImportEntity(step["entity"])
    model = MODELS[entity]
    record = await session.get(model, uuid.UUID(step["id"]))
    if changed_since(record, step):
        raise Changed(step["id"])
    assert record is not None
    if step["op"] == "create":
        await changes.delete(session, viewer.principal, entity.value, record)
    else:
        before = {k: _adapter(model, k).validate_python(v) for k, v in step["before"].items()}
        await changes.update(session, viewer.principal, entity.value, record, before)
    if entity in SPECS:
        await clients.write_points(session, SPECS[entity], record)
