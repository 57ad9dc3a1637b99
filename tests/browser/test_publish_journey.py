"""The author's journey in headless Chromium (browser + hub + docker tiers): in a session
launched for someone else's compendium, the author makes a folder with a notebook of their
own and publishes it with "Publish ERC": the first step shows only that folder's files and
asks to run the never-run notebook first, the form is pre-filled from that notebook,
missing licences are refused before anything is uploaded, and the published compendium's
main notebook is the author's. The launched compendium's metadata stays read-only to them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from playwright.sync_api import Page, expect

from erchub.sessions import server_name_for
from tests.browser.conftest import hub_login
from tests.browser.test_lab import (
    JOB_TIMEOUT_MS,
    LAUNCH_TIMEOUT_MS,
    RUN_TIMEOUT_MS,
    executed_workspace,
    open_panel,
)
from tests.hub.conftest import Hub
from tests.hub.test_launch import publish, stop

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.docker]

#: the author's own notebook: a heading for the title, code never run (no stored outputs)
DOUBLING = new_notebook(
    cells=[
        new_markdown_cell("# Doubling numbers\n\nWhat twice twenty-one is."),
        new_code_cell("n = 21"),
        new_code_cell("print(n * 2)"),
    ],
    metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
)


def put_contents(hub: Hub, token: str, server_url: str, path: str, model: dict[str, Any]) -> None:
    """Create a folder or file in the session through its contents API, as the author."""
    response = httpx.put(
        f"{hub.url}{server_url}api/contents/{path}",
        headers={"Authorization": f"token {token}"},
        json=model,
        timeout=60,
    )
    assert response.status_code in (200, 201), response.text


def show_panel(page: Page) -> None:
    """Show the ERC panel (a launched session may open on it already: a click would close it)."""
    if not page.locator("#erchub-panel").is_visible():
        open_panel(page)


def field(form: Any, name: str) -> Any:
    return form.locator(f'.erchub-field[data-field="{name}"]')


def upload_with_metadata(page: Page, author_name: str) -> str:
    """In the publish flow's metadata step: name the first author, give the code, data and
    text licences, save (the folder is uploaded as a candidate) and wait until its job is done.
    The candidate's id."""
    form = page.locator(".erchub-publish .erchub-metadata-form")
    field(form, "creators.0.name").locator("input").fill(author_name)
    field(form, "license.code").locator("input").fill("MIT")
    field(form, "license.data").locator("input").fill("CC0-1.0")
    field(form, "license.text").locator("input").fill("CC-BY-4.0")
    form.locator(".erchub-metadata-save").click()
    expect(page.locator('.erchub-publish-step[data-step="metadata"]')).to_have_attribute(
        "data-status", "done", timeout=RUN_TIMEOUT_MS
    )
    compendium_id = page.locator(".erchub-publish .erchub-compendium-id").first.inner_text()
    expect(page.locator('.erchub-publish-step[data-step="job"]')).to_have_attribute(
        "data-status", "done", timeout=JOB_TIMEOUT_MS
    )
    return compendium_id


def test_an_author_publishes_their_own_folder_from_a_launched_session(
    erc_hub: Hub,
    docker_client: Any,
    page: Page,
    screenshot: Callable[..., Path],
    tmp_path: Path,
) -> None:
    author = "journey-author"
    token = erc_hub.token(author)
    source_id = publish(erc_hub, erc_hub.token("journey-source"), executed_workspace(tmp_path))
    server = server_name_for(source_id)
    hub_login(page, erc_hub.url, author)
    page.goto(f"{erc_hub.url}/services/erc/launch/{source_id}")
    server_url = f"/user/{author}/{server}/"
    page.wait_for_url(lambda url: f"{server_url}lab" in url, timeout=LAUNCH_TIMEOUT_MS)
    expect(page.locator(".jp-NotebookPanel")).to_contain_text(
        "factor = 2", timeout=LAUNCH_TIMEOUT_MS
    )

    # a new folder with the author's own notebook, opened: not yet published
    put_contents(erc_hub, token, server_url, "my-study", {"type": "directory"})
    put_contents(
        erc_hub,
        token,
        server_url,
        "my-study/doubling.ipynb",
        {"type": "notebook", "format": "json", "content": DOUBLING},
    )
    page.goto(f"{erc_hub.url}{server_url}lab/tree/my-study/doubling.ipynb")
    # the lab also restores the launched notebook's tab: the author's is the one shown
    doubling = page.locator(".jp-NotebookPanel", has_text="n = 21")
    expect(doubling).to_be_visible(timeout=RUN_TIMEOUT_MS)
    show_panel(page)
    expect(page.locator("#erchub-panel .erchub-context")).to_contain_text("not yet published")
    screenshot(page, "1-not-yet-published")

    # Publish ERC: only the folder's files, and "Run all and save first?" for a never-run notebook
    page.locator(".jp-NotebookPanel:visible .erchub-publish-button").click()
    step = page.locator('.erchub-publish-step[data-step="folder"]')
    expect(step.locator(".erchub-publish-folder")).to_have_value("/my-study")
    expect(step.locator(".erchub-run-first")).to_contain_text("Run all and save first?")
    expect(step.locator(".erchub-publish-next")).to_be_disabled()
    rows = step.locator(".erchub-file-list tr")
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.path)")) == [
        "doubling.ipynb",
        "erc.yml",
        "requirements.txt",
    ]
    expect(step.locator(".erchub-publish-modes")).to_have_count(0)  # a new compendium
    screenshot(page, "2-preview-run-first")

    step.locator(".erchub-run-all").click()
    expect(step.locator(".erchub-run-first")).to_have_count(0, timeout=RUN_TIMEOUT_MS)
    expect(page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output").last).to_contain_text(
        "42"
    )
    expect(step.locator(".erchub-publish-next")).to_be_enabled()
    screenshot(page, "3-preview-ready")
    step.locator(".erchub-publish-next").click()

    # the form, pre-filled from the author's notebook; missing licences are refused
    form = page.locator(".erchub-publish .erchub-metadata-form")
    expect(field(form, "title").locator("input")).to_have_value("Doubling numbers")
    expect(field(form, "description").locator("textarea")).to_have_value(
        "What twice twenty-one is."
    )
    expect(field(form, "license.code").locator("input")).to_have_value("")
    before = erc_hub.request("GET", "/compendium?candidate=true&limit=1000", token).json()
    field(form, "creators.0.name").locator("input").fill("Ada Lovelace")
    form.locator(".erchub-metadata-save").click()
    status = form.locator(".erchub-metadata-status")
    expect(status).to_contain_text("Not uploaded: publishing needs the code, data and text")
    expect(field(form, "license.data")).to_contain_text("A data licence is required to publish")
    after = erc_hub.request("GET", "/compendium?candidate=true&limit=1000", token).json()
    assert after["results"] == before["results"], "nothing was uploaded"
    status.scroll_into_view_if_needed()
    screenshot(page, "4-licences-missing")

    field(form, "license.code").locator("input").fill("MIT")
    field(form, "license.data").locator("input").fill("CC0-1.0")
    field(form, "license.text").locator("input").fill("CC-BY-4.0")
    form.locator(".erchub-metadata-save").click()
    metadata_step = page.locator('.erchub-publish-step[data-step="metadata"]')
    expect(metadata_step).to_have_attribute("data-status", "done", timeout=RUN_TIMEOUT_MS)
    compendium_id = page.locator(".erchub-publish .erchub-compendium-id").first.inner_text()

    job_step = page.locator('.erchub-publish-step[data-step="job"]')
    expect(job_step).to_have_attribute("data-status", "done", timeout=JOB_TIMEOUT_MS)
    page.locator(".erchub-publish-confirm").click()
    done = page.locator('.erchub-publish-step[data-step="done"]')
    expect(done).to_have_attribute("data-status", "done", timeout=RUN_TIMEOUT_MS)
    screenshot(page, "5-published")

    published = erc_hub.request("GET", f"/compendium/{compendium_id}", token).json()
    o2r = published["metadata"]["o2r"]
    assert published["candidate"] is False
    assert published["user"] == author
    assert (o2r["mainfile"], o2r["title"]) == ("doubling.ipynb", "Doubling numbers")
    assert set(o2r["files"]) == {"doubling.ipynb", "erc.yml", "requirements.txt"}
    assert o2r["license"]["code"] == "MIT"
    assert (
        o2r["erc_id"]
        != erc_hub.request("GET", f"/compendium/{source_id}", token).json()["metadata"]["o2r"][
            "erc_id"
        ]
    )
    assert (published["is_new_version_of"], published["derived_from"]) == (None, None)

    # the panel follows the notebook: the published one for this folder, the launched one
    # (someone else's: read-only, no Save) for its main notebook
    page.locator(".erchub-publish-close").click()
    expect(page.locator("#erchub-panel .erchub-context")).to_contain_text(compendium_id)
    page.goto(f"{erc_hub.url}{server_url}lab/tree/analysis/main.ipynb")
    expect(page.locator(".jp-NotebookPanel:visible")).to_contain_text(
        "factor = 2", timeout=RUN_TIMEOUT_MS
    )
    show_panel(page)
    context = page.locator("#erchub-panel .erchub-context")
    expect(context).to_contain_text(source_id)
    expect(context).to_contain_text("launched")
    metadata = page.locator("#erchub-panel .erchub-metadata-area")
    expect(metadata.locator(".erchub-read-only-note")).to_contain_text("Read-only")
    expect(metadata.locator(".erchub-metadata-save")).to_have_count(0)
    # no example values in empty fields: nothing there is the compendium's but what it holds
    shown_examples = (
        "input[placeholder]:not([placeholder='']), textarea[placeholder]:not([placeholder=''])"
    )
    expect(metadata.locator(shown_examples)).to_have_count(0)
    screenshot(page, "6-launched-read-only")

    stop(erc_hub, token, author, server)
