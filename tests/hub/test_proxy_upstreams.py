"""config/proxy/chp.mjs in front of an upstream whose connections drop before it answers (a
replica killed while it held the request): a GET is sent again, on a new connection, up to
``--upstream-attempts`` times in all; a POST is not, since its upstream may have acted on it.

The upstream is a socket server that resets the connection of each of its first N requests
once it has read the request's head, and answers the others 200. (The other half of the rule,
connecting to a name's next address, needs a name with several addresses: the swarm tier shows
it, tests/swarm/test_replicas.py.)
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import free_port
from tests.hub.conftest import PROXY, REPO, require_hub

pytestmark = pytest.mark.hub

#: seconds: the proxy's start, and any request
TIMEOUT = 30.0


class DroppingUpstream:
    """An HTTP upstream on 127.0.0.1 that resets the connections of its first ``drops``
    requests after reading their heads, and answers every later one 200 ``ok``."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        #: the request lines it read, in order
        self.requests: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)

    def __enter__(self) -> DroppingUpstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(10)
        self.listener.close()

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(TIMEOUT)
                self.answer(connection)

    def answer(self, connection: socket.socket) -> None:
        """Read requests on ``connection`` until it closes; reset it or answer each."""
        received = b""
        while True:
            while b"\r\n\r\n" not in received:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                received += chunk
            head, _, received = received.partition(b"\r\n\r\n")
            self.requests.append(head.split(b"\r\n", 1)[0].decode())
            if len(self.requests) <= self.drops:
                # SO_LINGER 0: close sends RST, as a replica's kernel does for a process that
                # died with data unread
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


@contextlib.contextmanager
def proxy(upstream: DroppingUpstream, *options: str) -> Iterator[httpx.Client]:
    """chp.mjs with ``upstream`` as its default target; a client of it, once it answers."""
    port, api_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            "node", str(REPO / "config" / "proxy" / "chp.mjs"), str(PROXY), *options,
            "--ip=127.0.0.1", f"--port={port}",
            "--api-ip=127.0.0.1", f"--api-port={api_port}",
            f"--default-target={upstream.url}",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=TIMEOUT,
            # no retry of the client's own: what the proxy answers is what is seen
            transport=httpx.HTTPTransport(retries=0),
        ) as client:
            deadline = time.monotonic() + TIMEOUT
            while True:
                try:
                    client.get("/_chp_healthz")
                    break
                except httpx.TransportError:
                    assert process.poll() is None, "the proxy exited"
                    assert time.monotonic() < deadline, "the proxy did not start"
                    time.sleep(0.2)
            yield client
    finally:
        process.terminate()
        process.wait(10)


def test_a_get_whose_upstream_connection_drops_is_sent_again() -> None:
    require_hub()
    with DroppingUpstream(drops=2) as upstream, proxy(upstream) as client:
        answer = client.get("/api/things")
    assert (answer.status_code, answer.text) == (200, "ok")
    assert upstream.requests == ["GET /api/things HTTP/1.1"] * 3


def test_a_post_whose_upstream_connection_drops_is_not_sent_again() -> None:
    require_hub()
    with DroppingUpstream(drops=1) as upstream, proxy(upstream) as client:
        answer = client.post("/api/things", json={"name": "x"})
    assert answer.status_code == 503
    assert upstream.requests == ["POST /api/things HTTP/1.1"]


def test_the_attempts_are_bounded() -> None:
    require_hub()
    with DroppingUpstream(drops=10) as upstream, proxy(upstream, "--upstream-attempts=2") as client:
        answer = client.get("/api/things")
    assert answer.status_code == 503
    assert upstream.requests == ["GET /api/things HTTP/1.1"] * 2


def test_a_bad_attempt_count_is_refused() -> None:
    require_hub()
    refused = subprocess.run(
        ["node", str(REPO / "config" / "proxy" / "chp.mjs"), str(PROXY), "--upstream-attempts=0"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert refused.returncode == 2
    assert "--upstream-attempts takes a count > 0, got 0" in refused.stderr
