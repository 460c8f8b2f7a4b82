"""The field app in a phone-sized Chromium: offline work that survives a reload and reaches the team, conflicts
settled field by field, and the app installable and controlled by its service worker."""

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.pwa.conftest import Field, controlled, manifest, now, sign_in, synced


def test_a_call_logged_offline_survives_a_reload_and_reaches_a_teammate_s_feed(
    field: Field, page: Page, browser: Browser, browser_context_args: dict[str, object]
) -> None:
    sign_in(page, field)
    controlled(page)
    synced(page)

    page.get_by_role("link", name="Clients").click()
    page.get_by_label("Search clients").fill("Acme Copr")  # a typo: the local search still finds it
    page.get_by_role("link", name="Acme Corp").first.click()
    expect(page.get_by_role("heading", name="Acme Corp")).to_be_visible()

    page.context.set_offline(True)
    expect(page.get_by_test_id("sync-badge")).to_contain_text("Offline")
    page.get_by_role("button", name="Log call").click()
    # "Connected, follow up tomorrow": three taps.
    page.get_by_role("button", name="Connected").click()
    page.get_by_role("button", name="Tomorrow").click()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("sync-badge")).to_have_attribute("data-pending", "1")
    expect(page.get_by_text("Call with Acme Corp").first).to_be_visible()

    page.reload()  # offline: the service worker serves the app, IndexedDB still holds the call and the outbox
    expect(page.get_by_role("heading", name="Acme Corp")).to_be_visible()
    expect(page.get_by_text("Call with Acme Corp").first).to_be_visible()
    expect(page.get_by_test_id("sync-badge")).to_have_attribute("data-pending", "1")

    # Signing out now would lose the call: the app says so and lets the user keep it.
    page.get_by_role("link", name="Sync").click()
    expect(page.get_by_test_id("pending")).to_contain_text("Activity logged")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("alertdialog")).to_contain_text("1 change that has not reached the server")
    expect(page.get_by_role("button", name="Cancel")).to_be_focused()  # the safe answer, where the question was
    page.get_by_role("button", name="Cancel").click()

    before = now(page)
    page.context.set_offline(False)
    synced(page, after=before)

    calls = field.api("marta", "GET", "/activities", params={"company_id": field.company_id}).json()["items"]
    call = next(a for a in calls if a["kind"] == "call")
    assert call["outcome"] == "connected" and call["next_step_id"], call
    follow_up = field.api("marta", "GET", f"/activities/{call['next_step_id']}").json()
    assert follow_up["kind"] == "task" and follow_up["done_at"] is None

    teammate = browser.new_context(**browser_context_args)  # type: ignore[arg-type]
    try:
        luis = teammate.new_page()
        sign_in(luis, field, "luis")
        luis.get_by_role("link", name="Feed").click()
        expect(luis.get_by_text("Marta Gil").first).to_be_visible()
        expect(luis.get_by_text("Acme Corp").first).to_be_visible()
    finally:
        teammate.close()


def test_a_conflict_made_offline_is_shown_and_the_chosen_value_applied(field: Field, page: Page) -> None:
    sign_in(page, field)
    synced(page)
    page.goto(f"{field.url}/deals/{field.deal_id}")
    expect(page.get_by_role("heading", name="Fleet renewal")).to_be_visible()

    page.context.set_offline(True)
    page.get_by_label("Amount").fill("15000")
    page.get_by_role("button", name="Save amount").click()
    expect(page.get_by_test_id("sync-badge")).to_have_attribute("data-pending", "1")

    # Meanwhile Elena, her manager, changes the same amount on the server.
    deal = field.api("elena", "GET", f"/deals/{field.deal_id}")
    changed = field.api(
        "elena",
        "PATCH",
        f"/deals/{field.deal_id}",
        json={"amount_minor": 1_300_000},
        headers={"if-match": deal.headers["etag"]},
    )
    assert changed.status_code == 200, changed.text

    page.context.set_offline(False)
    expect(page.get_by_test_id("sync-badge")).to_have_attribute("data-issues", "1", timeout=20_000)
    page.get_by_test_id("sync-badge").click()
    issue = page.get_by_test_id("issue")
    expect(issue).to_contain_text("Someone else changed this deal")
    issue.get_by_role("button", name="Keep mine").click()
    issue.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("issue")).to_have_count(0)
    synced(page)

    assert field.api("marta", "GET", f"/deals/{field.deal_id}").json()["amount_minor"] == 1_500_000


def test_the_app_is_installable_and_its_worker_controls_the_page(field: Field, page: Page) -> None:
    sign_in(page, field)
    controlled(page)
    app = manifest(page)
    assert app["name"] == "Fieldbook" and app["display"] == "standalone" and app["start_url"] == "/"
    assert app["theme_color"] and app["background_color"]
    sizes = {icon["sizes"] for icon in app["icons"] if icon["type"] == "image/png"}
    assert {"192x192", "512x512"} <= sizes
    for icon in app["icons"]:
        assert page.request.get(f"{field.url}{icon['src']}").ok
    # Chromium's own verdict: no reason this app could not be installed (but the test's private window).
    errors = page.context.new_cdp_session(page).send("Page.getInstallabilityErrors")["installabilityErrors"]
    assert [e["errorId"] for e in errors if e["errorId"] != "in-incognito"] == []
    # The worker and manifest are never cached, hashed assets forever.
    assert page.request.get(f"{field.url}/sw.js").headers["cache-control"] == "no-cache"
    assert page.request.get(f"{field.url}/manifest.webmanifest").headers["cache-control"] == "no-cache"
    # A client-side route loads the app shell; an unknown API path is still the API's 404.
    assert '<div id="app">' in page.request.get(f"{field.url}/clients/company/x").text()
    assert page.request.get(f"{field.url}/api/v1/nope").status == 404


@pytest.mark.parametrize("field", ["sqlite"], indirect=True)
def test_back_from_a_tel_call_the_app_asks_how_it_went(field: Field, page: Page) -> None:
    sign_in(page, field)
    synced(page)
    page.goto(f"{field.url}/clients/company/{field.company_id}")
    call = page.get_by_role("link", name="Call Ana Núñez")
    assert call.get_attribute("href") == "tel:+34600111222"
    # The phone's dialler is not there to take the call: stop the navigation, keep the app's own click handler.
    page.evaluate("document.addEventListener('click', (e) => e.target.closest('a[href^=tel]') && e.preventDefault())")
    call.click()
    expect(page.get_by_role("dialog")).to_have_count(0)  # not while dialling
    page.wait_for_timeout(1600)
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")  # back in the app after the call

    sheet = page.get_by_role("dialog", name="How did it go?")
    expect(sheet).to_contain_text("Ana Núñez")
    sheet.get_by_role("button", name="Connected").click()
    sheet.get_by_role("button", name="Tomorrow").click()
    sheet.get_by_role("button", name="Save").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    synced(page, after=now(page))  # the three taps are all it took: the call is on the server
    logged = field.api("marta", "GET", "/activities", params={"contact_id": field.contact_id}).json()["items"]
    timed = [a for a in logged if a["duration_seconds"] is not None]  # only a dialled call knows how long it was
    assert [(a["kind"], a["outcome"], a["direction"]) for a in timed] == [("call", "connected", "outbound")]
    assert timed[0]["next_step_id"] in {a["id"] for a in logged if a["kind"] == "task"}
