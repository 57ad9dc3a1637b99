"""The service's pages under their Content-Security-Policy in headless Chromium: the check
page's script and style still work, a page of another origin cannot frame it, metadata that
carries script runs none in any page, and an author's display runs its script only in its
sandbox (tests/unit/test_security_rules.py checks the same pages' sources)."""

from __future__ import annotations

import io
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import ConsoleMessage, Dialog, Page, Response, expect

from tests.browser.conftest import hub_login
from tests.conftest import free_port, heading, write_notebook
from tests.hub.conftest import Hub, example_zip
from tests.unit.test_security_rules import HOSTILE, HOSTILE_METADATA, PAYLOADS

pytestmark = [pytest.mark.browser, pytest.mark.hub]

EXAMPLE_TITLE = "Sine waves under a changing frequency"


def csp_reports(page: Page) -> list[str]:
    """Console messages of ``page`` about the Content-Security-Policy (Chromium reports each
    blocked script, style, connection or frame there), and the page's uncaught errors."""
    reports: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            reports.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: reports.append(f"page error: {error}"))
    return reports


def test_the_check_page_works_under_its_policy(page: Page, erc_hub: Hub) -> None:
    """The page's nonced style and script run (the button calls the API, the answer is shown
    in plain words) and the browser reports nothing blocked."""
    compendium_id = erc_hub.create(erc_hub.token("cspcid"), example_zip())
    reports = csp_reports(page)
    hub_login(page, erc_hub.url, "cspcid", next_path=f"/services/erc/check/{compendium_id}")
    expect(page.locator("h1")).to_contain_text(EXAMPLE_TITLE)
    # the inline style applies: the button is the page's blue one, not the browser's grey
    start = page.get_by_role("button", name="Start check")
    color = start.evaluate("b => getComputedStyle(b).backgroundColor")
    assert color == "rgb(31, 111, 235)", color

    # the inline script runs: a check of a compendium deleted meanwhile (no Docker needed)
    deleted = erc_hub.request("DELETE", f"/compendium/{compendium_id}", erc_hub.token("cspcid"))
    assert deleted.status_code == 204, deleted.text
    start.click()
    message = page.locator("#erc-check-message")
    expect(message).to_contain_text("Not found: the compendium or job may have been deleted")
    expect(start).to_be_enabled()

    # an error page of the service, under the same policy
    page.goto(f"{erc_hub.url}/services/erc/check/no-such-compendium")
    expect(page.locator("#erc-error")).to_contain_text("404")
    assert page.locator("header").evaluate("h => getComputedStyle(h).display") == "flex"
    assert reports == []


class FramingPage(BaseHTTPRequestHandler):
    """A page of another origin (same site: 127.0.0.1, another port) framing ``target``."""

    target = ""

    def do_GET(self) -> None:
        body = f'<!doctype html><iframe id="framed" src="{self.target}"></iframe>'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def other_origin() -> Iterator[tuple[str, type[FramingPage]]]:
    handler = type("Framing", (FramingPage,), {})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    finally:
        server.shutdown()
        server.server_close()


def test_only_pages_of_the_site_may_frame_the_check_page(
    page: Page, erc_hub: Hub, other_origin: tuple[str, type[FramingPage]]
) -> None:
    compendium_id = erc_hub.create(erc_hub.token("cspdan"), example_zip())
    check_url = f"{erc_hub.url}/services/erc/check/{compendium_id}"
    hub_login(page, erc_hub.url, "cspdan", next_path=f"/services/erc/check/{compendium_id}")
    expect(page.get_by_role("button", name="Start check")).to_be_visible()

    # framed by a page of the site (the service's 404 page, which has no script): shown
    page.goto(f"{erc_hub.url}/services/erc/check/no-such-compendium")
    expect(page.locator("#erc-error")).to_be_visible()
    page.evaluate(
        """url => { const f = document.createElement("iframe");
                    f.id = "framed"; f.src = url; document.body.append(f); }""",
        check_url,
    )
    framed = page.frame_locator("#framed")
    expect(framed.get_by_role("button", name="Start check")).to_be_visible()

    # framed by a page of another origin: the service answers (the browser's cookies go
    # along, 127.0.0.1 is the same site), and the browser refuses to show it
    url, handler = other_origin
    handler.target = check_url
    answers: list[Response] = []
    page.on("response", lambda response: answers.append(response))
    reports = csp_reports(page)
    page.goto(url)
    page.wait_for_timeout(1000)
    served = [answer for answer in answers if answer.url == check_url]
    assert served and served[-1].status == 200, [(a.url, a.status) for a in answers]
    assert any("frame-ancestors" in report for report in reports), reports
    frame = page.frame_locator("#framed")
    expect(frame.get_by_role("button", name="Start check")).to_have_count(0)


#: an author's display whose script tries to reach the page around it, the hub's cookies and
#: the API as the reader, and says what it got
PROBING_DISPLAY = """<!doctype html><meta charset="utf-8"><title>display</title>
<p>The figures.</p>
<script>
(async () => {
  const got = [];
  try { got.push("parent:" + parent.document.title); } catch (e) { got.push("parent:" + e.name); }
  try { got.push("cookie:" + document.cookie); } catch (e) { got.push("cookie:" + e.name); }
  try {
    const answer = await fetch("/services/erc/api/v1/compendium", { credentials: "include" });
    got.push("api:" + answer.status);
  } catch (e) { got.push("api:" + e.name); }
  console.log("erc-display " + got.join(" "));
})();
</script>"""


def hostile_compendium(hub: Hub, token: str, tmp_path: Path) -> str:
    """A published compendium whose metadata carries script, its display the probe above."""
    notebook = write_notebook(tmp_path / "main.ipynb", heading("# Rules\n\nA probe."), "1")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("ws/main.ipynb", notebook.read_bytes())
        bundle.writestr("ws/page.html", PROBING_DISPLAY)
    compendium_id = hub.create(token, buffer.getvalue())
    path = f"/compendium/{compendium_id}/metadata"
    o2r = hub.request("GET", path, token).json()["metadata"]["o2r"]
    saved = hub.request("PUT", path, token, json={"o2r": {**o2r, **HOSTILE_METADATA}})
    assert saved.status_code == 200 and not saved.json()["candidate"], saved.text
    return compendium_id


def test_metadata_with_script_runs_none_and_the_display_keeps_to_its_sandbox(
    page: Page, erc_hub: Hub, tmp_path: Path
) -> None:
    """Title, abstract, authors, keywords, licences and DOI with ``<script>``, ``<img
    onerror>`` and ``"><svg onload>``: the landing page, the catalogue (listing and search),
    the check page and an error page show them as text, no payload runs, no dialog opens and
    the browser blocks nothing. The author's display runs its script, in an opaque origin: it
    reads neither the page around it nor the hub's cookies nor the API."""
    compendium_id = hostile_compendium(erc_hub, erc_hub.token("cspxss"), tmp_path)
    service = f"{erc_hub.url}/services/erc"
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    displayed: list[str] = []
    page.on("console", lambda message: displayed.append(message.text))
    reports = csp_reports(page)
    hub_login(page, erc_hub.url, "cspxss", next_path=f"/services/erc/compendium/{compendium_id}")

    expect(page.locator("#erc-title")).to_contain_text(PAYLOADS[0])
    expect(page.locator("#erc-keywords li")).to_have_count(len(HOSTILE_METADATA["keywords"]))
    frame = page.locator("#erc-display")
    frame.scroll_into_view_if_needed()
    deadline = time.monotonic() + 20
    while not any(text.startswith("erc-display ") for text in displayed):
        assert time.monotonic() < deadline, f"the display's script did not run: {displayed}"
        page.wait_for_timeout(200)
    seen = next(text for text in displayed if text.startswith("erc-display "))
    assert seen == "erc-display parent:SecurityError cookie:SecurityError api:TypeError", seen
    assert page.evaluate("typeof window.ercXss") == "undefined"

    for path in (
        "/",
        f"/?q={quote(HOSTILE)}",
        f"/check/{compendium_id}",
        f"/check/{quote(HOSTILE, safe='')}",
    ):
        page.goto(service + path)
        expect(page.locator("main")).to_be_visible()
        assert page.evaluate("typeof window.ercXss") == "undefined", path
    expect(page.locator("#erc-error")).to_contain_text(PAYLOADS[1])
    assert dialogs == [] and reports == [], (dialogs, reports)
