"""Real `erchub worker` processes against a SQLite store file and a data directory.

Compendia are written straight into ``data_dir/compendia/<id>`` and recorded through the store,
as the API does after an upload; jobs are queued through the store. The workers build nothing
during a test: the runtime image of notebooks without requirements is built once per session
with the same erchub wheel the workers are configured with.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from erchub import workspace
from erchub.services.jobs.events import EventLog, events_path
from erchub.services.jobs.runner import JOB_LABEL, new_job_id
from erchub.services.store import open_store
from erchub.services.store.base import CompendiumRecord, JobRecord, Store
from erchub.spawner.builder import ImageBuilder
from erchub.spawner.wheel import build_erchub_wheel, erchub_source_tree
from tests.conftest import write_notebook

#: worker settings that keep the tests short: a lost worker is noticed after 3 s
WORKER_CONFIG = """\
c.Worker.poll_interval = 0.2
c.Worker.heartbeat_interval = 0.5
c.Worker.lost_timeout = 3.0
c.ImageBuilder.erchub_wheel = {wheel!r}
"""


@pytest.fixture(scope="session")
def runtime_wheel(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The erchub wheel of this session, and the runtime image of notebooks without
    requirements built with it, so that every worker reuses that image."""
    source = erchub_source_tree()
    if source is None:
        pytest.skip("erchub is not installed from its source tree: no wheel to build")
    builder = ImageBuilder(docker_client=docker_client)
    wheel = str(build_erchub_wheel(source, Path(builder.cache_dir)))
    builder.erchub_wheel = wheel
    probe = tmp_path_factory.mktemp("probe")
    write_notebook(probe / "main.ipynb", "x = 1")
    started = time.monotonic()
    result = builder.build(builder.plan(probe, str(uuid.uuid4())))
    print(f"\nruntime image {result.image}: ready in {time.monotonic() - started:.1f} s")
    return wheel


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def worker_id(self) -> str:
        # the worker's default id; the command runs Python itself, so the pid is the worker's
        return f"{socket.gethostname()}-{self.process.pid}"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Site:
    """A data directory and a store shared by worker processes."""

    root: Path
    wheel: str
    store: Store
    docker_client: Any
    workers: list[WorkerProcess] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'erchub.sqlite'}"

    def add_compendium(self, *cells: str) -> str:
        compendium_id = str(uuid.uuid4())
        directory = self.data_dir / "compendia" / compendium_id
        write_notebook(directory / "main.ipynb", *cells)
        (directory / "data.csv").write_text("a,b\n1,2\n")
        workspace.prepare_compendium(directory, write=True)
        metadata = json.loads((directory / ".erc" / "metadata_o2r_1.json").read_text())
        now = time.time()
        self.store.add_compendium(
            CompendiumRecord(compendium_id, "author", metadata=metadata, created=now, updated=now)
        )
        return compendium_id

    def add_job(self, compendium_id: str) -> str:
        job = JobRecord(new_job_id(), compendium_id, "author")
        job.created = time.time()
        self.store.add_job(job)
        self.job_ids.append(job.id)
        return job.id

    def start_worker(self, *extra: str) -> WorkerProcess:
        config = self.root / "worker_config.py"
        config.write_text(WORKER_CONFIG.format(wheel=self.wheel))
        log_path = self.root / f"worker-{len(self.workers)}.log"
        command = [sys.executable, "-m", "erchub", "worker", "--config", str(config)]
        command += ["--data-dir", str(self.data_dir), "--db-url", self.db_url, *extra]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        worker = WorkerProcess(process, log_path)
        self.workers.append(worker)
        return worker

    def wait_ready(self, worker: WorkerProcess, timeout: float = 30) -> None:
        wait_for(lambda: ": ready" in worker.log, timeout, f"worker {worker.worker_id} ready")

    def job(self, job_id: str) -> JobRecord:
        job = self.store.get_job(job_id)
        assert job is not None, f"job {job_id} vanished"
        return job

    def events(self, job_id: str) -> list[dict[str, Any]]:
        events, _ = EventLog(events_path(self.data_dir / "jobs" / job_id)).read()
        return [event for _, event in events]

    def containers(self, job_id: str) -> list[Any]:
        return self.docker_client.containers.list(
            all=True, filters={"label": f"{JOB_LABEL}={job_id}"}
        )

    def stop(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.process.wait(30)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
        for job_id in self.job_ids:
            for container in self.containers(job_id):
                with contextlib.suppress(Exception):
                    container.remove(force=True)
        self.store.close()


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for: {what}")


@pytest.fixture
def site(tmp_path: Path, runtime_wheel: str, docker_client: Any) -> Iterator[Site]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    store = open_store(f"sqlite:///{data_dir / 'erchub.sqlite'}")
    site = Site(tmp_path, runtime_wheel, store, docker_client)
    yield site
    site.stop()


@pytest.fixture
def two_workers(site: Site) -> list[WorkerProcess]:
    """Two worker processes, ready (their loop is polling the store)."""
    workers = [site.start_worker(), site.start_worker()]
    for worker in workers:
        site.wait_ready(worker)
    return workers


def job_is_running_in_a_container(site: Site, job_id: str) -> bool:
    events = site.events(job_id)
    executing = any(e.get("kind") == "progress" for e in events)
    return executing and bool(site.containers(job_id))
