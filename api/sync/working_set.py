"""An app's working set (DESIGN §7): what a user's phone holds so that they can work offline.

Their own and shared clients (a company brings its contacts), the open deals of those clients and their own,
activities of the last 90 days and every planned one (open tasks, meetings, calls) about any of these or
theirs, and the reference data the screens need (colleagues, teams, pipelines and stages, lost reasons,
products, custom fields). Everything in it is visible to the user (`api/sharing/visibility.py`): owned and
shared records are, and the rest is reached through them.

Each kind is listed as (id, version) pairs by gathering ids through the owner, share and parent indexes, so the
cost follows what the user holds, not what the organisation has.
"""

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.activities import service as activities
from api.activities.models import Activity
from api.auth.models import Team, User
from api.auth.schemas import TeamRead, UserRead
from api.clients.models import Company, Contact, CustomField
from api.clients.schemas import CompanyRead, ContactRead, CustomFieldRead
from api.core.models import Record
from api.deals import deals
from api.deals.models import Deal, DealStatus, LostReason, Pipeline, Product, Stage
from api.deals.schemas import LostReasonRead, PipelineSummary, ProductRead, StageRead
from api.sharing.models import Share
from api.sharing.visibility import Viewer

WINDOW_DAYS = 90
# Ids per statement when reading records back.
CHUNK = 500

Present = Callable[[Any, datetime], BaseModel]


def _read(schema: type[BaseModel]) -> Present:
    return lambda row, _now: schema.model_validate(row._mapping)


def _user(row: Any, _now: datetime) -> BaseModel:
    return UserRead.model_validate({**row._mapping, "has_password": row.password_hash is not None})


@dataclass(frozen=True, slots=True)
class Synced:
    entity: str
    model: type[Record]
    present: Present
    # Reference data: every live record of the organisation (that passes `only`).
    reference: bool = False
    only: Callable[[], Any] | None = None


# In the order a page sends them: what a record refers to comes before it.
SYNCED = (
    Synced("user", User, _user, reference=True),
    Synced("team", Team, _read(TeamRead), reference=True),
    Synced("pipeline", Pipeline, _read(PipelineSummary), reference=True),
    Synced("stage", Stage, _read(StageRead), reference=True),
    Synced("lost_reason", LostReason, _read(LostReasonRead), reference=True, only=lambda: col(LostReason.is_active)),
    Synced("product", Product, _read(ProductRead), reference=True, only=lambda: col(Product.is_active)),
    Synced("custom_field", CustomField, _read(CustomFieldRead), reference=True),
    Synced("company", Company, _read(CompanyRead)),
    Synced("contact", Contact, _read(ContactRead)),
    Synced("deal", Deal, deals.present_row),
    Synced("activity", Activity, activities.present_row),
)
BY_ENTITY = {s.entity: s for s in SYNCED}
ENTITIES = tuple(BY_ENTITY)

Members = dict[str, dict[uuid.UUID, int]]


def window_start(now: datetime) -> datetime:
    """Activities done before this have aged out. Whole days, so that the set does not shift with every pull."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=WINDOW_DAYS)


def _live(model: Any, viewer: Viewer) -> list[sa.ColumnElement[bool]]:
    return [col(model.org_id) == viewer.org_id, col(model.deleted_at).is_(None)]


def _member_statements(viewer: Viewer, since: datetime) -> dict[str, sa.Select[Any]]:
    me = viewer.user_id

    def ids(model: Any, *arms: sa.ColumnElement[bool]) -> list[sa.Select[Any]]:
        return [select(model.id).where(col(model.org_id) == viewer.org_id, arm) for arm in arms]

    def shared(entity: str) -> sa.Select[Any]:
        return select(col(Share.entity_id)).where(
            *_live(Share, viewer), col(Share.user_id) == me, col(Share.entity) == entity
        )

    def members(model: Any, gathered: Iterable[sa.Select[Any]], *where: sa.ColumnElement[bool]) -> sa.Select[Any]:
        return select(model.id, model.version).where(*_live(model, viewer), model.id.in_(sa.union(*gathered)), *where)

    companies = members(Company, [*ids(Company, col(Company.owner_id) == me), shared("company")])
    own_contacts = [*ids(Contact, col(Contact.owner_id) == me), shared("contact")]
    company_ids = companies.with_only_columns(col(Company.id))
    contacts = members(Contact, [*own_contacts, *ids(Contact, col(Contact.company_id).in_(company_ids))])
    deals_open = members(
        Deal,
        [
            *ids(Deal, col(Deal.owner_id) == me),
            shared("deal"),
            *ids(
                Deal,
                col(Deal.company_id).in_(company_ids),
                col(Deal.contact_id).in_(sa.union(*own_contacts)),
            ),
        ],
        col(Deal.status) == DealStatus.open.value,
    )
    recent = sa.or_(col(Activity.done_at) >= since, col(Activity.done_at).is_(None))
    activities_ = members(
        Activity,
        ids(
            Activity,
            *(
                sa.and_(ref, recent)
                for ref in (
                    col(Activity.owner_id) == me,
                    col(Activity.assignee_id) == me,
                    col(Activity.company_id).in_(company_ids),
                    col(Activity.contact_id).in_(contacts.with_only_columns(col(Contact.id))),
                    col(Activity.deal_id).in_(deals_open.with_only_columns(col(Deal.id))),
                )
            ),
        ),
    )
    statements = {"company": companies, "contact": contacts, "deal": deals_open, "activity": activities_}
    for synced in SYNCED:
        if synced.reference:
            model: Any = synced.model
            where = [synced.only()] if synced.only else []
            statements[synced.entity] = select(model.id, model.version).where(*_live(model, viewer), *where)
    return statements


async def members(session: AsyncSession, viewer: Viewer, since: datetime) -> Members:
    """The working set as {entity: {id: version}}."""
    found: Members = {}
    for entity, stmt in _member_statements(viewer, since).items():
        found[entity] = {row.id: row.version for row in await session.execute(stmt)}
    return found


async def records(
    session: AsyncSession, viewer: Viewer, entity: str, ids: list[uuid.UUID], now: datetime
) -> list[BaseModel]:
    """The live records of one kind with these ids, as the API reads them (in no particular order)."""
    synced = BY_ENTITY[entity]
    table = sa.inspect(synced.model).local_table
    live = [table.c.org_id == viewer.org_id, table.c.deleted_at.is_(None)]
    found: list[BaseModel] = []
    for start in range(0, len(ids), CHUNK):
        rows = await session.execute(select(table).where(*live, table.c.id.in_(ids[start : start + CHUNK])))
        found.extend(synced.present(row, now) for row in rows)
    return found
