"""The reader's journey in Chromium, without logging in: the catalogue, its search, a landing
page with the title, authors, the figure, the last check's verdict, Launch and Cite."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.hub.conftest import Hub, example_zip

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.docker]

EXAMPLE_TITLE = "Sine waves under a changing frequency"
ORCID = "0000-0002-1694-233X"
#: a first check builds the example's runtime image (numpy, matplotlib)
JOB_SECONDS = 1200


def published_and_checked(hub: Hub, keyword: str) -> str:
    """The example, published with an author and ``keyword``, after a successful check."""
    token = hub.token("readerauthor")
    compendium_id = hub.create(token, example_zip())
    path = f"/compendium/{compendium_id}/metadata"
    o2r = hub.request("GET", path, token).json()["metadata"]["o2r"]
    o2r.update(creators=[{"name": "Ada Lovelace", "orcid": ORCID}], keywords=[keyword, "waves"])
    saved = hub.request("PUT", path, token, json={"o2r": o2r})
    assert saved.status_code == 200, saved.text
    created = hub.request("POST", "/job", token, json={"compendium_id": compendium_id})
    assert created.status_code == 201, created.text
    job = hub.wait_for_job(token, created.json()["job_id"], seconds=JOB_SECONDS)
    failed_steps = {name: step["reason"] for name, step in job["steps"].items() if step["reason"]}
    assert job["status"] == "success", (job["reason"], failed_steps)
    return compendium_id


def test_a_reader_finds_a_compendium_and_its_landing_page(
    docker_client: Any, page: Page, erc_hub: Hub, screenshot: Callable[..., Path]
) -> None:
    keyword = f"oscillation{secrets.token_hex(3)}"
    compendium_id = published_and_checked(erc_hub, keyword)
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        # the display HTML may ask for hosts out of reach (nbconvert's MathJax): the author's
        # content, not the page's; what the page's policy blocks is the page's
        if "Content Security Policy" in message.text:
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    # The catalogue, without logging in: newest first, the search box labelled.
    page.goto(f"{erc_hub.url}/services/erc/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Executable Research Compendia")
    expect(page.locator("#erc-summary")).to_contain_text("newest first")
    expect(page.locator("#erc-login")).to_be_visible()
    screenshot(page, "1-catalogue")

    page.get_by_label("Search compendia").fill(keyword)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(f"**/services/erc/?q={keyword}")
    expect(page.locator("#erc-summary")).to_contain_text(
        f"1 published compendium matches “{keyword}”"
    )
    result = page.locator(f'#erc-results li[data-compendium="{compendium_id}"]')
    expect(result).to_contain_text("Ada Lovelace")
    screenshot(page, "2-search")

    page.get_by_label("Search compendia").fill(f"{keyword} nosuchword")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#erc-no-results")).to_contain_text("No published compendium matches")
    screenshot(page, "3-no-results")
    page.go_back()

    result.get_by_role("link", name=EXAMPLE_TITLE).click()
    page.wait_for_url(f"**/services/erc/compendium/{compendium_id}")
    expect(page.locator("#erc-title")).to_have_text(EXAMPLE_TITLE)
    orcid = page.get_by_role("link", name="ORCID iD of Ada Lovelace")
    expect(orcid).to_have_attribute("href", f"https://orcid.org/{ORCID}")
    expect(page.locator("#erc-verdict")).to_have_attribute("data-verdict", "reproduced")
    expect(page.locator("#erc-verdict")).to_contain_text("Reproduced")
    launch = page.get_by_role("link", name="Launch in JupyterLab")
    expect(launch).to_have_attribute("href", f"/services/erc/launch/{compendium_id}")
    expect(page.locator("#erc-bibtex")).to_contain_text(f"@misc{{erc:{compendium_id},")
    expect(page.locator("#erc-bibtex")).to_contain_text("author = {Lovelace, Ada}")
    expect(page.locator("#erc-files")).to_contain_text("main.ipynb")
    expect(page.locator("#erc-jobs .status").first).to_have_text("success")

    # the figure: the display HTML in its sandboxed frame shows the notebook's image
    display = page.locator("#erc-display")
    display.scroll_into_view_if_needed()
    figure = page.frame_locator("#erc-display").locator("img").first
    expect(figure).to_be_visible()
    width = figure.evaluate("img => img.naturalWidth")
    assert width > 100, width
    figure.scroll_into_view_if_needed()
    screenshot(page, "4-landing")

    page.locator("#cite").scroll_into_view_if_needed()
    # no DOI yet: every format to download but DataCite XML, which needs one
    downloads = page.locator("#erc-cite-downloads a")
    expect(downloads).to_have_count(4)
    expect(page.locator('#erc-cite-downloads a[data-format="datacite"]')).to_have_count(0)
    expect(page.locator("#cite .note")).to_contain_text("no DOI yet")
    page.get_by_text("DataCite metadata (JSON)").click()
    expect(page.locator("#erc-datacite")).to_contain_text(
        '"resourceTypeGeneral": "ComputationalNotebook"'
    )
    screenshot(page, "5-cite")
    assert problems == []
