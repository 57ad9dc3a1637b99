"""The one BaseHandler of the extension: authentication as every jupyter-server API, JSON
bodies checked before anything else, JSON errors ``{"status", "message"}`` without traceback.

Authorization goes through jupyter-server's authorizer (JupyterHub's scopes in a hub's
single-user server): each handler names its ``auth_resource``; reading a notebook's parameters
is reading ``contents``, running it is executing ``kernels``, the rest is ``erchub``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from jupyter_client.kernelspec import NoSuchKernel
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from erchub.errors import ErchubError
from erchub.extensions.client import ErcClient, ErcServiceError
from erchub.extensions.notebooks import NotebookView, describe_notebook

if TYPE_CHECKING:
    from erchub.extensions.app import ERCHubExtension

T = TypeVar("T")

#: how a body field's JSON type is named in messages
JSON_TYPE_NAMES: dict[type, str] = {str: "a non-empty string", dict: "an object"}


def http_error(status: int, message: str) -> web.HTTPError:
    """An HTTPError whose message is shown as it is (a ``%`` in it is no format)."""
    return web.HTTPError(status, "%s", message)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


class BaseHandler(ExtensionHandlerMixin, APIHandler):
    """What every endpoint of the extension shares."""

    auth_resource = "erchub"

    @property
    def erchub(self) -> ERCHubExtension:
        return cast("ERCHubExtension", self.extensionapp)

    @property
    def root_dir(self) -> Path:
        """The server's root: notebook paths are relative to it."""
        return Path(os.path.expanduser(self.serverapp.contents_manager.root_dir))

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call (file system, kernel specs) in the executor."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(fn, *args))

    # -- requests ----------------------------------------------------------------------------

    def json_body(self, fields: Mapping[str, tuple[type, bool]]) -> dict[str, Any]:
        """The request's JSON object; ``fields`` maps each allowed field to (its type,
        whether it is required). 400 naming the first problem."""
        try:
            body = json.loads(self.request.body or b"null", parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError) as error:
            raise http_error(400, f"malformed JSON body: {error}") from None
        if not isinstance(body, dict):
            raise http_error(400, f"the body must be a JSON object, got {type(body).__name__}")
        unknown = sorted(set(body) - set(fields))
        if unknown:
            allowed = ", ".join(fields)
            raise http_error(400, f"unknown field {unknown[0][:40]!r} (allowed: {allowed})")
        for name, (kind, required) in fields.items():
            if name not in body:
                if required:
                    raise http_error(400, f"{name} is required")
                continue
            value = body[name]
            if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
                raise http_error(400, f"{name} must be {JSON_TYPE_NAMES[kind]}")
        return body

    async def notebook_view(self, path: str) -> NotebookView:
        """The notebook ``path`` with its ERC and parameters; 400 when there is none."""
        try:
            return await self.blocking(describe_notebook, self.root_dir, path)
        except ErchubError as error:
            raise http_error(400, str(error)) from None

    async def kernel_installed(self, name: str) -> bool:
        """Whether this server has a kernel spec called ``name``."""
        specs = self.erchub.kernel_pool.kernel_spec_manager
        try:
            await self.blocking(specs.get_kernel_spec, name)
        except NoSuchKernel:
            return False
        return True

    @property
    def erc_client(self) -> ErcClient:
        """The erc API client; 503 when this server has no erc service."""
        client = self.erchub.erc_client
        if client is None:
            raise http_error(
                503,
                "no erc service: ERCHUB_API_URL is unset (this server was not started by"
                " erchub's hub), so publishing and checking are not available here",
            )
        return client

    async def erc_call(self, call: Awaitable[T]) -> T:
        """The result of a call to the erc API, its failures as the extension's errors."""
        try:
            return await call
        except ErcServiceError as error:
            raise http_error(error.status, error.message) from None

    # -- responses ---------------------------------------------------------------------------

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(body), set_content_type="application/json; charset=UTF-8")

    def write_event(self, event: str, data: Any) -> None:
        """One Server-Sent Event (the caller flushes)."""
        self.write(f"event: {event}\ndata: {json.dumps(data)}\n\n")

    def start_event_stream(self) -> None:
        self.set_header("Content-Type", "text/event-stream; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """``{"status", "message"}``: the HTTPError's message, else the status's phrase; an
        unexpected exception's details go to the log only."""
        error = kwargs["exc_info"][1] if kwargs.get("exc_info") else None
        try:
            message = HTTPStatus(status_code).phrase
        except ValueError:
            message = "error"
        if isinstance(error, web.HTTPError) and error.log_message:
            message = error.log_message % error.args if error.args else error.log_message
        elif status_code >= 500:
            message = "internal error; the server's log has the details"
        self.finish(
            json.dumps({"status": status_code, "message": message}),
            set_content_type="application/json; charset=UTF-8",
        )
