"""The job event log: ``data_dir/jobs/<job_id>/events.jsonl``, one JSON object per line.

The worker running a job appends to it; the API's Server-Sent Events handler tails it. An
event's id is its 1-based line number, so a client resumes with ``Last-Event-ID`` by asking
for the events after that id. Several writers (a worker that lost its job and the worker that
took it over) may append to one log: each event is one ``write`` on a file opened with
``O_APPEND``, which the kernel never interleaves with another within a line. A line left
unfinished (the disk was full in the middle of it, or its writer died) is ended by the next
append: it stays one unreadable line, skipped by readers, and the events after it are read.

Event shapes (``kind`` an :class:`~erchub.steps.EventKind`, ``step`` a
:class:`~erchub.steps.StepName`, ``status`` a :class:`~erchub.steps.StepStatus` or
:class:`~erchub.steps.JobStatus`, each written as its string)::

    {"kind": "step", "step": NAME, "status": STEP_STATUS, "time": t}
    {"kind": "log", "step": NAME, "line": TEXT, "time": t}
    {"kind": "progress", "step": "image_execute", "done": n, "total": m, "time": t}
    {"kind": "status", "status": JOB_STATUS, "reason": TEXT, "time": t}

``status`` events mark job status changes: running (claimed by a worker), queued again (its
worker was lost or stopped) and the final status, which is the log's last event.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from erchub.steps import FINAL_JOB_STATUSES, EventKind, JobStatus

if TYPE_CHECKING:  # the API process reads logs without importing the runner
    from erchub.services.jobs.runner import JobEvent

EVENTS_FILE = "events.jsonl"

Event = dict[str, Any]


@dataclass(frozen=True)
class EventCursor:
    """Where a reader stopped: the byte offset after the last complete line it read, and
    that line's event id."""

    offset: int = 0
    last_id: int = 0


def events_path(job_dir: str | os.PathLike[str]) -> Path:
    """The event log of the job whose directory is ``job_dir``."""
    return Path(job_dir) / EVENTS_FILE


def step_event(event: JobEvent, now: float | None = None) -> Event:
    """The log's form of a runner event (step change, log line or execution progress)."""
    stamp = time.time() if now is None else now
    step = event.step.value
    if event.kind == EventKind.STEP:
        status = event.status.value if event.status is not None else None
        return {"kind": EventKind.STEP.value, "step": step, "status": status, "time": stamp}
    if event.kind == EventKind.LOG:
        return {"kind": EventKind.LOG.value, "step": step, "line": event.line, "time": stamp}
    if event.kind == EventKind.PROGRESS:
        return {
            "kind": EventKind.PROGRESS.value,
            "step": step,
            "done": event.done,
            "total": event.total,
            "time": stamp,
        }
    raise ValueError(f"not a runner event kind: {event.kind!r}")


def status_event(status: JobStatus, reason: str = "", now: float | None = None) -> Event:
    return {
        "kind": EventKind.STATUS.value,
        "status": JobStatus(status).value,
        "reason": reason,
        "time": time.time() if now is None else now,
    }


def is_final(event: Event) -> bool:
    """Whether this event ends the job's log (its final status)."""
    return event.get("kind") == EventKind.STATUS and event.get("status") in FINAL_JOB_STATUSES


class EventLog:
    """Appends to and reads one job's event log."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, event: Event) -> None:
        """Append one event as one line, written with a single O_APPEND write (after a line
        break that ends an unfinished last line, if there is one). Raises OSError when the
        disk has no room for it (ENOSPC, EDQUOT)."""
        data = (json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
            written = os.write(fd, data)
            # A regular file takes the whole line unless the disk is full; the rest is tried
            # again, and when there is no room for it (OSError), the next append ends the line.
            while written < len(data):
                written += os.write(fd, data[written:])
        finally:
            os.close(fd)

    def read(
        self, after: int = 0, cursor: EventCursor | None = None
    ) -> tuple[list[tuple[int, Event]], EventCursor]:
        """The complete events with an id above ``after``, and the cursor to continue from.

        Without a cursor the file is read from its start; with one, only the bytes written
        since (a tail never rereads the file). A last line still being written is left for a
        later read. A line that is not a JSON object (a torn write after a crash) keeps its id
        but is skipped. A missing file has no events yet.
        """
        cursor = cursor or EventCursor()
        try:
            with open(self.path, "rb") as stream:
                stream.seek(cursor.offset)
                data = stream.read()
        except FileNotFoundError:
            return [], cursor
        end = data.rfind(b"\n") + 1
        events: list[tuple[int, Event]] = []
        event_id = cursor.last_id
        for line in data[:end].split(b"\n")[:-1]:
            event_id += 1
            if event_id <= after:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append((event_id, event))
        return events, EventCursor(cursor.offset + end, event_id)
