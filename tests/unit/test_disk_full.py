"""The fault matrix's full disk, for the erc service: its data directory on a small tmpfs of
the test's own. An upload that does not fit gets 507 with a plain message, a metadata change
on a full disk gets 507, and nothing stored before is damaged; the uploads are gone."""

from __future__ import annotations

import io
import os
import subprocess
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from erchub.errors import STORAGE_FULL_MESSAGE
from erchub.services.handlers.base import BaseHandler
from tests.unit.test_api_rules import (
    FakeHubAuth,
    assert_json_error,
    call,
    serving,
    upload,
)

#: the small file system's size (bytes)
DISK = 8 * 1024**2


@pytest.fixture
async def small_disk_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, Any]]:
    """The service's application with its data directory on a tmpfs of :data:`DISK` bytes."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the data directory needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(disk)], check=True)
    monkeypatch.setattr(BaseHandler, "hub_auth_class", FakeHubAuth)
    try:
        async with serving(disk) as (origin, service):
            yield f"{origin}/services/erc/api/v1", service
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def incompressible_zip(size: int) -> bytes:
    """A workspace zip with ``size`` bytes of random data besides a notebook."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as bundle:
        bundle.writestr("ws/main.ipynb", '{"cells": [], "metadata": {}, "nbformat": 4, '
                        '"nbformat_minor": 5}')  # fmt: skip
        bundle.writestr("ws/data.bin", os.urandom(size))
    return buffer.getvalue()


async def test_a_full_disk_refuses_with_507_and_damages_nothing(
    small_disk_api: tuple[str, Any], tmp_path: Path
) -> None:
    api, service = small_disk_api
    stored = await upload(api, "alice-token", tmp_path)
    before = await call(api, "GET", f"/compendium/{stored}.zip", "alice-token")
    metadata = (await call(api, "GET", f"/compendium/{stored}/metadata", "alice-token")).json()
    assert before.status_code == 200

    # an upload larger than the disk
    files = {"compendium": ("big.zip", incompressible_zip(DISK), "application/zip")}
    response = await call(
        api, "POST", "/compendium", "alice-token", files=files, data={"content_type": "workspace"}
    )
    assert_json_error(response, 507, STORAGE_FULL_MESSAGE)

    # an upload that arrives but does not fit once extracted
    files = {"compendium": ("half.zip", incompressible_zip(DISK // 2 + 1024), "application/zip")}
    response = await call(
        api, "POST", "/compendium", "alice-token", files=files, data={"content_type": "workspace"}
    )
    assert_json_error(response, 507, STORAGE_FULL_MESSAGE)

    # the disk filled to the last byte: a metadata change is refused, the old one kept
    filler = Path(service.data_dir) / "filler"
    with open(filler, "wb") as stream:
        try:
            while True:
                stream.write(b"\0" * 65536)
                stream.flush()
        except OSError:
            pass
    changed = {"o2r": {**metadata["metadata"]["o2r"], "title": "A changed title"}}
    response = await call(
        api, "PUT", f"/compendium/{stored}/metadata?publish=false", "alice-token", json=changed
    )
    assert_json_error(response, 507, STORAGE_FULL_MESSAGE)
    filler.unlink()

    after = await call(api, "GET", f"/compendium/{stored}.zip", "alice-token")
    assert after.status_code == 200
    assert sorted(zipfile.ZipFile(io.BytesIO(after.content)).namelist()) == sorted(
        zipfile.ZipFile(io.BytesIO(before.content)).namelist()
    )
    kept = await call(api, "GET", f"/compendium/{stored}/metadata", "alice-token")
    assert kept.json() == metadata
    listed = await call(api, "GET", "/compendium?candidate=true", "alice-token")
    assert listed.json()["results"] == [stored]
    assert os.listdir(Path(service.data_dir) / "uploads") == []
