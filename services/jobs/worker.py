"""The job worker: claims queued jobs from the store and runs them with the job runner.

Any number of workers (``erchub worker`` processes, on one machine or several) share one store
and one data directory. Each loops: re-queue or end the jobs whose worker stopped
heartbeating, claim the oldest queued job (the store makes that atomic), run it, repeat.

While a job runs, a thread heartbeats it to the store every ``heartbeat_interval``; the answer
says whether the job was taken from this worker (it stopped heartbeating for too long), so its
result is dropped. Another thread watches the store for a user's cancel request every
``cancel_poll_interval`` and sets the attempt's cancel event, which stops the running step at
once (the runner kills the build, the container, the check's process or the image export), so
a canceled job ends ``canceled`` within about a second, naming the step that was stopped.
Step changes go to the store and every event to the job's event log (see
:mod:`erchub.services.jobs.events`), which the API streams to clients. An event the disk has
no room for is dropped, with a warning, and the job goes on: the store still gets its steps and
final status, and the API's stream ends with the store's status when the log has none.

A job runs on a snapshot of its compendium, ``jobs/<id>/compendium``, made of hard links (else
reflinks, else copies): a job sees the files as they were when it started, and starting a job
on a large compendium copies no data.

SIGTERM or SIGINT stops a worker gracefully: the running job's container is stopped and the job
goes back to the queue for another worker.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import select
import shutil
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from traitlets import Float, Instance, Int, TraitError, Unicode, default
from traitlets.config import LoggingConfigurable

from erchub import safefs
from erchub.errors import ErchubError, is_storage_full
from erchub.services.jobs.events import (
    EVENTS_FILE,
    Event,
    EventLog,
    events_path,
    status_event,
    step_event,
)
from erchub.services.jobs.runner import JOB_LABEL, JobEvent, JobRunner
from erchub.services.store import default_db_url, open_store
from erchub.services.store.base import WORKER_LOST, JobChanges, JobRecord, Store, StoreError
from erchub.settings import DataDirMixin, env_setting
from erchub.steps import JobOptions, JobStatus, plan_job

HARDLINK, REFLINK, COPY = "hardlink", "reflink", "copy"
#: Linux's ioctl that makes a file share another's blocks (btrfs, XFS, bcachefs, ...)
FICLONE = 0x40049409
#: the job's snapshot of its compendium, inside the job directory
SNAPSHOT_DIR = "compendium"
#: what of the runner's record goes into the job's result in the store
RESULT_FIELDS = (
    "erc_id",
    "main",
    "display",
    "executed",
    "report",
    "check",
    "image",
    "image_id",
    "image_digest",
    "cache_hit",
    "buildpack",
    "execution",
    "image_tar",
)
USER_CANCELED = "canceled by the user"


# -- snapshots -------------------------------------------------------------------------------


def link_tree(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> str:
    """Make ``target`` (which must not exist) a snapshot of the directory ``source``.

    Files become hard links where the filesystem allows, else reflinks (copy-on-write
    clones), else copies; symbolic links are recreated as links and never followed, so
    nothing outside ``source`` is read; other special files are left out. Returns the
    method of the least efficient placement: "hardlink", "reflink" or "copy".
    """
    placer = _Placer()
    os.mkdir(target)
    placer.tree(os.fspath(source), os.fspath(target))
    return placer.method


class _Placer:
    """Places files by the best method that still works; a method that failed once is not
    tried again, since the reason (another filesystem, no reflink support) holds for all."""

    def __init__(self) -> None:
        self.method = HARDLINK

    def tree(self, source: str, target: str) -> None:
        with os.scandir(source) as entries:
            for entry in entries:
                destination = os.path.join(target, entry.name)
                if entry.is_symlink():
                    os.symlink(os.readlink(entry.path), destination)
                elif entry.is_dir(follow_symlinks=False):
                    # the worker's own mode, so that a later attempt can clear the snapshot
                    os.mkdir(destination)
                    self.tree(entry.path, destination)
                elif entry.is_file(follow_symlinks=False):
                    self.place(entry.path, destination)

    def place(self, source: str, target: str) -> None:
        if self.method == HARDLINK:
            try:
                os.link(source, target, follow_symlinks=False)
                return
            except OSError:
                self.method = REFLINK
        if self.method == REFLINK:
            try:
                reflink(source, target)
                return
            except OSError:
                self.method = COPY
        shutil.copy2(source, target, follow_symlinks=False)


def reflink(source: str, target: str) -> None:
    """Clone ``source`` to the new file ``target`` sharing its blocks (copy-on-write)."""
    with open(source, "rb") as src:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.ioctl(fd, FICLONE, src.fileno())
        except OSError:
            os.close(fd)
            os.unlink(target)
            raise
        os.close(fd)
    shutil.copystat(source, target)


def clear_job_dir(job_dir: Path) -> None:
    """Remove an earlier attempt's files, keeping the event log (its ids must go on)."""
    for entry in job_dir.iterdir():
        if entry.name != EVENTS_FILE:
            safefs.remove_tree(entry)


class _JobEventLog(EventLog):
    """A job's event log as its worker appends to it: an event the disk has no room for is
    dropped with a warning, never raised, so that a full disk ends no job and no worker."""

    def __init__(self, path: Path, log: logging.Logger | logging.LoggerAdapter[Any]) -> None:
        super().__init__(path)
        self.log = log

    def append(self, event: Event) -> None:
        try:
            super().append(event)
        except OSError as exc:
            if not is_storage_full(exc):
                raise
            self.log.warning(
                "job %s: %s event not logged: %s", self.path.parent.name, event["kind"], exc
            )


# -- the worker ------------------------------------------------------------------------------


def worker_node(worker_id: str) -> str:
    """The host a worker runs on, as its id tells: the id without its last ``-<number>`` (the
    default id, :attr:`Worker.worker_id`, is ``<hostname>-<pid>``); an id that does not end
    so is taken as its host's name."""
    host, _, pid = worker_id.rpartition("-")
    return host if host and pid.isdigit() else worker_id


@dataclass
class _Attempt:
    """A job while this worker runs it, shared with the heartbeat thread."""

    job: JobRecord
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    #: the store gave the job to another worker (this one heartbeat too late)
    lost: bool = False
    user_canceled: bool = False


class Worker(DataDirMixin, LoggingConfigurable):
    """Claims queued jobs from the store and runs them, one at a time.

    ``data_dir`` (:class:`~erchub.settings.DataDirMixin`) is the service's: it starts its
    workers with ``--data-dir``.
    """

    db_url = Unicode(
        help="Store URL: sqlite:///FILE, postgresql+psycopg://..., mongodb://... (default: "
        "$ERCHUB_DB_URL, else sqlite:///<data_dir>/erchub.sqlite)."
    ).tag(config=True)

    @default("db_url")
    def _default_db_url(self) -> str:
        return str(env_setting("db_url", self.traits()["db_url"], default_db_url(self.data_dir)))

    worker_id = Unicode(
        help="This worker's name in the store, unique among the workers (default: "
        "<hostname>-<pid>)."
    ).tag(config=True)

    @default("worker_id")
    def _default_worker_id(self) -> str:
        return f"{socket.gethostname()}-{os.getpid()}"

    poll_interval = Float(
        1.0, min=0.01, help="Seconds an idle worker waits before looking for a job (default: 1.0)."
    ).tag(config=True)

    heartbeat_interval = Float(
        2.0,
        min=0.01,
        help="Seconds between a running job's heartbeats to the store (default: 2.0).",
    ).tag(config=True)

    cancel_poll_interval = Float(
        0.5,
        min=0.01,
        help="Seconds between a running job's looks at the store for a cancel request: the "
        "running step is stopped within this time and a fraction of a second (default: 0.5).",
    ).tag(config=True)

    lost_timeout = Float(
        30.0,
        min=0.01,
        help="Seconds without a heartbeat after which a running job's worker counts as lost "
        "and the job is re-queued or ended; at least twice heartbeat_interval (default: 30).",
    ).tag(config=True)

    max_attempts = Int(
        2,
        min=1,
        help="How often a job may be claimed: a job whose worker was lost is re-queued while "
        "it has had fewer attempts, else it ends failure, 'worker lost' (default: 2).",
    ).tag(config=True)

    runner = Instance(JobRunner, help="Runs each job (default: a JobRunner on data_dir).")

    @default("runner")
    def _default_runner(self) -> JobRunner:
        # data_dir given, so that a c.JobRunner.data_dir cannot part the runner's jobs from
        # the worker's (the snapshot, the event log)
        return JobRunner(parent=self, data_dir=self.data_dir)

    store = Instance(
        "erchub.services.store.base.Store", help="The store (default: open_store(db_url))."
    )

    @default("store")
    def _default_store(self) -> Store:
        return open_store(self.db_url)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._stopping = False
        self._attempt: _Attempt | None = None
        self._cancel_lock = threading.Lock()
        # A pipe rather than an Event wakes an idle worker: a signal handler may write to it
        # whatever the main thread was doing, where Event.set could wait on a lock the main
        # thread holds.
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)

    def close(self) -> None:
        """Release the worker's wake-up pipe and close its store."""
        os.close(self._wake_read)
        os.close(self._wake_write)
        if self.trait_has_value("store"):
            self.store.close()

    @property
    def jobs_dir(self) -> Path:
        return Path(self.data_dir) / "jobs"

    @property
    def compendia_dir(self) -> Path:
        return Path(self.data_dir) / "compendia"

    def check_settings(self) -> None:
        """Raise TraitError for a bad setting, here or in the runner's parts, before any job.
        With networked executions allowed, their network and its firewall are made now: a
        worker that cannot (no root, no iptables) refuses to start."""
        _ = (self.runner.docker_runtime, self.runner.local_runtime, self.runner.builder)
        if self.lost_timeout < 2 * self.heartbeat_interval:
            raise TraitError(
                f"Worker.lost_timeout ({self.lost_timeout:g} s) must be at least twice "
                f"Worker.heartbeat_interval ({self.heartbeat_interval:g} s), or running jobs "
                "count as lost"
            )
        if self.runner.allow_network:
            runtime = self.runner.docker_runtime
            _ = (runtime.blocked_ranges, runtime.dns_servers)
            try:
                name = runtime.prepare_network()
            except ErchubError as exc:
                raise TraitError(f"JobRunner.allow_network is on, but {exc}") from None
            self.log.info(
                "worker %s: networked executions allowed, on %s (blocked: host, %s)",
                self.worker_id,
                name,
                ", ".join(runtime.blocked_ranges) or "nothing else",
            )

    # -- the loop ----------------------------------------------------------------------------

    def serve(self, once: bool = False) -> None:
        """Reap, claim and run jobs until stopped; with ``once``, after at most one job."""
        self.check_settings()
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = {}
        if in_main_thread:
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, self._on_signal)
        scheme = self.db_url.partition(":")[0]
        try:
            self.runner.keep_check_process_ready()
        except OSError as exc:  # each check then starts its own, or says why it cannot
            self.log.warning("worker %s: no check process ready: %s", self.worker_id, exc)
        self.log.info("worker %s: ready (store %s, data %s)", self.worker_id, scheme, self.data_dir)
        try:
            while not self._stopping:
                job = None
                try:
                    self.reap()
                    job = self.store.claim_job(self.worker_id, time.time())
                    if job is not None:
                        self.run_job(job)
                except StoreError as exc:
                    # A job whose end could not be stored stops heartbeating: it is reaped.
                    self.log.error("worker %s: store unavailable: %s", self.worker_id, exc)
                if once:
                    break
                if job is None:
                    self._idle(self.poll_interval)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.log.info("worker %s: stopped", self.worker_id)

    def stop(self) -> None:
        """End the loop; a running job is stopped (its container removed) and re-queued."""
        self._stopping = True
        with contextlib.suppress(BlockingIOError):  # a wake-up is pending already
            os.write(self._wake_write, b"\0")
        attempt = self._attempt
        if attempt is not None:
            attempt.cancel.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.log.info(
            "worker %s: %s received, stopping", self.worker_id, signal.Signals(signum).name
        )
        self.stop()

    def _idle(self, seconds: float) -> None:
        readable, _, _ = select.select([self._wake_read], [], [], seconds)
        if readable:
            os.read(self._wake_read, 512)

    def reap(self) -> list[JobRecord]:
        """Re-queue or end the jobs whose worker stopped heartbeating."""
        now = time.time()
        reaped = self.store.reap_lost_jobs(now - self.lost_timeout, now, self.max_attempts)
        for job in reaped:
            requeued = job.status == JobStatus.QUEUED
            self.log.warning(
                "job %s: worker lost, %s", job.id, "re-queued" if requeued else "ended failure"
            )
            reason = "worker lost, re-queued" if requeued else WORKER_LOST
            self._event_log(job.id).append(status_event(job.status, reason))
            self.remove_containers(job.id)
        return reaped

    def remove_containers(self, job_id: str) -> int:
        """Remove the job's execution containers left by a lost worker; best effort."""
        try:
            import docker.errors

            from erchub.spawner.clients import docker_client

            client = docker_client()
            containers = client.containers.list(
                all=True, filters={"label": f"{JOB_LABEL}={job_id}"}
            )
        except Exception as exc:  # no docker SDK or no engine: no container to remove
            self.log.debug("job %s: not looking for containers: %s", job_id, exc)
            return 0
        removed = 0
        for container in containers:
            try:
                container.remove(force=True)
                removed += 1
            except docker.errors.APIError as exc:
                self.log.warning("job %s: cannot remove container %s: %s", job_id, container, exc)
        if removed:
            self.log.info("job %s: removed %d container(s) of a lost attempt", job_id, removed)
        return removed

    def _event_log(self, job_id: str) -> EventLog:
        job_dir = self.jobs_dir / job_id
        job_dir.mkdir(parents=True, exist_ok=True)
        return _JobEventLog(events_path(job_dir), self.log)

    # -- one job -----------------------------------------------------------------------------

    def run_job(self, job: JobRecord) -> None:
        """Run a claimed job and record its end (or hand it back when the worker stops)."""
        started = time.monotonic()
        events = self._event_log(job.id)
        job_dir = self.jobs_dir / job.id
        if job.attempts > 1:
            # The lost attempt's container may still run and write into the job directory.
            self.remove_containers(job.id)
        events.append(
            status_event(JobStatus.RUNNING, f"worker {self.worker_id}, attempt {job.attempts}")
        )
        try:
            clear_job_dir(job_dir)
            method = link_tree(self.compendia_dir / job.compendium_id, job_dir / SNAPSHOT_DIR)
        except OSError as exc:
            self.log.error("job %s: no snapshot of %s: %s", job.id, job.compendium_id, exc)
            if exc.errno == errno.ENOENT:
                self._finish(job, events, JobStatus.FAILURE, "the compendium's files are missing")
            else:
                self._finish(
                    job,
                    events,
                    JobStatus.FAILURE,
                    f"cannot snapshot the compendium: {exc.strerror}",
                )
            return
        self.log.info(
            "job %s: started, attempt %d, compendium %s (snapshot by %s)",
            job.id,
            job.attempts,
            job.compendium_id,
            method,
        )
        attempt = _Attempt(job)
        self._attempt = attempt
        if self._stopping:  # a stop request arrived before the attempt was registered
            attempt.cancel.set()
        heartbeat = threading.Thread(
            target=self._heartbeat, args=(attempt,), name=f"heartbeat-{job.id}", daemon=True
        )
        heartbeat.start()
        watcher = threading.Thread(
            target=self._watch_cancel, args=(attempt,), name=f"cancel-{job.id}", daemon=True
        )
        watcher.start()
        try:
            result = self.runner.run(
                job_dir / SNAPSHOT_DIR,
                values=job.parameters,
                options=JobOptions(),
                on_event=lambda event: self._on_event(attempt, events, event),
                cancel=attempt.cancel,
                job_id=job.id,
                on_save=lambda record: self._on_save(attempt, record),
                network_granted=job.network_granted,
            )
        except Exception as exc:  # the runner keeps step faults in the record; this is a bug
            self.log.exception("job %s: the runner crashed", job.id)
            status = JobStatus.FAILURE
            reason, record = f"internal error: {type(exc).__name__}: {exc}", None
        else:
            status, record = result.status, result.record
            reason = result.job.failure_reason
            if status == JobStatus.CANCELED:
                reason = reason or USER_CANCELED
        finally:
            attempt.done.set()
            heartbeat.join()
            watcher.join()
            self._attempt = None
        seconds = time.monotonic() - started
        if attempt.lost:
            self.log.warning(
                "job %s: taken over after %.1f s (heartbeats too late); result dropped",
                job.id,
                seconds,
            )
        elif status == JobStatus.CANCELED and self._stopping and not attempt.user_canceled:
            self._requeue(job, events, seconds)
        else:
            self._finish(job, events, status, reason, record)
            self.log.info("job %s: %s after %.1f s", job.id, status, seconds)

    def _finish(
        self,
        job: JobRecord,
        events: EventLog,
        status: JobStatus,
        reason: str,
        record: dict[str, Any] | None = None,
    ) -> None:
        steps = result = None
        if record is not None:
            steps = record["steps"]
            result = {key: record[key] for key in RESULT_FIELDS if key in record}
        changes = JobChanges(
            status=status, reason=reason, finished=time.time(), steps=steps, result=result
        )
        # The store first: a client that sees the final event fetches the job and its result.
        if self._store_end(job.id, changes):
            events.append(status_event(status, reason))
        else:
            self.log.warning("job %s: taken from this worker; its end is not recorded", job.id)

    def _store_end(self, job_id: str, changes: JobChanges) -> bool:
        """Store a job's end (whether it was still this worker's, as update_job), trying again
        every heartbeat_interval while the store is unavailable (a database restarting) for up
        to lost_timeout: a job whose end could not be stored would be reaped and run again.
        The update applies only while this worker holds the job, so a try after another worker
        took it over records nothing. StoreError when the store stays unavailable."""
        deadline = time.monotonic() + self.lost_timeout
        while True:
            try:
                return self.store.update_job(job_id, changes, worker=self.worker_id)
            except StoreError as exc:
                if time.monotonic() + self.heartbeat_interval > deadline:
                    raise
                self.log.warning("job %s: end not stored yet, trying again: %s", job_id, exc)
            time.sleep(self.heartbeat_interval)

    def _requeue(self, job: JobRecord, events: EventLog, seconds: float) -> None:
        # The job did nothing wrong: this attempt does not count against it. Queued, it is let
        # go of: no worker, no heartbeat (JobChanges).
        changes = JobChanges(
            status=JobStatus.QUEUED,
            steps=plan_job(JobOptions()).to_json()["steps"],
            attempts=max(job.attempts - 1, 0),
        )
        if self.store.update_job(job.id, changes, worker=self.worker_id):
            events.append(status_event(JobStatus.QUEUED, "worker stopped"))
        self.log.info("job %s: re-queued after %.1f s, the worker stops", job.id, seconds)

    def _on_event(self, attempt: _Attempt, events: EventLog, event: JobEvent) -> None:
        if not attempt.lost:  # the attempt that took over owns the log now
            events.append(step_event(event))

    def _on_save(self, attempt: _Attempt, record: dict[str, Any]) -> None:
        if attempt.lost:
            return
        try:
            self.store.update_job(
                attempt.job.id,
                JobChanges(status=JobStatus.RUNNING, steps=record["steps"]),
                worker=self.worker_id,
            )
        except StoreError as exc:
            # A passing database fault must not end the job; the heartbeat decides whether
            # this worker still holds it.
            self.log.warning("job %s: steps not stored: %s", attempt.job.id, exc)

    def _heartbeat(self, attempt: _Attempt) -> None:
        job_id = attempt.job.id
        while not attempt.done.wait(self.heartbeat_interval):
            try:
                current = self.store.heartbeat(job_id, self.worker_id, time.time())
            except StoreError as exc:
                self.log.warning("job %s: heartbeat failed: %s", job_id, exc)
                continue
            if current is None:
                attempt.lost = True
                attempt.cancel.set()
                return
            if current.cancel_requested:
                self._user_canceled(attempt)

    def _watch_cancel(self, attempt: _Attempt) -> None:
        """Look at the store for a cancel request every cancel_poll_interval, until the job
        ends; a request sets the attempt's cancel event, which stops the running step."""
        job_id = attempt.job.id
        while not attempt.done.wait(self.cancel_poll_interval):
            try:
                current = self.store.get_job(job_id)
            except StoreError as exc:
                self.log.debug("job %s: no look for a cancel: %s", job_id, exc)
                continue
            if current is not None and current.cancel_requested:
                self._user_canceled(attempt)
                return

    def _user_canceled(self, attempt: _Attempt) -> None:
        with self._cancel_lock:
            if attempt.user_canceled:
                return
            attempt.user_canceled = True
        self.log.info("job %s: cancel requested", attempt.job.id)
        attempt.cancel.set()
