"""Load through the proxy: many clients at once get no 5xx and no connection error.

Each client is one keep-alive connection to configurable-http-proxy (CHP) with a hub API token,
as a script or a browser tab is; the proxy spreads them over its own keep-alive connections to
the erc service. That is where concurrency used to fail: the service closed a connection after
answering a request it had not read to its end (a refusal in ``prepare``) without saying so, and
CHP's upstream agent lent that connection to another client's request, which CHP answered 503
"socket hang up" (README, "Security and reliability"; ``BaseHandler.close_after_error``). The
load mixes in such refusals, so the race would show here.

:func:`run_load` is shared with ``bench/load.py`` (50 clients for 60 s, figures in README).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import pytest
from tornado import web

from tests.conftest import free_port
from tests.fakes.server import ThreadedServer
from tests.hub.conftest import PROXY, REPO, Hub, example_zip, require_hub

pytestmark = pytest.mark.hub

#: a request of the load: the path below the API's prefix, and the statuses it may get
Request = tuple[str, frozenset[int]]

OK = frozenset({200})
#: whatever a client is told, a request stops after this long (seconds)
REQUEST_TIMEOUT = 30.0
#: no client sends more than this many requests, however long it may go on
MAX_REQUESTS_PER_CLIENT = 20_000


@dataclass
class Load:
    """What the clients of one :func:`run_load` saw."""

    clients: int
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    #: answered requests' times, ms
    latencies_ms: list[float] = field(default_factory=list)
    #: requests that got no answer at all (refused or dropped connection, timeout)
    connection_errors: list[str] = field(default_factory=list)
    #: answers below 500 that the request does not expect (a broken load, not a broken hub)
    unexpected: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + len(self.connection_errors)

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    @property
    def errors(self) -> int:
        """Answers >= 500 and requests without an answer."""
        return self.server_errors + len(self.connection_errors)

    def percentile_ms(self, fraction: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        if fraction == 0.5:
            return statistics.median(self.latencies_ms)
        ordered = sorted(self.latencies_ms)
        return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]

    def summary(self) -> str:
        rate = self.requests / max(self.seconds, 1e-9)
        statuses = dict(sorted(self.statuses.items()))
        return (
            f"{self.clients} clients, {self.seconds:.1f} s: {self.requests} requests "
            f"({rate:.0f}/s), p50 {self.percentile_ms(0.5):.1f} ms, "
            f"p95 {self.percentile_ms(0.95):.1f} ms, statuses {statuses}, "
            f"{self.server_errors} >= 500, {len(self.connection_errors)} connection errors"
        )


async def _client(
    index: int,
    api_url: str,
    token: str,
    plan: Sequence[Request],
    deadline: float,
    load: Load,
) -> None:
    """One client: the plan's requests in turn (from its own place in the plan), one at a time
    on one connection, until ``deadline`` or :data:`MAX_REQUESTS_PER_CLIENT`."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(
        base_url=api_url,
        headers={"Authorization": f"token {token}"},
        timeout=REQUEST_TIMEOUT,
        limits=limits,
    ) as client:
        for count in range(MAX_REQUESTS_PER_CLIENT):
            if time.monotonic() >= deadline:
                return
            path, expected = plan[(index + count) % len(plan)]
            started = time.perf_counter()
            try:
                response = await client.get(path)
            except httpx.TransportError as error:
                load.connection_errors.append(f"GET {path}: {type(error).__name__}: {error}")
                await asyncio.sleep(0.05)  # a hub that is gone is not asked in a tight loop
                continue
            load.latencies_ms.append((time.perf_counter() - started) * 1000.0)
            load.statuses[response.status_code] += 1
            if response.status_code < 500 and response.status_code not in expected:
                load.unexpected.append(f"{response.status_code} GET {path}: {response.text[:200]}")


def run_load(
    api_url: str, token: str, plan: Sequence[Request], clients: int, seconds: float
) -> Load:
    """``clients`` concurrent clients sending ``plan``'s GET requests to ``api_url`` with
    ``token`` for ``seconds`` (each request at most :data:`REQUEST_TIMEOUT` more)."""
    load = Load(clients)

    async def main() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            *(_client(i, api_url, token, plan, deadline, load) for i in range(clients))
        )

    started = time.monotonic()
    asyncio.run(main())
    load.seconds = time.monotonic() - started
    return load


def list_and_search(user: str, words: Sequence[str]) -> list[Request]:
    """Authenticated list and search requests, each answered 200."""
    plan: list[Request] = [
        ("/compendium?limit=20", OK),
        (f"/compendium?user={user}&candidate=true&summary=true", OK),
        ("/compendium?limit=20&start=10", OK),
    ]
    plan += [(f"/search?q={word}", OK) for word in words]
    return plan


#: requests the service answers before it has read them (NotFoundHandler refuses in prepare):
#: tornado closes their connections, so the proxy must be told not to lend them again
EARLY_REFUSALS: list[Request] = [
    ("/no-such-resource", frozenset({404})),
    ("/compendium/no-such-id/no-such-part", frozenset({404})),
]


@pytest.fixture(scope="module")
def load_user(erc_hub: Hub) -> str:
    """A user with two candidates (the bundled example), so that lists and searches find
    something."""
    token = erc_hub.token("load-client")
    for _ in range(2):
        erc_hub.create(token, example_zip())
    return "load-client"


def test_twenty_clients_get_no_server_error_and_no_connection_error(
    erc_hub: Hub, load_user: str
) -> None:
    """20 clients for 15 s: list and search, with one request in ten refused before it was
    read; not one answer >= 500, not one request without an answer."""
    plan = list_and_search(load_user, ["sine", "sine frequency", "wave"])
    # one refusal in ten requests, at different places in each client's turn
    plan = plan[:4] + EARLY_REFUSALS[:1] + plan[4:] + plan[:2] + EARLY_REFUSALS[1:]
    assert len(plan) == 10
    load = run_load(erc_hub.api_url, erc_hub.token(load_user), plan, clients=20, seconds=15)
    print(load.summary())
    assert load.connection_errors == [], load.connection_errors[:10]
    assert load.server_errors == 0, load.summary()
    assert load.unexpected == [], load.unexpected[:10]
    assert load.requests > 100, load.summary()  # the load was load
    refused = load.statuses[404]
    assert refused > 0, load.summary()


# -- the keep-alive contract between the service and the proxy ---------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/no-such-resource", None, 404),  # NotFoundHandler refuses in prepare
        ("POST", "/no-such-resource", b'{"title": "x"}', 404),  # the same, its body unread
        ("PROPFIND", "/compendium", None, 405),  # a method no handler knows, before prepare
    ],
)
def test_an_answer_before_the_request_was_read_says_the_connection_closes(
    erc_hub: Hub, method: str, path: str, body: bytes | None, status: int
) -> None:
    """Tornado closes the connection after such an answer; the answer must say so, or the
    proxy lends the closing connection to the next request (README, "Security and
    reliability"). configurable-http-proxy passes the service's ``Connection`` on."""
    response = erc_hub.request(method, path, erc_hub.token("load-client"), content=body)
    assert response.status_code == status, response.text
    assert response.headers.get("Connection", "").lower() == "close"


@pytest.mark.parametrize(
    ("path", "status"),
    [("/compendium?limit=1", 200), ("/compendium/no-such-id", 404), ("/search", 400)],
)
def test_an_answer_after_the_request_was_read_keeps_the_connection(
    erc_hub: Hub, path: str, status: int
) -> None:
    """Answers of the handlers themselves, errors included, keep the connection alive."""
    response = erc_hub.request("GET", path, erc_hub.token("load-client"))
    assert response.status_code == status, response.text
    assert "close" not in response.headers.get("Connection", "").lower()


class _PeerPort(ThreadedServer):
    """Answers the port its client connected from: which connection the proxy used."""

    name = "peer-port server"

    def application(self) -> web.Application:
        class Handler(web.RequestHandler):
            def get(self) -> None:
                self.write(str(self.request.connection.context.address[1]))  # type: ignore[attr-defined]

        return web.Application([(r"/.*", Handler)])


def test_the_proxy_closes_an_idle_upstream_connection_before_the_upstream_does() -> None:
    """config/proxy/chp.mjs closes a connection to an upstream that has been free for
    ``--upstream-idle-timeout`` ms (default 60 s, far below tornado's idle timeout of 3600 s),
    so the upstream never closes one that the proxy may lend at that moment."""
    require_hub()
    port, api_port = free_port(), free_port()
    with _PeerPort() as upstream:
        proxy = subprocess.Popen(
            [
                "node", str(REPO / "config" / "proxy" / "chp.mjs"), str(PROXY),
                "--upstream-idle-timeout=300",
                "--ip=127.0.0.1", f"--port={port}",
                "--api-ip=127.0.0.1", f"--api-port={api_port}",
                f"--default-target={upstream.url}",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        first = client.get("/").text
                        break
                    except httpx.TransportError:
                        assert proxy.poll() is None, "the proxy exited"
                        assert time.monotonic() < deadline, "the proxy did not start"
                        time.sleep(0.2)
                again = client.get("/").text
                time.sleep(1.0)  # the connection is free for longer than 300 ms
                later = client.get("/").text
        finally:
            proxy.terminate()
            proxy.wait(10)
    assert again == first, "a connection in use again at once is kept"
    assert later != first, "a connection free for longer than the timeout was closed"
