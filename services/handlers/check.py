"""The check page: ``GET check/{compendium_id}`` starts a check job of a compendium from a
browser and follows it live.

The page itself only shows the compendium; its script uses the API (``POST job``, the job's
``logs`` event stream, ``GET job/{id}`` for the report's path) with the page's XSRF token, as
JupyterHub 6 requires for cookie-authenticated requests of scripts.
"""

from __future__ import annotations

from erchub.services.handlers.base import SCOPE_READ, needs_scope
from erchub.services.handlers.pages import PageHandler
from erchub.services.handlers.views import summary_json


class CheckPageHandler(PageHandler):
    link_methods = frozenset({"GET"})
    guest_methods = frozenset({"GET"})

    @needs_scope(SCOPE_READ)
    async def get(self, compendium_id: str) -> None:
        self.check_arguments()
        record = await self.visible_compendium(compendium_id)
        self.render_page(
            "check.html",
            compendium_id=record.id,
            title=summary_json(record)["title"] or record.id,
            candidate=record.candidate,
            api_url=self.service.api_prefix,
            review_link=self.review_link.id if self.review_link else None,
        )


default_handlers = [(r"/check/(?P<compendium_id>[^/]+)", CheckPageHandler)]
