"""The swarm tier's cluster: one local test cluster (erchub.services.cluster) for the session,
brought up once and removed at the end, volumes included, whatever happened in between.

It needs what the docker tier needs (tests/conftest.py: an engine and the base image): without
them it skips saying what is missing, and fails instead in CI.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from erchub.services.cluster.local import LocalCluster
from tests.conftest import docker_problem, require_tier

#: apart from `make cluster`'s (erchub-swarm-test), so that both can run on one machine; another
#: name (ERCHUB_TEST_CLUSTER_NAME) lets two checkouts run the tier side by side
CLUSTER_NAME = os.environ.get("ERCHUB_TEST_CLUSTER_NAME", "erchub-swarm-test-tier")


def swarm_problem() -> str | None:
    """Why the swarm tier cannot run here, or None when it can."""
    problem = docker_problem()
    return f"{problem} (the swarm tier's nodes run on it)" if problem else None


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    """The session's cluster: a manager (app, data) and two execution nodes, the base image in
    its registry."""
    require_tier("swarm", swarm_problem())
    cluster = LocalCluster(name=CLUSTER_NAME)
    # what a killed earlier session left would make up fail
    cluster.down()
    started = time.monotonic()
    try:
        cluster.up(progress=lambda line: print(f"\nswarm: {line}", end="", flush=True))
        print(f"\nswarm: cluster up in {time.monotonic() - started:.1f} s")
        yield cluster
    finally:
        stopping = time.monotonic()
        cluster.down()
        cluster.close()
        print(f"\nswarm: cluster down in {time.monotonic() - stopping:.1f} s")
