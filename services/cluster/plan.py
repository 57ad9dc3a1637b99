"""The local test cluster, planned: node names and roles, labels, and the options of every
container, as pure functions of the cluster's settings (:mod:`.local` carries them out).

A cluster named NAME is made of, on this machine's engine:

- the network NAME (a user-defined bridge: its containers find each other by name);
- the nodes, each a container running a Docker engine on a volume of its own: NAME-manager
  (the Swarm manager; roles ``app`` and ``data``), NAME-app-1, ... (Swarm workers; role ``app``:
  the hub has another app node to move to when its node is lost, and that node is not the
  swarm's one manager, whose loss is the swarm's) and NAME-execution-1, -2, ... (Swarm workers;
  role ``execution``);
- the registry NAME-registry, at ``NAME-registry:5000`` inside the network, on a volume;
- the shared directory, a directory of this machine bound into every node at the same path
  (:data:`SHARED_PATH`): it stands for the NFS share that erchub's services and workers keep
  compendia and jobs on.

Every container, volume and network carries the label ``org.erchub.cluster=NAME``, which is how
``down`` and ``status`` find them. Only these ports reach the host, all on 127.0.0.1: the
manager's engine API, the hub's port on every app node (the stack publishes the hub on the node
it runs on, which Swarm may change) and the registry (the host pushes there).

The erchub stack on the cluster (``config/swarm/stack.yml``, deployed as the stack NAME) is
planned here too: the variables ``docker stack deploy`` substitutes in the stack file, and its
secrets (:func:`stack_variables`, :func:`stack_secrets`), and what the swarm says of its
services (:func:`service_statuses`).

Roles are Swarm node labels. ``erchub.role`` lists a node's roles, comma-separated
(``app,data``); since a Swarm constraint can only test a label for equality, each role is also a
label of its own, ``erchub.role.<role>=true``, and services are placed by those
(``node.labels.erchub.role.data == true``). An execution node holds no other role: its
``erchub.role`` is ``execution``, so ``node.labels.erchub.role == execution`` selects exactly the
execution nodes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ROLES = ("app", "data", "execution")
#: the roles of the manager node, of the other app nodes, and of the execution nodes
MANAGER_ROLES = ("app", "data")
APP_ROLES = ("app",)
WORKER_ROLES = ("execution",)

#: Swarm node label: the node's roles, comma-separated; and its prefix for one label per role
ROLE_LABEL = "erchub.role"
#: labels of the Docker objects on this machine's engine: which cluster, which part of it, and
#: (nodes) their roles, so that status can name them when the swarm does not answer
CLUSTER_LABEL = "org.erchub.cluster"
PART_LABEL = "org.erchub.cluster.part"
ROLES_LABEL = "org.erchub.cluster.roles"
#: image label: the digest of the files (and the base image) an image was built from
SOURCE_LABEL = "org.erchub.cluster.source"

NODE, REGISTRY, NETWORK, APP, POSTGRES = "node", "registry", "network", "app", "postgres"
#: the images' build files, in config/swarm/: the Dockerfile first
IMAGE_FILES = {
    NODE: ("node.Dockerfile",),
    REGISTRY: ("registry.Dockerfile", "registry.yml"),
    APP: ("app.Dockerfile", "app-entrypoint.sh", "jupyterhub_config.py", "erchub_config.py"),
    POSTGRES: ("postgres.Dockerfile", "postgres-entrypoint.sh"),
}
#: the app image's files from elsewhere in the checkout: path there -> name in the build
#: context (configurable-http-proxy's npm lock, and the proxy's guard that JupyterHub runs)
APP_CHECKOUT_FILES = {
    "package.json": "package.json",
    "package-lock.json": "package-lock.json",
    "config/proxy/chp.mjs": "chp.mjs",
}
#: the folder of the build context that holds the erchub wheel the app image installs
APP_WHEEL_DIRECTORY = "wheel"
#: the build context's file of the requirements of erchub[hub] (from pyproject.toml): the app
#: image installs them in a layer of their own, so that a change of erchub's code, which makes
#: a new wheel, reinstalls erchub alone
APP_REQUIREMENTS = "requirements.txt"
#: the environment variables passed to the app image's build as build arguments (never as
#: ENV): how pip and npm reach their indexes. Docker passes HTTP(S)_PROXY and NO_PROXY itself.
APP_BUILD_VARIABLES = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_DEFAULT_TIMEOUT",
    "NPM_CONFIG_REGISTRY",
)
STACK_FILE = "stack.yml"

LOOPBACK = "127.0.0.1"
ENGINE_PORT = 2375
#: the hub's port: where the stack publishes it on its node, and what every app node's
#: container publishes on 127.0.0.1
HUB_PORT = 8000
SWARM_PORT = 2377
REGISTRY_PORT = 5000
#: a node's engine socket, which the host reaches through the node container
ENGINE_SOCKET = "unix:///var/run/docker.sock"
ENGINE_DATA = "/var/lib/docker"
REGISTRY_DATA = "/var/lib/docker-registry"
#: the node's directory of run-time state (pid files, sockets): /var/run links to it
RUN_DIRECTORY = "/run"
#: exec: Docker's tmpfs is noexec unless told, and the engine's runtime state lives there
RUN_OPTIONS = "rw,exec,nosuid,nodev,mode=755"
#: where every node, and every service of the stack, sees the shared directory
SHARED_PATH = "/srv/erchub-shared"
#: where the shared directory of the cluster NAME is on this machine: NAME-shared in it
SHARED_PARENT = "/var/tmp"

#: what a Docker engine inside a container needs on this machine kind: --privileged fails here
#: (the host lacks CAP_SYS_RESOURCE), so every other capability, no seccomp or AppArmor
#: profile, /proc/sys and friends writable (systempaths=unconfined: no masked or read-only
#: paths), every device, and the host's cgroup tree to make its containers' cgroups in
NESTED_ENGINE_CAP_ADD = ("ALL",)
NESTED_ENGINE_CAP_DROP = ("SYS_RESOURCE",)
NESTED_ENGINE_SECURITY_OPT = ("seccomp=unconfined", "apparmor=unconfined")
NESTED_ENGINE_DEVICE_RULES = ("a *:* rwm",)
CGROUP_TREE = "/sys/fs/cgroup"
NESTED_CGROUP_PARENT = "docker"

#: a cluster's name becomes a prefix of container, volume and network names, and a DNS name
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


@dataclass(frozen=True)
class ContainerSpec:
    """One container of the cluster on this machine's engine: what ``docker run`` is told."""

    name: str
    image: str
    command: tuple[str, ...]
    network: str
    labels: Mapping[str, str]
    #: named volume -> mount point
    volumes: Mapping[str, str]
    #: host paths -> mount point (read-write)
    binds: Mapping[str, str] = field(default_factory=dict)
    #: container port -> host port on 127.0.0.1 (0: one the engine picks)
    published: Mapping[int, int] = field(default_factory=dict)
    hostname: str = ""
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    device_cgroup_rules: tuple[str, ...] = ()
    #: no masked or read-only paths under /proc and /sys (the CLI's systempaths=unconfined)
    unconfined_system_paths: bool = False
    #: mount point -> options of an empty in-memory file system, made anew at each start
    tmpfs: Mapping[str, str] = field(default_factory=dict)

    def port_bindings(self) -> dict[int, tuple[str, int | None]]:
        """The published ports as the engine API binds them: on 127.0.0.1 only, never on
        every address (None: a port the engine picks)."""
        return {port: (LOOPBACK, host_port or None) for port, host_port in self.published.items()}


@dataclass(frozen=True)
class NodePlan:
    name: str
    roles: tuple[str, ...]
    manager: bool
    volume: str


@dataclass(frozen=True)
class ClusterPlan:
    name: str
    network: str
    registry: str
    registry_volume: str
    nodes: tuple[NodePlan, ...]
    #: this machine's directory that every node sees at SHARED_PATH
    shared_dir: str

    @property
    def registry_address(self) -> str:
        """The registry as the cluster's engines name it (host:port, the image prefix)."""
        return f"{self.registry}:{REGISTRY_PORT}"

    @property
    def manager(self) -> NodePlan:
        return next(node for node in self.nodes if node.manager)

    def labels(self, part: str) -> dict[str, str]:
        return {CLUSTER_LABEL: self.name, PART_LABEL: part}


def app_requirements(pyproject: Mapping[str, Any], extra: str = "hub") -> str:
    """The requirements of erchub with ``extra`` that a pyproject.toml (parsed) declares, one a
    line, in its order: a requirements.txt."""
    project = pyproject["project"]
    lines = [*project.get("dependencies", []), *project["optional-dependencies"][extra]]
    return "".join(f"{line}\n" for line in lines)


def check_name(name: str) -> str:
    """``name`` when it can name a cluster, else ValueError saying what it may be."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"cluster name {name!r}: 1 to 40 of a-z, 0-9 and '-', starting with a letter or digit"
        )
    return name


def plan_cluster(name: str, nodes: int, app_nodes: int = 1) -> ClusterPlan:
    """The cluster ``name`` of ``nodes`` nodes: one manager (app, data), ``app_nodes`` - 1 more
    app nodes, the others execution nodes, sharing SHARED_PARENT/NAME-shared (named by the
    cluster alone: ``down`` removes it). ValueError for a bad name, no app node, or no
    execution node left (nothing could execute)."""
    check_name(name)
    if app_nodes < 1 or nodes - app_nodes < 1:
        raise ValueError(
            f"a cluster of {nodes} nodes with {app_nodes} app nodes: it needs 1 app node at "
            "least (the manager) and 1 execution node"
        )
    manager = NodePlan(f"{name}-manager", MANAGER_ROLES, True, f"{name}-manager-engine")
    apps = tuple(
        NodePlan(f"{name}-app-{i}", APP_ROLES, False, f"{name}-app-{i}-engine")
        for i in range(1, app_nodes)
    )
    workers = tuple(
        NodePlan(f"{name}-execution-{i}", WORKER_ROLES, False, f"{name}-execution-{i}-engine")
        for i in range(1, nodes - app_nodes + 1)
    )
    return ClusterPlan(
        name=name,
        network=name,
        registry=f"{name}-registry",
        registry_volume=f"{name}-registry-data",
        nodes=(manager, *apps, *workers),
        shared_dir=f"{SHARED_PARENT}/{name}-shared",
    )


def swarm_labels(roles: Iterable[str]) -> dict[str, str]:
    """The Swarm node labels of a node with ``roles`` (see the module's docstring)."""
    roles = tuple(roles)
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        raise ValueError(f"roles must be some of {', '.join(ROLES)}: {', '.join(roles)}")
    if "execution" in roles and len(roles) > 1:
        raise ValueError("an execution node holds no other role")
    return {ROLE_LABEL: ",".join(roles), **{f"{ROLE_LABEL}.{role}": "true" for role in roles}}


def roles_of(labels: Mapping[str, str], key: str = ROLE_LABEL) -> tuple[str, ...]:
    """The roles that the label ``key`` of ``labels`` lists (none when it is missing)."""
    return tuple(role for role in labels.get(key, "").split(",") if role)


def engine_command(plan: ClusterPlan, node: NodePlan) -> tuple[str, ...]:
    """The node's ``dockerd`` command line. Every engine, the manager too, pulls from the
    registry over plain HTTP (else the manager cannot resolve an image's digest when a service
    is created); the manager alone also listens on TCP, which is published on 127.0.0.1.

    The node's containers get their cgroups inside the node container's (``docker``, relative:
    under the engine's own cgroup), not beside this machine's own containers: what they use
    counts as the node's, and this machine's engine removes them with the node container, also
    when the node's engine was killed and could not. (In a cgroup v2 tree mounted beside v1
    controllers, where the node container has no cgroup of its own, they land in ``docker``
    beside this machine's containers; a killed node's engine leaves empty ones there.)"""
    command = [
        "dockerd",
        "--storage-driver=overlay2",
        f"--cgroup-parent={NESTED_CGROUP_PARENT}",
        f"--insecure-registry={plan.registry_address}",
        f"--host={ENGINE_SOCKET}",
    ]
    if node.manager:
        # --tls=false says that plain TCP is meant: dockerd 20.10 waits 15 s otherwise, to warn
        command += [f"--host=tcp://0.0.0.0:{ENGINE_PORT}", "--tls=false"]
    return tuple(command)


def node_spec(
    plan: ClusterPlan, node: NodePlan, image: str, manager_port: int = 0, hub_port: int = 0
) -> ContainerSpec:
    """The container of ``node``; ``manager_port`` and ``hub_port`` are the ports on 127.0.0.1
    of the manager's engine and of the hub on the manager (0: one the engine picks); the other
    app nodes publish the hub's port on one the engine picks. It reaches the port that the
    stack publishes the hub on, in host mode, on the app node the hub runs on: the swarm's
    ingress would publish it on every address of every node container."""
    published: dict[int, int] = {}
    if node.manager:
        published = {ENGINE_PORT: manager_port, HUB_PORT: hub_port}
    elif "app" in node.roles:
        published = {HUB_PORT: 0}
    return ContainerSpec(
        name=node.name,
        hostname=node.name,  # the node's hostname in the swarm
        image=image,
        command=engine_command(plan, node),
        network=plan.network,
        labels={**plan.labels(NODE), ROLES_LABEL: ",".join(node.roles)},
        volumes={node.volume: ENGINE_DATA},
        binds={CGROUP_TREE: CGROUP_TREE, plan.shared_dir: SHARED_PATH},
        published=published,
        cap_add=NESTED_ENGINE_CAP_ADD,
        cap_drop=NESTED_ENGINE_CAP_DROP,
        security_opt=NESTED_ENGINE_SECURITY_OPT,
        device_cgroup_rules=NESTED_ENGINE_DEVICE_RULES,
        unconfined_system_paths=True,
        # as on a machine, /run starts empty: a node killed and started again (the fault tests)
        # finds no pid file or socket of its engine's previous life, which dockerd refuses
        tmpfs={RUN_DIRECTORY: RUN_OPTIONS},
    )


def registry_spec(plan: ClusterPlan, image: str, port: int = 0) -> ContainerSpec:
    """The registry's container; ``port`` is its port on 127.0.0.1 (0: one the engine picks)."""
    return ContainerSpec(
        name=plan.registry,
        image=image,
        command=(),  # the image's: docker-registry serve with the test config
        network=plan.network,
        labels=plan.labels(REGISTRY),
        volumes={plan.registry_volume: REGISTRY_DATA},
        published={REGISTRY_PORT: port},
    )


def image_source_digest(files: Mapping[str, bytes], base_image_id: str) -> str:
    """A digest of an image's build files and of the image it is built on: an image labelled
    with it is what a build would make now, and is reused."""
    digest = hashlib.sha256(base_image_id.encode())
    for name in sorted(files):
        content = files[name]
        digest.update(f"\0{name}\0{len(content)}\0".encode())
        digest.update(content)
    return f"sha256:{digest.hexdigest()}"


def registry_repository(image: str) -> tuple[str, str]:
    """Repository and tag that ``image`` (``name[:tag]``, no registry host) has in the registry."""
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:  # no tag, or the colon was a port's
        name, tag = image, "latest"
    if "@" in name or not name:
        raise ValueError(f"push a tagged image, not {image!r}")
    return name, tag


@dataclass(frozen=True)
class NodeStatus:
    """A node as this machine's engine and the swarm see it."""

    name: str
    roles: tuple[str, ...]
    #: the node container's state (running, exited, ...)
    engine: str
    #: manager or worker; "" when the swarm does not know the node
    swarm_role: str = ""
    #: ready, down, unknown, ... (the swarm's view); "" when the swarm does not know the node
    state: str = ""
    availability: str = ""

    @property
    def ready(self) -> bool:
        return self.engine == "running" and self.state == "ready"


def node_statuses(
    containers: Iterable[tuple[str, str, Mapping[str, str]]],
    swarm_nodes: Iterable[Mapping[str, Any]],
) -> list[NodeStatus]:
    """Each node container (name, state, labels) with what the swarm says of it (the engine
    API's node objects, matched by hostname; a node that joined twice counts by its ready
    entry): the manager (the node with the data role), the other app nodes, the execution
    nodes."""
    by_host: dict[str, Mapping[str, Any]] = {}
    for entry in swarm_nodes:
        host = entry.get("Description", {}).get("Hostname", "")
        known = by_host.get(host)
        if known is None or known.get("Status", {}).get("State") != "ready":
            by_host[host] = entry
    statuses = []
    for name, state, labels in containers:
        entry = by_host.get(name, {})
        spec = entry.get("Spec", {})
        roles = roles_of(spec.get("Labels") or {}) or roles_of(labels, ROLES_LABEL)
        statuses.append(
            NodeStatus(
                name=name,
                roles=roles,
                engine=state,
                swarm_role=spec.get("Role", ""),
                state=entry.get("Status", {}).get("State", ""),
                availability=spec.get("Availability", ""),
            )
        )
    return sorted(
        statuses, key=lambda node: ("execution" in node.roles, "data" not in node.roles, node.name)
    )


# -- the erchub stack --------------------------------------------------------------------------

#: the stack's PostgreSQL service, which the others reach by this name; its role of erchub,
#: which owns the databases of the erc service and of the hub
POSTGRES_SERVICE = "postgres"
POSTGRES_PORT = 5432
DATABASE_USER = "erchub"
ERC_DATABASE = "erchub"
HUB_DATABASE = "jupyterhub"
#: the stack's secrets, each a file of its name next to the stack file at deploy time
STACK_SECRETS = (
    "postgres_password",
    "erc_db_url",
    "hub_db_url",
    "erc_api_token",
    "hub_cookie_secret",
    "crypt_key",
)
#: Swarm's label of the services, networks and secrets of a stack: the stack's name
STACK_LABEL = "com.docker.stack.namespace"


def database_url(password: str, database: str) -> str:
    """The URL the stack's services open ``database`` of the stack's PostgreSQL with."""
    return (
        f"postgresql+psycopg://{DATABASE_USER}:{password}"
        f"@{POSTGRES_SERVICE}:{POSTGRES_PORT}/{database}"
    )


def stack_secrets(
    postgres_password: str, erc_api_token: str, hub_cookie_secret: str, crypt_key: str
) -> dict[str, str]:
    """The content of each of the stack's secrets (STACK_SECRETS), from the random values: the
    database URLs carry the password. Hex values only: none needs quoting anywhere."""
    for value in (postgres_password, erc_api_token, hub_cookie_secret, crypt_key):
        if not re.fullmatch(r"[0-9a-f]{32,}", value):
            raise ValueError("the stack's secrets are 32 hex digits or more")
    return {
        "postgres_password": postgres_password,
        "erc_db_url": database_url(postgres_password, ERC_DATABASE),
        "hub_db_url": database_url(postgres_password, HUB_DATABASE),
        "erc_api_token": erc_api_token,
        "hub_cookie_secret": hub_cookie_secret,
        "crypt_key": crypt_key,
    }


#: how a service's name leads to its tasks: its virtual IP, which the kernel's IPVS balances, or
#: DNS round robin over its tasks' addresses (kernels without IPVS: no virtual IP works there)
ENDPOINT_MODES = ("vip", "dnsrr")


def stack_variables(
    plan: ClusterPlan,
    app_image: str,
    postgres_image: str,
    endpoint_mode: str,
    manager_address: str,
    *,
    admin_users: Sequence[str] = (),
) -> dict[str, str]:
    """What ``docker stack deploy`` substitutes in config/swarm/stack.yml on this cluster: the
    images by the digests the registry named, the registry, the shared directory's path on the
    nodes, the services' endpoint mode (one of ENDPOINT_MODES), the manager's engine API at
    its address in the cluster's network (``manager_address``: the nodes' containers do not
    resolve the names of this machine's network), where the hub starts sessions, and the users
    who administer the hub and the erc service."""
    if endpoint_mode not in ENDPOINT_MODES:
        raise ValueError(f"endpoint mode {endpoint_mode!r}: one of {', '.join(ENDPOINT_MODES)}")
    return {
        "ERCHUB_DOCKER_HOST": f"tcp://{manager_address}:{ENGINE_PORT}",
        "ERCHUB_APP_IMAGE": app_image,
        "ERCHUB_POSTGRES_IMAGE": postgres_image,
        "ERCHUB_REGISTRY": plan.registry_address,
        "ERCHUB_SHARED_PATH": SHARED_PATH,
        "ERCHUB_HUB_PORT": str(HUB_PORT),
        "ERCHUB_ENDPOINT_MODE": endpoint_mode,
        "ERCHUB_ADMIN_USERS": ",".join(admin_users),
    }


@dataclass(frozen=True)
class ServiceStatus:
    """A service of the stack as the swarm sees it."""

    #: its name in the stack file (hub, erc, worker, postgres)
    name: str
    #: replicated or global
    mode: str
    #: the tasks it should run (replicas; for a global service, one per node it fits)
    desired: int
    running: int
    #: the nodes (hostnames) of its running tasks, sorted
    nodes: tuple[str, ...]
    #: tasks told to stop (scaled away, their node drained) whose containers still run
    stopping: int = 0

    @property
    def ready(self) -> bool:
        return self.desired > 0 and self.running == self.desired


def service_statuses(
    stack: str,
    services: Iterable[Mapping[str, Any]],
    tasks: Iterable[Mapping[str, Any]],
    swarm_nodes: Iterable[Mapping[str, Any]],
) -> list[ServiceStatus]:
    """Each service of ``stack`` (the engine API's service objects) with its tasks that are to
    run, by name. A task counts as running when the swarm says it runs; a global service
    desires as many tasks as the swarm gave it; a task told to stop whose container the swarm
    still says runs counts as stopping."""
    hostnames = {
        node["ID"]: node.get("Description", {}).get("Hostname", "") for node in swarm_nodes
    }
    live: dict[str, list[Mapping[str, Any]]] = {}
    stopping: dict[str, int] = {}
    for task in tasks:
        service_id = task.get("ServiceID", "")
        if task.get("DesiredState") == "running":
            live.setdefault(service_id, []).append(task)
        elif task.get("Status", {}).get("State") == "running":
            stopping[service_id] = stopping.get(service_id, 0) + 1
    statuses = []
    for service in services:
        spec = service["Spec"]
        replicated = "Replicated" in spec.get("Mode", {})
        own = live.get(service["ID"], [])
        running = [task for task in own if task.get("Status", {}).get("State") == "running"]
        statuses.append(
            ServiceStatus(
                name=spec["Name"].removeprefix(f"{stack}_"),
                mode="replicated" if replicated else "global",
                desired=spec["Mode"]["Replicated"].get("Replicas", 1) if replicated else len(own),
                running=len(running),
                nodes=tuple(sorted(hostnames.get(task.get("NodeID", ""), "?") for task in running)),
                stopping=stopping.get(service["ID"], 0),
            )
        )
    return sorted(statuses, key=lambda status: status.name)


def service_node(services: Iterable[ServiceStatus], name: str) -> str | None:
    """The node (hostname) that the one running task of the service ``name`` runs on; None
    when it runs no task, or more than one (a replica starting while the old one stops)."""
    for service in services:
        if service.name == name and len(service.nodes) == 1:
            return service.nodes[0]
    return None
