"""ERCSpawner: a JupyterLab session of one ERC, in the ERC's own runtime image.

A session is a named server whose ``user_options`` name a compendium (or a job: its compendium,
opening the job's executed notebook). Before the server starts, the spawner

1. fetches the compendium from the `erc` service with the server's own hub token, so the
   service's visibility rules decide (another user's candidate is "not found");
2. makes sure the runtime image exists: ``erchub build --events`` in a subprocess (the builder
   enters the workspace directory, which must not happen in the hub's process), reusing an
   existing image, with every phase and build log line sent to ``progress()``;
3. gives the user a private working copy: a Docker volume per user and server, filled from
   the compendium on the first start and kept across restarts; the compendium itself is never
   mounted, so a session cannot change it;
4. starts jupyterhub-singleuser in the image with the working copy as its root and the main
   notebook as the default URL, on an internal Docker network from which the hub's API is the
   only thing it is meant to reach.

``LocalERCSpawner`` runs the session as a local process of the hub's own Python environment,
without image or isolation: for development on machines without Docker.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import posixpath
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import docker
import docker.errors
from dockerspawner import DockerSpawner
from jupyterhub.spawner import SimpleLocalProcessSpawner, Spawner
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, Int, Unicode, default

from erchub.archive import extract_archive
from erchub.errors import ErchubError
from erchub.sessions import InvalidSessionOptions, SessionTarget, lab_url_for, parse_user_options
from erchub.settings import default_data_dir
from erchub.spawner.buildpacks import NB_UID

#: the hub's name of the managed erc service
SERVICE_NAME = "erc"
#: what a session's own hub token may do: what every server does, and use the erc service as
#: its user (the server extension publishes and runs through it)
SESSION_TOKEN_SCOPES = [
    "users:activity!user",
    "access:servers!server",
    f"access:services!service={SERVICE_NAME}",
    "custom:erc:read",
    "custom:erc:create",
    "custom:erc:run",
]
#: labels of the Docker objects of sessions
SESSION_LABEL = "org.erchub.session"
#: build log lines shown per progress step before progress moves on
_BUILD_PROGRESS = (20, 70)


class SessionError(ErchubError):
    """A session that cannot start, with the reason its user sees on the progress page."""


@dataclass
class SessionSource:
    """What a session opens, as the erc service describes it to the session's user."""

    compendium_id: str
    title: str
    #: the notebook to open, relative to the working copy
    notebook: str
    #: changes whenever the compendium's files may have changed
    version: str
    #: a job's executed notebook to add to the working copy as ``notebook`` (its API path)
    job_notebook: str | None = None


@dataclass
class FetchedCompendium:
    """A compendium unpacked for one start: its files and the extra files of the session."""

    source: SessionSource
    root: Path
    #: extra files for the working copy (relative path -> local file): a job's notebook
    extra: dict[str, Path]


#: runtime images of compendium versions this hub built or found: relaunches skip the build
#: check (an image that is gone is looked for again)
_IMAGES: dict[str, str] = {}


# JupyterHub refuses Spawner subclasses without start/stop/poll: the mixin is not one, except
# for the type checker, which checks it against what it uses of Spawner
if TYPE_CHECKING:
    from jupyterhub.spawner import Spawner as _SpawnerBase
else:
    from traitlets.config import LoggingConfigurable as _SpawnerBase


class ERCSessionMixin(_SpawnerBase):
    """What both session spawners share: options, the compendium, progress."""

    erc_api_url = Unicode(
        help="""URL of the erc service's API as the hub and the sessions reach it (sessions get
        it as $ERCHUB_API_URL, with the server's token for it). Default: the managed service
        named erc (its internal URL and prefix) + api/v1.""",
    ).tag(config=True)

    fetch_timeout = Float(
        120,
        help="Seconds to fetch a compendium from the erc service before failing. Default: 120.",
    ).tag(config=True)

    builder_config_file = Unicode(
        help="""traitlets config file with ImageBuilder settings for session builds (the same
        file the erc service's workers use). Default: $ERCHUB_CONFIG_FILE, else
        erchub_service_config.py in the hub's working directory when it exists.""",
    ).tag(config=True)

    def get_env(self) -> dict[str, str]:
        """The server's environment, plus what erchub's server extension reads: the ERC of
        the session and where the erc API is (reached with the server's own token)."""
        env: dict[str, str] = super().get_env()
        env["ERCHUB_API_URL"] = self.erc_api_url
        options = self.user_options or {}
        for option, variable in (("compendium", "ERCHUB_COMPENDIUM_ID"), ("job", "ERCHUB_JOB_ID")):
            if options.get(option):
                env[variable] = str(options[option])
        return env

    @default("erc_api_url")
    def _default_erc_api_url(self) -> str:
        services = self.user.settings.get("services", {}) if self.user else {}
        service = services.get(SERVICE_NAME)
        if service is None or not service.url:
            return "http://127.0.0.1:10101/services/erc/api/v1"
        return str(url_path_join(service.url, service.prefix, "api/v1"))

    @default("builder_config_file")
    def _default_builder_config_file(self) -> str:
        path = os.environ.get("ERCHUB_CONFIG_FILE") or "erchub_service_config.py"
        return os.path.abspath(path) if os.path.exists(path) else ""

    @default("apply_user_options")
    def _default_apply_user_options(self) -> Any:
        return check_user_options

    @default("server_token_scopes")
    def _default_server_token_scopes(self) -> list[str]:
        return list(SESSION_TOKEN_SCOPES)

    @default("start_timeout")
    def _default_start_timeout(self) -> int:
        # the first start of an ERC builds its image: minutes, not the hub's 60 s
        return 3600

    @default("http_timeout")
    def _default_http_timeout(self) -> int:
        return 120

    _events: list[dict[str, Any]]
    _events_changed: asyncio.Event
    _start_finished: bool = True

    # -- options ---------------------------------------------------------------------------

    def options_from_query(self, query_data: dict[str, list[str]]) -> dict[str, str]:
        """``/hub/spawn/<user>/<server>?compendium=ID`` (or ``?job=ID``) as user_options."""
        return {key: values[0] for key, values in query_data.items() if values}

    @property
    def target(self) -> SessionTarget:
        try:
            return parse_user_options(self.user_options)
        except InvalidSessionOptions as exc:
            raise SessionError(str(exc)) from None

    # -- progress --------------------------------------------------------------------------

    def begin_progress(self) -> None:
        self._events = []
        self._events_changed = asyncio.Event()
        self._start_finished = False

    def end_progress(self) -> None:
        self._start_finished = True
        self._events_changed.set()

    def report(self, message: str, progress: int | None = None) -> None:
        """One progress event for the hub's progress page (and the log at debug level)."""
        event: dict[str, Any] = {"message": message}
        if progress is not None:
            event["progress"] = progress
        self._events.append(event)
        self._events_changed.set()

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """Every event of the current start from its beginning (a page opened late sees the
        whole build log), then new ones as they come, until the start ends."""
        if not hasattr(self, "_events"):
            return
        sent = 0
        while True:
            self._events_changed.clear()
            while sent < len(self._events):
                yield self._events[sent]
                sent += 1
            if self._start_finished:
                return
            try:
                await asyncio.wait_for(self._events_changed.wait(), timeout=1)
            except asyncio.TimeoutError:
                continue

    # -- the compendium --------------------------------------------------------------------

    async def api_request(self, path: str, **kwargs: Any) -> Any:
        """A request to the erc API with this server's token (the user's own rights)."""
        request = HTTPRequest(
            self.erc_api_url.rstrip("/") + path,
            headers={"Authorization": f"token {self.api_token}"},
            request_timeout=self.fetch_timeout,
            **kwargs,
        )
        try:
            return await AsyncHTTPClient().fetch(request)
        except HTTPClientError as exc:
            message = _api_message(exc)
            if exc.code in (403, 404):
                raise SessionError(message) from None
            raise SessionError(f"the erc service answered {exc.code}: {message}") from None
        except OSError as exc:
            raise SessionError(f"the erc service cannot be reached: {exc}") from None

    async def api_json(self, path: str) -> dict[str, Any]:
        response = await self.api_request(path)
        return dict(json.loads(response.body))

    async def download(self, path: str, target: Path) -> None:
        with open(target, "wb") as stream:

            def write(chunk: bytes) -> None:
                stream.write(chunk)

            await self.api_request(path, streaming_callback=write)

    async def describe_source(self) -> SessionSource:
        """The compendium (or the job's compendium) of ``user_options``, as its user may see
        it: 'not found' when it does not exist or is not visible to them."""
        target = self.target
        job: dict[str, Any] | None = None
        compendium_id = target.id
        if target.kind == "job":
            job = await self.api_json(f"/job/{quote(target.id)}")
            compendium_id = str(job["compendium_id"])
        self.report(f"Opening compendium {compendium_id}", 5)
        record = await self.api_json(f"/compendium/{quote(compendium_id)}")
        o2r = (record.get("metadata") or {}).get("o2r") or {}
        notebook = str(o2r.get("mainfile") or "")
        source = SessionSource(
            compendium_id,
            str(o2r.get("title") or compendium_id),
            notebook,
            f"{compendium_id}@{record.get('updated')}",
        )
        if job is None:
            return source
        executed = (job.get("files") or {}).get("executed")
        if not executed:
            raise SessionError(f"job {target.id} has no executed notebook to open")
        stem = posixpath.splitext(posixpath.basename(notebook or executed))[0]
        source.notebook = posixpath.join(
            posixpath.dirname(notebook), f"{stem}-job-{target.id}.ipynb"
        )
        source.job_notebook = f"/job/{quote(target.id)}/data/{quote(executed)}"
        return source

    async def fetch_compendium(self, source: SessionSource, scratch: Path) -> FetchedCompendium:
        """The compendium's files (and a job's notebook), unpacked below ``scratch``."""
        self.report(f"Fetching the files of {source.compendium_id}", 8)
        archive = scratch / "compendium.tar.gz"
        await self.download(f"/compendium/{quote(source.compendium_id)}.tar.gz", archive)
        root = await asyncio.get_running_loop().run_in_executor(
            None, extract_archive, archive, scratch / "files"
        )
        extra: dict[str, Path] = {}
        if source.job_notebook:
            extra[source.notebook] = scratch / "executed.ipynb"
            await self.download(source.job_notebook, extra[source.notebook])
        return FetchedCompendium(source, root, extra)

    async def wait_until_answering(self, ip: str, port: int) -> None:
        """Poll the server often until it answers: the hub's own check backs off to seconds
        between tries, which would dominate a relaunch."""
        url = f"http://{ip}:{port}{url_path_join(self.server.base_url, 'api')}"
        deadline = time.monotonic() + self.http_timeout
        client = AsyncHTTPClient()
        while time.monotonic() < deadline:
            try:
                await client.fetch(url, request_timeout=2)
                return
            except HTTPClientError as exc:
                if exc.code != 599:  # an HTTP answer: the server is up
                    return
            except OSError:
                pass
            exited = await self.poll()
            if exited is not None:
                raise SessionError(
                    f"JupyterLab exited before answering ({exited}); the hub's log has its output"
                )
            await asyncio.sleep(0.05)

    def set_default_url(self, source: SessionSource) -> None:
        self.default_url = lab_url_for(source.notebook) if source.notebook else "/lab"


class ERCSpawner(ERCSessionMixin, DockerSpawner):
    """A session in the ERC's runtime image on the local Docker engine (see the module)."""

    working_copy_dir = Unicode(
        "/home/jovyan/work",
        help="""Where the working copy is mounted in the container, and JupyterLab's root.
        Default: /home/jovyan/work.""",
    ).tag(config=True)

    working_copy_uid = Int(
        NB_UID,
        help="Owner (uid and gid) of the working copy's files: the image's notebook user. "
        "Default: 1000.",
    ).tag(config=True)

    pids_limit = Int(
        1024,
        help="Largest number of processes in a session container (0: no limit). Default: 1024.",
    ).tag(config=True)

    @default("network_name")
    def _default_network_name(self) -> str:
        return "erchub-sessions"

    @default("use_internal_ip")
    def _default_use_internal_ip(self) -> bool:
        return True

    @default("remove")
    def _default_remove(self) -> bool:
        return True

    @default("mem_limit")
    def _default_mem_limit(self) -> int:
        return 4 * 1024**3

    @default("cpu_limit")
    def _default_cpu_limit(self) -> float:
        return 2.0

    @default("pull_policy")
    def _default_pull_policy(self) -> str:
        # the image was just built or found; there is no registry to pull it from
        return "never"

    @default("extra_host_config")
    def _default_extra_host_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"security_opt": ["no-new-privileges"], "cap_drop": ["ALL"]}
        if self.pids_limit:
            config["pids_limit"] = self.pids_limit
        return config

    @property
    def volume_name(self) -> str:
        return f"erchub-work-{self.escaped_name}-{self.name or 'default'}"

    _working_copy_archive: bytes | None = None

    async def start(self) -> Any:
        self.begin_progress()
        try:
            return await self._start_session()
        finally:
            self._working_copy_archive = None
            self.end_progress()

    async def _start_session(self) -> Any:
        _network, source = await asyncio.gather(self.check_network(), self.describe_source())
        image, fresh = await asyncio.gather(self.known_image(source), self.volume_missing())
        if image is None or fresh:
            with tempfile.TemporaryDirectory(prefix="erchub-session-") as scratch:
                fetched = await self.fetch_compendium(source, Path(scratch))
                if image is None:
                    image = _IMAGES[source.version] = await build_image(self, fetched)
                if fresh:
                    self.report("Preparing your working copy of the compendium", 80)
                    self._working_copy_archive = await asyncio.get_running_loop().run_in_executor(
                        None, working_copy_tar, fetched, self.working_copy_dir,
                        self.working_copy_uid,
                    )  # fmt: skip
                    await self.create_volume(source)
        else:
            self.report("Reusing your working copy from the last session", 80)
        self.image = image
        self.notebook_dir = self.working_copy_dir
        self.set_default_url(source)
        self.report(f"Starting JupyterLab in {self.image}", 85)
        ip, port = await super().start()
        self.report("Waiting for JupyterLab to answer", 90)
        await self.wait_until_answering(ip, port)
        return ip, port

    async def known_image(self, source: SessionSource) -> str | None:
        """The image this hub built or found for this version of the compendium, if it is
        still there."""
        image = _IMAGES.get(source.version)
        if image is None:
            return None
        try:
            await self.docker("inspect_image", image)
        except docker.errors.NotFound:
            del _IMAGES[source.version]
            return None
        self.report(f"Reusing the runtime image {image}", 60)
        return image

    async def check_network(self) -> None:
        try:
            await self.docker("inspect_network", self.network_name)
        except docker.errors.NotFound:
            raise SessionError(
                f"the Docker network {self.network_name} of sessions is missing; restart the "
                "hub (its configuration creates it)"
            ) from None
        except docker.errors.DockerException as exc:
            raise SessionError(f"the Docker engine cannot be reached: {exc}") from None

    async def volume_missing(self) -> bool:
        try:
            await self.docker("inspect_volume", self.volume_name)
        except docker.errors.NotFound:
            return True
        return False

    async def create_volume(self, source: SessionSource) -> None:
        """The working copy's volume: made only once the image is there, so that a failed
        build leaves nothing behind."""
        labels = {
            SESSION_LABEL: "working-copy",
            "org.erchub.user": self.user.name,
            "org.erchub.server": self.name,
            "org.erchub.compendium": source.compendium_id,
        }
        await self.docker("create_volume", self.volume_name, labels=labels)

    @property
    def volume_mount_points(self) -> list[str]:
        return [self.working_copy_dir]

    @property
    def volume_binds(self) -> dict[str, dict[str, str]]:
        return {self.volume_name: {"bind": self.working_copy_dir, "mode": "rw"}}

    async def create_object(self) -> Any:
        created = await super().create_object()
        if self._working_copy_archive is not None:
            # Copied into the created container: docker writes through to the fresh volume,
            # with the notebook user's ownership, whichever engine and host run it.
            parent = posixpath.dirname(self.working_copy_dir.rstrip("/"))
            await self.docker("put_archive", created["Id"], parent, self._working_copy_archive)
        return created

    def delete_forever(self) -> Any:
        """The named server is deleted: its working copy goes too."""
        return self._remove_volume()

    async def _remove_volume(self) -> None:
        try:
            await self.docker("remove_volume", self.volume_name, force=True)
        except docker.errors.NotFound:
            return


class LocalERCSpawner(ERCSessionMixin, SimpleLocalProcessSpawner):
    """A session as a local process of the hub's Python environment: no runtime image, no
    isolation. Development only, on machines without Docker."""

    sessions_dir = Unicode(
        help="""Directory of the working copies (<sessions_dir>/<user>/<server>). Default:
        $ERCHUB_DATA_DIR/sessions, else ~/.local/share/erchub/sessions.""",
    ).tag(config=True)

    @default("sessions_dir")
    def _default_sessions_dir(self) -> str:
        return os.path.join(default_data_dir(), "sessions")

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        return [sys.executable, "-m", "jupyterhub.singleuser"]

    @property
    def working_copy(self) -> Path:
        return Path(self.sessions_dir) / self.user.name / (self.name or "default")

    @default("home_dir")
    def _default_home_dir(self) -> str:
        # beside the working copies, never in one (the server's runtime files, the kernel's
        # history would be published with it); server names start with a letter: no clash
        return str(Path(self.sessions_dir) / self.user.name / ".home")

    def get_args(self) -> list[str]:
        args = list(super().get_args())
        if os.geteuid() == 0:
            # the hub's own user runs the session (development only): jupyter-server refuses
            # root without this
            args.append("--ServerApp.allow_root=True")
        return args

    async def start(self) -> Any:
        self.begin_progress()
        try:
            self.log.warning(
                "LocalERCSpawner (development only): %s runs in the hub's Python environment, "
                "not in the ERC's runtime image, without isolation",
                self._log_name,
            )
            source = await self.describe_source()
            if not self.working_copy.exists():
                with tempfile.TemporaryDirectory(prefix="erchub-session-") as scratch:
                    fetched = await self.fetch_compendium(source, Path(scratch))
                    self.report("Preparing your working copy of the compendium", 60)
                    await asyncio.get_running_loop().run_in_executor(
                        None, copy_working_copy, fetched, self.working_copy
                    )
            self.notebook_dir = str(self.working_copy)
            self.set_default_url(source)
            self.report("Starting JupyterLab (local process, development only)", 90)
            ip, port = await super().start()
            await self.wait_until_answering(ip, port)
            return ip, port
        finally:
            self.end_progress()


def check_user_options(spawner: Spawner, user_options: Any) -> None:
    """JupyterHub's apply_user_options hook: options naming no compendium or job are the
    request's fault (400 with the reason), before anything starts."""
    try:
        parse_user_options(user_options)
    except InvalidSessionOptions as exc:
        raise web.HTTPError(400, str(exc)) from None


# -- building the image -------------------------------------------------------------------


async def build_image(spawner: ERCSessionMixin, fetched: FetchedCompendium) -> str:
    """The runtime image of ``fetched``, built unless it exists, with progress events."""
    spawner.report("Looking for the runtime image", 10)
    command = [sys.executable, "-m", "erchub"]
    if spawner.builder_config_file:
        command += ["--config", spawner.builder_config_file]
    command += ["build", "--events", str(fetched.root)]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    stderr_task = asyncio.ensure_future(process.stderr.read())
    image, error, lines = "", "", 0
    started = time.monotonic()
    try:
        async for raw in process.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            kind = event.get("event")
            if kind == "plan":
                image = event["image"]
                if event.get("exists"):
                    spawner.report(f"Reusing the runtime image {image}", 60)
                else:
                    spawner.report(
                        f"Building the runtime image {image} with {event['buildpack']}", 15
                    )
            elif kind == "log":
                lines += 1
                low, high = _BUILD_PROGRESS
                # the number of lines is unknown: creep towards `high` without reaching it
                spawner.report(event["line"], low + int((high - low) * (1 - 0.99**lines)))
            elif kind == "done":
                image = event["image"]
                if not event.get("cache_hit"):
                    spawner.report(f"Built {image} in {time.monotonic() - started:.0f} s", 75)
            elif kind == "error":
                error = event.get("message") or "the build failed"
        code = await process.wait()
    except BaseException:
        # the hub gave up on the start (timeout, the server was stopped), or the events were
        # not what they should be: the build stops too
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    finally:
        stderr = (await stderr_task).decode(errors="replace").strip()
    if code != 0 or not image:
        reason = error or (stderr.splitlines()[-1] if stderr else f"exit code {code}")
        # the user knows the compendium, not the hub's scratch directory
        reason = reason.removeprefix("erchub: error: ").replace(str(fetched.root), "the compendium")
        raise SessionError(f"building the runtime image failed: {reason}")
    return image


# -- the working copy ---------------------------------------------------------------------


def working_copy_tar(fetched: FetchedCompendium, working_copy_dir: str, uid: int) -> bytes:
    """The working copy as a tar whose top entry is ``basename(working_copy_dir)``, every file
    owned by ``uid``: extracted into the directory above the mount point, it fills the volume
    and makes its root the notebook user's."""
    top = posixpath.basename(working_copy_dir.rstrip("/"))
    now = time.time()

    def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = uid
        info.uname = info.gname = ""
        return info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        root = tarfile.TarInfo(top)
        root.type, root.mode, root.mtime = tarfile.DIRTYPE, 0o755, int(now)
        archive.addfile(owned(root))
        for path in sorted(fetched.root.rglob("*")):
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                continue
            relative = path.relative_to(fetched.root).as_posix()
            archive.add(path, f"{top}/{relative}", recursive=False, filter=owned)
        for relative, source in fetched.extra.items():
            archive.add(source, f"{top}/{relative}", recursive=False, filter=owned)
    return buffer.getvalue()


def copy_working_copy(fetched: FetchedCompendium, target: Path) -> None:
    """The local variant's working copy: the compendium's files (not its links, as in
    :func:`working_copy_tar`), then the extra files; made beside ``target`` and moved into
    place, so that a failed copy is not taken for a working copy by the next start."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)

    def links(directory: str, names: list[str]) -> list[str]:
        return [name for name in names if os.path.islink(os.path.join(directory, name))]

    shutil.copytree(fetched.root, partial, ignore=links)
    for relative, source in fetched.extra.items():
        (partial / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, partial / relative)
    os.replace(partial, target)


def _api_message(error: HTTPClientError) -> str:
    """The erc service's ``message`` of an error response, else the HTTP reason."""
    body = error.response.body if error.response is not None else b""
    try:
        return str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        return str(error.message or error)
