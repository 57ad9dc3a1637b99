"""Shared fixtures: notebooks built in code, the Docker engine for the docker tier, a real
jupyter-server process, and the hub of the hub and browser tiers."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
        from erchub.spawner.clients import docker_client

        client = docker_client()
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
    from erchub.spawner.clients import docker_client

    return docker_client()


DEFAULT_POSTGRES_URL = "postgresql+psycopg://erchub:erchub@127.0.0.1:5432/erchub_test"


def postgres_problem(url: str) -> str | None:
    """Why the postgres tier cannot use ``url``, or None when it can."""
    import sqlalchemy as sa

    from erchub.redact import redact_url as redact

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
def fake_zenodo() -> Iterator[Any]:
    """The local Zenodo (records, deposit and DOI handle APIs) of the whole session."""
    from tests.fakes.zenodo import FakeZenodo

    with FakeZenodo() as zenodo:
        yield zenodo


#: the test hub's loader limits: small, so that 413 and time-outs are cheap to provoke
LOADER_DOWNLOAD_LIMIT = 5 * 1024**2
LOADER_TIMEOUT = 5


def zenodo_environment(zenodo: Any) -> dict[str, str]:
    """The erc service's settings that point it at the fake Zenodo (both Zenodo and its
    sandbox, the DOI handle API) and allow the loader to download from it."""
    return {
        "ERCHUB_ZENODO_URL": zenodo.url,
        "ERCHUB_ZENODO_SANDBOX_URL": zenodo.url,
        "ERCHUB_DOI_RESOLVER_URL": f"{zenodo.url}/api/handles/",
        "ERCHUB_LOADER_ALLOWED_HOSTS": "127.0.0.1",
        # no short forms of git launch links: their hosts (github.com, ...) would be allowed,
        # and the tests reach nothing but this machine
        "ERCHUB_LOADER_GIT_HOSTS": "{}",
        "ERCHUB_LOADER_DOWNLOAD_LIMIT": str(LOADER_DOWNLOAD_LIMIT),
        "ERCHUB_LOADER_TIMEOUT": str(LOADER_TIMEOUT),
    }


@pytest.fixture(scope="session")
def erc_hub(tmp_path_factory: pytest.TempPathFactory, fake_zenodo: Any) -> Iterator[Any]:
    """One real hub (the repository's jupyterhub_config.py) for the hub and browser tiers, its
    erc service pointed at the session's fake Zenodo."""
    from tests.hub.conftest import require_hub, server_errors, start_hub, stop_hub

    require_hub()
    # review links may be opened as guests; ended links are looked for every second
    environment = {
        **zenodo_environment(fake_zenodo),
        "ERCHUB_REVIEW_GUESTS": "true",
        "ERCHUB_REVIEW_SWEEP_INTERVAL": "1",
    }
    hub, process = start_hub(tmp_path_factory.mktemp("hub"), environment=environment)
    try:
        yield hub
    finally:
        stop_hub(process)
    # Bad input must never end in a 500: the hub and the service log every request's status.
    # 502 and 504 are deliberate: they name an upstream (Zenodo, a share host, the hub's API)
    # that failed, as the loader's and the shipper's tests provoke.
    errors = [
        error
        for error in server_errors(hub.log_tail(10**6))
        if not error.startswith(("502 ", "504 "))
    ]
    assert errors == [], f"server errors during the hub tier: {errors}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_jupyter(
    root: Path, *, lab: bool = False, log: Path | None = None
) -> Iterator[tuple[str, str]]:
    """A real jupyter-server of this environment (JupyterLab with ``lab``) serving ``root``,
    with erchub's server extension enabled; yields its URL and token."""
    token, port = secrets.token_hex(16), free_port()
    command = [
        sys.executable,
        "-m",
        "jupyterlab" if lab else "jupyter_server",
        "--no-browser",
        f"--port={port}",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        "--ServerApp.jpserver_extensions=erchub.extensions=True",
        "--ServerApp.allow_root=True",
    ]
    with tempfile.TemporaryDirectory(prefix="erchub-lab-settings-") as settings:
        # JupyterLab's news toast would cover the panel's buttons: off, as in sessions
        notification = Path(settings) / "@jupyterlab" / "apputils-extension"
        notification.mkdir(parents=True)
        (notification / "notification.jupyterlab-settings").write_text(
            '{"fetchNews": "false", "checkForUpdates": false}'
        )
        environment = {
            **os.environ,
            "JUPYTERLAB_SETTINGS_DIR": settings,
            "JUPYTERLAB_WORKSPACES_DIR": os.path.join(settings, "workspaces"),
        }
        with open(log or os.devnull, "wb") as output:
            process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,
            )
        try:
            url = wait_for_jupyter(process, f"http://127.0.0.1:{port}", token, log)
            yield url, token
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def wait_for_jupyter(
    process: subprocess.Popen[bytes], url: str, token: str, log: Path | None
) -> str:
    import httpx

    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter exited with {process.returncode}: see {log}")
        try:
            if httpx.get(f"{url}/api/status", params={"token": token}).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"jupyter did not answer at {url} in 60 s: see {log}")
        time.sleep(0.05)
