"""Where a notebook runs: in a container of the runtime image, or (not isolated) in a virtualenv.

Both runtimes start ``erchub.execute`` and read its ``result.json``; they differ in isolation.
The notebook runs in ``output/workdir``, which mirrors the compendium's files (those that
``.ercignore`` keeps) as symlinks into the read-only compendium: inputs read as usual, new files
land in the output directory, and an excluded file is not there to depend on.

The container runs without network unless the ERC asks for it and the job may have it (the
runner decides, see :func:`erchub.services.jobs.runner.network_refusal`), as a non-root uid,
with memory, CPU and time limits, the compendium mounted read-only and only the job's output
directory writable, and it is removed whatever happens. A networked container joins erchub's
own bridge (:attr:`DockerRuntime.execution_network`), never Docker's default one: before it
starts, the network is made when missing and the host firewall that keeps it from the host's
addresses and the ``blocked_ranges`` is checked and installed (needs root); when that fails, the
notebook does not run.

When the build pushed the runtime image to a registry (past one machine), the container runs
from the image's repository digest, which the engine pulls first when it lacks it: an execution
engine never builds, and runs exactly what was built (:mod:`erchub.spawner.registry`).

When the Docker engine goes away during an execution (it restarts, crashes or stops), the
execution fails saying so (:class:`~erchub.errors.EngineUnavailable`): the runtime waits for the
engine to answer again (``DockerRuntime.engine_grace``) and removes the container then, before
the output is judged; a container it could not remove goes at its next execution. An engine that
stops or restarts stops its containers first (SIGTERM): an execution whose container was
stopped so fails saying that.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitlets import Float, Int, List, TraitError, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from erchub import execute, jsonlimits, safefs
from erchub.erc import parse_memory
from erchub.errors import EngineUnavailable, ErchubError, ExecutionError
from erchub.settings import env_setting, inherited_data_dir

LineCallback = Callable[[str], None]

#: where the runtime sees the job's files, inside the container
CONTAINER_COMPENDIUM = "/erc/compendium"
CONTAINER_OUTPUT = "/erc/output"
CONTAINER_NOTEBOOK = "/erc/input.ipynb"
#: the notebook's working directory, inside the output directory
WORKDIR_NAME = "workdir"
#: what the executor's result.json may say its status is
OUTCOME_STATUSES = ("success", "failure")
#: bytes of result.json read, and characters kept of each text in it
MAX_RESULT_BYTES = 1024**2
MAX_RESULT_TEXT = 4000
#: how often an execution whose Docker engine went away asks whether it answers again (s)
ENGINE_POLL_SECONDS = 0.5
#: how many errors back an engine error's causes are followed (a chain may loop)
MAX_CAUSES = 10
#: seconds an execution may run past its time limit before it is killed: the executor enforces
#: the limit itself (per cell) and needs the moment to write its result
DEADLINE_GRACE_SECONDS = 30
#: the environment of the notebook's container: a home it may write to, output as it comes
EXECUTION_ENVIRONMENT = {"HOME": "/tmp", "PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class ExecutionSpec:
    """One notebook execution: inputs, outputs and the ERC's own limits."""

    compendium: Path
    notebook: Path
    output: Path
    executed_name: str
    display_name: str
    #: the compendium's files (POSIX paths relative to it) the notebook may read
    files: tuple[str, ...] = ()
    image: str | None = None
    #: the runtime image by repository digest (REGISTRY/REPO@sha256:...), as the builder pushed
    #: it: DockerRuntime pulls it when its engine lacks it, and runs it by it
    image_digest: str | None = None
    network: bool = False
    #: the ERC's own time limit (seconds) and memory (bytes); the operator's limits cap both
    timeout: int | None = None
    memory: int | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExecutionOutcome:
    status: str
    message: str = ""
    cell_index: int | None = None
    ename: str | None = None
    evalue: str | None = None
    timed_out: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class RuntimeImage:
    """The image an execution runs in (:meth:`DockerRuntime.runtime_image`)."""

    #: what the engine runs: the registry digest, else the local tag
    reference: str
    #: seconds its pull from the registry took; None when the engine had it
    pulled: float | None = None


def contain_output(output: Path) -> int:
    """Make what a notebook wrote safe for the worker to read: every symbolic link and special
    file (fifo, socket, device) in ``output`` is removed, never followed, and so is the input
    mirror's (they point into the container's file system, not the host's). Returns how many
    entries went. Called when the execution has ended and nothing writes there any more."""
    if not os.path.lexists(output):
        return 0
    return safefs.drop_links(output)


def read_outcome(
    output: Path, seconds: float, exit_code: int | None, last_line: str
) -> ExecutionOutcome:
    """The executor's result.json, or a failure saying why there is none (the notebook could
    have written or replaced it: it is read as untrusted data)."""
    try:
        result = jsonlimits.loads(
            safefs.read_bytes(output, execute.RESULT_FILE, limit=MAX_RESULT_BYTES)
        )
    except FileNotFoundError:
        message = f"the executor ended without a result (exit code {exit_code})"
        if "No module named 'erchub'" in last_line:
            message += (
                ": the runtime image lacks erchub; a Dockerfile ERC must `pip install erchub`"
            )
        elif last_line:
            message += f": {last_line}"
        return ExecutionOutcome(status="failure", message=message, seconds=seconds)
    except (OSError, ValueError):  # not a file, too large, not JSON
        result = None
    if not isinstance(result, dict) or result.get("status") not in OUTCOME_STATUSES:
        return ExecutionOutcome(
            status="failure",
            message=f"the executor's {execute.RESULT_FILE} is not a result it writes"
            f" (exit code {exit_code})",
            seconds=seconds,
        )

    def text(key: str) -> str | None:
        value = result.get(key)
        return str(value)[:MAX_RESULT_TEXT] if value is not None else None

    cell_index = result.get("cell_index")
    return ExecutionOutcome(
        status=result["status"],
        message=text("message") or "",
        cell_index=cell_index if isinstance(cell_index, int) else None,
        ename=text("ename"),
        evalue=text("evalue"),
        timed_out=result.get("kind") == "timeout",
        seconds=seconds,
    )


def executor_arguments(
    spec: ExecutionSpec, notebook: str, workdir: str, output: str, timeout: int
) -> list[str]:
    """Arguments of ``erchub.execute`` for this spec, with paths as the runtime sees them."""
    return [
        notebook,
        "--workdir",
        workdir,
        "--output",
        output,
        "--executed-name",
        spec.executed_name,
        "--display-name",
        spec.display_name,
        "--timeout",
        str(timeout),
    ]


def container_command(spec: ExecutionSpec, timeout: int) -> list[str]:
    """The command of the notebook's container (any runtime that runs the runtime image): the
    executor with the job's files where the container sees them."""
    return [
        "python3",
        "-m",
        "erchub.execute",
        *executor_arguments(
            spec,
            CONTAINER_NOTEBOOK,
            f"{CONTAINER_OUTPUT}/{WORKDIR_NAME}",
            CONTAINER_OUTPUT,
            timeout,
        ),
    ]


def mirror_inputs(files: tuple[str, ...], link_root: str, workdir: Path) -> list[Path]:
    """Create workdir with a symlink ``workdir/F -> link_root/F`` for each file F.

    ``link_root`` is where the runtime sees the compendium (a container path, or the host
    path for the local runtime). Returns the real directories created, workdir first, so a
    runtime can hand them to the uid the notebook runs as.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    directories = [workdir]
    for relative in files:
        link = workdir / relative
        for parent in reversed(link.relative_to(workdir).parents[:-1]):
            directory = workdir / parent
            if not directory.exists():
                directory.mkdir()
                directories.append(directory)
        link.symlink_to(f"{link_root}/{relative}")
    return directories


def engine_unreachable(error: BaseException) -> bool:
    """Whether ``error``, or an error it arose from, says the Docker engine could not be
    reached or stopped answering: no connection, a broken one, or no answer in time (the
    docker SDK passes these on from requests and urllib3, or wraps them)."""
    try:
        import requests
        import urllib3
    except ImportError:  # no docker SDK: no engine was asked
        return False
    transport = (requests.ConnectionError, requests.Timeout, urllib3.exceptions.HTTPError)
    return any(isinstance(cause, transport) for cause in _causes(error))


def engine_error_detail(error: BaseException) -> str:
    """What went wrong with an engine's connection, in a few words: what the operating system
    said (e.g. "Connection refused"), else the error's first line."""
    for cause in _causes(error):
        if isinstance(cause, OSError) and cause.strerror:
            return f"the connection to it failed: {cause.strerror}"
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def engine_seconds(moment: str) -> int:
    """Whole seconds since the epoch of a moment as the engine writes it (RFC 3339 in UTC, with
    nanoseconds: 2024-01-02T03:04:05.123456789Z), in the engine's clock."""
    parsed = datetime.datetime.strptime(moment[:19], "%Y-%m-%dT%H:%M:%S")
    return int(parsed.replace(tzinfo=datetime.timezone.utc).timestamp())


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and the errors it arose from (raised from, or while handling), nearest first."""
    causes = [error]
    while len(causes) < MAX_CAUSES:
        cause = causes[-1].__cause__ or causes[-1].__context__
        if cause is None or cause in causes:
            break
        causes.append(cause)
    return causes


class LastLine:
    """Passes lines on and remembers the last non-empty one (the likely error)."""

    def __init__(self, on_line: LineCallback) -> None:
        self.on_line = on_line
        self.line = ""

    def __call__(self, line: str) -> None:
        if line.strip():
            self.line = line.strip()
        self.on_line(line)


class LimitsMixin(LoggingConfigurable):
    time_limit = Int(
        3600,
        help="Longest a notebook may run, in seconds; an ERC may ask for less with erc.yml "
        "execution.timeout, never for more (default: 3600).",
    ).tag(config=True)

    def effective_timeout(self, spec: ExecutionSpec) -> int:
        return min(self.time_limit, spec.timeout) if spec.timeout else self.time_limit

    def timeout_outcome(self, limit: int, seconds: float) -> ExecutionOutcome:
        return ExecutionOutcome(
            status="failure",
            message=f"execution stopped at the time limit of {limit} s",
            timed_out=True,
            seconds=seconds,
        )


class DockerRuntime(LimitsMixin):
    """Runs the notebook in a container of the runtime image."""

    mem_limit = Unicode(
        "4g",
        help="Memory limit of an execution container, docker size syntax; an ERC may ask for "
        "less with erc.yml execution.memory, never for more (default: 4g).",
    ).tag(config=True)
    cpu_limit = Float(1.0, help="CPUs an execution container may use (default: 1.0).").tag(
        config=True
    )
    pids_limit = Int(512, help="Processes an execution container may start (default: 512).").tag(
        config=True
    )
    uid = Int(
        help="Non-root uid (and gid) the notebook runs as in the container (default: the "
        "worker's own uid when the worker is not root, so that it can remove everything the "
        "notebook wrote; else 1000, repo2docker's NB_UID).",
    ).tag(config=True)

    @default("uid")
    def _default_uid(self) -> int:
        from erchub.spawner.buildpacks import NB_UID

        return os.geteuid() or NB_UID

    engine_grace = Float(
        60,
        min=0,
        help="How long an execution whose Docker engine went away (a restart, a crash) waits "
        "for it to answer again, in seconds: then its container is removed (a restarted engine "
        "has stopped it), before the job goes on to clean up; else the container is removed "
        "at the worker's next execution. The execution fails either way, saying the engine "
        "went away (default: 60).",
    ).tag(config=True)

    pull_timeout = Float(
        600,
        min=1,
        help="Seconds the pull of a runtime image from the registry (by the digest its build "
        "recorded, when this engine lacks it) may take before it is stopped and the execution "
        "fails (default: 600).",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: ids of execution containers an engine that went away kept from being removed
        self._left_behind: set[str] = set()

    # -- networked executions (JobRunner.allow_network says whether there are any) -----------

    execution_network = Unicode(
        help="Docker network of the executions that may have network: a bridge of erchub's "
        "own, made when missing, from which the host's addresses and blocked_ranges are "
        "dropped by the iptables chain ERCHUB-EXECUTIONS (default: $ERCHUB_EXECUTION_NETWORK, "
        "else erchub-executions).",
    ).tag(config=True)

    @default("execution_network")
    def _default_execution_network(self) -> str:
        from erchub.spawner.network import EXECUTION_NETWORK

        return str(self._env("execution_network", EXECUTION_NETWORK))

    blocked_ranges = List(
        Unicode(),
        help="IPv4 ranges (CIDR) a networked execution may not reach: the private and cluster "
        "networks of the site (its databases, its services, other hosts); every address of "
        "the host itself is blocked anyway (default: $ERCHUB_BLOCKED_RANGES, comma-separated, "
        "else 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16).",
    ).tag(config=True)

    @default("blocked_ranges")
    def _default_blocked_ranges(self) -> list[str]:
        from erchub.spawner.network import DEFAULT_BLOCKED_RANGES

        return self._ranges(self._env("blocked_ranges", list(DEFAULT_BLOCKED_RANGES)))

    dns_servers = List(
        Unicode(),
        help="IPv4 addresses of the DNS resolvers Docker forwards the executions' queries to: "
        "their port 53 stays reachable when they lie in blocked_ranges (default: "
        "$ERCHUB_DNS_SERVERS, comma-separated, else the host's resolv.conf nameservers).",
    ).tag(config=True)

    @default("dns_servers")
    def _default_dns_servers(self) -> list[str]:
        from erchub.spawner.network import host_resolvers

        return self._addresses(self._env("dns_servers", host_resolvers()))

    @validate("blocked_ranges")
    def _valid_blocked_ranges(self, proposal: Any) -> list[str]:
        return self._ranges(proposal["value"])

    @validate("dns_servers")
    def _valid_dns_servers(self, proposal: Any) -> list[str]:
        return self._addresses(proposal["value"])

    def _env(self, name: str, fallback: Any) -> Any:
        return env_setting(name, self.traits()[name], fallback)

    @staticmethod
    def _ranges(ranges: list[str]) -> list[str]:
        from erchub.spawner.network import ipv4_ranges

        try:
            return ipv4_ranges(ranges)
        except ValueError as exc:
            raise TraitError(f"DockerRuntime.blocked_ranges: {exc}") from None

    @staticmethod
    def _addresses(addresses: list[str]) -> list[str]:
        from erchub.spawner.network import ipv4_ranges

        try:
            networks = ipv4_ranges(addresses)
        except ValueError as exc:
            raise TraitError(f"DockerRuntime.dns_servers: {exc}") from None
        if any(not network.endswith("/32") for network in networks):
            raise TraitError(f"DockerRuntime.dns_servers: addresses, not ranges: {addresses}")
        return [network.removesuffix("/32") for network in networks]

    def prepare_network(self, client: Any = None) -> str:
        """Make the executions' network when missing and install (or check) its firewall;
        returns the network's name. Raises ExecutionError when either cannot be done: a
        networked execution never runs unprotected."""
        from erchub.spawner.network import ensure_execution_network, restrict_executions

        try:
            network = ensure_execution_network(self.execution_network, client or self._client())
            restrict_executions(network, self.blocked_ranges, self.dns_servers)
        except ErchubError as exc:
            raise ExecutionError(
                f"no networked execution without its firewall: {exc}; run the worker as root "
                "with iptables, or turn JobRunner.allow_network off"
            ) from None
        except Exception as exc:  # the engine refused or is gone
            raise ExecutionError(
                f"cannot prepare the network {self.execution_network} of networked "
                f"executions: {type(exc).__name__}: {exc}"
            ) from None
        return network.name

    @validate("mem_limit")
    def _valid_mem_limit(self, proposal: Any) -> str:
        try:
            parse_memory(proposal["value"])
        except ValueError as exc:
            raise TraitError(f"DockerRuntime.mem_limit: {exc} (use e.g. 4g or 512m)") from exc
        return str(proposal["value"])

    def _client(self) -> Any:
        from erchub.spawner.clients import docker_client

        return docker_client()

    def effective_memory(self, spec: ExecutionSpec) -> int:
        limit = parse_memory(self.mem_limit)
        return min(limit, spec.memory) if spec.memory else limit

    def execute(
        self,
        spec: ExecutionSpec,
        on_line: LineCallback,
        cancel: threading.Event | None = None,
    ) -> ExecutionOutcome:
        if not spec.image:
            raise ExecutionError("no runtime image to execute in")
        limit = self.effective_timeout(spec)
        self._prepare_output(spec)
        client = self._client()
        self._remove_left_behind(client)
        image = self._runtime_image(client, spec, on_line, cancel)
        if image is None:
            return ExecutionOutcome(status="canceled", message="canceled by the user")
        image_reference = image.reference
        networking: dict[str, Any] = {"network_mode": "none"}
        if spec.network:
            networking = {
                "network": self.prepare_network(client),
                # IPv4 only: the firewall is iptables', and the bridge has IPv6 link-local
                # addresses of the host
                "sysctls": {
                    "net.ipv6.conf.all.disable_ipv6": "1",
                    "net.ipv6.conf.default.disable_ipv6": "1",
                },
            }
        container = client.containers.create(
            image_reference,
            command=container_command(spec, limit),
            user=f"{self.uid}:{self.uid}",
            **networking,
            mem_limit=self.effective_memory(spec),
            memswap_limit=self.effective_memory(spec),
            nano_cpus=int(self.cpu_limit * 1e9),
            pids_limit=self.pids_limit,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            working_dir=CONTAINER_OUTPUT,
            environment=dict(EXECUTION_ENVIRONMENT),
            labels=spec.labels,
            volumes={
                str(spec.compendium.resolve()): {"bind": CONTAINER_COMPENDIUM, "mode": "ro"},
                str(spec.notebook.resolve()): {"bind": CONTAINER_NOTEBOOK, "mode": "ro"},
                str(spec.output.resolve()): {"bind": CONTAINER_OUTPUT, "mode": "rw"},
            },
        )
        started = time.monotonic()
        lost: EngineUnavailable | None = None
        stopped_by: str | None = None
        try:
            container.start()
            tail = LastLine(on_line)
            reader = threading.Thread(target=self._stream_logs, args=(container, tail), daemon=True)
            reader.start()
            deadline = started + limit + DEADLINE_GRACE_SECONDS
            try:
                while True:
                    container.reload()
                    if container.status in ("exited", "dead"):
                        break
                    if cancel is not None and cancel.is_set():
                        container.kill()
                        return ExecutionOutcome(status="canceled", message="canceled by the user")
                    if time.monotonic() > deadline:
                        container.kill()
                        return self.timeout_outcome(limit, time.monotonic() - started)
                    time.sleep(0.2)
                state = container.attrs["State"]
                reader.join(timeout=5)
                if not safefs.is_file(spec.output, execute.RESULT_FILE):
                    stopped_by = self._stop_signal(client, container.id, state)
            except Exception as exc:
                if not engine_unreachable(exc):
                    raise
                lost = self._engine_lost(container.id, engine_error_detail(exc), cancel)
                raise lost from None
        finally:
            if lost is None:  # else it was removed (or left for later) with the engine's loss
                self._remove(client, container.id)
            # Only now, with nothing left that could write there, is the output judged.
            contain_output(spec.output)
        if stopped_by is not None:
            raise ExecutionError(
                f"the notebook's container was stopped from outside the job (signal {stopped_by})"
                ": the Docker engine stopped or restarted, or someone stopped the container; run "
                "the job again"
            )
        seconds = time.monotonic() - started
        if state.get("OOMKilled"):
            return ExecutionOutcome(
                status="failure",
                message=f"the notebook ran out of memory (limit {self.effective_memory(spec)}"
                " bytes)",
                seconds=seconds,
            )
        return read_outcome(spec.output, seconds, state.get("ExitCode"), tail.line)

    def runtime_image(
        self, spec: ExecutionSpec, on_line: LineCallback, cancel: threading.Event | None = None
    ) -> RuntimeImage | None:
        """The image that :meth:`execute` runs ``spec`` in, pulled now when the engine lacks
        it (see :meth:`_runtime_image`): a runner that asks first learns what the pull took."""
        return self._runtime_image(self._client(), spec, on_line, cancel)

    def _runtime_image(
        self,
        client: Any,
        spec: ExecutionSpec,
        on_line: LineCallback,
        cancel: threading.Event | None,
    ) -> RuntimeImage | None:
        """The image to run: ``spec.image_digest``, pulled first when the engine lacks it, else
        ``spec.image``; None when a cancel stopped the pull. ExecutionError naming the registry
        when the pull fails."""
        if not spec.image_digest:
            if not spec.image:
                raise ExecutionError("no runtime image to execute in")
            return RuntimeImage(spec.image)
        from docker.errors import NotFound

        from erchub.spawner.registry import (
            PullCanceled,
            RegistryError,
            check_digest_reference,
            pull_image,
        )

        try:
            reference = check_digest_reference(spec.image_digest)
        except ValueError as exc:
            raise ExecutionError(str(exc)) from None
        with contextlib.suppress(NotFound):
            client.api.inspect_image(reference)
            return RuntimeImage(reference)
        on_line(f"pulling {reference}: this Docker engine does not have it")
        started = time.monotonic()
        try:
            pull_image(client, reference, on_line, cancel, self.pull_timeout)
        except PullCanceled:
            return None
        except RegistryError as exc:
            raise ExecutionError(str(exc)) from None
        seconds = time.monotonic() - started
        on_line(f"pulled in {seconds:.1f} s")
        return RuntimeImage(reference, pulled=seconds)

    def _prepare_output(self, spec: ExecutionSpec) -> None:
        spec.output.mkdir(parents=True, exist_ok=True)
        workdir = spec.output / WORKDIR_NAME
        for directory in (spec.output, *mirror_inputs(spec.files, CONTAINER_COMPENDIUM, workdir)):
            if self.uid == os.geteuid():
                continue
            if os.geteuid() == 0:
                os.chown(directory, self.uid, self.uid)
            else:
                # The container's uid differs from ours; without root we cannot chown to it.
                directory.chmod(0o777)

    @staticmethod
    def _stream_logs(container: Any, on_line: LineCallback) -> None:
        buffer = b""
        try:
            for chunk in container.logs(stream=True, follow=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    on_line(line.decode("utf-8", "replace"))
        except Exception as exc:
            if not engine_unreachable(exc):
                raise
            # the engine went away: the execution's loop finds so and says it
        if buffer:
            on_line(buffer.decode("utf-8", "replace"))

    @staticmethod
    def _stop_signal(client: Any, container_id: str, state: dict[str, Any]) -> str | None:
        """The signal with which the container was stopped from outside the job while it ran,
        from the engine's kill events, or None. An engine stops its containers when it stops,
        and when it starts again after a crash; so does `docker stop`. (The runtime kills only
        at a cancel or the time limit, and says so.)"""
        import docker.errors

        try:
            events = client.events(
                since=engine_seconds(state["StartedAt"]),
                until=engine_seconds(state["FinishedAt"]) + 1,
                filters={"container": container_id, "event": "kill"},
                decode=True,
            )
        except (KeyError, ValueError, docker.errors.APIError):  # no times, or events refused
            return None
        with contextlib.closing(events):
            for event in events:
                return str(event.get("Actor", {}).get("Attributes", {}).get("signal", "unknown"))
        return None

    def _remove(self, client: Any, container_id: str) -> bool:
        """Remove an execution's container, never raising: True when it is gone. When the
        engine cannot be reached, it is left for :meth:`_remove_left_behind`."""
        import docker.errors

        try:
            client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except Exception as exc:
            if engine_unreachable(exc):
                self._left_behind.add(container_id)
            else:
                self.log.warning("cannot remove the execution container %s: %s", container_id, exc)
            return False
        self._left_behind.discard(container_id)
        return True

    def _remove_left_behind(self, client: Any) -> None:
        """Remove the containers of executions whose engine went away, now that it answers."""
        for container_id in sorted(self._left_behind):
            if self._remove(client, container_id):
                self.log.info("removed the container %s that an engine restart left", container_id)

    def _engine_lost(
        self, container_id: str, detail: str, cancel: threading.Event | None
    ) -> EngineUnavailable:
        """The error of an execution whose engine went away, once the engine answers again
        (then the execution's container is removed: a restarted engine has stopped it, one
        that kept it running, with live-restore, stops it now) or :attr:`engine_grace` has
        passed (or a cancel came: the container is left for :meth:`_remove_left_behind`; an
        engine that crashed leaves its containers running until it is back, and such a one may
        still write into the output after the job ended)."""
        lost = time.monotonic()
        message = f"the Docker engine went away during the execution ({detail})"
        while time.monotonic() - lost < self.engine_grace:
            if cancel is not None and cancel.is_set():
                break
            try:
                client = self._client()  # a new connection: the pool's may reach the old engine
            except Exception as exc:
                if not engine_unreachable(exc):
                    raise
                time.sleep(ENGINE_POLL_SECONDS)
                continue
            with contextlib.closing(client):
                self._remove(client, container_id)
            seconds = time.monotonic() - lost
            return EngineUnavailable(
                f"{message} and came back {seconds:.0f} s later; run the job again"
            )
        self._left_behind.add(container_id)
        return EngineUnavailable(
            f"{message} and did not answer again within {self.engine_grace:g} s "
            "(DockerRuntime.engine_grace); run the job again when it is back"
        )


class LocalRuntime(LimitsMixin):
    """Runs the notebook in a virtualenv built from requirements.txt: NOT isolated.

    For machines without a Docker engine. No network, memory or filesystem isolation; only
    the time limit holds.
    """

    venv_dir = Unicode(
        help="Directory holding the cached virtualenvs, one per requirements.txt (default: "
        "<data_dir>/venvs, the job runner's data_dir)."
    ).tag(config=True)

    @default("venv_dir")
    def _default_venv_dir(self) -> str:
        return os.path.join(inherited_data_dir(self), "venvs")

    #: what the executor itself needs in the virtualenv
    executor_requirements = ("nbclient", "nbconvert", "nbformat", "ipykernel")

    def venv_for(self, compendium: Path, on_line: LineCallback) -> Path:
        """The virtualenv for this compendium's requirements.txt, built when missing."""
        requirements = compendium / "requirements.txt"
        text = requirements.read_text() if requirements.exists() else ""
        key = hashlib.sha256(f"{sys.version}\n{text}".encode()).hexdigest()[:16]
        venv = Path(self.venv_dir) / key
        python = venv / "bin" / "python"
        if python.exists():
            on_line(f"reusing virtualenv {venv}")
            return venv
        staging = venv.with_name(key + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        on_line(f"creating virtualenv {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(staging)], check=True)
        install = [str(staging / "bin" / "python"), "-m", "pip", "install", "--progress-bar=off"]
        install += list(self.executor_requirements)
        if text:
            install += ["-r", str(requirements)]
        self._run_streaming(install, on_line, failure="installing requirements failed")
        staging.rename(venv)
        return venv

    def execute(
        self,
        spec: ExecutionSpec,
        on_line: LineCallback,
        cancel: threading.Event | None = None,
    ) -> ExecutionOutcome:
        limit = self.effective_timeout(spec)
        workdir = spec.output / WORKDIR_NAME
        mirror_inputs(spec.files, str(spec.compendium.resolve()), workdir)
        venv = self.venv_for(spec.compendium, on_line)
        command = [
            str(venv / "bin" / "python"),
            # By path: the executor imports only nbclient/nbconvert, so the venv needs no erchub.
            execute.__file__,
            *executor_arguments(
                spec, str(spec.notebook), str(workdir.resolve()), str(spec.output.resolve()), limit
            ),
        ]
        started = time.monotonic()
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=spec.output,
        )
        try:
            tail = LastLine(on_line)
            reader = threading.Thread(target=self._pump, args=(process, tail), daemon=True)
            reader.start()
            deadline = started + limit + DEADLINE_GRACE_SECONDS
            while process.poll() is None:
                if cancel is not None and cancel.is_set():
                    return ExecutionOutcome(status="canceled", message="canceled by the user")
                if time.monotonic() > deadline:
                    return self.timeout_outcome(limit, time.monotonic() - started)
                time.sleep(0.2)
            reader.join(timeout=5)
        finally:
            self._kill(process)
            contain_output(spec.output)
        return read_outcome(spec.output, time.monotonic() - started, process.returncode, tail.line)

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    @staticmethod
    def _pump(process: subprocess.Popen[bytes], on_line: LineCallback) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            on_line(raw.decode("utf-8", "replace").rstrip("\n"))

    def _run_streaming(self, command: list[str], on_line: LineCallback, failure: str) -> None:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._pump(process, on_line)
        if process.wait() != 0:
            raise ExecutionError(f"{failure} (exit code {process.returncode})")
