"""A local server that answers like Zenodo (and like doi.org's handle API), for tests and trials.

It implements the subset of https://developers.zenodo.org that erchub calls, with Zenodo's
paths, field names and status codes. Errors are JSON ``{"status", "message"}`` (validation
errors add ``errors: [{"field", "messages"}]``), as Zenodo answers.

Records (no authentication)
    ``GET /api/records/{id}`` -> ``{id, recid, doi, doi_url, conceptrecid, conceptdoi,
    created, modified, title, metadata, state: "done", submitted: true, links: {self, html,
    doi, files}, files: [{id, key, size, checksum: "md5:<hex>", links: {self:
    <url>/api/records/{id}/files/{key}/content}}]}``; 404 for an unknown record.
    ``GET /api/records/{id}/files/{key}/content`` -> the file's bytes (``Content-Length``,
    ``application/octet-stream``); ``GET /api/records/{id}/files`` -> ``{entries: [...]}``.
    ``GET /records/{id}`` -> the record's HTML landing page; ``/record/{id}`` (the old form)
    redirects there (301) and ``/doi/{doi}`` too (302).
DOI handles (as ``https://doi.org/api/handles/{doi}``)
    ``GET /api/handles/{doi}`` -> ``{responseCode: 1, handle, values: [{index: 1, type: "URL",
    data: {format: "string", value: "<url>/records/<id>"}, ttl, timestamp}]}``; an unknown DOI
    -> 404 ``{responseCode: 100, handle}``. DOIs compare case-insensitively.
Deposit API (``Authorization: Bearer <token>`` or ``?access_token=``; 401 without or with a bad
token, 403 for another user's deposition)
    ``GET|POST /api/deposit/depositions``: list the caller's, or create one (``{}`` or
    ``{"metadata": {...}}``) -> 201 ``{id, record_id, conceptrecid, doi: "", state:
    "unsubmitted", submitted: false, metadata: {..., prereserve_doi: {doi, recid}}, files,
    links: {self, html, bucket, files, publish, edit, discard, newversion, latest_draft,
    latest_draft_html}}``.
    ``GET|PUT|DELETE /api/deposit/depositions/{id}``: PUT ``{"metadata": {...}}`` is checked
    (``upload_type``, ``title``, ``creators`` with names, ``description`` required; 400 with
    ``errors`` otherwise); a published deposition cannot be changed or deleted (400 / 403).
    ``PUT <links.bucket>/{filename}`` (``/api/files/{bucket}/{filename}``): the raw body is
    the file -> 201 ``{key, size, checksum: "md5:<hex>", mimetype, version_id, created,
    updated, is_head, delete_marker, links: {self, version, uploads}}``; 403 once published.
    ``GET /api/deposit/depositions/{id}/files`` -> ``[{id, filename, filesize, checksum,
    links: {self, download}}]``; ``GET|DELETE /api/deposit/depositions/{id}/files/{file_id}``
    -> one of them, or 204 deleted (403 once published, 404 for an unknown file id).
    ``POST /api/deposit/depositions/{id}/actions/publish`` -> 202 with the deposition, now
    ``submitted: true``, ``state: "done"``, ``doi`` (prefix ``10.5072``, DataCite's test
    prefix: ``10.5072/zenodo.<id>``), ``doi_url`` and ``links.record``/``links.record_html``;
    its files become record ``<id>`` of the records API and its DOI resolves through the
    handle API to ``<url>/records/<id>``. 400 ``Validation error.`` without files or with
    incomplete metadata.

Test hooks (not Zenodo's): ``fake.url``, ``fake.token`` (a valid token; ``fake.add_token()``
makes another user's), ``fake.add_record(files={name: bytes}, metadata=..., doi=None) -> id``
(``doi`` None: ``10.5072/zenodo.<id>``), ``fake.fail_next(status, body=None, path=None)`` (the
next request whose path contains ``path`` is answered so), ``fake.delay_next(seconds,
path=None)``, ``fake.requests`` (``(method, host, path)`` of every request), and the endpoints
``GET /test/slow?seconds=S`` (answers after S seconds), ``GET /test/bytes?size=N&chunked=1``
(N bytes, without Content-Length when chunked), ``GET /test/redirect?to=URL`` (302).

In tests: ``with FakeZenodo() as zenodo:`` runs it on a free port in a thread with its own event
loop. By hand::

    python -m tests.fakes.zenodo --port 9100 --record examples/sine-wave.zip

prints the URL, the token and the records it made; point the erc service at it with
``ERCHUB_ZENODO_URL=http://127.0.0.1:9100``, ``ERCHUB_ZENODO_SANDBOX_URL`` (the same),
``ERCHUB_DOI_RESOLVER_URL=http://127.0.0.1:9100/api/handles/`` and
``ERCHUB_LOADER_ALLOWED_HOSTS=127.0.0.1``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hashlib
import html
import itertools
import json
import re
import secrets
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tornado import web
from tornado.iostream import StreamClosedError

from tests.fakes.server import ThreadedServer

#: DataCite's test prefix: DOIs of the fake never collide with real ones
DOI_PREFIX = "10.5072"
#: the first record/deposition id (Zenodo's are seven-digit numbers and more)
FIRST_ID = 1000001
#: fields a deposition needs before it can be published (as Zenodo requires them)
REQUIRED_METADATA = ("upload_type", "title", "creators", "description")
UPLOAD_TYPES = (
    "publication", "poster", "presentation", "dataset", "image", "video", "software",
    "lesson", "physicalobject", "other",
)  # fmt: skip
#: the largest body the fake reads (bucket uploads included)
MAX_BODY = 4 * 1024**3
CHUNK = 64 * 1024


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def md5(content: bytes) -> str:
    return hashlib.md5(content, usedforsecurity=False).hexdigest()


@dataclass
class StoredFile:
    key: str
    content: bytes
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: str = field(default_factory=now_iso)

    @property
    def checksum(self) -> str:
        return "md5:" + md5(self.content)


@dataclass
class Record:
    id: int
    doi: str
    metadata: dict[str, Any]
    files: dict[str, StoredFile]
    owner: int | None = None
    created: str = field(default_factory=now_iso)


@dataclass
class Deposition:
    id: int
    owner: int
    bucket: str
    metadata: dict[str, Any] = field(default_factory=dict)
    submitted: bool = False
    doi: str = ""
    created: str = field(default_factory=now_iso)
    modified: str = field(default_factory=now_iso)


@dataclass
class Hook:
    """A planned failure or delay for the next request whose path contains ``path``."""

    path: str | None
    status: int = 0
    body: Any = None
    delay: float = 0.0

    def matches(self, request_path: str) -> bool:
        return self.path is None or self.path in request_path


class ZenodoError(web.HTTPError):
    """An error answered as Zenodo's JSON."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(status)
        self.message = message
        self.errors = errors


def forbidden() -> ZenodoError:
    return ZenodoError(403, "You don't have the permission to access the requested resource.")


def not_found() -> ZenodoError:
    return ZenodoError(404, "The persistent identifier does not exist.")


class Handler(web.RequestHandler):
    @property
    def zenodo(self) -> FakeZenodo:
        server: FakeZenodo = self.settings["zenodo"]
        return server

    #: whether the client went away (then nothing is written)
    gone = False

    def on_connection_close(self) -> None:
        self.gone = True

    async def prepare(self) -> None:
        self.zenodo.log_request(self.request.method or "", self.request.host, self.request.path)
        hook = self.zenodo.take_hook(self.request.path)
        if hook is None:
            return
        if hook.delay:
            await asyncio.sleep(hook.delay)
            if self.gone:
                with contextlib.suppress(StreamClosedError):
                    await self.finish()
                return
        if hook.status:
            self.set_status(hook.status)
            body = hook.body
            if body is None:
                body = {"status": hook.status, "message": _phrase(hook.status)}
            if isinstance(body, dict | list):
                self.set_header("Content-Type", "application/json")
                body = json.dumps(body)
            self.finish(body)

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exception = kwargs.get("exc_info", (None, None))[1]
        self.set_header("Content-Type", "application/json")
        if isinstance(exception, ZenodoError):
            body: dict[str, Any] = {"status": status_code, "message": exception.message}
            if exception.errors:
                body["errors"] = exception.errors
        else:
            body = {"status": status_code, "message": _phrase(status_code)}
        self.finish(json.dumps(body))

    def json_body(self) -> Any:
        if not self.request.body.strip():
            return {}
        try:
            return json.loads(self.request.body)
        except ValueError:
            raise ZenodoError(400, "Could not parse the request body as JSON.") from None

    def owner(self) -> int:
        """The caller's user id from its token; 401 without a valid one."""
        authorization = self.request.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            token = self.get_query_argument("access_token", "")
        user = self.zenodo.tokens.get(token.strip()) if token else None
        if user is None:
            raise ZenodoError(
                401,
                "The server could not verify that you are authorized to access the URL "
                "requested. You either supplied the wrong credentials (e.g. a bad password), "
                "or your browser doesn't understand how to supply the credentials required.",
            )
        return user

    def own_deposition(self, deposition_id: str) -> Deposition:
        user = self.owner()
        deposition = self.zenodo.depositions.get(int(deposition_id))
        if deposition is None:
            raise ZenodoError(404, "Deposition not found")
        if deposition.owner != user:
            raise forbidden()
        return deposition


# -- records ----------------------------------------------------------------------------------


class RecordHandler(Handler):
    def get(self, record_id: str) -> None:
        record = self.zenodo.records.get(int(record_id))
        if record is None:
            raise not_found()
        self.write_json(self.zenodo.record_json(record))


class RecordFilesHandler(Handler):
    def get(self, record_id: str) -> None:
        record = self.zenodo.records.get(int(record_id))
        if record is None:
            raise not_found()
        entries = self.zenodo.record_json(record)["files"]
        self.write_json({"entries": entries, "enabled": True})


class RecordFileContentHandler(Handler):
    async def get(self, record_id: str, key: str) -> None:
        record = self.zenodo.records.get(int(record_id))
        stored = record.files.get(key) if record else None
        if stored is None:
            raise not_found()
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Disposition", f"attachment; filename={quote(key)}")
        self.set_header("Content-Length", len(stored.content))
        with contextlib.suppress(StreamClosedError):  # the client went away
            for start in range(0, len(stored.content), CHUNK):
                self.write(stored.content[start : start + CHUNK])
                await self.flush()
            self.finish()


class LandingPageHandler(Handler):
    def get(self, record_id: str) -> None:
        record = self.zenodo.records.get(int(record_id))
        if record is None:
            self.set_status(404)
            self.finish("<!DOCTYPE html><html><body><h1>Not found</h1></body></html>")
            return
        title = html.escape(str(record.metadata.get("title", "")))
        links = "".join(
            f'<li><a href="{self.zenodo.file_url(record.id, key)}">{html.escape(key)}</a></li>'
            for key in record.files
        )
        self.finish(
            f"<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1>"
            f"<p>DOI {html.escape(record.doi)}</p><ul>{links}</ul></body></html>"
        )


class OldRecordHandler(Handler):
    def get(self, record_id: str) -> None:
        self.redirect(f"{self.zenodo.url}/records/{record_id}", permanent=True)


class DOIPageHandler(Handler):
    def get(self, doi: str) -> None:
        record_id = self.zenodo.dois.get(doi.lower())
        if record_id is None:
            raise not_found()
        self.redirect(f"{self.zenodo.url}/records/{record_id}")


# -- DOI handles ------------------------------------------------------------------------------


class HandleHandler(Handler):
    def get(self, doi: str) -> None:
        record_id = self.zenodo.dois.get(doi.lower())
        if record_id is None:
            self.write_json({"responseCode": 100, "handle": doi}, status=404)
            return
        self.write_json(
            {
                "responseCode": 1,
                "handle": doi,
                "values": [
                    {
                        "index": 1,
                        "type": "URL",
                        "data": {
                            "format": "string",
                            "value": f"{self.zenodo.url}/records/{record_id}",
                        },
                        "ttl": 86400,
                        "timestamp": now_iso(),
                    }
                ],
            }
        )


# -- deposit API ------------------------------------------------------------------------------


class DepositionsHandler(Handler):
    def get(self) -> None:
        user = self.owner()
        zenodo = self.zenodo
        self.write_json(
            [zenodo.deposition_json(d) for d in zenodo.depositions.values() if d.owner == user]
        )

    def post(self) -> None:
        user = self.owner()
        body = self.json_body()
        if not isinstance(body, dict):
            raise ZenodoError(400, "Validation error.", [_error("", "Expected an object.")])
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise ZenodoError(400, "Validation error.", [_error("metadata", "Not an object.")])
        deposition = self.zenodo.new_deposition(user, metadata)
        self.set_header("Location", self.zenodo.deposition_url(deposition.id))
        self.write_json(self.zenodo.deposition_json(deposition), status=201)


class DepositionHandler(Handler):
    def get(self, deposition_id: str) -> None:
        self.write_json(self.zenodo.deposition_json(self.own_deposition(deposition_id)))

    def put(self, deposition_id: str) -> None:
        deposition = self.own_deposition(deposition_id)
        if deposition.submitted:
            raise ZenodoError(
                400, "The deposition is published: edit it (actions/edit) before changing it."
            )
        body = self.json_body()
        metadata = body.get("metadata") if isinstance(body, dict) else None
        if not isinstance(metadata, dict):
            raise ZenodoError(400, "Validation error.", [_error("metadata", "Field is required.")])
        errors = metadata_errors(metadata)
        if errors:
            raise ZenodoError(400, "Validation error.", errors)
        with self.zenodo.lock:
            reserved = deposition.metadata.get("prereserve_doi")
            deposition.metadata = {**metadata, "prereserve_doi": reserved}
            deposition.modified = now_iso()
        self.write_json(self.zenodo.deposition_json(deposition))

    def delete(self, deposition_id: str) -> None:
        deposition = self.own_deposition(deposition_id)
        if deposition.submitted:
            raise ZenodoError(403, "You cannot delete a published deposition.")
        self.zenodo.delete_deposition(deposition)
        self.set_status(204)
        self.finish()


class DepositionFilesHandler(Handler):
    def get(self, deposition_id: str) -> None:
        deposition = self.own_deposition(deposition_id)
        self.write_json(self.zenodo.deposition_json(deposition)["files"])


class DepositionFileHandler(Handler):
    def stored(self, deposition: Deposition, file_id: str) -> StoredFile:
        for stored in self.zenodo.buckets.get(deposition.bucket, {}).values():
            if stored.id == file_id:
                return stored
        raise ZenodoError(404, "File not found.")

    def get(self, deposition_id: str, file_id: str) -> None:
        deposition = self.own_deposition(deposition_id)
        self.stored(deposition, file_id)
        files = self.zenodo.deposition_json(deposition)["files"]
        self.write_json(next(entry for entry in files if entry["id"] == file_id))

    def delete(self, deposition_id: str, file_id: str) -> None:
        deposition = self.own_deposition(deposition_id)
        if deposition.submitted:
            raise ZenodoError(403, "You cannot delete files of a published deposition.")
        stored = self.stored(deposition, file_id)
        with self.zenodo.lock:
            self.zenodo.buckets[deposition.bucket].pop(stored.key, None)
            deposition.modified = now_iso()
        self.set_status(204)
        self.finish()


class PublishHandler(Handler):
    def post(self, deposition_id: str) -> None:
        deposition = self.own_deposition(deposition_id)
        if deposition.submitted:
            raise ZenodoError(400, "The deposition is already published.")
        errors = metadata_errors(deposition.metadata)
        if not self.zenodo.buckets.get(deposition.bucket):
            errors.append(_error("files", "Missing uploaded files. Please upload a file."))
        if errors:
            raise ZenodoError(400, "Validation error.", errors)
        self.zenodo.publish(deposition)
        self.write_json(self.zenodo.deposition_json(deposition), status=202)


class BucketFileHandler(Handler):
    def put(self, bucket: str, key: str) -> None:
        user = self.owner()
        zenodo = self.zenodo
        deposition = zenodo.deposition_of_bucket(bucket)
        if deposition is None:
            raise ZenodoError(404, "Bucket does not exist.")
        if deposition.owner != user:
            raise forbidden()
        if deposition.submitted:
            raise ZenodoError(403, "Bucket is locked: the deposition is published.")
        if not key or "/" in key:
            raise ZenodoError(400, "Invalid file name.")
        stored = StoredFile(key, bytes(self.request.body))
        with zenodo.lock:
            zenodo.buckets.setdefault(bucket, {})[key] = stored
            deposition.modified = now_iso()
        self.write_json(zenodo.bucket_file_json(bucket, stored), status=201)


# -- test endpoints ---------------------------------------------------------------------------


class SlowHandler(Handler):
    async def get(self) -> None:
        await asyncio.sleep(float(self.get_query_argument("seconds", "30")))
        with contextlib.suppress(StreamClosedError):
            if self.gone:
                await self.finish()
            else:
                self.write_json({"slow": True})


class BytesHandler(Handler):
    async def get(self) -> None:
        size = int(self.get_query_argument("size", "0"))
        self.set_header("Content-Type", self.get_query_argument("content_type", "application/zip"))
        if self.get_query_argument("chunked", "") != "1":
            self.set_header("Content-Length", size)
        sent = 0
        with contextlib.suppress(StreamClosedError):  # the client went away
            while sent < size:
                part = min(CHUNK, size - sent)
                self.write(b"\0" * part)
                await self.flush()
                sent += part
            self.finish()


class RedirectHandler(Handler):
    def get(self) -> None:
        self.redirect(self.get_query_argument("to"))


def _error(field_name: str, message: str) -> dict[str, Any]:
    return {"field": field_name, "messages": [message]}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def metadata_errors(metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What Zenodo's validation says about deposition metadata (the fields erchub sends)."""
    errors = []
    for name in REQUIRED_METADATA:
        value = metadata.get(name)
        if value in (None, "", []):
            errors.append(_error(f"metadata.{name}", "Field is required."))
    upload_type = metadata.get("upload_type")
    if upload_type and upload_type not in UPLOAD_TYPES:
        errors.append(_error("metadata.upload_type", f"Invalid upload type {upload_type!r}."))
    creators = metadata.get("creators")
    if creators and not isinstance(creators, list):
        errors.append(_error("metadata.creators", "Not a valid list."))
    elif creators:
        for index, creator in enumerate(creators):
            if not isinstance(creator, dict) or not creator.get("name"):
                errors.append(_error(f"metadata.creators.{index}.name", "Field is required."))
    date = metadata.get("publication_date")
    if date and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(date)):
        errors.append(_error("metadata.publication_date", "Not a valid date."))
    return errors


class FakeZenodo(ThreadedServer):
    """The server's state (read it in tests; the server thread writes it under ``lock``)."""

    name = "fake Zenodo server"
    max_body_size = MAX_BODY

    def __init__(self, token: str | None = None) -> None:
        self.lock = threading.RLock()
        self.token = token or secrets.token_urlsafe(24)
        #: token -> user id
        self.tokens: dict[str, int] = {self.token: 1}
        self.records: dict[int, Record] = {}
        self.depositions: dict[int, Deposition] = {}
        #: bucket id -> file name -> file (a deposition's uploads)
        self.buckets: dict[str, dict[str, StoredFile]] = {}
        #: lower-case DOI -> record id
        self.dois: dict[str, int] = {}
        #: (method, host, path) of every request received
        self.requests: list[tuple[str, str, str]] = []
        self.hooks: list[Hook] = []
        self._ids = itertools.count(FIRST_ID)
        super().__init__()

    # -- test hooks ----------------------------------------------------------------------------

    def add_token(self) -> str:
        """A valid token of a new user."""
        with self.lock:
            token = secrets.token_urlsafe(24)
            self.tokens[token] = max(self.tokens.values()) + 1
            return token

    def add_record(
        self,
        files: Mapping[str, bytes],
        metadata: Mapping[str, Any] | None = None,
        doi: str | None = None,
    ) -> int:
        """A published record holding ``files``; its DOI (``10.5072/zenodo.<id>`` unless
        given) resolves through the handle API. Returns the record id."""
        with self.lock:
            record_id = next(self._ids)
            doi = doi or f"{DOI_PREFIX}/zenodo.{record_id}"
            record_metadata = {
                "title": f"Record {record_id}",
                "upload_type": "publication",
                "publication_date": datetime.date.today().isoformat(),
                "creators": [{"name": "Lovelace, Ada"}],
                "description": "A record of the fake Zenodo.",
                "access_right": "open",
                **(metadata or {}),
            }
            self._add_record(record_id, doi, record_metadata, files, owner=None)
            return record_id

    def fail_next(self, status: int, body: Any = None, path: str | None = None) -> None:
        """Answer the next request whose path contains ``path`` (any, when None) with
        ``status`` and ``body`` (a dict/list as JSON, or str/bytes; default Zenodo's JSON
        ``{"status", "message"}``)."""
        with self.lock:
            self.hooks.append(Hook(path, status=status, body=body))

    def delay_next(self, seconds: float, path: str | None = None) -> None:
        """Wait ``seconds`` before handling the next request whose path contains ``path``."""
        with self.lock:
            self.hooks.append(Hook(path, delay=seconds))

    def clear_hooks(self) -> None:
        with self.lock:
            self.hooks.clear()

    def record(self, record_id: int) -> dict[str, Any]:
        """Record ``record_id`` as the records API shows it (KeyError when absent)."""
        with self.lock:
            return self.record_json(self.records[record_id])

    def deposition(self, deposition_id: int) -> dict[str, Any]:
        """Deposition ``deposition_id`` as the deposit API shows it (KeyError when absent)."""
        with self.lock:
            return self.deposition_json(self.depositions[deposition_id])

    def record_url(self, record_id: int) -> str:
        """The landing page of a record, as a DOI resolves to it."""
        return f"{self.url}/records/{record_id}"

    def file_url(self, record_id: int, key: str) -> str:
        return f"{self.url}/api/records/{record_id}/files/{quote(key)}/content"

    # -- state (server thread) -----------------------------------------------------------------

    def log_request(self, method: str, host: str, path: str) -> None:
        with self.lock:
            self.requests.append((method, host, path))

    def take_hook(self, path: str) -> Hook | None:
        with self.lock:
            for index, hook in enumerate(self.hooks):
                if hook.matches(path):
                    return self.hooks.pop(index)
        return None

    def _add_record(
        self,
        record_id: int,
        doi: str,
        metadata: dict[str, Any],
        files: Mapping[str, bytes] | Mapping[str, StoredFile],
        owner: int | None,
    ) -> Record:
        stored = {
            key: value if isinstance(value, StoredFile) else StoredFile(key, bytes(value))
            for key, value in files.items()
        }
        record = Record(record_id, doi, {**metadata, "doi": doi}, stored, owner)
        self.records[record_id] = record
        self.dois[doi.lower()] = record_id
        return record

    def new_deposition(self, owner: int, metadata: dict[str, Any]) -> Deposition:
        with self.lock:
            deposition_id = next(self._ids)
            bucket = str(uuid.uuid4())
            reserved = {"doi": f"{DOI_PREFIX}/zenodo.{deposition_id}", "recid": deposition_id}
            deposition = Deposition(
                deposition_id, owner, bucket, {**metadata, "prereserve_doi": reserved}
            )
            self.depositions[deposition_id] = deposition
            self.buckets[bucket] = {}
            return deposition

    def delete_deposition(self, deposition: Deposition) -> None:
        with self.lock:
            self.depositions.pop(deposition.id, None)
            self.buckets.pop(deposition.bucket, None)

    def deposition_of_bucket(self, bucket: str) -> Deposition | None:
        with self.lock:
            if bucket not in self.buckets:
                return None
            return next((d for d in self.depositions.values() if d.bucket == bucket), None)

    def publish(self, deposition: Deposition) -> Record:
        with self.lock:
            deposition.doi = deposition.metadata["prereserve_doi"]["doi"]
            deposition.submitted = True
            deposition.modified = now_iso()
            metadata = {k: v for k, v in deposition.metadata.items() if k != "prereserve_doi"}
            metadata.setdefault("publication_date", datetime.date.today().isoformat())
            metadata.setdefault("access_right", "open")
            deposition.metadata = {**deposition.metadata, **metadata, "doi": deposition.doi}
            return self._add_record(
                deposition.id,
                deposition.doi,
                metadata,
                dict(self.buckets[deposition.bucket]),
                deposition.owner,
            )

    # -- representations -----------------------------------------------------------------------

    def deposition_url(self, deposition_id: int) -> str:
        return f"{self.url}/api/deposit/depositions/{deposition_id}"

    def record_json(self, record: Record) -> dict[str, Any]:
        api = f"{self.url}/api/records/{record.id}"
        return {
            "id": record.id,
            "recid": str(record.id),
            "conceptrecid": str(record.id),
            "doi": record.doi,
            "conceptdoi": None,
            "doi_url": f"https://doi.org/{record.doi}",
            "created": record.created,
            "modified": record.created,
            "updated": record.created,
            "title": record.metadata.get("title", ""),
            "metadata": record.metadata,
            "owners": [record.owner] if record.owner else [],
            "state": "done",
            "submitted": True,
            "status": "published",
            "links": {
                "self": api,
                "html": self.record_url(record.id),
                "doi": f"https://doi.org/{record.doi}",
                "files": f"{api}/files",
            },
            "files": [
                {
                    "id": stored.id,
                    "key": stored.key,
                    "size": len(stored.content),
                    "checksum": stored.checksum,
                    "links": {"self": self.file_url(record.id, stored.key)},
                }
                for stored in record.files.values()
            ],
        }

    def deposition_json(self, deposition: Deposition) -> dict[str, Any]:
        self_url = self.deposition_url(deposition.id)
        bucket_url = f"{self.url}/api/files/{deposition.bucket}"
        links = {
            "self": self_url,
            "html": f"{self.url}/deposit/{deposition.id}",
            "badge": f"{self.url}/badge/doi/.svg",
            "files": f"{self_url}/files",
            "bucket": bucket_url,
            "latest_draft": self_url,
            "latest_draft_html": f"{self.url}/deposit/{deposition.id}",
            "publish": f"{self_url}/actions/publish",
            "edit": f"{self_url}/actions/edit",
            "discard": f"{self_url}/actions/discard",
            "newversion": f"{self_url}/actions/newversion",
            "registerconceptdoi": f"{self_url}/actions/registerconceptdoi",
        }
        if deposition.submitted:
            links.update(
                html=self.record_url(deposition.id),
                record=f"{self.url}/api/records/{deposition.id}",
                record_html=self.record_url(deposition.id),
                latest=f"{self.url}/api/records/{deposition.id}",
                latest_html=self.record_url(deposition.id),
                doi=f"https://doi.org/{deposition.doi}",
            )
        files = self.buckets.get(deposition.bucket, {})
        return {
            "id": deposition.id,
            "record_id": deposition.id,
            "conceptrecid": str(deposition.id),
            "created": deposition.created,
            "modified": deposition.modified,
            "owner": deposition.owner,
            "doi": deposition.doi,
            "doi_url": f"https://doi.org/{deposition.doi}" if deposition.doi else "",
            "state": "done" if deposition.submitted else "unsubmitted",
            "submitted": deposition.submitted,
            "title": deposition.metadata.get("title", ""),
            "metadata": deposition.metadata,
            "links": links,
            "files": [
                {
                    "id": stored.id,
                    "filename": stored.key,
                    "filesize": len(stored.content),
                    "checksum": md5(stored.content),
                    "links": {
                        "self": f"{self_url}/files/{stored.id}",
                        "download": f"{bucket_url}/{quote(stored.key)}",
                    },
                }
                for stored in files.values()
            ],
        }

    def bucket_file_json(self, bucket: str, stored: StoredFile) -> dict[str, Any]:
        url = f"{self.url}/api/files/{bucket}/{quote(stored.key)}"
        return {
            "key": stored.key,
            "mimetype": "application/octet-stream",
            "checksum": stored.checksum,
            "version_id": stored.id,
            "size": len(stored.content),
            "created": stored.created,
            "updated": stored.created,
            "is_head": True,
            "delete_marker": False,
            "links": {
                "self": url,
                "version": f"{url}?versionId={stored.id}",
                "uploads": f"{url}?uploads",
            },
        }

    # -- running -------------------------------------------------------------------------------

    def application(self) -> web.Application:
        record = r"/api/records/(?P<record_id>\d+)"
        deposition = r"/api/deposit/depositions/(?P<deposition_id>\d+)"
        return web.Application(
            [
                (record, RecordHandler),
                (rf"{record}/files", RecordFilesHandler),
                (rf"{record}/files/(?P<key>[^/]+)/content", RecordFileContentHandler),
                (r"/records/(?P<record_id>\d+)", LandingPageHandler),
                (r"/record/(?P<record_id>\d+)", OldRecordHandler),
                (r"/doi/(?P<doi>10\..+)", DOIPageHandler),
                (r"/api/handles/(?P<doi>.+)", HandleHandler),
                (r"/api/deposit/depositions", DepositionsHandler),
                (deposition, DepositionHandler),
                (rf"{deposition}/files", DepositionFilesHandler),
                (rf"{deposition}/files/(?P<file_id>[^/]+)", DepositionFileHandler),
                (rf"{deposition}/actions/publish", PublishHandler),
                (r"/api/files/(?P<bucket>[0-9a-f-]+)/(?P<key>[^/]+)", BucketFileHandler),
                (r"/test/slow", SlowHandler),
                (r"/test/bytes", BytesHandler),
                (r"/test/redirect", RedirectHandler),
                (r".*", NotFoundHandler),
            ],
            zenodo=self,
        )


class NotFoundHandler(Handler):
    def prepare(self) -> None:  # type: ignore[override]
        self.zenodo.log_request(self.request.method or "", self.request.host, self.request.path)
        raise ZenodoError(404, "The requested URL was not found on the server.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local server that answers like Zenodo.")
    parser.add_argument("--port", type=int, default=9100, help="port on 127.0.0.1 (9100)")
    parser.add_argument("--token", help="the valid deposit token (default: a random one)")
    parser.add_argument(
        "--record",
        action="append",
        type=Path,
        default=[],
        help="a file to publish as a record of its own, repeatable",
    )
    args = parser.parse_args(argv)
    zenodo = FakeZenodo(token=args.token)

    def announce() -> None:
        print(f"fake Zenodo at {zenodo.url}, deposit token {zenodo.token}", flush=True)
        for path in args.record:
            record_id = zenodo.add_record({path.name: path.read_bytes()})
            doi = zenodo.records[record_id].doi
            print(f"record {record_id} ({path.name}): DOI {doi}, {zenodo.record_url(record_id)}")

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(zenodo.serve(args.port, announce))


if __name__ == "__main__":
    main()
