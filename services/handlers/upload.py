"""Streaming reception of ``multipart/form-data`` uploads, straight to a file on disk.

A compendium upload (o2r's form) has two parts: ``compendium``, the archive file, and
``content_type``, ``workspace`` or ``compendium``; erchub adds an optional third, the
compendium the upload is related to: ``is_new_version_of`` or ``derived_from`` (its id).
:class:`UploadHandler` is the base of ``@web.stream_request_body`` handlers: tornado hands it
the body chunk by chunk, each chunk is parsed by python-multipart and the file's bytes are
written to a private temporary directory below ``data_dir/uploads`` (never held in memory), one
chunk at a time in the executor, so that tornado reads the next chunk only when the previous
one is on disk.

The service's ``upload_limit`` (bytes of the request body) is enforced twice: a declared
``Content-Length`` above it is answered 413 before any of the body is read, and a chunked body
is answered 413 as soon as it crosses the limit. A body that is not multipart, a part other
than these, a part sent twice, a missing part, a bad ``content_type`` or a body that ends
early are 400s naming the problem. Refusals linger (see :class:`UploadHandler`) so that they
reach the client through the hub's proxy. On every error, and when the client goes away, the
temporary directory is removed.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from tornado import web

from erchub.errors import STORAGE_FULL_MESSAGE, is_storage_full
from erchub.services.compendia.files import (
    CONTENT_TYPES,
    UPLOADS_DIRECTORY,
    new_entry,
    remove_entry,
)
from erchub.services.compendia.operations import Relation
from erchub.services.handlers.base import BaseHandler

FILE_PART = "compendium"
CONTENT_TYPE_PART = "content_type"
RELATION_PARTS = {relation.value: relation for relation in Relation}
PARTS = (FILE_PART, CONTENT_TYPE_PART, *RELATION_PARTS)
#: longer than any content_type value or compendium id: a field is kept in memory only up to this
MAX_FIELD_BYTES = 64
#: characters kept of the client's file name (it only appears in messages)
MAX_FILENAME_CHARS = 100
UNSAFE_FILENAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._+ -]")
COMPENDIUM_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,60}")


def uploads_dir(handler: BaseHandler) -> Path:
    return Path(handler.service.data_dir) / UPLOADS_DIRECTORY


def too_large(limit: int) -> web.HTTPError:
    return web.HTTPError(413, f"the upload is larger than the limit of {limit} bytes")


@dataclass
class ReceivedUpload:
    """A complete upload: the archive on disk and the form's content_type."""

    #: the uploaded file, inside ``directory``
    path: Path
    #: the client's name of the file, reduced to safe characters
    filename: str
    content_type: str
    size: int
    #: the compendium the upload is related to, and how; None for none
    relation: tuple[Relation, str] | None
    #: the private temporary directory below uploads/ that :meth:`remove` deletes, and the
    #: lock that marks it in use (see :func:`~erchub.services.compendia.files.new_entry`)
    directory: Path
    hold: int

    def remove(self) -> None:
        remove_entry(self.directory, self.hold)
        self.hold = -1


class MultipartReceiver:
    """Parses one multipart/form-data body fed in chunks; blocking (file writes), thread-safe.

    Raises :class:`tornado.web.HTTPError` (400 or 413) naming the problem; after an error the
    caller calls :meth:`discard`.
    """

    def __init__(self, content_type_header: str, uploads: Path, limit: int) -> None:
        media_type, options = parse_options_header(content_type_header)
        if media_type != b"multipart/form-data":
            shown = content_type_header or "none"
            raise web.HTTPError(
                400, f"expected a multipart/form-data body, got Content-Type {shown}"
            )
        boundary = options.get(b"boundary")
        if not boundary:
            raise web.HTTPError(400, "the multipart/form-data Content-Type names no boundary")
        try:
            self._parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._on_part_begin,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                    "on_part_data": self._on_part_data,
                    "on_part_end": self._on_part_end,
                    "on_end": self._on_end,
                },
            )
        except FormParserError as error:
            raise web.HTTPError(400, f"bad multipart boundary: {error}") from None
        self._limit = limit
        self._lock = threading.Lock()
        self._received = 0
        self._ended = False
        self._closed = False
        self._handed_over = False
        # the part being read
        self._headers: dict[bytes, bytes] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._sink: IO[bytes] | None = None
        self._field: bytearray | None = None
        # what was received
        self._path: Path | None = None
        self._filename = ""
        self._size = 0
        self._content_type: str | None = None
        self._relation: tuple[Relation, str] | None = None
        #: the name of the form field being read, when it is no file
        self._field_name = ""
        self.directory, self._hold = new_entry(uploads, "upload-")

    def feed(self, chunk: bytes) -> None:
        with self._lock:
            if self._closed:
                raise web.HTTPError(400, "the upload was abandoned")
            self._received += len(chunk)
            if self._received > self._limit:
                raise too_large(self._limit)
            if self._ended:
                return  # an epilogue after the closing boundary means nothing
            try:
                self._parser.write(chunk)
            except FormParserError as error:
                raise web.HTTPError(400, f"malformed multipart body: {error}") from None

    def finish(self) -> ReceivedUpload:
        """The complete upload; from now on the caller removes it (:meth:`discard` won't)."""
        with self._lock:
            if not self._ended:
                raise web.HTTPError(400, "the multipart body ends before its closing boundary")
            if self._path is None:
                raise web.HTTPError(
                    400, f"no {FILE_PART} part: send the archive as the form field {FILE_PART}"
                )
            if self._content_type is None:
                raise web.HTTPError(
                    400, f"no {CONTENT_TYPE_PART} part: send workspace or compendium"
                )
            if self._size == 0:
                raise web.HTTPError(400, f"the {FILE_PART} part is empty")
            self._handed_over = True
            return ReceivedUpload(
                path=self._path,
                filename=self._filename,
                content_type=self._content_type,
                size=self._size,
                relation=self._relation,
                directory=self.directory,
                hold=self._hold,
            )

    def discard(self) -> None:
        """Remove what was received, unless :meth:`finish` handed it over."""
        with self._lock:
            self._closed = True
            if self._sink is not None:
                self._sink.close()
                self._sink = None
            if not self._handed_over and self._hold >= 0:
                remove_entry(self.directory, self._hold)
                self._hold = -1  # discard runs again when the request ends

    # -- parser callbacks (called inside feed, under the lock) --------------------------------

    def _on_part_begin(self) -> None:
        self._headers = {}

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[bytes(self._header_field).strip().lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition"))
        name = options.get(b"name")
        if disposition != b"form-data" or name is None:
            raise web.HTTPError(400, "a part of the multipart body is no named form-data field")
        field = name.decode("utf-8", errors="replace")
        if field not in PARTS:
            relations = " or ".join(RELATION_PARTS)
            raise web.HTTPError(
                400,
                f"unknown form field {field[:60]!r}: expected {FILE_PART} and"
                f" {CONTENT_TYPE_PART} (and optionally {relations})",
            )
        if field == FILE_PART:
            if self._path is not None:
                raise web.HTTPError(400, f"the form field {FILE_PART} is sent twice")
            self._filename = _safe_filename(options.get(b"filename", b""))
            self._path = self.directory / self._filename
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            self._sink = open(os.open(self._path, flags, 0o600), "wb")  # noqa: SIM115
        else:
            if field == CONTENT_TYPE_PART and self._content_type is not None:
                raise web.HTTPError(400, f"the form field {CONTENT_TYPE_PART} is sent twice")
            if field in RELATION_PARTS and self._relation is not None:
                relations = " or ".join(RELATION_PARTS)
                raise web.HTTPError(400, f"an upload has at most one relation: {relations}, once")
            self._field_name = field
            self._field = bytearray()

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._sink is not None:
            self._sink.write(memoryview(data)[start:end])
            self._size += end - start
        elif self._field is not None:
            self._field += data[start:end]
            if len(self._field) > MAX_FIELD_BYTES:
                raise web.HTTPError(400, self._field_problem())

    def _on_part_end(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None
        elif self._field is not None:
            value = self._field.decode("utf-8", errors="replace").strip()
            self._field = None
            if self._field_name in RELATION_PARTS:
                if not COMPENDIUM_ID_PATTERN.fullmatch(value):
                    raise web.HTTPError(400, f"{self._field_problem()}, got {value!r}")
                self._relation = (RELATION_PARTS[self._field_name], value)
                return
            if value not in CONTENT_TYPES:
                raise web.HTTPError(400, f"{self._field_problem()}, got {value!r}")
            self._content_type = value

    def _field_problem(self) -> str:
        if self._field_name in RELATION_PARTS:
            return f"{self._field_name} must be the id of a compendium"
        return f"{CONTENT_TYPE_PART} must be workspace or compendium"

    def _on_end(self) -> None:
        self._ended = True


def _safe_filename(raw: bytes) -> str:
    name = raw.decode("utf-8", errors="replace").replace("\\", "/").rsplit("/", 1)[-1]
    name = UNSAFE_FILENAME_CHARACTERS.sub("_", name).strip().lstrip(".")
    return name[:MAX_FILENAME_CHARS] or "upload"


class UploadHandler(BaseHandler):
    """Base of handlers that take a multipart upload in POST.

    A subclass overrides :meth:`check_upload` (identity, scope, arguments); its ``post``
    awaits :meth:`received_upload` and removes the upload when done with it. Refusals known
    before the end of the body linger as the BaseHandler's do.
    """

    _receiver: MultipartReceiver | None = None

    @property
    def body_limit(self) -> int:  # type: ignore[override]
        return int(self.service.upload_limit)

    def too_large(self) -> web.HTTPError:
        return too_large(self.body_limit)

    def check_upload(self) -> None:
        """What the caller must be and send for an upload; raises HTTPError (401, 403, 400)."""

    async def start_body(self) -> None:
        if self.request.method == "POST":
            await self.start_upload()
        else:
            await super().start_body()

    async def start_upload(self) -> None:
        """Refuse what can be refused before the body is read; get ready for the body."""
        await super().start_body()
        self._body = None  # the body goes to the receiver, never into memory
        if self._refusal is not None:
            return
        declared = self.request.headers.get("Content-Length", "").strip()
        try:
            self.check_upload()
            self._receiver = await self.blocking(
                MultipartReceiver,
                self.request.headers.get("Content-Type", ""),
                uploads_dir(self),
                self.body_limit,
            )
        except web.HTTPError as error:
            self.refuse_early(error, declared)

    async def data_received(self, chunk: bytes) -> None:
        receiver = self._receiver
        if self._refusal is not None or receiver is None:
            await super().data_received(chunk)
            return
        try:
            await self.blocking(receiver.feed, chunk)
        except Exception as error:
            await self.blocking(receiver.discard)
            if is_storage_full(error):
                self.log.error("an upload found the disk full: %s", error)
                error = web.HTTPError(507, STORAGE_FULL_MESSAGE)
            elif not isinstance(error, web.HTTPError):
                self.log_exception(*sys.exc_info())
                error = web.HTTPError(500, "internal error; the service log has the details")
            self.refuse(error)

    async def received_upload(self) -> ReceivedUpload:
        """The complete upload, which the caller removes; raises the refusal, if any, or 400
        when the upload is incomplete."""
        if self._refusal is not None:
            raise self._refusal
        if self._receiver is None:
            raise web.HTTPError(400, "no upload received")
        try:
            return await self.blocking(self._receiver.finish)
        except web.HTTPError:
            await self.blocking(self._receiver.discard)
            raise

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self._discard_later()

    def on_finish(self) -> None:
        super().on_finish()
        self._discard_later()

    def _discard_later(self) -> None:
        """Remove an upload that was not handed over, in the executor (it waits for a chunk
        being written)."""
        if self._receiver is not None:
            asyncio.get_running_loop().run_in_executor(None, self._receiver.discard)
