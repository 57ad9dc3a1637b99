"""A cancel stops the running step at once: a build, a check and an image export each end
``canceled`` within 5 s of the cancel, and what they were making is gone.

Each step is made slow by its input, never by product code: a build step that sleeps, a
regular expression of erc.yml that backtracks for ever, and an engine whose answers a test
socket slows down.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from nbformat.v4 import new_code_cell, new_output

from erchub.services.jobs.runner import JobResult, JobRunner, new_job_id
from erchub.spawner.builder import ImageBuilder
from erchub.steps import JobOptions, StepName, StepStatus
from tests.conftest import BASE_IMAGE, write_notebook
from tests.worker.conftest import Site, wait_for

pytestmark = pytest.mark.docker

FINAL = ("success", "failure", "canceled")
#: the promise: a canceled job ends within this many seconds of the cancel
CANCEL_BOUND = 5.0


def logged(site: Site, job_id: str, step: str, line: str) -> bool:
    return any(
        event.get("kind") == "log" and event.get("step") == step and event.get("line") == line
        for event in site.events(job_id)
    )


def step_running(site: Site, job_id: str, step: str) -> bool:
    return any(
        event.get("kind") == "step" and event.get("step") == step and event["status"] == "running"
        for event in site.events(job_id)
    )


def assert_canceled_in(site: Site, job_id: str, step: StepName) -> None:
    job = site.job(job_id)
    assert job.status == "canceled"
    assert job.reason == f"{step}: canceled by the user"
    assert job.steps[step]["status"] == "failure"
    assert job.steps["cleanup"]["status"] == "success"
    later = list(StepName)[list(StepName).index(step) + 1 : -1]
    assert all(job.steps[name]["status"] == "skipped" for name in later), job.steps
    final = site.events(job_id)[-1]
    assert (final["kind"], final["status"]) == ("status", "canceled")


def cancel_and_wait(site: Site, job_id: str) -> float:
    """Ask for the cancel as the API does; the seconds until the job ended (at most the bound:
    the wait's deadline)."""
    asked = time.monotonic()
    site.store.request_cancel(job_id, time.time())
    wait_for(lambda: site.job(job_id).status in FINAL, CANCEL_BOUND, "the canceled job to end")
    return time.monotonic() - asked


# -- image_build -------------------------------------------------------------------------------


def build_containers(client: Any, token: str) -> list[Any]:
    """The build's step containers: the classic builder runs each RUN in one."""
    containers = client.containers.list(all=True)
    return [c for c in containers if token in " ".join(c.attrs["Config"]["Cmd"] or [])]


def test_a_cancel_during_image_build_stops_the_build(site: Site, docker_client: Any) -> None:
    token = uuid.uuid4().hex
    compendium = site.add_compendium("x = 1")
    dockerfile = site.data_dir / "compendia" / compendium / "Dockerfile"
    dockerfile.write_text(f"FROM {BASE_IMAGE}\nRUN echo {token} && sleep 120\n")
    job_id = site.add_job(compendium)
    site.start_worker()
    wait_for(lambda: logged(site, job_id, "image_build", token), 60, "the build's slow step")
    assert build_containers(docker_client, token), "the step runs in a container"

    seconds = cancel_and_wait(site, job_id)

    assert_canceled_in(site, job_id, StepName.IMAGE_BUILD)
    print(f"\nbuild canceled: the job ended {seconds:.1f} s after the cancel")
    # dockerd stopped the build: its container goes, and the image is never tagged
    wait_for(lambda: not build_containers(docker_client, token), 10, "the build's container")
    image = site.job(job_id).result["image"]
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(image)


# -- check -------------------------------------------------------------------------------------

#: a regular expression that backtracks for ever over TEXT (2**40 ways to fail)
CATASTROPHIC_PATTERN = "(a+)+$"
TEXT = "a" * 40 + "!"


def check_processes(worker_pid: int) -> list[int]:
    """The worker's child processes that compare (or wait to compare) notebooks."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == worker_pid and b"check_child" in command:
            found.append(int(entry.name))
    return found


def test_a_cancel_during_check_kills_the_comparison(site: Site) -> None:
    published = new_code_cell(
        f"print({TEXT!r})", outputs=[new_output("stream", name="stdout", text=TEXT + "\n")]
    )
    compendium = site.add_compendium(published)
    erc_yml = site.data_dir / "compendia" / compendium / "erc.yml"
    erc_yml.write_text(
        erc_yml.read_text() + f"check:\n  volatile_patterns: ['{CATASTROPHIC_PATTERN}']\n"
    )
    job_id = site.add_job(compendium)
    worker = site.start_worker()
    wait_for(lambda: step_running(site, job_id, "check"), 90, "the check to start")
    # The comparison is busy: the step goes on, in the one check process of the worker (the
    # worker keeps heartbeating meanwhile: a lost worker would be noticed after 3 s).
    time.sleep(1)
    job = site.job(job_id)
    assert (job.status, job.steps["check"]["status"]) == ("running", "running")
    [comparing] = check_processes(worker.process.pid)

    seconds = cancel_and_wait(site, job_id)

    assert_canceled_in(site, job_id, StepName.CHECK)
    print(f"\ncheck canceled: the job ended {seconds:.1f} s after the cancel")
    assert not os.path.exists(f"/proc/{comparing}"), "the comparing process was killed"
    job_dir = site.data_dir / "jobs" / job_id
    assert not (job_dir / "check").exists() and not (job_dir / "check.partial").exists()
    assert "report" not in site.job(job_id).result


# -- image_save --------------------------------------------------------------------------------


class SlowEngine:
    """A unix socket in front of the Docker engine's: requests pass at once, answers at
    ``rate`` bytes per second, so that exporting an image through it takes minutes. Knows
    which of its connections carry an image export, and whether they are still open."""

    def __init__(self, path: Path, upstream: str, rate: int) -> None:
        self.path, self.upstream, self.rate = path, upstream, rate
        self.exports: list[socket.socket] = []
        self.closed: set[int] = set()
        self._listener = socket.socket(socket.AF_UNIX)
        self._listener.bind(str(path))
        self._listener.listen(16)
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def open_exports(self) -> int:
        return sum(1 for sock in self.exports if id(sock) not in self.closed)

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(self.upstream)
            self._sockets += [client, engine]
            threading.Thread(target=self._requests, args=(client, engine), daemon=True).start()
            threading.Thread(target=self._answers, args=(engine, client), daemon=True).start()

    def _requests(self, client: socket.socket, engine: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                if b"/get HTTP/1.1" in data.split(b"\r\n", 1)[0]:
                    self.exports.append(engine)
                engine.sendall(data)
        except OSError:
            pass
        self._end(client, engine)

    def _answers(self, engine: socket.socket, client: socket.socket) -> None:
        piece = max(self.rate // 20, 1)
        try:
            while data := engine.recv(piece):
                client.sendall(data)
                time.sleep(len(data) / self.rate)
        except OSError:
            pass
        self._end(client, engine)

    def _end(self, client: socket.socket, engine: socket.socket) -> None:
        for sock in (client, engine):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        self.closed.add(id(engine))


@pytest.fixture
def slow_engine(tmp_path: Path, docker_client: Any) -> Iterator[SlowEngine]:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.skip(f"the engine is not on a unix socket ({host})")
    engine = SlowEngine(tmp_path / "slow-docker.sock", host.removeprefix("unix://"), 1024**2)
    yield engine
    engine.close()


def test_a_cancel_during_image_save_stops_the_export(
    tmp_path: Path, runtime_wheel: str, slow_engine: SlowEngine
) -> None:
    workspace = tmp_path / "ws"
    write_notebook(workspace / "main.ipynb", "x = 1")
    client = docker.DockerClient(base_url=f"unix://{slow_engine.path}")
    # The builder's engine is the slow one; the execution uses the engine directly.
    builder = ImageBuilder(docker_client=client, erchub_wheel=runtime_wheel)
    runner = JobRunner(data_dir=str(tmp_path / "data"), builder=builder)
    job_id, cancel = new_job_id(), threading.Event()
    partial = Path(runner.jobs_dir) / job_id / "image.tar.partial"
    ended: list[JobResult] = []

    def run() -> None:
        options = JobOptions(check=False, image_save=True)
        ended.append(runner.run(workspace, options=options, cancel=cancel, job_id=job_id))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(lambda: partial.exists() and partial.stat().st_size > 0, 120, "the export")
    assert slow_engine.open_exports() == 1

    asked = time.monotonic()
    cancel.set()
    thread.join(CANCEL_BOUND)
    assert not thread.is_alive(), f"the job did not end within {CANCEL_BOUND} s of the cancel"
    print(f"\nimage export canceled: the job ended {time.monotonic() - asked:.1f} s after it")

    [result] = ended
    assert result.status == "canceled"
    assert result.job.failure_reason == "image_save: canceled by the user"
    step = result.job.step(StepName.IMAGE_SAVE)
    assert (step.status, step.reason) == (StepStatus.FAILURE, "canceled by the user")
    assert result.job.step(StepName.CLEANUP).status == StepStatus.SUCCESS
    # nothing of the export is left under either name, and its connection was closed
    assert not partial.exists() and not (result.directory / "image.tar").exists()
    assert "image_tar" not in result.record
    wait_for(lambda: slow_engine.open_exports() == 0, 5, "the export's connection to close")
    client.close()
