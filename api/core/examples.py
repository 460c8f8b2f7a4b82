"""One story for the examples of the OpenAPI document, which integrators copy: Comercial Levante S.L., a Valencian
field-sales team selling point-of-sale terminals. Each schema declares its own examples (`json_schema_extra`); the
ids and moments they share live here, so that a deal's `company_id` is the company of the company examples, and
composite answers (a page, a card) are built from their parts' examples with `example_of`."""

from copy import deepcopy
from typing import Any

from pydantic import BaseModel
from pydantic.config import JsonDict

# People and teams
ORG = "019cadd4-5620-7f65-9ed3-4fe53a096533"
ANA = "019cadda-bec0-7314-a057-38d16018366c"  # Ana García, admin
LUIS = "019cade1-2760-715c-8b35-10b0b46ee1da"  # Luis Fernández, manager, head of the team
MARTA = "019cade7-9000-7cf8-bf58-4ad4230824d2"  # Marta López, rep
JAVIER = "019caded-f8a0-735a-81a0-d5b3ffc6e35c"  # Javier Ruiz, rep
TEAM = "019cadf4-6140-707e-a451-7d6c6694f229"  # Ventas Valencia

# Reference data
PIPELINE = "019cadfa-c9e0-7741-bcc6-61e97589ca4a"
STAGE_PROSPECT = "019cae01-3280-7929-beb7-2f8263f65da8"
STAGE_PROPOSAL = "019cae07-9b20-7d4b-a5b8-063831360a40"
STAGE_NEGOTIATION = "019cae0e-03c0-77c0-96ed-c5d467164890"
STAGE_WON = "019cae14-6c60-7053-824f-6aa83bf36a14"
LOST_REASON = "019cae21-3da0-7e6d-b96d-3bc4685ca8af"
PRODUCT = "019cae27-a640-7b9d-a10b-1631e941aa79"
FIELD = "019cae67-bc80-78a0-907a-c8069b51c632"

# Clients, deals, activities
COMPANY = "019cae2e-0ee0-7422-a9b7-e3ea1d1d784f"  # Frutas Martínez S.L.
CONTACT = "019cae34-7780-7d07-bdd9-a78d18dff393"  # Lucía Martínez Soler, its manager
DEAL = "019cae3a-e020-79ed-a2e9-17d310269470"
LINE = "019cae41-48c0-71b9-a090-8405d45c39a3"
PREVIOUS_DEAL = "019cae47-b160-7568-8edc-a4eca92d04a3"
ACTIVITY = "019cae4e-1a00-7162-b0f9-13063c02e567"  # a call
TASK = "019cae54-82a0-7a67-a744-b24e7f61701e"  # its next step
SHARE = "019cae5a-eb40-7353-a6c0-8269844dbc0c"
FEED_ITEM = "019cae87-c7a0-7491-b1f4-7e49e18692e2"

# Administration
KEY = "019cae61-53e0-7247-8ef2-d30194df943c"
KEY_PREFIX = "fbk_3f9a1c2b7d4e"
GOAL = "019cae6e-2520-77d0-8997-4b85f2306d4a"
JOB = "019cae74-8dc0-725c-b1a0-6a7cb3aa75ab"
MAPPING = "019cae7a-f660-7943-9c3d-716bf22ff5fd"
CHANGE = "019cae81-5f00-795a-ba9b-e85a74cda9c4"
CLIENT_APP = "019cae8e-3040-7dad-9b50-7a368eac871f"

# Moments (UTC)
CREATED = "2026-03-02T09:15:00Z"
UPDATED = "2026-03-10T16:40:00Z"
CALLED = "2026-03-10T16:32:00Z"
DUE = "2026-03-17T08:00:00Z"
WON = "2026-03-24T11:05:00Z"

# Cursors are opaque: this one only looks like the real thing.
CURSOR = "WyJmcnV0YXMgbWFydGluZXoiLHsidSI6IjAxOWNhZTJlLTBlZTAtNzQyMi1hOWI3LWUzZWExZDFkNzg0ZiJ9XQ.kP3xQ0c5m7Vb1sRr2"


def record(id: str, *, version: int = 1, **fields: Any) -> dict[str, Any]:
    """A stored record as the API reads it: id, moments and version first."""
    return {"id": id, "created_at": CREATED, "updated_at": UPDATED, "version": version, **fields}


def example_of(model: type[BaseModel], index: int = 0) -> Any:
    """A copy of an example a model declares (to build a composite answer's example from its parts')."""
    extra = model.model_config.get("json_schema_extra")
    found = extra.get("examples") if isinstance(extra, dict) else None
    if not isinstance(found, list):
        raise LookupError(f"{model.__name__} declares no examples")
    return deepcopy(found[index])


def examples(*items: Any) -> JsonDict:
    """`json_schema_extra` for a model: `model_config = ConfigDict(json_schema_extra=examples({...}))`."""
    return {"examples": list(items)}
