"""Compendia from cloud-folder shares over WebDAV (ownCloud, Nextcloud, Sciebo).

A ``share_url`` is a folder to walk over WebDAV, instead of an archive to download, when it is

- a public share link ``https://HOST[/PREFIX]/s/TOKEN`` (also ``.../index.php/s/TOKEN``):
  the share is read at its WebDAV endpoint ``https://HOST[/PREFIX]/public.php/webdav/`` with
  the token as user name and the share's ``password`` (if any): the ownCloud and Nextcloud
  convention; a share link's ``/download`` (a zip of the folder) stays an archive;
- any WebDAV folder URL sent with a ``user`` (and ``password``), e.g. Nextcloud's
  ``https://HOST/remote.php/dav/files/USER/FOLDER/``.

https only (plain http for loopback hosts alone: credentials go with every request). The tree
is walked with ``PROPFIND`` ``Depth: 1`` per folder (servers often refuse ``infinity``), each
file streamed to the load's folder with ``GET``, then the whole written as a zip archive below
one top-level folder, which takes the path of an upload (:mod:`.loading`; zip, not tar: a
Python without tarfile's extraction filters refuses tar archives, see :mod:`erchub.archive`).
A share of a single file is loaded as that file: an archive, else 400.

The loader's rules hold (:mod:`.loader`): every request, redirects included, goes to an
allowed host (403 before any connection otherwise), credentials only to the folder's origin;
at most ``loader_download_limit`` bytes in all (413; sizes the listings declare count before
anything is downloaded), ``loader_webdav_max_files`` files and folders (413) and
``loader_webdav_max_depth`` levels of folders (413); the whole walk within ``loader_timeout``
seconds (502). A wrong or missing password is 403; a share that is gone (an unknown token, a
removed folder) 404: when a share's WebDAV endpoint refuses the credentials (401), the share
link itself is asked whether the share exists. The password is never stored or logged: the
metadata's ``origin`` records the share_url (kind ``share_url``) and the WebDAV endpoint as
``url``.

The pure rules (the folder a request names, listings and their paths) come first and are
tested without I/O.
"""

from __future__ import annotations

import asyncio
import base64
import re
import unicodedata
import xml.etree.ElementTree as ElementTree
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from erchub.services.exchange.git import LOOPBACK_HOSTS
from erchub.services.exchange.loader import Loaded, Loader, Sink
from erchub.services.exchange.sources import (
    LoadError,
    Source,
    archive_content_type,
    check_url,
    origin_metadata,
)

#: a public share link: an optional prefix (an instance below a path), ``index.php``, the token
SHARE_LINK = re.compile(
    r"^(?P<prefix>(?:/[^/]+)*?)(?:/index\.php)?/s/(?P<token>[A-Za-z0-9_-]{1,64})/?$"
)
#: the WebDAV endpoint of public shares, below the instance's prefix
PUBLIC_WEBDAV = "/public.php/webdav/"
#: the largest PROPFIND answer read (about 50,000 entries): a bound for the XML parser too
MAX_LISTING_BYTES = 32 * 1024**2
#: what a listing asks for
PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:getcontentlength/></d:prop>'
    b"</d:propfind>"
)
DAV = "{DAV:}"
#: the one top-level folder of the archive the share is written to (so that the archive's
#: root is the share's content, whatever it holds)
TOP_FOLDER = "share"


# -- the request (pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class WebDavFolder:
    """A folder to load: its WebDAV URL (ending in ``/``), the credentials, and whether it is
    a public share (``share_url`` its link)."""

    url: str
    user: str
    password: str = field(repr=False)
    share_url: str
    public_share: bool


def share_endpoint(url: str) -> tuple[str, str] | None:
    """(WebDAV endpoint, token) of a public share link ``https://HOST[/PREFIX]/s/TOKEN`` (or
    ``.../index.php/s/TOKEN``), else None (also for a query or a fragment)."""
    parts = urlsplit(url)
    match = SHARE_LINK.match(parts.path)
    if match is None or parts.query or parts.fragment:
        return None
    endpoint = urlunsplit((parts.scheme, parts.netloc, match["prefix"] + PUBLIC_WEBDAV, "", ""))
    return endpoint, match["token"]


def webdav_folder(source: Source) -> WebDavFolder | None:
    """The WebDAV folder a ``share_url`` source names (a share link, or a URL with ``user``),
    else None (an archive's URL). LoadError 400 for a password without either, for plain
    http to a host that is not a loopback one, for a user with a share link, and for a folder
    URL with a query."""
    if source.kind != "share_url":
        return None
    shared = share_endpoint(source.value)
    if shared is None and source.user is None:
        if source.password is not None:
            raise LoadError(400, "password: only with a share link (/s/TOKEN) or with user")
        return None
    host = check_url(source.value, "share_url")
    parts = urlsplit(source.value)
    if parts.scheme != "https" and host not in LOOPBACK_HOSTS:
        raise LoadError(400, "share_url: a WebDAV folder must be an https URL")
    password = source.password or ""
    if shared is not None:
        if source.user is not None:
            raise LoadError(400, "user: not with a share link (its token is the user name)")
        endpoint, token = shared
        return WebDavFolder(endpoint, token, password, source.value, public_share=True)
    if parts.query or parts.fragment:
        raise LoadError(400, "share_url: a WebDAV folder URL has no query or fragment")
    url = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/", "", ""))
    return WebDavFolder(url, source.user or "", password, source.value, public_share=False)


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The ``Authorization`` header of HTTP Basic authentication (RFC 7617, UTF-8)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


# -- listings (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A member of a listed folder: its path below the share's root (``/``-separated, NFC),
    its URL, whether it is a folder, and the size it declares (None: not declared)."""

    path: str
    url: str
    folder: bool
    size: int | None


def parse_listing(body: bytes, folder_url: str, root_url: str) -> tuple[Entry | None, list[Entry]]:
    """The folder itself and its members from a ``PROPFIND`` ``Depth: 1`` answer (a
    ``multistatus``) for ``folder_url``, a folder below ``root_url`` (both ending in ``/``).
    LoadError 502 for an answer that is too large, no XML, declares a DOCTYPE or entities
    (XML bombs), or names anything but the folder's direct members (outside the share,
    ``..``, another host, a name twice)."""
    if len(body) > MAX_LISTING_BYTES:
        raise LoadError(502, f"the WebDAV listing is larger than {MAX_LISTING_BYTES} bytes")
    host = urlsplit(root_url).hostname or root_url[:60]
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise LoadError(502, f"{host} answered a WebDAV listing with a DOCTYPE, refused")
    try:
        tree = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise LoadError(502, f"{host} answered no WebDAV listing (no XML)") from None
    if tree.tag != f"{DAV}multistatus":
        raise LoadError(502, f"{host} answered no WebDAV listing (no multistatus)")
    parent = relative_path(folder_url, root_url, host)
    itself: Entry | None = None
    members: dict[str, Entry] = {}
    for response in tree.findall(f"{DAV}response"):
        href = response.findtext(f"{DAV}href")
        if not href:
            raise LoadError(502, f"{host} answered a WebDAV entry without href")
        url = urljoin(folder_url, href.strip())
        path = relative_path(url, root_url, host)
        props = _found_props(response)
        folder = props is not None and props.find(f"{DAV}resourcetype/{DAV}collection") is not None
        entry = Entry(path, url, folder, _size(props))
        if path == parent:
            itself = entry
            continue
        if path.rpartition("/")[0] != parent:
            raise LoadError(502, f"{host} listed {path!r}, which is no member of the folder")
        if path in members:
            raise LoadError(502, f"{host} listed {path!r} twice")
        members[path] = entry
    return itself, list(members.values())


def relative_path(url: str, root_url: str, host: str) -> str:
    """The path of ``url`` below ``root_url`` (empty for the root), decoded, NFC-normalised,
    without trailing ``/``; LoadError 502 for another origin, a path outside the root, or an
    unsafe name (``.``, ``..``, empty, a backslash or a control character)."""
    parts, root = urlsplit(url), urlsplit(root_url)
    same = (parts.scheme, parts.hostname, parts.port) == (root.scheme, root.hostname, root.port)
    root_path = unquote(root.path)
    path = unquote(parts.path)
    if not same or not (path + "/").startswith(root_path):
        raise LoadError(502, f"{host} listed {url[:200]!r}, outside the shared folder")
    rest = path[len(root_path) :].strip("/")
    if not rest:
        return ""
    names = [unicodedata.normalize("NFC", name) for name in rest.split("/")]
    for name in names:
        if name in ("", ".", "..") or "\\" in name or any(ord(c) < 32 or c == "\x7f" for c in name):
            raise LoadError(502, f"{host} listed an unsafe name: {rest[:200]!r}")
    return "/".join(names)


def _found_props(response: ElementTree.Element) -> ElementTree.Element | None:
    """The ``prop`` of a response's ``propstat`` with status 200, if any."""
    for propstat in response.findall(f"{DAV}propstat"):
        status = (propstat.findtext(f"{DAV}status") or "").split()
        if len(status) >= 2 and status[1] == "200":
            return propstat.find(f"{DAV}prop")
    return None


def _size(props: ElementTree.Element | None) -> int | None:
    text = (props.findtext(f"{DAV}getcontentlength") or "").strip() if props is not None else ""
    return int(text) if text.isdigit() else None


# -- walking and fetching (I/O: the loader's HTTP) ---------------------------------------------


@dataclass
class _Budget:
    """What the walk may still use: bytes (declared, then received) and entries."""

    bytes_left: int
    entries_left: int
    declared: int = 0


class WebDavLoader:
    """Loads a WebDAV folder with a :class:`.loader.Loader`'s HTTP (its host checks, limits
    and time-outs); the caller closes the loader."""

    def __init__(self, loader: Loader) -> None:
        self.loader = loader
        self.settings = loader.settings

    async def load(self, source: Source, folder: WebDavFolder, directory: Path) -> Loaded:
        """The folder written as a zip archive in ``directory`` (or the one file of a share
        of a file), within the loader's time-out."""
        self.loader.check_host(folder.url)
        timeout = self.settings.timeout
        try:
            return await asyncio.wait_for(self._load(source, folder, directory), timeout)
        except TimeoutError:
            host = urlsplit(folder.url).hostname
            raise LoadError(502, f"{host} did not answer within {timeout:g} s (time-out)") from None

    async def _load(self, source: Source, folder: WebDavFolder, directory: Path) -> Loaded:
        settings = self.settings
        budget = _Budget(settings.download_limit, settings.webdav_max_files)
        headers = basic_auth(folder.user, folder.password)
        metadata = origin_metadata(source, url=folder.url)
        itself, members = await self._list(folder, folder.url, headers)
        if itself is not None and not itself.folder:
            path = directory / "download"
            what = "the shared file"
            await self.loader.download(folder.url, path, what, headers=headers)
            return await self.loader.loaded(source, path, what, metadata)
        # the whole tree is listed first: its limits are checked before anything is read
        tree: list[Entry] = []
        pending = [(members, 1)]
        while pending:
            listed, depth = pending.pop()
            for entry in listed:
                self._count(budget, entry)
                tree.append(entry)
                if entry.folder:
                    if depth >= settings.webdav_max_depth:
                        raise LoadError(
                            413,
                            f"the folders nest deeper than {settings.webdav_max_depth} levels, "
                            "the loader's limit",
                        )
                    pending.append(((await self._list(folder, entry.url, headers))[1], depth + 1))
        files = directory / "files"
        files.mkdir()
        # a folder is listed before its members: parents are made first
        for entry in tree:
            target = files.joinpath(*entry.path.split("/"))
            if entry.folder:
                target.mkdir()
            else:
                await self._fetch(budget, entry, target, headers)
        archive = directory / f"{TOP_FOLDER}.zip"
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, _write_zip, files, archive)
        content_type = source.content_type
        if content_type is None:
            content_type = await loop.run_in_executor(None, archive_content_type, archive)
        self.loader.log.info(
            "loader: %d bytes of %d entries from %s",
            settings.download_limit - budget.bytes_left,
            settings.webdav_max_files - budget.entries_left,
            urlsplit(folder.url).hostname,
        )
        return Loaded(archive, content_type, metadata)

    def _count(self, budget: _Budget, entry: Entry) -> None:
        """One more entry, and the size it declares: 413 past a limit, before downloading."""
        budget.entries_left -= 1
        if budget.entries_left < 0:
            raise LoadError(
                413,
                f"the folder holds more than {self.settings.webdav_max_files} files and "
                "folders, the loader's limit",
            )
        budget.declared += entry.size or 0
        if budget.declared > self.settings.download_limit:
            raise self._too_large()

    def _too_large(self) -> LoadError:
        limit = self.settings.download_limit
        return LoadError(413, f"the folder holds more than the loader's limit of {limit} bytes")

    async def _list(
        self, folder: WebDavFolder, url: str, headers: Mapping[str, str]
    ) -> tuple[Entry | None, list[Entry]]:
        """The folder at ``url`` and its members (one ``PROPFIND``, ``Depth: 1``)."""
        sink = Sink(MAX_LISTING_BYTES)
        what = "the shared folder"
        try:
            answer = await self.loader.get(
                url,
                sink,
                what,
                method="PROPFIND",
                body=PROPFIND_BODY,
                headers={**headers, "Depth": "1", "Content-Type": "application/xml"},
                expected=207,
            )
        except LoadError as error:
            if error.status == 413:
                raise LoadError(
                    502, f"the WebDAV listing is larger than {MAX_LISTING_BYTES} bytes"
                ) from None
            raise
        finally:
            await sink.close()
        if answer.status != 207:
            raise await self._refused(folder, answer.status)
        return parse_listing(bytes(sink.memory), url, folder.url)

    async def _refused(self, folder: WebDavFolder, status: int) -> LoadError:
        """The error of a listing that the server refused with ``status``."""
        host = urlsplit(folder.url).hostname
        if status in (404, 410):
            return LoadError(404, f"the shared folder was not found ({host} answered {status})")
        if status not in (401, 403):
            return LoadError(502, f"{host} answered {status} to the WebDAV listing")
        if not folder.public_share:
            return LoadError(403, f"{host} refused the user name or password ({status})")
        if not await self._share_exists(folder):
            return LoadError(404, f"the share was not found, or was removed ({host})")
        if folder.password:
            return LoadError(403, f"the share's password is wrong ({host} answered {status})")
        return LoadError(403, "the share is protected by a password: send it as password")

    async def _share_exists(self, folder: WebDavFolder) -> bool:
        """Whether the share link's page is there (ownCloud and Nextcloud answer 404 for an
        unknown or removed share, and their WebDAV endpoint 401 for it)."""
        sink = Sink(MAX_LISTING_BYTES)  # a HEAD: nothing is received
        try:
            answer = await self.loader.get(folder.share_url, sink, "the share link", method="HEAD")
        finally:
            await sink.close()
        return answer.status not in (404, 410)

    async def _fetch(
        self, budget: _Budget, entry: Entry, target: Path, headers: Mapping[str, str]
    ) -> None:
        """Stream one file into ``target`` with the bytes left."""
        before = budget.bytes_left
        what = f"the shared file {entry.path}"
        try:
            await self.loader.download(
                entry.url, target, what, limit=budget.bytes_left, headers=headers
            )
        except LoadError as error:
            if error.status == 413:
                raise self._too_large() from None
            raise
        budget.bytes_left = before - target.stat().st_size


def _write_zip(files: Path, archive: Path) -> None:
    """The downloaded folder as a zip archive (stored, not compressed: it is unpacked at once)
    below :data:`TOP_FOLDER`, folders included, so that empty ones stay."""
    with zipfile.ZipFile(archive, "x", zipfile.ZIP_STORED) as bundle:
        for path in sorted(files.rglob("*")):
            bundle.write(path, f"{TOP_FOLDER}/{path.relative_to(files).as_posix()}")
