"""The runtime manifest: PipBuildPack's Dockerfile, buildpack detection, the environment hash.

No Docker: the builder gets a stand-in client that describes the base image.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import docker.errors
import entrypoints
import pytest
from repo2docker.app import Repo2Docker

from erchub.errors import BuildError
from erchub.redact import redact_url as redact_credentials
from erchub.spawner.builder import ImageBuilder
from erchub.spawner.buildpacks import (
    PipBuildPack,
    PipEnvironment,
    PipSettings,
    check_runtime_python,
    parse_apt_txt,
    render_pip_dockerfile,
)
from erchub.spawner.engine import DockerSDKEngine
from erchub.spawner.hashing import content_hash, wheel_fingerprint
from erchub.spawner.reachability import from_images, registry_endpoint

BASE = "erchub/base:bookworm"
WHEEL = Path("/wheels/erchub-0.1.0-py3-none-any.whl")
SETTINGS = PipSettings(base_python="3.11", jupyterhub_version="6.1.1", erchub_wheel=WHEEL)


def instructions(dockerfile: str) -> list[str]:
    """The Dockerfile's instruction lines (continuations and comments dropped)."""
    return [line for line in dockerfile.splitlines() if line and not line.startswith((" ", "#"))]


def index_of(lines: list[str], start: str) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(start))


# --- PipBuildPack's Dockerfile, rendered from given inputs --------------------------------


def test_requirements_render_user_venv_runtime_then_requirements():
    dockerfile = render_pip_dockerfile(
        PipEnvironment(files=("requirements.txt",), requirements="requirements.txt"),
        SETTINGS,
        BASE,
    )
    lines = instructions(dockerfile)
    assert lines[0] == f"FROM {BASE}"
    assert "useradd --create-home --no-log-init --shell /bin/bash --uid 1000" in dockerfile
    assert "python3 -m venv /srv/venv && chown -R 1000:1000 /srv/venv" in dockerfile
    assert "PATH=/srv/venv/bin:${PATH}" in dockerfile
    runtime = index_of(lines, "RUN pip install --no-cache-dir nbclient nbconvert ipykernel")
    assert "jupyter-server jupyterlab jupyterhub==6.1.1" in lines[runtime]
    wheel = index_of(lines, f"RUN pip install --no-cache-dir /tmp/erchub-wheel/{WHEEL.name}")
    requirements = lines.index("RUN pip install --no-cache-dir -r requirements.txt")
    assert index_of(lines, "USER jovyan") < runtime < wheel < requirements
    assert not any(line.startswith("RUN apt-get") for line in lines)
    assert "postBuild" not in dockerfile
    assert lines[-1] == 'CMD ["jupyterhub-singleuser"]'


def test_no_environment_file_still_gets_the_runtime_and_erchub():
    lines = instructions(render_pip_dockerfile(PipEnvironment(), SETTINGS, BASE))
    assert any("jupyterhub==6.1.1" in line for line in lines)
    assert any(WHEEL.name in line for line in lines)
    assert not any(" -r " in line for line in lines)


def test_apt_txt_installs_as_root_and_post_build_runs_as_the_user_last():
    environment = PipEnvironment(
        files=("apt.txt", "postBuild", "requirements.txt"),
        requirements="requirements.txt",
        apt_packages=("graphviz", "libgdal-dev"),
        post_build="postBuild",
        copy_workspace=True,
    )
    dockerfile = render_pip_dockerfile(environment, SETTINGS, BASE)
    lines = instructions(dockerfile)
    apt = index_of(lines, "RUN apt-get -qq update")
    user = index_of(lines, "USER jovyan")
    requirements = index_of(lines, "RUN pip install --no-cache-dir -r")
    post_build = lines.index("RUN chmod +x postBuild && ./postBuild")
    assert apt < user < requirements < post_build
    assert "apt-get install --yes --no-install-recommends graphviz libgdal-dev" in dockerfile


def test_binder_folder_paths_and_another_repository_directory():
    environment = PipEnvironment(
        files=("binder/requirements.txt",), requirements="binder/requirements.txt"
    )
    settings = PipSettings(base_python="3.11", repo_dir="/srv/erc")
    lines = instructions(render_pip_dockerfile(environment, settings, BASE))
    assert "COPY --chown=1000:1000 src/ /srv/erc/" in lines
    assert "WORKDIR /srv/erc" in lines
    assert "RUN pip install --no-cache-dir -r binder/requirements.txt" in lines
    runtime = lines[index_of(lines, "RUN pip install --no-cache-dir nbclient")]
    assert runtime.endswith(" jupyterlab jupyterhub")  # no hub version given: the newest


def test_repository_directory_must_not_need_quoting():
    with pytest.raises(BuildError, match="absolute path"):
        render_pip_dockerfile(PipEnvironment(), PipSettings(repo_dir="/srv/my erc"), BASE)


@pytest.mark.parametrize("requested", ["3", "3.11", "3.11.4"])
def test_runtime_python_that_the_base_image_has_renders(requested):
    dockerfile = render_pip_dockerfile(PipEnvironment(python_version=requested), SETTINGS, BASE)
    assert dockerfile.startswith("#")


def test_runtime_python_the_base_image_lacks_names_both_versions():
    with pytest.raises(BuildError, match=r"Python 3\.12, but the base image .* has Python 3\.11"):
        render_pip_dockerfile(PipEnvironment(python_version="3.12"), SETTINGS, BASE)
    with pytest.raises(BuildError, match="Python 2"):
        check_runtime_python("2", "3.11", BASE)


def test_ca_certificates_are_installed_and_pip_settings_are_build_arguments_only():
    settings = PipSettings(
        base_python="3.11",
        ca_certificates=(Path("/etc/corp/root ca.pem"),),
        pip_env_names=("PIP_INDEX_URL", "PIP_TRUSTED_HOST"),
    )
    dockerfile = render_pip_dockerfile(PipEnvironment(), settings, BASE)
    lines = instructions(dockerfile)
    assert "COPY ca-certificates/ /usr/local/share/ca-certificates/erchub/" in lines
    assert lines.index("RUN update-ca-certificates") < index_of(lines, "RUN pip install")
    assert "ARG PIP_INDEX_URL" in lines and "ARG PIP_TRUSTED_HOST" in lines
    assert "PIP_INDEX_URL=" not in dockerfile


def test_apt_txt_parsing_skips_comments_and_rejects_shell():
    assert parse_apt_txt("# tools\njq\n\ncurl  # fetch\njq\n") == ("curl", "jq")
    assert parse_apt_txt("libc6=2.36-9\n") == ("libc6=2.36-9",)
    with pytest.raises(BuildError, match=r"apt.txt line 2: 'curl; rm -rf /'"):
        parse_apt_txt("jq\ncurl; rm -rf /\n")


# --- PipBuildPack reading a workspace -------------------------------------------------------


def test_pip_buildpack_copies_only_environment_files_unless_steps_read_the_workspace(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    Path("requirements.txt").write_text("numpy\n")
    Path("runtime.txt").write_text("python-3.11\n")
    Path("data.csv").write_text("1,2\n")
    Path(".dockerignore").write_text("secret.txt\n")
    Path("secret.txt").write_text("no\n")
    environment = PipBuildPack(BASE).environment
    assert environment.python_version == "3.11"
    assert PipBuildPack(BASE).context_files() == ["requirements.txt", "runtime.txt"]

    Path("requirements.txt").write_text("numpy\n-e .\n")
    local = PipBuildPack(BASE)
    assert local.environment.copy_workspace
    assert local.context_files() == [
        ".dockerignore",
        "data.csv",
        "requirements.txt",
        "runtime.txt",
    ]


def test_runtime_txt_naming_another_language_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("runtime.txt").write_text("r-4.3-2024-01-01\n")
    with pytest.raises(BuildError, match=r"runtime.txt asks for r; PipBuildPack"):
        PipBuildPack(BASE).render()


# --- the builder: detection order and the environment hash ---------------------------------


class StubAPI:
    def __init__(self, images: dict[str, dict[str, Any]]) -> None:
        self.images = images

    def inspect_image(self, name: str) -> dict[str, Any]:
        if name not in self.images:
            raise docker.errors.ImageNotFound(name)
        return self.images[name]


class StubDocker:
    """Describes images like the daemon's inspect; there is nothing else a plan asks."""

    def __init__(self, base_id: str = "sha256:base-1") -> None:
        labels = {"org.erchub.python.version": "3.11"}
        self.api = StubAPI({BASE: {"Id": base_id, "Config": {"Labels": labels}}})


def make_wheel(path: Path, content: str = "VERSION = 1\n", date=(2024, 1, 1, 0, 0, 0)) -> Path:
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(zipfile.ZipInfo("erchub/__init__.py", date_time=date), content)
        wheel.writestr(zipfile.ZipInfo("erchub-0.1.0.dist-info/WHEEL", date_time=date), "x\n")
    return path


@pytest.fixture
def wheel(tmp_path) -> Path:
    (tmp_path / "wheels").mkdir()
    return make_wheel(tmp_path / "wheels" / "erchub-0.1.0-py3-none-any.whl")


def stub_builder(wheel: Path, **traits: Any) -> ImageBuilder:
    settings: dict[str, Any] = {
        "docker_client": StubDocker(),
        "extra_ca_certificates": [],
        "pip_env": {},
        "jupyterhub_version": "6.1.1",
    }
    return ImageBuilder(erchub_wheel=str(wheel), **{**settings, **traits})


@pytest.fixture
def workspace(tmp_path) -> Path:
    root = tmp_path / "workspace"
    root.mkdir()
    (root / "requirements.txt").write_text("numpy\nmatplotlib\n")
    (root / "main.ipynb").write_text("{}")
    return root


def test_detection_order_dockerfile_then_environment_yml_then_pip(wheel, workspace):
    builder = stub_builder(wheel)
    assert builder.plan(workspace, "erc").buildpack == "PipBuildPack"
    (workspace / "environment.yml").write_text("dependencies:\n  - python=3.11\n")
    conda = builder.plan(workspace, "erc")
    assert conda.buildpack == "CondaBuildPack"
    assert "environment.yml" in conda.dockerfile
    (workspace / "Dockerfile").write_text(f"FROM {BASE}\nRUN echo hi\n")
    docker_plan = builder.plan(workspace, "erc")
    assert docker_plan.buildpack == "DockerBuildPack"
    assert docker_plan.dockerfile == f"FROM {BASE}\nRUN echo hi\n"


def test_workspace_without_environment_files_goes_to_pip(wheel, tmp_path):
    (tmp_path / "main.ipynb").write_text("{}")
    assert stub_builder(wheel).plan(tmp_path, "erc").buildpack == "PipBuildPack"


def test_plan_names_the_image_by_environment_hash_and_labels_it(wheel, workspace):
    plan = stub_builder(wheel).plan(workspace, "erc-1")
    assert plan.image == f"erchub/runtime:{plan.env_hash[:20]}"
    assert plan.labels["erc"] == plan.labels["org.erchub.erc.id"] == "erc-1"
    assert plan.labels["org.erchub.env.hash"] == plan.env_hash
    assert plan.labels["org.erchub.version"]
    assert (
        stub_builder(wheel, image_prefix="registry.example/erc")
        .plan(workspace, "erc-1")
        .image.startswith("registry.example/erc:")
    )


def test_environment_hash_is_stable_and_ignores_files_outside_the_environment(wheel, workspace):
    builder = stub_builder(wheel)
    first = builder.plan(workspace, "erc-1")
    (workspace / "main.ipynb").write_text('{"cells": []}')
    (workspace / "results.csv").write_text("1,2\n")
    second = builder.plan(workspace, "erc-2")
    assert second.image == first.image


def test_environment_hash_follows_requirements_base_image_and_runtime_settings(wheel, workspace):
    builder = stub_builder(wheel)
    first = builder.plan(workspace, "erc").image
    (workspace / "requirements.txt").write_text("numpy\nmatplotlib\nscipy\n")
    changed = builder.plan(workspace, "erc").image
    assert changed != first
    (workspace / "requirements.txt").write_text("numpy\nmatplotlib\n")
    assert builder.plan(workspace, "erc").image == first
    assert (
        stub_builder(wheel, docker_client=StubDocker("sha256:base-2")).plan(workspace, "erc").image
        != first
    )
    assert stub_builder(wheel, jupyterhub_version="5.0.0").plan(workspace, "erc").image != first


def test_rebuilt_wheel_keeps_the_tag_and_changed_wheel_changes_it(tmp_path, workspace):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    name = "erchub-0.1.0-py3-none-any.whl"
    original = make_wheel(tmp_path / "a" / name)
    rebuilt = make_wheel(tmp_path / "b" / name, date=(2025, 6, 1, 12, 0, 0))
    changed = make_wheel(tmp_path / "c" / name, content="VERSION = 2\n")
    assert original.read_bytes() != rebuilt.read_bytes()
    assert wheel_fingerprint(original) == wheel_fingerprint(rebuilt)
    image = stub_builder(original).plan(workspace, "erc").image
    assert stub_builder(rebuilt).plan(workspace, "erc").image == image
    assert stub_builder(changed).plan(workspace, "erc").image != image


def test_dockerfile_builds_hash_copied_files_only_when_the_dockerfile_copies(wheel, tmp_path):
    builder = stub_builder(wheel)
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE}\nRUN echo hi\n")
    (tmp_path / "data.csv").write_text("1\n")
    first = builder.plan(tmp_path, "erc").image
    (tmp_path / "data.csv").write_text("2\n")
    assert builder.plan(tmp_path, "erc").image == first
    (tmp_path / "Dockerfile").write_text(f"FROM {BASE}\nCOPY data.csv /data.csv\n")
    copying = builder.plan(tmp_path, "erc").image
    (tmp_path / "data.csv").write_text("3\n")
    assert builder.plan(tmp_path, "erc").image != copying


def test_plan_refuses_a_runtime_python_the_base_image_lacks(wheel, workspace):
    (workspace / "runtime.txt").write_text("python-3.12\n")
    with pytest.raises(BuildError, match=r"3\.12.*3\.11"):
        stub_builder(wheel).plan(workspace, "erc")


def test_content_hash_is_independent_of_order():
    assert content_hash({"a": b"1", "b": b"2"}) == content_hash({"b": b"2", "a": b"1"})
    assert content_hash({"a": b"1"}) != content_hash({"a": b"2"})


# --- pip settings, hosts, and the engine plugin ---------------------------------------------


def test_credentials_in_urls_are_redacted():
    text = "PIP_INDEX_URL=https://build:s3cret@pypi.example.org/simple https://pypi.org/simple"
    assert redact_credentials(text) == (
        "PIP_INDEX_URL=https://[secret]@pypi.example.org/simple https://pypi.org/simple"
    )
    assert "token" not in redact_credentials("https://token@index.example/simple/")


def test_default_pip_env_copies_pip_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "60")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_TRUSTED_HOST", raising=False)
    assert ImageBuilder().pip_env == {
        "PIP_INDEX_URL": "https://mirror.example/simple",
        "PIP_DEFAULT_TIMEOUT": "60",
    }


def test_from_images_and_their_registries():
    dockerfile = "FROM a/b:1 AS build\nFROM build\nFROM scratch\nFROM --platform=$X quay.io/c/d:2\n"
    assert from_images(dockerfile) == ["a/b:1", "quay.io/c/d:2"]
    assert registry_endpoint("erchub/base:bookworm", "x").host == "registry-1.docker.io"
    local = registry_endpoint("localhost:5000/erc:1", "x")
    assert (local.host, local.port) == ("localhost", 5000)


def test_repo2docker_finds_the_sdk_engine_by_its_entry_point():
    engines = entrypoints.get_group_named("repo2docker.engines")
    assert engines["erchub-docker-sdk"].load() is DockerSDKEngine
    engine = Repo2Docker(engine="erchub-docker-sdk").get_engine()
    assert isinstance(engine, DockerSDKEngine)
