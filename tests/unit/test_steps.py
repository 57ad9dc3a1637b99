"""The job step plan and state machine (pure, no I/O)."""

import itertools

import pytest

from erchub.steps import STEP_NAMES, JobOptions, StepOrderError, plan_job


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
    assert [s.name for s in job.steps] == list(STEP_NAMES)
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
    for name in STEP_NAMES[:4]:
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
