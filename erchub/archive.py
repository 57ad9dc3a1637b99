"""Safe extraction of compendium archives: zip, tar, tar.gz (tgz), tar.bz2 and tar.xz.

The format is told by content, not by file name. :func:`extract_archive` refuses, with an
:class:`~erchub.errors.UnsafeArchive` naming the member and the problem,

* a member whose path is absolute or has a ``..`` component, or is more than
  :attr:`ArchiveLimits.max_depth` folders deep;
* a symbolic link with an absolute destination, or one that is dangling, part of a loop, or
  resolves outside the target (or outside the compendium folder, for links in it);
* a member at the path of a link or below it, a link where the archive has a file or folder;
* a hard link to anything but a file the archive held before it;
* device files, fifos and other special files;
* more members than :attr:`ArchiveLimits.max_members`; declared sizes adding up to more than
  :attr:`ArchiveLimits.max_total_size`, or to more than :attr:`ArchiveLimits.max_ratio` times
  the archive's own size (a zip bomb).

Safe by construction: no symbolic link is on disk while members are written, so every member
lands where its path says. Folders, files and hard links are written first (hard links by
``os.link`` to a file already written); the links come after all of them, each in a real
folder (opened with ``O_NOFOLLOW``), and then, in the finished tree, every link is judged by
where it really resolves: step by step below the root it belongs to (never above it), by the
kernel (``os.stat``) and by ``os.path.realpath(strict=True)``, which must all agree. This is
complete: if every link in the tree resolves below the root and a path has no ``..`` and is
not absolute, the path resolves below the root too, by induction over its components (each
step goes from a real folder below the root to an entry of it, which is a file or folder below
the root, or a link, which resolves below the root). As no link resolves above the root on its
way, this holds wherever the root is moved (the service moves the compendium folder).

Tar members go through :func:`tarfile.data_filter` (no special files, no set-uid bits, no
ownership) after erchub's own checks. tarfile copies exactly the size a tar header declares.
Zip members are written by erchub, counting the bytes as they stream: a member that yields more
than its header declares is refused. Entries under ``__MACOSX/`` (macOS resource forks) are
skipped. Nothing is written outside the target, and on any error everything this call wrote is
removed again (:func:`erchub.safefs.remove_tree`, which neither recurses nor follows links).
"""

from __future__ import annotations

import contextlib
import errno
import lzma
import os
import platform
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from erchub.errors import (
    STORAGE_FULL_MESSAGE,
    InvalidERC,
    StorageFull,
    UnsafeArchive,
    is_storage_full,
)
from erchub.safefs import remove_tree

if TYPE_CHECKING:
    from _typeshed import StrOrBytesPath

GIB = 1024**3
COPY_CHUNK_BYTES = 1024**2
#: a link's destination longer than this is no path (zip stores it as the member's content)
MAX_LINK_BYTES = 4096
#: links one resolution may follow, as Linux's MAXSYMLINKS: more is a loop to the kernel too
MAX_LINK_HOPS = 40
#: path components all links of an archive together may take to resolve (bounds the work of
#: judging them: a link may take up to MAX_LINK_HOPS * MAX_LINK_BYTES / 2)
MAX_LINK_STEPS = 1_000_000
#: top-level folders of an archive that are never part of a compendium
SKIPPED_TOP_LEVEL = ("__MACOSX",)
#: zip's "made by" system number for Unix, the only one whose file modes are meaningful
ZIP_UNIX_SYSTEM = 3
#: errors of reading a damaged archive (bad headers, truncated or corrupt compressed data)
DAMAGED_ARCHIVE_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    NotImplementedError,  # zip compression methods Python lacks
    OSError,
)
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class ArchiveLimits:
    """How far an archive may expand."""

    #: bytes all members together may declare
    max_total_size: int = 2 * GIB
    #: declared uncompressed bytes per byte of the archive file
    max_ratio: float = 200.0
    #: number of entries (files, directories and links)
    max_members: int = 50_000
    #: path components of a member below the target
    max_depth: int = 64


def is_archive(path: Path) -> bool:
    """Whether ``path`` is a zip or (possibly compressed) tar file, judged by its content."""
    return path.is_file() and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path))


DEFAULT_LIMITS = ArchiveLimits()


def extract_archive(archive: Path, target: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> Path:
    """Extract ``archive`` into ``target`` and return the compendium root inside it.

    ``target`` must be missing (its parent existing) or an empty directory. The root is the
    archive's single top-level directory when it has one, else ``target``; a BagIt bag's
    payload directory ``data/`` when the root is a bag (the o2r spec's archival form).
    Raises :class:`UnsafeArchive` for the attacks listed in the module docstring and
    :class:`InvalidERC` for a file that is not a zip or tar archive, or is damaged.
    """
    if zipfile.is_zipfile(archive):
        extract = _extract_zip
    elif archive.is_file() and tarfile.is_tarfile(archive):
        # tar members are checked with tarfile's extraction filters (PEP 706, Python 3.11.4):
        # without them, no tar is opened (Debian 12's Python is 3.11.2)
        if not hasattr(tarfile, "data_filter"):
            raise InvalidERC(
                f"{archive.name}: tar archives need Python 3.11.4 or newer on this server "
                f"(it runs {platform.python_version()}); upload a zip archive instead"
            )
        extract = _extract_tar
    else:
        raise InvalidERC(f"{archive.name} is not a zip or tar archive")
    created = not target.exists()
    if not created and any(target.iterdir()):
        raise FileExistsError(f"extraction target {target} is not empty")
    target.mkdir(exist_ok=True)
    budget = _Budget(archive.name, limits, archive.stat().st_size)
    tree = _Tree(os.path.realpath(target), budget)
    try:
        extract(archive, tree)
        tree.make_links()
        root = _compendium_root(target)
        tree.judge_links(os.path.join(tree.root, *root.relative_to(target).parts))
    except DAMAGED_ARCHIVE_ERRORS as error:
        _remove_written(target, created)
        if is_storage_full(error):  # the disk's fault, not the archive's
            raise StorageFull(STORAGE_FULL_MESSAGE) from None
        # strerror, not str(): the latter names paths on this server
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise InvalidERC(f"{archive.name}: damaged archive: {reason}") from None
    except BaseException:
        _remove_written(target, created)
        raise
    return root


class _Budget:
    """Counts members and declared bytes against the limits, for one archive."""

    def __init__(self, archive_name: str, limits: ArchiveLimits, archive_size: int) -> None:
        self.archive_name = archive_name
        self.limits = limits
        self.archive_size = archive_size
        self.members = 0
        self.declared = 0

    def unsafe(self, member: str, problem: str) -> UnsafeArchive:
        return UnsafeArchive(f"{self.archive_name}: member {member!r} {problem}")

    def admit(self, member: str, declared_size: int) -> None:
        """Count one member of ``declared_size`` bytes; refuse it past a limit."""
        self.members += 1
        if self.members > self.limits.max_members:
            raise self.unsafe(
                member, f"is one more than the limit of {self.limits.max_members} members"
            )
        depth = len(_components(member))
        if depth > self.limits.max_depth:
            raise self.unsafe(
                member, f"is {depth} levels deep, past the limit of {self.limits.max_depth}"
            )
        self.declared += declared_size
        if self.declared > self.limits.max_total_size:
            raise self.unsafe(
                member,
                f"takes the archive past the limit of {self.limits.max_total_size} bytes"
                f" ({self.declared} bytes declared so far)",
            )
        if self.declared > self.limits.max_ratio * self.archive_size:
            raise self.unsafe(
                member,
                f"takes the archive past {self.limits.max_ratio:g} times its own size of"
                f" {self.archive_size} bytes ({self.declared} bytes declared): a zip bomb?",
            )


def _components(path: str) -> list[str]:
    """The components of an archive path, without empty ones and ``.``."""
    return [part for part in path.split("/") if part not in ("", ".")]


def _ancestors(key: str) -> Iterator[str]:
    """The proper ancestors of a normalised member path: ``a``, ``a/b`` for ``a/b/c``."""
    index = key.find("/")
    while index != -1:
        yield key[:index]
        index = key.find("/", index + 1)


@dataclass(frozen=True)
class _Link:
    """A symbolic link of the archive, made after every other member."""

    member: str
    key: str
    destination: str


class _Leaves(Exception):
    """A link's resolution goes above the root it must stay below."""


class _Tree:
    """What one extraction wrote below ``root`` (a real path), and the links still to make."""

    def __init__(self, root: str, budget: _Budget) -> None:
        self.root = root
        self.budget = budget
        #: normalised path -> (kind: "file", "directory" or "link"; the member's name)
        self.kinds: dict[str, tuple[str, str]] = {}
        #: normalised path -> link, in the archive's order
        self.links: dict[str, _Link] = {}
        self.steps = 0

    def key(self, member: str) -> str:
        """The normalised path of ``member``; refuse absolute paths and ``..``."""
        if member.startswith("/"):
            raise self.budget.unsafe(member, "has an absolute path")
        parts = _components(member)
        if ".." in parts:
            raise self.budget.unsafe(member, "has '..' in its path")
        return "/".join(parts)

    def destination(self, key: str) -> str:
        return os.path.join(self.root, key) if key else self.root

    def record(self, member: str, key: str, kind: str, *, again: bool = False) -> None:
        """Note ``member`` at ``key``; refuse a path the archive already used for another kind
        of member, for a link, or (unless ``again``) for a file."""
        previous = self.kinds.get(key)
        if previous is not None and (
            previous[0] != kind or kind == "link" or (kind == "file" and not again)
        ):
            raise self.budget.unsafe(member, "is in the archive twice")
        if not key and kind != "directory":
            raise self.budget.unsafe(member, "takes the place of the target folder")
        self.kinds[key] = (kind, member)

    def add_link(self, member: str, destination: str) -> None:
        """Collect a symbolic link, to be made after every other member."""
        key = self.key(member)
        if not destination:
            raise self.budget.unsafe(member, "is a link without a destination")
        if len(os.fsencode(destination)) > MAX_LINK_BYTES:
            raise self.budget.unsafe(member, "is a link to a path too long to be one")
        if "\0" in destination:
            raise self.budget.unsafe(member, "is a link to a path with a NUL character")
        if destination.startswith("/"):
            raise self.budget.unsafe(member, f"links to {destination!r}, an absolute path")
        self.record(member, key, "link")
        self.links[key] = _Link(member, key, destination)

    def check_hard_link(self, member: str, destination: str) -> None:
        """Refuse a hard link unless it names a file the archive held before it."""
        key = "/".join(_components(destination))
        if destination.startswith("/") or self.kinds.get(key, ("",))[0] != "file":
            raise self.budget.unsafe(
                member, f"is a hard link to {destination!r}, which is no file before it"
            )

    def make_links(self) -> None:
        """Make the collected links, each in a real folder: nothing may lie below a link."""
        if not self.links:
            return
        for key, (_, member) in self.kinds.items():
            for ancestor in _ancestors(key):
                link = self.links.get(ancestor)
                if link is not None:
                    raise self.budget.unsafe(member, f"lies under the link {link.member!r}")
        root = os.open(self.root, _DIRECTORY_FLAGS)
        try:
            for link in self.links.values():
                folder, _, name = link.key.rpartition("/")
                try:
                    parent = _open_folder(root, _components(folder))
                except OSError as error:
                    if error.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EEXIST):
                        raise
                    raise self.budget.unsafe(link.member, "lies under a file or link") from None
                try:
                    os.symlink(link.destination, name, dir_fd=parent)
                except FileExistsError:
                    raise self.budget.unsafe(link.member, "is in the archive twice") from None
                finally:
                    os.close(parent)
        finally:
            os.close(root)

    def judge_links(self, compendium: str) -> None:
        """Refuse the archive unless every link, in the finished tree, resolves inside the
        compendium folder ``compendium`` (a real path) when it is in it, else inside the
        target, and never above that folder on its way."""
        for link in self.links.values():
            path = self.destination(link.key)
            if compendium != self.root and path.startswith(compendium + os.sep):
                self._judge(link, path, compendium)
            else:
                self._judge(link, path, self.root)
        for key in _links_below(self.root):
            if key not in self.links:  # cannot happen; a link made otherwise is refused
                raise self.budget.unsafe(key, "is a link that erchub did not make")

    def _judge(self, link: _Link, path: str, base: str) -> None:
        where = (
            "the target"
            if base == self.root
            else f"the compendium folder {os.path.relpath(base, self.root)!r}"
        )
        try:
            resolved = self._resolve_below(link, base, os.path.relpath(path, base).split(os.sep))
            by_kernel = os.stat(path)
            real = os.path.realpath(path, strict=True)
        except _Leaves:
            raise self.budget.unsafe(
                link.member, f"links to {link.destination!r}, which resolves outside {where}"
            ) from None
        except OSError:
            raise self.budget.unsafe(link.member, "is a dangling link or a link loop") from None
        expected = os.path.join(base, *resolved)
        if real != expected or not os.path.samestat(by_kernel, os.lstat(expected)):
            raise self.budget.unsafe(
                link.member, f"links to {link.destination!r}, which resolves ambiguously"
            )

    def _resolve_below(self, link: _Link, base: str, parts: list[str]) -> list[str]:
        """The real path of ``base/parts`` as components below ``base``, resolved as the
        kernel does. Raises _Leaves for a step above ``base`` or to an absolute path, OSError
        for a missing entry, a file used as a folder or more than MAX_LINK_HOPS links."""
        resolved: list[str] = []
        pending = parts[::-1]
        hops = 0
        while pending:
            self.steps += 1
            if self.steps > MAX_LINK_STEPS:
                raise self.budget.unsafe(
                    link.member,
                    f"takes the archive's links past {MAX_LINK_STEPS} steps to resolve",
                )
            name = pending.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if not resolved:
                    raise _Leaves
                resolved.pop()
                continue
            path = os.path.join(base, *resolved, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                hops += 1
                if hops > MAX_LINK_HOPS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links")
                destination = os.readlink(path)
                if destination.startswith("/"):
                    raise _Leaves
                pending.extend(destination.split("/")[::-1])
            elif pending and not stat.S_ISDIR(mode):
                raise OSError(errno.ENOTDIR, "not a directory")
            else:
                resolved.append(name)
        return resolved


def _open_folder(root: int, parts: list[str]) -> int:
    """A descriptor of the folder ``parts`` below the descriptor ``root``, made where missing;
    a link or file on the way raises OSError (ELOOP, ENOTDIR)."""
    folder = os.dup(root)
    try:
        for name in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, dir_fd=folder)
            child = os.open(name, _DIRECTORY_FLAGS, dir_fd=folder)
            os.close(folder)
            folder = child
    except BaseException:
        os.close(folder)
        raise
    return folder


def _links_below(root: str) -> Iterator[str]:
    """The paths (relative, with ``/``) of all symbolic links below ``root``; not following
    any of them."""
    stack = [""]
    while stack:
        relative = stack.pop()
        with os.scandir(os.path.join(root, relative)) as entries:
            for entry in entries:
                key = f"{relative}/{entry.name}" if relative else entry.name
                if entry.is_symlink():
                    yield key
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(key)


class _TarFile(tarfile.TarFile):
    """A TarFile that makes hard links only with ``os.link``: tarfile's fallback (extract the
    link's target member again, unfiltered) could write a symbolic link or set-uid bits."""

    def makelink(self, tarinfo: tarfile.TarInfo, targetpath: StrOrBytesPath) -> None:
        _hard_link(tarinfo, targetpath)

    def makelink_with_filter(
        self,
        tarinfo: tarfile.TarInfo,
        targetpath: StrOrBytesPath,
        filter_function: Callable[[tarfile.TarInfo, str], tarfile.TarInfo | None],
        extraction_root: str,
    ) -> None:
        _hard_link(tarinfo, targetpath)


def _hard_link(tarinfo: tarfile.TarInfo, targetpath: StrOrBytesPath) -> None:
    if not tarinfo.islnk():  # symbolic links never reach tarfile
        raise RuntimeError(f"unexpected link {tarinfo.name!r}")
    os.link(tarinfo._link_target, targetpath, follow_symlinks=False)  # type: ignore[attr-defined]


def _extract_tar(archive: Path, tree: _Tree) -> None:
    budget = tree.budget

    def check(member: tarfile.TarInfo, destination_root: str) -> tarfile.TarInfo | None:
        budget.admit(member.name, member.size if member.isreg() else 0)
        key = tree.key(member.name)
        if member.issym():
            tree.add_link(member.name, member.linkname)
            return None
        if member.islnk():
            tree.check_hard_link(member.name, member.linkname)
        try:
            filtered = tarfile.data_filter(member, destination_root)
        except tarfile.SpecialFileError:
            raise budget.unsafe(
                member.name, "is a device file, fifo or other special file"
            ) from None
        except tarfile.FilterError as error:
            raise budget.unsafe(member.name, f"is refused: {error}") from None
        tree.record(member.name, key, "directory" if member.isdir() else "file", again=True)
        return filtered

    with _TarFile.open(archive) as tar:
        tar.extractall(tree.root, filter=check)


def _extract_zip(archive: Path, tree: _Tree) -> None:
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        # Every size is declared up front: judge them all before writing anything.
        for info in members:
            tree.budget.admit(info.filename, info.file_size)
        for info in members:
            if info.filename.split("/", 1)[0] not in SKIPPED_TOP_LEVEL:
                _extract_zip_member(bundle, info, tree)


def _extract_zip_member(bundle: zipfile.ZipFile, info: zipfile.ZipInfo, tree: _Tree) -> None:
    name = info.filename
    budget = tree.budget
    key = tree.key(name)
    destination = tree.destination(key)
    mode = info.external_attr >> 16 if info.create_system == ZIP_UNIX_SYSTEM else 0
    if info.flag_bits & 0x1:
        raise InvalidERC(f"{budget.archive_name}: member {name!r} is encrypted")
    if info.is_dir() or stat.S_ISDIR(mode):
        tree.record(name, key, "directory")
        _make_folders(destination, name, budget)
        return
    if stat.S_ISLNK(mode):
        if info.file_size > MAX_LINK_BYTES:
            raise budget.unsafe(name, "is a link to a path too long to be one")
        with bundle.open(info) as source:
            link = source.read(MAX_LINK_BYTES + 1).decode("utf-8", errors="surrogateescape")
        tree.add_link(name, link)
        return
    if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        raise budget.unsafe(name, "is a device file, fifo or other special file")
    tree.record(name, key, "file")
    if os.path.lexists(destination):
        raise budget.unsafe(name, "is in the archive twice")
    _make_folders(os.path.dirname(destination), name, budget)
    permissions = 0o755 if mode & stat.S_IXUSR else 0o644
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    with bundle.open(info) as source, open(os.open(destination, flags, permissions), "wb") as sink:
        _copy_member(source, sink, info.file_size, name, budget)


def _make_folders(path: str, member: str, budget: _Budget) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise budget.unsafe(member, "is in the archive twice, or under a file") from None


def _copy_member(
    source: IO[bytes], sink: IO[bytes], declared: int, name: str, budget: _Budget
) -> None:
    """Copy a member's content, refusing more bytes than its header declared."""
    copied = 0
    while chunk := source.read(COPY_CHUNK_BYTES):
        copied += len(chunk)
        if copied > declared:
            raise budget.unsafe(name, f"holds more than the {declared} bytes its header declares")
        sink.write(chunk)


def _remove_written(target: Path, created: bool) -> None:
    if created:
        remove_tree(target)
        return
    with os.scandir(target) as entries:
        names = [entry.name for entry in entries]
    for name in names:
        remove_tree(target / name)


def _compendium_root(target: Path) -> Path:
    entries = list(target.iterdir())
    root = target
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        root = entries[0]
    payload = root / "data"
    if (root / "bagit.txt").is_file() and payload.is_dir() and not payload.is_symlink():
        root = payload
    return root
