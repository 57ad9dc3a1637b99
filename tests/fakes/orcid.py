"""A local OpenID Connect server that answers like ORCID, for tests and local trials.

Endpoints (as on orcid.org, https://info.orcid.org/documentation/integration-guide/):

``GET /oauth/authorize``
    Checks ``client_id``, ``redirect_uri`` (one registered for the client, compared exactly),
    ``response_type=code`` and an ``openid`` scope, then shows a sign-in form asking for an
    ORCID iD. ``POST /oauth/authorize`` with ``action=approve`` redirects to ``redirect_uri``
    with a single-use ``code`` and the ``state``; ``action=deny`` with
    ``error=access_denied``. An unknown client or redirect URI gets a 400 page (no redirect).
``POST /oauth/token``
    ``grant_type=authorization_code``; client credentials as form fields or HTTP Basic; the
    code is single-use and its ``redirect_uri`` must match. Answers ``{access_token,
    token_type: "bearer", refresh_token, expires_in, scope: "openid", name, orcid, id_token}``;
    errors are ORCID's JSON ``{"error", "error_description"}`` (400, or 401 for the client).
``GET /oauth/userinfo``
    ``Authorization: Bearer <access token>`` -> ``{sub, name, given_name, family_name}``;
    401 with ``{"error": "invalid_token", ...}`` otherwise.

PKCE parameters are accepted and not checked (ORCID ignores what it does not use). The
``id_token`` is signed with HS256 by the client secret (ORCID signs RS256 with its own key;
nobody here verifies it).

In tests: ``with FakeORCID({"0000-0002-1694-233X": ("Ada", "Lovelace")}) as orcid:`` runs the
server on a free port in a thread with its own event loop (``orcid.url``); add the hub's
callback with ``orcid.redirect_uris.add(...)``. By hand::

    python -m tests.fakes.orcid --port 9000 --user '0000-0002-1694-233X:Ada:Lovelace' \\
        --redirect-uri http://127.0.0.1:8000/hub/oauth_callback

then start the hub with ``c.ORCIDOAuthenticator.orcid_url = "http://127.0.0.1:9000"`` and the
environment ``ORCID_CLIENT_ID=APP-FAKEORCID00001`` and
``ORCID_CLIENT_SECRET=fake-orcid-client-secret-for-tests-only`` (the defaults of the options).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import html
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jwt
from tornado import web

from tests.fakes.server import ThreadedServer

CLIENT_ID = "APP-FAKEORCID00001"
CLIENT_SECRET = "fake-orcid-client-secret-for-tests-only"
#: what ORCID answers as `expires_in` (about 20 years)
EXPIRES_IN = 631138518

FORM = """<!DOCTYPE html>
<html><head><title>ORCID (test server)</title></head>
<body>
<h1>Sign in to ORCID</h1>
<p>{client} asks to get your ORCID iD.</p>
{error}
<form method="post" action="/oauth/authorize">
{hidden}
<label>ORCID iD <input name="orcid" placeholder="0000-0000-0000-0000" autofocus></label>
<button type="submit" name="action" value="approve">Authorize access</button>
<button type="submit" name="action" value="deny">Deny access</button>
</form>
</body></html>
"""


@dataclass
class Grant:
    """An authorization code's promise: who signed in, for which client and redirect URI."""

    orcid: str
    client_id: str
    redirect_uri: str
    nonce: str | None


class OAuthError(web.HTTPError):
    """An error answered as ORCID's JSON ``{"error", "error_description"}``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(status)
        self.error = error
        self.description = description


class Handler(web.RequestHandler):
    @property
    def orcid(self) -> FakeORCID:
        server: FakeORCID = self.settings["orcid"]
        return server

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exception = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exception, OAuthError):
            if exception.error == "invalid_token":
                self.set_header("WWW-Authenticate", f'Bearer error="{exception.error}"')
            self.finish({"error": exception.error, "error_description": exception.description})
        else:
            self.finish({"error": "server_error", "error_description": self._reason})


class AuthorizeHandler(Handler):
    PARAMETERS = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce")

    def check_client(self) -> tuple[str, str]:
        """The client and redirect URI; a 400 page when either is wrong (ORCID then cannot
        trust the redirect URI, so it does not redirect)."""
        client_id = self.get_argument("client_id", "")
        redirect_uri = self.get_argument("redirect_uri", "")
        if client_id != self.orcid.client_id:
            self.page_error(f"Client not found: {client_id}")
        if redirect_uri not in self.orcid.redirect_uris:
            self.page_error("Redirect URI doesn't match your registered redirect URIs.")
        return client_id, redirect_uri

    def page_error(self, message: str) -> None:
        self.set_status(400)
        self.finish(f"<!DOCTYPE html><html><body><h1>Error</h1><p>{html.escape(message)}</p>")
        raise web.Finish()

    def redirect_back(self, redirect_uri: str, **params: str) -> None:
        state = self.get_argument("state", "")
        if state:
            params["state"] = state
        separator = "&" if "?" in redirect_uri else "?"
        self.redirect(redirect_uri + separator + urlencode(params))

    def check_request(self, redirect_uri: str) -> bool:
        if self.get_argument("response_type", "") != "code":
            self.redirect_back(
                redirect_uri,
                error="unsupported_response_type",
                error_description="Unsupported response type",
            )
            return False
        if "openid" not in self.get_argument("scope", "").split():
            self.redirect_back(
                redirect_uri, error="invalid_scope", error_description="Invalid scope"
            )
            return False
        return True

    def show_form(self, error: str = "") -> None:
        hidden = "\n".join(
            f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
            for name in self.PARAMETERS
            if (value := self.get_argument(name, ""))
        )
        self.finish(
            FORM.format(
                client=html.escape(self.orcid.client_name),
                error=f'<p class="error">{html.escape(error)}</p>' if error else "",
                hidden=hidden,
            )
        )

    def get(self) -> None:
        _, redirect_uri = self.check_client()
        if self.check_request(redirect_uri):
            self.show_form()

    def post(self) -> None:
        client_id, redirect_uri = self.check_client()
        if not self.check_request(redirect_uri):
            return
        if self.get_argument("action", "") != "approve":
            self.redirect_back(
                redirect_uri, error="access_denied", error_description="User denied access"
            )
            return
        orcid = self.get_argument("orcid", "").strip()
        if orcid not in self.orcid.users:
            self.set_status(401)
            self.show_form("Invalid email/ORCID iD or password.")
            return
        code = secrets.token_urlsafe(4)  # ORCID's codes are six characters
        self.orcid.grants[code] = Grant(
            orcid, client_id, redirect_uri, self.get_argument("nonce", None)
        )
        self.redirect_back(redirect_uri, code=code)


class TokenHandler(Handler):
    def client_credentials(self) -> tuple[str, str]:
        authorization = self.request.headers.get("Authorization", "")
        if authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:]).decode()
            except ValueError:
                raise OAuthError(401, "invalid_client", "Bad client credentials") from None
            client_id, _, client_secret = decoded.partition(":")
            return client_id, client_secret
        return self.get_body_argument("client_id", ""), self.get_body_argument("client_secret", "")

    def post(self) -> None:
        client_id, client_secret = self.client_credentials()
        if client_id != self.orcid.client_id:
            raise OAuthError(401, "invalid_client", f"Client not found: {client_id}")
        if not secrets.compare_digest(client_secret, self.orcid.client_secret):
            raise OAuthError(401, "invalid_client", "Bad client credentials")
        grant_type = self.get_body_argument("grant_type", "")
        if grant_type != "authorization_code":
            raise OAuthError(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")
        code = self.get_body_argument("code", "")
        grant = self.orcid.grants.pop(code, None)  # single use, whatever happens next
        if grant is None or grant.client_id != client_id:
            raise OAuthError(400, "invalid_grant", f"Invalid authorization code: {code}")
        if self.get_body_argument("redirect_uri", "") != grant.redirect_uri:
            raise OAuthError(400, "invalid_grant", "Redirect URI mismatch.")
        self.finish(self.orcid.issue(grant))


class UserinfoHandler(Handler):
    def get(self) -> None:
        authorization = self.request.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        orcid = self.orcid.access_tokens.get(token) if scheme.lower() == "bearer" else None
        if orcid is None:
            raise OAuthError(401, "invalid_token", "Invalid access token")
        self.finish(self.orcid.claims(orcid))


class FakeORCID(ThreadedServer):
    """The server's state: ORCID iD -> (given name, family name), one registered client, and
    the codes and tokens issued (read them in tests; the server thread writes them)."""

    name = "fake ORCID server"

    def __init__(
        self,
        users: Mapping[str, tuple[str, str]],
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        redirect_uris: Iterable[str] = (),
        client_name: str = "erchub test hub",
    ) -> None:
        self.users = dict(users)
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = set(redirect_uris)
        self.client_name = client_name
        self.grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, str] = {}
        super().__init__()

    def claims(self, orcid: str) -> dict[str, Any]:
        """What userinfo answers for ``orcid`` (ORCID omits names a person keeps private)."""
        given, family = self.users[orcid]
        name = " ".join(part for part in (given, family) if part)
        claims: dict[str, Any] = {"id": f"{self.url}/{orcid}", "sub": orcid}
        if name:
            claims.update(name=name, given_name=given or None, family_name=family or None)
        return claims

    def issue(self, grant: Grant) -> dict[str, Any]:
        access_token = str(uuid.uuid4())
        self.access_tokens[access_token] = grant.orcid
        now = int(time.time())
        claims = self.claims(grant.orcid)
        id_claims = {
            "iss": self.url,
            "aud": grant.client_id,
            "sub": grant.orcid,
            "iat": now,
            "auth_time": now,
            "exp": now + 600,
            "given_name": claims.get("given_name"),
            "family_name": claims.get("family_name"),
        }
        if grant.nonce:
            id_claims["nonce"] = grant.nonce
        return {
            "access_token": access_token,
            "token_type": "bearer",
            "refresh_token": str(uuid.uuid4()),
            "expires_in": EXPIRES_IN,
            "scope": "openid",
            "name": claims.get("name"),
            "orcid": grant.orcid,
            "id_token": jwt.encode(id_claims, self.client_secret, algorithm="HS256"),
        }

    def application(self) -> web.Application:
        return web.Application(
            [
                (r"/oauth/authorize", AuthorizeHandler),
                (r"/oauth/token", TokenHandler),
                (r"/oauth/userinfo", UserinfoHandler),
            ],
            orcid=self,
        )


def parse_user(value: str) -> tuple[str, tuple[str, str]]:
    """``ORCID-iD:Given:Family`` -> (iD, (given, family))."""
    orcid, _, names = value.partition(":")
    given, _, family = names.partition(":")
    return orcid.strip(), (given.strip(), family.strip())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local server that answers like ORCID.")
    parser.add_argument("--port", type=int, default=9000, help="port on 127.0.0.1 (9000)")
    parser.add_argument("--client-id", default=CLIENT_ID, help=f"({CLIENT_ID})")
    parser.add_argument("--client-secret", default=CLIENT_SECRET, help=f"({CLIENT_SECRET})")
    parser.add_argument(
        "--redirect-uri",
        action="append",
        help="registered redirect URI, repeatable (http://127.0.0.1:8000/hub/oauth_callback)",
    )
    parser.add_argument(
        "--user",
        action="append",
        type=parse_user,
        help="ORCID-iD:Given:Family, repeatable (0000-0002-1694-233X:Ada:Lovelace)",
    )
    args = parser.parse_args(argv)
    orcid = FakeORCID(
        dict(args.user or [parse_user("0000-0002-1694-233X:Ada:Lovelace")]),
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=args.redirect_uri or ["http://127.0.0.1:8000/hub/oauth_callback"],
    )

    def announce() -> None:
        print(f"fake ORCID at {orcid.url}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(orcid.serve(args.port, announce))


if __name__ == "__main__":
    main()
