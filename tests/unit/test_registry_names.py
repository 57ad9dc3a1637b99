"""Runtime images in a registry, by name: what a registry address may be, what an image is
called there, which repository digest a push made, and which lines of a pull or push a log
shows (erchub.spawner.registry, the pure part)."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from erchub.spawner.builder import ImageBuilder
from erchub.spawner.registry import (
    check_digest_reference,
    check_registry,
    pushed_digest,
    reference_registry,
    registry_image,
    repository_digest,
    status_line,
)

DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32


@pytest.mark.parametrize(
    "registry",
    [
        "erchub-swarm-test-registry:5000",
        "127.0.0.1:5000",
        "registry.example.org",
        "registry.example.org:443",
        "localhost",
        "localhost:5000",
    ],
)
def test_a_registry_is_a_host_with_a_port_or_a_dot(registry: str) -> None:
    assert check_registry(registry) == registry


@pytest.mark.parametrize(
    ("registry", "says"),
    [
        # Docker would push registry/erchub/runtime to the Docker Hub account "registry"
        ("registry", "Docker Hub account"),
        ("http://registry.example.org:5000", "no registry address"),
        ("registry.example.org:5000/erchub", "no registry address"),
        ("registry.example.org:0", "no registry address"),
        ("registry.example.org:70000", "no registry address"),
        ("-registry.example.org", "no registry address"),
        ("", "no registry address"),
    ],
)
def test_anything_else_is_refused_saying_what_a_registry_is(registry: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as refused:
        check_registry(registry)
    assert "e.g. registry.example.org:5000" in str(refused.value)


def test_the_builder_setting_is_checked_when_set() -> None:
    assert ImageBuilder().registry == ""
    assert ImageBuilder(registry="127.0.0.1:5000").registry == "127.0.0.1:5000"
    with pytest.raises(TraitError, match=r"^ImageBuilder.registry: .*Docker Hub account"):
        ImageBuilder(registry="registry")


def test_a_runtime_image_keeps_its_repository_and_tag_in_the_registry() -> None:
    assert (
        registry_image("registry.example.org:5000", "erchub/runtime:0123abcd")
        == "registry.example.org:5000/erchub/runtime:0123abcd"
    )
    with pytest.raises(ValueError, match="names a registry already"):
        registry_image("registry.example.org:5000", "other.example.org/erchub/runtime:0123")
    with pytest.raises(ValueError, match="names a registry already"):
        registry_image("registry.example.org:5000", "localhost/erchub/runtime:0123")
    with pytest.raises(ValueError, match="repository:tag"):
        registry_image("registry.example.org:5000", "erchub/runtime")
    with pytest.raises(ValueError, match="Docker Hub account"):
        registry_image("registry", "erchub/runtime:0123")


def test_an_image_by_digest_names_its_registry_path_and_sha256() -> None:
    reference = f"erchub-swarm-test-registry:5000/erchub/runtime@{DIGEST}"
    assert check_digest_reference(reference) == reference
    assert reference_registry(reference) == "erchub-swarm-test-registry:5000"
    assert reference_registry("127.0.0.1:5000/erchub/runtime:0123") == "127.0.0.1:5000"
    for wrong in (
        f"erchub/runtime@{DIGEST}",  # no registry: Docker Hub
        f"registry/erchub/runtime@{DIGEST}",
        "registry.example.org:5000/erchub/runtime:0123abcd",  # a tag, not a digest
        "registry.example.org:5000/erchub/runtime@sha256:abc",
        f"registry.example.org:5000/Erchub/Runtime@{DIGEST}",
        f"registry.example.org:5000@{DIGEST}",
    ):
        with pytest.raises(ValueError, match=r"REGISTRY/PATH@sha256:<hex>"):
            check_digest_reference(wrong)


def test_the_repository_digest_is_the_one_of_the_registry_the_image_went_to() -> None:
    repository = "127.0.0.1:5000/erchub/runtime"
    found = [f"other.example.org/erchub/runtime@{OTHER_DIGEST}", f"{repository}@{DIGEST}"]
    assert repository_digest(found, repository) == f"{repository}@{DIGEST}"
    assert repository_digest(found, "127.0.0.1:5001/erchub/runtime") == ""
    assert repository_digest([], repository) == ""
    # two of the repository (pulled once by another manifest): the one the push named
    both = [f"{repository}@{OTHER_DIGEST}", f"{repository}@{DIGEST}"]
    assert repository_digest(both, repository) == ""
    assert repository_digest(both, repository, DIGEST) == f"{repository}@{DIGEST}"


def test_the_push_names_its_digest_in_its_last_line() -> None:
    lines = [
        "The push refers to repository [127.0.0.1:5000/erchub/runtime]",
        "Pushed 1a2b3c4d",
        f"0123abcd: digest: {DIGEST} size: 2412",
    ]
    assert pushed_digest(lines) == DIGEST
    assert pushed_digest(lines[:2]) == ""


def test_a_log_shows_what_each_layer_came_to_not_its_way_there() -> None:
    assert status_line({"status": "Pull complete", "id": "1a2b"}) == "Pull complete 1a2b"
    assert status_line({"status": "Layer already exists", "id": "1a2b"}) == (
        "Layer already exists 1a2b"
    )
    assert status_line({"status": f"Digest: {DIGEST}"}) == f"Digest: {DIGEST}"
    for quiet in ("Waiting", "Pulling fs layer", "Verifying Checksum", "Download complete"):
        assert status_line({"status": quiet, "id": "1a2b"}) is None
    assert status_line({"status": "Downloading", "progress": "[==>  ]", "id": "1a2b"}) is None
    assert status_line({"aux": {"Digest": DIGEST}}) is None
