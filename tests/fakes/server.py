"""What the fake servers share: a tornado application served on 127.0.0.1, in a thread with
its own event loop for tests, or in the foreground by hand."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from tornado import httpserver, netutil, web


class ThreadedServer:
    """Serves :meth:`application` on 127.0.0.1; ``url`` is set once it listens. ``with
    server:`` (or :meth:`start`/:meth:`stop`) runs it in a thread."""

    #: the thread's name, and how errors name the server
    name = "fake server"
    #: the largest request body the server accepts (tornado's default: 100 MB)
    max_body_size: int | None = None

    def __init__(self) -> None:
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def application(self) -> web.Application:
        raise NotImplementedError

    async def serve(self, port: int = 0, ready: Callable[[], object] | None = None) -> None:
        """Serve on 127.0.0.1:``port`` (0: a free one) until :meth:`stop`; ``ready()`` is
        called once it listens."""
        sockets = netutil.bind_sockets(port, "127.0.0.1")
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        server = httpserver.HTTPServer(self.application(), max_body_size=self.max_body_size)
        server.add_sockets(sockets)
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        if ready:
            ready()
        try:
            await self._stopped.wait()
        finally:
            server.stop()
            await server.close_all_connections()

    def start(self) -> Any:
        """Serve on a free port in a thread with its own event loop; returns once it listens."""
        ready = threading.Event()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self.serve(0, ready.set),), name=self.name, daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"the {self.name} did not start in 10 s")
        return self

    def stop(self) -> None:
        if self._loop and self._stopped:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread:
            self._thread.join(10)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
