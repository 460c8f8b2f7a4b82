"""Base classes and field helpers shared by every domain's API shapes."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Input(BaseModel):
    """A request body: unknown fields are refused, so server-owned fields can never be set by a client."""

    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


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
