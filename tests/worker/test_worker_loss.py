"""A worker killed (SIGKILL) in the middle of a step: the other worker takes the job over and
ends it ``success``, and nothing of the killed attempt is left: no build container, no check
process, no half-written file in the job directory, no container of the job.

(A kill during image_execute: ``test_workers.py``. A worker never runs image_save: it runs
every job with the default options, which skip it.)

Each step is made slow by its input, as in ``test_cancel_steps.py``, but only for the first
attempt: every attempt runs on a new snapshot of the compendium, and once the first worker is
killed the test makes the compendium's slow input quick.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest
from nbformat.v4 import new_code_cell, new_output

from erchub.spawner.builder import ImageBuilder
from tests.conftest import write_notebook
from tests.worker.conftest import Site, WorkerProcess, wait_for
from tests.worker.test_cancel_steps import (
    CATASTROPHIC_PATTERN,
    FINAL,
    TEXT,
    build_containers,
    check_processes,
    logged,
    step_running,
)
from tests.worker.test_workers import statuses

pytestmark = pytest.mark.docker


def kill_holder(
    site: Site, job_id: str, workers: list[WorkerProcess]
) -> tuple[WorkerProcess, WorkerProcess]:
    """SIGKILL the worker that holds the job; (the killed worker, the other one)."""
    holder = site.job(job_id).worker
    [victim] = [w for w in workers if w.worker_id == holder]
    [survivor] = [w for w in workers if w.worker_id != holder]
    os.kill(victim.process.pid, signal.SIGKILL)
    victim.process.wait(10)
    return victim, survivor


def assert_taken_over(
    site: Site, job_id: str, victim: WorkerProcess, survivor: WorkerProcess
) -> None:
    """The job ended ``success`` in the survivor's second attempt, and its directory is that
    attempt's, whole."""
    wait_for(lambda: site.job(job_id).status in FINAL, 90, "the job to end")
    assert f"job {job_id}: worker lost, re-queued" in survivor.log
    job = site.job(job_id)
    assert job.status == "success", job.reason
    assert (job.attempts, job.worker) == (2, survivor.worker_id)
    assert statuses(site.events(job_id)) == [
        ("running", f"worker {victim.worker_id}, attempt 1"),
        ("queued", "worker lost, re-queued"),
        ("running", f"worker {survivor.worker_id}, attempt 2"),
        ("success", ""),
    ]
    job_dir = site.data_dir / "jobs" / job_id
    assert (job_dir / "check" / "report.html").is_file()
    assert [path.name for path in job_dir.glob("**/*.partial")] == []
    assert site.containers(job_id) == []


def process_status(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command's name (state, parent, ..., utime,
    stime, ...), or none when the process has gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def process_runs(pid: int) -> bool:
    """Whether the process exists and has not ended (a zombie has ended)."""
    status = process_status(pid)
    return bool(status) and status[0] != "Z"


def cpu_seconds(pid: int) -> float:
    """The CPU time the process has used (0 when it has gone)."""
    status = process_status(pid)
    ticks = int(status[11]) + int(status[12]) if status else 0
    return ticks / os.sysconf("SC_CLK_TCK")


def runtime_image(site: Site, tmp_path: Path) -> str:
    """The runtime image of notebooks without requirements (built by ``runtime_wheel``)."""
    probe = tmp_path / "probe"
    write_notebook(probe / "main.ipynb", "x = 1")
    builder = ImageBuilder(docker_client=site.docker_client, erchub_wheel=site.wheel)
    return builder.plan(probe, str(uuid.uuid4())).image


def test_a_worker_killed_during_image_build_loses_its_build_to_the_other(
    site: Site, two_workers: list[WorkerProcess], docker_client: Any, tmp_path: Path
) -> None:
    killed_build, second_build = uuid.uuid4().hex, uuid.uuid4().hex
    base = runtime_image(site, tmp_path)
    compendium = site.add_compendium("x = 1")
    dockerfile = site.data_dir / "compendia" / compendium / "Dockerfile"
    dockerfile.write_text(f"FROM {base}\nRUN echo {killed_build} && sleep 120\n")
    job_id = site.add_job(compendium)
    wait_for(lambda: logged(site, job_id, "image_build", killed_build), 60, "the slow build")
    assert build_containers(docker_client, killed_build), "the step runs in a container"

    victim, survivor = kill_holder(site, job_id, two_workers)
    dockerfile.write_text(f"FROM {base}\nRUN echo {second_build}\n")

    try:
        # dockerd stops the killed worker's build when its connection closes
        wait_for(
            lambda: not build_containers(docker_client, killed_build), 10, "the build's container"
        )
        assert_taken_over(site, job_id, victim, survivor)
        build_log = (site.data_dir / "jobs" / job_id / "build.log").read_text()
        assert second_build in build_log and killed_build not in build_log
    finally:
        image = site.job(job_id).result.get("image")
        if image and docker_client.images.list(name=image):
            docker_client.images.remove(image)


def test_a_worker_killed_during_check_loses_its_comparison_to_the_other(
    site: Site, two_workers: list[WorkerProcess]
) -> None:
    published = new_code_cell(
        f"print({TEXT!r})", outputs=[new_output("stream", name="stdout", text=TEXT + "\n")]
    )
    compendium = site.add_compendium(published)
    erc_yml = site.data_dir / "compendia" / compendium / "erc.yml"
    quick = erc_yml.read_text()
    erc_yml.write_text(quick + f"check:\n  volatile_patterns: ['{CATASTROPHIC_PATTERN}']\n")
    job_id = site.add_job(compendium)
    wait_for(lambda: step_running(site, job_id, "check"), 90, "the check to start")
    holder_pid = next(w.process.pid for w in two_workers if w.worker_id == site.job(job_id).worker)
    [comparing] = wait_for(lambda: check_processes(holder_pid), 10, "the check's process")
    # started ahead of need, it has imported the checker by now: what it uses from here on is
    # the comparison's
    ready = cpu_seconds(comparing)
    wait_for(lambda: cpu_seconds(comparing) > ready + 0.5, 10, "the comparison to be busy")

    victim, survivor = kill_holder(site, job_id, two_workers)
    erc_yml.write_text(quick)

    # The comparison of the killed worker would run up to JobRunner.check_time_limit (600 s)
    # on a CPU of its own: it ends with its worker.
    wait_for(lambda: not process_runs(comparing), 10, "the killed worker's comparison to end")
    assert_taken_over(site, job_id, victim, survivor)
    assert site.job(job_id).result["check"]["passed"] is True
