"""The local test cluster's plan (erchub.services.cluster.plan): names, roles and labels, every
container's options, image reuse, the status of nodes, and erchub's stack on the cluster (the
stack file's services, networks, variables and secrets, and the status of its services); no
Docker engine needed."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from erchub.services.cluster.local import STACK_SERVICES, deploy_archive
from erchub.services.cluster.plan import (
    APP_CHECKOUT_FILES,
    CLUSTER_LABEL,
    DATABASE_USER,
    ENGINE_PORT,
    ERC_DATABASE,
    HUB_DATABASE,
    HUB_PORT,
    IMAGE_FILES,
    LOOPBACK,
    PART_LABEL,
    REGISTRY_PORT,
    ROLES_LABEL,
    SHARED_PATH,
    STACK_FILE,
    STACK_SECRETS,
    app_requirements,
    image_source_digest,
    node_spec,
    node_statuses,
    plan_cluster,
    registry_repository,
    registry_spec,
    roles_of,
    service_node,
    service_statuses,
    stack_secrets,
    stack_variables,
    swarm_labels,
)

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "swarm"


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


def test_more_app_nodes_are_swarm_workers_with_the_app_role_alone() -> None:
    plan = plan_cluster("c", 4, app_nodes=2)
    assert [(node.name, node.roles, node.manager, node.volume) for node in plan.nodes] == [
        ("c-manager", ("app", "data"), True, "c-manager-engine"),
        ("c-app-1", ("app",), False, "c-app-1-engine"),
        ("c-execution-1", ("execution",), False, "c-execution-1-engine"),
        ("c-execution-2", ("execution",), False, "c-execution-2-engine"),
    ]
    assert plan.manager.name == "c-manager"


@pytest.mark.parametrize(
    ("name", "nodes", "app_nodes"),
    [
        ("erchub-swarm-test", 1, 1),
        ("erchub-swarm-test", 2, 2),  # no execution node left
        ("erchub-swarm-test", 3, 0),  # no manager
        ("", 3, 1),
        ("Upper", 3, 1),
        ("-dash", 3, 1),
        ("a/b", 3, 1),
        ("x" * 41, 3, 1),
    ],
)
def test_a_cluster_needs_a_usable_name_an_app_node_and_an_execution_node(
    name: str, nodes: int, app_nodes: int
) -> None:
    with pytest.raises(ValueError):
        plan_cluster(name, nodes, app_nodes)


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


def test_only_the_manager_engine_and_hub_are_published_and_only_on_loopback() -> None:
    plan = plan_cluster("c", 3)
    manager, *workers = (node_spec(plan, node, "node-image", 2400, 2401) for node in plan.nodes)
    assert manager.port_bindings() == {
        ENGINE_PORT: (LOOPBACK, 2400),
        HUB_PORT: (LOOPBACK, 2401),
    }
    assert node_spec(plan, plan.manager, "node-image").port_bindings() == {
        ENGINE_PORT: (LOOPBACK, None),  # a port the engine picks
        HUB_PORT: (LOOPBACK, None),
    }
    assert [worker.port_bindings() for worker in workers] == [{}, {}]
    # another app node publishes the hub's port, on one the engine picks: the hub may move there
    plan = plan_cluster("c", 4, app_nodes=2)
    assert [node_spec(plan, node, "i", 2400, 2401).port_bindings() for node in plan.nodes] == [
        {ENGINE_PORT: (LOOPBACK, 2400), HUB_PORT: (LOOPBACK, 2401)},
        {HUB_PORT: (LOOPBACK, None)},
        {},
        {},
    ]
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
    # a node started again (after a kill) finds no pid file of its engine's previous life
    assert list(spec.tmpfs) == ["/run"]
    assert spec.device_cgroup_rules == ("a *:* rwm",)
    # the shared directory (NFS's stand-in) at the same path on every node
    assert spec.binds == {"/sys/fs/cgroup": "/sys/fs/cgroup", "/var/tmp/c-shared": SHARED_PATH}
    assert {node_spec(plan, node, "i").binds["/var/tmp/c-shared"] for node in plan.nodes} == {
        SHARED_PATH
    }
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
        ("c-app-1", "running", {ROLES_LABEL: "app"}),
        ("c-manager", "running", {ROLES_LABEL: "app,data"}),
    ]
    swarm = [
        swarm_node("c-manager", "ready", "manager", **swarm_labels(("app", "data"))),
        swarm_node("c-app-1", "ready", **swarm_labels(("app",))),
        # a node that joined twice: its ready entry counts
        swarm_node("c-execution-1", "ready", **swarm_labels(("execution",))),
        swarm_node("c-execution-1", "down"),
        swarm_node("c-execution-2", "down"),
    ]
    statuses = node_statuses(containers, swarm)
    assert [(s.name, s.roles, s.engine, s.swarm_role, s.state, s.ready) for s in statuses] == [
        ("c-manager", ("app", "data"), "running", "manager", "ready", True),
        ("c-app-1", ("app",), "running", "worker", "ready", True),
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


# -- the stack ---------------------------------------------------------------------------------


def stack_file() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CONFIG / STACK_FILE).read_text())
    return loaded


def test_every_build_file_of_the_images_is_there() -> None:
    for names in IMAGE_FILES.values():
        for name in names:
            assert (CONFIG / name).is_file(), name
    for source in APP_CHECKOUT_FILES:
        assert (REPO / source).is_file(), source


def test_the_stack_places_each_service_by_its_role() -> None:
    services = stack_file()["services"]
    assert sorted(services) == list(STACK_SERVICES)
    constraints = {name: s["deploy"]["placement"]["constraints"] for name, s in services.items()}
    assert constraints == {
        "hub": ["node.labels.erchub.role.app == true"],
        "erc": ["node.labels.erchub.role.app == true"],
        "postgres": ["node.labels.erchub.role.data == true"],
        # an execution node holds no other role: equality selects exactly them
        "worker": ["node.labels.erchub.role == execution"],
    }
    assert services["hub"]["deploy"]["replicas"] == 1
    assert services["erc"]["deploy"]["replicas"] == 2
    assert services["worker"]["deploy"]["mode"] == "global"
    # the hub on its node alone, not on every address of every node through the ingress mesh
    [port] = services["hub"]["ports"]
    assert (port["target"], port["mode"]) == (HUB_PORT, "host")
    assert not any("ports" in s for name, s in services.items() if name != "hub")


def test_workers_reach_the_store_and_the_service_only() -> None:
    stack = stack_file()
    assert stack["networks"]["workers"] == {"driver": "overlay", "internal": True}
    assert stack["networks"]["app"] == {"driver": "overlay"}
    # sessions: the hub's and the erc service's network with the sessions, and nothing else
    assert stack["networks"]["sessions"] == {"driver": "overlay", "internal": True}
    networks = {name: set(s["networks"]) for name, s in stack["services"].items()}
    assert networks == {
        "hub": {"app", "sessions"},
        "erc": {"app", "workers", "sessions"},
        "postgres": {"app", "workers"},
        "worker": {"workers"},
    }


def test_the_stack_reads_the_variables_and_secrets_the_deploy_gives() -> None:
    text = (CONFIG / STACK_FILE).read_text()
    # comments name the variables too: only the YAML's values count
    used = set(re.findall(r"\$\{([A-Z_]+)\}", yaml.safe_dump(yaml.safe_load(text))))
    plan = plan_cluster("c", 3)
    variables = stack_variables(
        plan, "r:5000/app@sha256:1", "r:5000/pg@sha256:2", "dnsrr", "10.1.2.3"
    )
    assert used == set(variables)
    assert variables["ERCHUB_ENDPOINT_MODE"] == "dnsrr"
    # no administrator unless the operator names some
    assert variables["ERCHUB_ADMIN_USERS"] == ""
    named = stack_variables(plan, "a", "p", "vip", "10.1.2.3", admin_users=["ops", "ada"])
    assert named["ERCHUB_ADMIN_USERS"] == "ops,ada"
    # the hub reaches the manager's engine by its address: nested engines' containers do not
    # resolve this machine's network's names
    assert variables["ERCHUB_DOCKER_HOST"] == "tcp://10.1.2.3:2375"
    with pytest.raises(ValueError):
        stack_variables(plan, "a", "p", "ingress", "10.1.2.3")
    # every service reaches the others the same way
    modes = {s["deploy"]["endpoint_mode"] for s in stack_file()["services"].values()}
    assert modes == {"${ERCHUB_ENDPOINT_MODE}"}
    assert variables["ERCHUB_REGISTRY"] == "c-registry:5000"
    assert variables["ERCHUB_SHARED_PATH"] == SHARED_PATH
    stack = stack_file()
    assert set(stack["secrets"]) == set(STACK_SECRETS)
    assert {s["file"] for s in stack["secrets"].values()} == {
        f"./secrets/{name}" for name in STACK_SECRETS
    }
    used_secrets = {name for s in stack["services"].values() for name in s.get("secrets", [])}
    assert used_secrets == set(STACK_SECRETS)
    # each secret a variable names (the app image's entrypoint reads it) is the service's
    for name, service in stack["services"].items():
        for variable, value in service.get("environment", {}).items():
            if str(value).startswith("/run/secrets/"):
                assert variable.endswith("_FILE"), (name, variable)
                assert value.removeprefix("/run/secrets/") in service["secrets"], (name, variable)
    postgres = stack["services"]["postgres"]["environment"]
    assert postgres["ERCHUB_DATABASE_USER"] == DATABASE_USER
    assert postgres["ERCHUB_DATABASES"].split() == [ERC_DATABASE, HUB_DATABASE]


def test_the_secrets_are_fresh_hex_and_the_database_urls_carry_the_password() -> None:
    password, token, cookie, key = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)
    values = stack_secrets(password, token, cookie, key)
    assert set(values) == set(STACK_SECRETS)
    assert values["erc_db_url"] == f"postgresql+psycopg://erchub:{password}@postgres:5432/erchub"
    assert values["hub_db_url"].endswith(f":{password}@postgres:5432/jupyterhub")
    assert (values["erc_api_token"], values["hub_cookie_secret"]) == (token, cookie)
    with pytest.raises(ValueError):
        stack_secrets("pass'word" + "a" * 32, token, cookie, key)
    with pytest.raises(ValueError):
        stack_secrets("a" * 16, token, cookie, key)


def test_the_deploy_archive_keeps_the_secrets_to_their_owner() -> None:
    archive = deploy_archive("s", {"stack.yml": b"version: '3.8'", "secrets/token": b"t"})
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {m.name: (m.isdir(), m.mode) for m in tar.getmembers()}
        token = tar.extractfile("s/secrets/token")
        assert token is not None and token.read() == b"t"
    assert members == {
        "s": (True, 0o700),
        "s/secrets": (True, 0o700),
        "s/stack.yml": (False, 0o600),
        "s/secrets/token": (False, 0o600),
    }


def task(service: str, node: str, state: str, desired: str = "running") -> dict[str, Any]:
    return {
        "ServiceID": service,
        "NodeID": node,
        "DesiredState": desired,
        "Status": {"State": state},
    }


def test_a_service_is_ready_when_all_its_tasks_run() -> None:
    services = [
        {"ID": "1", "Spec": {"Name": "s_erc", "Mode": {"Replicated": {"Replicas": 2}}}},
        {"ID": "2", "Spec": {"Name": "s_worker", "Mode": {"Global": {}}}},
        {"ID": "3", "Spec": {"Name": "s_hub", "Mode": {"Replicated": {"Replicas": 1}}}},
    ]
    tasks = [
        task("1", "m", "running"),
        task("1", "m", "preparing"),
        task("1", "m", "failed", desired="shutdown"),  # an ended one counts for nothing
        task("2", "e1", "running"),
        task("2", "e2", "running"),
        task("3", "m", "running"),
    ]
    nodes = [
        {"ID": "m", "Description": {"Hostname": "s-manager"}},
        {"ID": "e1", "Description": {"Hostname": "s-execution-1"}},
        {"ID": "e2", "Description": {"Hostname": "s-execution-2"}},
    ]
    statuses = service_statuses("s", services, tasks, nodes)
    assert [(s.name, s.mode, s.running, s.desired, s.nodes, s.ready) for s in statuses] == [
        ("erc", "replicated", 1, 2, ("s-manager",), False),
        ("hub", "replicated", 1, 1, ("s-manager",), True),
        ("worker", "global", 2, 2, ("s-execution-1", "s-execution-2"), True),
    ]
    # a global service that the swarm gave no task yet is not ready
    [worker] = service_statuses("s", services[1:2], [], nodes)
    assert (worker.desired, worker.ready) == (0, False)
    # the node of a service's one running task: the hub's, whose port reaches this machine
    assert service_node(statuses, "hub") == "s-manager"
    assert service_node(statuses, "worker") is None  # two tasks: no one node
    assert service_node(statuses, "postgres") is None


def test_a_task_told_to_stop_whose_container_runs_counts_as_stopping() -> None:
    """A replica scaled away, a drained node's worker: still running until they end, which a
    scale waits for (LocalCluster.scale)."""
    services = [{"ID": "1", "Spec": {"Name": "s_erc", "Mode": {"Replicated": {"Replicas": 1}}}}]
    nodes = [{"ID": "m", "Description": {"Hostname": "s-manager"}}]
    tasks = [
        task("1", "m", "running"),
        task("1", "m", "running", desired="shutdown"),  # told to stop, still running
        task("1", "m", "shutdown", desired="shutdown"),  # ended
    ]
    [erc] = service_statuses("s", services, tasks, nodes)
    assert (erc.desired, erc.running, erc.stopping, erc.ready) == (1, 1, 1, True)
    [erc] = service_statuses("s", services, tasks[::2], nodes)
    assert erc.stopping == 0


def test_the_app_image_installs_the_requirements_of_erchub_with_its_hub_extra() -> None:
    pyproject = {
        "project": {
            "dependencies": ["nbformat>=5.9", "pyyaml>=6"],
            "optional-dependencies": {"hub": ["jupyterhub>=6,<7"], "test": ["pytest>=8"]},
        }
    }
    assert app_requirements(pyproject) == "nbformat>=5.9\npyyaml>=6\njupyterhub>=6,<7\n"
