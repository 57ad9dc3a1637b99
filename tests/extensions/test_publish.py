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
from tests.hub.conftest import UPLOAD_LIMIT, Hub, zip_directory
from tests.hub.test_launch import publish as launch_publish

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


LICENSES = {"code": "MIT", "data": "CC0-1.0", "text": "CC-BY-4.0"}
COMPLETE = {"title": "T", "creators": [{"name": "Ada"}], "license": LICENSES}


async def publish(jp_fetch: Any, path: str, **choices: str) -> Any:
    """What the publish flow does: the preview's metadata, completed with an author and the
    licences, published from the preview's folder (or the ``folder`` and ``mode`` chosen)."""
    preview = await call(jp_fetch, "erchub", "publish", params={"path": path})
    if preview.code != 200:
        return preview
    o2r = json_of(preview)["metadata"]["o2r"]
    o2r = {**o2r, "creators": o2r["creators"] or [{"name": "Ada Lovelace"}], "license": LICENSES}
    body = {"path": path, "metadata": {"o2r": o2r}, **choices}
    return await call(jp_fetch, "erchub", "publish", method="POST", body=body)


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
    assert body["folder"] == "/waves"
    assert body["mode"] == "new"
    assert body["relation"] is None
    # main.ipynb, data.csv, .ercignore, and the erc.yml and requirements.txt written (the
    # folder has no environment file of its own)
    assert body["files"] == 5
    o2r = body["metadata"]["o2r"]
    assert o2r["mainfile"] == "main.ipynb"
    assert o2r["title"] == "Waves"
    assert o2r["creators"] == [{"name": "Ada Lovelace"}]
    assert o2r["license"]["code"] == "MIT"
    compendium_id = body["compendium_id"]

    token = erc_hub.token(AUTHOR)
    listed = erc_hub.request("GET", "/compendium?candidate=true&limit=1000", token).json()
    assert compendium_id in listed["results"]
    shown = erc_hub.request("GET", f"/compendium/{compendium_id}", token).json()
    assert files_of(shown["files"]) >= {"main.ipynb", "data.csv", "erc.yml", "requirements.txt"}
    assert not any(name.startswith("scratch") for name in files_of(shown["files"]))
    erc = yaml.safe_load(
        erc_hub.request("GET", f"/compendium/{compendium_id}/data/erc.yml", token).text
    )
    assert erc["main"] == "main.ipynb"
    assert erc["licenses"] == {**LICENSES, "metadata": "NOASSERTION"}
    assert shown["is_new_version_of"] is None and shown["derived_from"] is None
    # The user's folder is as it was: the erc.yml went into the archive only.
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == before


async def test_the_compendium_folder_of_its_main_is_packed_under_a_new_id(
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
    # main.ipynb, README.md, the new erc.yml and a requirements.txt
    assert (body["folder"], body["files"]) == ("/project", 4)
    # a new compendium: never the erc id of the folder's erc.yml
    assert body["metadata"]["o2r"]["erc_id"] not in (erc_id, None)
    assert body["metadata"]["o2r"]["mainfile"] == "analysis/main.ipynb"


async def test_an_erc_yml_above_never_captures_a_new_folder(
    jp_fetch: Any, jp_root_dir: Path, erc_hub: Hub
) -> None:
    wave_notebook(jp_root_dir / "main.ipynb")
    (jp_root_dir / "erc.yml").write_text(ERC_YML)
    write_notebook(jp_root_dir / "my-study" / "doubling.ipynb", heading("# Doubling"), "2 * 2")
    response = await publish(jp_fetch, "my-study/doubling.ipynb")
    assert response.code == 201, response.body
    body = json_of(response)
    assert body["folder"] == "/my-study"
    o2r = body["metadata"]["o2r"]
    assert (o2r["mainfile"], o2r["title"]) == ("doubling.ipynb", "Doubling")
    assert set(o2r["files"]) == {"doubling.ipynb", "erc.yml", "requirements.txt"}


async def test_refused_metadata_leaves_no_candidate(
    jp_fetch: Any, jp_root_dir: Path, erc_hub: Hub
) -> None:
    wave_notebook(jp_root_dir / "bad" / "main.ipynb")
    token = erc_hub.token(AUTHOR)
    before = erc_hub.request("GET", "/compendium?candidate=true&limit=1000", token).json()
    o2r = {
        "title": "Bad ORCID",
        "creators": [{"name": "Ada", "orcid": "0000-0002-1825-0098"}],
        "license": LICENSES,
    }
    body = {"path": "bad/main.ipynb", "metadata": {"o2r": o2r}}
    response = await call(jp_fetch, "erchub", "publish", method="POST", body=body)
    assert_error(response, 400, "not published", "check character should be 7")
    after = erc_hub.request("GET", "/compendium?candidate=true&limit=1000", token).json()
    assert after["results"] == before["results"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            {"path": "nothing/here.ipynb", "metadata": {"o2r": COMPLETE}},
            ["unknown notebook 'nothing/here.ipynb': no such file"],
        ),
        (
            {"path": "main.ipynb", "extra": 1},
            ["unknown field 'extra' (allowed: path, folder, mode, metadata)"],
        ),
        ({}, ["path is required"]),
        ({"path": "main.ipynb"}, ["metadata is required"]),
        (
            {"path": "main.ipynb", "mode": "new_version", "metadata": {"o2r": COMPLETE}},
            ["cannot be published as new_version: choose new"],
        ),
    ],
)
async def test_bad_publish_requests(
    jp_fetch: Any, jp_root_dir: Path, body: Any, words: list[str]
) -> None:
    wave_notebook(jp_root_dir / "main.ipynb")
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


# --- a launched session: new versions and derivations ----------------------------------------


def launched_workspace(root: Path) -> bytes:
    """The launched compendium's files (also the session's root): main.ipynb and erc.yml."""
    write_notebook(root / "main.ipynb", heading("# The original"), "x = 1")
    (root / "erc.yml").write_text(ERC_YML.replace(ERC_YML_ID, str(uuid.uuid4())))
    return zip_directory(root)


ERC_YML_ID = "5d1e8f3a-6b2c-4f0e-9a7d-3c1b2e4f5a60"


@pytest.mark.parametrize("owner", [AUTHOR, "someone-else"])
class TestALaunchedSession:
    @pytest.fixture
    def original(self, erc_hub: Hub, tmp_path: Path, owner: str) -> str:
        return launch_publish(erc_hub, erc_hub.token(owner), launched_workspace(tmp_path / "o"))

    @pytest.fixture
    def jp_server_config(self, erc_hub: Hub, original: str) -> dict[str, Any]:
        return extension_config(
            erc_api_url=erc_hub.api_url,
            api_token=erc_hub.token(AUTHOR),
            compendium_id=original,
            session_user=AUTHOR,
            warm_kernels=0,
        )

    async def test_the_launched_folder_is_a_version_or_a_derivation(
        self, jp_fetch: Any, jp_root_dir: Path, erc_hub: Hub, original: str, owner: str
    ) -> None:
        launched_workspace(jp_root_dir)
        preview = json_of(await call(jp_fetch, "erchub", "publish", params={"path": "main.ipynb"}))
        own = owner == AUTHOR
        assert preview["modes"] == (["new_version", "derived"] if own else ["derived"])
        assert preview["related_compendium"] == original
        context = await call(jp_fetch, "erchub", "context", params={"path": "main.ipynb"})
        assert json_of(context)["notebook"] == {
            "path": "main.ipynb",
            "compendium_id": original,
            "source": "launched",
            "editable": own,
        }

        response = await publish(jp_fetch, "main.ipynb")
        assert response.code == 201, response.body
        body = json_of(response)
        relation = "is_new_version_of" if own else "derived_from"
        assert body["relation"] == {relation: original}
        created = body["compendium_id"]
        assert created != original
        shown = erc_hub.request("GET", f"/compendium/{created}", erc_hub.token(AUTHOR)).json()
        assert shown[relation] == original
        other = "derived_from" if own else "is_new_version_of"
        assert shown[other] is None
        assert shown["metadata"]["o2r"][relation] == {"id": original, "doi": None}
        # the session now shows what it published for the notebook, editable
        context = await call(jp_fetch, "erchub", "context", params={"path": "main.ipynb"})
        assert json_of(context)["notebook"]["compendium_id"] == created
        assert json_of(context)["notebook"]["editable"] is True

    async def test_a_new_folder_is_a_new_compendium(
        self, jp_fetch: Any, jp_root_dir: Path, original: str
    ) -> None:
        launched_workspace(jp_root_dir)
        write_notebook(jp_root_dir / "my-study" / "doubling.ipynb", heading("# Doubling"), "1")
        preview = await call(
            jp_fetch, "erchub", "publish", params={"path": "my-study/doubling.ipynb"}
        )
        assert json_of(preview)["modes"] == ["new"]
        response = await publish(jp_fetch, "my-study/doubling.ipynb")
        assert json_of(response)["relation"] is None
        o2r = json_of(response)["metadata"]["o2r"]
        assert "derived_from" not in o2r and "is_new_version_of" not in o2r


def test_only_the_author_may_upload_a_new_version(erc_hub: Hub, tmp_path: Path) -> None:
    owner, other = erc_hub.token("version-owner"), erc_hub.token("version-other")
    original = launch_publish(erc_hub, owner, launched_workspace(tmp_path / "o"))
    archive = launched_workspace(tmp_path / "copy")

    def upload(token: str, field: str, value: str) -> Any:
        return erc_hub.request(
            "POST",
            "/compendium",
            token,
            data={"content_type": "workspace", field: value},
            files={"compendium": ("w.zip", archive, "application/zip")},
        )

    refused = upload(other, "is_new_version_of", original)
    assert refused.status_code == 403, refused.text
    assert "only the author of compendium" in refused.json()["message"]
    assert upload(other, "derived_from", "nosuch").status_code == 404
    assert upload(other, "derived_from", "no/slash").status_code == 400
    derived = upload(other, "derived_from", original)
    assert derived.status_code == 201, derived.text
    version = upload(owner, "is_new_version_of", original)
    assert version.status_code == 201, version.text
    shown = erc_hub.request("GET", f"/compendium/{version.json()['id']}", owner).json()
    assert (shown["is_new_version_of"], shown["derived_from"]) == (original, None)
    # the original stays as it was
    kept = erc_hub.request("GET", f"/compendium/{original}", owner).json()
    assert (kept["is_new_version_of"], kept["derived_from"]) == (None, None)
