"""Review links of a compendium, managed by its author from JupyterLab ("Submit for review" of
the publish flow, the ERC panel's list): proxies to the erc API's links, as the server's user.

- ``GET erchub/compendium/{id}/link``: the user's links of that compendium (the erc API's
  ``GET /link``, which lists all of them, narrowed to the one compendium),
  ``{"results": [...]}`` in the service's order.
- ``PUT erchub/compendium/{id}/link`` ``{"mode": "open"|"blind", "expires": ISO date-time}``
  (the body and both fields optional: open, no expiry) creates a link
  (``PUT /compendium/{id}/link``): the link as the erc service answers it (``id``, ``url``:
  the service's path of the link's page, ``mode``, ``expires``, ``uses``, ``active``, and for
  a blind link ``blind_cannot_hide``). Asking again with the same mode and expiry answers the
  same link.
- ``DELETE erchub/compendium/{id}/link`` ``{"link": id}``: revokes that link; 204. The id
  travels in the body, not in this server's URL: whoever has it may read the candidate, and
  request URLs end up in logs.

Only the compendium's author manages its links: the erc service answers anyone else 403
(404 for a compendium they cannot see), which is passed on.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from erchub.extensions.client import path_of
from erchub.extensions.handlers.base import BaseHandler, http_error

#: the modes of a review link (the erc service's LinkMode)
LINK_MODES = ("open", "blind")


class CompendiumLinkHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, compendium_id: str) -> None:
        client = self.erc_client
        answer = await self.erc_call(client.json("GET", "/link"))
        found = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(found, list):
            raise http_error(502, "the erc service's list of review links has no results")
        results = [
            link
            for link in found
            if isinstance(link, dict) and link.get("compendium_id") == compendium_id
        ]
        self.write_json({"results": results})

    @web.authenticated
    @authorized
    async def put(self, compendium_id: str) -> None:
        # the body is optional, as the erc API's: an open link that does not expire
        fields = {"mode": (str, False), "expires": (str, False)}
        body = self.json_body(fields) if self.request.body.strip() else {}
        mode = body.get("mode", LINK_MODES[0])
        if mode not in LINK_MODES:
            raise http_error(400, f"mode must be open or blind, got {mode[:40]!r}")
        request: dict[str, Any] = {"mode": mode}
        if "expires" in body:
            request["expires"] = body["expires"].strip()
        client = self.erc_client
        path = path_of("compendium", compendium_id, "link")
        link = await self.erc_call(client.json("PUT", path, request))
        if not isinstance(link, dict) or not isinstance(link.get("id"), str):
            raise http_error(502, "the erc service's answer to a new review link has no id")
        self.log.info("erchub: %s review link to %s created", mode, compendium_id)
        self.write_json(link)

    @web.authenticated
    @authorized
    async def delete(self, compendium_id: str) -> None:
        body = self.json_body({"link": (str, True)})
        client = self.erc_client
        request = client.request(
            "DELETE", path_of("compendium", compendium_id, "link"), query={"link": body["link"]}
        )
        await self.erc_call(client.fetch(request))
        self.log.info("erchub: a review link to %s revoked", compendium_id)
        self.set_status(204)
        self.finish()


_ID = r"(?P<compendium_id>[^/]+)"

default_handlers = [(rf"/erchub/compendium/{_ID}/link", CompendiumLinkHandler)]
