"""Content hashes: the tag of a runtime image, the cache key of erchub's wheel."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping
from pathlib import Path

from erchub.errors import BuildError


def content_hash(parts: Mapping[str, bytes]) -> str:
    """A sha256 over named byte strings, independent of the mapping's order."""
    digest = hashlib.sha256()
    for name in sorted(parts):
        digest.update(f"{name}\0{hashlib.sha256(parts[name]).hexdigest()}\n".encode())
    return digest.hexdigest()


def wheel_fingerprint(wheel: Path) -> bytes:
    """The wheel's member names and CRCs: equal for rebuilds of the same sources."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = sorted(archive.infolist(), key=lambda member: member.filename)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BuildError(f"erchub wheel {wheel} cannot be read: {exc}") from exc
    return "\n".join(f"{member.filename} {member.CRC:08x}" for member in members).encode()
