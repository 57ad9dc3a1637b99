"""Workspace files, main notebook detection, notebook loading and prepare_compendium."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_markdown_cell

from erchub.erc import ERC_FILENAME, LICENSE_NOT_SPECIFIED, UUID4_PATTERN, load_erc
from erchub.errors import InvalidERC
from erchub.metadata import METADATA_PATH
from erchub.workspace import (
    Workspace,
    detect_main,
    list_files,
    load_notebook,
    prepare_compendium,
)
from tests.conftest import write_notebook

ERC_ID = "b9b0099e-9f8d-4a33-8acf-cb0c062efaec"
LICENSES = {"code": "MIT", "data": "ODbL-1.0", "text": "CC-BY-4.0", "metadata": "CC0-1.0"}
MIT_TEXT = "MIT License\n\nPermission is hereby granted, free of charge, to any person ...\n"


def touch(root: Path, *paths: str) -> None:
    for relative in paths:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(relative, encoding="utf-8")


def write_erc(root: Path, **data: object) -> Path:
    content = {"spec_version": 1, "id": ERC_ID, "licenses": LICENSES, **data}
    path = root / ERC_FILENAME
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def tree(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*")}


# --- list_files ----------------------------------------------------------------------------


def test_list_files_sorted_relative_posix(tmp_path: Path) -> None:
    touch(tmp_path, "b.txt", "a/z.csv", "a/b/c.py", "A.md")
    assert list_files(tmp_path) == ["A.md", "a/b/c.py", "a/z.csv", "b.txt"]


def test_list_files_always_ignores_tool_folders(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "main.ipynb",
        ".git/config",
        "sub/.git",
        ".ipynb_checkpoints/main-checkpoint.ipynb",
        "sub/.ipynb_checkpoints/x-checkpoint.ipynb",
        "__pycache__/m.cpython-311.pyc",
        "pkg/__pycache__/m.pyc",
        ".erc/jobs/1/log.txt",
        ".erc/metadata_o2r_1.json",
        "data/.erc/jobs/kept.txt",
    )
    assert list_files(tmp_path) == [
        ".erc/metadata_o2r_1.json",
        "data/.erc/jobs/kept.txt",
        "main.ipynb",
    ]


def test_ercignore_uses_gitignore_syntax(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "main.ipynb",
        "data/raw.csv",
        "data/keep.csv",
        "build/out.bin",
        "notes/build/x.txt",
        "scratch.tmp",
        "deep/er/scratch.tmp",
        "secret.txt",
        "sub/secret.txt",
    )
    (tmp_path / ".ercignore").write_text(
        "# comment\n*.tmp\ndata/*.csv\n!data/keep.csv\n/build/\n/secret.txt\n", encoding="utf-8"
    )
    assert list_files(tmp_path) == [
        ".ercignore",
        "data/keep.csv",
        "main.ipynb",
        "notes/build/x.txt",
        "sub/secret.txt",
    ]


def test_ercignore_cannot_bring_back_always_ignored(tmp_path: Path) -> None:
    touch(tmp_path, "main.ipynb", ".git/HEAD", ".ipynb_checkpoints/a.ipynb")
    (tmp_path / ".ercignore").write_text("!.git/\n!.git/HEAD\n!.ipynb_checkpoints/\n")
    assert list_files(tmp_path) == [".ercignore", "main.ipynb"]


def test_invalid_ercignore_pattern_is_an_error(tmp_path: Path) -> None:
    (tmp_path / ".ercignore").write_text("!\n", encoding="utf-8")
    with pytest.raises(InvalidERC, match=r"^\.ercignore: "):
        list_files(tmp_path)


def test_links_leaving_the_workspace_are_not_files(tmp_path: Path) -> None:
    root, outside = tmp_path / "ws", tmp_path / "outside"
    touch(root, "main.ipynb", "data/real.csv")
    touch(outside, "passwd", "dir/x")
    (root / "inside-link.csv").symlink_to("data/real.csv")
    (root / "outside-link").symlink_to(outside / "passwd")
    (root / "outside-dir").symlink_to(outside / "dir")
    (root / "dangling").symlink_to(root / "missing")
    os.mkfifo(root / "pipe")
    assert list_files(root) == ["data/real.csv", "inside-link.csv", "main.ipynb"]


# --- detect_main ---------------------------------------------------------------------------


def test_single_notebook_is_main_even_nested(tmp_path: Path) -> None:
    touch(tmp_path, "analysis/study.ipynb", "README.md", ".ipynb_checkpoints/x.ipynb")
    assert detect_main(tmp_path) == "analysis/study.ipynb"


def test_main_ipynb_wins_among_several(tmp_path: Path) -> None:
    touch(tmp_path, "main.ipynb", "other.ipynb", "sub/more.ipynb")
    assert detect_main(tmp_path) == "main.ipynb"


def test_several_notebooks_without_main_is_ambiguous(tmp_path: Path) -> None:
    touch(tmp_path, "b.ipynb", "a.ipynb", "sub/main.ipynb")
    with pytest.raises(InvalidERC) as raised:
        detect_main(tmp_path)
    message = str(raised.value)
    assert (
        f"3 notebooks in {tmp_path} and none is main.ipynb: a.ipynb, b.ipynb, sub/main.ipynb;"
        in (message)
    )
    assert "erc.yml" in message


def test_ambiguity_lists_at_most_ten(tmp_path: Path) -> None:
    touch(tmp_path, *(f"nb{index:02}.ipynb" for index in range(13)))
    with pytest.raises(InvalidERC, match=r"nb09\.ipynb and 3 more;"):
        detect_main(tmp_path)


def test_ignored_notebooks_do_not_count(tmp_path: Path) -> None:
    touch(tmp_path, "study.ipynb", "drafts/old.ipynb")
    (tmp_path / ".ercignore").write_text("drafts/\n", encoding="utf-8")
    assert detect_main(tmp_path) == "study.ipynb"


def test_no_notebook_at_all(tmp_path: Path) -> None:
    touch(tmp_path, "README.md")
    with pytest.raises(InvalidERC, match=rf"^no notebook \(\*\.ipynb\) in {tmp_path}$"):
        detect_main(tmp_path)


def test_declared_main_is_used(tmp_path: Path) -> None:
    touch(tmp_path, "a.ipynb", "b.ipynb")
    assert detect_main(tmp_path, "b.ipynb") == "b.ipynb"


def test_declared_main_missing(tmp_path: Path) -> None:
    touch(tmp_path, "a.ipynb")
    with pytest.raises(InvalidERC, match=r"erc.yml: main: 'paper.ipynb' does not exist in"):
        detect_main(tmp_path, "paper.ipynb")


def test_declared_main_excluded(tmp_path: Path) -> None:
    touch(tmp_path, "drafts/paper.ipynb")
    (tmp_path / ".ercignore").write_text("drafts/\n", encoding="utf-8")
    with pytest.raises(InvalidERC, match=r"main: 'drafts/paper.ipynb' is excluded"):
        detect_main(tmp_path, "drafts/paper.ipynb")


# --- load_notebook -------------------------------------------------------------------------


def test_load_notebook_reads_v4(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "main.ipynb", "x = 1")
    notebook = load_notebook(path)
    assert notebook.nbformat == 4
    assert notebook.cells[0].source == "x = 1"


def test_load_notebook_upgrades_v3(tmp_path: Path) -> None:
    v4 = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("y = 2")])
    path = tmp_path / "old.ipynb"
    path.write_text(nbformat.writes(nbformat.convert(v4, 3)), encoding="utf-8")
    notebook = load_notebook(path)
    assert notebook.nbformat == 4
    assert notebook.cells[0].source == "y = 2"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{not json", "invalid JSON at line 1, column 2: Expecting property name"),
        (b'{\n  "cells": [\n}', "invalid JSON at line 3, column 1"),
        (b"\xff\xfe\x00", "not UTF-8 text"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"cells": []}', "no nbformat version field"),
        (b'{"nbformat": 99}', "unsupported nbformat version 99"),
        (
            json.dumps(
                {
                    "cells": [{"cell_type": "code", "source": "x", "metadata": {}}],
                    "metadata": {},
                    "nbformat": 4,
                    "nbformat_minor": 4,
                }
            ).encode(),
            "cells/0: 'outputs' is a required property",
        ),
        (
            json.dumps({"cells": 5, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode(),
            "malformed ('int' object is not iterable)",
        ),
    ],
)
def test_load_notebook_refuses_broken_files(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "main.ipynb"
    path.write_bytes(content)
    with pytest.raises(InvalidERC) as raised:
        load_notebook(path)
    assert str(raised.value).startswith(f"main.ipynb: not a valid notebook: {reason}")


# --- prepare_compendium --------------------------------------------------------------------


def test_prepare_generates_erc_yml_and_metadata(tmp_path: Path) -> None:
    write_notebook(tmp_path / "study.ipynb", new_markdown_cell("# A study"), "x = 1")
    (tmp_path / "LICENSE").write_text(MIT_TEXT, encoding="utf-8")
    workspace = prepare_compendium(tmp_path)

    assert isinstance(workspace, Workspace)
    assert workspace.main_path == tmp_path / "study.ipynb"
    erc = load_erc(tmp_path)
    assert erc == workspace.erc
    assert UUID4_PATTERN.fullmatch(erc.id)
    assert (erc.main, erc.display) == ("study.ipynb", "study.html")
    assert erc.licenses == {
        "code": "MIT",
        "data": LICENSE_NOT_SPECIFIED,
        "text": LICENSE_NOT_SPECIFIED,
        "metadata": LICENSE_NOT_SPECIFIED,
    }
    assert workspace.files == [METADATA_PATH, "LICENSE", ERC_FILENAME, "study.ipynb"]
    metadata = json.loads((tmp_path / METADATA_PATH).read_text(encoding="utf-8"))
    assert metadata["title"] == "A study"
    assert metadata["erc_id"] == erc.id
    assert metadata["files"] == ["LICENSE", ERC_FILENAME, "study.ipynb"]


def test_prepare_without_write_writes_nothing(tmp_path: Path) -> None:
    write_notebook(tmp_path / "main.ipynb", "x = 1")
    before = tree(tmp_path)
    workspace = prepare_compendium(tmp_path, write=False)
    assert tree(tmp_path) == before
    assert workspace.erc.main == "main.ipynb"
    assert workspace.files == ["main.ipynb"]


def test_prepare_keeps_an_existing_erc_yml(tmp_path: Path) -> None:
    write_notebook(tmp_path / "a.ipynb", "x = 1")
    write_notebook(tmp_path / "b.ipynb", "y = 2")
    erc_path = write_erc(tmp_path, main="b.ipynb", display="out/b.html")
    text = erc_path.read_text(encoding="utf-8")
    workspace = prepare_compendium(tmp_path)
    assert (workspace.erc.id, workspace.erc.main, workspace.erc.display) == (
        ERC_ID,
        "b.ipynb",
        "out/b.html",
    )
    assert erc_path.read_text(encoding="utf-8") == text


def test_prepare_twice_keeps_the_id(tmp_path: Path) -> None:
    write_notebook(tmp_path / "main.ipynb", "x = 1")
    first = prepare_compendium(tmp_path)
    second = prepare_compendium(tmp_path)
    assert first.erc == second.erc
    assert first.files == second.files


def test_prepare_adds_missing_main_keeping_comments(tmp_path: Path) -> None:
    write_notebook(tmp_path / "nb" / "paper.ipynb", "x = 1")
    erc_path = tmp_path / ERC_FILENAME
    original = f"# my compendium\nspec_version: 1\nid: {ERC_ID}  # keep me\nlicenses:\n"
    original += "".join(f"  {kind}: {value}\n" for kind, value in LICENSES.items())
    erc_path.write_text(original, encoding="utf-8")

    prepare_compendium(tmp_path, write=False)
    assert erc_path.read_text(encoding="utf-8") == original

    workspace = prepare_compendium(tmp_path)
    assert workspace.erc.main == "nb/paper.ipynb"
    assert erc_path.read_text(encoding="utf-8") == original + "main: nb/paper.ipynb\n"
    assert load_erc(tmp_path) == workspace.erc


def test_prepare_rewrites_a_flow_style_erc_yml_without_main(tmp_path: Path) -> None:
    write_notebook(tmp_path / "main.ipynb", "x = 1")
    erc_path = tmp_path / ERC_FILENAME
    erc_path.write_text(
        yaml.safe_dump(
            {"spec_version": 1, "id": ERC_ID, "licenses": LICENSES}, default_flow_style=True
        ),
        encoding="utf-8",
    )
    workspace = prepare_compendium(tmp_path)
    assert load_erc(tmp_path) == workspace.erc
    assert workspace.erc.main == "main.ipynb"


def test_prepare_reports_a_missing_declared_main(tmp_path: Path) -> None:
    write_notebook(tmp_path / "main.ipynb", "x = 1")
    write_erc(tmp_path, main="paper.ipynb")
    with pytest.raises(InvalidERC, match=r"main: 'paper.ipynb' does not exist"):
        prepare_compendium(tmp_path)


def test_prepare_reports_an_invalid_erc_yml(tmp_path: Path) -> None:
    write_notebook(tmp_path / "main.ipynb", "x = 1")
    write_erc(tmp_path, main="main.ipynb", execution={"timeout": -5})
    with pytest.raises(InvalidERC, match=r"erc.yml: execution.timeout: must be a positive"):
        prepare_compendium(tmp_path, write=False)


def test_prepare_reports_a_corrupt_main_notebook(tmp_path: Path) -> None:
    (tmp_path / "main.ipynb").write_text("{", encoding="utf-8")
    with pytest.raises(InvalidERC, match=r"main.ipynb: not a valid notebook"):
        prepare_compendium(tmp_path)
    assert tree(tmp_path) == {"main.ipynb"}


def test_prepare_reports_ambiguity(tmp_path: Path) -> None:
    write_notebook(tmp_path / "a.ipynb", "x = 1")
    write_notebook(tmp_path / "b.ipynb", "x = 1")
    with pytest.raises(InvalidERC, match=r"a.ipynb, b.ipynb"):
        prepare_compendium(tmp_path)
    assert not (tmp_path / ERC_FILENAME).exists()


def test_prepare_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidERC, match=r"is not a directory"):
        prepare_compendium(tmp_path / "missing")
