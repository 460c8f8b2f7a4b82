"""Who is making a request: a signed-in user, an API key, or the system itself (CLI, migrations, demo)."""

import uuid
from dataclasses import dataclass, field
from typing import Literal

from api.auth.models import Role


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Literal["user", "api_key", "system"]
    org_id: uuid.UUID
    id: uuid.UUID | None = None
    role: Role | None = None
    team_id: uuid.UUID | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    session_id: uuid.UUID | None = None

    @classmethod
    def system(cls, org_id: uuid.UUID) -> "Principal":
        return cls(kind="system", org_id=org_id)

    @property
    def is_admin(self) -> bool:
        return self.kind == "system" or (self.kind == "user" and self.role is Role.admin)

    @property
    def user_id(self) -> uuid.UUID | None:
        return self.id if self.kind == "user" else None
