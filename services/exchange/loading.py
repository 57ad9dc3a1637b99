"""A compendium from a source outside the hub: the loader downloads, the compendia room
ingests (o2r's loader, the whole way)."""

from __future__ import annotations

import asyncio
import functools
import logging
import tempfile
from pathlib import Path

from erchub import safefs
from erchub.archive import DEFAULT_LIMITS, ArchiveLimits
from erchub.services.compendia.files import UPLOADS_DIRECTORY
from erchub.services.compendia.operations import ingest_compendium
from erchub.services.exchange.loader import Loader
from erchub.services.exchange.sources import LoaderSettings, Source
from erchub.services.store import Store


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
    """Load ``source`` into a compendium of ``user``; its id. Raises the loader's LoadError
    (with its status), InvalidERC or UnsafeArchive; the download's folder goes whatever
    happens. Blocking work runs in the loop's executor."""
    loop = asyncio.get_running_loop()
    work = await loop.run_in_executor(None, _work_dir, Path(data_dir) / UPLOADS_DIRECTORY)
    loader = Loader(settings, log)
    try:
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


def _work_dir(uploads: Path) -> Path:
    """A private folder for one download, below uploads/ (swept at start if left behind)."""
    uploads.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="load-", dir=uploads))
