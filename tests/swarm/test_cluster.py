"""The local test cluster (``erchub cluster up``): nodes and roles, the registry, an image
pushed from this machine pulled by digest on an execution node, and engines that nothing but
127.0.0.1 reaches."""

from __future__ import annotations

import contextlib
import io
import secrets
import socket
import time
from typing import Any

import docker
import httpx
import pytest

from erchub.cli import main
from erchub.services.cluster.local import ClusterError, LocalCluster
from erchub.services.cluster.plan import (
    ENGINE_PORT,
    HUB_PORT,
    REGISTRY_PORT,
    ROLE_LABEL,
    swarm_labels,
)
from tests.conftest import BASE_IMAGE

pytestmark = pytest.mark.swarm

EXECUTION_CONSTRAINT = "node.labels.erchub.role == execution"
#: seconds a one-shot service may take from its creation to its end (the pull included)
SERVICE_TIMEOUT = 120
DONE_STATES = ("complete", "failed", "rejected", "shutdown", "orphaned")


def test_the_cluster_has_its_nodes_and_roles(cluster: LocalCluster) -> None:
    status = cluster.status()
    assert status.ready, status
    assert [(node.name, node.roles, node.swarm_role) for node in status.nodes] == [
        (f"{cluster.name}-manager", ("app", "data"), "manager"),
        (f"{cluster.name}-app-1", ("app",), "worker"),
        (f"{cluster.name}-execution-1", ("execution",), "worker"),
        (f"{cluster.name}-execution-2", ("execution",), "worker"),
    ]
    with contextlib.closing(cluster.manager_client()) as manager:
        labels = {
            node.attrs["Description"]["Hostname"]: node.attrs["Spec"]["Labels"]
            for node in manager.nodes.list()
        }
    assert labels == {
        f"{cluster.name}-manager": swarm_labels(("app", "data")),
        f"{cluster.name}-app-1": swarm_labels(("app",)),
        f"{cluster.name}-execution-1": swarm_labels(("execution",)),
        f"{cluster.name}-execution-2": swarm_labels(("execution",)),
    }
    assert labels[f"{cluster.name}-manager"] == {
        ROLE_LABEL: "app,data",
        f"{ROLE_LABEL}.app": "true",
        f"{ROLE_LABEL}.data": "true",
    }


def test_the_registry_answers_and_holds_the_base_image(cluster: LocalCluster) -> None:
    url = cluster.registry_url()
    assert url.startswith("http://127.0.0.1:")
    answer = httpx.get(f"{url}/v2/", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    repository, _, tag = BASE_IMAGE.partition(":")
    assert repository in httpx.get(f"{url}/v2/_catalog", timeout=5).json()["repositories"]
    assert tag in httpx.get(f"{url}/v2/{repository}/tags/list", timeout=5).json()["tags"]


@pytest.fixture
def probe_image(cluster: LocalCluster) -> Any:
    """An image built here that no node has: the base image and a file with a random token."""
    token = secrets.token_hex(8)
    tag = f"erchub-swarm-test/probe:{token}"
    dockerfile = f"FROM {BASE_IMAGE}\nRUN echo {token} > /probe\n"
    cluster.host.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    try:
        yield tag, token
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            cluster.host.images.remove(tag)


def wait_for_task(service: Any) -> dict[str, Any]:
    """The service's one task once it has ended (bounded by SERVICE_TIMEOUT)."""
    deadline = time.monotonic() + SERVICE_TIMEOUT
    while True:
        tasks = service.tasks()
        if tasks and tasks[0]["Status"]["State"] in DONE_STATES:
            return dict(tasks[0])
        assert time.monotonic() < deadline, f"the task did not end within {SERVICE_TIMEOUT} s"
        time.sleep(0.5)


def test_an_image_pushed_from_here_runs_by_digest_on_an_execution_node(
    cluster: LocalCluster, probe_image: tuple[str, str]
) -> None:
    tag, token = probe_image
    started = time.monotonic()
    pushed = cluster.push(tag)
    pushed_seconds = time.monotonic() - started
    assert (
        pushed.reference == f"{cluster.plan.registry_address}/{pushed.repository}@{pushed.digest}"
    )
    assert pushed.digest.startswith("sha256:")

    with contextlib.closing(cluster.manager_client()) as manager:
        service = manager.services.create(
            pushed.reference,
            command=["cat", "/probe"],
            name=f"erchub-swarm-test-probe-{token}",
            constraints=[EXECUTION_CONSTRAINT],
            restart_policy=docker.types.RestartPolicy(condition="none"),
        )
        try:
            task = wait_for_task(service)
            ran_seconds = time.monotonic() - started - pushed_seconds
            logs = b"".join(service.logs(stdout=True, stderr=True)).decode()
            node = manager.nodes.get(task["NodeID"]).attrs
        finally:
            service.remove()
    print(f"\npushed in {pushed_seconds:.1f} s; pulled and ran in {ran_seconds:.1f} s")

    assert task["Status"]["State"] == "complete", task["Status"]
    assert task["Status"]["ContainerStatus"]["ExitCode"] == 0
    assert task["Spec"]["ContainerSpec"]["Image"] == pushed.reference
    assert token in logs
    ran_on = node["Description"]["Hostname"]
    assert node["Spec"]["Labels"][ROLE_LABEL] == "execution", ran_on

    # that node pulled it by digest; no other node has it
    for status in cluster.status().nodes:
        with cluster.node_client(status.name) as engine:
            digests = {d for image in engine.images.list() for d in image.attrs["RepoDigests"]}
        assert (pushed.reference in digests) == (status.name == ran_on), status.name


def host_addresses(client: docker.DockerClient) -> set[str]:
    """This machine's IPv4 addresses other than loopback that other machines or containers
    could reach it at: the one its default route leaves from, and its address on every Docker
    network of its engine."""
    addresses = set()
    # no default route: no such address; TEST-NET-1 and UDP: connect() picks a route, sends nothing
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, contextlib.suppress(OSError):
        probe.connect(("192.0.2.1", 9))
        addresses.add(probe.getsockname()[0])
    for network in client.networks.list():
        for config in network.attrs.get("IPAM", {}).get("Config") or ():
            if config.get("Gateway") and ":" not in config["Gateway"]:
                addresses.add(config["Gateway"])
    return {address for address in addresses if not address.startswith("127.")}


def connects(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def test_no_engine_is_reachable_but_through_127_0_0_1(cluster: LocalCluster) -> None:
    containers = cluster.host.containers.list(
        filters={"label": f"org.erchub.cluster={cluster.name}"}
    )
    published = {c.name: {k: v for k, v in c.ports.items() if v} for c in containers}
    manager, app = f"{cluster.name}-manager", f"{cluster.name}-app-1"
    # the manager's engine, the registry and the app nodes' hub port are published, on
    # 127.0.0.1 only; nothing of the execution nodes
    assert {name: sorted(ports) for name, ports in published.items() if ports} == {
        manager: sorted([f"{ENGINE_PORT}/tcp", f"{HUB_PORT}/tcp"]),
        app: [f"{HUB_PORT}/tcp"],
        cluster.plan.registry: [f"{REGISTRY_PORT}/tcp"],
    }
    bindings = [b for ports in published.values() for b in ports.values()]
    assert {binding["HostIp"] for group in bindings for binding in group} == {"127.0.0.1"}

    port = int(published[manager][f"{ENGINE_PORT}/tcp"][0]["HostPort"])
    assert connects("127.0.0.1", port)
    addresses = host_addresses(cluster.host)
    assert addresses, "this machine has addresses besides loopback"
    assert [address for address in addresses if connects(address, port)] == []

    # the other nodes' engines listen on their socket only: not even the manager reaches them
    manager_container = cluster.host.containers.get(manager)
    for node in (app, f"{cluster.name}-execution-1", f"{cluster.name}-execution-2"):
        attempt = manager_container.exec_run(
            ["docker", "--host", f"tcp://{node}:{ENGINE_PORT}", "version"]
        )
        assert attempt.exit_code != 0, attempt.output


def test_the_command_shows_the_cluster_and_says_what_is_wrong_in_one_line(
    cluster: LocalCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cluster", "status", "--name", cluster.name]) == 0
    shown = capsys.readouterr().out
    assert "execution-2" in shown and "manager" in shown
    assert f"registry: {cluster.plan.registry_address} in the cluster" in shown

    assert main(["cluster", "status", "--name", f"{cluster.name}-none"]) == 1
    assert "not up" in capsys.readouterr().out
    assert main(["cluster", "up", "--name", cluster.name]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "exists already" in error
    assert main(["cluster", "up", "--nodes", "1"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_failed_up_removes_what_it_had_started(cluster: LocalCluster) -> None:
    """The registry's port is taken: up fails at its second step, after creating a network, a
    volume and a container, and removes them. (The session's cluster has built the images.)"""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        failing = LocalCluster(name=f"{cluster.name}-failed", registry_port=taken.getsockname()[1])
        lines: list[str] = []
        try:
            with pytest.raises(ClusterError, match=r"^cluster up: "):
                failing.up(progress=lines.append)
            label = {"label": f"org.erchub.cluster={failing.name}"}
            host = failing.host
            left = [
                *host.containers.list(all=True, filters=label),
                *host.volumes.list(filters=label),
                *host.networks.list(filters=label),
            ]
            assert left == []
            assert any(line.startswith("up failed (") for line in lines), lines
        finally:
            failing.down()
            failing.close()
