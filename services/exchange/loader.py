"""The loader (o2r's loader): compendia from public repositories and share links.

A load names its source in one of three ways:

``share_url``
    A URL of a zip or tar archive; or of a Zenodo record (``<zenodo>/records/<id>``, the older
    ``/record/<id>``, ``/api/records/<id>``, ``/doi/10.NNNN/zenodo.<id>``) of ``zenodo_url``
    or ``zenodo_sandbox_url``; or a DOI as a URL (``https://doi.org/<doi>``).
``doi``
    Resolved through the DOI handle API (``doi_resolver_url``) to its URL, which is then loaded
    as a share_url. A DOI of DataCite's test prefix 10.5072 that the resolver does not know
    (Zenodo sandbox DOIs are never registered) is looked up as ``10.5072/zenodo.<id>`` in the
    sandbox's records API.
``zenodo_record_id``
    A record of ``zenodo_url`` (of ``zenodo_sandbox_url`` with ``"sandbox": true``).

A record's file is chosen by :func:`choose_record_file`: the one named ``filename``, else the
record's only zip or tar archive. Downloads stream to a file below the data directory with
the size limit (``loader_download_limit``: 413 for a declared or actual size past it) and the
time-out (``loader_timeout``: 502); a record file's MD5 checksum is verified. Every URL the
loader requests, redirects included (followed by the loader, at most five), must have an
allowed host (``loader_allowed_hosts`` plus the hosts of the three configured URLs), else 403
``host is not allowed: <host>``. A download past the limit is stopped by raising
:class:`DownloadAborted` in tornado's callbacks (tornado's log of that is filtered out). The
archive then takes the path of an upload, as ``content_type`` (the request's, else
``compendium`` when the archive holds an erc.yml at its root, else ``workspace``).

Errors are :class:`LoadError` with an HTTP status and a message for the client: 400 for bad
input and content that is no zip or tar archive, 403 for a host not allowed or a restricted
record, 404 for an unknown DOI, record, file or URL, 413 for an oversized download, 502 for an
unreachable repository, a time-out or an error of the repository (its message quoted).

The pure parts (reading the request, URL and host rules, record file choice, the origin
recorded in the metadata, mapping a repository's errors) have no I/O; :class:`Loader` does the
HTTP with tornado's AsyncHTTPClient.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import hashlib
import json
import logging
import re
import tarfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol
from urllib.parse import quote, unquote, urljoin, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError

from erchub.archive import DEFAULT_LIMITS, is_archive
from erchub.erc import ERC_FILENAME
from erchub.errors import ErchubError

log = logging.getLogger(__name__)

SOURCE_FIELDS = ("share_url", "doi", "zenodo_record_id")
#: the JSON body of POST /compendium that loads (exactly one of SOURCE_FIELDS)
LOAD_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "share_url": {"type": "string", "minLength": 1, "maxLength": 4096},
        "doi": {"type": "string", "minLength": 1, "maxLength": 1024},
        "zenodo_record_id": {
            "type": ["integer", "string"],
            "minimum": 1,
            "pattern": r"^\d{1,18}$",
            "maximum": 10**18,
        },
        "sandbox": {"type": "boolean"},
        "filename": {"type": "string", "minLength": 1, "maxLength": 1000},
        "content_type": {"enum": ["workspace", "compendium"]},
    },
}
DOI_PATTERN = re.compile(r"^10\.\d{4,9}/\S{1,1000}$")
#: what precedes a DOI that is written as a URL or with its scheme
DOI_PREFIXES = re.compile(r"^(?:doi:|https?://(?:dx\.)?doi\.org/)", re.IGNORECASE)
#: DataCite's test prefix: the Zenodo sandbox's DOIs, never registered with the resolver
TEST_DOI = re.compile(r"^10\.5072/zenodo\.(\d+)$")
#: paths of a Zenodo record below a Zenodo base URL
RECORD_PATHS = (
    re.compile(r"^/records?/(\d+)/?$"),
    re.compile(r"^/api/records/(\d+)/?$"),
    re.compile(r"^/doi/10\.\d{4,9}/zenodo\.(\d+)/?$"),
)
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
#: hosts of the DOI system's resolver, whose URLs name a DOI in their path
RESOLVER_HOSTS = ("doi.org", "dx.doi.org", "www.doi.org")
DEFAULT_ALLOWED_HOSTS = ("zenodo.org", "www.zenodo.org", "sandbox.zenodo.org", "doi.org")
MAX_REDIRECTS = 5
#: seconds connecting may take at most (the request as a whole: loader_timeout)
CONNECT_TIMEOUT = 30.0
#: largest answer of a repository's API read (records, handles), and of an error's body kept
MAX_JSON_BYTES = 16 * 1024**2
MAX_ERROR_BYTES = 64 * 1024
#: characters of a repository's message quoted to the client
MAX_QUOTED_CHARS = 300
REDIRECT_CODES = (301, 302, 303, 307, 308)
USER_AGENT = "erchub-loader (+https://github.com/o2r-project)"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._+ -]")


class LoadError(ErchubError):
    """A load that cannot be done: ``status`` (the HTTP status the API answers) and a message
    for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class DownloadAborted(Exception):
    """Raised inside tornado's callbacks to stop a download (logged by nobody: see
    :class:`_QuietAborts`)."""


class _QuietAborts(logging.Filter):
    """tornado logs an exception raised in a request's callbacks as "Uncaught exception"; an
    abort of the loader is no error of the service."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, DownloadAborted)


logging.getLogger("tornado.application").addFilter(_QuietAborts())


# -- the request (pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """What to load: ``kind`` is one of SOURCE_FIELDS, ``value`` its (normalised) value."""

    kind: str
    value: str
    sandbox: bool = False
    filename: str | None = None
    #: workspace or compendium; None: compendium when the archive holds an erc.yml
    content_type: str | None = None


def parse_source(body: Mapping[str, Any]) -> Source:
    """The source of a load request (a body valid against LOAD_BODY_SCHEMA); LoadError 400
    unless it names exactly one source, and a valid one."""
    named = [name for name in SOURCE_FIELDS if name in body]
    if len(named) != 1:
        raise LoadError(400, "send exactly one of share_url, doi or zenodo_record_id")
    kind = named[0]
    raw = body[kind]
    if kind == "doi":
        doi = normalize_doi(str(raw))
        if doi is None:
            raise LoadError(400, f"doi: {str(raw)[:80]!r} is not a DOI (10.NNNN/suffix)")
        value = doi
    elif kind == "zenodo_record_id":
        value = str(int(raw))
    else:
        value = str(raw).strip()
        check_url(value, "share_url")
    if "sandbox" in body and kind != "zenodo_record_id":
        raise LoadError(400, "sandbox: only with zenodo_record_id")
    return Source(
        kind,
        value,
        sandbox=bool(body.get("sandbox", False)),
        filename=body.get("filename"),
        content_type=body.get("content_type"),
    )


def normalize_doi(text: str) -> str | None:
    """A DOI in lower case without ``doi:`` or ``https://doi.org/``, or None if ``text`` is no
    DOI."""
    doi = DOI_PREFIXES.sub("", text.strip()).strip().lower()
    return doi if DOI_PATTERN.match(doi) else None


def check_url(url: str, what: str = "URL") -> str:
    """The host of an http(s) URL without credentials; LoadError 400 otherwise."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise LoadError(400, f"{what}: not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise LoadError(400, f"{what}: must be an http or https URL")
    if parts.username is not None or parts.password is not None:
        raise LoadError(400, f"{what}: must not carry credentials")
    return host.lower()


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether ``host`` is in ``allowed`` (case-insensitive); an entry ``*.example.org`` allows
    every subdomain of example.org (not example.org itself)."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.strip().lower().rstrip(".")
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and host != entry[2:]:
                return True
        elif host == entry:
            return True
    return False


def _origin(url: str) -> tuple[str, str, str]:
    """(host:port, path prefix) of a base URL, ports made explicit."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return (parts.hostname or "").lower(), str(port), parts.path.rstrip("/")


def zenodo_record_of(url: str, bases: Sequence[str]) -> tuple[str, str] | None:
    """(base URL, record id) when ``url`` is a record page or API URL of one of ``bases``
    (Zenodo base URLs), else None; http and https count as the same site."""
    host, port, path = _origin(url)
    for base in bases:
        base_host, base_port, base_path = _origin(base)
        same_port = port == base_port or {port, base_port} == {"80", "443"}
        if host != base_host or not same_port or not path.startswith(base_path):
            continue
        rest = unquote(path[len(base_path) :]) or "/"
        for pattern in RECORD_PATHS:
            match = pattern.match(rest)
            if match:
                return base, match.group(1)
    return None


def doi_of_url(url: str) -> str | None:
    """The DOI of a DOI written as a URL of doi.org (``https://doi.org/10.5281/...``)."""
    parts = urlsplit(url)
    if (parts.hostname or "").lower() not in RESOLVER_HOSTS:
        return None
    return normalize_doi(unquote(parts.path).lstrip("/"))


def url_of_handle(answer: Any) -> str | None:
    """The URL value of a DOI handle API answer (``responseCode`` 1), else None."""
    if not isinstance(answer, dict) or answer.get("responseCode") != 1:
        return None
    values = answer.get("values")
    if not isinstance(values, list):
        return None
    urls = [
        value["data"]["value"]
        for value in values
        if isinstance(value, dict)
        and value.get("type") == "URL"
        and isinstance(value.get("data"), dict)
        and isinstance(value["data"].get("value"), str)
    ]
    return urls[0] if urls else None


def is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def choose_record_file(files: Any, filename: str | None, record: str) -> dict[str, Any]:
    """The file of a record's ``files`` (records API entries ``{key, size, checksum, links:
    {self}}``) to load: the one named ``filename``, else the only zip or tar archive."""
    entries = [
        entry
        for entry in (files if isinstance(files, list) else [])
        if isinstance(entry, dict)
        and isinstance(entry.get("key"), str)
        and isinstance((entry.get("links") or {}).get("self"), str)
    ]
    if not entries:
        raise LoadError(400, f"{record} has no files that can be downloaded")
    names = [entry["key"] for entry in entries]
    if filename is not None:
        for entry in entries:
            if entry["key"] == filename:
                return entry
        raise LoadError(404, f"{record} has no file {filename!r} (files: {_listing(names)})")
    archives = [entry for entry in entries if is_archive_name(entry["key"])]
    if len(archives) == 1:
        return archives[0]
    if not archives:
        raise LoadError(400, f"{record} holds no zip or tar archive (files: {_listing(names)})")
    raise LoadError(
        400,
        f"{record} holds several archives ({_listing([a['key'] for a in archives])}); "
        "name one with filename",
    )


def _listing(names: Sequence[str], shown: int = 10) -> str:
    text = ", ".join(names[:shown])
    return text + (f" and {len(names) - shown} more" if len(names) > shown else "")


def upstream_error(status: int, body: bytes, what: str, host: str) -> LoadError:
    """A repository's (or share host's) error answer as the loader's error: 404 and 410 are
    404, 401 and 403 are 403, anything else 502; the repository's own message is quoted."""
    message = _message_of(body) or _phrase(status)
    if status in (404, 410):
        gone = "was removed" if status == 410 else "was not found"
        return LoadError(404, f"{what} {gone} ({host} answered {status}: {message})")
    if status in (401, 403):
        return LoadError(403, f"{what} is not public ({host} answered {status}: {message})")
    if status == 429:
        return LoadError(502, f"{host} limits the rate of requests (429); try again later")
    return LoadError(502, f"{host} answered {status} for {what}: {message}")


def _message_of(body: bytes) -> str:
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    message = answer.get("message") if isinstance(answer, dict) else None
    if not isinstance(message, str):
        return ""
    message = " ".join(message.split())
    errors = answer.get("errors")
    if isinstance(errors, list):
        fields = [e.get("field") for e in errors if isinstance(e, dict) and e.get("field")]
        if fields:
            message += " (" + ", ".join(str(f) for f in fields[:5]) + ")"
    return message[:MAX_QUOTED_CHARS]


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def holds_erc(names: Iterable[str]) -> bool:
    """Whether archive member ``names`` put an erc.yml at the compendium's root, as
    :func:`erchub.archive.extract_archive` finds that root (the single top-level folder, the
    payload ``data/`` of a BagIt bag)."""
    paths = set()
    for name in names:
        path = PurePosixPath(name.replace("\\", "/").lstrip("/"))
        parts = [p for p in path.parts if p not in (".", "")]
        if parts and parts[0] != "__MACOSX":
            paths.add("/".join(parts))
    tops = {path.split("/", 1)[0] for path in paths}
    prefix = ""
    if len(tops) == 1:
        (top,) = tops
        if any(path.startswith(top + "/") for path in paths):
            prefix = top + "/"
    if prefix + "bagit.txt" in paths and any(p.startswith(prefix + "data/") for p in paths):
        prefix += "data/"
    return prefix + ERC_FILENAME in paths


def archive_content_type(path: Path) -> str:
    """``compendium`` when the archive at ``path`` holds an erc.yml at its root, else
    ``workspace`` (also for what is no readable archive: extraction then says what is
    wrong). Reads member names only, at most as many as the extraction limits allow."""
    limit = DEFAULT_LIMITS.max_members
    names: list[str] = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()[:limit]
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as archive:
                for member in archive:
                    names.append(member.name)
                    if len(names) >= limit:
                        break
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, ValueError):
        return "workspace"
    return "compendium" if holds_erc(names) else "workspace"


def safe_name(name: str, fallback: str = "download") -> str:
    """A file name from a URL path or a record's key, for the downloaded file."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("_", unquote(name)).strip().lstrip(".")
    return name[:100] or fallback


def origin_metadata(
    source: Source,
    *,
    url: str,
    record_url: str | None = None,
    record_doi: str | None = None,
    file: str | None = None,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The metadata a load adds: ``origin`` (how it was loaded) and, for a DOI or a record
    with one, ``identifier.doi`` (the DOI asked for wins over the record's own)."""
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    origin: dict[str, Any] = {
        "kind": source.kind,
        source.kind: source.value,
        "url": url,
        "loaded": moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    if record_url:
        origin["record_url"] = record_url
    if file:
        origin["file"] = file
    added: dict[str, Any] = {"origin": origin}
    doi = source.value if source.kind == "doi" else normalize_doi(record_doi or "")
    if doi:
        added["identifier"] = {"doi": doi, "doiurl": f"https://doi.org/{doi}"}
    return added


# -- the HTTP edge ----------------------------------------------------------------------------


class ServiceSettings(Protocol):
    zenodo_url: str
    zenodo_sandbox_url: str
    doi_resolver_url: str
    loader_allowed_hosts: list[str]
    loader_download_limit: int
    loader_timeout: float


@dataclass(frozen=True)
class LoaderSettings:
    zenodo_url: str = "https://zenodo.org"
    zenodo_sandbox_url: str = "https://sandbox.zenodo.org"
    doi_resolver_url: str = "https://doi.org/api/handles/"
    allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
    download_limit: int = 2 * 1024**3
    timeout: float = 600.0

    @classmethod
    def of(cls, service: ServiceSettings) -> LoaderSettings:
        """The settings of the erc service (its traits)."""
        return cls(
            zenodo_url=service.zenodo_url.rstrip("/"),
            zenodo_sandbox_url=service.zenodo_sandbox_url.rstrip("/"),
            doi_resolver_url=service.doi_resolver_url,
            allowed_hosts=tuple(service.loader_allowed_hosts),
            download_limit=int(service.loader_download_limit),
            timeout=float(service.loader_timeout),
        )

    @property
    def zenodo_bases(self) -> tuple[str, str]:
        return self.zenodo_url, self.zenodo_sandbox_url

    def allows(self, host: str) -> bool:
        """Allowed: the configured hosts, and those of the configured services."""
        configured = [
            urlsplit(url).hostname or ""
            for url in (self.zenodo_url, self.zenodo_sandbox_url, self.doi_resolver_url)
        ]
        return host_allowed(host, [*self.allowed_hosts, *configured])


@dataclass
class Loaded:
    """A downloaded archive and what the compendium's metadata records of its origin."""

    archive: Path
    content_type: str
    metadata: dict[str, Any]


@dataclass
class _Answer:
    status: int = 0
    declared: int | None = None
    location: str | None = None
    error_body: bytearray = field(default_factory=bytearray)


class _Sink:
    """Where a 200 answer's body goes: memory (API answers) or a file (downloads), with a
    limit; writes to the file run in a private one-thread executor, in order."""

    def __init__(self, limit: int, file: IO[bytes] | None = None) -> None:
        self.limit = limit
        self.file = file
        self.memory = bytearray()
        self.size = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.over_limit = False
        self._writer = concurrent.futures.ThreadPoolExecutor(1, "erchub-loader")
        self._last: asyncio.Future[None] | None = None

    def add(self, chunk: bytes) -> asyncio.Future[None] | None:
        self.size += len(chunk)
        if self.size > self.limit:
            self.over_limit = True
            raise DownloadAborted(f"larger than {self.limit} bytes")
        if self.file is None:
            self.memory += chunk
            return None
        self._last = asyncio.get_running_loop().run_in_executor(self._writer, self._write, chunk)
        return self._last

    def _write(self, chunk: bytes) -> None:
        assert self.file is not None
        self.file.write(chunk)
        self.md5.update(chunk)

    async def close(self) -> None:
        if self._last is not None:
            await asyncio.gather(self._last, return_exceptions=True)
        self._writer.shutdown(wait=True)


class Loader:
    """Loads one source into ``directory`` (a private temporary directory of the caller)."""

    def __init__(self, settings: LoaderSettings, logger: logging.Logger | None = None) -> None:
        self.settings = settings
        self.log = logger or log
        self.client = AsyncHTTPClient(force_instance=True, max_body_size=2**62)

    def close(self) -> None:
        self.client.close()

    async def load(self, source: Source, directory: Path) -> Loaded:
        settings = self.settings
        if source.kind == "zenodo_record_id":
            base = settings.zenodo_sandbox_url if source.sandbox else settings.zenodo_url
            return await self.load_record(source, base, source.value, directory)
        if source.kind == "doi":
            return await self.load_doi(source, source.value, directory)
        url = source.value
        # a DOI written as a URL goes through the handle API, not to doi.org's pages
        doi = doi_of_url(url)
        if doi is not None:
            return await self.load_doi(source, doi, directory)
        self.check_host(url)
        return await self.load_url(source, url, directory)

    async def load_url(self, source: Source, url: str, directory: Path) -> Loaded:
        """A URL: a Zenodo record's page or API URL, else the archive itself."""
        record = zenodo_record_of(url, self.settings.zenodo_bases)
        if record is not None:
            return await self.load_record(source, record[0], record[1], directory)
        path = directory / safe_name(urlsplit(url).path)
        what = "the share_url" if source.kind == "share_url" else f"the URL of DOI {source.value}"
        final_url = await self.download(url, path, what)
        return await self.loaded(source, path, what, origin_metadata(source, url=final_url))

    async def load_doi(self, source: Source, doi: str, directory: Path) -> Loaded:
        resolver = self.settings.doi_resolver_url
        status, answer = await self.get_json(resolver + quote(doi, safe="/"), f"DOI {doi}")
        target = url_of_handle(answer) if status == 200 else None
        unknown = isinstance(answer, dict) and answer.get("responseCode") == 100
        if status == 404 or (status == 200 and unknown):
            sandbox = TEST_DOI.match(doi)
            if sandbox:
                base = self.settings.zenodo_sandbox_url
                return await self.load_record(source, base, sandbox.group(1), directory)
            raise LoadError(404, f"DOI {doi} is not registered ({_host(resolver)})")
        if status != 200:
            raise upstream_error(status, json.dumps(answer).encode(), f"DOI {doi}", _host(resolver))
        if target is None:
            raise LoadError(502, f"{_host(resolver)} gave no URL for DOI {doi}")
        try:
            check_url(target)
        except LoadError:
            raise LoadError(502, f"DOI {doi} resolves to no http(s) URL") from None
        self.check_host(target, f"DOI {doi} resolves to it")
        return await self.load_url(source, target, directory)

    async def load_record(
        self, source: Source, base: str, record_id: str, directory: Path
    ) -> Loaded:
        what = f"record {record_id}"
        api = f"{base}/api/records/{record_id}"
        status, record = await self.get_json(api, what)
        if status != 200:
            raise upstream_error(status, json.dumps(record).encode(), what, _host(api))
        if not isinstance(record, dict):
            raise LoadError(502, f"{_host(api)} answered no record for {what}")
        entry = choose_record_file(record.get("files"), source.filename, what)
        key = entry["key"]
        size = entry.get("size")
        limit = self.settings.download_limit
        if isinstance(size, int) and size > limit:
            raise LoadError(
                413,
                f"{key} of {what} has {size} bytes, more than the loader's limit of {limit} bytes",
            )
        url = urljoin(api, entry["links"]["self"])
        self.check_host(url, f"the file {key} of {what} is there")
        path = directory / safe_name(key)
        what = f"{key} of {what}"
        await self.download(url, path, what, checksum=entry.get("checksum"))
        doi = record.get("doi")
        metadata = origin_metadata(
            source,
            url=url,
            record_url=f"{base}/records/{record_id}",
            record_doi=doi if isinstance(doi, str) else None,
            file=key,
        )
        return await self.loaded(source, path, what, metadata)

    async def loaded(
        self, source: Source, path: Path, what: str, metadata: dict[str, Any]
    ) -> Loaded:
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, is_archive, path):
            raise LoadError(400, f"{what} is no zip or tar archive")
        content_type = source.content_type
        if content_type is None:
            content_type = await loop.run_in_executor(None, archive_content_type, path)
        return Loaded(path, content_type, metadata)

    # -- HTTP ------------------------------------------------------------------------------

    def check_host(self, url: str, context: str = "") -> None:
        """LoadError 403 ``host is not allowed: <host> (<context>)`` unless allowed."""
        host = check_url(url)
        if not self.settings.allows(host):
            detail = f" ({context})" if context else ""
            raise LoadError(403, f"host is not allowed: {host}{detail}")

    async def get_json(self, url: str, what: str) -> tuple[int, Any]:
        """Status and parsed JSON (None when not JSON) of a GET of an API."""
        sink = _Sink(MAX_JSON_BYTES)
        try:
            answer = await self.get(url, sink, what)
        finally:
            await sink.close()
        body = bytes(sink.memory) if answer.status == 200 else bytes(answer.error_body)
        try:
            return answer.status, json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError):
            if answer.status == 200:
                raise LoadError(502, f"{_host(url)} answered no JSON for {what}") from None
            return answer.status, None

    async def download(self, url: str, path: Path, what: str, checksum: Any = None) -> str:
        """Stream ``url`` into ``path``; the URL finally read (after redirects)."""
        loop = asyncio.get_running_loop()
        file = await loop.run_in_executor(None, open, path, "xb")
        sink = _Sink(self.settings.download_limit, file)
        try:
            answer = await self.get(url, sink, what)
        finally:
            await sink.close()
            await loop.run_in_executor(None, file.close)
        if answer.status != 200:
            raise upstream_error(answer.status, bytes(answer.error_body), what, _host(url))
        expected = checksum[4:].lower() if str(checksum).startswith("md5:") else None
        if expected and sink.md5.hexdigest() != expected:
            raise LoadError(502, f"{what}: the download does not match its MD5 checksum")
        self.log.info("loader: %d bytes of %s from %s", sink.size, what, _host(url))
        return answer.location or url

    async def get(self, url: str, sink: _Sink, what: str) -> _Answer:
        """GET ``url``, following at most MAX_REDIRECTS redirects whose hosts are allowed; a
        200 body goes to ``sink``. ``answer.location`` is the URL finally read."""
        for attempt in range(MAX_REDIRECTS + 1):
            self.check_host(url, f"{what} redirects there" if attempt else "")
            answer = await self._get_once(url, sink, what)
            if answer.status in REDIRECT_CODES:
                if not answer.location:
                    raise LoadError(502, f"{_host(url)} redirects {what} nowhere")
                url = urljoin(url, answer.location)
                continue
            answer.location = url
            return answer
        raise LoadError(502, f"{what}: more than {MAX_REDIRECTS} redirects")

    async def _get_once(self, url: str, sink: _Sink, what: str) -> _Answer:
        answer = _Answer()
        limit = sink.limit

        def on_header(line: str) -> None:
            if not answer.status and line.startswith("HTTP/"):
                answer.status = int(line.split()[1])
                return
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "location":
                answer.location = value.strip()
            elif name == "content-length" and value.strip().isdigit():
                answer.declared = int(value.strip())
                if answer.status == 200 and answer.declared > limit:
                    sink.over_limit = True
                    raise DownloadAborted(f"declares {answer.declared} bytes")

        def on_chunk(chunk: bytes) -> asyncio.Future[None] | None:
            if answer.status == 200:
                return sink.add(chunk)
            if len(answer.error_body) < MAX_ERROR_BYTES:
                answer.error_body += chunk[: MAX_ERROR_BYTES - len(answer.error_body)]
            return None

        timeout = self.settings.timeout
        request = HTTPRequest(
            url,
            method="GET",
            headers={"User-Agent": USER_AGENT, "Accept": "application/json, */*"},
            follow_redirects=False,
            connect_timeout=min(timeout, CONNECT_TIMEOUT),
            request_timeout=timeout,
            header_callback=on_header,
            streaming_callback=on_chunk,
            decompress_response=True,
        )
        host = _host(url)
        try:
            await self.client.fetch(request, raise_error=False)
        except HTTPClientError as error:
            if sink.over_limit:
                raise self.too_large(what, answer.declared, sink.limit) from None
            if error.code == 599 and "timeout" in str(error).lower():
                raise LoadError(
                    502, f"{host} did not answer {what} within {timeout:g} s (time-out)"
                ) from None
            raise LoadError(502, f"{host} broke off {what}: {error.message}") from None
        except (OSError, StreamClosedError) as error:
            if sink.over_limit:
                raise self.too_large(what, answer.declared, sink.limit) from None
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise LoadError(502, f"cannot reach {host} for {what}: {reason}") from None
        except DownloadAborted:
            raise self.too_large(what, answer.declared, sink.limit) from None
        if sink.over_limit:
            raise self.too_large(what, answer.declared, sink.limit)
        return answer

    @staticmethod
    def too_large(what: str, declared: int | None, limit: int) -> LoadError:
        size = f" ({declared} bytes)" if declared is not None and declared > limit else ""
        return LoadError(413, f"{what}{size} is larger than the loader's limit of {limit} bytes")


def _host(url: str) -> str:
    return urlsplit(url).hostname or url[:60]
