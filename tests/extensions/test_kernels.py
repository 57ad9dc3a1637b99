"""The warm kernel pool: kernels ready per (kernel, folder), fresh for every run, all shut
down with the server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import psutil

from erchub.extensions.kernels import KernelPool


async def gone(pid: int) -> bool:
    """Whether the process ``pid`` ended (waiting for it, off the event loop)."""
    try:
        process = psutil.Process(pid)
        await asyncio.to_thread(process.wait, 60)
    except psutil.NoSuchProcess:
        return True
    return not process.is_running()


async def test_the_folders_used_last_keep_their_kernels(jp_serverapp: Any, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    pool = KernelPool(
        size=1,
        folders=1,
        startup_timeout=60,
        kernel_spec_manager=jp_serverapp.kernel_spec_manager,
        log=logging.getLogger("test"),
    )
    pool.prepare("python3", str(first))
    (starting,) = pool._warm[("python3", str(first))]
    first_pid = (await starting).manager.provisioner.pid

    pool.prepare("python3", str(second))  # one folder only: the first one's kernel goes
    assert list(pool._warm) == [("python3", str(second))]
    assert await gone(first_pid)

    kernel = await pool.take("python3", str(second))
    assert pool._warm[("python3", str(second))] == []  # its replacement starts after the run
    reply = await kernel.client.execute_interactive("1 + 1", timeout=60)
    assert reply["content"]["status"] == "ok"
    pool.release(kernel)
    (replacement,) = pool._warm[("python3", str(second))]
    replacement_pid = (await replacement).manager.provisioner.pid
    assert replacement_pid != kernel.manager.provisioner.pid

    await pool.shutdown()
    assert await gone(kernel.manager.provisioner.pid)
    assert await gone(replacement_pid)
    assert pool._warm == {}


async def test_without_warm_kernels_each_run_starts_its_own(
    jp_serverapp: Any, tmp_path: Path
) -> None:
    pool = KernelPool(
        size=0,
        folders=2,
        startup_timeout=60,
        kernel_spec_manager=jp_serverapp.kernel_spec_manager,
        log=logging.getLogger("test"),
    )
    pool.prepare("python3", str(tmp_path))
    assert pool._warm == {}
    kernel = await pool.take("python3", str(tmp_path))
    pool.release(kernel)
    assert pool._warm == {}
    await pool.shutdown()
    assert await gone(kernel.manager.provisioner.pid)
