"""A small world whose insights are worked out by hand (docs/insights.md): `build(session)` makes it, the tables
below say what each insight must answer over PERIOD, and why.

Records are made through the services (so stage events, client links and completeness are the real ones), then
their times are set with UPDATEs: deal.created_at / won_at / lost_at / stage_entered_at, deal_stage_event.at and
seconds_in_previous, activity.created_at (= done_at, or due_at when not done). Every change the services logged is
moved to BASE (before any period); adoption then reads only the change rows listed in CHANGES.

Times are UTC; the organisation's time zone is America/Bogota (UTC-5 all year), so the period 2025-01-01 … 2025-03-31
is [START, END) = [2025-01-01T05:00Z, 2025-04-01T05:00Z). The previous period (diagnosis) is 2024-10-03 … 2024-12-31,
[2024-10-03T05:00Z, 2025-01-01T05:00Z). Dd = day d of 2025 at 12:00Z unless a time is given.

People and teams
    North (no go-live)        Marta (manager), Ana (rep), Bruno (rep)
      └ North-East            Carla (rep)
    South (go-live 2025-02-01 → counts from 2025-02-01T05:00Z)   Diego (rep)
    Admin Adler (admin; owns nothing). Board rows = active reps and managers: Ana, Bruno, Carla, Diego, Marta.

Deals (default pipeline: Lead 1, Qualified 2, Proposal 3, Negotiation 4; won; lost)  stays in days
    D1  Ana   Alfa    10,000 EUR  created 01-05  Lead 2 → Qualified 3 → Proposal 5 → won 01-15       cycle 10
    D2  Ana   Alfa     5,000      created 01-10  Lead 30 → won 02-09 (skips 3 stages)                cycle 30
    D3  Ana   Bravo    7,000 USD  created 02-01  Lead 20 → won 02-21                                 cycle 20
    D4  Ana   Bravo    4,000      created 01-20  Lead 2 → Qualified 8 → lost 01-30 "Price too high"
    D5  Bruno Charlie  8,000      created START exactly  Lead 4 → Qual 6 → Prop 10 → Neg 5 → won 01-26 05:00   cycle 25
    D6  Bruno Charlie  6,000      created 02-01  Lead 2 → Qualified 4 → Proposal 12 → lost 02-19 "Chose a competitor"
    D7  Bruno Charlie  2,000      created 02-10  Lead 1 → lost 02-11 "Price too high"
    D8  Bruno Dora(contact) 3,000 created 2024-12-20 (before the period)  Lead 20 → won 2025-01-09      cycle 20
    D9  Carla Echo    20,000      created 03-01  Lead 10 → won 03-11                                 cycle 10
    D10 Diego Foxtrot 50,000      created 01-10  Lead 10 → won 01-20: before South's go-live, never counted
    D11 Diego Foxtrot 11,000      created 02-05  Lead 12 → won 02-17                                 cycle 12
    D12 Ana   Bravo    1,000      created END exactly, open in Lead: outside the period
    D13 Marta Hotel    1,000      created 03-05  Lead 5 → lost 03-10 "No budget"
    D14 Carla Echo     5,000      created 03-02  Lead 4 → Proposal (skips Qualified), open
    D15 Ana   Golf     7,000      created 2024-11-01  → won 2024-11-15
    D16 Bruno Hotel    3,000      created 2024-11-10  → won 2024-11-20
    D17 Marta Hotel    2,000      created 2024-12-15  Lead 57 → won 2025-02-10 (Hotel's 2nd win, 82 d on)  cycle 57
    D18 Bruno Charlie  2,500      created 2024-11-05  Lead 2 → Qual 3 → Prop 10 → lost 2024-11-20 "Chose a competitor"
    D19 Ana   India    4,000      created 2024-09-01  → won 2024-09-15

Activities (owner; assignee = owner unless said; created_at = done, or due when not done)
    on deals:  a1 call Ana D1 01-04 (before D1 existed) · a2 call Ana D1 01-08 · a3 meeting Ana D1 01-12 ·
               a4 email Ana D1 01-14 · a5 note Ana D1 01-14 18:00 · a6 call Ana D1 01-16 (after the win) ·
               a7 call Ana D2 01-11 · a8 call Bruno D2 01-21 (on Ana's deal) ·
               a9 email Carla D9 03-03 · a10 meeting Carla D9 03-04 00:00 ·
               a11 task Carla D9 due 03-05, done 03-05 10:00 ·
               a12 note Carla D9 03-06 · a13 email Carla D9 03-07 00:00 ·
               a14 call Bruno D5 01-02 05:00 · a15 meeting Bruno D5 01-10 05:00 · a16 call Bruno D5 01-20 05:00 ·
               a17 email Bruno D8 2024-12-22 · a18 call Diego D11 02-05 18:00
    deadlines: t1 task Ana due 01-10 15:00 done 14:00 (on time) · t2 task Ana due 01-20 15:00 done 15:00 (on time) ·
               t3 task Ana due 02-01 12:00 done 02-02 00:00 (12 h late) ·
               t4 meeting Ana due 02-10 done 02-12 (48 h late) ·
               t5 task Ana due 03-01, open (overdue) · t6 task Ana due END exactly, open (outside) ·
               t7 task owner Ana, assignee Bruno, due START exactly, open (Bruno's, overdue) ·
               a19 task Diego on Foxtrot due 01-15 done 01-16 (before go-live) ·
               t8 task Diego due 02-20 done 02-20 18:00 (6 h late) ·
               t9 task Bruno due 2024-12-01, open · t10 task Bruno due 2024-11-15 done 2024-11-16 (previous period)
    edges:     e1 call Ana at START · e2 call Ana at START - 1 s · e3 email Ana at END · e4 note Ana at END - 1 s

Clients (owner: completeness = filled ÷ expected; company 10 fields incl. "has a contact", contact 6; no custom fields)
    Ana:   Alfa 10/10 = 100 (all nine fields + contact Alba) · Bravo 5/10 = 50 · Golf 0 · India 0 · Alba 4/6 = 66.67
    Bruno: Charlie 8/10 = 80 (no source, no contact) · Dora 5/6 = 83.33 (no company) · Hotel 0
    Carla: Echo 9/10 = 90 (no contact) · Diego: Foxtrot 9/10 = 90 · Marta: none

Expected, admin, period 2025-01-01 … 2025-03-31
    FUNNEL cohort = D1 D2 D3 D4 D5 D6 D7 D9 D11 D13 D14 (D8 before, D12 at END, D10 before go-live: out) → deals 11,
        won 6 (D1 D2 D3 D5 D9 D11), won_amount 10000+5000+8000+20000+11000 = 54000 (D3 is USD), lost 4 (D4 D6 D7 D13).
        furthest open stage: Proposal D1 D6 D14 · Negotiation D5 · Qualified D4 · Lead the rest.
        entered   = won or furthest ≥ stage: Lead 11 · Qualified 6+D4+D6+D14 = 9 · Proposal 6+D6+D14 = 8 · Negotiation 6
        advanced  = next stage's entered (last: won): 9 · 8 · 6 · 6
        conv_next = 9/11 .8182 · 8/9 .8889 · 6/8 .75 · 6/6 1.0    conv_won = 6/11 .5455 · 6/9 .6667 · 6/8 .75 · 1.0
        lost (amount): Lead D7 D13 → 2 (3000) · Qualified D4 → 1 (4000) · Proposal D6 → 1 (6000) · Negotiation 0
        weakest = Proposal (largest amount lost, though Lead lost more deals)
        stays Lead: 1 2 2 2 4 4 5 10 12 20 30 → median (pos 5) 4, p75 (pos 7.5) 10 + .5·2 = 11
              Qualified: 3 4 6 8 → median (pos 1.5) 5, p75 (pos 2.25) 6 + .25·2 = 6.5
              Proposal: 5 10 12 → median 10, p75 (pos 1.5) 11 · Negotiation: 5 → 5, 5
    LEADERBOARD (won/lost in the period; amount in EUR only; activities done in the period, owned)
        rank name  won amount lost rate  cycle mean/median  acts calls per-win
        1    Carla 1   20000  0    1.0   10 / 10            5    0     5.0 / 0.0      (a9-a13)
        2    Ana   3   15000  1    .75   20 / 20            13   5     4.3333/1.6667  (a1-a7 t1-t4 e1 e4; calls: 5)
        3    Bruno 2   11000  2    .5    22.5 / 22.5        4    3     2.0 / 1.5      (a8 a14 a15 a16)
        4    Diego 1   11000  0    1.0   12 / 12            2    1     2.0 / 1.0      (a18 t8; D10, a19 before go-live)
        5    Marta 1    2000  1    .5    57 / 57            0    0     0.0 / 0.0
        Bruno before Diego: same amount, more deals won (Diego's higher win rate comes later). Top quartile:
        ⌈5/4⌉ = 2 → Carla, Ana. Ana's board (her team, North): Ana, Bruno, Marta, top ⌈3/4⌉ = 1 → Ana. Marta's
        board (North and North-East): Carla, Ana, Bruno, Marta, top 1 → Carla.
    PLAYBOOK top = Carla, Ana (wins D9 D1 D2 D3) · rest = Bruno, Diego, Marta (wins D5 D8 D11 D17)
        touches per won deal (done ≤ win, by anyone): call D1 2 D2 2 D3 0 D9 0 → median 1 · meeting 1 0 0 1 → .5 ·
            email 1 0 0 2 → .5 · note 1 0 0 1 → .5 (a11 is a task, a6 after the win)
            rest: call D5 2 D8 0 D11 1 D17 0 → .5 · meeting 1 0 0 0 → 0 · email 0 1 0 0 → 0 · note 0 0 0 0 → 0
        days to first touch: top D1 a1 before creation → 0, D2 1, D9 2 (D3 none) → 1 · rest D5 1, D8 2, D11 .25 → 1
        gaps between touches: top D1 4 4 2, D2 10, D9 .5 3 → .5 2 3 4 4 10 → 3.5 · rest D5 8 10 → 9
        days in stage: top Lead 2 30 20 10 → 15, Qualified 3, Proposal 5 · rest Lead 4 20 12 57 → 16, Qualified 6,
            Proposal 10, Negotiation 5
        recent wins (top, latest first): D9 (touches a9 a10 a12 a13 = 4, cycle 10), D3 (0, 20), D2 (2, 30), D1 (5, 10)
    RETENTION, repeat_days 60: a client counts for its first win's owner, from their go-live (Foxtrot's first, D10,
        is before South's: Foxtrot is out); repeats are read from every win up to END
        buyers Alfa Bravo Charlie Dora Echo Golf Hotel India = 8; repeat Alfa (D1 D2), Hotel (D16 D17) = 2
        → rate 2/8 = .25
        first win in [START - 60 d, END - 60 d) = [2024-11-02T05:00Z, 2025-01-31T05:00Z): Alfa (repeats after 25 d),
        Charlie 01-26, Dora 01-09, Golf 2024-11-15, Hotel 2024-11-20 (second win 82 d later: too late)
        → no_repeat 4: Charlie 8000, Golf 7000, Hotel 3000, Dora 3000 (ties: earlier first win first) = 21000
        repeat_days 90 → window [2024-10-03T05:00Z, 2025-01-01T05:00Z): Golf 7000 only (Hotel's second win is in 90 d)
        lost reasons: Price too high 2 deals 6000 (D4 D7) · Chose a competitor 1, 6000 (D6) · No budget 1, 1000 (D13)
    DISCIPLINE (due in the period, by assignee; overdue = open and due before now)
        Ana due 5 (t1-t5) on time 2 late 2 overdue 1, late share .5, delay (12 + 48) / 2 = 30 h · Bruno due 1 (t7)
        overdue 1 · Carla due 1 (a11) on time 1, share 0.0 · Diego due 1 (t8; a19 before go-live) late 1, 1.0, 6 h ·
        Marta 0. Order (overdue, late share, name): Ana, Bruno, Diego, Carla, Marta
    DATA QUALITY threshold 80 (well developed: ≥ threshold and an activity done on it in the period)
        Ana 5 clients, mean (100 + 50 + 0 + 0 + 66.67) / 5 = 43.3, well 1 (Alfa) · Bruno 3, (80 + 83.33 + 0) / 3 = 54.4,
        well 1 (Charlie, exactly 80; Dora's only activity a17 is from 2024) · Carla 1, 90.0, 1 · Diego 1, 90.0, 1 ·
        Marta 0, null, 0. Threshold 81: Bruno 0, the others unchanged.
    ADOPTION (CHANGES below; active days are Bogota days; activities = created in the period)
        Ana   active 3 (Jan 1, Feb 10, Mar 31: START and 2025-01-02T04:00Z are both Jan 1 in Bogota, 04:59:59Z on
              Apr 1 is Mar 31; UTC would count 4), created 1 (Alfa), improved 1 (Bravo twice), activities 15
              (a1-a7, t1-t5, t7, e1, e4) → 15/90 = .17, last seen END (her change at END counts for "last seen" only)
        Bruno active 1, improved 2 (Dora, Charlie), activities 4 → .04, last seen 2025-03-15T20:00Z
        Carla active 0, activities 5 → .06, last seen BASE · Diego active 1 (the change at go-live; the one before is
        not counted), improved 1, activities 2 (a18, t8) over 59 live days → .03 · Marta active 1, activities 0 → 0.0
        Teams: North 3 members, 3 active, 19 / 270 = .07 · North-East 1, 0, 5 / 90 = .06 · South (go-live 2025-02-01)
        1, 1, 2 / 59 = .03
    DIAGNOSIS, repeat_days 60 (previous period: cohort D8 D15 D16 D17 D18)
        weakest Proposal: lost 1 vs 1 (D18), amount 6000 vs 2500 · all lost 13000 vs 2500 ·
        Price too high 2/6000 vs 0 · Chose a competitor 1/6000 vs 1/2500 · No budget 1/1000 vs 0 ·
        no repeat 4/21000 vs 1/4000 (India: first win 2024-09-15 + 60 d = 2024-11-14) · overdue 2 (t5 t7) vs 1 (t9) ·
        done late 3 (t3 t4 t8) vs 1 (t10)
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from api.activities.models import Activity
from api.auth.models import Organization, Role, Team, User
from api.auth.schemas import OrganizationSettings, OrganizationUpdate, TeamCreate
from api.auth.service import create_team, update_organization
from api.core.changes import Change
from api.core.ids import new_id
from api.deals import deals as deal_service
from api.deals.models import Deal, DealStageEvent, LostReason, Pipeline, Stage
from tests.factories import (
    make_activity,
    make_company,
    make_contact,
    make_deal,
    make_org,
    make_team,
    make_user,
    system,
    viewer_of_user,
)

ZONE = "America/Bogota"
GO_LIVE = date(2025, 2, 1)
PERIOD = {"from": "2025-01-01", "to": "2025-03-31"}


def at(month: int, day: int, hour: int = 12, minute: int = 0, second: int = 0, *, year: int = 2025) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


START = at(1, 1, 5)  # 2025-01-01 00:00 in Bogota
END = at(4, 1, 5)  # 2025-04-01 00:00 in Bogota: the first instant after the period
GO_LIVE_AT = at(2, 1, 5)
SECOND = timedelta(seconds=1)
# Where every change the services logged is moved: before both periods.
BASE = at(6, 1, year=2024)


# Clients

FULL = {
    "domain": "example.com",
    "phone": "+34 912 345 678",
    "industry": "Retail",
    "size": 40,
    "address": "Calle 10 # 5-20",
    "city": "Bogotá",
    "country": "CO",
    "segment": "SMB",
    "source": "referral",
}
COMPANIES: dict[str, tuple[str, dict[str, Any]]] = {
    "Alfa": ("ana", FULL),
    "Bravo": ("ana", {k: FULL[k] for k in ("domain", "phone", "industry", "size", "city")}),
    "Golf": ("ana", {}),
    "India": ("ana", {}),
    "Charlie": ("bruno", {k: v for k, v in FULL.items() if k != "source"}),
    "Hotel": ("bruno", {}),
    "Echo": ("carla", FULL),
    "Foxtrot": ("diego", FULL),
}
PERSON = {"emails": ["buyer@example.com"], "phones": ["+34 612 345 678"], "title": "Buyer"}
# (owner, company or None, fields)
CONTACTS: dict[str, tuple[str, str | None, dict[str, Any]]] = {
    "Alba": ("ana", "Alfa", PERSON),
    "Dora": ("bruno", None, {**PERSON, "segment": "SMB", "source": "web"}),
}


# Deals


@dataclass(frozen=True, slots=True)
class DealSpec:
    owner: str
    client: str
    amount: int
    created: datetime
    # The stages it entered after its first (Lead), in order: an open stage's name, "won" or "lost".
    path: tuple[tuple[str, datetime], ...] = ()
    reason: str | None = None
    currency: str = "EUR"


DEALS: dict[str, DealSpec] = {
    "D1": DealSpec(
        "ana", "Alfa", 10_000, at(1, 5), (("Qualified", at(1, 7)), ("Proposal", at(1, 10)), ("won", at(1, 15)))
    ),
    "D2": DealSpec("ana", "Alfa", 5_000, at(1, 10), (("won", at(2, 9)),)),
    "D3": DealSpec("ana", "Bravo", 7_000, at(2, 1), (("won", at(2, 21)),), currency="USD"),
    "D4": DealSpec("ana", "Bravo", 4_000, at(1, 20), (("Qualified", at(1, 22)), ("lost", at(1, 30))), "Price too high"),
    "D5": DealSpec(
        "bruno",
        "Charlie",
        8_000,
        START,
        (("Qualified", at(1, 5, 5)), ("Proposal", at(1, 11, 5)), ("Negotiation", at(1, 21, 5)), ("won", at(1, 26, 5))),
    ),
    "D6": DealSpec(
        "bruno",
        "Charlie",
        6_000,
        at(2, 1),
        (("Qualified", at(2, 3)), ("Proposal", at(2, 7)), ("lost", at(2, 19))),
        "Chose a competitor",
    ),
    "D7": DealSpec("bruno", "Charlie", 2_000, at(2, 10), (("lost", at(2, 11)),), "Price too high"),
    "D8": DealSpec("bruno", "Dora", 3_000, at(12, 20, year=2024), (("won", at(1, 9)),)),
    "D9": DealSpec("carla", "Echo", 20_000, at(3, 1), (("won", at(3, 11)),)),
    "D10": DealSpec("diego", "Foxtrot", 50_000, at(1, 10), (("won", at(1, 20)),)),
    "D11": DealSpec("diego", "Foxtrot", 11_000, at(2, 5), (("won", at(2, 17)),)),
    "D12": DealSpec("ana", "Bravo", 1_000, END),
    "D13": DealSpec("marta", "Hotel", 1_000, at(3, 5), (("lost", at(3, 10)),), "No budget"),
    "D14": DealSpec("carla", "Echo", 5_000, at(3, 2), (("Proposal", at(3, 6)),)),
    "D15": DealSpec("ana", "Golf", 7_000, at(11, 1, year=2024), (("won", at(11, 15, year=2024)),)),
    "D16": DealSpec("bruno", "Hotel", 3_000, at(11, 10, year=2024), (("won", at(11, 20, year=2024)),)),
    "D17": DealSpec("marta", "Hotel", 2_000, at(12, 15, year=2024), (("won", at(2, 10)),)),
    "D18": DealSpec(
        "bruno",
        "Charlie",
        2_500,
        at(11, 5, year=2024),
        (("Qualified", at(11, 7, year=2024)), ("Proposal", at(11, 10, year=2024)), ("lost", at(11, 20, year=2024))),
        "Chose a competitor",
    ),
    "D19": DealSpec("ana", "India", 4_000, at(9, 1, year=2024), (("won", at(9, 15, year=2024)),)),
}


# Activities


@dataclass(frozen=True, slots=True)
class ActivitySpec:
    owner: str
    kind: str
    done: datetime | None = None
    due: datetime | None = None
    deal: str | None = None
    client: str | None = None
    assignee: str | None = None


ACTIVITIES: dict[str, ActivitySpec] = {
    # Touches on deals (their client is filled in from the deal).
    "a1": ActivitySpec("ana", "call", at(1, 4), deal="D1"),
    "a2": ActivitySpec("ana", "call", at(1, 8), deal="D1"),
    "a3": ActivitySpec("ana", "meeting", at(1, 12), deal="D1"),
    "a4": ActivitySpec("ana", "email", at(1, 14), deal="D1"),
    "a5": ActivitySpec("ana", "note", at(1, 14, 18), deal="D1"),
    "a6": ActivitySpec("ana", "call", at(1, 16), deal="D1"),
    "a7": ActivitySpec("ana", "call", at(1, 11), deal="D2"),
    "a8": ActivitySpec("bruno", "call", at(1, 21), deal="D2"),
    "a9": ActivitySpec("carla", "email", at(3, 3), deal="D9"),
    "a10": ActivitySpec("carla", "meeting", at(3, 4, 0), deal="D9"),
    "a11": ActivitySpec("carla", "task", at(3, 5, 10), due=at(3, 5), deal="D9"),
    "a12": ActivitySpec("carla", "note", at(3, 6), deal="D9"),
    "a13": ActivitySpec("carla", "email", at(3, 7, 0), deal="D9"),
    "a14": ActivitySpec("bruno", "call", at(1, 2, 5), deal="D5"),
    "a15": ActivitySpec("bruno", "meeting", at(1, 10, 5), deal="D5"),
    "a16": ActivitySpec("bruno", "call", at(1, 20, 5), deal="D5"),
    "a17": ActivitySpec("bruno", "email", at(12, 22, year=2024), deal="D8"),
    "a18": ActivitySpec("diego", "call", at(2, 5, 18), deal="D11"),
    # Deadlines.
    "t1": ActivitySpec("ana", "task", at(1, 10, 14), due=at(1, 10, 15)),
    "t2": ActivitySpec("ana", "task", at(1, 20, 15), due=at(1, 20, 15)),
    "t3": ActivitySpec("ana", "task", at(2, 2, 0), due=at(2, 1)),
    "t4": ActivitySpec("ana", "meeting", at(2, 12), due=at(2, 10)),
    "t5": ActivitySpec("ana", "task", due=at(3, 1)),
    "t6": ActivitySpec("ana", "task", due=END),
    "t7": ActivitySpec("ana", "task", due=START, assignee="bruno"),
    "a19": ActivitySpec("diego", "task", at(1, 16), due=at(1, 15), client="Foxtrot"),
    "t8": ActivitySpec("diego", "task", at(2, 20, 18), due=at(2, 20)),
    "t9": ActivitySpec("bruno", "task", due=at(12, 1, year=2024)),
    "t10": ActivitySpec("bruno", "task", at(11, 16, year=2024), due=at(11, 15, year=2024)),
    # The period's edges.
    "e1": ActivitySpec("ana", "call", START),
    "e2": ActivitySpec("ana", "call", START - SECOND),
    "e3": ActivitySpec("ana", "email", END),
    "e4": ActivitySpec("ana", "note", END - SECOND),
}


# Adoption: (actor, at, entity, record key, op). Bogota days in the comments.
CHANGES: list[tuple[str, datetime, str, str, str]] = [
    ("ana", START, "company", "Alfa", "create"),  # Jan 1 00:00: counted
    ("ana", START - SECOND, "company", "Golf", "create"),  # Dec 31: before the period
    ("ana", at(1, 2, 4), "company", "Bravo", "update"),  # Jan 1 23:00 (Jan 2 in UTC)
    ("ana", at(2, 10, 15), "company", "Bravo", "update"),  # Feb 10
    ("ana", END - SECOND, "deal", "D1", "update"),  # Mar 31 23:59:59 (Apr 1 in UTC)
    ("ana", END, "company", "India", "update"),  # Apr 1: after the period (but her last change)
    ("bruno", at(3, 15), "contact", "Dora", "update"),  # Mar 15
    ("bruno", at(3, 15, 20), "company", "Charlie", "update"),  # Mar 15
    ("diego", at(1, 20), "company", "Foxtrot", "create"),  # before South's go-live
    ("diego", GO_LIVE_AT, "company", "Foxtrot", "update"),  # the go-live instant: counted
    ("marta", at(3, 1), "deal", "D13", "create"),  # Mar 1
]


@dataclass
class World:
    org: Organization
    users: dict[str, User]
    teams: dict[str, Team]
    clients: dict[str, uuid.UUID]  # companies and contacts by name
    deals: dict[str, uuid.UUID]
    activities: dict[str, uuid.UUID]
    stages: dict[str, uuid.UUID]  # the default pipeline's, by name; "won" and "lost" for its end stages
    reasons: dict[str, uuid.UUID]
    pipeline_id: uuid.UUID | None = None  # the default pipeline

    def id(self, key: str) -> str:
        """A user's, team's, client's, deal's or stage's id as the API shows it."""
        for found in (self.users, self.teams):
            if key in found:
                return str(found[key].id)
        for ids in (self.clients, self.deals, self.activities, self.stages, self.reasons):
            if key in ids:
                return str(ids[key])
        raise KeyError(key)


_deal = sa.inspect(Deal).local_table
_event = sa.inspect(DealStageEvent).local_table
_activity = sa.inspect(Activity).local_table
_change = sa.inspect(Change).local_table


async def build(session: AsyncSession) -> World:
    org = await make_org(session, "Insights Co")
    await update_organization(
        session=session,
        principal=system(org),
        data=OrganizationUpdate(settings=OrganizationSettings(time_zone=ZONE)),
        expected_version=None,
    )
    north = await make_team(session, org, name="North")
    north_east = await make_team(session, org, name="North-East", parent=north)
    south = await create_team(session=session, principal=system(org), data=TeamCreate(name="South", go_live_on=GO_LIVE))
    await session.commit()
    teams = {"north": north, "north_east": north_east, "south": south}
    users = {
        "admin": await make_user(session, org, role=Role.admin, name="Admin Adler"),
        "marta": await make_user(session, org, role=Role.manager, name="Marta Mora", team=north),
        "ana": await make_user(session, org, name="Ana Arce", team=north),
        "bruno": await make_user(session, org, name="Bruno Bello", team=north),
        "carla": await make_user(session, org, name="Carla Cruz", team=north_east),
        "diego": await make_user(session, org, name="Diego Díaz", team=south),
    }
    world = World(org, users, teams, {}, {}, {}, {}, {})
    pipeline = await session.scalar(select(Pipeline).where(col(Pipeline.org_id) == org.id, col(Pipeline.is_default)))
    assert pipeline is not None
    world.pipeline_id = pipeline.id
    for s in await session.scalars(select(Stage).where(col(Stage.pipeline_id) == pipeline.id)):
        world.stages[s.kind if s.kind != "open" else s.name] = s.id
    for r in await session.scalars(select(LostReason).where(col(LostReason.org_id) == org.id)):
        world.reasons[r.name] = r.id

    for name, (owner, fields) in COMPANIES.items():
        world.clients[name] = (await make_company(session, users[owner], name=name, **fields)).id
    for name, (owner, company, fields) in CONTACTS.items():
        company_id = world.clients[company] if company else None
        contact = await make_contact(session, users[owner], name=name, company_id=company_id, **fields)
        world.clients[name] = contact.id

    for key, spec in DEALS.items():
        world.deals[key] = await _make_deal(session, world, key, spec)
    for key, a in ACTIVITIES.items():
        world.activities[key] = await _make_activity(session, world, a)

    # Adoption reads the change log: the services' entries go to BASE, then the listed ones are written.
    await session.execute(sa.update(_change).where(_change.c.org_id == org.id).values(at=BASE))
    seq = await session.scalar(sa.select(sa.func.max(_change.c.seq)).where(_change.c.org_id == org.id)) or 0
    for actor, when, entity, record, op in CHANGES:
        seq += 1
        target = world.deals[record] if entity == "deal" else world.clients[record]
        await session.execute(
            sa.insert(_change).values(
                id=new_id(),
                org_id=org.id,
                seq=seq,
                entity=entity,
                entity_id=target,
                op=op,
                version=1,
                actor_kind="user",
                actor_id=users[actor].id,
                at=when,
                fields={},
            )
        )
    organization = sa.inspect(Organization).local_table
    await session.execute(sa.update(organization).where(organization.c.id == org.id).values(change_seq=seq))
    await session.commit()
    return world


async def _make_deal(session: AsyncSession, world: World, key: str, spec: DealSpec) -> uuid.UUID:
    admin = world.users["admin"]
    client = world.clients[spec.client]
    link = {"contact_id": client} if spec.client in CONTACTS else {"company_id": client}
    deal = await make_deal(
        session,
        admin,
        title=key,
        owner_id=world.users[spec.owner].id,
        amount_minor=spec.amount,
        currency=spec.currency,
        **link,
    )
    viewer = await viewer_of_user(session, admin)
    for stage, _ in spec.path:
        if stage == "won":
            await deal_service.win_deal(session=session, viewer=viewer, deal_id=deal.id, expected_version=None)
        elif stage == "lost":
            assert spec.reason is not None
            await deal_service.lose_deal(
                session=session,
                viewer=viewer,
                deal_id=deal.id,
                lost_reason_id=world.reasons[spec.reason],
                note=None,
                expected_version=None,
            )
        else:
            await deal_service.move_deal(
                session=session, viewer=viewer, deal_id=deal.id, stage_id=world.stages[stage], expected_version=None
            )
    # Each stage is entered once here, so (deal, stage) names its event.
    timeline = [("Lead", spec.created), *spec.path]
    for index, (stage, when) in enumerate(timeline):
        seconds = int((when - timeline[index - 1][1]).total_seconds()) if index else None
        await session.execute(
            sa.update(_event)
            .where(_event.c.deal_id == deal.id, _event.c.to_stage_id == world.stages[stage])
            .values(at=when, seconds_in_previous=seconds)
        )
    last_stage, last_at = timeline[-1]
    await session.execute(
        sa.update(_deal)
        .where(_deal.c.id == deal.id)
        .values(
            created_at=spec.created,
            stage_entered_at=last_at,
            won_at=last_at if last_stage == "won" else None,
            lost_at=last_at if last_stage == "lost" else None,
        )
    )
    await session.commit()
    return deal.id


async def _make_activity(session: AsyncSession, world: World, spec: ActivitySpec) -> uuid.UUID:
    fields: dict[str, Any] = {
        "owner_id": world.users[spec.owner].id,
        "assignee_id": world.users[spec.assignee or spec.owner].id,
        "done_at": spec.done,
        "due_at": spec.due,
    }
    if spec.deal:
        fields["deal_id"] = world.deals[spec.deal]
    if spec.client:
        fields["company_id"] = world.clients[spec.client]
    activity = await make_activity(session, world.users["admin"], kind=spec.kind, **fields)
    logged = spec.done or spec.due
    await session.execute(sa.update(_activity).where(_activity.c.id == activity.id).values(created_at=logged))
    await session.commit()
    return activity.id
