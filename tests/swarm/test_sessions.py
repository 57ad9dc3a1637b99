"""Reviewer sessions on the Swarm (SwarmERCSpawner): a user's launch link starts JupyterLab as a
Swarm service on an app node, in the compendium's runtime image by its digest in the registry,
with a working copy its container fetched from the erc service; it answers through the hub's
proxy to its user alone; stopped, it leaves no service, container or volume on any node.

The compendium's runtime is the app image (it holds JupyterLab and jupyterhub-singleuser) with
a notebook user: the hub builds it on the manager's engine in seconds, with no package index.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from erchub.services.cluster.local import ClusterStatus, LocalCluster
from erchub.services.cluster.plan import ROLE_LABEL
from erchub.spawner.spawner import SESSION_LABEL
from tests.swarm.stack_client import (
    USER,
    app_image,
    login_token,
    poll,
    request,
    server_sent_events,
    the_workspace,
    upload,
)

pytestmark = pytest.mark.swarm

#: seconds from the launch to a running session: the build of its image, the node's pull
SESSION_TIMEOUT = 600
#: seconds for a stopped session's service and container to be gone from every node
REMOVAL_TIMEOUT = 60
#: seconds for the hub to notice a session that ended by itself (its poll_interval: 30 s)
POLL_TIMEOUT = 90
OTHER_USER = "bob"
#: the runtime: the app image with a notebook user, running the single-user server
SESSION_DOCKERFILE = (
    "RUN useradd --create-home --uid 1000 jovyan",
    "USER jovyan",
    "WORKDIR /home/jovyan",
    'CMD ["jupyterhub-singleuser"]',
)


def node_objects(cluster: LocalCluster) -> dict[str, tuple[set[str], set[str]]]:
    """Every node's session containers (erchub's label) and volumes, by node name."""
    found = {}
    for node in cluster.status().nodes:
        with cluster.node_client(node.name) as engine:
            containers = {
                container.name
                for container in engine.containers.list(all=True, filters={"label": SESSION_LABEL})
            }
            volumes = {volume.name for volume in engine.volumes.list()}
        found[node.name] = (containers, volumes)
    return found


def progress_events(hub_url: str, token: str, server: str) -> list[dict[str, Any]]:
    """The start's progress events (Server-Sent Events of the hub's API) until it is ready or
    failed, or SESSION_TIMEOUT has passed."""
    return server_sent_events(
        f"{hub_url}/hub/api/users/{USER}/servers/{server}/progress",
        token,
        until=lambda events: bool(events[-1].get("ready") or events[-1].get("failed")),
        timeout=SESSION_TIMEOUT,
    )


def launch(stack: ClusterStatus, token: str, compendium: str) -> tuple[str, list[dict[str, Any]]]:
    """Open the erc service's launch link of ``compendium`` as the user of ``token``: the
    server's name and its start's progress events, until it is ready or failed."""
    launched = request(
        stack.hub_url, "GET", f"/services/erc/launch/{compendium}", token, follow_redirects=False
    )
    assert launched.status_code == 302, launched.text[:500]
    pending = launched.headers["Location"]
    assert f"/hub/spawn-pending/{USER}/" in pending
    server = pending.rstrip("/").rsplit("/", 1)[1]
    return server, progress_events(stack.hub_url, token, server)


@pytest.fixture(scope="module")
def session(
    cluster: LocalCluster,
    stack: ClusterStatus,
    token: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """A session USER launched through the erc service's launch link, once it runs."""
    workspace = the_workspace(tmp_path_factory.mktemp("session") / "erc", app_image(cluster))
    with (workspace / "Dockerfile").open("a") as dockerfile:
        dockerfile.write("\n".join(SESSION_DOCKERFILE) + "\n")
    marker = secrets.token_hex(16)
    (workspace / "data").mkdir()
    (workspace / "data" / "marker.txt").write_text(marker)
    before = node_objects(cluster)
    compendium = upload(stack, token, workspace)

    started = time.monotonic()
    server, events = launch(stack, token, compendium)
    seconds = time.monotonic() - started
    shown = list(dict.fromkeys(str(e.get("message")) for e in events))
    print(f"\nsession started in {seconds:.1f} s: {shown}")
    assert events[-1].get("ready"), events[-5:]
    model = request(stack.hub_url, "GET", f"/hub/api/users/{USER}", token).json()
    yield {
        "compendium": compendium,
        "server": server,
        "url": model["servers"][server]["url"],
        "marker": marker,
        "events": events,
        "before": before,
    }
    # a test that failed before the stop: the server goes anyway
    request(stack.hub_url, "DELETE", f"/hub/api/users/{USER}/servers/{server}", token)


def session_services(cluster: LocalCluster, server: str = "") -> list[dict[str, Any]]:
    """The session services (of the named server ``server`` only, when given)."""
    labels = [SESSION_LABEL, *([f"org.erchub.server={server}"] if server else [])]
    with contextlib.closing(cluster.manager_client()) as manager:
        return [s.attrs for s in manager.services.list(filters={"label": labels})]


def test_a_launch_link_starts_the_session_as_a_swarm_service_on_an_app_node(
    cluster: LocalCluster, session: dict[str, Any]
) -> None:
    [service] = session_services(cluster)
    spec = service["Spec"]
    assert spec["Labels"]["org.erchub.user"] == USER
    assert spec["Labels"]["org.erchub.compendium"] == session["compendium"]
    # the runtime the hub built on the manager, by its digest in the registry: any node pulls it
    image = spec["TaskTemplate"]["ContainerSpec"]["Image"]
    assert image.startswith(f"{cluster.plan.registry_address}/erchub/runtime@sha256:"), image
    with contextlib.closing(cluster.manager_client()) as manager:
        [task] = manager.api.tasks(filters={"service": spec["Name"], "desired-state": "running"})
        assert task["Status"]["State"] == "running"
        node = manager.nodes.get(task["NodeID"]).attrs
    assert node["Spec"]["Labels"].get(f"{ROLE_LABEL}.app") == "true"
    messages = [str(event.get("message")) for event in session["events"]]
    assert any(m.startswith("Waiting for a session node") for m in messages), messages


def test_the_session_answers_through_the_proxy_with_the_compendiums_files(
    stack: ClusterStatus, token: str, session: dict[str, Any]
) -> None:
    contents = f"{session['url']}api/contents"
    listing = request(stack.hub_url, "GET", f"{contents}/", token)
    assert listing.status_code == 200, listing.text[:300]
    names = {entry["name"] for entry in listing.json()["content"]}
    assert {"main.ipynb", "data", "Dockerfile"} <= names, names
    marker = request(stack.hub_url, "GET", f"{contents}/data/marker.txt?content=1", token)
    assert marker.status_code == 200, marker.text[:300]
    assert marker.json()["content"] == session["marker"]


def test_another_users_token_is_refused(stack: ClusterStatus, session: dict[str, Any]) -> None:
    other = login_token(stack.hub_url, OTHER_USER)
    refused = request(stack.hub_url, "GET", f"{session['url']}api/contents/", other)
    assert refused.status_code == 403, refused.text[:300]


def test_a_stopped_session_leaves_no_service_container_or_volume(
    cluster: LocalCluster, stack: ClusterStatus, token: str, session: dict[str, Any]
) -> None:
    server = session["server"]
    stopped = request(stack.hub_url, "DELETE", f"/hub/api/users/{USER}/servers/{server}", token)
    assert stopped.status_code in (202, 204), stopped.text[:300]

    def gone() -> bool:
        model = request(stack.hub_url, "GET", f"/hub/api/users/{USER}", token).json()
        return server not in model["servers"] and not session_services(cluster)

    poll("the session's server and service removed", gone, REMOVAL_TIMEOUT)
    before = session["before"]

    def nothing_left() -> bool:
        after = node_objects(cluster)
        return all(
            not containers and volumes <= before.get(node, (set(), set()))[1]
            for node, (containers, volumes) in after.items()
        )

    poll("no session container or new volume on any node", nothing_left, REMOVAL_TIMEOUT)


def test_a_working_copy_that_cannot_be_fetched_fails_the_start_with_its_reason(
    cluster: LocalCluster, stack: ClusterStatus, token: str, tmp_path: Path
) -> None:
    # a runtime whose working copy folder is not the notebook user's: the fetch cannot write
    workspace = the_workspace(tmp_path / "erc", app_image(cluster))
    with (workspace / "Dockerfile").open("a") as dockerfile:
        dockerfile.write(
            "\n".join(
                [*SESSION_DOCKERFILE[:1], "RUN mkdir /home/jovyan/work", *SESSION_DOCKERFILE[1:]]
            )
            + "\n"
        )
    server, events = launch(stack, token, upload(stack, token, workspace))
    assert events[-1].get("failed"), events[-5:]
    # what the container said, in one line, not a traceback
    message = str(events[-1].get("message"))
    assert "the session ended before it started: cannot write the working copy" in message
    assert "Permission denied" in message and "Traceback" not in message
    # the failed start's service is gone with it
    poll(
        "the failed session's service removed",
        lambda: not session_services(cluster, server),
        REMOVAL_TIMEOUT,
    )


def test_a_session_shut_down_from_jupyterlab_leaves_no_service(
    cluster: LocalCluster, stack: ClusterStatus, token: str, session: dict[str, Any]
) -> None:
    # the same compendium again: its image is known, the working copy fetched anew
    server, events = launch(stack, token, session["compendium"])
    assert events[-1].get("ready"), events[-5:]
    url = request(stack.hub_url, "GET", f"/hub/api/users/{USER}", token).json()["servers"][server]
    shut = request(stack.hub_url, "POST", f"{url['url']}api/shutdown", token)
    assert shut.status_code == 200, shut.text[:300]

    # the hub's poll (every 30 s) finds the ended task: the server stops, its service goes
    def gone() -> bool:
        model = request(stack.hub_url, "GET", f"/hub/api/users/{USER}", token).json()
        return server not in model["servers"] and not session_services(cluster, server)

    poll("the shut-down session's server and service removed", gone, POLL_TIMEOUT)
