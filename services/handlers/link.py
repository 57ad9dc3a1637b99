"""Review links (o2r's public links): a candidate readable by whoever has the link.

- ``PUT /compendium/{id}/link``: create a link (body optional: ``{"mode": "open"|"blind",
  "expires": ISO 8601 date-time}``; ``open`` and no expiry by default). As o2r, 200 with
  ``{id, compendium_id, user}`` (and erchub's ``mode``, ``expires``, ``created``,
  ``revoked``, ``uses``, ``url``); asking again with the same mode and expiry answers the same
  link. A blind link's answer says what blind mode cannot hide (``blind_cannot_hide``).
- ``DELETE /compendium/{id}/link``: revoke the compendium's links, or ``?link=ID`` only that
  one; 204.
- ``PATCH /compendium/{id}/link?link=ID``: change a link's mode (``{"mode": "open"}``: the
  author unblinds a review, e.g. once the compendium is published); the link.
- ``GET /link``: the caller's links (an erc admin's: everyone's), ``{"results": [...]}``.
- ``GET /link/{id}``: whether a link is in force, for anyone who has it (no identity needed:
  the hub asks before it makes a review guest): ``{id, compendium_id, mode, expires,
  guests}``; 404 for a link revoked, expired or unknown. Nothing about its author or uses.

Revoking a link stops the sessions launched through it and deletes its guests at once (see
:meth:`~erchub.services.app.ERCService.end_review_links`); an expired link's within the
service's ``review_sweep_interval``.

Only the author (or an erc admin) manages a compendium's links; what a link grants is the
service's visibility rule (:meth:`~.base.BaseHandler.visible_compendium`).
"""

from __future__ import annotations

import time
from typing import Any

from jupyterhub.utils import url_path_join
from tornado import web

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

MODE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["mode"],
    "properties": {"mode": {"enum": [mode.value for mode in LinkMode]}},
}

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
        self.service.review_links_ended()
        self.set_status(204)
        self.finish()

    @needs_scope(SCOPE_CREATE)
    async def patch(self, compendium_id: str) -> None:
        user = self.username
        self.check_arguments()
        link_id = self.text_argument(LINK_ARGUMENT)
        if link_id is None:
            raise web.HTTPError(400, "name the link to change: ?link=ID")
        mode = LinkMode(self.json_body(MODE_SCHEMA)["mode"])
        record = await self.visible_compendium(compendium_id)
        link = await self.blocking(
            links.change_mode, self.store, record, user, is_admin=self.is_admin,
            link_id=link_id, mode=mode,
        )  # fmt: skip
        self.log.info("a link to %s made %s by %s", record.id, mode, user)
        self.write_json(self.link_json(link))


class LinkStatusHandler(BaseHandler):
    """``GET /link/{id}``: a link in force, as anyone who has it may know (see the module)."""

    guest_methods = frozenset({"GET"})

    async def get(self, link_id: str) -> None:
        self.check_arguments()
        link = await self.blocking(self.store.get_link, link_id)
        if link is None or not links.is_active(link, time.time()):
            raise web.HTTPError(404, "this review link does not exist or no longer works")
        self.write_json(
            {
                "id": link.id,
                "compendium_id": link.compendium_id,
                "mode": str(link.mode),
                "expires": iso(link.expires),
                "guests": self.service.review_guests,
            }
        )


class LinkListHandler(LinkBaseHandler):
    @needs_scope(SCOPE_READ)
    async def get(self) -> None:
        self.check_arguments()
        found = await self.blocking(self.store.list_links, user=self.viewer)
        self.write_json({"results": [self.link_json(link) for link in found]})


default_handlers = [
    (r"/compendium/(?P<compendium_id>[^/.]+)/link", CompendiumLinkHandler),
    (r"/link", LinkListHandler),
    (r"/link/(?P<link_id>[^/]+)", LinkStatusHandler),
]
