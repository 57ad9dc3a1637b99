"""The erc service's settings: traits with ERCHUB_* environment defaults, bad values refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from erchub.services.app import ERCService


@pytest.fixture
def service_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("ERCHUB_DB_URL", "ERCHUB_UPLOAD_LIMIT", "ERCHUB_WORKER_COUNT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ERCHUB_DATA_DIR", str(tmp_path))
    return tmp_path


def test_defaults_come_from_the_environment(
    service_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERCHUB_UPLOAD_LIMIT", "12345")
    monkeypatch.setenv("ERCHUB_WORKER_COUNT", "3")
    service = ERCService()
    assert service.data_dir == str(service_env)
    assert service.db_url == f"sqlite:///{service_env.resolve() / 'erchub.sqlite'}"
    assert service.upload_limit == 12345
    assert service.worker_count == 3


def test_config_wins_over_the_environment(
    service_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERCHUB_WORKER_COUNT", "3")
    assert ERCService(worker_count=0).worker_count == 0


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("ERCHUB_UPLOAD_LIMIT", "lots", "upload_limit"),
        ("ERCHUB_DB_URL", "oracle://db/erc", "oracle"),
        ("ERCHUB_ARCHIVE_MAX_SIZE", "lots", "archive_max_size"),
        ("ERCHUB_ARCHIVE_MAX_SIZE", "0", "archive_max_size"),
        ("ERCHUB_ARCHIVE_MAX_RATIO", "0.5", "archive_max_ratio"),
        ("ERCHUB_ARCHIVE_MAX_RATIO", "high", "archive_max_ratio"),
        ("ERCHUB_ARCHIVE_MAX_MEMBERS", "-3", "archive_max_members"),
        ("ERCHUB_ARCHIVE_MAX_DEPTH", "0", "archive_max_depth"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_2(
    service_env: Path, name: str, value: str, words: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "erchub.services"],
        env={"ERCHUB_DATA_DIR": str(service_env), name: value, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("erchub-service: ") and words in lines[0]
