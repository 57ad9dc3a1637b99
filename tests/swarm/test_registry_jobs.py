"""Runtime images past one machine: the builder, on an app node (the manager), builds a runtime
and pushes it to the cluster's registry; an execution node pulls it by the digest the build
returned, as the job runtime does, and runs it; no other node has it, and none built it but
the app node."""

from __future__ import annotations

import contextlib
import secrets
import time
from pathlib import Path

import docker.errors
import pytest

from erchub.services.cluster.local import LocalCluster
from erchub.spawner.builder import ImageBuilder
from erchub.spawner.registry import pull_image
from tests.conftest import BASE_IMAGE

pytestmark = pytest.mark.swarm

#: seconds an execution node may take to pull the runtime image from the registry
PULL_TIMEOUT = 120


def test_an_execution_node_pulls_by_digest_the_runtime_an_app_node_built(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    token = secrets.token_hex(8)
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nRUN echo {token} > /probe\n")
    registry = cluster.plan.registry_address
    started = time.monotonic()
    with contextlib.closing(cluster.manager_client()) as manager:
        # the base image comes to the app node from the registry (up pushed it there)
        repository, tag = BASE_IMAGE.split(":")
        manager.images.pull(f"{registry}/{repository}", tag=tag)
        manager.api.tag(f"{registry}/{BASE_IMAGE}", repository, tag)
        based = time.monotonic()
        builder = ImageBuilder(docker_client=manager, registry=registry)
        plan = builder.plan(tmp_path, f"erc-{token}")
        built_lines: list[str] = []
        result = builder.build(plan, on_log=built_lines.append)
    built = time.monotonic()
    assert plan.buildpack == "DockerBuildPack"
    assert result.cache_hit is False
    assert result.image_digest.startswith(f"{registry}/erchub/runtime@sha256:")
    assert any(line.startswith("pushed in ") for line in built_lines), built_lines

    execution = [node.name for node in cluster.status().nodes if "execution" in node.roles]
    assert len(execution) == 2, execution
    pulled_lines: list[str] = []
    with cluster.node_client(execution[0]) as engine:
        with pytest.raises(docker.errors.NotFound):
            engine.api.inspect_image(result.image_digest)
        assert pull_image(engine, result.image_digest, pulled_lines.append, None, PULL_TIMEOUT)
        pulled = engine.api.inspect_image(result.image_digest)
        shown = engine.containers.run(
            result.image_digest, ["cat", "/probe"], network_mode="none", remove=True
        )
    ran = time.monotonic()
    print(
        f"\nbase image to the app node {based - started:.1f} s; built and pushed there "
        f"{built - based:.1f} s; pulled and run on {execution[0]} {ran - built:.1f} s"
    )
    # the very image the app node built, by its digest, not by a tag
    assert pulled["Id"] == result.image_id
    assert pulled["RepoDigests"] == [result.image_digest]
    assert pulled["RepoTags"] == []
    assert shown.decode().strip() == token
    assert any(line.startswith("Digest: sha256:") for line in pulled_lines), pulled_lines

    with cluster.node_client(execution[1]) as engine:
        with pytest.raises(docker.errors.NotFound):
            engine.api.inspect_image(result.image_digest)
        assert plan.image not in {tag for image in engine.images.list() for tag in image.tags}
