"""Pages, proxy and logs through a real hub: no token in the service's log, 400 for URLs that
are not valid percent-encoding, the security headers of the service's pages."""

from __future__ import annotations

import http.client
import http.server
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import free_port
from tests.hub.conftest import PROXY, REPO, Hub, example_zip, require_hub, start_hub, stop_hub

pytestmark = pytest.mark.hub

NAVIGATE = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate"}
#: JupyterHub 6 takes a token from the URL (?token=) only on websocket requests
WEBSOCKET = {"Sec-Fetch-Mode": "websocket"}

# The erc service of this hub logs at DEBUG: every line it can write is looked at.
DEBUG_SERVICE = """
for _service in c.JupyterHub.services:
    if _service["name"] == "erc":
        _service["command"] = [*_service["command"], "--log-level=DEBUG"]
"""


@pytest.fixture(scope="module")
def debug_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    require_hub()
    hub, process = start_hub(tmp_path_factory.mktemp("debug-hub"), extra_config=DEBUG_SERVICE)
    try:
        yield hub
    finally:
        stop_hub(process)


def wait_for_log(hub: Hub, *needles: str, timeout: float = 20) -> str:
    """The hub's log once it holds every needle (the service writes its lines a little later
    than it answers)."""
    deadline = time.monotonic() + timeout
    while True:
        log = hub.log_path.read_text(errors="replace")
        missing = [needle for needle in needles if needle not in log]
        if not missing or time.monotonic() > deadline:
            assert not missing, f"not in the log: {missing}\n{hub.log_tail(80)}"
            return log


def test_tokens_in_urls_never_reach_the_log(debug_hub: Hub) -> None:
    hub = debug_hub
    token = hub.token("logann")
    # a real token of a user who is deleted since, and one that only looks real
    gone = hub.token("loggone")
    assert hub.hub_api("DELETE", "/users/loggone").status_code == 204
    wrong = secrets.token_hex(16)
    compendium_id = hub.create(token, example_zip())
    api = hub.api_url
    code, state = secrets.token_hex(12), secrets.token_urlsafe(24)

    refused = [
        # the hub refuses the token the service asks it about
        httpx.get(f"{api}/compendium?token={gone}", headers=WEBSOCKET),
        httpx.get(f"{api}/compendium?token={wrong}&limit=2", headers=WEBSOCKET),
        # the service ignores a token in the URL of a request that is not a websocket's
        httpx.get(f"{api}/compendium?token={wrong}"),
        httpx.get(f"{api}/compendium/{compendium_id}?token={token}"),
    ]
    assert [response.status_code for response in refused] == [401] * 4, [
        response.text for response in refused
    ]
    # a page: the browser goes through the hub's login (the page's URL, token and all, kept
    # in the OAuth state)
    check_page = f"{hub.url}/services/erc/check/{compendium_id}?token={gone}"
    redirected = httpx.get(check_page, headers=NAVIGATE)
    assert redirected.status_code == 302, redirected.text
    # an unknown resource, and a forged OAuth callback (its code and state are credentials)
    assert httpx.get(f"{api}/nothing?token={token}&_xsrf={wrong}").status_code == 404
    callback = httpx.get(f"{hub.url}/services/erc/oauth_callback?code={code}&state={state}")
    assert callback.status_code >= 400

    succeeded = [
        httpx.get(f"{api}/compendium/{compendium_id}?token={token}", headers=WEBSOCKET),
        httpx.get(
            f"{api}/compendium/{compendium_id}?token={token}",
            headers={"Authorization": f"token {token}"},
        ),
    ]
    assert [response.status_code for response in succeeded] == [200, 200], [
        response.text for response in succeeded
    ]
    assert succeeded[0].json()["id"] == compendium_id

    log = wait_for_log(
        hub,
        "401 GET /services/erc/api/v1/compendium?token=[secret] ",
        "401 GET /services/erc/api/v1/compendium?token=[secret]&limit=2 ",
        "404 GET /services/erc/api/v1/nothing?token=[secret]&_xsrf=[secret] ",
        "oauth_callback?code=[secret]&state=[secret]",
    )
    for secret in (token, gone, wrong, code, state):
        assert secret not in log, [line for line in log.splitlines() if secret in line]


def raw_request(hub: Hub, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """``GET path`` sent as it is (an HTTP client library would re-encode it)."""
    address = urlsplit(hub.url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


MALFORMED = [
    "/services/erc/%c0%ae",
    "/services/erc/api/v1/compendium/%c0%ae",
    "/services/erc/check/%c0%ae?token=x",
    "/hub/%c0%ae",
    "/hub/api/users/%ff",
    "/user/x/%c0%ae",
    "/user/x/lab/tree/%E0%A4%A",
    "/%",
    "/anything/%zz",
]


def test_paths_that_are_not_percent_encoding_are_400(erc_hub: Hub) -> None:
    for path in MALFORMED:
        status, body = raw_request(erc_hub, path)
        assert status == 400, (path, status, body[:300])
        assert "not valid percent-encoded UTF-8" in body, (path, body[:300])
    websocket = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    status, _ = raw_request(erc_hub, "/user/x/api/kernels/%c0%ae/channels", websocket)
    assert status == 400

    # The proxy goes on serving, valid escapes included (UTF-8 é: the service's 404).
    status, body = raw_request(erc_hub, "/services/erc/api/v1/openapi.json")
    assert status == 200 and '"openapi"' in body
    status, body = raw_request(erc_hub, "/services/erc/api/v1/compendium/%C3%A9")
    assert status in (401, 404), body[:300]
    assert "not valid percent-encoded" not in body
    assert httpx.get(f"{erc_hub.url}/hub/login").status_code == 200
    log = erc_hub.log_path.read_text(errors="replace")
    assert "URIError" not in log
    assert "400 GET /hub/%c0%ae malformed percent-encoding" in log


CSP_DIRECTIVES = {
    "default-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "frame-ancestors": "'self'",
    "base-uri": "'self'",
    "form-action": "'self'",
}


def policy(response: httpx.Response) -> dict[str, str]:
    header = response.headers.get("content-security-policy", "")
    directives = (part.strip().split(None, 1) for part in header.split(";") if part.strip())
    return {part[0]: part[1] if len(part) > 1 else "" for part in directives}


def assert_page_headers(response: httpx.Response) -> str | None:
    """The page's security headers; returns the nonce of its inline script and style."""
    csp = policy(response)
    for name, value in CSP_DIRECTIVES.items():
        assert csp.get(name) == value, (response.url, name, csp)
    assert response.headers.get("x-frame-options") == "SAMEORIGIN", response.url
    assert response.headers.get("x-content-type-options") == "nosniff", response.url
    nonce = re.fullmatch(r"'self' 'nonce-([A-Za-z0-9_-]{16,})'", csp["script-src"])
    assert nonce, csp["script-src"]
    assert csp["style-src"] == csp["script-src"].replace("script", "style")
    assert "unsafe-inline" not in str(csp) and "unsafe-eval" not in str(csp)
    if response.headers.get("content-type", "").startswith("text/html"):
        body = response.text
        # every inline script and style carries the nonce; no inline event handler, no
        # resource of another site
        for tag in re.findall(r"<(?:script|style)\b[^>]*>", body):
            assert f'nonce="{nonce.group(1)}"' in tag, tag
        assert not re.search(r"\son[a-z]+\s*=", body), "inline event handler"
        assert not re.search(r"(?:src|href)=\"(?:https?:)?//", body), "another site"
    return nonce.group(1)


def test_every_page_of_the_service_has_a_strict_policy(erc_hub: Hub) -> None:
    token = erc_hub.token("cspann")
    auth = {**NAVIGATE, "Authorization": f"token {token}"}
    compendium_id = erc_hub.create(token, example_zip())
    service = f"{erc_hub.url}/services/erc"

    check = httpx.get(f"{service}/check/{compendium_id}", headers=auth)
    assert check.status_code == 200, check.text[:300]
    assert 'id="erc-start-check"' in check.text
    nonce = assert_page_headers(check)
    again = httpx.get(f"{service}/check/{compendium_id}", headers=auth)
    assert assert_page_headers(again) != nonce, "a nonce per response"

    answers = {
        "check page of an unknown compendium (404 page)": httpx.get(
            f"{service}/check/no-such-compendium", headers=auth
        ),
        "check page, unknown argument (400 page)": httpx.get(
            f"{service}/check/{compendium_id}?x=1", headers=auth
        ),
        "launch of an unknown compendium (404 page)": httpx.get(
            f"{service}/launch/no-such-compendium", headers=auth
        ),
        "launch of a DOI that is none (400 page)": httpx.get(
            f"{service}/launch/doi/not-a-doi", headers=auth
        ),
        "login, a next= that is no path (400 page)": httpx.get(
            f"{service}/login?next=https://evil.example", headers=auth
        ),
        "login (redirect)": httpx.get(f"{service}/login?next=/hub/home", headers=auth),
        "check page without identity (redirect to the hub)": httpx.get(
            f"{service}/check/{compendium_id}", headers=NAVIGATE
        ),
    }
    for what, response in answers.items():
        assert response.status_code in (302, 400, 404), (what, response.status_code)
        if response.status_code != 302:
            assert 'class="card error"' in response.text, what
        assert_page_headers(response)


class _Recorder(http.server.BaseHTTPRequestHandler):
    """An error target that remembers what it was asked."""

    asked: list[str] = []

    def do_GET(self) -> None:
        type(self).asked.append(self.path)
        body = b"error page"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_the_proxys_error_page_never_gets_the_query() -> None:
    """CHP asks its error target for ``<code>?url=<request URL>``, which the hub logs: the
    wrapper hands it the path only, so a ``?token=`` of a failed request is not logged."""
    require_hub()
    recorder = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    port, api_port, dead_port = free_port(), free_port(), free_port()
    proxy = subprocess.Popen(
        [
            "node",
            str(REPO / "config" / "proxy" / "chp.mjs"),
            str(PROXY),
            "--ip=127.0.0.1",
            f"--port={port}",
            "--api-ip=127.0.0.1",
            f"--api-port={api_port}",
            f"--default-target=http://127.0.0.1:{dead_port}",
            f"--error-target=http://127.0.0.1:{recorder.server_address[1]}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/user/x/?token=SECRET-IN-URL")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the proxy did not start"
                time.sleep(0.2)
        assert response.status_code == 503
        assert _Recorder.asked, "the error target was asked"
        assert all("SECRET-IN-URL" not in asked for asked in _Recorder.asked), _Recorder.asked
        assert any("%2Fuser%2Fx%2F" in asked for asked in _Recorder.asked), _Recorder.asked
    finally:
        proxy.terminate()
        proxy.wait(10)
        recorder.shutdown()
