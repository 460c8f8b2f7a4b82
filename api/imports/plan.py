"""What a row would become: its cells read into typed values, its references resolved, and its outcome decided
(create, update, merge, reject or skip). The dry run stops here; the import applies the plan (apply.py)."""

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from babel import Locale
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.activities.models import Activity
from api.activities.schemas import ActivityCreate
from api.activities.service import PLANNED
from api.clients import normalise
from api.clients.models import Company, Contact, ContactPoint
from api.clients.schemas import CompanyCreate, ContactCreate
from api.core.errors import ValidationFailed
from api.core.types import fold
from api.deals.models import Deal, Stage
from api.deals.schemas import DealCreate
from api.imports import values
from api.imports.fields import LISTS, Kind, Ref, Spec
from api.imports.models import ImportEntity, ImportJob, ImportValue, Outcome
from api.imports.reading import Cell
from api.imports.refs import Choices, core_name

# A created company, in a plan: the value the row named, created once by the first row that needs it.
NEW = uuid.UUID(int=0)
MODELS: dict[ImportEntity, Any] = {
    ImportEntity.company: Company,
    ImportEntity.contact: Contact,
    ImportEntity.deal: Deal,
    ImportEntity.activity: Activity,
}


class RowError(Exception):
    """The row cannot be imported as it is: why, and the column at fault."""

    def __init__(self, reason: str, column: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.column = column


@dataclass(frozen=True)
class Column:
    index: int
    header: str
    spec: Spec


@dataclass
class Plan:
    outcome: Outcome
    reason: str | None = None
    column: str | None = None
    target_id: uuid.UUID | None = None
    # The record's fields as the service functions take them (company_id, owner_id, emails...).
    fields: dict[str, Any] = field(default_factory=dict)
    # Companies to create first, by the name the row gave: {"company_id": "Acme"}.
    new_companies: dict[str, str] = field(default_factory=dict)
    # A deal to close once created: ("won" | "lost", when, lost reason id).
    close: tuple[str, datetime | None, uuid.UUID | None] | None = None
    # Duplicate keys of a record this row creates: later rows of the file match them.
    keys: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    digest: str | None = None


@dataclass
class Context:
    """What every row of a step reads: the job, the organisation's settings and the records rows may name."""

    session: AsyncSession
    job: ImportJob
    entity: ImportEntity
    columns: list[Column]
    org_id: uuid.UUID
    tz: ZoneInfo
    region: str | None
    currency: str
    choices: dict[Ref, Choices]
    decisions: dict[tuple[str, str], ImportValue]
    # Filled as the file is worked through (and rebuilt from import_row when a step starts elsewhere).
    planned_keys: dict[tuple[str, str], int] = field(default_factory=dict)
    digests: dict[str, int] = field(default_factory=dict)
    # Companies this job has created (or, in a dry run, would create), by `core_name`.
    new_company_ids: dict[str, uuid.UUID] = field(default_factory=dict)

    def date_order(self, header: str) -> str:
        """How this column writes dates: what its own values show, else the file's (or the admin's) reading."""
        found = self.job.options.get("date_orders", {}).get(header) or self.job.options.get("date_order", "dmy")
        return str(found)

    def decimal_mark(self, header: str) -> str:
        found = self.job.options.get("decimal_marks", {}).get(header) or self.job.options.get("decimal_mark", ",")
        return str(found)

    @property
    def threshold(self) -> int:
        return int(self.job.options.get("fuzzy_threshold", 90))


@cache
def _countries() -> dict[str, str]:
    names: dict[str, str] = {}
    for lang in ("en", "es"):
        for code, name in Locale.parse(lang).territories.items():
            if len(code) == 2 and code.isalpha():
                names[fold(name)] = code
    return names


def _text(cell: Cell) -> str:
    if isinstance(cell, float) and cell.is_integer() and abs(cell) < 1e15:
        return str(int(cell))
    if isinstance(cell, float):
        # As Excel shows it (15 significant digits): digits beyond those were never in the file.
        return format(cell, ".15g")
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    return str(cell).strip()


def _is_empty(cell: Cell) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def read_cell(ctx: Context, column: Column, cell: Cell) -> Any:
    """One cell as its field's type; a cell that cannot be read raises RowError naming the column."""
    spec = column.spec
    if isinstance(cell, dict):
        raise RowError(str(cell.get("error", "The cell holds an error.")), column.header)
    try:
        return _read(ctx, column, cell)
    except (ValueError, ValidationFailed) as exc:
        detail = exc.detail if isinstance(exc, ValidationFailed) else str(exc)
        raise RowError(f"{spec.label}: {detail}", column.header) from exc


def _read(ctx: Context, column: Column, cell: Cell) -> Any:
    spec, kind = column.spec, column.spec.kind
    if kind in (Kind.text, Kind.long_text, Kind.first_name, Kind.last_name, Kind.ref):
        text = _text(cell)
        if len(text) > spec.max_length:
            raise ValueError(f"longer than {spec.max_length} characters")
        return text
    if kind is Kind.emails:
        # "/" separates addresses too ("ana@x.es/ana@y.es"): no one puts one in a mailbox name.
        return [normalise.email(v, "#") for v in values.split_list(_text(cell).replace("/", ";"))]
    if kind in (Kind.phones, Kind.phone):
        found, rest = values.phones_in(_text(cell), ctx.region)
        if not found:
            raise ValueError(f"'{_text(cell)}' holds no phone number")
        return found, rest
    if kind is Kind.domain:
        text = _text(cell)
        return normalise.domain(text.rsplit("@", 1)[-1], "#")
    if kind is Kind.integer:
        return values.parse_int(cell)
    if kind is Kind.minutes:
        return values.parse_int(cell) * 60
    if kind is Kind.date:
        return values.parse_date(cell, ctx.date_order(column.header))
    if kind is Kind.datetime:
        return values.parse_datetime(cell, ctx.date_order(column.header), ctx.tz)
    if kind is Kind.amount:
        return values.parse_amount(cell, ctx.decimal_mark(column.header)), values.currency_hint(cell)
    if kind is Kind.currency:
        text = _text(cell)
        code = values.currency_hint(text) or text.upper()
        if len(code) != 3 or not code.isalpha():
            raise ValueError(f"'{text}' is not a currency code (EUR, USD, MXN...)")
        return code
    if kind is Kind.boolean:
        return values.parse_bool(cell)
    if kind is Kind.tags:
        return values.split_list(cell)
    if kind is Kind.country:
        name = _text(cell)
        country = name.upper() if len(name) == 2 and name.isalpha() else _countries().get(fold(name))
        if country is None:
            raise ValueError(f"'{name}' is not a country")
        return country
    if kind is Kind.choice:
        return values.choice(cell, spec.options)
    return _custom(ctx, column, cell)


def _custom(ctx: Context, column: Column, cell: Cell) -> Any:
    spec = column.spec
    assert spec.custom is not None
    kind = spec.custom.kind
    if kind == "number":
        number = values.parse_amount(cell, ctx.decimal_mark(column.header))
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "date":
        return values.parse_date(cell, ctx.date_order(column.header)).isoformat()
    if kind == "choice":
        return values.choice(cell, {fold(c): c for c in spec.custom.choices})
    return _text(cell)


# References


async def resolve(ctx: Context, column: Column, value: str) -> uuid.UUID:
    """The record a reference cell names: an exact match, else the admin's decision for the value (NEW when it is
    to be created). Nothing is guessed: an undecided value rejects the row."""
    spec = column.spec
    assert spec.ref is not None
    folded = fold(value).strip()
    found = ctx.choices[spec.ref].find(value)
    if len(found) == 1:
        return next(iter(found))
    # "Nueva SL" and "Nueva S.L." in the same file are one company to create.
    if spec.ref is Ref.company and not found and core_name(value) in ctx.new_company_ids:
        return ctx.new_company_ids[core_name(value)]
    decision = ctx.decisions.get((spec.key, folded))
    action = decision.action if decision else None
    # A field's default decides for values that match nothing; one that matches several is the admin's to choose.
    action = action or (None if found else ctx.job.defaults.get(spec.key))
    what = spec.label.split(" (")[0].lower()
    if action == "map" and decision is not None and decision.target_id is not None:
        return decision.target_id
    if action == "create" and spec.ref is Ref.company:
        return NEW
    if action == "reject":
        raise RowError(f"The {what} '{value}' was set to be rejected.", column.header)
    several = f"{len(found)} records are called '{value}'" if found else f"No {what} is called '{value}'"
    raise RowError(f"{several}: choose which one it is before importing.", column.header)


# Outcome


def _digest(cells: list[Cell], columns: list[Column]) -> str:
    mapped = [cells[c.index] if c.index < len(cells) else None for c in columns]
    return hashlib.sha1(json.dumps(mapped, default=str, sort_keys=True).encode(), usedforsecurity=False).hexdigest()


async def plan_row(ctx: Context, row_number: int, cells: list[Cell]) -> Plan:
    """What this row would do, given the records as they are now (and, in a dry run, the rows before it)."""
    if all(_is_empty(c) for c in cells):
        return Plan(Outcome.skip, "The row is empty.")
    present = [(c, cells[c.index]) for c in ctx.columns if c.index < len(cells) and not _is_empty(cells[c.index])]
    if not present:
        return Plan(Outcome.skip, "The row has nothing in the mapped columns.")
    digest = _digest(cells, ctx.columns)
    if digest in ctx.digests and ctx.digests[digest] < row_number:
        return Plan(Outcome.skip, f"The same as row {ctx.digests[digest]}.", digest=digest)
    try:
        read: dict[str, tuple[Column, Any]] = {}
        notes: list[str] = []
        for column, cell in present:
            value = read_cell(ctx, column, cell)
            if column.spec.kind in (Kind.phones, Kind.phone):
                value, rest = value
                if column.spec.kind is Kind.phone and len(value) > 1:
                    notes.append(
                        f"{column.header}: a company has one phone; kept {value[0]}, left out {', '.join(value[1:])}."
                    )
                if any(ch.isalpha() for ch in rest):
                    notes.append(f"{column.header}: kept {', '.join(value)}, left out '{rest.strip()}'.")
            key = column.spec.key
            if key in read and column.spec.kind in LISTS:
                value = list(dict.fromkeys([*read[key][1], *value]))
            read[key] = (read.get(key, (column, None))[0], value)
        plan = await BUILDERS[ctx.entity](ctx, read)
        _check(ctx, plan)
    except RowError as exc:
        return Plan(Outcome.reject, exc.reason, exc.column, digest=digest)
    plan.notes = notes + plan.notes
    plan.digest = digest
    return plan


def _value(read: dict[str, tuple[Column, Any]], key: str) -> Any:
    return read[key][1] if key in read else None


async def _refs(ctx: Context, read: dict[str, tuple[Column, Any]], plan: Plan, names: dict[str, str]) -> None:
    """Resolve the reference columns into `plan.fields` (`names`: field key -> model field)."""
    for key, target in names.items():
        if key not in read:
            continue
        column, value = read[key]
        found = await resolve(ctx, column, value)
        if found == NEW:
            plan.new_companies[target] = value
        else:
            plan.fields[target] = found


async def _by_id(ctx: Context, read: dict[str, tuple[Column, Any]]) -> uuid.UUID | None:
    if "id" not in read:
        return None
    column, text = read["id"]
    try:
        record_id = uuid.UUID(text)
    except ValueError as exc:
        raise RowError(f"'{text}' is not a Fieldbook id.", column.header) from exc
    model = MODELS[ctx.entity]
    found = await ctx.session.scalar(
        select(model.id).where(col(model.id) == record_id, col(model.org_id) == ctx.org_id, model.deleted_at.is_(None))
    )
    if found is None:
        raise RowError(f"No {ctx.entity.value} has the id {text}.", column.header)
    return record_id


async def _points_owner(ctx: Context, kind: str, points: list[tuple[str, str]]) -> uuid.UUID | None:
    if not points:
        return None
    return await ctx.session.scalar(
        select(ContactPoint.client_id)
        .where(
            col(ContactPoint.org_id) == ctx.org_id,
            col(ContactPoint.client_kind) == kind,
            sa.tuple_(col(ContactPoint.kind), col(ContactPoint.value)).in_(points),
        )
        .order_by(col(ContactPoint.client_id))
        .limit(1)
    )


def _earlier_row(ctx: Context, keys: list[tuple[str, str]]) -> int | None:
    return next((ctx.planned_keys[k] for k in keys if k in ctx.planned_keys), None)


async def _client_outcome(ctx: Context, plan: Plan, read: dict[str, tuple[Column, Any]], kind: str) -> Plan:
    """Update (the id, or the chosen key, names a record), merge (a duplicate: same e-mail, phone or domain, or a
    company name that is the same but for spelling) or create."""
    points = [
        (p, v)
        for p, f in (("email", "emails"), ("phone", "phones"), ("domain", "domain"), ("phone", "phone"))
        for v in _as_list(plan.fields.get(f))
    ]
    target = await _by_id(ctx, read)
    key = ctx.job.match_key
    if target is None and key and key != "id" and key in read:
        target = await _match_on(ctx, kind, key, read[key][1], read[key][0])
    if target is not None:
        return _with(plan, Outcome.update, target)
    duplicate = await _points_owner(ctx, kind, points)
    if duplicate is not None:
        return _with(plan, Outcome.merge, duplicate, "Same e-mail, phone or web domain as a record in Fieldbook.")
    earlier = _earlier_row(ctx, [(p, v) for p, v in points])
    if kind == "company" and "name" in plan.fields:
        same = ctx.choices[Ref.company].same_company(plan.fields["name"], ctx.threshold)
        if same is not None:
            planned = ctx.planned_keys.get(("company", str(same)))
            if planned is not None:
                earlier = planned
            else:
                label = ctx.choices[Ref.company].labels.get(same, "")
                return _with(plan, Outcome.merge, same, f"The same company as '{label}' in Fieldbook.")
    if earlier is not None:
        return _with(plan, Outcome.merge, None, f"A duplicate of row {earlier}.")
    plan.keys = points
    return _with(plan, Outcome.create, None)


async def _match_on(ctx: Context, kind: str, key: str, value: Any, column: Column) -> uuid.UUID | None:
    if key == "name":
        found = ctx.choices[Ref.company].find(value)
        if len(found) > 1:
            raise RowError(f"{len(found)} companies are called '{value}': add an id column.", column.header)
        return next(iter(found), None)
    point = {"emails": "email", "phones": "phone", "domain": "domain"}[key]
    return await _points_owner(ctx, kind, [(point, v) for v in _as_list(value)])


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _with(plan: Plan, outcome: Outcome, target: uuid.UUID | None, reason: str | None = None) -> Plan:
    plan.outcome, plan.target_id, plan.reason = outcome, target, reason
    return plan


_CLIENT_TEXT = ("name", "segment", "source", "tags")


def _client_fields(read: dict[str, tuple[Column, Any]], names: tuple[str, ...]) -> dict[str, Any]:
    fields = {k: _value(read, k) for k in (*_CLIENT_TEXT, *names) if k in read}
    fields["custom"] = {k.removeprefix("custom."): v for k, (_, v) in read.items() if k.startswith("custom.")}
    return fields


async def _company(ctx: Context, read: dict[str, tuple[Column, Any]]) -> Plan:
    fields = _client_fields(read, ("domain", "industry", "size", "address", "city", "country"))
    if "phone" in read:
        fields["phone"] = read["phone"][1][0]
    plan = Plan(Outcome.create, fields=fields)
    await _refs(ctx, read, plan, {"owner": "owner_id"})
    return await _client_outcome(ctx, plan, read, "company")


async def _contact(ctx: Context, read: dict[str, tuple[Column, Any]]) -> Plan:
    fields = _client_fields(read, ("title", "emails", "email_consent", "phone_consent"))
    if "phones" in read:
        fields["phones"] = read["phones"][1]
    if "name" not in fields and ("first_name" in read or "last_name" in read):
        fields["name"] = " ".join(str(_value(read, k)) for k in ("first_name", "last_name") if k in read)
    plan = Plan(Outcome.create, fields=fields)
    await _refs(ctx, read, plan, {"owner": "owner_id", "company": "company_id"})
    return await _client_outcome(ctx, plan, read, "contact")


async def _deal(ctx: Context, read: dict[str, tuple[Column, Any]]) -> Plan:
    fields = {k: _value(read, k) for k in ("title", "expected_close_on", "currency") if k in read}
    fields["custom"] = {k.removeprefix("custom."): v for k, (_, v) in read.items() if k.startswith("custom.")}
    plan = Plan(Outcome.create, fields=fields)
    await _refs(
        ctx,
        read,
        plan,
        {
            "owner": "owner_id",
            "company": "company_id",
            "contact": "contact_id",
            "pipeline": "pipeline_id",
            "product": "product_id",
            "lost_reason": "lost_reason_id",
        },
    )
    if "amount" in read:
        column, (amount, hinted) = read["amount"]
        if hinted and fields.get("currency") and hinted != fields["currency"]:
            raise RowError(f"The amount is in {hinted}, the currency column says {fields['currency']}.", column.header)
        currency = fields.get("currency") or hinted or ctx.currency
        fields["currency"] = currency
        try:
            fields["amount_minor"] = values.to_minor(amount, currency)
        except ValueError as exc:
            raise RowError(f"Amount: {exc}", column.header) from exc
    if "quantity" in read:
        column, quantity = read["quantity"]
        if quantity < 1:
            raise RowError("Quantity: at least 1.", column.header)
        if "product" not in read:
            plan.notes.append(f"{column.header} was left out: it counts units of a product, and no product is named.")
        elif fields.get("amount_minor", 0) % quantity:
            raise RowError(
                f"The amount is not {quantity} times a unit price: give the amount of one unit, or fix the total.",
                column.header,
            )
        fields["quantity"] = quantity
    if "stage" in read:
        column, name = read["stage"]
        stage = await _stage(ctx, column, name, fields.get("pipeline_id"))
        if fields.setdefault("pipeline_id", stage.pipeline_id) != stage.pipeline_id:
            raise RowError(f"The stage '{name}' is not in the row's pipeline.", column.header)
        if stage.kind == "open":
            fields["stage_id"] = stage.id
        else:
            plan.close = (stage.kind, _noon(ctx, _value(read, "closed_on")), fields.pop("lost_reason_id", None))
            if stage.kind == "lost" and plan.close[2] is None:
                raise RowError("A lost deal needs its lost reason.", column.header)
    created, closed = _value(read, "created_on"), _value(read, "closed_on")
    if created is not None:
        fields["created_at"] = _noon(ctx, created)
    if created is not None and closed is not None and closed < created:
        raise RowError("It was closed before it was created.", read["closed_on"][0].header)
    if plan.close is None and "lost_reason_id" in fields:
        fields.pop("lost_reason_id")
        plan.notes.append("The lost reason was left out: the deal is not lost.")
    if plan.close is None and closed is not None:
        plan.notes.append("The closing date was left out: the deal is open.")
    target = await _by_id(ctx, read)
    if target is not None:
        # An update changes the deal's own fields and stage; its lines and pipeline are changed in the deal itself.
        kept = [read[k][0].header for k in ("product", "quantity", "pipeline", "created_on") if k in read]
        if kept:
            plan.notes.append(f"Left out on an update: {', '.join(kept)}.")
    return _with(plan, Outcome.update if target else Outcome.create, target)


async def _stage(ctx: Context, column: Column, name: str, pipeline_id: uuid.UUID | None) -> Stage:
    """The stage of that name in the row's pipeline (the default one when the row names none); the admin's decision
    when the name is not a stage of it."""
    stages = ctx.choices[Ref.stage]
    found = stages.find(name)
    within = {s for s in found if stages.parent[s] == (pipeline_id or stages.home)}
    if len(within) == 1 or (pipeline_id is None and len(found) == 1):
        stage_id = next(iter(within or found))
    else:
        stage_id = await resolve(ctx, column, name)
    stage = await ctx.session.get(Stage, stage_id)
    assert stage is not None
    return stage


def _noon(ctx: Context, day: date | None) -> datetime | None:
    """A day from the file as a moment: noon in the organisation's time zone, on that day wherever it is read."""
    if day is None:
        return None
    return datetime(day.year, day.month, day.day, 12, tzinfo=ctx.tz)


async def _activity(ctx: Context, read: dict[str, tuple[Column, Any]]) -> Plan:
    names = ("kind", "subject", "body", "done_at", "due_at", "direction", "outcome")
    fields = {k: _value(read, k) for k in names if k in read}
    if "duration" in read:
        fields["duration_seconds"] = read["duration"][1]
    plan = Plan(Outcome.create, fields=fields)
    await _refs(
        ctx, read, plan, {"owner": "owner_id", "company": "company_id", "contact": "contact_id", "deal": "deal_id"}
    )
    target = await _by_id(ctx, read)
    kept = [read[k][0].header for k in ("kind", "owner") if k in read]
    if target is not None and kept:
        plan.notes.append(f"Left out on an update: {', '.join(kept)} (an activity keeps its type and who logged it).")
    return _with(plan, Outcome.update if target else Outcome.create, target)


CREATE: dict[ImportEntity, type[BaseModel]] = {
    ImportEntity.company: CompanyCreate,
    ImportEntity.contact: ContactCreate,
    ImportEntity.deal: DealCreate,
    ImportEntity.activity: ActivityCreate,
}


def validated(ctx: Context, model: type[BaseModel], fields: dict[str, Any]) -> Any:
    """`fields` as the API's input model; the first error as a RowError naming its column."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        pointer = "#/" + "/".join(str(p) for p in error["loc"])
        raise RowError(f"{error['msg']}.", column_of(ctx, pointer)) from exc


def _check(ctx: Context, plan: Plan) -> None:
    """What the import would refuse, found by the dry run too: the API's input rules, and a planned activity's due
    time (the rules that need the database are the services', met by the import alone)."""
    if plan.outcome is not Outcome.create or ctx.entity is ImportEntity.deal:
        return
    validated(ctx, CREATE[ctx.entity], {**plan.fields, **dict.fromkeys(plan.new_companies, NEW)})
    fields = plan.fields
    planned = ctx.entity is ImportEntity.activity and fields.get("kind") in PLANNED
    if planned and fields.get("done_at") is None and fields.get("due_at") is None:
        headers = {c.spec.key: c.header for c in ctx.columns}
        column = headers.get("due_at", headers.get("kind"))
        raise RowError(f"A {fields['kind']} needs a due time (or the time it was done).", column)


BUILDERS = {
    ImportEntity.company: _company,
    ImportEntity.contact: _contact,
    ImportEntity.deal: _deal,
    ImportEntity.activity: _activity,
}

# Which import field a service's JSON pointer is about, to name the column at fault.
POINTER_FIELDS = {
    "company_id": "company",
    "contact_id": "contact",
    "deal_id": "deal",
    "owner_id": "owner",
    "assignee_id": "owner",
    "pipeline_id": "pipeline",
    "stage_id": "stage",
    "amount_minor": "amount",
    "lines": "product",
    "duration_seconds": "duration",
    "lost_reason_id": "lost_reason",
    "custom": "custom.",
}


def column_of(ctx: Context, pointer: str | None) -> str | None:
    """The header of the column a service error (`#/phones/0`, `#/custom/region`) is about."""
    if not pointer:
        return None
    parts = pointer.removeprefix("#/").split("/")
    key = POINTER_FIELDS.get(parts[0], parts[0])
    if key == "custom." and len(parts) > 1:
        key += parts[1]
    if key == "name" and not any(c.spec.key == "name" for c in ctx.columns):
        key = "first_name"
    return next((c.header for c in ctx.columns if c.spec.key == key), None)
