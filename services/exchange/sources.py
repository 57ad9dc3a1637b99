"""The loader's rules, without I/O (o2r's loader; :mod:`.loader` does the HTTP): a load
request's source (:func:`parse_source`), the DOI, URL and host rules, a Zenodo record's URL and
the file of it to load, a repository's error answers as :class:`LoadError`, the content type of
a downloaded archive, the origin recorded in the metadata, and the loader's settings.
"""

from __future__ import annotations

import datetime
import json
import re
import tarfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from erchub.archive import DEFAULT_LIMITS
from erchub.erc import ERC_FILENAME
from erchub.errors import ErchubError

SOURCE_FIELDS = ("share_url", "doi", "zenodo_record_id", "git_url")
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
        "git_url": {"type": "string", "minLength": 1, "maxLength": 4096},
        "ref": {"type": "string", "minLength": 1, "maxLength": 255},
        # a share_url's WebDAV credentials (:mod:`.webdav`); never stored or logged
        "user": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^:]*$"},
        "password": {"type": "string", "minLength": 1, "maxLength": 1024},
    },
}
DOI_PATTERN = re.compile(r"^10\.\d{4,9}/\S{1,1000}$")
#: what precedes a DOI that is written as a URL or with its scheme
DOI_PREFIXES = re.compile(r"^(?:doi:|https?://(?:dx\.)?doi\.org/)", re.IGNORECASE)
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
#: the short forms of git launch links (``launch/gh/ORG/REPO/REF``, as Binder's ``/v2/gh/``)
DEFAULT_GIT_HOSTS = {
    "gh": "https://github.com/{org}/{repo}.git",
    "gl": "https://gitlab.com/{org}/{repo}.git",
    "cb": "https://codeberg.org/{org}/{repo}.git",
}
#: characters of a repository's message quoted to the client
MAX_QUOTED_CHARS = 300
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._+ -]")


class LoadError(ErchubError):
    """A load that cannot be done: ``status`` (the HTTP status the API answers) and a message
    for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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
    #: a git_url's branch, tag or commit SHA (None: the default branch)
    ref: str | None = None
    #: a share_url's WebDAV user name and password (:mod:`.webdav`); the password is never shown
    user: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_source(body: Mapping[str, Any]) -> Source:
    """The source of a load request (a body valid against LOAD_BODY_SCHEMA); LoadError 400
    unless it names exactly one source, and a valid one."""
    named = [name for name in SOURCE_FIELDS if name in body]
    if len(named) != 1:
        raise LoadError(400, "send exactly one of share_url, doi, zenodo_record_id or git_url")
    kind = named[0]
    raw = body[kind]
    if kind == "doi":
        doi = normalize_doi(str(raw))
        if doi is None:
            raise LoadError(400, f"doi: {str(raw)[:80]!r} is not a DOI (10.NNNN/suffix)")
        value = doi
    elif kind == "zenodo_record_id":
        value = str(int(raw))
    elif kind == "git_url":
        # the git rules (https, the ref) are checked by the git fetcher (.git)
        value = str(raw).strip()
        check_url(value, "git_url")
    else:
        value = str(raw).strip()
        check_url(value, "share_url")
    if "sandbox" in body and kind != "zenodo_record_id":
        raise LoadError(400, "sandbox: only with zenodo_record_id")
    if "ref" in body and kind != "git_url":
        raise LoadError(400, "ref: only with git_url")
    if "filename" in body and kind == "git_url":
        raise LoadError(400, "filename: not with git_url")
    for credential in ("user", "password"):
        if credential in body and kind != "share_url":
            raise LoadError(400, f"{credential}: only with share_url")
    return Source(
        kind,
        value,
        sandbox=bool(body.get("sandbox", False)),
        filename=body.get("filename"),
        content_type=body.get("content_type"),
        ref=body.get("ref"),
        user=body.get("user"),
        password=body.get("password"),
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


# -- settings ----------------------------------------------------------------------------------


class ServiceSettings(Protocol):
    zenodo_url: str
    zenodo_sandbox_url: str
    doi_resolver_url: str
    loader_allowed_hosts: list[str]
    loader_download_limit: int
    loader_timeout: float
    loader_git_hosts: dict[str, str]
    loader_git_max_files: int
    loader_git_submodules: bool
    loader_webdav_max_files: int
    loader_webdav_max_depth: int


@dataclass(frozen=True)
class LoaderSettings:
    zenodo_url: str = "https://zenodo.org"
    zenodo_sandbox_url: str = "https://sandbox.zenodo.org"
    doi_resolver_url: str = "https://doi.org/api/handles/"
    allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
    download_limit: int = 2 * 1024**3
    timeout: float = 600.0
    #: short forms of git launch links: prefix -> URL template with {org} and {repo}
    git_hosts: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_GIT_HOSTS))
    git_max_files: int = 50_000
    git_submodules: bool = False
    #: files and folders of a WebDAV folder, and its levels of folders (:mod:`.webdav`)
    webdav_max_files: int = 50_000
    webdav_max_depth: int = 32

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
            git_hosts=dict(service.loader_git_hosts),
            git_max_files=int(service.loader_git_max_files),
            git_submodules=bool(service.loader_git_submodules),
            webdav_max_files=int(service.loader_webdav_max_files),
            webdav_max_depth=int(service.loader_webdav_max_depth),
        )

    @property
    def zenodo_bases(self) -> tuple[str, str]:
        return self.zenodo_url, self.zenodo_sandbox_url

    def allows(self, host: str) -> bool:
        """Allowed: the configured hosts, and those of the configured services and git hosts
        (of the short forms of launch links)."""
        services = (self.zenodo_url, self.zenodo_sandbox_url, self.doi_resolver_url)
        configured = [urlsplit(url).hostname or "" for url in (*services, *self.git_hosts.values())]
        return host_allowed(host, [*self.allowed_hosts, *configured])
