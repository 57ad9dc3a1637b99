"""``GET /openapi.json``: the API's OpenAPI 3.1 document (no identity needed)."""

from __future__ import annotations

from erchub.services.handlers.base import BaseHandler
from erchub.services.openapi import build_document


class OpenAPIHandler(BaseHandler):
    guest_methods = frozenset({"GET"})  # public: whoever asks

    async def prepare(self) -> None:
        # A public document: skip resolving the caller through the hub.
        pass

    def get(self) -> None:
        self.write_json(build_document(self.service.api_prefix))


default_handlers = [(r"/openapi\.json", OpenAPIHandler)]
