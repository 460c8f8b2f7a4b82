"""`POST /sync/push` (DESIGN §7): an app's outbox, applied exactly once, in order, in one transaction.

Each mutation names what the app did offline and carries the arguments the matching REST call takes; it runs
through the same service function, with the same checks, in a savepoint of its own: a refused mutation changes
nothing and the rest go on. The app's `sync_client` row records the last mutation taken, applied or refused, in
the same transaction as their effects, so a push sent twice (a lost response) takes effect once and a refused
mutation never blocks the queue.

Fields are last-writer-wins, one by one: an update carries only the fields the user changed. A deal's stage,
amount and owner are guarded: when someone else changed one of them after `base_version`, the app's value is not
written and the mutation reports a conflict with the server's record, for the user to settle. A record deleted on
the server stays deleted (deletes win): changes to it are refused as gone.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.activities import service as activities
from api.activities.models import Activity, ActivityKind
from api.activities.schemas import ActivityComplete, ActivityCreate
from api.clients import service as clients
from api.clients.schemas import CompanyCreate, CompanyRead, CompanyUpdate, ContactCreate, ContactRead, ContactUpdate
from api.core.changes import Change
from api.core.errors import AppError, Conflict, Gone, NotFound, ValidationFailed, problem_of
from api.core.models import Record
from api.core.types import utcnow
from api.deals import deals
from api.deals.models import Deal
from api.deals.schemas import DealCreate, DealLose, DealMove, DealUpdate
from api.sharing import service as sharing
from api.sharing.schemas import ShareCreate
from api.sharing.visibility import Viewer, visible
from api.sync.models import SyncClient
from api.sync.schemas import Mutation, MutationResult, PushRequest, PushResult

# A move, a win or a loss changes the stage: it conflicts with any other change of stage (or status).
STAGE_FIELDS = frozenset({"stage_id", "status"})
# Of a deal's fields, an update guards these (DESIGN §7).
DEAL_GUARDED = frozenset({"amount_minor", "owner_id"})


class Target(BaseModel):
    id: uuid.UUID


class NewCompany(CompanyCreate):
    id: uuid.UUID  # made on the device: required offline
    confirm_duplicate: bool = False


class NewContact(ContactCreate):
    id: uuid.UUID
    confirm_duplicate: bool = False


class CompanyChange(CompanyUpdate, Target):
    confirm_duplicate: bool = False


class ContactChange(ContactUpdate, Target):
    confirm_duplicate: bool = False


class NewDeal(DealCreate):
    id: uuid.UUID


class DealChange(DealUpdate, Target):
    pass


class DealMoveArgs(DealMove, Target):
    pass


class DealLoseArgs(DealLose, Target):
    pass


class DealWinArgs(Target):
    model_config = DealMove.model_config


class NewActivity(ActivityCreate):
    id: uuid.UUID


class NewTask(NewActivity):
    kind: Literal[ActivityKind.task] = ActivityKind.task


class TaskDone(ActivityComplete, Target):
    pass


def _as(schema: type[BaseModel], args: BaseModel) -> Any:
    """A service's input out of a mutation's arguments, keeping which fields were set (an update writes only
    those) and leaving out what the service does not take (`id`, `confirm_duplicate`)."""
    values = {name: getattr(args, name) for name in schema.model_fields if name in type(args).model_fields}
    return schema.model_construct(_fields_set=args.model_fields_set & set(values), **values)


def _without(args: BaseModel, names: frozenset[str]) -> Any:
    kept = {name: getattr(args, name) for name in type(args).model_fields if name not in names}
    return type(args).model_construct(_fields_set=args.model_fields_set - names, **kept)


Run = Callable[[AsyncSession, Viewer, Any], Awaitable[Record | None]]


@dataclass(frozen=True, slots=True)
class Kind:
    args: type[BaseModel]
    run: Run
    # The record the mutation is about (`args.id`), for conflicts and deletes; None for creations.
    target: type[Record] | None = None
    present: Callable[[Any], BaseModel] | None = None
    # The guarded fields this mutation writes (a conflict when changed by someone else since the base version).
    guards: Callable[[Any], frozenset[str]] = lambda _args: frozenset()
    # An update applies its other fields when some conflict; an action (move, win, lose) applies nothing.
    partial: bool = False


@dataclass(frozen=True, slots=True)
class ClientShapes:
    new: type[BaseModel]
    change: type[BaseModel]
    # What the service takes, and what it answers with.
    create: type[BaseModel]
    update: type[BaseModel]
    read: Any


def _clients(spec: clients.ClientKindSpec, shapes: ClientShapes) -> dict[str, Kind]:
    create, update, read = shapes.create, shapes.update, shapes.read

    async def run_create(session: AsyncSession, viewer: Viewer, args: Any) -> Record:
        record: Record = await clients.create_client(
            session=session, viewer=viewer, spec=spec, data=_as(create, args), confirm_duplicate=args.confirm_duplicate
        )
        return record

    async def run_update(session: AsyncSession, viewer: Viewer, args: Any) -> Record:
        record: Record = await clients.update_client(
            session=session,
            viewer=viewer,
            spec=spec,
            client_id=args.id,
            data=_as(update, args),
            expected_version=None,
            confirm_duplicate=args.confirm_duplicate,
            present=read.model_validate,
        )
        return record

    return {
        f"{spec.what}.create": Kind(shapes.new, run_create, present=read.model_validate),
        f"{spec.what}.update": Kind(shapes.change, run_update, spec.model, read.model_validate, partial=True),
    }


async def _create_deal(session: AsyncSession, viewer: Viewer, args: Any) -> Record:
    return await deals.create_deal(session=session, viewer=viewer, data=_as(DealCreate, args))


async def _update_deal(session: AsyncSession, viewer: Viewer, args: Any) -> Record:
    return await deals.update_deal(
        session=session, viewer=viewer, deal_id=args.id, data=_as(DealUpdate, args), expected_version=None
    )


async def _move_deal(session: AsyncSession, viewer: Viewer, args: Any) -> Record:
    return await deals.move_deal(
        session=session, viewer=viewer, deal_id=args.id, stage_id=args.stage_id, expected_version=None
    )


async def _win_deal(session: AsyncSession, viewer: Viewer, args: Any) -> Record:
    return await deals.win_deal(session=session, viewer=viewer, deal_id=args.id, expected_version=None)


async def _lose_deal(session: AsyncSession, viewer: Viewer, args: Any) -> Record:
    return await deals.lose_deal(
        session=session,
        viewer=viewer,
        deal_id=args.id,
        lost_reason_id=args.lost_reason_id,
        note=args.note,
        expected_version=None,
    )


async def _log_activity(session: AsyncSession, viewer: Viewer, args: Any) -> Record:
    activity, _follow_up = await activities.create_activity(
        session=session, viewer=viewer, data=_as(ActivityCreate, args)
    )
    return activity


async def _complete_task(session: AsyncSession, viewer: Viewer, args: Any) -> Record:
    activity, _follow_up = await activities.complete_activity(
        session=session,
        viewer=viewer,
        activity_id=args.id,
        data=_as(ActivityComplete, args),
        expected_version=None,
    )
    return activity


async def _share(session: AsyncSession, viewer: Viewer, args: Any) -> None:
    await sharing.share(session=session, viewer=viewer, data=args)


def _stage_guard(_args: Any) -> frozenset[str]:
    return STAGE_FIELDS


KINDS: dict[str, Kind] = {
    **_clients(clients.COMPANY, ClientShapes(NewCompany, CompanyChange, CompanyCreate, CompanyUpdate, CompanyRead)),
    **_clients(clients.CONTACT, ClientShapes(NewContact, ContactChange, ContactCreate, ContactUpdate, ContactRead)),
    "deal.create": Kind(NewDeal, _create_deal, present=deals.present),
    "deal.update": Kind(
        DealChange,
        _update_deal,
        Deal,
        deals.present,
        guards=lambda args: DEAL_GUARDED & args.model_fields_set,
        partial=True,
    ),
    "deal.move": Kind(DealMoveArgs, _move_deal, Deal, deals.present, guards=_stage_guard),
    "deal.win": Kind(DealWinArgs, _win_deal, Deal, deals.present, guards=_stage_guard),
    "deal.lose": Kind(DealLoseArgs, _lose_deal, Deal, deals.present, guards=_stage_guard),
    "activity.log": Kind(NewActivity, _log_activity, present=activities.present),
    "task.create": Kind(NewTask, _log_activity, present=activities.present),
    "task.complete": Kind(TaskDone, _complete_task, Activity, activities.present),
    "share.create": Kind(ShareCreate, _share),
}


async def _changed_by_others(
    session: AsyncSession, viewer: Viewer, kind: Kind, record_id: uuid.UUID, since: int
) -> set[str]:
    """Fields of the record that someone other than the viewer set after version `since` (the user's own edits
    from another device or an earlier mutation are theirs to overwrite)."""
    assert kind.target is not None
    rows = await session.execute(
        select(Change.fields, Change.actor_id).where(
            col(Change.org_id) == viewer.org_id,
            col(Change.entity) == kind.target.__tablename__,
            col(Change.entity_id) == record_id,
            col(Change.version) > since,
        )
    )
    changed: set[str] = set()
    for row in rows:
        if row.actor_id != viewer.user_id:
            changed.update(row.fields)
    return changed


async def _refuse_if_deleted(session: AsyncSession, viewer: Viewer, kind: Kind, record_id: uuid.UUID) -> None:
    """Deletes win: a change to a record the viewer could see before it was deleted is gone, not merely unknown."""
    model: Any = kind.target
    if await session.scalar(visible(viewer, model, deleted=True).where(col(model.id) == record_id)) is not None:
        raise Gone(f"This {model.__tablename__} was deleted: the change was not applied.")


async def _current(session: AsyncSession, viewer: Viewer, kind: Kind, record_id: uuid.UUID) -> Any:
    """The target as the viewer sees it (gone when deleted, not found when never seen)."""
    model: Any = kind.target
    record = await session.scalar(visible(viewer, model).where(col(model.id) == record_id))
    if record is None:
        await _refuse_if_deleted(session, viewer, kind, record_id)
        raise NotFound(f"No such {model.__tablename__}.")
    return record


def _shown(kind: Kind, record: Record | None) -> dict[str, Any] | None:
    if record is None or kind.present is None:
        return None
    return kind.present(record).model_dump(mode="json")


async def _apply(session: AsyncSession, viewer: Viewer, mutation: Mutation) -> MutationResult:
    kind = KINDS[mutation.name]
    try:
        args: Any = kind.args.model_validate(mutation.args)
    except ValidationError as exc:
        raise ValidationFailed.of([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc
    conflicts: frozenset[str] = frozenset()
    if kind.target is not None and mutation.base_version is not None:
        # Only a mutation that says which version it saw can conflict; otherwise the service looks the target up.
        current = await _current(session, viewer, kind, args.id)
        if mutation.base_version < current.version:
            changed = await _changed_by_others(session, viewer, kind, current.id, mutation.base_version)
            conflicts = kind.guards(args) & changed
        if conflicts and not kind.partial:
            return MutationResult(
                id=mutation.id, status="conflict", conflicts=sorted(conflicts), record=_shown(kind, current)
            )
        args = _without(args, conflicts)
    try:
        record = await kind.run(session, viewer, args)
    except NotFound:
        if kind.target is not None:
            await _refuse_if_deleted(session, viewer, kind, args.id)
        raise
    status: Literal["applied", "conflict"] = "conflict" if conflicts else "applied"
    return MutationResult(id=mutation.id, status=status, conflicts=sorted(conflicts), record=_shown(kind, record))


async def _sync_client(session: AsyncSession, viewer: Viewer, client_id: uuid.UUID) -> SyncClient:
    # Every write already holds the organisation's lock (serialise_writes); the row lock keeps this correct
    # without it. A new app's row is made on its first push.
    stmt = select(SyncClient).where(col(SyncClient.user_id) == viewer.user_id, col(SyncClient.client_id) == client_id)
    found = await session.scalar(stmt.with_for_update())
    if found is None:
        assert viewer.user_id is not None  # the route admits signed-in users only
        found = SyncClient(user_id=viewer.user_id, client_id=client_id, org_id=viewer.org_id)
        session.add(found)
        await session.flush()
    return found


def _check_order(mutations: list[Mutation]) -> None:
    for index in range(1, len(mutations)):
        if mutations[index].id <= mutations[index - 1].id:
            raise ValidationFailed.field(f"#/mutations/{index}/id", "Mutation ids must increase.")


async def push(session: AsyncSession, viewer: Viewer, data: PushRequest) -> PushResult:
    _check_order(data.mutations)
    client = await _sync_client(session, viewer, data.client_id)
    # Written once, with the push's effects (one UPDATE, not one per mutation).
    taken = client.last_mutation_id
    results = []
    for mutation in data.mutations:
        if mutation.id <= taken:
            results.append(MutationResult(id=mutation.id, status="duplicate"))
            continue
        try:
            async with session.begin_nested():
                results.append(await _apply(session, viewer, mutation))
        except AppError as exc:
            results.append(MutationResult(id=mutation.id, status="rejected", problem=problem_of(exc)))
        except IntegrityError:
            refused = Conflict("This conflicts with a record saved meanwhile (an id already taken?).")
            results.append(MutationResult(id=mutation.id, status="rejected", problem=problem_of(refused)))
        taken = mutation.id
    client.last_mutation_id = taken
    client.pushed_at = utcnow()
    session.add(client)
    return PushResult(last_mutation_id=taken, results=results)


def document_mutations(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with each mutation's arguments spelled out: `Mutation` becomes a union on `name`, one
    variant per mutation whose `args` is that mutation's schema, so the app's generated types check them. (The
    request model itself takes any object as `args` and checks it per mutation: a bad one is refused in the results
    instead of failing the whole push, which would block the app's queue.)"""
    schemas = document["components"]["schemas"]
    generic = schemas["Mutation"]
    variants: dict[str, str] = {}
    for name, kind in KINDS.items():
        title = "".join(part.title() for part in name.replace("_", ".").split("."))
        args = kind.args.model_json_schema(ref_template="#/components/schemas/{model}")
        # Inherited from the REST body the arguments extend, the examples would lack the record's `id`.
        args.pop("examples", None)
        for shared, schema in args.pop("$defs", {}).items():
            schemas.setdefault(shared, schema)
        schemas[f"{title}Args"] = args
        properties = {
            **generic["properties"],
            "name": {"type": "string", "const": name},
            "args": {"$ref": f"#/components/schemas/{title}Args"},
        }
        schemas[f"{title}Mutation"] = {**generic, "title": f"{title}Mutation", "properties": properties}
        variants[name] = f"#/components/schemas/{title}Mutation"
    schemas["Mutation"] = {
        "title": "Mutation",
        "oneOf": [{"$ref": ref} for ref in variants.values()],
        "discriminator": {"propertyName": "name", "mapping": variants},
    }
    return document
