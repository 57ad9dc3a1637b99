"""Shared fixtures: notebooks built in code, and the Docker engine for the docker tier."""

from __future__ import annotations

import os
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
    problem = docker_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"docker tier cannot run in CI: {problem}")
        pytest.skip(problem)
    import docker

    return docker.from_env()
