"""Who is in the benchmark data and how much of everything each organisation gets (`fieldbook bench-data`).

bench/common.py re-exports the names: the benchmarks sign in with them.
"""

from dataclasses import dataclass, replace
from typing import Literal

Scale = Literal["small", "large"]
SCALES: tuple[Scale, ...] = ("small", "large")

# Every user of every organisation has this password.
PASSWORD = "bench-password-0123"

MAIN_ORG = "Bench Main"
MAIN_DOMAIN = "main.bench.example"
# Team names in order; an organisation with n teams takes the first n.
TEAMS = ("north", "south", "central", "east", "west", "coast", "islands", "mountains", "capital", "export")
ADMIN_EMAIL = f"admin@{MAIN_DOMAIN}"
MARKETING_EMAIL = f"marketing@{MAIN_DOMAIN}"
# The North team's head, and the rep who owns the biggest companies (so every role sees the big cards).
MANAGER_EMAIL = f"{TEAMS[0]}.manager@{MAIN_DOMAIN}"
REP_EMAIL = f"{TEAMS[0]}.rep1@{MAIN_DOMAIN}"
# A rep hired today, in the North team: owns nothing and is shared nothing, so sees almost nothing.
NEW_REP_EMAIL = f"{TEAMS[0]}.new@{MAIN_DOMAIN}"
# The small data set's second organisation: there only so that every `org_id` filter leaves rows out.
OTHER_ORG = "Bench Other"
OTHER_DOMAIN = "other.bench.example"
# The large data set's organisations for the scale curve: (name, domain, activities).
SCALE_ORGS = (
    ("Bench Scale 10k", "scale10k.bench.example", 10_000),
    ("Bench Scale 100k", "scale100k.bench.example", 100_000),
    ("Bench Scale 1M", "scale1m.bench.example", 1_000_000),
)
# Settings the organisations are created with (the insights count days in this time zone).
ORG_SETTINGS = {"locale": "en", "currency": "EUR", "phone_region": "ES", "time_zone": "Europe/Madrid"}
MAX_TEAM = 20


def email(domain: str, team: str, role: str, number: int | None = None) -> str:
    """`north.manager@…`, `north.rep3@…` (reps are numbered from 1 within their team)."""
    return f"{team}.{role}{number if number is not None else ''}@{domain}"


@dataclass(frozen=True)
class Plan:
    """What one organisation gets."""

    name: str
    domain: str
    teams: tuple[str, ...]
    reps_per_team: int
    companies: int
    contacts: int
    deals: int
    activities: int
    shares: int
    # Companies owned by the first team's first rep, with this many activities each on top of `activities` (the
    # cards of long-standing clients).
    big_companies: tuple[int, ...] = ()
    # A marketing user, and a rep hired today in the first team (`north.new`).
    marketing: bool = False
    newcomer: bool = False


# The large data set's main organisation: 200 reps in ten teams of twenty.
LARGE_MAIN = Plan(
    name=MAIN_ORG,
    domain=MAIN_DOMAIN,
    teams=TEAMS,
    reps_per_team=MAX_TEAM,
    companies=100_000,
    contacts=200_000,
    deals=100_000,
    activities=2_000_000,
    shares=4_000,
    big_companies=(1_200, 1_500, 2_000, 3_000, 5_000),
    marketing=True,
    newcomer=True,
)
# The small one's: 50 reps in five teams, a tenth of the records and of the activities (the big cards as large).
SMALL_MAIN = replace(
    LARGE_MAIN,
    teams=TEAMS[:5],
    reps_per_team=10,
    companies=10_000,
    contacts=20_000,
    deals=10_000,
    activities=200_000,
    shares=400,
)
SMALL_OTHER = Plan(
    OTHER_ORG, OTHER_DOMAIN, TEAMS[:1], 5, companies=500, contacts=1_000, deals=500, activities=10_000, shares=20
)


def plans(scale: Scale) -> tuple[Plan, ...]:
    """The organisations of a data set, the main one first."""
    if scale == "small":
        return (SMALL_MAIN, SMALL_OTHER)
    return (LARGE_MAIN, *(_scaled(LARGE_MAIN, name, domain, activities) for name, domain, activities in SCALE_ORGS))


def _scaled(main: Plan, name: str, domain: str, activities: int) -> Plan:
    """An organisation like the main one, everything in proportion to its activities (reps too, but 5 at least)."""
    share = activities / main.activities
    reps = max(5, round(len(main.teams) * main.reps_per_team * share))
    teams = -(-reps // MAX_TEAM)
    return Plan(
        name=name,
        domain=domain,
        teams=TEAMS[:teams],
        reps_per_team=reps // teams,
        companies=round(main.companies * share),
        contacts=round(main.contacts * share),
        deals=round(main.deals * share),
        activities=activities,
        shares=round(main.shares * share),
    )
