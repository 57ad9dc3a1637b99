"""The fault matrix, the cells of the hub: a hub restarted while servers run, and during a
spawn, in a hub of this module's own that runs the shipped configuration (servers are left
running when the hub stops). Each ends with nothing lost and nothing stuck: running servers
stay reachable with their files, an interrupted spawn leaves neither a server the hub cannot
reach nor a container it does not know, and the user can start again."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from erchub.sessions import server_name_for
from tests.hub.conftest import Hub, require_hub, run_hub, start_hub, stop_hub
from tests.hub.test_faults import service_processes
from tests.hub.test_launch import (
    launch,
    progress_events,
    publish,
    server_model,
    session_containers,
    stop,
    user_get,
    workspace_zip,
)

pytestmark = [pytest.mark.hub, pytest.mark.docker]

#: seconds a hub may take to end on SIGTERM: it leaves its servers and pending starts behind
STOP_WITHIN = 30


class RestartableHub:
    """A hub process that the tests stop and start again, with the same configuration."""

    def __init__(self, hub: Hub, process: subprocess.Popen[bytes]) -> None:
        self.hub, self.process = hub, process

    def restart(self, how: signal.Signals = signal.SIGTERM) -> float:
        """End the hub with ``how`` (SIGTERM: an operator's restart; SIGKILL: a crash) and
        start it again; the seconds the hub took to end."""
        asked = time.monotonic()
        self.process.send_signal(how)
        self.process.wait(STOP_WITHIN)
        ended = time.monotonic() - asked
        self.process = run_hub(self.hub)
        return ended


@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[Any]:
    require_hub()
    hub, process = start_hub(tmp_path_factory.mktemp("restarts"), restartable=True)
    restartable = RestartableHub(hub, process)
    try:
        yield restartable
    finally:
        # the shipped configuration leaves servers running: stop this hub's own
        for container in docker_client.containers.list(all=True):
            if container.name.startswith("jupyter-restart"):
                container.remove(force=True)
        stop_hub(restartable.process)


def contents(hub: Hub, token: str, base: str, path: str) -> httpx.Response:
    return user_get(hub, token, f"{base}/api/contents/{path}")


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["restart", "crash"])
def test_servers_stay_reachable_across_a_hub_restart(
    restartable: RestartableHub, docker_client: Any, tmp_path: Path, how: signal.Signals
) -> None:
    hub, user = restartable.hub, f"restarter{how.value}"
    token = hub.token(user)
    compendium_id = publish(hub, token, workspace_zip(tmp_path, "pip>=20\n", "Kept running"))
    server = server_name_for(compendium_id)
    assert launch(hub, token, compendium_id).status_code == 302
    assert progress_events(hub, token, user, server)[-1].get("ready")
    base = f"/user/{user}/{server}"
    written = httpx.put(
        f"{hub.url}{base}/api/contents/analysis/notes.txt",
        headers={"Authorization": f"token {token}"},
        json={"type": "file", "format": "text", "content": "written before the restart\n"},
    )
    assert written.status_code == 201, written.text
    [before] = session_containers(docker_client, user, server)

    seconds = restartable.restart(how)
    print(f"\nthe hub ended {seconds:.1f} s after {how.name} and answers again")

    # one erc service, the new hub's (a crashed hub's service ended with it)
    service, _workers = service_processes(hub)
    assert service.ppid() == restartable.process.pid
    # the same container, found again by the hub, routed to by the proxy, with the file
    [after] = session_containers(docker_client, user, server)
    assert (after.id, after.status) == (before.id, "running")
    model = server_model(hub, token, user, server)
    assert model is not None and model["ready"], model
    note = contents(hub, token, base, "analysis/notes.txt")
    assert note.status_code == 200, note.text
    assert note.json()["content"] == "written before the restart\n"
    # another user's token is still refused by it
    other = hub.token("restartother")
    assert contents(hub, other, base, "analysis/notes.txt").status_code in (403, 404)
    stop(hub, token, user, server)
    assert session_containers(docker_client, user, server) == []


@pytest.mark.parametrize(
    "moment",
    ["Building the runtime image", "Waiting for JupyterLab to answer"],
    ids=["during-the-build", "while-the-server-starts"],
)
def test_a_restart_during_a_spawn_leaves_nothing_stuck(
    restartable: RestartableHub, docker_client: Any, tmp_path: Path, moment: str
) -> None:
    hub = restartable.hub
    user = f"restartspawn{secrets.token_hex(2)}"
    token = hub.token(user)
    # a requirements line of its own: the first start builds an image (on cached layers)
    requirements = f"# restart {secrets.token_hex(6)}\npip>=20\n"
    compendium_id = publish(hub, token, workspace_zip(tmp_path, requirements, "Interrupted"))
    server = server_name_for(compendium_id)
    assert launch(hub, token, compendium_id).status_code == 302
    url = f"{hub.url}/hub/api/users/{user}/servers/{server}/progress"
    reached = False
    with httpx.stream("GET", url, headers={"Authorization": f"token {token}"}, timeout=600) as s:
        for line in s.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                assert not event.get("ready") and not event.get("failed"), event
                if event.get("message", "").startswith(moment):
                    reached = True
                    break
    assert reached, f"the spawn never reached {moment!r}"

    seconds = restartable.restart()
    print(f"\nthe hub ended {seconds:.1f} s after SIGTERM during {moment!r}")

    # The interrupted start ends one way or the other within the hub's own checks: a server
    # the hub runs and reaches, or none, and then no container of it either.
    restarted = time.monotonic()
    deadline = restarted + 120
    while True:
        model = server_model(hub, token, user, server)
        containers = session_containers(docker_client, user, server)
        if model is None and not containers:
            break
        if model is not None and model["ready"] and not model["pending"]:
            break
        assert time.monotonic() < deadline, f"stuck after the restart: {model}, {containers}"
        time.sleep(1)
    outcome = "no server" if model is None else "the server, ready"
    print(f"{outcome} {time.monotonic() - restarted:.1f} s after the hub answered again")
    if model is None:
        assert launch(hub, token, compendium_id).status_code == 302
        events = progress_events(hub, token, user, server)
        assert events[-1].get("ready"), events[-5:]
    base = f"/user/{user}/{server}"
    listing = contents(hub, token, base, "analysis")
    assert listing.status_code == 200, listing.text
    assert {item["name"] for item in listing.json()["content"]} == {"main.ipynb", "data.csv"}
    assert len(session_containers(docker_client, user, server)) == 1
    stop(hub, token, user, server)
