"""Proxies to the erc API's ``job`` resource, as the server's user: ``POST erchub/job``
``{"compendium_id"}`` starts a job (a check of the compendium), ``GET erchub/job/{id}`` is the
job with its steps, ``GET erchub/job/{id}/logs`` its Server-Sent Events passed on as they come
(ending with ``event: status`` and the final status), ``GET erchub/job/{id}/report`` its check
report, an HTML page served sandboxed (no scripts, no access to this server's origin).

In a session started through a review link, a job of the session's compendium is started
through it (``POST /job?link=``: a link grants its holder checks). The job's own routes need no
link: the erc service shows a job to the user who started it.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from tornado import web
from tornado.iostream import StreamClosedError

from erchub.extensions.client import ErcServiceError, path_of
from erchub.extensions.handlers.base import BaseHandler, http_error

#: where a job keeps its check report (the erc service's job files)
REPORT_PATH = ("data", "check", "report.html")


class JobsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body({"compendium_id": (str, True)})
        client = self.erc_client
        query = self.erchub.link_query(body["compendium_id"])
        created = await self.erc_call(client.json("POST", "/job", body, query=query))
        self.write_json(created, status=201)


class JobHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        client = self.erc_client
        path = path_of("job", job_id)
        self.write_json(await self.erc_call(client.json("GET", path, query={"steps": "all"})))


class JobLogsHandler(BaseHandler):
    _streaming = False
    _gone = False

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        client = self.erc_client
        headers = {}
        if self.request.headers.get("Last-Event-ID"):
            headers["Last-Event-ID"] = self.request.headers["Last-Event-ID"]

        def start() -> None:
            self._streaming = True
            self.start_event_stream()

        def pass_on(chunk: bytes) -> None:
            if self._gone:
                raise StreamClosedError()  # ends the request to the erc service
            self.write(chunk)
            self.flush().add_done_callback(_ignore_closed)

        try:
            await client.stream(path_of("job", job_id, "logs"), start, pass_on, headers)
        except ErcServiceError as error:
            if self._gone:
                return
            if not self._streaming:
                raise http_error(error.status, error.message) from None
            self.write_event("error", {"status": error.status, "message": error.message})
        self.finish()

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self._gone = True


class JobReportHandler(BaseHandler):
    @property
    def content_security_policy(self) -> str:
        # The report shows the compendium's outputs: a sandbox, scripts and this origin off.
        return "sandbox; " + JupyterHandler.content_security_policy.fget(self)  # type: ignore[attr-defined]

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        client = self.erc_client
        request = client.request("GET", path_of("job", job_id, *REPORT_PATH))
        response = await self.erc_call(client.fetch(request))
        self.finish(response.body, set_content_type="text/html; charset=UTF-8")


def _ignore_closed(future: Any) -> None:
    """A flush to a client that went away fails; on_connection_close handles that."""
    if not future.cancelled():
        future.exception()


_JOB = r"(?P<job_id>[^/]+)"

default_handlers = [
    (r"/erchub/job", JobsHandler),
    (rf"/erchub/job/{_JOB}", JobHandler),
    (rf"/erchub/job/{_JOB}/logs", JobLogsHandler),
    (rf"/erchub/job/{_JOB}/report", JobReportHandler),
]
