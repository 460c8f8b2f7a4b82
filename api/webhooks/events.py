"""The event catalogue: which changes become which webhook events, event filters, and the payload of each."""

import fnmatch
import json
import uuid
from datetime import datetime
from typing import Any

from api.core.changes import Recorded
from api.core.types import jsonable

# The records integrations follow, and the read scope an API key needs to receive their events.
ENTITIES = {"company": "clients:read", "contact": "clients:read", "deal": "deals:read", "activity": "activities:read"}
_OPS = {"create": "created", "update": "updated", "delete": "deleted"}
PING = "webhook.ping"

_DEAL_UPDATED = " (any change the events below do not report)"
CATALOGUE: dict[str, str] = {
    **{
        f"{entity}.{action}": f"{'An' if entity[0] in 'aeiou' else 'A'} {entity} was {action}"
        + (_DEAL_UPDATED if (entity, action) == ("deal", "updated") else "")
        for entity in ENTITIES
        for action in _OPS.values()
    },
    "deal.stage_changed": "An open deal moved to another stage",
    "deal.won": "A deal was won",
    "deal.lost": "A deal was lost",
    "deal.reopened": "A won or lost deal was opened again",
    PING: "A test event, sent on request to one endpoint whatever its filters",
}


def matching_types(pattern: str) -> list[str]:
    """The catalogue's event types a filter selects: an exact type, `deal.*`, `*.created` or `*`."""
    return [t for t in CATALOGUE if t != PING and fnmatch.fnmatchcase(t, pattern)]


def type_of(recorded: Recorded) -> str | None:
    """The event a change makes, if integrations follow its kind of record. A deal's status or stage change is
    its own event (with every changed field in the payload), not a `deal.updated`."""
    change = recorded.change
    if change.entity not in ENTITIES:
        return None
    action = _OPS[change.op]
    if change.entity == "deal" and change.op == "update":
        status = change.fields.get("status")
        if status is not None:
            return "deal.reopened" if status["after"] == "open" else f"deal.{status['after']}"
        if "stage_id" in change.fields:
            return "deal.stage_changed"
    return f"{change.entity}.{action}"


def wanted(patterns: list[str], read_scopes: list[str] | None, event_type: str) -> bool:
    """Whether an endpoint with these filters (and, when an API key made it, these read scopes) gets the event."""
    if read_scopes is not None and ENTITIES[event_type.split(".")[0]] not in read_scopes:
        return False
    return any(fnmatch.fnmatchcase(event_type, pattern) for pattern in patterns)


def body(event_id: uuid.UUID, event_type: str, created_at: datetime, data: dict[str, Any]) -> str:
    """The bytes every attempt sends (and signs): fixed when the event is written."""
    payload = {"id": str(event_id), "type": event_type, "created_at": jsonable(created_at), "data": data}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def change_data(recorded: Recorded) -> dict[str, Any]:
    change = recorded.change
    return {
        "entity": change.entity,
        "id": str(change.entity_id),
        "version": change.version,
        "seq": change.seq,
        "op": change.op,
        "occurred_at": jsonable(change.at),
        "actor": {"kind": change.actor_kind, "id": str(change.actor_id) if change.actor_id else None},
        "changes": change.fields,
        "object": recorded.snapshot,
    }
