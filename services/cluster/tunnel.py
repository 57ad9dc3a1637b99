"""The API of a Docker engine inside a node container, reached through this machine's engine.

Only the manager's engine is published (on 127.0.0.1); the other nodes' engines listen on their
unix socket only, and nothing in the cluster's network can reach them. An :class:`EngineTunnel`
reaches one anyway: it listens on 127.0.0.1 (a port the kernel picks) while it is open, and
carries each connection to the node's socket through an exec, in the node container, of
``docker system dial-stdio`` (the node image's Docker CLI, as ``docker -H ssh://`` does it),
made through this machine's engine API. A docker SDK client on :attr:`EngineTunnel.url` then
talks to the node's engine as to any other. While it is open, any process of this machine can
connect to it, as to the manager's published port: the test cluster trusts this machine.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Any

import docker
from docker.utils.socket import STDOUT, frames_iter

DIAL_STDIO = ("docker", "system", "dial-stdio")
#: how often the listener looks whether the tunnel was closed (seconds)
ACCEPT_POLL = 0.2
#: how long closing waits for each connection's threads (seconds)
CLOSE_WAIT = 5.0
CHUNK = 65536


class EngineTunnel:
    """127.0.0.1:PORT, while open, carried to the engine socket of ``container`` through
    ``host`` (this machine's engine)."""

    def __init__(self, host: docker.DockerClient, container: str) -> None:
        self.host = host
        self.container = container
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(ACCEPT_POLL)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[Any] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(
            target=self._accept, name=f"tunnel-{container}", daemon=True
        )
        self._acceptor.start()

    @property
    def url(self) -> str:
        """The node engine's address, as ``docker.DockerClient(base_url=...)`` takes it."""
        return f"tcp://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:  # the listener was closed
                return
            connection.settimeout(None)
            self._start(self._carry, connection)

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _track(self, sock: Any) -> bool:
        """Remember ``sock`` to close it with the tunnel; False when the tunnel is closed."""
        with self._lock:
            if self._closed.is_set():
                return False
            self._sockets.add(sock)
            return True

    def _carry(self, connection: socket.socket) -> None:
        """One connection: its bytes to the exec's stdin, the exec's stdout back to it."""
        engine: Any = None
        try:
            if not self._track(connection):
                return
            exec_id = self.host.api.exec_create(
                self.container, list(DIAL_STDIO), stdin=True, stdout=True, stderr=False
            )["Id"]
            stream = self.host.api.exec_start(exec_id, socket=True)
            # a unix or plain TCP connection comes wrapped in a SocketIO; TLS as the socket
            engine = getattr(stream, "_sock", stream)
            if not self._track(engine):
                return
            self._start(self._send, connection, engine)
            # without a TTY the exec's output comes in frames: (stream, payload)
            for stream_id, payload in frames_iter(stream, tty=False):
                if stream_id == STDOUT:
                    connection.sendall(payload)
        except (OSError, docker.errors.DockerException):
            pass  # the node or the connection went away: the client sees the connection close
        finally:
            for sock in (connection, engine):
                if sock is not None:
                    self._forget(sock)

    def _send(self, connection: socket.socket, engine: Any) -> None:
        """The client's bytes to the exec; at their end, the end of the exec's stdin."""
        try:
            while chunk := connection.recv(CHUNK):
                engine.sendall(chunk)
            engine.shutdown(socket.SHUT_WR)
        except OSError:
            self._forget(connection)

    def _forget(self, sock: Any) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def close(self) -> None:
        """Stop listening and end every connection (their execs end with their stdin)."""
        self._closed.set()
        self._listener.close()
        with self._lock:
            sockets, self._sockets = list(self._sockets), set()
            threads = list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._acceptor.join(CLOSE_WAIT)
        for thread in threads:
            thread.join(CLOSE_WAIT)

    def __enter__(self) -> EngineTunnel:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
