"""Compendia from git repositories (Binder's way in): a repository URL and a ref.

A load names ``git_url`` (``https://HOST/ORG/REPO`` or ``.../REPO.git``) and optionally ``ref``
(a branch, a tag or a full 40-character commit SHA; default ``HEAD``, the default branch).
The ref is resolved to a commit first (:meth:`GitFetcher.resolve`: one ``ls-refs`` request,
git's own order of names: ``refs/NAME``, ``refs/tags/NAME``, ``refs/heads/NAME``; an annotated
tag is peeled to its commit), so that the caller can reuse a compendium of that commit
before anything is downloaded. :meth:`GitFetcher.fetch` then fetches that commit alone,
shallow (depth 1), with dulwich's smart-HTTP client in a thread of its own, and writes its
tree as a tar archive below one top-level folder, which takes the path of an upload.

Rules (the loader's, :mod:`.loader`): every request, redirects included, goes to an allowed
host (403 before the host is contacted otherwise); ``https`` only, plain ``http`` for
loopback hosts alone (a forge on the same machine, the tests' servers); at most
``loader_download_limit`` bytes of pack data (413) and ``git_max_files`` files (413); each of
the two steps within ``loader_timeout`` seconds (502). A tree with submodules is refused
(400, naming them) unless ``git_submodules`` allows them: then each submodule's commit is
fetched the same way from the URL ``.gitmodules`` gives (relative URLs against the
repository's), at most :data:`MAX_SUBMODULE_DEPTH` levels deep, within the same limits. Git
LFS pointer files are refused (400, naming them): the loader does not fetch LFS objects, and
a compendium of pointers would run on placeholders.

The pure rules (URL, ref, short forms of launch links, ref resolution, LFS pointers,
``.gitmodules``, the origin recorded) come first and are tested without I/O.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import io
import logging
import re
import stat
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import urllib3
from dulwich.client import HTTPUnauthorized, Urllib3HttpGitClient
from dulwich.config import ConfigFile, parse_submodules
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.object_store import BaseObjectStore, MaxTreeDepthExceeded
from dulwich.objects import S_ISGITLINK, Blob, Commit, ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo

from erchub.services.exchange.o2r import FULL_SHA, GIT_KIND
from erchub.services.exchange.sources import (
    MAX_QUOTED_CHARS,
    LoadError,
    LoaderSettings,
    archive_content_type,
    check_url,
)

log = logging.getLogger(__name__)

#: the ref loaded when none is named: the repository's default branch
DEFAULT_REF = "HEAD"
#: what looks like an abbreviated SHA, which only a clone of the whole history could resolve
_SHORT_SHA = re.compile(r"^[0-9a-fA-F]{4,39}$")
#: what git's check-ref-format refuses, and more than a ref in a URL needs
_BAD_REF = re.compile(r"(^[/.-])|(\.\.)|(@\{)|([\x00-\x20\x7f~^:?*\[\\])|(/$)|(\.lock$)|(//)")
MAX_REF_CHARS = 255
#: ORG and REPO of a launch link's short form (GitLab subgroups: ORG is ``group/sub``)
_PATH_PART = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*(/[A-Za-z0-9_.][A-Za-z0-9_.-]*)*$")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
#: how a Git LFS pointer file begins (the LFS specification), and its largest size
LFS_POINTER_START = b"version https://git-lfs.github.com/spec/"
MAX_LFS_POINTER = 1024
#: submodules of submodules of ..., at most this deep
MAX_SUBMODULE_DEPTH = 3
#: seconds to connect, at most, of a step's time
CONNECT_TIMEOUT = 30.0
#: seconds the event loop waits past the time-out for the fetching thread to give up itself
STOP_GRACE = 2.0
#: names shown in a message before "and N more"
NAMES_SHOWN = 10
USER_AGENT = "erchub-loader (git)"


# -- the request (pure) ------------------------------------------------------------------------


def check_git_url(url: str) -> str:
    """The repository URL to fetch from (trailing slashes dropped); LoadError 400 unless it is
    an https URL (http for a loopback host) without credentials, query or fragment, with a
    path."""
    url = url.strip()
    host = check_url(url, "git_url")
    parts = urlsplit(url)
    if parts.scheme != "https" and host not in LOOPBACK_HOSTS:
        raise LoadError(400, "git_url: must be an https URL")
    if parts.query or parts.fragment:
        raise LoadError(400, "git_url: must have no query or fragment")
    if not parts.path.strip("/"):
        raise LoadError(400, "git_url: must name a repository (https://HOST/ORG/REPO)")
    return url.rstrip("/")


def repository_key(url: str) -> str:
    """The name of a repository that its compendia record (``origin.git_url``) and are found
    by: the URL with the host in lower case, without the trailing ``.git`` and slashes."""
    parts = urlsplit(url.strip())
    netloc = (parts.hostname or "").lower() + (f":{parts.port}" if parts.port else "")
    path = parts.path.rstrip("/").removesuffix(".git").rstrip("/")
    return f"{parts.scheme.lower()}://{netloc}{path}"


def check_ref(ref: str | None) -> str:
    """The ref to load (:data:`DEFAULT_REF` for none); LoadError 400 for what git does not
    accept as a ref name or SHA."""
    if ref is None:
        return DEFAULT_REF
    ref = ref.strip()
    if FULL_SHA.match(ref):
        return ref.lower()
    if not ref or len(ref) > MAX_REF_CHARS or _BAD_REF.search(ref):
        raise LoadError(400, f"ref: {ref[:80]!r} is no branch, tag or commit SHA")
    return ref


def short_form_url(hosts: Mapping[str, str], prefix: str, org: str, repo: str) -> str:
    """The repository URL of a launch link's short form ``PREFIX/ORG/REPO`` (Binder's
    ``/v2/gh/ORG/REPO``): the template of ``prefix`` with ``{org}`` and ``{repo}`` filled in.
    LoadError 404 for a prefix no template has, 400 for a bad ORG or REPO."""
    template = hosts.get(prefix)
    if template is None:
        known = ", ".join(sorted(hosts)) or "none"
        raise LoadError(404, f"no git host has the short form {prefix!r} (configured: {known})")
    for name, value in (("organisation", org), ("repository", repo)):
        slash = name == "repository" and "/" in value  # only an organisation has subgroups
        if slash or not _PATH_PART.match(value) or ".." in value:
            raise LoadError(400, f"{name}: {value[:80]!r} is not a name a git host gives")
    return template.format(org=quote(org, safe="/"), repo=quote(repo, safe=""))


# -- refs, trees and what they hold (pure) ------------------------------------------------------


def ref_names(ref: str) -> list[str]:
    """The full names ``ref`` may stand for, in git's order (gitrevisions(7)): ``HEAD``
    itself, else ``refs/…``, ``refs/tags/…``, ``refs/heads/…`` (a full name first)."""
    if ref == DEFAULT_REF:
        return [ref]
    names = [f"refs/{ref}", f"refs/tags/{ref}", f"refs/heads/{ref}"]
    return [ref, *names] if ref.startswith("refs/") else names


def resolve_ref(refs: Mapping[Ref, ObjectID | None], ref: str) -> str | None:
    """The commit SHA (hex) that ``ref`` names among a repository's advertised ``refs`` (as
    ``ls-refs`` answers: names to SHAs, ``NAME^{}`` for a peeled tag), by
    :func:`ref_names`; a full SHA names itself. None when no ref has that name."""
    if FULL_SHA.match(ref):
        return ref.lower()
    for name in ref_names(ref):
        raw = name.encode()
        sha = refs.get(Ref(raw + b"^{}")) or refs.get(Ref(raw))
        if sha:
            return sha.decode("ascii")
    return None


def ref_prefixes(ref: str) -> list[bytes]:
    """What ``ls-refs`` needs to list to resolve ``ref`` (protocol v2 servers list no more)."""
    if FULL_SHA.match(ref):
        return [b"HEAD"]
    return [name.encode() for name in ref_names(ref)]


def is_lfs_pointer(data: bytes) -> bool:
    """Whether a file's ``data`` is a Git LFS pointer (the file's content lives elsewhere)."""
    return len(data) <= MAX_LFS_POINTER and data.startswith(LFS_POINTER_START)


def named(names: Iterable[str]) -> str:
    """``a, b, c`` of at most NAMES_SHOWN names, then ``and N more``."""
    listed = sorted(names)
    text = ", ".join(listed[:NAMES_SHOWN])
    more = len(listed) - NAMES_SHOWN
    return text + (f" and {more} more" if more > 0 else "")


def submodule_urls(gitmodules: bytes, base_url: str) -> dict[str, str]:
    """The URL of each submodule by its path, from a ``.gitmodules`` file; a relative URL
    (``../other.git``) is resolved against the repository's URL ``base_url`` as git does.
    LoadError 400 for a file git could not read."""
    try:
        config = ConfigFile.from_file(io.BytesIO(gitmodules))
        entries = list(parse_submodules(config))
    except (ValueError, KeyError, UnicodeDecodeError) as error:
        raise LoadError(400, f".gitmodules cannot be read: {error}") from None
    urls = {}
    for path, url, _name in entries:
        text = url.decode("utf-8", "replace").strip()
        if text.startswith(("./", "../")):
            text = urljoin(base_url.rstrip("/") + "/", text)
        urls[path.decode("utf-8", "surrogateescape").strip("/")] = text
    return urls


@dataclass(frozen=True)
class GitCommit:
    """A ref resolved: the repository (``git_url``, :func:`repository_key`), the URL fetched
    from, the ref asked for and its commit SHA (hex)."""

    git_url: str
    url: str
    ref: str
    commit: str


def git_origin(
    resolved: GitCommit, *, submodules: bool = False, now: datetime.datetime | None = None
) -> dict[str, Any]:
    """The metadata a git load adds: ``origin`` with the repository, the ref, its commit, the
    URL fetched from and the time (and ``submodules`` when submodules were fetched)."""
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    origin: dict[str, Any] = {
        "kind": GIT_KIND,
        GIT_KIND: resolved.git_url,
        "ref": resolved.ref,
        "commit": resolved.commit,
        "url": resolved.url,
        "loaded": moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    if submodules:
        origin["submodules"] = True
    return {"origin": origin}


def top_folder(git_url: str, commit: str) -> str:
    """The one top-level folder of the archive a commit is written to (``REPO-SHORTSHA``, as
    a forge's tarballs): so that the archive's root is its content, whatever the tree holds."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", repository_key(git_url).rsplit("/", 1)[-1])
    return f"{name.lstrip('.') or 'repository'}-{commit[:12]}"


# -- fetching (I/O: git's smart HTTP with dulwich, in a thread) ---------------------------------


class _Stop(Exception):
    """Raised inside dulwich's callbacks to end a fetch: past a limit, or abandoned."""


@dataclass
class _Budget:
    """What one step may still use: bytes of pack data, files, and time (a deadline on
    ``time.monotonic``); ``abandoned`` when the event loop stopped waiting."""

    bytes_left: int
    files_left: int
    deadline: float
    abandoned: bool = False
    received: int = 0

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0 or self.abandoned:
            raise _Stop("time-out")
        return left

    def take(self, size: int) -> None:
        self.remaining()
        self.received += size
        self.bytes_left -= size
        if self.bytes_left < 0:
            raise _Stop("size")


class _CheckedPool(urllib3.PoolManager):
    """dulwich's connection pool, that checks every URL's host before it is contacted
    (redirects come back through :meth:`urlopen`) and gives each request the time left."""

    def __init__(self, check_host: Callable[[str], None], budget: _Budget) -> None:
        # no retries (a time-out or an error is the answer), redirects followed
        retries = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5)
        super().__init__(headers={"User-Agent": USER_AGENT}, retries=retries)
        self.check_host = check_host
        self.budget = budget

    def urlopen(  # type: ignore[override] # as urllib3's own PoolManager.urlopen
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> urllib3.BaseHTTPResponse:
        self.check_host(url)
        left = self.budget.remaining()
        kw["timeout"] = urllib3.Timeout(connect=min(left, CONNECT_TIMEOUT), read=left)
        return super().urlopen(method, url, redirect=redirect, **kw)


@dataclass
class _Tree:
    """The state of writing a commit's tree (and its submodules') into the archive."""

    tar: tarfile.TarFile
    top: str
    lfs_pointers: list[str] = field(default_factory=list)
    submodules: bool = False


class GitFetcher:
    """Resolves refs and fetches commits of git repositories for :mod:`.loading`; one thread
    of its own runs dulwich (blocking); :meth:`close` when done."""

    def __init__(self, settings: LoaderSettings, logger: logging.Logger | None = None) -> None:
        self.settings = settings
        self.log = logger or log
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "erchub-git")

    def close(self) -> None:
        self._thread.shutdown(wait=False)

    def check_host(self, url: str, context: str = "") -> None:
        """LoadError 403 ``host is not allowed: <host>`` unless allowed (as the loader)."""
        host = check_url(url)
        if not self.settings.allows(host):
            detail = f" ({context})" if context else ""
            raise LoadError(403, f"host is not allowed: {host}{detail}")

    async def resolve(self, git_url: str, ref: str | None) -> GitCommit:
        """The commit ``ref`` names in the repository at ``git_url`` (one request)."""
        url = check_git_url(git_url)
        ref = check_ref(ref)
        self.check_host(url)
        return await self._in_thread(self._resolve, url, ref)

    async def fetch(self, resolved: GitCommit, directory: Path) -> tuple[Path, str, bool]:
        """The commit written as a tar archive in ``directory``: its path, its content type
        (``compendium`` when it holds an erc.yml at its root, else ``workspace``) and whether
        submodules were fetched into it."""
        self.check_host(resolved.url)
        archive, submodules = await self._in_thread(self._fetch, resolved, directory)
        loop = asyncio.get_running_loop()
        content_type = await loop.run_in_executor(None, archive_content_type, archive)
        return archive, content_type, submodules

    async def _in_thread(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(budget, *args)`` in the fetcher's thread, within the time-out: the
        thread stops itself at the deadline (each request gets the time left, each chunk
        checks it); the loop waits STOP_GRACE seconds longer at most."""
        settings = self.settings
        budget = _Budget(
            bytes_left=settings.download_limit,
            files_left=settings.git_max_files,
            deadline=time.monotonic() + settings.timeout,
        )
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._thread, function, budget, *args)
        try:
            return await asyncio.wait_for(asyncio.shield(future), settings.timeout + STOP_GRACE)
        except TimeoutError:
            budget.abandoned = True
            raise self._timed_out(args[0]) from None

    def _timed_out(self, target: str | GitCommit) -> LoadError:
        url = target.url if isinstance(target, GitCommit) else target
        host = urlsplit(url).hostname or url[:60]
        return LoadError(
            502, f"{host} did not answer within {self.settings.timeout:g} s (time-out)"
        )

    def _client(self, url: str, budget: _Budget) -> Urllib3HttpGitClient:
        pool = _CheckedPool(lambda target: self.check_host(target, "redirected there"), budget)
        return Urllib3HttpGitClient(url, pool_manager=pool)

    # -- in the thread -------------------------------------------------------------------------

    def _resolve(self, budget: _Budget, url: str, ref: str) -> GitCommit:
        client = self._client(url, budget)
        with self._errors(budget, url, "the repository"):
            answer = client.get_refs(b"", ref_prefix=ref_prefixes(ref))
        commit = resolve_ref(answer.refs, ref)
        if commit is None and ref == DEFAULT_REF:
            raise LoadError(404, f"{url} has no default branch with commits")
        if commit is None:
            hint = "; name a commit by its full 40-character SHA" if _SHORT_SHA.match(ref) else ""
            raise LoadError(404, f"{ref!r} is no branch or tag of {url}{hint}")
        return GitCommit(repository_key(url), url, ref, commit)

    def _fetch(self, budget: _Budget, resolved: GitCommit, directory: Path) -> tuple[Path, bool]:
        repo = Repo.init_bare(str(directory / "git"), mkdir=True)
        top = top_folder(resolved.git_url, resolved.commit)
        archive = directory / f"{top}.tar"
        try:
            # the time-out also ends writing the files (the budget's checks raise _Stop)
            with (
                self._errors(budget, resolved.url, "the commit's files"),
                tarfile.open(archive, "x") as tar,
            ):
                tree = _Tree(tar, top)
                self._add_commit(budget, repo, tree, resolved.url, resolved.commit, "", 0)
        finally:
            repo.close()
        if tree.lfs_pointers:
            raise LoadError(
                400,
                f"the repository holds Git LFS pointers instead of files, which the loader "
                f"does not fetch: {named(tree.lfs_pointers)}",
            )
        self.log.info(
            "loader: %d bytes of %s at %s from %s",
            budget.received,
            resolved.git_url,
            resolved.commit,
            urlsplit(resolved.url).hostname,
        )
        return archive, tree.submodules

    def _add_commit(
        self, budget: _Budget, repo: Repo, tree: _Tree, url: str, sha: str, prefix: str,
        depth: int,
    ) -> None:  # fmt: skip
        """Fetch commit ``sha`` of ``url`` into ``repo`` and write its files below
        ``prefix`` (a submodule's path, else empty), its submodules too when allowed."""
        self._fetch_commit(budget, repo, url, sha)
        commit = repo.object_store[ObjectID(sha.encode("ascii"))]
        if not isinstance(commit, Commit):
            raise LoadError(400, f"{sha} of {url} is no commit")
        gitlinks = self._write_tree(budget, repo.object_store, tree, commit.tree, prefix)
        if not gitlinks:
            return
        paths = [prefix + path for path in gitlinks]
        if not self.settings.git_submodules:
            raise LoadError(
                400,
                f"the repository has submodules, which this service does not fetch: {named(paths)}",
            )
        if depth >= MAX_SUBMODULE_DEPTH:
            raise LoadError(400, f"submodules nest deeper than {MAX_SUBMODULE_DEPTH} levels")
        urls = submodule_urls(self._gitmodules(repo.object_store, commit.tree), url)
        tree.submodules = True
        for path, submodule_sha in gitlinks.items():
            submodule_url = urls.get(path)
            if submodule_url is None:
                raise LoadError(400, f"submodule {prefix + path} has no URL in .gitmodules")
            try:
                submodule_url = check_git_url(submodule_url)
            except LoadError as error:
                raise LoadError(400, f"submodule {prefix + path}: {error.message}") from None
            self.check_host(submodule_url, f"submodule {prefix + path}")
            self._add_commit(
                budget, repo, tree, submodule_url, submodule_sha, f"{prefix}{path}/", depth + 1
            )

    def _fetch_commit(self, budget: _Budget, repo: Repo, url: str, sha: str) -> None:
        """Commit ``sha`` of ``url`` and its tree (depth 1) into ``repo``'s object store."""
        client = self._client(url, budget)
        want = ObjectID(sha.encode("ascii"))
        with tempfile.SpooledTemporaryFile(max_size=2**20, dir=repo.controldir()) as pack:

            def pack_data(chunk: bytes) -> int:
                budget.take(len(chunk))
                return pack.write(chunk)

            def wants(refs: Mapping[Ref, ObjectID], depth: int | None = None) -> list[ObjectID]:
                return [want]

            with self._errors(budget, url, f"commit {sha}"):
                client.fetch_pack(
                    b"",
                    wants,
                    repo.get_graph_walker(),
                    pack_data,
                    depth=1,
                    ref_prefix=[b"HEAD"],
                )
            if pack.tell():
                pack.seek(0)
                repo.object_store.add_thin_pack(pack.read, None)
        if want not in repo.object_store:
            raise LoadError(502, f"{urlsplit(url).hostname} sent no commit {sha}")

    def _write_tree(
        self, budget: _Budget, store: BaseObjectStore, tree: _Tree, tree_id: ObjectID, prefix: str
    ) -> dict[str, str]:
        """Write the files of ``tree_id`` into the archive below ``prefix``; the submodules'
        commits by their paths (relative to the tree)."""
        gitlinks: dict[str, str] = {}
        try:
            entries = list(store.iter_tree_contents(tree_id))
        except (KeyError, MaxTreeDepthExceeded) as error:
            raise LoadError(502, f"the commit's tree is incomplete or too deep: {error}") from None
        for entry in entries:
            assert entry.path is not None and entry.mode is not None and entry.sha is not None
            path = entry.path.decode("utf-8", "surrogateescape")
            if S_ISGITLINK(entry.mode):
                gitlinks[path] = entry.sha.decode("ascii")
                continue
            budget.files_left -= 1
            if budget.files_left < 0:
                raise LoadError(
                    413,
                    f"the repository has more than {self.settings.git_max_files} files, the "
                    "loader's limit",
                )
            budget.remaining()
            blob = store[entry.sha]
            if not isinstance(blob, Blob):
                raise LoadError(502, f"{prefix + path} is no file in the commit's tree")
            data = blob.as_raw_string()
            info = tarfile.TarInfo(f"{tree.top}/{prefix}{path}")
            if stat.S_ISLNK(entry.mode):
                info.type = tarfile.SYMTYPE
                info.linkname = data.decode("utf-8", "surrogateescape")
                tree.tar.addfile(info)
                continue
            if is_lfs_pointer(data):
                tree.lfs_pointers.append(prefix + path)
            info.size = len(data)
            info.mode = 0o755 if entry.mode & 0o111 else 0o644
            tree.tar.addfile(info, io.BytesIO(data))
        return gitlinks

    @staticmethod
    def _gitmodules(store: BaseObjectStore, tree_id: ObjectID) -> bytes:
        tree = store[tree_id]
        try:
            _mode, sha = tree.lookup_path(store.__getitem__, b".gitmodules")  # type: ignore[attr-defined]
        except KeyError:
            return b""
        blob = store[sha]
        return blob.as_raw_string() if isinstance(blob, Blob) else b""

    @contextlib.contextmanager
    def _errors(self, budget: _Budget, url: str, what: str) -> Iterator[None]:
        """dulwich's and urllib3's errors of the requests inside as the loader's LoadError."""
        try:
            yield
        except LoadError:
            raise
        except Exception as error:
            raise self._load_error(error, budget, url, what) from None

    def _load_error(self, error: Exception, budget: _Budget, url: str, what: str) -> Exception:
        host = urlsplit(url).hostname or url[:60]
        stop = _stop_of(error)
        if stop is not None and str(stop) == "size":
            limit = self.settings.download_limit
            return LoadError(413, f"{url} sends more than the loader's limit of {limit} bytes")
        if stop is not None or _timed_out(error) or budget.abandoned:
            return self._timed_out(url)
        if isinstance(error, NotGitRepository):
            return LoadError(404, f"{url} is no git repository ({host} answered 404)")
        if isinstance(error, HTTPUnauthorized):
            return LoadError(403, f"{url} is not public ({host} answered 401)")
        if isinstance(error, HangupException) and FULL_SHA.match(what.split()[-1]):
            # git's upload-pack hangs up on a want it does not have: "not our ref"
            return LoadError(404, f"{what} is not in {url} (or {host} gives no commit by its SHA)")
        if isinstance(error, GitProtocolError):
            status = re.search(r"unexpected http resp (\d{3})", str(error))
            code = status.group(1) if status else ""
            if code in ("401", "403"):
                return LoadError(403, f"{url} is not public ({host} answered {code})")
            if code in ("404", "410"):
                return LoadError(404, f"{url} was not found ({host} answered {code})")
            message = " ".join(str(error).split())[:MAX_QUOTED_CHARS]
            return LoadError(502, f"{host} failed on {what}: {message}")
        if isinstance(error, (OSError, urllib3.exceptions.HTTPError)):
            reason = " ".join(str(error).split())[:MAX_QUOTED_CHARS]
            return LoadError(502, f"cannot reach {host} for {what}: {reason}")
        return error


def _stop_of(error: BaseException) -> _Stop | None:
    """The _Stop behind ``error`` (dulwich may wrap what a callback raised)."""
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, _Stop):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _timed_out(error: BaseException) -> bool:
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, (TimeoutError, urllib3.exceptions.TimeoutError)):
            return True
        if "timed out" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False
