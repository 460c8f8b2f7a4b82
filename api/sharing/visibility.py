"""Who sees what (DESIGN §5), in one place: every list, get, search, feed, timeline and card filters with it.

| role      | clients & deals                                                    | writes                        |
|-----------|--------------------------------------------------------------------|-------------------------------|
| rep       | own, shared with them, their team's when the organisation allows   | what they see; own to delete  |
| manager   | everything owned in their team subtree, and what is shared with them | same; reassign in subtree   |
| marketing | everything, read-only                                              | none                          |
| admin     | everything                                                         | everything                    |
| API key   | everything its scopes name                                         | with a `:write` scope         |

A contact is also visible through its company, a deal through its company or contact, and an activity through
the client or deal it is about: sharing a client shares its card.
"""

import functools
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
from fastapi import Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.activities.models import Activity
from api.auth.deps import allow
from api.auth.models import Organization, Role, User
from api.auth.principals import Principal
from api.auth.service import team_subtree
from api.clients.models import Company, Contact
from api.core.db import SessionDep
from api.core.errors import Forbidden, NotFound, ValidationFailed
from api.core.pagination import scan_end
from api.deals.models import Deal
from api.feed.models import FeedKind
from api.sharing.models import Share

REPS_SEE_TEAM = "reps_see_team"

# The kinds of record visibility rules apply to (all have an owner).
V = TypeVar("V", Company, Contact, Deal, Activity)


@dataclass(frozen=True, slots=True)
class Viewer:
    """A principal with the owners whose records it sees resolved (one query per request)."""

    principal: Principal
    everything: bool
    # Owners whose records the viewer sees.
    owner_ids: frozenset[uuid.UUID]
    # Owners whose records the viewer may delete and reassign, and may assign records to: themselves for a rep,
    # their subtree for a manager (a rep who sees the team's records does not run them).
    charge_ids: frozenset[uuid.UUID]

    @property
    def org_id(self) -> uuid.UUID:
        return self.principal.org_id

    @property
    def user_id(self) -> uuid.UUID | None:
        return self.principal.user_id

    @property
    def read_only(self) -> bool:
        return self.principal.kind == "user" and self.principal.role is Role.marketing

    def may_read(self, scope: str) -> bool:
        """Whether a section of another kind may be shown (an API key's card holds deals only with `deals:read`)."""
        return self.principal.kind != "api_key" or scope in self.principal.scopes

    def owns(self, owner_id: uuid.UUID) -> bool:
        """Whether the record's owner is in the viewer's charge: deleting and reassigning need this."""
        return (self.everything and not self.read_only) or owner_id in self.charge_ids


_users, _orgs, _shares = (sa.inspect(m).local_table for m in (User, Organization, Share))
# Every request of a rep or manager resolves its viewer: Core statements built once, values bound per request.
_ORG_SETTINGS = sa.select(_orgs.c.settings).where(_orgs.c.id == sa.bindparam("org_id"))
_TEAM_MEMBERS = sa.select(_users.c.id).where(
    _users.c.org_id == sa.bindparam("org_id"), _users.c.team_id == sa.bindparam("team_id")
)


async def viewer_for(session: AsyncSession, principal: Principal) -> Viewer:
    if principal.kind != "user" or principal.role in (Role.admin, Role.marketing):
        return Viewer(principal, everything=True, owner_ids=frozenset(), charge_ids=frozenset())
    assert principal.id is not None
    me = frozenset({principal.id})
    if principal.team_id is None:
        return Viewer(principal, everything=False, owner_ids=me, charge_ids=me)
    if principal.role is Role.manager:
        subtree = team_subtree(principal.org_id, principal.team_id)
        team = frozenset(
            await session.scalars(
                select(User.id).where(col(User.org_id) == principal.org_id, col(User.team_id).in_(subtree))
            )
        )
        return Viewer(principal, everything=False, owner_ids=me | team, charge_ids=me | team)
    org_settings = await session.scalar(_ORG_SETTINGS, {"org_id": principal.org_id})
    if (org_settings or {}).get(REPS_SEE_TEAM):
        found: Any = await session.scalars(_TEAM_MEMBERS, {"org_id": principal.org_id, "team_id": principal.team_id})
        return Viewer(principal, everything=False, owner_ids=me | frozenset(found), charge_ids=me)
    return Viewer(principal, everything=False, owner_ids=me, charge_ids=me)


def _owned(column: Any, viewer: Viewer) -> sa.ColumnElement[bool]:
    """`column` names an owner whose records the viewer sees. A rep's one owner is an equality: an IN list is
    rendered into the SQL again at every execution (SQLAlchemy's post-compile step), about 1 ms of a card."""
    if len(viewer.owner_ids) == 1:
        (owner,) = viewer.owner_ids
        return column == owner  # type: ignore[no-any-return]
    return column.in_(viewer.owner_ids)  # type: ignore[no-any-return]


def _shared(viewer: Viewer, entity: str, id_column: Any) -> sa.ColumnElement[bool]:
    # A probe of the share key (org, entity, entity_id, user) for the row at hand, not `id IN (the viewer's
    # shares)`: the latter is a hashed subplan that PostgreSQL builds by walking every record of the organisation.
    # Core columns: an ORM attribute anywhere in a statement sends all of it through the ORM's slower compile path.
    shared: sa.ColumnElement[bool] = (
        sa.select(sa.literal(1))
        .where(
            _shares.c.org_id == viewer.org_id,
            _shares.c.entity == entity,
            _shares.c.entity_id == id_column,
            _shares.c.user_id == viewer.user_id,
            _shares.c.deleted_at.is_(None),
        )
        .exists()
    )
    return shared


# One alias per kind, made once (an alias builds a proxy of every column). A probe never nests inside a probe of the
# same kind (deal → company or contact, contact → company), so the names cannot collide.
_PROBED = {
    model: sa.inspect(model).local_table.alias(f"visible_{model.__tablename__}")
    for model in (Company, Contact, Deal, Activity)
}


@functools.lru_cache(maxsize=4096)
def _probe(viewer: Viewer, model: type[V], condition: Callable[[Viewer, Any], sa.ColumnElement[bool]]) -> Any:
    # Kept across requests: the nested probes are most of a filter's expression tree, and building it again for
    # every statement cost more than running the statement (Viewer is immutable and hashable).
    other = _PROBED[model]
    return (
        select(sa.literal(1))
        .select_from(other)
        .where(other.c.org_id == viewer.org_id, condition(viewer, other.c))
        .offset(0)
    )


def _through(
    viewer: Viewer, model: type[V], ref: Any, condition: Callable[[Viewer, Any], sa.ColumnElement[bool]]
) -> sa.ColumnElement[bool]:
    """Whether the record `ref` points at passes `condition`: a correlated EXISTS, so each row costs one primary-key
    probe. OFFSET 0 keeps PostgreSQL from turning it into a hashed `ref IN (every visible record)`, which it builds
    by walking the whole organisation (see bench/RESULTS.md)."""
    found: sa.ColumnElement[bool] = _probe(viewer, model, condition).where(_PROBED[model].c.id == ref).exists()
    return found


def company_filter(viewer: Viewer, company: Any = Company) -> sa.ColumnElement[bool]:
    if viewer.everything:
        return sa.true()
    return sa.or_(_owned(company.owner_id, viewer), _shared(viewer, "company", company.id))


def _own_contact(viewer: Viewer, contact: Any) -> sa.ColumnElement[bool]:
    return sa.or_(_owned(contact.owner_id, viewer), _shared(viewer, "contact", contact.id))


def contact_filter(viewer: Viewer, contact: Any = Contact) -> sa.ColumnElement[bool]:
    if viewer.everything:
        return sa.true()
    return sa.or_(_own_contact(viewer, contact), _through(viewer, Company, contact.company_id, company_filter))


def deal_filter(viewer: Viewer, deal: Any = Deal) -> sa.ColumnElement[bool]:
    if viewer.everything:
        return sa.true()
    return sa.or_(
        _owned(deal.owner_id, viewer),
        _shared(viewer, "deal", deal.id),
        _through(viewer, Company, deal.company_id, company_filter),
        _through(viewer, Contact, deal.contact_id, _own_contact),
    )


def deals_seen(viewer: Viewer) -> sa.ColumnElement[bool]:
    """`deal_filter` as a set, for totals over many deals (the board): the ids of the deals the viewer sees, gathered
    through the owner, share and company indexes, which costs what the viewer sees rather than what the organisation
    has. (Per deal, the probes of `deal_filter` are cheaper; over a pipeline, this.)"""
    if viewer.everything:
        return sa.true()
    deal, company, contact = (sa.inspect(m).local_table for m in (Deal, Company, Contact))

    def shared(entity: str) -> sa.Select[Any]:
        return sa.select(_shares.c.entity_id).where(
            _shares.c.org_id == viewer.org_id,
            _shares.c.user_id == viewer.user_id,
            _shares.c.entity == entity,
            _shares.c.deleted_at.is_(None),
        )

    owned_companies = select(company.c.id).where(company.c.org_id == viewer.org_id, _owned(company.c.owner_id, viewer))
    owned_contacts = select(contact.c.id).where(contact.c.org_id == viewer.org_id, _owned(contact.c.owner_id, viewer))
    in_org = deal.c.org_id == viewer.org_id
    ids = sa.union(
        select(deal.c.id).where(in_org, _owned(deal.c.owner_id, viewer)),
        shared("deal"),
        select(deal.c.id).where(in_org, deal.c.company_id.in_(owned_companies)),
        select(deal.c.id).where(in_org, deal.c.company_id.in_(shared("company"))),
        select(deal.c.id).where(in_org, deal.c.contact_id.in_(owned_contacts)),
        select(deal.c.id).where(in_org, deal.c.contact_id.in_(shared("contact"))),
    )
    seen: sa.ColumnElement[bool] = deal.c.id.in_(ids)
    return seen


def _own_activity(viewer: Viewer, activity: Any) -> sa.ColumnElement[bool]:
    return sa.or_(_owned(activity.owner_id, viewer), _owned(activity.assignee_id, viewer))


def activity_filter(viewer: Viewer, activity: Any = Activity) -> sa.ColumnElement[bool]:
    if viewer.everything:
        return sa.true()
    return sa.or_(
        _own_activity(viewer, activity),
        _through(viewer, Company, activity.company_id, company_filter),
        _through(viewer, Contact, activity.contact_id, contact_filter),
        _through(viewer, Deal, activity.deal_id, deal_filter),
    )


def feed_filter(viewer: Viewer, event: Any) -> sa.ColumnElement[bool]:
    """A feed event is seen by whoever may see the deal, client or activity it is about, and by the colleague it is
    addressed to (a share, a mention). A disabled webhook is news for admins only."""
    if viewer.everything:
        return sa.true() if viewer.principal.is_admin else event.kind != FeedKind.webhook_disabled.value
    return sa.or_(
        event.user_id == viewer.user_id,
        event.actor_id == viewer.user_id,
        # A colleague's goal reached is news for whoever sees their records (their manager, their team).
        sa.and_(event.kind == FeedKind.goal_reached.value, _owned(event.user_id, viewer)),
        _through(viewer, Activity, event.activity_id, _own_activity),
        _through(viewer, Deal, event.deal_id, deal_filter),
        _through(viewer, Company, event.company_id, company_filter),
        _through(viewer, Contact, event.contact_id, contact_filter),
    )


FILTERS = {Company: company_filter, Contact: contact_filter, Deal: deal_filter, Activity: activity_filter}


def in_org(viewer: Viewer, model: type[V], *, deleted: bool = False) -> Any:
    """The organisation's live records of a kind (with `deleted`, those in the bin), before visibility."""
    tombstone = col(model.deleted_at).is_not(None) if deleted else col(model.deleted_at).is_(None)
    return select(model).where(col(model.org_id) == viewer.org_id, tombstone)


def visible(viewer: Viewer, model: type[V], *, deleted: bool = False) -> Any:
    """The live records of a kind the viewer may see: where every read of clients, deals and activities starts.
    With `deleted`, the deleted ones instead (the bin, to restore from)."""
    return in_org(viewer, model, deleted=deleted).where(FILTERS[model](viewer))


# Rows a page of a filtered list or feed reads at most.
SCAN_WINDOW = 2_000


async def scan_window(
    session: AsyncSession,
    viewer: Viewer,
    stmt: Any,
    *,
    scope: str,
    keys: list[Any],
    cursor: str | None,
    descending: bool = True,
) -> Sequence[Any] | None:
    """Where a page of `stmt` (in `keys` order, before the visibility filter) stops looking, for a viewer who may see
    only a sliver of it: a rep hired today would otherwise make each page probe every record of the organisation to
    find none. None for viewers who see everything (nothing is filtered out) and near the end of the list."""
    if viewer.everything:
        return None
    return await scan_end(session, stmt, scope=scope, keys=keys, cursor=cursor, size=SCAN_WINDOW, descending=descending)


async def get_visible(session: AsyncSession, viewer: Viewer, model: type[V], record_id: uuid.UUID, what: str) -> V:
    """A record the viewer may see, or 404: what they may not see is not found, as another organisation's is."""
    found: V | None = (await session.scalars(visible(viewer, model).where(col(model.id) == record_id))).first()
    if found is None:
        raise NotFound(f"No such {what}.")
    return found


async def get_restorable(session: AsyncSession, viewer: Viewer, model: type[V], record_id: uuid.UUID, what: str) -> V:
    """A deleted record the viewer may bring back: one they could see, whose owner is in their charge."""
    if viewer.read_only:
        raise Forbidden("Your role can read records but not change them.")
    found: V | None = (
        await session.scalars(visible(viewer, model, deleted=True).where(col(model.id) == record_id))
    ).first()
    if found is None:
        raise NotFound(f"No such deleted {what}.")
    ensure_owner(viewer, found.owner_id)
    return found


async def get_writable(session: AsyncSession, viewer: Viewer, model: type[V], record_id: uuid.UUID, what: str) -> V:
    """A record the viewer may change: visible, and the viewer is not read-only."""
    if viewer.read_only:
        raise Forbidden("Your role can read clients and deals but not change them.")
    return await get_visible(session, viewer, model, record_id, what)


def ensure_owner(viewer: Viewer, owner_id: uuid.UUID) -> None:
    """Deleting or reassigning a record needs its owner in the viewer's charge (a share is not enough)."""
    if not viewer.owns(owner_id):
        raise Forbidden("Only the owner, their manager or an admin can do this.")


async def check_owner(session: AsyncSession, viewer: Viewer, owner_id: uuid.UUID, pointer: str = "#/owner_id") -> None:
    """A new owner must be an active colleague the viewer may assign to: themselves for a rep, anyone in their
    subtree for a manager, anyone for an admin or an integration."""
    exists = await session.scalar(
        select(User.id).where(
            col(User.id) == owner_id, col(User.org_id) == viewer.org_id, col(User.is_active).is_(True)
        )
    )
    if exists is None:
        raise ValidationFailed.field(pointer, "No such active colleague.")
    if not viewer.owns(owner_id):
        raise ValidationFailed.field(pointer, "You can assign records only to yourself or people in your team.")


async def ensure_visible_ref(
    session: AsyncSession, viewer: Viewer, model: type[V], record_id: uuid.UUID, pointer: str
) -> None:
    """A reference in a request body must name a record the viewer may see: else 422 on that field (and no hint
    whether it exists elsewhere)."""
    if not await can_see(session, viewer, model, record_id):
        raise ValidationFailed.field(pointer, f"No such {model.__tablename__}.")


async def can_see(session: AsyncSession, viewer: Viewer, model: type[V], record_id: uuid.UUID) -> bool:
    stmt = visible(viewer, model).where(col(model.id) == record_id).with_only_columns(col(model.id))
    return await session.scalar(stmt) is not None


def viewer_of(*roles: Role, scope: str | None = None) -> Callable[..., Coroutine[Any, Any, Viewer]]:
    """A route dependency: the caller (checked like `allow`) with what they may see resolved."""

    async def resolve(
        principal: Annotated[Principal, Depends(allow(*roles, scope=scope))], session: SessionDep
    ) -> Viewer:
        return await viewer_for(session, principal)

    return resolve


OwnerQuery = Annotated[
    str | None,
    Query(
        alias="owner_id",
        # Each group of a UUID in its place (hyphens optional): `[0-9a-f-]{32,36}` let 36 hyphens through to a 500.
        pattern=r"^(me|[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12})$",
        description="Only this owner's records: a user id, or `me`.",
    ),
]


def owner_filter(caller: Viewer | Principal, value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    if value == "me":
        if caller.user_id is None:
            detail = "An API key has no records of its own."
            raise ValidationFailed(detail, errors=[{"in": "query", "parameter": "owner_id", "detail": detail}])
        return caller.user_id
    return uuid.UUID(value)


async def check_colleagues(session: AsyncSession, viewer: Viewer, ids: list[uuid.UUID], pointer: str) -> None:
    """Every id must be an active user of the organisation (a colleague from the picker)."""
    if not ids:
        return
    found = set(
        await session.scalars(
            select(User.id).where(
                col(User.org_id) == viewer.org_id, col(User.is_active).is_(True), col(User.id).in_(ids)
            )
        )
    )
    for index, user_id in enumerate(ids):
        if user_id not in found:
            raise ValidationFailed.field(pointer.format(index=index), "No such active colleague.")


async def company_of_contact(session: AsyncSession, viewer: Viewer, contact_id: uuid.UUID) -> uuid.UUID | None:
    """The contact's company, if the viewer may see it: what a deal or activity about the contact is filed under."""
    stmt = (
        visible(viewer, Company)
        .join(Contact, col(Contact.company_id) == col(Company.id))
        .where(col(Contact.id) == contact_id)
        .with_only_columns(col(Company.id))
    )
    found: uuid.UUID | None = await session.scalar(stmt)
    return found
