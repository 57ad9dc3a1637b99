"""A job that ends while the store is unavailable (its database restarting): the worker tries
to store the end again, every heartbeat interval, for up to the heartbeat timeout, so that the
job is not reaped and run a second time; past that, it gives up (the job is reaped then). No
Docker: a SQLite store whose updates fail for a while."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from erchub.services.jobs.events import EventLog, events_path
from erchub.services.jobs.queue import queue_job
from erchub.services.jobs.worker import Worker
from erchub.services.store import CompendiumRecord, JobRecord, open_store
from erchub.services.store.base import Store, StoreError
from erchub.steps import JobStatus


class FailingUpdates:
    """The store's update_job failing ``failures`` times (StoreError), then the store's own."""

    def __init__(self, store: Store, failures: int) -> None:
        self.store, self.failures, self.calls = store, failures, 0
        self.update_job = store.update_job

    def __call__(self, *args: Any, **kwargs: Any) -> bool:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreError("database: OperationalError: the database system is starting up")
        return bool(self.update_job(*args, **kwargs))


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    store = open_store(f"sqlite:///{tmp_path / 'erchub.sqlite'}")
    worker = Worker(
        data_dir=str(tmp_path),
        store=store,
        worker_id="node-1-7",
        heartbeat_interval=0.05,
        lost_timeout=0.5,
    )
    yield worker
    worker.close()


def running_job(worker: Worker) -> JobRecord:
    """A job that ``worker`` claimed."""
    now = time.time()
    worker.store.add_compendium(
        CompendiumRecord("c1", "author", metadata={}, created=now, updated=now)
    )
    queue_job(worker.store, lambda job_id: worker.jobs_dir / job_id, "c1", "author")
    job = worker.store.claim_job(worker.worker_id, time.time())
    assert job is not None
    return job


def final_statuses(worker: Worker, job_id: str) -> list[str]:
    log = EventLog(events_path(worker.jobs_dir / job_id))
    events, _ = log.read(0, None)
    return [event["status"] for _, event in events if event["kind"] == "status"][1:]


def end_job(worker: Worker, job: JobRecord, failing: FailingUpdates) -> None:
    """End ``job``, ``success``, with ``failing`` as the store's update_job (StoreError when
    the worker gave up)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(worker.store, "update_job", failing)
        worker._finish(job, EventLog(events_path(worker.jobs_dir / job.id)), JobStatus.SUCCESS, "")


def test_an_end_the_store_refuses_for_a_while_is_stored_once_it_answers(worker: Worker) -> None:
    job, failing = running_job(worker), FailingUpdates(worker.store, failures=3)
    end_job(worker, job, failing)

    assert failing.calls == 4
    stored = worker.store.get_job(job.id)
    assert stored is not None and (stored.status, stored.attempts) == (JobStatus.SUCCESS, 1)
    assert final_statuses(worker, job.id) == ["success"]


def test_an_end_the_store_refuses_past_the_heartbeat_timeout_is_given_up(worker: Worker) -> None:
    job, failing = running_job(worker), FailingUpdates(worker.store, failures=1000)
    with pytest.raises(StoreError):
        end_job(worker, job, failing)

    # tried every heartbeat interval within the heartbeat timeout, then left to the reaper
    assert 2 <= failing.calls <= 11
    stored = worker.store.get_job(job.id)
    assert stored is not None and stored.status == JobStatus.RUNNING
    assert final_statuses(worker, job.id) == []
