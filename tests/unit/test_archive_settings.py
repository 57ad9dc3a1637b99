"""The archive and upload limits are the service's settings: each changes what an upload or a
load is refused for (400 for an archive past a limit, 413 for a body past the upload limit),
with a message naming the limit; a bad value stops the service at its start with one line."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from erchub.archive import DEFAULT_LIMITS, ArchiveLimits
from erchub.services.app import ERCService
from erchub.services.handlers.base import BaseHandler
from erchub.services.store import open_store
from tests.conftest import heading, write_notebook
from tests.unit.test_api_rules import PREFIX, FakeHubAuth, assert_json_error, call, listening

SETTINGS = ("ARCHIVE_MAX_SIZE", "ARCHIVE_MAX_RATIO", "ARCHIVE_MAX_MEMBERS", "ARCHIVE_MAX_DEPTH")


@pytest.fixture
def service_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in (*SETTINGS, "UPLOAD_LIMIT"):
        monkeypatch.delenv(f"ERCHUB_{name}", raising=False)
    monkeypatch.setenv("ERCHUB_DATA_DIR", str(tmp_path))
    return tmp_path


# -- the settings ------------------------------------------------------------------------------


def test_the_limits_default_to_the_archive_modules(service_env: Path) -> None:
    assert ERCService().archive_limits == DEFAULT_LIMITS


def test_the_limits_come_from_the_environment_and_the_config(
    service_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERCHUB_ARCHIVE_MAX_SIZE", "1000000")
    monkeypatch.setenv("ERCHUB_ARCHIVE_MAX_RATIO", "12.5")
    monkeypatch.setenv("ERCHUB_ARCHIVE_MAX_MEMBERS", "300")
    monkeypatch.setenv("ERCHUB_ARCHIVE_MAX_DEPTH", "7")
    assert ERCService().archive_limits == ArchiveLimits(1_000_000, 12.5, 300, 7)
    # a config file or the command line wins over the environment
    assert ERCService(archive_max_members=5).archive_limits.max_members == 5


def test_every_limit_has_a_help_text_naming_its_default() -> None:
    for name in ("archive_max_size", "archive_max_ratio", "archive_max_members"):
        trait = ERCService.class_traits()[name]
        assert trait.metadata.get("config") is True
        assert f"$ERCHUB_{name.upper()}" in trait.help and "default" in trait.help


# -- uploads and loads refused by them ---------------------------------------------------------


@asynccontextmanager
async def service_api(tmp_path: Path, **settings: Any) -> AsyncIterator[str]:
    """The service's application with ``settings`` on a port of 127.0.0.1: its API URL."""
    data_dir = tmp_path / "data"
    db_url = f"sqlite:///{data_dir / 'erchub.sqlite'}"
    service = ERCService(
        data_dir=str(data_dir), db_url=db_url, base_url="/services/erc/", worker_count=0, **settings
    )
    data_dir.mkdir(parents=True)
    service.store = open_store(db_url)
    service.workers = []
    try:
        async with listening(service.make_app()) as origin:
            yield f"{origin}{PREFIX}"
    finally:
        service.store.close()


@pytest.fixture(autouse=True)
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(BaseHandler, "hub_auth_class", FakeHubAuth)


def workspace_zip(tmp_path: Path, files: dict[str, bytes] | None = None) -> bytes:
    """A workspace archive: a notebook and ``files``, stored without compression unless a
    file's name ends in .txt."""
    notebook = write_notebook(tmp_path / "nb.ipynb", heading("# Limits\n\nA probe."), "x = 1")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("ws/main.ipynb", notebook.read_bytes())
        for name, data in (files or {}).items():
            method = zipfile.ZIP_DEFLATED if name.endswith(".txt") else zipfile.ZIP_STORED
            bundle.writestr(f"ws/{name}", data, compress_type=method)
    return buffer.getvalue()


async def post_upload(api: str, archive: bytes) -> httpx.Response:
    files = {"compendium": ("ws.zip", archive, "application/zip")}
    return await call(
        api, "POST", "/compendium", "alice-token", files=files, data={"content_type": "workspace"}
    )


#: four small files: five members with the notebook
FOUR_FILES = {f"data/{index}.csv": b"a,b\n1,2\n" for index in range(4)}
#: 200 kB of text that deflates to a few kB: a ratio of about 50 (within the default of 200)
TEXT = b"".join(b"row %06d of a table of measurements\n" % index for index in range(5600))


@pytest.mark.parametrize(
    ("settings", "files", "words"),
    [
        ({"archive_max_members": 3}, FOUR_FILES, "one more than the limit of 3 members"),
        ({"archive_max_size": 100_000}, {"big.bin": bytes(150_000)}, "limit of 100000 bytes"),
        ({"archive_max_ratio": 5.0}, {"table.txt": TEXT}, "5 times its own size"),
        ({"archive_max_depth": 3}, {"a/b/c/d.csv": b"1\n"}, "past the limit of 3"),
    ],
)
async def test_an_archive_past_a_configured_limit_is_a_400(
    tmp_path: Path, settings: dict[str, Any], files: dict[str, bytes], words: str
) -> None:
    archive = workspace_zip(tmp_path, files)
    async with service_api(tmp_path / "strict", **settings) as api:
        assert_json_error(await post_upload(api, archive), 400, words)
        uploads = tmp_path / "strict" / "data" / "uploads"
        assert [p.name for p in uploads.iterdir()] == [], "nothing of it is left"
    async with service_api(tmp_path / "default") as api:
        response = await post_upload(api, archive)
        assert response.status_code == 201, response.text


async def test_the_upload_limit_setting_is_a_413(tmp_path: Path) -> None:
    archive = workspace_zip(tmp_path, {"big.bin": bytes(20_000)})
    async with service_api(tmp_path / "small", upload_limit=10_000) as api:
        assert_json_error(await post_upload(api, archive), 413, "limit of 10000 bytes")
    async with service_api(tmp_path / "default") as api:
        assert (await post_upload(api, archive)).status_code == 201


async def test_a_load_is_refused_by_the_configured_limits_too(
    tmp_path: Path, fake_zenodo: Any
) -> None:
    record = fake_zenodo.add_record(files={"ws.zip": workspace_zip(tmp_path, FOUR_FILES)})
    zenodo = {
        "zenodo_url": fake_zenodo.url,
        "zenodo_sandbox_url": fake_zenodo.url,
        "doi_resolver_url": f"{fake_zenodo.url}/api/handles/",
        "loader_allowed_hosts": ["127.0.0.1"],
    }
    body = {"zenodo_record_id": str(record)}
    async with service_api(tmp_path / "strict", archive_max_members=3, **zenodo) as api:
        response = await call(api, "POST", "/compendium", "alice-token", json=body)
        assert_json_error(response, 400, "one more than the limit of 3 members")
    async with service_api(tmp_path / "default", **zenodo) as api:
        response = await call(api, "POST", "/compendium", "alice-token", json=body)
        assert response.status_code == 201, response.text
