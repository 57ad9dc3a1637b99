"""Networked executions on a real engine: what an allowed job reaches, and what it never does.

A worker (in process, with its store) runs jobs whose erc.yml asks for network. Granted and
allowed, the notebook runs on erchub's own network (``erchub-executions``) and tries to open a
TCP connection to ports this test listens on at the host, standing for the hub's API and the
erc service: one bound on 0.0.0.0, one on the network's gateway; it tries every IPv4 address of
the host. Each attempt fails, while the same probe in a container on Docker's default bridge
(nothing of erchub's in its way) connects to all of them: the test can fail. Names resolve and
the outside is reached from both (the outside only where the control reaches it). Without the
grant, the job ends at validate_compendium and no container is started.

Needs root and iptables (the firewall is the host's): skips without, fails in CI.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from erchub import workspace
from erchub.services.jobs.runner import JOB_LABEL, SCOPE_NETWORK, JobRunner, new_job_id
from erchub.services.jobs.worker import Worker
from erchub.services.store import open_store
from erchub.services.store.base import CompendiumRecord, JobRecord
from erchub.spawner.builder import ImageBuilder
from erchub.spawner.network import BRIDGE_ICC_OPTION, BRIDGE_NAME_OPTION, EXECUTION_CHAIN
from erchub.steps import JobStatus
from tests.conftest import BASE_IMAGE, require_tier, write_notebook

pytestmark = pytest.mark.docker

#: seconds one connection attempt may take (a dropped SYN is never answered)
CONNECT_TIMEOUT = 3
#: what the probe reaches outside (Debian's mirror: the one outside host this machine reaches)
OUTSIDE_HOST = "deb.debian.org"

PROBE = """\
import json, socket
TARGETS = {targets!r}
def attempt(host, port):
    try:
        socket.create_connection((host, port), timeout={timeout}).close()
        return "connected"
    except OSError as error:
        return type(error).__name__
try:
    outside_address = socket.gethostbyname({outside!r})
except OSError as error:
    outside_address, outside = None, "no address: " + type(error).__name__
else:
    outside = attempt(outside_address, 80)
try:
    with open("/proc/sys/net/ipv6/conf/all/disable_ipv6") as stream:
        ipv6_disabled = stream.read().strip() == "1"
except OSError:
    ipv6_disabled = None
print(json.dumps({{
    "host": {{f"{{h}}:{{p}}": attempt(h, p) for h, p in TARGETS}},
    "resolved": outside_address is not None,
    "outside": outside,
    "address": socket.gethostbyname(socket.gethostname()),
    "ipv6_disabled": ipv6_disabled,
}}))
"""


def firewall_problem() -> str | None:
    if os.geteuid() != 0:
        return "networked executions need root to install their firewall (iptables)"
    if shutil.which("iptables") is None:
        return "iptables is not installed"
    return None


class Listener:
    """A TCP port of the host, bound on ``host``, that accepts and remembers who connected."""

    def __init__(self, host: str) -> None:
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, 0))
        self.socket.listen(16)
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.peers: list[str] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, peer = self.socket.accept()
            except OSError:
                continue
            self.peers.append(peer[0])
            connection.close()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.socket.close()


def host_addresses() -> list[str]:
    """Every global IPv4 address of this host (its interfaces, Docker's bridges included)."""
    listed = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    addresses = [line.split()[3].split("/")[0] for line in listed.stdout.splitlines()]
    return list(dict.fromkeys(addresses))


def network_subnet(client: Any, name: str) -> ipaddress.IPv4Network:
    configs = client.networks.get(name).attrs["IPAM"]["Config"]
    return ipaddress.IPv4Network(next(c["Subnet"] for c in configs if "." in c.get("Subnet", "")))


def printed_json(notebook: Path) -> dict[str, Any]:
    executed = nbformat.read(notebook, as_version=4)
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            if output.get("name") == "stdout":
                return dict(json.loads(output["text"].strip().splitlines()[-1]))
    raise AssertionError(f"the probe printed nothing: {executed.cells}")


def networked_erc_yml(erc_id: str) -> str:
    return (
        f"spec_version: 1\nid: {erc_id}\nmain: main.ipynb\ndisplay: main.html\n"
        "licenses: {code: MIT, data: CC0-1.0, text: CC-BY-4.0, metadata: CC0-1.0}\n"
        "execution:\n  network: true\n  timeout: 120\n"
    )


class Site:
    """A data directory, a store and an in-process worker that allows networked executions."""

    def __init__(self, root: Path, builder: ImageBuilder) -> None:
        self.data_dir = root / "data"
        self.data_dir.mkdir(parents=True)
        self.store = open_store(f"sqlite:///{self.data_dir / 'erchub.sqlite'}")
        runner = JobRunner(data_dir=str(self.data_dir), allow_network=True, builder=builder)
        self.worker = Worker(
            data_dir=str(self.data_dir), store=self.store, runner=runner, poll_interval=0.1
        )
        self.worker.check_settings()  # makes the network and installs its firewall

    def add_job(self, source: str, *, granted: bool) -> str:
        compendium_id = str(uuid.uuid4())
        directory = self.data_dir / "compendia" / compendium_id
        write_notebook(directory / "main.ipynb", source)
        (directory / "erc.yml").write_text(networked_erc_yml(compendium_id))
        workspace.prepare_compendium(directory, write=True)
        metadata = json.loads((directory / ".erc" / "metadata_o2r_1.json").read_text())
        now = time.time()
        self.store.add_compendium(
            CompendiumRecord(compendium_id, "author", metadata=metadata, created=now, updated=now)
        )
        job = JobRecord(new_job_id(), compendium_id, "author", created=now)
        job.network_granted = granted
        self.store.add_job(job)
        return job.id

    def run_one(self, job_id: str) -> JobRecord:
        self.worker.serve(once=True)
        job = self.store.get_job(job_id)
        assert job is not None
        return job

    def close(self) -> None:
        self.worker.close()


@pytest.fixture
def site(tmp_path: Path, builder: ImageBuilder) -> Iterator[Site]:
    require_tier("docker", firewall_problem())
    site = Site(tmp_path, builder)
    yield site
    site.close()


def test_an_allowed_networked_job_reaches_the_outside_but_never_the_host(
    site: Site, docker_client: Any
):
    runtime = site.worker.runner.docker_runtime
    network = docker_client.networks.get(runtime.execution_network)
    gateway = next(c["Gateway"] for c in network.attrs["IPAM"]["Config"] if c.get("Gateway"))
    anywhere, on_gateway = Listener("0.0.0.0"), Listener(gateway)
    try:
        targets = [(gateway, anywhere.port), (gateway, on_gateway.port)]
        targets += [(address, anywhere.port) for address in host_addresses()]
        probe = PROBE.format(targets=targets, timeout=CONNECT_TIMEOUT, outside=OUTSIDE_HOST)

        # the control: a container on Docker's default bridge reaches every one of them
        started = time.monotonic()
        control = json.loads(
            docker_client.containers.run(
                BASE_IMAGE, ["python3", "-c", probe], remove=True, network_mode="bridge"
            ).decode()
        )
        assert set(control["host"].values()) == {"connected"}, control
        assert anywhere.peers and on_gateway.peers
        anywhere.peers.clear()
        on_gateway.peers.clear()

        job_id = site.add_job(probe, granted=True)
        job = site.run_one(job_id)
        assert job.status == JobStatus.SUCCESS, job.reason
        execute = job.steps["image_execute"]
        assert execute["status"] == "success"
        validate = " ".join(job.steps["validate_compendium"]["text"])
        assert f"network allowed: the execution runs on the network {network.name}" in validate
        seen = printed_json(site.data_dir / "jobs" / job_id / "output" / "main.ipynb")
        print(f"\ncontrol {control}\njob {seen}\n({time.monotonic() - started:.1f} s)")

        # on erchub's network, not Docker's default bridge; IPv4 only
        assert ipaddress.IPv4Address(seen["address"]) in network_subnet(docker_client, network.name)
        assert seen["ipv6_disabled"] is True
        # the host, at every address, and the ports bound on 0.0.0.0 and on the gateway: never
        assert set(seen["host"]) == set(control["host"])
        assert "connected" not in seen["host"].values(), seen
        assert anywhere.peers == on_gateway.peers == []
        # names resolve as they do for the control, and the outside is reached where the
        # control reaches it
        assert seen["resolved"] is control["resolved"] is True
        if control["outside"] == "connected":
            assert seen["outside"] == "connected", seen
    finally:
        anywhere.close()
        on_gateway.close()
    assert docker_client.containers.list(all=True, filters={"label": f"{JOB_LABEL}={job_id}"}) == []


def test_the_worker_installed_the_chain_on_the_host(site: Site, docker_client: Any):
    runtime = site.worker.runner.docker_runtime
    network = docker_client.networks.get(runtime.execution_network)
    bridge = network.attrs["Options"].get(BRIDGE_NAME_OPTION) or f"br-{network.id[:12]}"
    listed = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, timeout=30)
    assert f"-A INPUT -i {bridge} -j {EXECUTION_CHAIN}" in listed.stdout
    assert f"-A FORWARD -i {bridge} -j {EXECUTION_CHAIN}" in listed.stdout
    assert f"-A {EXECUTION_CHAIN} -m addrtype --dst-type LOCAL -j DROP" in listed.stdout
    for blocked in runtime.blocked_ranges:
        assert f"-A {EXECUTION_CHAIN} -d {blocked} -j DROP" in listed.stdout
    assert network.attrs["Internal"] is False
    assert network.attrs["Options"][BRIDGE_ICC_OPTION] == "false"


def test_a_networked_compendium_without_the_grant_ends_at_validation(
    site: Site, docker_client: Any
):
    job_id = site.add_job("print('never runs')", granted=False)
    job = site.run_one(job_id)
    assert job.status == JobStatus.FAILURE
    validate = job.steps["validate_compendium"]
    assert validate["status"] == "failure"
    assert SCOPE_NETWORK in validate["reason"] and "nothing was run" in validate["reason"]
    assert job.reason == f"validate_compendium: {validate['reason']}"
    for step in ("image_build", "image_execute"):
        assert job.steps[step]["status"] == "skipped"
    assert not (site.data_dir / "jobs" / job_id / "output").exists()
    assert docker_client.containers.list(all=True, filters={"label": f"{JOB_LABEL}={job_id}"}) == []
