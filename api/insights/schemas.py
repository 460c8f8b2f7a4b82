"""API shapes of the insights and goals. Money is in the organisation's currency (minor units); deals in other
currencies count in the numbers of deals but not in the amounts."""

import uuid
from datetime import date, datetime

from pydantic import BaseModel, Field

from api.core.schemas import Input, Output, RecordRead, optional
from api.core.types import Day, Name
from api.feed.schemas import FeedItem
from api.insights.models import GoalMetric
from api.insights.scope import MAX_DAYS

Ratio = float | None
Days = float | None


class PeriodRead(BaseModel):
    first_day: date
    last_day: date = Field(description="Included.")
    days: int


class Header(BaseModel):
    period: PeriodRead
    currency: str = Field(description="The currency of every amount (the organisation's).")


class PersonRef(BaseModel):
    user_id: uuid.UUID
    name: str
    team_id: uuid.UUID | None


# Funnel


class FunnelStage(BaseModel):
    stage_id: uuid.UUID
    name: str
    position: int
    entered: int = Field(description="Deals that reached this stage (or went further, or were won).")
    advanced: int = Field(description="Deals that went on to the next stage (for the last one: were won).")
    lost: int = Field(description="Deals lost while in this stage.")
    lost_amount_minor: int
    conversion_next: Ratio = Field(description="advanced ÷ entered.")
    conversion_won: Ratio = Field(description="Won ÷ entered.")
    median_days: Days = Field(description="Median time in the stage of the deals that left it.")
    p75_days: Days


class Funnel(Header):
    pipeline_id: uuid.UUID
    pipeline_name: str
    deals: int = Field(description="Deals created in the period (the cohort followed through the stages).")
    won: int
    won_amount_minor: int
    lost: int
    stages: list[FunnelStage]
    weakest_stage_id: uuid.UUID | None = Field(description="The stage where the most value was lost.")


# Leaderboard


class LeaderboardRow(PersonRef):
    rank: int
    top_quartile: bool
    won: int
    won_amount_minor: int
    lost: int
    win_rate: Ratio = Field(description="won ÷ (won + lost), deals closed in the period.")
    cycle_days_mean: Days = Field(description="Days from creation to win.")
    cycle_days_median: Days
    activities: int = Field(description="Activities done in the period.")
    calls: int
    activities_per_win: Ratio
    calls_per_win: Ratio


class Leaderboard(Header):
    reps: list[LeaderboardRow]


# Playbook


class TouchesPerWin(BaseModel):
    call: Days
    meeting: Days
    email: Days
    note: Days


class StageTime(BaseModel):
    stage_id: uuid.UUID
    name: str
    pipeline_id: uuid.UUID
    median_days: Days


class Habits(BaseModel):
    reps: int
    wins: int
    touches_per_win: TouchesPerWin = Field(description="Median activities of each kind on a won deal before the win.")
    days_to_first_touch: Days = Field(description="Median days from a won deal's creation to its first touch.")
    days_between_touches: Days = Field(description="Median days between touches on won deals.")
    days_in_stage: list[StageTime]


class RecentWin(BaseModel):
    deal_id: uuid.UUID
    title: str
    owner: PersonRef
    amount_minor: int
    currency: str
    won_at: datetime
    cycle_days: float
    touches: int


class Playbook(Header):
    top: Habits = Field(description="The top quartile of the leaderboard.")
    rest: Habits
    recent_wins: list[RecentWin] = Field(description="The top performers' latest wins: open each one's story.")


class WinStory(BaseModel):
    deal_id: uuid.UUID
    title: str
    owner: PersonRef
    amount_minor: int
    currency: str
    created_at: datetime
    won_at: datetime
    items: list[FeedItem] = Field(description="The deal's timeline, oldest first (its first 1,000 entries).")


# Retention


class LapsedClient(BaseModel):
    kind: str
    id: uuid.UUID
    name: str
    owner_id: uuid.UUID
    first_won_at: datetime
    amount_minor: int


class LostReasonRow(BaseModel):
    lost_reason_id: uuid.UUID
    name: str
    deals: int
    amount_minor: int


class Retention(Header):
    repeat_days: int
    buyers: int = Field(description="Clients with a won deal up to the end of the period.")
    repeat_buyers: int = Field(description="Of those, clients with two or more won deals.")
    repeat_rate: Ratio
    no_repeat: int = Field(description="Clients whose first purchase's repeat window closed in the period unbought.")
    no_repeat_amount_minor: int = Field(description="What those clients' first purchases were worth.")
    no_repeat_clients: list[LapsedClient] = Field(description="The largest of them, to win back.")
    lost_reasons: list[LostReasonRow]


# Discipline


class DisciplineRow(PersonRef):
    due: int = Field(description="Planned activities due in the period (assigned to this person).")
    done_on_time: int
    done_late: int
    overdue: int = Field(description="Due in the period, past due and still not done.")
    late_share: Ratio = Field(description="done_late ÷ (done_on_time + done_late).")
    mean_delay_hours: float | None = Field(description="Mean lateness of the tasks done late.")


class Discipline(Header):
    people: list[DisciplineRow]


# Data quality


class QualityRow(PersonRef):
    clients: int = Field(description="Companies and contacts they own.")
    mean_completeness: float | None = Field(description="Mean card completeness, in %.")
    well_developed: int = Field(description="Cards at least `threshold`% complete, with an activity in the period.")


class DataQuality(Header):
    threshold: int
    people: list[QualityRow]


# Adoption


class AdoptionRow(PersonRef):
    active_days: int = Field(description="Days they changed anything in Fieldbook.")
    activities: int = Field(description="Activities they logged.")
    activities_per_day: float | None = Field(description="Per day of the period since their team went live.")
    cards_created: int
    cards_improved: int
    last_seen_at: datetime | None = Field(description="Their last sign-in or change, whenever it was.")


class TeamAdoption(BaseModel):
    team_id: uuid.UUID
    name: str
    go_live_on: date | None
    is_live: bool
    members: int
    active_members: int = Field(description="Members active on at least one day of the period.")
    activities_per_member_day: float | None


class Adoption(Header):
    teams: list[TeamAdoption]
    people: list[AdoptionRow]


# Diagnosis


class Trend(BaseModel):
    value: float
    previous: float
    change: float = Field(description="value minus previous.")


class WeakestStage(BaseModel):
    stage_id: uuid.UUID
    name: str
    lost: Trend
    lost_amount_minor: Trend


class ReasonChange(BaseModel):
    lost_reason_id: uuid.UUID
    name: str
    deals: Trend
    amount_minor: Trend


class Diagnosis(Header):
    previous_period: PeriodRead
    pipeline_id: uuid.UUID
    weakest_stage: WeakestStage | None
    lost_amount_minor: Trend
    top_lost_reasons: list[ReasonChange]
    clients_lost_after_first_purchase: Trend
    clients_lost_amount_minor: Trend
    overdue_tasks: Trend
    tasks_done_late: Trend


# Goals


class GoalCreate(Input):
    name: Name
    metric: GoalMetric
    target: int = Field(gt=0, le=10**15, description="For `amount_won`, minor units of the organisation's currency.")
    starts_on: Day
    ends_on: Day = Field(description=f"At most {MAX_DAYS} days after starts_on.")
    reward: str | None = Field(default=None, max_length=500, description="What reaching it earns: `lunch on us`.")
    team_id: uuid.UUID | None = Field(default=None, description="Only this team (and below); everyone when empty.")


class GoalUpdate(Input):
    name: Name | None = optional()
    target: int | None = optional(gt=0, le=10**15)
    starts_on: Day | None = optional()
    ends_on: Day | None = optional()
    reward: str | None = Field(default=None, max_length=500)
    team_id: uuid.UUID | None = None


class Progress(PersonRef):
    value: int
    reached_at: datetime | None


class GoalRead(RecordRead, Output):
    name: str
    metric: GoalMetric
    target: int
    starts_on: date
    ends_on: date
    reward: str | None
    team_id: uuid.UUID | None


class GoalWithProgress(GoalRead):
    progress: list[Progress] = Field(description="Each person it applies to, within your reach, best first.")
