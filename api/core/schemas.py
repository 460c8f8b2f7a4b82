"""Base classes and field helpers shared by every domain's API shapes."""

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.core.errors import ValidationFailed


class Input(BaseModel):
    """A request body: unknown fields are refused, so server-owned fields can never be set by a client."""

    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class RecordRead(Output):
    id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    version: int


def _not_null(schema: dict[str, Any]) -> None:
    variants = [v for v in schema.pop("anyOf", []) if v.get("type") != "null"]
    if len(variants) == 1:
        schema.update(variants[0])
    elif variants:
        schema["anyOf"] = variants


def optional(**kwargs: Any) -> Any:
    """A PATCH field that may be left out but not set to null: documented as non-nullable; the service refuses
    an explicit null with a 422 naming the field."""
    return Field(default=None, json_schema_extra=_not_null, **kwargs)


def changed_fields(data: BaseModel, at: str = "#") -> dict[str, Any]:
    """The fields a PATCH body sets. An `optional()` field sent as null is refused with a 422 naming it."""
    fields = data.model_dump(exclude_unset=True)
    for name, info in type(data).model_fields.items():
        if name in fields and fields[name] is None and info.json_schema_extra is _not_null:
            raise ValidationFailed.field(f"{at}/{name}", "must not be null")
    return fields
