"""Deals: created in an open stage, moved along their pipeline, won, lost (with a reason) or reopened.

Every stage entry is a `deal_stage_event` with the time spent in the stage before, which is what funnels and
cycle times are computed from; wins, losses, reopenings and moves also reach the feed.
"""

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, func, select

from api.auth.models import Organization
from api.clients.models import Company, Contact
from api.clients.service import check_custom
from api.core import changes, jsonsql
from api.core.errors import Conflict, Forbidden, ValidationFailed
from api.core.etags import ensure_version
from api.core.ids import new_id
from api.core.models import live
from api.core.pagination import Page, Templates, after_cursor, cut, keyset_params, ordered, scan
from api.core.schemas import changed_fields
from api.core.types import UTCDateTime, contains_pattern, fold, utcnow
from api.deals.models import Deal, DealLine, DealStageEvent, DealStatus, LostReason, Pipeline, Product, Stage, StageKind
from api.deals.rotting import rots_at
from api.deals.schemas import (
    Board,
    DealCreate,
    DealDetail,
    DealLineIn,
    DealLineRead,
    DealRead,
    DealUpdate,
    StageColumn,
    StageRead,
)
from api.feed.models import FeedKind
from api.feed.service import emit
from api.sharing import visibility
from api.sharing.visibility import (
    Viewer,
    check_owner,
    company_of_contact,
    deal_filter,
    deals_seen,
    ensure_owner,
    ensure_visible_ref,
    get_restorable,
    get_visible,
    get_writable,
    in_org,
)

LIST_SCOPE = "deal-list"


def _rotten(rots_at: datetime | None, now: datetime) -> bool:
    return rots_at is not None and rots_at <= now


def rotten_sql(columns: Any, now: Any) -> dict[str, sa.ColumnElement[Any]]:
    """`_rotten` in SQL, over a deal row's `columns`: the read schema's computed field, for responses PostgreSQL
    writes."""
    return {"rotten": sa.and_(columns.rots_at.is_not(None), columns.rots_at <= now)}


def present(deal: Deal, now: datetime | None = None) -> DealRead:
    return DealRead.model_validate({**deal.model_dump(), "rotten": _rotten(deal.rots_at, now or utcnow())})


def line_amount(quantity: int, unit_price_minor: int, discount_percent: int) -> int:
    # Rounded half up to the minor unit, as an invoice would.
    return (quantity * unit_price_minor * (100 - discount_percent) + 50) // 100


def _present_line(line: DealLine) -> DealLineRead:
    amount = line_amount(line.quantity, line.unit_price_minor, line.discount_percent)
    return DealLineRead.model_validate({**line.model_dump(), "amount_minor": amount})


async def _lines_of(session: AsyncSession, deal: Deal) -> list[DealLine]:
    stmt = live(DealLine, deal.org_id).where(col(DealLine.deal_id) == deal.id).order_by(col(DealLine.position))
    return list((await session.scalars(stmt)).all())


async def detail(session: AsyncSession, deal: Deal) -> DealDetail:
    lines = [_present_line(line) for line in await _lines_of(session, deal)]
    return DealDetail.model_validate({**present(deal).model_dump(), "lines": lines})


async def _stage(session: AsyncSession, org_id: uuid.UUID, stage_id: uuid.UUID, pointer: str) -> Stage:
    stage = await session.scalar(live(Stage, org_id).where(col(Stage.id) == stage_id))
    if stage is None:
        raise ValidationFailed.field(pointer, "No such stage.")
    return stage


async def _stages(session: AsyncSession, org_id: uuid.UUID, pipeline_id: uuid.UUID) -> list[Stage]:
    stmt = live(Stage, org_id).where(col(Stage.pipeline_id) == pipeline_id).order_by(col(Stage.position))
    return list((await session.scalars(stmt)).all())


async def _end_stage(session: AsyncSession, deal: Deal, kind: StageKind) -> Stage:
    stages = await _stages(session, deal.org_id, deal.pipeline_id)
    return next(s for s in stages if s.kind == kind.value)


# Reads


async def get_deal(*, session: AsyncSession, viewer: Viewer, deal_id: uuid.UUID) -> Deal:
    return await get_visible(session, viewer, Deal, deal_id, "deal")


@dataclass(frozen=True)
class DealFilters:
    """What a list of deals (a board column, an export) is narrowed to."""

    owner_id: uuid.UUID | None = None
    pipeline_id: uuid.UUID | None = None
    stage_id: uuid.UUID | None = None
    status: DealStatus | None = None
    company_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    close_from: date | None = None
    close_to: date | None = None
    rotten: bool | None = None
    q: str | None = None


_deal = sa.inspect(Deal).local_table
# The filters a list may name, compared with bound values: a list's statement is built once per viewer and set of
# filters named (`_lists`), whatever their values.
_EQUAL = ("owner_id", "pipeline_id", "stage_id", "status", "company_id", "contact_id")


def _equal(filters: DealFilters, name: str) -> Any:
    value = getattr(filters, name)
    return value.value if isinstance(value, DealStatus) else value


def _conditions(filters: DealFilters, deal: Any) -> list[sa.ColumnElement[bool]]:
    found: list[sa.ColumnElement[bool]] = [
        deal.c[name] == sa.bindparam(f"deal_{name}", _equal(filters, name), type_=deal.c[name].type)
        for name in _EQUAL
        if getattr(filters, name) is not None
    ]
    if filters.close_from is not None:
        found.append(deal.c.expected_close_on >= sa.bindparam("deal_close_from", filters.close_from, type_=sa.Date))
    if filters.close_to is not None:
        found.append(deal.c.expected_close_on <= sa.bindparam("deal_close_to", filters.close_to, type_=sa.Date))
    if filters.rotten is not None:
        now = sa.bindparam("deal_now", utcnow(), type_=UTCDateTime)
        is_rotten = sa.and_(deal.c.rots_at.is_not(None), deal.c.rots_at <= now)
        found.append(is_rotten if filters.rotten else sa.not_(is_rotten))
    if filters.q:
        found.append(deal.c.title_folded.like(sa.bindparam("deal_q", contains_pattern(fold(filters.q))), escape="\\"))
    return found


def _values(filters: DealFilters) -> dict[str, Any]:
    values: dict[str, Any] = {f"deal_{name}": _equal(filters, name) for name in _EQUAL}
    values.update(deal_close_from=filters.close_from, deal_close_to=filters.close_to, deal_now=utcnow())
    return {**values, "deal_q": contains_pattern(fold(filters.q)) if filters.q else None}


def _shape(filters: DealFilters) -> tuple[Any, ...]:
    named = tuple(name for name in (*_EQUAL, "close_from", "close_to", "q") if getattr(filters, name))
    return (*named, filters.rotten)


def matching_deals(viewer: Viewer, filters: DealFilters) -> Any:
    """The deals matching the filters, before visibility (`deal_filter`): the board and the export start from this."""
    return in_org(viewer, Deal).where(*_conditions(filters, _deal))


_lists = Templates()
# The page's "now" (a deal is rotten once `rots_at` has passed), bound per request by `_values`.
_NOW = sa.bindparam("deal_now", type_=UTCDateTime)


async def list_deals(
    *, session: AsyncSession, viewer: Viewer, filters: DealFilters, limit: int, cursor: str | None
) -> tuple[list[DealRead], str | None]:
    rows, next_cursor = await _listed(session, viewer, filters, limit, cursor, as_json=False)
    now = utcnow()
    return [present_row(r, now) for r in rows], next_cursor


async def list_page(
    *, session: AsyncSession, viewer: Viewer, filters: DealFilters, limit: int, cursor: str | None
) -> bytes:
    """`list_deals` as the response's JSON (`Page[DealRead]`). On PostgreSQL the statement that reads the deals
    writes each one's JSON (`api/core/jsonsql.py`): the app neither builds nor serialises fifty models a page.
    SQLite's page is the models'."""
    if session.get_bind().dialect.name != "postgresql":
        deals, next_cursor = await list_deals(
            session=session, viewer=viewer, filters=filters, limit=limit, cursor=cursor
        )
        return Page[DealRead](items=deals, next_cursor=next_cursor).model_dump_json(by_alias=True).encode()
    rows, next_cursor = await _listed(session, viewer, filters, limit, cursor, as_json=True)
    items = ",".join(row.deal for row in rows)
    return f'{{"items":[{items}],"next_cursor":{json.dumps(next_cursor)}}}'.encode()


async def _listed(
    session: AsyncSession, viewer: Viewer, filters: DealFilters, limit: int, cursor: str | None, *, as_json: bool
) -> tuple[list[Any], str | None]:
    """Newest first (ids are time-ordered UUIDv7s, so the order is stable while paging). Core rows, not ORM
    objects: this is a hot read path.

    Who sees a large share of the organisation's deals (a manager, a rep who sees the team's) reads the list in
    order and probes each deal's visibility, within `SCAN_WINDOW` deals a page. A rep who sees only their own and
    what is shared with them sees a sliver that shrinks as the organisation grows: their deals are read among the
    ids `deals_seen` gathers through the owner, share and client indexes, so a page costs what they see, not what
    the organisation has, and is full. (Gathered for a manager, that set is tens of thousands of ids: 90 ms against
    8 ms probed, on bench-data's large set.)"""
    keys = [_deal.c.id]
    after = after_cursor(LIST_SCOPE, cursor, keys)
    values = {**_values(filters), **keyset_params(after=after)}
    shape = (viewer, _shape(filters), after is not None, as_json)

    def matching() -> sa.Select[Any]:
        return sa.select(*_deal.c).where(
            _deal.c.org_id == viewer.org_id, _deal.c.deleted_at.is_(None), *_conditions(filters, _deal)
        )

    if _sees_a_sliver(viewer):
        visible, until = deals_seen(viewer), None
    else:
        visible, until = deal_filter(viewer, _deal.c), None
        if not viewer.everything:
            # Where the page stops looking for what the viewer may see (`SCAN_WINDOW`).
            window = visibility.SCAN_WINDOW
            found = _lists.get(
                (*shape, "scan", window),
                lambda: scan(matching(), keys, after=after is not None, size=window, descending=True),
            )
            row = (await session.execute(found, values)).first()
            until = None if row is None else tuple(row)

    def statement() -> Any:
        page = ordered(
            matching().where(visible), keys, after=after is not None, until=until is not None, descending=True
        )
        if not as_json:
            return page
        listed = page.subquery("listed")
        record = jsonsql.record(DealRead, listed.c, rotten_sql(listed.c, _NOW))
        return sa.select(listed.c.id, jsonsql.text(record).label("deal")).order_by(listed.c.id.desc())

    page = _lists.get((*shape, "page", until is not None), statement)
    rows = (await session.execute(page, {**values, **keyset_params(until=until, limit=limit)})).all()
    return cut(list(rows), LIST_SCOPE, lambda r: (r.id,), limit, until)


def _sees_a_sliver(viewer: Viewer) -> bool:
    """A rep who sees only their own records and what is shared with them."""
    return not viewer.everything and viewer.owner_ids == {viewer.user_id}


async def board(
    *, session: AsyncSession, viewer: Viewer, pipeline_id: uuid.UUID | None, owner_id: uuid.UUID | None, limit: int
) -> Board:
    """Per stage of a pipeline: how many deals, their totals, and the first page of them."""
    pipeline = await _pipeline(session, viewer.org_id, pipeline_id, "pipeline_id")
    stages = await _stages(session, viewer.org_id, pipeline.id)
    matching = matching_deals(viewer, DealFilters(owner_id=owner_id, pipeline_id=pipeline.id))
    base = matching.where(deals_seen(viewer)).subquery()
    sums = await session.execute(
        select(base.c.stage_id, base.c.currency, func.count(), func.sum(base.c.amount_minor)).group_by(
            base.c.stage_id, base.c.currency
        )
    )
    counts: dict[uuid.UUID, int] = {}
    totals: dict[uuid.UUID, dict[str, int]] = {}
    for stage_id, currency, count, amount in sums:
        counts[stage_id] = counts.get(stage_id, 0) + count
        totals.setdefault(stage_id, {})[currency] = int(amount or 0)
    columns = []
    for stage in stages:
        deals, next_cursor = await list_deals(
            session=session,
            viewer=viewer,
            filters=DealFilters(owner_id=owner_id, stage_id=stage.id),
            limit=limit,
            cursor=None,
        )
        stage_totals = totals.get(stage.id, {})
        columns.append(
            StageColumn(
                stage=StageRead.model_validate(stage),
                count=counts.get(stage.id, 0),
                totals=stage_totals,
                weighted={c: (a * stage.probability + 50) // 100 for c, a in stage_totals.items()},
                items=deals,
                next_cursor=next_cursor,
            )
        )
    return Board(pipeline_id=pipeline.id, stages=columns)


# Writes


async def _pipeline(session: AsyncSession, org_id: uuid.UUID, pipeline_id: uuid.UUID | None, name: str) -> Pipeline:
    stmt = live(Pipeline, org_id)
    stmt = stmt.where(col(Pipeline.id) == pipeline_id) if pipeline_id else stmt.where(col(Pipeline.is_default))
    pipeline = (await session.scalars(stmt)).first()
    if pipeline is None:
        raise ValidationFailed.field(f"#/{name}", "No such pipeline.")
    return pipeline


async def _check_refs(
    session: AsyncSession, viewer: Viewer, fields: dict[str, Any], deal_id: uuid.UUID, *, fill_company: bool
) -> None:
    """Check the records a deal points at. With `fill_company`, a deal for a contact also belongs to the contact's
    company (whose card then counts it)."""
    if fields.get("company_id") is not None:
        await ensure_visible_ref(session, viewer, Company, fields["company_id"], "#/company_id")
    if fields.get("contact_id") is not None:
        await ensure_visible_ref(session, viewer, Contact, fields["contact_id"], "#/contact_id")
        if fill_company:
            fields["company_id"] = await company_of_contact(session, viewer, fields["contact_id"])
    if fields.get("previous_deal_id") is not None:
        await ensure_visible_ref(session, viewer, Deal, fields["previous_deal_id"], "#/previous_deal_id")
    if fields.get("previous_deal_id") == deal_id:
        raise ValidationFailed.field("#/previous_deal_id", "A deal cannot repeat itself.")


async def _priced_lines(
    session: AsyncSession, org_id: uuid.UUID, deal: Deal, lines: Sequence[DealLineIn]
) -> list[DealLine]:
    product_ids = {line.product_id for line in lines if line.product_id}
    products = {
        p.id: p for p in (await session.scalars(live(Product, org_id).where(col(Product.id).in_(product_ids)))).all()
    }
    priced = []
    for index, line in enumerate(lines):
        product = products.get(line.product_id) if line.product_id else None
        if line.product_id and product is None:
            raise ValidationFailed.field(f"#/lines/{index}/product_id", "No such product.")
        if product is not None and line.unit_price_minor is None and product.currency != deal.currency:
            raise ValidationFailed.field(
                f"#/lines/{index}/unit_price_minor",
                f"The product is priced in {product.currency}, the deal in {deal.currency}: give a price.",
            )
        name = line.name or (product.name if product else None)
        if name is None:
            raise ValidationFailed.field(f"#/lines/{index}/name", "Name the line or pick a product.")
        price = line.unit_price_minor if line.unit_price_minor is not None else product.price_minor if product else 0
        priced.append(
            DealLine(
                org_id=org_id,
                deal_id=deal.id,
                product_id=line.product_id,
                name=name,
                quantity=line.quantity,
                unit_price_minor=price,
                discount_percent=line.discount_percent,
                position=index + 1,
            )
        )
    return priced


async def _enter_stage(
    session: AsyncSession, viewer: Viewer, deal: Deal, stage: Stage, at: datetime, previous: Stage | None
) -> None:
    seconds = int((at - deal.stage_entered_at).total_seconds()) if previous else None
    event = DealStageEvent(
        org_id=deal.org_id,
        deal_id=deal.id,
        from_stage_id=previous.id if previous else None,
        to_stage_id=stage.id,
        at=at,
        by_id=viewer.user_id,
        seconds_in_previous=seconds,
    )
    await changes.create(session, viewer.principal, "deal_stage_event", event)


async def create_deal(*, session: AsyncSession, viewer: Viewer, data: DealCreate, at: datetime | None = None) -> Deal:
    """`at`: when the deal really started, for history brought in from elsewhere (an import); now otherwise."""
    if viewer.read_only:
        raise Forbidden("Your role can read deals but not change them.")
    fields = data.model_dump(exclude={"id", "lines"})
    deal_id = data.id or new_id()
    await _check_refs(session, viewer, fields, deal_id, fill_company=fields["company_id"] is None)
    pipeline = await _pipeline(session, viewer.org_id, data.pipeline_id, "pipeline_id")
    stages = await _stages(session, viewer.org_id, pipeline.id)
    if data.stage_id is None:
        stage = stages[0]
    else:
        stage = next((s for s in stages if s.id == data.stage_id), None)  # type: ignore[assignment]
        if stage is None or stage.kind != StageKind.open.value:
            raise ValidationFailed.field("#/stage_id", "Not an open stage of the deal's pipeline.")
    owner_id = data.owner_id or viewer.user_id
    if owner_id is None:
        raise ValidationFailed.field("#/owner_id", "Name the owner: an API key owns nothing.")
    await check_owner(session, viewer, owner_id)
    if data.currency is None:
        org = await session.get(Organization, viewer.org_id)
        fields["currency"] = str((org.settings if org else {}).get("currency", "EUR"))
    fields["custom"] = await check_custom(session, viewer.org_id, "deal", data.custom, None)
    now = at or utcnow()
    deal = Deal(
        **{**fields, "pipeline_id": pipeline.id, "stage_id": stage.id, "owner_id": owner_id},
        id=deal_id,
        org_id=viewer.org_id,
        title_folded=fold(data.title),
        created_at=now,
        stage_entered_at=now,
    )
    deal.rots_at = rots_at(deal.status, now, stage)
    lines = await _priced_lines(session, viewer.org_id, deal, data.lines) if data.lines is not None else []
    if data.lines:
        deal.amount_minor = sum(line_amount(x.quantity, x.unit_price_minor, x.discount_percent) for x in lines)
    await changes.create(session, viewer.principal, "deal", deal)
    for line in lines:
        await changes.create(session, viewer.principal, "deal_line", line)
    await _enter_stage(session, viewer, deal, stage, now, None)
    await emit(
        session,
        viewer.principal,
        FeedKind.deal_created,
        at=now,
        deal_id=deal.id,
        company_id=deal.company_id,
        contact_id=deal.contact_id,
        data={"stage": stage.name, "amount_minor": deal.amount_minor, "currency": deal.currency},
    )
    return deal


async def _writable(session: AsyncSession, viewer: Viewer, deal_id: uuid.UUID, expected_version: int | None) -> Deal:
    deal = await get_writable(session, viewer, Deal, deal_id, "deal")
    ensure_version(deal, expected_version, present)
    return deal


async def update_deal(
    *, session: AsyncSession, viewer: Viewer, deal_id: uuid.UUID, data: DealUpdate, expected_version: int | None
) -> Deal:
    deal = await _writable(session, viewer, deal_id, expected_version)
    fields = changed_fields(data)
    fill_company = "company_id" not in fields and deal.company_id is None
    await _check_refs(session, viewer, fields, deal.id, fill_company=fill_company)
    if "owner_id" in fields and fields["owner_id"] != deal.owner_id:
        ensure_owner(viewer, deal.owner_id)
        await check_owner(session, viewer, fields["owner_id"])
    if "title" in fields:
        fields["title_folded"] = fold(fields["title"])
    if "custom" in fields:
        fields["custom"] = await check_custom(session, viewer.org_id, "deal", fields["custom"], deal.custom)
    if ("amount_minor" in fields or "currency" in fields) and await _lines_of(session, deal):
        name = "amount_minor" if "amount_minor" in fields else "currency"
        raise ValidationFailed.field(f"#/{name}", "This deal's amount is the total of its lines: change them.")
    await changes.update(session, viewer.principal, "deal", deal, fields)
    return deal


async def replace_lines(
    *,
    session: AsyncSession,
    viewer: Viewer,
    deal_id: uuid.UUID,
    lines: Sequence[DealLineIn],
    expected_version: int | None,
) -> Deal:
    """The deal's products, all at once (what a phone's line editor sends); the amount becomes their total."""
    deal = await _writable(session, viewer, deal_id, expected_version)
    old = await _lines_of(session, deal)
    priced = await _priced_lines(session, viewer.org_id, deal, lines)
    before, after = [_line_values(x) for x in old], [_line_values(x) for x in priced]
    if before == after:
        return deal
    for line in old:
        await changes.delete(session, viewer.principal, "deal_line", line)
    for line in priced:
        await changes.create(session, viewer.principal, "deal_line", line)
    # The lines are part of the deal: changing them is a new version of it (an ETag a stale editor fails on),
    # and the amount becomes their total (cleared lines leave the last amount, for the owner to adjust).
    fields = {"amount_minor": sum(line_amount(*x[2:]) for x in after)} if after else {}
    await changes.update(
        session, viewer.principal, "deal", deal, fields, extra={"lines": {"before": before, "after": after}}
    )
    return deal


def _line_values(line: DealLine) -> tuple[Any, ...]:
    return (
        str(line.product_id) if line.product_id else None,
        line.name,
        line.quantity,
        line.unit_price_minor,
        line.discount_percent,
    )


async def _change_stage(
    session: AsyncSession,
    viewer: Viewer,
    deal: Deal,
    stage: Stage,
    fields: dict[str, Any],
    feed: FeedKind,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Put the deal in `stage` (with `fields`: the status change, if any), record the move and tell the feed."""
    previous = await _stage(session, deal.org_id, deal.stage_id, "#/stage_id")
    now = at or utcnow()
    days_in_previous = (now - deal.stage_entered_at).days
    await _enter_stage(session, viewer, deal, stage, now, previous)
    status = fields.get("status", deal.status)
    fields = {**fields, "stage_id": stage.id, "stage_entered_at": now, "rots_at": rots_at(status, now, stage)}
    await changes.update(session, viewer.principal, "deal", deal, fields)
    await emit(
        session,
        viewer.principal,
        feed,
        at=now,
        deal_id=deal.id,
        company_id=deal.company_id,
        contact_id=deal.contact_id,
        data={
            "from_stage": previous.name,
            "to_stage": stage.name,
            "days_in_previous": days_in_previous,
            "amount_minor": deal.amount_minor,
            "currency": deal.currency,
            **(data or {}),
        },
    )


async def move_deal(
    *, session: AsyncSession, viewer: Viewer, deal_id: uuid.UUID, stage_id: uuid.UUID, expected_version: int | None
) -> Deal:
    deal = await _writable(session, viewer, deal_id, expected_version)
    if deal.status != DealStatus.open.value:
        raise Conflict("This deal is closed: reopen it first.")
    stage = await _stage(session, viewer.org_id, stage_id, "#/stage_id")
    if stage.pipeline_id != deal.pipeline_id:
        raise ValidationFailed.field("#/stage_id", "That stage belongs to another pipeline.")
    if stage.kind == StageKind.won.value:
        return await win_deal(session=session, viewer=viewer, deal_id=deal.id, expected_version=None)
    if stage.kind == StageKind.lost.value:
        raise ValidationFailed.field("#/stage_id", "To lose a deal, use /lose with a reason.")
    if stage.id != deal.stage_id:
        await _change_stage(session, viewer, deal, stage, {}, FeedKind.stage_moved)
    return deal


async def win_deal(
    *,
    session: AsyncSession,
    viewer: Viewer,
    deal_id: uuid.UUID,
    expected_version: int | None,
    at: datetime | None = None,
) -> Deal:
    """`at`: when it was won, for history brought in from elsewhere (an import); now otherwise."""
    deal = await _writable(session, viewer, deal_id, expected_version)
    if deal.status != DealStatus.open.value:
        raise Conflict(f"This deal is already {deal.status}: reopen it first.")
    stage = await _end_stage(session, deal, StageKind.won)
    when = _closing_time(deal, at)
    fields = {"status": DealStatus.won.value, "won_at": when}
    await _change_stage(session, viewer, deal, stage, fields, FeedKind.deal_won, _cycle(deal, when), at=when)
    return deal


def _closing_time(deal: Deal, at: datetime | None) -> datetime:
    # Never before the deal entered its stage: the time in that stage must not come out negative.
    return max(at, deal.stage_entered_at) if at else utcnow()


def _cycle(deal: Deal, when: datetime) -> dict[str, Any]:
    return {"days_open": (when - deal.created_at).days}


async def lose_deal(
    *,
    session: AsyncSession,
    viewer: Viewer,
    deal_id: uuid.UUID,
    lost_reason_id: uuid.UUID,
    note: str | None,
    expected_version: int | None,
    at: datetime | None = None,
) -> Deal:
    deal = await _writable(session, viewer, deal_id, expected_version)
    if deal.status != DealStatus.open.value:
        raise Conflict(f"This deal is already {deal.status}: reopen it first.")
    reason = await session.scalar(
        live(LostReason, viewer.org_id).where(col(LostReason.id) == lost_reason_id, col(LostReason.is_active))
    )
    if reason is None:
        raise ValidationFailed.field("#/lost_reason_id", "No such lost reason (or it is retired).")
    stage = await _end_stage(session, deal, StageKind.lost)
    when = _closing_time(deal, at)
    fields = {"status": DealStatus.lost.value, "lost_at": when, "lost_reason_id": reason.id, "lost_note": note}
    cycle = {**_cycle(deal, when), "reason": reason.name}
    await _change_stage(session, viewer, deal, stage, fields, FeedKind.deal_lost, cycle, at=when)
    return deal


async def reopen_deal(
    *,
    session: AsyncSession,
    viewer: Viewer,
    deal_id: uuid.UUID,
    stage_id: uuid.UUID | None,
    expected_version: int | None,
) -> Deal:
    deal = await _writable(session, viewer, deal_id, expected_version)
    if deal.status == DealStatus.open.value:
        raise Conflict("This deal is open already.")
    requested = stage_id
    if stage_id is None:
        # The stage it was closed from.
        stage_id = await session.scalar(
            select(DealStageEvent.from_stage_id)
            .where(col(DealStageEvent.org_id) == viewer.org_id, col(DealStageEvent.deal_id) == deal.id)
            .where(col(DealStageEvent.to_stage_id) == deal.stage_id)
            .order_by(col(DealStageEvent.at).desc())
            .limit(1)
        )
    stages = await _stages(session, viewer.org_id, deal.pipeline_id)
    stage = next((s for s in stages if s.id == stage_id and s.kind == StageKind.open.value), None)
    if stage is None:
        if requested is not None:
            raise ValidationFailed.field("#/stage_id", "Not an open stage of the deal's pipeline.")
        stage = next(s for s in stages if s.kind == StageKind.open.value)
    fields = {
        "status": DealStatus.open.value,
        "won_at": None,
        "lost_at": None,
        "lost_reason_id": None,
        "lost_note": None,
    }
    await _change_stage(session, viewer, deal, stage, fields, FeedKind.deal_reopened)
    return deal


async def delete_deal(
    *, session: AsyncSession, viewer: Viewer, deal_id: uuid.UUID, expected_version: int | None
) -> None:
    deal = await _writable(session, viewer, deal_id, expected_version)
    ensure_owner(viewer, deal.owner_id)
    await changes.delete(session, viewer.principal, "deal", deal)


async def restore_deal(*, session: AsyncSession, viewer: Viewer, deal_id: uuid.UUID) -> Deal:
    deal = await get_restorable(session, viewer, Deal, deal_id, "deal")
    fields: dict[str, Any] = {"deleted_at": None}
    if await session.scalar(live(Stage, viewer.org_id).where(col(Stage.id) == deal.stage_id)) is None:
        # Its stage (or pipeline) was deleted while it was in the bin: it comes back to the same kind of stage of
        # its pipeline, or of the default pipeline.
        pipeline = await session.scalar(live(Pipeline, viewer.org_id).where(col(Pipeline.id) == deal.pipeline_id))
        pipeline = pipeline or await _pipeline(session, viewer.org_id, None, "pipeline_id")
        kind = {"open": StageKind.open, "won": StageKind.won, "lost": StageKind.lost}[deal.status]
        stage = next(s for s in await _stages(session, viewer.org_id, pipeline.id) if s.kind == kind.value)
        fields |= {"pipeline_id": pipeline.id, "stage_id": stage.id, "stage_entered_at": utcnow()}
        fields["rots_at"] = rots_at(deal.status, fields["stage_entered_at"], stage)
    await changes.update(session, viewer.principal, "deal", deal, fields)
    return deal


async def touch(session: AsyncSession, deal_id: uuid.UUID, at: datetime) -> None:
    """An activity happened on the deal: it is fresh again (not rotten) until the stage's rotten_days pass.
    `last_activity_at` and `rots_at` are derived from activities, so this is not a change of the deal: no version
    bump (logging a call must not make the owner's pending edit of the deal stale) and no change-log entry."""
    deal = await session.get(Deal, deal_id)
    if deal is None or (deal.last_activity_at is not None and deal.last_activity_at >= at):
        return
    stage = await session.get(Stage, deal.stage_id)
    assert stage is not None
    await session.execute(
        sa.update(Deal)
        .where(col(Deal.id) == deal.id)
        .values(last_activity_at=at, rots_at=rots_at(deal.status, max(at, deal.stage_entered_at), stage))
        .execution_options(synchronize_session="fetch")
    )


def present_row(row: Any, now: datetime) -> DealRead:
    """A deal read as a Core row (hot read paths: cards, boards)."""
    values = dict(row._mapping)
    return DealRead.model_validate({**values, "rotten": _rotten(values["rots_at"], now)})
