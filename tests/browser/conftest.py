"""The browser tier: Playwright drives Debian's headless Chromium (never a downloaded one).

Fixtures: ``browser`` (one Chromium for the tier), ``page`` (a fresh context per test, with a
screenshot kept when the test fails), ``screenshot`` (keep one as a test artifact), and the hub
tier's ``erc_hub``. Screenshots go to ``build/artifacts/browser/<test name>[-label].png``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from tests.conftest import require_tier
from tests.hub.conftest import REPO

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "build" / "artifacts" / "browser"
#: how long a page action or expectation waits by default (ms)
TIMEOUT_MS = 30_000

REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def chromium_problem(executable: str) -> str | None:
    """Why the browser tier cannot run here, or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not importable; pip install -e '.[test]'"
    if not os.access(executable, os.X_OK):
        return (
            f"no Chromium at {executable}; run config/provision/chromium.sh "
            "or set ERCHUB_TEST_CHROMIUM"
        )
    return None


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    executable = os.environ.get("ERCHUB_TEST_CHROMIUM") or DEFAULT_CHROMIUM
    require_tier("browser", chromium_problem(executable))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test, for the ``page`` fixture to see a failure."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


def artifact_path(request: pytest.FixtureRequest, label: str = "") -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name) + (f"-{label}" if label else "")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Generator[Page, None, None]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    try:
        yield opened
    finally:
        reports = request.node.stash.get(REPORTS, {})
        if any(report.failed for report in reports.values()):
            opened.screenshot(path=artifact_path(request, "failure"), full_page=True)
        context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[..., Path]:
    """``screenshot(page, label="")`` keeps the page as ``<test name>[-label].png``."""

    def save(page: Page, label: str = "") -> Path:
        path = artifact_path(request, label)
        page.screenshot(path=path, full_page=True)
        return path

    return save


def hub_login(page: Page, hub_url: str, username: str, next_path: str = "/hub/home") -> None:
    """Log in through the hub's login form (DummyAuthenticator: any name, any password) and
    land on ``next_path`` (the home page by default, so that no default server is started)."""
    page.goto(f"{hub_url}/hub/login?next={quote(next_path)}")
    page.fill("#username_input", username)
    page.fill("#password_input", "any password")
    page.click("#login_submit")
    page.wait_for_url(lambda url: url.startswith(hub_url + next_path))


def wait_for_server(page: Page, fragment: str, timeout_ms: int) -> None:
    """Wait on the hub's progress page until the browser is at a URL containing ``fragment``
    (the server is up), failing at once with the page's message when the start failed (rather
    than when the time is up)."""
    deadline = time.monotonic() + timeout_ms / 1000
    while fragment not in page.url:
        if "/spawn-pending/" in page.url:
            from playwright.sync_api import Error as PlaywrightError

            try:
                message = " ".join(page.locator("#progress-message").all_text_contents())
            except PlaywrightError:  # the page is leaving for the server as it is read
                message = ""
            if "failed" in message.lower():
                pytest.fail(f"the server did not start: {message.strip()}")
        assert time.monotonic() < deadline, f"no {fragment} within {timeout_ms / 1000:.0f} s"
        page.wait_for_timeout(500)
