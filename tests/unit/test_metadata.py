"""Metadata extraction from the main notebook and the workspace files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from erchub.erc import LICENSE_NOT_SPECIFIED, ErcConfig
from erchub.errors import InvalidERC
from erchub.metadata import (
    METADATA_PATH,
    default_licenses,
    dependency_files,
    extract_metadata,
    identify_license,
    license_files,
    write_metadata,
)
from tests.conftest import write_notebook

ERC = ErcConfig(
    id="b9b0099e-9f8d-4a33-8acf-cb0c062efaec",
    main="main.ipynb",
    display="main.html",
    licenses={"code": "MIT", "data": "ODbL-1.0", "text": "CC-BY-4.0", "metadata": "CC0-1.0"},
)


def extract(root: Path, *cells: Any, files: list[str] | None = None, **meta: Any) -> dict:
    write_notebook(root / "main.ipynb", *cells, **meta)
    return extract_metadata(root, ERC, files if files is not None else ["main.ipynb"])


# --- text from the notebook ----------------------------------------------------------------


def test_title_and_description_from_markdown(tmp_path: Path) -> None:
    metadata = extract(
        tmp_path,
        new_markdown_cell("Some preface.\n\n# Sea level rise  #\n\n## Overview"),
        new_code_cell("import numpy"),
        new_markdown_cell("```\n# not a heading\n```\nWe measure\nthe sea.\n\nSecond paragraph."),
    )
    assert metadata["title"] == "Sea level rise"
    assert metadata["description"] == "We measure the sea."


def test_title_and_description_fall_back_to_notebook_metadata(tmp_path: Path) -> None:
    metadata = extract(
        tmp_path,
        new_markdown_cell("no heading here"),
        title="From metadata",
        description="Described in metadata.",
    )
    assert (metadata["title"], metadata["description"]) == (
        "From metadata",
        "Described in metadata.",
    )


def test_o2r_metadata_block_is_read_first(tmp_path: Path) -> None:
    metadata = extract(
        tmp_path,
        "x = 1",
        title="plain",
        erc={"title": "o2r title", "keywords": ["a"], "publication_date": "2024-05-01"},
        keywords=["b"],
    )
    assert metadata["title"] == "o2r title"
    assert metadata["keywords"] == ["a"]
    assert metadata["publication_date"] == "2024-05-01"


def test_nothing_known_gives_empty_fields(tmp_path: Path) -> None:
    metadata = extract(tmp_path, "x = 1")
    assert metadata["title"] is None
    assert metadata["description"] is None
    assert metadata["creators"] == []
    assert metadata["keywords"] == []
    assert metadata["publication_date"] is None


def test_authors_in_jupyterlab_style(tmp_path: Path) -> None:
    metadata = extract(
        tmp_path,
        "x = 1",
        authors=[
            {
                "name": "Ada Lovelace",
                "orcid": "https://orcid.org/0000-0002-1825-0097",
                "affiliation": ["Analytical Society", "London"],
            },
            {"name": "Charles Babbage", "orcid": "not-an-orcid"},
            "Grace Hopper",
            {"orcid": "0000-0001-5109-3700"},
        ],
    )
    assert metadata["creators"] == [
        {
            "name": "Ada Lovelace",
            "orcid": "0000-0002-1825-0097",
            "affiliation": "Analytical Society; London",
        },
        {"name": "Charles Babbage", "orcid": "not-an-orcid", "affiliation": None},
        {"name": "Grace Hopper", "orcid": None, "affiliation": None},
    ]


def test_o2r_creators_win_over_authors(tmp_path: Path) -> None:
    metadata = extract(
        tmp_path,
        "x = 1",
        authors=[{"name": "Someone Else"}],
        erc={
            "creators": [
                {
                    "name": "Daniel Nüst",
                    "orcid": "0000-0002-0024-5046",
                    "affiliation": "University of Münster",
                }
            ]
        },
    )
    assert metadata["creators"] == [
        {
            "name": "Daniel Nüst",
            "orcid": "0000-0002-0024-5046",
            "affiliation": "University of Münster",
        }
    ]


def test_keywords_as_comma_separated_text(tmp_path: Path) -> None:
    metadata = extract(tmp_path, "x = 1", keywords="climate, sea level,, climate ")
    assert metadata["keywords"] == ["climate", "sea level"]


# --- the erc, files, licenses and dependencies ---------------------------------------------


def test_erc_fields_and_files(tmp_path: Path) -> None:
    files = [".erc/metadata_o2r_1.json", ".erc/zenodo.json", "LICENSE", "erc.yml", "main.ipynb"]
    metadata = extract(tmp_path, "x = 1", files=files)
    assert metadata["erc_id"] == ERC.id
    assert (metadata["mainfile"], metadata["displayfile"]) == ("main.ipynb", "main.html")
    assert metadata["license"] == ERC.licenses
    assert metadata["license_files"] == ["LICENSE"]
    assert metadata["files"] == ["LICENSE", "erc.yml", "main.ipynb"]


def test_license_files_are_top_level_license_and_copying() -> None:
    files = ["COPYING.LESSER", "LICENCE.txt", "License.md", "README.md", "docs/LICENSE", "x.py"]
    assert license_files(files) == ["COPYING.LESSER", "LICENCE.txt", "License.md"]


def test_dependency_files_at_top_level_and_in_binder() -> None:
    files = [
        ".binder/postBuild",
        "Dockerfile",
        "binder/environment.yml",
        "environment.yml",
        "pyproject.toml",
        "requirements-dev.txt",
        "runtime.txt",
        "src/requirements.txt",
    ]
    assert dependency_files(files) == [
        ".binder/postBuild",
        "Dockerfile",
        "binder/environment.yml",
        "environment.yml",
        "pyproject.toml",
        "runtime.txt",
    ]


def test_depends_from_requirements_and_environment(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(
        "# pinned\nnumpy==1.26.4  # arrays\n\n-r other.txt\n--index-url https://x.org\n"
        "pandas[excel] >= 2.0, <3 ; python_version >= '3.9'\nmatplotlib\n"
        "git+https://github.com/o2r-project/x.git\nmylib @ https://example.org/mylib.whl\n",
        encoding="utf-8",
    )
    (tmp_path / "binder").mkdir()
    (tmp_path / "binder" / "environment.yml").write_text(
        "channels: [conda-forge]\ndependencies:\n  - python=3.11\n  - conda-forge::xarray >=2024\n"
        "  - pip\n  - pip:\n    - seaborn==0.13\n",
        encoding="utf-8",
    )
    files = ["binder/environment.yml", "main.ipynb", "requirements.txt"]
    metadata = extract(tmp_path, "x = 1", files=files)
    pypi, conda = "https://pypi.org/", "https://anaconda.org/"
    assert metadata["dependency_files"] == ["binder/environment.yml", "requirements.txt"]
    assert metadata["depends"] == [
        {"identifier": "python", "version": "=3.11", "packageSystem": conda},
        {"identifier": "xarray", "version": ">=2024", "packageSystem": conda},
        {"identifier": "pip", "version": None, "packageSystem": conda},
        {"identifier": "seaborn", "version": "==0.13", "packageSystem": pypi},
        {"identifier": "numpy", "version": "==1.26.4", "packageSystem": pypi},
        {"identifier": "pandas", "version": ">= 2.0, <3", "packageSystem": pypi},
        {"identifier": "matplotlib", "version": None, "packageSystem": pypi},
        {"identifier": "mylib", "version": None, "packageSystem": pypi},
    ]


def test_broken_environment_yml_is_reported(tmp_path: Path) -> None:
    (tmp_path / "environment.yml").write_text("dependencies: [numpy\n", encoding="utf-8")
    with pytest.raises(InvalidERC, match=r"^environment\.yml: invalid YAML at line 2$"):
        extract(tmp_path, "x = 1", files=["environment.yml", "main.ipynb"])


@pytest.mark.parametrize(
    ("text", "identifier"),
    [
        ("MIT License\n\nPermission is hereby granted, free of charge, to any person", "MIT"),
        (
            "                                 Apache License\n   Version 2.0, January 2004",
            "Apache-2.0",
        ),
        (
            "GNU GENERAL PUBLIC LICENSE\n Version 3, 29 June 2007 ... GNU Affero General Public "
            "License into a single combined work",
            "GPL-3.0",
        ),
        ("GNU AFFERO GENERAL PUBLIC LICENSE\n Version 3, 19 November 2007", "AGPL-3.0"),
        ("GNU LESSER GENERAL PUBLIC LICENSE\n Version 2.1, February 1999", "LGPL-2.1"),
        ("GNU GENERAL PUBLIC LICENSE\n Version 2, June 1991", "GPL-2.0"),
        (
            "Redistribution and use in source and binary forms ... 3. Neither the name",
            "BSD-3-Clause",
        ),
        ("Redistribution and use in source and binary forms, with or without", "BSD-2-Clause"),
        ("Creative Commons Attribution 4.0 International Public License", "CC-BY-4.0"),
        ("Attribution-ShareAlike 4.0 International", "CC-BY-SA-4.0"),
        ("CC0 1.0 Universal", "CC0-1.0"),
        ("Open Data Commons Open Database License (ODbL)", "ODbL-1.0"),
        ("All rights reserved. Ask me.", None),
    ],
)
def test_identify_license(text: str, identifier: str | None) -> None:
    assert identify_license(text) == identifier


def test_default_licenses_from_license_files(tmp_path: Path) -> None:
    (tmp_path / "LICENSE").write_text("Permission is hereby granted, free of charge,", "utf-8")
    (tmp_path / "LICENSE-text").write_text("Attribution 4.0 International", "utf-8")
    (tmp_path / "COPYING").write_text("something unknown", "utf-8")
    files = ["COPYING", "LICENSE", "LICENSE-text", "main.ipynb"]
    assert default_licenses(tmp_path, files) == {
        "code": "MIT",
        "data": "CC-BY-4.0",
        "text": "CC-BY-4.0",
        "metadata": LICENSE_NOT_SPECIFIED,
    }


def test_default_licenses_without_license_files(tmp_path: Path) -> None:
    assert set(default_licenses(tmp_path, ["main.ipynb"]).values()) == {LICENSE_NOT_SPECIFIED}


def test_write_metadata(tmp_path: Path) -> None:
    metadata = {"title": "Über", "files": ["a"]}
    path = write_metadata(tmp_path, metadata)
    assert path == tmp_path / METADATA_PATH
    assert json.loads(path.read_text(encoding="utf-8")) == metadata
    assert "Über" in path.read_text(encoding="utf-8")
    write_metadata(tmp_path, {"title": "second"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"title": "second"}
    assert sorted(p.name for p in path.parent.iterdir()) == ["metadata_o2r_1.json"]
