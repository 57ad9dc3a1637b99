"""``GET erchub/context``: the ERC and job the session was launched for, and whether an erc
service is configured (publishing and checking need one)."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from erchub.extensions.handlers.base import BaseHandler


class ContextHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(self.erchub.session_context())


default_handlers = [(r"/erchub/context", ContextHandler)]
