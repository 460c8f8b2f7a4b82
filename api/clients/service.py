"""Companies and contacts: normalised, checked for duplicates, owned, visible by the rules in sharing.visibility;
and the organisation's custom fields."""

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.auth.models import Organization
from api.auth.principals import Principal
from api.clients import normalise
from api.clients.models import ClientKind, Company, Contact, ContactPoint, CustomField, FieldKind
from api.clients.schemas import (
    ClientCreate,
    ClientUpdate,
    CustomFieldCreate,
    CustomFieldRead,
    CustomFieldUpdate,
    DuplicateMatch,
)
from api.core import changes
from api.core.errors import Conflict, Forbidden, ValidationFailed
from api.core.etags import ensure_version
from api.core.ids import new_id
from api.core.models import get_record, live
from api.core.pagination import keyset_page
from api.core.schemas import changed_fields
from api.core.types import fold, json_array_has, no_nul, prefix_pattern
from api.deals.models import Deal
from api.sharing.visibility import (
    FILTERS,
    Viewer,
    check_owner,
    ensure_owner,
    ensure_visible_ref,
    get_restorable,
    get_visible,
    get_writable,
    in_org,
    scan_window,
)

MAX_CUSTOM_FIELDS = 50
MAX_TEXT_VALUE = 2000

ClientModel = Company | Contact


@dataclass(frozen=True)
class ClientKindSpec:
    # Company or Contact. Typed loosely: mypy cannot bind the visibility helpers' TypeVar to a union of classes.
    model: Any
    kind: ClientKind
    what: str


COMPANY = ClientKindSpec(Company, ClientKind.company, "company")
CONTACT = ClientKindSpec(Contact, ClientKind.contact, "contact")


# Custom fields


async def list_custom_fields(*, session: AsyncSession, principal: Principal, entity: str | None) -> list[CustomField]:
    stmt = live(CustomField, principal.org_id).order_by(
        col(CustomField.entity), col(CustomField.position), col(CustomField.key)
    )
    if entity:
        stmt = stmt.where(col(CustomField.entity) == entity)
    return list((await session.scalars(stmt)).all())


def _check_choices(kind: FieldKind, choices: list[str]) -> list[str]:
    if kind is FieldKind.choice and not choices:
        raise ValidationFailed.field("#/choices", "A single-choice field needs its choices.")
    if kind is not FieldKind.choice and choices:
        raise ValidationFailed.field("#/choices", "Only single-choice fields have choices.")
    if len(set(choices)) != len(choices):
        raise ValidationFailed.field("#/choices", "Choices must be different from one another.")
    return choices


async def create_custom_field(*, session: AsyncSession, principal: Principal, data: CustomFieldCreate) -> CustomField:
    existing = await list_custom_fields(session=session, principal=principal, entity=data.entity)
    if len(existing) >= MAX_CUSTOM_FIELDS:
        raise Conflict(f"A record kind can have at most {MAX_CUSTOM_FIELDS} custom fields.")
    if any(f.key == data.key for f in existing):
        raise Conflict("A custom field with this key exists.", errors=[{"pointer": "#/key", "detail": "in use"}])
    field = CustomField(
        org_id=principal.org_id,
        entity=data.entity,
        key=data.key,
        label=data.label,
        kind=data.kind.value,
        choices=_check_choices(data.kind, data.choices),
        is_required=data.is_required,
        position=len(existing) + 1,
    )
    await changes.create(session, principal, "custom_field", field)
    return field


async def update_custom_field(
    *,
    session: AsyncSession,
    principal: Principal,
    field_id: uuid.UUID,
    data: CustomFieldUpdate,
    expected_version: int | None,
) -> CustomField:
    field = await get_record(session, CustomField, principal.org_id, field_id, "custom field")
    ensure_version(field, expected_version, CustomFieldRead.model_validate)
    fields = changed_fields(data)
    if "choices" in fields:
        _check_choices(FieldKind(field.kind), fields["choices"])
    await changes.update(session, principal, "custom_field", field, fields)
    return field


async def delete_custom_field(
    *, session: AsyncSession, principal: Principal, field_id: uuid.UUID, expected_version: int | None
) -> None:
    """The definition goes, and so do its values (each record that had one is changed, and logged as such)."""
    field = await get_record(session, CustomField, principal.org_id, field_id, "custom field")
    ensure_version(field, expected_version, CustomFieldRead.model_validate)
    await changes.delete(session, principal, "custom_field", field)
    model: Any = {"company": Company, "contact": Contact, "deal": Deal}[field.entity]
    holders = await session.scalars(
        select(model).where(
            col(model.org_id) == principal.org_id, col(model.custom)[field.key].as_string().is_not(None)
        )
    )
    for record in holders.all():
        custom = {k: v for k, v in record.custom.items() if k != field.key}
        await changes.update(session, principal, field.entity, record, {"custom": custom})


def _custom_value(field: CustomField, value: Any, pointer: str) -> Any:
    kind = FieldKind(field.kind)
    if kind is FieldKind.number:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValidationFailed.field(pointer, f"{field.label} must be a number.")
        return value
    if not isinstance(value, str):
        raise ValidationFailed.field(pointer, f"{field.label} must be text.")
    if kind is FieldKind.date:
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError as exc:
            raise ValidationFailed.field(pointer, f"{field.label} must be a date (YYYY-MM-DD).") from exc
    if kind is FieldKind.choice:
        if value not in field.choices:
            raise ValidationFailed.field(pointer, f"{field.label} must be one of: {', '.join(field.choices)}.")
        return value
    if len(value) > MAX_TEXT_VALUE:
        raise ValidationFailed.field(pointer, f"{field.label} is longer than {MAX_TEXT_VALUE} characters.")
    try:
        return no_nul(value)
    except ValueError as exc:
        raise ValidationFailed.field(pointer, str(exc)) from exc


async def check_custom(
    session: AsyncSession, org_id: uuid.UUID, entity: str, values: dict[str, Any], current: dict[str, Any] | None
) -> dict[str, Any]:
    """`current` with `values` applied (null clears a key), each checked against the field's kind. On create
    (`current` None) required fields must be given; on update they cannot be cleared."""
    defined = {
        f.key: f
        for f in (await session.scalars(live(CustomField, org_id).where(col(CustomField.entity) == entity))).all()
    }
    merged = dict(current or {})
    for key, value in values.items():
        pointer = f"#/custom/{key}"
        field = defined.get(key)
        if field is None:
            raise ValidationFailed.field(pointer, "No such custom field.")
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _custom_value(field, value, pointer)
    for key, field in defined.items():
        if field.is_required and merged.get(key) is None and (current is None or key in values):
            raise ValidationFailed.field(f"#/custom/{key}", f"{field.label} is required.")
    return merged


# Normalisation and duplicates


async def phone_region(session: AsyncSession, org_id: uuid.UUID) -> str | None:
    org_settings = await session.scalar(select(Organization.settings).where(col(Organization.id) == org_id))
    region = (org_settings or {}).get("phone_region")
    return str(region) if region else None


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


async def _normalise(
    session: AsyncSession, viewer: Viewer, spec: ClientKindSpec, fields: dict[str, Any], current: ClientModel | None
) -> None:
    """Normalise and check, in place, the fields a create or an update sets."""
    if "name" in fields:
        fields["name_folded"] = fold(fields["name"])
    if fields.get("tags") is not None:
        fields["tags"] = _unique(fields["tags"])
    if fields.get("domain") is not None:
        fields["domain"] = normalise.domain(fields["domain"], "#/domain")
    region = await phone_region(session, viewer.org_id) if fields.get("phone") or fields.get("phones") else None
    if fields.get("phone") is not None:
        fields["phone"] = normalise.phone(fields["phone"], region, "#/phone")
    if fields.get("phones") is not None:
        fields["phones"] = _unique(
            [normalise.phone(v, region, f"#/phones/{i}") for i, v in enumerate(fields["phones"])]
        )
    if fields.get("emails") is not None:
        fields["emails"] = _unique([normalise.email(v, f"#/emails/{i}") for i, v in enumerate(fields["emails"])])
    if fields.get("company_id") is not None:
        await ensure_visible_ref(session, viewer, Company, fields["company_id"], "#/company_id")
    if "owner_id" in fields and (current is None or fields["owner_id"] != current.owner_id):
        if current is not None:
            ensure_owner(viewer, current.owner_id)
        await check_owner(session, viewer, fields["owner_id"])
    if "custom" in fields:
        fields["custom"] = await check_custom(
            session, viewer.org_id, spec.kind.value, fields["custom"] or {}, None if current is None else current.custom
        )


def _points_of(record: ClientModel) -> list[tuple[str, str]]:
    if isinstance(record, Company):
        found = [("domain", record.domain), ("phone", record.phone)]
        return [(kind, value) for kind, value in found if value]
    return [("email", e) for e in record.emails] + [("phone", p) for p in record.phones]


async def _duplicates(
    session: AsyncSession, spec: ClientKindSpec, record: ClientModel, points: list[tuple[str, str]]
) -> list[DuplicateMatch]:
    if not points:
        return []
    model = spec.model
    rows = await session.execute(
        select(col(ContactPoint.client_id), col(ContactPoint.kind), col(ContactPoint.value), col(model.owner_id))
        .join(model, col(model.id) == col(ContactPoint.client_id))
        .where(
            col(ContactPoint.org_id) == record.org_id,
            col(ContactPoint.client_kind) == spec.kind.value,
            col(ContactPoint.client_id) != record.id,
            sa.tuple_(col(ContactPoint.kind), col(ContactPoint.value)).in_(points),
        )
        .order_by(col(ContactPoint.client_id))
        .limit(10)
    )
    return [
        DuplicateMatch(id=client_id, kind=spec.kind.value, owner_id=owner_id, matched=kind, value=value)
        for client_id, kind, value, owner_id in rows
    ]


async def _refuse_duplicates(
    session: AsyncSession, spec: ClientKindSpec, record: ClientModel, points: list[tuple[str, str]]
) -> None:
    """409 when another live client already has one of `points` (the handles being added)."""
    found = await _duplicates(session, spec, record, points)
    if found:
        raise Conflict(
            f"A {spec.what} with the same {found[0].matched} exists. Send confirm_duplicate=true to create it anyway.",
            extra={"duplicates": [d.model_dump(mode="json") for d in found]},
        )


async def write_points(
    session: AsyncSession, spec: ClientKindSpec, record: ClientModel, *, fresh: bool = False
) -> None:
    """Rewrite the record's contact points (none while it is deleted). A `fresh` record has none to remove yet."""
    if not fresh:
        await session.execute(sa.delete(ContactPoint).where(col(ContactPoint.client_id) == record.id))
    if record.deleted_at is None:
        for kind, value in _points_of(record):
            session.add(
                ContactPoint(
                    org_id=record.org_id, kind=kind, value=value, client_kind=spec.kind.value, client_id=record.id
                )
            )
    await session.flush()


# Companies and contacts


@dataclass(frozen=True)
class ClientFilters:
    """What a list of companies or contacts (and its export) is narrowed to."""

    q: str | None = None
    owner_id: uuid.UUID | None = None
    tag: str | None = None
    segment: str | None = None
    # Contacts only.
    company_id: uuid.UUID | None = None
    # The bin instead of the live records.
    deleted: bool = False


def matching_clients(viewer: Viewer, spec: ClientKindSpec, filters: ClientFilters) -> Any:
    """The organisation's records of the kind that match the filters, before visibility (`FILTERS`): the list and
    the export start from this."""
    model = spec.model
    stmt = in_org(viewer, model, deleted=filters.deleted)
    if filters.q:
        stmt = stmt.where(col(model.name_folded).like(prefix_pattern(fold(filters.q)), escape="\\"))
    if filters.owner_id is not None:
        stmt = stmt.where(col(model.owner_id) == filters.owner_id)
    if filters.tag:
        stmt = stmt.where(json_array_has(col(model.tags), filters.tag))
    if filters.segment:
        stmt = stmt.where(col(model.segment) == filters.segment)
    if filters.company_id is not None and model is Contact:
        stmt = stmt.where(col(Contact.company_id) == filters.company_id)
    return stmt


async def list_clients(
    *,
    session: AsyncSession,
    viewer: Viewer,
    spec: ClientKindSpec,
    filters: ClientFilters,
    limit: int,
    cursor: str | None,
) -> tuple[list[Any], str | None]:
    model = spec.model
    stmt = matching_clients(viewer, spec, filters)
    scope, keys = f"{spec.kind.value}-list", [col(model.name_folded), col(model.id)]
    return await keyset_page(
        session,
        stmt.where(FILTERS[model](viewer)),
        scope=scope,
        keys=keys,
        key_of=lambda r: (r.name_folded, r.id),
        limit=limit,
        cursor=cursor,
        until=await scan_window(session, viewer, stmt, scope=scope, keys=keys, cursor=cursor, descending=False),
    )


async def get_client(*, session: AsyncSession, viewer: Viewer, spec: ClientKindSpec, client_id: uuid.UUID) -> Any:
    return await get_visible(session, viewer, spec.model, client_id, spec.what)


async def create_client(
    *, session: AsyncSession, viewer: Viewer, spec: ClientKindSpec, data: ClientCreate, confirm_duplicate: bool
) -> Any:
    if viewer.read_only:
        raise Forbidden("Your role can read clients but not change them.")
    fields = data.model_dump(exclude={"id"})
    if fields["owner_id"] is None:
        if viewer.user_id is None:
            raise ValidationFailed.field("#/owner_id", "Name the owner: an API key owns nothing.")
        fields["owner_id"] = viewer.user_id
    await _normalise(session, viewer, spec, fields, None)
    record = spec.model(id=data.id or new_id(), org_id=viewer.org_id, **fields)
    if not confirm_duplicate:
        await _refuse_duplicates(session, spec, record, _points_of(record))
    await changes.create(session, viewer.principal, spec.kind.value, record)
    await write_points(session, spec, record, fresh=True)
    return record


async def update_client(
    *,
    session: AsyncSession,
    viewer: Viewer,
    spec: ClientKindSpec,
    client_id: uuid.UUID,
    data: ClientUpdate,
    expected_version: int | None,
    confirm_duplicate: bool,
    present: Callable[[Any], Any],
) -> Any:
    record = await get_writable(session, viewer, spec.model, client_id, spec.what)
    ensure_version(record, expected_version, present)
    fields = changed_fields(data)
    await _normalise(session, viewer, spec, fields, record)
    if fields.get("company_id") == record.id:
        raise ValidationFailed.field("#/company_id", "A contact cannot be its own company.")
    before = set(_points_of(record))
    await changes.update(session, viewer.principal, spec.kind.value, record, fields)
    after = _points_of(record)
    if set(after) != before:
        # Only the handles this update adds are checked: a duplicate confirmed earlier stays confirmed.
        if not confirm_duplicate:
            await _refuse_duplicates(session, spec, record, [p for p in after if p not in before])
        await write_points(session, spec, record)
    return record


async def delete_client(
    *,
    session: AsyncSession,
    viewer: Viewer,
    spec: ClientKindSpec,
    client_id: uuid.UUID,
    expected_version: int | None,
    present: Callable[[Any], Any],
) -> None:
    record = await get_writable(session, viewer, spec.model, client_id, spec.what)
    ensure_version(record, expected_version, present)
    ensure_owner(viewer, record.owner_id)
    await changes.delete(session, viewer.principal, spec.kind.value, record)
    await write_points(session, spec, record)


async def restore_client(*, session: AsyncSession, viewer: Viewer, spec: ClientKindSpec, client_id: uuid.UUID) -> Any:
    record = await get_restorable(session, viewer, spec.model, client_id, spec.what)
    await changes.update(session, viewer.principal, spec.kind.value, record, {"deleted_at": None})
    await write_points(session, spec, record)
    return record
