"""A compendium from a source outside the hub: the loader downloads, the compendia room
ingests (o2r's loader, the whole way). A git repository's commit loads once: a compendium of
the same commit is found first (:func:`find_git_compendium`) and reused; another commit is a
new version of the loading user's newest compendium of that repository."""

from __future__ import annotations

import asyncio
import functools
import logging
import tempfile
import weakref
from pathlib import Path

from erchub import safefs
from erchub.archive import DEFAULT_LIMITS, ArchiveLimits
from erchub.services.compendia.files import UPLOADS_DIRECTORY
from erchub.services.compendia.operations import Relation, ingest_compendium, relation_metadata
from erchub.services.exchange.git import GitCommit, GitFetcher, git_origin
from erchub.services.exchange.loader import Loader
from erchub.services.exchange.sources import LoaderSettings, Source
from erchub.services.exchange.webdav import WebDavLoader, webdav_folder
from erchub.services.store import CompendiumQuery, CompendiumRecord, Store

#: one load of a repository's commit at a time in this process: a second request waits and
#: reuses what the first loaded
_git_locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
    weakref.WeakValueDictionary()
)


async def load_compendium(
    settings: LoaderSettings,
    store: Store,
    data_dir: str,
    source: Source,
    user: str,
    *,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    candidate: bool = True,
    log: logging.Logger | None = None,
) -> str:
    """Load ``source`` into a compendium of ``user``; its id: an archive, a record, or a
    WebDAV folder (a cloud share's link, :mod:`.webdav`). Raises the loader's LoadError (with
    its status), InvalidERC or UnsafeArchive; the download's folder goes whatever happens.
    Blocking work runs in the loop's executor."""
    folder = webdav_folder(source)
    loop = asyncio.get_running_loop()
    work = await loop.run_in_executor(None, _work_dir, Path(data_dir) / UPLOADS_DIRECTORY)
    loader = Loader(settings, log)
    try:
        if folder is not None:
            loaded = await WebDavLoader(loader).load(source, folder, work)
        else:
            loaded = await loader.load(source, work)
        ingest = functools.partial(
            ingest_compendium,
            store,
            loaded.archive,
            loaded.content_type,
            data_dir,
            user,
            limits=limits,
            metadata=loaded.metadata,
            candidate=candidate,
        )
        return await loop.run_in_executor(None, ingest)
    finally:
        loader.close()
        await loop.run_in_executor(None, safefs.remove_tree, work)


async def resolve_git(
    settings: LoaderSettings, source: Source, log: logging.Logger | None = None
) -> GitCommit:
    """The commit that a ``git_url`` source's ref names (one request to the repository's
    host, none when the host is not allowed). Raises the loader's LoadError."""
    fetcher = GitFetcher(settings, log)
    try:
        return await fetcher.resolve(source.value, source.ref)
    finally:
        fetcher.close()


def find_git_compendium(
    store: Store, viewer: str | None, resolved: GitCommit
) -> CompendiumRecord | None:
    """A compendium of the resolved commit that ``viewer`` can see (blocking: the store): the
    viewer's own candidate first, else the newest published one."""
    for candidate in (True, False):
        query = CompendiumQuery(
            viewer=viewer,
            candidate=candidate,
            git_url=resolved.git_url,
            git_commit=resolved.commit,
            limit=1,
        )
        found, _total = store.list_compendia(query)
        if found:
            return found[0]
    return None


def _newest_of_repository(store: Store, user: str, git_url: str) -> CompendiumRecord | None:
    """``user``'s newest compendium loaded from the repository (blocking: the store)."""
    newest: list[CompendiumRecord] = []
    for candidate in (True, False):
        query = CompendiumQuery(
            viewer=user, user=user, candidate=candidate, git_url=git_url, limit=1
        )
        found, _total = store.list_compendia(query)
        newest.extend(found)
    return max(newest, key=lambda record: record.created, default=None)


async def load_git_compendium(
    settings: LoaderSettings,
    store: Store,
    data_dir: str,
    resolved: GitCommit,
    user: str,
    *,
    content_type: str | None = None,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    candidate: bool = True,
    log: logging.Logger | None = None,
) -> tuple[str, bool]:
    """The compendium of a resolved commit: one ``user`` can see when there is one (reused,
    the second value True), else the commit fetched into a new compendium of ``user``, a new
    version of their newest one of the repository (if any). Raises as
    :func:`load_compendium`."""
    loop = asyncio.get_running_loop()
    lock = _git_locks.setdefault((resolved.git_url, resolved.commit), asyncio.Lock())
    async with lock:
        found = await loop.run_in_executor(None, find_git_compendium, store, user, resolved)
        if found is not None:
            return found.id, True
        previous = await loop.run_in_executor(
            None, _newest_of_repository, store, user, resolved.git_url
        )
        work = await loop.run_in_executor(None, _work_dir, Path(data_dir) / UPLOADS_DIRECTORY)
        fetcher = GitFetcher(settings, log)
        try:
            archive, found_type, submodules = await fetcher.fetch(resolved, work)
            metadata = git_origin(resolved, submodules=submodules)
            if previous is not None:
                metadata.update(relation_metadata(Relation.IS_NEW_VERSION_OF, previous, user))
            ingest = functools.partial(
                ingest_compendium,
                store,
                archive,
                content_type or found_type,
                data_dir,
                user,
                limits=limits,
                metadata=metadata,
                candidate=candidate,
            )
            return await loop.run_in_executor(None, ingest), False
        finally:
            fetcher.close()
            await loop.run_in_executor(None, safefs.remove_tree, work)


def _work_dir(uploads: Path) -> Path:
    """A private folder for one download, below uploads/ (swept at start if left behind)."""
    uploads.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="load-", dir=uploads))
