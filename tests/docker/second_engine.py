"""A second, disposable Docker engine: a ``dockerd`` of its own on this host, for tests that stop
or restart an engine while the machine's engine goes on serving the rest of the session.

It keeps out of the machine engine's way: its data root, exec root (where it starts a containerd
of its own, which dies with it), pid file and socket all lie in one temporary directory with a
short path (unix socket paths are limited to 108 bytes); it runs in a network namespace of its
own (`unshare --net`) and makes no bridge, iptables rules or IP forwarding (the executions it
runs have network none). The namespace matters: a dockerd started with ``--bridge=none``
deletes the interface ``docker0``, which in the host's namespace is the machine engine's
default bridge. Its daemon.json is empty, so the machine's /etc/docker/daemon.json does not
apply to it.

It starts with only the images a test loads into it from the machine's engine
(:meth:`SecondEngine.load_images`). Starting it needs root and dockerd
(:func:`second_engine_problem`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker

#: the engine's own flags beside its paths: nothing of the host's network is touched
NETWORK_FLAGS = (
    "--bridge=none",
    "--iptables=false",
    "--ip6tables=false",
    "--ip-forward=false",
    "--ip-masq=false",
)
#: how long the engine may take to answer after its start, and to exit after a signal; a
#: stopping engine stops its containers first, each within its stop timeout (10 s)
START_SECONDS = 60.0
STOP_SECONDS = 60.0


def second_engine_problem() -> str | None:
    """Why no second Docker engine can be started here, or None when one can."""
    if shutil.which("dockerd") is None:
        return "no dockerd on PATH to start a second Docker engine with"
    if shutil.which("unshare") is None:
        return "no unshare (util-linux) on PATH to give a second Docker engine its own network"
    if os.geteuid() != 0:
        return "starting a second Docker engine (dockerd) needs root"
    return None


class SecondEngine:
    """A dockerd in ``root``; :meth:`start` it, :meth:`stop` it (with any signal), start it
    again with the same flags, and :meth:`destroy` it with all it left."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.log_path = root / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None
        (root / "daemon.json").write_text("{}\n")

    @property
    def url(self) -> str:
        """The engine's address, as DOCKER_HOST takes it."""
        return f"unix://{self.socket}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        return [
            # unshare(1) execs dockerd in the new namespace: the same process, signalled directly
            "unshare",
            "--net",
            "dockerd",
            f"--config-file={self.root / 'daemon.json'}",
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}",
            f"--pidfile={self.root / 'docker.pid'}",
            f"--host={self.url}",
            *NETWORK_FLAGS,
        ]

    def client(self, timeout: int = 60) -> docker.DockerClient:
        """A client of this engine (it asks the engine for its API version: raises
        docker.errors.DockerException when the engine does not answer)."""
        return docker.DockerClient(base_url=self.url, version=None, timeout=timeout)

    def answers(self) -> bool:
        try:
            with contextlib.closing(self.client(timeout=5)) as client:
                return bool(client.ping())
        except docker.errors.DockerException:
            return False

    def start(self) -> float:
        """Start dockerd and wait until it answers; the seconds that took. Raises RuntimeError
        when it exits or does not answer within START_SECONDS."""
        assert not self.running, "the second engine runs already"
        self._forget_dead_containerd()
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of pytest is the fixture's to act on
            )
        while not self.answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"dockerd exited with {self.process.returncode}: {self.tail()}")
            if time.monotonic() - started > START_SECONDS:
                raise RuntimeError(
                    f"dockerd did not answer within {START_SECONDS} s: {self.tail()}"
                )
            time.sleep(0.1)
        return time.monotonic() - started

    def stop(self, signum: int = signal.SIGTERM) -> float:
        """Send ``signum`` to dockerd and wait for it to exit (SIGKILL after STOP_SECONDS); the
        seconds that took. SIGTERM stops its containers first; after SIGKILL they go on
        running (their shims outlive the engine) until it starts again and stops them."""
        if self.process is None:
            return 0.0
        asked = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signum)
        try:
            self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return time.monotonic() - asked

    def _forget_dead_containerd(self) -> None:
        """Remove the pid file of the engine's containerd when that process is dead. A killed
        engine's containerd dies with it; where nothing reaps orphans (the init of a container
        or a micro-VM), it stays a zombie, which dockerd takes for a live containerd to wait
        for, in vain."""
        pidfile = self.root / "exec" / "containerd" / "containerd.pid"
        try:
            pid = int(pidfile.read_text())
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError):  # no pid file, or no such process
            state = "gone"
        if state in ("Z", "gone"):
            pidfile.unlink(missing_ok=True)

    def load_images(self, source: docker.DockerClient, *names: str) -> float:
        """Copy the images ``names`` from the engine of ``source`` (docker save | docker load,
        streamed); the seconds that took. The layers an image shares with one loaded before
        are not stored again."""
        started = time.monotonic()
        with contextlib.closing(self.client()) as client:
            for name in names:
                client.images.load(source.api.get_image(name))
        return time.monotonic() - started

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def destroy(self) -> None:
        """Remove the engine and all it left, whatever state it is in: its containers (a
        started engine stops those a killed one left running), its processes, the mounts
        under its directory, and the directory."""
        try:
            if not self.running:
                self.start()
            with contextlib.closing(self.client()) as client:
                for container in client.containers.list(all=True):
                    container.remove(force=True)
        except (RuntimeError, docker.errors.DockerException) as exc:
            print(f"\nsecond engine: cleaning up without its help ({exc})")
        finally:
            self.stop()
            self._kill_leftovers()
            self._unmount()
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        """Kill the processes this engine started that outlived it (containerd and its shims
        name the engine's directory in their command lines)."""
        marker = str(self.root).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in command:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)

    def _unmount(self) -> None:
        """Unmount what is mounted under the engine's directory (containers' file systems and
        network namespaces of an engine that could not clean up), innermost first."""
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        inside = [m for m in mounts if m == str(self.root) or m.startswith(f"{self.root}/")]
        for mount in sorted(inside, key=len, reverse=True):
            subprocess.run(["umount", "--lazy", mount], check=False, capture_output=True)


@contextlib.contextmanager
def second_engine() -> Iterator[SecondEngine]:
    """A started second engine, destroyed at the end (also when the test failed)."""
    root = Path(tempfile.mkdtemp(prefix="erchub-engine-", dir="/tmp"))
    engine = SecondEngine(root)
    try:
        seconds = engine.start()
        print(f"\nsecond engine at {engine.url}: answered after {seconds:.1f} s")
        yield engine
    finally:
        engine.destroy()
