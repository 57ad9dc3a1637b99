"""The runtime image builder on the real Docker engine: repo2docker with erchub's SDK engine."""

from __future__ import annotations

import os
import time
import uuid
from importlib.metadata import version
from typing import Any

import docker.errors
import pytest
from repo2docker.app import Repo2Docker
from repo2docker.buildpacks.base import BaseImage

from erchub.errors import BuildError
from erchub.spawner.builder import BuildFailed, ImageBuilder
from erchub.spawner.engine import DockerSDKEngine
from tests.conftest import BASE_IMAGE
from tests.docker.conftest import SCIENCE_ERC_ID, TimedBuild, remove_image, timed_build

pytestmark = pytest.mark.docker


def run_in(client: Any, image: str, script: str) -> str:
    output = client.containers.run(image, ["sh", "-c", script], remove=True, network_mode="none")
    return str(output.decode().strip())


def test_requirements_build_through_pip_buildpack_streams_its_log(science_build: TimedBuild):
    assert science_build.plan.buildpack == "PipBuildPack"
    assert science_build.result.cache_hit is False
    texts = [text for _second, text in science_build.lines]
    assert any(text.startswith("Step 1/") for text in texts)
    assert any("Successfully installed" in text and "numpy" in text for text in texts)
    # Streamed while building, not handed over at the end.
    first_second, _ = science_build.lines[0]
    last_second, _ = science_build.lines[-1]
    assert last_second - first_second > 1.0


def test_image_runs_as_uid_1000_with_numpy_matplotlib_nbclient_erchub(
    docker_client, science_build: TimedBuild
):
    output = run_in(
        docker_client,
        science_build.result.image,
        'id -u && python -c "import numpy, matplotlib, nbclient, erchub; print(erchub.__name__)"',
    )
    assert output.splitlines() == ["1000", "erchub"]


def test_apt_txt_and_post_build_took_effect_and_only_what_they_need_is_copied(
    docker_client, science_build: TimedBuild
):
    output = run_in(
        docker_client,
        science_build.result.image,
        "jq --version && cat postbuild-marker.txt && pwd && ls analysis.py",
    )
    jq_version, marker, directory, copied = output.splitlines()
    assert jq_version.startswith("jq-")
    assert marker == "postBuild ran as jovyan"
    assert directory == "/home/jovyan"
    assert copied == "analysis.py"  # postBuild may read the workspace: all of it is copied


def test_jupyterhub_singleuser_matches_the_hub(docker_client, science_build: TimedBuild):
    output = run_in(docker_client, science_build.result.image, "jupyterhub-singleuser --version")
    assert output == version("jupyterhub")


def test_image_carries_the_erc_labels(docker_client, science_build: TimedBuild):
    labels = docker_client.images.get(science_build.result.image).labels
    assert labels["erc"] == SCIENCE_ERC_ID
    assert labels["org.erchub.erc.id"] == SCIENCE_ERC_ID
    assert labels["org.erchub.env.hash"] == science_build.plan.env_hash
    assert science_build.plan.image.endswith(":" + science_build.plan.env_hash[:20])
    assert labels["org.erchub.version"]


def test_second_build_of_the_same_environment_is_a_cache_hit(science_build: TimedBuild):
    again = science_build.builder.plan(science_build.plan.workspace, "another-erc")
    assert again.image == science_build.plan.image
    second = timed_build(science_build.builder, again)
    assert second.result.cache_hit is True
    assert second.result.image_id == science_build.result.image_id
    assert second.lines == []
    assert second.result.seconds < 2
    print(f"\ncache hit in {second.result.seconds * 1000:.1f} ms")


def test_a_builder_builds_on_the_engine_its_client_settings_name(
    science_build: TimedBuild, erchub_wheel: str
):
    # what ERCSpawner hands its builds: DockerSpawner's client_kwargs (and tls_config)
    engine = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    builder = ImageBuilder(client_kwargs={"base_url": engine}, erchub_wheel=erchub_wheel)
    again = builder.plan(science_build.plan.workspace, "another-erc")
    assert again.image == science_build.plan.image
    result = builder.build(again)
    assert (result.cache_hit, result.image_id) == (True, science_build.result.image_id)
    unreachable = ImageBuilder(
        client_kwargs={"base_url": "unix:///nonexistent/docker.sock"}, erchub_wheel=erchub_wheel
    )
    with pytest.raises(docker.errors.DockerException):
        unreachable.image_exists(science_build.plan.image)


def test_runtime_txt_asking_for_another_python_fails_naming_both(builder, tmp_path):
    (tmp_path / "requirements.txt").write_text("numpy\n")
    (tmp_path / "runtime.txt").write_text("python-3.12\n")
    with pytest.raises(BuildError, match=r"Python 3\.12.*Python 3\.11"):
        builder.plan(tmp_path, "erc-py312")


def test_environment_yml_fails_in_bounded_time_naming_the_unreachable_host(builder, tmp_path):
    (tmp_path / "environment.yml").write_text("dependencies:\n  - python=3.11\n  - numpy\n")
    builder.reachability_timeout = 3
    plan = builder.plan(tmp_path, "erc-conda")
    assert plan.buildpack == "CondaBuildPack"
    started = time.monotonic()
    with pytest.raises(BuildError) as failure:
        builder.build(plan)
    assert time.monotonic() - started < 3 + 2
    message = str(failure.value)
    assert "cannot reach conda.anaconda.org:443" in message
    assert "CondaBuildPack for environment.yml" in message
    assert "\n" not in message


@pytest.fixture
def dockerfile_workspace(tmp_path, docker_client):
    token = uuid.uuid4().hex
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo built-from-{token}\n")
    yield tmp_path, token
    for image in docker_client.images.list(filters={"label": "erc=erc-dockerfile"}):
        remove_image(docker_client, image.id, keep_layers=False)


def test_workspace_dockerfile_builds_through_repo2docker_docker_buildpack(
    builder, docker_client, dockerfile_workspace
):
    workspace, token = dockerfile_workspace
    plan = builder.plan(workspace, "erc-dockerfile")
    assert plan.buildpack == "DockerBuildPack"
    assert plan.dockerfile == (workspace / "Dockerfile").read_text()
    build = timed_build(builder, plan)
    assert build.result.cache_hit is False
    assert f"built-from-{token}" in [text for _second, text in build.lines]
    assert docker_client.images.get(plan.image).labels["erc"] == "erc-dockerfile"


def test_nonexistent_package_fails_with_the_pip_error_in_the_log_tail(builder, tmp_path):
    (tmp_path / "requirements.txt").write_text("erchub-no-such-package-7c1e\n")
    (tmp_path / "apt.txt").write_text("jq\n")  # shares the science image's cached layers
    plan = builder.plan(tmp_path, "erc-missing-package")
    with pytest.raises(BuildFailed) as failure:
        builder.build(plan)
    assert "No matching distribution found for erchub-no-such-package-7c1e" in str(failure.value)
    assert "\n" not in str(failure.value)
    assert any("erchub-no-such-package-7c1e" in line for line in failure.value.log_tail)


def test_build_timeout_cancels_the_build_and_its_container(builder, docker_client, tmp_path):
    token = uuid.uuid4().hex
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo {token} && sleep 120\n")
    builder.build_timeout = 3
    plan = builder.plan(tmp_path, "erc-slow")
    started = time.monotonic()
    with pytest.raises(BuildFailed, match="did not finish within 3 s"):
        builder.build(plan)
    assert time.monotonic() - started < 3 + 5

    def build_containers() -> list[Any]:
        containers = docker_client.containers.list(all=True)
        return [c for c in containers if token in " ".join(c.attrs["Config"]["Cmd"] or [])]

    deadline = time.monotonic() + 15
    while build_containers() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert build_containers() == []


def test_repo2docker_finds_the_engine_and_builds_its_own_template_with_it(docker_client, tmp_path):
    (tmp_path / "README.md").write_text("a repository without environment files\n")
    image = "erchub/test-repo2docker:engine"
    remove_image(docker_client, image)  # else repo2docker reuses it instead of building
    app = Repo2Docker(
        engine="erchub-docker-sdk",
        repo=str(tmp_path),
        output_image_spec=image,
        run=False,
        user_id=1000,
        user_name="jovyan",
        base_image=BASE_IMAGE,
        buildpacks=[BaseImage],
    )
    app.initialize()
    assert isinstance(app.get_engine(), DockerSDKEngine)
    try:
        app.build()
        # repo2docker's template uses COPY --chmod, which the engine maps for the classic builder
        modes = run_in_entrypoint(docker_client, image, "/usr/local/bin/repo2docker-entrypoint")
        assert modes == "755"
    finally:
        remove_image(docker_client, image)


def run_in_entrypoint(client: Any, image: str, path: str) -> str:
    output = client.containers.run(
        image, ["-c", "%a", path], entrypoint="stat", remove=True, network_mode="none"
    )
    return str(output.decode().strip())
