"""Metadata of a compendium, extracted from its main notebook and files.

:func:`extract_metadata` builds the o2r metadata document that :func:`write_metadata` stores as
``.erc/metadata_o2r_1.json``. Field by field (o2r's names):

``erc_id``
    ``id`` of erc.yml.
``title``
    Text of the first Markdown heading (``# ...``) in the notebook; else notebook metadata
    ``erc.title`` or ``title``; else null.
``description``
    The first Markdown paragraph after that heading; else notebook metadata ``erc.description``
    or ``description``; else null.
``creators``
    ``[{name, orcid, affiliation}]`` from notebook metadata ``erc.creators`` (o2r) or else
    ``authors`` (the JupyterLab convention: a list of ``{name, orcid?, affiliation?}`` or of
    names). ORCIDs are reduced to the bare identifier (``0000-0002-1825-0097``) when they
    contain one; an affiliation given as a list is joined with ``"; "``.
``keywords``
    Notebook metadata ``erc.keywords`` or ``keywords``: a list, or one comma-separated string.
``publication_date``
    Notebook metadata ``erc.publication_date`` or ``publication_date``, else null.
``license``
    ``{code, data, text, metadata[, uibindings]}``: the ``licenses`` of erc.yml.
``mainfile``, ``displayfile``
    ``main`` and ``display`` of erc.yml.
``license_files``
    Top-level files named ``LICENSE*``, ``LICENCE*`` or ``COPYING*`` (any letter case).
``dependency_files``
    The runtime manifest: repo2docker's configuration files (:data:`DEPENDENCY_FILENAMES`)
    at the top level or in ``binder/`` or ``.binder/``.
``depends``
    ``[{identifier, version, packageSystem}]`` read from the ``requirements.txt`` and
    ``environment.yml`` among them (``version`` is the version specifier, or null).
``files``
    Every file of the compendium outside ``.erc/`` (the derived metadata lives there).

:func:`default_licenses` chooses the licenses of a generated erc.yml: a recognised license file
sets the kinds its license is meant for (software licenses: code; Creative Commons: text and
data; ODbL: data); every other kind is ``NOASSERTION`` for the author to choose.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import nbformat
import yaml
from nbformat.warnings import MissingIDFieldWarning

from erchub import jsonlimits, safefs
from erchub.erc import LICENSE_KINDS, LICENSE_NOT_SPECIFIED, ErcConfig
from erchub.errors import InvalidERC

METADATA_PATH = ".erc/metadata_o2r_1.json"
METADATA_DIRECTORY = ".erc/"
#: levels a notebook's JSON may nest: cells and outputs take about 8, a JSON output more
NOTEBOOK_MAX_DEPTH = 256

LICENSE_FILE_PATTERN = re.compile(r"(licen[cs]e|copying).*", re.IGNORECASE)
DEPENDENCY_FILENAMES = (
    "requirements.txt",
    "environment.yml",
    "runtime.txt",
    "apt.txt",
    "postBuild",
    "start",
    "Dockerfile",
    "Pipfile",
    "Pipfile.lock",
    "setup.py",
    "pyproject.toml",
)
#: Where repo2docker looks for its configuration files.
DEPENDENCY_DIRECTORIES = ("", "binder/", ".binder/")
PYPI = "https://pypi.org/"
CONDA = "https://anaconda.org/"

ORCID_PATTERN = re.compile(r"[0-9]{4}-[0-9]{4}-[0-9]{4}-[0-9]{3}[0-9X]")
HEADING_PATTERN = re.compile(r" {0,3}#{1,6}\s+(?P<text>.*?)(?:\s+#+)?\s*")
#: A PEP 508 name, extras, then the rest of a requirement line.
REQUIREMENT_PATTERN = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?\s*(?P<rest>.*)"
)
VERSION_OPERATORS = ("===", "==", "~=", "!=", "<=", ">=", "<", ">")
#: conda's match spec: [channel::]name[ version], e.g. "conda-forge::numpy=1.26"
CONDA_SPEC_PATTERN = re.compile(r"(?:.*::)?(?P<name>[^=<>!~\s]*)\s*(?P<version>.*)")

_CODE = ("code",)
_CONTENT = ("text", "data")
_DATA = ("data",)
#: (identifier, phrases that all appear in the normalised license text, kinds it is meant for);
#: the first match wins, so more specific texts come first.
KNOWN_LICENSES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("AGPL-3.0", ("gnu affero general public license version 3",), _CODE),
    ("LGPL-3.0", ("gnu lesser general public license version 3",), _CODE),
    ("LGPL-2.1", ("gnu lesser general public license version 2.1",), _CODE),
    ("GPL-3.0", ("gnu general public license version 3",), _CODE),
    ("GPL-2.0", ("gnu general public license version 2",), _CODE),
    ("Apache-2.0", ("apache license version 2.0",), _CODE),
    ("MPL-2.0", ("mozilla public license version 2.0",), _CODE),
    (
        "BSD-3-Clause",
        ("redistribution and use in source and binary forms", "neither the name"),
        _CODE,
    ),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",), _CODE),
    ("MIT", ("permission is hereby granted free of charge",), _CODE),
    ("Unlicense", ("free and unencumbered software released into the public domain",), _CODE),
    ("CC0-1.0", ("cc0 1.0 universal",), _CONTENT),
    ("CC-BY-SA-4.0", ("attribution-sharealike 4.0 international",), _CONTENT),
    ("CC-BY-4.0", ("attribution 4.0 international",), _CONTENT),
    ("ODbL-1.0", ("open database license",), _DATA),
)


def load_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a notebook of any nbformat version as version 4, validated against its schema.

    Raises :class:`InvalidERC` ``"<name>: not a valid notebook: <reason>"`` for text that is not
    JSON, or JSON that is not a notebook.
    """

    def invalid(reason: str) -> InvalidERC:
        return InvalidERC(f"{path.name}: not a valid notebook: {reason}")

    try:
        data = jsonlimits.loads(path.read_bytes(), NOTEBOOK_MAX_DEPTH)
    except OSError as error:
        raise InvalidERC(f"{path.name}: cannot be read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise invalid("not UTF-8 text") from None
    except json.JSONDecodeError as error:
        reason = f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        raise invalid(reason) from None
    except jsonlimits.TooDeep as error:
        raise invalid(str(error)) from None
    if not isinstance(data, dict):
        raise invalid("not a JSON object")
    if "nbformat" not in data:
        raise invalid("no nbformat version field")
    major, minor = nbformat.reader.get_version(data)
    if not isinstance(major, int) or major not in nbformat.versions:
        raise invalid(f"unsupported nbformat version {major!r}")
    try:
        with warnings.catch_warnings():
            # nbformat adds missing cell ids itself; the warning only says so.
            warnings.simplefilter("ignore", MissingIDFieldWarning)
            notebook = nbformat.versions[major].to_notebook_json(data, minor=minor)
            notebook = nbformat.convert(notebook, 4)
            nbformat.validate(notebook)
    except nbformat.ValidationError as error:
        where = "/".join(str(part) for part in error.absolute_path)
        raise invalid(f"{where}: {error.message}" if where else error.message) from None
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise invalid(f"malformed ({error})") from None
    return notebook


def license_files(files: Iterable[str]) -> list[str]:
    """The top-level license files among ``files``."""
    return [file for file in files if "/" not in file and LICENSE_FILE_PATTERN.fullmatch(file)]


def dependency_files(files: Iterable[str]) -> list[str]:
    """The repo2docker configuration files among ``files``."""
    wanted = {
        directory + name for directory in DEPENDENCY_DIRECTORIES for name in DEPENDENCY_FILENAMES
    }
    return [file for file in files if file in wanted]


def identify_license(text: str) -> str | None:
    """The identifier of the license whose text this is, None when not recognised."""
    normalised = " ".join(re.sub(r"[^a-z0-9.\-]+", " ", text.lower()).split())
    for identifier, phrases, _kinds in KNOWN_LICENSES:
        if all(phrase in normalised for phrase in phrases):
            return identifier
    return None


def default_licenses(root: Path, files: Iterable[str]) -> dict[str, str]:
    """Licenses for a generated erc.yml, from the license files found (see module docstring)."""
    kinds_of = {identifier: kinds for identifier, _phrases, kinds in KNOWN_LICENSES}
    licenses: dict[str, str] = {}
    for file in license_files(files):
        identifier = identify_license((root / file).read_text(encoding="utf-8", errors="replace"))
        if identifier is not None:
            for kind in kinds_of[identifier]:
                licenses.setdefault(kind, identifier)
    return {kind: licenses.get(kind, LICENSE_NOT_SPECIFIED) for kind in LICENSE_KINDS}


def extract_metadata(
    root: Path,
    erc: ErcConfig,
    files: list[str],
    *,
    notebook: nbformat.NotebookNode | None = None,
) -> dict[str, Any]:
    """The o2r metadata of the compendium at ``root`` (fields in the module docstring).

    Reads the main notebook (unless ``notebook`` is given, already loaded) and the
    ``requirements.txt`` and ``environment.yml`` among ``files``.
    """
    if notebook is None:
        notebook = load_notebook(root / erc.main)
    meta = notebook.metadata
    title, description = _title_and_description(notebook.cells)
    dependencies = dependency_files(files)
    return {
        "erc_id": erc.id,
        "title": title or _metadata_text(meta, "title"),
        "description": description or _metadata_text(meta, "description"),
        "creators": _creators(meta),
        "keywords": _keywords(meta),
        "publication_date": _metadata_text(meta, "publication_date"),
        "license": dict(erc.licenses),
        "mainfile": erc.main,
        "displayfile": erc.display,
        "license_files": license_files(files),
        "dependency_files": dependencies,
        "depends": _depends(root, dependencies),
        "files": [file for file in files if not file.startswith(METADATA_DIRECTORY)],
    }


def write_metadata(root: Path, metadata: Mapping[str, Any]) -> Path:
    """Store ``metadata`` as ``root/.erc/metadata_o2r_1.json``, replacing it atomically."""
    text = json.dumps(metadata, indent=2, ensure_ascii=False) + "\n"
    try:
        return safefs.write_text(root, METADATA_PATH, text)
    except safefs.OutsideRoot:
        raise InvalidERC(f"{METADATA_PATH}: leads outside the compendium") from None


def _metadata_value(meta: Mapping[str, Any], name: str) -> Any:
    """Notebook metadata ``erc.<name>`` (o2r's place), else ``<name>``."""
    erc_meta = meta.get("erc")
    if isinstance(erc_meta, Mapping) and erc_meta.get(name) is not None:
        return erc_meta[name]
    return meta.get(name)


def _metadata_text(meta: Mapping[str, Any], name: str) -> str | None:
    value = _metadata_value(meta, name)
    return (value.strip() or None) if isinstance(value, str) else None


def _title_and_description(cells: Iterable[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """The first Markdown heading and the first paragraph after it."""
    title: str | None = None
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        for block, is_heading in _markdown_blocks(cell.get("source", "")):
            if title is None:
                if is_heading:
                    title = block
            elif not is_heading:
                return title, block
    return title, None


def _markdown_blocks(source: str) -> Iterable[tuple[str, bool]]:
    """Headings and paragraphs of Markdown text, as (text, is_heading); fenced code skipped."""
    paragraph: list[str] = []
    in_fence = False
    for line in [*source.splitlines(), ""]:
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        heading = None if in_fence else HEADING_PATTERN.fullmatch(line)
        if in_fence or heading is not None or not stripped:
            if paragraph:
                yield " ".join(paragraph), False
                paragraph = []
            if heading is not None and heading["text"]:
                yield heading["text"], True
        else:
            paragraph.append(stripped)


def _creators(meta: Mapping[str, Any]) -> list[dict[str, str | None]]:
    erc_meta = meta.get("erc")
    people = erc_meta.get("creators") if isinstance(erc_meta, Mapping) else None
    if not isinstance(people, list):
        people = meta.get("authors")
    if not isinstance(people, list):
        return []
    creators = []
    for person in people:
        if isinstance(person, str):
            person = {"name": person}
        if not isinstance(person, Mapping) or not isinstance(person.get("name"), str):
            continue
        creators.append(
            {
                "name": person["name"].strip(),
                "orcid": _orcid(person.get("orcid")),
                "affiliation": _affiliation(person.get("affiliation")),
            }
        )
    return creators


def _orcid(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    match = ORCID_PATTERN.search(value)
    return match.group() if match else value.strip()


def _affiliation(value: object) -> str | None:
    if isinstance(value, list):
        value = "; ".join(str(part).strip() for part in value if str(part).strip())
    return (value.strip() or None) if isinstance(value, str) else None


def _keywords(meta: Mapping[str, Any]) -> list[str]:
    value = _metadata_value(meta, "keywords")
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return []
    words = (word.strip() for word in value if isinstance(word, str))
    return list(dict.fromkeys(word for word in words if word))


def _depends(root: Path, dependencies: list[str]) -> list[dict[str, str | None]]:
    depends: list[dict[str, str | None] | None] = []
    for file in dependencies:
        name = PurePosixPath(file).name
        if name == "requirements.txt":
            lines = (root / file).read_text(encoding="utf-8").splitlines()
            depends.extend(_requirement(line) for line in lines)
        elif name == "environment.yml":
            depends.extend(_conda_environment(root / file, file))
    return [dependency for dependency in depends if dependency is not None]


def _requirement(line: object) -> dict[str, str | None] | None:
    """One pip requirement line; None for blanks, comments, options (-r, -e) and bare URLs."""
    text = re.sub(r"(^|\s)#.*", "", str(line)).strip()
    match = None if text.startswith("-") else REQUIREMENT_PATTERN.fullmatch(text)
    if match is None:
        return None
    rest = match["rest"].split(";", 1)[0].strip()
    if rest and not rest.startswith((*VERSION_OPERATORS, "@")):
        return None  # e.g. git+https://..., a wheel file name
    return {
        "identifier": match["name"],
        "version": rest if rest.startswith(VERSION_OPERATORS) else None,
        "packageSystem": PYPI,
    }


def _conda_environment(path: Path, file: str) -> list[dict[str, str | None] | None]:
    try:
        environment = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidERC(f"{file}: invalid YAML{where}") from None
    specs = environment.get("dependencies") if isinstance(environment, Mapping) else None
    depends: list[dict[str, str | None] | None] = []
    for spec in specs if isinstance(specs, list) else []:
        conda_match = CONDA_SPEC_PATTERN.fullmatch(spec.strip()) if isinstance(spec, str) else None
        if conda_match is not None and conda_match["name"]:
            version = conda_match["version"] or None
            depends.append(
                {"identifier": conda_match["name"], "version": version, "packageSystem": CONDA}
            )
        elif isinstance(spec, Mapping) and isinstance(spec.get("pip"), list):
            depends.extend(_requirement(line) for line in spec["pip"])
    return depends


def orcid_check_character(digits: str) -> str:
    """The check character of an ORCID iD's first 15 digits (ISO 7064 MOD 11-2)."""
    total = 0
    for digit in digits:
        total = (total + int(digit)) * 2
    result = (12 - total % 11) % 11
    return "X" if result == 10 else str(result)


def is_orcid_id(value: str) -> bool:
    """Whether ``value`` is a bare ORCID iD (``0000-0002-1694-233X``) with a right checksum."""
    if not ORCID_PATTERN.fullmatch(value):
        return False
    digits = value.replace("-", "")
    return orcid_check_character(digits[:-1]) == digits[-1]
