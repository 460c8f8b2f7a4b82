"""The Learn and Team screens in a phone-sized Chromium: a rep reads the leaderboard (chart and table), the goals,
how the top quartile wins (time in each stage included) and a teammate's win that is not on their device, online and
then offline; a manager reads the funnel, the diagnosis (and prints it), the clients who did not come back and why
deals were lost, deadlines, client data and adoption; every new screen through axe-core at 360 px; and all of it in
Spanish."""

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlmodel import col, select, update

from api.auth.models import Role, User
from api.core.db import Database, make_engine
from api.deals import deals as deal_service
from api.deals.models import Deal, DealStageEvent, LostReason, Stage
from api.insights import goals as goal_service
from api.insights.models import GoalMetric
from api.insights.schemas import GoalCreate
from tests.factories import (
    PASSWORD,
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
from tests.pwa.conftest import (
    DIST,
    SCREENSHOTS,
    Field,
    controlled,
    scrolls_sideways,
    seeded_server,
    serious_violations,
    sign_in,
    synced,
)

DOMAIN = "talleres-norte.es"


@dataclass
class Sales(Field):
    """Marta, Luis and Pablo (reps) under Elena (their manager). Reps do not see each other's work. Marta won
    "Workshop tools" (3 days in Lead, then Proposal) after three touches from Acme Corp, a client card complete and
    worked on, and lost "Spare parts" at Proposal for "Price too high"; Luis won "Tyres" and has a task overdue;
    Pablo has not won yet. Before the period Luis sold to Beta Motors 100 days ago (Tyres is its second purchase)
    and to Gamma Repuestos 200 days ago (€900.00), and Elena to Delta Talleres 190 days ago (€400.00): neither
    bought again, and their 180 days ended in the period. Two goals run: an amount and a number of calls, which
    Marta has reached."""

    win_id: str = ""
    lapsed_id: str = ""  # Delta Talleres, Elena's own client


async def _seed(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        async with Database(engine).writer() as session:
            org = await make_org(session, "Talleres Norte")
            team = await make_team(session, org, name="Ventas Norte")
            people: dict[str, User] = {
                key: await make_user(session, org, role=role, team=team, name=name, email=f"{key}@{DOMAIN}")
                for key, name, role in (
                    ("elena", "Elena Ruiz", Role.manager),
                    ("marta", "Marta Gil", Role.rep),
                    ("luis", "Luis Soto", Role.rep),
                    ("pablo", "Pablo Vidal", Role.rep),
                )
            }
            marta, luis = people["marta"], people["luis"]
            stages = {
                s.name: s.id
                for s in await session.scalars(select(Stage).where(col(Stage.org_id) == org.id))
                if s.kind == "open"
            }
            price = await session.scalar(
                select(LostReason.id).where(col(LostReason.org_id) == org.id, col(LostReason.name) == "Price too high")
            )
            clock = datetime.now(UTC)

            # Every field a company card expects, and a contact: 100% complete.
            company = await make_company(
                session,
                marta,
                name="Acme Corp",
                domain="acme-corp.es",
                industry="Machinery",
                size=40,
                phone="+34 912 345 678",
                address="Calle Mayor 1",
                city="Madrid",
                country="ES",
                segment="SMB",
                source="referral",
            )
            contact = await make_contact(session, marta, name="Ana Núñez", company_id=company.id)
            won = await make_deal(session, marta, title="Workshop tools", company_id=company.id, amount_minor=480_000)
            for days, kind in ((20, "call"), (12, "meeting"), (5, "call")):
                extra = {"outcome": "connected"} if kind == "call" else {}
                await make_activity(
                    session,
                    marta,
                    kind=kind,
                    deal_id=won.id,
                    contact_id=contact.id,
                    company_id=company.id,
                    done_at=clock - timedelta(days=days),
                    **extra,
                )
            lost = await make_deal(session, marta, title="Spare parts", company_id=company.id, amount_minor=250_000)
            await make_deal(session, marta, title="Fleet renewal", company_id=company.id, amount_minor=1_200_000)

            beta = await make_company(session, luis, name="Beta Motors", city="Bilbao")
            tyres = await make_deal(session, luis, title="Tyres", company_id=beta.id, amount_minor=150_000)
            await make_activity(
                session, luis, kind="call", deal_id=tyres.id, company_id=beta.id, done_at=clock - timedelta(days=2)
            )
            await make_activity(
                session,
                luis,
                kind="task",
                subject="Send the quote",
                company_id=beta.id,
                due_at=clock - timedelta(days=1),
            )

            as_marta = await viewer_of_user(session, marta)
            await deal_service.move_deal(
                session=session, viewer=as_marta, deal_id=won.id, stage_id=stages["Proposal"], expected_version=None
            )
            await deal_service.win_deal(session=session, viewer=as_marta, deal_id=won.id, expected_version=None)
            await deal_service.move_deal(
                session=session, viewer=as_marta, deal_id=lost.id, stage_id=stages["Proposal"], expected_version=None
            )
            assert price is not None
            await deal_service.lose_deal(
                session=session,
                viewer=as_marta,
                deal_id=lost.id,
                lost_reason_id=price,
                note=None,
                expected_version=None,
            )
            as_luis = await viewer_of_user(session, luis)
            await deal_service.win_deal(session=session, viewer=as_luis, deal_id=tyres.id, expected_version=None)
            # Workshop tools stayed 3 days in Lead.
            await session.execute(
                update(DealStageEvent)
                .where(col(DealStageEvent.deal_id) == won.id, col(DealStageEvent.from_stage_id) == stages["Lead"])
                .values(seconds_in_previous=3 * 86_400)
            )
            # Sales before the period.
            elena = people["elena"]
            gamma = await make_company(session, luis, name="Gamma Repuestos", city="Vigo")
            delta = await make_company(session, elena, name="Delta Talleres", city="León")
            for seller, title, client, amount, days_ago in (
                (luis, "Brake pads", beta, 60_000, 100),
                (luis, "Oil filters", gamma, 90_000, 200),
                (elena, "Lifts", delta, 40_000, 190),
            ):
                old = await make_deal(session, seller, title=title, company_id=client.id, amount_minor=amount)
                await deal_service.win_deal(
                    session=session, viewer=await viewer_of_user(session, seller), deal_id=old.id, expected_version=None
                )
                then = clock - timedelta(days=days_ago)
                await session.execute(
                    update(Deal).where(col(Deal.id) == old.id).values(created_at=then - timedelta(days=5), won_at=then)
                )
            await session.commit()

            today = clock.date()
            for name, metric, target, reward in (
                ("Q4 sales", GoalMetric.amount_won, 1_000_000, "Team lunch"),
                ("Call the base", GoalMetric.calls, 2, "Coffee on us"),
            ):
                await goal_service.create_goal(
                    session=session,
                    principal=system(org),
                    data=GoalCreate(
                        name=name,
                        metric=metric,
                        target=target,
                        reward=reward,
                        starts_on=today - timedelta(days=30),
                        ends_on=today + timedelta(days=30),
                    ),
                )
            await session.commit()
            return {
                "emails": {key: user.email for key, user in people.items()},
                "company_id": str(company.id),
                "contact_id": str(contact.id),
                "deal_id": str(won.id),
                "win_id": str(won.id),
                "lapsed_id": str(delta.id),
            }
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def sales(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Sales]:
    with seeded_server(request.param, tmp_path, _seed, DIST) as (served, seeded):
        yield Sales(url=served, **seeded)


def _settled(page: Page) -> None:
    """The screen's reads are done (its status line no longer says it is loading) and its charts are drawn."""
    expect(page.locator("main [role=status]").first).not_to_contain_text(re.compile("Loading|Cargando"))
    page.wait_for_function("[...document.querySelectorAll('main canvas')].every(c => c.width > 0)", timeout=10_000)


def test_a_rep_learns_from_the_leaderboard_and_a_teammate_s_win_online_and_offline(sales: Sales, page: Page) -> None:
    sign_in(page, sales, "luis")
    controlled(page)
    synced(page)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Team")).to_have_count(0)  # managers only
    nav.get_by_role("link", name="Learn").click()
    expect(page.get_by_role("heading", name="Learn", level=1)).to_be_visible()
    _settled(page)

    # The leaderboard: a chart (an image with a label) and the same numbers in a table, Luis's own row marked.
    chart = page.get_by_test_id("leaderboard-chart").get_by_role("img")
    expect(chart).to_have_attribute("aria-label", re.compile("amount each person won"))
    table = page.get_by_test_id("leaderboard-table")
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(4)  # the three reps and their manager
    expect(rows.nth(0)).to_contain_text("Marta Gil")
    expect(rows.nth(0)).to_contain_text("€4,800.00")
    expect(rows.nth(0)).to_contain_text("Top quartile")
    mine = table.locator("tr[aria-current=true]")
    expect(mine).to_contain_text("Luis Soto")
    expect(mine).to_contain_text("(you)")
    expect(mine).to_contain_text("€1,500.00")

    # Goals: Luis's own progress only.
    goals = page.get_by_test_id("goal")
    expect(goals).to_have_count(2)
    amount = goals.filter(has_text="Q4 sales")
    expect(amount).to_contain_text("Reward: Team lunch")
    expect(amount).to_contain_text("€1,500.00 of €10,000.00")
    expect(amount.get_by_role("progressbar")).to_have_count(1)
    expect(amount).not_to_contain_text("Marta Gil")

    # How the top quartile wins, and Marta's win, which is not on Luis's device.
    expect(page.get_by_test_id("playbook-chart").get_by_role("img")).to_be_visible()
    expect(page.get_by_test_id("playbook-table")).to_contain_text("Calls")
    # Time in each stage: Marta (top quartile) spent 3 days in Lead, Luis (everyone else) moved his at once; only
    # Marta's deal went through Proposal.
    expect(page.get_by_test_id("stage-days-chart").get_by_role("img")).to_have_attribute(
        "aria-label", re.compile("days a won deal spent in each stage")
    )
    stage_days = page.get_by_test_id("stage-days-table")
    expect(stage_days.locator("tbody tr")).to_have_count(2)
    expect(stage_days.locator("tbody tr", has_text="Lead").locator("td")).to_have_text(["3", "0"])
    # A dash (\u2013): no deal of everyone else was ever in Proposal.
    expect(stage_days.locator("tbody tr", has_text="Proposal").locator("td")).to_have_text(["0", "\u2013"])
    page.get_by_test_id("recent-wins").get_by_role("link", name=re.compile("Workshop tools")).click()
    expect(page.get_by_role("heading", name="How this deal was won")).to_be_visible()
    expect(page.get_by_text("Rep: Marta Gil")).to_be_visible()
    timeline = page.get_by_test_id("story-timeline")
    expect(timeline).to_contain_text("Marta Gil won a deal")
    expect(timeline.locator("li")).to_have_count(6)  # created, 3 touches, moved to Proposal, won
    expect(page.get_by_test_id("story-stats")).to_contain_text("Calls")

    # Offline, both read again from the device.
    page.context.set_offline(True)
    page.reload()
    expect(page.get_by_role("heading", name="How this deal was won")).to_be_visible()
    expect(page.get_by_text(re.compile("Saved .*, offline"))).to_be_visible()
    expect(page.get_by_test_id("story-timeline").locator("li")).to_have_count(6)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Learn").click()
    expect(page.get_by_text(re.compile("Saved .*, offline"))).to_be_visible()
    expect(page.get_by_test_id("leaderboard-table").locator("tbody tr")).to_have_count(4)
    # The chart library is a lazy chunk, precached by the service worker like the screens.
    expect(page.get_by_test_id("leaderboard-chart").get_by_role("img")).to_be_visible()
    # A period never read online: said plainly (the goals, which do not depend on it, are still there).
    page.get_by_role("button", name="1 year").click()
    board = page.get_by_role("region", name="Leaderboard")
    expect(board).to_contain_text("Not saved on this device yet.")
    expect(page.get_by_test_id("goal")).to_have_count(2)
    page.context.set_offline(False)
    expect(board.get_by_test_id("leaderboard-table")).to_be_visible()

    # Team is not in a rep's navigation, and its address says whom it is for.
    page.goto(f"{sales.url}/team")
    expect(page.get_by_text("Team insights are for managers and admins.")).to_be_visible()


def test_a_manager_reads_the_funnel_and_the_diagnosis_and_prints_it(sales: Sales, page: Page) -> None:
    sign_in(page, sales, "elena")
    synced(page)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Team").click()
    expect(page.get_by_role("heading", name="Team", level=1)).to_be_visible()
    _settled(page)

    expect(page.get_by_test_id("funnel-chart").get_by_role("img")).to_have_attribute("aria-label", re.compile("stage"))
    expect(page.get_by_test_id("weakest-stage")).to_contain_text("Weakest stage: Proposal.")
    expect(page.get_by_test_id("weakest-stage")).to_contain_text("1 deal lost there, worth €2,500.00")
    funnel = page.get_by_test_id("funnel-table")
    expect(funnel.locator("tbody tr")).to_have_count(4)  # Lead, Qualified, Proposal, Negotiation
    proposal = funnel.locator("tbody tr", has_text="Proposal")
    expect(proposal).to_contain_text("weakest")
    expect(proposal).to_contain_text("€2,500.00")

    findings = page.get_by_test_id("findings")
    expect(findings).to_contain_text("Value of all lost deals")
    expect(findings.locator("li", has_text="Value of all lost deals")).to_contain_text("+€2,500.00")
    expect(findings).to_contain_text("Lost because “Price too high”: deals")
    expect(page.locator("section[aria-labelledby=team-funnel]")).to_contain_text(
        "4 deals created · 2 won (€6,300.00) · 1 lost"
    )

    # Clients who come back: of Acme, Beta, Gamma and Delta (buyers), Beta bought again; Gamma and Delta bought once
    # and not since. Elena's own Delta is on her phone and opens its card; Luis's Gamma is not, and says whose it is.
    retention = page.locator("section[aria-labelledby=team-retention]")
    figures = retention.get_by_test_id("retention-figures")
    expect(figures.locator("> div").nth(0)).to_have_text(re.compile(r"Repeat-purchase rate\s*25%"))
    expect(figures.locator("> div").nth(1)).to_have_text(re.compile(r"Buyers\s*4"))
    expect(figures.locator("> div").nth(2)).to_have_text(re.compile(r"Repeat buyers\s*1"))
    expect(figures.locator("> div").nth(3)).to_have_text(
        re.compile(r"Bought once and not again within 180 days\s*2 clients · worth €1,300\.00")
    )
    win_back = retention.get_by_test_id("win-back").locator("li")
    expect(win_back).to_have_count(2)
    expect(win_back.nth(0)).to_contain_text("Gamma Repuestos")
    expect(win_back.nth(0)).to_contain_text("€900.00")
    expect(win_back.nth(0)).to_contain_text("Owner: Luis Soto")
    expect(win_back.nth(0).get_by_role("link")).to_have_count(0)
    lapsed = win_back.nth(1).get_by_role("link", name=re.compile("Delta Talleres"))
    expect(lapsed).to_contain_text("€400.00")
    expect(lapsed).to_have_attribute("href", f"/clients/company/{sales.lapsed_id}")
    expect(retention).to_contain_text("ask the owner about the others")
    expect(retention.get_by_test_id("reasons-chart").get_by_role("img")).to_have_attribute(
        "aria-label", re.compile("value of the deals lost for each reason")
    )
    reason = retention.get_by_test_id("reasons-table").locator("tbody tr")
    expect(reason).to_have_count(1)
    expect(reason.locator("th, td")).to_have_text(["Price too high", "1", "€2,500.00"])

    # Deadlines and adoption: a chart each, with the table.
    expect(page.get_by_test_id("discipline-chart").get_by_role("img")).to_be_visible()
    expect(page.get_by_test_id("discipline-table").locator("tr", has_text="Luis Soto")).to_contain_text("1")
    expect(page.get_by_test_id("adoption-chart").get_by_role("img")).to_be_visible()
    people = page.get_by_test_id("adoption-people")
    expect(people).to_contain_text("Pablo Vidal")
    expect(people.locator("thead")).to_contain_text("Cards created")
    expect(people.locator("thead")).to_contain_text("Cards improved")

    # Client data: Acme (100%, worked on) is Marta's well-developed card; Ana's card is 1 field of 6 (17%).
    quality = page.locator("section[aria-labelledby=team-quality]")
    expect(quality.get_by_test_id("quality-chart").get_by_role("img")).to_have_attribute(
        "aria-label", re.compile("well-developed client cards")
    )
    marta = quality.get_by_test_id("quality-table").locator("tbody tr", has_text="Marta Gil")
    expect(marta.locator("td")).to_have_text(["2", "58%", "1"])
    expect(quality).to_contain_text("at least 80% complete")

    # Opening a client to win back.
    lapsed.click()
    expect(page.get_by_role("heading", name="Delta Talleres", level=1)).to_be_visible()
    page.go_back()
    expect(page.get_by_role("heading", name="Team", level=1)).to_be_visible()

    page.get_by_role("button", name="Print").click()
    frame = page.get_by_test_id("print-frame")
    expect(frame).to_have_attribute("srcdoc", re.compile("Where we lose money"))
    expect(page.frame_locator("[data-testid=print-frame]").locator("h1")).to_have_text("Where we lose money")
    expect(page.get_by_role("button", name="Print")).to_be_enabled()


# (name, how to get there from a synced app)
SCREENS: list[tuple[str, Callable[[Page, Sales], object]]] = [
    ("learn", lambda page, s: page.goto(f"{s.url}/learn")),
    ("learn-win-story", lambda page, s: page.goto(f"{s.url}/learn/wins/{s.win_id}")),
    ("feed-goal-reached", lambda page, s: page.goto(f"{s.url}/feed")),
    ("team", lambda page, s: page.goto(f"{s.url}/team")),
]


def _check(page: Page, name: str) -> list[str]:
    page.wait_for_load_state("load")
    expect(page.locator("main h1").first).to_be_visible()
    if name in ("learn", "team"):
        _settled(page)
    page.wait_for_timeout(300)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    problems = [f"{name}: {v}" for v in serious_violations(page)]
    if scrolls_sideways(page):
        problems.append(f"{name}: the page scrolls sideways at 360 px")
    return problems


@pytest.mark.parametrize("sales", ["sqlite"], indirect=True)
def test_the_insights_screens_at_phone_size_are_accessible_and_fit(sales: Sales, page: Page) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(page, sales, "elena")  # a manager sees every screen: Learn with everyone's goals, and Team
    synced(page)
    problems: list[str] = []
    for name, go in SCREENS:
        go(page, sales)
        problems += _check(page, name)
        if name == "feed-goal-reached":
            item = page.locator("[data-testid=feed-item][data-kind=goal_reached]")
            expect(item).to_contain_text("Marta Gil reached the goal “Call the base”")
            expect(item).to_contain_text("2 of 2 calls · Reward: Coffee on us")
    assert problems == []


@pytest.mark.parametrize("sales", ["sqlite"], indirect=True)
def test_the_insights_speak_spanish(sales: Sales, page: Page) -> None:
    page.goto(sales.url)
    page.get_by_label("Language").select_option("es")
    page.get_by_label("Correo electrónico").fill(sales.emails["elena"])
    page.get_by_label("Contraseña").fill(PASSWORD)
    page.get_by_role("button", name="Iniciar sesión").click()
    nav = page.get_by_role("navigation", name="Principal")
    synced(page)
    assert not scrolls_sideways(page)

    nav.get_by_role("link", name="Aprender").click()
    expect(page.get_by_role("heading", name="Aprender", level=1)).to_be_visible()
    _settled(page)
    expect(page.get_by_role("heading", name="Clasificación")).to_be_visible()
    expect(page.get_by_test_id("leaderboard-table").locator("tbody tr").first).to_contain_text(
        re.compile(r"4\.?800,00\s€")
    )
    expect(page.get_by_role("heading", name="Cómo ganan los mejores")).to_be_visible()
    expect(page.get_by_test_id("goal").filter(has_text="Q4 sales")).to_contain_text("Premio: Team lunch")
    page.screenshot(path=SCREENSHOTS / "learn-es.png", full_page=True)

    nav.get_by_role("link", name="Equipo").click()
    _settled(page)
    expect(page.get_by_test_id("weakest-stage")).to_contain_text("Etapa más débil: Proposal.")
    cohort = page.locator("section[aria-labelledby=team-funnel] p", has_text="negocios creados")
    expect(cohort).to_have_text(re.compile(r"^4 negocios creados · 2 ganados \(6\.?300,00\s€\) · 1 perdido$"))
    expect(page.get_by_role("heading", name="Dónde perdemos dinero")).to_be_visible()
    retention = page.locator("section[aria-labelledby=team-retention]")
    expect(retention.get_by_test_id("retention-figures")).to_contain_text(
        "Compraron una vez y no repitieron en 180 días"
    )
    expect(retention.get_by_test_id("retention-figures")).to_contain_text("2 clientes")
    expect(page.locator("section[aria-labelledby=team-quality]")).to_contain_text("al menos en un 80")
    page.screenshot(path=SCREENSHOTS / "team-es.png", full_page=True)
    page.get_by_role("button", name="Imprimir").click()
    expect(page.frame_locator("[data-testid=print-frame]").locator("h1")).to_have_text("Dónde perdemos dinero")

    nav.get_by_role("link", name="Actividad").click()
    item = page.locator("[data-testid=feed-item][data-kind=goal_reached]")
    expect(item).to_contain_text("Marta Gil alcanzó el objetivo «Call the base»")
    expect(item).to_contain_text("2 de 2 llamadas · Premio: Coffee on us")
