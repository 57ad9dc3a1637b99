"""A reviewer's launch link in headless Chromium: log in, see the progress page, land in
JupyterLab with the main notebook open (browser + hub + docker tiers)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from erchub.sessions import server_name_for
from tests.hub.conftest import Hub
from tests.hub.test_launch import publish, stop, workspace_zip

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.docker]

#: first launches build an image: the page may wait that long for JupyterLab
LAUNCH_TIMEOUT_MS = 300_000
#: keeps each text the progress page's progress line shows in window.ercProgressMessages
RECORD_PROGRESS_MESSAGES = """
window.ercProgressMessages = [];
document.addEventListener("DOMContentLoaded", () => {
  const line = document.getElementById("progress-message");
  if (!line) return;
  new MutationObserver(() => window.ercProgressMessages.push(line.innerText)).observe(
    line, { childList: true, characterData: true, subtree: true });
});
"""


def test_launch_link_lands_in_jupyterlab(
    erc_hub: Hub,
    docker_client: Any,
    page: Any,
    screenshot: Callable[..., Path],
    tmp_path: Path,
) -> None:
    author = erc_hub.token("browser-author")
    requirements = f"# browser launch {secrets.token_hex(6)}\npip>=20\n"
    compendium_id = publish(
        erc_hub, author, workspace_zip(tmp_path, requirements, "Seen in a browser")
    )
    reviewer = "reviewer"
    server = server_name_for(compendium_id)

    # every text the progress line shows, as a person sees it (hidden parts left out)
    page.add_init_script(RECORD_PROGRESS_MESSAGES)
    page.goto(f"{erc_hub.url}/services/erc/launch/{compendium_id}")
    # not logged in: the hub's login page, then straight back to the launch
    page.wait_for_url(lambda url: "/hub/login" in url)
    page.fill("#username_input", reviewer)
    page.fill("#password_input", "any password")
    page.click("#login_submit")

    page.wait_for_url(lambda url: f"/hub/spawn-pending/{reviewer}/{server}" in url)
    page.wait_for_selector("#progress-message")
    # the build's log lines reach the page's event log
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#progress-log .progress-log-event'))"
        ".some(e => e.innerText.startsWith('Step '))",
        timeout=LAUNCH_TIMEOUT_MS,
    )
    screenshot(page, "progress")
    shown, logged = page.evaluate(
        "() => [window.ercProgressMessages, Array.from(document.querySelectorAll("
        "'#progress-log .progress-log-event')).map(e => e.innerText)]"
    )
    # the progress line: the build's step and a short status, one line; the log: full lines
    building = [text for text in shown if text.startswith("Building the runtime image:")]
    assert building and all(re.search(r"\(step \d+/\d+\)$", text) for text in building), shown
    assert not any(text.startswith("Step ") or "\n" in text for text in shown), shown
    assert not any(text.startswith("Building the runtime image:") for text in logged), logged

    lab = f"/user/{reviewer}/{server}/lab/tree/analysis/main.ipynb"
    page.wait_for_url(lambda url: lab in url, timeout=LAUNCH_TIMEOUT_MS)
    tab = page.locator(".lm-TabBar-tab.jp-mod-current .lm-TabBar-tabLabel")
    expect(tab).to_have_text("main.ipynb", timeout=LAUNCH_TIMEOUT_MS)
    # JupyterLab shows an empty notebook panel before the file's cells arrive
    expect(page.locator(".jp-NotebookPanel")).to_contain_text(
        "factor = 2", timeout=LAUNCH_TIMEOUT_MS
    )
    screenshot(page, "jupyterlab")

    stop(erc_hub, erc_hub.token(reviewer), reviewer, server)
