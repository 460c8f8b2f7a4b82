"""Record versions as ETags, and If-Match on writes (no lost updates)."""

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Response
from pydantic import BaseModel

from api.core.errors import PreconditionFailed
from api.core.models import Record

_ETAG = re.compile(r'^\s*(?:W/)?"(\d{1,18})"\s*$')


def parse_if_match(
    if_match: Annotated[
        str | None,
        Header(
            max_length=40,
            pattern=r'^\s*((W/)?"\d{1,18}"|\*)\s*$',
            description='The version you read, as its ETag (e.g. `"3"`): stale writes get 412.',
        ),
    ] = None,
) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    found = _ETAG.match(if_match)
    assert found is not None  # the header's pattern was checked before this runs
    return int(found.group(1))


IfMatchDep = Annotated[int | None, Depends(parse_if_match)]


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


def ensure_version(obj: Record, expected: int | None, present: Callable[[Any], BaseModel]) -> None:
    if expected is not None and obj.version != expected:
        raise PreconditionFailed(
            f"The record changed since you read it (you had version {expected}, it is now {obj.version}).",
            extra={"current": present(obj).model_dump(mode="json")},
            headers={"ETag": f'"{obj.version}"'},
        )
