"""Fixtures of the image builder's docker tier.

They stand on ``docker_client`` (tests/conftest.py): it skips saying what is missing (engine or
base image), and fails instead when CI is set.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from erchub.spawner.builder import BuildPlan, BuildResult, ImageBuilder
from erchub.spawner.wheel import build_erchub_wheel, erchub_source_tree

SCIENCE_ERC_ID = "5c1e4ce0-0b5f-4e6f-8a9b-1c2d3e4f5a6b"
POST_BUILD = """\
#!/bin/bash
set -e
echo "postBuild ran as $(id -un)" > postbuild-marker.txt
"""


@dataclass
class TimedBuild:
    """A build, its log lines with the second each arrived (from the build's start)."""

    builder: ImageBuilder
    plan: BuildPlan
    result: BuildResult
    lines: list[tuple[float, str]]


def remove_image(client: Any, image: str, keep_layers: bool = True) -> None:
    """Remove ``image``, by default keeping its layers for the next session's build."""
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(image, force=not keep_layers, noprune=keep_layers)


def timed_build(builder: ImageBuilder, plan: BuildPlan) -> TimedBuild:
    lines: list[tuple[float, str]] = []
    started = time.monotonic()

    def on_log(line: str) -> None:
        lines.append((time.monotonic() - started, line))

    result = builder.build(plan, on_log=on_log)
    return TimedBuild(builder, plan, result, lines)


@pytest.fixture(scope="session")
def erchub_wheel() -> str:
    """erchub's wheel, built once from the source tree: the tree may change during a session
    (and each change would rightly give new image tags)."""
    source = erchub_source_tree()
    if source is None:
        pytest.skip("erchub is not installed from its source tree: no wheel to build")
    return str(build_erchub_wheel(source, Path(ImageBuilder().cache_dir)))


@pytest.fixture
def builder(docker_client: Any, erchub_wheel: str) -> ImageBuilder:
    return ImageBuilder(docker_client=docker_client, erchub_wheel=erchub_wheel)


def science_workspace(root: Path) -> Path:
    """requirements.txt numpy + matplotlib, with runtime.txt, apt.txt and postBuild."""
    root.mkdir(parents=True, exist_ok=True)
    # A line unique to the session: the requirements layer is really built (pip runs and
    # streams its log) even when a previous session left the layer cache warm.
    (root / "requirements.txt").write_text(f"# session {uuid.uuid4().hex}\nnumpy\nmatplotlib\n")
    (root / "runtime.txt").write_text("python-3.11\n")
    (root / "apt.txt").write_text("# a command-line JSON tool\njq\n")
    (root / "postBuild").write_text(POST_BUILD)
    (root / "analysis.py").write_text("print('the compendium itself')\n")
    return root


@pytest.fixture(scope="session")
def science_build(
    docker_client: Any, erchub_wheel: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TimedBuild]:
    """One numpy + matplotlib image per session, really built (from the layer cache if warm)."""
    builder = ImageBuilder(docker_client=docker_client, erchub_wheel=erchub_wheel)
    plan = builder.plan(science_workspace(tmp_path_factory.mktemp("science")), SCIENCE_ERC_ID)
    remove_image(docker_client, plan.image)
    build = timed_build(builder, plan)
    print(f"\nscience image {plan.image}: built in {build.result.seconds:.1f} s")
    yield build
    remove_image(docker_client, plan.image)
