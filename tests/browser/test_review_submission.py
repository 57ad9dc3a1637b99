"""The journal's workflow from JupyterLab, in Chromium (browser + hub + docker tiers): an author
in their own workspace submits a folder for review with "Publish ERC" -> "Submit for review
(stays unpublished)", a blind review link with a last day: the candidate is uploaded and run
as when publishing, stays a candidate, and the flow shows the link's full address with Copy
and what blind mode cannot hide. The panel lists the link. Another user opens it: its landing
page names no author; the author's panel then counts the use."""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import hub_login, wait_for_server
from tests.browser.test_journeys import WORKSPACE_TIMEOUT_MS
from tests.browser.test_lab import RUN_TIMEOUT_MS
from tests.browser.test_publish_journey import (
    field,
    put_contents,
    show_panel,
    upload_with_metadata,
)
from tests.hub.conftest import Hub
from tests.hub.test_launch import stop

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.docker]

AUTHOR = "review-submitter"
REVIEWER = "review-reader"

#: the submitted notebook: no author's name inside it (blind mode cannot hide those)
SQUARES = new_notebook(
    cells=[
        new_markdown_cell("# Squares under review\n\nThe squares of the first five numbers."),
        new_code_cell("numbers = range(1, 6)"),
        new_code_cell("print([n * n for n in numbers])"),
    ],
    metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
)


def test_an_author_submits_a_folder_for_blind_review(
    erc_hub: Hub,
    docker_client: Any,
    browser: Browser,
    page: Page,
    screenshot: Callable[..., Path],
) -> None:
    author_name = f"Rosalind Submitter{secrets.token_hex(2)}"
    token = erc_hub.token(AUTHOR)
    # volumes outlive hubs: a workspace an earlier run left is not this author's blank one
    for volume in docker_client.volumes.list(filters={"label": f"org.erchub.user={AUTHOR}"}):
        volume.remove(force=True)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=erc_hub.url)
    hub_login(page, erc_hub.url, AUTHOR)
    page.get_by_role("button", name="Start my workspace").click()
    server_url = f"/user/{AUTHOR}/"
    wait_for_server(page, f"{server_url}lab", WORKSPACE_TIMEOUT_MS)
    expect(page.locator(".jp-Launcher")).to_be_visible(timeout=RUN_TIMEOUT_MS)

    put_contents(erc_hub, token, server_url, "squares", {"type": "directory"})
    model = {"type": "notebook", "format": "json", "content": SQUARES}
    put_contents(erc_hub, token, server_url, "squares/squares.ipynb", model)
    page.goto(f"{erc_hub.url}{server_url}lab/tree/squares/squares.ipynb")
    expect(page.locator(".jp-NotebookPanel")).to_contain_text(
        "numbers = range", timeout=RUN_TIMEOUT_MS
    )
    show_panel(page)

    # the folder, run and saved first; the metadata with the author's name
    page.locator(".jp-NotebookPanel:visible .erchub-publish-button").click()
    step = page.locator('.erchub-publish-step[data-step="folder"]')
    expect(step.locator(".erchub-publish-folder")).to_have_value("/squares")
    step.locator(".erchub-run-all").click()
    expect(step.locator(".erchub-run-first")).to_have_count(0, timeout=RUN_TIMEOUT_MS)
    step.locator(".erchub-publish-next").click()
    form = page.locator(".erchub-publish .erchub-metadata-form")
    expect(field(form, "title").locator("input")).to_have_value("Squares under review")
    compendium_id = upload_with_metadata(page, author_name)

    # the last step: submit for review, blind, working through a day four weeks from now
    last = page.locator('.erchub-publish-step[data-step="publish"]')
    expect(last).to_have_attribute("data-status", "active")
    expect(last.locator(".erchub-review-options")).to_be_hidden()
    last.locator('.erchub-outcome[data-outcome="review"] input').check()
    expect(last.locator(".erchub-review-options")).to_be_visible()
    expect(last.locator(".erchub-publish-confirm")).to_have_text("Submit for review")
    last.locator('.erchub-review-mode input[value="blind"]').check()
    expect(last.locator(".erchub-blind-caveat")).to_be_visible()
    day = (datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(days=28)).isoformat()
    last.locator(".erchub-review-expires").fill(day)
    last.scroll_into_view_if_needed()
    screenshot(page, "1-submit-for-review")
    last.locator(".erchub-publish-confirm").click()

    done = page.locator('.erchub-publish-step[data-step="done"]')
    expect(done).to_have_attribute("data-status", "done", timeout=RUN_TIMEOUT_MS)
    expect(done).to_contain_text("stays unpublished")
    card = done.locator(".erchub-review-link-card")
    expect(card.locator(".erchub-review-link-mode")).to_have_text("blind (authors hidden)")
    expect(card).to_contain_text(f"expires {day} 23:59 UTC")
    expect(card.locator(".erchub-blind-note")).to_contain_text(
        "cannot hide names written inside the files"
    )
    link_url = card.locator("a.erchub-review-link").inner_text()
    links = erc_hub.request("GET", "/link", token).json()["results"]
    assert [(link["compendium_id"], link["mode"]) for link in links] == [(compendium_id, "blind")]
    assert link_url == f"{erc_hub.url}/services/erc/link/{links[0]['id']}"
    assert card.locator("a.erchub-review-link").get_attribute("href") == link_url
    card.locator(".erchub-review-link-copy").click()
    expect(card.locator(".erchub-copy-status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == link_url
    done.scroll_into_view_if_needed()
    screenshot(page, "2-review-link")

    # not published: a candidate of the author's, with the author's name in its metadata
    shown = erc_hub.request("GET", f"/compendium/{compendium_id}", token).json()
    assert (shown["candidate"], shown["user"]) == (True, AUTHOR)
    assert shown["metadata"]["o2r"]["creators"][0]["name"] == author_name

    # the panel of the author's candidate lists its review links
    page.locator(".erchub-publish-close").click()
    section = page.locator("#erchub-panel .erchub-review-links-section")
    item = section.locator(f'.erchub-review-link-item[data-link-id="{links[0]["id"]}"]')
    expect(item).to_have_attribute("data-state", "active")
    expect(item.locator(".erchub-review-link-uses")).to_have_text("not used yet")
    expect(item.locator(".erchub-review-revoke")).to_be_visible()
    section.scroll_into_view_if_needed()
    screenshot(page, "3-panel-review-links")

    # another user opens the link: the candidate's landing page names no author
    reviewer_context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        reviewer = reviewer_context.new_page()
        hub_login(reviewer, erc_hub.url, REVIEWER)
        reviewer.goto(link_url)
        expect(reviewer.locator("#erc-title")).to_contain_text("Squares under review")
        expect(reviewer.locator("#erc-review-note")).to_contain_text("hides its authors")
        expect(reviewer.locator("#erc-authors-hidden")).to_be_visible()
        body = reviewer.locator("body").inner_text()
        assert author_name not in body and AUTHOR not in body
        screenshot(reviewer, "4-reviewer-landing-page")
    finally:
        reviewer_context.close()

    # the author sees the use (counts only, never who)
    section.locator(".erchub-review-reload").click()
    expect(item.locator(".erchub-review-link-uses")).to_have_text("used once")
    section.scroll_into_view_if_needed()
    screenshot(page, "5-panel-link-used")
    stop(erc_hub, token, AUTHOR, "")
