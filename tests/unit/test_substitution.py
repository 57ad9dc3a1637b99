"""Substitution planning (o2r's substituter): the request's rules, the file plan, and the
metadata of each metadataHandling mode. Pure: no files are read or written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from erchub import substitution
from erchub.substitution import (
    FILE_FIELDS,
    FilePair,
    FileSource,
    InvalidSubstitution,
    SubstitutionRequest,
    parse_request,
    plan_substitution,
    substituted_metadata,
)

REPO = Path(__file__).resolve().parents[2]
BASE_FILES = [
    ".erc/metadata_o2r_1.json",
    ".erc/other-export.json",
    "data.csv",
    "erc.yml",
    "inputs/old.csv",
    "main.ipynb",
    "requirements.txt",
]
OVERLAY_FILES = [".erc/metadata_o2r_1.json", "data.csv", "erc.yml", "more/new.csv", "main.ipynb"]


def body(*pairs: tuple[Any, Any], **fields: Any) -> dict[str, Any]:
    return {
        "base": "baseID",
        "overlay": "overID",
        "substitutionFiles": [{"base": b, "overlay": o} for b, o in pairs],
        **fields,
    }


def rejected(request_body: Any) -> str:
    with pytest.raises(InvalidSubstitution) as caught:
        parse_request(request_body)
    return str(caught.value)


# --- the request -----------------------------------------------------------------------------


def test_a_valid_request_is_parsed_with_keep_base_as_default() -> None:
    request = parse_request(body(("data.csv", "more/new.csv"), ("inputs/old.csv", "data.csv")))
    assert request == SubstitutionRequest(
        "baseID",
        "overID",
        (FilePair("data.csv", "more/new.csv"), FilePair("inputs/old.csv", "data.csv")),
        "keepBase",
    )
    for mode in ("keepBase", "extractAndMerge", "extract"):
        assert parse_request(body(("a", "b"), metadataHandling=mode)).metadata_handling == mode


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ([], "body: must be a JSON object"),
        (None, "body: must be a JSON object"),
        ({**body(("a", "b")), "extra": 1}, "body: unknown field extra"),
        (
            {"overlay": "o", "substitutionFiles": [{"base": "a", "overlay": "b"}]},
            "base: is required",
        ),
        (
            {"base": "b", "substitutionFiles": [{"base": "a", "overlay": "b"}]},
            "overlay: is required",
        ),
        (body(("a", "b"), base=""), "base: must be a compendium id"),
        (body(("a", "b"), base=12), "base: must be a compendium id"),
        (body(("a", "b"), overlay="x" * 65), "overlay: must be a compendium id"),
        (body(("a", "b"), base="ab\x00c"), "base: must be a compendium id"),
        (body(("a", "b"), base="../x"), "base: must be a compendium id"),
        (body(("a", "b"), overlay="a b"), "overlay: must be a compendium id"),
        ({"base": "b", "overlay": "o"}, "substitutionFiles: is required"),
        (body(), "substitutionFiles: must be a non-empty list"),
        (body(substitutionFiles="data.csv"), "substitutionFiles: must be a non-empty list"),
        (body(substitutionFiles=["data.csv"]), "substitutionFiles.0: must be an object"),
        (
            body(substitutionFiles=[{"base": "a", "overlay": "b", "mode": 1}]),
            "substitutionFiles.0: unknown field mode",
        ),
        (body(substitutionFiles=[{"base": "a"}]), "substitutionFiles.0.overlay: must be a file"),
        (body((None, "b")), "substitutionFiles.0.base: must be a file path"),
        (body(("a", 3)), "substitutionFiles.0.overlay: must be a file path"),
        (body(("a", "b"), metadataHandling="merge"), "metadataHandling: must be one of keepBase"),
        (body(("a", "b"), metadataHandling=None), "metadataHandling: must be one of"),
    ],
)
def test_malformed_requests_name_the_field(request_body: Any, message: str) -> None:
    assert rejected(request_body).startswith(message)


def test_too_many_pairs_are_refused() -> None:
    pairs = [(f"f{i}", "b") for i in range(substitution.MAX_PAIRS + 1)]
    assert rejected(body(*pairs)).startswith("substitutionFiles: at most 1000 pairs")


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../secret.csv", "leads out of the compendium"),
        ("data/../../etc/passwd", "leads out of the compendium"),
        ("..", "leads out of the compendium"),
        ("/etc/passwd", "absolute path"),
        ("\\\\server\\share", "not '\\'"),
        ("data\\..\\x", "not '\\'"),
        ("data//x.csv", "not a plain relative path"),
        ("./data.csv", "not a plain relative path"),
        ("data/", "not a plain relative path"),
        ("a\x00b", "NUL character"),
        ("", "must be a file path"),
        ("x" * 4097, "longer than 4096"),
        ("erc.yml", "configuration or metadata"),
        (".erc/metadata_o2r_1.json", "configuration or metadata"),
        (".erc", "configuration or metadata"),
    ],
)
@pytest.mark.parametrize("side", ["base", "overlay"])
def test_unsafe_and_reserved_paths_are_refused(path: str, reason: str, side: str) -> None:
    pair = ("data.csv", path) if side == "overlay" else (path, "data.csv")
    message = rejected(body(pair))
    assert message.startswith(f"substitutionFiles.0.{side}: ")
    assert reason in message


def test_paths_that_only_look_reserved_are_allowed() -> None:
    request = parse_request(body(("sub/erc.yml", "x.erc/y"), ("..data.csv", "a..b")))
    assert [pair.base for pair in request.files] == ["sub/erc.yml", "..data.csv"]


def test_a_base_file_substituted_twice_is_refused_an_overlay_file_may_serve_twice() -> None:
    message = rejected(body(("data.csv", "a.csv"), ("x.csv", "a.csv"), ("data.csv", "b.csv")))
    assert message == (
        "substitutionFiles.2.base: 'data.csv' is substituted twice (also by substitutionFiles.0)"
    )
    assert len(parse_request(body(("data.csv", "a.csv"), ("x.csv", "a.csv"))).files) == 2


# --- the file plan ---------------------------------------------------------------------------


def test_the_plan_keeps_base_files_and_takes_the_named_ones_from_the_overlay() -> None:
    request = parse_request(
        body(
            ("data.csv", "more/new.csv"), ("inputs/old.csv", "data.csv"), metadataHandling="extract"
        )
    )
    plan = plan_substitution(request, BASE_FILES, OVERLAY_FILES)
    assert plan.files == {
        "data.csv": FileSource("overlay", "more/new.csv"),
        "erc.yml": FileSource("base", "erc.yml"),
        "inputs/old.csv": FileSource("overlay", "data.csv"),
        "main.ipynb": FileSource("base", "main.ipynb"),
        "requirements.txt": FileSource("base", "requirements.txt"),
    }
    assert list(plan.files) == sorted(plan.files)  # .erc/ is left out: made anew
    assert plan.record == {
        "base": "baseID",
        "overlay": "overID",
        "substitutionFiles": [
            {"base": "data.csv", "overlay": "more/new.csv", "filename": "data.csv"},
            {"base": "inputs/old.csv", "overlay": "data.csv", "filename": "inputs/old.csv"},
        ],
        "metadataHandling": "extract",
    }


def test_a_file_that_keeps_its_name_replaces_the_base_file_in_place() -> None:
    # o2r would store it as overlay_data.csv and bind-mount it; erchub keeps the path
    plan = plan_substitution(
        parse_request(body(("data.csv", "data.csv"))), BASE_FILES, OVERLAY_FILES
    )
    assert plan.files["data.csv"] == FileSource("overlay", "data.csv")
    assert "overlay_data.csv" not in plan.files
    assert plan.record["substitutionFiles"] == [
        {"base": "data.csv", "overlay": "data.csv", "filename": "data.csv"}
    ]


def test_the_main_notebook_may_be_substituted() -> None:
    plan = plan_substitution(
        parse_request(body(("main.ipynb", "main.ipynb"))), BASE_FILES, OVERLAY_FILES
    )
    assert plan.files["main.ipynb"] == FileSource("overlay", "main.ipynb")


def test_a_file_missing_in_the_base_or_the_overlay_is_named() -> None:
    with pytest.raises(InvalidSubstitution) as caught:
        plan_substitution(
            parse_request(body(("data.csv", "data.csv"), ("missing.csv", "data.csv"))),
            BASE_FILES,
            OVERLAY_FILES,
        )
    assert str(caught.value) == (
        "substitutionFiles.1.base: 'missing.csv' is no file of the base compendium baseID"
    )
    with pytest.raises(InvalidSubstitution) as caught:
        plan_substitution(
            parse_request(body(("data.csv", "inputs/old.csv"))), BASE_FILES, OVERLAY_FILES
        )
    assert str(caught.value) == (
        "substitutionFiles.0.overlay: 'inputs/old.csv' is no file of the overlay compendium overID"
    )
    # a directory is no file
    with pytest.raises(InvalidSubstitution, match=r"substitutionFiles\.0\.base: 'inputs' is no"):
        plan_substitution(parse_request(body(("inputs", "data.csv"))), BASE_FILES, OVERLAY_FILES)


# --- metadata ------------------------------------------------------------------------------

RECORD = {
    "base": "baseID",
    "overlay": "overID",
    "substitutionFiles": [{"base": "data.csv", "overlay": "data.csv", "filename": "data.csv"}],
    "metadataHandling": "keepBase",
}
BASE_METADATA: dict[str, Any] = {
    "erc_id": "11111111-1111-4111-8111-111111111111",
    "title": "The author's edited title",
    "description": "The author's abstract.",
    "creators": [{"name": "Alice Example", "orcid": "0000-0002-1825-0097", "affiliation": None}],
    "keywords": ["rivers", "floods"],
    "publication_date": "2024-05-01",
    "license": {"code": "MIT", "data": "CC-BY-4.0", "text": "CC-BY-4.0", "metadata": "CC0-1.0"},
    "identifier": {"doi": "10.5072/zenodo.1", "doiurl": "https://doi.org/10.5072/zenodo.1"},
    "mainfile": "main.ipynb",
    "displayfile": "main.html",
    "license_files": ["LICENSE"],
    "dependency_files": ["requirements.txt"],
    "depends": [{"identifier": "numpy", "version": "==2.0", "packageSystem": "https://pypi.org/"}],
    "files": ["LICENSE", "data.csv", "erc.yml", "main.ipynb", "requirements.txt"],
    "origin": {"kind": "doi", "doi": "10.5072/zenodo.1", "url": "https://x/y.zip", "loaded": "t"},
    "substitution": {
        "base": "older",
        "overlay": "x",
        "substitutionFiles": [],
        "metadataHandling": "extract",
    },
}
EXTRACTED: dict[str, Any] = {
    "erc_id": "11111111-1111-4111-8111-111111111111",
    "title": "Heading of the notebook",
    "description": None,
    "creators": [],
    "keywords": [],
    "publication_date": None,
    "license": {
        "code": "MIT",
        "data": "NOASSERTION",
        "text": "NOASSERTION",
        "metadata": "NOASSERTION",
    },
    "mainfile": "main.ipynb",
    "displayfile": "main.html",
    "license_files": ["LICENSE"],
    "dependency_files": ["requirements.txt"],
    "depends": [{"identifier": "numpy", "version": "==2.1", "packageSystem": "https://pypi.org/"}],
    "files": ["LICENSE", "data.csv", "erc.yml", "main.ipynb", "requirements.txt"],
}


def test_keep_base_takes_the_base_metadata_with_file_fields_extracted() -> None:
    record = {**RECORD, "metadataHandling": "keepBase"}
    metadata = substituted_metadata("keepBase", BASE_METADATA, EXTRACTED, record)
    assert metadata["title"] == "The author's edited title"
    assert metadata["description"] == "The author's abstract."
    assert metadata["creators"] == BASE_METADATA["creators"]
    assert metadata["keywords"] == ["rivers", "floods"]
    assert metadata["publication_date"] == "2024-05-01"
    assert metadata["license"] == BASE_METADATA["license"]
    # facts about the new files (a substituted requirements.txt changes depends)
    assert metadata["depends"] == EXTRACTED["depends"]
    assert "identifier" not in metadata  # the base's DOI names the base
    assert "origin" not in metadata  # the new compendium was not loaded from anywhere
    assert metadata["substitution"] == record
    expected = {k: v for k, v in BASE_METADATA.items() if k not in substitution.NOT_INHERITED}
    expected.update({k: EXTRACTED[k] for k in FILE_FIELDS})
    assert metadata == {**expected, "substitution": record}


def test_extract_takes_only_the_extracted_metadata() -> None:
    record = {**RECORD, "metadataHandling": "extract"}
    metadata = substituted_metadata("extract", BASE_METADATA, EXTRACTED, record)
    assert metadata == {**EXTRACTED, "substitution": record}
    assert metadata["keywords"] == [] and metadata["creators"] == []


def test_extract_and_merge_lays_extracted_values_over_the_base() -> None:
    record = {**RECORD, "metadataHandling": "extractAndMerge"}
    metadata = substituted_metadata("extractAndMerge", BASE_METADATA, EXTRACTED, record)
    # extracted values win where they have one
    assert metadata["title"] == "Heading of the notebook"
    assert metadata["license"] == EXTRACTED["license"]
    # the base fills what the extraction left empty
    assert metadata["description"] == "The author's abstract."
    assert metadata["creators"] == BASE_METADATA["creators"]
    assert metadata["keywords"] == ["rivers", "floods"]
    assert metadata["publication_date"] == "2024-05-01"
    assert metadata["depends"] == EXTRACTED["depends"]
    assert "identifier" not in metadata and "origin" not in metadata
    assert metadata["substitution"] == record


def test_file_fields_are_extracted_even_when_empty() -> None:
    extracted = {**EXTRACTED, "depends": [], "dependency_files": [], "license_files": []}
    for mode in ("keepBase", "extractAndMerge"):
        metadata = substituted_metadata(mode, BASE_METADATA, extracted, RECORD)
        assert metadata["depends"] == [] and metadata["dependency_files"] == []
        assert metadata["license_files"] == []


def test_the_three_modes_differ_and_nothing_is_shared_with_the_inputs() -> None:
    results = {
        mode: substituted_metadata(mode, BASE_METADATA, EXTRACTED, RECORD)
        for mode in substitution.METADATA_HANDLING
    }
    titles = {mode: result["title"] for mode, result in results.items()}
    assert titles == {
        "keepBase": "The author's edited title",
        "extractAndMerge": "Heading of the notebook",
        "extract": "Heading of the notebook",
    }
    assert results["extractAndMerge"] != results["extract"]
    results["keepBase"]["creators"][0]["name"] = "changed"
    results["extract"]["license"]["code"] = "changed"
    results["keepBase"]["substitution"]["base"] = "changed"
    assert BASE_METADATA["creators"][0]["name"] == "Alice Example"
    assert EXTRACTED["license"]["code"] == "MIT"
    assert RECORD["base"] == "baseID"


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(InvalidSubstitution, match="metadataHandling: must be one of"):
        substituted_metadata("merge", BASE_METADATA, EXTRACTED, RECORD)


def test_the_metadata_schema_accepts_the_record_and_marks_the_file_fields() -> None:
    import jsonschema

    schema = json.loads((REPO / "services/schemas/metadata_o2r.schema.json").read_text())
    read_only = {name for name, field in schema["properties"].items() if field.get("readOnly")}
    assert set(FILE_FIELDS) | {substitution.RECORD_FIELD} <= read_only
    # every field the service owns is either recomputed or never inherited from the base
    assert read_only <= set(FILE_FIELDS) | set(substitution.NOT_INHERITED)
    for mode in substitution.METADATA_HANDLING:
        metadata = substituted_metadata(mode, BASE_METADATA, EXTRACTED, RECORD)
        jsonschema.validate(metadata, schema)
    bad = {**EXTRACTED, "substitution": {**RECORD, "metadataHandling": "merge"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
