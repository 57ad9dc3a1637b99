"""Workers for real: several `erchub worker` processes, one SQLite store, the Docker engine."""

from __future__ import annotations

import collections
import os
import re
import signal
import time

import docker.errors
import pytest

from erchub.steps import StepName
from tests.worker.conftest import job_is_running_in_a_container, wait_for

pytestmark = pytest.mark.docker

FINAL = ("success", "failure", "canceled")


def statuses(events: list[dict]) -> list[tuple[str, str]]:
    return [(e["status"], e["reason"]) for e in events if e["kind"] == "status"]


def test_two_workers_run_ten_jobs_each_exactly_once(site, two_workers, docker_client):
    compendium = site.add_compendium("x = 21 * 2", "assert x == 42")
    jobs = [site.add_job(compendium) for _ in range(10)]
    wait_for(lambda: all(site.job(job).status in FINAL for job in jobs), 120, "ten jobs to end")
    ids = {worker.worker_id for worker in two_workers}
    ran_by = collections.Counter()
    for job_id in jobs:
        job = site.job(job_id)
        assert job.status == "success", f"{job_id}: {job.reason}"
        assert job.attempts == 1
        assert job.worker in ids
        ran_by[job.worker] += 1
        assert job.result["display"] == "output/main.html"
        assert job.result["check"]["passed"] is True
        assert [job.steps[name]["status"] for name in StepName] == [
            "success", "success", "success", "success", "success", "success", "skipped",
            "success",
        ]  # fmt: skip
        events = site.events(job_id)
        assert statuses(events) == [
            ("running", f"worker {job.worker}, attempt 1"),
            ("success", ""),
        ]
        executions = [e for e in events if e["kind"] == "step" and e["step"] == "image_execute"]
        assert [e["status"] for e in executions] == ["running", "success"]
        assert (site.data_dir / "jobs" / job_id / "output" / "main.html").exists()
        assert site.containers(job_id) == []
    # both workers took jobs, and each job started and ended in exactly one worker's log
    assert set(ran_by) == ids, ran_by
    logs = "".join(worker.log for worker in two_workers)
    for job_id in jobs:
        assert len(re.findall(rf"job {job_id}: started", logs)) == 1
        assert len(re.findall(rf"job {job_id}: success", logs)) == 1
    # the snapshot shares the compendium's files instead of copying them
    original = site.data_dir / "compendia" / compendium / "data.csv"
    snapshot = site.data_dir / "jobs" / jobs[0] / "compendium" / "data.csv"
    assert os.stat(snapshot).st_ino == os.stat(original).st_ino
    assert "snapshot by hardlink" in logs


def test_a_killed_workers_job_is_requeued_and_finished_by_the_other(
    site, two_workers, docker_client
):
    compendium = site.add_compendium("import time\ntime.sleep(10)")
    job_id = site.add_job(compendium)
    wait_for(lambda: job_is_running_in_a_container(site, job_id), 60, "the job to execute")
    [first_container] = site.containers(job_id)
    holder = site.job(job_id).worker
    [victim] = [w for w in two_workers if w.worker_id == holder]
    [survivor] = [w for w in two_workers if w.worker_id != holder]
    os.kill(victim.process.pid, signal.SIGKILL)
    victim.process.wait(10)

    wait_for(lambda: site.job(job_id).status in FINAL, 60, "the job to end")
    job = site.job(job_id)
    assert job.status == "success", job.reason
    assert job.attempts == 2
    assert job.worker == survivor.worker_id
    assert statuses(site.events(job_id)) == [
        ("running", f"worker {victim.worker_id}, attempt 1"),
        ("queued", "worker lost, re-queued"),
        ("running", f"worker {survivor.worker_id}, attempt 2"),
        ("success", ""),
    ]
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(first_container.id)
    assert site.containers(job_id) == []
    assert f"job {job_id}: worker lost, re-queued" in survivor.log


def test_cancel_ends_a_running_job_and_removes_its_container(site, two_workers, docker_client):
    compendium = site.add_compendium("import time\ntime.sleep(120)")
    job_id = site.add_job(compendium)
    wait_for(lambda: job_is_running_in_a_container(site, job_id), 60, "the job to execute")
    [container] = site.containers(job_id)

    asked = time.monotonic()
    site.store.request_cancel(job_id, time.time())
    wait_for(lambda: site.job(job_id).status in FINAL, 10, "the job to end")
    wait_for(lambda: site.containers(job_id) == [], 10, "the container to go")
    assert time.monotonic() - asked < 5

    job = site.job(job_id)
    assert job.status == "canceled"
    assert job.reason == "image_execute: canceled by the user"
    assert job.steps["image_execute"]["status"] == "failure"
    assert job.steps["check"]["status"] == "skipped"
    assert job.steps["cleanup"]["status"] == "success"
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(container.id)
    final = site.events(job_id)[-1]
    assert (final["kind"], final["status"]) == ("status", "canceled")


def test_sigterm_requeues_the_running_job_and_once_runs_it(site, docker_client):
    compendium = site.add_compendium("import time\ntime.sleep(8)")
    job_id = site.add_job(compendium)
    stopping = site.start_worker()
    wait_for(lambda: job_is_running_in_a_container(site, job_id), 60, "the job to execute")
    stopping.process.send_signal(signal.SIGTERM)
    assert stopping.process.wait(15) == 0
    job = site.job(job_id)
    assert (job.status, job.worker, job.attempts) == ("queued", None, 0)
    assert {step["status"] for step in job.steps.values()} == {"queued", "skipped"}
    assert statuses(site.events(job_id))[-1] == ("queued", "worker stopped")
    assert site.containers(job_id) == []

    once = site.start_worker("--once")
    assert once.process.wait(60) == 0
    job = site.job(job_id)
    assert (job.status, job.attempts) == ("success", 1), job.reason
    assert statuses(site.events(job_id))[-1] == ("success", "")
