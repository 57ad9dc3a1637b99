"""erchub's JupyterLab extension in headless Chromium (browser tier).

- In a real JupyterLab of this environment (the server extension and the lab extension as
  installed): the ERC panel shows the notebook's parameters as widgets with their defaults, a
  moved slider and "Run with these values" change the figure, "Reset" restores the defaults.
- In a real hub-spawned session (hub + docker tiers, the runtime image with erchub's wheel):
  "Publish ERC" on the launched notebook's toolbar offers the launched compendium's folder
  as derived from it, the form's metadata uploads a candidate that the erc API then lists,
  its job runs, and publishing ends the candidacy.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from playwright.sync_api import Page, expect

from erchub.sessions import server_name_for
from tests.browser.conftest import hub_login
from tests.conftest import heading, parameters_cell, running_jupyter, write_notebook
from tests.hub.conftest import REPO, Hub, zip_directory
from tests.hub.test_launch import publish, stop

EXAMPLE = REPO / "examples" / "sine-wave"
#: a run starts a kernel and executes the notebook; a session's first launch builds its image
RUN_TIMEOUT_MS = 120_000
LAUNCH_TIMEOUT_MS = 300_000
JOB_TIMEOUT_MS = 300_000


def executed_workspace(tmp_path: Path) -> bytes:
    """A workspace whose notebook (a parameters cell, a printed result) holds its outputs."""
    root = tmp_path / "executed"
    notebook = write_notebook(
        root / "analysis" / "main.ipynb",
        heading("# Origin"),
        parameters_cell("factor = 2"),
        "print(factor * 21)",
    )
    executed = NotebookClient(nbformat.read(notebook, as_version=4), timeout=120).execute()
    nbformat.write(executed, notebook)
    (root / "requirements.txt").write_text("pip>=20\n")
    return zip_directory(root)


def figure_bytes(page: Page) -> bytes:
    source = (
        page.locator(".erchub-results-view .erchub-result-run img").first.get_attribute("src") or ""
    )
    assert source.startswith("data:image/png;base64,"), source[:40]
    return base64.b64decode(source.split(",", 1)[1])


def open_panel(page: Page) -> None:
    tab = page.locator('.jp-SideBar [data-id="erchub-panel"]')
    tab.click()
    expect(page.locator("#erchub-panel")).to_be_visible()


@pytest.mark.browser
def test_panel_reruns_the_notebook_with_new_values(
    page: Page, screenshot: Callable[..., Path], tmp_path: Path
) -> None:
    # the bundled example: its erc.yml binds a slider and a select, and the cells to show
    workspace = tmp_path / "work"
    shutil.copytree(EXAMPLE, workspace)
    notebook_before = (workspace / "main.ipynb").read_bytes()

    with running_jupyter(workspace, lab=True, log=tmp_path / "lab.log") as (url, token):
        page.goto(f"{url}/lab/tree/main.ipynb?token={token}")
        expect(page.locator(".jp-NotebookPanel")).to_contain_text(
            "frequency = 1.0", timeout=RUN_TIMEOUT_MS
        )
        open_panel(page)
        section = page.locator('.erchub-parameters-section[data-state="ready"]')
        expect(section).to_be_visible()

        # the widgets, with the defaults of the parameters cell and the hints of ui_bindings
        frequency = page.locator('.erchub-parameter[data-name="frequency"]')
        expect(frequency).to_have_attribute("data-widget", "slider")
        expect(frequency).to_contain_text("Frequency")
        slider = frequency.locator(".erchub-parameter-input")
        expect(slider).to_have_attribute("type", "range")
        expect(slider).to_have_value("1")
        expect(slider).to_have_attribute("min", "0.5")
        expect(slider).to_have_attribute("max", "5")
        points = page.locator('.erchub-parameter[data-name="points"]')
        expect(points).to_have_attribute("data-widget", "number")
        expect(points.locator(".erchub-parameter-input")).to_have_value("400")
        expect(page.locator('.erchub-parameter[data-name="title"]')).to_have_attribute(
            "data-widget", "select"
        )
        expect(page.locator('.erchub-parameter[data-name="amplitude"]')).to_contain_text(
            "peak height of the wave"
        )

        # the defaults first, then a moved slider: the figure changes
        page.locator(".erchub-run-button").click()
        status = page.locator(".erchub-run-status")
        expect(status).to_have_attribute("data-state", "done", timeout=RUN_TIMEOUT_MS)
        default_figure = figure_bytes(page)
        slider.fill("3.5")
        expect(frequency.locator(".erchub-slider-value")).to_contain_text("3.5")
        page.locator(".erchub-run-button").click()
        expect(status).to_have_attribute("data-state", "done", timeout=RUN_TIMEOUT_MS)
        used = page.locator('.erchub-results-view .erchub-values li[data-name="frequency"]')
        expect(used.locator(".erchub-value")).to_contain_text("3.5")
        changed_figure = figure_bytes(page)
        assert changed_figure != default_figure, "a new frequency draws another figure"
        screenshot(page, "rerun")

        # a value that cannot be used is named, and nothing runs
        points_input = points.locator(".erchub-parameter-input")
        points_input.fill("many")
        expect(points.locator(".erchub-field-error")).not_to_be_empty()
        page.locator(".erchub-run-button").click()
        expect(status).to_have_attribute("data-state", "error")
        expect(status).to_contain_text("cannot be used")
        assert figure_bytes(page) == changed_figure, "the last run's figure stays"

        page.locator(".erchub-reset-button").click()
        expect(slider).to_have_value("1")
        expect(points_input).to_have_value("400")
        expect(points.locator(".erchub-field-error")).to_be_empty()

    assert (workspace / "main.ipynb").read_bytes() == notebook_before, "the notebook is untouched"


@pytest.mark.browser
@pytest.mark.hub
@pytest.mark.docker
def test_publish_erc_from_a_hub_session(
    erc_hub: Hub,
    docker_client: Any,
    page: Page,
    screenshot: Callable[..., Path],
    tmp_path: Path,
) -> None:
    author = "publisher"
    token = erc_hub.token(author)
    # the author's session: a published ERC launched into its runtime image; its notebook was
    # executed, so the outputs the job's check compares are the notebook's own
    source_id = publish(erc_hub, erc_hub.token("source-author"), executed_workspace(tmp_path))
    server = server_name_for(source_id)
    hub_login(page, erc_hub.url, author)
    page.goto(f"{erc_hub.url}/services/erc/launch/{source_id}")
    lab = f"/user/{author}/{server}/lab/tree/analysis/main.ipynb"
    page.wait_for_url(lambda url: lab in url, timeout=LAUNCH_TIMEOUT_MS)
    expect(page.locator(".jp-NotebookPanel")).to_contain_text(
        "factor = 2", timeout=LAUNCH_TIMEOUT_MS
    )

    # Publish ERC: the launched compendium's folder, derived from it (it is someone else's)
    page.locator(".erchub-publish-button").click()
    folder_step = page.locator('.erchub-publish-step[data-step="folder"]')
    expect(folder_step.locator(".erchub-publish-folder")).to_have_value("/")
    expect(folder_step.locator(".erchub-publish-modes")).to_contain_text(
        f"derived from {source_id}"
    )
    folder_step.locator(".erchub-publish-next").click()

    # the metadata form: a bad ORCID iD is named; a good one and the licences upload it
    form = page.locator(".erchub-publish .erchub-metadata-form")
    form.locator('.erchub-field[data-field="title"] input').fill("Published from JupyterLab")
    form.locator('.erchub-field[data-field="creators.0.name"] input').fill("Ada Lovelace")
    orcid = form.locator('.erchub-field[data-field="creators.0.orcid"] input')
    orcid.fill("0000-0002-1825-0098")
    expect(form.locator('.erchub-field[data-field="creators.0.orcid"]')).to_contain_text(
        "last character should be 7"
    )
    orcid.fill("0000-0002-1825-0097")
    for kind, licence in (("code", "MIT"), ("data", "CC0-1.0"), ("text", "CC-BY-4.0")):
        form.locator(f'.erchub-field[data-field="license.{kind}"] input').fill(licence)
    form.locator(".erchub-metadata-save").click()
    metadata_step = page.locator('.erchub-publish-step[data-step="metadata"]')
    expect(metadata_step).to_have_attribute("data-status", "done", timeout=RUN_TIMEOUT_MS)
    expect(page.locator(".erchub-publish .erchub-saved")).to_have_text("Saved.")
    compendium_id = page.locator(".erchub-publish .erchub-compendium-id").first.inner_text()
    candidates = erc_hub.request("GET", "/compendium?candidate=true", token=token).json()
    assert compendium_id.strip() in candidates["results"]
    screenshot(page, "candidate")
    stored = erc_hub.request("GET", f"/compendium/{compendium_id}", token=token).json()
    assert stored["candidate"] is True
    assert stored["metadata"]["o2r"]["title"] == "Published from JupyterLab"
    assert stored["derived_from"] == source_id

    # the job runs live, then publishing ends the candidacy
    job_step = page.locator('.erchub-publish-step[data-step="job"]')
    expect(job_step).to_have_attribute("data-status", "done", timeout=JOB_TIMEOUT_MS)
    page.locator(".erchub-publish-confirm").click()
    done = page.locator('.erchub-publish-step[data-step="done"]')
    expect(done).to_have_attribute("data-status", "done", timeout=RUN_TIMEOUT_MS)
    expect(page.locator(".erchub-launch-link")).to_have_attribute(
        "href", f"{erc_hub.url}/services/erc/launch/{compendium_id}"
    )
    published = erc_hub.request("GET", f"/compendium/{compendium_id}", token=token).json()
    assert published["candidate"] is False
    screenshot(page, "published")

    stop(erc_hub, token, author, server)
