"""``docker stack rm`` in the middle of a job leaves no job ``running``: Swarm sends the workers
SIGTERM, and the worker that runs the job stops its container and hands the job back to the
queue (services/jobs/worker.py) within the worker's stop grace period (config/swarm/stack.yml).
The store outlives the stack in PostgreSQL's named volume: read there directly, the job is
``queued``; deployed again (with the secrets the cluster kept, which the volume's password
needs), the stack's workers run it to its end.

This test removes the whole stack: it runs after every other test of the tier (conftest's
FAULT_MODULES), and deploys the stack again before it ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

import pytest

from erchub.services.cluster.local import ClusterStatus, LocalCluster
from tests.swarm.stack_client import (
    job_events,
    runtime_compendium,
    start_job,
    status_events,
    wait_for_job,
)
from tests.swarm.test_faults import SLEEPING_NOTEBOOK, runs

pytestmark = pytest.mark.swarm

#: PostgreSQL's data in the stack (config/swarm/stack.yml, postgres.Dockerfile)
POSTGRES_VOLUME = "postgres-data"
POSTGRES_DATA = "/var/lib/postgresql/data"
#: the jobs of the store as its PostgreSQL's files say, read by a server of their own (on a
#: socket, no network) started in a container of the stack's PostgreSQL image
READ_JOBS = """
set -eu
bin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin | sort -V | tail -n 1)
"$bin/pg_ctl" --pgdata="$PGDATA" --wait start \
  --options="-c listen_addresses='' -c unix_socket_directories=/tmp" >/dev/null
"$bin/psql" -h /tmp -U postgres -d erchub -At -F ' ' -c 'select id, status from jobs'
"$bin/pg_ctl" --pgdata="$PGDATA" --mode=fast --wait stop >/dev/null
"""


def stored_jobs(cluster: LocalCluster, postgres_image: str) -> dict[str, str]:
    """Job id -> status, from the stack's PostgreSQL volume on the data node (the manager)."""
    with contextlib.closing(cluster.manager_client()) as manager:
        output = manager.containers.run(
            postgres_image,
            ["sh", "-c", READ_JOBS],
            volumes={f"{cluster.name}_{POSTGRES_VOLUME}": {"bind": POSTGRES_DATA, "mode": "rw"}},
            network_mode="none",
            remove=True,
        )
    rows = (line.split(" ", 1) for line in bytes(output).decode().splitlines() if line)
    return {job_id: status for job_id, status in rows}


def test_docker_stack_rm_leaves_no_job_running(
    cluster: LocalCluster, stack: ClusterStatus, token: str, tmp_path: Path
) -> None:
    # the hub may run elsewhere than at the deploy (test_faults moves it)
    deployed = dataclasses.replace(stack, hub_url=cluster.hub_url())
    compendium = runtime_compendium(cluster, deployed, token, tmp_path, SLEEPING_NOTEBOOK)
    job_id = start_job(deployed, token, compendium)
    wait_for_job(deployed, token, job_id, until=runs)
    with contextlib.closing(cluster.manager_client()) as manager:
        postgres = manager.services.get(f"{cluster.name}_postgres")
        postgres_image = postgres.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]

    started = time.monotonic()
    assert cluster.remove_stack()
    removed = time.monotonic() - started
    stored = stored_jobs(cluster, postgres_image)
    print(f"\nstack removed in {removed:.1f} s; the store then: {stored}")
    assert stored[job_id] == "queued"
    assert "running" not in stored.values()

    started = time.monotonic()
    again = cluster.deploy(progress=lambda line: print(f"\nswarm: {line}", end="", flush=True))
    print(f"\nstack deployed again in {time.monotonic() - started:.1f} s")
    job = wait_for_job(again, token, job_id)
    assert job["status"] == "success", (job["reason"], job["steps"])
    statuses = status_events(job_events(again, token, job_id))
    # the worker that the removal stopped handed the job back; a new worker ran it
    assert ("queued", "worker stopped") in statuses, statuses
    assert [status for status, _ in statuses].count("running") == 2, statuses
