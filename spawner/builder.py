"""The runtime image builder: repo2docker detects and renders, erchub's docker-SDK engine builds.

``ImageBuilder.plan(workspace, erc_id)`` picks the first buildpack of ``buildpacks`` that detects
the workspace -- repo2docker's DockerBuildPack for a Dockerfile, its CondaBuildPack for
environment.yml, erchub's PipBuildPack for requirements.txt or no environment file -- renders
its Dockerfile (the runtime manifest a job stores) and hashes what determines the image into the
image's tag. ``ImageBuilder.build(plan)`` reuses an image with that tag, or checks that the hosts
the build needs answer and builds through the buildpack with ``DockerSDKEngine``, streaming the
build log line by line.

The tag hashes: the repo2docker configuration files present, every workspace file the build
copies into the image, the rendered Dockerfile, and, per buildpack, the base image's id
(PipBuildPack, CondaBuildPack), the extra CA certificates and the erchub wheel's member names
and CRCs (PipBuildPack: rebuilding an unchanged wheel keeps the tag).

repo2docker's buildpacks read the workspace from the current directory; the builder enters it
under a process-wide lock, only while detecting, rendering and starting a build.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.errors
from docker.auth import resolve_repository_name
from docker.utils import parse_repository_tag
from repo2docker.app import Repo2Docker
from repo2docker.buildpacks import CondaBuildPack, DockerBuildPack
from repo2docker.buildpacks.base import BuildPack
from repo2docker.engine import BuildError as EngineBuildError
from repo2docker.utils import get_platform
from traitlets import Any as AnyTrait
from traitlets import Dict, Float, Integer, List, Type, Unicode, default
from traitlets.config import LoggingConfigurable

import erchub
from erchub.errors import BuildError
from erchub.redact import redact_url
from erchub.spawner.buildpacks import (
    NB_UID,
    NB_USER,
    WHEEL_DIRECTORY,
    PipBuildPack,
    PipSettings,
    workspace_files,
)
from erchub.spawner.engine import DockerSDKEngine

if sys.version_info >= (3, 11):
    import tomllib
else:  # repo2docker depends on tomli there
    import tomli as tomllib

#: files repo2docker reads as environment configuration (in binder/ or .binder/ when present)
REPO2DOCKER_CONFIG_FILES = (
    "Dockerfile",
    "environment.yml",
    "environment.yaml",
    "requirements.txt",
    "requirements3.txt",
    "runtime.txt",
    "apt.txt",
    "postBuild",
    "start",
    "Pipfile",
    "Pipfile.lock",
    "setup.py",
    "pyproject.toml",
    "install.R",
    "DESCRIPTION",
    "Project.toml",
    "JuliaProject.toml",
    "REQUIRE",
    "default.nix",
    ".dockerignore",
    ".containerignore",
)

#: environment variables copied into ``ImageBuilder.pip_env`` by default
PIP_ENV_NAMES = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT")
#: where pip downloads from when PIP_INDEX_URL is not set
DEFAULT_PIP_HOSTS = ("https://pypi.org/simple", "https://files.pythonhosted.org")
#: label of erchub base images that states their Python version (X.Y)
PYTHON_LABEL = "org.erchub.python.version"
LOG_TAIL_LINES = 40
WHEEL_BUILD_TIMEOUT = 600

_COPIES_FILES = re.compile(r"^\s*(COPY|ADD)\s", re.IGNORECASE | re.MULTILINE)
_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE)
_URL_HOST = re.compile(r"https?://[^\s/\"'$]+")
_ERROR_LINE = re.compile(r"(ERROR|E):\s", re.IGNORECASE)
_PYTHON_PROBE = "import sys; print('%d.%d' % sys.version_info[:2])"

# repo2docker's buildpacks read the current directory, which is process-wide.
_CWD_LOCK = threading.RLock()
# Python version by base image id: ids name immutable contents, so this never goes stale.
_BASE_PYTHON: dict[str, str] = {}


@dataclass(frozen=True)
class BuildPlan:
    """What ``build`` will do: the buildpack, its Dockerfile (the manifest) and the image.

    ERCs with equal environments share one image; its ``erc`` labels name the ERC whose
    build made it.
    """

    workspace: Path
    erc_id: str
    buildpack: str
    dockerfile: str
    env_hash: str
    image: str
    labels: dict[str, str]


@dataclass(frozen=True)
class BuildResult:
    image: str
    image_id: str
    cache_hit: bool
    seconds: float


class BuildFailed(BuildError):
    """A build that ran and failed; ``log_tail`` holds its last log lines."""

    def __init__(self, message: str, log_tail: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.log_tail = list(log_tail)


@dataclass(frozen=True)
class Endpoint:
    """A host a build needs, and why (for the message when it does not answer)."""

    host: str
    port: int
    needed_by: str
    tls: bool = True


def content_hash(parts: Mapping[str, bytes]) -> str:
    """A sha256 over named byte strings, independent of the mapping's order."""
    digest = hashlib.sha256()
    for name in sorted(parts):
        digest.update(f"{name}\0{hashlib.sha256(parts[name]).hexdigest()}\n".encode())
    return digest.hexdigest()


def wheel_fingerprint(wheel: Path) -> bytes:
    """The wheel's member names and CRCs: equal for rebuilds of the same sources."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = sorted(archive.infolist(), key=lambda member: member.filename)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BuildError(f"erchub wheel {wheel} cannot be read: {exc}") from exc
    return "\n".join(f"{member.filename} {member.CRC:08x}" for member in members).encode()


def from_images(dockerfile: str) -> list[str]:
    """Images a Dockerfile's FROM lines pull (not scratch, earlier stages, or ARG-built names)."""
    stages: set[str] = set()
    images: list[str] = []
    for line in dockerfile.splitlines():
        match = _FROM.match(line)
        if not match:
            continue
        image, stage = match.groups()
        if image.lower() != "scratch" and image not in stages and "$" not in image:
            images.append(image)
        if stage:
            stages.add(stage)
    return images


def registry_endpoint(image: str, needed_by: str) -> Endpoint:
    """The registry an image is pulled from (Docker Hub: registry-1.docker.io)."""
    registry, _name = resolve_repository_name(image)
    if registry in ("docker.io", "index.docker.io"):
        registry = "registry-1.docker.io"
    host, _, port = registry.partition(":")
    return Endpoint(host, int(port or 443), needed_by)


def url_endpoints(urls: Iterable[str], needed_by: str) -> list[Endpoint]:
    """The http(s) hosts of ``urls`` (other schemes, such as file:, need no host)."""
    endpoints = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.hostname:
            tls = parts.scheme == "https"
            endpoints.append(
                Endpoint(parts.hostname, parts.port or (443 if tls else 80), needed_by, tls)
            )
    return endpoints


def probe(endpoint: Endpoint, timeout: float) -> str | None:
    """Why ``endpoint`` does not answer a TCP connect (and TLS handshake), or None if it does.

    When an http(s) proxy applies to the host (environment variables), its proxy is probed.
    """
    host, port, tls, via = endpoint.host, endpoint.port, endpoint.tls, ""
    proxy = urllib.request.getproxies().get("https" if endpoint.tls else "http")
    if proxy and not urllib.request.proxy_bypass(endpoint.host):
        proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port, tls = proxy_parts.hostname or "", proxy_parts.port or 80, False
        via = f" through proxy {host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            if tls:
                # Reachability only: the client that downloads verifies certificates.
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                with context.wrap_socket(connection, server_hostname=host):
                    pass
    except socket.gaierror as exc:
        return f"{host} does not resolve{via} ({exc.strerror})"
    except TimeoutError:
        return f"timed out after {timeout:g} s{via}"
    except (OSError, ssl.SSLError) as exc:
        return f"{exc.strerror or exc}{via}"
    return None


def check_reachable(endpoints: Iterable[Endpoint], timeout: float) -> None:
    """Raise BuildError naming every endpoint that does not answer within ``timeout`` s."""
    unique = list({(e.host, e.port): e for e in reversed(list(endpoints))}.values())[::-1]
    if not unique:
        return
    pool = ThreadPoolExecutor(max_workers=len(unique), thread_name_prefix="erchub-probe")
    futures = {pool.submit(probe, endpoint, timeout): endpoint for endpoint in unique}
    # Name resolution ignores socket timeouts: the wait bounds it.
    _done, pending = wait(futures, timeout=timeout)
    pool.shutdown(wait=False, cancel_futures=True)
    problems = []
    for future, endpoint in futures.items():
        reason = f"timed out after {timeout:g} s" if future in pending else future.result()
        if reason:
            problems.append(
                f"cannot reach {endpoint.host}:{endpoint.port} ({endpoint.needed_by}): {reason}"
            )
    if problems:
        raise BuildError("; ".join(problems))


def erchub_source_tree() -> Path | None:
    """The source tree erchub is installed from (editable installs), or None."""
    root = Path(erchub.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return None
    project = tomllib.loads(pyproject.read_text("utf-8")).get("project", {})
    return root if project.get("name") == "erchub" else None


def wheel_sources(root: Path) -> list[Path]:
    """Files of the source tree that go into erchub's wheel (relative): the folders and files
    its pyproject.toml's hatch wheel target includes, the sources of its shared data (the
    prebuilt lab extension, the server extension's config file), its build hook and the
    top-level project files."""
    config = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))
    wheel_target = config.get("tool", {}).get("hatch", {}).get("build", {}).get("targets", {})
    wheel_target = wheel_target.get("wheel", {})
    roots = {root / folder for folder in wheel_target.get("only-include", [])} or {
        root / config["project"]["name"].replace("-", "_")
    }
    roots.update(root / source for source in wheel_target.get("shared-data", {}))
    hooks = wheel_target.get("hooks", {}).values()
    roots.update(root / hook["path"] for hook in hooks if "path" in hook)
    project_files = {"pyproject.toml", "MANIFEST.in"}
    found = {
        path
        for path in root.iterdir()
        if path.is_file()
        and (
            path.name in project_files
            or path.name.upper().startswith(("README", "LICENSE", "COPYING", "NOTICE"))
        )
    }
    for start in roots:
        candidates = start.rglob("*") if start.is_dir() else [start]
        found.update(
            path
            for path in candidates
            if path.is_file()
            and not {"__pycache__", "node_modules"} & set(path.relative_to(root).parts)
            and path.suffix != ".pyc"
        )
    return sorted(path.relative_to(root) for path in found)


def missing_prebuilt_assets(root: Path) -> list[str]:
    """The lab extension's built files a wheel needs (pyproject's ensured targets) that the
    source tree at ``root`` lacks: without them the build would need Node."""
    config = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))
    hook = config.get("tool", {}).get("hatch", {}).get("build", {}).get("hooks", {})
    targets = hook.get("jupyter-builder", {}).get("ensured-targets", [])
    return [target for target in targets if not (root / target).is_file()]


def build_erchub_wheel(root: Path, cache_dir: Path) -> Path:
    """erchub's wheel built from ``root`` with ``pip wheel --no-deps``, cached by content.

    It builds from a copy of the sources, so the build writes nothing into the source tree.
    """
    missing = missing_prebuilt_assets(root)
    if missing:
        raise BuildError(
            f"the lab extension in {root} is not built ({', '.join(missing)} missing): "
            "run `make install` there (it needs Node and npm)"
        )
    sources = wheel_sources(root)
    key = content_hash({str(path): (root / path).read_bytes() for path in sources})[:16]
    wheels = cache_dir / "wheels"
    target = wheels / key
    cached = sorted(target.glob("erchub-*.whl"))
    if cached:
        return cached[0]
    wheels.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheels) as scratch:
        copy, built = Path(scratch) / "src", Path(scratch) / "wheel"
        for path in sources:
            (copy / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / path, copy / path)
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet"]
        try:
            process = subprocess.run(
                [*command, "--wheel-dir", str(built), str(copy)],
                capture_output=True,
                text=True,
                timeout=WHEEL_BUILD_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            raise BuildError(
                f"building the erchub wheel from {root} took over {WHEEL_BUILD_TIMEOUT} s"
            ) from exc
        if process.returncode != 0:
            last = (process.stderr.strip().splitlines() or ["no output"])[-1]
            raise BuildError(f"building the erchub wheel from {root} failed: {last}")
        try:
            os.replace(built, target)
        except OSError:
            if not target.is_dir():  # else a concurrent builder published the same wheel
                raise
    return sorted(target.glob("erchub-*.whl"))[0]


@contextmanager
def _inside(directory: Path) -> Iterator[None]:
    with _CWD_LOCK:
        previous = os.getcwd()
        os.chdir(directory)
        try:
            yield
        finally:
            os.chdir(previous)


class ImageBuilder(LoggingConfigurable):
    """Plans and builds runtime images of ERC workspaces (see the module's documentation)."""

    base_image = Unicode(
        "erchub/base:bookworm",
        help="""Image PipBuildPack builds FROM: Debian with python3, python3-venv and
        ca-certificates. Its Python version comes from its label org.erchub.python.version,
        else from running python3 in it. Pulled when missing. Default: erchub/base:bookworm.""",
    ).tag(config=True)

    repo2docker_base_image = Unicode(
        help="""Image repo2docker's own buildpacks (conda) build FROM. Default: repo2docker's
        default base image (Ubuntu buildpack-deps).""",
    ).tag(config=True)

    image_prefix = Unicode(
        "erchub/runtime",
        help="Repository of built images, tagged by environment hash. Default: erchub/runtime.",
    ).tag(config=True)

    buildpacks = List(
        Type(klass=BuildPack),
        default_value=[DockerBuildPack, CondaBuildPack, PipBuildPack],
        help="""Buildpacks tried in order; the first whose detect() is true builds. PipBuildPack
        detects everything, so it comes last. Default: repo2docker's DockerBuildPack, its
        CondaBuildPack, erchub's PipBuildPack.""",
    ).tag(config=True)

    jupyterhub_version = Unicode(
        help="""jupyterhub version installed into PipBuildPack images (jupyterhub-singleuser must
        match the hub). Empty: the newest. Default: the version installed here.""",
    ).tag(config=True)

    erchub_wheel = Unicode(
        "",
        help="""Path of the erchub wheel installed into PipBuildPack images. Empty: build it from
        the source tree erchub is installed from (cached by content). Default: empty.""",
    ).tag(config=True)

    extra_ca_certificates = List(
        Unicode(),
        help="""PEM files (certificates or bundles) that pip and requests in PipBuildPack builds
        trust, for TLS-intercepting proxies. Default: the file named by PIP_CERT,
        REQUESTS_CA_BUNDLE or SSL_CERT_FILE (the first set that exists).""",
    ).tag(config=True)

    pip_env = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        help="""pip settings passed to builds as build arguments, never as image ENV; values are
        logged with URL credentials redacted. Build arguments appear in `docker history` of the
        image: give credentials to a proxying index rather than here. Default: PIP_INDEX_URL,
        PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST, PIP_DEFAULT_TIMEOUT from the environment.""",
    ).tag(config=True)

    build_timeout = Float(
        3600,
        help="Seconds a build may stream before it is cancelled. Default: 3600.",
    ).tag(config=True)

    reachability_timeout = Float(
        10,
        help="""Seconds to wait for each host a build needs (TCP connect and TLS handshake)
        before failing the build without starting it. Default: 10.""",
    ).tag(config=True)

    memory_limit = Integer(
        None,
        allow_none=True,
        help="Memory limit of each build step in bytes (swap off). Default: None (no limit).",
    ).tag(config=True)

    repo_dir = Unicode(
        "",
        help="""Directory of PipBuildPack images that receives the environment files and where
        postBuild runs. Empty: the notebook user's home, /home/jovyan. Default: empty.""",
    ).tag(config=True)

    cache_dir = Unicode(
        help="""Directory for built erchub wheels. Default: $XDG_CACHE_HOME/erchub, else
        ~/.cache/erchub.""",
    ).tag(config=True)

    docker_client = AnyTrait(
        help="docker.DockerClient for every daemon call. Default: docker.from_env() on first use.",
    )

    @default("repo2docker_base_image")
    def _default_repo2docker_base_image(self) -> str:
        return str(Repo2Docker.class_traits()["base_image"].default_value)

    @default("jupyterhub_version")
    def _default_jupyterhub_version(self) -> str:
        try:
            return version("jupyterhub")
        except PackageNotFoundError:
            self.log.warning("jupyterhub is not installed: images get the newest jupyterhub")
            return ""

    @default("extra_ca_certificates")
    def _default_extra_ca_certificates(self) -> list[str]:
        for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
            path = os.environ.get(name)
            if path and os.path.isfile(path):
                return [path]
        return []

    @default("pip_env")
    def _default_pip_env(self) -> dict[str, str]:
        return {name: os.environ[name] for name in PIP_ENV_NAMES if os.environ.get(name)}

    @default("cache_dir")
    def _default_cache_dir(self) -> str:
        cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        return os.path.join(cache_home, "erchub")

    @default("docker_client")
    def _default_docker_client(self) -> docker.DockerClient:
        return docker.from_env()

    def plan(self, workspace: Path, erc_id: str) -> BuildPlan:
        """Detect the buildpack, render its Dockerfile and name the image; builds nothing.

        May pull PipBuildPack's base image when the daemon lacks it. Raises BuildError.
        """
        root = Path(workspace).resolve()
        if not root.is_dir():
            raise BuildError(f"workspace {root} is not a directory")
        with _inside(root):
            buildpack, dockerfile, env_hash = self._prepare()
        name = type(buildpack).__name__
        image = f"{self.image_prefix}:{env_hash[:20]}"
        labels = {
            "erc": erc_id,
            "org.erchub.erc.id": erc_id,
            "org.erchub.env.hash": env_hash,
            "org.erchub.version": erchub.__version__,
            "org.erchub.buildpack": name,
        }
        self.log.info("runtime of %s: %s builds %s", erc_id, name, image)
        return BuildPlan(root, erc_id, name, dockerfile, env_hash, image, labels)

    def image_exists(self, image: str) -> bool:
        return self._image_attrs(image) is not None

    def build(self, plan: BuildPlan, on_log: Callable[[str], None] | None = None) -> BuildResult:
        """Build ``plan.image`` unless it exists, passing each log line to ``on_log``.

        Raises BuildError (BuildFailed, with ``log_tail``, when the build itself failed).
        """
        started = time.monotonic()
        if not plan.workspace.is_dir():
            raise BuildError(f"workspace {plan.workspace} is not a directory")
        existing = self._image_attrs(plan.image)
        if existing is not None:
            self.log.info("reusing image %s for %s", plan.image, plan.erc_id)
            return BuildResult(plan.image, existing["Id"], True, time.monotonic() - started)
        with _inside(plan.workspace):
            buildpack, dockerfile, env_hash = self._prepare()
            endpoints = self._endpoints(buildpack, dockerfile)
        if env_hash != plan.env_hash:
            raise BuildError(
                f"the environment of {plan.workspace} (its files, the base image or the erchub "
                "wheel) changed after planning; plan again"
            )
        check_reachable(endpoints, self.reachability_timeout)
        if self.pip_env:
            redacted = {name: redact_url(value) for name, value in self.pip_env.items()}
            self.log.info("pip settings for %s: %s", plan.image, redacted)
        engine = DockerSDKEngine(parent=self)
        engine.client = self.docker_client
        engine.build_timeout = self.build_timeout
        tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        try:
            with _inside(plan.workspace):
                lines = buildpack.build(
                    engine,
                    plan.image,
                    self.memory_limit or 0,
                    self._build_args(),
                    [],
                    {"labels": plan.labels},
                )
                # The buildpack reads the workspace when its build starts: up to its first line.
                first = list(itertools.islice(lines, 1))
            for line in itertools.chain(first, lines):
                text = redact_url(line.rstrip())
                if text:
                    tail.append(text)
                    if on_log is not None:
                        on_log(text)
        except (EngineBuildError, docker.errors.DockerException) as exc:
            message = str(exc).strip()
            reason = redact_url(message.splitlines()[-1] if message else repr(exc))
            # The daemon names the failed step; the tool's own error line says why.
            cause = next((line for line in reversed(tail) if _ERROR_LINE.match(line)), None)
            if cause:
                reason += f" ({cause})"
            raise BuildFailed(
                f"building {plan.image} with {plan.buildpack} failed: {reason}", tail
            ) from exc
        attrs = self._image_attrs(plan.image)
        if attrs is None:
            raise BuildFailed(f"building {plan.image} ended without an image", tail)
        seconds = time.monotonic() - started
        self.log.info("built %s for %s in %.1f s", plan.image, plan.erc_id, seconds)
        return BuildResult(plan.image, attrs["Id"], False, seconds)

    def _prepare(self) -> tuple[BuildPack, str, str]:
        """The buildpack for the current directory, its Dockerfile and the environment hash."""
        buildpack = self._detect()
        name = type(buildpack).__name__
        try:
            dockerfile = buildpack.render(self._build_args())
        except BuildError:
            raise
        except (ValueError, RuntimeError, TypeError, KeyError, OSError) as exc:
            raise BuildError(f"repo2docker's {name} cannot render this workspace: {exc}") from exc
        return buildpack, dockerfile, content_hash(self._hash_parts(buildpack, dockerfile))

    def _detect(self) -> BuildPack:
        for buildpack_class in self.buildpacks:
            if issubclass(buildpack_class, PipBuildPack):  # it detects every workspace
                return self._pip_buildpack()
            buildpack = buildpack_class(base_image=self.repo2docker_base_image)
            buildpack.platform = get_platform()
            try:
                detected = buildpack.detect()
            except (ValueError, RuntimeError, TypeError, OSError) as exc:
                raise BuildError(f"repo2docker's {buildpack_class.__name__}: {exc}") from exc
            if detected:
                return buildpack
        raise BuildError(
            "no buildpack detects this workspace (ImageBuilder.buildpacks ends without "
            "PipBuildPack)"
        )

    def _pip_buildpack(self) -> PipBuildPack:
        certificates = [Path(path) for path in self.extra_ca_certificates]
        for path in certificates:
            if not path.is_file():
                raise BuildError(
                    f"extra CA certificate {path} is not a file "
                    "(ImageBuilder.extra_ca_certificates)"
                )
        settings = PipSettings(
            base_python=self._base_python(self._local_base_image()),
            jupyterhub_version=self.jupyterhub_version,
            erchub_wheel=self._erchub_wheel(),
            ca_certificates=tuple(certificates),
            pip_env_names=tuple(sorted(self.pip_env)),
            repo_dir=self.repo_dir,
        )
        buildpack = PipBuildPack(self.base_image, settings)
        buildpack.platform = get_platform()
        return buildpack

    def _build_args(self) -> dict[str, str]:
        return {"NB_USER": NB_USER, "NB_UID": str(NB_UID), **self.pip_env}

    def _hash_parts(self, buildpack: BuildPack, dockerfile: str) -> dict[str, bytes]:
        config = {
            path
            for path in map(buildpack.binder_path, REPO2DOCKER_CONFIG_FILES)
            if os.path.isfile(path)
        }
        if isinstance(buildpack, PipBuildPack):
            copied = buildpack.context_files()
        elif isinstance(buildpack, DockerBuildPack):
            copied = workspace_files([".dockerignore"]) if _COPIES_FILES.search(dockerfile) else []
        else:  # repo2docker's template copies the whole workspace
            copied = workspace_files(
                [buildpack.binder_path(".dockerignore"), buildpack.binder_path(".containerignore")]
            )
        parts = {f"workspace/{path}": Path(path).read_bytes() for path in config.union(copied)}
        parts["Dockerfile"] = dockerfile.encode("utf-8")
        if isinstance(buildpack, PipBuildPack):
            parts["base-image"] = self._local_base_image()["Id"].encode()
            for name, path in buildpack.injected_files().items():
                is_wheel = name.startswith(f"{WHEEL_DIRECTORY}/")
                parts[name] = wheel_fingerprint(path) if is_wheel else path.read_bytes()
        elif not isinstance(buildpack, DockerBuildPack):
            attrs = self._image_attrs(buildpack.base_image)
            parts["base-image"] = (attrs["Id"] if attrs else buildpack.base_image).encode()
        return parts

    def _endpoints(self, buildpack: BuildPack, dockerfile: str) -> list[Endpoint]:
        """The hosts the build of ``buildpack`` downloads from."""
        endpoints = [
            registry_endpoint(image, f"needed to pull {image}")
            for image in from_images(dockerfile)
            if self._image_attrs(image) is None
        ]
        name = type(buildpack).__name__
        if isinstance(buildpack, PipBuildPack):
            index = self.pip_env.get("PIP_INDEX_URL")
            endpoints += url_endpoints(
                [index] if index else DEFAULT_PIP_HOSTS,
                "needed by PipBuildPack for pip install (PIP_INDEX_URL)",
            )
        elif not isinstance(buildpack, DockerBuildPack):
            detected_by = getattr(buildpack, "environment_yaml_path", None) or "this workspace"
            endpoints += url_endpoints(
                _script_urls(buildpack), f"needed by repo2docker's {name} for {detected_by}"
            )
        return endpoints

    def _image_attrs(self, image: str) -> dict[str, Any] | None:
        try:
            attrs: dict[str, Any] = self.docker_client.api.inspect_image(image)
        except docker.errors.NotFound:
            return None
        return attrs

    def _local_base_image(self) -> dict[str, Any]:
        """PipBuildPack's base image as the daemon describes it, pulled first when missing."""
        attrs = self._image_attrs(self.base_image)
        if attrs is not None:
            return attrs
        needed_by = f"needed to pull the base image {self.base_image}"
        check_reachable([registry_endpoint(self.base_image, needed_by)], self.reachability_timeout)
        self.log.info("pulling base image %s", self.base_image)
        repository, tag = parse_repository_tag(self.base_image)
        try:
            self.docker_client.api.pull(repository, tag=tag or "latest")
        except docker.errors.APIError as exc:
            reason = exc.explanation or exc
            raise BuildError(f"cannot pull base image {self.base_image}: {reason}") from exc
        attrs = self._image_attrs(self.base_image)
        if attrs is None:
            raise BuildError(f"base image {self.base_image} is missing after pulling it")
        return attrs

    def _base_python(self, attrs: dict[str, Any]) -> str:
        """The base image's Python version (X.Y): its label, else python3 run in it."""
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        if labels.get(PYTHON_LABEL):
            return str(labels[PYTHON_LABEL])
        image_id = attrs["Id"]
        if image_id not in _BASE_PYTHON:
            try:
                output = self.docker_client.containers.run(
                    image_id,
                    entrypoint=["python3", "-c", _PYTHON_PROBE],
                    network_mode="none",
                    remove=True,
                )
            except docker.errors.DockerException as exc:
                raise BuildError(
                    f"base image {self.base_image} cannot run python3: {str(exc).strip()}"
                ) from exc
            _BASE_PYTHON[image_id] = output.decode().strip()
        return _BASE_PYTHON[image_id]

    def _erchub_wheel(self) -> Path:
        if self.erchub_wheel:
            wheel = Path(self.erchub_wheel).expanduser()
            if not wheel.is_file() or wheel.suffix != ".whl":
                raise BuildError(
                    f"erchub wheel {wheel} is not a .whl file (ImageBuilder.erchub_wheel)"
                )
            return wheel
        root = erchub_source_tree()
        if root is None:
            raise BuildError(
                "erchub is not installed from a source tree, so its wheel cannot be built; "
                "set ImageBuilder.erchub_wheel to a wheel of erchub " + erchub.__version__
            )
        return build_erchub_wheel(root, Path(self.cache_dir))


def _script_urls(buildpack: BuildPack) -> list[str]:
    """URLs in the uncommented lines of the scripts a repo2docker buildpack runs in its build."""
    urls = []
    for source in buildpack.get_build_script_files():
        _context_name, path = buildpack.generate_build_context_filename(source)
        for line in Path(path).read_text("utf-8").splitlines():
            if not line.lstrip().startswith("#"):
                urls += _URL_HOST.findall(line)
    return urls
