"""A new deployment reaches open apps: the new service worker takes over and the page offers a reload onto it."""

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.pwa.conftest import DIST, Field, controlled, sign_in


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A copy of the built app, so the test can deploy a "new version" of it."""
    return Path(shutil.copytree(DIST, tmp_path / "dist"))


@pytest.mark.parametrize("field", ["sqlite"], indirect=True)
def test_a_new_version_is_offered_once_its_worker_takes_over(field: Field, app_dir: Path, page: Page) -> None:
    sign_in(page, field)
    controlled(page)
    first = page.evaluate("navigator.serviceWorker.controller.scriptURL")
    expect(page.get_by_role("status").filter(has_text="new version")).to_have_count(0)

    worker = app_dir / "sw.js"
    worker.write_text(worker.read_text() + "\n// the next deployment\n")
    page.evaluate("navigator.serviceWorker.getRegistration().then((r) => r.update())")

    prompt = page.get_by_role("status").filter(has_text="A new version of Fieldbook is ready.")
    expect(prompt).to_be_visible(timeout=20_000)
    assert page.evaluate("navigator.serviceWorker.controller.scriptURL") == first  # same URL, new worker
    prompt.get_by_role("button", name="Reload").click()
    page.get_by_role("navigation", name="Main").wait_for()
    expect(page.get_by_role("status").filter(has_text="new version")).to_have_count(0)
