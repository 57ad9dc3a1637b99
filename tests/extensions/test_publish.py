"""POST erchub/publish and the erc proxies against the real erc service of a real hub."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from nbformat.v4 import new_code_cell, new_output

from tests.conftest import heading, parameters_cell, write_notebook
from tests.extensions.conftest import (
    ERC_YML,
    assert_error,
    call,
    events_of,
    extension_config,
    json_of,
    wave_notebook,
)
from tests.hub.conftest import UPLOAD_LIMIT, Hub

pytestmark = pytest.mark.hub

AUTHOR = "ext-author"
VALID_ORCID = "0000-0002-1825-0097"


@pytest.fixture
def jp_server_config(erc_hub: Hub) -> dict[str, Any]:
    return extension_config(
        erc_api_url=erc_hub.api_url, api_token=erc_hub.token(AUTHOR), warm_kernels=0
    )


def files_of(node: dict[str, Any]) -> set[str]:
    """The file paths in the erc API's file tree of a compendium."""
    if node["type"] == "file":
        return {node["path"]}
    return set().union(*(files_of(child) for child in node["children"]))


async def publish(jp_fetch: Any, path: str) -> Any:
    return await call(jp_fetch, "erchub", "publish", method="POST", body={"path": path})


async def test_a_folder_without_erc_yml_becomes_a_candidate(
    jp_fetch: Any, jp_root_dir: Path, erc_hub: Hub
) -> None:
    folder = jp_root_dir / "waves"
    wave_notebook(folder / "main.ipynb")
    (folder / "data.csv").write_text("x,y\n1,2\n")
    (folder / ".ercignore").write_text("scratch/\n")
    (folder / "scratch").mkdir()
    (folder / "scratch" / "notes.txt").write_text("not for publishing")
    (jp_root_dir / "elsewhere.txt").write_text("outside the workspace")
    before = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))

    response = await publish(jp_fetch, "waves/main.ipynb")
    assert response.code == 201, response.body
    body = json_of(response)
    assert body["candidate"] is True
    assert body["root"] == "waves"
    assert body["files"] == 4  # main.ipynb, data.csv, .ercignore and the erc.yml added
    o2r = body["metadata"]["o2r"]
    assert o2r["mainfile"] == "main.ipynb"
    assert o2r["title"] == "Waves"
    compendium_id = body["compendium_id"]

    token = erc_hub.token(AUTHOR)
    listed = erc_hub.request("GET", "/compendium?candidate=true&limit=1000", token).json()
    assert compendium_id in listed["results"]
    shown = erc_hub.request("GET", f"/compendium/{compendium_id}", token).json()
    assert files_of(shown["files"]) >= {"main.ipynb", "data.csv", "erc.yml"}
    assert not any(name.startswith("scratch") for name in files_of(shown["files"]))
    erc = yaml.safe_load(
        erc_hub.request("GET", f"/compendium/{compendium_id}/data/erc.yml", token).text
    )
    assert erc["main"] == "main.ipynb"
    # The user's folder is as it was: the erc.yml went into the archive only.
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == before


async def test_the_erc_root_is_packed_with_its_erc_yml(
    jp_fetch: Any, jp_root_dir: Path, erc_hub: Hub
) -> None:
    project = jp_root_dir / "project"
    write_notebook(
        project / "analysis" / "main.ipynb",
        heading("# Temperatures\n\nYears of them."),
        parameters_cell("year = 2020"),
    )
    erc_id = str(uuid.uuid4())
    (project / "erc.yml").write_text(
        ERC_YML.replace("5d1e8f3a-6b2c-4f0e-9a7d-3c1b2e4f5a60", erc_id).replace(
            "main.ipynb", "analysis/main.ipynb"
        )
    )
    (project / "README.md").write_text("# Project\n")
    response = await publish(jp_fetch, "project/analysis/main.ipynb")
    assert response.code == 201, response.body
    body = json_of(response)
    assert (body["root"], body["files"]) == ("project", 3)
    assert body["metadata"]["o2r"]["erc_id"] == erc_id
    assert body["metadata"]["o2r"]["mainfile"] == "analysis/main.ipynb"


async def test_refusals_of_the_erc_service_are_passed_on(jp_fetch: Any, jp_root_dir: Path) -> None:
    wave_notebook(jp_root_dir / "bad" / "main.ipynb")
    (jp_root_dir / "bad" / "erc.yml").write_text(
        ERC_YML.replace("spec_version: 1", "spec_version: 2")
    )
    response = await publish(jp_fetch, "bad/main.ipynb")
    assert_error(response, 400, "erc.yml: spec_version: must be 1, got 2")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"path": "nothing/here.ipynb"}, ["unknown notebook 'nothing/here.ipynb': no such file"]),
        ({"path": "main.ipynb", "extra": 1}, ["unknown field 'extra' (allowed: path)"]),
        ({}, ["path is required"]),
    ],
)
async def test_bad_publish_requests(jp_fetch: Any, body: Any, words: list[str]) -> None:
    response = await call(jp_fetch, "erchub", "publish", method="POST", body=body)
    assert_error(response, 400, *words)


class TestAnotherUsersToken:
    @pytest.fixture
    def jp_server_config(self, erc_hub: Hub) -> dict[str, Any]:
        return extension_config(erc_api_url=erc_hub.api_url, api_token="not-a-token")

    async def test_the_erc_services_401_is_passed_on(
        self, jp_fetch: Any, jp_root_dir: Path
    ) -> None:
        wave_notebook(jp_root_dir / "main.ipynb")
        assert_error(await publish(jp_fetch, "main.ipynb"), 401, "authentication required")


# --- the proxies ---------------------------------------------------------------------------


@pytest.fixture
async def candidate(jp_fetch: Any, jp_root_dir: Path) -> str:
    """A candidate compendium of the author, published through the extension."""
    wave_notebook(jp_root_dir / "candidate" / "main.ipynb")
    response = await publish(jp_fetch, "candidate/main.ipynb")
    assert response.code == 201, response.body
    return str(json_of(response)["compendium_id"])


async def test_compendium_and_metadata(jp_fetch: Any, erc_hub: Hub, candidate: str) -> None:
    token = erc_hub.token(AUTHOR)
    shown = json_of(await call(jp_fetch, "erchub", "compendium", candidate))
    assert shown == erc_hub.request("GET", f"/compendium/{candidate}", token).json()
    metadata = json_of(await call(jp_fetch, "erchub", "compendium", candidate, "metadata"))
    o2r = metadata["metadata"]["o2r"]
    assert o2r["title"] == "Waves"

    o2r["title"] = "Waves, edited"
    o2r["creators"] = [{"name": "Ada Lovelace", "orcid": VALID_ORCID}]
    kept = await call(
        jp_fetch, "erchub", "compendium", candidate, "metadata", method="PUT",
        body={"o2r": o2r}, params={"publish": "false"},
    )  # fmt: skip
    assert kept.code == 200, kept.body
    assert json_of(kept)["candidate"] is True
    assert json_of(kept)["metadata"]["o2r"]["title"] == "Waves, edited"

    published = await call(
        jp_fetch, "erchub", "compendium", candidate, "metadata", method="PUT", body={"o2r": o2r}
    )
    assert published.code == 200, published.body
    assert json_of(published)["candidate"] is False
    listed = erc_hub.request("GET", "/compendium?candidate=true&limit=1000", token).json()
    assert candidate not in listed["results"]


async def test_bad_metadata_requests(jp_fetch: Any, candidate: str) -> None:
    def put(body: Any, params: dict[str, str] | None = None) -> Any:
        return call(
            jp_fetch, "erchub", "compendium", candidate, "metadata", method="PUT",
            body=body, params=params,
        )  # fmt: skip

    bad_orcid = {"o2r": {"title": "T", "creators": [{"name": "A", "orcid": "1234"}]}}
    assert_error(await put(bad_orcid), 400, "creators")  # the erc service's check
    assert_error(await put({"o2r": {}}, {"publish": "maybe"}), 400, "publish must be true or false")
    assert_error(await put({"title": "T"}), 400, "unknown field 'title' (allowed: o2r)")
    unknown = await call(jp_fetch, "erchub", "compendium", "nonexistent", "metadata")
    assert_error(unknown, 404, "compendium nonexistent not found")


async def test_a_job_through_the_proxies(jp_fetch: Any, erc_hub: Hub, candidate: str) -> None:
    token = erc_hub.token(AUTHOR)
    started = []
    for _ in range(3):  # the hub's single worker takes the oldest first: the last one waits
        response = await call(
            jp_fetch, "erchub", "job", method="POST", body={"compendium_id": candidate}
        )
        assert response.code == 201, response.body
        started.append(json_of(response)["job_id"])
    job_id = started[-1]
    for other in reversed(started):
        erc_hub.request("POST", f"/job/{other}/cancel", token)

    job = json_of(await call(jp_fetch, "erchub", "job", job_id))
    assert job["id"] == job_id and job["compendium_id"] == candidate
    assert "validate_compendium" in job["steps"]

    events = events_of(await call(jp_fetch, "erchub", "job", job_id, "logs"))
    assert events[-1][0] == "status"
    assert events[-1][1]["status"] in ("success", "failure", "canceled")
    replayed = events_of(
        await call(jp_fetch, "erchub", "job", job_id, "logs", headers={"Last-Event-ID": "1"})
    )
    assert len(replayed) == len(events) - 1

    if events[-1][1]["status"] == "canceled":
        report = await call(jp_fetch, "erchub", "job", job_id, "report")
        assert_error(report, 404, "check/report.html")


@pytest.mark.parametrize(
    ("method", "parts", "body", "status", "words"),
    [
        ("GET", ("job", "nonexistent"), None, 404, ["job nonexistent not found"]),
        ("GET", ("job", "nonexistent", "logs"), None, 404, ["job nonexistent not found"]),
        ("GET", ("job", "nonexistent", "report"), None, 404, ["job nonexistent not found"]),
        ("POST", ("job",), {"compendium_id": "nonexistent"}, 404, ["compendium nonexistent"]),
        ("GET", ("compendium", "a b"), None, 404, ["compendium a b not found"]),
    ],
)
async def test_unknown_jobs_and_compendia_are_404(
    jp_fetch: Any, method: str, parts: tuple[str, ...], body: Any, status: int, words: list[str]
) -> None:
    response = await call(jp_fetch, "erchub", *parts, method=method, body=body)
    assert_error(response, status, *words)


@pytest.mark.docker
async def test_a_check_ends_with_its_report(
    jp_fetch: Any, jp_root_dir: Path, erc_hub: Hub, docker_client: Any
) -> None:
    # What the runtime's base image runs as it is (no requirements), with its outputs.
    counting = new_code_cell(
        "for turn in range(turns):\n    print('turn', turn)",
        outputs=[new_output("stream", name="stdout", text="turn 0\nturn 1\nturn 2\n")],
    )
    write_notebook(
        jp_root_dir / "turns" / "main.ipynb",
        heading("# Turns"),
        parameters_cell("turns = 3"),
        counting,
    )
    published = await publish(jp_fetch, "turns/main.ipynb")
    assert published.code == 201, published.body
    compendium_id = json_of(published)["compendium_id"]
    response = await call(
        jp_fetch, "erchub", "job", method="POST", body={"compendium_id": compendium_id}
    )
    assert response.code == 201, response.body
    job_id = json_of(response)["job_id"]
    logs = await call(jp_fetch, "erchub", "job", job_id, "logs", request_timeout=1800)
    events = events_of(logs)
    final = events[-1][1]
    assert final["status"] == "success", json.dumps(events[-10:])
    job = json_of(await call(jp_fetch, "erchub", "job", job_id))
    assert job["steps"]["check"]["status"] == "success", job
    report = await call(jp_fetch, "erchub", "job", job_id, "report")
    assert report.code == 200
    assert report.headers["Content-Security-Policy"].startswith("sandbox")
    assert b"<html" in report.body.lower()


async def test_a_workspace_over_the_upload_limit_is_413(jp_fetch: Any, jp_root_dir: Path) -> None:
    wave_notebook(jp_root_dir / "big" / "main.ipynb")
    (jp_root_dir / "big" / "noise.bin").write_bytes(os.urandom(UPLOAD_LIMIT + 1024))
    assert_error(await publish(jp_fetch, "big/main.ipynb"), 413)
