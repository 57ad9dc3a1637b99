"""``POST erchub/run`` ``{"path", "values"}``: run a copy of the notebook with the values
injected (papermill's way) in a fresh kernel in the notebook's folder; the author's notebook is
read, never written.

The values are checked before any kernel is taken: 400 naming the parameter. With ``Accept:
text/event-stream`` the answer is a stream of ``progress`` events (``{"cell", "total"}`` after
each executed cell), then one ``result`` or ``error`` event; errors found before the stream
starts (the body, the values, the notebook) are ordinary JSON error answers. Without it, the
answer is the result. A client that goes away ends the run (its kernel is shut down).

The result names the values used, the run's end (``time``, UTC) and its length, and lists
every code cell with outputs in notebook order (:func:`~erchub.extensions.execution.run_cells`):
its id, index and first source line, the run's outputs and the saved notebook's ("published"),
as nbformat outputs, bounded in size.
"""

from __future__ import annotations

import asyncio
import copy
import time
from datetime import UTC, datetime
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.iostream import StreamClosedError

from erchub.errors import InvalidParameter
from erchub.extensions.execution import RunFailed, run_cells, run_notebook
from erchub.extensions.handlers.base import BaseHandler, http_error
from erchub.parameters import (
    bound_cells,
    check_values,
    inject_parameters,
    kernel_name,
    values_used,
)

EVENT_STREAM = "text/event-stream"


class RunHandler(BaseHandler):
    auth_resource = "kernels"

    _run: asyncio.Future[Any] | None = None
    _gone = False

    @web.authenticated
    @authorized("execute")
    async def post(self) -> None:
        body = self.json_body({"path": (str, True), "values": (dict, False)})
        view = await self.notebook_view(body["path"])
        try:
            values = check_values(view.specs, body.get("values", {}))
        except InvalidParameter as error:
            raise http_error(400, str(error)) from None
        name = kernel_name(view.notebook)
        if not await self.kernel_installed(name):
            raise http_error(400, f"the notebook's kernel {name!r} is not installed here")
        if values:
            notebook = await self.blocking(inject_parameters, view.notebook, values)
        else:
            notebook = await self.blocking(copy.deepcopy, view.notebook)

        streaming = EVENT_STREAM in self.request.headers.get("Accept", "")
        if streaming:
            self.start_event_stream()
            await self.flush()

        async def progress(done: int, total: int) -> None:
            if streaming:
                self.write_event("progress", {"cell": done, "total": total})
                await self.flush()

        extension = self.erchub
        started = time.monotonic()
        self._run = asyncio.ensure_future(
            run_notebook(
                extension.kernel_pool,
                notebook,
                name,
                str(view.folder),
                extension.cell_timeout,
                view.positions,
                progress,
            )
        )
        try:
            executed = await self._run
        except (asyncio.CancelledError, StreamClosedError):
            return  # the client went away
        except RunFailed as failure:
            if self._gone:
                return
            if not streaming:
                raise http_error(failure.status, failure.message) from None
            self.write_event("error", {"status": failure.status, "message": failure.message})
            self.finish()
            return
        duration = round(time.monotonic() - started, 3)
        cells = await self.blocking(run_cells, view.notebook, executed, bound_cells(view.bindings))
        result = {
            "path": view.path,
            "values": values_used(view.specs, values),
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "duration": duration,
            "cells": [cell.to_json() for cell in cells],
        }
        self.log.info("erchub: ran %s in %.2f s", view.path, result["duration"])
        if streaming:
            self.write_event("result", result)
            self.finish()
        else:
            self.write_json(result)

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self._gone = True
        if self._run is not None:
            self._run.cancel()


default_handlers = [(r"/erchub/run", RunHandler)]
