"""Goals that admins set for the team, and who reached them."""

import uuid
from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from api.core.ids import new_id
from api.core.models import Record
from api.core.types import UTCDateTime, utcnow


class GoalMetric(StrEnum):
    deals_won = "deals_won"
    amount_won = "amount_won"
    activities = "activities"
    calls = "calls"
    new_clients = "new_clients"
    well_developed_clients = "well_developed_clients"


class Goal(Record, table=True):
    """A target each rep it applies to works towards within its dates: "10 well-developed contacts → lunch on us"."""

    __table_args__ = (
        sa.CheckConstraint(
            "metric IN ('deals_won', 'amount_won', 'activities', 'calls', 'new_clients', 'well_developed_clients')",
            name="metric",
        ),
        sa.CheckConstraint("target > 0", name="target_positive"),
        sa.CheckConstraint("ends_on >= starts_on", name="dates"),
        sa.Index("ix_goal_org_id_ends_on", "org_id", "ends_on"),
    )

    name: str = Field(max_length=200)
    metric: str = Field(max_length=30)
    target: int = Field(sa_type=sa.BigInteger)
    starts_on: date
    ends_on: date
    reward: str | None = Field(default=None, max_length=500)
    # Whom it is for: one team (and its sub-teams), or everyone who sells when empty.
    team_id: uuid.UUID | None = Field(default=None, foreign_key="team.id")


class GoalAchievement(SQLModel, table=True):
    """A rep reaching a goal, written once, in the transaction whose change took them over the target."""

    __tablename__ = "goal_achievement"
    __table_args__ = (sa.UniqueConstraint("goal_id", "user_id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    org_id: uuid.UUID = Field(foreign_key="organization.id", index=True, ondelete="CASCADE")
    goal_id: uuid.UUID = Field(foreign_key="goal.id", ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="user.id")
    value: int = Field(sa_type=sa.BigInteger)
    reached_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
