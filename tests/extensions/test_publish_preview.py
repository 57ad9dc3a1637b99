"""GET erchub/publish (what publishing packs, before anything is uploaded) and the refusals
of POST erchub/publish that need no erc service."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_output

from tests.conftest import heading, write_notebook
from tests.extensions.conftest import ERC_YML, assert_error, call, extension_config, json_of

AUTHOR = {"author_name": "Ada Lovelace", "author_orcid": "0000-0002-1825-0097"}
LICENSES = {"code": "MIT", "data": "CC0-1.0", "text": "CC-BY-4.0"}


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return extension_config(**AUTHOR)


def executed_cell(source: str, count: int | None) -> Any:
    outputs = [new_output("stream", text="2\n")] if count is not None else []
    return new_code_cell(source, execution_count=count, outputs=outputs)


@pytest.fixture
def study(jp_root_dir: Path) -> Path:
    """A launched compendium's files at the root, and the author's own folder below."""
    write_notebook(jp_root_dir / "main.ipynb", heading("# Someone else's work"), "x = 1")
    (jp_root_dir / "erc.yml").write_text(ERC_YML)
    (jp_root_dir / ".erc").mkdir()
    (jp_root_dir / ".erc" / "metadata_o2r_1.json").write_text('{"title": "Someone else"}')
    folder = jp_root_dir / "my-study"
    write_notebook(
        folder / "doubling.ipynb",
        heading("# Doubling numbers\n\nTwice of one."),
        executed_cell("print(1 * 2)", 1),
    )
    (folder / "numbers.csv").write_text("n\n1\n")
    (folder / ".ercignore").write_text("scratch/\n")
    (folder / "scratch").mkdir()
    (folder / "scratch" / "notes.txt").write_text("not for publishing")
    return folder


async def preview(jp_fetch: Any, path: str, **params: str) -> Any:
    return await call(jp_fetch, "erchub", "publish", params={"path": path, **params})


async def test_the_preview_shows_only_the_notebooks_folder(jp_fetch: Any, study: Path) -> None:
    response = await preview(jp_fetch, "my-study/doubling.ipynb")
    assert response.code == 200, response.body
    body = json_of(response)
    assert body["folder"] == "/my-study"
    assert body["proposed_folder"] == "/my-study"
    assert body["folders"] == ["/my-study", "/"]
    sizes = {file["path"]: file["size"] for file in body["files"]}
    assert set(sizes) == {
        ".ercignore",
        "doubling.ipynb",
        "numbers.csv",
        "erc.yml",
        "requirements.txt",
    }
    assert sizes["numbers.csv"] == len("n\n1\n")
    assert sizes["doubling.ipynb"] == (study / "doubling.ipynb").stat().st_size
    # the folder has no environment file: one is written (the notebook imports nothing)
    written = [file["path"] for file in body["files"] if file["written"]]
    assert written == ["erc.yml", "requirements.txt"]
    assert body["total_files"] == 5
    assert body["total_bytes"] == sum(sizes.values())
    assert body["outputs"]["state"] == "current"
    assert body["modes"] == ["new"]
    assert body["related_compendium"] is None
    o2r = body["metadata"]["o2r"]
    assert o2r["title"] == "Doubling numbers"
    assert o2r["description"] == "Twice of one."
    assert o2r["creators"] == [{"name": "Ada Lovelace", "orcid": "0000-0002-1825-0097"}]
    assert o2r["license"] == {}
    assert body["missing"] == ["the code, data and text licences"]


async def test_a_folder_without_environment_gets_the_notebooks_imports_pinned(
    jp_fetch: Any, jp_root_dir: Path
) -> None:
    folder = jp_root_dir / "plots"
    write_notebook(
        folder / "plot.ipynb",
        "import nbformat\nimport os, json\nfrom tornado import web\n%matplotlib inline",
        "import erchub_no_such_module",
    )
    body = json_of(await preview(jp_fetch, "plots/plot.ipynb"))
    assert {"erc.yml", "requirements.txt"} <= {f["path"] for f in body["files"] if f["written"]}
    pinned = f"nbformat=={importlib.metadata.version('nbformat')}"
    tornado = f"tornado=={importlib.metadata.version('tornado')}"
    assert any(pinned in w and tornado in w for w in body["warnings"]), body["warnings"]
    assert any("erchub_no_such_module" in w for w in body["warnings"]), body["warnings"]
    # with an environment file of its own, nothing is written for it
    (folder / "requirements.txt").write_text("nbformat\n")
    body = json_of(await preview(jp_fetch, "plots/plot.ipynb"))
    assert [f["path"] for f in body["files"] if f["written"]] == ["erc.yml"]


async def test_a_parent_folder_may_be_chosen(jp_fetch: Any, study: Path) -> None:
    body = json_of(await preview(jp_fetch, "my-study/doubling.ipynb", folder="/"))
    assert body["folder"] == "/"
    paths = {file["path"] for file in body["files"]}
    # the root's own erc.yml is replaced, its derived .erc/ is the service's to make
    assert {"main.ipynb", "my-study/doubling.ipynb", "erc.yml"} <= paths
    assert not any(path.startswith(".erc/") for path in paths)
    assert "my-study/scratch/notes.txt" in paths  # .ercignore applies to its own folder only


async def test_the_main_notebook_of_a_compendium_proposes_its_folder(
    jp_fetch: Any, study: Path
) -> None:
    body = json_of(await preview(jp_fetch, "main.ipynb"))
    assert body["folder"] == "/"
    assert body["metadata"]["o2r"]["title"] == "Someone else's work"


@pytest.mark.parametrize(
    ("cells", "state"),
    [
        ([executed_cell("print(1)", None), executed_cell("print(2)", None)], "missing"),
        ([executed_cell("print(1)", 2), executed_cell("print(2)", 1)], "stale"),
    ],
)
async def test_outputs_that_cannot_be_a_reference_are_named(
    jp_fetch: Any, jp_root_dir: Path, cells: list[Any], state: str
) -> None:
    write_notebook(jp_root_dir / "n" / "n.ipynb", *cells)
    body = json_of(await preview(jp_fetch, "n/n.ipynb"))
    assert body["outputs"]["state"] == state
    assert "check" in body["outputs"]["message"]


async def test_bad_previews(jp_fetch: Any, study: Path) -> None:
    assert_error(await preview(jp_fetch, "my-study/none.ipynb"), 400, "no such file")
    assert_error(await preview(jp_fetch, "../x.ipynb"), 400, "unknown notebook")
    assert_error(
        await preview(jp_fetch, "my-study/doubling.ipynb", folder="/elsewhere"),
        400,
        "does not hold the notebook",
        "'/my-study'",
    )


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        ({"o2r": {"title": "T"}}, ["at least one author", "the code, data and text licences"]),
        (
            {"o2r": {"title": "T", "creators": [{"name": "Ada"}], "license": {"code": "MIT"}}},
            ["it needs the data and text licences"],
        ),
        ({"o2r": []}, ["metadata must be"]),
    ],
)
async def test_missing_metadata_is_refused_before_anything_is_packed(
    jp_fetch: Any, study: Path, metadata: Any, words: list[str]
) -> None:
    body = {"path": "my-study/doubling.ipynb", "metadata": metadata}
    response = await call(jp_fetch, "erchub", "publish", method="POST", body=body)
    assert_error(response, 400, *words)


async def test_without_an_erc_service_nothing_is_published(jp_fetch: Any, study: Path) -> None:
    o2r = {"title": "T", "creators": [{"name": "Ada"}], "license": LICENSES}
    body = {"path": "my-study/doubling.ipynb", "folder": "/my-study", "metadata": {"o2r": o2r}}
    response = await call(jp_fetch, "erchub", "publish", method="POST", body=body)
    assert_error(response, 503, "no erc service")
    assert nbformat.read(study / "doubling.ipynb", as_version=4).cells[1].execution_count == 1
