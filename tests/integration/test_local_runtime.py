"""The local runtime (no Docker): a real virtualenv from requirements.txt, not isolated."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from erchub.services.jobs.runner import JobRunner
from erchub.steps import JobOptions
from tests.conftest import parameters_cell, write_notebook


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("venvs")


def test_local_job_runs_in_a_virtualenv_and_checks(tmp_path, venvs):
    ws = tmp_path / "ws"
    write_notebook(
        ws / "main.ipynb",
        parameters_cell("n = 3  # terms"),
        "import sys, six\nprint(sys.prefix.endswith('.partial') or 'venvs' in sys.prefix)",
        "print(sum(range(n)))",
    )
    (ws / "requirements.txt").write_text("six\n")
    runner = JobRunner(data_dir=str(tmp_path / "data"))
    runner.local_runtime.venv_dir = str(venvs)
    first = runner.run(ws, options=JobOptions(check=False, runtime="local"))
    assert first.status == "success", first.job.failure_reason
    executed = nbformat.read(first.directory / "output" / "main.ipynb", as_version=4)
    # the kernel runs in the virtualenv, where six (from requirements.txt) is installed
    assert executed.cells[1].outputs[0]["text"].strip() == "True"
    assert executed.cells[2].outputs[0]["text"].strip() == "3"
    assert "NOT isolated" in " ".join(first.job.step("image_execute").text)
    assert first.job.step("image_build").status == "skipped"

    # the executed notebook, published, reproduces; a changed parameter does not
    published = tmp_path / "published"
    published.mkdir()
    (published / "requirements.txt").write_text("six\n")
    nbformat.write(executed, published / "main.ipynb")
    same = runner.run(published, options=JobOptions(check=True, runtime="local"))
    assert same.status == "success", same.job.failure_reason
    assert any("reusing virtualenv" in line for line in same.job.step("image_execute").text)
    changed = runner.run(published, options=JobOptions(runtime="local"), values={"n": "5"})
    assert changed.job.step("check").status == "failure"


def test_cli_says_the_local_run_is_not_isolated(tmp_path, venvs):
    ws = tmp_path / "ws"
    write_notebook(ws / "main.ipynb", "print('hello')")
    config = tmp_path / "erchub_config.py"
    config.write_text(f"c.LocalRuntime.venv_dir = {str(venvs)!r}\n")
    completed = subprocess.run(
        [sys.executable, "-m", "erchub", "--config", str(config), "run", str(ws),
         "--runtime", "local", "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "NOT isolated" in completed.stderr
    assert "display HTML:" in completed.stdout
