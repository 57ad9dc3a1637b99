"""The job step plan and state machine (pure, no I/O)."""

import itertools
import json

import pytest

from erchub.steps import (
    ALWAYS_RUNS,
    FINAL_JOB_STATUSES,
    EventKind,
    JobOptions,
    JobStatus,
    StepName,
    StepOrderError,
    StepStatus,
    plan_job,
)


def ticking_clock():
    counter = itertools.count(100)
    return lambda: float(next(counter))


def run_all(job, fail_at=None):
    for step in job.pending():
        job.start(step.name)
        if step.name == fail_at:
            job.fail(step.name, "it broke")
        else:
            job.succeed(step.name)
    return job.finish()


def test_plan_has_o2r_steps_in_order():
    job = plan_job(JobOptions())
    assert [s.name for s in job.steps] == list(StepName)
    assert job.status == "queued"


def test_plan_skips_what_was_not_asked_for():
    job = plan_job(JobOptions(check=False, image_save=False))
    assert job.step("check").status == "skipped"
    assert job.step("check").reason == "check not requested"
    assert job.step("image_save").status == "skipped"
    assert job.step("image_build").status == "queued"


def test_local_runtime_skips_image_steps():
    job = plan_job(JobOptions(runtime="local"))
    statuses = {s.name: s.status for s in job.steps}
    assert statuses["generate_manifest"] == statuses["image_build"] == "skipped"
    assert statuses["image_execute"] == "queued"


def test_unknown_runtime_is_refused():
    with pytest.raises(ValueError, match="unknown runtime"):
        plan_job(JobOptions(runtime="kubernetes"))


def test_successful_job_records_times_and_ends_success():
    job = plan_job(JobOptions(), clock=ticking_clock())
    assert run_all(job) == "success"
    check = job.step("check")
    assert check.status == "success"
    assert check.start is not None and check.end is not None and check.end > check.start


def test_failure_skips_later_steps_but_cleanup_runs():
    job = plan_job(JobOptions(image_save=True))
    assert run_all(job, fail_at="image_build") == "failure"
    statuses = {s.name: s.status for s in job.steps}
    assert statuses["image_build"] == "failure"
    assert statuses["image_execute"] == statuses["check"] == statuses["image_save"] == "skipped"
    assert job.step("image_execute").reason == "skipped because image_build failed"
    assert statuses["cleanup"] == "success"
    assert job.failure_reason == "image_build: it broke"


def test_cancel_fails_running_step_and_skips_queued_ones():
    job = plan_job(JobOptions())
    for name in list(StepName)[:4]:
        job.start(name)
        job.succeed(name)
    job.start("image_execute")
    job.cancel()
    assert job.step("image_execute").status == "failure"
    assert job.step("check").status == "skipped"
    job.start("cleanup")
    job.succeed("cleanup")
    assert job.finish() == "canceled"


def test_steps_cannot_run_out_of_order():
    job = plan_job(JobOptions())
    with pytest.raises(StepOrderError):
        job.start("image_build")
    job.start("validate_compendium")
    with pytest.raises(StepOrderError):
        job.start("validate_compendium")
    with pytest.raises(StepOrderError):
        job.finish()


def test_log_lines_and_json_record():
    job = plan_job(JobOptions(check=False))
    job.start("validate_compendium")
    job.log("validate_compendium", "main notebook: main.ipynb")
    record = job.to_json()
    assert record["status"] == "running"
    assert record["steps"]["validate_compendium"]["text"] == ["main notebook: main.ipynb"]
    assert record["steps"]["check"]["status"] == "skipped"


def test_the_enums_are_o2r_strings():
    """The store keeps, the event log writes and the API shows exactly these strings."""
    assert [str(name) for name in StepName] == [
        "validate_compendium",
        "generate_configuration",
        "generate_manifest",
        "image_build",
        "image_execute",
        "check",
        "image_save",
        "cleanup",
    ]
    assert list(StepStatus) == ["queued", "running", "success", "failure", "skipped"]
    assert list(JobStatus) == ["queued", "running", "success", "failure", "canceled"]
    assert list(EventKind) == ["step", "log", "progress", "status"]
    assert {"success", "failure", "canceled"} == FINAL_JOB_STATUSES
    assert ALWAYS_RUNS == "cleanup"
    assert f"{JobStatus.SUCCESS}" == "success" and json.dumps(StepStatus.SKIPPED) == '"skipped"'
    # strings read back from a store or a log are the members
    assert JobStatus("canceled") is JobStatus.CANCELED
    assert "success" in FINAL_JOB_STATUSES


def test_json_record_holds_plain_strings():
    job = plan_job(JobOptions(check=False))
    record = job.to_json()
    assert type(record["status"]) is str
    for name, step in record["steps"].items():
        assert type(name) is str and type(step["name"]) is str and type(step["status"]) is str
    assert json.loads(json.dumps(record)) == record


def test_the_runner_has_a_method_for_every_step():
    from erchub.services.jobs.runner import STEP_METHODS

    assert list(STEP_METHODS) == list(StepName)
    assert all(callable(method) for method in STEP_METHODS.values())
