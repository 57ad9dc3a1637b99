"""The local test cluster's plan (erchub.services.cluster.plan): names, roles and labels, every
container's options, image reuse, and the status of nodes; no Docker engine needed."""

from __future__ import annotations

from typing import Any

import pytest

from erchub.services.cluster.plan import (
    CLUSTER_LABEL,
    ENGINE_PORT,
    LOOPBACK,
    PART_LABEL,
    REGISTRY_PORT,
    ROLES_LABEL,
    image_source_digest,
    node_spec,
    node_statuses,
    plan_cluster,
    registry_repository,
    registry_spec,
    roles_of,
    swarm_labels,
)


def test_a_default_cluster_is_one_manager_for_app_and_data_and_two_execution_nodes() -> None:
    plan = plan_cluster("erchub-swarm-test", 3)
    assert [(node.name, node.roles, node.manager) for node in plan.nodes] == [
        ("erchub-swarm-test-manager", ("app", "data"), True),
        ("erchub-swarm-test-execution-1", ("execution",), False),
        ("erchub-swarm-test-execution-2", ("execution",), False),
    ]
    assert plan.manager.name == "erchub-swarm-test-manager"
    assert plan.network == "erchub-swarm-test"
    assert plan.registry_address == "erchub-swarm-test-registry:5000"
    names = [plan.network, plan.registry, plan.registry_volume]
    names += [name for node in plan.nodes for name in (node.name, node.volume)]
    assert len(set(names)) == len(names), "one name, one object"
    assert all(name.startswith("erchub-swarm-test") for name in names)


@pytest.mark.parametrize(
    ("name", "nodes"),
    [("erchub-swarm-test", 1), ("", 3), ("Upper", 3), ("-dash", 3), ("a/b", 3), ("x" * 41, 3)],
)
def test_a_cluster_needs_a_usable_name_and_an_execution_node(name: str, nodes: int) -> None:
    with pytest.raises(ValueError):
        plan_cluster(name, nodes)


def test_roles_are_one_label_listing_them_and_one_label_each() -> None:
    assert swarm_labels(("app", "data")) == {
        "erchub.role": "app,data",
        "erchub.role.app": "true",
        "erchub.role.data": "true",
    }
    # the constraint node.labels.erchub.role == execution selects exactly the execution nodes
    assert swarm_labels(("execution",)) == {
        "erchub.role": "execution",
        "erchub.role.execution": "true",
    }
    assert roles_of(swarm_labels(("app", "data"))) == ("app", "data")
    assert roles_of({}) == ()


@pytest.mark.parametrize("roles", [("execution", "app"), ("session",), ()])
def test_an_execution_node_holds_no_other_role_and_roles_are_known(roles: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        swarm_labels(roles)


def test_every_engine_pulls_from_the_registry_and_only_the_manager_listens_on_tcp() -> None:
    plan = plan_cluster("c", 3)
    for node in plan.nodes:
        spec = node_spec(plan, node, "node-image")
        command = spec.command
        assert command[0] == "dockerd"
        assert "--storage-driver=overlay2" in command
        assert "--insecure-registry=c-registry:5000" in command
        assert "--host=unix:///var/run/docker.sock" in command
        # relative: inside the node container's cgroup, not beside this machine's containers
        assert "--cgroup-parent=docker" in command
        tcp = [flag for flag in command if flag.startswith("--host=tcp://")]
        assert tcp == ([f"--host=tcp://0.0.0.0:{ENGINE_PORT}"] if node.manager else [])
        assert ("--tls=false" in command) == node.manager


def test_only_the_manager_engine_is_published_and_only_on_loopback() -> None:
    plan = plan_cluster("c", 3)
    manager, *workers = (node_spec(plan, node, "node-image", 2400) for node in plan.nodes)
    assert manager.port_bindings() == {ENGINE_PORT: (LOOPBACK, 2400)}
    assert node_spec(plan, plan.manager, "node-image").port_bindings() == {
        ENGINE_PORT: (LOOPBACK, None)  # a port the engine picks
    }
    assert [worker.port_bindings() for worker in workers] == [{}, {}]
    registry = registry_spec(plan, "registry-image")
    assert registry.port_bindings() == {REGISTRY_PORT: (LOOPBACK, None)}
    assert registry.volumes == {"c-registry-data": "/var/lib/docker-registry"}
    assert registry.network == "c"


def test_a_node_container_has_what_a_nested_engine_needs_here() -> None:
    plan = plan_cluster("c", 2)
    spec = node_spec(plan, plan.nodes[1], "node-image")
    assert spec.name == spec.hostname == "c-execution-1"
    # not --privileged (this machine lacks CAP_SYS_RESOURCE): every other capability
    assert (spec.cap_add, spec.cap_drop) == (("ALL",), ("SYS_RESOURCE",))
    assert set(spec.security_opt) == {"seccomp=unconfined", "apparmor=unconfined"}
    assert spec.unconfined_system_paths
    assert spec.device_cgroup_rules == ("a *:* rwm",)
    assert spec.binds == {"/sys/fs/cgroup": "/sys/fs/cgroup"}
    assert spec.volumes == {"c-execution-1-engine": "/var/lib/docker"}
    assert spec.labels == {CLUSTER_LABEL: "c", PART_LABEL: "node", ROLES_LABEL: "execution"}


def test_an_image_is_reused_while_its_files_and_base_are_the_same() -> None:
    files = {"node.Dockerfile": b"FROM base\n", "registry.yml": b"version: 0.1\n"}
    digest = image_source_digest(files, "sha256:base")
    assert digest.startswith("sha256:")
    assert image_source_digest(dict(reversed(files.items())), "sha256:base") == digest
    assert (
        image_source_digest({**files, "registry.yml": b"version: 0.2\n"}, "sha256:base") != digest
    )
    assert image_source_digest(files, "sha256:other-base") != digest
    # a name is not content: moving bytes between files changes the digest
    moved = {"node.Dockerfile": b"FROM base\nversion: 0.1\n", "registry.yml": b""}
    assert image_source_digest(moved, "sha256:base") != digest


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("erchub/base:bookworm", ("erchub/base", "bookworm")),
        ("erchub/base", ("erchub/base", "latest")),
        ("probe:1", ("probe", "1")),
    ],
)
def test_an_image_keeps_its_repository_and_tag_in_the_registry(
    image: str, expected: tuple[str, str]
) -> None:
    assert registry_repository(image) == expected


def test_an_image_by_digest_cannot_be_pushed() -> None:
    with pytest.raises(ValueError):
        registry_repository("erchub/base@sha256:0123")


def swarm_node(hostname: str, state: str, role: str = "worker", **labels: str) -> dict[str, Any]:
    return {
        "Description": {"Hostname": hostname},
        "Spec": {"Role": role, "Availability": "active", "Labels": labels},
        "Status": {"State": state},
    }


def test_a_node_status_joins_its_container_and_what_the_swarm_says() -> None:
    containers = [
        ("c-execution-2", "exited", {ROLES_LABEL: "execution"}),
        ("c-execution-1", "running", {ROLES_LABEL: "execution"}),
        ("c-manager", "running", {ROLES_LABEL: "app,data"}),
    ]
    swarm = [
        swarm_node("c-manager", "ready", "manager", **swarm_labels(("app", "data"))),
        # a node that joined twice: its ready entry counts
        swarm_node("c-execution-1", "ready", **swarm_labels(("execution",))),
        swarm_node("c-execution-1", "down"),
        swarm_node("c-execution-2", "down"),
    ]
    statuses = node_statuses(containers, swarm)
    assert [(s.name, s.roles, s.engine, s.swarm_role, s.state, s.ready) for s in statuses] == [
        ("c-manager", ("app", "data"), "running", "manager", "ready", True),
        ("c-execution-1", ("execution",), "running", "worker", "ready", True),
        # unlabelled in the swarm: the container's label names its roles
        ("c-execution-2", ("execution",), "exited", "worker", "down", False),
    ]


def test_a_node_the_swarm_does_not_know_is_not_ready() -> None:
    [status] = node_statuses([("c-manager", "running", {ROLES_LABEL: "app,data"})], [])
    assert (status.roles, status.swarm_role, status.state, status.ready) == (
        ("app", "data"),
        "",
        "",
        False,
    )
