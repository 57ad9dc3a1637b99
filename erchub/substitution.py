"""Substitution (o2r's substituter): a new compendium made of a *base* compendium in which some
files are replaced by files of an *overlay* compendium, e.g. the same analysis on other data.

Pure planning, no I/O. The service parses the request (:func:`parse_request`), lists the files
of both compendia, asks :func:`plan_substitution` what the new compendium holds, copies
accordingly, extracts the new compendium's metadata as for an upload, and asks
:func:`substituted_metadata` for the metadata to store.

Request (o2r's fields)::

    {"base": "<id>", "overlay": "<id>",
     "substitutionFiles": [{"base": "data.csv", "overlay": "data/new.csv"}],
     "metadataHandling": "keepBase" | "extractAndMerge" | "extract"}

``metadataHandling`` is optional, ``keepBase`` by default (o2r's original behaviour). Every
problem is an :class:`InvalidSubstitution` whose message starts with the field it concerns
(``substitutionFiles.0.base: ...``).

Rules for ``substitutionFiles`` (at least one pair, at most :data:`MAX_PAIRS`):

* both paths are relative POSIX paths as the file lists write them: not absolute, no ``..``,
  no empty or ``.`` segment, no backslash, no NUL;
* neither is ``erc.yml`` nor below ``.erc/``: the configuration and the derived metadata belong
  to the compendium and are not data to swap;
* the base path is a file of the base compendium, the overlay path one of the overlay's (their
  file lists, as :func:`erchub.workspace.list_files` gives them);
* no base path twice (which overlay file would win?); one overlay file may replace several
  base files.

Files of the new compendium: every file of the base's file list except ``.erc/`` (its metadata
is made anew; files the list leaves out, such as ``.ercignore`` matches, are not carried over),
erc.yml unchanged (its id too), and each named base path holding the content of its overlay
file. The path is kept, so the notebook reads the new data where it read the old, in jobs and
in a reviewer's session alike. o2r instead copied the overlay file to the root under its own
name (``overlay_`` prepended while that name was taken) and bind-mounted it over the base path
at run time; erchub executes a compendium's files as they are, with no per-compendium mounts,
so the content goes where the notebook reads it and no second copy is kept. o2r's ``filename``
field is kept in the record: the path in the new compendium that holds the overlay file, i.e.
the base path.

The record stored as ``substitution`` in the new compendium's o2r metadata::

    {"base", "overlay", "metadataHandling",
     "substitutionFiles": [{"base", "overlay", "filename"}]}

Metadata (:func:`substituted_metadata`), given the base's stored metadata and the metadata
extracted from the new compendium's files:

``keepBase``
    The base's metadata (the author's title, creators, keywords, licenses, ...).
``extract``
    The extracted metadata only; nothing of the base.
``extractAndMerge``
    The base's metadata with every extracted field that has a value laid over it: an extracted
    title, description, creators, keywords, date, licenses, mainfile and displayfile win; an
    extracted field that is null or empty (no keywords found, say) keeps the base's value.

In every mode:

* the fields that describe the files (:data:`FILE_FIELDS`: ``erc_id``, ``license_files``,
  ``dependency_files``, ``depends``, ``files``) are the extracted ones, since they must tell the
  truth about the new files (the service owns them, as ``PUT /compendium/{id}/metadata`` does);
* the base's ``identifier`` (its DOI) is dropped: it names the base, not the new compendium;
  so is its ``origin`` (where the loader got the base from: the new compendium was not loaded);
* a ``substitution`` record of the base (a base that was itself substituted) is replaced by the
  new one.

Every field the service owns (``readOnly`` in the metadata schema) must be one of
:data:`FILE_FIELDS` or :data:`NOT_INHERITED`; a unit test holds the schema to that.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from erchub.erc import ERC_FILENAME
from erchub.errors import ErchubError
from erchub.metadata import METADATA_DIRECTORY

KEEP_BASE = "keepBase"
EXTRACT_AND_MERGE = "extractAndMerge"
EXTRACT = "extract"
METADATA_HANDLING = (KEEP_BASE, EXTRACT_AND_MERGE, EXTRACT)
DEFAULT_METADATA_HANDLING = KEEP_BASE

REQUEST_FIELDS = ("base", "overlay", "substitutionFiles", "metadataHandling")
PAIR_FIELDS = ("base", "overlay")
#: most file pairs in one request
MAX_PAIRS = 1000
#: longest compendium id and file path accepted (characters)
MAX_ID_CHARS = 64
MAX_PATH_CHARS = 4096
ID_PATTERN = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_ID_CHARS}}}")

#: metadata fields that describe the compendium's files: always extracted from the new files
FILE_FIELDS = ("erc_id", "license_files", "dependency_files", "depends", "files")
#: metadata fields of the base that the new compendium never inherits: its DOI, where the
#: loader got it from, how it was itself substituted and which compendium it is a version of
#: or derived from all describe the base alone
NOT_INHERITED = ("identifier", "origin", "substitution", "is_new_version_of", "derived_from")
#: the field of the o2r metadata that records a substitution
RECORD_FIELD = "substitution"

Side = Literal["base", "overlay"]


class InvalidSubstitution(ErchubError):
    """A substitution request that cannot be carried out; the message names the field."""

    exit_code = 2


@dataclass(frozen=True)
class FilePair:
    """One file of the base (``base``) replaced by one of the overlay (``overlay``)."""

    base: str
    overlay: str


@dataclass(frozen=True)
class SubstitutionRequest:
    base: str
    overlay: str
    files: tuple[FilePair, ...]
    metadata_handling: str = DEFAULT_METADATA_HANDLING


@dataclass(frozen=True)
class FileSource:
    """Where a file of the new compendium comes from: a path in the base or the overlay."""

    side: Side
    path: str


@dataclass(frozen=True)
class SubstitutionPlan:
    #: every file of the new compendium (sorted paths) and where its content comes from
    files: dict[str, FileSource]
    #: the ``substitution`` record of the new compendium's metadata
    record: dict[str, Any]


def parse_request(body: object) -> SubstitutionRequest:
    """The request in a ``POST /substitution`` body, checked (rules in the module docstring,
    except the files' existence, which :func:`plan_substitution` checks)."""
    if not isinstance(body, Mapping):
        raise InvalidSubstitution("body: must be a JSON object")
    unknown = sorted(str(key) for key in body if key not in REQUEST_FIELDS)
    if unknown:
        raise InvalidSubstitution(f"body: unknown field {', '.join(unknown)}")
    base = _compendium_id(body, "base")
    overlay = _compendium_id(body, "overlay")
    handling = body.get("metadataHandling", DEFAULT_METADATA_HANDLING)
    if handling not in METADATA_HANDLING:
        raise InvalidSubstitution(
            f"metadataHandling: must be one of {', '.join(METADATA_HANDLING)}, got {handling!r}"
        )
    pairs = body.get("substitutionFiles")
    if "substitutionFiles" not in body:
        raise InvalidSubstitution("substitutionFiles: is required")
    if not isinstance(pairs, list) or not pairs:
        raise InvalidSubstitution(
            "substitutionFiles: must be a non-empty list of {base, overlay} file pairs"
        )
    if len(pairs) > MAX_PAIRS:
        raise InvalidSubstitution(f"substitutionFiles: at most {MAX_PAIRS} pairs, got {len(pairs)}")
    files = tuple(_pair(pair, f"substitutionFiles.{index}") for index, pair in enumerate(pairs))
    first_of: dict[str, int] = {}
    for index, pair in enumerate(files):
        if pair.base in first_of:
            raise InvalidSubstitution(
                f"substitutionFiles.{index}.base: {pair.base!r} is substituted twice "
                f"(also by substitutionFiles.{first_of[pair.base]})"
            )
        first_of[pair.base] = index
    return SubstitutionRequest(base, overlay, files, str(handling))


def _compendium_id(body: Mapping[str, Any], name: str) -> str:
    if name not in body:
        raise InvalidSubstitution(f"{name}: is required (the id of the {name} compendium)")
    value = body[name]
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InvalidSubstitution(
            f"{name}: must be a compendium id (at most {MAX_ID_CHARS} letters, digits, '-' or "
            f"'_'), got {_show(value)}"
        )
    return value


def _pair(value: object, where: str) -> FilePair:
    if not isinstance(value, Mapping):
        raise InvalidSubstitution(f"{where}: must be an object {{base, overlay}}")
    unknown = sorted(str(key) for key in value if key not in PAIR_FIELDS)
    if unknown:
        raise InvalidSubstitution(f"{where}: unknown field {', '.join(unknown)}")
    return FilePair(
        base=check_path(value.get("base"), f"{where}.base"),
        overlay=check_path(value.get("overlay"), f"{where}.overlay"),
    )


def check_path(value: object, where: str) -> str:
    """``value`` if it is a path that may be substituted (rules in the module docstring)."""
    if not isinstance(value, str) or not value:
        raise InvalidSubstitution(f"{where}: must be a file path (a non-empty string)")
    if len(value) > MAX_PATH_CHARS:
        raise InvalidSubstitution(f"{where}: longer than {MAX_PATH_CHARS} characters")
    if "\x00" in value:
        raise InvalidSubstitution(f"{where}: {value!r} holds a NUL character")
    if "\\" in value:
        raise InvalidSubstitution(f"{where}: {value!r}: separate folders with '/', not '\\'")
    if value.startswith("/"):
        raise InvalidSubstitution(
            f"{where}: {value!r} is an absolute path; give it relative to the compendium"
        )
    parts = value.split("/")
    if ".." in parts:
        raise InvalidSubstitution(f"{where}: {value!r} leads out of the compendium ('..')")
    if any(part in ("", ".") for part in parts):
        raise InvalidSubstitution(
            f"{where}: {value!r} is not a plain relative path (empty or '.' segment)"
        )
    if value == ERC_FILENAME or value.startswith(METADATA_DIRECTORY) or value == ".erc":
        raise InvalidSubstitution(
            f"{where}: {value!r} is the compendium's configuration or metadata "
            f"({ERC_FILENAME}, {METADATA_DIRECTORY}), which cannot be substituted"
        )
    return value


def plan_substitution(
    request: SubstitutionRequest, base_files: Iterable[str], overlay_files: Iterable[str]
) -> SubstitutionPlan:
    """The files of the new compendium and its ``substitution`` record, given the file lists
    of the base and the overlay; InvalidSubstitution for a pair naming a missing file."""
    base_set = set(base_files)
    overlay_set = set(overlay_files)
    for index, pair in enumerate(request.files):
        if pair.base not in base_set:
            raise InvalidSubstitution(
                f"substitutionFiles.{index}.base: {pair.base!r} is no file of the base "
                f"compendium {request.base}"
            )
        if pair.overlay not in overlay_set:
            raise InvalidSubstitution(
                f"substitutionFiles.{index}.overlay: {pair.overlay!r} is no file of the overlay "
                f"compendium {request.overlay}"
            )
    sources = {
        path: FileSource("base", path)
        for path in base_set
        if not path.startswith(METADATA_DIRECTORY)
    }
    for pair in request.files:
        sources[pair.base] = FileSource("overlay", pair.overlay)
    record = {
        "base": request.base,
        "overlay": request.overlay,
        "substitutionFiles": [
            {"base": pair.base, "overlay": pair.overlay, "filename": pair.base}
            for pair in request.files
        ],
        "metadataHandling": request.metadata_handling,
    }
    return SubstitutionPlan(files=dict(sorted(sources.items())), record=record)


def substituted_metadata(
    handling: str,
    base: Mapping[str, Any],
    extracted: Mapping[str, Any],
    record: Mapping[str, Any],
) -> dict[str, Any]:
    """The o2r metadata of the new compendium (rules in the module docstring): ``base`` is the
    base's stored metadata, ``extracted`` the metadata extracted from the new files."""
    if handling not in METADATA_HANDLING:
        raise InvalidSubstitution(
            f"metadataHandling: must be one of {', '.join(METADATA_HANDLING)}, got {handling!r}"
        )
    if handling == EXTRACT:
        metadata = dict(extracted)
    else:
        metadata = {key: value for key, value in base.items() if key not in NOT_INHERITED}
        if handling == EXTRACT_AND_MERGE:
            metadata.update((key, value) for key, value in extracted.items() if _has_value(value))
        metadata.update((key, extracted[key]) for key in FILE_FIELDS if key in extracted)
    for key in NOT_INHERITED:
        metadata.pop(key, None)
    metadata[RECORD_FIELD] = dict(record)
    return copy.deepcopy(metadata)


def _has_value(value: object) -> bool:
    if value is None:
        return False
    if isinstance(value, (str, list, dict, tuple)):
        return bool(value.strip() if isinstance(value, str) else value)
    return True


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
