"""The server extension's application: its settings, its kernel pool and its erc API client.

Every setting is a trait of :class:`ERCHubExtension` (``c.ERCHubExtension.<name>`` in a
jupyter-server config file). The hub's spawner sets the environment the defaults read:
``ERCHUB_API_URL`` (the erc API, e.g. ``http://hub:8000/services/erc/api/v1``),
``JUPYTERHUB_API_TOKEN`` (this server's token, sent to the erc API as the user),
``ERCHUB_COMPENDIUM_ID`` and ``ERCHUB_JOB_ID`` (the ERC and job the session was launched for),
``ERCHUB_REVIEW_LINK`` (the review link the session's compendium is seen through, when the
session was started through one), ``JUPYTERHUB_USER`` (the session's user),
``ERCHUB_AUTHOR_NAME`` and ``ERCHUB_AUTHOR_ORCID`` (the user's name and ORCID iD from the
login, when known: the authors proposed when publishing).
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_server.extension.application import ExtensionApp
from traitlets import Float, Int, Unicode, default

from erchub.extensions.client import ErcClient, ErcServiceError, path_of
from erchub.extensions.handlers import all_handlers
from erchub.extensions.kernels import KernelPool
from erchub.extensions.publishing import LaunchedCompendium, launched_of


class ERCHubExtension(ExtensionApp):
    """erchub's endpoints in a single-user server: parameters, runs, publishing, erc API."""

    name = "erchub"

    erc_api_url = Unicode(
        help="""URL of the erc service's API (…/services/erc/api/v1), empty when there is none:
        then publishing and the erc proxies answer 503 (default: $ERCHUB_API_URL, else empty).""",
    ).tag(config=True)

    api_token = Unicode(
        help="""Token sent to the erc API (``Authorization: token …``) on the user's behalf.
        (default: $JUPYTERHUB_API_TOKEN, else empty (no Authorization header)).""",
    ).tag(config=True)

    compendium_id = Unicode(
        None,
        allow_none=True,
        help="""Id of the compendium this session was launched for, None for none.
        (default: $ERCHUB_COMPENDIUM_ID).""",
    ).tag(config=True)

    job_id = Unicode(
        None,
        allow_none=True,
        help="""Id of the job this session was launched for, None for none.
        (default: $ERCHUB_JOB_ID).""",
    ).tag(config=True)

    review_link = Unicode(
        None,
        allow_none=True,
        help="""Id of the review link this session was started through (a reviewer's session of
        a candidate they see only through the link), None for none. Every request about the
        session's compendium to the erc service carries it (``?link=``): reading it and its
        metadata, and starting its checks (default: $ERCHUB_REVIEW_LINK).""",
    ).tag(config=True)

    session_user = Unicode(
        help="""Name of the hub user this server belongs to: the author of what it publishes,
        compared with a launched compendium's author. Empty: the server's authenticated user.
        (default: $JUPYTERHUB_USER, else empty).""",
    ).tag(config=True)

    author_name = Unicode(
        help="""The user's name as the login knows it, proposed as the first author when
        publishing; empty for none (default: $ERCHUB_AUTHOR_NAME, else empty).""",
    ).tag(config=True)

    author_orcid = Unicode(
        help="""The user's ORCID iD from the login (bare, 0000-0002-1825-0097), proposed with
        the first author when publishing; empty for none
        (default: $ERCHUB_AUTHOR_ORCID, else empty).""",
    ).tag(config=True)

    cell_timeout = Float(
        600.0,
        help="Seconds one cell of a run may take before the run fails (422) (default: 600).",
    ).tag(config=True)

    kernel_startup_timeout = Float(
        60.0,
        help="Seconds a kernel may take to start and answer (default: 60).",
    ).tag(config=True)

    api_timeout = Float(
        60.0,
        help="Seconds a request to the erc API may take (uploads aside) (default: 60).",
    ).tag(config=True)

    upload_timeout = Float(
        600.0,
        help="Seconds the upload of a workspace to the erc API may take (default: 600).",
    ).tag(config=True)

    warm_kernels = Int(
        1,
        help="""Started kernels kept ready per (kernel name, working directory), so that a run
        with new values does not wait for a kernel to start. A kernel runs one notebook only
        (every run gets a fresh one, as papermill does); a replacement is started in the
        background. 0 starts a kernel per run (default: 1).""",
    ).tag(config=True)

    warm_kernel_folders = Int(
        2,
        help="""How many (kernel name, working directory) pairs keep warm kernels; the pair used
        least recently lets its kernels go when another one comes (default: 2).""",
    ).tag(config=True)

    @default("erc_api_url")
    def _erc_api_url_default(self) -> str:
        return os.environ.get("ERCHUB_API_URL", "")

    @default("api_token")
    def _api_token_default(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    @default("compendium_id")
    def _compendium_id_default(self) -> str | None:
        return os.environ.get("ERCHUB_COMPENDIUM_ID") or None

    @default("review_link")
    def _review_link_default(self) -> str | None:
        return os.environ.get("ERCHUB_REVIEW_LINK") or None

    @default("session_user")
    def _session_user_default(self) -> str:
        return os.environ.get("JUPYTERHUB_USER", "")

    @default("author_name")
    def _author_name_default(self) -> str:
        return os.environ.get("ERCHUB_AUTHOR_NAME", "")

    @default("author_orcid")
    def _author_orcid_default(self) -> str:
        return os.environ.get("ERCHUB_AUTHOR_ORCID", "")

    @default("job_id")
    def _job_id_default(self) -> str | None:
        return os.environ.get("ERCHUB_JOB_ID") or None

    def initialize_settings(self) -> None:
        assert self.serverapp is not None  # the server links the extension before this
        self.kernel_pool = KernelPool(
            size=self.warm_kernels,
            folders=self.warm_kernel_folders,
            startup_timeout=self.kernel_startup_timeout,
            kernel_spec_manager=self.serverapp.kernel_spec_manager or KernelSpecManager(),
            log=self.log,
        )
        self.erc_client = (
            ErcClient(self.erc_api_url, self.api_token, self.api_timeout)
            if self.erc_api_url
            else None
        )
        #: compendia this server published, by the folder (relative to the root) they came from
        self.published: dict[str, str] = {}
        #: the launched compendium as the erc service described it, once asked
        self.launched: LaunchedCompendium | None = None
        if self.erc_client is None:
            self.log.info("erchub: no erc service (ERCHUB_API_URL unset): publishing is off")

    def initialize_handlers(self) -> None:
        self.handlers.extend(all_handlers())

    async def stop_extension(self) -> None:
        await self.kernel_pool.shutdown()
        if self.erc_client is not None:
            self.erc_client.close()

    async def launched_compendium(self) -> LaunchedCompendium | None:
        """The compendium the session was launched for (None for none), asked of the erc
        service once; ErcServiceError when it cannot be asked (or there is no service)."""
        if self.compendium_id is None:
            return None
        if self.launched is None:
            if self.erc_client is None:
                raise ErcServiceError(503, "no erc service: ERCHUB_API_URL is unset")
            shown = await self.erc_client.json(
                "GET",
                path_of("compendium", self.compendium_id),
                query=self.link_query(self.compendium_id),
            )
            self.launched = launched_of(self.compendium_id, shown)
        return self.launched

    def link_query(self, compendium_id: str) -> dict[str, str] | None:
        """The query arguments of a request to the erc service about ``compendium_id`` that
        its review link grants (reading it, its metadata, its download, a check job):
        ``{"link": id}`` for the session's compendium in a session started through a review
        link, else None. A link names one compendium: the service answers 404 to it for any
        other, so it is never sent with another."""
        if self.review_link is None or compendium_id != self.compendium_id:
            return None
        return {"link": self.review_link}

    def user_of(self, current_user: Any) -> str:
        """The session's user: ``session_user``, else the name of the request's user."""
        return self.session_user or str(getattr(current_user, "username", "") or "")

    def session_context(self, user: str) -> dict[str, Any]:
        """What ``GET erchub/context`` answers: the session's ERC and job, whether the ERC is
        seen through a review link (``review_link``), whether an erc service is configured,
        and the session's ``user``."""
        return {
            "compendium_id": self.compendium_id,
            "job_id": self.job_id,
            "review_link": self.review_link is not None,
            "erc_service": self.erc_client is not None,
            "user": user,
        }
