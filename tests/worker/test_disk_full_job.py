"""The fault matrix's full disk, for jobs: the data directory on a small tmpfs of the test's own.

A job whose notebook fills the disk ends ``failure`` at ``image_execute``, saying the disk is
full; what it wrote is removed, so that its end is recorded, nothing stored before changes and
the next job succeeds. A job claimed while the disk is full already (its store elsewhere, as a
PostgreSQL site's is) cannot write its event log or job.json: the events are dropped (the
worker logs a warning), and the job ends ``failure`` naming the disk all the same, its steps and
end in the store; its worker goes on serving, and the next job, with room again, succeeds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from erchub.services.jobs.runner import STORAGE_FULL_REASON
from erchub.services.store import open_store
from erchub.services.store.base import JobRecord
from tests.conftest import require_tier
from tests.worker.conftest import Site, WorkerProcess, wait_for

pytestmark = pytest.mark.docker

#: the small file system's size (bytes): room for the store, compendia and a few small jobs
DISK = 16 * 1024**2
#: a notebook cell that writes more than the disk holds into its output directory
FILL_THE_DISK = f"with open('big.bin', 'wb') as stream:\n    stream.write(bytes({2 * DISK}))"
FINAL = ("success", "failure", "canceled")
#: the longest a job of these tests takes (the runtime image is built once per session)
JOB_BOUND = 120


class SiteWithOutsideStore(Site):
    """A site whose store lies outside its data directory (a PostgreSQL site's, say)."""

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.root / 'erchub.sqlite'}"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """The data directory of a site, on a tmpfs of :data:`DISK` bytes."""
    problem = None if os.geteuid() == 0 else "mounting a small tmpfs for the data dir needs root"
    require_tier("docker", problem)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(data_dir)], check=True
    )
    try:
        yield data_dir
    finally:
        subprocess.run(["umount", "-l", str(data_dir)], check=True)


@contextlib.contextmanager
def running_site(site: Site) -> Iterator[Site]:
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def small_disk_site(
    small_disk: Path, tmp_path: Path, runtime_wheel: str, docker_client: Any
) -> Iterator[Site]:
    """A site on the small disk, its SQLite store in the data directory (the default)."""
    store = open_store(f"sqlite:///{small_disk / 'erchub.sqlite'}")
    with running_site(Site(tmp_path, runtime_wheel, store, docker_client)) as site:
        yield site


@pytest.fixture
def outside_store_site(
    small_disk: Path, tmp_path: Path, runtime_wheel: str, docker_client: Any
) -> Iterator[Site]:
    """A site on the small disk, its store elsewhere."""
    store = open_store(f"sqlite:///{tmp_path / 'erchub.sqlite'}")
    with running_site(SiteWithOutsideStore(tmp_path, runtime_wheel, store, docker_client)) as site:
        yield site


def wait_ended(site: Site, job_id: str) -> JobRecord:
    def ended() -> JobRecord | None:
        job = site.job(job_id)
        return job if job.status in FINAL else None

    return wait_for(ended, JOB_BOUND, f"job {job_id} to end")


def assert_ended_by_its_worker(job: JobRecord, worker: WorkerProcess) -> None:
    """The job's end and steps were stored by the worker that ran it, which goes on."""
    assert job.attempts == 1, "never re-queued as lost"
    assert worker.process.poll() is None, "the worker goes on"
    assert not [name for name, step in job.steps.items() if step["status"] in ("queued", "running")]


def checksums(*directories: Path) -> dict[str, str]:
    """Every file under the directories, by path, with its content's SHA-256."""
    sums = {}
    for directory in directories:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and not path.is_symlink():
                sums[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums


def fill(data_dir: Path) -> Path:
    """A file that takes the disk's last byte."""
    filler = data_dir / "filler"
    with open(filler, "wb") as stream:
        try:
            while True:
                stream.write(bytes(65536))
                stream.flush()
        except OSError:
            pass
    return filler


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def test_a_job_that_fills_the_disk_fails_naming_it_and_damages_nothing(
    small_disk_site: Site,
) -> None:
    site = small_disk_site
    kept = site.add_compendium("x = 1")
    done = site.add_job(kept)
    worker = site.start_worker()
    assert wait_ended(site, done).status == "success"
    stored, kept_record = site.job(done), site.store.get_compendium(kept)
    kept_files = (site.data_dir / "compendia" / kept, site.data_dir / "jobs" / done)
    before = checksums(*kept_files)

    filling = site.add_job(site.add_compendium(FILL_THE_DISK))
    job = wait_ended(site, filling)
    print(f"\nthe job that filled the disk: {job.status}, {job.reason!r}")

    assert job.status == "failure"
    assert job.reason == f"image_execute: {STORAGE_FULL_REASON}"
    assert_ended_by_its_worker(job, worker)
    assert job.steps["image_execute"]["status"] == "failure"
    assert "the disk is full: output/ was removed" in job.steps["image_execute"]["text"]
    assert job.steps["check"]["status"] == "skipped"
    assert job.steps["cleanup"]["status"] == "success"
    # no half-written result: no output, no check report, nothing of either in the result
    job_dir = site.data_dir / "jobs" / filling
    assert not {"output", "check", "check.partial"} & set(os.listdir(job_dir))
    assert not {"executed", "display", "report", "check"} & set(job.result)
    # its end is in the log too: the removal gave the log room
    final = site.events(filling)[-1]
    assert (final["kind"], final["status"], final["reason"]) == ("status", "failure", job.reason)
    # nothing stored before changed
    assert checksums(*kept_files) == before
    again = site.job(done)
    assert (again.status, again.result, again.steps) == (stored.status, stored.result, stored.steps)
    assert site.store.get_compendium(kept) == kept_record
    assert free_bytes(site.data_dir) > DISK // 2

    later = site.add_job(kept)
    assert wait_ended(site, later).status == "success"


def test_a_job_claimed_on_a_full_disk_fails_naming_it_and_the_worker_goes_on(
    outside_store_site: Site,
) -> None:
    site = outside_store_site
    compendium = site.add_compendium("x = 1")
    worker = site.start_worker()
    site.wait_ready(worker)
    filler = fill(site.data_dir)

    job_id = site.add_job(compendium)
    job = wait_ended(site, job_id)
    print(f"\nthe job claimed on a full disk: {job.status}, {job.reason!r}")

    assert job.status == "failure"
    assert job.reason.endswith(f": {STORAGE_FULL_REASON}")
    assert_ended_by_its_worker(job, worker)
    # the event log could take nothing: the store holds the end (and the API's stream ends
    # with the store's status when the log has none)
    assert [event for event in site.events(job_id) if event["kind"] == "status"] == []

    filler.unlink()
    later = site.add_job(compendium)
    assert wait_ended(site, later).status == "success"
    final = site.events(later)[-1]
    assert (final["kind"], final["status"]) == ("status", "success")
