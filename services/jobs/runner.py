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

A cancel (the ``cancel`` event, which a worker sets when the store says so) stops the running
step at once, not only between steps: the build (dockerd stops it and removes its containers;
the image is never tagged), the execution (its container is killed), the check (it runs in a
child process, which is killed; it is also stopped at ``check_time_limit``) and the image
export (its response is closed). What a stopped step was writing never appears under its
final name: ``check/`` and ``image.tar`` are written as ``check.partial/`` and
``image.tar.partial`` and renamed when complete, else removed.

A full disk (ENOSPC, or EDQUOT: the data directory's quota used up) fails the step that needed
room with :data:`STORAGE_FULL_REASON`. When a failed execution leaves the disk full, what the
notebook wrote (``output/``) is removed: cut short, it is no result, and it likely filled the
disk; removed, it leaves room to record the job's end. ``job.json`` is kept current while the
disk has room for it; ``on_save`` gets every record all the same (the worker's store).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import resource
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import nbformat
from traitlets import Bool, Float, Instance, default
from traitlets.config import LoggingConfigurable

from erchub import checker, erc, parameters, report, safefs, workspace
from erchub.errors import ErchubError, is_storage_full
from erchub.processes import end_with_parent
from erchub.services.jobs.runtime import (
    WORKDIR_NAME,
    DockerRuntime,
    ExecutionSpec,
    LocalRuntime,
    engine_error_detail,
    engine_unreachable,
)
from erchub.settings import DataDirMixin, env_setting
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
#: what a step being written is named until it is complete (then renamed, else removed)
PARTIAL_SUFFIX = ".partial"
#: how often a step waiting on a child process looks at the job's cancel event, in seconds
CANCEL_POLL_SECONDS = 0.1
OUTPUT_DIR = "output"
CHECK_DIR = "check"
REPORT_FILE = "check/report.html"
CHECK_SUMMARY_FILE = "check/check.json"
#: the label naming the job on its execution container (a worker removes a lost job's by it)
JOB_LABEL = "org.erchub.job.id"
#: why a step failed when the data directory's disk had no room for what it wrote
STORAGE_FULL_REASON = (
    "the disk where erchub keeps its data is full; ask the hub's operator to make room, then "
    "run the job again"
)


def disk_full(path: Path) -> bool:
    """Whether the file system of ``path`` has not a block left for an unprivileged writer
    (where an execution's notebook writes)."""
    try:
        return os.statvfs(path).f_bavail == 0
    except OSError:  # gone, or not a file system that says
        return False


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


#: the JupyterHub custom scope that lets its holder run compendia that ask for network
SCOPE_NETWORK = "custom:erc:network"


def network_grant(scopes: Collection[str], *, everyone: bool = False, admin: bool = False) -> bool:
    """Whether a job's starter may run a compendium that asks for network: they hold
    :data:`SCOPE_NETWORK` (or are an erc administrator, who holds every erc scope), or the
    operator grants it to ``everyone`` (``ERCService.network_for_everyone``). Recorded with the
    job when it is created; the worker weighs it (:func:`network_refusal`)."""
    return everyone or admin or SCOPE_NETWORK in scopes


def network_refusal(asks: bool, allowed: bool, granted: bool | None) -> str | None:
    """Why a compendium that ``asks`` for network (erc.yml ``execution.network: true``) may
    not have it, or None when it may (or does not ask). ``allowed``: the site runs networked
    executions at all (``JobRunner.allow_network``); ``granted``: the job's starter holds the
    grant (:func:`network_grant`), None when no starter is to be weighed (the operator's own
    run, ``erchub run``)."""
    if not asks:
        return None
    asked = "erc.yml asks for network (execution.network: true)"
    if not allowed:
        return (
            f"{asked}, but this site runs no networked executions (the operator's setting "
            "JobRunner.allow_network, $ERCHUB_ALLOW_NETWORK, is off); nothing was run"
        )
    if granted is False:
        return (
            f"{asked}, but the job's starter does not hold the scope {SCOPE_NETWORK} (an "
            "operator grants it to a role or group, or to everyone with "
            "ERCService.network_for_everyone); nothing was run"
        )
    return None


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

    allow_network = Bool(
        help="Whether executions may have network at all: a compendium whose erc.yml asks for "
        "it (execution.network: true) runs on DockerRuntime.execution_network, a bridge kept "
        "by iptables from the host and DockerRuntime.blocked_ranges (the worker must be root), "
        "when the job's starter holds the scope custom:erc:network (or "
        "ERCService.network_for_everyone is on); else the job fails at validate_compendium "
        "(default: $ERCHUB_ALLOW_NETWORK, else False).",
    ).tag(config=True)

    @default("allow_network")
    def _default_allow_network(self) -> bool:
        return bool(env_setting("allow_network", self.traits()["allow_network"], False))

    check_time_limit = Float(
        600,
        min=1,
        help="Longest the check step may compare, in seconds: it runs in a child process, "
        "which is killed then (or at a cancel), and the step fails saying so; erc.yml's "
        "check.volatile_patterns are regular expressions of the compendium's author, which may "
        "take forever (default: 600).",
    ).tag(config=True)

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

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._check_lock = threading.Lock()
        self._spare_check: CheckProcess | None = None
        self._keep_check_ready = False

    def keep_check_process_ready(self) -> None:
        """Keep a check process started ahead of need, from now on (a worker does at its
        start): a check then starts at once, not after the checker's imports."""
        with self._check_lock:
            self._keep_check_ready = True
            spare = self._spare_check
            if spare is None or not spare.waiting():
                self._spare_check = CheckProcess()

    def take_check_process(self) -> CheckProcess:
        """A check process for one comparison: the one kept ready, else a new one."""
        with self._check_lock:
            spare, self._spare_check = self._spare_check, None
        if spare is not None and spare.waiting():
            return spare
        return CheckProcess()

    def check_process_done(self) -> None:
        """A comparison ended: start the next process ahead of need, when one is kept."""
        with self._check_lock:
            if self._keep_check_ready and self._spare_check is None:
                self._spare_check = CheckProcess()

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
        network_granted: bool | None = None,
    ) -> JobResult:
        """Run a job on a compendium directory (read-only) and return its record.

        The job directory may exist already (a worker keeps its event log there). ``on_save``
        gets the record each time job.json is written: at the start, after every step change,
        at the end. ``network_granted``: whether the job's starter holds the grant of network
        (the worker passes the job's record); None for the operator's own run (the CLI), where
        ``allow_network`` alone decides.
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
        run.network_granted = network_granted
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
        #: the image by repository digest, when the builder pushed it to a registry
        self.image_digest: str | None = None
        self.raw_values: Mapping[str, object] = {}
        self.total_cells: int | None = None
        self.network_granted: bool | None = None

    # -- bookkeeping -------------------------------------------------------------------------

    def save(self) -> None:
        self.record.update(self.job.to_json())
        path = self.directory / JOB_FILE
        staging = path.with_suffix(".json.partial")
        try:
            staging.write_text(json.dumps(self.record, indent=2, default=str))
            staging.replace(path)
        except OSError as exc:
            if not is_storage_full(exc):
                raise
            # job.json stays as it was; the record still goes to on_save (the store), and the
            # step that needs room fails saying why.
            staging.unlink(missing_ok=True)
            self.runner.log.warning(
                "job %s: %s not updated: the disk is full", self.record["id"], JOB_FILE
            )
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
            except Exception as exc:
                if is_storage_full(exc):  # a write of the step found no room
                    failure = STORAGE_FULL_REASON
                elif engine_unreachable(exc):  # the builder's or the runtime's engine is down
                    failure = f"the Docker engine cannot be reached ({engine_error_detail(exc)})"
                else:  # a bug or an engine fault: keep the job record honest
                    self.runner.log.exception(
                        "job %s: step %s crashed", self.record["id"], step.name
                    )
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
        asks = self.workspace.erc.execution.network
        refusal = network_refusal(asks, self.runner.allow_network, self.network_granted)
        if refusal:
            return refusal
        if asks:
            where = "the local runtime runs with this machine's network"
            if self.options.runtime != "local":
                network = self.runner.docker_runtime.execution_network
                where = f"the execution runs on the network {network}, kept from the host"
            self.log(StepName.VALIDATE_COMPENDIUM, f"network allowed: {where}")
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

            result = self.runner.builder.build(self.plan, on_log=on_log, cancel=self.cancel)
        self.image = result.image
        self.record.update(image_id=result.image_id, cache_hit=result.cache_hit)
        # pulled from the registry, where another node's builder pushed it (the registry pulls
        # of the service's metrics)
        self.job.step(StepName.IMAGE_BUILD).pull = result.pulled
        if result.image_digest:
            # what an execution engine pulls and runs: the image built, whatever its tag names
            self.image_digest = result.image_digest
            self.record["image_digest"] = result.image_digest
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
            image_digest=self.image_digest,
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
            # pulled (when the engine lacks it) before the execution, so that the step records
            # what the pull took (the registry pulls of the service's metrics)
            image = runtime.runtime_image(spec, self._on_execution_line, self.cancel)
            if image is None:
                return "canceled by the user"
            self.job.step(StepName.IMAGE_EXECUTE).pull = image.pulled
            spec = replace(spec, image=image.reference, image_digest=None)
        outcome = runtime.execute(spec, self._on_execution_line, self.cancel)
        if outcome.status == "failure" and disk_full(spec.output):
            # a result cut short, and likely what filled the disk (see the module's doc)
            safefs.remove_tree(spec.output)
            self.log(StepName.IMAGE_EXECUTE, f"the disk is full: {OUTPUT_DIR}/ was removed")
            return STORAGE_FULL_REASON
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
        compared = self._compare(original, reproduced, options)
        if isinstance(compared, str):  # stopped, failed or canceled
            return compared
        verdict = checker.Verdict(compared["verdict"])
        summary = compared["summary"]
        if verdict is checker.Verdict.NO_REFERENCE_OUTPUTS:
            # Nothing was reproduced or not: the run's outputs are what the owner may adopt as
            # the reference (publish its executed notebook); the record says where they are.
            summary["reference"] = {
                key: self.record[key] for key in ("executed", "display") if key in self.record
            }
        self._write_check(compared["html"], summary)
        self.record.update(report=REPORT_FILE, check=summary)
        counts = compared["counts"]
        if verdict is checker.Verdict.NO_REFERENCE_OUTPUTS:
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
        if verdict is not checker.Verdict.PASS:
            return (
                f"{counts['cells_different']} of {counts['cells_compared']} cells differ "
                f"(report: {REPORT_FILE})"
            )
        return None

    def _compare(
        self,
        original: nbformat.NotebookNode,
        reproduced: nbformat.NotebookNode,
        options: checker.CheckOptions,
    ) -> dict[str, Any] | str:
        """The comparison and its report, made in a check process (:class:`CheckProcess`): a
        dict, or a failure message when it failed, was canceled (the process is killed within
        CANCEL_POLL_SECONDS) or passed the time limit (killed too)."""
        assert self.workspace is not None
        limit = self.runner.check_time_limit
        request = {
            "original": original,
            "reproduced": reproduced,
            "options": options,
            "title": f"Check of {self.workspace.erc.main}",
            "reproduced_name": f"job {self.record['id']}",
            "cpu_seconds": limit,
        }
        try:
            process = self.runner.take_check_process()
        except OSError as exc:
            return f"cannot start the check's process: {exc}"
        try:
            kind, value = process.compare(request, self.cancel, time.monotonic() + limit)
        finally:
            self.runner.check_process_done()
        if kind == "canceled":
            return "the check was canceled"
        if kind == "timeout":
            return (
                f"the check did not finish within {limit:g} s and was stopped "
                "(JobRunner.check_time_limit; erc.yml's check.volatile_patterns may take that "
                "long)"
            )
        if kind != "done":
            return str(value)
        return dict(value)

    def _write_check(self, html: str, summary: dict[str, Any]) -> None:
        """check/ with the report and the summary, written whole under another name first."""
        final = self.directory / CHECK_DIR
        staging = self.directory / (CHECK_DIR + PARTIAL_SUFFIX)
        if os.path.lexists(staging):
            safefs.remove_tree(staging)
        staging.mkdir()
        try:
            (staging / Path(REPORT_FILE).name).write_text(html, encoding="utf-8")
            (staging / Path(CHECK_SUMMARY_FILE).name).write_text(json.dumps(summary, indent=2))
            os.rename(staging, final)
        except BaseException:
            safefs.remove_tree(staging)
            raise

    def image_save(self) -> str | None:
        assert self.image is not None and self.runner.builder is not None
        target = self.directory / "image.tar"
        # Complete or not there: a stopped or failed export leaves no image.tar.
        staging = target.with_name(target.name + PARTIAL_SUFFIX)
        try:
            with open(staging, "wb") as out:
                # the engine that built the image (the builder's client); stops on a cancel
                size = self.runner.builder.save_image(self.image, out, cancel=self.cancel)
            os.replace(staging, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                staging.unlink()
        self.record["image_tar"] = target.name
        self.log(StepName.IMAGE_SAVE, f"saved {self.image} to image.tar ({size} bytes)")
        return None

    def cleanup(self) -> str | None:
        workdir = self.directory / OUTPUT_DIR / WORKDIR_NAME
        if os.path.isdir(workdir) and not os.path.islink(workdir):
            # The runtime removed the input mirror's links when the execution ended; the
            # folders that held only links go now, the notebook's own files stay.
            removed = safefs.remove_empty_directories(workdir)
            self.log(StepName.CLEANUP, f"removed {removed} empty folders of the input mirror")
        return None


#: what a check process runs (see :func:`check_child`); its argument: the runner's pid
CHECK_CHILD_CODE = "from erchub.services.jobs.runner import check_child; check_child()"


class CheckProcess:
    """A Python process that has imported the checker and waits for one comparison: it reads
    the pickled request on its stdin, writes the pickled answer on its stdout and exits.

    The check runs apart from the worker: killed, it stops at once whatever it was doing (a
    regular expression of erc.yml can take forever, and would hold the worker's interpreter
    lock all that time). On Linux it ends with the thread that started it, however that ends
    (the thread that runs the jobs: a worker's loop, the CLI's main thread): a worker killed in
    the middle of a check leaves no comparison running beside the one of the worker that takes
    its job over. It also limits its own CPU time to the check's time limit, so that elsewhere
    it ends too, at the latest then.
    """

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHECK_CHILD_CODE, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C of `erchub run` is the runner's to act on
        )

    def waiting(self) -> bool:
        """Whether the process still waits for its request."""
        return self.process.poll() is None

    def compare(
        self, request: dict[str, Any], cancel: threading.Event, deadline: float
    ) -> tuple[str, Any]:
        """("done", answer) or ("failure", message); ("canceled", "") or ("timeout", "") when
        it was stopped by ``cancel`` or at ``deadline`` (time.monotonic()): then it is killed.
        """
        payload = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        # written by a thread: a large request must not keep this one from watching cancel
        writer = threading.Thread(target=self._send, args=(payload,), daemon=True)
        writer.start()
        assert self.process.stdout is not None
        answer = self.process.stdout.fileno()
        chunks: list[bytes] = []
        try:
            while True:
                if cancel.is_set():
                    return ("canceled", "")
                if time.monotonic() > deadline:
                    return ("timeout", "")
                readable, _, _ = select.select([answer], [], [], CANCEL_POLL_SECONDS)
                if readable:
                    chunk = os.read(answer, 1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
        finally:
            self.close()
        try:
            kind, value = pickle.loads(b"".join(chunks))
        except Exception:  # nothing or a torn answer: killed, out of memory, a crash
            code = self.process.returncode
            return ("failure", f"the check's process ended without a result (exit code {code})")
        return (str(kind), value)

    def _send(self, payload: bytes) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        with contextlib.suppress(OSError, ValueError):  # it was killed, or closed
            stdin.write(payload)
            stdin.close()

    def close(self) -> None:
        """Kill the process unless it has ended, and release its pipes."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def check_child() -> None:
    """A check process's main (:class:`CheckProcess`): the answer goes to what stdout was,
    anything the checker prints to stderr."""
    if not _ends_with_runner(int(sys.argv[1])):
        return  # the runner has gone already: no one waits for an answer
    answer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        request = pickle.load(sys.stdin.buffer)
    except EOFError:  # started ahead of need and not needed: the runner has gone
        return
    seconds = math.ceil(request["cpu_seconds"]) + 1
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 5))
    answer.write(pickle.dumps(_compare_request(request), protocol=pickle.HIGHEST_PROTOCOL))
    answer.close()


def _ends_with_runner(runner_pid: int) -> bool:
    """Have the kernel kill this check process when the runner's thread that started it ends
    (PR_SET_PDEATHSIG): the comparison holds the interpreter lock, so nothing in this process
    could notice its runner's end, and the CPU time limit may be minutes away. False when the
    runner has ended already (this process was handed to another parent before the call)."""
    return end_with_parent(signal.SIGKILL, runner_pid)


def _compare_request(request: dict[str, Any]) -> tuple[str, Any]:
    """Compare and render the report: ("done", {verdict, counts, summary, html}) or
    ("failure", message)."""
    try:
        result = checker.compare_notebooks(
            request["original"], request["reproduced"], request["options"]
        )
        html = report.render_report(
            result,
            title=request["title"],
            original_name="published",
            reproduced_name=request["reproduced_name"],
        )
    except ErchubError as exc:
        return ("failure", str(exc))
    except Exception as exc:  # a bug: the step says what, the worker goes on
        return ("failure", f"internal error in the check: {type(exc).__name__}: {exc}")
    return (
        "done",
        {
            "verdict": result.verdict.value,
            "counts": result.counts,
            "summary": result.to_json(),
            "html": html,
        },
    )


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
