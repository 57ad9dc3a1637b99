"""The erc service's replicas and the workers on the cluster: one replica killed under a steady
stream of API requests fails none of them, as the hub's proxy answers them; the service and the
workers scale up and down (``erchub cluster scale``).

The replica is the one the proxy holds its connection to; it is stopped (SIGSTOP) for a second
first, so that it certainly holds a request of the stream when SIGKILL ends it: the request a
replica is working on when it dies is the one that fails without the proxy's rules.

A killed replica's address stays in the answer for the service's name (dnsrr) until Swarm
notices, and the proxy's pooled connections to it break: config/proxy/chp.mjs connects to the
name's next address when one does not answer, and sends a GET whose connection broke before
any answer again (README, "Past one machine"). The test client has no retries of its own
(httpx's transport, retries=0): every answer counted is the proxy's.

These tests change the stack (a replica killed, replicas and nodes scaled), and give back what
they took: they run after the tier's other tests (conftest's FAULT_MODULES).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time

import httpx
import pytest

from erchub.cli import main
from erchub.services.cluster.local import ClusterStatus, LocalCluster
from tests.swarm.stack_client import API, poll, running_tasks, task_addresses
from tests.swarm.test_faults import execution_nodes

pytestmark = pytest.mark.swarm

#: the stream: at least this many requests; the replica is killed after KILL_AFTER of them,
#: and the stream goes on until the replica is back (a new task listening) and AFTER_BACK
#: seconds longer
MIN_REQUESTS = 200
KILL_AFTER = 50
AFTER_BACK = 5.0
#: bounds of the stream whatever happens: requests, seconds
MAX_REQUESTS = 5000
STREAM_TIMEOUT = 180.0
#: seconds the replica is stopped (SIGSTOP) before it is killed, a request of the stream held
HOLD = 1.0
#: every this many requests after the kill, the stream looks whether the replica is back
BACK_CHECK_EVERY = 10
#: seconds a scaled service may take until its tasks run
SCALE_TIMEOUT = 180.0
#: what the proxy logs when it sends a request again (config/proxy/chp.mjs)
PROXY_ATTEMPT_LOG = ": upstream "
#: the erc service's port (config/swarm/stack.yml); /proc/net/tcp's state of an open connection
ERC_PORT = 10101
TCP_ESTABLISHED = "01"
#: rounds of five requests after which the proxy must hold a connection to a replica
ANSWERING_ROUNDS = 5


def container_logs(cluster: LocalCluster, node: str, container_id: str, since: float) -> str:
    with cluster.node_client(node) as engine:
        logs = engine.containers.get(container_id).logs(since=int(since))
    return bytes(logs).decode(errors="replace")


def connected_addresses(cluster: LocalCluster, node: str, container_id: str, port: int) -> set[str]:
    """The IPv4 addresses that the container ``container_id`` on ``node`` has established TCP
    connections to, at ``port`` (its /proc/net/tcp)."""
    with cluster.node_client(node) as engine:
        table = engine.containers.get(container_id).exec_run(["cat", "/proc/net/tcp"])
    assert table.exit_code == 0, table.output
    addresses = set()
    for line in table.output.decode().splitlines()[1:]:
        remote, state = line.split()[2:4]
        address, remote_port = remote.split(":")
        if state == TCP_ESTABLISHED and int(remote_port, 16) == port:
            # little-endian hex of the address
            addresses.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return addresses


def replica_back(cluster: LocalCluster, lost_task: str, hub: tuple[str, str]) -> bool:
    """Whether two erc replicas run again, ``lost_task`` not among them, and each accepts
    connections from the hub's container ``hub`` (node, container id)."""
    tasks = running_tasks(cluster, "erc")
    if len(tasks) != 2 or lost_task in tasks:
        return False
    addresses = list(task_addresses(cluster, "erc", "app").values())
    connect = "; ".join(
        f"socket.create_connection(({address!r}, {ERC_PORT}), timeout=2).close()"
        for address in addresses
    )
    with cluster.node_client(hub[0]) as engine:
        done = engine.containers.get(hub[1]).exec_run(
            ["python3", "-c", f"import socket; {connect}"]
        )
    return len(addresses) == 2 and done.exit_code == 0


def answering_replica(cluster: LocalCluster, client: httpx.Client) -> tuple[str, str, str]:
    """An erc replica (task id, node, container id) that answers ``client``'s requests: one
    that the hub's proxy holds a connection to after a few requests (it keeps them alive
    between requests), so that killing it breaks a connection in use."""
    [(hub_node, hub_container)] = running_tasks(cluster, "hub").values()
    connected: set[str] = set()
    # the first requests after a deploy may be answered before the proxy pools a connection
    for _ in range(ANSWERING_ROUNDS):
        for _ in range(5):
            assert client.get(f"{API}/compendium").status_code == 200
        connected = connected_addresses(cluster, hub_node, hub_container, ERC_PORT)
        replicas = running_tasks(cluster, "erc")
        used = [
            task
            for task, address in task_addresses(cluster, "erc", "app").items()
            if address in connected and task in replicas
        ]
        if used:
            return (used[0], *replicas[used[0]])
        time.sleep(1)
    raise AssertionError(f"the hub holds no connection to an erc replica: {connected}")


def test_a_killed_erc_replica_fails_no_request_through_the_proxy(
    cluster: LocalCluster, stack: ClusterStatus, token: str
) -> None:
    hub_url = cluster.hub_url()
    assert len(running_tasks(cluster, "erc")) == 2
    [hub] = running_tasks(cluster, "hub").values()
    answers: list[int | str] = []
    latencies: list[float] = []
    kill: dict[str, float] = {}
    start_kill = threading.Event()
    with httpx.Client(
        base_url=hub_url,
        headers={"Authorization": f"token {token}"},
        timeout=30,
        # no retry of the client's own: what the proxy answers is what is counted
        transport=httpx.HTTPTransport(retries=0),
    ) as client:
        victim_task, victim_node, victim_container = answering_replica(cluster, client)
        with cluster.node_client(victim_node) as engine:
            container = engine.containers.get(victim_container)

            def kill_the_replica() -> None:
                # in the middle of the stream. Stopped first (SIGSTOP: its kernel still takes
                # the request, nothing answers), the replica certainly holds a request of the
                # stream when SIGKILL ends it, as a replica that dies while it works does
                if start_kill.wait(STREAM_TIMEOUT):
                    container.kill(signal="SIGSTOP")
                    kill["index"], kill["at"] = len(answers), time.monotonic()
                    time.sleep(HOLD)
                    container.kill(signal="SIGKILL")
                    kill["done"] = time.monotonic()

            killer = threading.Thread(target=kill_the_replica, daemon=True)
            killer.start()
            started = time.monotonic()
            stream_start = time.time()
            back_at: tuple[int, float] | None = None
            while len(answers) < MAX_REQUESTS and time.monotonic() - started < STREAM_TIMEOUT:
                if len(answers) == KILL_AFTER:
                    start_kill.set()
                sent = time.monotonic()
                try:
                    answers.append(client.get(f"{API}/compendium").status_code)
                except httpx.TransportError as error:
                    answers.append(type(error).__name__)
                latencies.append(time.monotonic() - sent)
                if (
                    back_at is None
                    and "done" in kill
                    and len(answers) % BACK_CHECK_EVERY == 0
                    and replica_back(cluster, victim_task, hub)
                ):
                    back_at = (len(answers), time.monotonic())
                if (
                    back_at is not None
                    and time.monotonic() - back_at[1] >= AFTER_BACK
                    and len(answers) >= MIN_REQUESTS
                ):
                    break
            seconds = time.monotonic() - started
            start_kill.set()
            killer.join(30)
    proxy_log = container_logs(cluster, *hub, stream_start)
    attempts = [line for line in proxy_log.splitlines() if PROXY_ATTEMPT_LOG in line]
    print(
        f"\n{len(answers)} requests in {seconds:.1f} s; replica {victim_task[:12]} on "
        f"{victim_node} killed at request {kill.get('index')} "
        f"({kill.get('at', started) - started:.1f} s into the stream); a new replica listening "
        f"after request {back_at and back_at[0]} "
        f"({back_at[1] - kill['done'] if back_at else float('nan'):.1f} s after the kill); "
        f"the request it held took {max(latencies[int(kill.get('index', 0)) :][:2]):.2f} s; "
        f"the proxy sent {len(attempts)} request(s) again: {attempts[:5]}"
    )
    failed = [(index, answer) for index, answer in enumerate(answers) if answer != 200]
    assert failed == [], f"answers other than 200 (index, answer): {failed[:20]}"
    assert "done" in kill, "the replica was not killed"
    assert 0 < kill["index"] < len(answers), "the kill was not in the middle of the stream"
    # the premise: the killed replica held a request of the stream when it died, and the proxy
    # sent that request again (else the kill proved nothing of the proxy)
    # (the request in flight at the SIGSTOP, or the next one if that one had been answered)
    held = max(latencies[int(kill["index"]) : int(kill["index"]) + 2])
    assert held >= HOLD, f"no request was held by the stopped replica: {held:.2f} s at most"
    assert attempts, "the proxy sent no request again: none was in flight on the killed replica"
    assert back_at is not None, f"no new replica listened within {STREAM_TIMEOUT:.0f} s"
    assert len(answers) >= MIN_REQUESTS


def api_answers(hub_url: str, token: str, count: int = 20) -> list[int]:
    with httpx.Client(
        base_url=hub_url, headers={"Authorization": f"token {token}"}, timeout=30
    ) as client:
        return [client.get(f"{API}/compendium").status_code for _ in range(count)]


def test_the_erc_service_scales_up_and_down(
    cluster: LocalCluster,
    stack: ClusterStatus,
    token: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hub_url = cluster.hub_url()
    cluster.deploy_timeout = SCALE_TIMEOUT
    started = time.monotonic()
    try:
        # the operator's command: its progress on stderr, the status on stdout
        assert main(["cluster", "scale", "--name", cluster.name, "erc=3"]) == 0
        shown = capsys.readouterr()
        assert "erc: 3 running" in shown.err
        assert re.search(r"erc +│ replicated +│ 3/3 ", shown.out), shown.out
        assert len(running_tasks(cluster, "erc")) == 3
        assert api_answers(hub_url, token) == [200] * 20
        down = cluster.scale("erc", 1)
        assert (down.desired, down.running) == (1, 1)
        assert len(running_tasks(cluster, "erc")) == 1
        assert api_answers(hub_url, token) == [200] * 20
    finally:
        back = cluster.scale("erc", 2)
    assert (back.desired, back.running) == (2, 2)
    print(f"\nerc scaled 2 -> 3 -> 1 -> 2 in {time.monotonic() - started:.1f} s")


def test_the_workers_scale_with_the_active_execution_nodes(cluster: LocalCluster) -> None:
    nodes = sorted(execution_nodes(cluster))
    assert len(nodes) >= 2, "scaling the workers down needs two execution nodes"
    cluster.deploy_timeout = SCALE_TIMEOUT
    started = time.monotonic()
    try:
        fewer = cluster.scale("worker", len(nodes) - 1)
        assert (fewer.desired, fewer.running) == (len(nodes) - 1, len(nodes) - 1)
        # the last execution node is drained: it runs no worker
        workers = sorted(node for node, _ in running_tasks(cluster, "worker").values())
        assert workers == nodes[:-1]
    finally:
        again = cluster.scale("worker", len(nodes))
    assert (again.desired, again.running) == (len(nodes), len(nodes))
    poll(
        "a worker on every execution node",
        lambda: sorted(node for node, _ in running_tasks(cluster, "worker").values()) == nodes,
        SCALE_TIMEOUT,
    )
    print(
        f"\nworkers scaled {len(nodes)} -> {len(nodes) - 1} -> {len(nodes)} in "
        f"{time.monotonic() - started:.1f} s"
    )


def test_scaling_beyond_what_the_stack_allows_is_refused(
    cluster: LocalCluster, stack: ClusterStatus, capsys: pytest.CaptureFixture[str]
) -> None:
    for wanted, said in (
        ("hub=2", "hub runs one replica at most"),
        ("worker=99", "one per execution node"),
        ("nosuch=1", "has no service nosuch"),
    ):
        assert main(["cluster", "scale", "--name", cluster.name, wanted]) == 1
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and said in error, error
    with contextlib.closing(cluster.manager_client()) as manager:
        hub = manager.services.get(f"{cluster.name}_hub")
        assert hub.attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == 1
