"""GET erchub/parameters: the parameters cell merged with erc.yml's ui_bindings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import parameters_cell, write_notebook
from tests.extensions.conftest import (
    ERC_YML,
    assert_error,
    call,
    extension_config,
    json_of,
    wave_notebook,
)

BINDINGS = """\
ui_bindings:
  - parameter: frequency
    label: Frequency (Hz)
    help: Cycles per second
    min: 0.5
    max: 5
    step: 0.5
    cells: [plot]
  - parameter: label
    choices: [wave, sine]
  - parameter: colour
  - parameter: points
    notebook: other.ipynb
"""


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    # no kernel starts on reading parameters (that is tested with runs)
    return extension_config(warm_kernels=0)


async def parameters_of(jp_fetch: Any, path: str) -> dict[str, Any]:
    response = await call(jp_fetch, "erchub", "parameters", params={"path": path})
    assert response.code == 200, response.body
    body: dict[str, Any] = json_of(response)
    return body


async def test_a_notebook_without_erc(jp_fetch: Any, jp_root_dir: Path) -> None:
    wave_notebook(jp_root_dir / "waves" / "main.ipynb")
    body = await parameters_of(jp_fetch, "waves/main.ipynb")
    assert body["path"] == "waves/main.ipynb"
    assert body["erc_root"] is None
    assert body["warnings"] == []
    assert body["parameters"] == [
        {
            "name": "frequency",
            "type": "float",
            "default": 1.0,
            "default_source": "1.0",
            "help": "cycles per unit of time",
            "label": "frequency",
            "widget": {"kind": "number", "min": None, "max": None, "step": None, "choices": None},
        },
        {
            "name": "points",
            "type": "int",
            "default": 200,
            "default_source": "200",
            "help": "",
            "label": "points",
            "widget": {"kind": "number", "min": None, "max": None, "step": None, "choices": None},
        },
        {
            "name": "label",
            "type": "str",
            "default": "wave",
            "default_source": '"wave"',
            "help": "",
            "label": "label",
            "widget": {"kind": "text", "min": None, "max": None, "step": None, "choices": None},
        },
    ]


async def test_ui_bindings_of_the_nearest_erc_yml(jp_fetch: Any, jp_root_dir: Path) -> None:
    project = jp_root_dir / "project"
    wave_notebook(project / "main.ipynb")
    (project / "erc.yml").write_text(ERC_YML + BINDINGS)
    (jp_root_dir / "erc.yml").write_text("not: [the, nearest]")
    body = await parameters_of(jp_fetch, "/project/main.ipynb")
    assert body["erc_root"] == "project"
    by_name = {parameter["name"]: parameter for parameter in body["parameters"]}
    frequency = by_name["frequency"]
    assert (frequency["label"], frequency["help"]) == ("Frequency (Hz)", "Cycles per second")
    assert frequency["widget"] == {"kind": "slider", "min": 0.5, "max": 5, "step": 0.5,
                                   "choices": None}  # fmt: skip
    assert by_name["label"]["widget"]["kind"] == "select"
    assert by_name["label"]["widget"]["choices"] == ["wave", "sine"]
    assert by_name["points"]["widget"]["kind"] == "number"  # bound for another notebook
    assert body["warnings"] == [
        "erc.yml: ui_bindings[2]: parameter 'colour' is not in the parameters cell"
    ]


async def test_the_erc_root_may_be_the_server_root(jp_fetch: Any, jp_root_dir: Path) -> None:
    wave_notebook(jp_root_dir / "analysis" / "deep" / "main.ipynb")
    (jp_root_dir / "erc.yml").write_text(ERC_YML.replace("main.ipynb", "analysis/deep/main.ipynb"))
    body = await parameters_of(jp_fetch, "analysis/deep/main.ipynb")
    assert body["erc_root"] == ""
    assert body["warnings"] == []


async def test_a_broken_erc_yml_is_a_warning(jp_fetch: Any, jp_root_dir: Path) -> None:
    wave_notebook(jp_root_dir / "main.ipynb")
    (jp_root_dir / "erc.yml").write_text(
        ERC_YML + "ui_bindings:\n  - parameter: frequency\n    widget: dial\n"
    )
    body = await parameters_of(jp_fetch, "main.ipynb")
    assert body["erc_root"] == ""
    assert [p["widget"]["kind"] for p in body["parameters"]] == ["number", "number", "text"]
    assert body["warnings"] == [
        "erc.yml: ui_bindings[0].widget: must be one of slider, number, text, checkbox, select,"
        " got 'dial' (ui_bindings not used)"
    ]


async def test_a_notebook_without_parameters(jp_fetch: Any, jp_root_dir: Path) -> None:
    write_notebook(jp_root_dir / "plain.ipynb", "print(1)")
    body = await parameters_of(jp_fetch, "plain.ipynb")
    assert body["parameters"] == [] and body["warnings"] == []


async def test_a_kernel_that_is_not_installed_is_a_warning(
    jp_fetch: Any, jp_root_dir: Path
) -> None:
    r_kernel = {"name": "ir", "display_name": "R", "language": "python"}
    write_notebook(jp_root_dir / "r.ipynb", parameters_cell("n = 1"), kernelspec=r_kernel)
    body = await parameters_of(jp_fetch, "r.ipynb")
    assert body["warnings"] == ["the notebook's kernel 'ir' is not installed here: it cannot run"]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({}, ["Missing argument path"]),
        ({"path": "absent.ipynb"}, ["unknown notebook 'absent.ipynb': no such file"]),
        ({"path": "notes.txt"}, ["unknown notebook 'notes.txt': not a notebook (*.ipynb)"]),
        ({"path": "../outside.ipynb"}, ["unknown notebook '../outside.ipynb': not a path inside"]),
        ({"path": "link.ipynb"}, ["unknown notebook 'link.ipynb': outside the server's root"]),
        ({"path": "folder.ipynb"}, ["unknown notebook 'folder.ipynb': no such file"]),
        ({"path": "broken.ipynb"}, ["broken.ipynb: not a valid notebook: invalid JSON at line 1"]),
        ({"path": " "}, ["unknown notebook '': not a path inside"]),
    ],
)
async def test_bad_requests_are_400(
    jp_fetch: Any, jp_root_dir: Path, tmp_path: Path, params: dict[str, str], words: list[str]
) -> None:
    (jp_root_dir / "notes.txt").write_text("text")
    (jp_root_dir / "broken.ipynb").write_text("{not json")
    (jp_root_dir / "folder.ipynb").mkdir()
    wave_notebook(tmp_path / "outside.ipynb")
    (jp_root_dir / "link.ipynb").symlink_to(tmp_path / "outside.ipynb")
    response = await call(jp_fetch, "erchub", "parameters", params=params)
    assert_error(response, 400, *words)
