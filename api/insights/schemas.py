"""API shapes of the insights and goals. Money is in the organisation's currency (minor units); deals in other
currencies count in the numbers of deals but not in the amounts."""

import uuid
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from api.core import examples as ex
from api.core.examples import example_of, examples, record
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

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"first_day": "2026-01-01", "last_day": "2026-03-31", "days": 90},
        ),
    )


class Header(BaseModel):
    period: PeriodRead
    currency: str = Field(description="The currency of every amount (the organisation's).")


class PersonRef(BaseModel):
    user_id: uuid.UUID
    name: str
    team_id: uuid.UUID | None

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "user_id": ex.MARTA,
                "name": "Marta López",
                "team_id": ex.TEAM,
            },
        ),
    )


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

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "stage_id": ex.STAGE_PROPOSAL,
                "name": "Propuesta",
                "position": 2,
                "entered": 41,
                "advanced": 29,
                "lost": 9,
                "lost_amount_minor": 2292210,
                "conversion_next": 0.7073,
                "conversion_won": 0.5366,
                "median_days": 8.4,
                "p75_days": 12.9,
            },
        ),
    )


class Funnel(Header):
    pipeline_id: uuid.UUID
    pipeline_name: str
    deals: int = Field(description="Deals created in the period (the cohort followed through the stages).")
    won: int
    won_amount_minor: int
    lost: int
    stages: list[FunnelStage]
    weakest_stage_id: uuid.UUID | None = Field(description="The stage where the most value was lost.")

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "period": example_of(PeriodRead),
                "currency": "EUR",
                "pipeline_id": ex.PIPELINE,
                "pipeline_name": "Ventas",
                "deals": 48,
                "won": 22,
                "won_amount_minor": 6978470,
                "lost": 17,
                "stages": [example_of(FunnelStage)],
                "weakest_stage_id": ex.STAGE_PROPOSAL,
            },
        ),
    )


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

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "user_id": ex.MARTA,
                "name": "Marta López",
                "team_id": ex.TEAM,
                "rank": 1,
                "top_quartile": True,
                "won": 9,
                "won_amount_minor": 4209310,
                "lost": 3,
                "win_rate": 0.75,
                "cycle_days_mean": 21.2,
                "cycle_days_median": 17.2,
                "activities": 164,
                "calls": 58,
                "activities_per_win": 18.2,
                "calls_per_win": 6.4,
            },
        ),
    )


class Leaderboard(Header):
    reps: list[LeaderboardRow]

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"period": example_of(PeriodRead), "currency": "EUR", "reps": [example_of(LeaderboardRow)]},
        ),
    )


# Playbook


class TouchesPerWin(BaseModel):
    call: Days
    meeting: Days
    email: Days
    note: Days

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"call": 5.0, "meeting": 2.0, "email": 4.0, "note": 1.0},
        ),
    )


class StageTime(BaseModel):
    stage_id: uuid.UUID
    name: str
    pipeline_id: uuid.UUID
    median_days: Days

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"stage_id": ex.STAGE_PROPOSAL, "name": "Propuesta", "pipeline_id": ex.PIPELINE, "median_days": 5.1},
        ),
    )


class Habits(BaseModel):
    reps: int
    wins: int
    touches_per_win: TouchesPerWin = Field(description="Median activities of each kind on a won deal before the win.")
    days_to_first_touch: Days = Field(description="Median days from a won deal's creation to its first touch.")
    days_between_touches: Days = Field(description="Median days between touches on won deals.")
    days_in_stage: list[StageTime]

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "reps": 3,
                "wins": 21,
                "touches_per_win": example_of(TouchesPerWin),
                "days_to_first_touch": 1.0,
                "days_between_touches": 2.4,
                "days_in_stage": [example_of(StageTime)],
            },
        ),
    )


class RecentWin(BaseModel):
    deal_id: uuid.UUID
    title: str
    owner: PersonRef
    amount_minor: int
    currency: str
    won_at: datetime
    cycle_days: float
    touches: int

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "deal_id": ex.DEAL,
                "title": "Renovación TPV · Frutas Martínez S.L.",
                "owner": example_of(PersonRef),
                "amount_minor": 1215000,
                "currency": "EUR",
                "won_at": ex.WON,
                "cycle_days": 22.1,
                "touches": 14,
            },
        ),
    )


class Playbook(Header):
    top: Habits = Field(description="The top quartile of the leaderboard.")
    rest: Habits
    recent_wins: list[RecentWin] = Field(description="The top performers' latest wins: open each one's story.")

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "period": example_of(PeriodRead),
                "currency": "EUR",
                "top": example_of(Habits),
                "rest": {
                    "reps": 9,
                    "wins": 30,
                    "touches_per_win": {"call": 3.0, "meeting": 1.0, "email": 2.0, "note": 1.0},
                    "days_to_first_touch": 3.1,
                    "days_between_touches": 5.2,
                    "days_in_stage": [{**example_of(StageTime), "median_days": 9.8}],
                },
                "recent_wins": [example_of(RecentWin)],
            },
        ),
    )


class WinStory(BaseModel):
    deal_id: uuid.UUID
    title: str
    owner: PersonRef
    amount_minor: int
    currency: str
    created_at: datetime
    won_at: datetime
    items: list[FeedItem] = Field(description="The deal's timeline, oldest first (its first 1,000 entries).")

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "deal_id": ex.DEAL,
                "title": "Renovación TPV · Frutas Martínez S.L.",
                "owner": example_of(PersonRef),
                "amount_minor": 1215000,
                "currency": "EUR",
                "created_at": ex.CREATED,
                "won_at": ex.WON,
                "items": [example_of(FeedItem), example_of(FeedItem, 1)],
            },
        ),
    )


# Retention


class LapsedClient(BaseModel):
    kind: str
    id: uuid.UUID
    name: str
    owner_id: uuid.UUID
    first_won_at: datetime
    amount_minor: int

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "kind": "company",
                "id": "019a2631-00a8-79f2-bc24-bd9609963085",
                "name": "Distribuciones Molina S.L.",
                "owner_id": ex.JAVIER,
                "first_won_at": "2025-04-21T13:43:10Z",
                "amount_minor": 710250,
            },
        ),
    )


class LostReasonRow(BaseModel):
    lost_reason_id: uuid.UUID
    name: str
    deals: int
    amount_minor: int

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"lost_reason_id": ex.LOST_REASON, "name": "Precio demasiado alto", "deals": 5, "amount_minor": 3012170},
        ),
    )


class Retention(Header):
    repeat_days: int
    buyers: int = Field(description="Clients with a won deal up to the end of the period.")
    repeat_buyers: int = Field(description="Of those, clients with two or more won deals.")
    repeat_rate: Ratio
    no_repeat: int = Field(description="Clients whose first purchase's repeat window closed in the period unbought.")
    no_repeat_amount_minor: int = Field(description="What those clients' first purchases were worth.")
    no_repeat_clients: list[LapsedClient] = Field(description="The largest of them, to win back.")
    lost_reasons: list[LostReasonRow]

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "period": example_of(PeriodRead),
                "currency": "EUR",
                "repeat_days": 180,
                "buyers": 37,
                "repeat_buyers": 15,
                "repeat_rate": 0.4054,
                "no_repeat": 5,
                "no_repeat_amount_minor": 1212140,
                "no_repeat_clients": [example_of(LapsedClient)],
                "lost_reasons": [example_of(LostReasonRow)],
            },
        ),
    )


# Discipline


class DisciplineRow(PersonRef):
    due: int = Field(description="Planned activities due in the period (assigned to this person).")
    done_on_time: int
    done_late: int
    overdue: int = Field(description="Due in the period, past due and still not done.")
    late_share: Ratio = Field(description="done_late ÷ (done_on_time + done_late).")
    mean_delay_hours: float | None = Field(description="Mean lateness of the tasks done late.")

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "user_id": ex.JAVIER,
                "name": "Javier Ruiz",
                "team_id": ex.TEAM,
                "due": 38,
                "done_on_time": 25,
                "done_late": 9,
                "overdue": 4,
                "late_share": 0.2647,
                "mean_delay_hours": 30.5,
            },
        ),
    )


class Discipline(Header):
    people: list[DisciplineRow]

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"period": example_of(PeriodRead), "currency": "EUR", "people": [example_of(DisciplineRow)]},
        ),
    )


# Data quality


class QualityRow(PersonRef):
    clients: int = Field(description="Companies and contacts they own.")
    mean_completeness: float | None = Field(description="Mean card completeness, in %.")
    well_developed: int = Field(description="Cards at least `threshold`% complete, with an activity in the period.")

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "user_id": ex.MARTA,
                "name": "Marta López",
                "team_id": ex.TEAM,
                "clients": 33,
                "mean_completeness": 85.8,
                "well_developed": 26,
            },
        ),
    )


class DataQuality(Header):
    threshold: int
    people: list[QualityRow]

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"period": example_of(PeriodRead), "currency": "EUR", "threshold": 80, "people": [example_of(QualityRow)]},
        ),
    )


# Adoption


class AdoptionRow(PersonRef):
    active_days: int = Field(description="Days they changed anything in Fieldbook.")
    activities: int = Field(description="Activities they logged.")
    activities_per_day: float | None = Field(description="Per day of the period since their team went live.")
    cards_created: int
    cards_improved: int
    last_seen_at: datetime | None = Field(description="Their last sign-in or change, whenever it was.")

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "user_id": ex.MARTA,
                "name": "Marta López",
                "team_id": ex.TEAM,
                "active_days": 58,
                "activities": 164,
                "activities_per_day": 1.82,
                "cards_created": 12,
                "cards_improved": 31,
                "last_seen_at": "2026-03-31T17:48:00Z",
            },
        ),
    )


class TeamAdoption(BaseModel):
    team_id: uuid.UUID
    name: str
    go_live_on: date | None
    is_live: bool
    members: int
    active_members: int = Field(description="Members active on at least one day of the period.")
    activities_per_member_day: float | None

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "team_id": ex.TEAM,
                "name": "Ventas Valencia",
                "go_live_on": "2026-03-02",
                "is_live": True,
                "members": 4,
                "active_members": 4,
                "activities_per_member_day": 1.35,
            },
        ),
    )


class Adoption(Header):
    teams: list[TeamAdoption]
    people: list[AdoptionRow]

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "period": example_of(PeriodRead),
                "currency": "EUR",
                "teams": [example_of(TeamAdoption)],
                "people": [example_of(AdoptionRow)],
            },
        ),
    )


# Diagnosis


class Trend(BaseModel):
    value: float
    previous: float
    change: float = Field(description="value minus previous.")

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"value": 3.0, "previous": 8.0, "change": -5.0},
        ),
    )


class WeakestStage(BaseModel):
    stage_id: uuid.UUID
    name: str
    lost: Trend
    lost_amount_minor: Trend

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "stage_id": ex.STAGE_PROPOSAL,
                "name": "Propuesta",
                "lost": example_of(Trend),
                "lost_amount_minor": {"value": 2292210.0, "previous": 2554745.0, "change": -262535.0},
            },
        ),
    )


class ReasonChange(BaseModel):
    lost_reason_id: uuid.UUID
    name: str
    deals: Trend
    amount_minor: Trend

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "lost_reason_id": ex.LOST_REASON,
                "name": "Precio demasiado alto",
                "deals": {"value": 5.0, "previous": 5.0, "change": 0.0},
                "amount_minor": {"value": 3012170.0, "previous": 2242750.0, "change": 769420.0},
            },
        ),
    )


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

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                "period": example_of(PeriodRead),
                "currency": "EUR",
                "previous_period": {"first_day": "2025-10-03", "last_day": "2025-12-31", "days": 90},
                "pipeline_id": ex.PIPELINE,
                "weakest_stage": example_of(WeakestStage),
                "lost_amount_minor": {"value": 8546175.0, "previous": 11206310.0, "change": -2660135.0},
                "top_lost_reasons": [example_of(ReasonChange)],
                "clients_lost_after_first_purchase": {"value": 5.0, "previous": 1.0, "change": 4.0},
                "clients_lost_amount_minor": {"value": 1212140.0, "previous": 487025.0, "change": 725115.0},
                "overdue_tasks": {"value": 14.0, "previous": 6.0, "change": 8.0},
                "tasks_done_late": {"value": 5.0, "previous": 6.0, "change": -1.0},
            },
        ),
    )


# Goals


class GoalCreate(Input):
    name: Name
    metric: GoalMetric
    target: int = Field(gt=0, le=10**15, description="For `amount_won`, minor units of the organisation's currency.")
    starts_on: Day
    ends_on: Day = Field(description=f"At most {MAX_DAYS} days after starts_on.")
    reward: str | None = Field(default=None, max_length=500, description="What reaching it earns: `lunch on us`.")
    team_id: uuid.UUID | None = Field(default=None, description="Only this team (and below); everyone when empty.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {
                "name": "8 negocios ganados en el trimestre",
                "metric": "deals_won",
                "target": 8,
                "starts_on": "2026-01-01",
                "ends_on": "2026-03-31",
                "reward": "Un día libre",
                "team_id": ex.TEAM,
            },
            {
                "name": "30.000 € ganados en marzo",
                "metric": "amount_won",
                "target": 3000000,
                "starts_on": "2026-03-01",
                "ends_on": "2026-03-31",
                "reward": "Comida de equipo",
            },
        ),
    )


class GoalUpdate(Input):
    name: Name | None = optional()
    target: int | None = optional(gt=0, le=10**15)
    starts_on: Day | None = optional()
    ends_on: Day | None = optional()
    reward: str | None = Field(default=None, max_length=500)
    team_id: uuid.UUID | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=examples(
            {"target": 10, "reward": "Un día libre y comida de equipo"},
        ),
    )


class Progress(PersonRef):
    value: int
    reached_at: datetime | None

    model_config = ConfigDict(
        json_schema_extra=examples(
            {"user_id": ex.MARTA, "name": "Marta López", "team_id": ex.TEAM, "value": 6, "reached_at": None},
        ),
    )


class GoalRead(RecordRead, Output):
    name: str
    metric: GoalMetric
    target: int
    starts_on: date
    ends_on: date
    reward: str | None
    team_id: uuid.UUID | None

    model_config = ConfigDict(
        json_schema_extra=examples(
            record(
                ex.GOAL,
                name="8 negocios ganados en el trimestre",
                metric="deals_won",
                target=8,
                starts_on="2026-01-01",
                ends_on="2026-03-31",
                reward="Un día libre",
                team_id=ex.TEAM,
            ),
        ),
    )


class GoalWithProgress(GoalRead):
    progress: list[Progress] = Field(description="Each person it applies to, within your reach, best first.")

    model_config = ConfigDict(
        json_schema_extra=examples(
            {
                **example_of(GoalRead),
                "progress": [
                    {**example_of(Progress), "value": 8, "reached_at": ex.WON},
                    {"user_id": ex.JAVIER, "name": "Javier Ruiz", "team_id": ex.TEAM, "value": 5, "reached_at": None},
                ],
            },
        ),
    )
