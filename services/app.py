"""The `erc` hub service: a tornado application that JupyterHub runs as a managed service.

It serves the compendium/job/search API under ``<service prefix>api/v1`` and never executes
a job itself: it starts ``worker_count`` ``erchub worker`` processes (restarting any that
exit); the workers re-queue the jobs of a lost worker. Every setting is a trait, set in
``erchub_service_config.py`` or through an ``ERCHUB_<TRAIT>`` environment variable (upper
case: ``ERCHUB_DB_URL``, ``ERCHUB_UPLOAD_LIMIT``, ...).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jupyterhub.services.auth import HubAuth, HubOAuthCallbackHandler
from jupyterhub.utils import url_path_join
from tornado import httpserver, ioloop, web
from traitlets import Any as AnyTrait
from traitlets import Bool, Dict, Float, Int, Integer, List, TraitError, Unicode, default, validate
from traitlets import Set as SetTrait
from traitlets.config import Application
from traitlets.config.loader import ArgumentError

from erchub import __version__
from erchub.archive import DEFAULT_LIMITS, ArchiveLimits
from erchub.errors import ErchubError
from erchub.processes import end_with_parent
from erchub.redact import install_log_redaction
from erchub.services.compendia import files as compendia
from erchub.services.compendia.links import is_active
from erchub.services.exchange.shipping import SHIPMENTS_DIRECTORY
from erchub.services.exchange.sources import DEFAULT_GIT_HOSTS
from erchub.services.handlers import api_handlers, monitoring_handlers, page_handlers
from erchub.services.handlers.base import MAX_JSON_BODY, NotFoundHandler
from erchub.services.handlers.pages import NotFoundPageHandler
from erchub.services.hub import end_review_sessions, hub_api
from erchub.services.store import StoreError, default_db_url, open_store
from erchub.settings import DataDirMixin, env_setting

GIB = 1024**3
#: seconds between the looks, while the service stops, whether its answers are all done
DRAIN_POLL = 0.05
#: tasks the service started in the background, held until they are done (the event loop keeps
#: only weak references to tasks)
_BACKGROUND: set[asyncio.Task[None]] = set()


# How settings keep their values: @validate applies them to configured values, and the
# @default methods to theirs (traitlets validates no default through @validate).


def _no_trailing_slash(url: object) -> str:
    return str(url).rstrip("/")


def _trailing_slash(url: object) -> str:
    text = str(url)
    return text if text.endswith("/") else text + "/"


def _host_names(hosts: Iterable[object]) -> list[str]:
    names = (str(host).strip().lower() for host in hosts)
    return [name for name in names if name]


class ERCService(DataDirMixin, Application):
    name = "erchub-service"
    version = __version__
    description = "The erc hub service: compendium, job and search API (see erchub README)."

    config_file = Unicode(
        help="Python config file to load, if it exists; workers load it too (default: "
        "$ERCHUB_CONFIG_FILE, else erchub_service_config.py in the working directory)."
    ).tag(config=True)

    @default("config_file")
    def _default_config_file(self) -> str:
        return self._env("config_file", "erchub_service_config.py")

    # data_dir: DataDirMixin's (the workers get it as --data-dir)

    db_url = Unicode(
        help="Store URL: sqlite:///PATH, postgresql+psycopg://USER:PASSWORD@HOST/DB or "
        "mongodb://HOST/DB (default: $ERCHUB_DB_URL, else sqlite:///<data_dir>/erchub.sqlite)."
    ).tag(config=True)

    @default("db_url")
    def _default_db_url(self) -> str:
        return self._env("db_url", default_db_url(self.data_dir))

    upload_limit = Integer(
        min=1,
        help="Largest upload accepted, in bytes; larger ones get 413 (default: "
        "$ERCHUB_UPLOAD_LIMIT, else 2 GiB).",
    ).tag(config=True)

    @default("upload_limit")
    def _default_upload_limit(self) -> int:
        return self._env("upload_limit", 2 * GIB)

    # How far an uploaded or loaded archive may expand (erchub.archive.ArchiveLimits): an
    # archive past a limit is refused with a 400 naming the member and the limit, before
    # anything past it is written, and nothing of it is left.

    archive_max_depth = Integer(
        min=1,
        help="Deepest path (folders below the compendium's top, plus the file) an uploaded or "
        "loaded archive may hold; deeper ones get 400 (default: $ERCHUB_ARCHIVE_MAX_DEPTH, "
        "else 64).",
    ).tag(config=True)

    @default("archive_max_depth")
    def _default_archive_max_depth(self) -> int:
        return self._env("archive_max_depth", DEFAULT_LIMITS.max_depth)

    archive_max_size = Integer(
        min=1,
        help="Most bytes the members of an uploaded or loaded archive may hold together, "
        "expanded (as their headers declare them; a zip member that yields more is refused "
        "too); a larger archive gets 400 (default: $ERCHUB_ARCHIVE_MAX_SIZE, else 2 GiB).",
    ).tag(config=True)

    @default("archive_max_size")
    def _default_archive_max_size(self) -> int:
        return self._env("archive_max_size", DEFAULT_LIMITS.max_total_size)

    archive_max_ratio = Float(
        min=1.0,
        help="Most expanded bytes per byte of an uploaded or loaded archive file (its "
        "compression ratio): past it the archive is refused as a zip bomb, 400 (default: "
        "$ERCHUB_ARCHIVE_MAX_RATIO, else 200).",
    ).tag(config=True)

    @default("archive_max_ratio")
    def _default_archive_max_ratio(self) -> float:
        return self._env("archive_max_ratio", DEFAULT_LIMITS.max_ratio)

    archive_max_members = Integer(
        min=1,
        help="Most entries (files, folders and links) an uploaded or loaded archive may hold; "
        "more get 400 (default: $ERCHUB_ARCHIVE_MAX_MEMBERS, else 50000).",
    ).tag(config=True)

    @default("archive_max_members")
    def _default_archive_max_members(self) -> int:
        return self._env("archive_max_members", DEFAULT_LIMITS.max_members)

    @property
    def archive_limits(self) -> ArchiveLimits:
        """How far an uploaded or loaded archive may expand (the archive_max_* settings)."""
        return ArchiveLimits(
            max_total_size=self.archive_max_size,
            max_ratio=self.archive_max_ratio,
            max_members=self.archive_max_members,
            max_depth=self.archive_max_depth,
        )

    stale_upload_age = Float(
        help="Seconds after which what an upload, a staging or a deletion left in "
        "<data_dir>/uploads is removed at the service's start, a service killed mid-upload "
        "(default: $ERCHUB_STALE_UPLOAD_AGE, else 3600).",
    ).tag(config=True)

    @default("stale_upload_age")
    def _default_stale_upload_age(self) -> float:
        return self._env("stale_upload_age", 3600.0)

    # -- loading (o2r loader) and Zenodo -------------------------------------------------------

    zenodo_url = Unicode(
        help="Base URL of Zenodo (or of a compatible InvenioRDM site): its records API is "
        "<zenodo_url>/api/records/<id>, its record pages <zenodo_url>/records/<id>; kept "
        "without a trailing slash (default: $ERCHUB_ZENODO_URL, else https://zenodo.org)."
    ).tag(config=True)

    @default("zenodo_url")
    def _default_zenodo_url(self) -> str:
        return _no_trailing_slash(self._env("zenodo_url", "https://zenodo.org"))

    zenodo_sandbox_url = Unicode(
        help="Base URL of the Zenodo sandbox, kept without a trailing slash (default: "
        "$ERCHUB_ZENODO_SANDBOX_URL, else https://sandbox.zenodo.org)."
    ).tag(config=True)

    @default("zenodo_sandbox_url")
    def _default_zenodo_sandbox_url(self) -> str:
        return _no_trailing_slash(self._env("zenodo_sandbox_url", "https://sandbox.zenodo.org"))

    @validate("zenodo_url", "zenodo_sandbox_url")
    def _validate_base_url(self, proposal: Any) -> str:
        return _no_trailing_slash(proposal["value"])

    doi_resolver_url = Unicode(
        help="The DOI handle API, to which the DOI is appended: answers "
        '{"responseCode": 1, "values": [{"type": "URL", ...}]}; kept with a trailing slash '
        "(default: $ERCHUB_DOI_RESOLVER_URL, else https://doi.org/api/handles/)."
    ).tag(config=True)

    @default("doi_resolver_url")
    def _default_doi_resolver_url(self) -> str:
        return _trailing_slash(self._env("doi_resolver_url", "https://doi.org/api/handles/"))

    @validate("doi_resolver_url")
    def _validate_doi_resolver_url(self, proposal: Any) -> str:
        return _trailing_slash(proposal["value"])

    loader_allowed_hosts = List(
        Unicode(),
        help="Host names the loader may download from, for share_url and for every redirect "
        "(403 for others); '*.example.org' allows the subdomains of example.org. The hosts of "
        "zenodo_url, zenodo_sandbox_url and doi_resolver_url are always allowed; kept in "
        "lower case (default: $ERCHUB_LOADER_ALLOWED_HOSTS, comma-separated, else zenodo.org, "
        "www.zenodo.org, sandbox.zenodo.org, doi.org, dx.doi.org).",
    ).tag(config=True)

    @default("loader_allowed_hosts")
    def _default_loader_allowed_hosts(self) -> list[str]:
        return _host_names(
            self._env(
                "loader_allowed_hosts",
                ["zenodo.org", "www.zenodo.org", "sandbox.zenodo.org", "doi.org", "dx.doi.org"],
            )
        )

    @validate("loader_allowed_hosts")
    def _validate_loader_allowed_hosts(self, proposal: Any) -> list[str]:
        return _host_names(proposal["value"])

    loader_download_limit = Integer(
        min=1,
        help="Largest download the loader accepts, in bytes: a larger declared size is "
        "refused before the download, a download that grows past it is stopped; both are "
        "413 (default: $ERCHUB_LOADER_DOWNLOAD_LIMIT, else the upload_limit).",
    ).tag(config=True)

    @default("loader_download_limit")
    def _default_loader_download_limit(self) -> int:
        return self._env("loader_download_limit", self.upload_limit)

    loader_timeout = Float(
        min=0.1,
        help="Seconds one request of the loader may take, a whole download included (502 when "
        "it takes longer), and a cloud share's whole WebDAV walk; connecting may take at most "
        "30 of them (default: $ERCHUB_LOADER_TIMEOUT, else 600).",
    ).tag(config=True)

    @default("loader_timeout")
    def _default_loader_timeout(self) -> float:
        return self._env("loader_timeout", 600.0)

    loader_git_hosts = Dict(
        value_trait=Unicode(),
        key_trait=Unicode(),
        help="Short forms of git launch links, as Binder's /v2/gh/ORG/REPO/REF: a prefix "
        "(launch/PREFIX/ORG/REPO/REF) mapped to a repository URL template with {org} and "
        "{repo}; the hosts of the templates are allowed to the loader. Prefixes 'doi' and "
        "'git' are taken by other launch links (default: $ERCHUB_LOADER_GIT_HOSTS as JSON, "
        "else gh, gl and cb for github.com, gitlab.com and codeberg.org).",
    ).tag(config=True)

    @default("loader_git_hosts")
    def _default_loader_git_hosts(self) -> dict[str, str]:
        return dict(self._env("loader_git_hosts", DEFAULT_GIT_HOSTS))

    @validate("loader_git_hosts")
    def _validate_loader_git_hosts(self, proposal: Any) -> dict[str, str]:
        hosts = dict(proposal["value"])
        for prefix, template in hosts.items():
            if prefix in ("doi", "git") or not prefix.isalnum():
                raise TraitError(f"loader_git_hosts: {prefix!r} cannot be a prefix")
            if "{org}" not in template or "{repo}" not in template:
                raise TraitError(f"loader_git_hosts: {template!r} needs {{org}} and {{repo}}")
        return hosts

    loader_git_max_files = Integer(
        min=1,
        help="Most files a git repository's commit (submodules included) may hold; more are "
        "413 (default: $ERCHUB_LOADER_GIT_MAX_FILES, else 50000).",
    ).tag(config=True)

    @default("loader_git_max_files")
    def _default_loader_git_max_files(self) -> int:
        return self._env("loader_git_max_files", 50_000)

    loader_git_submodules = Bool(
        help="Whether the loader fetches a git repository's submodules (from the hosts it "
        "allows, within the same limits); if not, a commit with submodules is refused with "
        "400 naming them (default: $ERCHUB_LOADER_GIT_SUBMODULES, else false).",
    ).tag(config=True)

    @default("loader_git_submodules")
    def _default_loader_git_submodules(self) -> bool:
        return bool(self._env("loader_git_submodules", False))

    loader_webdav_max_files = Integer(
        min=1,
        help="Most files and folders a WebDAV folder or cloud share (share_url) may hold, all "
        "levels counted; more are 413 (default: $ERCHUB_LOADER_WEBDAV_MAX_FILES, else 50000).",
    ).tag(config=True)

    @default("loader_webdav_max_files")
    def _default_loader_webdav_max_files(self) -> int:
        return self._env("loader_webdav_max_files", 50_000)

    loader_webdav_max_depth = Integer(
        min=1,
        help="Most levels of folders a WebDAV folder or cloud share (share_url) may nest, in "
        "folders (1: no subfolders); deeper is 413 (default: $ERCHUB_LOADER_WEBDAV_MAX_DEPTH, "
        "else 32).",
    ).tag(config=True)

    @default("loader_webdav_max_depth")
    def _default_loader_webdav_max_depth(self) -> int:
        return self._env("loader_webdav_max_depth", 32)

    worker_count = Int(
        min=0,
        help="Number of `erchub worker` processes the service starts and keeps running; 0 "
        "when an operator runs workers elsewhere against the same store and data directory "
        "(default: $ERCHUB_WORKER_COUNT, else 1).",
    ).tag(config=True)

    @default("worker_count")
    def _default_worker_count(self) -> int:
        return self._env("worker_count", 1)

    worker_command = List(
        Unicode(),
        help="Command that starts one worker; the service appends --data-dir and --db-url "
        "(default: this Python running `-m erchub worker`).",
    ).tag(config=True)

    @default("worker_command")
    def _default_worker_command(self) -> list[str]:
        return [sys.executable, "-m", "erchub", "worker"]

    supervise_interval = Float(
        min=0.1,
        help="Seconds between the service's checks for exited workers (default: "
        "$ERCHUB_SUPERVISE_INTERVAL, else 5).",
    ).tag(config=True)

    @default("supervise_interval")
    def _default_supervise_interval(self) -> float:
        return self._env("supervise_interval", 5.0)

    network_for_everyone = Bool(
        help="""Whether every job's starter holds the grant of network, as if they held the
        scope custom:erc:network: a compendium whose erc.yml asks for network then runs with it
        wherever the workers allow networked executions (JobRunner.allow_network); off, only
        the holders of the scope (a role or group an operator grants it to) and erc
        administrators hold it (default: $ERCHUB_NETWORK_FOR_EVERYONE, else False).""",
    ).tag(config=True)

    @default("network_for_everyone")
    def _default_network_for_everyone(self) -> bool:
        return self._env("network_for_everyone", False)

    review_guests = Bool(
        help="""Whether a review link may be opened without an account: the hub makes the
        visitor a guest that lives as long as the link (the hub's authenticator must allow it
        too: erchub.hub.config.configure_review_guests sets both) (default:
        $ERCHUB_REVIEW_GUESTS, else False).""",
    ).tag(config=True)

    @default("review_guests")
    def _default_review_guests(self) -> bool:
        return self._env("review_guests", False)

    stop_grace = Float(
        min=0,
        help="""Seconds the service, told to stop (SIGTERM, SIGINT), lets the requests it is
        answering finish before it closes every connection; answers meanwhile say
        ``Connection: close``. Keep it below the grace the orchestrator gives before SIGKILL
        (Docker's stop_grace_period, 10 s by default) (default: $ERCHUB_STOP_GRACE, else
        5).""",
    ).tag(config=True)

    @default("stop_grace")
    def _default_stop_grace(self) -> float:
        return self._env("stop_grace", 5.0)

    review_sweep_interval = Float(
        min=0.1,
        help="""Seconds between the service's looks for review links that ended (expired,
        revoked, deleted): the sessions launched through them are stopped and their guests
        deleted then; a revocation is acted on at once (default:
        $ERCHUB_REVIEW_SWEEP_INTERVAL, else 5).""",
    ).tag(config=True)

    @default("review_sweep_interval")
    def _default_review_sweep_interval(self) -> float:
        return self._env("review_sweep_interval", 5.0)

    authenticate_prometheus = Bool(
        help="""Whether the service's Prometheus metrics (<base_url>metrics) need the hub's
        scope read:metrics, as JupyterHub.authenticate_prometheus guards the hub's /hub/metrics
        (custom:erc:admin stands for it); off, whoever reaches the service reads them, without
        a token (default: $ERCHUB_AUTHENTICATE_PROMETHEUS, else True).""",
    ).tag(config=True)

    @default("authenticate_prometheus")
    def _default_authenticate_prometheus(self) -> bool:
        return self._env("authenticate_prometheus", True)

    metrics_step_window = Int(
        min=1,
        help="How many of the newest ended jobs the metrics' step durations cover: their steps "
        "are read at every scrape, so this bounds a scrape's cost (default: "
        "$ERCHUB_METRICS_STEP_WINDOW, else 200).",
    ).tag(config=True)

    @default("metrics_step_window")
    def _default_metrics_step_window(self) -> int:
        return self._env("metrics_step_window", 200)

    bind_url = Unicode(
        help="Where the service listens (default: $JUPYTERHUB_SERVICE_URL, set by the hub for "
        "a managed service, else http://127.0.0.1:10101)."
    ).tag(config=True)

    @default("bind_url")
    def _default_bind_url(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_URL") or "http://127.0.0.1:10101"

    base_url = Unicode(
        help="URL prefix of the service (default: $JUPYTERHUB_SERVICE_PREFIX, else /services/erc/)."
    ).tag(config=True)

    @default("base_url")
    def _default_base_url(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/services/erc/"

    store = AnyTrait(help="The open Store (set at start).")
    workers: list[subprocess.Popen[bytes]]
    answering = SetTrait(
        help="The handlers of the requests being answered (BaseHandler adds and removes itself)."
    )
    #: told to stop: no new connections, and answers close theirs
    draining = False
    #: the review links in force at the last look (None: no look yet since the start), and
    #: the ended ones whose sessions and guests are stopped and deleted
    _links_seen: frozenset[str] | None = None
    _links_ended: frozenset[str] = frozenset()
    _sweeping: asyncio.Lock | None = None

    def _env(self, name: str, fallback: Any) -> Any:
        """The value of $ERCHUB_<NAME> for the trait ``name``, else ``fallback``."""
        return env_setting(name, self.traits()[name], fallback)

    @property
    def api_prefix(self) -> str:
        return url_path_join(self.base_url, "api/v1")

    def initialize(self, argv: list[str] | None = None) -> None:
        super().initialize(argv)
        # tornado reports malformed requests and uncaught errors on its own loggers
        for name in ("tornado.general", "tornado.application"):
            tornado_log = logging.getLogger(name)
            tornado_log.handlers = list(self.log.handlers)
            tornado_log.setLevel(self.log.level)
            tornado_log.propagate = False
        if self.config_file and os.path.exists(self.config_file):
            self.load_config_file(self.config_file)
        # Once logging is configured (a config file may reconfigure it): no log line of the
        # service shows a token (tornado's warnings and JupyterHub's carry request URIs).
        install_log_redaction([self.log])
        # Every setting is read now, so that a bad value stops the start with its message.
        for name in self.class_trait_names(config=True):
            getattr(self, name)
        self.workers = []
        for sub in ("compendia", "jobs", "uploads"):
            os.makedirs(os.path.join(self.data_dir, sub), exist_ok=True)
        self.store = open_store(self.db_url)

    def cookie_secret(self) -> bytes:
        """Kept in the data directory so that browser sessions survive a restart."""
        path = Path(self.data_dir) / "cookie_secret"
        if not path.exists():
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as stream:
                stream.write(secrets.token_hex(32))
        return bytes.fromhex(path.read_text().strip())

    def make_app(self) -> web.Application:
        handlers: list[Any] = [
            (url_path_join(self.api_prefix, pattern), handler)
            for pattern, handler in api_handlers()
        ]
        handlers += [
            (url_path_join(self.base_url, pattern), handler)
            for pattern, handler in [*monitoring_handlers(), *page_handlers()]
        ]
        handlers += [
            (url_path_join(self.base_url, "oauth_callback"), HubOAuthCallbackHandler),
            (url_path_join(self.api_prefix, ".*"), NotFoundHandler),
        ]
        return web.Application(
            handlers,
            erc_service=self,
            cookie_secret=self.cookie_secret(),
            log_function=self._log_request,
            default_handler_class=NotFoundPageHandler,
        )

    def _log_request(self, handler: web.RequestHandler) -> None:
        status = handler.get_status()
        level = self.log.error if status >= 500 else self.log.info
        if status < 400 and handler.request.method == "GET":
            level = self.log.debug
        # The path only: query strings may carry a ?token=
        level(
            "%s %s %s %.1fms",
            status,
            handler.request.method,
            handler.request.path,
            1000 * handler.request.request_time(),
        )

    # -- workers -------------------------------------------------------------------------------

    def start_worker(self) -> subprocess.Popen[bytes]:
        command = [*self.worker_command, "--data-dir", self.data_dir, "--db-url", self.db_url]
        if self.config_file and os.path.exists(self.config_file):
            # Worker settings (timeouts, runtime limits) live in the same config file.
            command += ["--config", self.config_file]
        # Workers need the store, not the hub: they do not get the service's hub token.
        env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
        process = subprocess.Popen(command, env=env, preexec_fn=_end_with_parent)
        self.log.info("started worker pid %d", process.pid)
        return process

    def supervise(self) -> None:
        """Restart workers that exited (the workers themselves re-queue lost jobs)."""
        for index, process in enumerate(self.workers):
            code = process.poll()
            if code is not None:
                self.log.warning("worker pid %d exited with %s; restarting", process.pid, code)
                self.workers[index] = self.start_worker()

    async def end_review_links(self) -> None:
        """Stop the sessions of review links that ended since the last look, and delete their
        guests (see :func:`~erchub.services.hub.end_review_sessions`). The hub is asked only
        when a link ended (revoked, expired) that was not acted on yet, or a link in force at
        the last look is gone (its compendium deleted); a failure is logged and tried again."""
        auth = HubAuth()
        if not auth.api_token:  # not run by a hub
            return
        if self._sweeping is None:
            self._sweeping = asyncio.Lock()
        async with self._sweeping:
            found = await asyncio.get_running_loop().run_in_executor(None, self.store.list_links)
            now = time.time()
            active = frozenset(link.id for link in found if is_active(link, now))
            ended = frozenset(link.id for link in found) - active
            if (
                self._links_seen is not None
                and ended <= self._links_ended
                and self._links_seen <= active | ended
            ):
                self._links_seen = active
                return
            try:
                done = await end_review_sessions(hub_api(auth), ended, active, self.log)
            except ErchubError as error:
                self.log.warning("the sessions of ended review links are not stopped: %s", error)
                return
            if done:
                self._links_seen, self._links_ended = active, ended

    def review_links_ended(self) -> None:
        """A review link was revoked: act on it now, not at the next look."""
        task = asyncio.get_running_loop().create_task(self.end_review_links())
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    def stop_workers(self) -> None:
        for process in self.workers:
            process.terminate()
        deadline = time.monotonic() + 20
        for process in self.workers:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
        self.workers = []

    def sweep_shipments(self) -> int:
        """Remove what shipments, downloads and bag reads left in <data_dir>/shipments (the bag
        of a service killed while it packed or sent one: a shipment to Zenodo killed mid-upload
        is recorded nowhere, and the user ships again). Replicas of the service share the data
        directory: only what a process that is gone left goes (its folder's mark,
        :class:`~erchub.services.exchange.shipping.WorkFolder`), and unmarked entries after
        :attr:`stale_upload_age`. Returns how many entries went."""
        shipments = Path(self.data_dir) / SHIPMENTS_DIRECTORY
        return compendia.sweep_entries(shipments, self.stale_upload_age)

    # -- running -------------------------------------------------------------------------------

    def start(self) -> None:
        if os.environ.get("JUPYTERHUB_SERVICE_NAME"):
            _end_with_the_hub()
        asyncio.run(self.serve())

    async def serve(self) -> None:
        url = urlparse(self.bind_url)
        server = httpserver.HTTPServer(
            self.make_app(),
            xheaders=True,
            # Handlers lift this for themselves and answer a body past their limit with a
            # JSON 413 (BaseHandler.start_body); this bounds what any other route reads.
            max_body_size=MAX_JSON_BODY,
            # A keep-alive connection left idle this long (s) is closed: tornado's default,
            # stated because the proxy relies on it. configurable-http-proxy closes the
            # connections it keeps after 60 s idle (config/proxy/chp.mjs), long before, so it
            # never lends one that the service is closing (a 503 "socket hang up").
            idle_connection_timeout=3600,
        )
        swept = await asyncio.get_running_loop().run_in_executor(
            None, compendia.sweep_uploads, self.data_dir, self.stale_upload_age
        )
        if swept:
            self.log.info("removed %d stale entries of uploads/", swept)
        swept = await asyncio.get_running_loop().run_in_executor(None, self.sweep_shipments)
        if swept:
            self.log.info("removed %d entries of shipments/ left by an earlier run", swept)
        server.listen(url.port or 80, url.hostname or "127.0.0.1")
        self.log.info(
            "erc service at %s%s (%d workers)",
            self.bind_url.rstrip("/"),
            self.base_url,
            self.worker_count,
        )
        self.workers = [self.start_worker() for _ in range(self.worker_count)]
        supervisor = ioloop.PeriodicCallback(self.supervise, self.supervise_interval * 1000)
        supervisor.start()
        sweeper = ioloop.PeriodicCallback(self.end_review_links, self.review_sweep_interval * 1000)
        sweeper.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        self.log.info("stopping: %d requests being answered", len(self.answering))
        await self.drain(server)
        supervisor.stop()
        sweeper.stop()
        await loop.run_in_executor(None, self.stop_workers)
        self.store.close()

    async def drain(self, server: httpserver.HTTPServer) -> None:
        """Stop taking connections, let the requests being answered finish (at most
        :attr:`stop_grace` seconds), then close every connection, the idle ones a proxy keeps
        alive among them. They close now, while this replica's network is up: the proxy's
        pool drops them, where it would otherwise lend one to a request that nothing answers
        any more, reset when the process ends (README, "Past one machine")."""
        server.stop()
        self.draining = True
        deadline = time.monotonic() + self.stop_grace
        while self.answering and time.monotonic() < deadline:
            await asyncio.sleep(DRAIN_POLL)
        if self.answering:
            self.log.warning(
                "stopping: %d requests still being answered after %.0f s are cut short",
                len(self.answering),
                self.stop_grace,
            )
        await server.close_all_connections()


def _end_with_parent() -> None:
    """In a worker, between fork and exec: SIGTERM it when the service ends, however the
    service ends (killed too), as it is when the service stops: the worker re-queues its job
    and exits, and the next service's workers take the job. Without this a killed service
    leaves its workers running beside the next one's."""
    end_with_parent(signal.SIGTERM)


def _end_with_the_hub() -> None:
    """In a service the hub runs: SIGTERM it when the hub ends, however the hub ends. The hub
    stops its services at an orderly end, but starts them in a session of their own, so a
    crashed hub (SIGKILL, out of memory) would leave this service holding its port and its
    workers, and the next hub's service could never listen. The service stops as on any
    SIGTERM: its workers re-queue their jobs. A hub that ended before this call left the
    service to init: it exits at once."""
    if not end_with_parent(signal.SIGTERM):
        sys.exit("erchub-service: the hub that started this service has ended")


def main(argv: list[str] | None = None) -> None:
    try:
        ERCService.launch_instance(argv)
    except (TraitError, ArgumentError, ValueError, StoreError) as error:
        # A bad setting or an unreachable store: one line, no traceback.
        print(f"erchub-service: {error}", file=sys.stderr)
        sys.exit(2)
