"""ORCID login through a real hub: the browser's redirect flow, driven with httpx, against the
local ORCID stand-in (tests/fakes/orcid.py)."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.fakes.orcid import CLIENT_ID, CLIENT_SECRET, FakeORCID
from tests.hub.conftest import REPO, Hub, free_port, require_hub, start_hub, stop_hub

pytestmark = pytest.mark.hub

ADA = "0000-0002-1694-233X"  # ends in X: the check character a lower-casing hub would lose
JOSIAH = "0000-0002-1825-0097"
BAD_CHECKSUM = "0000-0002-1694-2330"

#: the test-manager service may read auth_state too (conftest gives it admin:users and tokens)
EXTRA_CONFIG = """
c.ORCIDOAuthenticator.orcid_url = {url!r}
c.JupyterHub.load_roles.append(
    {{"name": "test-auth-state", "scopes": ["admin:auth_state"], "services": ["test-manager"]}}
)
"""


@pytest.fixture(scope="module")
def orcid() -> Iterator[FakeORCID]:
    users = {
        ADA: ("Ada", "Lovelace"),
        JOSIAH: ("Josiah", "Carberry"),
        BAD_CHECKSUM: ("Not", "Valid"),
    }
    with FakeORCID(users) as server:
        yield server


@pytest.fixture(scope="module")
def orcid_hub(orcid: FakeORCID, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    require_hub()
    hub, process = start_hub(
        tmp_path_factory.mktemp("orcid-hub"),
        environment={"ORCID_CLIENT_ID": CLIENT_ID, "ORCID_CLIENT_SECRET": CLIENT_SECRET},
        extra_config=EXTRA_CONFIG.format(url=orcid.url),
    )
    orcid.redirect_uris.add(f"{hub.url}/hub/oauth_callback")
    try:
        yield hub
    finally:
        stop_hub(process)
    log = hub.log_tail(10**6)
    assert CLIENT_SECRET not in log
    assert re.findall(r"[?&]code=(?!\[secret\])\S*", log) == [], "authorization codes logged"
    for token in orcid.access_tokens:
        assert token not in log


def hidden_fields(page: str) -> dict[str, str]:
    pattern = r'<input type="hidden" name="([^"]+)" value="([^"]*)">'
    return {name: html.unescape(value) for name, value in re.findall(pattern, page)}


def sign_in(
    hub: Hub, orcid: FakeORCID, orcid_id: str, action: str = "approve", next_url: str = ""
) -> tuple[httpx.Client, httpx.Response]:
    """A browser's way through: the hub's login page, its redirect to ORCID, ORCID's form,
    back to the hub's callback. Returns the browser and the callback's response."""
    browser = httpx.Client(timeout=30)
    login_page = browser.get(f"{hub.url}/hub/login")
    assert login_page.status_code == 200
    assert "/hub/oauth_login" in login_page.text and "ORCID" in login_page.text
    start = browser.get(f"{hub.url}/hub/oauth_login", params={"next": next_url} if next_url else {})
    assert start.status_code == 302
    authorize = start.headers["location"]
    assert authorize.startswith(f"{orcid.url}/oauth/authorize?")
    query = parse_qs(urlsplit(authorize).query)
    assert query["client_id"] == [CLIENT_ID]
    assert query["scope"] == ["openid"]
    assert query["response_type"] == ["code"]
    assert query["redirect_uri"] == [f"{hub.url}/hub/oauth_callback"]
    form = browser.get(authorize)
    assert form.status_code == 200 and 'name="orcid"' in form.text
    answer = browser.post(
        f"{orcid.url}/oauth/authorize",
        data={**hidden_fields(form.text), "orcid": orcid_id, "action": action},
    )
    assert answer.status_code == 302
    callback = answer.headers["location"]
    assert callback.startswith(f"{hub.url}/hub/oauth_callback?")
    return browser, browser.get(callback)


def test_login_makes_the_orcid_id_the_user_name_with_its_x(
    orcid_hub: Hub, orcid: FakeORCID
) -> None:
    browser, callback = sign_in(orcid_hub, orcid, ADA, next_url="/hub/home")
    assert callback.status_code == 302, callback.text
    assert callback.headers["location"] == "/hub/home"
    me = browser.get(f"{orcid_hub.url}/hub/api/user")
    assert me.status_code == 200 and me.json()["name"] == ADA

    user = orcid_hub.hub_api("GET", f"/users/{ADA}")
    assert user.status_code == 200, user.text
    assert user.json()["name"] == ADA
    auth_state = user.json()["auth_state"]
    assert auth_state["name"] == "Ada Lovelace"
    assert auth_state["oauth_user"]["sub"] == ADA
    assert auth_state["access_token"] in orcid.access_tokens
    assert orcid_hub.hub_api("GET", f"/users/{ADA.lower()}").status_code == 404


def test_a_wrong_client_secret_is_a_clear_refusal(orcid_hub: Hub, orcid: FakeORCID) -> None:
    orcid.client_secret = "a secret that ORCID has never seen before"
    try:
        _, callback = sign_in(orcid_hub, orcid, JOSIAH)
    finally:
        orcid.client_secret = CLIENT_SECRET
    assert callback.status_code == 403
    assert "ORCID refused" in callback.text and "Bad client credentials" in callback.text
    assert "Traceback" not in callback.text
    assert orcid_hub.hub_api("GET", f"/users/{JOSIAH}").status_code == 404


def test_an_invalid_orcid_id_does_not_log_in(orcid_hub: Hub, orcid: FakeORCID) -> None:
    _, callback = sign_in(orcid_hub, orcid, BAD_CHECKSUM)
    assert callback.status_code == 403
    assert "valid ORCID iD" in callback.text
    assert f"{BAD_CHECKSUM!r} is not a valid ORCID iD" in orcid_hub.log_tail(10**6)
    assert orcid_hub.hub_api("GET", f"/users/{BAD_CHECKSUM}").status_code == 404


def test_denying_access_at_orcid_is_a_clear_page(orcid_hub: Hub, orcid: FakeORCID) -> None:
    _, callback = sign_in(orcid_hub, orcid, JOSIAH, action="deny")
    assert callback.status_code == 400
    assert "User denied access" in callback.text
    assert orcid_hub.hub_api("GET", f"/users/{JOSIAH}").status_code == 404


# The stand-in itself: it must refuse what ORCID refuses, or the tests above prove little.


def authorization_code(orcid: FakeORCID, redirect_uri: str) -> str:
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": "openid",
        "state": "s1",
    }
    answer = httpx.post(
        f"{orcid.url}/oauth/authorize", data={**params, "orcid": ADA, "action": "approve"}
    )
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["state"] == ["s1"]
    return query["code"][0]


def test_fake_orcid_speaks_orcid_s_token_protocol(orcid: FakeORCID) -> None:
    redirect_uri = "http://127.0.0.1:1/callback"
    orcid.redirect_uris.add(redirect_uri)
    code = authorization_code(orcid, redirect_uri)
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}

    wrong_uri = httpx.post(
        f"{orcid.url}/oauth/token",
        data={**exchange, "redirect_uri": redirect_uri + "/x"},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert wrong_uri.status_code == 400 and wrong_uri.json()["error"] == "invalid_grant"
    # the failed exchange used the code up
    code = authorization_code(orcid, redirect_uri)
    exchange["code"] = code

    bad_client = httpx.post(f"{orcid.url}/oauth/token", data=exchange, auth=(CLIENT_ID, "no"))
    assert bad_client.status_code == 401
    assert bad_client.json() == {
        "error": "invalid_client",
        "error_description": "Bad client credentials",
    }

    token = httpx.post(f"{orcid.url}/oauth/token", data=exchange, auth=(CLIENT_ID, CLIENT_SECRET))
    assert token.status_code == 200, token.text
    answer = token.json()
    assert answer["orcid"] == ADA and answer["name"] == "Ada Lovelace"
    assert answer["token_type"] == "bearer" and answer["scope"] == "openid"
    assert {"access_token", "refresh_token", "expires_in", "id_token"} <= set(answer)

    replay = httpx.post(
        f"{orcid.url}/oauth/token",
        data={**exchange, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"

    bearer = {"Authorization": f"Bearer {answer['access_token']}"}
    userinfo = httpx.get(f"{orcid.url}/oauth/userinfo", headers=bearer)
    assert userinfo.status_code == 200
    assert {key: userinfo.json()[key] for key in ("sub", "name", "given_name", "family_name")} == {
        "sub": ADA,
        "name": "Ada Lovelace",
        "given_name": "Ada",
        "family_name": "Lovelace",
    }
    anonymous = httpx.get(f"{orcid.url}/oauth/userinfo")
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_token"


def test_fake_orcid_refuses_bad_authorize_requests(orcid: FakeORCID) -> None:
    redirect_uri = "http://127.0.0.1:1/callback"
    orcid.redirect_uris.add(redirect_uri)
    base = {"client_id": CLIENT_ID, "redirect_uri": redirect_uri, "response_type": "code"}
    url = f"{orcid.url}/oauth/authorize"
    assert httpx.get(url, params={**base, "client_id": "APP-OTHER", "scope": "openid"}).is_error
    unregistered = {**base, "redirect_uri": "http://evil.example/cb", "scope": "openid"}
    assert httpx.get(url, params=unregistered).status_code == 400
    no_openid = httpx.get(url, params={**base, "scope": "/read-limited", "state": "s2"})
    assert no_openid.status_code == 302
    assert parse_qs(urlsplit(no_openid.headers["location"]).query) == {
        "error": ["invalid_scope"],
        "error_description": ["Invalid scope"],
        "state": ["s2"],
    }
    unknown = httpx.post(
        url, data={**base, "scope": "openid", "orcid": "0000-0001-0000-0000", "action": "approve"}
    )
    assert unknown.status_code == 401 and "Invalid email/ORCID iD" in unknown.text


def test_fake_orcid_runs_as_a_program(tmp_path: Path) -> None:
    port = free_port()
    program = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.orcid", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert program.stdout is not None
        assert program.stdout.readline().strip() == f"fake ORCID at http://127.0.0.1:{port}"
        answer = httpx.get(f"http://127.0.0.1:{port}/oauth/userinfo")
        assert answer.status_code == 401
    finally:
        program.terminate()
        program.wait(10)
