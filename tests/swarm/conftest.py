"""The swarm tier's cluster: one local test cluster (erchub.services.cluster) for the session,
brought up once and removed at the end, volumes included, whatever happened in between; erchub's
stack deployed on it once, a user's API token and its administrator's.

The modules that do harm to the cluster (kill nodes, restart services: FAULT_MODULES) run after
all the others, which see the cluster as deployed.

It needs what the docker tier needs (tests/conftest.py: an engine and the base image): without
them it skips saying what is missing, and fails instead in CI.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from erchub.services.cluster.local import ClusterStatus, LocalCluster
from tests.conftest import docker_problem, require_tier
from tests.swarm.stack_client import OPERATOR, login_token

#: apart from `make cluster`'s (erchub-swarm-test), so that both can run on one machine; another
#: name (ERCHUB_TEST_CLUSTER_NAME) lets two checkouts run the tier side by side
CLUSTER_NAME = os.environ.get("ERCHUB_TEST_CLUSTER_NAME", "erchub-swarm-test-tier")
#: the modules of this tier that do harm to the cluster, in the order they run, after the others
FAULT_MODULES = ("test_replicas.py", "test_faults.py", "test_stack_removal.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests of FAULT_MODULES last, in that order (a stable sort: the others keep theirs)."""
    here = Path(__file__).parent

    def rank(item: pytest.Item) -> int:
        path = item.path
        if path.parent == here and path.name in FAULT_MODULES:
            return 1 + FAULT_MODULES.index(path.name)
        return 0

    items.sort(key=rank)


def swarm_problem() -> str | None:
    """Why the swarm tier cannot run here, or None when it can."""
    problem = docker_problem()
    return f"{problem} (the swarm tier's nodes run on it)" if problem else None


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    """The session's cluster: a manager (app, data), another app node and two execution nodes,
    the base image in its registry."""
    require_tier("swarm", swarm_problem())
    cluster = LocalCluster(name=CLUSTER_NAME, admin_users=[OPERATOR])
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


@pytest.fixture(scope="session")
def stack(cluster: LocalCluster) -> ClusterStatus:
    """erchub's stack, deployed from scratch on the session's cluster (whose ``down`` removes
    it); its status then."""
    started = time.monotonic()
    status = cluster.deploy(progress=lambda line: print(f"\nswarm: {line}", end="", flush=True))
    print(f"\nswarm: stack deployed in {time.monotonic() - started:.1f} s")
    return status


@pytest.fixture(scope="session")
def token(stack: ClusterStatus) -> str:
    """An API token of the user alice, who logged in to the stack's hub."""
    return login_token(stack.hub_url)


@pytest.fixture(scope="session")
def operator_token(stack: ClusterStatus) -> str:
    """An API token of the user who administers the stack (LocalCluster.admin_users): it
    reads the erc service's metrics, as Prometheus would."""
    return login_token(stack.hub_url, OPERATOR)
