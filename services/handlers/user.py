"""o2r's ``auth`` and ``user`` operations, mapped onto JupyterHub's identities and scopes.

- ``GET /auth/login``: o2r's login starts ORCID's OAuth; here the hub does the logging in, so
  this redirects (302) to the service's login page, which goes through the hub's login
  (whichever authenticator the hub runs: ORCID, with :mod:`erchub.hub.orcid`) and comes back
  to the catalogue.
- ``GET /auth/whoami``: ``{"name", "orcid", "level"}`` of the caller (401 without identity):
  the hub user name, the ORCID iD when the name is one (the ORCID authenticator names users by
  their iD), and o2r's user level (see :func:`o2r_level`).
- ``GET /user/{id}``: ``{"id", "name"}`` of a user of the hub (asked of the hub's API with the
  service's token, role ``erc-service``: ``read:users:name``), 404 for a name the hub does not
  know; the caller's own adds ``level`` (other users' roles are the hub's, which the service
  does not read).

o2r's ``GET /user`` (every user) and ``PATCH /user/{id}?level=`` are not offered: users and
their roles are the hub's to list and change (``/hub/api/users``, the hub's admin page).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from erchub.metadata import is_orcid_id
from erchub.services.handlers.base import (
    SCOPE_ADMIN,
    SCOPE_CREATE,
    SCOPE_READ,
    SCOPE_RUN,
    BaseHandler,
    needs_scope,
)

#: o2r's user levels: ``custom:erc:admin`` is o2r's admin (1000, may do everything), the
#: hub's ``user`` role (read, create, run) o2r's registered user (100, may upload and run);
#: anyone else who reaches the service is o2r's newly registered user (0)
LEVEL_ADMIN = 1000
LEVEL_USER = 100
LEVEL_NEW = 0
#: how long the hub's API may take to answer (seconds)
HUB_API_TIMEOUT = 30


def o2r_level(scopes: Iterable[str]) -> int:
    """o2r's user level of a caller holding ``scopes``."""
    held = set(scopes)
    if SCOPE_ADMIN in held:
        return LEVEL_ADMIN
    if {SCOPE_READ, SCOPE_CREATE, SCOPE_RUN} <= held:
        return LEVEL_USER
    return LEVEL_NEW


class AuthLoginHandler(BaseHandler):
    """``/auth/login``: to the service's login page, and from there to the catalogue."""

    async def get(self) -> None:
        self.check_arguments()
        catalogue = self.service.base_url
        self.redirect(f"{url_path_join(catalogue, 'login')}?next={quote(catalogue, safe='/')}")


class WhoamiHandler(BaseHandler):
    """``/auth/whoami``: the caller as o2r describes a user."""

    async def get(self) -> None:
        self.check_arguments()
        name = self.username
        self.write_json(
            {
                "name": name,
                "orcid": name if is_orcid_id(name) else None,
                "level": o2r_level(self.scopes),
            }
        )


class UserHandler(BaseHandler):
    """``/user/{id}``: a user as o2r shows one to others; the level only of oneself."""

    @needs_scope(SCOPE_READ)
    async def get(self, user_id: str) -> None:
        self.check_arguments()
        if user_id != self.username and not await self.hub_knows(user_id):
            raise web.HTTPError(404, f"user {user_id} not found")
        body: dict[str, object] = {"id": user_id, "name": user_id}
        if user_id == self.username:
            body["level"] = o2r_level(self.scopes)
        self.write_json(body)

    async def hub_knows(self, user_id: str) -> bool:
        """Whether the hub has a user ``user_id`` (502 when the hub cannot say)."""
        request = HTTPRequest(
            url_path_join(self.hub_auth.api_url, "users", quote(user_id, safe="")),
            headers={"Authorization": f"token {self.hub_auth.api_token}"},
            request_timeout=HUB_API_TIMEOUT,
        )
        try:
            await AsyncHTTPClient().fetch(request)
        except HTTPClientError as error:
            if error.code == 404:
                return False
            raise web.HTTPError(502, f"the hub answered {error.code} about a user") from None
        except OSError as error:
            raise web.HTTPError(502, f"the hub cannot be reached: {error}") from None
        return True


default_handlers = [
    (r"/auth/login", AuthLoginHandler),
    (r"/auth/whoami", WhoamiHandler),
    (r"/user/(?P<user_id>[^/]+)", UserHandler),
]
