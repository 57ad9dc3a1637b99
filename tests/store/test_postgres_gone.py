"""A PostgreSQL server that goes away without a word: its packets dropped, no RST, as when
Swarm restarts it in a new container and the old address leads nowhere. A store call on a
connection to it fails within seconds (libpq's ``tcp_user_timeout``, ``connect_timeout``:
``POSTGRES_CONNECT_ARGS``), so that a worker's heartbeat is not held past
``Worker.lost_timeout`` (which would make its job look lost and run it twice); once the server
is reachable again the next call succeeds.

The store reaches the server through a relay on 127.0.0.1 of this test's own, whose port an
iptables rule blackholes for the length of the test's outage: nothing else is touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from erchub.services.store import StoreError, open_store

pytestmark = pytest.mark.postgres

#: seconds a store call may take against a server gone without a word (libpq's time-outs,
#: twice: the pool's pre-ping and a new connection); a generous bound for this machine
FAILS_WITHIN = 25.0
CHUNK = 65536


class Relay:
    """127.0.0.1:PORT relayed to ``target`` (host, port), a thread per direction."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target, timeout=10)
                for source, sink in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(CHUNK):
                sink.sendall(chunk)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.close()

    def close(self) -> None:
        self.listener.close()


@contextlib.contextmanager
def blackholed(port: int) -> Iterator[None]:
    """Packets to 127.0.0.1:``port`` dropped (iptables) for the block."""
    rule = ["INPUT", "-i", "lo", "-p", "tcp", "--dport", str(port), "-j", "DROP"]
    subprocess.run(["iptables", "-I", *rule], check=True)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-D", *rule], check=True)


def test_a_server_gone_without_a_word_fails_a_store_call_within_seconds(
    postgres_store_url: str,
) -> None:
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        pytest.skip("blackholing the relay's port needs root and iptables")
    url = sa.make_url(postgres_store_url)
    relay = Relay((url.host or "127.0.0.1", url.port or 5432))
    relayed = url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    store = open_store(relayed)
    try:
        assert store.count_jobs() is not None  # a pooled connection, through the relay
        outcome: list[BaseException | object] = []

        def call() -> None:
            try:
                outcome.append(store.count_jobs())
            except StoreError as error:
                outcome.append(error)

        with blackholed(relay.port):
            started = time.monotonic()
            caller = threading.Thread(target=call, daemon=True)
            caller.start()
            caller.join(FAILS_WITHIN)
            failed_after = time.monotonic() - started
            # (a caller still waiting gets through once the rule is gone)
            assert not caller.is_alive(), f"the store call still waits after {FAILS_WITHIN} s"
        print(f"\na store call failed {failed_after:.1f} s after the server went silent")
        assert len(outcome) == 1 and isinstance(outcome[0], StoreError), outcome
        # reachable again: the next call connects anew and succeeds
        assert store.count_jobs() is not None
    finally:
        store.close()
        relay.close()
