"""Notebooks below the server's root: finding them, their ERC, their parameters, packing.

Blocking (file system) functions: handlers call them in an executor.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import nbformat

from erchub.erc import (
    ERC_FILENAME,
    ErcConfig,
    default_display,
    new_erc_id,
    parse_erc,
    read_erc_data,
    render_erc,
)
from erchub.errors import ErchubError, InvalidERC
from erchub.metadata import default_licenses
from erchub.parameters import ParameterSpec, bindings_for, parameter_specs
from erchub.workspace import NOTEBOOK_SUFFIX, detect_main, list_files, load_notebook


class UnknownNotebook(ErchubError):
    """A path that names no notebook below the server's root."""


@dataclass
class NotebookView:
    """A notebook of the server, as the ERC panel sees it."""

    #: POSIX path relative to the server's root
    path: str
    file: Path
    notebook: nbformat.NotebookNode
    #: the folder of the nearest erc.yml at or above the notebook (inside the root), or None
    erc_root: Path | None
    #: the ui_bindings of this notebook, with their index in erc.yml
    bindings: list[tuple[int, Mapping[str, Any]]]
    specs: list[ParameterSpec]
    warnings: list[str]

    @property
    def folder(self) -> Path:
        """Where the notebook runs."""
        return self.file.parent

    @property
    def positions(self) -> dict[str, int]:
        """Index of each cell by its id."""
        return {cell.get("id"): index for index, cell in enumerate(self.notebook.cells)}


def resolve_notebook(root_dir: Path, path: str) -> Path:
    """The file of the notebook ``path`` (relative to ``root_dir``); :class:`UnknownNotebook`
    for a path outside the root, of no notebook, or of no file."""
    relative = PurePosixPath(path.lstrip("/"))
    if not path.strip() or ".." in relative.parts or "\\" in path:
        raise UnknownNotebook(f"unknown notebook {path!r}: not a path inside the server's root")
    if relative.suffix.lower() != NOTEBOOK_SUFFIX:
        raise UnknownNotebook(f"unknown notebook {path!r}: not a notebook (*.ipynb)")
    root = os.path.realpath(root_dir)
    file = os.path.realpath(os.path.join(root, *relative.parts))
    if os.path.commonpath([file, root]) != root:
        raise UnknownNotebook(f"unknown notebook {path!r}: outside the server's root")
    if not os.path.isfile(file):
        raise UnknownNotebook(f"unknown notebook {path!r}: no such file")
    return Path(file)


def relative_to_root(root_dir: Path, path: Path) -> str:
    """``path`` relative to the server's root, POSIX, ``""`` for the root itself."""
    relative = path.relative_to(os.path.realpath(root_dir)).as_posix()
    return "" if relative == "." else relative


def find_erc_root(root_dir: Path, folder: Path) -> Path | None:
    """The nearest folder at or above ``folder``, up to ``root_dir``, holding an erc.yml."""
    root = Path(os.path.realpath(root_dir))
    for candidate in (folder, *folder.parents):
        if (candidate / ERC_FILENAME).is_file():
            return candidate
        if candidate == root:
            break
    return None


def describe_notebook(root_dir: Path, path: str) -> NotebookView:
    """The notebook ``path``, its ERC root and its parameters merged with the ui_bindings.

    Raises :class:`UnknownNotebook`, or :class:`InvalidERC` for a file that is no notebook.
    A broken erc.yml is a warning: the parameters are shown without bindings.
    """
    file = resolve_notebook(root_dir, path)
    notebook = load_notebook(file)
    erc_root = find_erc_root(root_dir, file.parent)
    bindings: list[tuple[int, Mapping[str, Any]]] = []
    warnings: list[str] = []
    if erc_root is not None:
        try:
            bindings = _bindings(erc_root, file.relative_to(erc_root).as_posix())
        except InvalidERC as error:
            warnings.append(f"{error} (ui_bindings not used)")
    specs, problems = parameter_specs(notebook, bindings)
    return NotebookView(
        path=relative_to_root(root_dir, file),
        file=file,
        notebook=notebook,
        erc_root=erc_root,
        bindings=bindings,
        specs=specs,
        warnings=warnings + problems,
    )


def _bindings(erc_root: Path, notebook: str) -> list[tuple[int, Mapping[str, Any]]]:
    """The ui_bindings of ``notebook`` (relative to ``erc_root``) in the root's erc.yml."""
    data = read_erc_data(erc_root / ERC_FILENAME)
    default_main = None
    if isinstance(data, Mapping) and "main" not in data:
        default_main = detect_main(erc_root)
    erc = parse_erc(data, ERC_FILENAME, default_main=default_main)
    return bindings_for(erc.ui_bindings, notebook, erc.main)


def pack_workspace(root: Path, main: str, archive_file: IO[bytes]) -> tuple[int, int]:
    """Write the files of the workspace at ``root`` (:func:`erchub.workspace.list_files`) as a
    zip into ``archive_file`` and rewind it; (files, bytes) of the archive. When the files hold
    no erc.yml, the archive gets one naming ``main`` (relative to ``root``), as
    :func:`erchub.workspace.prepare_compendium` would write it; ``root`` is not changed."""
    files = list_files(root)
    with zipfile.ZipFile(archive_file, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in files:
            archive.write(root / name, name)
        if ERC_FILENAME not in files:
            erc = ErcConfig(
                id=new_erc_id(),
                main=main,
                display=default_display(main),
                licenses=default_licenses(root, files),
            )
            archive.writestr(ERC_FILENAME, render_erc(erc))
    size = archive_file.tell()
    archive_file.seek(0)
    return len(files) + (ERC_FILENAME not in files), size
