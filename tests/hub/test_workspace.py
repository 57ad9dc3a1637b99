"""The author's workspace: every user's default server, a JupyterLab of their own.

Hub + docker tiers, through the hub's proxy: the first start builds the authoring image (the
scientific Python stack, JupyterLab, erchub's extensions) and an empty volume of the user's
own; files written there outlive the server; the default server opens no compendium. (The
page that says why a start was refused is walked in tests/browser/test_hub_pages.py.)
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from tests.hub.conftest import Hub
from tests.hub.test_launch import progress_events, server_model, stop

pytestmark = [pytest.mark.hub, pytest.mark.docker]


def start_workspace(hub: Hub, token: str, user: str, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{hub.url}/hub/api/users/{user}/server",
        headers={"Authorization": f"token {token}"},
        json=body,
        timeout=60,
    )


def workspace_containers(engine: Any, user: str) -> list[Any]:
    """The container of ``user``'s default server (DockerSpawner's name: the escaped user
    name, in which ``-`` is ``-2d``; these test users' names have no other escaped letter)."""
    name = f"jupyter-{user.replace('-', '-2d')}"
    return [c for c in engine.containers.list(all=True) if c.name == name]


def test_the_workspace_is_a_jupyterlab_of_ones_own(erc_hub: Hub, docker_client: Any) -> None:
    user = "0000-0003-1825-0094"  # an ORCID iD, as ORCID login names users
    token = erc_hub.token(user)
    # volumes outlive hubs: a workspace an earlier run of this test left is not this one's
    for volume in docker_client.volumes.list(filters={"label": f"org.erchub.user={user}"}):
        volume.remove(force=True)
    started = start_workspace(erc_hub, token, user)
    assert started.status_code in (201, 202), started.text
    events = progress_events(erc_hub, token, user, "")
    messages = [event.get("message", "") for event in events]
    assert events[-1].get("ready"), messages[-5:]
    assert "Preparing your workspace" in messages, messages

    (container,) = workspace_containers(docker_client, user)
    assert container.image.labels["org.erchub.erc.id"] == "erchub-workspace"
    # the scientific stack and erchub's extensions are in the authoring image
    code, output = container.exec_run(
        ["python3", "-c", "import numpy, scipy, pandas, matplotlib; print('stack ok')"]
    )
    assert code == 0 and b"stack ok" in output, output.decode()
    code, output = container.exec_run(["jupyter", "labextension", "list"])
    assert code == 0 and re.search(rb"erchub v\S+ \S*enabled\S* \S*OK", output), output
    # no compendium: the server extension publishes new ones; the login names the author
    code, output = container.exec_run(["env"])
    environment = output.decode()
    assert "ERCHUB_API_URL=" in environment
    assert "ERCHUB_COMPENDIUM_ID" not in environment
    assert f"ERCHUB_AUTHOR_ORCID={user}" in environment

    headers = {"Authorization": f"token {token}"}
    base = f"{erc_hub.url}/user/{user}"
    root = httpx.get(f"{base}/", headers=headers, timeout=30)
    assert root.status_code == 302 and root.headers["location"].startswith(f"/user/{user}/lab")
    listing = httpx.get(f"{base}/api/contents", headers=headers, timeout=30).json()
    assert listing["content"] == [], "a blank workspace"
    written = httpx.put(
        f"{base}/api/contents/my-study",
        headers=headers,
        json={"type": "directory"},
        timeout=30,
    )
    assert written.status_code == 201, written.text

    # the files outlive the server; the authoring image is reused, not built again
    stop(erc_hub, token, user, "")
    deadline = time.monotonic() + 60  # the hub lists it stopped while its container goes
    while workspace_containers(docker_client, user):
        assert time.monotonic() < deadline, "the workspace's container is removed"
        time.sleep(0.2)
    assert start_workspace(erc_hub, token, user).status_code in (201, 202)
    events = progress_events(erc_hub, token, user, "")
    messages = [event.get("message", "") for event in events]
    assert events[-1].get("ready"), messages[-5:]
    assert any(m.startswith("Reusing the runtime image") for m in messages), messages
    assert "Opening your workspace" in messages
    listing = httpx.get(f"{base}/api/contents", headers=headers, timeout=30).json()
    assert [item["name"] for item in listing["content"]] == ["my-study"]
    stop(erc_hub, token, user, "")
    (volume,) = docker_client.volumes.list(filters={"label": f"org.erchub.user={user}"})
    assert volume.attrs["Labels"]["org.erchub.session"] == "workspace"
    volume.remove(force=True)


def test_the_workspace_opens_no_compendium(erc_hub: Hub) -> None:
    user = "workspace-options"
    token = erc_hub.token(user)
    refused = start_workspace(erc_hub, token, user, compendium="Abc123")
    assert refused.status_code == 400, refused.text
    assert "your workspace (the default server) opens no compendium" in refused.json()["message"]
    assert server_model(erc_hub, token, user, "") is None
