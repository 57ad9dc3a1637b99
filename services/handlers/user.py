"""o2r's ``auth`` and ``user`` operations, mapped onto JupyterHub's identities and scopes.

- ``GET /auth/login``: o2r's login starts ORCID's OAuth; here the hub does the logging in, so
  this redirects (302) to the service's login page, which goes through the hub's login
  (whichever authenticator the hub runs: ORCID, with :mod:`erchub.hub.orcid`) and comes back
  to the catalogue.
- ``GET /auth/whoami``: ``{"name", "orcid", "level"}`` of the caller (401 without identity):
  the hub user name, the ORCID iD when the name is one (the ORCID authenticator names users by
  their iD), and o2r's user level (see :func:`o2r_level`).
- ``GET /user?start=&limit=``: o2r's list of users, ``{"results": [names], "total"}``: the
  hub's users in the hub's order, asked of the hub's REST API with the service's own token
  (role ``erc-service``: ``list:users``), page after page of the hub's (``offset``/``limit``),
  at most :data:`MAX_HUB_PAGES` of them per request.
- ``GET /user/{id}``: ``{"id", "name"}`` of a user of the hub (its model asked of the hub's
  API), 404 for a name the hub does not know. The caller's own adds ``level`` (from the
  caller's scopes); an erc administrator (o2r's admin) sees ``level`` (from the user's hub
  roles and groups, see :func:`level_of_model`) and ``lastseen`` (the hub's
  ``last_activity``) of everyone, as o2r shows them to its admins.

o2r's ``PATCH /user/{id}?level=`` is not offered: roles are the hub's configuration
(``load_roles``) and groups, changed on the hub's admin page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from jupyterhub.utils import url_path_join
from tornado import web

from erchub.errors import Unavailable
from erchub.hub.config import ERC_ADMIN_ROLE
from erchub.metadata import is_orcid_id
from erchub.services.handlers.base import (
    SCOPE_ADMIN,
    SCOPE_CREATE,
    SCOPE_READ,
    SCOPE_RUN,
    BaseHandler,
    needs_scope,
)
from erchub.services.hub import PAGINATION_TYPE, hub_api

#: o2r's user levels: ``custom:erc:admin`` is o2r's admin (1000, may do everything), the
#: hub's ``user`` role (read, create, run) o2r's registered user (100, may upload and run);
#: anyone else who reaches the service is o2r's newly registered user (0)
LEVEL_ADMIN = 1000
LEVEL_USER = 100
LEVEL_NEW = 0
#: the hub's role every user holds (erchub's config gives it the erc scopes read, create, run)
HUB_USER_ROLE = "user"
#: the hub's pages asked for one ``GET /user`` at most: the hub caps a page at its
#: ``api_page_max_limit`` (200 by default), so 1000 users (erchub's largest page) take five;
#: a hub with smaller pages gets a shorter answer rather than a request without end
MAX_HUB_PAGES = 10
USER_LIST_ARGUMENTS = ("start", "limit")


def o2r_level(scopes: Iterable[str]) -> int:
    """o2r's user level of a caller holding ``scopes``."""
    held = set(scopes)
    if SCOPE_ADMIN in held:
        return LEVEL_ADMIN
    if {SCOPE_READ, SCOPE_CREATE, SCOPE_RUN} <= held:
        return LEVEL_USER
    return LEVEL_NEW


def level_of_model(model: Mapping[str, Any]) -> int:
    """o2r's user level of a user the hub describes (its REST API's user model): 1000 with the
    ``erc-admin`` role or in the ``erc-admin`` group (which holds that role, see
    :func:`erchub.hub.config.configure_erc_service`), 100 with the hub's ``user`` role, else 0.
    The same mapping as :func:`o2r_level` of the scopes those roles carry in erchub's config."""
    roles = model.get("roles")
    groups = model.get("groups")
    roles = set(roles) if isinstance(roles, list) else set()
    groups = set(groups) if isinstance(groups, list) else set()
    if ERC_ADMIN_ROLE in roles or ERC_ADMIN_ROLE in groups:
        return LEVEL_ADMIN
    if HUB_USER_ROLE in roles:
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


class HubUsersBase(BaseHandler):
    """Asks the hub's REST API about users, with the service's own token."""

    async def hub_api(self, path: str, query: Mapping[str, object] | None = None) -> Any:
        """The hub's JSON answer to ``GET <hub api>/<path>``; None for a 404; 502 when the hub
        cannot be reached or answers anything else."""
        target = f"{path}?{urlencode(query)}" if query else path
        try:
            status, answer = await hub_api(self.hub_auth).request(
                "GET", target, headers={"Accept": f"{PAGINATION_TYPE}, application/json"}
            )
        except Unavailable as error:
            raise web.HTTPError(502, str(error)) from None
        if status == 404:
            return None
        if status != 200:
            raise web.HTTPError(502, f"the hub answered {status} about users")
        if answer is None:
            raise web.HTTPError(502, "the hub answered about users without JSON")
        return answer

    async def hub_user(self, user_id: str) -> dict[str, Any] | None:
        """The hub's model of user ``user_id``, None when the hub has no such user."""
        model = await self.hub_api(url_path_join("users", quote(user_id, safe="")))
        if model is None:
            return None
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            raise web.HTTPError(502, "the hub's answer about a user is no user model")
        return model

    async def hub_user_names(self, start: int, limit: int) -> tuple[list[str], int | None]:
        """Up to ``limit`` names of the hub's users from the ``start``-th on (0-based, the
        hub's order), through as many of the hub's pages as that takes (at most
        :data:`MAX_HUB_PAGES`), and how many users the hub has (None when it does not say)."""
        names: list[str] = []
        total: int | None = None
        for _ in range(MAX_HUB_PAGES):
            wanted = limit - len(names)
            answer = await self.hub_api("users", {"offset": start + len(names), "limit": wanted})
            items, total, more = hub_page(answer)
            names.extend(items[:wanted])
            if not items or not more or len(names) >= limit:
                break
        return names, total


def hub_page(answer: Any) -> tuple[list[str], int | None, bool]:
    """The user names of one page of the hub's ``GET /users``, the total the hub names (None
    without one), and whether more follow. The paginated form is ``{"items",
    "_pagination": {"total", "next"}}``; a hub that answers a bare list pages as well, but
    caps its pages unseen: it may have more until it answers an empty one. 502 for anything
    else."""
    if isinstance(answer, dict) and isinstance(answer.get("items"), list):
        items = answer["items"]
        pagination = answer.get("_pagination")
        pagination = pagination if isinstance(pagination, dict) else {}
        total = pagination.get("total")
        total = total if isinstance(total, int) and not isinstance(total, bool) else None
        more = pagination.get("next") is not None
    elif isinstance(answer, list):
        items, total, more = answer, None, bool(answer)
    else:
        raise web.HTTPError(502, "the hub's answer is no list of users")
    names = [item.get("name") for item in items if isinstance(item, dict)]
    if len(names) != len(items) or not all(isinstance(name, str) for name in names):
        raise web.HTTPError(502, "the hub's answer is no list of users")
    return [str(name) for name in names], total, more


class UsersHandler(HubUsersBase):
    """``/user``: o2r's list of user ids, the hub's users."""

    @needs_scope(SCOPE_READ)
    async def get(self) -> None:
        self.check_arguments(USER_LIST_ARGUMENTS)
        start, limit = self.paging()
        names, total = await self.hub_user_names(start, limit)
        body: dict[str, object] = {"results": names}
        if total is not None:
            body["total"] = total
        self.write_json(body)


class UserHandler(HubUsersBase):
    """``/user/{id}``: a user as o2r shows one to others; the level of oneself, and to erc
    administrators the level and last activity of anyone."""

    @needs_scope(SCOPE_READ)
    async def get(self, user_id: str) -> None:
        self.check_arguments()
        oneself = user_id == self.username
        model = None
        if not oneself or self.is_admin:
            model = await self.hub_user(user_id)
            if model is None and not oneself:
                raise web.HTTPError(404, f"user {user_id} not found")
        body: dict[str, object] = {"id": user_id, "name": user_id}
        if oneself:
            body["level"] = o2r_level(self.scopes)
        elif self.is_admin and model is not None:
            body["level"] = level_of_model(model)
        if self.is_admin and model is not None and isinstance(model.get("last_activity"), str):
            body["lastseen"] = model["last_activity"]
        self.write_json(body)


default_handlers = [
    (r"/auth/login", AuthLoginHandler),
    (r"/auth/whoami", WhoamiHandler),
    (r"/user", UsersHandler),
    (r"/user/(?P<user_id>[^/]+)", UserHandler),
]
