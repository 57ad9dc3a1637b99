"""Jobs on the real Docker engine: build, isolated execution, check, limits, cleanup."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from erchub.services.jobs.runner import JobRunner
from erchub.steps import JobOptions
from tests.conftest import parameters_cell, write_notebook

pytestmark = pytest.mark.docker

REQUIREMENTS = "numpy\nmatplotlib\n"

FIGURE_CELL = """\
import io
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display
t = np.linspace(0, 2, 200)
fig, ax = plt.subplots(figsize=(4, 2), dpi=60)
ax.plot(t, np.sin(2 * np.pi * frequency * t))
buffer = io.BytesIO()
fig.savefig(buffer, format="png")
display(Image(buffer.getvalue()))
print("mean", round(float(np.sin(2 * np.pi * frequency * t).mean()), 6))
"""


def make_workspace(root: Path, *cells, erc_yml: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "requirements.txt").write_text(REQUIREMENTS)
    write_notebook(root / "main.ipynb", *cells)
    if erc_yml is not None:
        (root / "erc.yml").write_text(erc_yml)
    return root


def erc_yml(**execution) -> str:
    lines = [
        "spec_version: 1",
        "id: 0b5f3c1e-2a4d-4e6f-8a9b-1c2d3e4f5a6b",
        "main: main.ipynb",
        "display: main.html",
        "licenses: {code: MIT, data: CC0-1.0, text: CC-BY-4.0, metadata: CC0-1.0}",
    ]
    if execution:
        lines.append("execution:")
        lines += [f"  {key}: {value}" for key, value in execution.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def runner(tmp_path, docker_client) -> JobRunner:
    return JobRunner(data_dir=str(tmp_path / "data"))


def run(runner: JobRunner, workspace: Path, **kwargs):
    events = []
    options = kwargs.pop("options", JobOptions(check=False))
    result = runner.run(workspace, options=options, on_event=events.append, **kwargs)
    return result, events


def no_job_containers(docker_client, result) -> bool:
    label = f"org.erchub.job.id={result.id}"
    return docker_client.containers.list(all=True, filters={"label": label}) == []


def test_figure_notebook_builds_runs_and_writes_display(tmp_path, runner, docker_client):
    ws = make_workspace(
        tmp_path / "ws",
        parameters_cell("frequency = 1.0  # cycles"),
        FIGURE_CELL,
        "import os\nprint('uid', os.getuid())",
    )
    result, events = run(runner, ws)
    assert result.status == "success", result.job.failure_reason
    executed = nbformat.read(result.directory / "output" / "main.ipynb", as_version=4)
    outputs = executed.cells[1].outputs
    assert any("image/png" in out.get("data", {}) for out in outputs)
    assert "uid 1000" in executed.cells[2].outputs[0]["text"]
    assert "<html" in result.display.read_text()[:2000].lower()
    assert (result.directory / "Dockerfile").read_text().startswith(("FROM", "#", "ARG"))
    kinds = {(e.kind, e.step) for e in events}
    assert ("progress", "image_execute") in kinds
    record = json.loads((result.directory / "job.json").read_text())
    assert record["status"] == "success"
    assert record["steps"]["image_build"]["status"] == "success"
    assert no_job_containers(docker_client, result)


def test_second_job_reuses_the_image(tmp_path, runner):
    ws = make_workspace(tmp_path / "ws", "print(1)")
    first, _ = run(runner, ws)
    second, _ = run(runner, ws)
    assert first.status == second.status == "success"
    assert second.record["cache_hit"] is True
    assert second.record["image_id"] == first.record["image_id"]


def test_socket_fails_without_network(tmp_path, runner):
    ws = make_workspace(
        tmp_path / "ws",
        "print('ready')",
        "import socket\nsocket.create_connection(('deb.debian.org', 80), timeout=5)",
    )
    result, _ = run(runner, ws)
    assert result.status == "failure"
    step = result.job.step("image_execute")
    assert step.status == "failure"
    assert "cell 1 raised" in step.reason
    assert "gaierror" in step.reason or "OSError" in step.reason or "Errno" in step.reason


def test_raising_cell_is_named(tmp_path, runner, docker_client):
    ws = make_workspace(tmp_path / "ws", "x = 1", "print(x)", "raise ValueError('bad input data')")
    result, _ = run(runner, ws)
    assert result.job.step("image_execute").reason == "cell 2 raised ValueError: bad input data"
    assert result.record["execution"]["cell_index"] == 2
    # the partially executed notebook and its display are still kept for inspection
    assert (result.directory / "output" / "main.ipynb").exists()
    assert no_job_containers(docker_client, result)


def test_endless_loop_ends_at_the_time_limit(tmp_path, runner, docker_client):
    ws = make_workspace(tmp_path / "ws", "while True:\n    pass", erc_yml=erc_yml(timeout=5))
    result, _ = run(runner, ws)
    assert result.status == "failure"
    reason = result.job.step("image_execute").reason
    assert "timed out" in reason or "time limit" in reason
    assert result.record["execution"]["timed_out"] is True
    assert no_job_containers(docker_client, result)


def test_inputs_are_read_only_and_new_files_land_in_output(tmp_path, runner):
    ws = make_workspace(
        tmp_path / "ws",
        "print(open('data.csv').read())",
        "open('result.txt', 'w').write('computed')",
        "try:\n    open('data.csv', 'w').write('tampered')\n"
        "except OSError as exc:\n    print('refused', type(exc).__name__)",
        "import os\nprint('ignored file visible:', os.path.exists('scratch/notes.txt'))",
        "os.makedirs('figures', exist_ok=True)\nopen('sub/more.txt', 'w').write('next to input')",
    )
    (ws / "data.csv").write_text("a,b\n1,2\n")
    (ws / "sub").mkdir()
    (ws / "sub" / "input.txt").write_text("nested input")
    (ws / "scratch").mkdir()
    (ws / "scratch" / "notes.txt").write_text("excluded by .ercignore")
    (ws / ".ercignore").write_text("scratch/\n")
    result, _ = run(runner, ws)
    assert result.status == "success", result.job.failure_reason
    executed = nbformat.read(result.directory / "output" / "main.ipynb", as_version=4)
    assert "a,b" in executed.cells[0].outputs[0]["text"]
    assert "refused" in executed.cells[2].outputs[0]["text"]
    assert "ignored file visible: False" in executed.cells[3].outputs[0]["text"]
    assert (ws / "data.csv").read_text() == "a,b\n1,2\n"
    workdir = result.directory / "output" / "workdir"
    assert (workdir / "result.txt").read_text() == "computed"
    assert (workdir / "sub" / "more.txt").read_text() == "next to input"
    # cleanup removed the input links and kept what the notebook wrote
    assert not (result.directory / "output" / "workdir" / "data.csv").exists()


def test_check_passes_when_reproduced_and_fails_when_the_figure_changes(tmp_path, runner):
    ws = make_workspace(tmp_path / "ws", parameters_cell("frequency = 1.0"), FIGURE_CELL)
    first, _ = run(runner, ws)
    assert first.status == "success", first.job.failure_reason
    # publish the executed notebook as the original, as an author does
    published = tmp_path / "published"
    shutil.copytree(ws, published)
    shutil.copy(first.directory / "output" / "main.ipynb", published / "main.ipynb")

    same, _ = run(runner, published, options=JobOptions(check=True))
    assert same.status == "success", same.job.failure_reason
    assert same.record["check"]["passed"] is True
    assert same.report.exists()

    changed, _ = run(runner, published, options=JobOptions(check=True), values={"frequency": "3"})
    assert changed.status == "failure"
    assert changed.job.step("check").status == "failure"
    summary = changed.record["check"]
    assert summary["passed"] is False
    html = changed.report.read_text()
    assert "FAIL" in html
    assert "data:image/png;base64," in html


def test_a_notebook_saved_without_outputs_gets_no_reference_outputs(tmp_path, runner):
    """A compendium whose notebook was saved without running it (as some repositories hold
    them): nothing to compare with, so no FAIL; the job's outputs are offered as the reference."""
    ws = make_workspace(tmp_path / "ws", "print('hello')", "21 * 2")

    result, _ = run(runner, ws, options=JobOptions(check=True))

    assert result.status == "success", result.job.failure_reason
    check_step = result.job.step("check")
    assert check_step.status == "success"
    assert check_step.text[-1].startswith("no reference outputs: the published notebook")
    summary = result.record["check"]
    assert summary["verdict"] == "no_reference_outputs" and summary["passed"] is False
    assert summary["reference"] == {"executed": "output/main.ipynb", "display": "output/main.html"}
    assert json.loads((result.directory / "check" / "check.json").read_text()) == summary
    reference = nbformat.read(result.directory / summary["reference"]["executed"], as_version=4)
    assert reference.cells[0].outputs[0]["text"] == "hello\n"
    assert reference.cells[1].outputs[0]["data"]["text/plain"] == "42"
    html = result.report.read_text()
    assert '<p class="verdict">NO REFERENCE OUTPUTS</p>' in html and "FAIL" not in html


def test_the_execution_log_has_no_kernel_start_noise(tmp_path, runner):
    """The kernel's start (ipykernel's warning about unencrypted TCP, and alike) stays out of
    the job's log: the step says only what erchub says."""
    ws = make_workspace(tmp_path / "ws", "print('into the notebook, not the log')")

    result, events = run(runner, ws)

    assert result.status == "success", result.job.failure_reason
    lines = result.job.step("image_execute").text
    assert len(lines) == 1 and lines[0].startswith("executed in "), lines
    logged = [e.line for e in events if e.kind == "log" and e.step == "image_execute"]
    assert logged == lines


def test_image_save_writes_a_loadable_docker_archive(tmp_path, runner):
    import tarfile

    ws = make_workspace(tmp_path / "ws", "print('saved')")
    result, _ = run(runner, ws, options=JobOptions(check=False, image_save=True))
    assert result.status == "success", result.job.failure_reason
    saved = result.directory / "image.tar"
    with tarfile.open(saved) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == [result.record["image"]]


def test_dockerfile_image_without_erchub_fails_with_a_clear_message(tmp_path, runner):
    ws = tmp_path / "ws"
    write_notebook(ws / "main.ipynb", "print(1)")
    (ws / "Dockerfile").write_text("FROM erchub/base:bookworm\nRUN echo built by the author\n")
    result, _ = run(runner, ws)
    assert result.record["buildpack"] == "DockerBuildPack"
    assert result.job.step("image_build").status == "success"
    reason = result.job.step("image_execute").reason
    assert "the runtime image lacks erchub" in reason


def test_bundled_example_reproduces_its_published_outputs(runner):
    """What `make demo` runs: the example's published figure and text reproduce."""
    example = Path(__file__).resolve().parents[2] / "examples" / "sine-wave"
    result, _ = run(runner, example, options=JobOptions(check=True))
    assert result.status == "success", result.job.failure_reason
    assert result.record["check"]["counts"]["outputs_compared"] == 2


def test_cli_runs_an_archive_and_exits_1_when_the_job_fails(tmp_path, docker_client, capsys):
    from erchub.cli import main

    def zipped(name: str, *cells: str) -> Path:
        ws = make_workspace(tmp_path / name / "compendium", *cells)
        return Path(shutil.make_archive(str(tmp_path / name), "zip", ws.parent))

    data = ["--data-dir", str(tmp_path / "data"), "--runtime", "docker"]
    assert main(["run", str(zipped("good", "print('from a zip')")), *data]) == 0
    assert "display HTML:" in capsys.readouterr().out
    assert main(["run", str(zipped("bad", "1 / 0")), *data]) == 1
    assert "cell 0 raised ZeroDivisionError" in capsys.readouterr().out
