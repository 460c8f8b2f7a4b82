"""Every screen at phone size: a screenshot (build/screenshots), no serious or critical axe-core finding, and no
sideways scrolling at 360 px; and the app in Spanish."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.factories import PASSWORD
from tests.pwa.conftest import SCREENSHOTS, Field, scrolls_sideways, serious_violations, sign_in, synced

# (name, how to get there from a synced app), in the order a rep meets them.
SCREENS = [
    ("today", lambda page, field: page.goto(f"{field.url}/")),
    ("clients", lambda page, field: page.goto(f"{field.url}/clients")),
    ("client-card", lambda page, field: page.goto(f"{field.url}/clients/company/{field.company_id}")),
    ("log-call", lambda page, field: page.get_by_role("button", name="Log call").click()),
    ("log-call-cancelled", lambda page, field: page.keyboard.press("Escape")),  # a modal sheet: Escape closes it
    ("deals", lambda page, field: page.goto(f"{field.url}/deals")),
    ("deal", lambda page, field: page.goto(f"{field.url}/deals/{field.deal_id}")),
    ("feed", lambda page, field: page.goto(f"{field.url}/feed")),
    ("feed-wins", lambda page, field: page.get_by_role("button", name="Wins").click()),
    ("deal-story", lambda page, field: page.get_by_role("link", name="Workshop tools").first.click()),
    ("sync", lambda page, field: page.goto(f"{field.url}/sync")),
]


def _check(page: Page, name: str, directory: Path) -> list[str]:
    # Not "networkidle": the app keeps its /sync/events stream open. Lazy screens and their reads settle first.
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)
    page.screenshot(path=directory / f"{name}.png")
    problems = [f"{name}: {v}" for v in serious_violations(page)]
    if scrolls_sideways(page):
        problems.append(f"{name}: the page scrolls sideways at 360 px")
    return problems


@pytest.mark.parametrize("field", ["sqlite"], indirect=True)
def test_every_screen_at_phone_size_is_accessible_and_fits(field: Field, page: Page) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(field.url)
    problems = _check(page, "sign-in", SCREENSHOTS)
    sign_in(page, field)
    synced(page)
    for name, go in SCREENS:
        go(page, field)
        if name.endswith("-cancelled"):
            expect(page.get_by_role("dialog")).to_have_count(0)
            continue
        expect(page.locator("main h1, dialog h2").first).to_be_visible()
        problems += _check(page, name, SCREENSHOTS)
    assert problems == []


@pytest.mark.parametrize("field", ["sqlite"], indirect=True)
def test_the_app_speaks_spanish(field: Field, page: Page) -> None:
    page.goto(field.url)
    page.get_by_label("Language").select_option("es")
    expect(page.get_by_role("button", name="Iniciar sesión")).to_be_visible()
    page.get_by_label("Correo electrónico").fill(field.emails["marta"])
    page.get_by_label("Contraseña").fill(PASSWORD)
    page.get_by_role("button", name="Iniciar sesión").click()
    nav = page.get_by_role("navigation", name="Principal")
    for label in ("Hoy", "Clientes", "Negocios", "Actividad", "Sincronizar"):
        expect(nav.get_by_role("link", name=label)).to_be_visible()
    page.goto(f"{field.url}/deals/{field.deal_id}")
    # Money in Spanish notation (es-ES: the browser offers no Spanish variant of its own).
    expect(page.get_by_text(re.compile(r"12\.000,00\s€")).first).to_be_visible()
