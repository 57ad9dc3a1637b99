"""Proxies to the erc API's ``compendium`` resource, as the server's user:
``GET erchub/compendium/{id}`` and ``GET|PUT erchub/compendium/{id}/metadata``.

PUT takes ``{"o2r": {...}}``; by default the erc API publishes the author's candidate with it,
``?publish=false`` keeps a candidate a candidate. In a session started through a review link,
the GETs of the session's compendium carry the link (``?link=``, see
:meth:`~erchub.extensions.app.ERCHubExtension.link_query`); a PUT never does (a link grants no
change).
"""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from erchub.extensions.client import path_of
from erchub.extensions.handlers.base import BaseHandler, http_error

PUBLISH_WORDS = {"true": True, "false": False}


class CompendiumHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, compendium_id: str) -> None:
        client = self.erc_client
        path = path_of("compendium", compendium_id)
        query = self.erchub.link_query(compendium_id)
        self.write_json(await self.erc_call(client.json("GET", path, query=query)))


class MetadataHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, compendium_id: str) -> None:
        client = self.erc_client
        path = path_of("compendium", compendium_id, "metadata")
        query = self.erchub.link_query(compendium_id)
        self.write_json(await self.erc_call(client.json("GET", path, query=query)))

    @web.authenticated
    @authorized
    async def put(self, compendium_id: str) -> None:
        body = self.json_body({"o2r": (dict, True)})
        publish = self.get_query_argument("publish", "true")
        if publish.lower() not in PUBLISH_WORDS:
            raise http_error(400, f"publish must be true or false, got {publish[:40]!r}")
        client = self.erc_client
        path = path_of("compendium", compendium_id, "metadata")
        query = None if PUBLISH_WORDS[publish.lower()] else {"publish": "false"}
        self.write_json(await self.erc_call(client.json("PUT", path, body, query=query)))


_ID = r"(?P<compendium_id>[^/]+)"

default_handlers = [
    (rf"/erchub/compendium/{_ID}", CompendiumHandler),
    (rf"/erchub/compendium/{_ID}/metadata", MetadataHandler),
]
