"""Compendia from cloud-folder shares over WebDAV, against a real WebDAV server on 127.0.0.1
(wsgidav set up as ownCloud and Nextcloud serve public shares,
:mod:`tests.integration.webdav_server`): a nested folder loads byte for byte, a share with a
password, and every refusal with its status (403 wrong or missing password, 404 share gone,
403 host not allowed and never contacted, 413 too large, too many or too deep, 502 time-out).

The loader's domain function runs as the API calls it (:func:`load_compendium`), with a real
SQLite store and data directory; no Docker, no hub.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from erchub.services.compendia.files import compendium_path
from erchub.services.exchange.loading import load_compendium
from erchub.services.exchange.sources import LoaderSettings, parse_source
from erchub.services.store import Store, open_store
from tests.integration.git_server import EXAMPLE
from tests.integration.test_git_loading import (
    DOWNLOAD_LIMIT,
    TIMEOUT,
    USER,
    refusal,
    settings,
)
from tests.integration.webdav_server import WebDavServer

TOKEN = "aBcD3fGh1jKlMn0"


def example_folder(folder: Path, **extra: bytes) -> dict[str, bytes]:
    """The example compendium and ``extra`` files (paths with ``/``) written to ``folder``;
    every file by its path."""
    files = {path.name: path.read_bytes() for path in EXAMPLE.iterdir() if path.is_file()}
    files.update(extra)
    for name, data in files.items():
        target = folder.joinpath(*name.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return files


@dataclass
class Site:
    """A WebDAV server with its shares, and the service's store and data directory."""

    server: WebDavServer
    store: Store
    data_dir: Path
    folders: Path

    def folder(self, name: str) -> Path:
        folder = self.folders / name
        folder.mkdir()
        return folder

    def load(self, body: dict[str, Any], loader: LoaderSettings | None = None) -> str:
        """What POST /compendium does with a share_url body: parse, load."""
        source = parse_source(body)
        return asyncio.run(
            load_compendium(loader or settings(), self.store, str(self.data_dir), source, USER)
        )

    def refused(
        self, body: dict[str, Any], status: int, words: str, loader: LoaderSettings | None = None
    ) -> str:
        message = refusal(lambda: self.load(body, loader), status, words)
        compendia = self.data_dir / "compendia"
        assert not compendia.exists() or not any(compendia.iterdir()), "nothing made"
        return message

    def metadata(self, compendium_id: str) -> dict[str, Any]:
        record = self.store.get_compendium(compendium_id)
        assert record is not None
        return dict(record.metadata)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    folders = tmp_path / "shares"
    folders.mkdir()
    store = open_store(f"sqlite:///{tmp_path / 'store' / 'erchub.sqlite'}")
    try:
        with WebDavServer(folders) as server:
            yield Site(server, store, tmp_path / "data", folders)
    finally:
        store.close()


def test_a_nested_share_loads_every_file_byte_for_byte(site: Site) -> None:
    expected = example_folder(
        site.folder("paper"),
        **{
            "data/raw/values.csv": b"x,y\n1,2\n",
            "data/raw/deeper/noise.bin": os.urandom(300 * 1024),
            "data/Übersicht mit Leerzeichen.txt": "naïve\n".encode(),
            "data/empty.txt": b"",
        },
    )
    site.server.share(TOKEN, site.folders / "paper")
    link = site.server.link(TOKEN)

    compendium_id = site.load({"share_url": link})
    root = compendium_path(site.data_dir, compendium_id)
    for name, data in expected.items():
        assert (root / name).read_bytes() == data, name
    origin = site.metadata(compendium_id)["origin"]
    assert origin["kind"] == "share_url"
    assert origin["share_url"] == link
    assert origin["url"] == f"http://127.0.0.1:{site.server.port}/public.php/webdav/"
    # one listing per folder, one GET per file
    methods = [method for method, _ in site.server.requests]
    assert methods.count("PROPFIND") == 4
    assert methods.count("GET") == len(expected)
    uploads = site.data_dir / "uploads"
    assert not [p for p in uploads.iterdir() if p.name.startswith("load-")]


def test_a_share_with_a_password_loads_with_it_and_keeps_it_nowhere(site: Site) -> None:
    password = "s3cret-Pa55word"
    example_folder(site.folder("locked"), **{"data/values.csv": b"x\n1\n"})
    site.server.share(TOKEN, site.folders / "locked", password)
    link = site.server.link(TOKEN)

    compendium_id = site.load({"share_url": link, "password": password})
    root = compendium_path(site.data_dir, compendium_id)
    assert (root / "data" / "values.csv").read_bytes() == b"x\n1\n"
    assert password not in repr(site.metadata(compendium_id))
    for path in root.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path


def test_a_wrong_or_missing_password_is_403(site: Site) -> None:
    example_folder(site.folder("locked"))
    site.server.share(TOKEN, site.folders / "locked", "right")
    link = site.server.link(TOKEN)
    message = site.refused({"share_url": link, "password": "wrong"}, 403, "password is wrong")
    assert "wrong" not in message.replace("password is wrong", "")
    site.refused({"share_url": link}, 403, "protected by a password")


def test_a_share_that_is_gone_is_404(site: Site) -> None:
    site.refused({"share_url": site.server.link("NoSuchToken")}, 404, "share was not found")
    # the share is there, its folder removed
    example_folder(site.folder("removed"))
    site.server.share(TOKEN, site.folders / "removed")
    shutil.rmtree(site.folders / "removed")
    site.refused({"share_url": site.server.link(TOKEN)}, 404, "was not found")


def test_a_host_not_allowed_is_403_and_never_contacted(site: Site) -> None:
    example_folder(site.folder("elsewhere"))
    site.server.share(TOKEN, site.folders / "elsewhere")
    site.refused(
        {"share_url": site.server.link(TOKEN)},
        403,
        "host is not allowed: 127.0.0.1",
        loader=settings(allowed_hosts=("example.org",)),
    )
    assert site.server.requests == []


def test_an_oversized_share_is_413(site: Site) -> None:
    half = DOWNLOAD_LIMIT // 2 + 1024
    example_folder(site.folder("large"), **{"a.bin": b"a" * half, "data/b.bin": b"b" * half})
    site.server.share(TOKEN, site.folders / "large")
    link = site.server.link(TOKEN)
    # the sizes the listings declare are past the limit: refused before any file is read
    site.refused({"share_url": link}, 413, f"more than the loader's limit of {DOWNLOAD_LIMIT}")
    assert [method for method, _ in site.server.requests if method == "GET"] == []


def test_too_many_files_or_too_deep_folders_are_413(site: Site) -> None:
    example_folder(site.folder("many"), **{f"data/{n}.txt": b"%d" % n for n in range(30)})
    site.server.share(TOKEN, site.folders / "many")
    link = site.server.link(TOKEN)
    site.refused(
        {"share_url": link}, 413, "more than 20 files", loader=settings(webdav_max_files=20)
    )
    site.refused(
        {"share_url": link}, 413, "deeper than 1 levels", loader=settings(webdav_max_depth=1)
    )


def test_a_slow_server_is_502_within_the_time_out(site: Site) -> None:
    example_folder(site.folder("slow"))
    site.server.share(TOKEN, site.folders / "slow")
    site.server.delay = TIMEOUT + 5
    started = time.monotonic()
    site.refused({"share_url": site.server.link(TOKEN)}, 502, "time-out")
    elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT + 2, elapsed


def test_a_generic_webdav_folder_loads_with_user_and_password(site: Site) -> None:
    expected = example_folder(site.folder("dav"), **{"data/values.csv": b"x\n3\n"})
    site.server.share("grace", site.folders / "dav", "hopper")
    url = f"http://127.0.0.1:{site.server.port}/public.php/webdav"
    site.refused(
        {"share_url": url, "user": "grace", "password": "wrong"}, 403, "user name or password"
    )
    compendium_id = site.load({"share_url": url, "user": "grace", "password": "hopper"})
    root = compendium_path(site.data_dir, compendium_id)
    for name, data in expected.items():
        assert (root / name).read_bytes() == data, name
    origin = site.metadata(compendium_id)["origin"]
    assert (origin["share_url"], origin["url"]) == (url, url + "/")


def test_a_share_of_one_archive_loads_that_archive(site: Site) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in EXAMPLE.iterdir():
            if path.is_file():
                archive.write(path, f"paper/{path.name}")
    folder = site.folder("one-file")
    (folder / "paper.zip").write_bytes(buffer.getvalue())
    # a share of a single file: its WebDAV endpoint is the file itself
    site.server.share(TOKEN, folder / "paper.zip")
    compendium_id = site.load({"share_url": site.server.link(TOKEN)})
    root = compendium_path(site.data_dir, compendium_id)
    assert (root / "erc.yml").read_bytes() == (EXAMPLE / "erc.yml").read_bytes()
