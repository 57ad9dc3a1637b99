"""``GET /services/erc/metrics``: the service's Prometheus metrics (:mod:`erchub.services.metrics`),
beside the hub's own ``/hub/metrics`` and guarded the same way: the hub's scope
``read:metrics`` (an erc administrator's ``custom:erc:admin`` stands for it, as for every scope
of the service), or nothing at all when ``ERCService.authenticate_prometheus`` is off, as
``JupyterHub.authenticate_prometheus`` does for the hub's."""

from __future__ import annotations

from erchub.services.handlers.base import BaseHandler
from erchub.services.metrics import exposition

#: the hub's scope of its own /hub/metrics
SCOPE_METRICS = "read:metrics"


class MetricsHandler(BaseHandler):
    async def prepare(self) -> None:
        if self.service.authenticate_prometheus:
            await super().prepare()
        # else public: the hub is not asked who scrapes

    def is_page_request(self) -> bool:
        # for scrapers, never a page: without identity 401, not the hub's login
        return False

    async def get(self) -> None:
        self.check_arguments()
        if self.service.authenticate_prometheus:
            self.require(SCOPE_METRICS)
        body, content_type = await self.blocking(
            exposition,
            self.store,
            step_window=self.service.metrics_step_window,
            accept=self.request.headers.get("Accept", ""),
        )
        self.set_header("Content-Type", content_type)
        self.finish(body)


default_handlers = [(r"/metrics", MetricsHandler)]
