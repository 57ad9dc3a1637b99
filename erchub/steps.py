"""The job step plan: o2r's step names and the state machine of a job, free of I/O.

A job is a fixed sequence of steps. ``plan_job`` decides up front which steps will run and
which are skipped (check not requested, image not saved, no image for the local runtime).
While the runner works it moves steps through ``queued -> running -> success|failure``; when a
step fails every later step except ``cleanup`` is skipped, and the job ends ``failure``. A
canceled job ends ``canceled`` the same way. The runner does the I/O; this module only keeps
the record straight, so it is tested without Docker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

STEP_NAMES = (
    "validate_compendium",
    "generate_configuration",
    "generate_manifest",
    "image_build",
    "image_execute",
    "check",
    "image_save",
    "cleanup",
)

QUEUED, RUNNING, SUCCESS, FAILURE, SKIPPED, CANCELED = (
    "queued",
    "running",
    "success",
    "failure",
    "skipped",
    "canceled",
)
STEP_STATUSES = (QUEUED, RUNNING, SUCCESS, FAILURE, SKIPPED)
JOB_STATUSES = (QUEUED, RUNNING, SUCCESS, FAILURE, CANCELED)
FINAL_STEP_STATUSES = (SUCCESS, FAILURE, SKIPPED)

#: the step that runs whatever happened before it
ALWAYS_RUNS = "cleanup"

Clock = Callable[[], float]


class StepOrderError(RuntimeError):
    """The runner moved a step out of order: a bug in the runner, not a user error."""


@dataclass
class Step:
    """One step of a job with its record."""

    name: str
    status: str = QUEUED
    start: float | None = None
    end: float | None = None
    text: list[str] = field(default_factory=list)
    #: why a step was skipped or failed, in words a user understands
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "start": self.start,
            "end": self.end,
            "text": list(self.text),
            "reason": self.reason,
        }


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
    status: str = QUEUED
    clock: Clock = time.time

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def pending(self) -> Iterator[Step]:
        """The steps still to run, in order (re-evaluated as steps finish)."""
        for step in self.steps:
            if step.status == QUEUED:
                yield step

    def start(self, name: str) -> Step:
        step = self.step(name)
        if step.status != QUEUED:
            raise StepOrderError(f"step {name} is {step.status}, not queued")
        earlier = self.steps[: self.steps.index(step)]
        if any(s.status in (QUEUED, RUNNING) for s in earlier):
            raise StepOrderError(f"step {name} started before the steps ahead of it ended")
        step.status = RUNNING
        step.start = self.clock()
        if self.status == QUEUED:
            self.status = RUNNING
        return step

    def log(self, name: str, line: str) -> None:
        self.step(name).text.append(line)

    def succeed(self, name: str) -> Step:
        return self._finish(name, SUCCESS, "")

    def fail(self, name: str, reason: str) -> Step:
        """End a step as failure; every later step but cleanup is skipped."""
        step = self._finish(name, FAILURE, reason)
        self._skip_rest(after=step, reason=f"skipped because {name} failed")
        return step

    def cancel(self, reason: str = "canceled by the user") -> None:
        """Cancel: a running step fails, the queued ones are skipped, cleanup still runs."""
        for step in self.steps:
            if step.status == RUNNING:
                self._finish(step.name, FAILURE, reason)
            elif step.status == QUEUED and step.name != ALWAYS_RUNS:
                step.status = SKIPPED
                step.reason = reason
        self.status = CANCELED

    def finish(self) -> str:
        """Close the job once no step is queued or running; returns the job status."""
        if any(s.status in (QUEUED, RUNNING) for s in self.steps):
            raise StepOrderError("job finished with steps still queued or running")
        if self.status != CANCELED:
            failed = any(s.status == FAILURE for s in self.steps)
            self.status = FAILURE if failed else SUCCESS
        return self.status

    @property
    def failure_reason(self) -> str:
        for step in self.steps:
            if step.status == FAILURE:
                return f"{step.name}: {step.reason}"
        return ""

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "steps": {s.name: s.to_json() for s in self.steps}}

    def _finish(self, name: str, status: str, reason: str) -> Step:
        step = self.step(name)
        if step.status != RUNNING:
            raise StepOrderError(f"step {name} is {step.status}, not running")
        step.status = status
        step.reason = reason
        step.end = self.clock()
        return step

    def _skip_rest(self, after: Step, reason: str) -> None:
        for step in self.steps[self.steps.index(after) + 1 :]:
            if step.status == QUEUED and step.name != ALWAYS_RUNS:
                step.status = SKIPPED
                step.reason = reason


def plan_job(options: JobOptions, clock: Clock = time.time) -> Job:
    """The steps of a job for these options, with the ones that will not run already skipped."""
    if options.runtime not in ("docker", "local"):
        raise ValueError(f"unknown runtime {options.runtime!r}")
    skipped: dict[str, str] = {}
    if not options.check:
        skipped["check"] = "check not requested"
    if not options.image_save:
        skipped["image_save"] = "saving the image not requested"
    if options.runtime == "local":
        skipped["generate_manifest"] = "local runtime: no image"
        skipped["image_build"] = "local runtime: no image"
        skipped["image_save"] = "local runtime: no image"
    steps = [
        Step(name, status=SKIPPED, reason=skipped[name]) if name in skipped else Step(name)
        for name in STEP_NAMES
    ]
    return Job(steps=steps, clock=clock)
