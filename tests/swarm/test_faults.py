"""Faults that erchub's stack survives on the cluster (issue "Past one machine", "Reliability
that the cluster must show"): an execution node lost in the middle of a job, PostgreSQL
restarted, the hub's node lost.

These tests do harm to the cluster: they run after every other test of the tier (conftest's
FAULT_MODULES), and each gives back what it took: a node that it killed is started again (its
engine rejoins the swarm from its volume) and the test waits until none of the node's old tasks
counts as running and every service of the stack runs all its tasks. After the hub's node test
the hub runs on the manager, whose port of this machine need not be ``stack.hub_url``: later
tests ask ``cluster.hub_url()``.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from traitlets.config import PyFileConfigLoader

from erchub.services.cluster.local import ClusterError, ClusterStatus, LocalCluster
from erchub.services.jobs.worker import worker_node
from tests.swarm.stack_client import (
    api,
    job_events,
    poll,
    request,
    running_tasks,
    runtime_compendium,
    start_job,
    status_events,
    wait_for_job,
)

pytestmark = pytest.mark.swarm

CONFIG = Path(__file__).resolve().parents[2] / "config" / "swarm"
#: seconds a killed node may take to be back: its engine started, in the swarm, its tasks
#: running again; and the hub to start on another node and answer
RECOVERY_TIMEOUT = 180
#: what a running job's status event says of its worker (Worker.run_job)
RUNNING_REASON = re.compile(r"worker (?P<worker>\S+), attempt (?P<attempt>\d+)")
#: a notebook that runs long enough for a node to be killed in the middle of it
SLEEPING_NOTEBOOK = "import time\ntime.sleep(20)\nprint('slept 20 s')"
QUICK_NOTEBOOK = "import time\ntime.sleep(3)\nprint('slept 3 s')"


def lost_timeout() -> float:
    """The workers' heartbeat timeout in the stack (config/swarm/erchub_config.py)."""
    with mock.patch.dict(os.environ, {"ERCHUB_REGISTRY": "registry:5000"}):
        config = PyFileConfigLoader("erchub_config.py", path=str(CONFIG)).load_config()
    return float(config.Worker.lost_timeout)


def execution_nodes(cluster: LocalCluster) -> list[str]:
    return [node.name for node in cluster.plan.nodes if "execution" in node.roles]


def runs(job: dict[str, Any]) -> bool:
    """Whether the job runs its notebook (its container runs on a node)."""
    return bool(job["status"] == "running" and job["steps"]["image_execute"]["status"] == "running")


def workers_of(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(worker, attempt) of each status event that says a worker started the job."""
    found = []
    for status, reason in status_events(events):
        match = RUNNING_REASON.fullmatch(reason)
        if status == "running" and match:
            found.append((match["worker"], int(match["attempt"])))
    return found


@contextlib.contextmanager
def node_lost(cluster: LocalCluster, node: str) -> Iterator[float]:
    """``node``'s engine killed (SIGKILL of its container: all that it runs dies with it) for
    the block, which gets the moment of the kill (time.monotonic); then the node started again
    and, before the block ends, waited for: its engine back in the swarm, none of the tasks it
    ran counted as running any more (a global service's stay so while the node is down), and
    every service of the stack running all its tasks."""
    lost = {task for task, (where, _) in running_tasks(cluster).items() if where == node}
    container = cluster.host.containers.get(node)
    container.kill()
    killed = time.monotonic()
    try:
        yield killed
    finally:
        container.start()
        started = time.monotonic()
        poll(
            f"{node} back, the stack whole",
            lambda: not lost & set(running_tasks(cluster)) and cluster.status().ready,
            RECOVERY_TIMEOUT,
        )
        print(f"\n{node}: back in the swarm, the stack whole in {time.monotonic() - started:.1f} s")


def test_a_job_whose_execution_node_is_lost_ends_success_on_another(
    cluster: LocalCluster, stack: ClusterStatus, token: str, tmp_path: Path
) -> None:
    timeout = lost_timeout()
    compendium = runtime_compendium(cluster, stack, token, tmp_path, SLEEPING_NOTEBOOK)
    job_id = start_job(stack, token, compendium)
    wait_for_job(stack, token, job_id, until=runs)
    [(first_worker, attempt)] = workers_of(job_events(stack, token, job_id, until=workers_of))
    assert attempt == 1
    first_node = worker_node(first_worker)
    [other_node] = [node for node in execution_nodes(cluster) if node != first_node]

    with node_lost(cluster, first_node) as killed:
        # the bound for the benchmark is twice the heartbeat timeout: the last heartbeat
        # may be 2 s old at the kill, and the other worker reaps once a second
        job = wait_for_job(
            stack,
            token,
            job_id,
            until=lambda job: job["attempts"] == 2 and job["status"] == "running",
            timeout=2 * timeout,
        )
        taken_over = time.monotonic() - killed
        # the lost node comes back while the job runs on the other one
    job = wait_for_job(stack, token, job_id)
    ended = time.monotonic() - killed
    print(
        f"\n{first_node} killed: job {job_id} running again after {taken_over:.1f} s "
        f"(heartbeat timeout {timeout:g} s), ended {job['status']} after {ended:.1f} s"
    )

    steps = {name: (step["status"], step.get("reason")) for name, step in job["steps"].items()}
    assert job["status"] == "success", (job["reason"], steps)
    assert job["attempts"] == 2
    events = job_events(stack, token, job_id)
    # it ran on the lost node, was re-queued, ran on the other node and ended there, once
    started = workers_of(events)
    assert [(worker_node(worker), attempt) for worker, attempt in started] == [
        (first_node, 1),
        (other_node, 2),
    ]
    statuses = status_events(events)
    lost_at = statuses.index(("queued", "worker lost, re-queued"))
    assert statuses[lost_at - 1] == ("running", f"worker {first_worker}, attempt 1")
    assert statuses[lost_at + 1] == ("running", f"worker {started[1][0]}, attempt 2")
    assert [status for status, _ in statuses[lost_at + 2 :]] == ["success"]


def test_postgresql_restarted_loses_and_duplicates_no_job(
    cluster: LocalCluster, stack: ClusterStatus, token: str, tmp_path: Path
) -> None:
    # the job that runs through the restart sleeps past it; the others are quick
    sleeping = runtime_compendium(cluster, stack, token, tmp_path, SLEEPING_NOTEBOOK)
    compendium = runtime_compendium(cluster, stack, token, tmp_path, QUICK_NOTEBOOK)
    clients = {service: running_tasks(cluster, service) for service in ("erc", "worker")}
    [(database_task, (database_node, database_container))] = running_tasks(
        cluster, "postgres"
    ).items()

    before = start_job(stack, token, sleeping)
    # the database goes while a job runs: its worker heartbeats and stores its steps meanwhile
    wait_for_job(stack, token, before, until=runs)
    with cluster.node_client(database_node) as engine:
        engine.containers.get(database_container).kill()
    killed = time.monotonic()

    answers: list[int] = []

    def create() -> str | None:
        """A job, created once the API answers: only a 503 (the store is unavailable) is
        tried again."""
        answer = api(stack, "POST", "/job", token, json={"compendium_id": compendium})
        answers.append(answer.status_code)
        if answer.status_code == 503:
            return None
        assert answer.status_code == 201, answer.text
        return str(answer.json()["job_id"])

    during = poll("a job created while PostgreSQL restarts", create, RECOVERY_TIMEOUT)
    created_during = time.monotonic() - killed
    # the swarm started PostgreSQL again, in a new task; after it, the API answers
    poll(
        "PostgreSQL running again",
        lambda: set(running_tasks(cluster, "postgres")) - {database_task},
        RECOVERY_TIMEOUT,
    )
    restarted = time.monotonic() - killed
    poll(
        "the erc API",
        lambda: api(stack, "GET", f"/job/{before}", token).status_code == 200,
        RECOVERY_TIMEOUT,
    )
    after = start_job(stack, token, compendium)
    print(
        f"\nPostgreSQL killed: running again after {restarted:.1f} s; job created during the "
        f"window after {created_during:.1f} s, answers {answers}"
    )

    jobs = {job_id: wait_for_job(stack, token, job_id) for job_id in (before, during, after)}
    assert len(jobs) == 3
    for job_id, job in jobs.items():
        assert (job["status"], job["attempts"]) == ("success", 1), (job_id, job["reason"])
        # one end, recorded once
        finals = [status for status, _ in status_events(job_events(stack, token, job_id))]
        assert finals.count("success") == 1 and finals[-1] == "success", (job_id, finals)
    # no job lost, none made twice (a create that answered 503 and was stored anyway)
    for compendium_id, created in ((sleeping, [before]), (compendium, [during, after])):
        listed = api(stack, "GET", f"/job?compendium_id={compendium_id}&limit=100", token)
        assert listed.status_code == 200, listed.text
        shown = listed.json()
        assert (sorted(shown["results"]), shown["total"]) == (sorted(created), len(created))
    # the service's replicas and the workers reconnected: the same tasks, the same containers
    assert {service: running_tasks(cluster, service) for service in clients} == clients


def docker_cli(cluster: LocalCluster, *arguments: str) -> str:
    """The manager's Docker CLI (a swarm manager's); its output. Fails on an error."""
    manager = cluster.host.containers.get(cluster.plan.manager.name)
    result = manager.exec_run(["docker", *arguments])
    output = result.output.decode(errors="replace")
    assert result.exit_code == 0, output
    return output


def put_the_hub_on(cluster: LocalCluster, node: str) -> None:
    """Move the hub to the app node ``node`` unless it runs there: the other app nodes paused
    (Swarm schedules no new task there, and leaves theirs running), the hub restarted, the
    others made active again once the hub answers on ``node``."""
    if running_hub(cluster)[0] == node:
        return
    others = [n.name for n in cluster.plan.nodes if "app" in n.roles and n.name != node]
    for other in others:
        docker_cli(cluster, "node", "update", "--availability", "pause", other)
    try:
        docker_cli(cluster, "service", "update", "--detach", "--force", f"{cluster.name}_hub")
        poll(f"the hub on {node}", lambda: hub_answering_on(cluster, node), RECOVERY_TIMEOUT)
    finally:
        for other in others:
            docker_cli(cluster, "node", "update", "--availability", "active", other)


def running_hub(cluster: LocalCluster) -> tuple[str, str]:
    """The node the hub runs on, and the hub's URL from this machine ("" when it does not
    answer there yet)."""
    tasks = list(running_tasks(cluster, "hub").values())
    if len(tasks) != 1:
        return "", ""
    node, _ = tasks[0]
    try:
        url = cluster.hub_url()
        answers = httpx.get(f"{url}/hub/api", timeout=5).status_code == 200
    except (ClusterError, httpx.TransportError):
        return node, ""
    return node, url if answers else ""


def hub_answering_on(cluster: LocalCluster, node: str) -> tuple[str, str] | None:
    """The hub's node and URL when it runs on ``node`` and answers there."""
    where, url = running_hub(cluster)
    return (where, url) if where == node and url else None


def test_the_hub_starts_on_another_app_node_when_its_node_is_lost(
    cluster: LocalCluster, stack: ClusterStatus, token: str
) -> None:
    # the hub's node is not the swarm's manager: losing that is losing the swarm
    manager = cluster.plan.manager.name
    [app] = [node.name for node in cluster.plan.nodes if node.roles == ("app",)]
    put_the_hub_on(cluster, app)
    _, before = poll(f"the hub on {app}", lambda: hub_answering_on(cluster, app), RECOVERY_TIMEOUT)

    with node_lost(cluster, app) as killed:
        node, after = poll(
            "the hub started and answering on another node",
            lambda: hub_answering_on(cluster, manager),
            RECOVERY_TIMEOUT,
        )
        moved = time.monotonic() - killed
        # the proxy's routes, rebuilt by the new hub: the erc API through the hub's port
        poll(
            "the erc API through the hub",
            lambda: (
                request(after, "GET", "/services/erc/api/v1/compendium", token).status_code == 200
            ),
            RECOVERY_TIMEOUT,
        )
        routed = time.monotonic() - killed
        # the user and their token survive: the hub's state is in PostgreSQL
        user = request(after, "GET", "/hub/api/user", token)
        assert user.status_code == 200, user.text
        assert user.json()["name"] == "alice"
    print(
        f"\n{app} killed: the hub answering on {node} after {moved:.1f} s, "
        f"the erc API through it after {routed:.1f} s"
    )
    assert after != before  # the manager's container's port now, not the lost node's
