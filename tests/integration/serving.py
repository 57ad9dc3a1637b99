"""A test server on 127.0.0.1 served by a thread for the length of a ``with`` block: the
lifecycle that the integration tests' servers (git, WebDAV) share."""

from __future__ import annotations

import socketserver
import threading
from types import TracebackType
from typing import Self


class ServedInThread:
    """``with server:`` serves ``self.server`` (a socketserver server, set by the subclass's
    ``__init__`` before it calls :meth:`serve_in_thread`) in a daemon thread; the block's end
    shuts it down and closes its socket."""

    server: socketserver.BaseServer
    thread: threading.Thread

    def serve_in_thread(self) -> None:
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
