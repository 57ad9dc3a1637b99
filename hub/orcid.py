"""ORCID login: a GenericOAuthenticator with ORCID's endpoints and ORCID iDs as user names.

ORCID's OpenID Connect flow (https://info.orcid.org/documentation/integration-guide/): the
browser signs in at ``{orcid_url}/oauth/authorize`` (scope ``openid``), the hub exchanges the
code at ``/oauth/token`` (whose answer names the person: ``orcid``, ``name``) and reads
``/oauth/userinfo`` (``sub``, ``name``, ``given_name``, ``family_name``).

The user name is the ORCID iD exactly as ORCID writes it: an iD may end in an upper-case ``X``
(its check character), which JupyterHub's default lower-casing would turn into another name.
"""

from __future__ import annotations

import json
import os
from typing import Any

from oauthenticator.generic import GenericOAuthenticator
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Bool, Unicode, default

from erchub.hub.guests import ReviewGuestsMixin
from erchub.metadata import is_orcid_id

ORCID_URL = "https://orcid.org"
SANDBOX_URL = "https://sandbox.orcid.org"


def display_name(token_info: dict[str, Any], user_info: dict[str, Any]) -> str | None:
    """The person's name: userinfo ``name``, else ``given_name`` + ``family_name``, else the
    token response's ``name``; None when ORCID shares none (names can be private)."""
    if user_info.get("name"):
        return str(user_info["name"]).strip()
    parts = [str(user_info.get(key) or "").strip() for key in ("given_name", "family_name")]
    joined = " ".join(part for part in parts if part)
    return joined or (str(token_info["name"]).strip() if token_info.get("name") else None)


class ORCIDOAuthenticator(ReviewGuestsMixin, GenericOAuthenticator):
    """Log in with ORCID; the hub user is named by the person's ORCID iD (case kept).

    Register the hub at https://orcid.org/developer-tools with the redirect URI
    ``https://HUB/hub/oauth_callback``; give the client id and secret as traits or as
    ``ORCID_CLIENT_ID`` / ``ORCID_CLIENT_SECRET``. ``auth_state["name"]`` holds the person's
    display name (with ``enable_auth_state``). ``username_claim`` is not used: the user name is
    always the ORCID iD (userinfo ``sub``, else the token response's ``orcid``). Review
    links have their page at ``/hub/review/<id>`` (erchub.hub.guests).
    """

    sandbox = Bool(
        False,
        help="Use ORCID's sandbox (https://sandbox.orcid.org) instead of the production "
        "registry, e.g. for a test deployment (default: False).",
    ).tag(config=True)

    orcid_url = Unicode(
        help="Base URL of the ORCID registry; the authorize, token and userinfo URLs default to "
        "its /oauth/authorize, /oauth/token and /oauth/userinfo (default: https://orcid.org, "
        "https://sandbox.orcid.org when `sandbox` is set).",
    ).tag(config=True)

    @default("orcid_url")
    def _default_orcid_url(self) -> str:
        return SANDBOX_URL if self.sandbox else ORCID_URL

    def _orcid_endpoint(self, path: str) -> str:
        return f"{self.orcid_url.rstrip('/')}/oauth/{path}"

    @default("authorize_url")
    def _default_authorize_url(self) -> str:
        return self._orcid_endpoint("authorize")

    @default("token_url")
    def _default_token_url(self) -> str:
        return self._orcid_endpoint("token")

    @default("userdata_url")
    def _default_userdata_url(self) -> str:
        return self._orcid_endpoint("userinfo")

    @default("scope")
    def _default_scope(self) -> list[str]:
        # ORCID's userinfo answers only tokens with `openid`; `openid` alone also signs in.
        return ["openid"]

    @default("login_service")
    def _default_login_service(self) -> str:
        return "ORCID"

    @default("client_id")
    def _default_client_id(self) -> str:
        return os.environ.get("ORCID_CLIENT_ID", "")

    @default("client_secret")
    def _default_client_secret(self) -> str:
        return os.environ.get("ORCID_CLIENT_SECRET", "")

    async def authenticate(self, handler: Any, data: Any = None, **kwargs: Any) -> Any:
        """oauthenticator's flow, with ORCID's refusals (a wrong client secret, a used code)
        and an unreachable ORCID shown as a page that says so, not as a server error."""
        try:
            return await super().authenticate(handler, data, **kwargs)
        except HTTPClientError as error:
            if error.response is None or error.code >= 500:
                raise self._unreachable(error) from None
            reason = orcid_error(error)
            self.log.warning("ORCID login failed: ORCID refused the hub's request (%s)", reason)
            raise login_error(
                403,
                f"ORCID refused this hub's sign-in request ({reason}). "
                "Please try again; if it keeps failing, tell the hub's administrator.",
            ) from None
        except OSError as error:
            raise self._unreachable(error) from None

    async def refresh_user(self, user: Any, handler: Any = None, **kwargs: Any) -> Any:
        """oauthenticator's refresh (userinfo with the stored token); while ORCID cannot be
        reached the login stays valid, instead of every hub page failing."""
        try:
            return await super().refresh_user(user, handler, **kwargs)
        except (HTTPClientError, OSError) as error:
            self.log.warning(
                "ORCID unreachable while refreshing %s's login (%s); keeping it", user.name, error
            )
            return True

    def _unreachable(self, error: Exception) -> web.HTTPError:
        self.log.error("ORCID login failed: %s is unreachable (%s)", self.orcid_url, error)
        return login_error(502, "ORCID could not be reached. Please try again later.")

    async def token_to_user(self, token_info: dict[str, Any]) -> dict[str, Any]:
        user_info = dict(await super().token_to_user(token_info) or {})
        # ORCID's token response names the iD too: the fallback when userinfo has no `sub`
        if not user_info.get("sub") and token_info.get("orcid"):
            user_info["sub"] = token_info["orcid"]
        return user_info

    def user_info_to_username(self, user_info: dict[str, Any]) -> str:
        orcid = str(user_info.get("sub") or "").strip()
        if not is_orcid_id(orcid):
            self.log.warning("ORCID login refused: %r is not a valid ORCID iD", orcid[:40])
            raise login_error(
                403, "ORCID did not name a valid ORCID iD for this sign-in; login refused."
            )
        return orcid

    def normalize_username(self, username: str) -> str:
        # Case is part of an ORCID iD (its check character may be `X`): no lower-casing.
        username = username.strip()
        return str(self.username_map.get(username, username))

    def build_auth_state_dict(
        self, token_info: dict[str, Any], user_info: dict[str, Any]
    ) -> dict[str, Any]:
        auth_state: dict[str, Any] = super().build_auth_state_dict(token_info, user_info)
        auth_state["name"] = display_name(token_info, user_info)
        return auth_state


def login_error(status: int, message: str) -> web.HTTPError:
    """An error whose page says ``message``. Without a tornado log message: tornado would log
    it with the callback URL, which holds the authorization code."""
    error = web.HTTPError(status)
    error.jupyterhub_message = message  # type: ignore[attr-defined]  # read by write_error
    return error


def orcid_error(error: HTTPClientError) -> str:
    """ORCID's ``error_description`` (else ``error``) of a refused request, else its status."""
    try:
        body = json.loads(error.response.body) if error.response else {}
    except ValueError:
        body = {}
    if isinstance(body, dict):
        for key in ("error_description", "error"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])[:200]
    return f"HTTP {error.code}"
