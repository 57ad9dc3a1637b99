"""Sessions without Docker: the embedded-default config falls back to LocalERCSpawner.

A hub of its own whose Docker engine is unreachable (DOCKER_HOST names a missing socket), so
jupyterhub_config.py picks the local-process variant: a launch link ends in
jupyterhub-singleuser from the hub's own environment, in a working copy under the data
directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from erchub.sessions import server_name_for
from tests.hub.conftest import Hub, hub_problem, start_hub, stop_hub
from tests.hub.test_launch import launch, progress_events, publish, stop, user_get, workspace_zip

pytestmark = pytest.mark.hub


@pytest.fixture(scope="module")
def local_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    problem = hub_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"hub tier cannot run in CI: {problem}")
        pytest.skip(problem)
    hub, process = start_hub(
        tmp_path_factory.mktemp("local-hub"),
        environment={"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
        # a local process answers in seconds: a start that fails is reported in 30 s, not 120
        extra_config="c.LocalERCSpawner.http_timeout = 30\n",
    )
    try:
        yield hub
    finally:
        stop_hub(process)


def test_a_launch_without_docker_runs_a_local_session(local_hub: Hub, tmp_path: Path) -> None:
    log = local_hub.log_path.read_text(errors="replace")
    assert "no Docker engine" in log and "sessions run as local processes" in log, (
        local_hub.log_tail()
    )
    user = "local-reviewer"
    token = local_hub.token(user)
    compendium_id = publish(local_hub, token, workspace_zip(tmp_path, "pip>=20\n", "Local run"))
    server = server_name_for(compendium_id)

    response = launch(local_hub, token, compendium_id)
    assert response.status_code == 302, response.text
    assert response.headers["location"] == f"/hub/spawn-pending/{user}/{server}"
    events = progress_events(local_hub, token, user, server)
    messages = [event.get("message", "") for event in events]
    assert events[-1].get("ready"), (messages[-5:], local_hub.log_tail())
    assert any(m.startswith("Preparing your working copy") for m in messages), messages
    assert any("development only" in m for m in messages), messages
    assert not any(m.startswith(("Building", "Step ")) for m in messages), "no image"

    base = f"/user/{user}/{server}"
    assert user_get(local_hub, token, f"{base}/api/status").status_code == 200
    root = user_get(local_hub, token, f"{base}/")
    assert root.status_code == 302
    assert root.headers["location"].startswith(f"{base}/lab/tree/analysis/main.ipynb")

    working_copy = local_hub.data_dir / "sessions" / user / server
    compendium_dir = local_hub.data_dir / "compendia" / compendium_id
    assert (working_copy / "analysis" / "data.csv").read_text() == "x,y\n1,2\n"
    assert (working_copy / "analysis" / "main.ipynb").read_bytes() == (
        compendium_dir / "analysis" / "main.ipynb"
    ).read_bytes()
    assert (working_copy / "requirements.txt").is_file()
    written = httpx.put(
        f"{local_hub.url}{base}/api/contents/analysis/data.csv",
        headers={"Authorization": f"token {token}"},
        json={"type": "file", "format": "text", "content": "changed in the session\n"},
        timeout=30,
    )
    assert written.status_code == 200, written.text
    assert (working_copy / "analysis" / "data.csv").read_text() == "changed in the session\n"
    assert (compendium_dir / "analysis" / "data.csv").read_text() == "x,y\n1,2\n"

    log = local_hub.log_path.read_text(errors="replace")
    assert "LocalERCSpawner (development only)" in log
    stop(local_hub, token, user, server)
