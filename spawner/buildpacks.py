"""erchub's pip buildpack for repo2docker, and the rendering of its Dockerfile.

``PipBuildPack`` builds workspaces with requirements.txt (plus runtime.txt, apt.txt, postBuild)
and workspaces without any environment file, on a Debian base image that already has Python
(``erchub/base:bookworm`` or an operator's), where repo2docker's PythonBuildPack would install
conda on Ubuntu. Its image has

- the notebook user ``jovyan``, uid 1000, as repo2docker's images;
- apt.txt's packages, from the base image's Debian mirror;
- one virtual environment, /srv/venv, owned by that user and first on PATH (Debian's Python is
  externally managed, PEP 668), with what executing and serving notebooks needs: nbclient,
  nbconvert, ipykernel, jupyter-server, jupyterlab, the hub's version of jupyterhub
  (jupyterhub-singleuser), and erchub itself from a wheel placed in the build context;
- then ``pip install -r requirements.txt`` and postBuild, run as the user in the repository
  directory (the user's home unless the builder chooses another).

What of the workspace the image holds: normally only its environment files. The compendium is
mounted into containers at run time, so copying its files in would only make images differ by
data they never use, and leave stale copies behind the mount. When postBuild exists or
requirements.txt refers to local files (``-e .``, ``-r other.txt``, ``./pkg``), the whole
workspace (minus .dockerignore) is copied, because those steps read it. ``context_files`` lists
what is copied; the builder hashes exactly that list into the image tag.

Like every repo2docker buildpack, a ``PipBuildPack`` reads the workspace in the current
directory (``detect``, ``render`` and ``build`` run inside it).
"""

from __future__ import annotations

import io
import os
import re
import shlex
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
from docker.utils.build import exclude_paths
from repo2docker.buildpacks.base import BaseImage
from repo2docker.utils import is_local_pip_requirement

from erchub.errors import BuildError

NB_USER = "jovyan"
NB_UID = 1000

#: installed into every image before the workspace's requirements (jupyterhub is added pinned)
RUNTIME_PACKAGES = ("nbclient", "nbconvert", "ipykernel", "jupyter-server", "jupyterlab")

#: build context folders: the workspace's files, extra CA certificates, the erchub wheel
SOURCE_DIRECTORY = "src"
CA_DIRECTORY = "ca-certificates"
WHEEL_DIRECTORY = "erchub-wheel"

#: the repo2docker configuration files PipBuildPack reads
ENVIRONMENT_FILES = ("requirements.txt", "runtime.txt", "apt.txt", "postBuild")

# Debian package names (optionally pinned, name=version): nothing else reaches the shell.
_APT_PACKAGE = re.compile(r"[a-z0-9][a-z0-9.+-]*(=[A-Za-z0-9.+~:-]+)?")
# Dockerfile paths that need no quoting in COPY and WORKDIR.
_PLAIN_ABSOLUTE_PATH = re.compile(r"/[A-Za-z0-9._/-]*")


@dataclass(frozen=True)
class PipEnvironment:
    """What a workspace asks of PipBuildPack, read from its repo2docker configuration files.

    Paths are relative to the workspace (``binder/requirements.txt`` when a binder folder holds
    the configuration, as in repo2docker).
    """

    files: tuple[str, ...] = ()
    requirements: str | None = None
    apt_packages: tuple[str, ...] = ()
    post_build: str | None = None
    python_version: str | None = None
    copy_workspace: bool = False


@dataclass(frozen=True)
class PipSettings:
    """How PipBuildPack builds: the ImageBuilder's settings and what it found out.

    ``base_python`` is the base image's Python (``3.11``); None skips the runtime.txt check.
    ``jupyterhub_version`` empty installs the newest jupyterhub. ``erchub_wheel`` None leaves
    erchub out (the ImageBuilder always passes one). ``pip_env_names`` are declared as build
    arguments. ``repo_dir`` empty means the notebook user's home.
    """

    base_python: str | None = None
    jupyterhub_version: str = ""
    erchub_wheel: Path | None = None
    ca_certificates: tuple[Path, ...] = ()
    pip_env_names: tuple[str, ...] = ()
    repo_dir: str = ""


def parse_apt_txt(text: str, source: str = "apt.txt") -> tuple[str, ...]:
    """The package names in an apt.txt (``#`` comments and blank lines skipped), sorted."""
    packages = []
    for number, line in enumerate(text.splitlines(), start=1):
        package = line.partition("#")[0].strip()
        if not package:
            continue
        if not _APT_PACKAGE.fullmatch(package):
            raise BuildError(
                f"{source} line {number}: {package!r} is not a Debian package name "
                "(lowercase letters, digits, '.', '+', '-', optionally =version)"
            )
        packages.append(package)
    return tuple(sorted(set(packages)))


def requirements_need_workspace(text: str) -> bool:
    """Whether a requirements.txt refers to local files (``-e .``, ``-r x.txt``, ``./pkg``)."""
    return any(is_local_pip_requirement(line) for line in text.splitlines())


def check_runtime_python(requested: str, available: str, base_image: str) -> None:
    """Raise BuildError unless Python ``available`` satisfies runtime.txt's ``requested``.

    ``3`` accepts any 3.x; ``3.11`` and ``3.11.4`` need 3.11.
    """
    wanted = requested.split(".")[:2]
    if available.split(".")[: len(wanted)] != wanted:
        raise BuildError(
            f"runtime.txt asks for Python {requested}, but the base image {base_image} has "
            f"Python {available}; use a base image with Python {requested} "
            "(ImageBuilder.base_image) or change runtime.txt"
        )


def ca_context_names(certificates: Sequence[Path]) -> list[str]:
    """Names of the CA certificate files in the build context (update-ca-certificates: .crt)."""
    return [
        f"{CA_DIRECTORY}/{index:02d}-{re.sub(r'[^A-Za-z0-9_.-]', '_', path.stem)}.crt"
        for index, path in enumerate(certificates)
    ]


def runtime_requirements(jupyterhub_version: str) -> list[str]:
    """The pip requirements every image gets, jupyterhub pinned to the hub's version."""
    jupyterhub = f"jupyterhub=={jupyterhub_version}" if jupyterhub_version else "jupyterhub"
    return [*RUNTIME_PACKAGES, jupyterhub]


def render_pip_dockerfile(
    environment: PipEnvironment,
    settings: PipSettings,
    base_image: str,
    nb_user: str = NB_USER,
    nb_uid: int = NB_UID,
) -> str:
    """The Dockerfile of a PipBuildPack image (pure: no file or daemon access)."""
    if environment.python_version and settings.base_python:
        check_runtime_python(environment.python_version, settings.base_python, base_image)
    home = f"/home/{nb_user}"
    repo_dir = settings.repo_dir or home
    if not _PLAIN_ABSOLUTE_PATH.fullmatch(repo_dir):
        raise BuildError(
            f"repository directory {repo_dir!r} must be an absolute path of letters, digits, "
            "'.', '_', '-' and '/'"
        )
    wheel = settings.erchub_wheel
    return _template().render(
        base_image=base_image,
        nb_user=nb_user,
        nb_uid=nb_uid,
        home=home,
        repo_dir=repo_dir,
        ca_certificates=ca_context_names(settings.ca_certificates),
        ca_directory=CA_DIRECTORY,
        apt_packages=environment.apt_packages,
        pip_env_names=sorted(settings.pip_env_names),
        runtime_requirements=runtime_requirements(settings.jupyterhub_version),
        erchub_wheel=f"{WHEEL_DIRECTORY}/{wheel.name}" if wheel else None,
        copy_workspace=environment.copy_workspace,
        source_directory=SOURCE_DIRECTORY,
        requirements=environment.requirements,
        post_build=environment.post_build,
    )


@cache
def _template() -> jinja2.Template:
    source = files("erchub.spawner").joinpath("templates/pip.Dockerfile.j2").read_text("utf-8")
    env = jinja2.Environment(
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    env.filters["q"] = shlex.quote
    return env.from_string(source)


def workspace_files(ignore_files: Sequence[str]) -> list[str]:
    """The current directory's files that a build context takes, minus ignore-file patterns.

    ``ignore_files`` are .dockerignore-style files (repo2docker reads .dockerignore and
    .containerignore, in the binder folder when there is one).
    """
    patterns: list[str] = []
    for name in ignore_files:
        if os.path.isfile(name):
            with open(name, encoding="utf-8") as ignore_file:
                patterns += [
                    line.strip()
                    for line in ignore_file
                    if line.strip() and not line.strip().startswith("#")
                ]
    return sorted(path for path in exclude_paths(".", patterns) if os.path.isfile(path))


class PipBuildPack(BaseImage):
    """repo2docker buildpack: requirements.txt (or nothing) on a Debian base with Python.

    The catch-all: it detects every workspace, so it belongs last in a buildpack list, after
    repo2docker's DockerBuildPack and CondaBuildPack.
    """

    def __init__(self, base_image: str, settings: PipSettings | None = None) -> None:
        super().__init__(base_image)
        self.settings = settings or PipSettings()

    def detect(self) -> bool:
        return True

    @cached_property
    def environment(self) -> PipEnvironment:
        """The workspace's environment files, read (BuildError names a malformed one)."""
        try:
            present = tuple(
                path for path in map(self.binder_path, ENVIRONMENT_FILES) if os.path.isfile(path)
            )
        except RuntimeError as exc:  # both binder/ and .binder/
            raise BuildError(str(exc)) from exc
        requirements = self.binder_path("requirements.txt")
        requirements_text = _read_text(requirements) if requirements in present else None
        apt = self.binder_path("apt.txt")
        runtime = self.binder_path("runtime.txt")
        try:
            runtime_name, runtime_version, _date = self.runtime
        except ValueError as exc:
            raise BuildError(f"{runtime}: {exc}") from exc
        if runtime_name not in (None, "python"):
            raise BuildError(
                f"{runtime} asks for {runtime_name}; PipBuildPack builds Python environments "
                "(runtime.txt: python-3.X)"
            )
        post_build = self.binder_path("postBuild")
        return PipEnvironment(
            files=present,
            requirements=requirements if requirements_text is not None else None,
            apt_packages=parse_apt_txt(_read_text(apt), apt) if apt in present else (),
            post_build=post_build if post_build in present else None,
            python_version=runtime_version,
            copy_workspace=post_build in present
            or (requirements_text is not None and requirements_need_workspace(requirements_text)),
        )

    def render(self, build_args: Mapping[str, str] | None = None) -> str:
        build_args = build_args or {}
        return render_pip_dockerfile(
            self.environment,
            self.settings,
            self.base_image,
            nb_user=build_args.get("NB_USER", NB_USER),
            nb_uid=int(build_args.get("NB_UID", NB_UID)),
        )

    def context_files(self) -> list[str]:
        """The workspace files the image gets (see the module's documentation)."""
        if self.environment.copy_workspace:
            return workspace_files(
                [self.binder_path(".dockerignore"), self.binder_path(".containerignore")]
            )
        return list(self.environment.files)

    def injected_files(self) -> dict[str, Path]:
        """Files from outside the workspace, by their name in the build context."""
        injected = dict(
            zip(
                ca_context_names(self.settings.ca_certificates),
                self.settings.ca_certificates,
                strict=True,
            )
        )
        if self.settings.erchub_wheel:
            wheel = self.settings.erchub_wheel
            injected[f"{WHEEL_DIRECTORY}/{wheel.name}"] = wheel
        return injected

    def build(
        self,
        client: Any,
        image_spec: str,
        memory_limit: int,
        build_args: Mapping[str, str],
        cache_from: list[str],
        extra_build_kwargs: Mapping[str, Any],
        platform: str | None = None,
    ) -> Iterator[Any]:
        """Send the context (Dockerfile, injected files, workspace files) to the engine."""
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            dockerfile = self.render(build_args).encode("utf-8")
            entry = tarfile.TarInfo("Dockerfile")
            entry.size = len(dockerfile)
            tar.addfile(entry, io.BytesIO(dockerfile))
            source = tarfile.TarInfo(SOURCE_DIRECTORY)
            source.type = tarfile.DIRTYPE
            source.mode = 0o755
            tar.addfile(source)
            for name, injected in self.injected_files().items():
                tar.add(injected, name, filter=_anonymous)
            for path in self.context_files():
                tar.add(path, f"{SOURCE_DIRECTORY}/{path}", recursive=False, filter=_anonymous)
        context.seek(0)
        # Swap off: docker's memswap counts memory plus swap.
        limits = {"memory": memory_limit, "memswap": memory_limit} if memory_limit else {}
        yield from client.build(
            fileobj=context,
            tag=image_spec,
            custom_context=True,
            # Only what the Dockerfile declares: others make the daemon warn.
            buildargs={k: v for k, v in build_args.items() if k in self.settings.pip_env_names},
            container_limits=limits,
            cache_from=cache_from,
            platform=platform,
            **extra_build_kwargs,
        )


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as text_file:
        return text_file.read()


def _anonymous(member: tarfile.TarInfo) -> tarfile.TarInfo:
    # The host's owner says nothing about the image (COPY --chown decides), and varying
    # owners would defeat the daemon's layer cache.
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member
