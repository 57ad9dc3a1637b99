"""The job runner: carries one job through o2r's steps, doing the I/O the plan describes.

``JobRunner.run`` is blocking and meant for a worker process (or the CLI). It reports every
step change and log line through ``on_event`` and keeps ``job.json`` in the job directory
current after each change, so a service can show it and a supervisor can see where it stopped.

Job directory::

    job.json           the record: options, parameters, steps with their text, results
    erc.yml            the effective configuration (generated when the workspace has none)
    Dockerfile         the runtime manifest rendered by repo2docker
    input.ipynb        the main notebook with parameters injected (papermill semantics)
    output/            written by the runtime: executed notebook, display HTML, new files
    check/report.html  the check report (check.json: its summary; with the verdict "no
                       reference outputs", its ``reference`` names the executed notebook
                       and display that could be published as the reference)
    image.tar          the runtime image (docker save), when asked for
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from traitlets import Instance, default
from traitlets.config import LoggingConfigurable

from erchub import checker, erc, parameters, report, safefs, workspace
from erchub.errors import ErchubError
from erchub.services.jobs.runtime import (
    WORKDIR_NAME,
    DockerRuntime,
    ExecutionSpec,
    LocalRuntime,
)
from erchub.settings import DataDirMixin
from erchub.steps import (
    ALWAYS_RUNS,
    EventKind,
    Job,
    JobOptions,
    JobStatus,
    StepName,
    StepStatus,
    plan_job,
)

JOB_FILE = "job.json"
OUTPUT_DIR = "output"
CHECK_DIR = "check"
REPORT_FILE = "check/report.html"
CHECK_SUMMARY_FILE = "check/check.json"
#: the label naming the job on its execution container (a worker removes a lost job's by it)
JOB_LABEL = "org.erchub.job.id"


@dataclass(frozen=True)
class JobEvent:
    """A change a client may show: a step's status, a log line, or execution progress."""

    #: EventKind.STEP, LOG or PROGRESS
    kind: EventKind
    step: StepName
    status: StepStatus | None = None
    line: str | None = None
    done: int | None = None
    total: int | None = None

    def __post_init__(self) -> None:
        # plain strings are checked (ValueError) and kept as the members they name
        object.__setattr__(self, "kind", EventKind(self.kind))
        object.__setattr__(self, "step", StepName(self.step))
        if self.status is not None:
            object.__setattr__(self, "status", StepStatus(self.status))


EventCallback = Callable[[JobEvent], None]
RecordCallback = Callable[[dict[str, Any]], None]


def new_job_id() -> str:
    """Sortable by creation time, unguessable enough to be a URL segment."""
    return time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


@dataclass
class JobResult:
    id: str
    directory: Path
    job: Job
    record: dict[str, Any]

    @property
    def status(self) -> JobStatus:
        return self.job.status

    @property
    def display(self) -> Path | None:
        path = self.record.get("display")
        return self.directory / path if path else None

    @property
    def report(self) -> Path | None:
        path = self.record.get("report")
        return self.directory / path if path else None


class JobRunner(DataDirMixin, LoggingConfigurable):
    """Runs jobs: validate, configure, build the runtime, execute, check, save, clean up.

    Jobs go to ``<data_dir>/jobs`` (:class:`~erchub.settings.DataDirMixin`: a worker's runner
    has the worker's).
    """

    docker_runtime = Instance(DockerRuntime)
    local_runtime = Instance(LocalRuntime)
    builder = Instance("erchub.spawner.builder.ImageBuilder", allow_none=True)

    @default("docker_runtime")
    def _default_docker_runtime(self) -> DockerRuntime:
        return DockerRuntime(parent=self)

    @default("local_runtime")
    def _default_local_runtime(self) -> LocalRuntime:
        return LocalRuntime(parent=self)

    @default("builder")
    def _default_builder(self) -> Any:
        # Imported here: the local runtime works without the hub extra (docker, repo2docker).
        from erchub.spawner.builder import ImageBuilder

        return ImageBuilder(parent=self)

    @property
    def jobs_dir(self) -> Path:
        return Path(self.data_dir) / "jobs"

    def run(
        self,
        compendium: Path,
        *,
        values: Mapping[str, object] | None = None,
        options: JobOptions | None = None,
        on_event: EventCallback | None = None,
        cancel: threading.Event | None = None,
        job_id: str | None = None,
        on_save: RecordCallback | None = None,
    ) -> JobResult:
        """Run a job on a compendium directory (read-only) and return its record.

        The job directory may exist already (a worker keeps its event log there). ``on_save``
        gets the record each time job.json is written: at the start, after every step change,
        at the end.
        """
        options = options or JobOptions()
        job_id = job_id or new_job_id()
        directory = self.jobs_dir / job_id
        directory.mkdir(parents=True, exist_ok=True)
        job = plan_job(options)
        record: dict[str, Any] = {
            "id": job_id,
            "compendium": str(compendium.resolve()),
            "options": {
                "check": options.check,
                "image_save": options.image_save,
                "runtime": options.runtime,
            },
            "parameters": dict(values or {}),
            "created": time.time(),
        }
        run = _JobRun(self, job, record, directory, compendium, options, on_event, cancel, on_save)
        run.execute_all(values or {})
        return JobResult(job_id, directory, job, record)


class _JobRun:
    """One job's state while it runs; each step is a method, found in :data:`STEP_METHODS`."""

    def __init__(
        self,
        runner: JobRunner,
        job: Job,
        record: dict[str, Any],
        directory: Path,
        compendium: Path,
        options: JobOptions,
        on_event: EventCallback | None,
        cancel: threading.Event | None,
        on_save: RecordCallback | None = None,
    ) -> None:
        self.runner = runner
        self.job = job
        self.record = record
        self.directory = directory
        self.compendium = compendium
        self.options = options
        self.on_event = on_event or (lambda event: None)
        self.cancel = cancel or threading.Event()
        self.on_save = on_save or (lambda record: None)
        self.workspace: workspace.Workspace | None = None
        self.values: dict[str, object] = {}
        self.plan: Any = None
        self.image: str | None = None
        self.raw_values: Mapping[str, object] = {}
        self.total_cells: int | None = None

    # -- bookkeeping -------------------------------------------------------------------------

    def save(self) -> None:
        self.record.update(self.job.to_json())
        path = self.directory / JOB_FILE
        staging = path.with_suffix(".json.partial")
        staging.write_text(json.dumps(self.record, indent=2, default=str))
        staging.replace(path)
        self.on_save(self.record)

    def log(self, step: StepName, line: str) -> None:
        self.job.log(step, line)
        self.on_event(JobEvent(EventKind.LOG, step, line=line))

    def execute_all(self, raw_values: Mapping[str, object]) -> None:
        self.raw_values = raw_values
        self.save()
        for step in self.job.pending():
            if self.cancel.is_set() and step.name != ALWAYS_RUNS:
                self.job.cancel()
                self.save()
                continue
            self.job.start(step.name)
            self.on_event(JobEvent(EventKind.STEP, step.name, status=StepStatus.RUNNING))
            self.save()
            try:
                failure = STEP_METHODS[step.name](self)
            except ErchubError as exc:
                failure = str(exc)
            except Exception as exc:  # a bug or an engine fault: keep the job record honest
                self.runner.log.exception("job %s: step %s crashed", self.record["id"], step.name)
                failure = f"internal error: {type(exc).__name__}: {exc}"
            if self.cancel.is_set() and step.name != ALWAYS_RUNS:
                self.job.cancel()
            elif failure:
                self.log(step.name, failure)
                self.job.fail(step.name, failure)
            else:
                self.job.succeed(step.name)
            self.on_event(JobEvent(EventKind.STEP, step.name, status=step.status))
            self.save()
        self.job.finish()
        self.record["finished"] = time.time()
        self.save()

    # -- steps: each returns None on success or a failure message ------------------------------

    def validate_compendium(self) -> str | None:
        self.workspace = workspace.prepare_compendium(self.compendium, write=False)
        main = self.workspace.main_path
        notebook = workspace.load_notebook(main)
        declared = parameters.read_parameters(notebook)
        self.values = parameters.parse_values(declared, self.raw_values)
        self.record.update(erc_id=self.workspace.erc.id, main=self.workspace.erc.main)
        self.log(StepName.VALIDATE_COMPENDIUM, f"main notebook: {self.workspace.erc.main}")
        self.log(StepName.VALIDATE_COMPENDIUM, f"{len(self.workspace.files)} files")
        return None

    def generate_configuration(self) -> str | None:
        assert self.workspace is not None
        (self.directory / erc.ERC_FILENAME).write_text(erc.render_erc(self.workspace.erc))
        existed = (self.compendium / erc.ERC_FILENAME).exists()
        source = "from the workspace" if existed else "generated (the workspace has no erc.yml)"
        self.log(StepName.GENERATE_CONFIGURATION, f"erc.yml {source}")
        return None

    def generate_manifest(self) -> str | None:
        assert self.workspace is not None and self.runner.builder is not None
        self.plan = self.runner.builder.plan(self.compendium, self.workspace.erc.id)
        (self.directory / "Dockerfile").write_text(self.plan.dockerfile)
        self.record.update(image=self.plan.image, buildpack=self.plan.buildpack)
        self.log(StepName.GENERATE_MANIFEST, f"{self.plan.buildpack}: image {self.plan.image}")
        return None

    def image_build(self) -> str | None:
        assert self.runner.builder is not None
        with open(self.directory / "build.log", "w", encoding="utf-8") as build_log:

            def on_log(line: str) -> None:
                build_log.write(line + "\n")
                self.log(StepName.IMAGE_BUILD, line)

            result = self.runner.builder.build(self.plan, on_log=on_log)
        self.image = result.image
        self.record.update(image_id=result.image_id, cache_hit=result.cache_hit)
        verb = "reused" if result.cache_hit else f"built in {result.seconds:.1f} s"
        self.log(StepName.IMAGE_BUILD, f"image {result.image} {verb}")
        return None

    def image_execute(self) -> str | None:
        assert self.workspace is not None
        cfg = self.workspace.erc
        notebook = workspace.load_notebook(self.workspace.main_path)
        injected = parameters.inject_parameters(notebook, self.values) if self.values else notebook
        input_path = self.directory / "input.ipynb"
        nbformat.write(injected, input_path)
        executed_name = Path(cfg.main).name
        display_name = Path(cfg.display).name
        spec = ExecutionSpec(
            compendium=self.compendium,
            notebook=input_path,
            output=self.directory / OUTPUT_DIR,
            executed_name=executed_name,
            display_name=display_name,
            files=tuple(self.workspace.files),
            image=self.image,
            network=cfg.execution.network,
            timeout=cfg.execution.timeout,
            memory=cfg.execution.memory_bytes,
            labels={JOB_LABEL: self.record["id"], "org.erchub.erc.id": cfg.id},
        )
        runtime: DockerRuntime | LocalRuntime
        if self.options.runtime == "local":
            runtime = self.runner.local_runtime
            self.log(StepName.IMAGE_EXECUTE, "local runtime: this run is NOT isolated")
        else:
            runtime = self.runner.docker_runtime
        outcome = runtime.execute(spec, self._on_execution_line, self.cancel)
        self.record.update(
            executed=f"{OUTPUT_DIR}/{executed_name}",
            display=f"{OUTPUT_DIR}/{display_name}",
            execution={
                "status": outcome.status,
                "seconds": round(outcome.seconds, 3),
                "cell_index": outcome.cell_index,
                "ename": outcome.ename,
                "evalue": outcome.evalue,
                "timed_out": outcome.timed_out,
            },
        )
        if not safefs.is_file(self.directory / OUTPUT_DIR, display_name):
            self.record.pop("display")
        if outcome.status != "success":
            return outcome.message or "execution failed"
        self.log(StepName.IMAGE_EXECUTE, f"executed in {outcome.seconds:.1f} s")
        return None

    def _on_execution_line(self, line: str) -> None:
        from erchub.execute import PROGRESS_PREFIX

        if line.startswith(PROGRESS_PREFIX):
            event = json.loads(line[len(PROGRESS_PREFIX) :])
            if event["event"] == "start":
                self.total_cells = event["cells"]
                self.on_event(
                    JobEvent(
                        EventKind.PROGRESS, StepName.IMAGE_EXECUTE, done=0, total=event["cells"]
                    )
                )
            elif event["event"] == "cell_end":
                self.on_event(
                    JobEvent(
                        EventKind.PROGRESS,
                        StepName.IMAGE_EXECUTE,
                        done=event["position"],
                        total=self.total_cells,
                    )
                )
            return
        self.log(StepName.IMAGE_EXECUTE, line)

    def check(self) -> str | None:
        assert self.workspace is not None
        original = workspace.load_notebook(self.workspace.main_path)
        # What the notebook wrote is read as a regular file inside output/, never through a link.
        reproduced = workspace.load_notebook(
            safefs.resolve_inside(self.directory / OUTPUT_DIR, Path(self.record["executed"]).name)
        )
        options = checker.CheckOptions.from_settings(self.workspace.erc.check)
        result = checker.compare_notebooks(original, reproduced, options)
        (self.directory / CHECK_DIR).mkdir(exist_ok=True)
        html = report.render_report(
            result,
            title=f"Check of {self.workspace.erc.main}",
            original_name="published",
            reproduced_name=f"job {self.record['id']}",
        )
        (self.directory / REPORT_FILE).write_text(html, encoding="utf-8")
        summary = result.to_json()
        if result.verdict is checker.Verdict.NO_REFERENCE_OUTPUTS:
            # Nothing was reproduced or not: the run's outputs are what the owner may adopt as
            # the reference (publish its executed notebook); the record says where they are.
            summary["reference"] = {
                key: self.record[key] for key in ("executed", "display") if key in self.record
            }
        (self.directory / CHECK_SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
        self.record.update(report=REPORT_FILE, check=summary)
        counts = result.counts
        if result.verdict is checker.Verdict.NO_REFERENCE_OUTPUTS:
            self.log(
                StepName.CHECK,
                "no reference outputs: the published notebook stores none, so nothing was "
                f"compared; this job's executed notebook ({self.record['executed']}) can be "
                "published as the reference",
            )
            return None
        self.log(
            StepName.CHECK,
            f"{counts['outputs_compared']} outputs compared, "
            f"{counts['outputs_different']} different, {counts['cells_skipped']} cells skipped",
        )
        if not result.passed:
            return (
                f"{counts['cells_different']} of {counts['cells_compared']} cells differ "
                f"(report: {REPORT_FILE})"
            )
        return None

    def image_save(self) -> str | None:
        assert self.image is not None and self.runner.builder is not None
        # the engine that built the image (the builder's client)
        client = self.runner.builder.docker_client
        target = self.directory / "image.tar"
        with open(target, "wb") as out:
            for chunk in client.images.get(self.image).save(named=True):
                out.write(chunk)
        self.record["image_tar"] = target.name
        self.log(
            StepName.IMAGE_SAVE, f"saved {self.image} to image.tar ({target.stat().st_size} bytes)"
        )
        return None

    def cleanup(self) -> str | None:
        workdir = self.directory / OUTPUT_DIR / WORKDIR_NAME
        if os.path.isdir(workdir) and not os.path.islink(workdir):
            # The runtime removed the input mirror's links when the execution ended; the
            # folders that held only links go now, the notebook's own files stay.
            removed = safefs.remove_empty_directories(workdir)
            self.log(StepName.CLEANUP, f"removed {removed} empty folders of the input mirror")
        return None


StepMethod = Callable[[_JobRun], str | None]

#: the method that carries out each step of the plan (each returns None or a failure message)
STEP_METHODS: dict[StepName, StepMethod] = {
    StepName.VALIDATE_COMPENDIUM: _JobRun.validate_compendium,
    StepName.GENERATE_CONFIGURATION: _JobRun.generate_configuration,
    StepName.GENERATE_MANIFEST: _JobRun.generate_manifest,
    StepName.IMAGE_BUILD: _JobRun.image_build,
    StepName.IMAGE_EXECUTE: _JobRun.image_execute,
    StepName.CHECK: _JobRun.check,
    StepName.IMAGE_SAVE: _JobRun.image_save,
    StepName.CLEANUP: _JobRun.cleanup,
}
if set(STEP_METHODS) != set(StepName):  # a step of the plan the runner cannot carry out
    raise RuntimeError(
        "the job runner has no method for the steps "
        + ", ".join(sorted(set(StepName) - set(STEP_METHODS)))
    )
