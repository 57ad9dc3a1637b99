"""Started kernels kept ready, so that a run with new values does not wait for one to start.

A kernel runs one notebook only: every run takes a fresh kernel, as papermill starts one per
execution, and the kernel is shut down after the run. The pool keeps ``size`` kernels started
per (kernel name, working directory) — the folder of a notebook, where its kernel must start —
for the ``folders`` pairs used most recently. A run takes a ready kernel (or one still
starting, or starts its own when none is there), and when it is done the pool starts a
replacement in the background (after the run, not during it, so that the start does not take
the CPU from the run).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

#: (kernel name, working directory)
PoolKey = tuple[str, str]


@dataclass(frozen=True)
class ReadyKernel:
    """A started kernel and a client whose channels are open and which the kernel answered."""

    key: PoolKey
    manager: AsyncKernelManager
    client: AsyncKernelClient


class KernelPool:
    """Warm kernels per (kernel name, working directory); see the module docstring."""

    def __init__(
        self,
        size: int,
        folders: int,
        startup_timeout: float,
        kernel_spec_manager: KernelSpecManager,
        log: logging.Logger,
    ) -> None:
        self.size = size
        self.folders = folders
        self.startup_timeout = startup_timeout
        self.kernel_spec_manager = kernel_spec_manager
        self.log = log
        #: kernels started or starting per key, the key used least recently first
        self._warm: OrderedDict[PoolKey, list[asyncio.Task[ReadyKernel]]] = OrderedDict()
        #: shut-downs and other work running in the background
        self._background: set[asyncio.Task[Any]] = set()
        self._closed = False

    def prepare(self, kernel_name: str, cwd: str) -> None:
        """Have kernels for ``kernel_name`` in ``cwd`` ready (started in the background)."""
        self._refill(self._use((kernel_name, cwd)))

    async def take(self, kernel_name: str, cwd: str) -> ReadyKernel:
        """A fresh kernel for one run, in ``cwd``; give it back with :meth:`release`.

        Raises RuntimeError (or OSError) when the kernel does not start.
        """
        key = (kernel_name, cwd)
        warm = self._warm.get(key, []) if not self._closed else []
        self._use(key)
        while warm:
            kernel = await self._claim(warm.pop(0))
            if await kernel.manager.is_alive():
                return kernel
            self.log.info("erchub: a warm %s kernel in %s died; starting another", *key)
            self._run_in_background(self._shut_down(kernel))
        return await self._claim(asyncio.ensure_future(self._start(key)))

    def release(self, kernel: ReadyKernel) -> None:
        """Shut down a kernel after its run, and start its replacement (both in the
        background)."""
        self._run_in_background(self._shut_down(kernel))
        if kernel.key in self._warm:
            self._refill(kernel.key)

    async def shutdown(self) -> None:
        """Shut every kernel down (the server stops)."""
        self._closed = True
        starting = [task for tasks in self._warm.values() for task in tasks]
        self._warm.clear()
        for task in starting:
            self._run_in_background(self._shut_down_when_started(task))
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # -- internals -------------------------------------------------------------------------

    def _use(self, key: PoolKey) -> PoolKey:
        """Mark ``key`` used now; let the kernels of the least recently used keys go."""
        if self._closed or self.size <= 0:
            return key
        self._warm.setdefault(key, [])
        self._warm.move_to_end(key)
        while len(self._warm) > max(self.folders, 1):
            _, tasks = self._warm.popitem(last=False)
            for task in tasks:
                self._run_in_background(self._shut_down_when_started(task))
        return key

    def _refill(self, key: PoolKey) -> None:
        warm = self._warm.get(key)
        while not self._closed and warm is not None and len(warm) < self.size:
            warm.append(asyncio.ensure_future(self._start(key)))

    async def _start(self, key: PoolKey) -> ReadyKernel:
        kernel_name, cwd = key
        manager = AsyncKernelManager(
            kernel_name=kernel_name, kernel_spec_manager=self.kernel_spec_manager
        )
        await manager.start_kernel(cwd=cwd)
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=self.startup_timeout)
        except BaseException:
            client.stop_channels()
            await manager.shutdown_kernel(now=True)
            raise
        client.allow_stdin = False
        self.log.debug("erchub: %s kernel ready in %s", kernel_name, cwd)
        return ReadyKernel(key, manager, client)

    async def _claim(self, task: asyncio.Task[ReadyKernel]) -> ReadyKernel:
        """The kernel ``task`` starts; if the caller is cancelled meanwhile, the kernel is shut
        down once started instead of being left running."""
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self._run_in_background(self._shut_down_when_started(task))
            raise

    async def _shut_down_when_started(self, task: asyncio.Task[ReadyKernel]) -> None:
        try:
            kernel = await task
        except Exception as error:  # it never started: nothing to shut down
            self.log.debug("erchub: a kernel that was not needed failed to start: %s", error)
            return
        await self._shut_down(kernel, now=True)

    async def _shut_down(self, kernel: ReadyKernel, now: bool = False) -> None:
        kernel.client.stop_channels()
        await kernel.manager.shutdown_kernel(now=now)

    def _run_in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._done_in_background)

    def _done_in_background(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.warning("erchub: shutting down a kernel failed: %s", task.exception())
