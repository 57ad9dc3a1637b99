"""Substitution (o2r's substituter) through a real hub, its erc service and a worker.

A base compendium's notebook reads data.csv and draws two figures, one of the data and one that
does not depend on it. Substituting the overlay's data.csv makes a new candidate whose job
changes exactly the first figure, and the check names that cell. The three metadata modes and
every refusal (unknown compendia, missing files, bad modes, unsafe paths, scopes) are checked
on the side; no refusal may leave files behind or end in a 500.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from erchub.substitution import FILE_FIELDS, NOT_INHERITED
from tests.conftest import heading, write_notebook
from tests.hub.conftest import REPO, Hub, zip_directory
from tests.hub.test_compendium_api import assert_error, scoped_token, wait_until_empty

pytestmark = pytest.mark.hub

BASE_DATA = "x,y\n0,1\n1,3\n2,2\n3,5\n4,4\n"
OVERLAY_DATA = "x,y\n0,6\n1,0\n2,5\n3,1\n4,6\n"

LOAD = """\
import csv

with open("data.csv", newline="") as stream:
    rows = list(csv.DictReader(stream))
x = [float(row["x"]) for row in rows]
y = [float(row["y"]) for row in rows]"""
FIGURE_DATA = """\
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from IPython.display import Image, display


def show(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    display(Image(data=buffer.getvalue()))


fig, ax = plt.subplots(figsize=(4, 3), dpi=60)
ax.plot(x, y, marker="o", color="tab:blue")
ax.set_title("measured")
show(fig)"""
FIGURE_REFERENCE = """\
fig, ax = plt.subplots(figsize=(4, 3), dpi=60)
ax.plot([0, 1, 2, 3, 4], [0, 1, 4, 9, 16], color="tab:green")
ax.set_title("reference")
show(fig)"""


def analysis(root: Path, title: str, data: str, notebook: bytes | None = None) -> bytes:
    """A workspace zip: main.ipynb (``notebook`` when given: one with stored outputs), data.csv
    and the example's requirements.txt (so that the runtime image is shared and cached)."""
    if notebook is None:
        write_notebook(
            root / "main.ipynb",
            heading(f"# {title}\n\nGauges along the river, and a reference curve."),
            new_code_cell(LOAD, id="load-data"),
            new_code_cell(FIGURE_DATA, id="figure-data"),
            new_code_cell(FIGURE_REFERENCE, id="figure-reference"),
        )
    else:
        root.mkdir(parents=True)
        (root / "main.ipynb").write_bytes(notebook)
    (root / "data.csv").write_text(data)
    (root / "requirements.txt").write_bytes(
        (REPO / "examples" / "sine-wave" / "requirements.txt").read_bytes()
    )
    return zip_directory(root)


def substitute(hub: Hub, token: str, **body: Any) -> Any:
    return hub.request("POST", "/substitution", token, json=body)


def pair(base: str = "data.csv", overlay: str = "data.csv") -> list[dict[str, str]]:
    return [{"base": base, "overlay": overlay}]


def file_of(hub: Hub, token: str, compendium_id: str, path: str) -> bytes:
    response = hub.request("GET", f"/compendium/{compendium_id}/data/{path}", token)
    assert response.status_code == 200, response.text
    return response.content


def o2r(hub: Hub, token: str, compendium_id: str) -> dict[str, Any]:
    response = hub.request("GET", f"/compendium/{compendium_id}/metadata", token)
    assert response.status_code == 200, response.text
    return dict(response.json()["metadata"]["o2r"])


def cancel(hub: Hub, token: str, job_id: str) -> None:
    """Free the single worker for the jobs that matter."""
    assert hub.request("POST", f"/job/{job_id}/cancel", token).status_code in (202, 409)


# --- metadata ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def published_base(erc_hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Alice's published base: the author edited title, abstract, keywords, creators and set a
    DOI; the notebook's own heading says otherwise."""
    alice = erc_hub.token("alice")
    root = tmp_path_factory.mktemp("published-base")
    base = erc_hub.create(alice, analysis(root / "ws", "Flood analysis", BASE_DATA))
    doi = f"10.5072/erchub.substitution.{secrets.token_hex(4)}"
    edited = {
        **o2r(erc_hub, alice, base),
        "title": "Edited flood title",
        "description": "The author's abstract.",
        "keywords": ["floods", "gauges"],
        "creators": [{"name": "Alice Example", "orcid": "0000-0002-1825-0097"}],
        "identifier": {"doi": doi, "doiurl": f"https://doi.org/{doi}"},
    }
    put = erc_hub.request("PUT", f"/compendium/{base}/metadata", alice, json={"o2r": edited})
    assert put.status_code == 200 and put.json()["candidate"] is False, put.text
    return {"id": base, "doi": doi, "o2r": o2r(erc_hub, alice, base)}


def test_the_three_metadata_modes(
    erc_hub: Hub, tmp_path: Path, published_base: dict[str, Any]
) -> None:
    alice, bob = erc_hub.token("alice"), erc_hub.token("bob")
    base, base_o2r = published_base["id"], published_base["o2r"]
    overlay = erc_hub.create(bob, analysis(tmp_path / "overlay", "Other river", OVERLAY_DATA))
    made: dict[str, dict[str, Any]] = {}
    made_ids: dict[str, str] = {}
    for mode in ("keepBase", "extractAndMerge", "extract"):
        response = substitute(
            erc_hub,
            bob,
            base=base,
            overlay=overlay,
            substitutionFiles=pair(),
            metadataHandling=mode,
        )
        assert response.status_code == 201, response.text
        created = response.json()
        assert set(created) == {"id", "job_id"}
        cancel(erc_hub, bob, created["job_id"])
        new = created["id"]
        assert response.headers["Location"].endswith(f"/compendium/{new}")
        job = erc_hub.request("GET", f"/job/{created['job_id']}", bob).json()
        assert (job["compendium_id"], job["user"]) == (new, "bob")
        shown = erc_hub.request("GET", f"/compendium/{new}", bob).json()
        assert (shown["user"], shown["candidate"]) == ("bob", True)
        # a candidate of bob's: alice does not see it
        assert_error(erc_hub.request("GET", f"/compendium/{new}", alice), 404)
        # the base's files, data.csv from the overlay, metadata made anew on disk too
        assert file_of(erc_hub, bob, new, "data.csv").decode() == OVERLAY_DATA
        assert file_of(erc_hub, bob, new, "main.ipynb") == file_of(erc_hub, bob, base, "main.ipynb")
        assert file_of(erc_hub, bob, new, "erc.yml") == file_of(erc_hub, bob, base, "erc.yml")
        metadata = shown["metadata"]["o2r"]
        stored = json.loads(file_of(erc_hub, bob, new, ".erc/metadata_o2r_1.json"))
        assert stored == metadata
        assert metadata["substitution"] == {
            "base": base,
            "overlay": overlay,
            "substitutionFiles": [
                {"base": "data.csv", "overlay": "data.csv", "filename": "data.csv"}
            ],
            "metadataHandling": mode,
        }
        assert "identifier" not in metadata  # the base's DOI is not the new compendium's
        assert metadata["files"] == base_o2r["files"]  # no second copy of the overlay file
        made[mode], made_ids[mode] = metadata, new

    kept = {k: v for k, v in base_o2r.items() if k not in (*NOT_INHERITED, *FILE_FIELDS)}
    assert {k: made["keepBase"][k] for k in kept} == kept
    assert made["keepBase"]["title"] == "Edited flood title"

    extract = made["extract"]
    assert extract["title"] == "Flood analysis"  # the notebook's heading
    assert extract["description"] == "Gauges along the river, and a reference curve."
    assert extract["keywords"] == [] and extract["creators"] == []

    merged = made["extractAndMerge"]
    assert merged["title"] == "Flood analysis"  # extracted values win...
    assert merged["description"] == "Gauges along the river, and a reference curve."
    assert merged["keywords"] == ["floods", "gauges"]  # ...the base fills what is empty
    assert merged["creators"] == base_o2r["creators"]
    for metadata in made.values():
        for field in FILE_FIELDS:
            assert metadata[field] == base_o2r[field], field

    # The record is the service's: a PUT can neither drop nor forge it.
    target, record = made_ids["keepBase"], made["keepBase"]["substitution"]
    dropped = {k: v for k, v in made["keepBase"].items() if k != "substitution"}
    forged = {**dropped, "substitution": {**record, "base": "forged"}}
    for sent in (dropped, forged):
        put = erc_hub.request(
            "PUT", f"/compendium/{target}/metadata?publish=false", bob, json={"o2r": sent}
        )
        assert put.status_code == 200, put.text
        assert put.json()["metadata"]["o2r"]["substitution"] == record

    # Only the base answers to its DOI.
    found = erc_hub.request("GET", "/compendium", bob, params={"doi": published_base["doi"]})
    assert found.json()["results"] == [base]


# --- refusals ------------------------------------------------------------------------------


def test_bad_substitutions_are_refused_and_leave_nothing(
    erc_hub: Hub, tmp_path: Path, published_base: dict[str, Any]
) -> None:
    alice, bob = erc_hub.token("alice"), erc_hub.token("bob")
    base = published_base["id"]
    hidden = erc_hub.create(alice, analysis(tmp_path / "hidden", "Alice's draft", OVERLAY_DATA))
    overlay = erc_hub.create(bob, analysis(tmp_path / "overlay", "Bob's data", OVERLAY_DATA))
    compendia_before = sorted(os.listdir(erc_hub.data_dir / "compendia"))
    good = {"base": base, "overlay": overlay, "substitutionFiles": pair()}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**good, "base": "nope00"}, 404, "base compendium nope00 not found"),
        ({**good, "overlay": "nope00"}, 404, "overlay compendium nope00 not found"),
        ({**good, "overlay": hidden}, 404, f"overlay compendium {hidden} not found"),
        ({**good, "base": hidden}, 404, f"base compendium {hidden} not found"),
        (
            {**good, "substitutionFiles": pair(base="missing.csv")},
            400,
            f"substitutionFiles.0.base: 'missing.csv' is no file of the base compendium {base}",
        ),
        (
            {**good, "substitutionFiles": [*pair(), *pair("main.ipynb", "nope.ipynb")]},
            400,
            "substitutionFiles.1.overlay: 'nope.ipynb' is no file of the overlay compendium",
        ),
        ({**good, "metadataHandling": "merge"}, 400, "metadataHandling: must be one of"),
        ({**good, "metadataHandling": 3}, 400, "metadataHandling: must be one of"),
        (
            {**good, "substitutionFiles": pair(base="../../compendia/x/data.csv")},
            400,
            "substitutionFiles.0.base: '../../compendia/x/data.csv' leads out of the compendium",
        ),
        (
            {**good, "substitutionFiles": pair(overlay="/etc/passwd")},
            400,
            "substitutionFiles.0.overlay: '/etc/passwd' is an absolute path",
        ),
        (
            {**good, "substitutionFiles": pair(base="erc.yml", overlay="erc.yml")},
            400,
            "substitutionFiles.0.base: 'erc.yml' is the compendium's configuration",
        ),
        (
            {**good, "substitutionFiles": [*pair(), *pair()]},
            400,
            "substitutionFiles.1.base: 'data.csv' is substituted twice",
        ),
        ({**good, "substitutionFiles": []}, 400, "substitutionFiles: must be a non-empty list"),
        ({"base": base, "overlay": overlay}, 400, "substitutionFiles: is required"),
        ({**good, "colour": "red"}, 400, "body: unknown field colour"),
        (
            # the result would be no compendium: its notebook replaced by a CSV file
            {**good, "substitutionFiles": pair(base="main.ipynb", overlay="data.csv")},
            400,
            "main.ipynb: not a valid notebook",
        ),
    ]
    for body, status, text in cases:
        assert_error(substitute(erc_hub, bob, **body), status, text)
    malformed = erc_hub.request(
        "POST",
        "/substitution",
        bob,
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_error(malformed, 400, "malformed JSON body")
    assert_error(erc_hub.request("POST", "/substitution", bob), 400, "body: must be a JSON object")
    assert_error(erc_hub.request("POST", "/substitution?x=1", bob, json=good), 400, "unknown query")

    # identity and scopes: a compendium needs create, its job run
    assert_error(erc_hub.request("POST", "/substitution", json=good), 401)
    reader = scoped_token(erc_hub, "bob", ["access:services!service=erc", "custom:erc:read"])
    assert_error(substitute(erc_hub, reader, **good), 403, "custom:erc:create")
    creator = scoped_token(
        erc_hub, "bob", ["access:services!service=erc", "custom:erc:read", "custom:erc:create"]
    )
    assert_error(substitute(erc_hub, creator, **good), 403, "custom:erc:run")
    assert_error(erc_hub.request("GET", "/substitution", bob), 405)

    assert wait_until_empty(erc_hub.data_dir / "uploads") == []
    assert sorted(os.listdir(erc_hub.data_dir / "compendia")) == compendia_before


# --- the substituted analysis runs, and only the dependent figure changes --------------------


@pytest.mark.docker
def test_substituted_data_changes_exactly_the_dependent_figure(
    erc_hub: Hub, docker_client: Any, tmp_path: Path
) -> None:
    alice = erc_hub.token("alice")
    # The base's stored outputs come from the runtime itself: a first job executes a draft.
    draft = erc_hub.create(alice, analysis(tmp_path / "draft", "River gauges", BASE_DATA))
    started = erc_hub.request("POST", "/job", alice, json={"compendium_id": draft})
    assert started.status_code == 201, started.text
    run = erc_hub.wait_for_job(alice, started.json()["job_id"])
    assert run["steps"]["image_execute"]["status"] == "success", json.dumps(run, indent=1)
    executed = erc_hub.request("GET", f"/job/{run['id']}/data/{run['files']['executed']}", alice)
    assert executed.status_code == 200
    outputs = {
        cell.id: [list(output.get("data", {})) for output in cell.outputs]
        for cell in nbformat.reads(executed.text, as_version=4).cells
        if cell.cell_type == "code"
    }
    assert outputs == {
        "load-data": [],
        "figure-data": [["image/png", "text/plain"]],
        "figure-reference": [["image/png", "text/plain"]],
    }
    base = erc_hub.create(
        alice, analysis(tmp_path / "base", "River gauges", BASE_DATA, executed.content)
    )

    # The base reproduces itself: the check finds no difference.
    again = erc_hub.request("POST", "/job", alice, json={"compendium_id": base}).json()["job_id"]
    reproduced = erc_hub.wait_for_job(alice, again)
    assert reproduced["status"] == "success", json.dumps(reproduced, indent=1)
    assert reproduced["check"]["passed"] is True
    assert reproduced["check"]["counts"]["outputs_compared"] == 2

    overlay = erc_hub.create(alice, analysis(tmp_path / "overlay", "New gauges", OVERLAY_DATA))
    response = substitute(erc_hub, alice, base=base, overlay=overlay, substitutionFiles=pair())
    assert response.status_code == 201, response.text
    new, job_id = response.json()["id"], response.json()["job_id"]
    assert file_of(erc_hub, alice, new, "data.csv").decode() == OVERLAY_DATA

    job = erc_hub.wait_for_job(alice, job_id)
    assert job["compendium_id"] == new
    for step in ("validate_compendium", "image_build", "image_execute", "cleanup"):
        assert job["steps"][step]["status"] == "success", json.dumps(job, indent=1)
    assert job["status"] == "failure" and job["steps"]["check"]["status"] == "failure"
    assert job["reason"].startswith("check: 1 of 3 cells differ"), job["reason"]
    check = job["check"]
    assert check["passed"] is False
    assert check["counts"]["outputs_compared"] == 2
    assert check["counts"]["outputs_different"] == 1
    assert check["counts"]["cells_different"] == 1
    assert [(d["cell_id"], d["mime"]) for d in check["differences"]] == [
        ("figure-data", "image/png")
    ]
    assert check["differences"][0]["differing_fraction"] > 0.001
    summary = erc_hub.request("GET", f"/job/{job_id}/data/check/check.json", alice)
    assert summary.status_code == 200 and summary.json() == check
    report = erc_hub.request("GET", f"/job/{job_id}/data/{job['files']['report']}", alice).text
    assert "<code>figure-data</code>" in report
    assert "figure-reference" not in report
