"""The local test cluster on this machine's Docker engine: ``erchub cluster
up|deploy|status|down``.

:class:`LocalCluster` carries out :mod:`.plan`: it builds (or reuses) the node and registry
images from ``config/swarm/``, starts the registry and the nodes on a network of their own,
pushes the base image to the registry, makes the manager's engine a Swarm manager, joins the
other nodes' engines to it (through :mod:`.tunnel`: only the manager's engine is published) and
labels every node with its roles. ``deploy`` builds (or reuses) the app image (from a wheel of
the checkout) and the PostgreSQL image, pushes both to the registry and deploys
``config/swarm/stack.yml`` as the stack of the cluster's name, with fresh secrets, through the
manager's own Docker CLI; it waits until every service runs and the hub and the erc service
answer through the hub's port on 127.0.0.1. ``down`` removes the stack and all the rest,
volumes and the shared directory included; the images stay, for the next ``up``.

Every wait is bounded (``ready_timeout``, ``deploy_timeout``); a failed or interrupted ``up``
removes what it had started, a failed ``deploy`` the stack. Errors are :class:`ClusterError`,
one line each.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import sys
import tarfile
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import requests
from docker.models.containers import Container
from traitlets import Float, Int, List, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from erchub.errors import BuildError, ErchubError
from erchub.services.cluster.plan import (
    APP,
    APP_BUILD_VARIABLES,
    APP_CHECKOUT_FILES,
    APP_REQUIREMENTS,
    APP_WHEEL_DIRECTORY,
    CLUSTER_LABEL,
    ENGINE_PORT,
    HUB_PORT,
    IMAGE_FILES,
    LOOPBACK,
    NETWORK,
    NODE,
    PART_LABEL,
    POSTGRES,
    REGISTRY,
    REGISTRY_PORT,
    SOURCE_LABEL,
    STACK_FILE,
    STACK_LABEL,
    STACK_SECRETS,
    SWARM_PORT,
    WORKER_ROLES,
    ClusterPlan,
    ContainerSpec,
    NodeStatus,
    ServiceStatus,
    app_requirements,
    check_name,
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
from erchub.services.cluster.tunnel import EngineTunnel
from erchub.spawner.clients import docker_client
from erchub.spawner.wheel import build_erchub_wheel, erchub_source_tree

if sys.version_info >= (3, 11):
    import tomllib
else:  # repo2docker depends on tomli there
    import tomli as tomllib

Progress = Callable[[str], None]

#: seconds: a registry request or a status look at an engine; any other engine request; a node
#: engine's shutdown (it stops its own containers first, 10 s each at most, all at once)
REQUEST_TIMEOUT = 5
ENGINE_TIMEOUT = 60
STOP_TIMEOUT = 30
POLL_INTERVAL = 0.5
UP_STEPS = 6
DEPLOY_STEPS = 5
#: the services of config/swarm/stack.yml: a deploy is done when each of them runs
STACK_SERVICES = ("erc", "hub", "postgres", "worker")
#: the stack's erc service, and the label that names the service of a task's container
ERC_SERVICE = "erc"
SERVICE_NAME_LABEL = "com.docker.swarm.service.name"
#: the app image's entrypoint (config/swarm/app.Dockerfile): *_FILE secrets into variables
APP_ENTRYPOINT = "erchub-entrypoint"
#: where the manager's CLI reads the stack file and the secrets at deploy time (removed after)
DEPLOY_DIRECTORY = "/tmp"
#: where the manager keeps the stack's secrets (root only) for the next deploy of the stack,
#: which finds its PostgreSQL's volume, and the password in it, as the last deploy left them
KEPT_SECRETS_DIRECTORY = "/var/lib/erchub"
#: the stack's services that run one replica: the hub (its proxy's routes are its own) and
#: PostgreSQL (one server on its volume)
SINGLE_REPLICA_SERVICES = ("hub", "postgres")
#: the stack's global service, one task per active execution node: scaled by the nodes'
#: availability (a drained node runs none)
WORKER_SERVICE = "worker"
ENDPOINT_MODE_REASONS = {
    "vip": "each service's name is a virtual IP, balanced by the kernel's IPVS",
    "dnsrr": "the nodes' kernel has no IPVS: each service's name resolves to its tasks",
}


def quiet(line: str) -> None:
    """A progress callback that shows nothing."""


class ClusterError(ErchubError):
    """The local test cluster could not be started, reached or removed."""


@dataclass(frozen=True)
class RegistryStatus:
    #: the registry as the cluster's engines name it (NAME-registry:5000)
    address: str
    #: the registry from this machine (http://127.0.0.1:PORT), "" when it publishes no port
    url: str
    answers: bool
    repositories: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterStatus:
    name: str
    nodes: list[NodeStatus]
    #: the manager's engine from this machine (tcp://127.0.0.1:PORT, for DOCKER_HOST)
    manager_url: str
    registry: RegistryStatus | None
    #: the services of the stack, when it is deployed
    services: list[ServiceStatus] = field(default_factory=list)
    #: the hub from this machine (http://127.0.0.1:PORT, its node's port), "" when it runs on
    #: no node
    hub_url: str = ""
    #: the stack's jobs by status (queued, running, ...), as `erchub jobs` in an erc task
    #: counts them; empty when no erc task answers
    jobs: dict[str, int] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return bool(self.nodes) or self.registry is not None

    @property
    def ready(self) -> bool:
        """Every node's engine runs and is ready in the swarm, the registry answers, and every
        service of the stack (when deployed) runs all its tasks."""
        return (
            bool(self.nodes)
            and all(node.ready for node in self.nodes)
            and self.registry is not None
            and self.registry.answers
            and all(service.ready for service in self.services)
        )


@dataclass(frozen=True)
class PushedImage:
    registry: str
    repository: str
    tag: str
    digest: str

    @property
    def reference(self) -> str:
        """The image by digest, as the cluster's engines pull it."""
        return f"{self.registry}/{self.repository}@{self.digest}"


def describe(error: Exception) -> str:
    """One line saying what went wrong with a Docker call."""
    if isinstance(error, docker.errors.APIError) and error.explanation:
        text = str(error.explanation)
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


@contextlib.contextmanager
def cluster_errors(what: str) -> Iterator[None]:
    """Docker and connection errors inside the block as ClusterError: ``what: why``."""
    try:
        yield
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise ClusterError(f"{what}: {describe(exc)}") from None


def connect(url: str, timeout: int = ENGINE_TIMEOUT) -> docker.DockerClient | None:
    """A client of the engine at ``url``, None when it does not answer (the client asks the
    engine for its API version)."""
    try:
        return docker.DockerClient(base_url=url, version=None, timeout=timeout)
    except (docker.errors.DockerException, requests.RequestException):
        return None


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    """Call ``check`` until it is true; ClusterError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise ClusterError(f"{what}: not within {timeout:.0f} s")
        time.sleep(POLL_INTERVAL)


def build_context(files: dict[str, bytes]) -> io.BytesIO:
    """A tar of ``files`` (name -> content): the whole build context, nothing else."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
    buffer.seek(0)
    return buffer


def registry_get(url: str) -> Any:
    """The JSON answer of the registry API at ``url``; OSError or ValueError when none."""
    with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT) as answer:
        return json.loads(answer.read() or b"{}")


def answers(url: str) -> Callable[[], bool]:
    """A check (for :func:`wait_for`) whether a GET of ``url`` answers 200."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT) as answer:
                return int(answer.status) == 200
        except (OSError, ValueError):
            return False

    return check


def deploy_archive(directory: str, files: dict[str, bytes]) -> bytes:
    """A tar of ``files`` (relative name -> content) in ``directory``, readable by its owner
    only: the stack file and the secrets, as ``docker stack deploy`` reads them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folders = {directory} | {
            f"{directory}/{parent}"
            for name in files
            for parent in map(str, Path(name).parents)
            if parent != "."
        }
        for folder in sorted(folders):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o700
            tar.addfile(info)
        for name, content in files.items():
            info = tarfile.TarInfo(f"{directory}/{name}")
            info.size, info.mode = len(content), 0o600
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def registry_answers(url: str) -> bool:
    try:
        registry_get(f"{url}/v2/")
    except (OSError, ValueError):
        return False
    return True


class Steps:
    """Progress lines of ``up``: ``[n/N] what``, details indented under it."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress, self.total, self.number = progress, total, 0
        self.started = time.monotonic()

    def start(self, what: str) -> None:
        self.number += 1
        self.progress(f"[{self.number}/{self.total}] {what}")

    def detail(self, line: str) -> None:
        self.progress(f"      {line}")

    def seconds(self) -> float:
        return time.monotonic() - self.started


class LocalCluster(LoggingConfigurable):
    """A Docker Swarm of nested Docker engines on this machine, with a private registry."""

    name = Unicode(
        "erchub-swarm-test",
        help="The cluster's name: the prefix of its containers, volumes and network, and its "
        "label org.erchub.cluster (default: erchub-swarm-test).",
    ).tag(config=True)

    @validate("name")
    def _valid_name(self, proposal: Any) -> str:
        try:
            return check_name(proposal["value"])
        except ValueError as exc:
            raise TraitError(str(exc)) from None

    nodes = Int(
        4,
        min=2,
        help="Nodes: app_nodes app nodes (the manager, roles app and data, and app_nodes-1 "
        "with role app) and the rest execution nodes, one at least (default: 4).",
    ).tag(config=True)

    app_nodes = Int(
        2,
        min=1,
        help="App nodes (hub, erc service), the manager among them: with two or more, the hub "
        "moves to another when its node is lost, and at least one is not the swarm's manager "
        "(default: 2).",
    ).tag(config=True)

    admin_users = List(
        Unicode(),
        help="Users who administer the deployed hub and erc service (the hub's admin_users, "
        "with custom:erc:admin; $ERCHUB_ADMIN_USERS of the hub service) (default: none).",
    ).tag(config=True)

    @validate("nodes")
    def _execution_node_left(self, proposal: Any) -> int:
        nodes = int(proposal["value"])
        if nodes <= self.app_nodes:
            raise TraitError(
                f"{nodes} nodes leave no execution node beside the {self.app_nodes} app nodes "
                "(LocalCluster.app_nodes)"
            )
        return nodes

    base_image = Unicode(
        "erchub/base:bookworm",
        help="The local image the node and registry images are built on, and which up pushes "
        "to the registry (default: erchub/base:bookworm, config/provision/base-image.sh).",
    ).tag(config=True)

    node_image = Unicode(
        "erchub-swarm-test/node:bookworm",
        help="Tag of the node image (config/swarm/node.Dockerfile), built when missing or "
        "older than its files (default: erchub-swarm-test/node:bookworm).",
    ).tag(config=True)

    registry_image = Unicode(
        "erchub-swarm-test/registry:2.8",
        help="Tag of the registry image (config/swarm/registry.Dockerfile), built when "
        "missing or older than its files (default: erchub-swarm-test/registry:2.8).",
    ).tag(config=True)

    app_image = Unicode(
        "erchub-swarm-test/app:latest",
        help="Tag of the app image (config/swarm/app.Dockerfile: erchub[hub] from a wheel of "
        "the checkout, configurable-http-proxy), built by deploy when missing or older than its "
        "files, and pushed to the registry (default: erchub-swarm-test/app:latest).",
    ).tag(config=True)

    postgres_image = Unicode(
        "erchub-swarm-test/postgres:bookworm",
        help="Tag of the stack's PostgreSQL image (config/swarm/postgres.Dockerfile: Debian's "
        "postgresql), built by deploy when missing or older than its files, and pushed to the "
        "registry (default: erchub-swarm-test/postgres:bookworm).",
    ).tag(config=True)

    manager_port = Int(
        0,
        min=0,
        max=65535,
        help="Port on 127.0.0.1 of the manager's engine API; 0: one the engine picks (default: 0).",
    ).tag(config=True)

    registry_port = Int(
        0,
        min=0,
        max=65535,
        help="Port on 127.0.0.1 of the registry, where this machine pushes; 0: one the engine "
        "picks (default: 0).",
    ).tag(config=True)

    hub_port = Int(
        0,
        min=0,
        max=65535,
        help="Port on 127.0.0.1 of the hub when it runs on the manager: the manager's "
        "container publishes it (the stack publishes the hub on port 8000 of its node; the "
        "other app nodes' containers publish it on ports the engine picks); 0: one the engine "
        "picks (default: 0).",
    ).tag(config=True)

    ready_timeout = Float(
        120.0,
        min=1.0,
        help="Seconds that each wait of up may take: the registry answering, every node's "
        "engine answering, every node ready in the swarm (default: 120).",
    ).tag(config=True)

    deploy_timeout = Float(
        600.0,
        min=1.0,
        help="Seconds that deploy may wait for the stack: every service running (the nodes "
        "pull the images first), then the hub and the erc service answering (default: 600).",
    ).tag(config=True)

    config_dir = Unicode(
        help="The folder of the images' build files and of stack.yml (default: config/swarm "
        "of the erchub checkout this module is in)."
    ).tag(config=True)

    cache_dir = Unicode(
        help="Directory of the erchub wheels the app image is built from (default: "
        "$XDG_CACHE_HOME/erchub, else ~/.cache/erchub, as ImageBuilder.cache_dir)."
    ).tag(config=True)

    @default("cache_dir")
    def _default_cache_dir(self) -> str:
        cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        return os.path.join(cache_home, "erchub")

    @default("config_dir")
    def _default_config_dir(self) -> str:
        return str(Path(__file__).resolve().parents[2] / "config" / "swarm")

    _host: docker.DockerClient | None = None

    @property
    def plan(self) -> ClusterPlan:
        try:
            return plan_cluster(self.name, self.nodes, self.app_nodes)
        except ValueError as exc:  # app_nodes set after nodes, to as many
            raise ClusterError(str(exc)) from None

    @property
    def host(self) -> docker.DockerClient:
        """This machine's engine."""
        if self._host is None:
            try:
                self._host = docker_client()
                self._host.ping()
            except docker.errors.DockerException as exc:
                self._host = None
                raise ClusterError(
                    f"no Docker engine reachable ({type(exc).__name__}); "
                    "run config/provision/docker-engine.sh"
                ) from None
        return self._host

    def close(self) -> None:
        if self._host is not None:
            self._host.close()
            self._host = None

    # -- up ------------------------------------------------------------------------------

    def up(self, progress: Progress = quiet) -> ClusterStatus:
        """Start the cluster (ClusterError when it exists already); its status at the end."""
        plan = self.plan
        steps = Steps(progress, UP_STEPS)
        self._start("cluster up", lambda: self._up(plan, steps), progress)
        progress(f"cluster {plan.name} is up ({steps.seconds():.0f} s)")
        return self.status()

    def up_registry(self, progress: Progress = quiet) -> str:
        """Start the cluster's network and registry alone, no node (ClusterError when the
        cluster exists already): a registry of this machine's engine, which pushes to it and
        pulls from it at the address returned, 127.0.0.1:PORT (Docker takes loopback registries
        as insecure: no --insecure-registry needed). ``down`` removes it."""
        plan = self.plan
        steps = Steps(progress, 2)

        def start() -> None:
            steps.start("image")
            self._ensure_image(REGISTRY, self.registry_image, steps)
            self._start_registry(plan, steps)

        self._start("registry up", start, progress)
        return self.registry_url().removeprefix("http://")

    def _start(self, what: str, start: Callable[[], None], progress: Progress) -> None:
        """``start()`` the cluster or a part of it, from nothing: ClusterError ``what: why``
        when it fails, having removed what it had started."""
        if self._containers():
            raise ClusterError(
                f"cluster {self.name} exists already: see erchub cluster status; "
                "erchub cluster down removes it"
            )
        # volumes or a network that an interrupted down left would be in the way
        self.down()
        try:
            with cluster_errors(what):
                start()
        except BaseException as exc:
            reason = describe(exc) if isinstance(exc, Exception) else "interrupted"
            progress(f"up failed ({reason}): removing what it started")
            with contextlib.suppress(ClusterError):
                self.down()
            raise

    def _up(self, plan: ClusterPlan, steps: Steps) -> None:
        steps.start("images")
        self._ensure_image(NODE, self.node_image, steps)
        self._ensure_image(REGISTRY, self.registry_image, steps)
        self._start_registry(plan, steps)

        steps.start(f"{len(plan.nodes)} nodes")
        # the nodes' shared directory (see plan): it stands for an NFS share
        try:
            os.makedirs(plan.shared_dir, exist_ok=True)
        except OSError as exc:
            raise ClusterError(f"cannot make {plan.shared_dir}: {exc.strerror}") from None
        steps.detail(f"{plan.shared_dir}: shared by every node (stands for NFS)")
        containers = {}
        for node in plan.nodes:
            self.host.volumes.create(node.volume, labels=plan.labels(NODE))
            containers[node.name] = self._run(
                node_spec(plan, node, self.node_image, self.manager_port, self.hub_port)
            )
            steps.detail(f"{node.name}: started ({', '.join(node.roles)})")

        # while the engines start
        steps.start(f"push {self.base_image} to the registry")
        pushed = self.push(self.base_image, progress=steps.detail)
        steps.detail(f"{pushed.reference}")

        steps.start("swarm")
        self._form_swarm(plan, containers, steps)

        steps.start("node labels")
        roles = {node.name: node.roles for node in plan.nodes}
        with contextlib.closing(self.manager_client()) as manager:
            for swarm_node in manager.nodes.list():
                hostname = swarm_node.attrs["Description"]["Hostname"]
                labels = swarm_labels(roles[hostname])
                spec = swarm_node.attrs["Spec"]
                spec["Labels"] = {**spec.get("Labels", {}), **labels}
                swarm_node.update(spec)
                steps.detail(f"{hostname}: {labels}")

    def _start_registry(self, plan: ClusterPlan, steps: Steps) -> None:
        """The cluster's network, and its registry on it, once the registry answers."""
        steps.start(f"network {plan.network} and registry {plan.registry_address}")
        self.host.networks.create(plan.network, driver="bridge", labels=plan.labels(NETWORK))
        self.host.volumes.create(plan.registry_volume, labels=plan.labels(REGISTRY))
        registry = self._run(registry_spec(plan, self.registry_image, self.registry_port))
        registry_url = self._registry_url(registry)
        wait_for(
            f"the registry at {registry_url}",
            lambda: registry_answers(registry_url),
            self.ready_timeout,
        )
        steps.detail(f"answers at {registry_url} (from this machine)")

    def _config_files(self, kind: str) -> dict[str, bytes]:
        """The build files of the image ``kind`` in ``config_dir``: name -> content."""
        files = {}
        for name in IMAGE_FILES[kind]:
            path = Path(self.config_dir) / name
            try:
                files[name] = path.read_bytes()
            except OSError as exc:
                raise ClusterError(f"cannot read {path}: {exc.strerror}") from None
        return files

    def _ensure_image(
        self,
        kind: str,
        tag: str,
        steps: Steps,
        files: dict[str, bytes] | None = None,
        buildargs: dict[str, str] | None = None,
    ) -> None:
        """Build the image ``kind`` as ``tag`` from ``files`` (the build context; default: its
        files in ``config_dir``), unless an image of the same files is there."""
        if files is None:
            files = self._config_files(kind)
        try:
            base_id = self.host.images.get(self.base_image).id
        except docker.errors.ImageNotFound:
            raise ClusterError(
                f"base image {self.base_image} missing; run config/provision/base-image.sh"
            ) from None
        source = image_source_digest(files, base_id)
        replaced = None
        with contextlib.suppress(docker.errors.ImageNotFound):
            existing = self.host.images.get(tag)
            if existing.labels.get(SOURCE_LABEL) == source:
                steps.detail(f"{tag}: reused")
                return
            replaced = existing.id
        steps.detail(f"{tag}: building from {IMAGE_FILES[kind][0]}")
        started = time.monotonic()
        output = self.host.api.build(
            fileobj=build_context(files),
            custom_context=True,
            dockerfile=IMAGE_FILES[kind][0],
            tag=tag,
            buildargs={**(buildargs or {}), "BASE_IMAGE": self.base_image},
            labels={SOURCE_LABEL: source},
            rm=True,
            forcerm=True,
            decode=True,
            # a step may print nothing for a while (npm ci, pip resolving): the build's bound
            timeout=int(self.deploy_timeout),
        )
        last_lines: deque[str] = deque(maxlen=1)
        for chunk in output:
            if "error" in chunk:
                before = f" (after: {last_lines[0]})" if last_lines else ""
                raise ClusterError(f"building {tag}: {' '.join(chunk['error'].split())}{before}")
            line = chunk.get("stream", "").strip()
            if line:
                last_lines.append(line)
                if line.startswith("Step "):
                    steps.detail(line[:100])
        steps.detail(f"{tag}: built in {time.monotonic() - started:.0f} s")
        if replaced is not None:
            # the image this build replaced, untagged now: each change of the checkout would
            # leave one behind (an app image is some 800 MB); kept while a container or
            # another tag uses it
            with contextlib.suppress(docker.errors.APIError):
                self.host.images.remove(replaced)
                steps.detail(f"{replaced[:19]}: the image it replaced, removed")

    def _run(self, spec: ContainerSpec) -> Container:
        """Create and start the container ``spec`` describes."""
        api = self.host.api
        binds = {
            **{volume: {"bind": target, "mode": "rw"} for volume, target in spec.volumes.items()},
            **{path: {"bind": target, "mode": "rw"} for path, target in spec.binds.items()},
        }
        host_config = api.create_host_config(
            binds=binds,
            port_bindings=spec.port_bindings(),
            network_mode=spec.network,
            cap_add=list(spec.cap_add) or None,
            cap_drop=list(spec.cap_drop) or None,
            security_opt=list(spec.security_opt) or None,
            device_cgroup_rules=list(spec.device_cgroup_rules) or None,
            tmpfs=dict(spec.tmpfs) or None,
        )
        if spec.unconfined_system_paths:
            # what the CLI makes of --security-opt systempaths=unconfined (the API has no such
            # option): an empty list, unlike a missing one, masks nothing
            host_config["MaskedPaths"] = []
            host_config["ReadonlyPaths"] = []
        created = api.create_container(
            image=spec.image,
            command=list(spec.command) or None,
            name=spec.name,
            hostname=spec.hostname or None,
            labels=dict(spec.labels),
            ports=list(spec.published) or None,
            host_config=host_config,
            detach=True,
        )
        api.start(created["Id"])
        return self.host.containers.get(created["Id"])

    def _form_swarm(
        self, plan: ClusterPlan, containers: dict[str, Container], steps: Steps
    ) -> None:
        """Wait for every node's engine; init the swarm on the manager, join the others."""
        manager_container = containers[plan.manager.name]
        manager_url = self._manager_url(manager_container)
        workers = [node for node in plan.nodes if not node.manager]
        with contextlib.ExitStack() as stack:
            clients = {plan.manager.name: self._wait_engine(manager_container, manager_url)}
            stack.callback(clients[plan.manager.name].close)
            for node in workers:
                clients[node.name] = stack.enter_context(self._node_engine(containers[node.name]))
            steps.detail(f"every engine answers ({steps.seconds():.0f} s since up began)")
            manager = clients[plan.manager.name]
            manager_ip = self._address(manager_container, plan.network)
            manager.swarm.init(advertise_addr=manager_ip, listen_addr=f"0.0.0.0:{SWARM_PORT}")
            manager.swarm.reload()
            token = manager.swarm.attrs["JoinTokens"]["Worker"]
            steps.detail(f"{plan.manager.name}: manager at {manager_ip}:{SWARM_PORT}")
            for node in workers:
                clients[node.name].swarm.join(
                    remote_addrs=[f"{manager_ip}:{SWARM_PORT}"],
                    join_token=token,
                    listen_addr=f"0.0.0.0:{SWARM_PORT}",
                    advertise_addr=self._address(containers[node.name], plan.network),
                )
                steps.detail(f"{node.name}: joined")

            def all_ready() -> bool:
                states = [n.attrs["Status"]["State"] for n in manager.nodes.list()]
                return len(states) == len(plan.nodes) and set(states) == {"ready"}

            wait_for("every node ready in the swarm", all_ready, self.ready_timeout)
            steps.detail(f"{len(plan.nodes)} nodes ready")

    def _wait_engine(self, container: Container, url: str) -> docker.DockerClient:
        """A client of the engine of ``container`` at ``url``, once the engine answers;
        ClusterError when the container stops or ``ready_timeout`` passes first."""
        client: docker.DockerClient | None = None

        def answers() -> bool:
            nonlocal client
            self._check_running(container)
            client = connect(url)
            return client is not None

        wait_for(f"the engine of {container.name}", answers, self.ready_timeout)
        assert client is not None
        return client

    @contextlib.contextmanager
    def _node_engine(self, container: Container) -> Iterator[docker.DockerClient]:
        """A client of the engine of the node ``container``, through the container (no port),
        once the engine answers, for the length of the ``with`` block."""
        with EngineTunnel(self.host, container.name) as tunnel:
            client = self._wait_engine(container, tunnel.url)
            try:
                yield client
            finally:
                client.close()

    def _check_running(self, container: Container) -> None:
        """ClusterError with the last line of its log when ``container`` stopped."""
        container.reload()
        if container.status in ("exited", "dead"):
            log = container.logs(tail=1).decode(errors="replace").strip()
            raise ClusterError(f"{container.name} exited ({container.status}): {log}")

    # -- the stack -----------------------------------------------------------------------

    def deploy(self, progress: Progress = quiet) -> ClusterStatus:
        """Deploy erchub's stack (config/swarm/stack.yml) on the cluster, which must be up and
        not have it yet; its status once the hub and the erc service answer. A failed deploy
        removes the stack (ClusterError naming the services that did not start, and why)."""
        plan = self.plan
        status = self.status()
        if status.services:
            # a deployed stack's secrets cannot change in place
            raise ClusterError(
                f"stack {self.name} is deployed already; erchub cluster down removes it with "
                "the cluster"
            )
        if not status.ready:
            raise ClusterError(
                f"cluster {self.name} is not up and ready (erchub cluster status); "
                "erchub cluster up starts it"
            )
        steps = Steps(progress, DEPLOY_STEPS)
        try:
            with cluster_errors("cluster deploy"):
                self._deploy(plan, steps)
        except BaseException as exc:
            reason = describe(exc) if isinstance(exc, Exception) else "interrupted"
            progress(f"deploy failed ({reason}): removing the stack")
            with contextlib.suppress(ClusterError):
                self.remove_stack()
            raise
        progress(f"stack {plan.name} deployed ({steps.seconds():.0f} s): hub at {self.hub_url()}")
        return self.status()

    def _deploy(self, plan: ClusterPlan, steps: Steps) -> None:
        steps.start("images")
        self._ensure_image(APP, self.app_image, steps, self._app_files(steps), self._app_args())
        self._ensure_image(POSTGRES, self.postgres_image, steps)

        steps.start("push the images to the registry")
        app = self.push(self.app_image)
        steps.detail(app.reference)
        postgres = self.push(self.postgres_image)
        steps.detail(postgres.reference)

        steps.start(f"docker stack deploy {plan.name}")
        mode = self._endpoint_mode(plan)
        steps.detail(f"endpoint mode {mode}: {ENDPOINT_MODE_REASONS[mode]}")
        manager_address = self._address(self._node_container(plan.manager.name), plan.network)
        variables = stack_variables(
            plan,
            app.reference,
            postgres.reference,
            mode,
            manager_address,
            admin_users=self.admin_users,
        )
        self._stack_deploy(plan, variables, steps)

        steps.start(f"services {', '.join(STACK_SERVICES)}")
        self._wait_services(plan, steps)

        steps.start("the hub and the erc service answer")
        hub = self.hub_url()
        for url in (f"{hub}/hub/api", f"{hub}/services/erc/api/v1/openapi.json"):
            wait_for(url, answers(url), self.deploy_timeout)
            steps.detail(f"{url}: 200")

    def _app_files(self, steps: Steps) -> dict[str, bytes]:
        """The app image's build context: its files in ``config_dir``, the checkout's npm lock
        and proxy guard, the requirements of erchub[hub] from its pyproject.toml, and a wheel of
        the checkout (built, or reused from ``cache_dir``)."""
        files = self._config_files(APP)
        root = erchub_source_tree()
        if root is None:
            raise ClusterError(
                "the app image is built from a checkout of erchub, and erchub is not installed "
                "from one (pip install -e)"
            )
        for source, name in APP_CHECKOUT_FILES.items():
            try:
                files[name] = (root / source).read_bytes()
            except OSError as exc:
                raise ClusterError(f"cannot read {root / source}: {exc.strerror}") from None
        try:
            pyproject = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ClusterError(f"cannot read {root / 'pyproject.toml'}: {exc}") from None
        files[APP_REQUIREMENTS] = app_requirements(pyproject).encode()
        started = time.monotonic()
        try:
            wheel = build_erchub_wheel(root, Path(self.cache_dir))
        except BuildError as exc:
            raise ClusterError(str(exc)) from None
        files[f"{APP_WHEEL_DIRECTORY}/{wheel.name}"] = wheel.read_bytes()
        steps.detail(f"{wheel.name} ({time.monotonic() - started:.0f} s)")
        return files

    def _endpoint_mode(self, plan: ClusterPlan) -> str:
        """vip when the nodes' kernel has IPVS (the manager's network namespace shows
        /proc/net/ip_vs), else dnsrr: a virtual IP would lead nowhere."""
        manager = self._node_container(plan.manager.name)
        return (
            "vip" if manager.exec_run(["test", "-e", "/proc/net/ip_vs"]).exit_code == 0 else "dnsrr"
        )

    @staticmethod
    def _app_args() -> dict[str, str]:
        """The app image's build arguments: how pip and npm reach their indexes here."""
        return {name: os.environ[name] for name in APP_BUILD_VARIABLES if os.environ.get(name)}

    def _stack_deploy(self, plan: ClusterPlan, variables: dict[str, str], steps: Steps) -> None:
        """``docker stack deploy`` of the stack file by the manager's own CLI, with ``variables``
        in its environment and the secrets (:meth:`_kept_secrets`) as files beside the stack
        file, which are removed afterwards (the swarm keeps the secrets, encrypted in its
        store, until the stack is removed)."""
        try:
            stack = (Path(self.config_dir) / STACK_FILE).read_bytes()
        except OSError as exc:
            raise ClusterError(f"cannot read {STACK_FILE}: {exc.strerror}") from None
        manager = self._node_container(plan.manager.name)
        values = self._kept_secrets(plan, manager, steps)
        directory = f"{plan.name}-stack"
        archive = deploy_archive(
            directory,
            {STACK_FILE: stack, **{f"secrets/{k}": v.encode() for k, v in values.items()}},
        )
        manager.put_archive(DEPLOY_DIRECTORY, archive)
        where = f"{DEPLOY_DIRECTORY}/{directory}"
        try:
            result = manager.exec_run(
                ["docker", "stack", "deploy", "--compose-file", f"{where}/{STACK_FILE}", plan.name],
                environment=variables,
                workdir=where,
            )
        finally:
            manager.exec_run(["rm", "-rf", where])
        output = result.output.decode(errors="replace").strip()
        if result.exit_code != 0:
            last = output.splitlines()[-1] if output else f"exit code {result.exit_code}"
            raise ClusterError(f"docker stack deploy {plan.name}: {last}")
        for line in output.splitlines():
            steps.detail(line)

    def _kept_secrets(self, plan: ClusterPlan, manager: Container, steps: Steps) -> dict[str, str]:
        """The stack's secrets: those the manager kept from an earlier deploy of the stack
        (after ``docker stack rm``, whose PostgreSQL volume holds their password), else new
        ones, which the manager keeps (KEPT_SECRETS_DIRECTORY, root only) until ``down``."""
        directory = f"{plan.name}-secrets"
        try:
            stream, _ = manager.get_archive(f"{KEPT_SECRETS_DIRECTORY}/{directory}")
        except docker.errors.NotFound:
            values = stack_secrets(*(secrets.token_hex(32) for _ in range(4)))
            manager.exec_run(["install", "-d", "-m", "0700", KEPT_SECRETS_DIRECTORY])
            manager.put_archive(
                KEPT_SECRETS_DIRECTORY,
                deploy_archive(directory, {k: v.encode() for k, v in values.items()}),
            )
            return values
        kept = {}
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            for member in tar.getmembers():
                content = tar.extractfile(member) if member.isfile() else None
                if content is not None:
                    kept[Path(member.name).name] = content.read().decode()
        if set(kept) != set(STACK_SECRETS):
            raise ClusterError(
                f"{manager.name}:{KEPT_SECRETS_DIRECTORY}/{directory} lacks some of the stack's "
                "secrets; erchub cluster down removes the cluster"
            )
        steps.detail(f"the secrets of the stack's earlier deploy (kept on {manager.name})")
        return kept

    def _wait_services(self, plan: ClusterPlan, steps: Steps) -> None:
        """Wait until every service of the stack runs all its tasks; a line whenever what runs
        changes. ClusterError after ``deploy_timeout`` naming what did not start and why."""
        shown = ""
        with contextlib.closing(self.manager_client()) as manager:

            def running() -> bool:
                nonlocal shown
                statuses = self._services(manager)
                line = ", ".join(f"{s.name} {s.running}/{s.desired}" for s in statuses)
                if line != shown:
                    steps.detail(f"{line} ({steps.seconds():.0f} s)")
                    shown = line
                ready = {status.name for status in statuses if status.ready}
                return ready >= set(STACK_SERVICES)

            try:
                wait_for("the stack's services", running, self.deploy_timeout)
            except ClusterError as exc:
                raise ClusterError(f"{exc}: {self._task_errors(manager)}") from None

    def _services(self, manager: docker.DockerClient) -> list[ServiceStatus]:
        """The stack's services, as the manager ``manager`` sees them."""
        label = {"label": f"{STACK_LABEL}={self.name}"}
        services = [service.attrs for service in manager.services.list(filters=label)]
        if not services:
            return []
        return service_statuses(
            self.name,
            services,
            manager.api.tasks(filters=label),
            [node.attrs for node in manager.nodes.list()],
        )

    def _task_errors(self, manager: docker.DockerClient) -> str:
        """What the stack's tasks that do not run say of themselves (the newest of each
        service), in one line."""
        newest: dict[str, dict[str, Any]] = {}
        for task in manager.api.tasks(filters={"label": f"{STACK_LABEL}={self.name}"}):
            service = task.get("ServiceID", "")
            if task.get("CreatedAt", "") >= newest.get(service, {}).get("CreatedAt", ""):
                newest[service] = task
        names = {s.id: s.name for s in manager.services.list()}
        said = []
        for service, task in sorted(newest.items()):
            state = task.get("Status", {})
            if state.get("State") != "running":
                why = state.get("Err") or state.get("Message") or ""
                said.append(f"{names.get(service, service)} {state.get('State')}: {why}")
        return "; ".join(said) or "every task runs"

    def remove_stack(self, progress: Progress = quiet) -> bool:
        """``docker stack rm`` of the stack, by the manager's CLI; whether there was one. Waits
        (``ready_timeout``) until its services and networks are gone."""
        manager = self._node_container(self.plan.manager.name)
        with contextlib.closing(self.manager_client()) as client:
            label = {"label": f"{STACK_LABEL}={self.name}"}
            if not client.services.list(filters=label):
                return False
            result = manager.exec_run(["docker", "stack", "rm", self.name])
            if result.exit_code != 0:
                output = result.output.decode(errors="replace").strip()
                raise ClusterError(f"docker stack rm {self.name}: {output or result.exit_code}")
            wait_for(
                f"the removal of stack {self.name}",
                lambda: (
                    not client.services.list(filters=label)
                    and not client.networks.list(filters=label)
                ),
                self.ready_timeout,
            )
        progress(f"stack {self.name}: removed")
        return True

    def scale(self, service: str, replicas: int, progress: Progress = quiet) -> ServiceStatus:
        """Run ``replicas`` tasks of the stack's ``service`` (its name in the stack file) and
        wait (``deploy_timeout``) until as many run; its status then. The worker service runs
        one task per active execution node: scaling it drains the execution nodes past the
        first ``replicas`` (by name; their workers hand their jobs back) and makes the others
        active. ClusterError for a service the stack lacks, or more than one hub or
        PostgreSQL."""
        if replicas < 0:
            raise ClusterError(f"{service}: {replicas} replicas; 0 or more")
        if service in SINGLE_REPLICA_SERVICES and replicas > 1:
            raise ClusterError(f"{service} runs one replica at most")
        with (
            contextlib.closing(self.manager_client()) as manager,
            cluster_errors(f"scaling {service}"),
        ):
            services = {status.name: status for status in self._services(manager)}
            if service not in services:
                raise ClusterError(
                    f"stack {self.name} has no service {service} (services: "
                    f"{', '.join(services) or 'none, erchub cluster deploy'})"
                )
            if service == WORKER_SERVICE:
                self._activate_execution_nodes(manager, replicas, progress)
            else:
                manager.services.get(f"{self.name}_{service}").scale(replicas)
            progress(f"{service}: scaling to {replicas}")

            def scaled() -> bool:
                status = next(s for s in self._services(manager) if s.name == service)
                services[service] = status
                # and the tasks it no longer wants are gone: a replica scaled away still
                # answers what it began, a drained node's worker hands its job back
                return status.desired == status.running == replicas and not status.stopping

            wait_for(f"{service} scaled to {replicas}", scaled, self.deploy_timeout)
        progress(f"{service}: {replicas} running")
        return services[service]

    def _activate_execution_nodes(
        self, manager: docker.DockerClient, count: int, progress: Progress
    ) -> None:
        """Make the first ``count`` execution nodes (by hostname) active, drain the others."""
        execution = sorted(
            (
                node
                for node in manager.nodes.list()
                if roles_of(node.attrs["Spec"].get("Labels", {})) == WORKER_ROLES
            ),
            key=lambda node: node.attrs["Description"]["Hostname"],
        )
        if count > len(execution):
            raise ClusterError(
                f"{WORKER_SERVICE}: {count} replicas, one per execution node, and the cluster "
                f"has {len(execution)} (erchub cluster up --nodes)"
            )
        for index, node in enumerate(execution):
            availability = "active" if index < count else "drain"
            spec = node.attrs["Spec"]
            if spec.get("Availability") != availability:
                node.update({**spec, "Availability": availability})
                progress(f"{node.attrs['Description']['Hostname']}: {availability}")

    def hub_url(self) -> str:
        """The hub from this machine: http://127.0.0.1:PORT, the port that the container of
        the app node the hub runs on publishes. ClusterError when the hub runs on no node."""
        with contextlib.closing(self.manager_client()) as manager:
            return self._hub_url(self._services(manager))

    def _hub_url(self, services: list[ServiceStatus]) -> str:
        node = service_node(services, "hub")
        if node is None:
            raise ClusterError(
                f"stack {self.name}: the hub runs on no node (erchub cluster status)"
            )
        return f"http://{LOOPBACK}:{self._published(self._node_container(node), HUB_PORT)}"

    # -- the registry --------------------------------------------------------------------

    def push(self, image: str, progress: Progress = quiet) -> PushedImage:
        """Push ``image`` (a local tag, no registry host) to the registry; what the cluster's
        engines pull it by."""
        registry = self._registry_container()
        if registry is None:
            raise ClusterError(f"cluster {self.name} has no registry: erchub cluster up")
        try:
            repository, tag = registry_repository(image)
        except ValueError as exc:
            raise ClusterError(str(exc)) from None
        # this machine reaches the registry at 127.0.0.1, which Docker takes as insecure
        local = f"{self._registry_url(registry).removeprefix('http://')}/{repository}"
        with cluster_errors(f"pushing {image}"):
            try:
                self.host.images.get(image).tag(local, tag)
            except docker.errors.ImageNotFound:
                raise ClusterError(f"no image {image} to push") from None
            try:
                digest = self._push(local, tag, progress)
            finally:
                # the tag named a port of this cluster only: untag, the image stays
                self.host.api.remove_image(f"{local}:{tag}", noprune=True)
        return PushedImage(self.plan.registry_address, repository, tag, digest)

    def _push(self, repository: str, tag: str, progress: Progress) -> str:
        """Push ``repository:tag`` of this machine's engine; the digest the registry names."""
        digest = ""
        for chunk in self.host.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise ClusterError(f"pushing {repository}: {' '.join(chunk['error'].split())}")
            digest = chunk.get("aux", {}).get("Digest", digest)
            if chunk.get("status") in ("Pushed", "Layer already exists"):
                progress(f"{chunk.get('id', '')}: {chunk['status']}")
        if not digest:
            raise ClusterError(f"pushing {repository}: the registry named no digest")
        return digest

    def registry_url(self) -> str:
        """The registry from this machine: http://127.0.0.1:PORT."""
        registry = self._registry_container()
        if registry is None:
            raise ClusterError(f"cluster {self.name} has no registry: erchub cluster up")
        return self._registry_url(registry)

    # -- engines -------------------------------------------------------------------------

    def manager_client(self) -> docker.DockerClient:
        """A client of the manager's engine (through its port on 127.0.0.1)."""
        url = self._manager_url(self._node_container(self.plan.manager.name))
        client = connect(url)
        if client is None:
            raise ClusterError(f"the manager's engine does not answer at {url}")
        return client

    def node_client(self, node: str) -> contextlib.AbstractContextManager[docker.DockerClient]:
        """A client of the engine of the node named ``node`` (any node: through its container,
        no port), for the length of the ``with`` block."""
        return self._node_engine(self._node_container(node))

    # -- status --------------------------------------------------------------------------

    def status(self) -> ClusterStatus:
        plan = self.plan
        containers = self._containers()
        nodes = [c for c in containers if c.labels.get(PART_LABEL) == NODE]
        registry = next((c for c in containers if c.labels.get(PART_LABEL) == REGISTRY), None)
        manager_url, hub_url, swarm_nodes, services = "", "", [], []
        jobs: dict[str, int] = {}
        manager = next((c for c in nodes if c.name == plan.manager.name), None)
        if manager is not None and manager.status == "running":
            manager_url = self._manager_url(manager)
            client = connect(manager_url, REQUEST_TIMEOUT)
            # a manager that is no swarm manager (yet) says so: its nodes are not in the swarm
            if client is not None:
                with contextlib.closing(client), contextlib.suppress(docker.errors.APIError):
                    swarm_nodes = [node.attrs for node in client.nodes.list()]
                    services = self._services(client)
            if services:
                with contextlib.suppress(ClusterError):  # no hub running, or no port for it
                    hub_url = self._hub_url(services)
                jobs = self._jobs(services)
        return ClusterStatus(
            name=plan.name,
            nodes=node_statuses(((c.name, c.status, c.labels) for c in nodes), swarm_nodes),
            manager_url=manager_url,
            registry=self._registry_status(plan, registry),
            services=services,
            hub_url=hub_url,
            jobs=jobs,
        )

    def _jobs(self, services: list[ServiceStatus]) -> dict[str, int]:
        """The stack's jobs by status, from `erchub jobs` in a running erc task (the store is
        the stack's PostgreSQL, which only the stack's networks reach); empty when no task
        answers."""
        erc_nodes = [node for s in services if s.name == ERC_SERVICE for node in s.nodes]
        task_label = f"{SERVICE_NAME_LABEL}={self.name}_{ERC_SERVICE}"
        for node in dict.fromkeys(erc_nodes):
            with (
                contextlib.suppress(ClusterError, docker.errors.DockerException, ValueError),
                self.node_client(node) as engine,
            ):
                for task in engine.containers.list(filters={"label": task_label}):
                    # through the image's entrypoint, which reads the secrets into variables
                    done = task.exec_run([APP_ENTRYPOINT, "erchub", "jobs", "--json"], stderr=False)
                    if done.exit_code == 0:
                        counts: dict[str, int] = json.loads(done.output)
                        return counts
        return {}

    def _registry_status(
        self, plan: ClusterPlan, registry: Container | None
    ) -> RegistryStatus | None:
        if registry is None:
            return None
        url = self._registry_url(registry) if registry.status == "running" else ""
        if not url:
            return RegistryStatus(plan.registry_address, "", answers=False)
        try:
            catalog = registry_get(f"{url}/v2/_catalog")
        except (OSError, ValueError):
            return RegistryStatus(plan.registry_address, url, answers=False)
        repositories = tuple(catalog.get("repositories") or ())
        return RegistryStatus(plan.registry_address, url, answers=True, repositories=repositories)

    # -- down ----------------------------------------------------------------------------

    def down(self, progress: Progress = quiet) -> list[str]:
        """Remove the cluster: its stack, containers, volumes, network and shared directory;
        the names removed."""
        containers = self._containers()
        nodes = [c for c in containers if c.labels.get(PART_LABEL) == NODE]
        # the stack first, while the swarm runs: its services end as on any removal (a worker
        # hands its job back); a manager that does not answer takes the stack with it
        with contextlib.suppress(ClusterError, docker.errors.DockerException):
            self.remove_stack(progress)
        # SIGTERM first: a node's engine then stops its own containers and removes their
        # cgroups from every tree; killed, it leaves some behind (see plan.engine_command)
        for container in nodes:
            with contextlib.suppress(docker.errors.DockerException):
                container.kill(signal="SIGTERM")
        for container in nodes:
            with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
                container.wait(timeout=STOP_TIMEOUT)
        removed = []
        with cluster_errors("cluster down"):
            for container in containers:
                container.remove(force=True, v=True)
                removed.append(container.name)
                progress(f"container {container.name}: removed")
            for volume in self.host.volumes.list(filters={"label": self._label_filter()}):
                volume.remove(force=True)
                removed.append(volume.name)
                progress(f"volume {volume.name}: removed")
            for network in self.host.networks.list(filters={"label": self._label_filter()}):
                network.remove()
                removed.append(network.name)
                progress(f"network {network.name}: removed")
        shared = self.plan.shared_dir
        if os.path.lexists(shared):
            try:
                shutil.rmtree(shared)
            except OSError as exc:
                raise ClusterError(f"cannot remove {shared}: {exc.strerror}") from None
            removed.append(shared)
            progress(f"directory {shared}: removed")
        return removed

    # -- what this machine's engine knows --------------------------------------------------

    def _label_filter(self) -> str:
        return f"{CLUSTER_LABEL}={self.name}"

    def _containers(self) -> list[Container]:
        try:
            found = self.host.containers.list(all=True, filters={"label": self._label_filter()})
        except docker.errors.DockerException as exc:
            raise ClusterError(f"cannot list the cluster's containers: {describe(exc)}") from None
        return list(found)

    def _node_container(self, name: str) -> Container:
        for container in self._containers():
            if container.name == name and container.labels.get(PART_LABEL) == NODE:
                return container
        raise ClusterError(f"cluster {self.name} has no node {name}: erchub cluster status")

    def _registry_container(self) -> Container | None:
        containers = self._containers()
        return next((c for c in containers if c.labels.get(PART_LABEL) == REGISTRY), None)

    def _published(self, container: Container, port: int) -> int:
        """The port on 127.0.0.1 that ``container``'s ``port`` is published on."""
        container.reload()
        for binding in container.ports.get(f"{port}/tcp") or ():
            if binding.get("HostIp") == LOOPBACK:
                return int(binding["HostPort"])
        raise ClusterError(f"{container.name} publishes no port {port} on {LOOPBACK}")

    def _manager_url(self, manager: Container) -> str:
        return f"tcp://{LOOPBACK}:{self._published(manager, ENGINE_PORT)}"

    def _registry_url(self, registry: Container) -> str:
        return f"http://{LOOPBACK}:{self._published(registry, REGISTRY_PORT)}"

    def _address(self, container: Container, network: str) -> str:
        container.reload()
        return str(container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"])
