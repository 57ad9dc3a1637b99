"""The one BaseHandler of the `erc` service: identity through the hub, JSON in and out.

Identity: HubOAuth cookies (browsers) or hub API tokens (``Authorization: token ...``),
resolved once per request in :meth:`prepare` without blocking the event loop. Authorization:
JupyterHub custom scopes ``custom:erc:{read,create,run,admin}`` carried by the token.

Errors are JSON ``{"status": <code>, "message": "<plain words>", "error": "<the same>"}``
(``error`` is o2r's name of the message): 400 for a bad request, 401
without identity, 403 for a forbidden action on a visible resource, 404 for what is absent or
not visible to the caller. Unexpected exceptions become a 500 with a generic message; the
traceback goes to the log only.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import jsonschema
from jupyterhub.services.auth import HubOAuthenticated, UserNotAllowed
from jupyterhub.utils import url_path_join
from tornado import httputil, web
from tornado.http1connection import HTTP1Connection
from tornado.iostream import StreamClosedError

from erchub import jsonlimits, safefs
from erchub.errors import (
    STORAGE_FULL_MESSAGE,
    Conflict,
    ErchubError,
    Forbidden,
    NotFound,
    Unavailable,
    is_storage_full,
)
from erchub.reviewers import is_guest, is_guest_of
from erchub.services.compendia import files as compendia
from erchub.services.compendia import links
from erchub.services.exchange.citation import (
    Description,
    ExportFormat,
    describe,
    export,
    package_exports,
    publication_year,
    publisher_of,
)
from erchub.services.jobs.worker import link_tree
from erchub.services.store import CompendiumRecord, LinkMode, LinkRecord, Store, StoreError
from erchub.workspace import list_files

if TYPE_CHECKING:
    from erchub.services.app import ERCService

T = TypeVar("T")

#: the query argument that carries a review link's id
LINK_ARGUMENT = "link"

SCOPE_READ = "custom:erc:read"
SCOPE_CREATE = "custom:erc:create"
SCOPE_RUN = "custom:erc:run"
SCOPE_ADMIN = "custom:erc:admin"

MAX_PAGE = 1000
#: the largest ``start`` (databases take 64-bit integers; no listing is longer)
MAX_START = 10**9
#: problems of a request body listed in one 400, and characters shown of each
MAX_PROBLEMS = 10
MAX_PROBLEM_CHARS = 200
#: what a client is told while the store cannot be reached (its error names the database)
STORE_UNAVAILABLE_MESSAGE = "the service's database cannot be reached; try again in a moment"
#: the media types of forms, as o2r's clients send some bodies
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
#: what a review guest is told where their link grants nothing
GUEST_REFUSAL = "a guest of a review link may open only the compendium of that link"
#: query arguments every endpoint accepts: how a hub token, the XSRF token or a review link may
#: travel (a link is ignored where it grants nothing: see BaseHandler.visible_compendium)
AUTH_ARGUMENTS = ("token", "_xsrf", LINK_ARGUMENT)
#: the policy of files of compendia and jobs: an author's interactive figures run their scripts,
#: in an opaque origin (no allow-same-origin), so they can neither read the hub's cookies nor
#: call the API as the reader
UNTRUSTED_CONTENT_POLICY = "sandbox allow-scripts allow-popups"
#: the policy of JSON answers: never a page, nothing to load, never in a frame
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
#: where blinded snapshots of compendia are made for a download, inside the data directory
BLIND_DIRECTORY = "blind"
#: the largest request body an endpoint reads, but for uploads (bytes)
MAX_JSON_BODY = 16 * 1024**2
#: bytes of a refused body read and dropped before the connection is closed, at least
MIN_DRAIN_BYTES = 64 * 1024**2
#: tornado's own body limit; each handler enforces its limit itself, so that a client gets a
#: JSON 413 however it frames the body
UNLIMITED = 2**62


HandlerMethod = TypeVar("HandlerMethod", bound=Callable[..., Awaitable[None]])


def needs_scope(*scopes: str) -> Callable[[HandlerMethod], HandlerMethod]:
    """A handler method that needs ``scopes`` (each, or ``custom:erc:admin``): 401 without
    identity, 403 without a scope, before the method runs (after jupyterhub's
    ``needs_scope``)."""

    def decorate(method: HandlerMethod) -> HandlerMethod:
        @functools.wraps(method)
        async def checked(self: BaseHandler, *args: Any, **kwargs: Any) -> None:
            for scope in scopes:
                self.require(scope)
            await method(self, *args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate


def iso(timestamp: float | None) -> str | None:
    """POSIX seconds as ISO 8601 UTC, as the API shows times."""
    if timestamp is None:
        return None
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@web.stream_request_body
class BaseHandler(HubOAuthenticated, web.RequestHandler):
    """Handlers of the API: identity, scopes, JSON bodies, paging, JSON errors.

    Bodies stream in (``@stream_request_body``), so that a body past :attr:`body_limit` gets a
    JSON 413 instead of a closed connection. A refusal known before the end of the body (a
    declared length past the limit, the limit crossed) is answered once the body has arrived:
    the rest is read and dropped, up to :attr:`drain_limit` bytes, beyond which the connection
    is closed. Answering earlier is fragile behind a proxy: configurable-http-proxy, still
    sending the body, may pass on a 503 of its own or reuse the connection for the next
    request.
    """

    #: the largest body this handler reads (bytes)
    body_limit = MAX_JSON_BODY
    _body: bytearray | None = None
    _refusal: web.HTTPError | None = None
    _dropped = 0

    # -- the application ---------------------------------------------------------------------

    @property
    def service(self) -> ERCService:
        return self.settings["erc_service"]

    @property
    def store(self) -> Store:
        return self.service.store

    @property
    def log(self) -> logging.Logger:
        return self.service.log

    def landing_url(self, compendium_id: str) -> str:
        """The compendium's landing page, as the caller reaches this service: what its
        metadata exports cite when it has no DOI."""
        page = url_path_join(self.service.base_url, "compendium", compendium_id)
        return f"{self.request.protocol}://{self.request.host}{page}"

    async def described(self, record: CompendiumRecord, root: Path) -> Description:
        """The compendium (its files at ``root``) as its metadata exports describe it."""
        metadata = record.metadata
        return describe(
            metadata,
            compendium_id=record.id,
            landing_url=self.landing_url(record.id),
            publisher=publisher_of(metadata, self.request.host),
            year=publication_year(metadata, record.created),
            files=await self.blocking(list_files, root),
        )

    def export_format(self) -> ExportFormat | None:
        """The ``format`` argument of a metadata export (None without one); 400 for another."""
        name = self.text_argument("format")
        if name is None:
            return None
        try:
            return ExportFormat(name)
        except ValueError:
            known = ", ".join(str(f) for f in ExportFormat)
            raise web.HTTPError(400, f"format must be one of {known}, not {name[:40]!r}") from None

    async def send_export(self, record: CompendiumRecord, export_format: ExportFormat) -> None:
        """Send the compendium's metadata (as the caller sees it) in ``export_format``, as a
        file to save."""
        root = await self.compendium_files(record)
        exported = export(await self.described(record, root), export_format)
        self.set_header("Content-Type", f"{exported.media_type}; charset=UTF-8")
        filename = f"{record.id}.{exported.extension}"
        self.set_header("Content-Disposition", f'inline; filename="{filename}"')
        untrusted_content_headers(self)
        self.finish(exported.body)

    def compendium_dir(self, compendium_id: str) -> Path:
        """Where a compendium's files are (``data_dir/compendia/<id>``)."""
        return compendia.compendium_path(self.service.data_dir, compendium_id)

    async def compendium_files(self, record: CompendiumRecord) -> Path:
        """The directory of a visible compendium; 404 if its files are gone."""
        root = self.compendium_dir(record.id)
        if not await self.blocking(root.is_dir):
            raise web.HTTPError(404, f"the files of compendium {record.id} are missing")
        return root

    def job_dir(self, job_id: str) -> Path:
        """Where a job's files are (``data_dir/jobs/<id>``)."""
        return Path(self.service.data_dir) / "jobs" / job_id

    async def blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call (store, file system) in the executor, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", API_POLICY)
        if self.service.draining:
            # the service stops: the client (the hub's proxy) keeps this connection no longer
            self.set_header("Connection", "close")

    # -- the requests being answered (the service waits for them when it stops) -----------

    def initialize(self) -> None:
        self.service.answering.add(self)

    def on_finish(self) -> None:
        self.service.answering.discard(self)

    def on_connection_close(self) -> None:
        self.service.answering.discard(self)
        super().on_connection_close()

    # -- identity and scopes -----------------------------------------------------------------

    #: the hub's model of a caller who is logged in but may not use the service
    not_allowed: dict[str, Any] | None = None

    async def prepare(self) -> None:
        # HubAuth.get_user(sync=True) would block the loop on the hub's API: resolve the caller
        # here and set tornado's current_user, its documented way for asynchronous identity.
        user = None
        model = await self.hub_auth.get_user(self, sync=False)
        if model:
            try:
                user = self.check_hub_user(model)
            except UserNotAllowed:
                self.not_allowed = model
        self.current_user = user
        if user and is_guest(str(user["name"])) and self.request.method not in self.guest_methods:
            raise web.HTTPError(403, GUEST_REFUSAL)
        await self.start_body()

    # -- request bodies ----------------------------------------------------------------------

    @property
    def drain_limit(self) -> int:
        """Bytes of a refused body read and dropped before the connection is closed."""
        return max(int(self.service.upload_limit), MIN_DRAIN_BYTES)

    def too_large(self) -> web.HTTPError:
        return web.HTTPError(
            413, f"the request body is larger than the limit of {self.body_limit} bytes"
        )

    async def start_body(self) -> None:
        """Get ready for the body; refuse what its headers tell already."""
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):
            connection.set_max_body_size(UNLIMITED)
        self._body = bytearray()
        declared = self.request.headers.get("Content-Length", "").strip()
        if declared and not declared.isdigit():
            self.refuse_early(
                web.HTTPError(400, f"Content-Length must be a number, got {declared[:40]!r}"),
                declared,
            )
        elif declared and int(declared) > self.body_limit:
            self.refuse_early(self.too_large(), declared)

    def refuse_early(self, error: web.HTTPError, declared: str) -> None:
        """Refuse the request with ``error`` before its body is read: at once when no body is
        on its way yet (the client awaits "100 Continue") or too much of it to wait for, else
        once the body has arrived."""
        expects_continue = self.request.headers.get("Expect", "").lower() == "100-continue"
        beyond = declared.isdigit() and int(declared) > self.body_limit + self.drain_limit
        if expects_continue or beyond:
            raise error
        self.refuse(error)

    def refuse(self, error: web.HTTPError) -> None:
        """Refuse the request with ``error``, answered when the body has arrived."""
        if self._refusal is None:
            self._refusal = error
        self._body = None

    async def data_received(self, chunk: bytes) -> None:
        if self._refusal is not None:
            self._dropped += len(chunk)
            connection = self.request.connection
            if self._dropped > self.drain_limit and isinstance(connection, HTTP1Connection):
                connection.close()
            return
        if self._body is not None:
            self._body += chunk
            if len(self._body) > self.body_limit:
                self.refuse(self.too_large())

    @property
    def body(self) -> bytes:
        """The request's body; raises the refusal of it, if any."""
        if self._refusal is not None:
            raise self._refusal
        return bytes(self._body or b"")

    @property
    def scopes(self) -> set[str]:
        user = self.current_user
        return set(user.get("scopes") or ()) if user else set()

    @property
    def username(self) -> str:
        """The caller's name (a user or a service). Without identity, a browser opening a page
        (a display HTML, a report) is sent through the hub's login; anything else gets 401."""
        user = self.current_user
        if not user:
            if self.not_allowed is not None:
                # logged in, without access: never back to the login, which would loop
                kind, name = self.not_allowed.get("kind", "user"), self.not_allowed.get("name")
                raise web.HTTPError(403, f"{kind} {name} may not use this service")
            if self.request.method == "GET" and self.is_page_request():
                self.redirect(self.get_login_url())
                raise web.Finish()
            raise web.HTTPError(401, "authentication required: log in or send a hub API token")
        return str(user["name"])

    def is_page_request(self) -> bool:
        """Whether a browser navigates here (rather than a script or a fetch() asking)."""
        mode = self.request.headers.get("Sec-Fetch-Mode")
        if mode is not None:
            return mode == "navigate"
        return "text/html" in self.request.headers.get("Accept", "")

    def require(self, scope: str) -> str:
        """The caller's name when the token carries ``scope``: else 401 or 403 (handler
        methods say what they need with :func:`needs_scope`)."""
        name = self.username
        if scope not in self.scopes and SCOPE_ADMIN not in self.scopes:
            raise web.HTTPError(403, f"this action needs the scope {scope}")
        return name

    @property
    def is_admin(self) -> bool:
        return SCOPE_ADMIN in self.scopes

    @property
    def viewer(self) -> str | None:
        """Whose view the store applies: the caller, or None (everything) for an admin."""
        return None if self.is_admin else self.username

    @property
    def is_guest(self) -> bool:
        """Whether the caller is a review guest (who sees only their link's compendium)."""
        user = self.current_user
        return bool(user) and is_guest(str(user["name"]))

    def can_see(self, record: CompendiumRecord) -> bool:
        if self.is_guest:
            return False
        return not record.candidate or self.is_admin or record.user == self.username

    #: the methods of this handler where a review link (``?link=``) lets a caller see a
    #: compendium (the landing page, the download, a check job: o2r's "view, download, start
    #: jobs"), and whether such a use counts as one of the link
    link_methods: frozenset[str] = frozenset()
    counts_link_use = False
    #: the methods of this handler a review guest may use: those of what a link grants (its
    #: compendium, their own jobs of it); anything else is 403 for them
    guest_methods: frozenset[str] = frozenset()
    #: the review link the compendium of this request is seen through (None: none), and
    #: whether that link shows it blinded
    review_link: LinkRecord | None = None
    blinded = False

    async def visible_compendium(self, compendium_id: str) -> CompendiumRecord:
        """The compendium if it exists and the caller may see it, else 404.

        In :attr:`link_methods`, a logged-in caller with a review link in force for
        this compendium sees it too, blinded when the link is blind; a link revoked, expired
        or for another compendium is a 404 at once. Elsewhere the link is ignored.
        """
        record = await self.blocking(self.store.get_compendium, compendium_id)
        link_id = (
            self.get_query_argument(LINK_ARGUMENT, None)
            if self.request.method in self.link_methods
            else None
        )
        if record is not None and link_id is not None:
            return await self.through_link(record, link_id)
        if record is None or not self.can_see(record):
            raise web.HTTPError(404, f"compendium {compendium_id} not found")
        return record

    async def through_link(self, record: CompendiumRecord, link_id: str) -> CompendiumRecord:
        """The compendium as the review link ``link_id`` shows it to the caller (see
        :meth:`visible_compendium`); its author and erc admins see it as it is."""
        link = await self.blocking(links.granting_link, self.store, link_id, record.id, time.time())
        if link is None or not self.username:
            raise web.HTTPError(404, f"compendium {record.id} not found")
        if self.is_guest and not is_guest_of(self.username, link.id):
            raise web.HTTPError(404, f"compendium {record.id} not found")
        self.review_link = link
        if self.counts_link_use and self.username != link.user:
            # the author trying their own link is no use of it
            await self.blocking(self.store.count_link_use, link.id)
        if self.is_admin or record.user == self.username or link.mode != LinkMode.BLIND:
            return record
        self.blinded = True
        return links.blinded(record)

    # -- requests ----------------------------------------------------------------------------

    def json_body(self, schema: dict[str, Any] | None = None) -> Any:
        """The request's JSON body, validated against ``schema``; 400 naming what is wrong."""
        content_type = self.request.headers.get("Content-Type", "application/json")
        if not content_type.split(";")[0].strip().endswith("json"):
            raise web.HTTPError(400, f"expected a JSON body, got Content-Type {content_type}")
        try:
            body = jsonlimits.loads(self.body or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise web.HTTPError(400, f"malformed JSON body: {error}") from None
        except jsonlimits.TooDeep as error:
            raise web.HTTPError(400, f"JSON body: {error}") from None
        if schema is not None:
            problems = schema_problems(body, schema)
            if problems:
                raise web.HTTPError(400, "; ".join(problems))
        return body

    def form_body(self, kind: str) -> dict[str, str] | None:
        """The body as o2r's clients send some of them, a form (urlencoded or multipart): its
        fields as text, each given once, no files; None when the body is no form. 400 for a
        form that is malformed, has files, a field twice or text that is not UTF-8 (``kind``
        names what the form makes, for the message)."""
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip().lower() not in FORM_TYPES:
            return None
        arguments: dict[str, list[bytes]] = {}
        files: dict[str, list[httputil.HTTPFile]] = {}
        try:
            httputil.parse_body_arguments(content_type, self.body, arguments, files)
        except httputil.HTTPInputError as error:
            raise web.HTTPError(400, f"malformed form: {error}") from None
        if files:
            names = ", ".join(sorted(name[:40] for name in files)[:5])
            raise web.HTTPError(400, f"a {kind}'s form has fields, no files: {names}")
        form: dict[str, str] = {}
        for name, values in arguments.items():
            if len(values) > 1:
                raise web.HTTPError(400, f"{name[:40]}: a form field given more than once")
            try:
                form[name] = values[0].decode("utf-8")
            except UnicodeDecodeError:
                raise web.HTTPError(400, f"{name[:40]}: must be UTF-8 text") from None
        return form

    def check_arguments(self, allowed: Iterable[str] = ()) -> None:
        """400 for a query argument the endpoint does not know."""
        known = set(allowed) | set(AUTH_ARGUMENTS)
        unknown = sorted(set(self.request.query_arguments) - known)
        if unknown:
            names = ", ".join(name[:40] for name in unknown[:5])
            allowed_text = ", ".join(sorted(set(allowed))) or "none"
            raise web.HTTPError(400, f"unknown query argument: {names} (allowed: {allowed_text})")

    def text_argument(self, name: str) -> str | None:
        value = self.get_query_argument(name, None)
        if value is None:
            return None
        value = value.strip()
        if not value or len(value) > 256:
            raise web.HTTPError(400, f"{name} must be a non-empty string of at most 256 characters")
        return value

    def paging(self, default_limit: int = 100) -> tuple[int, int]:
        """``start`` and ``limit`` query arguments, checked."""
        start = self.int_argument("start", 0, minimum=0, maximum=MAX_START)
        limit = self.int_argument("limit", default_limit, minimum=1, maximum=MAX_PAGE)
        return start, limit

    def int_argument(
        self, name: str, default: int, *, minimum: int, maximum: int | None = None
    ) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise web.HTTPError(400, f"{name} must be an integer, got {raw!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum else f"at least {minimum}"
            raise web.HTTPError(400, f"{name} must be {bound}, got {value}")
        return value

    def bool_argument(self, name: str, default: bool) -> bool:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise web.HTTPError(400, f"{name} must be true or false, got {raw!r}")

    # -- responses ---------------------------------------------------------------------------

    async def send_file(self, root: Path, relative: str, shown: str | None = None) -> None:
        """Stream the file ``relative`` inside ``root`` with its content type (``shown``: the
        path as the client asked for it, in messages).

        400 for a path leading outside ``root``, 404 for a missing file or anything but a
        regular file (the file is opened without following a link, see
        :func:`erchub.safefs.open_file`). The files are the uploaders' content: see
        :func:`untrusted_content_headers`.
        """
        try:
            stream = await self.blocking(safefs.open_file, root, relative)
        except safefs.OutsideRoot as error:
            raise web.HTTPError(400, str(error)) from None
        except OSError:
            raise web.HTTPError(404, f"no file {shown or relative!r}") from None
        with stream:
            self.set_header("Content-Type", compendia.mime_type(PurePosixPath(relative).name))
            self.set_header("Content-Length", os.fstat(stream.fileno()).st_size)
            untrusted_content_headers(self)
            await self.stream_file(stream)

    async def stream_file(self, source: Path | BinaryIO) -> None:
        """Send the file at ``source`` (a path, or a file open for reading) as the body, chunk
        by chunk, and finish (headers are the caller's); a client that goes away ends it
        quietly."""
        chunks = compendia.read_chunks(source)
        try:
            while (chunk := await self.blocking(next, chunks, None)) is not None:
                self.write(chunk)
                await self.flush()
        except StreamClosedError:
            return
        finally:
            await self.blocking(chunks.close)
        self.finish()

    async def send_compendium(
        self, record: CompendiumRecord, archive_format: compendia.ArchiveFormat
    ) -> None:
        """Send a visible compendium as a download (:meth:`send_archive`) with its metadata's
        exports in ``.erc/`` (:func:`~erchub.services.exchange.citation.package_exports`);
        through a blind link (:attr:`blinded`), a snapshot of it with its ``.erc/`` metadata
        blinded, the exports made of the blinded metadata."""
        root = await self.compendium_files(record)
        exports = package_exports(await self.described(record, root))
        if not self.blinded:
            await self.send_archive(root, archive_format, record.id, exports)
            return
        snapshot = Path(self.service.data_dir) / BLIND_DIRECTORY / uuid.uuid4().hex
        try:
            await self.blocking(snapshot.parent.mkdir, parents=True, exist_ok=True)
            await self.blocking(link_tree, root, snapshot)
            await self.blocking(links.blind_files, snapshot, record.metadata)
            await self.send_archive(snapshot, archive_format, record.id, exports)
        finally:
            await self.blocking(safefs.remove_tree, snapshot)

    async def send_archive(
        self,
        root: Path,
        archive_format: compendia.ArchiveFormat,
        name: str,
        extra: dict[str, bytes] | None = None,
    ) -> None:
        """Send the files at ``root`` (and the made files ``extra``, path -> content) as a
        ``name``.zip or .tar.gz download, streamed as it is made, and finish; a client that
        goes away ends it quietly."""
        media_type = "application/zip" if archive_format == "zip" else "application/gzip"
        self.set_header("Content-Type", media_type)
        self.set_header("Content-Disposition", f'attachment; filename="{name}.{archive_format}"')
        stream = compendia.ArchiveStream(root, archive_format, name, extra)
        try:
            while (chunk := await self.blocking(stream.next_chunk)) is not None:
                self.write(chunk)
                await self.flush()
        except StreamClosedError:
            return
        finally:
            stream.close()
        self.finish()

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(body))

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        """The status of a domain error (see :func:`domain_status`), else ``status_code``."""
        exc_info = kwargs.get("exc_info")
        mapped = domain_status(exc_info[1]) if exc_info else None
        super().send_error(mapped or status_code, **kwargs)

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        """A domain error is the client's: one line at info, no traceback."""
        status = domain_status(value) if value is not None else None
        if status is None:
            super().log_exception(typ, value, tb)
            return
        # a full disk or a lost database is the operator's to fix: an error, one line
        level = self.log.error if status == 507 or type(value) is StoreError else self.log.info
        level("%d %s %s: %s", status, self.request.method, self.request.path, value)

    @staticmethod
    def error_message(status_code: int, exc_info: Any) -> str:
        """What the client is told: the HTTPError's message, else the status's phrase; never
        the details of an unexpected exception (those go to the log)."""
        try:
            message = HTTPStatus(status_code).phrase
        except ValueError:
            message = "error"
        if exc_info:
            error = exc_info[1]
            if isinstance(error, web.HTTPError) and error.log_message:
                message = error.log_message % error.args if error.args else error.log_message
            elif is_storage_full(error):
                message = STORAGE_FULL_MESSAGE
            elif type(error) is StoreError:
                message = STORE_UNAVAILABLE_MESSAGE
            elif domain_status(error) is not None:
                message = str(error)
            elif status_code >= 500:
                message = "internal error; the service log has the details"
        return message

    def close_after_error(self) -> None:
        """Say ``Connection: close`` when tornado closes the connection after this answer.

        Tornado closes a connection whose request was not read to its end when the answer is
        finished (``HTTP1Connection.finish``), but writes ``Connection: close`` only when it
        knew that before the headers went out, and it does not then. The handlers here stream
        their bodies (``@stream_request_body``), and tornado reads a streamed request's end only
        after ``prepare`` has returned: every answer given before that closes its connection,
        with a body or without. Such are 405 for a method no handler knows, 400 for a path
        argument that is not UTF-8, and refusals in ``prepare`` (404 of NotFoundHandler, 403 for
        a guest, an early 413). Unannounced, the close races with a proxy that keeps its
        connections: configurable-http-proxy's agent lends the connection to the next request,
        of any client, as soon as the answer has arrived, and answers that request 503 "socket
        hang up" when the close arrives first (README, "Security and reliability").
        """
        if not read_to_its_end(self.request):
            self.set_header("Connection", "close")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self.error_message(status_code, kwargs.get("exc_info"))
        self.close_after_error()
        self.clear_header("Content-Type")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        # o2r's clients read ``error`` (o2r's error model), erchub's ``status`` and ``message``
        self.finish(json.dumps({"status": status_code, "message": message, "error": message}))


#: the HTTP status of each kind of domain error; any other ErchubError is the request's fault
DOMAIN_STATUSES: tuple[tuple[type[ErchubError], int], ...] = (
    (NotFound, 404),
    (Forbidden, 403),
    (Conflict, 409),
    (Unavailable, 503),
)


def read_to_its_end(request: httputil.HTTPServerRequest) -> bool:
    """Whether tornado has read ``request`` to its end, body included. Tornado resolves a
    streamed request's body future when it has read the request (``_HandlerDelegate.finish``,
    which ``HTTP1Connection`` calls once reading is done); a request without one (every handler
    here streams) counts as not read: a needless ``Connection: close`` costs a new connection,
    a missing one a 503."""
    body_read = getattr(request, "_body_future", None)
    return body_read is not None and body_read.done()


def domain_status(error: BaseException) -> int | None:
    """The one place domain errors become HTTP statuses: None for anything that is not an
    :class:`~erchub.errors.ErchubError` (a bug: 500), but a full disk anywhere (507) and a
    store that cannot be reached (503); an error that names its own ``status`` (the loader's)
    keeps it."""
    if is_storage_full(error):
        return 507
    if type(error) is StoreError:  # the store cannot be reached (a database restarting)
        return 503
    if not isinstance(error, ErchubError):
        return None
    status = getattr(error, "status", None)
    if isinstance(status, int):
        return status
    for kind, code in DOMAIN_STATUSES:
        if isinstance(error, kind):
            return code
    return 400


def untrusted_content_headers(handler: web.RequestHandler) -> None:
    """Files of compendia and jobs are the uploaders' content: a browser must not run them with
    the hub's origin (an HTML file would otherwise read the service's cookies and API)."""
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("Content-Security-Policy", UNTRUSTED_CONTENT_POLICY)


def schema_problems(document: Any, schema: dict[str, Any]) -> list[str]:
    """Every way ``document`` breaks ``schema``, each naming its field: ``title: ...``."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path]
    )
    problems = []
    for error in errors[:MAX_PROBLEMS]:
        where = ".".join(str(part) for part in error.absolute_path) or "body"
        text = f"{where}: {_plain(error)}"
        if len(text) > MAX_PROBLEM_CHARS:
            text = text[: MAX_PROBLEM_CHARS - 3] + "..."
        problems.append(text)
    if len(errors) > MAX_PROBLEMS:
        problems.append(f"and {len(errors) - MAX_PROBLEMS} more problems")
    return problems


def _plain(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return "unknown field" + ("s " if len(extra) > 1 else " ") + ", ".join(extra)
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    return error.message


class NotFoundHandler(BaseHandler):
    """Anything under the API prefix that matches no route."""

    def prepare(self) -> None:  # type: ignore[override]
        raise web.HTTPError(404, f"no such resource: {self.request.path}")
