"""The runtime image builder: repo2docker detects and renders, erchub's docker-SDK engine builds.

``ImageBuilder.plan(workspace, erc_id)`` picks the first buildpack of ``buildpacks`` that detects
the workspace -- repo2docker's DockerBuildPack for a Dockerfile, its CondaBuildPack for
environment.yml, erchub's PipBuildPack for requirements.txt or no environment file -- renders
its Dockerfile (the runtime manifest a job stores) and hashes what determines the image into the
image's tag. ``ImageBuilder.build(plan)`` reuses an image with that tag, or checks that the hosts
the build needs answer and builds through the buildpack with ``DockerSDKEngine``, streaming the
build log line by line. ``ImageBuilder.save_image`` exports an image (``docker save``).

With ``ImageBuilder.registry`` set (past one machine), every image built or reused is pushed
to that registry and its repository digest returned, which execution engines pull it by; an
image missing here that another builder pushed is pulled from there, not built again (naming
and pulls: ``erchub.spawner.registry``).

Both stop within a tenth of a second of their ``cancel`` event being set (a job's cancel): the
engine's response is closed, so dockerd stops the build (its step's container is killed and
removed, the image never tagged) or the export, and they raise :class:`Canceled`.

The tag hashes: the repo2docker configuration files present, every workspace file the build
copies into the image, the rendered Dockerfile, and, per buildpack, the base image's id
(PipBuildPack, CondaBuildPack), the extra CA certificates and the erchub wheel's member names
and CRCs (PipBuildPack: rebuilding an unchanged wheel keeps the tag).

repo2docker's buildpacks read the workspace from the current directory; the builder enters it
under a process-wide lock, only while detecting, rendering and starting a build.

The hosts check is in ``erchub.spawner.reachability``, erchub's wheel in
``erchub.spawner.wheel``, the hashes in ``erchub.spawner.hashing``; the engine's client comes
from ``erchub.spawner.clients``.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any, TypeVar

import docker
import docker.errors
import requests
from docker.utils import parse_repository_tag
from repo2docker.app import Repo2Docker
from repo2docker.buildpacks import CondaBuildPack, DockerBuildPack
from repo2docker.buildpacks.base import BuildPack
from repo2docker.engine import BuildError as EngineBuildError
from repo2docker.engine import ImageLoadError
from repo2docker.utils import get_platform
from traitlets import Any as AnyTrait
from traitlets import Dict, Float, Integer, List, TraitError, Type, Unicode, default, validate
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
from erchub.spawner.clients import docker_client
from erchub.spawner.engine import (
    CANCEL_POLL_SECONDS,
    BuildCanceled,
    DockerSDKEngine,
    ResponseStream,
    StreamCanceled,
)
from erchub.spawner.hashing import content_hash, wheel_fingerprint
from erchub.spawner.reachability import (
    Endpoint,
    check_reachable,
    from_images,
    registry_endpoint,
    script_urls,
    url_endpoints,
)
from erchub.spawner.registry import (
    QUIET_STATUSES,
    PullCanceled,
    RegistryError,
    check_registry,
    one_line,
    pull_image,
    pushed_digest,
    registry_image,
    repository_digest,
)
from erchub.spawner.wheel import build_erchub_wheel, erchub_source_tree

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

_COPIES_FILES = re.compile(r"^\s*(COPY|ADD)\s", re.IGNORECASE | re.MULTILINE)
_ERROR_LINE = re.compile(r"(ERROR|E):\s", re.IGNORECASE)
_PYTHON_PROBE = "import sys; print('%d.%d' % sys.version_info[:2])"

# repo2docker's buildpacks read the current directory, which is process-wide.
_CWD_LOCK = threading.RLock()
_T = TypeVar("_T")
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
    #: the image by repository digest in ``ImageBuilder.registry`` (REGISTRY/REPO@sha256:...),
    #: as execution engines pull it; "" without a registry
    image_digest: str = ""
    #: seconds the pull of the image from the registry took, when another builder had pushed
    #: it and this engine lacked it; None when nothing was pulled
    pulled: float | None = None


class BuildFailed(BuildError):
    """A build that ran and failed; ``log_tail`` holds its last log lines."""

    def __init__(self, message: str, log_tail: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.log_tail = list(log_tail)


class Canceled(BuildError):
    """A build or an image export stopped because its cancel event was set."""


def _unless_canceled(work: Callable[[], _T], cancel: threading.Event | None, what: str) -> _T:
    """``work()``, or Canceled within CANCEL_POLL_SECONDS of ``cancel`` being set; the work is
    then left to end in its thread (it must have no effect but its result: a probe)."""
    if cancel is None:
        return work()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the waiting thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="erchub-cancelable", daemon=True)
    thread.start()
    while thread.is_alive():
        if cancel.is_set():
            raise Canceled(f"{what} canceled")
        thread.join(CANCEL_POLL_SECONDS)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _ignore_line(line: str) -> None:
    """A log callback that keeps nothing."""


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
        else from running python3 in it. Pulled when missing (default: erchub/base:bookworm).""",
    ).tag(config=True)

    repo2docker_base_image = Unicode(
        help="""Image repo2docker's own buildpacks (conda) build FROM (default: repo2docker's
        default base image (Ubuntu buildpack-deps)).""",
    ).tag(config=True)

    image_prefix = Unicode(
        "erchub/runtime",
        help="Repository of built images, tagged by environment hash (default: erchub/runtime).",
    ).tag(config=True)

    buildpacks = List(
        Type(klass=BuildPack),
        default_value=[DockerBuildPack, CondaBuildPack, PipBuildPack],
        help="""Buildpacks tried in order; the first whose detect() is true builds. PipBuildPack
        detects everything, so it comes last (default: repo2docker's DockerBuildPack, its
        CondaBuildPack, erchub's PipBuildPack).""",
    ).tag(config=True)

    jupyterhub_version = Unicode(
        help="""jupyterhub version installed into PipBuildPack images (jupyterhub-singleuser must
        match the hub). Empty: the newest (default: the version installed here).""",
    ).tag(config=True)

    erchub_wheel = Unicode(
        "",
        help="""Path of the erchub wheel installed into PipBuildPack images. Empty: build it from
        the source tree erchub is installed from (cached by content) (default: empty).""",
    ).tag(config=True)

    extra_ca_certificates = List(
        Unicode(),
        help="""PEM files (certificates or bundles) that pip and requests in PipBuildPack builds
        trust, for TLS-intercepting proxies (default: the file named by PIP_CERT,
        REQUESTS_CA_BUNDLE or SSL_CERT_FILE (the first set that exists)).""",
    ).tag(config=True)

    pip_env = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        help="""pip settings passed to builds as build arguments, never as image ENV; values are
        logged with URL credentials redacted. Build arguments appear in `docker history` of the
        image: give credentials to a proxying index rather than here (default: PIP_INDEX_URL,
        PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST, PIP_DEFAULT_TIMEOUT from the environment).""",
    ).tag(config=True)

    build_timeout = Float(
        3600,
        help="Seconds a build may stream before it is cancelled (default: 3600).",
    ).tag(config=True)

    reachability_timeout = Float(
        10,
        help="""Seconds to wait for each host a build needs (TCP connect and TLS handshake)
        before failing the build without starting it (default: 10).""",
    ).tag(config=True)

    memory_limit = Integer(
        None,
        allow_none=True,
        help="Memory limit of each build step in bytes (swap off) (default: None (no limit)).",
    ).tag(config=True)

    repo_dir = Unicode(
        "",
        help="""Directory of PipBuildPack images that receives the environment files and where
        postBuild runs. Empty: the notebook user's home, /home/jovyan (default: empty).""",
    ).tag(config=True)

    cache_dir = Unicode(
        help="""Directory for built erchub wheels (default: $XDG_CACHE_HOME/erchub, else
        ~/.cache/erchub).""",
    ).tag(config=True)

    client_kwargs = Dict(
        help="""Arguments of docker.DockerClient for the engine that builds, over DOCKER_HOST,
        DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, as DockerSpawner.client_kwargs (ERCSpawner
        sets its own for the builds of sessions: they build on the engine that runs them).
        (default: none).""",
    ).tag(config=True)

    tls_config = Dict(
        help="""Arguments of docker.tls.TLSConfig for the engine that builds, as
        DockerSpawner.tls_config (ERCSpawner sets its own for the builds of sessions).
        (default: none).""",
    ).tag(config=True)

    registry = Unicode(
        "",
        help="""Docker registry (host:port, or a host name with a dot; no scheme) that every
        runtime image goes to after its build or reuse, as REGISTRY/<image_prefix>:<tag>; its
        repository digest (REGISTRY/<image_prefix>@sha256:...) is the build's result, recorded
        with the job, and engines that lack the image pull it by that. A builder that lacks an
        image pulls it from there by its tag before building it. Over plain HTTP every engine
        that pushes or pulls needs --insecure-registry REGISTRY (127.0.0.0/8 is insecure by
        default); production registries use TLS (default: empty: no registry).""",
    ).tag(config=True)

    registry_timeout = Float(
        600,
        min=1,
        help="""Seconds a push to the registry, or a pull from it, may take before it is
        stopped and the build fails (default: 600).""",
    ).tag(config=True)

    @validate("registry")
    def _valid_registry(self, proposal: Any) -> str:
        value = str(proposal["value"])
        try:
            return check_registry(value) if value else value
        except ValueError as exc:
            raise TraitError(f"ImageBuilder.registry: {exc}") from None

    docker_client = AnyTrait(
        help="""docker.DockerClient for every engine call (default: made on first use from
        tls_config, the DOCKER_* environment variables and client_kwargs
        (erchub.spawner.clients.docker_client)).""",
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
        return docker_client(tls_config=self.tls_config, **self.client_kwargs)

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

    def build(
        self,
        plan: BuildPlan,
        on_log: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> BuildResult:
        """Build ``plan.image`` unless it exists, passing each log line to ``on_log``. With a
        ``registry``, an image missing here is pulled from there when another builder pushed
        it, and the image built or reused is pushed there (its result's ``image_digest``).

        Raises BuildError (BuildFailed, with ``log_tail``, when the build itself failed;
        Canceled when ``cancel`` was set: the build is stopped and its image not tagged).
        """
        started = time.monotonic()
        if cancel is not None and cancel.is_set():
            raise Canceled(f"building {plan.image} canceled")
        if not plan.workspace.is_dir():
            raise BuildError(f"workspace {plan.workspace} is not a directory")
        emit = on_log or _ignore_line
        existing = self._image_attrs(plan.image)
        pulled = None
        if existing is None and self.registry:
            existing = self._pull_built_elsewhere(plan, emit, cancel)
            pulled = time.monotonic() - started if existing is not None else None
        if existing is not None:
            self.log.info("reusing image %s for %s", plan.image, plan.erc_id)
            seconds = time.monotonic() - started
            reused = BuildResult(plan.image, existing["Id"], True, seconds, pulled=pulled)
            return self._publish(reused, emit, cancel)
        with _inside(plan.workspace):
            buildpack, dockerfile, env_hash = self._prepare()
            endpoints = self._endpoints(buildpack, dockerfile)
        if env_hash != plan.env_hash:
            raise BuildError(
                f"the environment of {plan.workspace} (its files, the base image or the erchub "
                "wheel) changed after planning; plan again"
            )
        _unless_canceled(
            lambda: check_reachable(endpoints, self.reachability_timeout),
            cancel,
            f"building {plan.image}",
        )
        if self.pip_env:
            redacted = {name: redact_url(value) for name, value in self.pip_env.items()}
            self.log.info("pip settings for %s: %s", plan.image, redacted)
        engine = self._engine(cancel)
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
            if cancel is not None and cancel.is_set():
                self.log.info("building %s for %s: canceled", plan.image, plan.erc_id)
                raise Canceled(f"building {plan.image} canceled") from exc
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
        return self._publish(BuildResult(plan.image, attrs["Id"], False, seconds), emit, cancel)

    def _engine(self, cancel: threading.Event | None) -> DockerSDKEngine:
        """erchub's repo2docker engine on this builder's client, stopped by ``cancel``."""
        engine = DockerSDKEngine(parent=self)
        engine.client = self.docker_client
        engine.build_timeout = self.build_timeout
        engine.push_timeout = self.registry_timeout
        engine.cancel = cancel
        return engine

    def _in_registry(self, image: str) -> str:
        """The name of ``image`` in ``registry``; BuildError when it names a registry itself."""
        try:
            return registry_image(self.registry, image)
        except ValueError as exc:
            raise BuildError(f"{exc} (ImageBuilder.image_prefix, with a registry set)") from None

    def _pull_built_elsewhere(
        self, plan: BuildPlan, emit: Callable[[str], None], cancel: threading.Event | None
    ) -> dict[str, Any] | None:
        """``plan.image`` pulled from ``registry``, where another builder pushed it, and tagged
        so here, as the engine describes it; None when the registry lacks it."""
        source = self._in_registry(plan.image)
        try:
            found = pull_image(
                self.docker_client, source, emit, cancel, self.registry_timeout, missing_ok=True
            )
        except PullCanceled:
            raise Canceled(f"building {plan.image} canceled") from None
        except RegistryError as exc:
            raise BuildError(str(exc)) from None
        if not found:
            return None
        repository, tag = parse_repository_tag(plan.image)
        self.docker_client.api.tag(source, repository, tag)
        emit(f"{plan.image}: pulled from the registry {self.registry}, not built here")
        return self._image_attrs(plan.image)

    def _publish(
        self, result: BuildResult, emit: Callable[[str], None], cancel: threading.Event | None
    ) -> BuildResult:
        """``result`` once its image is pushed to ``registry``, with its repository digest (as
        it is without a registry). BuildError naming the registry when the push fails."""
        if not self.registry:
            return result
        target = self._in_registry(result.image)
        repository, tag = parse_repository_tag(target)
        started = time.monotonic()
        emit(f"pushing {target} to the registry {self.registry}")
        lines: list[str] = []
        try:
            self.docker_client.api.tag(result.image, repository, tag)
            for line in self._engine(cancel).push(target):
                text = line.strip()
                lines.append(text)
                if text and not text.startswith(QUIET_STATUSES):
                    emit(text)
        except BuildCanceled:
            raise Canceled(f"pushing {target} canceled") from None
        except (ImageLoadError, docker.errors.APIError) as exc:
            reason = one_line(str(getattr(exc, "explanation", None) or exc))
            raise BuildError(
                f"pushing {target} to the registry {self.registry} failed: {reason}"
            ) from None
        attrs = self._image_attrs(result.image) or {}
        found = attrs.get("RepoDigests") or ()
        digest = repository_digest(found, repository, pushed_digest(lines))
        if not digest:
            raise BuildError(
                f"pushing {target} to the registry {self.registry}: the engine names no "
                f"repository digest of it (it has {', '.join(found) or 'none'})"
            )
        seconds = time.monotonic() - started
        emit(f"pushed in {seconds:.1f} s: {digest}")
        self.log.info("pushed %s as %s in %.1f s", result.image, digest, seconds)
        return replace(result, image_digest=digest)

    def save_image(self, image: str, out: IO[bytes], cancel: threading.Event | None = None) -> int:
        """Write ``image`` as a docker archive (``docker save``, tagged) to ``out``; returns the
        bytes written. Raises BuildError; Canceled when ``cancel`` was set (the export is
        stopped; what ``out`` got so far is the caller's to discard)."""
        api = self.docker_client.api
        stream = ResponseStream(api, lambda: api.get_image(image))
        written = 0
        try:
            for chunk in stream.items(cancel=cancel):
                out.write(chunk)
                written += len(chunk)
        except StreamCanceled:
            raise Canceled(f"saving {image} canceled") from None
        except (docker.errors.DockerException, requests.RequestException) as exc:
            if cancel is not None and cancel.is_set():
                raise Canceled(f"saving {image} canceled") from exc
            reason = getattr(exc, "explanation", None) or str(exc).strip()
            raise BuildError(f"cannot save {image}: {reason}") from exc
        return written

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
                script_urls(buildpack), f"needed by repo2docker's {name} for {detected_by}"
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
