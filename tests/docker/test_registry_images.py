"""Runtime images through a private registry, on the machine's engine: the builder pushes what it
builds or reuses and returns its repository digest, a builder that lacks an image pulls it
instead of building it, a job records the digest and its execution pulls the image by it when
its engine lacks it, and a registry that is down fails the step saying which.

The registry is the local test cluster's (Debian's docker-registry, erchub.services.cluster),
alone: no node. It publishes on 127.0.0.1, which Docker takes as an insecure registry by
default, so the machine's engine pushes to it and pulls from it over plain HTTP as it is.
Everything this module makes is named erchub-registry-test*, and removed at its end.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import httpx
import pytest

from erchub.errors import BuildError, ExecutionError
from erchub.services.cluster.local import LocalCluster
from erchub.services.jobs.runner import JobEvent, JobRunner
from erchub.services.jobs.runtime import DockerRuntime, ExecutionSpec
from erchub.spawner.builder import BuildPlan, BuildResult, ImageBuilder
from erchub.steps import EventKind, JobOptions, StepName, StepStatus
from tests.conftest import free_port, write_notebook

pytestmark = pytest.mark.docker

#: the registry's cluster (its network, container and volume start so), and the images' names
PREFIX = "erchub-registry-test"
IMAGE_PREFIX = f"{PREFIX}/runtime"
ERC_ID = "7d2c0a51-3b6e-4f1a-9c8d-2e4f6a8b0c1d"
GREETING = "ran from the registry"


@pytest.fixture(scope="module")
def registry(docker_client: Any) -> Iterator[str]:
    """A registry of the machine's engine, empty: its address, 127.0.0.1:PORT."""
    cluster = LocalCluster(name=PREFIX)
    cluster.down()  # what a killed earlier run left
    started = time.monotonic()
    try:
        address = cluster.up_registry()
        print(f"\nregistry {address} up in {time.monotonic() - started:.1f} s")
        yield address
    finally:
        cluster.down()
        cluster.close()


def registry_builder(docker_client: Any, erchub_wheel: str, registry: str) -> ImageBuilder:
    return ImageBuilder(
        docker_client=docker_client,
        erchub_wheel=erchub_wheel,
        image_prefix=IMAGE_PREFIX,
        registry=registry,
    )


def local_references(docker_client: Any, plan: BuildPlan) -> list[str]:
    """The names of the plan's image on the machine's engine: its tag, its tag in the
    registry, and its repository digests."""
    try:
        attrs = docker_client.api.inspect_image(plan.image)
    except docker.errors.NotFound:
        return []
    return [*attrs.get("RepoTags", []), *attrs.get("RepoDigests", [])]


def forget_image(docker_client: Any, references: list[str]) -> None:
    """Remove every one of ``references`` from the machine's engine, which then lacks the
    image; the layers of its build stay, for the next session's build."""
    for reference in references:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.api.remove_image(reference, noprune=True)


@pytest.fixture(scope="module")
def pushed(
    docker_client: Any,
    erchub_wheel: str,
    registry: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[BuildPlan, BuildResult, list[str]]]:
    """A compendium whose runtime (PipBuildPack, no requirements) is built, or taken from the
    layer cache, and pushed to the empty registry: its plan, the build's result and log."""
    workspace = tmp_path_factory.mktemp("registry-erc")
    write_notebook(workspace / "main.ipynb", f"print({GREETING!r})")
    builder = registry_builder(docker_client, erchub_wheel, registry)
    plan = builder.plan(workspace, ERC_ID)
    # what an earlier run left here would make the build a reuse
    forget_image(docker_client, local_references(docker_client, plan))
    lines: list[str] = []
    started = time.monotonic()
    result = builder.build(plan, on_log=lines.append)
    print(
        f"\n{plan.image}: built in {result.seconds:.1f} s, "
        f"pushed {time.monotonic() - started - result.seconds:.1f} s later"
    )
    try:
        yield plan, result, lines
    finally:
        forget_image(docker_client, local_references(docker_client, plan))


def test_a_build_pushes_its_image_and_returns_its_repository_digest(
    docker_client: Any, registry: str, pushed: tuple[BuildPlan, BuildResult, list[str]]
) -> None:
    plan, result, lines = pushed
    tag = plan.image.partition(":")[2]
    repository = f"{registry}/{IMAGE_PREFIX}"
    assert result.cache_hit is False
    assert result.image_digest.startswith(f"{repository}@sha256:")
    assert f"pushing {repository}:{tag} to the registry {registry}" in lines
    assert any(line.startswith("Pushed ") for line in lines), lines
    assert lines[-1].startswith("pushed in ") and lines[-1].endswith(result.image_digest)

    # the registry has the tag, as the digest says
    url = f"http://{registry}/v2/{IMAGE_PREFIX}"
    assert tag in httpx.get(f"{url}/tags/list", timeout=5).json()["tags"]
    manifest = httpx.head(
        f"{url}/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=5,
    )
    digest = result.image_digest.partition("@")[2]
    assert manifest.headers["Docker-Content-Digest"] == digest
    # and so has the engine
    assert result.image_digest in docker_client.api.inspect_image(plan.image)["RepoDigests"]


def test_a_reused_image_is_pushed_too_to_the_same_digest(
    docker_client: Any,
    erchub_wheel: str,
    registry: str,
    pushed: tuple[BuildPlan, BuildResult, list[str]],
) -> None:
    plan, first, _ = pushed
    lines: list[str] = []
    again = registry_builder(docker_client, erchub_wheel, registry).build(plan, lines.append)
    assert (again.cache_hit, again.image_id) == (True, first.image_id)
    assert again.image_digest == first.image_digest
    assert not any(line.startswith("Pushed ") for line in lines), lines
    assert any(line.startswith("Layer already exists") for line in lines), lines


def test_a_builder_that_lacks_the_image_pulls_it_instead_of_building_it(
    docker_client: Any,
    erchub_wheel: str,
    registry: str,
    pushed: tuple[BuildPlan, BuildResult, list[str]],
) -> None:
    plan, first, _ = pushed
    forget_image(docker_client, local_references(docker_client, plan))
    assert local_references(docker_client, plan) == []
    lines: list[str] = []
    started = time.monotonic()
    result = registry_builder(docker_client, erchub_wheel, registry).build(plan, lines.append)
    print(f"\npulled instead of built in {time.monotonic() - started:.1f} s")
    assert (result.cache_hit, result.image_id) == (True, first.image_id)
    assert result.image_digest == first.image_digest
    # what the pull took, for the job's step (the registry pulls of the service's metrics)
    assert result.pulled is not None and result.pulled > 0 and first.pulled is None
    assert f"{plan.image}: pulled from the registry {registry}, not built here" in lines
    assert not any(line.startswith("Step ") for line in lines), lines
    assert docker_client.api.inspect_image(plan.image)["Id"] == first.image_id


def test_a_job_records_the_digest_and_its_execution_pulls_the_image_by_it(
    docker_client: Any,
    erchub_wheel: str,
    registry: str,
    tmp_path: Path,
    pushed: tuple[BuildPlan, BuildResult, list[str]],
) -> None:
    """The build runs on this engine; when it ends, the test takes the image away, as if the
    build had run on another node: the execution has only the job's digest to go by."""
    plan, first, _ = pushed
    runner = JobRunner(
        data_dir=str(tmp_path / "data"),
        builder=registry_builder(docker_client, erchub_wheel, registry),
    )
    forgotten: list[str] = []

    def on_event(event: JobEvent) -> None:
        if (event.kind, event.step, event.status) == (
            EventKind.STEP,
            StepName.IMAGE_BUILD,
            StepStatus.SUCCESS,
        ):
            forgotten.extend(local_references(docker_client, plan))
            forget_image(docker_client, forgotten)

    result = runner.run(plan.workspace, options=JobOptions(check=False), on_event=on_event)

    assert result.status == "success", result.job.failure_reason
    assert first.image_digest in forgotten
    assert result.record["image"] == plan.image
    assert result.record["image_digest"] == first.image_digest
    execute = result.job.step(StepName.IMAGE_EXECUTE)
    assert f"pulling {first.image_digest}: this Docker engine does not have it" in execute.text
    assert any(line.startswith("pulled in ") for line in execute.text), execute.text
    # the step records what the pull took (the service's metrics count registry pulls by it)
    assert execute.pull is not None and execute.pull > 0
    assert result.record["steps"][StepName.IMAGE_EXECUTE]["pull"] == execute.pull
    assert any(GREETING in line for line in (result.directory / "output" / "main.ipynb").open())
    # pulled by digest, the image has no tag here: the container ran from the digest
    pulled = docker_client.api.inspect_image(first.image_digest)
    assert (pulled["Id"], pulled["RepoTags"]) == (first.image_id, [])


def test_a_registry_that_is_down_fails_the_step_saying_which(
    docker_client: Any,
    erchub_wheel: str,
    registry: str,
    tmp_path: Path,
    pushed: tuple[BuildPlan, BuildResult, list[str]],
) -> None:
    plan, first, _ = pushed
    down = f"127.0.0.1:{free_port()}"  # nothing listens there
    builder = registry_builder(docker_client, erchub_wheel, down)

    # the image is missing here: the builder asks the registry for it first
    forget_image(docker_client, local_references(docker_client, plan))
    with pytest.raises(BuildError) as missing:
        builder.build(plan)
    reason = str(missing.value)
    assert reason.startswith(f"pulling {down}/{IMAGE_PREFIX}:")
    assert f"from the registry {down} failed: " in reason and "\n" not in reason

    # the image is here (from the working registry): the push fails, and so the job
    docker_client.images.pull(first.image_digest)
    docker_client.api.tag(first.image_digest, *plan.image.split(":"))
    runner = JobRunner(data_dir=str(tmp_path / "data"), builder=builder)
    result = runner.run(plan.workspace, options=JobOptions(check=False))
    assert result.status == "failure"
    build = result.job.step(StepName.IMAGE_BUILD)
    assert build.status == "failure"
    assert build.reason.startswith(f"pushing {down}/{plan.image} to the registry {down} failed: ")
    assert "\n" not in build.reason and "Traceback" not in build.reason
    assert "image_digest" not in result.record

    # an execution whose digest names a registry that is down fails before it starts
    output = tmp_path / "output"
    spec = ExecutionSpec(
        compendium=plan.workspace,
        notebook=plan.workspace / "main.ipynb",
        output=output,
        executed_name="main.ipynb",
        display_name="main.html",
        files=("main.ipynb",),
        image=plan.image,
        image_digest=f"{down}/{IMAGE_PREFIX}@{first.image_digest.partition('@')[2]}",
    )
    lines: list[str] = []
    with pytest.raises(ExecutionError) as unpulled:
        DockerRuntime().execute(spec, lines.append)
    reason = str(unpulled.value)
    assert reason.startswith(f"pulling {spec.image_digest} from the registry {down} failed: ")
    assert "\n" not in reason
    assert lines == [f"pulling {spec.image_digest}: this Docker engine does not have it"]
