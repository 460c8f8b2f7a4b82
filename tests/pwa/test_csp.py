"""The app under its Content-Security-Policy (api/core/security_headers.py): an admin signs in, goes through every
screen, prints the diagnosis (an inline stylesheet in a srcdoc frame, allowed by its hash), goes offline and back,
and the browser reports no violation; the service worker still takes control."""

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from api.auth.models import Role
from api.core.db import Database, make_engine
from tests.factories import make_company, make_contact, make_deal, make_org, make_team, make_user
from tests.pwa.conftest import DIST, Field, seeded_server, sign_in

DOMAIN = "talleres-norte.es"

# Reported from the page (and its frames where scripts run) through an exposed function; the browser also logs
# every violation as a console error, which catches the ones in the print frame, where no script runs.
REPORT = """document.addEventListener('securitypolicyviolation', (e) => window.reportViolation(
  `${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`))"""


@pytest.fixture
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "bypass_csp": False}


def _wait_until(page: Page, condition: str) -> None:
    """Polls `condition` from Python: `wait_for_function` evaluates its string in the page, which the policy
    refuses (and reports); page.evaluate goes through the debugging protocol, which it does not cover."""
    for _ in range(200):
        if page.evaluate(condition):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"still false after 20 s: {condition}")


async def _seed(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        async with Database(engine).writer() as session:
            org = await make_org(session, "Talleres Norte")
            team = await make_team(session, org, name="Ventas Norte")
            ines = await make_user(session, org, role=Role.admin, team=team, name="Inés Mora", email=f"ines@{DOMAIN}")
            company = await make_company(session, ines, name="Acme Corp", phone="+34 911 234 567", city="Madrid")
            contact = await make_contact(session, ines, name="Ana Núñez", company_id=company.id, title="Buyer")
            deal = await make_deal(session, ines, title="Fleet renewal", company_id=company.id, amount_minor=1_200_000)
            await session.commit()
            return {
                "emails": {"ines": ines.email},
                "company_id": str(company.id),
                "contact_id": str(contact.id),
                "deal_id": str(deal.id),
            }
    finally:
        await engine.dispose()


def test_the_app_runs_under_its_content_security_policy(tmp_path: Any, page: Page) -> None:
    violations: list[str] = []
    page.expose_function("reportViolation", lambda violation: violations.append(violation))
    page.add_init_script(REPORT)
    page.on(
        "console",
        lambda message: "Content Security Policy" in message.text and violations.append(message.text),
    )
    with seeded_server("sqlite", tmp_path, _seed, DIST) as (url, seeded):
        field = Field(url=url, **seeded)
        response = page.goto(url)
        assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
        sign_in(page, field, "ines")
        _wait_until(page, "navigator.serviceWorker.controller !== null")
        expect(page.get_by_test_id("sync-badge")).to_have_attribute("data-pending", "0", timeout=20_000)
        for path in (
            "/",
            "/clients",
            f"/clients/company/{field.company_id}",
            "/deals",
            f"/deals/{field.deal_id}",
            "/feed",
            "/learn",
            "/imports",
            "/sync",
            "/team",
        ):
            page.goto(f"{url}{path}")
            expect(page.locator("main h1").first).to_be_visible()
            page.wait_for_load_state("load")
        page.get_by_role("button", name="Print").click()
        # Styled: its inline stylesheet was applied (1.5rem), not refused (a bare h1 is 32px).
        expect(page.frame_locator("[data-testid=print-frame]").locator("h1")).to_have_css("font-size", "24px")

        page.context.set_offline(True)
        page.goto(f"{url}/clients")  # the app shell from the worker, the clients from the device
        page.get_by_role("tab", name="All").click()
        expect(page.get_by_role("link", name="Acme Corp").first).to_be_visible()
        page.context.set_offline(False)
        page.goto(f"{url}/deals")
        expect(page.locator("main h1").first).to_be_visible()
        page.wait_for_timeout(300)
    assert violations == []
