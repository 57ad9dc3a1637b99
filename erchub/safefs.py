"""File access that never follows a link out of a given root: removal, walking, opening
(Python 3.11's shutil.rmtree and os.fwalk recurse; these use an explicit stack)."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

#: flags that open a directory and refuse a link in its place
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: Path | str) -> None:
    """Remove the file, link or directory tree at ``path``; a missing path is fine.

    A link is removed, never followed: also when ``path`` itself is one (the link goes, what it
    points to stays). Directories are descended with ``O_NOFOLLOW`` relative to their parent's
    descriptor and climbed back through ``..``, checked to be the directory that was left, so
    the removal never leaves the tree it was given, holds a fixed number of descriptors and
    needs neither recursion nor paths longer than one name: a tree of any depth goes. Raises
    OSError when an entry cannot be removed (the removal stops there), ValueError for a path
    ending in ``.`` or ``..``.
    """
    text = os.fspath(path)
    stripped = text.rstrip("/")
    if not stripped:
        raise ValueError(f"refusing to remove {text!r}")
    head, name = os.path.split(stripped)
    if name in (".", ".."):
        raise ValueError(f"refusing to remove {text!r}")
    parent = os.open(head or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            status = os.lstat(name, dir_fd=parent)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(status.st_mode):
            _remove_directory(parent, name)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=parent)
    finally:
        os.close(parent)


def _remove_directory(parent: int, name: str) -> None:
    """Remove the directory ``name`` of ``parent`` with everything in it."""

    def visit(fd: int, entries: list[os.DirEntry[str]]) -> None:
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.name, dir_fd=fd)

    def leave(fd: int, child: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(child, dir_fd=fd)

    try:
        TreeWalk(name, dir_fd=parent).walk(visit, leave)
    except FileNotFoundError:
        return
    except OSError as error:
        if error.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        # replaced by a link or a file since it was looked at
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=parent)
        return
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(name, dir_fd=parent)


class OutsideRoot(ValueError):
    """A path that leaves its root: absolute, with ``..``, or through a link."""


def resolve_inside(root: Path | str, relative: str) -> Path:
    """The real path of ``relative`` inside ``root``; it need not exist.

    Raises :class:`OutsideRoot` for an empty, absolute or ``..`` path, a NUL byte, or a path
    that leaves ``root`` through a symbolic link.
    """
    pure = relative_path(relative)
    real_root = os.path.realpath(root)
    resolved = os.path.realpath(os.path.join(real_root, *pure.parts))
    if not is_within(real_root, resolved):
        raise OutsideRoot(f"{relative!r} leads outside")
    return Path(resolved)


def relative_path(relative: str) -> PurePosixPath:
    """``relative`` as a path below a root: OutsideRoot for an empty, absolute or ``..`` path
    or a NUL byte (judged by its text only)."""
    if not relative or "\x00" in relative:
        raise OutsideRoot(f"not a file path: {relative!r}")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or relative.startswith("\\"):
        raise OutsideRoot(f"{relative!r} is an absolute path")
    if ".." in pure.parts:
        raise OutsideRoot(f"{relative!r} has '..' in it")
    return pure


def is_within(real_root: str, real_path: str) -> bool:
    """Whether ``real_path`` is ``real_root`` or below it (both already resolved)."""
    return os.path.commonpath([real_root, real_path]) == real_root


def open_file(root: Path | str, relative: str) -> BinaryIO:
    """The regular file ``relative`` inside ``root``, opened for reading.

    Links inside ``root`` are followed only while they stay inside; the file itself is opened
    with ``O_NOFOLLOW`` and ``O_NONBLOCK`` (a fifo cannot block the caller) and must be a
    regular file. Raises :class:`OutsideRoot`, FileNotFoundError, or IsADirectoryError for
    anything that is not a regular file.
    """
    path = resolve_inside(root, relative)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", relative)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_bytes(root: Path | str, relative: str, limit: int | None = None) -> bytes:
    """The content of the regular file ``relative`` inside ``root`` (see :func:`open_file`);
    :class:`FileTooLarge` past ``limit`` bytes."""
    with open_file(root, relative) as stream:
        data = stream.read() if limit is None else stream.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise FileTooLarge(f"{relative} is larger than {limit} bytes")
    return data


def read_text(root: Path | str, relative: str, limit: int | None = None) -> str:
    return read_bytes(root, relative, limit).decode("utf-8")


class FileTooLarge(ValueError):
    """A file past the size its reader accepts."""


def is_file(root: Path | str, relative: str) -> bool:
    """Whether ``relative`` is a regular file inside ``root`` (links followed inside only)."""
    try:
        return resolve_inside(root, relative).is_file()
    except (OutsideRoot, OSError):
        return False


def write_bytes(root: Path | str, relative: str, data: bytes, mode: int = 0o644) -> Path:
    """Replace the file ``relative`` inside ``root`` by ``data`` (see :func:`write_stream`)."""
    return write_stream(root, relative, io.BytesIO(data), mode)


def write_stream(root: Path | str, relative: str, source: BinaryIO, mode: int = 0o644) -> Path:
    """Replace the file ``relative`` inside ``root`` by what ``source`` holds, atomically.

    Missing parent folders are made inside ``root``; a link on the way must stay inside, and a
    link at ``relative`` itself is replaced (never written through). Raises
    :class:`OutsideRoot`.
    """
    pure = relative_path(relative)
    parent = (
        resolve_inside(root, str(pure.parent))
        if pure.parent.parts
        else Path(os.path.realpath(root))
    )
    parent.mkdir(parents=True, exist_ok=True)
    target = parent / pure.name
    if target.is_dir() and not target.is_symlink():
        raise IsADirectoryError(errno.EISDIR, "Is a directory", relative)
    descriptor, temporary = tempfile.mkstemp(dir=parent, prefix=f".{pure.name}-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            shutil.copyfileobj(source, stream)
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return target


def write_text(root: Path | str, relative: str, text: str, mode: int = 0o644) -> Path:
    return write_bytes(root, relative, text.encode("utf-8"), mode)


# -- walking without following links ----------------------------------------------------------


@dataclass
class _Frame:
    """A directory on the walk's path: its identity, its name in its parent, what is left."""

    identity: tuple[int, int]
    name: str
    pending: list[str]


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


class TreeWalk:
    """Every directory of a tree, pre-order, as an open fd and its entries, never following a
    link; ``leave`` callbacks post-order. At most two fds are open at a time, whatever the
    depth, and no path is longer than one name: the walk descends with
    ``openat(name, O_NOFOLLOW)`` and climbs back through ``..``, checking that it arrives where
    it came from (a tree changed under the walk raises OSError EBUSY rather than wander off).
    ``root`` must be a directory, not a link to one (OSError ELOOP or ENOTDIR otherwise);
    relative to ``dir_fd`` when given."""

    def __init__(self, root: Path | str, dir_fd: int | None = None) -> None:
        self.root = os.fspath(root)
        self.dir_fd = dir_fd

    def walk(
        self,
        visit: Callable[[int, list[os.DirEntry[str]]], None],
        leave: Callable[[int, str], None] | None = None,
    ) -> None:
        """``visit(fd, entries)`` for each directory (it may unlink entries; it must not
        rename directories); ``leave(parent_fd, name)`` after each directory below the root
        was walked."""
        fd = os.open(self.root, _DIRECTORY_FLAGS, dir_fd=self.dir_fd)
        try:
            stack = [_Frame(_identity(fd), "", self._visit(fd, visit))]
            while stack:
                frame = stack[-1]
                if frame.pending:
                    name = frame.pending.pop()
                    try:
                        child = os.open(name, _DIRECTORY_FLAGS, dir_fd=fd)
                    except FileNotFoundError:
                        continue  # removed by visit
                    os.close(fd)
                    fd = child
                    stack.append(_Frame(_identity(fd), name, self._visit(fd, visit)))
                    continue
                stack.pop()
                if not stack:
                    break
                parent = os.open("..", _DIRECTORY_FLAGS, dir_fd=fd)
                if _identity(parent) != stack[-1].identity:
                    os.close(parent)
                    raise OSError(
                        errno.EBUSY, "a directory was moved while it was walked", frame.name
                    )
                os.close(fd)
                fd = parent
                if leave is not None:
                    leave(fd, frame.name)
        finally:
            os.close(fd)

    @staticmethod
    def _visit(fd: int, visit: Callable[[int, list[os.DirEntry[str]]], None]) -> list[str]:
        with os.scandir(fd) as scanned:
            entries = list(scanned)
        visit(fd, entries)
        return [entry.name for entry in entries if entry.is_dir(follow_symlinks=False)]


def drop_links(root: Path | str) -> int:
    """Remove every symbolic link and special file (fifo, socket, device) below the directory
    ``root``, never following one; return how many went. ``root`` itself must be a directory,
    not a link to one (OSError otherwise)."""
    removed = 0

    def visit(fd: int, entries: list[os.DirEntry[str]]) -> None:
        nonlocal removed
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.name, dir_fd=fd)
                removed += 1

    TreeWalk(root).walk(visit)
    return removed


def remove_empty_directories(root: Path | str) -> int:
    """Remove the directories below ``root`` that are empty once their empty subdirectories
    are gone (``root`` stays); return how many went. Links are never followed."""
    removed = 0

    def leave(parent: int, name: str) -> None:
        nonlocal removed
        try:
            os.rmdir(name, dir_fd=parent)
            removed += 1
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                raise

    TreeWalk(root).walk(lambda fd, entries: None, leave)
    return removed
