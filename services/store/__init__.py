"""The store of compendia and jobs; :func:`open_store` picks the backend by the URL's scheme.

- ``sqlite:///path/to/erchub.sqlite`` (the embedded default; the folder is created),
- ``postgresql+psycopg://user:password@host:5432/database`` (``postgresql://`` means the same),
- ``mongodb://...`` or ``mongodb+srv://...`` (the database named in the URL's path, else
  ``erchub``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from erchub.redact import redact_url as redact
from erchub.services.store.base import (
    MAX_SEARCH_TEXT,
    WORKER_LOST,
    CompendiumQuery,
    CompendiumRecord,
    Conflict,
    JobChanges,
    JobQuery,
    JobRecord,
    JobRunning,
    LinkMode,
    LinkRecord,
    SearchHit,
    ShipmentChanges,
    ShipmentRecord,
    ShipmentStatus,
    StepTiming,
    Store,
    StoreError,
    doi_of,
    search_fields,
)

SCHEMES = ("sqlite", "postgresql+psycopg", "postgresql", "mongodb", "mongodb+srv")
DEFAULT_MONGODB_DATABASE = "erchub"


def default_db_url(data_dir: str) -> str:
    """The embedded default store: a SQLite file in the data directory."""
    return f"sqlite:///{Path(data_dir).resolve() / 'erchub.sqlite'}"


def open_store(db_url: str) -> Store:
    """The store at ``db_url``, its schema brought up to date (SQL) or its indexes made (MongoDB).

    Raises ValueError for a URL no backend takes, :class:`StoreError` when the database cannot
    be used. Messages never show the URL's password.
    """
    scheme = db_url.partition("://")[0].lower() if "://" in db_url else ""
    if scheme == "sqlite":
        from erchub.services.store.sql import SqlStore

        database = sa.make_url(db_url).database
        if database in (None, "", ":memory:"):
            raise ValueError(f"a SQLite store needs a file: sqlite:///PATH, not {db_url}")
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        return SqlStore(db_url)
    if scheme in ("postgresql", "postgresql+psycopg"):
        from erchub.services.store.sql import SqlStore

        return SqlStore("postgresql+psycopg://" + db_url.partition("://")[2])
    if scheme in ("mongodb", "mongodb+srv"):
        import pymongo

        from erchub.services.store.mongo import MongoStore

        try:
            client: pymongo.MongoClient[Any] = pymongo.MongoClient(db_url)
        except pymongo.errors.ConfigurationError as exc:
            raise ValueError(f"bad MongoDB URL {redact(db_url)}: {redact(str(exc))}") from None
        name = client.get_default_database(DEFAULT_MONGODB_DATABASE).name
        return MongoStore(client, name)
    raise ValueError(
        f"unsupported store URL {redact(db_url)!r}: use one of "
        + ", ".join(f"{s}://" for s in SCHEMES)
    )


__all__ = [
    "DEFAULT_MONGODB_DATABASE",
    "MAX_SEARCH_TEXT",
    "SCHEMES",
    "WORKER_LOST",
    "CompendiumQuery",
    "CompendiumRecord",
    "Conflict",
    "JobChanges",
    "JobQuery",
    "JobRecord",
    "JobRunning",
    "LinkMode",
    "LinkRecord",
    "SearchHit",
    "ShipmentChanges",
    "ShipmentRecord",
    "ShipmentStatus",
    "StepTiming",
    "Store",
    "StoreError",
    "doi_of",
    "open_store",
    "search_fields",
]
