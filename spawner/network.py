"""The Docker network of ERC sessions, and the host firewall rule that keeps them to the hub.

The network is an internal bridge: containers on it have no route off the host. The host
itself is reachable at the network's gateway, where the hub's API and the erc service listen,
but so would be every other service of the host that listens on all interfaces.
``restrict_to_hub`` therefore adds an iptables rule: what comes in from the sessions' bridge is
dropped unless it goes to the hub's API port or the erc service's port, or answers a connection
the host opened (the proxy's requests to sessions).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

import docker

from erchub.errors import ErchubError
from erchub.spawner.clients import docker_client

#: the iptables chain that filters what sessions send to the host
FIREWALL_CHAIN = "ERCHUB-SESSIONS"
#: Docker's option naming a bridge network's interface
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"


@dataclass(frozen=True)
class SessionNetwork:
    name: str
    gateway: str
    #: the host's interface of the bridge
    bridge: str


def ensure_session_network(
    name: str, bridge: str = "erchub0", client: docker.DockerClient | None = None
) -> SessionNetwork:
    """Create the internal bridge network ``name`` (interface ``bridge``) unless it exists, on
    the engine of ``client`` (default: :func:`erchub.spawner.clients.docker_client`'s)."""
    if client is None:
        client = docker_client()
    try:
        network = client.networks.get(name)
    except docker.errors.NotFound:
        network = client.networks.create(
            name,
            driver="bridge",
            internal=True,
            options={BRIDGE_NAME_OPTION: bridge},
            labels={"org.erchub.session": "network"},
        )
        network.reload()
    configs = (network.attrs.get("IPAM") or {}).get("Config") or []
    gateway = next((config.get("Gateway") for config in configs if config.get("Gateway")), None)
    if not gateway:
        raise ErchubError(f"the Docker network {name} has no gateway address (IPAM: {configs})")
    if not network.attrs.get("Internal"):
        raise ErchubError(
            f"the Docker network {name} exists but is not internal: remove it "
            f"(docker network rm {name}) and restart the hub"
        )
    options = network.attrs.get("Options") or {}
    interface = options.get(BRIDGE_NAME_OPTION) or f"br-{network.id[:12]}"
    return SessionNetwork(name, str(gateway), interface)


def firewall_rules(bridge: str, ports: Sequence[int]) -> list[list[str]]:
    """The iptables rules (arguments after ``-A``/``-C``/``-I``) of ``restrict_to_hub``, in
    order: the jump from INPUT, the acceptance of answers, one acceptance per port, the drop."""
    return [
        ["INPUT", "-i", bridge, "-j", FIREWALL_CHAIN],
        [FIREWALL_CHAIN, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        *([FIREWALL_CHAIN, "-p", "tcp", "--dport", str(port), "-j", "ACCEPT"] for port in ports),
        [FIREWALL_CHAIN, "-j", "DROP"],
    ]


def restrict_to_hub(network: SessionNetwork, ports: Sequence[int]) -> None:
    """Let sessions reach the host only at ``ports``: the hub's API and the erc service
    (idempotent; several hubs on one host each add their ports). Raises ErchubError when
    iptables cannot be changed."""
    iptables = shutil.which("iptables")
    if iptables is None:
        raise ErchubError("iptables is not installed")

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [iptables, "-w", *arguments], capture_output=True, text=True, timeout=30
        )

    if run("-n", "-L", FIREWALL_CHAIN).returncode != 0:
        created = run("-N", FIREWALL_CHAIN)
        if created.returncode != 0:
            raise ErchubError(f"iptables -N {FIREWALL_CHAIN}: {created.stderr.strip()}")
    jump, established, *accepted, drop = firewall_rules(network.bridge, ports)
    # the final DROP first (appended once), then the accepts inserted above it
    order = [(jump, True), (drop, False), (established, True), *((r, True) for r in accepted)]
    for rule, insert in order:
        if run("-C", *rule).returncode == 0:
            continue
        chain, *spec = rule
        changed = run("-I", chain, "1", *spec) if insert else run("-A", *rule)
        if changed.returncode != 0:
            raise ErchubError(f"iptables {' '.join(rule)}: {changed.stderr.strip()}")
