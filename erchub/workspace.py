"""A workspace on disk and how it becomes a compendium.

Files of a workspace (:func:`list_files`): every regular file below the root, except

* paths matched by ``.ercignore`` in the root (gitignore syntax, read with pathspec's
  ``GitIgnoreSpec``; a directory it excludes cannot be re-included, as in git);
* ``.git``, ``.ipynb_checkpoints/``, ``__pycache__/`` anywhere and ``.erc/jobs/``, always,
  whatever ``.ercignore`` says;
* symbolic links that lead out of the workspace; linked directories are not descended into.

The main notebook (:func:`detect_main`): ``main`` of erc.yml when it names one; else the only
notebook (``*.ipynb``, top level or nested) among the files; else ``main.ipynb`` at the top level;
anything else is an :class:`~erchub.errors.InvalidERC` listing the candidates.

:func:`prepare_compendium` turns a workspace into a compendium: it detects the main notebook,
validates it and erc.yml, writes erc.yml when there is none (a new UUID v4 id, the detected main,
``<stem>.html`` as display, licenses from the license files, see
:func:`erchub.metadata.default_licenses`), adds ``main`` to an erc.yml that names none (appended,
so the author's text and comments stay), and writes ``.erc/metadata_o2r_1.json``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pathspec
import yaml

from erchub import safefs
from erchub.erc import (
    ERC_FILENAME,
    ErcConfig,
    default_display,
    new_erc_id,
    parse_erc,
    read_erc_data,
    render_erc,
)
from erchub.erc import (
    erc_path as resolve_erc_path,
)
from erchub.errors import InvalidERC
from erchub.metadata import default_licenses, extract_metadata, load_notebook, write_metadata

__all__ = [
    "DEFAULT_MAIN",
    "ERCIGNORE_FILENAME",
    "Workspace",
    "detect_main",
    "list_files",
    "load_notebook",
    "prepare_compendium",
]

ERCIGNORE_FILENAME = ".ercignore"


def inside(root: Path, relative: str) -> Path:
    """The real path of the compendium's file ``relative``; InvalidERC when it leads outside
    (a link), so that nothing outside a compendium is read as one of its files."""
    try:
        return safefs.resolve_inside(root, relative)
    except safefs.OutsideRoot as error:
        raise InvalidERC(f"{relative}: {error}") from None


#: gitignore patterns that hold whatever .ercignore says
ALWAYS_IGNORED = (".git", ".ipynb_checkpoints/", "__pycache__/", "/.erc/jobs/")
NOTEBOOK_SUFFIX = ".ipynb"
DEFAULT_MAIN = "main.ipynb"
#: how many candidates an ambiguity error lists before it abbreviates
LISTED_CANDIDATES = 10


@dataclass
class Workspace:
    """A workspace ready to be a compendium: its root, erc.yml and files."""

    root: Path
    erc: ErcConfig
    #: sorted POSIX paths relative to root (see :func:`list_files`)
    files: list[str]

    @property
    def main_path(self) -> Path:
        return inside(self.root, self.erc.main)


def list_files(root: Path) -> list[str]:
    """The files of the workspace at ``root``: sorted POSIX paths relative to it."""
    always = pathspec.GitIgnoreSpec.from_lines(ALWAYS_IGNORED)
    ercignore = root / ERCIGNORE_FILENAME
    lines = ercignore.read_text(encoding="utf-8").splitlines() if ercignore.is_file() else []
    try:
        ignored = pathspec.GitIgnoreSpec.from_lines(lines)
    except ValueError as error:
        raise InvalidERC(f"{ERCIGNORE_FILENAME}: {error}") from None

    def excluded(relative: str) -> bool:
        return always.match_file(relative) or ignored.match_file(relative)

    real_root = os.path.realpath(root)
    files = []
    for directory, subdirectories, names in os.walk(root):
        base = Path(directory).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        subdirectories[:] = [name for name in subdirectories if not excluded(f"{prefix}{name}/")]
        for name in names:
            path = os.path.join(directory, name)
            if excluded(prefix + name) or not os.path.isfile(path):
                continue  # also skips fifos, sockets and dangling links
            if os.path.islink(path):
                target = os.path.realpath(path)
                if os.path.commonpath([target, real_root]) != real_root:
                    continue
            files.append(prefix + name)
    return sorted(files)


def detect_main(root: Path, declared: str | None = None) -> str:
    """The main notebook of the workspace at ``root`` (rule in the module docstring)."""
    return _choose_main(root, list_files(root), declared)


def _choose_main(root: Path, files: list[str], declared: str | None) -> str:
    if declared is not None:
        if declared in files:
            return declared
        if (root / declared).is_file():
            raise InvalidERC(
                f"{ERC_FILENAME}: main: {declared!r} is excluded from the compendium"
                f" (by {ERCIGNORE_FILENAME} or the built-in exclusions)"
            )
        raise InvalidERC(f"{ERC_FILENAME}: main: {declared!r} does not exist in {root}")
    notebooks = [file for file in files if file.lower().endswith(NOTEBOOK_SUFFIX)]
    if len(notebooks) == 1:
        return notebooks[0]
    if not notebooks:
        raise InvalidERC(f"no notebook (*.ipynb) in {root}")
    if DEFAULT_MAIN in notebooks:
        return DEFAULT_MAIN
    listed = ", ".join(notebooks[:LISTED_CANDIDATES])
    if len(notebooks) > LISTED_CANDIDATES:
        listed += f" and {len(notebooks) - LISTED_CANDIDATES} more"
    raise InvalidERC(
        f"{len(notebooks)} notebooks in {root} and none is {DEFAULT_MAIN}: {listed};"
        f" name the main one in {ERC_FILENAME} (main: ...)"
    )


def prepare_compendium(root: Path, *, write: bool = True) -> Workspace:
    """Validate the workspace at ``root`` as a compendium; with ``write``, complete it on disk.

    Everything is validated before anything is written. With ``write=False`` nothing is
    written: the returned configuration is what would be. Raises :class:`InvalidERC` for
    anything that keeps the workspace from being a compendium.
    """
    if not root.is_dir():
        raise InvalidERC(f"{root} is not a directory")
    files = list_files(root)
    erc_path = resolve_erc_path(root)
    erc_text: str | None = None  # new content for erc.yml, None to leave it as it is
    if erc_path.is_file():
        data = read_erc_data(erc_path)
        if isinstance(data, Mapping) and "main" not in data:
            main = _choose_main(root, files, None)
            erc = parse_erc(data, ERC_FILENAME, default_main=main)
            erc_text = _with_main(erc_path, data, erc)
        else:
            erc = parse_erc(data, ERC_FILENAME)
            _choose_main(root, files, erc.main)
    else:
        main = _choose_main(root, files, None)
        erc = ErcConfig(
            id=new_erc_id(),
            main=main,
            display=default_display(main),
            licenses=default_licenses(root, files),
        )
        erc_text = render_erc(erc)
    notebook = load_notebook(inside(root, erc.main))
    if not write:
        return Workspace(root=root, erc=erc, files=files)
    if erc_text is not None:
        safefs.write_text(root, ERC_FILENAME, erc_text)
    metadata = extract_metadata(root, erc, list_files(root), notebook=notebook)
    write_metadata(root, metadata)
    return Workspace(root=root, erc=erc, files=list_files(root))


def _with_main(erc_path: Path, data: Mapping[str, object], erc: ErcConfig) -> str:
    """The erc.yml text with ``main`` added: appended, keeping the author's text and comments,
    unless the YAML is written so that appending breaks it (a flow mapping, several
    documents); then the canonical rendering."""
    text = erc_path.read_text(encoding="utf-8")
    appended = text + ("" if text.endswith("\n") or not text else "\n")
    appended += yaml.safe_dump({"main": erc.main}, allow_unicode=True)
    try:
        keeps_text = yaml.safe_load(appended) == {**data, "main": erc.main}
    except yaml.YAMLError:
        keeps_text = False
    return appended if keeps_text else render_erc(erc)
