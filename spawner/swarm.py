"""SwarmERCSpawner: a reviewer's session of one ERC as a Docker Swarm service on a session node.

ERCSpawner on dockerspawner's SwarmSpawner, as its maintainers extend it: the hub talks to a
swarm manager's engine API (DockerSpawner's ``client_kwargs`` and ``tls_config``, or DOCKER_HOST
and friends, as config/swarm/stack.yml sets them: the hub may run on any app node), and each
start

1. fetches the compendium from the erc service with the server's own token (as ERCSpawner);
2. makes sure its runtime image exists, built by ``erchub build --events`` on the manager's
   engine with the builder's registry (``ImageBuilder.registry`` in ``builder_config_file``):
   the builder pushes the image there, and the session runs it by its repository digest, which
   any node pulls (``pull_policy`` ``skip``: the node pulls, not the hub);
3. creates the service (:func:`session_service`): one task, never restarted, on the nodes that
   ``extra_placement_spec`` allows, on the network ``network_name`` (the hub and the erc
   service are on it too), with the resource limits of ERCSpawner and no capability;
4. its container fetches its private working copy from the erc service at its start, checks it
   against the digest of the files the hub fetched, and then execs the single-user server
   (:mod:`erchub.spawner.working_copy`): no host path of the hub, no volume on the node;
5. waits until a node runs the task and JupyterLab answers at the task's address on that
   network, where the hub's proxy reaches it.

A stopped server's service is removed (SwarmSpawner's ``remove``), its container and working
copy with it: nothing stays behind on the node. Workspaces (default servers) need a persistent
volume that follows their user from node to node; this spawner does not offer them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import docker.errors
from docker.types import (
    ContainerSpec,
    EndpointSpec,
    Placement,
    Resources,
    RestartPolicy,
    TaskTemplate,
)
from dockerspawner import SwarmSpawner
from traitlets import Float, default

from erchub.sessions import SessionKind
from erchub.spawner import working_copy
from erchub.spawner.registry import check_digest_reference
from erchub.spawner.session import FetchedCompendium, SessionError
from erchub.spawner.spawner import SESSION_LABEL, ERCSpawner

#: task states on the way to running, and those that end a task (Swarm's task lifecycle)
PENDING_STATES = frozenset(
    {"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
)
ENDED_STATES = frozenset({"complete", "shutdown", "failed", "rejected", "orphaned", "remove"})
#: lines of a failed session's log that go into the hub's log
_LOG_LINES = 5


@functools.cache
def fetch_program() -> str:
    """The text of :mod:`erchub.spawner.working_copy`: the session container's first program."""
    return Path(working_copy.__file__).read_text(encoding="utf-8")


def session_service(
    *,
    name: str,
    image: str,
    args: Sequence[str],
    env: Mapping[str, str],
    labels: Mapping[str, str],
    network: str,
    mem_limit: int | None = None,
    mem_guarantee: int | None = None,
    cpu_limit: float | None = None,
    cpu_guarantee: float | None = None,
    pids_limit: int = 0,
    mounts: Sequence[Any] = (),
    extra_container_spec: Mapping[str, Any] | None = None,
    extra_resources_spec: Mapping[str, Any] | None = None,
    extra_placement_spec: Mapping[str, Any] | None = None,
    extra_task_spec: Mapping[str, Any] | None = None,
    extra_endpoint_spec: Mapping[str, Any] | None = None,
    extra_create_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The keyword arguments of the engine API's ``create_service`` for one session: SwarmSpawner's
    service (the operator's ``extra_*`` settings over each part, as it applies them), with
    erchub's labels (on the service and its container), no capability, at most ``pids_limit``
    processes (0: no limit), one task that is never restarted (a session that ended, or whose
    working copy could not be fetched, stays ended), no published port (the proxy reaches the
    service by its name on ``network``). Pure."""
    container = ContainerSpec(
        **{
            "image": image,
            "args": list(args),
            "env": dict(env),
            "labels": dict(labels),
            "mounts": list(mounts),
            "cap_drop": ["ALL"],
            **(extra_container_spec or {}),
        }
    )
    resources = Resources(
        **{
            "mem_limit": mem_limit,
            "mem_reservation": mem_guarantee,
            "cpu_limit": int(cpu_limit * 1e9) if cpu_limit else None,
            "cpu_reservation": int(cpu_guarantee * 1e9) if cpu_guarantee else None,
            **(extra_resources_spec or {}),
        }
    )
    if pids_limit:
        resources.setdefault("Limits", {})["Pids"] = pids_limit
    task = TaskTemplate(
        **{
            "container_spec": container,
            "resources": resources,
            "restart_policy": RestartPolicy(condition="none"),
            "networks": [network] if network else [],
            "placement": Placement(**(extra_placement_spec or {})),
            **(extra_task_spec or {}),
        }
    )
    return {
        "name": name,
        "task_template": task,
        "endpoint_spec": EndpointSpec(**(extra_endpoint_spec or {})),
        "labels": dict(labels),
        **(extra_create_kwargs or {}),
    }


class SwarmERCSpawner(ERCSpawner, SwarmSpawner):
    """A session of one ERC as a Swarm service (see the module)."""

    task_timeout = Float(
        600,
        help="""Seconds a session's task may take from its creation until it runs (the node pulls
        the runtime image first) before the start fails (default: 600).""",
    ).tag(config=True)

    @default("pull_policy")
    def _default_pull_policy(self) -> str:
        # the session's node pulls the image by digest when it creates the task
        return "skip"

    @default("network_name")
    def _default_network_name(self) -> str:
        # the overlay network of the hub, the erc service and the sessions: the operator's
        return ""

    #: zip, which the hub and the session's container both unpack: erchub's tar extraction
    #: needs tarfile's extraction filters (Python 3.11.4), which Debian 12's Python (3.11.2, the
    #: app image's) lacks
    archive_format = "zip"

    #: the working copy's fetch plan of this start (:func:`working_copy.fetch_plan`)
    _fetch_plan: str = ""
    #: why the session's task ended, as the last poll found it
    _ended: SessionError | None = None

    async def prepare_session(self, scratch: Path) -> None:
        """A compendium's session: its runtime image by digest, the plan of its working copy,
        its main (or the job's) notebook as the default URL."""
        if self.target.kind is SessionKind.WORKSPACE:
            raise SessionError(
                "workspaces are not offered on this hub: open a compendium to start a session",
                reason="options",
            )
        if not self.network_name:
            raise SessionError(
                "sessions cannot start on this hub now",
                reason="config",
                log_message="SwarmERCSpawner.network_name is not set: the overlay network of "
                "the sessions, the hub and the erc service",
                status_code=500,
            )
        _network, source = await asyncio.gather(self.check_network(), self.describe_source())
        fetched = await self.fetch_compendium(source, scratch)
        image = await self.known_image(source.version)
        if image is None:
            image = await self.runtime_image(fetched.root, scratch, version=source.version)
        try:
            check_digest_reference(image)
        except ValueError:
            raise SessionError(
                "sessions cannot start on this hub now: their images reach no node",
                reason="config",
                log_message=f"the runtime image {image} is not in a registry: set "
                "ImageBuilder.registry in the builder's configuration "
                f"({self.builder_config_file or 'ERCSpawner.builder_config_file'})",
                status_code=500,
            ) from None
        self.report("Preparing your working copy of the compendium", 80)
        self._fetch_plan = await asyncio.get_running_loop().run_in_executor(
            None, self.fetch_plan, fetched
        )
        self.image = image
        self.notebook_dir = self.working_copy_dir
        self.set_default_url(source)

    def fetch_plan(self, fetched: FetchedCompendium) -> str:
        """The plan of the working copy the container fetches: the files the hub fetched (their
        digest), from the erc service's URLs as the session reaches them. Reads the files."""
        source = fetched.source
        files = working_copy.tree_files(fetched.root)
        files.update(fetched.extra)
        extra = {}
        if source.job_notebook:
            extra[source.notebook] = self.api_url(source.job_notebook)
        return working_copy.fetch_plan(
            self.api_url(self.archive_path(source.compendium_id)),
            source.compendium_id,
            extra,
            self.working_copy_dir,
            working_copy.files_digest(files),
        )

    async def get_command(self) -> list[str]:
        """The server's command, after the fetch of the working copy, which execs it."""
        command = await super().get_command()
        return ["python3", "-c", fetch_program(), self._fetch_plan, *command]

    @property
    def service_labels(self) -> dict[str, str]:
        labels = {
            SESSION_LABEL: "swarm-session",
            "org.erchub.user": self.user.name,
            "org.erchub.server": self.name,
        }
        options = self.user_options or {}
        if options.get("compendium"):
            labels["org.erchub.compendium"] = str(options["compendium"])
        return labels

    async def create_object(self) -> Any:
        """The session's service (:func:`session_service`)."""
        spec = session_service(
            name=self.service_name,
            image=self.image,
            args=await self.get_command(),
            env=self.get_env(),
            labels=self.service_labels,
            network=self.network_name,
            mem_limit=self.mem_limit,
            mem_guarantee=self.mem_guarantee,
            cpu_limit=self.cpu_limit,
            cpu_guarantee=self.cpu_guarantee,
            pids_limit=self.pids_limit,
            mounts=self.mounts,
            extra_container_spec=self.extra_container_spec,
            extra_resources_spec=self.extra_resources_spec,
            extra_placement_spec=self.extra_placement_spec,
            extra_task_spec=self.extra_task_spec,
            extra_endpoint_spec=self.extra_endpoint_spec,
            extra_create_kwargs=self.extra_create_kwargs,
        )
        return await self.docker("create_service", **spec)

    async def start_object(self) -> None:
        """Wait until a node runs the service's task: it pulls the image, and the container
        fetches the working copy before JupyterLab starts. SessionError with what the task (or
        the fetch) said when it ends first, or after ``task_timeout``; the service is removed
        then (the hub stops only a server that polls as running)."""
        self.report("Waiting for a session node to pull the image and start the session", 87)
        try:
            await self.wait_for_task()
        except SessionError:
            await self.remove_object()
            raise

    async def poll(self) -> int | str | None:
        """None while the service's task is on its way or runs; once it ended (JupyterLab
        exited, or its node was lost), its status, and the service is removed: the hub stops
        only servers that poll as running, and an ended session leaves nothing behind."""
        task = await self.get_task()
        if task is None:
            return 0
        status = task.get("Status", {})
        if status.get("State") not in ENDED_STATES:
            return None
        self._ended = await self.task_failed(task)
        await self.remove_object()
        return f"{status.get('State')}: {status.get('Err') or status.get('Message') or ''}"

    async def get_ip_and_port(self) -> tuple[str, int]:
        """The task's address on ``network_name`` (not the service's name, as SwarmSpawner has
        it: a relaunch re-creates a service of the same name, whose name some resolvers on the
        way, the hub's HTTP client's DNS cache among them, still know as the old task's
        address for a while); with internal SSL, SwarmSpawner's (certificates name hosts)."""
        if self.use_internal_hostname:
            address: tuple[str, int] = await super().get_ip_and_port()
            return address
        task = await self.get_task()
        for attachment in (task or {}).get("NetworksAttachments") or ():
            if attachment.get("Network", {}).get("Spec", {}).get("Name") == self.network_name:
                return str(attachment["Addresses"][0]).partition("/")[0], self.port
        raise SessionError(
            "the session has no address the hub can reach",
            reason="swarm",
            log_message=f"the task of service {self.service_name} has no address on the "
            f"network {self.network_name}",
            status_code=500,
        )

    async def wait_until_answering(self, ip: str, port: int) -> None:
        """ERCSpawner's wait; a session that ended meanwhile (its working copy's fetch runs in
        the running task) fails with what its container said."""
        self._ended = None
        try:
            await super().wait_until_answering(ip, port)
        except SessionError:
            if self._ended is not None:
                raise self._ended from None
            raise

    async def remove_object(self) -> None:
        """Remove the service (its task's container goes with it); gone already is fine."""
        with contextlib.suppress(docker.errors.NotFound):
            await super().remove_object()

    async def wait_for_task(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.task_timeout
        wait = 0.2
        while True:
            task = await self.get_task()
            state = (task or {}).get("Status", {}).get("State", "new")
            if state == "running":
                return
            if state in ENDED_STATES:
                raise await self.task_failed(task or {})
            if loop.time() > deadline:
                raise SessionError(
                    f"no session node started the session within {self.task_timeout:g} s",
                    reason="timeout",
                    log_message=f"the task of service {self.service_name} is {state} after "
                    f"{self.task_timeout:g} s: {(task or {}).get('Status')}",
                    status_code=500,
                )
            await asyncio.sleep(wait)
            wait = min(wait * 1.5, 2)

    async def task_failed(self, task: dict[str, Any]) -> SessionError:
        """The error of a task that ended before it ran: the last line its container wrote
        (the working copy's fetch says why it failed), else what Swarm says of the task."""
        status = task.get("Status", {})
        said = str(status.get("Err") or status.get("Message") or status.get("State"))
        lines = await self.service_log_tail()
        last = lines[-1] if lines else ""
        message = last.removeprefix("erchub working copy: ") if last else said
        return SessionError(
            f"the session ended before it started: {message}",
            reason="swarm",
            log_message=f"the task of service {self.service_name} ended ({said}); its log ends: "
            + " | ".join(lines),
            status_code=500,
        )

    async def service_log_tail(self) -> list[str]:
        """The last lines the service's containers wrote (stdout and stderr), [] when the
        engine cannot say."""

        def read() -> list[str]:
            logs = self.client.service_logs(
                self.service_id, stdout=True, stderr=True, tail=_LOG_LINES, follow=False
            )
            # bytes, or (a TTY's) chunks
            text = (logs if isinstance(logs, bytes) else b"".join(logs)).decode(errors="replace")
            return [line.strip() for line in text.splitlines() if line.strip()]

        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, read)
        except docker.errors.DockerException:
            return []

    async def delete_forever(self) -> None:
        """A deleted server leaves nothing: its working copy went with its service."""
