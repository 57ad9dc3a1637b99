"""A session's working copy on a Swarm node: fetched by the session's own container at its start.

On the Swarm (:class:`erchub.spawner.swarm.SwarmERCSpawner`) no host path of the hub reaches the
node a session runs on, so the session's container fetches its working copy itself, before
JupyterLab starts: its command is ``python3 -c <this file's text> <fetch plan> <the server's
command>``. The fetch plan (JSON, :func:`fetch_plan`) names the compendium's archive on the erc
service (``.zip``), the extra files (a job's executed notebook), the folder to
unpack into and the digest of the files the hub fetched for the same start (:func:`files_digest`).
The container asks the erc service with the server's own hub token ($JUPYTERHUB_API_TOKEN: the
user's rights, nothing else, and only while the server exists), over the cluster's internal
network; it unpacks regular files and folders only (no links, no paths outside the folder), checks
the digest, and then becomes the server (``exec``). Any failure ends the container with one line
on stderr and exit code 1, which the spawner shows its user.

The working copy lives on the container's own filesystem: it goes with the service when the
server stops, and nothing is left on the node.

Standard library only, and nothing of erchub: the file runs in the runtime image's Python, which
need not hold erchub (the hub imports it for :func:`files_digest` and :func:`fetch_plan`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

#: tries of each download, and seconds between them: the container's network may not be
#: ready at its first instant
FETCH_TRIES = 5
RETRY_SECONDS = 2.0
#: seconds each download may wait for an answer or a chunk
FETCH_TIMEOUT = 60.0
CHUNK = 1 << 16


class FetchError(Exception):
    """The working copy could not be fetched; the message is for the session's user."""


def files_digest(files: Mapping[str, Path]) -> str:
    """``sha256:<hex>`` of a working copy's regular files (relative POSIX path -> file): each
    one's path, size and content, in the order of the paths."""
    digest = hashlib.sha256()
    for relative in sorted(files):
        path = files[relative]
        digest.update(f"{relative}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def tree_files(root: Path) -> dict[str, Path]:
    """The regular files below ``root`` (not through links), by relative POSIX path."""
    found = {}
    for folder, folders, names in os.walk(root):
        folders[:] = [name for name in folders if not os.path.islink(os.path.join(folder, name))]
        for name in names:
            path = Path(folder, name)
            if not path.is_symlink() and path.is_file():
                found[path.relative_to(root).as_posix()] = path
    return found


def fetch_plan(
    archive_url: str, top: str, extra: Mapping[str, str], target: str, digest: str
) -> str:
    """The fetch plan, JSON: the archive's URL and its top-level folder (``top``, left out when
    unpacking), extra files (relative path -> URL), the folder to unpack into, the digest."""
    return json.dumps(
        {
            "archive": archive_url,
            "top": top,
            "extra": dict(extra),
            "target": target,
            "digest": digest,
        },
        sort_keys=True,
    )


def download(url: str, token: str, destination: Path) -> None:
    """``url`` into ``destination``, with the server's token; a few tries, each bounded."""
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    problem = ""
    for attempt in range(FETCH_TRIES):
        if attempt:
            time.sleep(RETRY_SECONDS)
        try:
            with (
                urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as answer,
                open(destination, "wb") as stream,
            ):
                shutil.copyfileobj(answer, stream, CHUNK)
            return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:  # refused: trying again changes nothing
                raise FetchError(
                    f"the erc service refused the working copy (HTTP {exc.code})"
                ) from None
            problem = f"HTTP {exc.code}"
        except OSError as exc:
            problem = str(getattr(exc, "reason", "") or exc)
    raise FetchError(f"the erc service could not be reached for the working copy: {problem}")


def member_path(name: str, top: str) -> PurePosixPath | None:
    """Where a member of the archive goes below the working copy: its path without the top
    folder; None for the top folder itself; FetchError for a path that would leave it."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise FetchError(f"the compendium's archive has an unsafe path: {name}")
    parts = path.parts
    if top and parts and parts[0] == top:
        parts = parts[1:]
    return PurePosixPath(*parts) if parts else None


def unpack(archive: Path, top: str, target: Path) -> dict[str, Path]:
    """The zip archive's folders and regular files below ``target`` (links, stored with their
    file type in the external attributes, are left out, as in the hub's working copies); the
    files written, by relative path."""
    written = {}
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.infolist():
            relative = member_path(member.filename, top)
            # a Unix file type, when the zip has one: links and special files are left out
            kind = stat.S_IFMT(member.external_attr >> 16)
            if relative is None or kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                continue
            destination = target / relative
            if member.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(member) as source, open(destination, "wb") as stream:
                shutil.copyfileobj(source, stream, CHUNK)
            written[relative.as_posix()] = destination
    return written


def fetch(plan: Mapping[str, object], token: str) -> None:
    """Fetch the working copy that ``plan`` (see :func:`fetch_plan`) names; FetchError when it
    cannot be fetched or its files are not the ones the hub fetched."""
    target = Path(str(plan["target"]))
    target.mkdir(parents=True, exist_ok=True)
    archive = target.parent / f".{target.name}.zip"
    try:
        download(str(plan["archive"]), token, archive)
        files = unpack(archive, str(plan.get("top") or ""), target)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise FetchError(f"the compendium's archive is damaged: {exc}") from None
    finally:
        archive.unlink(missing_ok=True)
    extra = plan.get("extra") or {}
    assert isinstance(extra, dict)
    for relative, url in extra.items():
        path = member_path(str(relative), "")
        if path is None:
            continue
        destination = target / path
        destination.parent.mkdir(parents=True, exist_ok=True)
        download(str(url), token, destination)
        files[path.as_posix()] = destination
    if files_digest(files) != plan["digest"]:
        raise FetchError(
            "the working copy fetched here differs from the compendium the hub opened "
            "(checksum mismatch): it may have changed meanwhile; start the session again"
        )


def main(argv: list[str]) -> None:
    """``<fetch plan JSON> <command...>``: fetch the working copy, then exec the command."""
    if len(argv) < 2:
        sys.exit("erchub working copy: usage: <fetch plan> <command...>")
    try:
        fetch(json.loads(argv[0]), os.environ.get("JUPYTERHUB_API_TOKEN", ""))
    except FetchError as exc:
        sys.exit(f"erchub working copy: {exc}")
    except OSError as exc:
        sys.exit(f"erchub working copy: cannot write the working copy: {exc}")
    os.execvp(argv[1], argv[1:])


if __name__ == "__main__":
    # python3 -c <this text> ARGS: sys.argv is ['-c', ARGS...]
    main(sys.argv[1:])
