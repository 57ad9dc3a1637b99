"""The job event log on a full disk: a line an append could not finish is ended by the next
append, so the events after it are read; a worker's appends drop what the disk has no room
for instead of raising (the store keeps the job's steps and end)."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest

from erchub.services.jobs.events import EventLog, events_path, status_event
from erchub.services.jobs.worker import Worker
from erchub.steps import JobStatus

#: the start of an event line that a full disk cut short
UNFINISHED = b'{"kind":"log","step":"image_execute","li'


def test_an_append_after_an_unfinished_line_ends_it_and_is_read(tmp_path: Path) -> None:
    log = EventLog(events_path(tmp_path))
    log.append(status_event(JobStatus.RUNNING, now=1.0))
    first, cursor = log.read()
    with open(log.path, "ab") as stream:
        stream.write(UNFINISHED)

    log.append(status_event(JobStatus.FAILURE, "the disk was full", now=2.0))

    # the unfinished line keeps its id (2) and is skipped, by a tail and by a new reader
    tail, _ = log.read(cursor=cursor)
    assert tail == [(3, status_event(JobStatus.FAILURE, "the disk was full", now=2.0))]
    everything, _ = log.read()
    assert [(event_id, event["status"]) for event_id, event in everything] == [
        (1, "running"),
        (3, "failure"),
    ]
    assert first == everything[:1]


def test_an_append_to_a_log_of_complete_lines_adds_one_line(tmp_path: Path) -> None:
    log = EventLog(events_path(tmp_path))
    log.append(status_event(JobStatus.QUEUED, now=1.0))
    log.append(status_event(JobStatus.RUNNING, now=2.0))
    assert log.path.read_bytes().count(b"\n") == 2


def no_room(fd: int, data: bytes) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_workers_append_on_a_full_disk_is_dropped_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker(data_dir=str(tmp_path))
    try:
        log = worker._event_log("20260101T000000-abcdef")
        monkeypatch.setattr("os.write", no_room)
        with caplog.at_level(logging.WARNING):
            log.append(status_event(JobStatus.RUNNING, now=1.0))
    finally:
        worker.close()
    assert "job 20260101T000000-abcdef: status event not logged" in caplog.text
    assert log.read()[0] == []


def test_a_workers_append_raises_other_faults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int, data: bytes) -> int:
        raise OSError(errno.EIO, "Input/output error")

    worker = Worker(data_dir=str(tmp_path))
    try:
        log = worker._event_log("20260101T000000-abcdef")
        monkeypatch.setattr("os.write", broken)
        with pytest.raises(OSError, match="Input/output error"):
            log.append(status_event(JobStatus.RUNNING, now=1.0))
    finally:
        worker.close()
