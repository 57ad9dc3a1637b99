"""What the swarm tier's tests do with erchub's stack on the session's cluster: log a user in
through the hub, call the erc API through the hub's proxy, upload a compendium whose runtime an
app node built and pushed to the registry, start jobs and follow them (their JSON and their
event log), and find the tasks and containers of the stack's services.

Every loop here is bounded in time; every request goes to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from erchub.services.cluster.local import ClusterStatus, LocalCluster
from erchub.services.cluster.plan import STACK_LABEL
from erchub.spawner.builder import ImageBuilder
from tests.conftest import write_notebook

API = "/services/erc/api/v1"
#: seconds a job may take from its creation to its end (the pull of its runtime included)
JOB_TIMEOUT = 300
FINAL_STATUSES = ("success", "failure", "canceled")
USER = "alice"
#: the stack's administrator (LocalCluster.admin_users)
OPERATOR = "operator"
POLL_INTERVAL = 0.5

Event = dict[str, Any]


def login_token(hub_url: str, user: str = USER) -> str:
    """An API token of ``user``, as a user gets one: log in (DummyAuthenticator: no ORCID in the
    test stack), then ask the hub's API for a token with the login cookie."""
    with httpx.Client(base_url=hub_url, follow_redirects=True, timeout=30) as client:
        login = client.get("/hub/login")
        assert login.status_code == 200, login.text[:300]
        xsrf = client.cookies.get("_xsrf", path="/hub/")
        done = client.post("/hub/login", data={"username": user, "password": "x", "_xsrf": xsrf})
        assert done.status_code == 200, done.text[:300]
        assert done.url.path == "/hub/home"
        # the XSRF token belongs to the login's session: the one the hub set at the login
        xsrf = client.cookies.get("_xsrf", path="/hub/")
        created = client.post(
            f"/hub/api/users/{user}/tokens",
            json={"note": "swarm tier", "expires_in": 3600},
            headers={"X-XSRFToken": xsrf or ""},
        )
        assert created.status_code == 201, created.text
        return str(created.json()["token"])


def api(stack: ClusterStatus, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
    """A request to the erc API through the hub's proxy, as ``token``'s user."""
    return request(stack.hub_url, method, f"{API}{path}", token, **kwargs)


def request(hub_url: str, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
    """A request to ``path`` of the hub at ``hub_url`` (its proxy: the hub, or a service)."""
    headers = {"Authorization": f"token {token}"}
    kwargs.setdefault("timeout", 60)
    return httpx.request(method, f"{hub_url}{path}", headers=headers, **kwargs)


def poll(what: str, check: Callable[[], Any], timeout: float) -> Any:
    """Call ``check`` until it returns something true, which is returned; fail naming
    ``what`` after ``timeout`` s. A request that cannot connect counts as a false answer."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.TransportError):
            answer = check()
            if answer:
                return answer
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(POLL_INTERVAL)


def the_workspace(directory: Path, app_image: str, *cells: str) -> Path:
    """A tiny compendium whose runtime is the app image (it holds erchub and a kernel): a
    notebook of ``cells`` (default: one that prints)."""
    write_notebook(directory / "main.ipynb", *(cells or ("print('ran on the swarm')",)))
    (directory / "Dockerfile").write_text(f"FROM {app_image}\n")
    return directory


def zipped(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(directory.rglob("*")):
            archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


def app_image(cluster: LocalCluster) -> str:
    """The stack's app image, by its digest in the registry."""
    with contextlib.closing(cluster.manager_client()) as manager:
        hub = manager.services.get(f"{cluster.name}_hub")
        return str(hub.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"])


def build_runtime(cluster: LocalCluster, workspace: Path) -> str:
    """Build the runtime of ``workspace`` where the issue wants builds, on an app node (the
    manager), and push it to the registry (reused when built before): its digest there.
    Execution nodes build nothing: their internal network reaches no package index."""
    with contextlib.closing(cluster.manager_client()) as manager:
        builder = ImageBuilder(docker_client=manager, registry=cluster.plan.registry_address)
        return builder.build(builder.plan(workspace, "swarm-tier")).image_digest


def upload(stack: ClusterStatus, token: str, workspace: Path) -> str:
    """Upload ``workspace`` as a compendium; its id."""
    uploaded = api(
        stack,
        "POST",
        "/compendium",
        token,
        files={"compendium": ("workspace.zip", zipped(workspace), "application/zip")},
        data={"content_type": "workspace"},
    )
    assert uploaded.status_code == 201, uploaded.text
    return str(uploaded.json()["id"])


def runtime_compendium(
    cluster: LocalCluster, stack: ClusterStatus, token: str, directory: Path, *cells: str
) -> str:
    """A compendium of a notebook of ``cells`` whose runtime is in the registry: its id."""
    workspace = the_workspace(directory / f"erc-{secrets.token_hex(4)}", app_image(cluster), *cells)
    build_runtime(cluster, workspace)
    return upload(stack, token, workspace)


def start_job(stack: ClusterStatus, token: str, compendium_id: str) -> str:
    created = api(stack, "POST", "/job", token, json={"compendium_id": compendium_id})
    assert created.status_code == 201, created.text
    return str(created.json()["job_id"])


def get_job(stack: ClusterStatus, token: str, job_id: str) -> dict[str, Any]:
    answer = api(stack, "GET", f"/job/{job_id}?steps=all", token)
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = answer.json()
    return job


def wait_for_job(
    stack: ClusterStatus,
    token: str,
    job_id: str,
    until: Callable[[dict[str, Any]], bool] = lambda job: job["status"] in FINAL_STATUSES,
    timeout: float = JOB_TIMEOUT,
) -> dict[str, Any]:
    """The job's JSON (steps with their text) once ``until`` it holds (default: it ended)."""
    job: dict[str, Any] = {}

    def check() -> bool:
        nonlocal job
        job = get_job(stack, token, job_id)
        return until(job)

    try:
        poll(f"job {job_id}", check, timeout)
    except AssertionError:
        raise AssertionError(
            f"job {job_id}: not as awaited within {timeout:.0f} s: {job}"
        ) from None
    return job


def server_sent_events(
    url: str,
    token: str,
    until: Callable[[list[Event]], bool] = lambda events: False,
    timeout: float = JOB_TIMEOUT,
) -> list[Event]:
    """The events (their JSON data) of the Server-Sent Events stream at ``url``, as
    ``token``'s user, until the stream ends, or ``until`` holds for those read so far. The
    streams of the hub and of the erc API send a keep-alive comment every 15 s or more often."""
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    with httpx.stream(
        "GET", url, headers={"Authorization": f"token {token}"}, timeout=httpx.Timeout(60)
    ) as answer:
        assert answer.status_code == 200, answer.read()[:300]
        for line in answer.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
                if until(events):
                    break
            assert time.monotonic() < deadline, f"{url}: events {events}"
    return events


def job_events(
    stack: ClusterStatus,
    token: str,
    job_id: str,
    until: Callable[[list[Event]], bool] = lambda events: False,
    timeout: float = JOB_TIMEOUT,
) -> list[Event]:
    """The job's events from its log stream (``/logs``), until the stream ends with the job's
    final status, or ``until`` holds for those read so far."""
    return server_sent_events(f"{stack.hub_url}{API}/job/{job_id}/logs", token, until, timeout)


def status_events(events: list[Event]) -> list[tuple[str, str]]:
    """The (status, reason) of each status event."""
    return [(event["status"], event["reason"]) for event in events if event["kind"] == "status"]


def running_tasks(cluster: LocalCluster, service: str = "") -> dict[str, tuple[str, str]]:
    """The running tasks of the stack's ``service`` (its name in the stack file; default: of
    every service of the stack): task id -> (its node's hostname, its container's id)."""
    which = {"service": f"{cluster.name}_{service}"} if service else stack_filter(cluster)
    with contextlib.closing(cluster.manager_client()) as manager:
        hostnames = {
            node.id: node.attrs["Description"]["Hostname"] for node in manager.nodes.list()
        }
        tasks = manager.api.tasks(filters={**which, "desired-state": "running"})
    return {
        task["ID"]: (
            hostnames.get(task.get("NodeID", ""), "?"),
            task["Status"].get("ContainerStatus", {}).get("ContainerID", ""),
        )
        for task in tasks
        if task["Status"]["State"] == "running"
    }


def task_addresses(cluster: LocalCluster, service: str, network: str) -> dict[str, str]:
    """The addresses of the running tasks of the stack's ``service`` on the stack's
    ``network`` (names as in the stack file): task id -> address."""
    with contextlib.closing(cluster.manager_client()) as manager:
        tasks = manager.api.tasks(
            filters={"service": f"{cluster.name}_{service}", "desired-state": "running"}
        )
    return {
        task["ID"]: attachment["Addresses"][0].split("/")[0]
        for task in tasks
        if task["Status"]["State"] == "running"
        for attachment in task.get("NetworksAttachments", ())
        if attachment["Network"]["Spec"]["Name"] == f"{cluster.name}_{network}"
    }


def stack_filter(cluster: LocalCluster) -> dict[str, str]:
    """The engine API's filter of the tasks (or services) of the cluster's stack."""
    return {"label": f"{STACK_LABEL}={cluster.name}"}
