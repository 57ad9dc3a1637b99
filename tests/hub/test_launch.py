"""Launching ERCs: launch links, ERCSpawner in the runtime image, progress, working copies.

Hub + docker tiers: the session hub runs the repository's jupyterhub_config.py, so sessions
are ERCSpawner containers on the local engine. Each test compendium has a requirements.txt
of its own, so its first launch builds an image (on cached layers) and the second reuses it.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from erchub.sessions import server_name_for
from tests.conftest import heading, parameters_cell, write_notebook
from tests.hub.conftest import Hub, zip_directory

pytestmark = [pytest.mark.hub, pytest.mark.docker]

SESSION_LABEL = "org.erchub.session"


@pytest.fixture(scope="module")
def engine(docker_client: Any) -> Any:
    return docker_client


def workspace_zip(
    tmp: Path, requirements: str, title: str, extra: dict[str, str] | None = None
) -> bytes:
    """A small notebook workspace (in a sub-folder, so the default URL has a path), with
    ``extra`` files (name -> text)."""
    root = tmp / secrets.token_hex(4)
    write_notebook(
        root / "analysis" / "main.ipynb",
        heading(f"# {title}"),
        parameters_cell("factor = 2"),
        "print(factor * 21)",
    )
    (root / "analysis" / "data.csv").write_text("x,y\n1,2\n")
    (root / "requirements.txt").write_text(requirements)
    for name, text in (extra or {}).items():
        (root / name).write_text(text)
    return zip_directory(root)


def publish(hub: Hub, token: str, archive: bytes, **o2r_changes: Any) -> str:
    compendium_id = hub.create(token, archive)
    metadata = hub.request("GET", f"/compendium/{compendium_id}/metadata", token).json()
    o2r = {**metadata["metadata"]["o2r"], **o2r_changes}
    put = hub.request("PUT", f"/compendium/{compendium_id}/metadata", token, json={"o2r": o2r})
    assert put.status_code == 200, put.text
    return compendium_id


def launch(hub: Hub, token: str, path: str) -> httpx.Response:
    return httpx.get(
        f"{hub.url}/services/erc/launch/{path}",
        headers={"Authorization": f"token {token}", "Accept": "text/html"},
        timeout=60,
    )


def progress_events(hub: Hub, token: str, user: str, server: str) -> list[dict[str, Any]]:
    """The hub's progress events of a pending start, until it is ready or failed."""
    events: list[dict[str, Any]] = []
    url = f"{hub.url}/hub/api/users/{user}/servers/{server}/progress"
    with httpx.stream("GET", url, headers={"Authorization": f"token {token}"}, timeout=900) as s:
        for line in s.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if events[-1].get("ready") or events[-1].get("failed"):
                    break
    return events


def server_model(hub: Hub, token: str, user: str, server: str) -> dict[str, Any] | None:
    model = httpx.get(
        f"{hub.url}/hub/api/users/{user}", headers={"Authorization": f"token {token}"}
    ).json()
    return model.get("servers", {}).get(server)


def user_get(hub: Hub, token: str, path: str) -> httpx.Response:
    return httpx.get(f"{hub.url}{path}", headers={"Authorization": f"token {token}"}, timeout=30)


def session_containers(engine: Any, user: str, server: str) -> list[Any]:
    return [
        c
        for c in engine.containers.list(all=True)
        if c.name == f"jupyter-{user}--{server.replace('-', '-2d')}"
    ]


def removed(engine: Any, user: str, server: str, seconds: float = 60) -> bool:
    """Whether the server's container is gone within ``seconds``: the hub lists a server as
    stopped while DockerSpawner is still removing its container."""
    deadline = time.monotonic() + seconds
    while session_containers(engine, user, server):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def stop(hub: Hub, token: str, user: str, server: str) -> None:
    response = httpx.delete(
        f"{hub.url}/hub/api/users/{user}/servers/{server}",
        headers={"Authorization": f"token {token}"},
        timeout=120,
    )
    assert response.status_code in (202, 204), response.text
    deadline = time.monotonic() + 60
    while server_model(hub, token, user, server) is not None:
        assert time.monotonic() < deadline, "the server did not stop in 60 s"
        time.sleep(0.2)


def test_launch_builds_then_reuses_the_image(erc_hub: Hub, engine: Any, tmp_path: Path) -> None:
    user = "launcher"
    token = erc_hub.token(user)
    unique = secrets.token_hex(6)
    compendium_id = publish(
        erc_hub, token, workspace_zip(tmp_path, f"# launch test {unique}\npip>=20\n", "Launch me")
    )
    server = server_name_for(compendium_id)

    response = launch(erc_hub, token, compendium_id)
    assert response.status_code == 302, response.text
    assert response.headers["location"] == f"/hub/spawn-pending/{user}/{server}"
    events = progress_events(erc_hub, token, user, server)
    messages = [event.get("message", "") for event in events]
    assert events[-1].get("ready"), messages[-5:]
    assert any(m.startswith("Building the runtime image") for m in messages), messages
    # one short line per build log line, the full line for the event log beside it
    build_lines = [e for e in events if "erc-build-line" in e.get("html_message", "")]
    assert any('<span class="erc-build-line">Step ' in e["html_message"] for e in build_lines)
    assert all(
        e["message"].startswith("Building the runtime image") and len(e["message"]) < 80
        for e in build_lines
    ), "build log lines are shown as the step and a short status"
    assert any(m.startswith("Preparing your working copy") for m in messages)
    progress = [event["progress"] for event in events if "progress" in event]
    assert progress == sorted(progress), "progress never goes back"

    # jupyterhub-singleuser in the runtime image, through the proxy
    base = f"/user/{user}/{server}"
    assert user_get(erc_hub, token, f"{base}/api/status").status_code == 200
    (container,) = session_containers(engine, user, server)
    assert container.image.labels["org.erchub.buildpack"] == "PipBuildPack"
    # the default URL opens the main notebook in JupyterLab
    root = user_get(erc_hub, token, f"{base}/")
    assert root.status_code == 302
    assert root.headers["location"].startswith(f"{base}/lab/tree/analysis/main.ipynb")
    # the working copy holds the compendium's files, and the session may write there
    listing = user_get(erc_hub, token, f"{base}/api/contents/analysis").json()
    assert {item["name"] for item in listing["content"]} == {"main.ipynb", "data.csv"}
    compendium_dir = erc_hub.data_dir / "compendia" / compendium_id
    before = sorted(p.relative_to(compendium_dir) for p in compendium_dir.rglob("*"))
    written = httpx.put(
        f"{erc_hub.url}{base}/api/contents/analysis/data.csv",
        headers={"Authorization": f"token {token}"},
        json={"type": "file", "format": "text", "content": "changed in the session\n"},
    )
    assert written.status_code == 200, written.text
    assert sorted(p.relative_to(compendium_dir) for p in compendium_dir.rglob("*")) == before
    assert (compendium_dir / "analysis" / "data.csv").read_text() == "x,y\n1,2\n"

    # the session reaches the hub's API and, with its server's token, the erc API (as erchub's
    # server extension does); neither another service of the host listening on all interfaces
    # (at the same gateway address) nor anything off the host
    with socket.create_server(("0.0.0.0", 0)) as host_service:
        port = host_service.getsockname()[1]
        probe = (
            "import json, os, socket, urllib.parse, urllib.request\n"
            "api = os.environ['JUPYTERHUB_API_URL']\n"
            "urllib.request.urlopen(api, timeout=5)\n"
            "compendium = os.environ['ERCHUB_COMPENDIUM_ID']\n"
            "erc = urllib.request.Request(\n"
            "    os.environ['ERCHUB_API_URL'] + '/compendium/' + compendium,\n"
            "    headers={'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']},\n"
            ")\n"
            "print('ERC', json.load(urllib.request.urlopen(erc, timeout=5))['id'])\n"
            "gateway = urllib.parse.urlsplit(api).hostname\n"
            f"for address in [(gateway, {port}), ('151.101.2.132', 443)]:\n"
            "    try:\n"
            "        socket.create_connection(address, timeout=3)\n"
            "        print('REACHED', address)\n"
            "    except OSError as exc:\n"
            "        print('unreachable', address, exc)\n"
        )
        code, output = container.exec_run(["python3", "-c", probe])
    assert code == 0, output.decode()
    assert f"ERC {compendium_id}" in output.decode()
    assert b"REACHED" not in output, output.decode()
    assert output.decode().count("unreachable") == 2, output.decode()

    # the runtime image installed erchub's wheel: both extensions are there and enabled
    code, output = container.exec_run(["jupyter", "labextension", "list"])
    assert code == 0 and re.search(rb"erchub v\S+ \S*enabled\S* \S*OK", output), output
    code, output = container.exec_run(["jupyter", "server", "extension", "list"])
    assert code == 0 and re.search(rb"erchub\.extensions \S*enabled", output), output

    stop(erc_hub, token, user, server)
    assert removed(engine, user, server), "the container is removed"

    # a second launch reuses the image and the working copy
    assert launch(erc_hub, token, compendium_id).status_code == 302
    events = progress_events(erc_hub, token, user, server)
    messages = [event.get("message", "") for event in events]
    assert events[-1].get("ready"), messages[-5:]
    assert any(m.startswith("Reusing the runtime image") for m in messages), messages
    assert not any(m.startswith(("Building", "Step ")) for m in messages), messages
    assert any(m.startswith("Reusing your working copy") for m in messages), messages
    kept = user_get(erc_hub, token, f"{base}/api/contents/analysis/data.csv").json()
    assert kept["content"] == "changed in the session\n"

    # a launch link of a running session opens it at once
    again = launch(erc_hub, token, compendium_id)
    assert again.status_code == 302
    assert again.headers["location"] == f"{base}/"
    stop(erc_hub, token, user, server)


def test_two_launches_of_one_compendium_share_its_build(
    erc_hub: Hub, engine: Any, tmp_path: Path
) -> None:
    """Two users launch a compendium whose image does not exist yet, at once: one build (its
    postBuild makes it last), which the second launch waits for, showing its log."""
    unique = secrets.token_hex(6)
    archive = workspace_zip(
        tmp_path,
        f"# shared build {unique}\npip>=20\n",
        "Launched twice",
        extra={"postBuild": "#!/bin/bash\nsleep 8\n"},
    )
    compendium_id = publish(erc_hub, erc_hub.token("sharedauthor"), archive)
    server = server_name_for(compendium_id)
    tokens = {user: erc_hub.token(user) for user in ("firstlauncher", "secondlauncher")}

    def launched(user: str) -> list[dict[str, Any]]:
        response = launch(erc_hub, tokens[user], compendium_id)
        assert response.status_code == 302, response.text
        return progress_events(erc_hub, tokens[user], user, server)

    # both followed while they start: a server already started has no progress to show
    with ThreadPoolExecutor(max_workers=2) as pool:
        progress = dict(zip(tokens, pool.map(launched, tokens), strict=True))
    messages: dict[str, list[str]] = {}
    for user, events in progress.items():
        messages[user] = [event.get("message", "") for event in events]
        assert events[-1].get("ready"), messages[user][-5:]
        # one short line per build step, with the build's own log line in the event log
        assert any("(step " in m for m in messages[user]), "both show the build's progress"
    waited = [
        user
        for user in tokens
        if any(m.startswith("Waiting for the build of") for m in messages[user])
    ]
    assert len(waited) == 1, messages
    (container,) = session_containers(engine, "firstlauncher", server)
    (other,) = session_containers(engine, "secondlauncher", server)
    assert container.image.id == other.image.id
    for user, token in tokens.items():
        stop(erc_hub, token, user, server)


def test_launch_by_doi(erc_hub: Hub, tmp_path: Path) -> None:
    user = "doi-reader"
    token = erc_hub.token(user)
    doi = f"10.5281/zenodo.{secrets.randbelow(10**7)}"
    compendium_id = publish(
        erc_hub,
        erc_hub.token("doi-author"),
        workspace_zip(tmp_path, "pip>=20\n", "With a DOI"),
        identifier={"doi": doi},
    )
    server = server_name_for(compendium_id)
    response = launch(erc_hub, token, f"doi/{doi.upper()}")
    assert response.status_code == 302, response.text
    assert response.headers["location"] == f"/hub/spawn-pending/{user}/{server}"
    events = progress_events(erc_hub, token, user, server)
    assert events[-1].get("ready"), events[-5:]
    stop(erc_hub, token, user, server)

    missing = launch(erc_hub, token, "doi/10.5281/zenodo.0000000")
    assert missing.status_code == 404
    assert "no compendium here has the DOI" in missing.text
    malformed = launch(erc_hub, token, "doi/not-a-doi")
    assert malformed.status_code == 400
    assert "is not a DOI" in malformed.text


def test_unknown_and_foreign_candidates_are_not_found(erc_hub: Hub, tmp_path: Path) -> None:
    owner, reader = erc_hub.token("cand-owner"), erc_hub.token("cand-reader")
    unknown = launch(erc_hub, reader, "NoSuch")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("text/html")
    assert "compendium NoSuch not found" in unknown.text
    created = erc_hub.upload(owner, workspace_zip(tmp_path, "pip>=20\n", "Draft"))
    candidate = created.json()["id"]
    assert launch(erc_hub, reader, candidate).status_code == 404
    model = httpx.get(
        f"{erc_hub.url}/hub/api/users/cand-reader",
        headers={"Authorization": f"token {reader}"},
    ).json()
    assert model["servers"] == {}, "nothing was spawned"


def test_spawn_with_bad_user_options_is_refused(erc_hub: Hub) -> None:
    token = erc_hub.token("options-user")
    for options in ({}, {"compendium": "../etc"}, {"image": "evil"}, {"compendium": 5}):
        response = httpx.post(
            f"{erc_hub.url}/hub/api/users/options-user/servers/erc-manual",
            headers={"Authorization": f"token {token}"},
            json={"user_options": options},
        )
        assert response.status_code == 400, (options, response.text)


def test_failed_build_shows_the_error_and_leaves_nothing(
    erc_hub: Hub, engine: Any, tmp_path: Path
) -> None:
    user = "unlucky"
    token = erc_hub.token(user)
    requirements = f"erchub-no-such-package-{secrets.token_hex(4)}==1.0\n"
    compendium_id = publish(erc_hub, token, workspace_zip(tmp_path, requirements, "Broken"))
    server = server_name_for(compendium_id)
    assert launch(erc_hub, token, compendium_id).status_code == 302
    events = progress_events(erc_hub, token, user, server)
    assert events[-1].get("failed"), events[-5:]
    assert "building the runtime image failed" in events[-1]["message"]
    messages = [event.get("message", "") for event in events]
    assert any("erchub-no-such-package" in m for m in messages), "the build log is shown"
    assert server_model(erc_hub, token, user, server) is None, "not left half-started"
    assert removed(engine, user, server)
    assert engine.volumes.list(filters={"label": f"org.erchub.server={server}"}) == []


def test_a_session_of_a_job_opens_its_executed_notebook(erc_hub: Hub, tmp_path: Path) -> None:
    user = "job-reader"
    token = erc_hub.token(user)
    compendium_id = publish(erc_hub, token, workspace_zip(tmp_path, "pip>=20\n", "Job session"))
    started = erc_hub.request(
        "POST", "/job", token, json={"compendium_id": compendium_id, "parameters": {"factor": 3}}
    )
    assert started.status_code == 201, started.text
    job_id = started.json()["job_id"]
    deadline = time.monotonic() + 600
    while (job := erc_hub.request("GET", f"/job/{job_id}", token).json())["status"] in (
        "queued",
        "running",
    ):
        assert time.monotonic() < deadline, "the job did not end in 600 s"
        time.sleep(1)
    # factor = 3 changes the output: the check fails, the executed notebook is there all the same
    assert job["files"].get("executed"), job

    server = server_name_for(job_id)
    response = httpx.post(
        f"{erc_hub.url}/hub/api/users/{user}/servers/{server}",
        headers={"Authorization": f"token {token}"},
        json={"user_options": {"job": job_id}},
    )
    assert response.status_code in (201, 202), response.text
    events = progress_events(erc_hub, token, user, server)
    assert events[-1].get("ready"), events[-5:]
    base = f"/user/{user}/{server}"
    opened = f"analysis/main-job-{job_id}.ipynb"
    root = user_get(erc_hub, token, f"{base}/")
    assert root.headers["location"].startswith(f"{base}/lab/tree/{opened}")
    notebook = user_get(erc_hub, token, f"{base}/api/contents/{opened}").json()
    outputs = [o for cell in notebook["content"]["cells"] for o in cell.get("outputs", [])]
    assert any("63" in "".join(o.get("text", "")) for o in outputs), outputs
    listing = user_get(erc_hub, token, f"{base}/api/contents/analysis").json()
    assert {"main.ipynb", "data.csv", f"main-job-{job_id}.ipynb"} <= {
        item["name"] for item in listing["content"]
    }
    stop(erc_hub, token, user, server)
