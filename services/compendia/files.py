"""Compendia on disk: ingesting uploaded archives, file trees, safe paths, streamed downloads.

Pure I/O, no tornado: the API handlers call these functions in an executor.

Layout (see the data directory in the service's docs): an upload is extracted into a staging
directory ``data_dir/uploads/staging-*``, completed there (erc.yml, ``.erc/metadata_o2r_1.json``)
and then moved with one ``os.rename`` to ``data_dir/compendia/<id>``, so a compendium directory
either is complete or does not exist. Every failure removes what this module wrote.

Errors a client caused are :class:`~erchub.errors.InvalidERC` (the archive is no compendium:
not an archive, damaged, no notebook, bad erc.yml) or :class:`~erchub.errors.UnsafeArchive`
(an attack or an archive expanding past :class:`~erchub.archive.ArchiveLimits`), each with a
one-line message for the API to show.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import logging
import mimetypes
import os
import queue
import re
import secrets
import stat
import string
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from erchub import jsonlimits, safefs
from erchub.archive import DEFAULT_LIMITS, ArchiveLimits, extract_archive
from erchub.erc import ERC_FILENAME, load_erc
from erchub.errors import ErchubError, InvalidERC
from erchub.metadata import METADATA_PATH, extract_metadata, write_metadata
from erchub.workspace import prepare_compendium

_log = logging.getLogger(__name__)
#: bytes of a compendium's .erc/metadata_o2r_1.json read at most
MAX_METADATA_BYTES = 16 * 1024**2

#: o2r's id alphabet; 6 characters give 62**6 (about 5.7e10) ids
ID_ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 6
#: how a compendium's archive arrives: a plain workspace (erc.yml and metadata are generated)
#: or a compendium that already holds its erc.yml
CONTENT_TYPES = ("workspace", "compendium")
COMPENDIA_DIRECTORY = "compendia"
UPLOADS_DIRECTORY = "uploads"
#: the file an entry of uploads/ is locked through while it is in use (see :func:`new_entry`)
IN_USE_FILE = ".in-use"

#: bytes per chunk of streamed files and archives
CHUNK_BYTES = 256 * 1024
#: chunks an archive writer may run ahead of its reader (bounds the memory of a download)
QUEUED_CHUNKS = 8
#: seconds a blocked archive writer waits before it checks whether its reader gave up
WRITER_POLL_SECONDS = 0.2
ARCHIVE_FORMATS = ("zip", "tar.gz")
ArchiveFormat = Literal["zip", "tar.gz"]

#: Built-in types only (not the host's /etc/mime.types, which differs between machines), plus
#: the formats of compendia that Python does not know.
_MIME = mimetypes.MimeTypes()
for _type, _suffixes in {
    "application/x-ipynb+json": (".ipynb",),
    "application/yaml": (".yml", ".yaml"),
    "text/markdown": (".md", ".Rmd", ".rmd"),
    "text/x-r": (".R", ".r"),
    "text/plain": (".txt", ".cff", ".toml", ".cfg", ".ini", ".lock"),
}.items():
    for _suffix in _suffixes:
        _MIME.add_type(_type, _suffix)
_ENCODED_TYPES = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
}
_PLAIN_NAMES = {"postBuild", "start", "Dockerfile", "Pipfile", "LICENSE", "LICENCE", "COPYING"}


@dataclass
class StagedCompendium:
    """An ingested compendium, complete, waiting in ``staging`` to be installed."""

    #: the compendium's root (erc.yml at its top), inside ``staging``
    root: Path
    #: the staging directory below uploads/, removed by :func:`discard`
    staging: Path
    #: the o2r metadata, as stored in ``.erc/metadata_o2r_1.json``
    metadata: dict[str, Any]
    #: the lock that marks ``staging`` in use by this process (see :func:`new_entry`)
    hold: int = -1


def new_compendium_id() -> str:
    """A random o2r-style compendium id (six letters and digits); the caller checks that it
    is free."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def compendium_path(data_dir: Path | str, compendium_id: str) -> Path:
    return Path(data_dir) / COMPENDIA_DIRECTORY / compendium_id


def ingest(
    archive: Path,
    content_type: str,
    data_dir: Path | str,
    limits: ArchiveLimits = DEFAULT_LIMITS,
) -> StagedCompendium:
    """Extract ``archive`` safely into a staging directory and complete it as a compendium.

    ``workspace``: erc.yml is generated when missing, metadata extracted and written.
    ``compendium``: the archive must hold a valid erc.yml; its ``.erc/metadata_o2r_1.json`` is
    kept when present, else extracted. Raises InvalidERC or UnsafeArchive (one line each);
    on any error the staging directory is gone.
    """
    if content_type not in CONTENT_TYPES:
        raise InvalidERC(f"content_type must be workspace or compendium, got {content_type!r}")
    return stage(data_dir, lambda target: extract_archive(archive, target, limits), content_type)


def stage(
    data_dir: Path | str, fill: Callable[[Path], Path], content_type: str = "compendium"
) -> StagedCompendium:
    """A compendium made in a new staging directory and completed as an upload is.

    ``fill(target)`` writes the files into ``target`` (which does not exist yet) and returns
    the compendium's root (``target`` or a folder in it); ``content_type`` as for
    :func:`ingest`. On any error the staging directory is gone.
    """
    staging, hold = new_entry(Path(data_dir) / UPLOADS_DIRECTORY, "staging-")
    try:
        root = fill(staging / "content")
        metadata = _complete(root, content_type)
    except ErchubError as error:
        remove_entry(staging, hold)
        raise type(error)(_without_server_paths(str(error), staging)) from None
    except BaseException:
        remove_entry(staging, hold)
        raise
    return StagedCompendium(root=root, staging=staging, metadata=metadata, hold=hold)


def _without_server_paths(message: str, staging: Path) -> str:
    """A message naming the extracted folder (``no notebook in /srv/.../staging-x/content``)
    as the client knows it: "the archive"."""
    for base in {os.path.realpath(staging), str(staging)}:
        message = re.sub(re.escape(base) + r"[^\s:;,'\"]*", "the archive", message)
    return message


def _complete(root: Path, content_type: str) -> dict[str, Any]:
    """Validate the extracted compendium at ``root``, complete it, return its metadata."""
    try:
        if content_type == "workspace":
            prepare_compendium(root, write=True)
            return _read_metadata(root)
        erc = load_erc(root)
        if erc is None:
            raise InvalidERC(
                f"the archive holds no {ERC_FILENAME} at its top level; upload it with "
                "content_type workspace to have one generated"
            )
        workspace = prepare_compendium(root, write=False)
        if safefs.is_file(root, METADATA_PATH):
            return _read_metadata(root)
        metadata = extract_metadata(root, erc, workspace.files)
        write_metadata(root, metadata)
        return metadata
    except UnicodeDecodeError as error:
        raise InvalidERC(f"a text file of the compendium is not UTF-8: {error.reason}") from None
    except (IsADirectoryError, NotADirectoryError, FileNotFoundError) as error:
        # e.g. an erc.yml that is a directory, or a link to a place that does not exist
        name = Path(error.filename).name if error.filename else "a file"
        raise InvalidERC(f"{name}: cannot be read or written: {error.strerror}") from None


def _read_metadata(root: Path) -> dict[str, Any]:
    try:
        metadata = jsonlimits.loads(safefs.read_bytes(root, METADATA_PATH, MAX_METADATA_BYTES))
    except (UnicodeDecodeError, json.JSONDecodeError, jsonlimits.TooDeep) as error:
        raise InvalidERC(f"{METADATA_PATH}: not valid JSON: {error}") from None
    except (safefs.OutsideRoot, safefs.FileTooLarge) as error:
        raise InvalidERC(f"{METADATA_PATH}: {error}") from None
    if not isinstance(metadata, dict):
        raise InvalidERC(f"{METADATA_PATH}: must hold a JSON object")
    return metadata


def install(staged: StagedCompendium, data_dir: Path | str, compendium_id: str) -> Path:
    """Move the staged compendium to ``data_dir/compendia/<compendium_id>`` with one rename
    (the staging directory stays for :func:`discard`). Raises FileExistsError when that id's
    directory exists."""
    target = compendium_path(data_dir, compendium_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    # os.rename would silently replace an empty directory of that name
    if os.path.lexists(target):
        raise FileExistsError(f"compendium directory {compendium_id} exists")
    os.rename(staged.root, target)
    return target


def discard(staged: StagedCompendium) -> None:
    remove_entry(staged.staging, staged.hold)
    staged.hold = -1  # closed: a descriptor number is reused at once by the next file


def new_entry(uploads: Path, prefix: str) -> tuple[Path, int]:
    """A new private directory below ``uploads`` (an upload, a staging; a shipment's bag below
    shipments/), marked in use by this
    process: its :data:`IN_USE_FILE` is locked (``flock``) until :func:`remove_entry` closes
    the returned descriptor, or the process ends, however it ends (the system drops the lock
    of a killed process). :func:`sweep_uploads` so tells the leftovers of a service that was
    killed from work in progress, of this service or of another one on the same uploads/."""
    uploads.mkdir(parents=True, exist_ok=True)
    entry = Path(tempfile.mkdtemp(prefix=prefix, dir=uploads))
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    hold = os.open(entry / IN_USE_FILE, flags, 0o600)
    fcntl.flock(hold, fcntl.LOCK_EX)
    return entry, hold


def remove_entry(entry: Path, hold: int) -> None:
    """Remove an entry of :func:`new_entry` and let go of it (``hold`` -1: let go already).
    Call it once per entry: the descriptor's number belongs to the next file opened."""
    _remove_quietly(entry)
    if hold >= 0:
        os.close(hold)


def abandoned(entry: Path) -> bool | None:
    """Whether ``entry`` of uploads/ was made by :func:`new_entry` in a process that is gone
    (its lock held by nobody: True) or is in use (False); None for an entry without the mark
    (a deletion's, or one older than the mark). A lock this process holds through another
    descriptor counts as held: ``flock`` locks belong to open files, not processes."""
    try:
        probe = os.open(entry / IN_USE_FILE, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(probe)
    return True


def _remove_quietly(path: Path) -> None:
    """Remove a tree of the service's own; a failure is logged, never raised (it runs in
    cleanups, and what stays behind is swept at the next start, see :func:`sweep_uploads`)."""
    try:
        safefs.remove_tree(path)
    except OSError as error:
        _log.warning("could not remove %s: %s", path, error.strerror or error)


def sweep_uploads(data_dir: Path | str, older_than: float, now: float | None = None) -> int:
    """Remove what uploads, stagings and deletions left in ``data_dir/uploads`` (a service
    that was killed, a removal that failed), as :func:`sweep_entries` does."""
    return sweep_entries(Path(data_dir) / UPLOADS_DIRECTORY, older_than, now)


def sweep_entries(directory: Path, older_than: float, now: float | None = None) -> int:
    """Remove the leftovers among the entries of ``directory``: every entry whose maker is
    gone (:func:`abandoned`), never one in use, and every unmarked entry that nothing changed
    for ``older_than`` seconds. Safe while other processes (replicas of the service on a
    shared data directory) work there. Returns how many entries went."""
    if not directory.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - older_than
    swept = 0
    for entry in list(directory.iterdir()):
        state = abandoned(entry)
        if state or (state is None and _last_change(entry) < cutoff):
            _remove_quietly(entry)
            swept += not os.path.lexists(entry)
    return swept


def _last_change(entry: Path) -> float:
    """The newest modification time of ``entry`` and its direct children (an upload in
    progress writes a file inside its directory)."""
    newest = entry.lstat().st_mtime
    if entry.is_dir() and not entry.is_symlink():
        with os.scandir(entry) as children:
            for child in children:
                with contextlib.suppress(OSError):
                    newest = max(newest, child.stat(follow_symlinks=False).st_mtime)
    return newest


def delete_compendium_dir(data_dir: Path | str, compendium_id: str) -> None:
    """Remove a compendium's files. The directory is first renamed into uploads/, so that it
    disappears at once even while the removal of a large tree takes time or fails half-way."""
    target = compendium_path(data_dir, compendium_id)
    if not os.path.lexists(target):
        return
    uploads = Path(data_dir) / UPLOADS_DIRECTORY
    uploads.mkdir(parents=True, exist_ok=True)
    doomed = uploads / f"deleted-{compendium_id}-{secrets.token_hex(4)}"
    os.rename(target, doomed)
    _remove_quietly(doomed)


# -- files ------------------------------------------------------------------------------------


def mime_type(name: str) -> str:
    """The media type of a file, by its name; ``application/octet-stream`` when unknown."""
    if name in _PLAIN_NAMES:
        return "text/plain"
    guessed, encoding = _MIME.guess_type(name, strict=False)
    if encoding is not None:
        return _ENCODED_TYPES.get(encoding, "application/octet-stream")
    return guessed or "application/octet-stream"


def file_tree(root: Path) -> dict[str, Any]:
    """The compendium's files as an o2r-style tree.

    Each node: ``path`` (POSIX, relative to the compendium, ``""`` for the root), ``name``,
    ``type`` (``directory`` or ``file``), ``size`` (bytes; a directory's is the sum of its
    files'); a file has ``mimetype``, a directory ``children`` (sorted by name). A link to a
    file inside the compendium counts as that file; a link to a directory appears as an empty
    directory (not followed, so that a loop cannot make the tree endless); links that lead
    outside are left out. Built without recursion, so that no depth breaks it.
    """
    real_root = os.path.realpath(root)
    top = _directory(Path(root), "", root.name)
    # Directories in the order they were opened: children come after their parents, so the
    # reversed order adds each directory's size to its parent after its own is complete.
    opened = [top]
    pending = [top]
    while pending:
        node = pending.pop()
        with os.scandir(node.pop("_directory")) as entries:
            ordered = sorted(entries, key=lambda entry: entry.name)
        for entry in ordered:
            relative = f"{node['path']}/{entry.name}" if node["path"] else entry.name
            child = _node(entry, relative, real_root)
            if child is None:
                continue
            node["children"].append(child)
            if "_directory" in child:
                opened.append(child)
                pending.append(child)
    for node in reversed(opened):
        node["size"] = sum(child["size"] for child in node["children"])
    return top


def _directory(path: Path | None, relative: str, name: str) -> dict[str, Any]:
    """A directory's node; ``path`` when its entries are still to be read."""
    node: dict[str, Any] = {
        "path": relative,
        "name": name,
        "type": "directory",
        "size": 0,
        "children": [],
    }
    if path is not None:
        node["_directory"] = path
    return node


def _node(entry: os.DirEntry[str], relative: str, real_root: str) -> dict[str, Any] | None:
    if entry.is_symlink():
        if not safefs.is_within(real_root, os.path.realpath(entry.path)):
            return None
        if entry.is_dir():
            return _directory(None, relative, entry.name)
    if entry.is_dir(follow_symlinks=False):
        return _directory(Path(entry.path), relative, entry.name)
    if not entry.is_file():
        return None  # dangling links, fifos
    return {
        "path": relative,
        "name": entry.name,
        "type": "file",
        "size": entry.stat().st_size,
        "mimetype": mime_type(entry.name),
    }


def read_chunks(
    source: Path | BinaryIO, chunk_bytes: int = CHUNK_BYTES
) -> Generator[bytes, None, None]:
    """The content of the file at ``source`` (a path, or a file open for reading, which the
    caller closes) in chunks."""
    with (
        open(source, "rb") if isinstance(source, Path) else contextlib.nullcontext(source) as stream
    ):
        while chunk := stream.read(chunk_bytes):
            yield chunk


# -- streamed archives ------------------------------------------------------------------------


class _DownloadCanceled(Exception):
    """The reader of an archive stream went away; the writer stops."""


class ArchiveStream:
    """A compendium written as a zip or tar.gz archive by a thread, read in chunks.

    The writer thread hands chunks of about :data:`CHUNK_BYTES` to the reader through a queue
    of at most :data:`QUEUED_CHUNKS`, so memory stays flat whatever the compendium's size.
    Files sit below a top-level folder ``prefix`` (the compendium id); symbolic links are
    stored as links. ``extra``: files made for the archive (path -> content, e.g. metadata
    exports), written after the compendium's and in place of its files of the same path.
    :meth:`next_chunk` blocks (call it in an executor); :meth:`close` stops the writer when
    the reader gives up early.
    """

    def __init__(
        self,
        root: Path,
        archive_format: ArchiveFormat,
        prefix: str,
        extra: Mapping[str, bytes] | None = None,
    ) -> None:
        if archive_format not in ARCHIVE_FORMATS:
            raise ValueError(f"unknown archive format {archive_format!r}")
        self._root = root
        self._extra = dict(extra or {})
        self._format = archive_format
        self._prefix = prefix
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(QUEUED_CHUNKS)
        self._closed = threading.Event()
        self._buffer = bytearray()
        self._thread = threading.Thread(
            target=self._write, name=f"archive-{prefix}.{archive_format}", daemon=True
        )
        self._started = False
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            while (chunk := self.next_chunk()) is not None:
                yield chunk
        finally:
            self.close()

    def next_chunk(self) -> bytes | None:
        """The next chunk, None at the end; re-raises the writer's error."""
        if self._done:
            return None
        if not self._started:
            self._started = True
            self._thread.start()
        item = self._queue.get()
        if item is None:
            self._done = True
            return None
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return item

    def close(self) -> None:
        """Stop the writer (it notices within :data:`WRITER_POLL_SECONDS`)."""
        self._closed.set()

    # -- the writer thread -------------------------------------------------------------------

    def _write(self) -> None:
        try:
            if self._format == "zip":
                _write_zip(self._root, self._prefix, self, self._extra)
            else:
                _write_tar_gz(self._root, self._prefix, self, self._extra)
            self.flush()
            self._put(None)
        except _DownloadCanceled:
            return
        except BaseException as error:  # handed to the reader, which raises it
            self._put(error)

    def write(self, data: bytes) -> int:
        """The file-like sink the archive writers write to (never seekable)."""
        if self._closed.is_set():
            raise _DownloadCanceled
        self._buffer += data
        if len(self._buffer) >= CHUNK_BYTES:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            chunk = bytes(self._buffer)
            self._buffer.clear()
            self._put(chunk)

    def _put(self, item: bytes | BaseException | None) -> None:
        while True:
            try:
                self._queue.put(item, timeout=WRITER_POLL_SECONDS)
                return
            except queue.Full:
                if self._closed.is_set():
                    raise _DownloadCanceled from None


def _walk(root: Path) -> Iterator[tuple[Path, str]]:
    """Every entry below ``root`` with its POSIX path relative to it, directories before their
    content, sorted; linked directories are not descended into. A directory that cannot be
    read is an error, not a gap in the archive."""
    for directory, subdirectories, names in os.walk(root, onerror=_raise):
        subdirectories.sort()
        base = Path(directory)
        relative = base.relative_to(root).as_posix()
        prefix = "" if relative == "." else relative + "/"
        for name in sorted(subdirectories + names):
            yield base / name, prefix + name


def _raise(error: OSError) -> None:
    raise error


def _write_zip(root: Path, prefix: str, sink: ArchiveStream, extra: Mapping[str, bytes]) -> None:
    # A sink without seek() makes zipfile write data descriptors after each member.
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path, relative in _walk(root):
            if relative in extra:
                continue
            name = f"{prefix}/{relative}"
            info = os.lstat(path)
            member = zipfile.ZipInfo(name, time.gmtime(max(info.st_mtime, 315532800))[:6])
            member.create_system = 3  # Unix: the mode bits below are meaningful
            if stat.S_ISLNK(info.st_mode):
                member.external_attr = (stat.S_IFLNK | 0o777) << 16
                bundle.writestr(member, os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                member.filename += "/"
                member.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                bundle.writestr(member, b"")
            elif stat.S_ISREG(info.st_mode):
                executable = info.st_mode & stat.S_IXUSR
                member.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
                member.compress_type = zipfile.ZIP_DEFLATED
                # Declared up front so that zipfile chooses zip64 for large files itself.
                member.file_size = info.st_size
                with bundle.open(member, "w") as target:
                    _copy_file(path, target.write)
        for relative, content in sorted(extra.items()):
            member = zipfile.ZipInfo(f"{prefix}/{relative}", time.gmtime()[:6])
            member.create_system = 3
            member.external_attr = (stat.S_IFREG | 0o644) << 16
            member.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(member, content)


def _write_tar_gz(root: Path, prefix: str, sink: ArchiveStream, extra: Mapping[str, bytes]) -> None:
    # "w|gz": a stream, never seeking in the sink
    with tarfile.open(fileobj=sink, mode="w|gz", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for path, relative in _walk(root):
            if relative in extra:
                continue
            member = tar.gettarinfo(str(path), arcname=f"{prefix}/{relative}")
            # The service's user and group mean nothing to the downloader.
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            if member.isreg():
                with open(path, "rb") as source:
                    tar.addfile(member, source)
            elif member.isdir() or member.issym():
                tar.addfile(member)
        for relative, content in sorted(extra.items()):
            made = tarfile.TarInfo(f"{prefix}/{relative}")
            made.size, made.mode, made.mtime = len(content), 0o644, int(time.time())
            tar.addfile(made, io.BytesIO(content))


def _copy_file(path: Path, write: Callable[[bytes], Any]) -> None:
    for chunk in read_chunks(path):
        write(chunk)
