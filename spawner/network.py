"""erchub's Docker networks and the host firewall rules that keep their containers in bounds.

Sessions: an internal bridge, no route off the host. The host itself is reachable at the
network's gateway, where the hub's API and the erc service listen, but so would be every other
service of the host that listens on all interfaces. ``restrict_to_hub`` therefore adds an
iptables rule: what comes in from the sessions' bridge is dropped unless it goes to the hub's
API port or the erc service's port, or answers a connection the host opened (the proxy's
requests to sessions).

Executions that an ERC asks network for (and the operator allows): a bridge of its own
(``ensure_execution_network``) that reaches the outside through Docker's masquerading, but
whose containers cannot talk to each other (no inter-container traffic), and
``restrict_executions`` drops, in the chain ``ERCHUB-EXECUTIONS`` jumped to from ``INPUT`` and
``FORWARD`` for that bridge, what they send to any address of the host (the gateway and every
other local address, broadcasts, the host's published ports) and to the private or cluster
ranges the operator lists; DNS queries to the resolvers Docker forwards to pass even when those
lie in such a range. Installing it needs root (iptables); without, it raises rather than leave
the network open.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import docker

from erchub.errors import ErchubError
from erchub.spawner.clients import docker_client

#: the iptables chain that filters what sessions send to the host
FIREWALL_CHAIN = "ERCHUB-SESSIONS"
#: Docker's option naming a bridge network's interface
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
#: Docker's option that lets (or not) containers of one bridge network talk to each other
BRIDGE_ICC_OPTION = "com.docker.network.bridge.enable_icc"

#: the Docker network of networked executions, and the iptables chain that bounds it
EXECUTION_NETWORK = "erchub-executions"
EXECUTION_CHAIN = "ERCHUB-EXECUTIONS"
#: what an execution never reaches unless the operator says otherwise: the private ranges of
#: RFC 1918 and link-local addresses (cloud metadata services live at 169.254.169.254)
DEFAULT_BLOCKED_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16")
#: where Docker's embedded DNS server finds the resolvers it forwards to
RESOLV_CONF = "/etc/resolv.conf"
#: what systemd-resolved lists behind its stub resolver (Docker reads it when resolv.conf
#: names only the stub)
SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"
#: the lock that makes the workers of one host change the firewall in turn
FIREWALL_LOCK = "erchub-firewall.lock"


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


IptablesRun = Callable[..., subprocess.CompletedProcess[str]]


def _iptables() -> IptablesRun:
    """A function running ``iptables -w ARGUMENTS`` (waiting for the xtables lock); raises
    ErchubError when iptables is not installed."""
    iptables = shutil.which("iptables")
    if iptables is None:
        raise ErchubError("iptables is not installed")

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [iptables, "-w", *arguments], capture_output=True, text=True, timeout=30
        )

    return run


def restrict_to_hub(network: SessionNetwork, ports: Sequence[int]) -> None:
    """Let sessions reach the host only at ``ports``: the hub's API and the erc service
    (idempotent; several hubs on one host each add their ports). Raises ErchubError when
    iptables cannot be changed."""
    run = _iptables()
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


# -- networked executions ----------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionNetwork:
    name: str
    gateway: str
    #: the host's interface of the bridge
    bridge: str


def ensure_execution_network(
    name: str = EXECUTION_NETWORK, client: docker.DockerClient | None = None
) -> ExecutionNetwork:
    """Create the bridge network ``name`` of networked executions unless it exists: not
    internal (it reaches the outside), its containers cannot reach each other, no IPv6. Raises
    ErchubError when a network of that name exists but is no such bridge."""
    if client is None:
        client = docker_client()
    try:
        network = client.networks.get(name)
    except docker.errors.NotFound:
        try:
            network = client.networks.create(
                name,
                driver="bridge",
                internal=False,
                enable_ipv6=False,
                options={BRIDGE_ICC_OPTION: "false"},
                labels={"org.erchub.execution": "network"},
            )
        except docker.errors.APIError as error:
            # another worker created it meanwhile: take that one
            try:
                network = client.networks.get(name)
            except docker.errors.NotFound:
                raise ErchubError(f"cannot create the Docker network {name}: {error}") from None
        network.reload()
    attrs = network.attrs
    options = attrs.get("Options") or {}
    remedy = f"remove it (docker network rm {name}) and let erchub create it"
    if attrs.get("Driver") != "bridge" or attrs.get("Internal"):
        raise ErchubError(
            f"the Docker network {name} of networked executions exists but is not a bridge "
            f"to the outside: {remedy}"
        )
    if str(options.get(BRIDGE_ICC_OPTION, "true")).lower() != "false":
        raise ErchubError(
            f"the Docker network {name} of networked executions lets containers reach each "
            f"other ({BRIDGE_ICC_OPTION} is not false): {remedy}"
        )
    configs = (attrs.get("IPAM") or {}).get("Config") or []
    gateway = next((config.get("Gateway") for config in configs if config.get("Gateway")), None)
    if not gateway:
        raise ErchubError(f"the Docker network {name} has no gateway address (IPAM: {configs})")
    interface = options.get(BRIDGE_NAME_OPTION) or f"br-{network.id[:12]}"
    return ExecutionNetwork(name, str(gateway), interface)


def ipv4_ranges(ranges: Iterable[str]) -> list[str]:
    """``ranges`` (CIDR ranges or single addresses) as IPv4 networks in CIDR form, host bits
    cleared; raises ValueError naming one that is not IPv4 (the executions have no IPv6)."""
    networks = []
    for text in ranges:
        network = ipaddress.ip_network(text.strip(), strict=False)
        if network.version != 4:
            raise ValueError(f"{text} is not an IPv4 range")
        networks.append(str(network))
    return networks


def resolv_conf_nameservers(text: str) -> list[str]:
    """The IPv4 nameservers of a resolv.conf's text, loopback ones left out (Docker's embedded
    DNS server does not forward to those from a container)."""
    servers = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or fields[0] != "nameserver":
            continue
        try:
            address = ipaddress.ip_address(fields[1])
        except ValueError:
            continue
        if address.version == 4 and not address.is_loopback:
            servers.append(str(address))
    return list(dict.fromkeys(servers))


def host_resolvers() -> list[str]:
    """The resolvers Docker's embedded DNS server forwards containers' queries to: the host's
    resolv.conf nameservers, else (a systemd-resolved stub only) the ones behind the stub."""
    for path in (RESOLV_CONF, SYSTEMD_RESOLV_CONF):
        try:
            with open(path, encoding="utf-8", errors="replace") as stream:
                servers = resolv_conf_nameservers(stream.read())
        except OSError:
            continue
        if servers:
            return servers
    return []


def execution_jumps(bridge: str) -> list[list[str]]:
    """The rules (arguments after ``-I``/``-C``) that send what comes from the executions'
    bridge through :data:`EXECUTION_CHAIN`: addressed to the host (``INPUT``) or through it
    (``FORWARD``)."""
    return [
        ["INPUT", "-i", bridge, "-j", EXECUTION_CHAIN],
        ["FORWARD", "-i", bridge, "-j", EXECUTION_CHAIN],
    ]


def execution_firewall_rules(
    blocked: Sequence[str], resolvers: Sequence[str] = ()
) -> list[list[str]]:
    """The rules of :data:`EXECUTION_CHAIN` (arguments after ``-A``/``-C``), in order. What
    the chain does not drop returns to Docker's own rules, which let it out.

    1. packets of connections already judged (answers, and the host's own connections) pass;
    2. every address of the host is dropped: the gateway and every other local address, then
       broadcasts and multicasts; so are connections to the host's published ports, which
       Docker rewrites to a container's address before this chain sees them;
    3. DNS (port 53, UDP and TCP) to the ``resolvers`` that lie in a ``blocked`` range passes;
    4. every ``blocked`` range is dropped.
    """
    ranges = ipv4_ranges(blocked)
    chain = EXECUTION_CHAIN
    rules = [
        [chain, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "RETURN"],
        [chain, "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DROP"],
        [chain, "-m", "addrtype", "--dst-type", "BROADCAST", "-j", "DROP"],
        [chain, "-m", "addrtype", "--dst-type", "MULTICAST", "-j", "DROP"],
        [chain, "-m", "conntrack", "--ctstate", "DNAT", "-j", "DROP"],
    ]
    networks = [ipaddress.ip_network(text) for text in ranges]
    for resolver in dict.fromkeys(resolvers):
        address = ipaddress.ip_address(resolver)
        if any(address in network for network in networks):
            for protocol in ("udp", "tcp"):
                dns = ["-p", protocol, "-m", protocol, "--dport", "53"]
                rules.append([chain, "-d", f"{address}/32", *dns, "-j", "RETURN"])
    rules += [[chain, "-d", network, "-j", "DROP"] for network in ranges]
    return rules


@contextlib.contextmanager
def _firewall_lock() -> Iterator[None]:
    """Held while this process changes erchub's firewall rules (the workers of one host start
    together; iptables' own lock covers one command, not a sequence)."""
    directory = "/run/lock" if os.path.isdir("/run/lock") else tempfile.gettempdir()
    descriptor = os.open(
        os.path.join(directory, FIREWALL_LOCK), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600
    )
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def restrict_executions(
    network: ExecutionNetwork, blocked: Sequence[str], resolvers: Sequence[str] = ()
) -> None:
    """Install :func:`execution_firewall_rules` for the executions' bridge (idempotent: rules
    in place are kept; a chain that differs is rebuilt behind a DROP, so it never lets through
    what neither version would). Raises ErchubError when iptables cannot be changed: no
    iptables, or no root."""
    wanted = execution_firewall_rules(blocked, resolvers)
    run = _iptables()

    def must(*arguments: str) -> None:
        done = run(*arguments)
        if done.returncode != 0:
            hint = " (installing erchub's firewall needs root)" if os.geteuid() != 0 else ""
            raise ErchubError(f"iptables {' '.join(arguments)}: {done.stderr.strip()}{hint}")

    with _firewall_lock():
        if run("-n", "-L", EXECUTION_CHAIN).returncode != 0:
            must("-N", EXECUTION_CHAIN)
        listed = run("-S", EXECUTION_CHAIN)
        present = [line for line in listed.stdout.splitlines() if line.startswith("-A ")]
        if len(present) != len(wanted) or any(run("-C", *rule).returncode for rule in wanted):
            must("-I", EXECUTION_CHAIN, "1", "-j", "DROP")
            for _ in present:
                must("-D", EXECUTION_CHAIN, "2")
            for rule in wanted:
                must("-A", *rule)
            must("-D", EXECUTION_CHAIN, "1")
        for chain, *spec in execution_jumps(network.bridge):
            if run("-C", chain, *spec).returncode != 0:
                must("-I", chain, "1", *spec)
