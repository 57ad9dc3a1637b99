"""The three journeys as a person walks them, end to end in Chromium through the hub's proxy
(browser + hub + docker tiers), one screenshot per step under build/artifacts/browser/:

- the author starts from a blank JupyterLab of their own ("Start my workspace"), writes a
  notebook with a ``parameters`` cell in a folder (no environment file: Publish ERC writes a
  requirements.txt from its imports), publishes that folder with "Publish ERC",
  and finds its landing page, whose Launch button opens it;
- the reader finds a compendium in the catalogue's search, opens its landing page, launches
  it, changes a parameter and sees the run's figure at full size in the results tab.

(The reviewer's journey, a launch link into JupyterLab, is tests/browser/test_launch.py; the
refusals are in test_publish_journey.py and test_hub_pages.py.) The README's three quickstart
images are screenshots these tests make.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from playwright.sync_api import Page, expect

from erchub.sessions import server_name_for
from tests.browser.conftest import hub_login, wait_for_server
from tests.browser.test_catalogue import EXAMPLE_TITLE, published_and_checked
from tests.browser.test_lab import LAUNCH_TIMEOUT_MS, RUN_TIMEOUT_MS
from tests.browser.test_publish_journey import (
    field,
    put_contents,
    show_panel,
    upload_with_metadata,
)
from tests.browser.test_results_tab import walk_the_results_journey
from tests.hub.conftest import Hub
from tests.hub.test_launch import stop

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.docker]

#: the author: an ORCID iD, as ORCID login names users (the publish form starts with it)
AUTHOR = "0000-0002-1825-0097"
#: a first start of a workspace builds the authoring image (numpy, scipy, pandas, matplotlib)
WORKSPACE_TIMEOUT_MS = 20 * 60 * 1000

GROWTH = new_notebook(
    cells=[
        new_markdown_cell("# Growth of a population\n\nHow a population grows in ten steps."),
        new_code_cell("rate = 0.1", metadata={"tags": ["parameters"]}),
        new_code_cell(
            "import matplotlib.pyplot as plt\n"
            "sizes = [100 * (1 + rate) ** step for step in range(10)]\n"
            "print(f'after ten steps: {sizes[-1]:.0f}')\n"
            "plt.plot(sizes)\n"
            "plt.show()"
        ),
    ],
    metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
)


def test_an_author_publishes_from_their_own_workspace(
    erc_hub: Hub, docker_client: Any, page: Page, screenshot: Callable[..., Path]
) -> None:
    token = erc_hub.token(AUTHOR)
    # volumes outlive hubs: a workspace an earlier run left is not this author's blank one
    for volume in docker_client.volumes.list(filters={"label": f"org.erchub.user={AUTHOR}"}):
        volume.remove(force=True)
    hub_login(page, erc_hub.url, AUTHOR)
    screenshot(page, "1-home")
    page.get_by_role("button", name="Start my workspace").click()
    server_url = f"/user/{AUTHOR}/"
    wait_for_server(page, f"{server_url}lab", WORKSPACE_TIMEOUT_MS)
    expect(page.locator(".jp-Launcher")).to_be_visible(timeout=RUN_TIMEOUT_MS)
    screenshot(page, "2-blank-workspace")

    # a folder with the author's notebook (written as the author, through the server's API)
    put_contents(erc_hub, token, server_url, "growth", {"type": "directory"})
    model = {"type": "notebook", "format": "json", "content": GROWTH}
    put_contents(erc_hub, token, server_url, "growth/growth.ipynb", model)
    page.goto(f"{erc_hub.url}{server_url}lab/tree/growth/growth.ipynb")
    expect(page.locator(".jp-NotebookPanel")).to_contain_text("rate = 0.1", timeout=RUN_TIMEOUT_MS)
    show_panel(page)
    expect(page.locator("#erchub-panel .erchub-context")).to_contain_text("not yet published")

    # Publish ERC: the folder's files; the never-run notebook is run and saved first
    page.locator(".jp-NotebookPanel:visible .erchub-publish-button").click()
    step = page.locator('.erchub-publish-step[data-step="folder"]')
    expect(step.locator(".erchub-publish-folder")).to_have_value("/growth")
    expect(step.locator(".erchub-run-first")).to_contain_text("Run all and save first?")
    # no environment file in the folder: one is written from the notebook's imports
    expect(step).to_contain_text("requirements.txt is written from the notebook's imports")
    expect(step).to_contain_text("matplotlib==")
    step.locator(".erchub-run-all").click()
    expect(step.locator(".erchub-run-first")).to_have_count(0, timeout=RUN_TIMEOUT_MS)
    expect(page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output img")).to_be_visible()
    step.locator(".erchub-publish-next").click()

    # the form starts from the author's notebook and login: the title, their ORCID iD
    form = page.locator(".erchub-publish .erchub-metadata-form")
    expect(field(form, "title").locator("input")).to_have_value("Growth of a population")
    expect(field(form, "creators.0.orcid").locator("input")).to_have_value(AUTHOR)
    compendium_id = upload_with_metadata(page, "Josiah Carberry")
    page.locator(".erchub-publish-confirm").click()
    expect(page.locator('.erchub-publish-step[data-step="done"]')).to_have_attribute(
        "data-status", "done", timeout=RUN_TIMEOUT_MS
    )
    screenshot(page, "3-published")

    published = erc_hub.request("GET", f"/compendium/{compendium_id}", token).json()
    o2r = published["metadata"]["o2r"]
    assert (published["candidate"], published["user"]) == (False, AUTHOR)
    assert (o2r["mainfile"], o2r["title"]) == ("growth.ipynb", "Growth of a population")
    assert set(o2r["files"]) == {"growth.ipynb", "erc.yml", "requirements.txt"}
    assert o2r["creators"][0]["orcid"] == AUTHOR

    # its landing page: the link for the paper; its Launch button opens it in JupyterLab
    page.goto(f"{erc_hub.url}/services/erc/compendium/{compendium_id}")
    expect(page.locator("#erc-title")).to_have_text("Growth of a population")
    expect(page.locator("#erc-verdict")).to_have_attribute("data-verdict", "reproduced")
    screenshot(page, "4-landing-page")
    page.get_by_role("link", name="Launch in JupyterLab").click()
    session = server_name_for(compendium_id)
    wait_for_server(page, f"/user/{AUTHOR}/{session}/lab/tree/growth.ipynb", LAUNCH_TIMEOUT_MS)
    expect(page.locator(".jp-NotebookPanel")).to_contain_text("rate = 0.1", timeout=RUN_TIMEOUT_MS)
    stop(erc_hub, token, AUTHOR, session)
    stop(erc_hub, token, AUTHOR, "")


def test_a_reader_goes_from_the_catalogue_to_a_run_of_their_own(
    erc_hub: Hub, docker_client: Any, page: Page, screenshot: Callable[..., Path]
) -> None:
    keyword = "journeyreader"
    compendium_id = published_and_checked(erc_hub, keyword)
    reader = "journey-reader"
    hub_login(page, erc_hub.url, reader)
    page.goto(f"{erc_hub.url}/services/erc/")
    page.get_by_label("Search compendia").fill(keyword)
    page.get_by_role("button", name="Search").click()
    result = page.locator(f'#erc-results li[data-compendium="{compendium_id}"]')
    expect(result).to_be_visible()
    screenshot(page, "1-catalogue")
    result.get_by_role("link", name=EXAMPLE_TITLE).click()
    expect(page.locator("#erc-title")).to_have_text(EXAMPLE_TITLE)
    screenshot(page, "2-landing-page")
    page.get_by_role("link", name="Launch in JupyterLab").click()
    server = server_name_for(compendium_id)
    wait_for_server(page, f"/user/{reader}/{server}/lab/tree/main.ipynb", LAUNCH_TIMEOUT_MS)
    expect(page.locator(".jp-NotebookPanel")).to_contain_text(
        "frequency = 1.0", timeout=LAUNCH_TIMEOUT_MS
    )
    walk_the_results_journey(page, screenshot, f"{erc_hub.url}/user/{reader}/{server}")
    stop(erc_hub, erc_hub.token(reader), reader, server)
