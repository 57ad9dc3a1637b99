"""Shared fixtures: notebooks built in code, and the Docker engine for the docker tier."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

BASE_IMAGE = "erchub/base:bookworm"


def write_notebook(path: Path, *cells: Any, **metadata: Any) -> Path:
    """Write a notebook of the given cells (strings become code cells)."""
    made = [new_code_cell(c) if isinstance(c, str) else c for c in cells]
    nb = new_notebook(cells=made, metadata={"kernelspec": {"name": "python3",
                      "display_name": "Python 3", "language": "python"}, **metadata})  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def parameters_cell(source: str) -> Any:
    return new_code_cell(source, metadata={"tags": ["parameters"]})


def heading(text: str) -> Any:
    return new_markdown_cell(text)


def require_tier(tier: str, problem: str | None) -> None:
    """Skip a test whose tier cannot run here, naming what is missing; in CI, fail instead."""
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{tier} tier cannot run in CI: {problem}")
        pytest.skip(problem)


def docker_problem() -> str | None:
    """Why the docker tier cannot run here, or None when it can."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:
        reason = type(exc).__name__
        return f"no Docker engine reachable ({reason}); run config/provision/docker-engine.sh"
    try:
        client.images.get(BASE_IMAGE)
    except Exception:
        return f"base image {BASE_IMAGE} missing; run config/provision/base-image.sh"
    return None


@pytest.fixture(scope="session")
def docker_client() -> Any:
    require_tier("docker", docker_problem())
    import docker

    return docker.from_env()


DEFAULT_POSTGRES_URL = "postgresql+psycopg://erchub:erchub@127.0.0.1:5432/erchub_test"


def postgres_problem(url: str) -> str | None:
    """Why the postgres tier cannot use ``url``, or None when it can."""
    import sqlalchemy as sa

    from erchub.services.store.common import redact

    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:
        return (
            f"no PostgreSQL server accepts {redact(url)} ({type(exc).__name__}); "
            "run config/provision/postgres.sh or set ERCHUB_TEST_POSTGRES_URL"
        )
    return None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The SQLAlchemy URL of a reachable PostgreSQL server (ERCHUB_TEST_POSTGRES_URL, else the
    one config/provision/postgres.sh makes); skips when there is none, fails instead in CI."""
    url = os.environ.get("ERCHUB_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    require_tier("postgres", postgres_problem(url))
    return url


@pytest.fixture(scope="session")
def erc_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real hub (the repository's jupyterhub_config.py) for the hub and browser tiers."""
    from tests.hub.conftest import require_hub, server_errors, start_hub, stop_hub

    require_hub()
    hub, process = start_hub(tmp_path_factory.mktemp("hub"))
    try:
        yield hub
    finally:
        stop_hub(process)
    # Bad input must never end in a 500: the hub and the service log every request's status.
    errors = server_errors(hub.log_tail(10**6))
    assert errors == [], f"server errors during the hub tier: {errors}"
