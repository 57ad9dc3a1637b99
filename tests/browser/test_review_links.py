"""The journal's review in Chromium: the author creates a blind review link on the landing page
of their candidate, a reviewer opens it (no author named) and the author, seeing its use,
revokes it: the reviewer's next visit is the 404 page. A reviewer without an account opens a
blind link as a guest, launches the candidate in JupyterLab, and is stopped when the link is
revoked."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from erchub.sessions import server_name_for
from tests.browser.conftest import hub_login, wait_for_server
from tests.hub.conftest import Hub
from tests.hub.test_launch import server_model
from tests.hub.test_review_links import ORCID, candidate_of, create_link

#: a first launch may build the runtime image
LAUNCH_TIMEOUT_MS = 900_000

pytestmark = [pytest.mark.browser, pytest.mark.hub]


def test_an_author_sends_a_blind_link_and_revokes_it(
    browser: Browser, page: Page, erc_hub: Hub, tmp_path: Path, screenshot: Callable[..., Path]
) -> None:
    author_name = f"Dora Author{secrets.token_hex(2)}"
    candidate = candidate_of(erc_hub, erc_hub.token("browserauthor"), tmp_path, author_name)
    landing = f"{erc_hub.url}/services/erc/compendium/{candidate}"

    hub_login(page, erc_hub.url, "browserauthor")
    page.goto(landing)
    expect(page.locator("#erc-authors")).to_contain_text(author_name)
    section = page.locator("#erc-review-links")
    expect(section).to_contain_text("not names written inside the files")
    page.select_option("#erc-link-mode", "blind")
    page.click("#erc-create-link")
    row = page.locator("#erc-links tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("blind")
    expect(row.locator("td.uses")).to_have_text("0")
    link_url = row.locator("a").get_attribute("href")
    assert link_url and "/services/erc/link/" in link_url
    screenshot(page, "author-created")

    reviewer_context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        reviewer = reviewer_context.new_page()
        hub_login(reviewer, erc_hub.url, "browserreviewer")
        reviewer.goto(link_url)
        expect(reviewer.locator("#erc-review-note")).to_contain_text("hides its authors")
        expect(reviewer.locator("#erc-authors-hidden")).to_be_visible()
        expect(reviewer.locator("#erc-title")).to_contain_text("Review")
        expect(reviewer.locator("#erc-launch")).to_be_visible()
        expect(reviewer.locator("#erc-review-links")).to_have_count(0)
        body = reviewer.locator("body").inner_text()
        assert author_name not in body and ORCID not in body
        screenshot(reviewer, "reviewer-blind")

        page.reload()
        expect(page.locator("#erc-links td.uses")).to_have_text("1")
        page.click("button.revoke")
        expect(page.locator("#erc-links tbody tr")).to_contain_text("revoked")
        expect(page.locator("button.revoke")).to_have_count(0)
        screenshot(page, "author-revoked")

        reviewer.goto(link_url)
        expect(reviewer.locator("[data-status='404']")).to_be_visible()
        screenshot(reviewer, "reviewer-revoked")
    finally:
        reviewer_context.close()


def test_a_guest_reviews_a_blind_candidate_in_jupyterlab(
    browser: Browser, erc_hub: Hub, tmp_path: Path, screenshot: Callable[..., Path]
) -> None:
    author_token = erc_hub.token("guestauthor")
    author_name = f"Gale Author{secrets.token_hex(2)}"
    candidate = candidate_of(erc_hub, author_token, tmp_path, author_name)
    link = create_link(erc_hub, author_token, candidate, mode="blind")

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        guest = context.new_page()
        guest.goto(f"{erc_hub.url}{link['url']}")
        guest.wait_for_url(lambda url: "/hub/review/" in url)
        expect(guest.locator("#erc-review")).to_contain_text("without its authors' names")
        screenshot(guest, "review-entry")
        guest.click("#erc-review-guest button")
        guest.wait_for_url(lambda url: f"/services/erc/compendium/{candidate}" in url)
        expect(guest.locator("#erc-review-note")).to_contain_text("hides its authors")
        body = guest.locator("body").inner_text()
        assert author_name not in body and ORCID not in body
        screenshot(guest, "guest-landing")

        guest.click("#erc-launch")
        server = server_name_for(candidate)
        wait_for_server(guest, f"/{server}/lab", LAUNCH_TIMEOUT_MS)
        expect(guest.locator(".jp-NotebookPanel")).to_contain_text(
            "Counts turns", timeout=LAUNCH_TIMEOUT_MS
        )
        guest_name = guest.url.split("/user/")[1].split("/")[0]
        assert guest_name.startswith("guest-")
        screenshot(guest, "guest-jupyterlab")

        revoked = erc_hub.request(
            "DELETE", f"/compendium/{candidate}/link?link={link['id']}", author_token
        )
        assert revoked.status_code == 204
        deadline = time.monotonic() + 30
        while erc_hub.hub_api("GET", f"/users/{guest_name}").status_code != 404:
            assert time.monotonic() < deadline, "the guest was not deleted within 30 s"
            time.sleep(0.5)
        assert server_model(erc_hub, erc_hub.manager_token, guest_name, server) is None
        # the link's page is the hub's 404 now (the guest's identity is gone with the link)
        guest.goto(f"{erc_hub.url}{link['url']}")
        expect(guest.locator("body")).to_contain_text("no longer works")
        screenshot(guest, "guest-after-revocation")
    finally:
        context.close()
