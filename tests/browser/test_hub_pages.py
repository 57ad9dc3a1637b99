"""The hub's erchub pages in headless Chromium: login warning, home page compendia, check page."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Request, expect

from tests.browser.conftest import hub_login
from tests.hub.conftest import Hub, example_zip

pytestmark = [pytest.mark.browser, pytest.mark.hub]

EXAMPLE_TITLE = "Sine waves under a changing frequency"
#: a check job builds the runtime (pip installs numpy and matplotlib the first time)
JOB_TIMEOUT_MS = 15 * 60 * 1000


def test_login_page_warns_of_the_dummy_login(
    page: Page, erc_hub: Hub, screenshot: Callable[..., Path]
) -> None:
    page.goto(f"{erc_hub.url}/hub/login")
    warning = page.locator("#erchub-dummy-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("DummyAuthenticator lets ANYONE log in")
    warning_box, form_box = warning.bounding_box(), page.locator("form").bounding_box()
    assert warning_box and form_box and warning_box["y"] < form_box["y"], "above the form"
    screenshot(page)


def test_home_page_lists_the_users_compendia(
    page: Page, erc_hub: Hub, screenshot: Callable[..., Path]
) -> None:
    compendium_id = erc_hub.create(erc_hub.token("browserann"), example_zip())
    service_logins: list[str] = []

    def seen(request: Request) -> None:
        if "/services/erc/login" in request.url:
            service_logins.append(request.url)

    page.on("request", seen)
    hub_login(page, erc_hub.url, "browserann")
    row = page.locator(f'#erc-compendia tr[data-compendium="{compendium_id}"]')
    expect(row).to_contain_text(EXAMPLE_TITLE)
    expect(row).to_contain_text("candidate")
    expect(row.get_by_role("button", name="Launch")).to_have_attribute(
        "href", f"/services/erc/launch/{compendium_id}"
    )
    expect(row.get_by_role("button", name="Check")).to_have_attribute(
        "href", f"/services/erc/check/{compendium_id}"
    )
    # The browser went through the service's login, and came back without the flag.
    assert service_logins, "the first visit logs the browser in to the service"
    assert page.url == f"{erc_hub.url}/hub/home"
    expect(page.locator("#erc-launches")).to_contain_text("Recent launches")
    screenshot(page)

    logins = len(service_logins)
    page.reload()
    expect(row).to_contain_text(EXAMPLE_TITLE)
    assert len(service_logins) == logins, "the service's login is remembered"


def test_check_page_runs_a_job_to_success(
    docker_client: Any,
    page: Page,
    erc_hub: Hub,
    screenshot: Callable[..., Path],
) -> None:
    compendium_id = erc_hub.create(erc_hub.token("browserben"), example_zip())
    hub_login(page, erc_hub.url, "browserben")
    row = page.locator(f'#erc-compendia tr[data-compendium="{compendium_id}"]')
    row.get_by_role("button", name="Check").click()
    page.wait_for_url(f"**/services/erc/check/{compendium_id}")
    expect(page.locator("h1")).to_contain_text(EXAMPLE_TITLE)

    page.get_by_role("button", name="Start check").click()
    expect(page.locator("#erc-job")).to_be_visible()
    expect(page.locator('#erc-steps li[data-step="image_build"]')).to_be_visible()
    status = page.locator("#erc-job-status")
    expect(status).to_have_text(re.compile("success|failure|canceled"), timeout=JOB_TIMEOUT_MS)
    screenshot(page)
    expect(status).to_have_text("success")
    expect(page.locator("#erc-check-message")).to_contain_text("The check passed")
    for step in ("validate_compendium", "image_build", "image_execute", "check"):
        expect(page.locator(f'#erc-steps li[data-step="{step}"] .status')).to_have_text("success")
    expect(page.locator("#erc-log")).to_contain_text("[image_execute]")

    report = page.locator("#erc-report-link")
    expect(report).to_be_visible()
    expect(page.locator("#erc-display-link")).to_be_visible()
    # a passing check has its reference: no "executed notebook as the reference" offered
    expect(page.locator("#erc-reference-link")).to_be_hidden()
    report.click()
    page.wait_for_url("**/check/report.html")
    expect(page.locator("body")).to_contain_text("Check of main.ipynb")
    screenshot(page, "report")


def test_check_page_says_what_went_wrong(
    page: Page, erc_hub: Hub, screenshot: Callable[..., Path]
) -> None:
    """An API error reaches the reader in plain words, and the page stays usable."""
    compendium_id = erc_hub.create(erc_hub.token("browsercid"), example_zip())
    hub_login(page, erc_hub.url, "browsercid", next_path=f"/services/erc/check/{compendium_id}")
    expect(page.locator("h1")).to_contain_text(EXAMPLE_TITLE)
    deleted = erc_hub.request("DELETE", f"/compendium/{compendium_id}", erc_hub.token("browsercid"))
    assert deleted.status_code == 204, deleted.text

    start = page.get_by_role("button", name="Start check")
    start.click()
    message = page.locator("#erc-check-message")
    expect(message).to_contain_text("Not found: the compendium or job may have been deleted")
    expect(message).to_contain_text(f"compendium {compendium_id} not found")
    expect(start).to_be_enabled()
    expect(page.locator("#erc-job")).to_be_hidden()
    screenshot(page)


def test_home_page_lists_recent_launches(
    docker_client: Any,
    page: Page,
    erc_hub: Hub,
    screenshot: Callable[..., Path],
) -> None:
    compendium_id = erc_hub.create(erc_hub.token("browserdan"), example_zip())
    hub_login(page, erc_hub.url, "browserdan")
    expect(page.locator("#erc-launches")).to_contain_text("No compendium launched yet")
    row = page.locator(f'#erc-compendia tr[data-compendium="{compendium_id}"]')
    row.get_by_role("button", name="Launch").click()
    page.wait_for_url(re.compile(r"/user/browserdan/[^/]+/lab"), timeout=JOB_TIMEOUT_MS)
    server_name = page.url.split("/user/browserdan/", 1)[1].split("/", 1)[0]

    page.goto(f"{erc_hub.url}/hub/home")
    launch = page.locator(f'#erc-launches tr[data-server-name="{server_name}"]')
    expect(launch).to_contain_text(EXAMPLE_TITLE)  # the script puts the title for the id
    expect(launch.locator(".erc-server-state")).to_have_text("running")
    expect(launch.locator(".time-col")).to_contain_text("ago")  # the hub's script formats it
    expect(launch.get_by_role("button", name="Open")).to_have_attribute(
        "href", f"/user/browserdan/{server_name}/"
    )
    expect(launch.get_by_role("button", name="Check")).to_have_attribute(
        "href", f"/services/erc/check/{compendium_id}"
    )
    screenshot(page)

    launch.get_by_role("button", name="Stop").click()
    expect(launch.locator(".erc-server-state")).to_contain_text("stopped", timeout=60_000)
    expect(launch.get_by_role("button", name="Launch")).to_have_attribute(
        "href", f"/services/erc/launch/{compendium_id}"
    )
    expect(launch.get_by_role("button", name="Open")).to_have_count(0)
    # Delete: the session and its working copy are gone
    launch.get_by_role("button", name="Delete").click()
    expect(launch).to_have_count(0, timeout=60_000)
    volumes = docker_client.volumes.list(filters={"label": f"org.erchub.server={server_name}"})
    assert [v for v in volumes if v.attrs["Labels"]["org.erchub.user"] == "browserdan"] == []


def test_home_page_offers_the_workspace_and_the_catalogue(
    page: Page, erc_hub: Hub, screenshot: Callable[..., Path]
) -> None:
    hub_login(page, erc_hub.url, "homepage-author")
    start = page.get_by_role("button", name="Start my workspace")
    expect(start).to_be_visible()
    expect(start).to_have_attribute("href", "/hub/spawn/homepage-author")
    expect(page.get_by_role("button", name="Browse published compendia")).to_have_attribute(
        "href", "/services/erc/"
    )
    # the hub's own server table ("Add New Server", hand-named servers) is not offered
    expect(page.locator("#start")).to_have_count(0)
    expect(page.locator(".add-server-row")).to_have_count(0)
    screenshot(page)


def test_a_refused_start_says_why_on_the_page(
    page: Page, erc_hub: Hub, screenshot: Callable[..., Path]
) -> None:
    hub_login(page, erc_hub.url, "refused-author")
    page.goto(f"{erc_hub.url}/hub/spawn/refused-author/erc-manual?compendium=../etc")
    # the hub's error page with the reason, not a bare status
    expect(page.locator("h1")).to_contain_text("400")
    expect(page.locator("body")).to_contain_text("user_options.compendium is not a valid id")
    screenshot(page)
