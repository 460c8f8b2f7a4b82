"""What the server keeps per installed app (DESIGN §7): its outbox position, and what each pull has sent it."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api.core.ids import new_id
from api.core.types import UTCDateTime, utcnow


class SyncClient(SQLModel, table=True):
    """One installed app of one user. `last_mutation_id` moves forward in the transaction that applies (or
    rejects) a mutation, which is what makes a push exactly-once."""

    __tablename__ = "sync_client"

    user_id: uuid.UUID = Field(foreign_key="user.id", primary_key=True, ondelete="CASCADE")
    client_id: uuid.UUID = Field(primary_key=True)
    org_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE")
    last_mutation_id: int = Field(default=0, sa_type=sa.BigInteger)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    pushed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class SyncView(SQLModel, table=True):
    """What an app holds: the version of every record sent to it and not since removed (a "client view record").
    A pull cursor names one (and how far through its listing's difference the app has got); the next listing sends
    the difference between it and the working set as it is then, so records that left the set for any reason
    (reassigned, unshared, deleted, aged out) are removed without tracking why."""

    __tablename__ = "sync_view"
    __table_args__ = (
        sa.Index("ix_sync_view_user_id_client_id_created_at", "user_id", "client_id", "created_at"),
        sa.Index("ix_sync_view_created_at", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    org_id: uuid.UUID = Field(foreign_key="organization.id", ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="user.id", ondelete="CASCADE")
    client_id: uuid.UUID
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The organisation's change counter, read before the working set was: when it has not moved (and the
    # window has not), nothing can have changed.
    change_seq: int = Field(sa_type=sa.BigInteger)
    # Activities done before this are out of the working set (the 90-day window, by whole days).
    window_start: datetime = Field(sa_type=UTCDateTime)
    # What the app held when the view was made and the difference its listing found (`api.sync.pull.Entries`);
    # the cursor counts the steps of that difference sent since.
    entries: bytes = Field(sa_type=sa.LargeBinary)
