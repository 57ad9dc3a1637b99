"""What Publish ERC decides before packing (erchub.extensions.publishing): folders, modes,
the state of the stored outputs, the metadata it needs, the compendium the panel shows."""

from __future__ import annotations

from typing import Any

import pytest

from erchub.errors import Invalid
from erchub.extensions.publishing import (
    LaunchedCompendium,
    NotebookSource,
    OutputState,
    PublishMode,
    allowed_modes,
    author_creators,
    candidate_folders,
    choose_folder,
    choose_mode,
    chosen_licenses,
    default_folder,
    imported_modules,
    launched_of,
    missing_metadata,
    notebook_compendium,
    output_state,
    pinned_requirements,
)

LICENSES = {"code": "MIT", "data": "CC0-1.0", "text": "CC-BY-4.0"}


def code(count: int | None, source: str = "x = 1") -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": count, "source": source}


def test_candidate_folders_run_from_the_notebooks_folder_up_to_the_root() -> None:
    assert candidate_folders("a/b/n.ipynb") == ["a/b", "a", ""]
    assert candidate_folders("n.ipynb") == [""]


@pytest.mark.parametrize(
    ("erc_folder", "erc_main", "proposed"),
    [
        (None, None, "my-study"),  # no erc.yml above
        ("", "main.ipynb", "my-study"),  # another compendium's erc.yml above never captures it
        ("", "my-study/doubling.ipynb", ""),  # the notebook is that compendium's main
        ("my-study", "doubling.ipynb", "my-study"),
    ],
)
def test_the_proposed_folder(erc_folder: str | None, erc_main: str | None, proposed: str) -> None:
    assert default_folder("my-study/doubling.ipynb", erc_folder, erc_main) == proposed


def test_only_the_notebooks_folder_or_a_parent_may_be_chosen() -> None:
    assert choose_folder("a/b/n.ipynb", None, "a/b") == "a/b"
    assert choose_folder("a/b/n.ipynb", "/a", "a/b") == "a"
    assert choose_folder("a/b/n.ipynb", "/", "a/b") == ""
    for wrong in ("/c", "a/b/c", "/a/b/../c", "b"):
        with pytest.raises(Invalid, match="does not hold the notebook"):
            choose_folder("a/b/n.ipynb", wrong, "a/b")


def test_modes_follow_the_folder_and_the_launched_compendiums_author() -> None:
    launched = LaunchedCompendium(id="abc123", user="ada")
    assert allowed_modes("my-study", launched, "ada") == [PublishMode.NEW]
    assert allowed_modes("", None, "ada") == [PublishMode.NEW]
    assert allowed_modes("", launched, "ada") == [PublishMode.NEW_VERSION, PublishMode.DERIVED]
    assert allowed_modes("", launched, "bob") == [PublishMode.DERIVED]
    assert choose_mode(None, [PublishMode.DERIVED]) is PublishMode.DERIVED
    with pytest.raises(Invalid, match="cannot be published as new_version: choose derived"):
        choose_mode("new_version", [PublishMode.DERIVED])
    with pytest.raises(Invalid, match="mode must be one of new, got 'copy'"):
        choose_mode("copy", [PublishMode.NEW])


@pytest.mark.parametrize(
    ("cells", "state"),
    [
        ([], OutputState.CURRENT),
        ([code(1), {"cell_type": "markdown", "source": "# t"}, code(2)], OutputState.CURRENT),
        ([code(1), code(None, "  "), code(3)], OutputState.CURRENT),  # empty cells do not count
        ([code(None), code(None)], OutputState.MISSING),
        ([code(1), code(None)], OutputState.STALE),
        ([code(2), code(1)], OutputState.STALE),
        ([code(1), code(1)], OutputState.STALE),
    ],
)
def test_output_state(cells: list[dict[str, Any]], state: OutputState) -> None:
    assert output_state(cells) is state


def test_the_logged_in_user_is_the_first_author() -> None:
    notebook = [{"name": "Ada Lovelace", "orcid": None}, {"name": "Charles Babbage"}]
    assert author_creators("Ada Lovelace", "0000-0002-1825-0097", notebook) == [
        {"name": "Ada Lovelace", "orcid": "0000-0002-1825-0097"},
        {"name": "Charles Babbage"},
    ]
    assert author_creators(None, None, notebook) == notebook
    # an ORCID record's name may be private: the iD is still the author's
    assert author_creators(" ", "0000-0002-1825-0097", []) == [
        {"name": "", "orcid": "0000-0002-1825-0097"}
    ]


def test_missing_metadata_names_each_thing() -> None:
    assert missing_metadata({}) == [
        "a title",
        "at least one author",
        "the code, data and text licences",
    ]
    complete = {"title": "T", "creators": [{"name": "Ada"}], "license": LICENSES}
    assert missing_metadata(complete) == []
    blank_author = {**complete, "creators": [{"name": "  "}]}
    assert missing_metadata(blank_author) == ["at least one author"]
    unasserted = {**complete, "license": {**LICENSES, "data": "NOASSERTION", "text": ""}}
    assert missing_metadata(unasserted) == ["the data and text licences"]
    per_file = {**complete, "license": {**LICENSES, "code": {"a.py": "MIT"}}}
    assert missing_metadata(per_file) == []
    assert missing_metadata({**complete, "license": {**LICENSES, "code": {}}}) == [
        "the code licence"
    ]


def test_chosen_licenses_fill_every_kind_of_erc_yml() -> None:
    assert chosen_licenses({"license": {"code": "MIT"}}) == {
        "code": "MIT",
        "data": "NOASSERTION",
        "text": "NOASSERTION",
        "metadata": "NOASSERTION",
    }


def test_the_panels_compendium_of_a_notebook() -> None:
    launched = launched_of(
        "abc123",
        {"user": "ada", "metadata": {"o2r": {"files": ["main.ipynb", "erc.yml"]}}},
    )
    assert launched == LaunchedCompendium("abc123", "ada", frozenset({"main.ipynb", "erc.yml"}))
    assert notebook_compendium("main.ipynb", launched, {}) == ("abc123", NotebookSource.LAUNCHED)
    assert notebook_compendium("my-study/doubling.ipynb", launched, {}) is None
    published = {"my-study": "new456"}
    assert notebook_compendium("my-study/doubling.ipynb", launched, published) == (
        "new456",
        NotebookSource.PUBLISHED,
    )
    assert notebook_compendium("my-study/sub/x.ipynb", None, published) == (
        "new456",
        NotebookSource.PUBLISHED,
    )
    assert notebook_compendium("other/x.ipynb", None, published) is None
    assert launched_of("abc123", None) == LaunchedCompendium("abc123", "")


def test_the_imports_of_code_cells() -> None:
    cells = [
        {"cell_type": "markdown", "source": "import not_code"},
        {"cell_type": "code", "source": ["import numpy as np\n", "%matplotlib inline\n"]},
        {"cell_type": "code", "source": "from scipy.stats import norm\nfrom . import local"},
        {"cell_type": "code", "source": "!pip install x\nimport os.path"},
        {"cell_type": "code", "source": "def broken(:"},
    ]
    assert imported_modules(cells) == ["numpy", "os", "scipy"]


def test_requirements_are_pinned_to_the_installed_versions() -> None:
    requirements = pinned_requirements(
        ["numpy", "os", "sklearn", "yaml", "mystery", "__future__"],
        standard_library={"os"},
        distributions={"numpy": ["numpy"], "sklearn": ["scikit-learn"], "yaml": ["PyYAML"]},
        versions={"numpy": "2.1.0", "scikit-learn": "1.5.2"},
    )
    assert requirements.lines == ["numpy==2.1.0", "PyYAML", "scikit-learn==1.5.2"]
    assert requirements.unknown == ["mystery"]
    assert requirements.text.splitlines()[-3:] == requirements.lines
