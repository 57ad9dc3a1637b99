"""One store per backend for the contract suite: every test gets an empty one.

- ``sqlite``: a new file in the test's tmp_path;
- ``postgres`` (marker ``postgres``): a schema of this session on the server of ``postgres_url``
  (tests/conftest.py), its tables emptied before each test;
- ``mongomock``: a new in-memory client;
- ``mongodb``: a new database on the server of ERCHUB_TEST_MONGODB_URL, when that is set.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from erchub.services.store import Store, open_store
from erchub.services.store.mongo import MongoStore
from erchub.services.store.sql import SqlStore

BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    "mongomock",
    "mongodb",
]
SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextlib.contextmanager
def postgres_schema(server_url: str) -> Iterator[str]:
    """A URL whose connections work in a new, empty schema; the schema is dropped afterwards."""
    schema = f"erchub_test_{uuid.uuid4().hex[:12]}"
    # pre-ping: a test may restart the server while the schema is in use
    engine = sa.create_engine(server_url, pool_pre_ping=True)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = sa.make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_store_url(postgres_url: str) -> Iterator[str]:
    with postgres_schema(postgres_url) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_store(postgres_store_url: str) -> Iterator[SqlStore]:
    store = open_store(postgres_store_url)
    assert isinstance(store, SqlStore)
    yield store
    store.close()


def empty_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "TRUNCATE compendia, jobs, shipments, user_secrets, review_links RESTART IDENTITY"
            )
        )
    engine.dispose()


@pytest.fixture
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new SQL database, never opened, for tests that open it in other processes."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/store/erchub.sqlite"
    else:
        with postgres_schema(request.getfixturevalue("postgres_url")) as url:
            yield url


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backend = request.param
    if backend == "sqlite":
        sqlite = open_store(f"sqlite:///{tmp_path}/store/erchub.sqlite")
        yield sqlite
        sqlite.close()
    elif backend == "postgres":
        postgres = request.getfixturevalue("postgres_store")
        empty_postgres(request.getfixturevalue("postgres_store_url"))
        yield postgres
    elif backend == "mongomock":
        import mongomock

        yield MongoStore(mongomock.MongoClient(), "erchub_test")
    else:
        url = os.environ.get("ERCHUB_TEST_MONGODB_URL")
        if not url:
            pytest.skip("ERCHUB_TEST_MONGODB_URL is not set: no MongoDB server to test against")
        import pymongo

        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            url, serverSelectionTimeoutMS=5000
        )
        name = f"erchub_test_{uuid.uuid4().hex[:12]}"
        yield MongoStore(client, name)
        client.drop_database(name)
        client.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # indirect parametrisation: the test ids read test_x[sqlite], test_x[postgres], ...
    if "store" in metafunc.fixturenames:
        metafunc.parametrize("store", BACKENDS, indirect=True)
    elif "sql_url" in metafunc.fixturenames:
        metafunc.parametrize("sql_url", SQL_BACKENDS, indirect=True)
