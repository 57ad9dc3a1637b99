"""`erchub jobs`: the store's jobs counted by status, as a table or JSON; bad options and a
missing store in one line, with nothing made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from erchub.cli import main
from erchub.services.store import open_store
from erchub.services.store.base import JobRecord
from erchub.steps import JobStatus


def jobs(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["jobs", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory whose store holds two queued jobs, one running and one failed."""
    store = open_store(f"sqlite:///{tmp_path / 'erchub.sqlite'}")
    statuses = [JobStatus.QUEUED, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILURE]
    try:
        for number, status in enumerate(statuses):
            store.add_job(JobRecord(id=f"j{number}", compendium_id="c", user="u", status=status))
    finally:
        store.close()
    return tmp_path


def test_counts_every_status_as_json(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    code, out, _ = jobs(capsys, "--data-dir", str(data_dir), "--json")
    assert code == 0
    assert json.loads(out) == {
        "queued": 2,
        "running": 1,
        "success": 0,
        "failure": 1,
        "canceled": 0,
    }


def test_the_store_url_wins_over_the_data_directory(
    capsys: pytest.CaptureFixture[str], data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    url = f"sqlite:///{data_dir / 'erchub.sqlite'}"
    code, out, _ = jobs(capsys, "--data-dir", str(elsewhere), "--db-url", url, "--json")
    assert code == 0 and json.loads(out)["queued"] == 2


def test_a_table_for_people(
    capsys: pytest.CaptureFixture[str], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERCHUB_DATA_DIR", str(data_dir))
    code, out, _ = jobs(capsys)
    assert code == 0
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in out.splitlines()
            if line.count("│") == 3}  # fmt: skip
    assert rows == {
        "queued": "2",
        "running": "1",
        "success": "0",
        "failure": "1",
        "canceled": "0",
    }


def test_a_directory_without_a_store_is_said_and_left_alone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = jobs(capsys, "--data-dir", str(tmp_path))
    assert (code, out) == (1, "")
    assert (
        err == f"erchub: error: no store at {tmp_path / 'erchub.sqlite'} (--data-dir, --db-url)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_store_scheme(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = jobs(capsys, "--db-url", "redis://localhost/0")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("erchub: error: --db-url") and "redis" in err
