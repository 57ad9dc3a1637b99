"""The journal's review in Chromium: the author creates a blind review link on the landing page
of their candidate, a reviewer opens it (no author named) and the author, seeing its use,
revokes it: the reviewer's next visit is the 404 page."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import hub_login
from tests.hub.conftest import Hub
from tests.hub.test_review_links import ORCID, candidate_of

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
        expect(reviewer.locator("#erc-launch")).to_have_count(0)
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
