"""What "Publish ERC" decides before anything is packed: which folders may be published, how
(a new compendium, a new version of the launched one, or one derived from it), whether the
notebook's stored outputs can serve as the reference of its check, whether the metadata
holds what publishing needs, and the requirements.txt of a folder that has no environment
file (the notebook's imports, pinned to the workspace's versions). Pure logic, no I/O:
:mod:`erchub.extensions.notebooks` reads the files and the handlers call both.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import pairwise
from pathlib import PurePosixPath
from typing import Any

from erchub.erc import LICENSE_NOT_SPECIFIED
from erchub.errors import Invalid

#: the licences publishing needs (erc.yml's metadata licence is optional)
REQUIRED_LICENSE_KINDS = ("code", "data", "text")


class PublishMode(Enum):
    """How the chosen folder becomes a compendium."""

    #: a compendium of its own, related to none
    NEW = "new"
    #: a new compendium linked to the launched one, which stays as it is (o2r keeps versions)
    NEW_VERSION = "new_version"
    #: a new compendium that records that it was derived from the launched one
    DERIVED = "derived"


#: the o2r metadata field (and the upload's form field) that records each relation
RELATION_FIELDS = {
    PublishMode.NEW_VERSION: "is_new_version_of",
    PublishMode.DERIVED: "derived_from",
}


class OutputState(Enum):
    """Whether a notebook's stored outputs can be the reference its check compares with."""

    #: every code cell ran, in order
    CURRENT = "current"
    #: no code cell was ever run: there is nothing to compare with
    MISSING = "missing"
    #: some code cells did not run, or ran out of order: the outputs are not what the
    #: notebook computes from top to bottom
    STALE = "stale"


@dataclass(frozen=True)
class LaunchedCompendium:
    """The compendium a session was launched for, as far as publishing cares."""

    id: str
    #: its author (the erc service's ``user``)
    user: str
    #: its files (o2r's ``files``), relative to its folder
    files: frozenset[str] = frozenset()
    #: its folder relative to the server's root (a launched session's root is the compendium)
    folder: str = ""


class NotebookSource(Enum):
    """Where the compendium of a notebook comes from, for the ERC panel."""

    #: the notebook is a file of the compendium the session was launched for
    LAUNCHED = "launched"
    #: this session published the notebook's folder (or a folder above it)
    PUBLISHED = "published"


def launched_of(compendium_id: str, shown: object) -> LaunchedCompendium:
    """The launched compendium from the erc service's JSON of it (``GET /compendium/{id}``);
    fields it lacks are empty."""
    shown = shown if isinstance(shown, Mapping) else {}
    metadata = shown.get("metadata")
    o2r = metadata.get("o2r") if isinstance(metadata, Mapping) else None
    files = o2r.get("files") if isinstance(o2r, Mapping) else None
    user = shown.get("user")
    return LaunchedCompendium(
        id=compendium_id,
        user=user if isinstance(user, str) else "",
        files=frozenset(name for name in files or () if isinstance(name, str)),
    )


def notebook_compendium(
    notebook: str, launched: LaunchedCompendium | None, published: Mapping[str, str]
) -> tuple[str, NotebookSource] | None:
    """The compendium the ERC panel shows for ``notebook`` (relative to the server's root):
    one this session published from the notebook's folder or the nearest folder above it,
    else the launched one when the notebook is one of its files, else None (not yet
    published)."""
    for folder in candidate_folders(notebook):
        if folder in published:
            return published[folder], NotebookSource.PUBLISHED
    if launched is not None:
        inside = PurePosixPath(notebook)
        if launched.folder:
            prefix = PurePosixPath(launched.folder)
            if prefix not in inside.parents:
                return None
            inside = inside.relative_to(prefix)
        if inside.as_posix() in launched.files:
            return launched.id, NotebookSource.LAUNCHED
    return None


def candidate_folders(notebook: str) -> list[str]:
    """The folders that may hold the notebook's compendium: the notebook's own folder, then
    each parent up to the server's root (``""``), POSIX paths relative to the root."""
    folders = [parent.as_posix() for parent in PurePosixPath(notebook).parents]
    return ["" if folder == "." else folder for folder in folders]


def default_folder(notebook: str, erc_folder: str | None, erc_main: str | None) -> str:
    """The folder proposed for ``notebook``: the folder of the nearest erc.yml above it when
    that erc.yml names the notebook as its main (the notebook *is* that compendium's), else
    the notebook's own folder (an erc.yml of another compendium higher up never captures it).
    ``erc_main`` is relative to ``erc_folder``."""
    own = candidate_folders(notebook)[0]
    if erc_folder is None or erc_main is None:
        return own
    main = PurePosixPath(erc_folder, erc_main).as_posix() if erc_folder else erc_main
    return erc_folder if main == notebook else own


def choose_folder(notebook: str, folder: str | None, proposed: str) -> str:
    """The folder to publish: ``folder`` as asked (None: ``proposed``); Invalid for one that
    is not the notebook's folder or one of its parents."""
    if folder is None:
        return proposed
    wanted = folder.strip("/")
    if wanted == ".":
        wanted = ""
    folders = candidate_folders(notebook)
    if wanted not in folders:
        shown = ", ".join(repr("/" + name) for name in folders)
        raise Invalid(
            f"folder {folder[:200]!r} does not hold the notebook {notebook!r}:"
            f" choose one of {shown}"
        )
    return wanted


def allowed_modes(
    folder: str,
    launched: LaunchedCompendium | None,
    user: str | None,
    *,
    through_link: bool = False,
) -> list[PublishMode]:
    """How ``folder`` may be published by ``user``, the first one proposed: the launched
    compendium's own folder is a new version of it for its author, derived from it for
    anyone else; every other folder is a new compendium. In a session started through a
    review link (``through_link``) the launched compendium's folder is not published by
    anyone but its author (Invalid): it is someone else's unpublished work, shown to a
    reviewer only, and nothing can be derived from it (the erc service shows it through the
    link only)."""
    if launched is None or folder != launched.folder:
        return [PublishMode.NEW]
    if user is not None and user == launched.user:
        return [PublishMode.NEW_VERSION, PublishMode.DERIVED]
    if through_link:
        raise Invalid(
            "this folder holds the compendium you review through a review link: it is not"
            " yours to publish (only its author can); publish a folder of your own"
        )
    return [PublishMode.DERIVED]


def choose_mode(mode: str | None, allowed: Sequence[PublishMode]) -> PublishMode:
    """The mode asked for (None: the first allowed); Invalid naming the allowed ones."""
    if mode is None:
        return allowed[0]
    names = ", ".join(allowed_mode.value for allowed_mode in allowed)
    try:
        chosen = PublishMode(mode)
    except ValueError:
        raise Invalid(f"mode must be one of {names}, got {mode[:40]!r}") from None
    if chosen not in allowed:
        raise Invalid(f"this folder cannot be published as {chosen.value}: choose {names}")
    return chosen


def output_state(cells: Iterable[Mapping[str, Any]]) -> OutputState:
    """Whether the code cells' stored outputs come from one run from top to bottom: every code
    cell with source has an execution count, and the counts increase. Empty code cells do not
    count (a kernel does not count them either when they are run)."""
    counts = [
        cell.get("execution_count")
        for cell in cells
        if cell.get("cell_type") == "code" and _source(cell).strip()
    ]
    if not counts:
        return OutputState.CURRENT
    if all(count is None for count in counts):
        return OutputState.MISSING
    numbers = [count for count in counts if isinstance(count, int)]
    if len(numbers) < len(counts):
        return OutputState.STALE
    if any(later <= earlier for earlier, later in pairwise(numbers)):
        return OutputState.STALE
    return OutputState.CURRENT


OUTPUT_MESSAGES = {
    OutputState.CURRENT: "The notebook's outputs come from one run from top to bottom.",
    OutputState.MISSING: (
        "The notebook has no stored outputs (its code cells were never run): the check would"
        " have nothing to compare with."
    ),
    OutputState.STALE: (
        "The notebook's outputs are not from one run from top to bottom (some cells did not"
        " run, or ran out of order): the check would compare with outputs the notebook does"
        " not produce."
    ),
}


def author_creators(
    name: str | None, orcid: str | None, notebook_creators: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The authors to propose: the logged-in user (``name``, ``orcid``: either may be unknown,
    an ORCID record's name can be private; left out when both are), then the notebook's own
    creators who are someone else."""
    creators: list[dict[str, Any]] = []
    name, orcid = (name or "").strip(), (orcid or "").strip() or None
    if name or orcid:
        creators.append({"name": name, "orcid": orcid})
    for creator in notebook_creators:
        same_orcid = creators and creator.get("orcid") and creator.get("orcid") == orcid
        same_name = creators and creator.get("name") == creators[0]["name"]
        if not (same_orcid or same_name):
            creators.append(dict(creator))
    return creators


def missing_metadata(o2r: Mapping[str, Any]) -> list[str]:
    """What publishing needs and ``o2r`` lacks, in words: a title, at least one author with a
    name, the code, data and text licences (``NOASSERTION`` is no licence)."""
    missing = []
    title = o2r.get("title")
    if not isinstance(title, str) or not title.strip():
        missing.append("a title")
    creators = o2r.get("creators")
    named = [
        creator
        for creator in (creators if isinstance(creators, list) else [])
        if isinstance(creator, Mapping)
        and isinstance(creator.get("name"), str)
        and creator["name"].strip()
    ]
    if not named:
        missing.append("at least one author")
    licenses = o2r.get("license")
    licenses = licenses if isinstance(licenses, Mapping) else {}
    kinds = [kind for kind in REQUIRED_LICENSE_KINDS if not _is_license(licenses.get(kind))]
    if kinds:
        missing.append(f"the {join_words(kinds)} licence" + ("s" if len(kinds) > 1 else ""))
    return missing


def chosen_licenses(o2r: Mapping[str, Any]) -> dict[str, Any]:
    """The licences of the metadata for erc.yml: every kind, ``NOASSERTION`` for one not given."""
    licenses = o2r.get("license")
    licenses = licenses if isinstance(licenses, Mapping) else {}
    kinds = (*REQUIRED_LICENSE_KINDS, "metadata")
    return {
        kind: licenses[kind] if _is_license(licenses.get(kind)) else LICENSE_NOT_SPECIFIED
        for kind in kinds
    }


def _is_license(value: object) -> bool:
    """A licence identifier, or a non-empty per-file mapping of them."""
    if isinstance(value, str):
        return bool(value.strip()) and value.strip() != LICENSE_NOT_SPECIFIED
    if isinstance(value, Mapping):
        return bool(value) and all(_is_license(item) for item in value.values())
    return False


def join_words(words: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _source(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


#: the environment file written for a folder that has none
REQUIREMENTS_FILE = "requirements.txt"


def imported_modules(cells: Iterable[Mapping[str, Any]]) -> list[str]:
    """The top-level modules the code cells import (absolute imports), sorted; cells that are
    not Python (magics, shell escapes) are read line by line without those lines."""
    modules: set[str] = set()
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        lines = [
            "" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()
        ]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return sorted(modules)


@dataclass(frozen=True)
class Requirements:
    """A requirements.txt for the modules a notebook imports, pinned to the versions installed
    where it was written, and the modules no installed distribution provides."""

    lines: list[str]
    unknown: list[str]

    @property
    def text(self) -> str:
        header = "# written by erchub's Publish ERC from the notebook's imports, pinned to the\n"
        header += "# versions of the workspace it ran in\n"
        return header + "".join(f"{line}\n" for line in self.lines)


def pinned_requirements(
    modules: Iterable[str],
    standard_library: Iterable[str],
    distributions: Mapping[str, Sequence[str]],
    versions: Mapping[str, str],
) -> Requirements:
    """The requirements of ``modules``: each module of no ``standard_library`` becomes the
    distributions that provide it (``distributions``: module -> distribution names, as
    importlib.metadata.packages_distributions() answers) pinned to ``versions``; a module no
    distribution provides is ``unknown``."""
    stdlib = set(standard_library)
    pinned: dict[str, str] = {}
    unknown: list[str] = []
    for module in modules:
        if module in stdlib or module == "__future__":
            continue
        provided = distributions.get(module)
        if not provided:
            unknown.append(module)
            continue
        for distribution in provided:
            version = versions.get(distribution)
            pinned[distribution.lower()] = f"{distribution}=={version}" if version else distribution
    return Requirements(sorted(pinned.values(), key=str.lower), unknown)
