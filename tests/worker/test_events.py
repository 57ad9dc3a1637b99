"""The job event log: one JSON line per event, resumable by id, tailed by byte offset."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from erchub.services.jobs.events import (
    EventCursor,
    EventLog,
    events_path,
    is_final,
    status_event,
    step_event,
)
from erchub.services.jobs.runner import JobEvent
from erchub.steps import EventKind, JobStatus, StepName, StepStatus


@pytest.fixture
def log(tmp_path: Path) -> EventLog:
    return EventLog(events_path(tmp_path))


def test_events_are_numbered_by_line_and_resumable_after_an_id(log):
    for n in range(5):
        log.append({"kind": "log", "step": "image_build", "line": f"line {n}", "time": n})
    events, cursor = log.read()
    assert [event_id for event_id, _ in events] == [1, 2, 3, 4, 5]
    assert events[2][1]["line"] == "line 2"
    resumed, _ = log.read(after=3)
    assert [(event_id, event["line"]) for event_id, event in resumed] == [
        (4, "line 3"),
        (5, "line 4"),
    ]
    assert cursor == EventCursor(offset=log.path.stat().st_size, last_id=5)


def test_a_tail_reads_only_what_was_appended_since(log, monkeypatch):
    log.append(status_event("queued", now=1.0))
    first, cursor = log.read()
    assert [event_id for event_id, _ in first] == [1]
    nothing, same = log.read(cursor=cursor)
    assert nothing == [] and same == cursor
    log.append(status_event("running", "worker w, attempt 1", now=2.0))

    seen_offsets = []
    real_open = open

    def spying_open(path, mode="r", *args, **kwargs):
        stream = real_open(path, mode, *args, **kwargs)
        real_seek = stream.seek
        stream.seek = lambda offset, *a: seen_offsets.append(offset) or real_seek(offset, *a)
        return stream

    monkeypatch.setattr("builtins.open", spying_open)
    more, cursor = log.read(cursor=cursor)
    assert seen_offsets == [len(log.path.read_bytes().splitlines(keepends=True)[0])]
    assert more == [(2, status_event("running", "worker w, attempt 1", now=2.0))]
    assert cursor.last_id == 2


def test_a_partly_written_last_line_waits_until_it_is_complete(log):
    log.append(status_event("running", now=1.0))
    line = json.dumps({"kind": "log", "step": "check", "line": "half", "time": 2.0}) + "\n"
    with open(log.path, "a", encoding="utf-8") as stream:
        stream.write(line[:10])
    events, cursor = log.read()
    assert [event_id for event_id, _ in events] == [1]
    with open(log.path, "a", encoding="utf-8") as stream:
        stream.write(line[10:])
    events, cursor = log.read(cursor=cursor)
    assert events == [(2, json.loads(line))]


def test_a_torn_line_keeps_its_id_and_is_skipped(log):
    log.append(status_event("running", now=1.0))
    with open(log.path, "a", encoding="utf-8") as stream:
        stream.write('{"kind": "log", "li\n')
    log.append(status_event("success", now=3.0))
    events, _ = log.read()
    assert [event_id for event_id, _ in events] == [1, 3]


def test_a_missing_log_has_no_events_yet(tmp_path):
    events, cursor = EventLog(tmp_path / "absent.jsonl").read(after=4)
    assert events == [] and cursor == EventCursor()


def _append_many(path: str, writer: int, count: int) -> None:
    log = EventLog(path)
    for n in range(count):
        # long lines: more than a pipe buffer's atomic size, several per page
        log.append({"kind": "log", "step": "image_execute", "line": f"{writer}:{n}:" + "x" * 9000})


def test_concurrent_writers_never_interleave_within_a_line(log):
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_append_many, args=(str(log.path), w, 200)) for w in range(4)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(30)
        assert process.exitcode == 0
    events, _ = log.read()
    assert len(events) == 800
    seen = {event["line"].split(":")[0] + ":" + event["line"].split(":")[1] for _, event in events}
    assert len(seen) == 800


def test_runner_events_keep_their_shapes():
    running = JobEvent(EventKind.STEP, StepName.IMAGE_BUILD, status=StepStatus.RUNNING)
    assert step_event(running, now=5.0) == {
        "kind": "step",
        "step": "image_build",
        "status": "running",
        "time": 5.0,
    }
    # the event log holds plain strings, the o2r ones
    shown = step_event(running, now=5.0)
    assert all(type(shown[key]) is str for key in ("kind", "step", "status"))
    # a runner event given strings holds the members they name; others are refused
    assert JobEvent("step", "image_build", status="running") == running
    with pytest.raises(ValueError):
        JobEvent("step", "image_build", status="done")
    with pytest.raises(ValueError):
        JobEvent("step", "image_rebuild")
    with pytest.raises(ValueError, match="not a runner event kind"):
        step_event(JobEvent(EventKind.STATUS, StepName.CHECK))
    assert step_event(JobEvent("log", "image_build", line="Step 1/9"), now=5.0) == {
        "kind": "log",
        "step": "image_build",
        "line": "Step 1/9",
        "time": 5.0,
    }
    assert step_event(JobEvent("progress", "image_execute", done=2, total=7), now=5.0) == {
        "kind": "progress",
        "step": "image_execute",
        "done": 2,
        "total": 7,
        "time": 5.0,
    }
    final = status_event(JobStatus.FAILURE, "worker lost", now=6.0)
    assert final == {"kind": "status", "status": "failure", "reason": "worker lost", "time": 6.0}
    assert type(final["status"]) is str and type(final["kind"]) is str
    assert is_final(final)
    assert not is_final(status_event("queued", "worker lost, re-queued"))
    assert not is_final({"kind": "step", "step": "check", "status": "success"})


def test_unicode_lines_round_trip(log):
    log.append({"kind": "log", "step": "check", "line": "naïve ≠ \u2028 done", "time": 1.0})
    [(event_id, event)], _ = log.read()
    assert event_id == 1 and event["line"] == "naïve ≠ \u2028 done"
