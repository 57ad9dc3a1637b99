"""What the backends share: the words of the full-text search, job and shipment updates.

Documents and queries go through one tokenizer here, so that the three backends agree on what a
word is: a run of letters and digits, lower-cased (``temperature_2020.csv`` -> ``temperature``,
``2020``, ``csv``). Query words are plain letters and digits, so no user input can carry
operators into FTS5's or PostgreSQL's query syntax, nor into a MongoDB regular expression.
"""

from __future__ import annotations

import re
from typing import Any

from erchub.services.store.base import (
    JobChanges,
    ShipmentChanges,
    StepTiming,
    given,
    search_fields,
)
from erchub.steps import JobStatus, StepName, StepStatus

#: how much a match in each field counts: title and authors > keywords > description and files,
#: far enough apart that a word in a better field outweighs it in all the lesser ones
FIELD_WEIGHTS = {"title": 10.0, "authors": 10.0, "keywords": 4.0, "description": 1.0, "files": 1.0}

_WORD = re.compile(r"[^\W_]+")
#: longer words are cut: prefix search still finds them, and index keys stay small
MAX_WORD_LENGTH = 64
#: words kept per field: a compendium of 100,000 files must not outgrow an index entry
MAX_FIELD_WORDS = 10_000


def words(text: str) -> list[str]:
    """The words of ``text`` in order, lower-cased, each at most MAX_WORD_LENGTH long."""
    return [word[:MAX_WORD_LENGTH] for word in _WORD.findall(text.lower())]


def query_words(text: str) -> list[str]:
    """The distinct words of a search query; empty when nothing searchable is left."""
    return list(dict.fromkeys(words(text)))


def field_words(metadata: dict[str, Any]) -> dict[str, list[str]]:
    """The words of each search field (see :func:`search_fields`), in FIELD_WEIGHTS' order."""
    fields = {name: words(text) for name, text in search_fields(metadata).items()}
    # search_fields lists each path whole and cut at / . _ -, which this tokenizer cuts alike:
    # a file name's words count once
    fields["files"] = list(dict.fromkeys(fields["files"]))
    return {name: fields[name][:MAX_FIELD_WORDS] for name in FIELD_WEIGHTS}


#: the reason of a job canceled while it was queued
CANCELED_BEFORE_START = "canceled before it started"


def page(start: int, limit: int) -> tuple[int, int]:
    """A query's start and limit, negative values taken as 0."""
    return max(start, 0), max(limit, 0)


def job_values(changes: JobChanges) -> dict[str, Any]:
    """The job's fields (columns, document keys) that ``changes`` sets."""
    values = given(changes)
    if changes.status == JobStatus.QUEUED:
        # Back in the queue (a worker stopping gracefully): no worker holds it any more.
        values.update(worker=None, heartbeat=None)
    return values


def shipment_values(changes: ShipmentChanges) -> dict[str, Any]:
    """The shipment's fields (columns, document keys) that ``changes`` sets."""
    return given(changes)


#: what :meth:`~erchub.services.store.base.Store.step_timings` reads of each step
STEP_TIMING_FIELDS = ("status", "start", "end", "pull")


def timed_steps(steps: dict[str, dict[str, Any]]) -> list[StepTiming]:
    """The steps of one job (step name -> its STEP_TIMING_FIELDS) that ran to an end, in
    o2r's order."""
    timings = []
    for name in StepName:
        step = steps.get(name) or {}
        start, end, pull = step.get("start"), step.get("end"), step.get("pull")
        if start is not None and end is not None:
            timings.append(
                StepTiming(
                    name,
                    StepStatus(step["status"]),
                    float(start),
                    float(end),
                    None if pull is None else float(pull),
                )
            )
    return timings
