"""The erc service told to stop (SIGTERM, as Swarm sends it when it scales the service down or
moves a replica): it answers the requests it has begun, closes the idle connections that a
proxy keeps alive at once, and exits. Before, idle connections stayed open until the process
ended, and the hub's proxy lent one to a POST that nothing answered: reset, a 503 (README,
"Past one machine")."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

API = "/services/erc/api/v1"
#: seconds for the service to start, and for anything after the SIGTERM
TIMEOUT = 30.0
#: the body of the request in flight at the SIGTERM: half of it before, half after
BODY = b'{"content_type": "workspace"}'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def connect(port: int) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return connection


def read_answer(connection: socket.socket) -> bytes:
    """Everything the service sends until it closes the connection."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def get_openapi(connection: socket.socket) -> bytes:
    """A GET of the API description on a kept-alive connection: its answer's head."""
    connection.sendall(f"GET {API}/openapi.json HTTP/1.1\r\nHost: erc\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head


def log_line(process: subprocess.Popen[bytes], text: str) -> str:
    """The first line of the service's log from here on that holds ``text``."""
    assert process.stderr is not None
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], deadline - time.monotonic())
        line = process.stderr.readline().decode() if ready else ""
        if text in line:
            return line.rstrip("\n")
        assert line or not ready, "the service's log ended"
    raise AssertionError(f"no {text!r} in the service's log within {TIMEOUT:.0f} s")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "ERCHUB_DATA_DIR": str(tmp_path / "data"),
        "ERCHUB_WORKER_COUNT": "0",
        "ERCHUB_STOP_GRACE": "10",
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
        # no hub: the requests here need none (the API description; a refusal)
        "JUPYTERHUB_API_TOKEN": "no-hub",
        "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "erchub.services", "--Application.log_level=INFO"],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            with contextlib.suppress(OSError), connect(port) as probe:
                assert get_openapi(probe).startswith(b"HTTP/1.1 200")
                break
            assert process.poll() is None, "the service ended at its start"
            assert time.monotonic() < deadline, "the service did not listen"
            time.sleep(0.1)
        yield process, port
    finally:
        process.kill()
        process.wait(TIMEOUT)


def test_a_stopping_service_answers_on_every_connection_it_has_and_closes_them(
    service: tuple[subprocess.Popen[bytes], int],
) -> None:
    process, port = service
    with connect(port) as idle, connect(port) as in_flight:
        # a connection the proxy keeps alive between requests, idle now
        assert get_openapi(idle).startswith(b"HTTP/1.1 200")
        # a request begun: its head and half its body
        in_flight.sendall(
            f"POST {API}/compendium HTTP/1.1\r\nHost: erc\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(BODY)}\r\n\r\n".encode()
            + BODY[: len(BODY) // 2]
        )
        time.sleep(0.5)  # the service has begun it
        process.send_signal(signal.SIGTERM)
        stopping = log_line(process, "stopping: ")
        assert stopping.endswith("stopping: 1 requests being answered"), stopping

        # a request on the idle connection is answered, told to close the connection (the
        # proxy's agent then does), while the service still waits for the other request
        again = get_openapi(idle)
        assert again.startswith(b"HTTP/1.1 200") and b"\r\nConnection: close" in again, again
        idle.close()
        assert process.poll() is None, "the service ended before it answered what it began"

        # the request begun gets its whole answer (no token: 401), told the connection closes
        in_flight.sendall(BODY[len(BODY) // 2 :])
        answer = read_answer(in_flight)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), answer[:300]
    assert b"\r\nConnection: close" in head, head
    assert b"authentication required" in body
    assert process.wait(TIMEOUT) == 0
