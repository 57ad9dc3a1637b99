"""erchub's stack on the local test cluster (``erchub cluster deploy``): deployed from scratch,
each service where its role is, the hub and the erc service answering through 127.0.0.1 only,
and a job that runs on an execution node in a runtime image pulled from the registry by digest.

The runtime is built where the issue wants builds, on an app node (the manager), and pushed to
the registry; the worker that claims the job finds it there and pulls it, instead of building
it, and runs the job's container from its digest. (Execution nodes build nothing: their
internal network reaches no package index.)
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from pathlib import Path

import httpx
import pytest

from erchub.cli import main
from erchub.services.cluster.local import ClusterStatus, LocalCluster
from erchub.services.cluster.plan import HUB_PORT, service_node
from tests.swarm.stack_client import (
    api,
    build_runtime,
    request,
    start_job,
    the_workspace,
    upload,
    wait_for_job,
)
from tests.swarm.test_cluster import connects, host_addresses

pytestmark = pytest.mark.swarm


def test_each_service_runs_where_its_role_is(cluster: LocalCluster, stack: ClusterStatus) -> None:
    manager, app = f"{cluster.name}-manager", f"{cluster.name}-app-1"
    executions = (f"{cluster.name}-execution-1", f"{cluster.name}-execution-2")
    shown = {s.name: (s.mode, s.running, s.desired, s.nodes) for s in stack.services}
    # the hub on either app node; the erc replicas spread over both
    hub_node = service_node(stack.services, "hub")
    assert hub_node in (manager, app)
    assert shown == {
        "hub": ("replicated", 1, 1, (hub_node,)),
        "erc": ("replicated", 2, 2, (app, manager)),
        "postgres": ("replicated", 1, 1, (manager,)),
        "worker": ("global", 2, 2, executions),
    }
    assert stack.ready


def test_the_hub_answers_through_127_0_0_1_only(
    cluster: LocalCluster, stack: ClusterStatus
) -> None:
    assert stack.hub_url.startswith("http://127.0.0.1:")
    answer = httpx.get(f"{stack.hub_url}/hub/api", timeout=10)
    assert answer.status_code == 200 and "version" in answer.json()
    port = int(stack.hub_url.rsplit(":", 1)[1])
    assert connects("127.0.0.1", port)
    addresses = host_addresses(cluster.host)
    assert [address for address in addresses if connects(address, port)] == []
    # nor does any other node publish the hub's port (host mode: on the hub's node alone)
    hub_node = service_node(stack.services, "hub")
    assert hub_node is not None
    for node in cluster.plan.nodes:
        if node.name == hub_node:
            continue
        container = cluster.host.containers.get(node.name)
        address = container.attrs["NetworkSettings"]["Networks"][cluster.plan.network]
        probe = cluster.host.containers.get(hub_node).exec_run(
            ["timeout", "5", "bash", "-c", f"exec 3<>/dev/tcp/{address['IPAddress']}/{HUB_PORT}"]
        )
        assert probe.exit_code != 0, node.name


def test_the_erc_api_answers_from_two_replicas(stack: ClusterStatus, token: str) -> None:
    [erc] = [service for service in stack.services if service.name == "erc"]
    assert (erc.running, erc.desired) == (2, 2)
    # through the hub's proxy to the service's name (its virtual IP, or with dnsrr its
    # replicas' addresses): every request answers
    answers = [api(stack, "GET", "/compendium", token).status_code for _ in range(20)]
    assert answers == [200] * 20


def test_a_job_runs_on_an_execution_node_in_a_runtime_pulled_by_digest(
    cluster: LocalCluster, stack: ClusterStatus, token: str, operator_token: str, tmp_path: Path
) -> None:
    registry = cluster.plan.registry_address
    with contextlib.closing(cluster.manager_client()) as manager:
        hub = manager.services.get(f"{cluster.name}_hub")
        app_image = hub.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert app_image.startswith(f"{registry}/") and "@sha256:" in app_image
    unique = secrets.token_hex(4)
    workspace = the_workspace(tmp_path / f"erc-{unique}", app_image)
    # a runtime of its own, which no node has: other tests' jobs leave theirs on the nodes
    with (workspace / "Dockerfile").open("a") as dockerfile:
        dockerfile.write(f"LABEL org.erchub.test.runtime={unique}\n")
    started = time.monotonic()
    image_digest = build_runtime(cluster, workspace)
    print(f"\nruntime built and pushed on the manager in {time.monotonic() - started:.1f} s")
    assert image_digest.startswith(f"{registry}/erchub/runtime@sha256:")

    job_id = start_job(stack, token, upload(stack, token, workspace))
    started = time.monotonic()
    job = wait_for_job(stack, token, job_id)
    print(f"\njob ran in {time.monotonic() - started:.1f} s")
    steps = {name: (step["status"], step.get("reason")) for name, step in job["steps"].items()}
    assert job["status"] == "success", (job["reason"], steps)

    # the very image the app node pushed, by digest; the worker pulled it rather than build it
    assert job["image_digest"] == image_digest
    build_text = job["steps"]["image_build"]["text"]
    assert any(line.startswith("Digest: sha256:") for line in build_text), build_text

    # the job says which worker ran it: one on an execution node, named after the node
    logs = api(stack, "GET", f"/job/{job_id}/logs", token).text
    ran_on = [
        node
        for node in (f"{cluster.name}-execution-1", f"{cluster.name}-execution-2")
        if f"worker {node}-" in logs
    ]
    assert len(ran_on) == 1, logs[:2000]
    for node in (f"{cluster.name}-execution-1", f"{cluster.name}-execution-2"):
        with cluster.node_client(node) as engine:
            digests = {d for image in engine.images.list() for d in image.attrs["RepoDigests"]}
        assert (image_digest in digests) == (node == ran_on[0]), node

    # the build step pulled what the manager pushed, and the service's metrics count the pull
    assert any(line.endswith("not built here") for line in build_text), build_text
    metrics = request(stack.hub_url, "GET", "/services/erc/metrics", operator_token)
    assert metrics.status_code == 200, metrics.text[:300]
    pulls = re.search(r"^erchub_registry_pull_duration_seconds_gcount (\S+)$", metrics.text, re.M)
    assert pulls and float(pulls[1]) >= 1, metrics.text[-2000:]


def test_the_command_shows_the_stack(
    cluster: LocalCluster, stack: ClusterStatus, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cluster", "status", "--name", cluster.name]) == 0
    shown = capsys.readouterr().out
    assert f"Stack {cluster.name}" in shown and "worker" in shown and "global" in shown
    assert f"hub: {stack.hub_url}/" in shown
    # the queue, from the stack's store: every status, and the job of the test before ended
    [jobs] = [line for line in shown.splitlines() if line.startswith("jobs: ")]
    counts = {name: int(count) for count, name in (part.split() for part in jobs[6:].split(", "))}
    assert list(counts) == ["queued", "running", "success", "failure", "canceled"], jobs
    assert counts["success"] >= 1, jobs
    assert main(["cluster", "deploy", "--name", cluster.name]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "deployed already" in error
