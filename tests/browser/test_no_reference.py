"""A compendium loaded from a repository whose notebook was saved without running it: its check
says "no reference outputs" (not FAIL) on the check page, in the report and in the API, and
offers the job's executed notebook as the reference (browser + hub + docker tiers)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import hub_login
from tests.fakes.zenodo import FakeZenodo
from tests.hub.conftest import REPO, Hub

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.docker]

USER = "no-reference-reviewer"
#: a job may have to build the example's runtime image first
CHECK_TIMEOUT_MS = 600_000


def example_saved_without_outputs() -> bytes:
    """examples/sine-wave as a zip, its notebook stripped of outputs as an author may upload
    it to a repository."""
    example = REPO / "examples" / "sine-wave"
    notebook = nbformat.read(example / "main.ipynb", as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(example.iterdir()):
            if path.name != "main.ipynb":
                archive.write(path, path.name)
        archive.writestr("main.ipynb", nbformat.writes(notebook))
    return buffer.getvalue()


def test_a_loaded_notebook_without_outputs_gets_no_reference_outputs(
    page: Page,
    erc_hub: Hub,
    fake_zenodo: FakeZenodo,
    docker_client: Any,
    screenshot: Callable[..., Path],
) -> None:
    token = erc_hub.token(USER)
    record_id = fake_zenodo.add_record({"erc.zip": example_saved_without_outputs()})
    loaded = erc_hub.request("POST", "/compendium", token, json={"zenodo_record_id": record_id})
    assert loaded.status_code == 201, loaded.text
    compendium_id = loaded.json()["id"]

    hub_login(page, erc_hub.url, USER, next_path=f"/services/erc/check/{compendium_id}")
    page.get_by_role("button", name="Start check").click()
    message = page.locator("#erc-check-message")
    expect(message).to_contain_text("No reference outputs", timeout=CHECK_TIMEOUT_MS)
    expect(message).to_contain_text("executed notebook can be published as the reference")
    expect(message).not_to_have_class("problem")
    expect(page.locator("#erc-job-status")).to_have_text("success")
    reference = page.get_by_role("link", name="Executed notebook (the reference)")
    expect(reference).to_be_visible()
    screenshot(page, "check-page")

    job_id = page.locator("#erc-job-id").inner_text()
    job = erc_hub.request("GET", f"/job/{job_id}", token).json()
    assert job["check"]["verdict"] == "no_reference_outputs", job["check"]
    assert job["check"]["passed"] is False
    executed = job["check"]["reference"]["executed"]
    assert executed == job["files"]["executed"] == "output/main.ipynb"
    assert reference.get_attribute("href").endswith(f"/job/{job_id}/data/{executed}")
    served = erc_hub.request("GET", f"/job/{job_id}/data/{executed}", token)
    notebook = nbformat.reads(served.text, as_version=4)
    assert any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")

    page.get_by_role("link", name="Check report").click()
    expect(page.locator("p.verdict")).to_have_text("NO REFERENCE OUTPUTS")
    expect(page.locator("section.no-reference")).to_contain_text("saved without running it")
    screenshot(page, "report")
