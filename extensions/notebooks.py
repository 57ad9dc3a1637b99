"""Notebooks below the server's root: finding them, their ERC, their parameters, and what
publishing one packs (:func:`plan_publishing`, :func:`pack_plan`).

Blocking (file system) functions: handlers call them in an executor.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import IO, Any

import nbformat

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
from erchub.errors import ErchubError, InvalidERC
from erchub.extensions.publishing import (
    REQUIREMENTS_FILE,
    OutputState,
    Requirements,
    author_creators,
    candidate_folders,
    choose_folder,
    chosen_licenses,
    default_folder,
    imported_modules,
    output_state,
    pinned_requirements,
)
from erchub.metadata import METADATA_DIRECTORY, dependency_files, extract_metadata
from erchub.parameters import ParameterSpec, bindings_for, parameter_specs
from erchub.workspace import NOTEBOOK_SUFFIX, detect_main, list_files, load_notebook

#: bytes copied into the archive at a time
COPY_CHUNK_BYTES = 1024**2


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


@dataclass
class PackedFile:
    """A file the archive will hold: its path in the compendium and its size in bytes."""

    path: str
    size: int
    #: written by the publisher (erc.yml), not copied from the folder
    written: bool = False


@dataclass
class PublishPlan:
    """What publishing ``path`` from ``folder`` packs, and what the author is asked first."""

    #: the notebook, relative to the server's root
    path: str
    #: the folder published, relative to the server's root (``""`` for the root)
    folder: str
    #: the folder proposed before the author chose one
    proposed_folder: str
    #: the folders the author may choose: the notebook's own, then its parents
    folders: list[str]
    #: the files packed, erc.yml (written) included
    files: list[PackedFile]
    #: a requirements.txt written for a folder without an environment file, else None
    requirements: Requirements | None
    #: the erc.yml of the compendium, with placeholder licences until the author's are known
    erc: ErcConfig
    outputs: OutputState
    #: the metadata proposed: from the notebook and the login, licences left to the author
    metadata: dict[str, Any]
    warnings: list[str]

    @property
    def total_bytes(self) -> int:
        return sum(file.size for file in self.files)


def plan_publishing(
    root_dir: Path,
    path: str,
    folder: str | None,
    author: tuple[str | None, str | None] = (None, None),
) -> PublishPlan:
    """What publishing the notebook ``path`` as the main notebook of ``folder`` (None: the
    proposed folder, see :func:`erchub.extensions.publishing.default_folder`) would pack: the
    folder's files (:func:`erchub.workspace.list_files`, the derived ``.erc/`` and the folder's
    own erc.yml left out) and an erc.yml naming the notebook as main under a new id, keeping
    the execution and check settings of the folder's erc.yml. ``author`` is the logged-in
    user's (name, ORCID iD). Raises UnknownNotebook, Invalid for a folder that does not hold
    the notebook, InvalidERC for an unreadable notebook or ``.ercignore``."""
    file = resolve_notebook(root_dir, path)
    notebook = load_notebook(file)
    relative = relative_to_root(root_dir, file)
    root = Path(os.path.realpath(root_dir))
    erc_root = find_erc_root(root_dir, file.parent)
    warnings: list[str] = []
    erc_main = None
    if erc_root is not None:
        try:
            erc_main = _declared_main(erc_root)
        except InvalidERC as error:
            warnings.append(f"{error} (not used to propose a folder)")
    erc_folder = None if erc_root is None else relative_to_root(root_dir, erc_root)
    proposed = default_folder(relative, erc_folder, erc_main)
    chosen = choose_folder(relative, folder, proposed)
    folder_path = root.joinpath(*PurePosixPath(chosen).parts)
    main = file.relative_to(folder_path).as_posix()
    erc, erc_warning = _erc_for(folder_path, main)
    if erc_warning:
        warnings.append(erc_warning)
    names = [
        name
        for name in list_files(folder_path)
        if name != ERC_FILENAME and not name.startswith(METADATA_DIRECTORY)
    ]
    files = [PackedFile(name, _size(folder_path, name)) for name in names]
    files.append(PackedFile(ERC_FILENAME, len(render_erc(erc).encode()), written=True))
    requirements = None
    if not dependency_files(names):
        requirements = workspace_requirements(notebook)
        files.append(PackedFile(REQUIREMENTS_FILE, len(requirements.text.encode()), written=True))
        warnings.append(
            "The folder has no environment file (requirements.txt, environment.yml, ...): "
            f"{REQUIREMENTS_FILE} is written from the notebook's imports, pinned to this "
            f"workspace's versions ({', '.join(requirements.lines) or 'no packages'})."
        )
        if requirements.unknown:
            warnings.append(
                "No installed package provides "
                + ", ".join(requirements.unknown)
                + ": add it to a requirements.txt of the folder, or the check will fail."
            )
    files.sort(key=lambda packed: packed.path)
    extracted = extract_metadata(folder_path, erc, names, notebook=notebook)
    name, orcid = author
    metadata = {
        "title": extracted["title"],
        "description": extracted["description"],
        "creators": author_creators(name, orcid, extracted["creators"]),
        "keywords": extracted["keywords"],
        "license": {},
    }
    return PublishPlan(
        path=relative,
        folder=chosen,
        proposed_folder=proposed,
        folders=candidate_folders(relative),
        files=files,
        requirements=requirements,
        erc=erc,
        outputs=output_state(notebook.cells),
        metadata=metadata,
        warnings=warnings,
    )


def workspace_requirements(notebook: nbformat.NotebookNode) -> Requirements:
    """The requirements of the notebook's imports in this Python (the workspace's, where the
    kernel runs too)."""
    return pinned_requirements(
        imported_modules(notebook.cells),
        sys.stdlib_module_names,
        importlib.metadata.packages_distributions(),
        {dist.metadata["Name"]: dist.version for dist in importlib.metadata.distributions()},
    )


def _declared_main(folder: Path) -> str | None:
    """The main notebook the folder's erc.yml names, None when it names none."""
    data = read_erc_data(folder / ERC_FILENAME)
    if isinstance(data, Mapping) and "main" not in data:
        return None
    return parse_erc(data, ERC_FILENAME).main


def _erc_of(folder: Path, default_main: str | None) -> ErcConfig:
    data = read_erc_data(folder / ERC_FILENAME)
    return parse_erc(data, ERC_FILENAME, default_main=default_main)


def _erc_for(folder: Path, main: str) -> tuple[ErcConfig, str | None]:
    """The erc.yml of a new compendium of ``folder`` with ``main``, and a warning when the
    folder's own erc.yml could not be read. Its execution and check settings are kept; its
    ui_bindings too while they are for the same main notebook."""
    fresh = ErcConfig(
        id=new_erc_id(),
        main=main,
        display=default_display(main),
        licenses=chosen_licenses({}),
    )
    if not (folder / ERC_FILENAME).is_file():
        return fresh, None
    try:
        existing = _erc_of(folder, default_main=main)
    except InvalidERC as error:
        return fresh, f"{error} (a new erc.yml is written instead)"
    return (
        replace(
            fresh,
            execution=existing.execution,
            check=existing.check,
            ui_bindings=existing.ui_bindings if existing.main == main else (),
        ),
        None,
    )


def _size(folder: Path, name: str) -> int:
    """The size of a file of the folder, read without following a link out of it."""
    with safefs.open_file(folder, name) as stream:
        return os.fstat(stream.fileno()).st_size


def pack_plan(
    root_dir: Path, plan: PublishPlan, licenses: dict[str, Any], archive_file: IO[bytes]
) -> int:
    """Write the files of ``plan`` as a zip into ``archive_file`` (its erc.yml with
    ``licenses``) and rewind it; the archive's size in bytes. The folder is not changed; its
    files are read without following a link out of it."""
    folder = Path(os.path.realpath(root_dir)).joinpath(*PurePosixPath(plan.folder).parts)
    erc = replace(plan.erc, licenses=licenses)
    with zipfile.ZipFile(archive_file, "w", zipfile.ZIP_DEFLATED) as archive:
        for packed in plan.files:
            if packed.written:
                continue
            with (
                safefs.open_file(folder, packed.path) as source,
                archive.open(packed.path, "w", force_zip64=True) as target,
            ):
                shutil.copyfileobj(source, target, COPY_CHUNK_BYTES)
        archive.writestr(ERC_FILENAME, render_erc(erc))
        if plan.requirements is not None:
            archive.writestr(REQUIREMENTS_FILE, plan.requirements.text)
    size = archive_file.tell()
    archive_file.seek(0)
    return size
