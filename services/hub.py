"""The hub's REST API as the erc service uses it, with the service's own token (role
``erc-service``): start and stop users' sessions, list users, delete review guests.

:class:`HubAPI` is the one client of the hub's API (make it with :func:`hub_api`);
:func:`end_review_sessions` stops what ended review links leave behind: the sessions launched
through them and their guests (:mod:`erchub.reviewers`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import quote, urlencode

from jupyterhub.services.auth import HubAuth
from jupyterhub.utils import url_path_join
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from erchub.errors import Unavailable
from erchub.reviewers import guest_link_digest, link_digest

#: seconds a request to the hub's API may take
HUB_API_TIMEOUT = 30
#: users asked for in one page of the hub's user list, and the most pages read in one listing
USERS_PAGE = 200
MAX_USER_PAGES = 500
#: what asks the hub for a page of its user list with its paging model
PAGINATION_TYPE = "application/jupyterhub-pagination+json"


class HubAPI:
    """Requests to the hub's REST API as the erc service."""

    def __init__(self, api_url: str, token: str) -> None:
        self.api_url = api_url
        self.token = token

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """Status and parsed body (None when not JSON) of a request; Unavailable when the hub
        does not answer."""
        request = HTTPRequest(
            url_path_join(self.api_url, path),
            method=method,
            headers={"Authorization": f"token {self.token}", **(headers or {})},
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
            request_timeout=HUB_API_TIMEOUT,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as exc:
            if exc.response is None:
                raise Unavailable(f"the hub did not answer: {exc}") from None
            response = exc.response
        except OSError as exc:
            raise Unavailable(f"the hub cannot be reached: {exc}") from None
        try:
            parsed = json.loads(response.body) if response.body else None
        except ValueError:
            parsed = None
        return response.code, parsed

    async def users(self, **filters: str) -> AsyncIterator[dict[str, Any]]:
        """The hub's users (models with their servers), page by page; ``filters`` are the
        list's query arguments (``state``, ``name_filter``)."""
        for page in range(MAX_USER_PAGES):
            query = urlencode({**filters, "offset": page * USERS_PAGE, "limit": USERS_PAGE})
            status, body = await self.request(
                "GET", f"/users?{query}", headers={"Accept": PAGINATION_TYPE}
            )
            if status != 200 or not isinstance(body, dict):
                raise Unavailable(f"the hub answered {status} when asked for its users")
            items = body.get("items") or []
            for item in items:
                if isinstance(item, dict):
                    yield item
            if not (body.get("_pagination") or {}).get("next"):
                return

    async def stop_server(self, user: str, server: str) -> int:
        """Ask the hub to stop a server; its status (202: stopping, 204: stopped)."""
        status, _ = await self.request(
            "DELETE", f"/users/{quote(user, safe='')}/servers/{quote(server, safe='')}"
        )
        return status

    async def delete_user(self, user: str) -> int:
        status, _ = await self.request("DELETE", f"/users/{quote(user, safe='')}")
        return status


def hub_api(hub_auth: HubAuth) -> HubAPI:
    """The hub's API with the service's token (from its HubAuth)."""
    return HubAPI(hub_auth.api_url, hub_auth.api_token)


async def end_review_sessions(
    hub: HubAPI, ended_links: Iterable[str], active_links: Iterable[str], log: logging.Logger
) -> bool:
    """Stop every session launched through one of ``ended_links``, and delete every review
    guest whose link is not among ``active_links`` (their sessions are stopped first). Whether
    everything is done: a server still stopping, or a guest not yet deleted, leaves it for the
    next call."""
    ended = set(ended_links)
    active_digests = {link_digest(link) for link in active_links}
    done = True
    async for user in hub.users(state="active"):
        name = str(user.get("name", ""))
        for server_name, server in (user.get("servers") or {}).items():
            options = server.get("user_options") or {}
            if options.get("link") in ended:
                status = await hub.stop_server(name, server_name)
                log.info("stopped %s's session %s: its review link ended (%s)",
                         name, server_name, status)  # fmt: skip
                done = done and status == 204
    async for user in hub.users(name_filter="guest-"):
        name = str(user.get("name", ""))
        digest = guest_link_digest(name)
        if digest is None or digest in active_digests:
            continue
        stopped = True
        for server_name in user.get("servers") or {}:
            stopped = await hub.stop_server(name, server_name) == 204 and stopped
        if not stopped:  # deleted once its servers are gone: the hub stops no named server
            done = False
            continue
        status = await hub.delete_user(name)
        log.info("deleted the review guest %s: their link ended (%s)", name, status)
        done = done and status in (204, 404)
    return done
