"""Cluster benchmarks on a local test cluster of its own (issue "Past one machine"), in one run:

- throughput: N I/O-bound jobs (notebooks that sleep 5 s) with one execution node vs two (the
  other drained: Swarm moves its worker away). Goal: two nodes >= 1.8x the jobs per second;
- recovery: an execution node killed in the middle of a job, until the job runs again on the
  other node, against the workers' heartbeat timeout. Goal: < 2x the heartbeat timeout;
- image distribution: an execution node pulling a runtime image from the registry by digest vs
  building the same Dockerfile there without cache. The Dockerfile's work is synthetic (64 MiB
  written, the app's Python byte-compiled): execution nodes reach no package index, so a real
  pip build cannot run there; a real runtime build (minutes of pip) only widens the gap.

Ratios are of figures measured in this run, on this machine. The cluster is brought up and
removed by the run (--keep leaves it).

Usage: python bench/cluster.py [--jobs 8] [--json F] [--keep]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from erchub.services.cluster.local import ClusterStatus, LocalCluster  # noqa: E402
from erchub.services.jobs.worker import worker_node  # noqa: E402
from tests.swarm.stack_client import (  # noqa: E402
    app_image,
    job_events,
    login_token,
    runtime_compendium,
    start_job,
    wait_for_job,
)
from tests.swarm.test_faults import (  # noqa: E402
    execution_nodes,
    lost_timeout,
    node_lost,
    runs,
    workers_of,
)

CLUSTER_NAME = "erchub-swarm-bench"
SLEEP_NOTEBOOK = "import time\ntime.sleep(5)\nprint('slept 5 s')"
LONG_NOTEBOOK = "import time\ntime.sleep(30)\nprint('slept 30 s')"
THROUGHPUT_GOAL = 1.8
RECOVERY_GOAL = 2.0
#: seconds a batch of jobs may take
BATCH_TIMEOUT = 900
SYNTHETIC_BUILD = (
    "RUN head -c 67108864 /dev/urandom > /opt/bench-data "
    "&& python3 -m compileall -q -f /srv/erchub/venv/lib > /dev/null\n"
)


def say(line: str) -> None:
    print(f"bench: {line}", file=sys.stderr, flush=True)


def batch_seconds(stack: ClusterStatus, token: str, compendium: str, jobs: int) -> float:
    """Seconds from the creation of ``jobs`` jobs of ``compendium`` to the end of the last."""
    started = time.monotonic()
    job_ids = [start_job(stack, token, compendium) for _ in range(jobs)]
    for job_id in job_ids:
        job = wait_for_job(stack, token, job_id, timeout=BATCH_TIMEOUT)
        assert job["status"] == "success", (job_id, job["reason"])
    return time.monotonic() - started


def throughput(
    cluster: LocalCluster, stack: ClusterStatus, token: str, scratch: Path, jobs: int
) -> dict[str, Any]:
    compendium = runtime_compendium(cluster, stack, token, scratch, SLEEP_NOTEBOOK)
    # every execution node pulls the runtime once, outside the measured batches
    batch_seconds(stack, token, compendium, 2 * len(execution_nodes(cluster)))
    nodes = len(execution_nodes(cluster))
    # one worker: the other execution node drained (Swarm moves its worker away)
    cluster.scale("worker", 1, progress=say)
    try:
        one = batch_seconds(stack, token, compendium, jobs)
    finally:
        cluster.scale("worker", nodes, progress=say)
    two = batch_seconds(stack, token, compendium, jobs)
    say(f"{jobs} jobs: {one:.1f} s on one execution node, {two:.1f} s on two")
    return {
        "jobs": jobs,
        "one_node_s": round(one, 1),
        "two_nodes_s": round(two, 1),
        "speedup": round(one / two, 2),
        "goal": THROUGHPUT_GOAL,
        "goal_met": one / two >= THROUGHPUT_GOAL,
    }


def recovery(
    cluster: LocalCluster, stack: ClusterStatus, token: str, scratch: Path
) -> dict[str, Any]:
    timeout = lost_timeout()
    compendium = runtime_compendium(cluster, stack, token, scratch, LONG_NOTEBOOK)
    job_id = start_job(stack, token, compendium)
    wait_for_job(stack, token, job_id, until=runs)
    [(worker, _)] = workers_of(job_events(stack, token, job_id, until=workers_of))
    with node_lost(cluster, worker_node(worker)) as killed:
        wait_for_job(
            stack,
            token,
            job_id,
            until=lambda job: job["attempts"] == 2 and runs(job),
            timeout=BATCH_TIMEOUT,
        )
        again = time.monotonic() - killed
        job = wait_for_job(stack, token, job_id, timeout=BATCH_TIMEOUT)
    assert job["status"] == "success", job["reason"]
    say(f"node lost: the job ran again after {again:.1f} s (heartbeat timeout {timeout:g} s)")
    return {
        "running_again_s": round(again, 1),
        "heartbeat_timeout_s": timeout,
        "over_timeout": round(again / timeout, 2),
        "goal": RECOVERY_GOAL,
        "goal_met": again / timeout < RECOVERY_GOAL,
    }


def timed(action: Callable[[], Any]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def distribution(cluster: LocalCluster) -> dict[str, Any]:
    """Pull by digest vs build without cache, on an execution node, of one runtime image."""
    registry = cluster.plan.registry_address
    dockerfile = f"FROM {app_image(cluster)}\n{SYNTHETIC_BUILD}".encode()
    node = execution_nodes(cluster)[0]
    tag = f"{registry}/erchub/bench-runtime:latest"
    with cluster.node_client(node) as engine:
        # the app image is there already (the node's worker runs it): the base of both
        def build() -> None:
            engine.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, nocache=True, rm=True)

        built = timed(build)
        engine.images.push(tag)
        digest = engine.images.get(tag).attrs["RepoDigests"][0]
        engine.images.remove(tag, force=True)
        pulled = timed(lambda: engine.images.pull(digest))
        engine.images.remove(digest, force=True)
    say(f"runtime on {node}: built in {built:.1f} s, pulled by digest in {pulled:.1f} s")
    return {
        "node": node,
        "build_s": round(built, 1),
        "pull_s": round(pulled, 1),
        "build_over_pull": round(built / pulled, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=8, help="jobs per batch (default: 8)")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="leave the cluster up")
    args = parser.parse_args()

    cluster = LocalCluster(name=CLUSTER_NAME)
    cluster.down()
    try:
        cluster.up(progress=say)
        stack = cluster.deploy(progress=say)
        token = login_token(stack.hub_url)
        with tempfile.TemporaryDirectory(prefix="erchub-bench-cluster-") as scratch:
            figures = {
                "throughput": throughput(cluster, stack, token, Path(scratch), args.jobs),
                "image_distribution": distribution(cluster),
                # last: it kills a node (and starts it again)
                "node_loss": recovery(cluster, stack, token, Path(scratch)),
            }
    finally:
        if not args.keep:
            cluster.down()
        cluster.close()
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
