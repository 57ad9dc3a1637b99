"""A small client of the erc service's API, on tornado's own HTTP client (no other dependency).

Requests carry ``Authorization: token <api_token>``: the erc service sees the server's user.
Failures become :class:`ErcServiceError` with the status the extension answers: the service's
4xx with its status and message; a 5xx, an answer that is not JSON where JSON was asked for, a
time-out or a service that cannot be reached: 502, naming the erc service.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import IO, Any
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.httputil import HTTPInputError, parse_response_start_line
from tornado.simple_httpclient import HTTPTimeoutError

#: connections the client keeps open at once (each followed job log holds one)
MAX_CONNECTIONS = 100
#: bytes read from an archive at a time while uploading it
UPLOAD_CHUNK_BYTES = 1024**2
#: characters of an error answer's text shown when it is not the API's JSON error
SHOWN_ERROR_CHARS = 200


class ErcServiceError(Exception):
    """A request to the erc service failed; ``status`` is what the extension answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def path_of(*parts: str) -> str:
    """An API path from segments, each escaped (ids come from clients)."""
    return "".join("/" + quote(part, safe="") for part in parts)


class ErcClient:
    """Requests to one erc API (``api_url`` ends in ``/api/v1``) as one user."""

    def __init__(self, api_url: str, token: str, timeout: float) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.http = AsyncHTTPClient(force_instance=True, max_clients=MAX_CONNECTIONS)

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> HTTPRequest:
        """A request of ``path`` (below the API URL) with the token; ``timeout`` (s) covers
        the whole request, 0 for none (a stream), default the client's."""
        all_headers = dict(headers or {})
        if self.token:
            all_headers["Authorization"] = f"token {self.token}"
        url = self.api_url + path + (f"?{urlencode(query)}" if query else "")
        return HTTPRequest(
            url,
            method,
            headers=all_headers,
            connect_timeout=self.timeout,
            request_timeout=self.timeout if timeout is None else timeout,
            **options,
        )

    async def fetch(self, request: HTTPRequest) -> HTTPResponse:
        """The answer to ``request`` when it is a success; else :class:`ErcServiceError`."""
        response = await self._send(request)
        if response.code >= 300:
            raise self.error(response.code, response.reason or "", response.body or b"")
        return response

    async def _send(self, request: HTTPRequest) -> HTTPResponse:
        """The answer to ``request``, whatever its status; failures to get one are 502."""
        try:
            response = await self.http.fetch(request, raise_error=False)
        except HTTPTimeoutError:
            raise ErcServiceError(
                502,
                f"the erc service ({self.api_url}) did not answer within"
                f" {request.request_timeout or self.timeout:g} s",
            ) from None
        except (OSError, HTTPClientError, HTTPInputError) as error:  # refused, closed, garbled
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise ErcServiceError(
                502, f"the erc service ({self.api_url}) cannot be reached: {reason}"
            ) from None
        return response

    async def json(self, method: str, path: str, body: Any = None, **options: Any) -> Any:
        """The JSON answer to a request with ``body`` (JSON, when not None)."""
        if body is not None:
            options["body"] = json.dumps(body)
            options["headers"] = {**options.get("headers", {}), "Content-Type": "application/json"}
        response = await self.fetch(self.request(method, path, **options))
        return self._json_of(response, f"{method} {path}")

    async def stream(
        self,
        path: str,
        on_start: Callable[[], None],
        on_chunk: Callable[[bytes], None],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """GET ``path`` without a time-out and hand its body to ``on_chunk`` as it arrives,
        after ``on_start``; an error answer raises :class:`ErcServiceError` instead."""
        status: list[int] = []
        error_body = bytearray()

        def header_line(line: str) -> None:
            if line.startswith("HTTP/"):
                status[:] = [parse_response_start_line(line.strip()).code]
                if status[0] < 300:
                    on_start()

        def chunk(data: bytes) -> None:
            if status and status[0] < 300:
                on_chunk(data)
            elif len(error_body) < 64 * 1024:
                error_body.extend(data)

        request = self.request(
            "GET",
            path,
            headers=headers,
            timeout=0,
            follow_redirects=False,
            header_callback=header_line,
            streaming_callback=chunk,
        )
        response = await self._send(request)
        if response.code >= 300:
            raise self.error(response.code, response.reason or "", bytes(error_body))

    async def upload(
        self,
        archive: IO[bytes],
        size: int,
        content_type: str,
        timeout: float,
        fields: Mapping[str, str] | None = None,
    ) -> Any:
        """``POST /compendium`` of a zip ``archive`` of ``size`` bytes, streamed from its file
        (read in an executor) as the multipart form the API takes, with the form ``fields``
        (a relation to another compendium) before it; its JSON answer."""
        boundary = uuid.uuid4().hex
        form = {"content_type": content_type, **(fields or {})}
        head = (
            "".join(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
                for name, value in form.items()
            )
            + f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="compendium"; filename="workspace.zip"\r\n'
            "Content-Type: application/zip\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        async def produce(write: Callable[[bytes], Awaitable[None]]) -> None:
            loop = asyncio.get_running_loop()
            await write(head)
            while chunk := await loop.run_in_executor(None, archive.read, UPLOAD_CHUNK_BYTES):
                await write(chunk)
            await write(tail)

        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
        }
        request = self.request(
            "POST", "/compendium", headers=headers, timeout=timeout, body_producer=produce
        )
        return self._json_of(await self.fetch(request), "POST /compendium")

    def _json_of(self, response: HTTPResponse, what: str) -> Any:
        try:
            return json.loads(response.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ErcServiceError(
                502, f"the erc service ({self.api_url}) answered {what} with no JSON"
            ) from None

    def error(self, code: int, reason: str, body: bytes) -> ErcServiceError:
        """The extension's error for an error answer of the erc service."""
        message = reason or f"status {code}"
        try:
            answer = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            text = " ".join(body.decode("utf-8", "replace").split())
            if text:
                message = text[:SHOWN_ERROR_CHARS]
        else:
            if isinstance(answer, dict) and isinstance(answer.get("message"), str):
                message = answer["message"]
        if 400 <= code < 500:
            return ErcServiceError(code, message)
        return ErcServiceError(502, f"the erc service ({self.api_url}) failed: {code} {message}")
