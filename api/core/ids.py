"""Record ids are UUIDv7: time-ordered (index-friendly) and safe for a device to generate offline."""

import uuid

from uuid_utils import compat


def new_id() -> uuid.UUID:
    value: uuid.UUID = compat.uuid7()
    return value
