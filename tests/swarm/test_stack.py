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
import io
import secrets
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from erchub.cli import main
from erchub.services.cluster.local import ClusterStatus, LocalCluster
from erchub.services.cluster.plan import HUB_PORT
from erchub.spawner.builder import ImageBuilder
from tests.conftest import write_notebook
from tests.swarm.test_cluster import connects, host_addresses

pytestmark = pytest.mark.swarm

API = "/services/erc/api/v1"
#: seconds a job may take from its creation to its end (the pull of its runtime included)
JOB_TIMEOUT = 300
FINAL_STATUSES = ("success", "failure", "canceled")
USER = "alice"


@pytest.fixture(scope="module")
def stack(cluster: LocalCluster) -> Iterator[ClusterStatus]:
    """The stack, deployed from scratch on the session's cluster (whose ``down`` removes it)."""
    started = time.monotonic()
    status = cluster.deploy(progress=lambda line: print(f"\nswarm: {line}", end="", flush=True))
    print(f"\nswarm: stack deployed in {time.monotonic() - started:.1f} s")
    yield status


@pytest.fixture(scope="module")
def token(stack: ClusterStatus) -> str:
    """An API token of USER, as a user gets one: log in (DummyAuthenticator: no ORCID in the
    test stack), then ask the hub's API for a token with the login cookie."""
    with httpx.Client(base_url=stack.hub_url, follow_redirects=True, timeout=30) as client:
        login = client.get("/hub/login")
        assert login.status_code == 200, login.text[:300]
        xsrf = client.cookies.get("_xsrf", path="/hub/")
        done = client.post("/hub/login", data={"username": USER, "password": "x", "_xsrf": xsrf})
        assert done.status_code == 200, done.text[:300]
        assert done.url.path == "/hub/home"
        # the XSRF token belongs to the login's session: the one the hub set at the login
        xsrf = client.cookies.get("_xsrf", path="/hub/")
        created = client.post(
            f"/hub/api/users/{USER}/tokens",
            json={"note": "swarm tier", "expires_in": 3600},
            headers={"X-XSRFToken": xsrf or ""},
        )
        assert created.status_code == 201, created.text
        return str(created.json()["token"])


def api(stack: ClusterStatus, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"token {token}"}
    return httpx.request(
        method, f"{stack.hub_url}{API}{path}", headers=headers, timeout=60, **kwargs
    )


def test_each_service_runs_where_its_role_is(cluster: LocalCluster, stack: ClusterStatus) -> None:
    manager = f"{cluster.name}-manager"
    executions = (f"{cluster.name}-execution-1", f"{cluster.name}-execution-2")
    shown = {s.name: (s.mode, s.running, s.desired, s.nodes) for s in stack.services}
    assert shown == {
        "hub": ("replicated", 1, 1, (manager,)),
        "erc": ("replicated", 2, 2, (manager, manager)),
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
    for node in (f"{cluster.name}-execution-1", f"{cluster.name}-execution-2"):
        container = cluster.host.containers.get(node)
        address = container.attrs["NetworkSettings"]["Networks"][cluster.plan.network]
        probe = cluster.host.containers.get(f"{cluster.name}-manager").exec_run(
            ["timeout", "5", "bash", "-c", f"exec 3<>/dev/tcp/{address['IPAddress']}/{HUB_PORT}"]
        )
        assert probe.exit_code != 0, node


def test_the_erc_api_answers_from_two_replicas(stack: ClusterStatus, token: str) -> None:
    [erc] = [service for service in stack.services if service.name == "erc"]
    assert (erc.running, erc.desired) == (2, 2)
    # through the hub's proxy to the service's name (its virtual IP, or with dnsrr its
    # replicas' addresses): every request answers
    answers = [api(stack, "GET", "/compendium", token).status_code for _ in range(20)]
    assert answers == [200] * 20


def the_workspace(directory: Path, app_image: str) -> Path:
    """A tiny compendium whose runtime is the app image (it holds erchub and a kernel)."""
    write_notebook(directory / "main.ipynb", "print('ran on the swarm')")
    (directory / "Dockerfile").write_text(f"FROM {app_image}\n")
    return directory


def zipped(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(directory.rglob("*")):
            archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


def test_a_job_runs_on_an_execution_node_in_a_runtime_pulled_by_digest(
    cluster: LocalCluster, stack: ClusterStatus, token: str, tmp_path: Path
) -> None:
    registry = cluster.plan.registry_address
    with contextlib.closing(cluster.manager_client()) as manager:
        hub = manager.services.get(f"{cluster.name}_hub")
        app_image = hub.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        assert app_image.startswith(f"{registry}/") and "@sha256:" in app_image
        workspace = the_workspace(tmp_path / f"erc-{secrets.token_hex(4)}", app_image)
        # the builder on the app node: it builds the runtime and pushes it to the registry
        started = time.monotonic()
        builder = ImageBuilder(docker_client=manager, registry=registry)
        built = builder.build(builder.plan(workspace, "swarm-tier"))
    print(f"\nruntime built and pushed on the manager in {time.monotonic() - started:.1f} s")
    assert built.image_digest.startswith(f"{registry}/erchub/runtime@sha256:")

    uploaded = api(
        stack,
        "POST",
        "/compendium",
        token,
        files={"compendium": ("workspace.zip", zipped(workspace), "application/zip")},
        data={"content_type": "workspace"},
    )
    assert uploaded.status_code == 201, uploaded.text
    created = api(stack, "POST", "/job", token, json={"compendium_id": uploaded.json()["id"]})
    assert created.status_code == 201, created.text
    job_id = created.json()["job_id"]
    started = time.monotonic()
    while True:
        job = api(stack, "GET", f"/job/{job_id}?steps=all", token).json()
        if job["status"] in FINAL_STATUSES:
            break
        assert time.monotonic() - started < JOB_TIMEOUT, f"job {job_id} did not end: {job}"
        time.sleep(1)
    print(f"\njob ran in {time.monotonic() - started:.1f} s")
    steps = {name: (step["status"], step.get("reason")) for name, step in job["steps"].items()}
    assert job["status"] == "success", (job["reason"], steps)

    # the very image the app node pushed, by digest; the worker pulled it rather than build it
    assert job["image_digest"] == built.image_digest
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
        assert (built.image_digest in digests) == (node == ran_on[0]), node


def test_the_command_shows_the_stack(
    cluster: LocalCluster, stack: ClusterStatus, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cluster", "status", "--name", cluster.name]) == 0
    shown = capsys.readouterr().out
    assert f"Stack {cluster.name}" in shown and "worker" in shown and "global" in shown
    assert f"hub: {stack.hub_url}/" in shown
    assert main(["cluster", "deploy", "--name", cluster.name]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "deployed already" in error
