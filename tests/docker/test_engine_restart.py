"""The fault matrix's restarted Docker engine: the engine of a worker restarts, or stops and
does not come back, while a job's notebook runs. The job ends ``failure`` saying that the engine
stopped the notebook or went away (never a traceback, never ``running`` for ever), its container
goes once the engine is back, nothing of the interrupted execution shows as a result, and the
next job runs.

The engine restarted is a second one (tests/docker/second_engine.py): the machine's engine
serves the rest of the session. It gets the base image and the runtime image of notebooks
without requirements from the machine's engine, so that no job builds anything.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from erchub.services.store import open_store
from erchub.services.store.base import JobRecord
from erchub.spawner.builder import ImageBuilder
from tests.conftest import BASE_IMAGE, require_tier, write_notebook
from tests.docker.second_engine import SecondEngine, second_engine, second_engine_problem
from tests.worker.conftest import WORKER_CONFIG, Site, WorkerProcess, wait_for

pytestmark = pytest.mark.docker

FINAL = ("success", "failure", "canceled")
#: a notebook that runs long enough for the engine to go away under it; the file it writes
#: into its working directory (output/workdir) says that it sleeps
SLEEPING = "open('sleeping', 'w').close()\nimport time\ntime.sleep(30)"
#: how long a job may take to end once its engine went away: the engine's stop (it stops its
#: containers within their 10 s stop timeout) and start, and the runtime's next look
ENDS_WITHIN = 60.0
#: how long the worker of the engine that does not come back waits for it
SHORT_GRACE = 2.0


@pytest.fixture(scope="module")
def engine(
    docker_client: Any, erchub_wheel: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecondEngine]:
    """A second engine holding the base image and the runtime image the workers will plan
    (built on the machine's engine first, when a previous tier has not)."""
    require_tier("docker", second_engine_problem())
    builder = ImageBuilder(docker_client=docker_client, erchub_wheel=erchub_wheel)
    probe = tmp_path_factory.mktemp("probe")
    write_notebook(probe / "main.ipynb", "x = 1")
    image = builder.build(builder.plan(probe, str(uuid.uuid4()))).image
    with second_engine() as engine:
        seconds = engine.load_images(docker_client, BASE_IMAGE, image)
        print(f"second engine: {BASE_IMAGE} and {image} loaded in {seconds:.1f} s")
        yield engine


@pytest.fixture
def site(
    tmp_path: Path, erchub_wheel: str, engine: SecondEngine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Site]:
    """Workers (started by the test) whose engine is the second one."""
    monkeypatch.setenv("DOCKER_HOST", engine.url)
    for name in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    store = open_store(f"sqlite:///{data_dir / 'erchub.sqlite'}")
    site = Site(tmp_path, erchub_wheel, store, engine.client())
    yield site
    if not engine.running:  # a test that failed with its engine stopped
        engine.start()
    site.stop()
    site.docker_client.close()


def start_worker(site: Site, settings: str) -> WorkerProcess:
    """A worker of ``site`` with ``settings`` (config lines) beside the site's own."""
    config = site.root / f"worker-{len(site.workers)}.py"
    config.write_text(WORKER_CONFIG.format(wheel=site.wheel) + settings)
    log_path = site.root / f"worker-{len(site.workers)}.log"
    command = [sys.executable, "-m", "erchub", "worker", "--config", str(config)]
    command += ["--data-dir", str(site.data_dir), "--db-url", site.db_url]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    worker = WorkerProcess(process, log_path)
    site.workers.append(worker)
    return worker


def sleeping(site: Site, job_id: str) -> bool:
    """Whether the job's notebook runs its sleeping cell, in a container."""
    marker = site.data_dir / "jobs" / job_id / "output" / "workdir" / "sleeping"
    return marker.exists() and bool(site.containers(job_id))


def run_until_sleeping(site: Site, worker: WorkerProcess) -> str:
    """Queue a job of the sleeping notebook; its id once the notebook sleeps."""
    job_id = site.add_job(site.add_compendium(SLEEPING))
    site.wait_ready(worker)
    wait_for(lambda: sleeping(site, job_id), 90, "the notebook to sleep in its container")
    return job_id


def wait_ended(site: Site, job_id: str, timeout: float) -> JobRecord:
    wait_for(lambda: site.job(job_id).status in FINAL, timeout, f"job {job_id} to end")
    return site.job(job_id)


def assert_no_result(site: Site, job_id: str) -> None:
    """Nothing of the interrupted execution is shown as the job's result."""
    job = site.job(job_id)
    assert not {"executed", "display", "report"} & set(job.result), job.result
    output = site.data_dir / "jobs" / job_id / "output"
    assert not (output / "main.ipynb").exists() and not (output / "result.json").exists()


def assert_next_job_runs(site: Site) -> None:
    job_id = site.add_job(site.add_compendium("print('after the engine came back')"))
    job = wait_ended(site, job_id, 120)
    assert (job.status, job.reason) == ("success", ""), job.reason


@pytest.mark.parametrize(
    "signum",
    [
        # stopping, the engine stops its containers (SIGTERM) first: the runtime finds the
        # container stopped from outside, or the engine gone
        pytest.param(signal.SIGTERM, id="stopped"),
        # killed, it breaks its connections at once, and stops the containers when it is back
        pytest.param(signal.SIGKILL, id="killed"),
    ],
)
def test_a_restarted_engine_ends_the_running_job_and_the_next_job_runs(
    site: Site, engine: SecondEngine, signum: signal.Signals
) -> None:
    worker = site.start_worker()
    job_id = run_until_sleeping(site, worker)

    stopped = engine.stop(signum)
    started = engine.start()
    print(f"\nengine restarted: stopped in {stopped:.1f} s, answered {started:.1f} s later")

    job = wait_ended(site, job_id, ENDS_WITHIN)
    print(f"the job ended: {job.reason}")
    assert job.status == "failure"
    assert job.reason.startswith("image_execute: "), job.reason
    assert "the Docker engine" in job.reason and "run the job again" in job.reason, job.reason
    assert job.steps["cleanup"]["status"] == "success"
    assert not site.containers(job_id), "the job's container is gone with the engine back"
    assert_no_result(site, job_id)
    assert_next_job_runs(site)
    assert "Traceback" not in worker.log


def test_an_engine_that_does_not_come_back_ends_the_running_job(
    site: Site, engine: SecondEngine
) -> None:
    worker = start_worker(site, f"c.DockerRuntime.engine_grace = {SHORT_GRACE}\n")
    job_id = run_until_sleeping(site, worker)

    # killed: its containers go on running under their shims until it starts again
    engine.stop(signal.SIGKILL)

    job = wait_ended(site, job_id, ENDS_WITHIN)
    print(f"\nthe job ended: {job.reason}")
    assert job.status == "failure"
    assert job.reason.startswith("image_execute: the Docker engine went away"), job.reason
    assert f"did not answer again within {SHORT_GRACE:g} s" in job.reason, job.reason
    assert_no_result(site, job_id)
    # a job that starts meanwhile fails at its first step that needs the engine
    meanwhile = wait_ended(site, site.add_job(site.add_compendium("x = 1")), ENDS_WITHIN)
    assert meanwhile.status == "failure"
    assert meanwhile.reason.startswith(
        "generate_manifest: the Docker engine cannot be reached (the connection to it failed: "
    ), meanwhile.reason

    # Back later, the engine stops the container it left running, and keeps it; the worker
    # removes it at its next execution.
    engine.start()
    assert site.containers(job_id)
    assert_next_job_runs(site)
    assert not site.containers(job_id), "the first job's container is gone"
    assert "Traceback" not in worker.log


def test_a_container_stopped_from_outside_ends_the_job_saying_so(
    site: Site, engine: SecondEngine
) -> None:
    """What a restarted engine does to a container when the runtime keeps reaching it (its
    connection held through the stop, or the engine back before the runtime looked): it stops
    the container with SIGTERM, as `docker stop` does."""
    worker = site.start_worker()
    job_id = run_until_sleeping(site, worker)

    [container] = site.containers(job_id)
    container.stop()

    job = wait_ended(site, job_id, ENDS_WITHIN)
    assert job.status == "failure"
    assert job.reason == (
        "image_execute: the notebook's container was stopped from outside the job (signal 15): "
        "the Docker engine stopped or restarted, or someone stopped the container; run the job "
        "again"
    )
    assert not site.containers(job_id)
    assert_no_result(site, job_id)
    assert "Traceback" not in worker.log
