"""ERCSpawner: a user's workspace, or a JupyterLab session of one ERC in its own runtime image.

A user's **workspace** is their default server: a blank JupyterLab of their own (where they
write notebooks and publish them as ERCs) on a persistent volume, in the authoring image
(``workspace_image``, else built from ``workspace_environment``: the common scientific Python
stack on the base image with erchub's extensions).

A **session** is a named server whose ``user_options`` name a compendium (or a job: its
compendium, opening the job's executed notebook). Before the server starts, the spawner

1. fetches the compendium from the `erc` service with the server's own hub token, so the
   service's visibility rules decide (another user's candidate is "not found"), through the
   review link that ``user_options.link`` names, if any (a reviewer's session: blinded for a
   blind link; a review guest opens nothing else, see ``erchub.reviewers``);
2. makes sure the runtime image exists: ``erchub build --events`` in a subprocess on the
   sessions' Docker engine, reusing an existing image or a build of it already running, with
   every phase and build log line sent to ``progress()`` (see ``erchub.spawner.session_build``);
3. gives the user a private working copy: a Docker volume per user and server
   (``working_copy_volume``, a DockerSpawner volume name template), filled from the compendium
   on the first start and kept across restarts; the compendium itself is never mounted, so a
   session cannot change it;
4. starts jupyterhub-singleuser in the image with the working copy as its root and the main
   notebook as the default URL, on an internal Docker network from which the hub's API is the
   only thing it is meant to reach.

ERCSpawner is a DockerSpawner as its maintainers mean it to be extended: the working copy is one
of ``volumes`` (next to the operator's ``volumes``, ``read_only_volumes`` and the internal-SSL
certificates), every Docker call goes through ``docker()`` and its ``client`` (made from
``client_kwargs`` and ``tls_config``, which the builds get too). What its user cannot fix is a
``SessionError`` (JupyterHub's SpawnException): a message for them, details for the log.

``LocalERCSpawner`` runs the session as a local process of the hub's own Python environment,
without image or isolation: for development on machines without Docker.
"""

from __future__ import annotations

import asyncio
import json
import os
import posixpath
import shutil
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import docker
import docker.errors
from dockerspawner import DockerSpawner
from jupyterhub.objects import Server
from jupyterhub.spawner import SimpleLocalProcessSpawner, Spawner
from jupyterhub.utils import exponential_backoff, fmt_ip_url, make_ssl_context, url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, Int, Unicode, default

from erchub.archive import extract_archive
from erchub.metadata import is_orcid_id
from erchub.sessions import (
    InvalidSessionOptions,
    SessionKind,
    SessionTarget,
    check_guest_target,
    lab_url_for,
    parse_user_options,
)
from erchub.settings import default_data_dir
from erchub.spawner.buildpacks import NB_UID
from erchub.spawner.session import (
    FetchedCompendium,
    SessionError,
    SessionSource,
    copy_working_copy,
    scratch_directory,
    write_working_copy_tar,
)
from erchub.spawner.session_build import build_image, builder_command, builder_config

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
#: what a session's container may use by default: memory (bytes) and CPUs
SESSION_MEM_LIMIT = 4 * 1024**3
SESSION_CPU_LIMIT = 2.0
#: the name (and ``erc`` label) of the authoring image's environment
WORKSPACE_ENVIRONMENT = "erchub-workspace"
#: erchub's authoring environment (ERCSpawner.workspace_environment's default)
DEFAULT_WORKSPACE_ENVIRONMENT = str(Path(__file__).resolve().with_name("workspace"))


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
        it as $ERCHUB_API_URL, with the server's token for it) (default: the managed service
        named erc (its internal URL and prefix) + api/v1).""",
    ).tag(config=True)

    fetch_timeout = Float(
        120,
        help="Seconds to fetch a compendium from the erc service before failing (default: 120).",
    ).tag(config=True)

    builder_config_file = Unicode(
        help="""traitlets config file with ImageBuilder settings for session builds (the same
        file the erc service's workers use) (default: $ERCHUB_CONFIG_FILE, else
        erchub_service_config.py in the hub's working directory when it exists).""",
    ).tag(config=True)

    #: the user as an author (from the login): the publish form's first author
    author_name: str = ""
    author_orcid: str = ""

    def get_env(self) -> dict[str, str]:
        """The server's environment, plus what erchub's server extension reads: the ERC of
        the session (and the review link it was opened through), where the erc API is
        (reached with the server's own token) and the user as an author (name and ORCID iD,
        when the login knows them)."""
        env: dict[str, str] = super().get_env()
        env["ERCHUB_API_URL"] = self.erc_api_url
        options = self.user_options or {}
        for option, variable in (
            ("compendium", "ERCHUB_COMPENDIUM_ID"),
            ("job", "ERCHUB_JOB_ID"),
            ("link", "ERCHUB_REVIEW_LINK"),
        ):
            if options.get(option):
                env[variable] = str(options[option])
        for value, variable in (
            (self.author_name, "ERCHUB_AUTHOR_NAME"),
            (self.author_orcid, "ERCHUB_AUTHOR_ORCID"),
        ):
            if value:
                env[variable] = value
        return env

    async def run_auth_state_hook(self, auth_state: Any) -> None:
        """Before each start: the user as an author. The hub user's name is their ORCID iD
        with ORCID login (erchub.hub.orcid), whose auth_state holds their display name."""
        name = auth_state.get("name") if isinstance(auth_state, dict) else None
        self.author_name = str(name).strip() if name else ""
        self.author_orcid = self.user.name if is_orcid_id(self.user.name) else ""
        await super().run_auth_state_hook(auth_state)

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
            return parse_user_options(self.user_options, self.name)
        except InvalidSessionOptions as exc:
            raise SessionError(str(exc), reason="options") from None

    # -- progress --------------------------------------------------------------------------

    def begin_progress(self) -> None:
        self._events = []
        self._events_changed = asyncio.Event()
        self._start_finished = False

    def end_progress(self) -> None:
        self._start_finished = True
        self._events_changed.set()

    def report(
        self, message: str, progress: int | None = None, html_message: str | None = None
    ) -> None:
        """One progress event for the hub's progress page (and the log at debug level); with
        ``html_message`` (markup, escaped by its maker), the page shows that instead."""
        event: dict[str, Any] = {"message": message}
        if progress is not None:
            event["progress"] = progress
        if html_message is not None:
            event["html_message"] = html_message
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

    #: the format the compendium is fetched in (the erc API's downloads: tar.gz or zip)
    archive_format = "tar.gz"

    def archive_path(self, compendium_id: str) -> str:
        """The erc API's path of the compendium's download in ``archive_format``."""
        return f"/compendium/{quote(compendium_id)}.{self.archive_format}"

    def api_url(self, path: str) -> str:
        """The URL of ``path`` of the erc API, through the session's review link if any."""
        link = self.target.link
        query = f"?{urlencode({'link': link})}" if link else ""
        return self.erc_api_url.rstrip("/") + path + query

    async def api_request(self, path: str, **kwargs: Any) -> Any:
        """A request to the erc API with this server's token (the user's own rights), through
        the session's review link when it has one."""
        request = HTTPRequest(
            self.api_url(path),
            headers={"Authorization": f"token {self.api_token}"},
            request_timeout=self.fetch_timeout,
            **kwargs,
        )
        try:
            return await AsyncHTTPClient().fetch(request)
        except HTTPClientError as exc:
            message = _api_message(exc)
            if exc.code in (403, 404):
                # the service's own message for the user: "compendium X not found"
                raise SessionError(message, reason="not-found", status_code=404) from None
            raise SessionError(
                f"the erc service could not answer (HTTP {exc.code}); try again later",
                reason="erc-service",
                log_message=f"the erc service answered {exc.code} to {path}: {message}",
                status_code=502,
            ) from None
        except OSError as exc:
            raise SessionError(
                "the erc service cannot be reached; try again later",
                reason="erc-service",
                log_message=f"the erc service at {self.erc_api_url} cannot be reached: {exc}",
                status_code=503,
            ) from None

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
        if target.kind is SessionKind.JOB:
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
            raise SessionError(
                f"job {target.id} has no executed notebook to open", reason="options"
            )
        stem = posixpath.splitext(posixpath.basename(notebook or executed))[0]
        source.notebook = posixpath.join(
            posixpath.dirname(notebook), f"{stem}-job-{target.id}.ipynb"
        )
        source.job_notebook = f"/job/{quote(target.id)}/data/{quote(executed)}"
        return source

    async def fetch_compendium(self, source: SessionSource, scratch: Path) -> FetchedCompendium:
        """The compendium's files (and a job's notebook), unpacked below ``scratch``."""
        self.report(f"Fetching the files of {source.compendium_id}", 8)
        archive = scratch / f"compendium.{self.archive_format}"
        await self.download(self.archive_path(source.compendium_id), archive)
        root = await asyncio.get_running_loop().run_in_executor(
            None, extract_archive, archive, scratch / "files"
        )
        extra: dict[str, Path] = {}
        if source.job_notebook:
            extra[source.notebook] = scratch / "executed.ipynb"
            await self.download(source.job_notebook, extra[source.notebook])
        return FetchedCompendium(source, root, extra)

    async def wait_until_answering(self, ip: str, port: int) -> None:
        """Wait until the server answers, as ``jupyterhub.utils.wait_for_http_server`` (which
        the hub calls next) waits: an answer below 500, even a 404, is up; a 5xx or no answer
        is not; the deadline (``http_timeout``) raises. Unlike the hub's wait it tries often
        (its back-off to seconds between tries would dominate a relaunch) and ends when the
        server exits."""
        proto = "https" if self.internal_ssl else "http"
        api = url_path_join(self.server.base_url, "api")
        url = f"{proto}://{fmt_ip_url(ip)}:{port}{api}"
        # the hub's own client certificate, as for its wait (JupyterHub's User._wait_up)
        settings = getattr(self.user, "settings", None) or {}
        ssl_context = make_ssl_context(
            settings.get("internal_ssl_key"),
            settings.get("internal_ssl_cert"),
            cafile=settings.get("internal_ssl_ca"),
        )
        request = HTTPRequest(
            url, request_timeout=2, follow_redirects=False, ssl_options=ssl_context
        )
        client = AsyncHTTPClient()

        async def answered() -> bool:
            try:
                response = await client.fetch(request, raise_error=False)
            except (OSError, HTTPClientError):  # no answer (599: none in time)
                response = None
            if response is not None and response.code < 500:
                return True
            if response is not None:
                self.log.warning("JupyterLab at %s answered %s", url, response.code)
            exited = await self.poll()
            if exited is not None:
                raise SessionError(
                    "JupyterLab stopped before it answered",
                    reason="exited",
                    log_message=f"JupyterLab of {self.user.name}'s server {self.name!r} exited "
                    f"with status {exited} before answering at {url}",
                    status_code=500,
                )
            return False

        try:
            await exponential_backoff(
                answered,
                f"JupyterLab of {self.user.name}'s server {self.name!r} did not answer at {url} "
                f"within {self.http_timeout} s",
                start_wait=0.05,
                scale_factor=1.5,
                max_wait=1,
                timeout=self.http_timeout,
            )
        except TimeoutError as exc:
            raise SessionError(
                f"JupyterLab did not answer within {self.http_timeout} s",
                reason="timeout",
                log_message=str(exc),
                status_code=500,
            ) from None

    def set_default_url(self, source: SessionSource) -> None:
        self.default_url = lab_url_for(source.notebook) if source.notebook else "/lab"


class ERCSpawner(ERCSessionMixin, DockerSpawner):
    """A session in the ERC's runtime image on the Docker engine of ``client`` (see the
    module)."""

    working_copy_dir = Unicode(
        "/home/jovyan/work",
        help="""Where the working copy is mounted in the container, and JupyterLab's root.
        (default: /home/jovyan/work).""",
    ).tag(config=True)

    working_copy_uid = Int(
        NB_UID,
        help="Owner (uid and gid) of the working copy's files: the image's notebook user. "
        "(default: 1000).",
    ).tag(config=True)

    working_copy_volume = Unicode(
        "erchub-work-{username}--{servername}",
        help="""Name of the Docker volume of a server's working copy: a template of
        DockerSpawner's volume names ({username}, {servername}, ...: escaped, so that two
        servers never share a name), rendered by format_volume_name. Default:
        erchub-work-{username}--{servername}.""",
    ).tag(config=True)

    pids_limit = Int(
        1024,
        help="Largest number of processes in a session container (0: no limit) (default: 1024).",
    ).tag(config=True)

    workspace_image = Unicode(
        "",
        help="""The authoring image of users' workspaces (their default servers): an image on
        the sessions' Docker engine with jupyterhub-singleuser, JupyterLab and erchub's
        extensions. Empty: erchub builds it from ``workspace_environment`` on the first start
        (minutes) and reuses it after. (default: "").""",
    ).tag(config=True)

    workspace_environment = Unicode(
        DEFAULT_WORKSPACE_ENVIRONMENT,
        help="""Folder of repo2docker environment files (requirements.txt, runtime.txt, ...)
        the authoring image is built from when ``workspace_image`` is empty, as a compendium's
        runtime image is (on the base image, with JupyterLab and erchub's extensions).
        (default: erchub's own, the common scientific Python stack: numpy, scipy, pandas,
        matplotlib).""",
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
        return SESSION_MEM_LIMIT

    @default("cpu_limit")
    def _default_cpu_limit(self) -> float:
        return SESSION_CPU_LIMIT

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
        """The working copy's volume, named as DockerSpawner names volumes (as its
        certificates' volume in ``move_certs``)."""
        return str(self.format_volume_name(self.working_copy_volume, self))

    #: the working copy of a fresh volume, copied into the container when it is created
    _working_copy_tar: Path | None = None
    #: DockerSpawner's trait (a bare annotation: for the type checker, as this class sets it)
    volumes: dict[str, Any]

    async def start(self) -> Any:
        self.begin_progress()
        try:
            return await self._start_session()
        except docker.errors.DockerException as exc:
            raise SessionError(
                "Docker could not start the session; try again later",
                reason="docker",
                log_message=f"Docker could not start {self.user.name}'s server "
                f"{self.name!r}: {exc}",
                status_code=500,
            ) from exc
        finally:
            self._working_copy_tar = None
            self.end_progress()

    async def _start_session(self) -> tuple[str, int]:
        # the scratch directory holds a fresh volume's files until create_object copies them
        async with scratch_directory() as scratch:
            await self.prepare_session(scratch)
            self.report(f"Starting JupyterLab in {self.image}", 85)
            ip, port = await super().start()
        self.report("Waiting for JupyterLab to answer", 90)
        await self.wait_until_answering(ip, port)
        return ip, port

    async def prepare_session(self, scratch: Path) -> None:
        """Everything of a start before the container: image, working copy, default URL."""
        if self.target.kind is SessionKind.WORKSPACE:
            await self.check_network()
            await self.prepare_workspace(scratch)
        else:
            await self.prepare_compendium_session(scratch)
        self.notebook_dir = self.working_copy_dir
        self.mount_working_copy()

    async def prepare_compendium_session(self, scratch: Path) -> None:
        """A session of a compendium: its runtime image, the working copy of its files, its
        main (or the job's) notebook as the default URL."""
        _network, source = await asyncio.gather(self.check_network(), self.describe_source())
        image, fresh = await asyncio.gather(self.known_image(source.version), self.volume_missing())
        if image is None or fresh:
            fetched = await self.fetch_compendium(source, scratch)
            if image is None:
                image = await self.runtime_image(fetched.root, scratch, version=source.version)
            if fresh:
                await self.prepare_working_copy(fetched, scratch)
        else:
            self.report("Reusing your working copy from the last session", 80)
        self.image = image
        self.set_default_url(source)

    async def prepare_workspace(self, scratch: Path) -> None:
        """The user's workspace: the authoring image, their volume (empty on the first
        start, theirs after), JupyterLab's launcher as the default URL."""
        image, fresh = await asyncio.gather(self.authoring_image(scratch), self.volume_missing())
        if fresh:
            empty = scratch / "workspace"
            await asyncio.get_running_loop().run_in_executor(None, empty.mkdir)
            source = SessionSource("", "workspace", "", "")
            await self.prepare_working_copy(FetchedCompendium(source, empty, {}), scratch)
        else:
            self.report("Opening your workspace", 80)
        self.image = image
        self.default_url = "/lab"

    async def authoring_image(self, scratch: Path) -> str:
        """``workspace_image`` when it is set (it must exist), else the image of
        ``workspace_environment``: reused when this hub built or found it, else built (or
        found) by the builder, as a compendium's runtime image is."""
        if self.workspace_image:
            try:
                await self.docker("inspect_image", self.workspace_image)
            except docker.errors.NotFound:
                raise SessionError(
                    "workspaces cannot start on this hub now: their image is missing",
                    reason="config",
                    log_message=f"ERCSpawner.workspace_image {self.workspace_image} is not an "
                    "image of the sessions' Docker engine",
                    status_code=500,
                ) from None
            return self.workspace_image
        version = f"{WORKSPACE_ENVIRONMENT}@{self.workspace_environment}"
        image = await self.known_image(version)
        if image is not None:
            return image
        self.report("Preparing the authoring image of your workspace", 10)
        # the builder reads a copy: the configured folder may not be the hub's to write
        environment = scratch / "environment"
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, shutil.copytree, self.workspace_environment, environment
            )
        except OSError as exc:
            raise SessionError(
                "workspaces cannot start on this hub now: their environment is missing",
                reason="config",
                log_message=f"ERCSpawner.workspace_environment {self.workspace_environment} "
                f"cannot be read: {exc}",
                status_code=500,
            ) from None
        return await self.runtime_image(
            environment, scratch, WORKSPACE_ENVIRONMENT, version=version
        )

    async def known_image(self, version: str) -> str | None:
        """The image this hub built or found for ``version`` (of a compendium, or of the
        authoring environment), if it is still there."""
        image = _IMAGES.get(version)
        if image is None:
            return None
        try:
            await self.docker("inspect_image", image)
        except docker.errors.NotFound:
            del _IMAGES[version]
            return None
        self.report(f"Reusing the runtime image {image}", 60)
        return image

    async def runtime_image(
        self, root: Path, scratch: Path, environment: str | None = None, *, version: str = ""
    ) -> str:
        """The runtime image of the compendium at ``root`` (or with ``environment``, of the
        bare environment folder ``root``), built on this spawner's engine: the builder gets
        its own configuration and this spawner's ``client_kwargs`` and ``tls_config``. With
        ``version``, the image is remembered for it (:meth:`known_image`)."""
        loop = asyncio.get_running_loop()
        problem = ""
        if self.builder_config_file and not await loop.run_in_executor(
            None, os.path.isfile, self.builder_config_file
        ):
            problem = f"ERCSpawner.builder_config_file {self.builder_config_file} is missing"
        try:
            text = builder_config(self.builder_config_file, self.client_kwargs, self.tls_config)
        except ValueError as exc:
            problem = str(exc)
        if problem:
            raise SessionError(
                "the hub cannot build runtime images: its configuration has a problem",
                reason="config",
                log_message=problem,
                status_code=500,
            )
        config = scratch / "builder_config.py"
        await loop.run_in_executor(None, config.write_text, text)
        image = await build_image(self, builder_command(config, root, environment), root)
        if version:
            _IMAGES[version] = image
        return image

    async def prepare_working_copy(self, fetched: FetchedCompendium, scratch: Path) -> None:
        """The working copy as a tar file, and its volume: made only once the image is there,
        so that a failed build leaves nothing behind."""
        new = "working copy of the compendium" if fetched.source.compendium_id else "workspace"
        self.report(f"Preparing your {new}", 80)
        self._working_copy_tar = await asyncio.get_running_loop().run_in_executor(
            None,
            write_working_copy_tar,
            fetched,
            scratch / "working-copy.tar",
            self.working_copy_dir,
            self.working_copy_uid,
        )
        labels = {
            SESSION_LABEL: "working-copy" if fetched.source.compendium_id else "workspace",
            "org.erchub.user": self.user.name,
            "org.erchub.server": self.name,
        }
        if fetched.source.compendium_id:
            labels["org.erchub.compendium"] = fetched.source.compendium_id
        await self.docker("create_volume", self.volume_name, labels=labels)

    def mount_working_copy(self) -> None:
        """The working copy's volume joins ``volumes``, next to the operator's: DockerSpawner
        renders its name, binds it with them, and adds ``read_only_volumes`` and the
        internal-SSL certificates (``volume_binds``)."""
        volumes = {
            key: bind for key, bind in self.volumes.items() if key != self.working_copy_volume
        }
        taken = {
            self.format_volume_name(bind["bind"] if isinstance(bind, dict) else bind, self)
            for bind in (*volumes.values(), *self.read_only_volumes.values())
        }
        if self.working_copy_dir in taken:
            raise SessionError(
                "the hub's configuration does not let sessions start",
                reason="config",
                log_message=f"ERCSpawner.working_copy_dir {self.working_copy_dir} is also the "
                "mount point of one of DockerSpawner.volumes or read_only_volumes",
                status_code=500,
            )
        self.volumes = {**volumes, self.working_copy_volume: self.working_copy_dir}

    async def check_network(self) -> None:
        try:
            await self.docker("inspect_network", self.network_name)
        except docker.errors.NotFound:
            raise SessionError(
                "sessions cannot start on this hub now; try again later",
                reason="docker",
                log_message=f"the Docker network {self.network_name} of sessions is missing; "
                "restart the hub (its configuration creates it)",
                status_code=500,
            ) from None
        except docker.errors.DockerException as exc:
            raise SessionError(
                "sessions cannot start on this hub now; try again later",
                reason="docker",
                log_message=f"the Docker engine cannot be reached: {exc}",
                status_code=500,
            ) from None

    async def get_url(self) -> str:
        """The server's URL, found from its container. JupyterHub asks this at its start of a
        server that runs: after a restart that cut the server's start short, the hub's database
        has no address for it yet, and the hub would wait ``http_timeout`` at a wrong one
        before it stopped a server that works (DockerSpawner trusts the database)."""
        ip, port = await self.get_ip_and_port()
        found = Server(proto=self.server.proto, ip=ip, port=port, base_url=self.server.base_url)
        return str(found.url)

    async def volume_missing(self) -> bool:
        try:
            await self.docker("inspect_volume", self.volume_name)
        except docker.errors.NotFound:
            return True
        return False

    async def create_object(self) -> Any:
        created = await super().create_object()
        if self._working_copy_tar is not None:
            # Copied into the created container: docker writes through to the fresh volume,
            # with the notebook user's ownership, whichever engine and host run it; streamed
            # from the file, in DockerSpawner's executor thread.
            parent = posixpath.dirname(self.working_copy_dir.rstrip("/"))
            stream = await asyncio.get_running_loop().run_in_executor(
                None, self._working_copy_tar.open, "rb"
            )
            try:
                await self.docker("put_archive", created["Id"], parent, stream)
            finally:
                stream.close()
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
                "LocalERCSpawner (development only): %s's server %r runs in the hub's Python "
                "environment, not in the ERC's runtime image, without isolation",
                self.user.name,
                self.name,
            )
            loop = asyncio.get_running_loop()
            if self.target.kind is SessionKind.WORKSPACE:
                await loop.run_in_executor(
                    None, partial(self.working_copy.mkdir, parents=True, exist_ok=True)
                )
                self.default_url = "/lab"
            else:
                source = await self.describe_source()
                if not await loop.run_in_executor(None, self.working_copy.exists):
                    async with scratch_directory() as scratch:
                        fetched = await self.fetch_compendium(source, scratch)
                        self.report("Preparing your working copy of the compendium", 60)
                        await loop.run_in_executor(
                            None, copy_working_copy, fetched, self.working_copy
                        )
                self.set_default_url(source)
            self.notebook_dir = str(self.working_copy)
            self.report("Starting JupyterLab (local process, development only)", 90)
            ip, port = await super().start()
            await self.wait_until_answering(ip, port)
            return ip, port
        finally:
            self.end_progress()


def check_user_options(spawner: Spawner, user_options: Any) -> None:
    """JupyterHub's apply_user_options hook: options that do not fit the server (the default
    server is the workspace, a named server opens one compendium or job) are the request's
    fault, before anything starts: a 400 whose reason the user sees, on the error page at once
    and on the server's page after (JupyterHub shows an error's ``jupyterhub_message``)."""
    try:
        check_guest_target(spawner.user.name, parse_user_options(user_options, spawner.name))
    except InvalidSessionOptions as exc:
        error = web.HTTPError(400, str(exc))
        error.jupyterhub_message = str(exc)  # type: ignore[attr-defined]
        raise error from None


def _api_message(error: HTTPClientError) -> str:
    """The erc service's ``message`` of an error response, else the HTTP reason."""
    body = error.response.body if error.response is not None else b""
    try:
        return str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        return str(error.message or error)
