"""The job step plan: o2r's step names and the state machine of a job, free of I/O.

A job is a fixed sequence of steps. ``plan_job`` decides up front which steps will run and
which are skipped (check not requested, image not saved, no image for the local runtime).
While the runner works it moves steps through ``queued -> running -> success|failure``; when a
step fails every later step except ``cleanup`` is skipped, and the job ends ``failure``. A
canceled job ends ``canceled`` the same way. The runner does the I/O; this module only keeps
the record straight, so it is tested without Docker.

The names and statuses are defined here once, as string enums (:class:`StepName`,
:class:`StepStatus`, :class:`JobStatus`, :class:`EventKind`): a member is its o2r string, so
the store keeps, the event log writes and the API shows exactly that string, and a member
compares equal to the string read back.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - the core still installs on Python 3.10 (runtime images)

    class StrEnum(str, Enum):
        """``enum.StrEnum`` of Python 3.11: members are their values as strings."""

        def __str__(self) -> str:
            return str(self.value)


class StepName(StrEnum):
    """o2r's steps, in the order a job runs them."""

    VALIDATE_COMPENDIUM = "validate_compendium"
    GENERATE_CONFIGURATION = "generate_configuration"
    GENERATE_MANIFEST = "generate_manifest"
    IMAGE_BUILD = "image_build"
    IMAGE_EXECUTE = "image_execute"
    CHECK = "check"
    IMAGE_SAVE = "image_save"
    CLEANUP = "cleanup"


class StepStatus(StrEnum):
    """A step's status: ``queued -> running -> success|failure``, or ``skipped``."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    SKIPPED = "skipped"


class JobStatus(StrEnum):
    """A job's status, as the store keeps it and the API shows it."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELED = "canceled"


#: the statuses a job ends with (a job in one of them changes no more)
FINAL_JOB_STATUSES = frozenset({JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.CANCELED})


class EventKind(StrEnum):
    """What an event of a job reports: the runner's step changes, log lines and execution
    progress, and the job status changes of its event log (``erchub.services.jobs.events``)."""

    STEP = "step"
    LOG = "log"
    PROGRESS = "progress"
    STATUS = "status"


#: the step that runs whatever happened before it
ALWAYS_RUNS = StepName.CLEANUP

Clock = Callable[[], float]


class StepOrderError(RuntimeError):
    """The runner moved a step out of order: a bug in the runner, not a user error."""


@dataclass
class Step:
    """One step of a job with its record."""

    name: StepName
    status: StepStatus = StepStatus.QUEUED
    start: float | None = None
    end: float | None = None
    text: list[str] = field(default_factory=list)
    #: why a step was skipped or failed, in words a user understands
    reason: str = ""
    #: seconds the step spent pulling the runtime image from the registry (image_build: one
    #: another node's builder pushed; image_execute: by digest, on an engine that lacked it);
    #: None when nothing was pulled
    pull: float | None = None

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "name": self.name.value,
            "status": self.status.value,
            "start": self.start,
            "end": self.end,
            "text": list(self.text),
            "reason": self.reason,
        }
        if self.pull is not None:
            shown["pull"] = self.pull
        return shown


@dataclass(frozen=True)
class JobOptions:
    """What a job is asked to do; decides which steps are skipped up front."""

    check: bool = True
    image_save: bool = False
    #: "docker" builds an image and runs the notebook in a container; "local" runs it in a venv
    runtime: str = "docker"


@dataclass
class Job:
    """A job's steps and status. Mutated only through its methods."""

    steps: list[Step]
    status: JobStatus = JobStatus.QUEUED
    clock: Clock = time.time

    def step(self, name: StepName) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def pending(self) -> Iterator[Step]:
        """The steps still to run, in order (re-evaluated as steps finish)."""
        for step in self.steps:
            if step.status == StepStatus.QUEUED:
                yield step

    def start(self, name: StepName) -> Step:
        step = self.step(name)
        if step.status != StepStatus.QUEUED:
            raise StepOrderError(f"step {name} is {step.status}, not queued")
        earlier = self.steps[: self.steps.index(step)]
        if any(s.status in _UNFINISHED for s in earlier):
            raise StepOrderError(f"step {name} started before the steps ahead of it ended")
        step.status = StepStatus.RUNNING
        step.start = self.clock()
        if self.status == JobStatus.QUEUED:
            self.status = JobStatus.RUNNING
        return step

    def log(self, name: StepName, line: str) -> None:
        self.step(name).text.append(line)

    def succeed(self, name: StepName) -> Step:
        return self._finish(name, StepStatus.SUCCESS, "")

    def fail(self, name: StepName, reason: str) -> Step:
        """End a step as failure; every later step but cleanup is skipped."""
        step = self._finish(name, StepStatus.FAILURE, reason)
        self._skip_rest(after=step, reason=f"skipped because {name} failed")
        return step

    def cancel(self, reason: str = "canceled by the user") -> None:
        """Cancel: a running step fails, the queued ones are skipped, cleanup still runs."""
        for step in self.steps:
            if step.status == StepStatus.RUNNING:
                self._finish(step.name, StepStatus.FAILURE, reason)
            elif step.status == StepStatus.QUEUED and step.name != ALWAYS_RUNS:
                step.status = StepStatus.SKIPPED
                step.reason = reason
        self.status = JobStatus.CANCELED

    def finish(self) -> JobStatus:
        """Close the job once no step is queued or running; returns the job status."""
        if any(s.status in _UNFINISHED for s in self.steps):
            raise StepOrderError("job finished with steps still queued or running")
        if self.status != JobStatus.CANCELED:
            failed = any(s.status == StepStatus.FAILURE for s in self.steps)
            self.status = JobStatus.FAILURE if failed else JobStatus.SUCCESS
        return self.status

    @property
    def failure_reason(self) -> str:
        for step in self.steps:
            if step.status == StepStatus.FAILURE:
                return f"{step.name}: {step.reason}"
        return ""

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON values (the enums' strings)."""
        return {
            "status": self.status.value,
            "steps": {s.name.value: s.to_json() for s in self.steps},
        }

    def _finish(self, name: StepName, status: StepStatus, reason: str) -> Step:
        step = self.step(name)
        if step.status != StepStatus.RUNNING:
            raise StepOrderError(f"step {name} is {step.status}, not running")
        step.status = status
        step.reason = reason
        step.end = self.clock()
        return step

    def _skip_rest(self, after: Step, reason: str) -> None:
        for step in self.steps[self.steps.index(after) + 1 :]:
            if step.status == StepStatus.QUEUED and step.name != ALWAYS_RUNS:
                step.status = StepStatus.SKIPPED
                step.reason = reason


_UNFINISHED = (StepStatus.QUEUED, StepStatus.RUNNING)


def plan_job(options: JobOptions, clock: Clock = time.time) -> Job:
    """The steps of a job for these options, with the ones that will not run already skipped."""
    if options.runtime not in ("docker", "local"):
        raise ValueError(f"unknown runtime {options.runtime!r}")
    skipped: dict[StepName, str] = {}
    if not options.check:
        skipped[StepName.CHECK] = "check not requested"
    if not options.image_save:
        skipped[StepName.IMAGE_SAVE] = "saving the image not requested"
    if options.runtime == "local":
        skipped[StepName.GENERATE_MANIFEST] = "local runtime: no image"
        skipped[StepName.IMAGE_BUILD] = "local runtime: no image"
        skipped[StepName.IMAGE_SAVE] = "local runtime: no image"
    steps = [
        Step(name, status=StepStatus.SKIPPED, reason=skipped[name])
        if name in skipped
        else Step(name)
        for name in StepName
    ]
    return Job(steps=steps, clock=clock)
