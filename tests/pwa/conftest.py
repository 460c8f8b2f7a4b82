"""Browser tests of the field app: Debian's Chromium driven by Playwright, at phone size with touch, against a real
uvicorn serving the built app (pwa/dist) and the API on a committed database.

Without Chromium or the built app they are skipped with the reason shown, except in CI, where that fails."""

import asyncio
import contextlib
import json
import shutil
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import Browser, BrowserType, Page, Playwright, sync_playwright

from api.auth.models import Role
from api.core.db import Database, make_engine
from api.main import create_app
from api.settings import Settings
from tests.conftest import IN_CI, own_database, uvicorn_serving
from tests.factories import PASSWORD, make_company, make_contact, make_deal, make_org, make_team, make_user

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "pwa" / "dist"
AXE = ROOT / "pwa" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Quiet on a closed network: no background downloads, updates or sync (MACHINE-NOTES, gotcha 9).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PHONE = {"width": 360, "height": 740}
DOMAIN = "talleres-norte.es"
T = TypeVar("T")


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return "Chromium is not installed (apt-get install chromium)"
    if not (DIST / "index.html").exists() or not AXE.exists():
        return "the app is not built (make pwa needs Node.js)"
    return None


@pytest.fixture(autouse=True)
def _browser_available() -> None:
    reason = _missing()
    if reason and IN_CI:
        pytest.fail(reason)
    if reason:
        pytest.skip(reason)


# pytest-playwright starts Playwright once per session; its sync API then keeps an event loop running in the
# test thread, and every async test that comes after (pytest-asyncio) fails to start its own. Per module instead:
# stopped as soon as the browser tests of a module are done.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as started:
        yield started


@pytest.fixture(scope="module")
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    chosen: BrowserType = getattr(playwright, browser_name)
    return chosen


@pytest.fixture(scope="module")
def browser(browser_type: BrowserType, browser_type_launch_args: dict[str, Any]) -> Iterator[Browser]:
    launched = browser_type.launch(**browser_type_launch_args)
    yield launched
    launched.close()


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture(scope="session")
def browser_context_args() -> dict[str, Any]:
    # Reduced motion: charts draw at once, so a screenshot never catches a bar halfway. The app's CSP is bypassed:
    # Playwright's wait_for_function and axe-core's injected tag are evaluated strings, which it refuses (as it
    # should). tests/pwa/test_csp.py runs the app with the policy enforced.
    return {
        "bypass_csp": True,
        "viewport": PHONE,
        "has_touch": True,
        "is_mobile": True,
        "device_scale_factor": 2,
        "locale": "en-GB",
        "reduced_motion": "reduce",
    }


@dataclass
class Field:
    """A sales team on a running server: Marta and Luis (reps) under Elena (their manager), Marta's client Acme
    Corp with its contact Ana, and Marta's open deal with Acme."""

    url: str
    emails: dict[str, str]
    company_id: str
    contact_id: str
    deal_id: str

    def headers(self, who: str) -> dict[str, str]:
        response = httpx.post(
            f"{self.url}/api/v1/auth/login", json={"email": self.emails[who], "password": PASSWORD}, timeout=10
        )
        assert response.status_code == 200, response.text
        return {"authorization": f"Bearer {response.json()['access_token']}"}

    def api(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers(who), **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.url}/api/v1{path}", headers=headers, timeout=10, **kwargs)


async def _seed(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        async with Database(engine).writer() as session:
            org = await make_org(session, "Talleres Norte")
            team = await make_team(session, org, name="Ventas Norte")
            people = {
                key: await make_user(session, org, role=role, team=team, name=name, email=f"{key}@{DOMAIN}")
                for key, name, role in (
                    ("elena", "Elena Ruiz", Role.manager),
                    ("marta", "Marta Gil", Role.rep),
                    ("luis", "Luis Soto", Role.rep),
                )
            }
            marta = people["marta"]
            company = await make_company(session, marta, name="Acme Corp", phone="+34 911 234 567", city="Madrid")
            contact = await make_contact(
                session, marta, name="Ana Núñez", company_id=company.id, phones=["+34 600 111 222"], title="Buyer"
            )
            deal = await make_deal(session, marta, title="Fleet renewal", company_id=company.id, amount_minor=1_200_000)
            # Reps see their team's work, so Luis's feed shows what Marta logs.
            org.settings = {**org.settings, "reps_see_team": True}
            session.add(org)
            await session.commit()
            return {
                "emails": {key: user.email for key, user in people.items()},
                "company_id": str(company.id),
                "contact_id": str(contact.id),
                "deal_id": str(deal.id),
            }
    finally:
        await engine.dispose()


def _a_day_of_work(field: Field) -> None:
    """Through the API, as Marta: a deal won after a few touches (the feed's win and its story), an overdue task
    and a meeting later today (her agenda)."""
    headers = field.headers("marta")

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{field.url}/api/v1{path}", json=body, headers=headers, timeout=10)
        assert response.status_code in (200, 201), response.text
        result: dict[str, Any] = response.json()
        return result

    clock = datetime.now(UTC)
    won = post("/deals", {"title": "Workshop tools", "company_id": field.company_id, "amount_minor": 480_000})
    for days, kind, outcome in ((20, "call", "connected"), (12, "meeting", None), (5, "call", "connected")):
        touch = {"kind": kind, "deal_id": won["id"], "contact_id": field.contact_id, "company_id": field.company_id}
        if outcome:
            touch["outcome"] = outcome
        post("/activities", {**touch, "done_at": (clock - timedelta(days=days)).isoformat()})
    post(f"/deals/{won['id']}/win", {})
    for subject, kind, due in (
        ("Send the price list", "task", clock - timedelta(days=1)),
        ("Visit the Madrid workshop", "meeting", clock + timedelta(hours=2)),
    ):
        post(
            "/activities", {"kind": kind, "subject": subject, "company_id": field.company_id, "due_at": due.isoformat()}
        )


def _off_loop(call: Callable[[], T]) -> T:
    """Runs `call` in a thread of its own: Playwright's sync API keeps an event loop running in the test's."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


@pytest.fixture
def app_dir() -> Path:
    """The built app the server serves (a test may serve a copy it changes)."""
    return DIST


@contextlib.contextmanager
def seeded_server(
    dialect: str, directory: Path, seed: Callable[[str], Awaitable[dict[str, Any]]], pwa_dir: Path
) -> Iterator[tuple[str, dict[str, Any]]]:
    """A database of the test's own, seeded by `seed(url)`, served with the app on a real port: (its URL, what the
    seed returned). Skipped where Chromium or the app's build is missing."""
    if _missing():
        pytest.skip(_missing() or "")
    database = own_database(dialect, directory)
    url = _off_loop(database.__enter__)
    try:
        seeded = _off_loop(lambda: asyncio.run(seed(url)))
        with uvicorn_serving(create_app(Settings(database_url=url, pwa_dir=pwa_dir))) as served:
            yield served, seeded
    finally:
        _off_loop(lambda: database.__exit__(None, None, None))


@pytest.fixture(params=["sqlite", "postgres"])
def field(request: pytest.FixtureRequest, tmp_path: Path, app_dir: Path) -> Iterator[Field]:
    with seeded_server(request.param, tmp_path, _seed, app_dir) as (served, seeded):
        team = Field(url=served, **seeded)
        _a_day_of_work(team)
        yield team


def sign_in(page: Page, field: Field, who: str = "marta") -> None:
    page.goto(field.url)
    page.get_by_label("E-mail").fill(field.emails[who])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").wait_for()


def now(page: Page) -> str:
    return str(page.evaluate("new Date().toISOString()"))


def synced(page: Page, after: str = "") -> None:
    """Waits until a sync that ended after `after` left nothing pending (and the badge says so)."""
    page.wait_for_function(
        "after => { const b = document.querySelector('[data-testid=sync-badge]');"
        " return b && b.dataset.pending === '0' && b.classList.contains('badge-idle')"
        " && (b.dataset.lastSync || '') > after }",
        arg=after,
        timeout=20_000,
    )


def controlled(page: Page) -> None:
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=20_000)


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def scrolls_sideways(page: Page) -> bool:
    return bool(page.evaluate("document.scrollingElement.scrollWidth > window.innerWidth"))


def manifest(page: Page) -> dict[str, Any]:
    href = page.evaluate("document.querySelector('link[rel=manifest]').href")
    data: dict[str, Any] = json.loads(page.request.get(href).text())
    return data
