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

A record's file is chosen by :func:`.sources.choose_record_file`: the one named ``filename``,
else the record's only zip or tar archive. Downloads stream to a file below the data directory with
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
recorded in the metadata, mapping a repository's errors, the settings) are in :mod:`.sources`,
without I/O; :class:`Loader` here does the HTTP with tornado's AsyncHTTPClient.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urljoin, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError

from erchub.archive import is_archive
from erchub.services.exchange.sources import (
    LoadError,
    LoaderSettings,
    Source,
    archive_content_type,
    check_url,
    choose_record_file,
    doi_of_url,
    origin_metadata,
    safe_name,
    upstream_error,
    url_of_handle,
    zenodo_record_of,
)

log = logging.getLogger(__name__)

#: DataCite's test prefix: the Zenodo sandbox's DOIs, never registered with the resolver
TEST_DOI = re.compile(r"^10\.5072/zenodo\.(\d+)$")
MAX_REDIRECTS = 5
#: seconds connecting may take at most (the request as a whole: loader_timeout)
CONNECT_TIMEOUT = 30.0
#: largest answer of a repository's API read (records, handles), and of an error's body kept
MAX_JSON_BYTES = 16 * 1024**2
MAX_ERROR_BYTES = 64 * 1024
REDIRECT_CODES = (301, 302, 303, 307, 308)
USER_AGENT = "erchub-loader (+https://github.com/o2r-project)"


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


class Sink:
    """Where an expected answer's body goes: memory (API answers) or a file (downloads), with a
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
        sink = Sink(MAX_JSON_BYTES)
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

    async def download(
        self,
        url: str,
        path: Path,
        what: str,
        checksum: Any = None,
        *,
        limit: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Stream ``url`` into ``path`` (at most ``limit`` bytes, by default the download
        limit); the URL finally read (after redirects)."""
        loop = asyncio.get_running_loop()
        file = await loop.run_in_executor(None, open, path, "xb")
        sink = Sink(self.settings.download_limit if limit is None else limit, file)
        try:
            answer = await self.get(url, sink, what, headers=headers)
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

    async def get(
        self,
        url: str,
        sink: Sink,
        what: str,
        *,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        expected: int = 200,
    ) -> _Answer:
        """GET ``url`` (or another ``method`` with ``body``), following at most MAX_REDIRECTS
        redirects whose hosts are allowed; the body of an ``expected`` answer goes to
        ``sink``. ``answer.location`` is the URL finally read. An ``Authorization`` header is
        sent to the first URL's origin alone: a redirect elsewhere gets no credentials."""
        sent = dict(headers or {})
        first = _origin_of(url)
        for attempt in range(MAX_REDIRECTS + 1):
            self.check_host(url, f"{what} redirects there" if attempt else "")
            if _origin_of(url) != first:
                sent.pop("Authorization", None)
            answer = await self._get_once(url, sink, what, method, body, sent, expected)
            if answer.status in REDIRECT_CODES:
                if not answer.location:
                    raise LoadError(502, f"{_host(url)} redirects {what} nowhere")
                url = urljoin(url, answer.location)
                continue
            answer.location = url
            return answer
        raise LoadError(502, f"{what}: more than {MAX_REDIRECTS} redirects")

    async def _get_once(
        self,
        url: str,
        sink: Sink,
        what: str,
        method: str,
        body: bytes | None,
        headers: Mapping[str, str],
        expected: int,
    ) -> _Answer:
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
                if answer.status == expected and answer.declared > limit:
                    sink.over_limit = True
                    raise DownloadAborted(f"declares {answer.declared} bytes")

        def on_chunk(chunk: bytes) -> asyncio.Future[None] | None:
            if answer.status == expected:
                return sink.add(chunk)
            if len(answer.error_body) < MAX_ERROR_BYTES:
                answer.error_body += chunk[: MAX_ERROR_BYTES - len(answer.error_body)]
            return None

        timeout = self.settings.timeout
        request = HTTPRequest(
            url,
            method=method,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json, */*", **headers},
            body=body,
            allow_nonstandard_methods=method != "GET",
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


def _origin_of(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port of ``url``: where credentials sent to it may go."""
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
