"""`erchub worker` on bad options and settings: one line, exit 2, nothing started."""

from __future__ import annotations

import pytest

from erchub.cli import main


def run_worker(capsys, tmp_path, *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main(["worker", "--data-dir", str(tmp_path), *argv]))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return int(exited.value.code or 0), lines[0]


def test_unknown_option(capsys, tmp_path):
    code, line = run_worker(capsys, tmp_path, "--threads", "4")
    assert code == 2
    assert "unrecognized arguments: --threads 4" in line


def test_missing_config_file(capsys, tmp_path):
    code, line = run_worker(capsys, tmp_path, "--config", str(tmp_path / "nope.py"))
    assert (code, line) == (2, f"erchub: error: config file {tmp_path / 'nope.py'} does not exist")


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ("c.Worker.poll_interval = 0", "poll_interval"),
        ("c.Worker.max_attempts = 'twice'", "max_attempts"),
        ("c.Worker.lost_timeout = 1.0", "at least twice Worker.heartbeat_interval"),
        ("c.DockerRuntime.mem_limit = 'lots'", "DockerRuntime.mem_limit"),
    ],
)
def test_bad_setting(capsys, tmp_path, setting, fragment):
    config = tmp_path / "worker_config.py"
    config.write_text(setting + "\n")
    code, line = run_worker(capsys, tmp_path, "--config", str(config))
    assert code == 2
    assert line.startswith("erchub: error: ") and fragment in line
    assert not (tmp_path / "erchub.sqlite").exists()


def test_unknown_store_scheme(capsys, tmp_path):
    code, line = run_worker(capsys, tmp_path, "--db-url", "redis://localhost/0")
    assert code == 2
    assert line.startswith("erchub: error: --db-url") and "redis" in line
