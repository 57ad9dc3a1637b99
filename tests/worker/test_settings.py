"""Settings read one way: ERCHUB_* defaults, one data_dir for the service, the workers and the
runner, values normalised however they were set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from traitlets import Float, Integer, List, TraitError, Unicode
from traitlets.config import Config

from erchub.services.app import ERCService
from erchub.services.jobs.runner import JobRunner
from erchub.services.jobs.worker import Worker
from erchub.settings import DataDirMixin, default_data_dir, env_setting


@pytest.fixture
def env_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("ERCHUB_DB_URL", "ERCHUB_ZENODO_URL", "ERCHUB_LOADER_ALLOWED_HOSTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ERCHUB_DATA_DIR", str(tmp_path / "from-env"))
    return tmp_path / "from-env"


@pytest.fixture
def worker_of() -> Iterator[list[Worker]]:
    """Workers made by a test, closed afterwards (each holds a pipe)."""
    workers: list[Worker] = []
    yield workers
    for worker in workers:
        worker.close()


def test_env_setting_parses_as_the_trait_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ERCHUB_SOME_LIMIT", raising=False)
    assert env_setting("some_limit", Integer(), 7) == 7
    monkeypatch.setenv("ERCHUB_SOME_LIMIT", "")
    assert env_setting("some_limit", Integer(), 7) == 7  # empty: unset
    monkeypatch.setenv("ERCHUB_SOME_LIMIT", "12345")
    assert env_setting("some_limit", Integer(), 7) == 12345
    assert env_setting("some_limit", Float(), 1.0) == 12345.0
    monkeypatch.setenv("ERCHUB_SOME_LIMIT", " a.org, B.org ,,")
    assert env_setting("some_limit", List(Unicode()), []) == ["a.org", "B.org"]
    monkeypatch.setenv("ERCHUB_SOME_LIMIT", "lots")
    with pytest.raises(TraitError, match=r"ERCHUB_SOME_LIMIT='lots' is not a valid some_limit"):
        env_setting("some_limit", Integer(), 7)


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ERCHUB_DATA_DIR", str(tmp_path))
    assert default_data_dir() == str(tmp_path)
    monkeypatch.setenv("ERCHUB_DATA_DIR", "")
    assert default_data_dir() == str(Path("~/.local/share/erchub").expanduser())


def test_one_data_dir_trait() -> None:
    traits = [cls.class_traits()["data_dir"] for cls in (ERCService, Worker, JobRunner)]
    assert all(trait is DataDirMixin.class_traits()["data_dir"] for trait in traits)
    assert "(default: the parent's data_dir, else $ERCHUB_DATA_DIR" in traits[0].help


def test_data_dir_comes_from_the_parent(
    env_data_dir: Path, tmp_path: Path, worker_of: list[Worker]
) -> None:
    # alone: the environment
    assert JobRunner().data_dir == str(env_data_dir)
    assert JobRunner().local_runtime.venv_dir == str(env_data_dir / "venvs")
    # below a worker (as the service starts it: --data-dir): the worker's
    worker = Worker(data_dir=str(tmp_path / "site"))
    worker_of.append(worker)
    assert worker.runner.data_dir == str(tmp_path / "site")
    assert worker.runner.jobs_dir == worker.jobs_dir
    assert worker.runner.local_runtime.venv_dir == str(tmp_path / "site" / "venvs")
    assert JobRunner(parent=worker).data_dir == str(tmp_path / "site")
    assert worker.db_url == f"sqlite:///{(tmp_path / 'site').resolve() / 'erchub.sqlite'}"


def test_config_files_still_set_each_data_dir(
    env_data_dir: Path, tmp_path: Path, worker_of: list[Worker]
) -> None:
    config = Config()
    config.JobRunner.data_dir = str(tmp_path / "runs")
    config.Worker.data_dir = str(tmp_path / "site")
    config.ERCService.data_dir = str(tmp_path / "service")
    assert JobRunner(config=config).data_dir == str(tmp_path / "runs")
    assert ERCService(config=config).data_dir == str(tmp_path / "service")
    worker = Worker(config=config)
    worker_of.append(worker)
    assert worker.data_dir == str(tmp_path / "site")
    # a worker's runner keeps the worker's: its jobs are where the worker snapshots them
    assert worker.runner.data_dir == str(tmp_path / "site")


def test_worker_db_url_from_the_environment(
    env_data_dir: Path, monkeypatch: pytest.MonkeyPatch, worker_of: list[Worker]
) -> None:
    monkeypatch.setenv("ERCHUB_DB_URL", "postgresql+psycopg://erc@db/erc")
    worker = Worker()
    worker_of.append(worker)
    assert (worker.data_dir, worker.db_url) == (
        str(env_data_dir),
        "postgresql+psycopg://erc@db/erc",
    )


def test_service_values_are_normalised_however_they_are_set(
    env_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = ERCService(
        zenodo_url="https://zenodo.example/",
        zenodo_sandbox_url="https://sandbox.zenodo.example//",
        doi_resolver_url="https://doi.example/api/handles",
        loader_allowed_hosts=[" Zenodo.Example ", "", "DOI.example"],
    )
    assert configured.zenodo_url == "https://zenodo.example"
    assert configured.zenodo_sandbox_url == "https://sandbox.zenodo.example"
    assert configured.doi_resolver_url == "https://doi.example/api/handles/"
    assert configured.loader_allowed_hosts == ["zenodo.example", "doi.example"]
    monkeypatch.setenv("ERCHUB_ZENODO_URL", "https://zenodo.env/")
    monkeypatch.setenv("ERCHUB_LOADER_ALLOWED_HOSTS", "Zenodo.ENV, doi.org")
    from_env = ERCService()
    assert from_env.zenodo_url == "https://zenodo.env"
    assert from_env.loader_allowed_hosts == ["zenodo.env", "doi.org"]
    monkeypatch.delenv("ERCHUB_ZENODO_URL")
    monkeypatch.delenv("ERCHUB_LOADER_ALLOWED_HOSTS")
    defaults = ERCService()
    assert defaults.zenodo_url == "https://zenodo.org"
    assert defaults.doi_resolver_url == "https://doi.org/api/handles/"
    assert "doi.org" in defaults.loader_allowed_hosts
