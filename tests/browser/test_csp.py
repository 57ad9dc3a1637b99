"""The service's pages under their Content-Security-Policy in headless Chromium: the check
page's script and style still work, and a page of another origin cannot frame it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import ConsoleMessage, Page, Response, expect

from tests.browser.conftest import hub_login
from tests.conftest import free_port
from tests.hub.conftest import Hub, example_zip

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
