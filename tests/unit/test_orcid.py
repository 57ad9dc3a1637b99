"""ORCIDOAuthenticator without a network: ORCID's answers are given to its HTTP calls."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from tornado import web
from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse

from erchub.hub.orcid import ORCIDOAuthenticator, display_name
from erchub.metadata import is_orcid_id

ORCID_ID = "0000-0002-1694-233X"
TOKEN = "d9d6c1a4-5b79-4e6a-9f0e-2f6a7b2c1e11"
SECRET = "client-secret-never-logged"


@pytest.fixture(autouse=True)
def no_orcid_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ORCID_CLIENT_ID", "ORCID_CLIENT_SECRET", "OAUTH_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)


def test_orcid_urls_and_scope_by_default() -> None:
    authenticator = ORCIDOAuthenticator()
    assert authenticator.orcid_url == "https://orcid.org"
    assert authenticator.authorize_url == "https://orcid.org/oauth/authorize"
    assert authenticator.token_url == "https://orcid.org/oauth/token"
    assert authenticator.userdata_url == "https://orcid.org/oauth/userinfo"
    assert authenticator.scope == ["openid"]
    assert authenticator.login_service == "ORCID"


def test_sandbox_switches_every_url() -> None:
    authenticator = ORCIDOAuthenticator(sandbox=True)
    assert authenticator.orcid_url == "https://sandbox.orcid.org"
    assert authenticator.authorize_url == "https://sandbox.orcid.org/oauth/authorize"
    assert authenticator.token_url == "https://sandbox.orcid.org/oauth/token"
    assert authenticator.userdata_url == "https://sandbox.orcid.org/oauth/userinfo"


def test_orcid_url_moves_the_endpoints_and_explicit_urls_win() -> None:
    authenticator = ORCIDOAuthenticator(
        orcid_url="http://127.0.0.1:9000/", token_url="http://token.example/t"
    )
    assert authenticator.authorize_url == "http://127.0.0.1:9000/oauth/authorize"
    assert authenticator.userdata_url == "http://127.0.0.1:9000/oauth/userinfo"
    assert authenticator.token_url == "http://token.example/t"


def test_client_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCID_CLIENT_ID", "APP-ENV")
    monkeypatch.setenv("ORCID_CLIENT_SECRET", "env-secret")
    authenticator = ORCIDOAuthenticator()
    assert (authenticator.client_id, authenticator.client_secret) == ("APP-ENV", "env-secret")
    configured = ORCIDOAuthenticator(client_id="APP-CONF", client_secret="conf-secret")
    assert (configured.client_id, configured.client_secret) == ("APP-CONF", "conf-secret")


def test_generic_oauth_environment_is_not_orcid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTH_CLIENT_ID", "some-other-provider")
    assert ORCIDOAuthenticator().client_id == ""


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("0000-0002-1694-233X", True),
        ("0000-0002-1825-0097", True),
        ("0000-0001-5109-3700", True),
        ("0000-0002-1694-233x", False),  # what lower-casing makes of the first one
        ("0000-0002-1825-0098", False),  # checksum
        ("0000-0002-1825-009", False),
        ("0000000218250097", False),
        ("https://orcid.org/0000-0002-1825-0097", False),
        ("", False),
    ],
)
def test_orcid_id_validation(value: str, valid: bool) -> None:
    assert is_orcid_id(value) is valid


def test_username_keeps_its_case_and_loses_whitespace() -> None:
    authenticator = ORCIDOAuthenticator()
    assert authenticator.normalize_username(f" {ORCID_ID}\n") == ORCID_ID
    mapped = ORCIDOAuthenticator(username_map={ORCID_ID: "ada"})
    assert mapped.normalize_username(ORCID_ID) == "ada"


@pytest.mark.parametrize(
    ("token_info", "user_info", "name"),
    [
        ({"name": "T N"}, {"name": "Ada King", "given_name": "A", "family_name": "L"}, "Ada King"),
        ({"name": "T N"}, {"given_name": "Ada", "family_name": "Lovelace"}, "Ada Lovelace"),
        ({"name": "T N"}, {"given_name": "Ada", "family_name": None}, "Ada"),
        ({"name": "Ada Lovelace"}, {"sub": ORCID_ID}, "Ada Lovelace"),
        ({"name": None}, {"sub": ORCID_ID}, None),
    ],
)  # fmt: skip
def test_display_name_sources(
    token_info: dict[str, Any], user_info: dict[str, Any], name: str | None
) -> None:
    assert display_name(token_info, user_info) == name


def page_text(error: web.HTTPError) -> str:
    """What the hub's error page says about ``error`` (JupyterHub shows jupyterhub_message)."""
    return str(vars(error)["jupyterhub_message"])


class Handler:
    """What oauthenticator reads from the callback request."""

    def get_argument(self, name: str, default: Any = None) -> Any:
        return {"code": "Ab12Cd"}.get(name, default)


def orcid_answers(
    authenticator: ORCIDOAuthenticator,
    monkeypatch: pytest.MonkeyPatch,
    token: dict[str, Any] | Exception,
    userinfo: dict[str, Any] | None = None,
) -> list[str]:
    """Make the authenticator's HTTP calls answer ``token`` and ``userinfo``; returns the list
    of URLs it calls."""
    called: list[str] = []

    async def httpfetch(url: str, *args: Any, **kwargs: Any) -> Any:
        called.append(url)
        if url.startswith(authenticator.token_url):
            if isinstance(token, Exception):
                raise token
            return token
        assert kwargs["headers"]["Authorization"] == f"Bearer {TOKEN}"
        return userinfo

    monkeypatch.setattr(authenticator, "httpfetch", httpfetch)
    return called


def make_authenticator() -> ORCIDOAuthenticator:
    return ORCIDOAuthenticator(
        client_id="APP-TEST",
        client_secret=SECRET,
        oauth_callback_url="http://hub.example/hub/oauth_callback",
        enable_pkce=False,  # PKCE keeps its verifier in the browser's cookie
        allow_all=True,
    )


def token_response(**fields: Any) -> dict[str, Any]:
    return {
        "access_token": TOKEN,
        "token_type": "bearer",
        "refresh_token": "refresh-1",
        "expires_in": 631138518,
        "scope": "openid",
        "name": "Ada Lovelace",
        "orcid": ORCID_ID,
        **fields,
    }


async def test_login_names_the_user_by_orcid_id_with_its_x(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    authenticator = make_authenticator()
    userinfo = {"sub": ORCID_ID, "given_name": "Ada", "family_name": "Lovelace"}
    called = orcid_answers(authenticator, monkeypatch, token_response(name=None), userinfo)
    with caplog.at_level(logging.DEBUG):
        user = await authenticator.get_authenticated_user(Handler(), None)
    assert called == [authenticator.token_url, authenticator.userdata_url]
    assert user["name"] == ORCID_ID
    state = user["auth_state"]
    assert state["name"] == "Ada Lovelace"
    assert state["access_token"] == TOKEN and state["scope"] == ["openid"]
    assert state["oauth_user"] == userinfo
    assert TOKEN not in caplog.text and SECRET not in caplog.text


async def test_orcid_id_from_the_token_response_when_userinfo_lacks_sub(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    authenticator = make_authenticator()
    orcid_answers(authenticator, monkeypatch, token_response(), {"name": None})
    user = await authenticator.get_authenticated_user(Handler(), None)
    assert user["name"] == ORCID_ID
    assert user["auth_state"]["name"] == "Ada Lovelace"


async def test_an_invalid_orcid_id_is_refused(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    authenticator = make_authenticator()
    bad = "0000-0002-1694-2330"
    orcid_answers(authenticator, monkeypatch, token_response(orcid=bad), {"sub": bad})
    with pytest.raises(web.HTTPError) as refused:
        await authenticator.get_authenticated_user(Handler(), None)
    assert refused.value.status_code == 403
    assert "valid ORCID iD" in page_text(refused.value)
    assert f"{bad!r} is not a valid ORCID iD" in caplog.text


def refusal(code: int, body: dict[str, str]) -> HTTPClientError:
    request = HTTPRequest("https://orcid.org/oauth/token", method="POST", body=b"")
    response = HTTPResponse(request, code, buffer=io.BytesIO(json.dumps(body).encode()))
    return HTTPClientError(code, response=response)


async def test_orcid_refusing_the_client_is_a_403_with_orcid_s_reason(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    authenticator = make_authenticator()
    error = refusal(401, {"error": "invalid_client", "error_description": "Bad client credentials"})
    orcid_answers(authenticator, monkeypatch, error)
    with pytest.raises(web.HTTPError) as refused:
        await authenticator.get_authenticated_user(Handler(), None)
    assert refused.value.status_code == 403
    assert "ORCID refused" in page_text(refused.value)
    assert "Bad client credentials" in page_text(refused.value)
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    "error", [ConnectionRefusedError(111, "Connection refused"), HTTPClientError(599)]
)
async def test_orcid_unreachable_is_a_502(
    monkeypatch: pytest.MonkeyPatch, error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    authenticator = make_authenticator()
    orcid_answers(authenticator, monkeypatch, error)
    with pytest.raises(web.HTTPError) as refused:
        await authenticator.get_authenticated_user(Handler(), None)
    assert refused.value.status_code == 502
    assert "ORCID could not be reached" in page_text(refused.value)
    assert "unreachable" in caplog.text


class User:
    name = ORCID_ID

    async def get_auth_state(self) -> dict[str, Any]:
        return {"token_response": token_response(), "refresh_token": None}


async def test_refresh_reads_userinfo_again(monkeypatch: pytest.MonkeyPatch) -> None:
    authenticator = make_authenticator()
    authenticator.enable_auth_state = True
    userinfo = {"sub": ORCID_ID, "name": "Ada King"}
    orcid_answers(authenticator, monkeypatch, token_response(), userinfo)
    refreshed = await authenticator.refresh_user(User())
    assert refreshed["name"] == ORCID_ID and refreshed["auth_state"]["name"] == "Ada King"


async def test_refresh_keeps_the_login_while_orcid_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    authenticator = make_authenticator()
    authenticator.enable_auth_state = True

    async def httpfetch(url: str, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(authenticator, "httpfetch", httpfetch)
    assert await authenticator.refresh_user(User()) is True
    assert "ORCID unreachable while refreshing" in caplog.text
