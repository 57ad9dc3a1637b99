"""Launch links: a reviewer's way into an ERC.

- ``GET launch/{compendium_id}``
- ``GET launch/doi/{doi}``: the compendium visible to the caller whose metadata records the
  DOI (``identifier.doi``); when there is none, the DOI is loaded with the loader (resolved
  through the DOI handle API to its Zenodo record; see :mod:`erchub.services.exchange.loader`)
  into a new compendium of the caller (which needs ``custom:erc:create``), and that is launched. A
  compendium loaded from a public repository is public from the start (not a candidate):
  what anyone can download from there is no draft, and the next reviewer with the same link
  launches the same compendium instead of loading it again. One load per DOI runs at a time
  in the service; the loader's errors are pages of their status (403 host not allowed, 404
  unknown DOI or record, 400 no archive, 413 too large, 502 unreachable).
- ``GET launch/git?url=URL&ref=REF`` and the short forms ``GET launch/PREFIX/ORG/REPO[/REF]``
  of the hosts in ``loader_git_hosts`` (as Binder's ``/v2/gh/ORG/REPO/REF``; gh, gl and cb by
  default): the ref (default: the default branch) is resolved to its commit; a compendium of
  that commit visible to the caller is launched, else the commit is loaded
  (:mod:`erchub.services.exchange.git`, which needs ``custom:erc:create``) into a new public
  compendium of the caller, as for a DOI. The loader's errors are pages of their status.

A browser without identity goes through the hub's login and comes back. The compendium must be
visible to the caller (else the 404 page; nothing is spawned). The service then starts the
caller's named server of that ERC through the hub's REST API, ``user_options`` naming the
compendium, and sends the browser to the hub's progress page, which ends in JupyterLab with
the main notebook open. A session already running is opened at once; one starting is followed.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from typing import Any
from urllib.parse import quote

from jupyterhub.utils import url_path_join
from tornado import web

from erchub.errors import ErchubError, Unavailable
from erchub.services.exchange.git import short_form_url
from erchub.services.exchange.loading import (
    find_git_compendium,
    load_compendium,
    load_git_compendium,
    resolve_git,
)
from erchub.services.exchange.o2r import GIT_KIND
from erchub.services.exchange.sources import LoaderSettings, Source, normalize_doi
from erchub.services.handlers.base import SCOPE_CREATE, SCOPE_READ, domain_status, needs_scope
from erchub.services.handlers.pages import PageHandler
from erchub.services.hub import hub_api
from erchub.services.store import CompendiumQuery, CompendiumRecord
from erchub.sessions import server_name_for

#: one load per DOI at a time: a second reviewer waits and launches what the first loaded
_doi_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
_SPACES = re.compile(r"\s+")
#: the longest repository URL of a launch link
MAX_GIT_URL = 4096
#: launch/PREFIX/ORG/REPO (then /REF, or the default branch): a group/sub ORG comes encoded
_SHORT_FORM = r"launch/(?P<prefix>[A-Za-z0-9]+)/(?P<org>[^/]+)/(?P<repo>[^/]+)"


def display_name_of(record: CompendiumRecord) -> str | None:
    """The session's display name in the hub: the compendium's title, made valid for
    JupyterHub (printable, single spaces, at most 255 characters), else None."""
    title = record.metadata.get("title")
    if not isinstance(title, str):
        return None
    # line breaks and other white space become spaces; other unprintables go
    kept = "".join(ch if ch.isprintable() else " " if ch.isspace() else "" for ch in title)
    return _SPACES.sub(" ", kept).strip()[:255].strip() or None


class BaseLaunchHandler(PageHandler):
    async def hub_api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """A request to the hub's REST API with the service's own token (it may start users'
        servers: role erc-service): status and parsed body; 502 when the hub does not answer."""
        try:
            return await hub_api(self.hub_auth).request(method, path, body)
        except Unavailable as error:
            raise web.HTTPError(502, str(error)) from None

    async def launch(self, record: CompendiumRecord) -> None:
        user = self.username
        server_name = server_name_for(record.id)
        escaped_user = quote(user, safe="")
        pending_page = url_path_join(self.hub_url, "spawn-pending", escaped_user, server_name)
        status, model = await self.hub_api("GET", f"/users/{escaped_user}")
        if status != 200 or not isinstance(model, dict):
            raise web.HTTPError(502, f"the hub answered {status} when asked about {user}")
        server = (model.get("servers") or {}).get(server_name)
        if server and server.get("ready"):
            self.redirect(server["url"])
            return
        if server and server.get("pending") == "spawn":
            self.redirect(pending_page)
            return
        if server and server.get("pending"):
            raise web.HTTPError(
                409, f"your session of {record.id} is {server['pending']}ing; try again shortly"
            )
        options = {"compendium": record.id}
        if self.review_link is not None:
            # the session sees the compendium through the link, and ends with it
            options["link"] = self.review_link.id
        body: dict[str, Any] = {"user_options": options}
        display_name = display_name_of(record)
        if display_name:
            body["display_name"] = display_name
        self.log.info("launching %s for %s as server %s", record.id, user, server_name)
        status, answer = await self.hub_api(
            "POST", f"/users/{escaped_user}/servers/{server_name}", body
        )
        if status in (201, 202):
            self.redirect(pending_page)
            return
        message = answer.get("message") if isinstance(answer, dict) else None
        self.log.warning("the hub refused to start %s for %s: %s %s", server_name, user,
                         status, message)  # fmt: skip
        if 400 <= status < 500:
            raise web.HTTPError(409, f"the hub cannot start this session: {message or status}")
        raise web.HTTPError(502, f"the hub could not start this session ({status})")


class LaunchHandler(BaseLaunchHandler):
    #: launching through a review link (``?link=``): its reviewers' sessions
    link_methods = frozenset({"GET"})
    guest_methods = frozenset({"GET"})
    counts_link_use = True

    @needs_scope(SCOPE_READ)
    async def get(self, compendium_id: str) -> None:
        self.check_arguments()
        await self.launch(await self.visible_compendium(compendium_id))


class DOILaunchHandler(BaseLaunchHandler):
    @needs_scope(SCOPE_READ)
    async def get(self, doi: str) -> None:
        self.check_arguments()
        normalized = normalize_doi(doi)
        if normalized is None:
            raise web.HTTPError(400, f"{doi.strip()[:80]!r} is not a DOI (10.NNNN/suffix)")
        record = await self.find(normalized)
        if record is None:
            lock = _doi_locks.setdefault(normalized, asyncio.Lock())
            async with lock:
                record = await self.find(normalized) or await self.load(normalized)
        await self.launch(record)

    async def find(self, doi: str) -> CompendiumRecord | None:
        query = CompendiumQuery(viewer=self.viewer, doi=doi, limit=1)
        found, _total = await self.blocking(self.store.list_compendia, query)
        return found[0] if found else None

    async def load(self, doi: str) -> CompendiumRecord:
        """The DOI loaded into a new public compendium of the caller."""
        user = self.require(SCOPE_CREATE)
        try:
            compendium_id = await load_compendium(
                LoaderSettings.of(self.service),
                self.store,
                self.service.data_dir,
                Source("doi", doi),
                user,
                limits=self.service.archive_limits,
                candidate=False,
                log=self.log,
            )
        except ErchubError as error:
            status = domain_status(error) or 400
            reason = self.error_message(status, (type(error), error, None))
            raise web.HTTPError(
                status,
                "no compendium here has the DOI %s, and it cannot be loaded: %s",
                doi,
                reason,
            ) from None
        self.log.info("compendium %s loaded from DOI %s for %s", compendium_id, doi, user)
        record = await self.blocking(self.store.get_compendium, compendium_id)
        if record is None:  # deleted in the meantime
            raise web.HTTPError(404, f"the compendium loaded from {doi} is gone")
        return record


class GitLaunchHandler(BaseLaunchHandler):
    """``launch/git?url=URL&ref=REF``: a git repository's commit."""

    @needs_scope(SCOPE_READ)
    async def get(self) -> None:
        self.check_arguments(["url", "ref"])
        url = self.get_query_argument("url", "").strip()
        if not url or len(url) > MAX_GIT_URL:
            raise web.HTTPError(400, f"url: a git repository's URL of at most {MAX_GIT_URL} "
                                "characters is needed")  # fmt: skip
        await self.launch_git(url, self.text_argument("ref"))

    async def launch_git(self, url: str, ref: str | None) -> None:
        """Launch the compendium of the commit ``ref`` names, loaded first if there is none."""
        settings = LoaderSettings.of(self.service)
        try:
            resolved = await resolve_git(settings, Source(GIT_KIND, url, ref=ref), self.log)
            record = await self.blocking(find_git_compendium, self.store, self.viewer, resolved)
            if record is None:
                user = self.require(SCOPE_CREATE)
                compendium_id, _reused = await load_git_compendium(
                    settings,
                    self.store,
                    self.service.data_dir,
                    resolved,
                    user,
                    limits=self.service.archive_limits,
                    candidate=False,
                    log=self.log,
                )
                self.log.info("compendium %s of %s at %s for %s", compendium_id,
                              resolved.git_url, resolved.commit, user)  # fmt: skip
                record = await self.blocking(self.store.get_compendium, compendium_id)
        except ErchubError as error:
            status = domain_status(error) or 400
            reason = self.error_message(status, (type(error), error, None))
            raise web.HTTPError(
                status, "the git repository %s cannot be launched: %s", url, reason
            ) from None
        if record is None:  # deleted in the meantime
            raise web.HTTPError(404, f"the compendium loaded from {url} is gone")
        await self.launch(record)


class GitShortLaunchHandler(GitLaunchHandler):
    """``launch/PREFIX/ORG/REPO[/REF]``: a repository of a configured git host."""

    @needs_scope(SCOPE_READ)
    async def get(  # type: ignore[override]
        self, prefix: str, org: str, repo: str, ref: str | None = None
    ) -> None:
        self.check_arguments()
        try:
            url = short_form_url(self.service.loader_git_hosts, prefix, org, repo)
        except ErchubError as error:
            raise web.HTTPError(domain_status(error) or 400, str(error)) from None
        await self.launch_git(url, ref)


default_handlers = [
    (r"launch/doi/(?P<doi>.+)", DOILaunchHandler),
    (r"launch/git", GitLaunchHandler),
    (_SHORT_FORM + r"/(?P<ref>.+)", GitShortLaunchHandler),
    (_SHORT_FORM, GitShortLaunchHandler),
    (r"launch/(?P<compendium_id>[^/]+)", LaunchHandler),
]
