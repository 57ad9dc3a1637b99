"""The local test cluster on this machine's Docker engine: ``erchub cluster up|down|status``.

:class:`LocalCluster` carries out :mod:`.plan`: it builds (or reuses) the node and registry
images from ``config/swarm/``, starts the registry and the nodes on a network of their own,
pushes the base image to the registry, makes the manager's engine a Swarm manager, joins the
other nodes' engines to it (through :mod:`.tunnel`: only the manager's engine is published) and
labels every node with its roles. ``down`` removes all of it, volumes included; the images
stay, for the next ``up``.

Every wait is bounded (``ready_timeout``); a failed or interrupted ``up`` removes what it had
started. Errors are :class:`ClusterError`, one line each.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import requests
from docker.models.containers import Container
from traitlets import Float, Int, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from erchub.errors import ErchubError
from erchub.services.cluster.plan import (
    CLUSTER_LABEL,
    ENGINE_PORT,
    IMAGE_FILES,
    LOOPBACK,
    NETWORK,
    NODE,
    PART_LABEL,
    REGISTRY,
    REGISTRY_PORT,
    SOURCE_LABEL,
    SWARM_PORT,
    ClusterPlan,
    ContainerSpec,
    NodeStatus,
    check_name,
    image_source_digest,
    node_spec,
    node_statuses,
    plan_cluster,
    registry_repository,
    registry_spec,
    swarm_labels,
)
from erchub.services.cluster.tunnel import EngineTunnel
from erchub.spawner.clients import docker_client

Progress = Callable[[str], None]

#: seconds: a registry request or a status look at an engine; any other engine request; a node
#: engine's shutdown (it stops its own containers first, 10 s each at most, all at once)
REQUEST_TIMEOUT = 5
ENGINE_TIMEOUT = 60
STOP_TIMEOUT = 30
POLL_INTERVAL = 0.5
UP_STEPS = 6


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

    @property
    def exists(self) -> bool:
        return bool(self.nodes) or self.registry is not None

    @property
    def ready(self) -> bool:
        """Every node's engine runs and is ready in the swarm, and the registry answers."""
        return (
            bool(self.nodes)
            and all(node.ready for node in self.nodes)
            and self.registry is not None
            and self.registry.answers
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
        3,
        min=2,
        help="Nodes: a manager (roles app and data) and nodes-1 execution nodes (default: 3).",
    ).tag(config=True)

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

    ready_timeout = Float(
        120.0,
        min=1.0,
        help="Seconds that each wait of up may take: the registry answering, every node's "
        "engine answering, every node ready in the swarm (default: 120).",
    ).tag(config=True)

    config_dir = Unicode(
        help="The folder of node.Dockerfile, registry.Dockerfile and registry.yml (default: "
        "config/swarm of the erchub checkout this module is in)."
    ).tag(config=True)

    @default("config_dir")
    def _default_config_dir(self) -> str:
        return str(Path(__file__).resolve().parents[2] / "config" / "swarm")

    _host: docker.DockerClient | None = None

    @property
    def plan(self) -> ClusterPlan:
        return plan_cluster(self.name, self.nodes)

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
        containers = {}
        for node in plan.nodes:
            self.host.volumes.create(node.volume, labels=plan.labels(NODE))
            containers[node.name] = self._run(
                node_spec(plan, node, self.node_image, self.manager_port)
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

    def _ensure_image(self, kind: str, tag: str, steps: Steps) -> None:
        """Build the image ``kind`` as ``tag``, unless an image of the same files is there."""
        files = {}
        for name in IMAGE_FILES[kind]:
            path = Path(self.config_dir) / name
            try:
                files[name] = path.read_bytes()
            except OSError as exc:
                raise ClusterError(f"cannot read {path}: {exc.strerror}") from None
        try:
            base_id = self.host.images.get(self.base_image).id
        except docker.errors.ImageNotFound:
            raise ClusterError(
                f"base image {self.base_image} missing; run config/provision/base-image.sh"
            ) from None
        source = image_source_digest(files, base_id)
        with contextlib.suppress(docker.errors.ImageNotFound):
            if self.host.images.get(tag).labels.get(SOURCE_LABEL) == source:
                steps.detail(f"{tag}: reused")
                return
        steps.detail(f"{tag}: building from {IMAGE_FILES[kind][0]}")
        started = time.monotonic()
        output = self.host.api.build(
            fileobj=build_context(files),
            custom_context=True,
            dockerfile=IMAGE_FILES[kind][0],
            tag=tag,
            buildargs={"BASE_IMAGE": self.base_image},
            labels={SOURCE_LABEL: source},
            rm=True,
            forcerm=True,
            decode=True,
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
        manager_url, swarm_nodes = "", []
        manager = next((c for c in nodes if c.name == plan.manager.name), None)
        if manager is not None and manager.status == "running":
            manager_url = self._manager_url(manager)
            client = connect(manager_url, REQUEST_TIMEOUT)
            # a manager that is no swarm manager (yet) says so: its nodes are not in the swarm
            if client is not None:
                with contextlib.closing(client), contextlib.suppress(docker.errors.APIError):
                    swarm_nodes = [node.attrs for node in client.nodes.list()]
        return ClusterStatus(
            name=plan.name,
            nodes=node_statuses(((c.name, c.status, c.labels) for c in nodes), swarm_nodes),
            manager_url=manager_url,
            registry=self._registry_status(plan, registry),
        )

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
        """Remove the cluster: its containers, volumes and network; the names removed."""
        containers = self._containers()
        nodes = [c for c in containers if c.labels.get(PART_LABEL) == NODE]
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
