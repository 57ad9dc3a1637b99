"""Review links (o2r's public links): a candidate readable by whoever has the link.

- ``PUT /compendium/{id}/link``: create a link (body optional: ``{"mode": "open"|"blind",
  "expires": ISO 8601 date-time}``; ``open`` and no expiry by default). As o2r, 200 with
  ``{id, compendium_id, user}`` (and erchub's ``mode``, ``expires``, ``created``,
  ``revoked``, ``uses``, ``url``); asking again with the same mode and expiry answers the same
  link. A blind link's answer says what blind mode cannot hide (``blind_cannot_hide``).
- ``DELETE /compendium/{id}/link``: revoke the compendium's links, or ``?link=ID`` only that
  one; 204.
- ``GET /link``: the caller's links (an erc admin's: everyone's), ``{"results": [...]}``.

Only the author (or an erc admin) manages a compendium's links; what a link grants is the
service's visibility rule (:meth:`~.base.BaseHandler.visible_compendium`).
"""

from __future__ import annotations

import time
from typing import Any

from jupyterhub.utils import url_path_join

from erchub.services.compendia import links
from erchub.services.handlers.base import (
    LINK_ARGUMENT,
    SCOPE_CREATE,
    SCOPE_READ,
    BaseHandler,
    iso,
    needs_scope,
)
from erchub.services.store import LinkMode, LinkRecord

CREATE_SCHEMA: dict[str, Any] = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "properties": {
        "mode": {"enum": [mode.value for mode in LinkMode]},
        "expires": {"type": "string", "minLength": 1, "maxLength": 64},
    },
}


class LinkBaseHandler(BaseHandler):
    def link_json(self, link: LinkRecord) -> dict[str, Any]:
        """A link as the API shows it (o2r's fields first)."""
        body: dict[str, Any] = {
            "id": link.id,
            "compendium_id": link.compendium_id,
            "user": link.user,
            "mode": str(link.mode),
            "expires": iso(link.expires),
            "created": iso(link.created),
            "revoked": iso(link.revoked),
            "active": links.is_active(link, time.time()),
            "uses": link.uses,
            "url": url_path_join(self.service.base_url, "link", link.id),
        }
        if link.mode == LinkMode.BLIND:
            body["blind_cannot_hide"] = links.BLIND_CANNOT_HIDE
        return body


class CompendiumLinkHandler(LinkBaseHandler):
    @needs_scope(SCOPE_CREATE)
    async def put(self, compendium_id: str) -> None:
        user = self.username
        self.check_arguments()
        body = self.json_body(CREATE_SCHEMA) or {}
        now = time.time()
        expires = links.parse_expiry(body["expires"], now) if "expires" in body else None
        record = await self.visible_compendium(compendium_id)
        link, created = await self.blocking(
            links.create_link,
            self.store,
            record,
            user,
            is_admin=self.is_admin,
            mode=LinkMode(body.get("mode", LinkMode.OPEN)),
            expires=expires,
            now=now,
        )
        if created:
            self.log.info("%s link to %s created by %s", link.mode, record.id, user)
        self.write_json(self.link_json(link))

    @needs_scope(SCOPE_CREATE)
    async def delete(self, compendium_id: str) -> None:
        user = self.username
        self.check_arguments()
        link_id = self.text_argument(LINK_ARGUMENT)
        record = await self.visible_compendium(compendium_id)
        revoked = await self.blocking(
            links.revoke_links,
            self.store,
            record,
            user,
            is_admin=self.is_admin,
            link_id=link_id,
            now=time.time(),
        )
        self.log.info("%d link(s) to %s revoked by %s", len(revoked), record.id, user)
        self.set_status(204)
        self.finish()


class LinkListHandler(LinkBaseHandler):
    @needs_scope(SCOPE_READ)
    async def get(self) -> None:
        self.check_arguments()
        found = await self.blocking(self.store.list_links, user=self.viewer)
        self.write_json({"results": [self.link_json(link) for link in found]})


default_handlers = [
    (r"/compendium/(?P<compendium_id>[^/.]+)/link", CompendiumLinkHandler),
    (r"/link", LinkListHandler),
]
