"""Packaging a compendium: a BagIt bag with RO-Crate metadata, and its zip.

Two public steps, used by shipments and downloads:

:func:`write_bag`
    I/O. The compendium as a BagIt bag (the ``bagit`` library) that carries RO-Crate metadata
    (the ``rocrate`` library): :func:`erchub.services.exchange.crate.describe_crate` (pure)
    says what the crate holds, :func:`bag_info_tags` (pure) what ``bag-info.txt`` says, and
    :func:`erchub.services.exchange.deposit.zenodo_metadata` (pure, the one o2r -> Zenodo
    mapping) gives the Zenodo metadata stored with the payload.
:func:`zip_bag`
    Streams the bag as a zip, chunk by chunk, in flat memory (:func:`write_zip` writes the same
    stream to a file, e.g. for an upload that must declare its length).

The bag (o2r ERC spec v1, "Archival bundle"; RO-Crate 1.1, "Adding RO-Crate to BagIt")::

    <bag>/
      bagit.txt                  BagIt-Version 0.97, UTF-8, Is-Executable-Research-Compendium
      bag-info.txt               Source-Organization, External-Identifier, ERC-Version, ...
      manifest-sha512.txt        every payload file (sha512: RFC 8493's and RO-Crate's advice)
      manifest-md5.txt           the same in md5 (the o2r BagIt profile asks for md5)
      tagmanifest-sha512.txt, tagmanifest-md5.txt
      data/                      the ERC base directory (o2r) = the RO-Crate root (RO-Crate)
        erc.yml, main.ipynb, ...         the compendium's files (erchub.workspace.list_files:
                                         no .erc/jobs/, .git, checkpoints, .ercignore'd paths)
        .erc/metadata_o2r_1.json         the o2r metadata given to write_bag
        .erc/metadata_zenodo_1.json      zenodo_metadata() of it (o2r's secondary metadata)
        .erc/metadata_datacite_4.xml,    the exports of citation.export(), given the landing
        .erc/codemeta.json, ...          page: DataCite XML, codemeta, schema.org JSON-LD,
                                         CSL-JSON, BibTeX (citation.PACKAGE_FILES)
        ro-crate-metadata.json           the RO-Crate metadata file

The RO-Crate sits inside the payload, as RO-Crate's BagIt convention says, because the o2r
spec makes ``data/`` the ERC's base directory: loading the bag again (the loader unpacks a
bag's ``data/``) gives a compendium whose crate still describes it. A ``ro-crate-metadata.json``
or ``.erc/metadata_*_1.json`` the compendium already holds (a bag loaded earlier) is replaced.

``Is-Executable-Research-Compendium: true`` goes into ``bagit.txt``, as the o2r spec requires,
and also into ``bag-info.txt``: RFC 8493 says the bag declaration holds exactly two lines, so
a strict BagIt reader may ignore or refuse the third; bag-info.txt is where BagIt allows any
tag. The ``bagit`` library writes ``bagit.txt`` itself with no way to add a tag, so the line is
appended after ``make_bag`` and ``Bag.save()`` then recomputes the tag manifests; the
library's own ``Bag.validate()`` accepts the result and reads the tag (``Bag.tags``).

``bagit.make_bag`` and ``Bag.save`` change the process's working directory while they run
(``os.chdir``), which would break relative paths in every other thread of the service (and two
bags made at once would move each other's files). They therefore run in a short-lived child
Python process; everything else runs in the caller's thread (call :func:`write_bag` in an
executor: it reads and hashes every file).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bagit

from erchub import __version__, safefs
from erchub.errors import ErchubError
from erchub.metadata import METADATA_PATH
from erchub.services.compendia.files import ArchiveStream
from erchub.services.exchange.citation import (
    PACKAGE_FILES,
    describe,
    package_exports,
    publication_year,
    publisher_of,
)
from erchub.services.exchange.crate import CRATE_METADATA, describe_crate
from erchub.services.exchange.deposit import ZENODO_METADATA_PATH, zenodo_metadata
from erchub.services.exchange.o2r import (
    doi_of,
    fallback_description,
    identifiers_of,
    o2r_of,
    text_of,
)
from erchub.workspace import list_files

__all__ = ["PackagingError", "bag_info_tags", "write_bag", "write_zip", "zip_bag"]

#: payload checksums: sha512 (RFC 8493 and RO-Crate recommend it) and md5 (o2r's profile)
CHECKSUMS = ("sha512", "md5")
#: bag-info.txt's Source-Organization unless the caller names one
DEFAULT_SOURCE_ORGANIZATION = "erchub"
ERC_TAG = "Is-Executable-Research-Compendium"
ERC_VERSION = "1"

#: Runs in a child process (see the module docstring): make the bag, append the ERC tag to
#: bagit.txt, let the library recompute the tag manifests.
_BAGGER = """\
import json, os, sys
import bagit
args = json.load(sys.stdin)
bagit.make_bag(args["bag_dir"], bag_info=args["bag_info"], checksums=args["checksums"])
with open(os.path.join(args["bag_dir"], "bagit.txt"), "a", encoding="utf-8") as declaration:
    for name, value in args["declaration"].items():
        declaration.write(name + ": " + value + "\\n")
bagit.Bag(args["bag_dir"]).save()
"""


class PackagingError(ErchubError):
    """The bag could not be made."""


# -- BagIt -------------------------------------------------------------------------------------


def bag_info_tags(
    metadata: Mapping[str, Any],
    files: Mapping[str, int],
    *,
    compendium_id: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The tags of ``bag-info.txt`` beside those the library writes (Bagging-Date,
    Payload-Oxum, which it computes). Pure. ``extra`` (e.g. a site's Source-Organization,
    Contact-Name, Contact-Email) overrides or adds.

    ``Source-Organization`` (default ``erchub``), ``External-Description`` (the title),
    ``External-Identifier`` (``urn:uuid:<erc_id>``, the erc_id when it is a URI, else the DOI),
    ``Internal-Sender-Identifier`` (the compendium id), ``Bag-Size`` (of the payload),
    ``Bag-Software-Agent``, ``ERC-Version: 1`` (o2r's BagIt extension) and
    ``Is-Executable-Research-Compendium: true`` (also in bagit.txt, see the module docstring).
    """
    o2r = o2r_of(metadata)
    tags = {
        "Source-Organization": DEFAULT_SOURCE_ORGANIZATION,
        "External-Description": "Executable Research Compendium: "
        + (text_of(o2r.get("title")) or fallback_description(o2r)),
        "Internal-Sender-Identifier": compendium_id,
        "Bag-Size": human_size(sum(files.values())),
        "Bag-Software-Agent": f"erchub {__version__} (bagit.py {bagit.VERSION})",
        "ERC-Version": ERC_VERSION,
        ERC_TAG: "true",
    }
    identifiers = [i for i in identifiers_of(o2r) if not i.startswith("https://doi.org/")]
    external = identifiers[0] if identifiers else doi_of(o2r)
    if external:
        tags["External-Identifier"] = external
    for name, value in (extra or {}).items():
        tags[name] = " ".join(str(value).split())
    return tags


def human_size(size: int) -> str:
    """Bytes as a reader reads them: "512 bytes", "1.5 KB", "3.2 MB" (units of 1024)."""
    amount = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if amount < 1024 or unit == "TB":
            return f"{size} bytes" if unit == "bytes" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def write_bag(
    compendium_dir: Path,
    target_dir: Path,
    *,
    metadata: Mapping[str, Any],
    last_job: Mapping[str, Any] | None,
    job_dir: Path | None = None,
    bag_info: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
    landing_url: str | None = None,
) -> Path:
    """Make ``target_dir`` (absent or an empty directory) a BagIt bag of the compendium at
    ``compendium_dir``, with RO-Crate metadata; return its path. Blocking: call it in an
    executor.

    The payload is the compendium's files as :func:`erchub.workspace.list_files` lists them
    (internal job directories ``.erc/jobs/`` and ignored paths left out, linked files stored as
    files), hard-linked where the file system allows, else copied; ``metadata`` (the o2r
    metadata, e.g. the store's, possibly newer than the compendium's file) is written as
    ``.erc/metadata_o2r_1.json``, :func:`zenodo_metadata` of it as
    ``.erc/metadata_zenodo_1.json``, :func:`describe_crate` as ``ro-crate-metadata.json``.
    ``last_job`` becomes the crate's CreateAction; given its directory ``job_dir``, a
    successful job's display file (``result.display`` / ``files.display``) is added at the
    ERC's display path when the compendium has none there. Given the compendium's
    ``landing_url``, the metadata's exports (:func:`.citation.package_exports`: DataCite XML,
    codemeta, schema.org, CSL-JSON, BibTeX) go into ``.erc/`` too; the year they cite without a
    ``publication_date`` is the year of ``now``. ``bag_info``: extra bag-info.txt
    tags (:func:`bag_info_tags`). The bag is checked with ``bagit.Bag(...).validate(fast=True)``
    (structure and Payload-Oxum; the checksums were just computed).

    Raises :class:`PackagingError` when the library cannot make the bag, FileExistsError when
    ``target_dir`` is not empty, ValueError when it lies inside the compendium; once begun, the
    bag directory is removed on any failure.
    """
    source = Path(compendium_dir)
    target = Path(target_dir).absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} exists and is not an empty directory")
    real_source, real_target = os.path.realpath(source), os.path.realpath(target)
    if os.path.commonpath([real_source, real_target]) == real_source:
        raise ValueError(f"the bag {target} cannot be inside the compendium {source}")
    o2r = o2r_of(metadata)
    now = now or dt.datetime.now(dt.timezone.utc)
    target.mkdir(parents=True, exist_ok=True)
    try:
        files = _place_payload(source, target, o2r, last_job, job_dir)
        if landing_url is not None:
            files.update(_place_exports(target, o2r, files, source.name, landing_url, now))
        crate = describe_crate(o2r, files, last_job=last_job, now=now)
        crate.metadata.write(target)
        tags = bag_info_tags(o2r, files, compendium_id=source.name, extra=bag_info)
        _make_bag(target, tags)
        bagit.Bag(str(target)).validate(fast=True)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def _place_payload(
    source: Path,
    target: Path,
    o2r: Mapping[str, Any],
    last_job: Mapping[str, Any] | None,
    job_dir: Path | None,
) -> dict[str, int]:
    """Put the payload into ``target``; return its files and sizes (the crate file aside)."""
    replaced = {CRATE_METADATA, METADATA_PATH, ZENODO_METADATA_PATH, *PACKAGE_FILES.values()}
    placed = [file for file in list_files(source) if file not in replaced]
    for file in placed:
        # list_files keeps only files inside; resolving them inside keeps it so
        _link_or_copy(safefs.resolve_inside(source, file), target / file)
    for path, content in (
        (METADATA_PATH, dict(o2r)),
        (ZENODO_METADATA_PATH, zenodo_metadata(o2r)),
    ):
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(content, indent=2, ensure_ascii=False) + "\n"
        (target / path).write_text(text, encoding="utf-8")
        placed.append(path)
    display = _job_display(last_job, job_dir)
    wanted = text_of(o2r.get("displayfile"))
    if display is not None and wanted and wanted not in placed and _safe_relative(wanted):
        _link_or_copy(display, target / wanted)
        placed.append(wanted)
    return {file: (target / file).stat().st_size for file in placed}


def _place_exports(
    target: Path,
    o2r: Mapping[str, Any],
    files: Mapping[str, int],
    compendium_id: str,
    landing_url: str,
    now: dt.datetime,
) -> dict[str, int]:
    """Write the metadata's exports into the payload; return their files and sizes."""
    description = describe(
        o2r,
        compendium_id=compendium_id,
        landing_url=landing_url,
        publisher=publisher_of(o2r, urlsplit(landing_url).netloc),
        year=publication_year(o2r, now.timestamp()),
        files=list(files),
    )
    placed = {}
    for path, content in package_exports(description).items():
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_bytes(content)
        placed[path] = len(content)
    return placed


def _job_display(job: Mapping[str, Any] | None, job_dir: Path | None) -> Path | None:
    """The display file a successful job wrote, inside its directory, or None."""
    if job is None or job_dir is None or job.get("status") != "success":
        return None
    relative = None
    for key in ("result", "files"):
        section = job.get(key)
        if isinstance(section, Mapping) and text_of(section.get("display")):
            relative = text_of(section.get("display"))
            break
    if relative is None or not safefs.is_file(job_dir, relative):
        return None
    return safefs.resolve_inside(job_dir, relative)


def _safe_relative(path: str) -> bool:
    try:
        safefs.relative_path(path)
    except safefs.OutsideRoot:
        return False
    return True


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link to ``source``'s file (a link followed), else a copy with its mode bits."""
    target.parent.mkdir(parents=True, exist_ok=True)
    real = os.path.realpath(source)
    try:
        os.link(real, target)
    except OSError:
        shutil.copy2(real, target)


def _make_bag(bag_dir: Path, tags: Mapping[str, str]) -> None:
    arguments = {
        "bag_dir": str(bag_dir),
        "bag_info": {name: value for name, value in tags.items()},
        "checksums": list(CHECKSUMS),
        "declaration": {ERC_TAG: "true"},
    }
    completed = subprocess.run(
        [sys.executable, "-c", _BAGGER],
        input=json.dumps(arguments),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines()
        raise PackagingError(f"the bag could not be made: {lines[-1] if lines else 'bagit failed'}")


# -- zip ---------------------------------------------------------------------------------------


def zip_bag(bag_dir: Path, *, prefix: str | None = None) -> ArchiveStream:
    """The bag as a zip stream: iterate it for chunks of about 256 KiB, or call its
    ``next_chunk()`` in an executor (it blocks) and ``close()`` when the client goes away.

    A thread writes the zip into a bounded queue (:class:`erchub.services.compendia.files.
    ArchiveStream`), so memory stays flat whatever the bag's size; nothing is written to disk.
    Members sit below one folder, ``prefix`` (default: the bag directory's name), as RFC 8493
    asks of a serialized bag; erchub's loader unpacks such a zip to the bag's ``data/``.
    """
    bag = Path(bag_dir)
    return ArchiveStream(bag, "zip", prefix or bag.name)


def write_zip(bag_dir: Path, zip_path: Path, *, prefix: str | None = None) -> Path:
    """Write :func:`zip_bag`'s stream to ``zip_path`` (blocking) and return it; a partial file
    is removed on failure."""
    path = Path(zip_path)
    stream = zip_bag(bag_dir, prefix=prefix)
    try:
        with open(path, "wb") as sink:
            for chunk in stream:
                sink.write(chunk)
    except BaseException:
        stream.close()
        path.unlink(missing_ok=True)
        raise
    return path
