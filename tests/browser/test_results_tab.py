"""The reader's journey after "Run with these values" (issue 18): the run's outputs at full size
in a results tab beside the notebook, the published outputs beside them, "Apply to notebook";
and a notebook that opens without the unsaved marker although its kernel describes itself
otherwise than the file (browser tier, in a local JupyterLab; the same walk after a launch
through the hub is the reader's journey in test_journeys.py)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import running_jupyter
from tests.hub.conftest import REPO

EXAMPLE = REPO / "examples" / "sine-wave"
RUN_TIMEOUT_MS = 120_000
LAUNCH_TIMEOUT_MS = 300_000
#: the example's figure cell and the cell that prints its summary
FIGURE_CELL, SUMMARY_CELL = "2a2e7047", "868c6131"

NOTEBOOK_TAB = ".lm-TabBar-tab[data-type='document-title']:has-text('main.ipynb')"
#: JupyterLab's unsaved marker (●) on a document's tab
DIRTY = re.compile(r"\bjp-mod-dirty\b")


def wait_for_kernel(page: Page) -> None:
    """JupyterLab writes the kernel's description into the notebook once it is connected."""
    expect(page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator")).to_have_attribute(
        "data-status", "idle", timeout=RUN_TIMEOUT_MS
    )


@pytest.mark.browser
def test_a_notebook_opens_clean_under_its_kernels_own_description(
    page: Page, screenshot: Callable[..., Path], tmp_path: Path
) -> None:
    workspace = tmp_path / "work"
    shutil.copytree(EXAMPLE, workspace)
    notebook = workspace / "main.ipynb"
    stored = json.loads(notebook.read_text())
    # as an author's notebook from another machine: the kernel connected here says otherwise
    stored["metadata"]["kernelspec"]["display_name"] = "Python 3 (elsewhere)"
    stored["metadata"]["language_info"]["version"] = "3.0.1"
    notebook.write_text(json.dumps(stored, indent=1))
    with running_jupyter(workspace, lab=True, log=tmp_path / "lab.log") as (url, token):
        page.goto(f"{url}/lab/tree/main.ipynb?token={token}")
        expect(page.locator(".jp-NotebookPanel")).to_contain_text(
            "frequency = 1.0", timeout=RUN_TIMEOUT_MS
        )
        wait_for_kernel(page)
        tab = page.locator(NOTEBOOK_TAB)
        expect(tab).not_to_have_class(DIRTY)
        screenshot(page, "clean")
        # an edit is still an edit
        page.locator(".jp-Cell").nth(1).locator(".cm-content").click()
        page.keyboard.type("# edited")
        expect(tab).to_have_class(DIRTY)


def result_cell(page: Page, cell_id: str) -> Any:
    return page.locator(f'.erchub-results-view .erchub-result[data-cell-id="{cell_id}"]')


def walk_the_results_journey(page: Page, screenshot: Callable[..., Path], server_url: str) -> None:
    """From the example's notebook open in JupyterLab (a reader's copy): a new frequency, Run,
    the results tab, the published output beside it, Apply to notebook, saved."""
    wait_for_kernel(page)
    notebook_tab = page.locator(NOTEBOOK_TAB)
    expect(notebook_tab).not_to_have_class(DIRTY)
    screenshot(page, "1-launched")

    # the launched session opens on the ERC panel; a new frequency, and run
    expect(page.locator('.erchub-parameters-section[data-state="ready"]')).to_be_visible(
        timeout=RUN_TIMEOUT_MS
    )
    slider = page.locator('.erchub-parameter[data-name="frequency"] .erchub-parameter-input')
    slider.fill("3.5")
    page.locator(".erchub-run-button").click()
    expect(page.locator(".erchub-run-status")).to_have_attribute(
        "data-state", "done", timeout=RUN_TIMEOUT_MS
    )

    # the results tab beside the notebook: values, time, every output under its caption
    view = page.locator(".erchub-results-view")
    expect(view).to_be_visible()
    expect(
        page.locator(".lm-TabBar-tab.jp-mod-current:has-text('Results: main.ipynb')")
    ).to_be_visible()
    expect(view.locator('.erchub-values li[data-name="frequency"] .erchub-value')).to_have_text(
        "3.5"
    )
    expect(view.locator(".erchub-results-time time")).not_to_be_empty()
    summary = result_cell(page, SUMMARY_CELL)
    expect(summary.locator(".erchub-result-caption")).to_contain_text("Cell 3 · import numpy as np")
    expect(summary.locator(".erchub-result-run")).to_contain_text("samples: 400")
    figure = result_cell(page, FIGURE_CELL)
    image = figure.locator(".erchub-result-run img")
    expect(image).to_be_visible()
    caption_box = figure.locator(".erchub-result-caption").bounding_box()
    image_box = image.bounding_box()
    assert caption_box and image_box and caption_box["y"] + caption_box["height"] <= image_box["y"]
    natural, column = image.evaluate(
        "img => [img.naturalWidth, img.closest('.erchub-result-run').clientWidth]"
    )
    # at its natural size (480 px), only ever scaled down to the column
    assert image_box["width"] == pytest.approx(min(natural, column), abs=1)
    assert natural >= 480 and image_box["width"] >= min(480, column) - 1
    # the side panel keeps one line about the run
    expect(page.locator(".erchub-run-summary")).to_contain_text("1 figure")
    screenshot(page, "2-results")

    # the published output beside each
    expect(figure.locator(".erchub-result-published")).to_be_hidden()
    view.locator(".erchub-published-toggle-input").check()
    expect(figure.locator(".erchub-result-published img")).to_be_visible()
    expect(summary.locator(".erchub-result-published")).to_contain_text("samples: 400")
    run_png = image.get_attribute("src")
    assert run_png != figure.locator(".erchub-result-published img").get_attribute("src")
    screenshot(page, "3-published")

    # Apply to notebook: the run's outputs in the notebook's cells, marked, unsaved
    view.locator(".erchub-apply-button").click()
    expect(view.locator(".erchub-apply-status")).to_contain_text("Applied to 2 cells")
    expect(notebook_tab).to_have_class(DIRTY)
    notebook_tab.click()
    expect(page.locator(".jp-NotebookPanel .jp-OutputArea-output img")).to_have_attribute(
        "src", run_png or ""
    )
    screenshot(page, "4-applied")
    # saved, the cells carry the run's outputs and what made them
    page.keyboard.press("Control+s")
    expect(notebook_tab).not_to_have_class(DIRTY)
    saved = page.request.get(f"{server_url}/api/contents/main.ipynb?content=1").json()["content"]
    figure_cell = next(c for c in saved["cells"] if c["id"] == FIGURE_CELL)
    marked = figure_cell["metadata"]["erchub"]["parameterised_run"]
    assert marked["values"]["frequency"] == 3.5 and marked["time"]


@pytest.mark.browser
def test_results_tab_in_jupyterlab(
    page: Page, screenshot: Callable[..., Path], tmp_path: Path
) -> None:
    workspace = tmp_path / "work"
    shutil.copytree(EXAMPLE, workspace)
    with running_jupyter(workspace, lab=True, log=tmp_path / "lab.log") as (url, token):
        page.goto(f"{url}/lab/tree/main.ipynb?token={token}")
        expect(page.locator(".jp-NotebookPanel")).to_contain_text(
            "frequency = 1.0", timeout=RUN_TIMEOUT_MS
        )
        page.locator('.jp-SideBar [data-id="erchub-panel"]').click()
        walk_the_results_journey(page, screenshot, url)
