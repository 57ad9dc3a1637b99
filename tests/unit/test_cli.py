"""The `erchub` command on bad input: one line, exit 2, nothing written."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from erchub.cli import main
from tests.conftest import heading, parameters_cell, write_notebook


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main(list(argv)))
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def assert_one_line_error(err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("erchub: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    write_notebook(
        ws / "main.ipynb",
        heading("# A study"),
        parameters_cell("n = 10  # how many\nlabel = 'x'"),
        "print(n, label)",
    )
    return ws


def test_params_lists_typed_parameters(capsys, workspace):
    code, out, _ = run_cli(capsys, "params", str(workspace), "--json")
    assert code == 0
    assert '"name": "n"' in out and '"type": "int"' in out and "how many" in out


def test_init_writes_erc_yml_and_metadata(capsys, workspace):
    code, out, _ = run_cli(capsys, "init", str(workspace))
    assert code == 0
    assert (workspace / "erc.yml").exists()
    assert (workspace / ".erc" / "metadata_o2r_1.json").exists()
    assert "main: main.ipynb" in out


@pytest.mark.parametrize("command", ["params", "run", "init"])
def test_no_notebook(capsys, tmp_path, command):
    ws = tmp_path / "empty"
    ws.mkdir()
    (ws / "data.csv").write_text("a\n1\n")
    before = snapshot(tmp_path)
    code, _, err = run_cli(
        capsys, command, str(ws), *(["--data-dir", str(tmp_path / "d")] if command == "run" else [])
    )
    assert code == 2
    assert_one_line_error(err, "no notebook")
    assert snapshot(tmp_path) == before


def test_ambiguous_main_lists_candidates(capsys, tmp_path):
    ws = tmp_path / "ws"
    write_notebook(ws / "analysis.ipynb", "1")
    write_notebook(ws / "figures.ipynb", "2")
    before = snapshot(tmp_path)
    code, _, err = run_cli(capsys, "init", str(ws))
    assert code == 2
    assert_one_line_error(err, "analysis.ipynb", "figures.ipynb")
    assert snapshot(tmp_path) == before


def test_invalid_erc_yml_names_the_field(capsys, workspace):
    (workspace / "erc.yml").write_text(
        "spec_version: 1\nid: 5d1e8f3a-6b2c-4f0e-9a7d-3c1b2e4f5a60\nmain: main.ipynb\n"
        "display: main.html\nlicenses: {code: MIT, data: MIT, text: MIT, metadata: MIT}\n"
        "execution:\n  timeout: -5\n"
    )
    before = snapshot(workspace)
    code, _, err = run_cli(capsys, "run", str(workspace), "--data-dir", str(workspace / "d"))
    assert code == 2
    assert_one_line_error(err, "execution.timeout")
    assert snapshot(workspace) == before


def test_corrupt_notebook_json(capsys, tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "main.ipynb").write_text('{"cells": [ {"cell_type": ')
    code, _, err = run_cli(capsys, "params", str(ws))
    assert code == 2
    assert_one_line_error(err, "main.ipynb", "not a valid notebook")


@pytest.mark.parametrize(
    ("assignment", "fragment"),
    [("nope=1", "unknown parameter 'nope'"), ("n=abc", "parameter 'n'"), ("n", "NAME=VALUE")],
)
def test_bad_parameter_values(capsys, workspace, tmp_path, assignment, fragment):
    data = tmp_path / "data"
    code, _, err = run_cli(capsys, "run", str(workspace), "-p", assignment, "--data-dir", str(data))
    assert code == 2
    assert_one_line_error(err, fragment)
    assert not data.exists()


def test_archive_with_parent_path_is_refused(capsys, tmp_path):
    bad = tmp_path / "evil.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("ws/main.ipynb", "{}")
        archive.writestr("../../escaped.txt", "gotcha")
    code, _, err = run_cli(capsys, "run", str(bad), "--data-dir", str(tmp_path / "d"))
    assert code == 2
    assert_one_line_error(err, "escaped.txt")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_archive_with_symlink_outside_is_refused(capsys, tmp_path):
    bad = tmp_path / "evil.tar.gz"
    with tarfile.open(bad, "w:gz") as archive:
        link = tarfile.TarInfo("ws/etc")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc"
        archive.addfile(link)
        payload = b"owned"
        member = tarfile.TarInfo("ws/etc/erchub-owned")
        member.size = len(payload)
        archive.addfile(member, io.BytesIO(payload))
    code, _, err = run_cli(capsys, "check", str(bad), "--data-dir", str(tmp_path / "d"))
    assert code == 2
    assert_one_line_error(err)
    assert not Path("/etc/erchub-owned").exists()


def test_zip_bomb_is_refused(capsys, tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ws/main.ipynb", "{}")
        archive.writestr("ws/zeros.bin", b"\0" * (64 * 1024 * 1024))
    code, _, err = run_cli(capsys, "run", str(bomb), "--data-dir", str(tmp_path / "d"))
    assert code == 2
    assert_one_line_error(err)
    assert "ratio" in err or "size" in err


def test_not_an_archive(capsys, tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    code, _, err = run_cli(capsys, "run", str(junk))
    assert code == 2
    assert_one_line_error(err, "notes.txt")


def test_usage_errors_exit_2(capsys):
    code, _, err = run_cli(capsys, "frobnicate")
    assert code == 2
    assert "erchub: error:" in err


def test_check_against_an_executed_notebook(capsys, tmp_path):
    from nbformat.v4 import new_code_cell, new_output

    def executed(text: str) -> object:
        cell = new_code_cell("print(1)", outputs=[new_output("stream", name="stdout", text=text)])
        return cell

    ws = tmp_path / "ws"
    write_notebook(ws / "main.ipynb", executed("42\n"))
    same = write_notebook(tmp_path / "same.ipynb", executed("42\n"))
    other = write_notebook(tmp_path / "other.ipynb", executed("43\n"))
    report = tmp_path / "report.html"
    code, out, _ = run_cli(
        capsys, "check", str(ws), "--against", str(same), "--report", str(report)
    )
    assert code == 0 and out.startswith("PASS")
    code, out, _ = run_cli(
        capsys, "check", str(ws), "--against", str(other), "--report", str(report)
    )
    assert code == 1 and out.startswith("FAIL")
    assert "FAIL" in report.read_text()


def test_check_of_a_notebook_saved_without_outputs_says_so(capsys, tmp_path):
    from nbformat.v4 import new_code_cell, new_output

    ws = tmp_path / "ws"
    write_notebook(ws / "main.ipynb", new_code_cell("print(1)"))
    executed = new_code_cell("print(1)", outputs=[new_output("stream", name="stdout", text="1\n")])
    reproduced = write_notebook(tmp_path / "executed.ipynb", executed)
    report = tmp_path / "report.html"
    code, out, _ = run_cli(
        capsys, "check", str(ws), "--against", str(reproduced), "--report", str(report)
    )
    # nothing was compared: not a pass, and said as what it is rather than as a difference
    assert code == 1 and out.startswith("NO REFERENCE OUTPUTS")
