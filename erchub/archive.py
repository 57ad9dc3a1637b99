"""Safe extraction of compendium archives: zip, tar, tar.gz (tgz), tar.bz2 and tar.xz.

The format is told by content, not by file name. :func:`extract_archive` refuses, with an
:class:`~erchub.errors.UnsafeArchive` naming the member and the problem,

* a member whose path is absolute or has a ``..`` component;
* a member that would land outside the target, also through links extracted before it;
* a symbolic or hard link whose destination leaves the target (links that stay inside are
  extracted: the simplest rule that is safe, as every later member is checked against the
  links already on disk);
* device files, fifos and other special files;
* more members than :attr:`ArchiveLimits.max_members`; declared sizes adding up to more than
  :attr:`ArchiveLimits.max_total_size`, or to more than :attr:`ArchiveLimits.max_ratio` times
  the archive's own size (a zip bomb).

Tar members go through :func:`tarfile.data_filter` (no special files, no set-uid bits, no
ownership) after erchub's own checks, which resolve paths strictly, so a link chain too long
for ``os.path.realpath`` is refused instead of half-resolved (the filter bypasses fixed in
Python 3.11.13, such as CVE-2025-4517). tarfile copies exactly the size a tar header declares.
Zip members are written by erchub, counting the bytes as they stream: a member that yields more
than its header declares is refused. Entries under ``__MACOSX/`` (macOS resource forks) are
skipped. Nothing is written outside the target, and on any error everything this call wrote is
removed again.
"""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from erchub.errors import InvalidERC, UnsafeArchive

GIB = 1024**3
COPY_CHUNK_BYTES = 1024**2
#: a zip symlink stores its destination as content; longer than this is no path
MAX_LINK_BYTES = 4096
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


@dataclass(frozen=True)
class ArchiveLimits:
    """How far an archive may expand."""

    #: bytes all members together may declare
    max_total_size: int = 2 * GIB
    #: declared uncompressed bytes per byte of the archive file
    max_ratio: float = 200.0
    #: number of entries (files, directories and links)
    max_members: int = 50_000


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
        extract = _extract_tar
    else:
        raise InvalidERC(f"{archive.name} is not a zip or tar archive")
    created = not target.exists()
    if not created and any(target.iterdir()):
        raise FileExistsError(f"extraction target {target} is not empty")
    target.mkdir(exist_ok=True)
    budget = _Budget(archive.name, limits, archive.stat().st_size)
    try:
        extract(archive, os.path.realpath(target), budget)
    except DAMAGED_ARCHIVE_ERRORS as error:
        _remove_written(target, created)
        # strerror, not str(): the latter names paths on this server
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise InvalidERC(f"{archive.name}: damaged archive: {reason}") from None
    except BaseException:
        _remove_written(target, created)
        raise
    return _compendium_root(target)


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

    def check_path(self, root: str, member: str) -> str:
        """The destination of ``member`` below ``root``; refuse paths that leave it."""
        parts = PurePosixPath(member).parts
        if member.startswith("/"):
            raise self.unsafe(member, "has an absolute path")
        if ".." in parts:
            raise self.unsafe(member, "has '..' in its path")
        destination = os.path.join(root, *parts)
        if not _inside(root, destination):
            raise self.unsafe(member, "would be written outside the target (through a link)")
        return destination

    def check_link(self, root: str, member: str, link: str, destination: str) -> None:
        """Refuse a link whose ``destination`` leaves ``root``."""
        if os.path.isabs(link) or not _inside(root, destination):
            raise self.unsafe(member, f"links to {link!r}, outside the target")


def _resolve(path: str) -> str:
    """``os.path.realpath`` that raises OSError on link loops and over-long link chains instead
    of giving up half-way, and allows the path's tail not to exist yet."""
    missing: list[str] = []
    existing = path
    while not os.path.lexists(existing):
        existing, name = os.path.split(existing)
        missing.append(name)
    resolved = os.path.realpath(existing, strict=True)
    return os.path.normpath(os.path.join(resolved, *reversed(missing)))


def _inside(root: str, path: str) -> bool:
    try:
        resolved = _resolve(path)
    except OSError:
        return False
    return os.path.commonpath([resolved, root]) == root


def _extract_tar(archive: Path, root: str, budget: _Budget) -> None:
    def check(member: tarfile.TarInfo, destination_root: str) -> tarfile.TarInfo | None:
        budget.admit(member.name, member.size if member.isreg() else 0)
        destination = budget.check_path(root, member.name)
        if member.issym():
            link_destination = os.path.join(os.path.dirname(destination), member.linkname)
            budget.check_link(root, member.name, member.linkname, link_destination)
        elif member.islnk():
            link_destination = os.path.join(root, member.linkname)
            budget.check_link(root, member.name, member.linkname, link_destination)
        try:
            return tarfile.data_filter(member, destination_root)
        except tarfile.SpecialFileError:
            raise budget.unsafe(
                member.name, "is a device file, fifo or other special file"
            ) from None
        except tarfile.FilterError as error:
            raise budget.unsafe(member.name, f"is refused: {error}") from None

    with tarfile.open(archive) as tar:
        tar.extractall(root, filter=check)


def _extract_zip(archive: Path, root: str, budget: _Budget) -> None:
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        # Every size is declared up front: judge them all before writing anything.
        for info in members:
            budget.admit(info.filename, info.file_size)
        for info in members:
            if info.filename.split("/", 1)[0] not in SKIPPED_TOP_LEVEL:
                _extract_zip_member(bundle, info, root, budget)


def _extract_zip_member(
    bundle: zipfile.ZipFile, info: zipfile.ZipInfo, root: str, budget: _Budget
) -> None:
    name = info.filename
    destination = budget.check_path(root, name)
    mode = info.external_attr >> 16 if info.create_system == ZIP_UNIX_SYSTEM else 0
    if info.flag_bits & 0x1:
        raise InvalidERC(f"{budget.archive_name}: member {name!r} is encrypted")
    if info.is_dir() or stat.S_ISDIR(mode):
        os.makedirs(destination, exist_ok=True)
        return
    if os.path.lexists(destination):
        raise budget.unsafe(name, "is in the archive twice")
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    if stat.S_ISLNK(mode):
        if info.file_size > MAX_LINK_BYTES:
            raise budget.unsafe(name, "is a link to a path too long to be one")
        link = bundle.read(info).decode("utf-8", errors="surrogateescape")
        link_destination = os.path.join(os.path.dirname(destination), link)
        budget.check_link(root, name, link, link_destination)
        os.symlink(link, destination)
        return
    if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        raise budget.unsafe(name, "is a device file, fifo or other special file")
    permissions = 0o755 if mode & stat.S_IXUSR else 0o644
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    with bundle.open(info) as source, open(os.open(destination, flags, permissions), "wb") as sink:
        _copy_member(source, sink, info.file_size, name, budget)


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
        shutil.rmtree(target, ignore_errors=True)
        return
    for entry in target.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink()


def _compendium_root(target: Path) -> Path:
    entries = list(target.iterdir())
    root = target
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        root = entries[0]
    payload = root / "data"
    if (root / "bagit.txt").is_file() and payload.is_dir() and not payload.is_symlink():
        root = payload
    return root
