"""What a session's start works with, apart from the spawners: its error, what it opens, its
scratch directory and its working copy.

Everything here that reads or writes files runs in an executor thread (or is such a function):
a start runs on the hub's event loop, which must not wait for a disk.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import shutil
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from jupyterhub.spawner import SpawnException


class SessionError(SpawnException):
    """A session that cannot start: ``message`` is what its user sees (on the progress page
    and the hub's error page), ``log_message`` what the hub logs (default: the message).

    JupyterHub's SpawnException: the hub logs it without a traceback, counts it by ``reason``
    and, with a status code below 500, as the request's failure rather than the hub's error.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str = "session",
        log_message: str = "",
        status_code: int = 400,
    ) -> None:
        super().__init__(message, reason=reason, log_message=log_message, status_code=status_code)
        # the progress stream shows ``jupyterhub_message`` (else ``str()``: the log message)
        self.jupyterhub_message = message

    def again(self) -> SessionError:
        """The same error, to raise in another start (an exception object is raised once)."""
        return SessionError(
            self.message,
            reason=self.reason,
            log_message=self.log_message,
            status_code=self.status_code,
        )


@dataclass
class SessionSource:
    """What a session opens, as the erc service describes it to the session's user."""

    compendium_id: str
    title: str
    #: the notebook to open, relative to the working copy
    notebook: str
    #: changes whenever the compendium's files may have changed
    version: str
    #: a job's executed notebook to add to the working copy as ``notebook`` (its API path)
    job_notebook: str | None = None


@dataclass
class FetchedCompendium:
    """A compendium unpacked for one start: its files and the extra files of the session."""

    source: SessionSource
    root: Path
    #: extra files for the working copy (relative path -> local file): a job's notebook
    extra: dict[str, Path]


@asynccontextmanager
async def scratch_directory(prefix: str = "erchub-session-") -> AsyncIterator[Path]:
    """A temporary directory for one start, made and removed in an executor thread."""
    loop = asyncio.get_running_loop()
    path = await loop.run_in_executor(None, lambda: tempfile.mkdtemp(prefix=prefix))
    try:
        yield Path(path)
    finally:
        await loop.run_in_executor(None, shutil.rmtree, path, True)


def write_working_copy_tar(
    fetched: FetchedCompendium, target: Path, working_copy_dir: str, uid: int
) -> Path:
    """The working copy as the tar file ``target``, whose top entry is
    ``basename(working_copy_dir)``, every file owned by ``uid``: extracted into the directory
    above the mount point, it fills the volume and makes its root the notebook user's. The
    compendium's links are left out (as by :func:`copy_working_copy`)."""
    top = posixpath.basename(working_copy_dir.rstrip("/"))
    now = time.time()

    def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = uid
        info.uname = info.gname = ""
        return info

    with tarfile.open(target, mode="w") as archive:
        root = tarfile.TarInfo(top)
        root.type, root.mode, root.mtime = tarfile.DIRTYPE, 0o755, int(now)
        archive.addfile(owned(root))
        for path in sorted(fetched.root.rglob("*")):
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                continue
            relative = path.relative_to(fetched.root).as_posix()
            archive.add(path, f"{top}/{relative}", recursive=False, filter=owned)
        for relative, source in fetched.extra.items():
            archive.add(source, f"{top}/{relative}", recursive=False, filter=owned)
    return target


def copy_working_copy(fetched: FetchedCompendium, target: Path) -> None:
    """The local variant's working copy: the compendium's files (not its links, as in
    :func:`write_working_copy_tar`), then the extra files; made beside ``target`` and moved
    into place, so that a failed copy is not taken for a working copy by the next start."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)

    def links(directory: str, names: list[str]) -> list[str]:
        return [name for name in names if os.path.islink(os.path.join(directory, name))]

    shutil.copytree(fetched.root, partial, ignore=links)
    for relative, source in fetched.extra.items():
        (partial / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, partial / relative)
    os.replace(partial, target)
