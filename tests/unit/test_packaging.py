"""Packaging: the o2r -> Zenodo mapping, the RO-Crate description, BagIt bags and their zips."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import bagit
import pytest
from rocrate.rocrate import ROCrate

from erchub.archive import extract_archive
from erchub.metadata import METADATA_PATH
from erchub.services.compendia.files import CHUNK_BYTES
from erchub.services.exchange import packaging
from erchub.services.exchange.citation import family_given
from erchub.services.exchange.crate import CRATE_METADATA, describe_crate
from erchub.services.exchange.deposit import ZENODO_METADATA_PATH, zenodo_metadata
from erchub.services.exchange.packaging import (
    PackagingError,
    bag_info_tags,
    write_bag,
    write_zip,
    zip_bag,
)
from erchub.workspace import prepare_compendium
from tests.conftest import heading, write_notebook

ERC_ID = "b9b0099e-9f8d-4a33-8acf-cb0c062efaec"
ADA_ORCID = "0000-0002-1825-0097"  # ORCID's example iD, right check character
NOW = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
SCHEMA = "http://schema.org/"


def full_o2r(**changes: Any) -> dict[str, Any]:
    """o2r metadata as erchub extracts it, every field set."""
    o2r: dict[str, Any] = {
        "erc_id": ERC_ID,
        "title": "Temperature trends",
        "description": "Warming in the Alps.\n\nSecond <paragraph> & more.",
        "creators": [
            {"name": "Ada Lovelace", "orcid": ADA_ORCID, "affiliation": "Analytical Society"},
            {"name": "Guido van Rossum", "orcid": None, "affiliation": None},
        ],
        "keywords": ["climate", "alps", "climate"],
        "publication_date": "2024-05-01",
        "license": {"code": "MIT", "data": "ODbL-1.0", "text": "CC-BY-4.0", "metadata": "CC0-1.0"},
        "mainfile": "main.ipynb",
        "displayfile": "main.html",
        "license_files": ["LICENSE"],
        "dependency_files": ["requirements.txt"],
        "depends": [{"identifier": "numpy", "version": "==1.26", "packageSystem": "x"}],
        "files": ["LICENSE", "erc.yml", "main.ipynb", "requirements.txt", "data/t.csv"],
    }
    o2r.update(changes)
    return o2r


# -- zenodo_metadata ---------------------------------------------------------------------------


def test_zenodo_metadata_maps_every_field() -> None:
    o2r = full_o2r()
    before = copy.deepcopy(o2r)
    zenodo = zenodo_metadata(o2r, compendium_url="https://hub.example/erc/abc", communities=["o2r"])
    assert o2r == before  # pure: the input stays as it was
    assert zenodo["upload_type"] == "publication"
    assert zenodo["publication_type"] == "other"
    assert zenodo["title"] == "Temperature trends"
    assert zenodo["description"] == (
        "<p>Warming in the Alps.</p><p>Second &lt;paragraph&gt; &amp; more.</p>"
    )
    assert zenodo["creators"] == [
        {"name": "Lovelace, Ada", "affiliation": "Analytical Society", "orcid": ADA_ORCID},
        {"name": "van Rossum, Guido"},
    ]
    assert zenodo["access_right"] == "open"
    assert zenodo["license"] == "mit"
    assert zenodo["publication_date"] == "2024-05-01"
    assert zenodo["keywords"] == ["climate", "alps"]
    assert zenodo["related_identifiers"] == [
        {"identifier": "https://hub.example/erc/abc", "relation": "isSupplementedBy"}
    ]
    assert zenodo["communities"] == [{"identifier": "o2r"}]
    notes = zenodo["notes"]
    for part in (ERC_ID, "Main notebook: main.ipynb", "Display file: main.html", "BagIt"):
        assert part in notes
    assert "code: MIT; data: ODbL-1.0; text: CC-BY-4.0; metadata: CC0-1.0" in notes
    assert set(zenodo) == {
        "upload_type",
        "publication_type",
        "title",
        "description",
        "creators",
        "access_right",
        "license",
        "publication_date",
        "keywords",
        "related_identifiers",
        "notes",
        "communities",
    }


def test_zenodo_metadata_of_a_minimal_compendium_omits_what_it_lacks() -> None:
    zenodo = zenodo_metadata({"title": "  Only a title ", "mainfile": "analysis/run.ipynb"})
    assert zenodo["title"] == "Only a title"
    # Zenodo requires a description: a sentence naming the ERC stands in
    assert zenodo["description"] == (
        "<p>Executable Research Compendium “Only a title” (main notebook analysis/run.ipynb).</p>"
    )
    assert zenodo["access_right"] == "open"
    for absent in (
        "creators",
        "license",
        "publication_date",
        "keywords",
        "related_identifiers",
        "communities",
    ):
        assert absent not in zenodo


@pytest.mark.parametrize("description", [None, "", "   \n\n  "])
def test_zenodo_description_falls_back_to_the_erc_id_without_a_title(
    description: str | None,
) -> None:
    zenodo = zenodo_metadata({"erc_id": ERC_ID, "title": None, "description": description})
    assert "title" not in zenodo  # Zenodo then refuses the deposit naming the title
    assert zenodo["description"] == f"<p>Executable Research Compendium {ERC_ID}.</p>"


@pytest.mark.parametrize(
    ("licenses", "expected"),
    [
        ({"code": "MIT", "text": "CC-BY-4.0"}, "mit"),
        ({"code": "NOASSERTION", "text": "CC-BY-4.0", "data": "CC0-1.0"}, "cc-by-4.0"),
        ({"code": "noassertion", "text": "NOASSERTION", "data": "CC0-1.0"}, "cc0-1.0"),
        ({"code": {"main.ipynb": "MIT"}, "text": "CC-BY-SA-4.0"}, "cc-by-sa-4.0"),
        ({"code": "GPL-3.0"}, "gpl-3.0-only"),
        ({"code": "Apache-2.0", "metadata": "CC0-1.0"}, "apache-2.0"),
        # the metadata license is not the deposit's license
        ({"code": "NOASSERTION", "metadata": "CC0-1.0"}, None),
        ({"code": "NOASSERTION", "data": "NOASSERTION", "text": "NOASSERTION"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_zenodo_license_is_the_code_license_in_lower_case(
    licenses: dict[str, Any] | None, expected: str | None
) -> None:
    zenodo = zenodo_metadata(full_o2r(license=licenses))
    assert zenodo.get("license") == expected
    if expected is None:
        assert "license" not in zenodo


def test_zenodo_notes_say_which_licenses_are_not_stated() -> None:
    zenodo = zenodo_metadata(full_o2r(license={"code": "NOASSERTION", "data": {"d.csv": "MIT"}}))
    assert "Licenses by kind: code: not stated; data: d.csv MIT." in zenodo["notes"]


def test_zenodo_creators_keep_only_what_zenodo_accepts() -> None:
    creators = [
        {"name": "Ada Lovelace", "orcid": f"https://orcid.org/{ADA_ORCID}", "affiliation": " "},
        {"name": "Bad Check", "orcid": "0000-0002-1825-0098", "affiliation": "Somewhere"},
        {"name": "   ", "orcid": ADA_ORCID},
        {"orcid": ADA_ORCID},
        "not a person",
        {"name": "Lovelace, Ada Augusta"},
    ]
    zenodo = zenodo_metadata(full_o2r(creators=creators))
    assert zenodo["creators"] == [
        {"name": "Lovelace, Ada", "orcid": ADA_ORCID},
        {"name": "Check, Bad", "affiliation": "Somewhere"},
        {"name": "Lovelace, Ada Augusta"},
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Ada Lovelace", "Lovelace, Ada"),
        ("  Ada   Augusta  Lovelace ", "Lovelace, Ada Augusta"),
        ("Guido van Rossum", "van Rossum, Guido"),
        ("Jean de la Fontaine", "de la Fontaine, Jean"),
        ("Martin Luther King Jr.", "King, Martin Luther, Jr."),
        ("Lovelace, Ada", "Lovelace, Ada"),
        ("Plato", "Plato"),
        ("van Gogh", "Gogh, van"),  # the heuristic keeps one given name
    ],
)
def test_family_given(name: str, expected: str) -> None:
    assert family_given(name) == expected


def test_zenodo_related_identifiers_from_the_doi() -> None:
    doi = "10.5281/zenodo.1234567"
    again = zenodo_metadata(full_o2r(identifier={"doi": doi, "doiurl": None}))
    assert again["related_identifiers"] == [{"identifier": doi, "relation": "isIdenticalTo"}]

    substitution = {
        "base": "abc123",
        "overlay": "def456",
        "substitutionFiles": [{"base": "data/t.csv", "overlay": "data/u.csv"}],
        "metadataHandling": "keepBase",
    }
    derived = zenodo_metadata(full_o2r(identifier={"doi": doi}, substitution=substitution))
    assert derived["related_identifiers"] == [{"identifier": doi, "relation": "isDerivedFrom"}]
    assert "substitution: compendium abc123 with files of compendium def456" in derived["notes"]
    assert "related_identifiers" not in zenodo_metadata(full_o2r(identifier={"doi": None}))


def test_zenodo_metadata_unwraps_the_api_shape_and_dedupes_communities() -> None:
    wrapped = zenodo_metadata({"o2r": full_o2r()}, communities=["o2r", " o2r ", "", "eu"])
    assert wrapped["title"] == "Temperature trends"
    assert wrapped["communities"] == [{"identifier": "o2r"}, {"identifier": "eu"}]


# -- describe_crate ----------------------------------------------------------------------------

FILES = {
    "main.ipynb": 500,
    "main.html": 900,
    "erc.yml": 200,
    "requirements.txt": 12,
    "apt.txt": 8,
    "LICENSE": 1000,
    "data/t.csv": 40,
    "data/my data.csv": 4,
    METADATA_PATH: 700,
    CRATE_METADATA: 1,
}


def graph(crate: ROCrate) -> dict[str, dict[str, Any]]:
    document = crate.metadata.generate()
    assert document["@context"] == "https://w3id.org/ro/crate/1.1/context"
    return {entity["@id"]: entity for entity in document["@graph"]}


def ids(value: Any) -> list[str]:
    return [v["@id"] for v in (value if isinstance(value, list) else [value])]


def test_crate_names_files_by_role_authors_and_licenses() -> None:
    o2r = full_o2r(license={"code": "MIT", "data": {"data/t.csv": "ODbL-1.0"}, "text": "MIT",
                            "metadata": "NOASSERTION"})  # fmt: skip
    entities = graph(describe_crate(o2r, FILES, now=NOW))
    root = entities["./"]
    assert root["name"] == "Temperature trends"
    assert root["description"].startswith("Warming in the Alps.")
    assert root["datePublished"] == "2024-05-01"
    assert root["keywords"] == ["climate", "alps"]
    assert root["identifier"] == f"urn:uuid:{ERC_ID}"
    assert ids(root["mainEntity"]) == ["main.ipynb"]
    # every file but the metadata file itself, spaces percent-encoded
    assert sorted(ids(root["hasPart"])) == sorted(
        ["main.ipynb", "main.html", "erc.yml", "requirements.txt", "apt.txt", "LICENSE",
         "data/t.csv", "data/my%20data.csv", METADATA_PATH]
    )  # fmt: skip
    assert "mentions" not in root
    main = entities["main.ipynb"]
    assert main["@type"] == ["File", "SoftwareSourceCode"]
    assert main["encodingFormat"] == "application/x-ipynb+json"
    assert main["contentSize"] == "500"
    assert "Main notebook" in main["description"]
    assert entities["main.html"]["encodingFormat"] == "text/html"
    assert "Display file" in entities["main.html"]["description"]
    assert entities["data/my%20data.csv"]["name"] == "my data.csv"
    for runtime in ("requirements.txt", "apt.txt"):
        assert "Runtime manifest" in entities[runtime]["description"]
    assert sorted(ids(entities["#runtime"]["softwareRequirements"])) == [
        "apt.txt",
        "requirements.txt",
    ]

    assert ids(root["author"]) == [f"https://orcid.org/{ADA_ORCID}", "#author-2"]
    ada = entities[f"https://orcid.org/{ADA_ORCID}"]
    assert ada["@type"] == "Person"
    assert ada["name"] == "Ada Lovelace"
    assert ada["identifier"] == f"https://orcid.org/{ADA_ORCID}"
    assert entities[ada["affiliation"]["@id"]] == {
        "@id": "#organization-1",
        "@type": "Organization",
        "name": "Analytical Society",
    }
    guido = entities["#author-2"]
    assert guido["name"] == "Guido van Rossum"
    assert "affiliation" not in guido and "identifier" not in guido

    assert ids(root["license"]) == ["https://spdx.org/licenses/MIT"]
    mit = entities["https://spdx.org/licenses/MIT"]
    assert mit["@type"] == "CreativeWork" and mit["identifier"] == "MIT"
    assert mit["description"] == "License of the compendium's code, text."
    assert ids(entities["data/t.csv"]["license"]) == ["https://spdx.org/licenses/ODbL-1.0"]
    assert not any("NOASSERTION" in key for key in entities)


def test_crate_of_sparse_metadata() -> None:
    o2r = {"title": "T", "mainfile": "main.ipynb", "creators": [{"name": "A B"}, {"name": "A B"}]}
    entities = graph(describe_crate(o2r, {"main.ipynb": 3}, now=NOW))
    root = entities["./"]
    assert root["datePublished"] == "2024-06-01"  # the day of packaging
    assert root["description"] == "Executable Research Compendium “T” (main notebook main.ipynb)."
    assert "license" not in root and "identifier" not in root and "keywords" not in root
    assert "#runtime" not in entities
    assert ids(root["author"]) == ["#author-1", "#author-2"]


def test_crate_names_the_git_commit_it_was_loaded_from() -> None:
    repository = "https://git.example.org/ada/paper"
    commit = "0123456789ABCDEF0123456789abcdef01234567"
    origin = {"kind": "git_url", "git_url": repository, "ref": "main", "commit": commit,
              "url": f"{repository}.git", "loaded": "2024-06-01T12:00:00Z"}  # fmt: skip
    entities = graph(describe_crate(full_o2r(origin=origin), FILES, now=NOW))
    assert ids(entities["./"]["isBasedOn"]) == [repository]
    assert entities[repository] == {
        "@id": repository,
        "@type": "SoftwareSourceCode",
        "name": f"{repository} at main",
        "codeRepository": repository,
        "version": commit.lower(),
    }
    # a Zenodo record's origin, or a git origin that is no web URL: nothing is based on
    zenodo = {"kind": "zenodo_record_id", "zenodo_record_id": "1", "url": "https://z/1",
              "loaded": "2024-06-01T12:00:00Z"}  # fmt: skip
    for other in (zenodo, {**origin, "git_url": "javascript:alert(1)"}, {**origin, "commit": "ab"}):
        assert (
            "isBasedOn" not in graph(describe_crate(full_o2r(origin=other), FILES, now=NOW))["./"]
        )


def test_crate_records_the_last_job_as_a_create_action() -> None:
    job = {
        "id": "20240601T120000-abc123",
        "status": "success",
        "started": 1717243200.0,
        "finished": 1717243265.5,
        "parameters": {"year": 2020, "region": "alps", "bounds": [1, 2]},
        "reason": "",
    }
    entities = graph(describe_crate(full_o2r(), FILES, last_job=job, now=NOW))
    action_id = "#job-20240601T120000-abc123"
    assert ids(entities["./"]["mentions"]) == [action_id]
    action = entities[action_id]
    assert action["@type"] == "CreateAction"
    assert action["actionStatus"] == {"@id": SCHEMA + "CompletedActionStatus"}
    assert action["startTime"] == "2024-06-01T12:00:00.000Z"
    assert action["endTime"] == "2024-06-01T12:01:05.500Z"
    assert ids(action["instrument"]) == ["main.ipynb", "#runtime"]
    assert ids(action["result"]) == ["main.html"]
    assert "error" not in action
    values = {entities[i]["name"]: entities[i]["value"] for i in ids(action["object"])}
    assert values == {"year": 2020, "region": "alps", "bounds": "[1, 2]"}


@pytest.mark.parametrize(
    ("status", "expected"),
    [("failure", "FailedActionStatus"), ("canceled", "FailedActionStatus")],
)
def test_crate_action_of_a_failed_job(status: str, expected: str) -> None:
    # the API's job JSON: ISO times, files instead of result
    job = {
        "id": "j1",
        "status": status,
        "started": "2024-06-01T12:00:00.000Z",
        "finished": "not a time",
        "reason": "cell 3 raised ValueError",
    }
    files = {"main.ipynb": 1, "erc.yml": 1}
    entities = graph(describe_crate(full_o2r(), files, last_job=job, now=NOW))
    action = entities["#job-j1"]
    assert action["actionStatus"] == {"@id": SCHEMA + expected}
    assert action["startTime"] == "2024-06-01T12:00:00.000Z"
    assert "endTime" not in action
    assert action["error"] == "cell 3 raised ValueError"
    assert ids(action["instrument"]) == ["main.ipynb"]  # no runtime manifest, no #runtime
    assert "result" not in action  # the payload has no display file


def test_bag_info_tags() -> None:
    tags = bag_info_tags(full_o2r(), {"a": 1024, "b": 1024}, compendium_id="abc123")
    assert tags["Is-Executable-Research-Compendium"] == "true"
    assert tags["ERC-Version"] == "1"
    assert tags["Source-Organization"] == "erchub"
    assert tags["External-Identifier"] == f"urn:uuid:{ERC_ID}"
    assert tags["External-Description"] == "Executable Research Compendium: Temperature trends"
    assert tags["Internal-Sender-Identifier"] == "abc123"
    assert tags["Bag-Size"] == "2.0 KB"
    extra = {"Source-Organization": "Example\nUniversity", "Contact-Email": "erc@example.org"}
    tags = bag_info_tags(
        full_o2r(erc_id="https://example.org/erc/1", identifier={"doi": "10.5072/x"}),
        {},
        compendium_id="abc123",
        extra=extra,
    )
    assert tags["Source-Organization"] == "Example University"  # one line
    assert tags["Contact-Email"] == "erc@example.org"
    assert tags["External-Identifier"] == "https://example.org/erc/1"
    assert tags["Bag-Size"] == "0 bytes"
    no_id = bag_info_tags({"title": "t", "identifier": {"doi": "10.5072/x"}}, {}, compendium_id="i")
    assert no_id["External-Identifier"] == "10.5072/x"


# -- write_bag ---------------------------------------------------------------------------------


def make_compendium(root: Path) -> dict[str, Any]:
    """A small compendium as the service stores it; returns its o2r metadata."""
    write_notebook(
        root / "main.ipynb",
        heading("# Temperature trends\n\nWarming in the Alps."),
        "print(open('data/t.csv').read())",
        authors=[
            {"name": "Ada Lovelace", "orcid": ADA_ORCID, "affiliation": "Analytical Society"},
            "Charles Babbage",
        ],
        keywords="climate, alps",
        publication_date="2024-05-01",
    )
    (root / "data").mkdir()
    (root / "data" / "t.csv").write_text("year,t\n2020,1.5\n", encoding="utf-8")
    (root / "data" / "my data.csv").write_text("x\n", encoding="utf-8")
    (root / "requirements.txt").write_text("pandas==2.2\n", encoding="utf-8")
    (root / "postBuild").write_text("#!/bin/sh\necho built\n", encoding="utf-8")
    (root / "postBuild").chmod(0o755)
    (root / "LICENSE").write_text(
        "MIT License\n\nPermission is hereby granted, free of charge, to any person ...\n",
        encoding="utf-8",
    )
    (root / ".ercignore").write_text("scratch/\n", encoding="utf-8")
    (root / "scratch").mkdir()
    (root / "scratch" / "notes.txt").write_text("private", encoding="utf-8")
    (root / ".erc" / "jobs" / "j1").mkdir(parents=True)
    (root / ".erc" / "jobs" / "j1" / "output.log").write_text("internal", encoding="utf-8")
    (root / "link.csv").symlink_to("data/t.csv")
    (root / "outside.txt").symlink_to(root.parent / "secret.txt")
    (root.parent / "secret.txt").write_text("secret", encoding="utf-8")
    prepare_compendium(root)
    metadata = json.loads((root / METADATA_PATH).read_text(encoding="utf-8"))
    assert isinstance(metadata, dict)
    return metadata


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def compendium(tmp_path: Path) -> Path:
    root = tmp_path / "compendia" / "abc123"
    root.mkdir(parents=True)
    make_compendium(root)
    return root


def o2r_of(root: Path) -> dict[str, Any]:
    metadata = json.loads((root / METADATA_PATH).read_text(encoding="utf-8"))
    assert isinstance(metadata, dict)
    return metadata


SUCCESS = {
    "id": "job1",
    "status": "success",
    "started": 1717243200.0,
    "finished": 1717243230.0,
    "parameters": {},
    "result": {"display": "output/main.html", "executed": "output/main.ipynb"},
}


def test_bag_of_a_compendium_validates_and_carries_its_crate(
    compendium: Path, tmp_path: Path
) -> None:
    metadata = o2r_of(compendium)
    metadata["title"] = "Edited title"  # the store's metadata, newer than the file
    before = snapshot(compendium)
    cwd = os.getcwd()
    job_dir = tmp_path / "jobs" / "job1"
    (job_dir / "output").mkdir(parents=True)
    (job_dir / "output" / "main.html").write_text("<html>figures</html>", encoding="utf-8")

    bag_dir = write_bag(
        compendium, tmp_path / "bag", metadata=metadata, last_job=SUCCESS, job_dir=job_dir
    )

    assert bag_dir == (tmp_path / "bag").absolute()
    assert os.getcwd() == cwd  # the library's chdir happened in a child process
    assert snapshot(compendium) == before  # the compendium is untouched
    bag = bagit.Bag(str(bag_dir))
    bag.validate()  # every checksum
    assert bag.tags["Is-Executable-Research-Compendium"] == "true"
    declaration = (bag_dir / "bagit.txt").read_text(encoding="utf-8").splitlines()
    assert declaration[:2] == ["BagIt-Version: 0.97", "Tag-File-Character-Encoding: UTF-8"]
    assert "Is-Executable-Research-Compendium: true" in declaration
    assert bag.info["Is-Executable-Research-Compendium"] == "true"
    assert bag.info["ERC-Version"] == "1"
    assert bag.info["Source-Organization"] == "erchub"
    assert bag.info["Internal-Sender-Identifier"] == "abc123"
    assert bag.info["External-Identifier"] == f"urn:uuid:{metadata['erc_id']}"
    assert set(bag.algorithms) == {"sha512", "md5"}

    payload = bag_dir / "data"
    expected = {
        "main.ipynb",
        "erc.yml",
        "requirements.txt",
        "postBuild",
        "LICENSE",
        ".ercignore",
        "data/t.csv",
        "data/my data.csv",
        "link.csv",
        METADATA_PATH,
        ZENODO_METADATA_PATH,
        "main.html",
        CRATE_METADATA,
    }
    assert set(snapshot(payload)) == expected  # no .erc/jobs, scratch/ or outside link
    for name in ("main.ipynb", "data/t.csv", "LICENSE", "erc.yml"):
        assert (payload / name).read_bytes() == before[name]
    assert (payload / "link.csv").read_bytes() == before["data/t.csv"]
    assert not (payload / "link.csv").is_symlink()
    assert os.access(payload / "postBuild", os.X_OK)
    assert (payload / "main.html").read_text(encoding="utf-8") == "<html>figures</html>"
    assert json.loads((payload / METADATA_PATH).read_text(encoding="utf-8")) == metadata
    zenodo = json.loads((payload / ZENODO_METADATA_PATH).read_text(encoding="utf-8"))
    assert zenodo == zenodo_metadata(metadata)

    crate = ROCrate(payload)
    assert crate.name == "Edited title"
    assert crate.mainEntity.id == "main.ipynb"
    assert "SoftwareSourceCode" in crate.mainEntity.type
    assert crate.get("main.html") is not None
    assert crate.get("postBuild")["description"].startswith("Runtime manifest")
    assert [p.id for p in crate.get("#runtime")["softwareRequirements"]] == [
        "postBuild",
        "requirements.txt",
    ]
    authors = {person.id: person["name"] for person in crate.get_by_type("Person")}
    assert authors == {
        f"https://orcid.org/{ADA_ORCID}": "Ada Lovelace",
        "#author-2": "Charles Babbage",
    }
    assert [a.id for a in crate.root_dataset["author"]] == list(authors)
    assert [lic.id for lic in crate.root_dataset["license"]] == ["https://spdx.org/licenses/MIT"]
    (action,) = crate.get_by_type("CreateAction")
    assert action.id == "#job-job1"
    assert action["actionStatus"] == SCHEMA + "CompletedActionStatus"
    assert action["startTime"] == "2024-06-01T12:00:00.000Z"
    assert action["endTime"] == "2024-06-01T12:00:30.000Z"
    assert [i.id for i in action["instrument"]] == ["main.ipynb", "#runtime"]
    assert action["result"].id == "main.html"
    assert crate.root_dataset["mentions"].id == "#job-job1"
    described = {e.id for e in crate.data_entities}
    assert described == {
        "main.ipynb", "erc.yml", "requirements.txt", "postBuild", "LICENSE", ".ercignore",
        "data/t.csv", "data/my%20data.csv", "link.csv", METADATA_PATH, ZENODO_METADATA_PATH,
        "main.html",
    }  # fmt: skip


def test_bag_detects_a_changed_crate(compendium: Path, tmp_path: Path) -> None:
    bag_dir = write_bag(compendium, tmp_path / "bag", metadata=o2r_of(compendium), last_job=None)
    crate_file = bag_dir / "data" / CRATE_METADATA
    assert "CreateAction" not in crate_file.read_text(encoding="utf-8")
    crate_file.write_text("{}", encoding="utf-8")
    with pytest.raises(bagit.BagValidationError):
        bagit.Bag(str(bag_dir)).validate()


@pytest.mark.parametrize(
    "job",
    [
        {**SUCCESS, "status": "failure"},  # only a successful job's display is added
        {**SUCCESS, "result": {"display": "../../secret.txt"}},  # not outside the job
        {**SUCCESS, "result": {}},
    ],
)
def test_bag_adds_only_a_successful_jobs_display(
    compendium: Path, tmp_path: Path, job: dict[str, Any]
) -> None:
    job_dir = tmp_path / "jobs" / "job1"
    (job_dir / "output").mkdir(parents=True)
    (job_dir / "output" / "main.html").write_text("<html></html>", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("secret", encoding="utf-8")
    bag_dir = write_bag(
        compendium, tmp_path / "bag", metadata=o2r_of(compendium), last_job=job, job_dir=job_dir
    )
    assert not (bag_dir / "data" / "main.html").exists()
    crate = ROCrate(bag_dir / "data")
    assert crate.get("main.html") is None
    (action,) = crate.get_by_type("CreateAction")
    assert "result" not in action


def test_bag_keeps_the_compendiums_own_display_and_replaces_an_old_crate(
    compendium: Path, tmp_path: Path
) -> None:
    (compendium / "main.html").write_text("<html>original</html>", encoding="utf-8")
    (compendium / CRATE_METADATA).write_text('{"@graph": []}', encoding="utf-8")
    (compendium / ZENODO_METADATA_PATH).write_text("stale", encoding="utf-8")
    job_dir = tmp_path / "jobs" / "job1"
    (job_dir / "output").mkdir(parents=True)
    (job_dir / "output" / "main.html").write_text("<html>new</html>", encoding="utf-8")
    bag_dir = write_bag(
        compendium,
        tmp_path / "bag",
        metadata=o2r_of(compendium),
        last_job=SUCCESS,
        job_dir=job_dir,
        bag_info={"Source-Organization": "Example University", "Contact-Name": "Ada"},
    )
    payload = bag_dir / "data"
    assert (payload / "main.html").read_text(encoding="utf-8") == "<html>original</html>"
    assert (payload / ZENODO_METADATA_PATH).read_text(encoding="utf-8") != "stale"
    crate = ROCrate(payload)
    assert crate.mainEntity.id == "main.ipynb"
    assert crate.get_by_type("CreateAction")[0]["result"].id == "main.html"
    info = bagit.Bag(str(bag_dir)).info
    assert info["Source-Organization"] == "Example University"
    assert info["Contact-Name"] == "Ada"


def test_bag_refuses_a_used_target(compendium: Path, tmp_path: Path) -> None:
    target = tmp_path / "bag"
    target.mkdir()
    (target / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(FileExistsError):
        write_bag(compendium, target, metadata=o2r_of(compendium), last_job=None)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    with pytest.raises(ValueError, match="inside the compendium"):
        write_bag(compendium, compendium / "bag", metadata=o2r_of(compendium), last_job=None)
    assert not (compendium / "bag").exists()


def test_bag_failure_removes_the_partial_bag(
    compendium: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packaging, "_BAGGER", "raise SystemExit('bagit broke')")
    target = tmp_path / "bag"
    with pytest.raises(PackagingError, match="the bag could not be made: bagit broke"):
        write_bag(compendium, target, metadata=o2r_of(compendium), last_job=None)
    assert not target.exists()


# -- zip ---------------------------------------------------------------------------------------


def test_zip_round_trip(compendium: Path, tmp_path: Path) -> None:
    (compendium / "data" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    bag_dir = write_bag(compendium, tmp_path / "abc123", metadata=o2r_of(compendium), last_job=None)

    chunks = list(zip_bag(bag_dir))
    assert len(chunks) > 3  # streamed, not one piece
    assert max(len(chunk) for chunk in chunks) <= 3 * CHUNK_BYTES
    archive = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    assert archive.testzip() is None
    names = archive.namelist()
    assert all(name.startswith("abc123/") for name in names)
    assert "abc123/bagit.txt" in names and "abc123/data/ro-crate-metadata.json" in names

    unpacked = tmp_path / "unpacked"
    archive.extractall(unpacked)
    bagit.Bag(str(unpacked / "abc123")).validate()
    assert (unpacked / "abc123" / "data" / "data" / "big.bin").read_bytes() == (
        compendium / "data" / "big.bin"
    ).read_bytes()

    # erchub's loader takes a zipped bag back as the compendium in its payload
    zip_path = write_zip(bag_dir, tmp_path / "bag.zip", prefix="shipment")
    assert zipfile.ZipFile(zip_path).namelist()[0].startswith("shipment/")
    root = extract_archive(zip_path, tmp_path / "loaded")
    assert (root / "erc.yml").is_file() and (root / CRATE_METADATA).is_file()
    assert (root / "main.ipynb").read_bytes() == (compendium / "main.ipynb").read_bytes()


def test_write_zip_removes_a_partial_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_zip(tmp_path / "no-bag", tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()
