"""The fault matrix's restarted database: PostgreSQL restarted while clients read and write
through the erc service. Requests during the restart get 503 (the database cannot be reached),
never a 500; once it is back, every request succeeds again (the pool's pre-ping replaces the
connections the restart cut)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from erchub.services.app import ERCService
from erchub.services.handlers.base import STORE_UNAVAILABLE_MESSAGE, BaseHandler
from erchub.services.store import open_store
from tests.store.conftest import postgres_schema
from tests.unit.test_api_rules import PREFIX, FakeHubAuth, listening, upload

pytestmark = pytest.mark.postgres

#: concurrent clients, and how long they go on after the restart (seconds)
CLIENTS = 8
AFTER = 5.0


def cluster() -> list[str]:
    """The local cluster's version and name (pg_lsclusters), to restart it with pg_ctlcluster;
    skips without one this test may restart."""
    if os.geteuid() != 0 or shutil.which("pg_ctlcluster") is None:
        pytest.skip("restarting PostgreSQL needs root and Debian's pg_ctlcluster")
    listed = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    ).stdout.split()
    if len(listed) < 2:
        pytest.skip("pg_lsclusters lists no local PostgreSQL cluster to restart")
    return listed[:2]


async def test_a_restarted_database_costs_503s_in_its_window_only(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version, name = cluster()
    monkeypatch.setattr(BaseHandler, "hub_auth_class", FakeHubAuth)
    with postgres_schema(postgres_url) as url:
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        service = ERCService(
            data_dir=str(data_dir), db_url=url, base_url="/services/erc/", worker_count=0
        )
        service.store = open_store(url)
        service.workers = []
        try:
            async with listening(service.make_app()) as origin:
                api = origin + PREFIX
                compendium_id = await upload(api, "alice-token", tmp_path)
                answers: list[tuple[float, int, str]] = []
                stop = asyncio.Event()

                async def client(index: int) -> None:
                    """Reads and writes until told to stop (bounded: 2,000 requests)."""
                    async with httpx.AsyncClient(
                        headers={"Authorization": "token alice-token"}, timeout=30
                    ) as http:
                        for turn in range(2000):
                            if stop.is_set():
                                return
                            if turn % 4 == index % 4:
                                response = await http.put(
                                    f"{api}/compendium/{compendium_id}/link",
                                    json={"mode": "open"},
                                )
                            else:
                                response = await http.get(f"{api}/compendium")
                            answers.append((time.monotonic(), response.status_code, response.text))
                            await asyncio.sleep(0.02)

                clients = [asyncio.create_task(client(index)) for index in range(CLIENTS)]
                await asyncio.sleep(1)
                restart_began = time.monotonic()
                restart = await asyncio.create_subprocess_exec(
                    "pg_ctlcluster", version, name, "restart"
                )
                assert await restart.wait() == 0
                restart_ended = time.monotonic()
                await asyncio.sleep(AFTER)
                stop.set()
                await asyncio.gather(*clients)
        finally:
            service.store.close()

    statuses = {status for _moment, status, _text in answers}
    assert statuses <= {200, 503}, sorted(statuses)
    unavailable = [text for _moment, status, text in answers if status == 503]
    assert all(STORE_UNAVAILABLE_MESSAGE in text for text in unavailable)
    # failures only inside the restart's window (and a second for the pool's pre-ping)
    late = [m for m, status, _ in answers if status != 200 and not m <= restart_ended + 1]
    assert not late, f"{len(late)} requests failed after the database was back"
    assert any(m > restart_ended + 1 for m, status, _ in answers if status == 200)
    assert any(m < restart_began for m, status, _ in answers if status == 200)
    report: dict[str, Any] = {"requests": len(answers), "503": len(unavailable)}
    print(report)
