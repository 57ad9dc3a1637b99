"""Network for an execution is the operator's decision (pure parts and the service's record).

What is decided (a compendium that asks for network, the site's ``JobRunner.allow_network``,
the starter's grant ``custom:erc:network``), the firewall rules of the executions' network and
how they are installed (against a stand-in for iptables), the settings, the refusal at
validate_compendium, and the grant the erc service records with each job it creates. The rules'
effect on a real engine: ``tests/docker/test_execution_network.py``.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from traitlets import TraitError

from erchub.errors import ErchubError, ExecutionError
from erchub.services.jobs.runner import (
    SCOPE_NETWORK,
    JobRunner,
    network_grant,
    network_refusal,
)
from erchub.services.jobs.runtime import DockerRuntime
from erchub.services.jobs.worker import Worker
from erchub.spawner import network
from erchub.spawner.network import (
    DEFAULT_BLOCKED_RANGES,
    EXECUTION_CHAIN,
    ExecutionNetwork,
    execution_firewall_rules,
    execution_jumps,
    resolv_conf_nameservers,
    restrict_executions,
)
from erchub.steps import JobOptions
from hub.config import ERC_SCOPES, USER_ERC_SCOPES
from tests.conftest import write_notebook
from tests.unit.test_api_rules import (
    ACCESS,
    USER_SCOPES,
    FakeHubAuth,
    call,
    model,
    serving,
    upload,
)

ASKS = "erc.yml asks for network (execution.network: true)"

# -- the decision ------------------------------------------------------------------------------


def test_a_compendium_that_does_not_ask_is_never_refused():
    for allowed in (False, True):
        for granted in (None, False, True):
            assert network_refusal(False, allowed, granted) is None


def test_network_needs_the_site_and_the_grant():
    off = network_refusal(True, False, True)
    assert off is not None and off.startswith(ASKS)
    assert "JobRunner.allow_network" in off and "$ERCHUB_ALLOW_NETWORK" in off
    # the site's setting is named first: a grant does not help where it is off
    assert network_refusal(True, False, None) == off
    ungranted = network_refusal(True, True, False)
    assert ungranted is not None and ungranted.startswith(ASKS)
    assert SCOPE_NETWORK in ungranted and "ERCService.network_for_everyone" in ungranted
    assert network_refusal(True, True, True) is None
    # the operator's own run (the CLI) has no starter to weigh
    assert network_refusal(True, True, None) is None


def test_who_holds_the_grant():
    assert network_grant([*USER_SCOPES, SCOPE_NETWORK]) is True
    assert network_grant(USER_SCOPES) is False
    assert network_grant(USER_SCOPES, everyone=True) is True
    assert network_grant([ACCESS], admin=True) is True


def test_the_scope_is_the_hubs_but_not_every_users():
    assert SCOPE_NETWORK in ERC_SCOPES and ERC_SCOPES[SCOPE_NETWORK]["description"]
    assert SCOPE_NETWORK not in USER_ERC_SCOPES


# -- the rules ---------------------------------------------------------------------------------


def test_the_rules_drop_the_host_then_the_ranges_and_let_dns_through():
    rules = execution_firewall_rules(DEFAULT_BLOCKED_RANGES, ["10.255.255.53", "9.9.9.9"])
    assert all(rule[0] == EXECUTION_CHAIN for rule in rules)
    text = [" ".join(rule[1:]) for rule in rules]
    assert text == [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        "-m addrtype --dst-type LOCAL -j DROP",
        "-m addrtype --dst-type BROADCAST -j DROP",
        "-m addrtype --dst-type MULTICAST -j DROP",
        "-m conntrack --ctstate DNAT -j DROP",
        # only a resolver inside a blocked range needs a way through, and only port 53
        "-d 10.255.255.53/32 -p udp -m udp --dport 53 -j RETURN",
        "-d 10.255.255.53/32 -p tcp -m tcp --dport 53 -j RETURN",
        "-d 10.0.0.0/8 -j DROP",
        "-d 172.16.0.0/12 -j DROP",
        "-d 192.168.0.0/16 -j DROP",
        "-d 169.254.0.0/16 -j DROP",
    ]
    assert not any(rule[-1] == "ACCEPT" for rule in rules)  # Docker's own rules let out the rest


def test_ranges_are_normalised_and_must_be_ipv4():
    rules = execution_firewall_rules(["100.64.1.2/10", " 203.0.113.7"])
    assert [rule[2] for rule in rules if rule[1] == "-d"] == ["100.64.0.0/10", "203.0.113.7/32"]
    with pytest.raises(ValueError, match="fd00::/8 is not an IPv4 range"):
        execution_firewall_rules(["fd00::/8"])
    with pytest.raises(ValueError):
        execution_firewall_rules(["10.0.0.0/33"])


def test_both_ways_through_the_host_lead_into_the_chain():
    assert execution_jumps("br-0123456789ab") == [
        ["INPUT", "-i", "br-0123456789ab", "-j", EXECUTION_CHAIN],
        ["FORWARD", "-i", "br-0123456789ab", "-j", EXECUTION_CHAIN],
    ]


def test_the_resolvers_docker_forwards_to():
    text = (
        "# generated\nsearch example.org\nnameserver 127.0.0.53\nnameserver 10.0.0.2 # vpc\n"
        "nameserver fd00::53\nnameserver 1.1.1.1\nnameserver 10.0.0.2\nnameserver bogus\n"
    )
    assert resolv_conf_nameservers(text) == ["10.0.0.2", "1.1.1.1"]
    assert resolv_conf_nameservers("nameserver 127.0.0.53\n") == []


class FakeIptables:
    """iptables' filter table as the commands restrict_executions runs change it; ``seen``
    holds every state of the executions' chain that was in force while it changed."""

    def __init__(self, root: bool = True) -> None:
        self.root = root
        self.chains: dict[str, list[list[str]]] = {"INPUT": [], "FORWARD": []}
        self.seen: list[list[list[str]]] = []

    def __call__(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        def done(code: int = 0, out: str = "", err: str = "") -> subprocess.CompletedProcess[str]:
            return subprocess.CompletedProcess(["iptables", *arguments], code, out, err)

        if not self.root:
            return done(4, err="iptables v1.8.9 (nf_tables): Permission denied (you must be root)")
        option, chain, *rest = arguments
        if option == "-n":  # -n -L CHAIN
            return done(0 if rest[0] in self.chains else 1)
        if option == "-N":
            self.chains[chain] = []
            return done()
        if chain not in self.chains:
            return done(1, err=f"Chain '{chain}' does not exist")
        rules = self.chains[chain]
        if option == "-S":
            lines = [f"-N {chain}"] + [f"-A {chain} {' '.join(rule)}" for rule in rules]
            return done(out="\n".join(lines) + "\n")
        if option == "-C":
            return done(0 if rest in rules else 1)
        if option == "-A":
            rules.append(rest)
        elif option == "-I":
            rules.insert(int(rest[0]) - 1, rest[1:])
        elif option == "-D":
            if len(rest) == 1 and rest[0].isdigit():
                del rules[int(rest[0]) - 1]
            else:
                rules.remove(rest)
        if chain == EXECUTION_CHAIN:
            self.seen.append([list(rule) for rule in rules])
        return done()

    def chain(self) -> list[list[str]]:
        return [[EXECUTION_CHAIN, *rule] for rule in self.chains[EXECUTION_CHAIN]]


@pytest.fixture
def iptables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeIptables:
    fake = FakeIptables()
    monkeypatch.setattr(network, "_iptables", lambda: fake)
    monkeypatch.setattr(network.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(network.os.path, "isdir", lambda path: False)  # no /run/lock: tmp_path
    return fake


BRIDGE = ExecutionNetwork("erchub-executions", "172.19.0.1", "br-0123456789ab")


def test_installing_is_idempotent(iptables: FakeIptables):
    restrict_executions(BRIDGE, DEFAULT_BLOCKED_RANGES, ["10.255.255.53"])
    wanted = execution_firewall_rules(DEFAULT_BLOCKED_RANGES, ["10.255.255.53"])
    assert iptables.chain() == wanted
    jumps = [["-i", BRIDGE.bridge, "-j", EXECUTION_CHAIN]]
    assert iptables.chains["INPUT"] == iptables.chains["FORWARD"] == jumps
    changes = len(iptables.seen)
    restrict_executions(BRIDGE, DEFAULT_BLOCKED_RANGES, ["10.255.255.53"])
    assert len(iptables.seen) == changes and iptables.chain() == wanted
    assert iptables.chains["INPUT"] == iptables.chains["FORWARD"] == jumps


def test_a_changed_chain_is_rebuilt_behind_a_drop(iptables: FakeIptables):
    restrict_executions(BRIDGE, ["10.0.0.0/8", "192.168.0.0/16"])
    iptables.seen.clear()
    restrict_executions(BRIDGE, ["10.0.0.0/8", "100.64.0.0/10"])
    assert iptables.chain() == execution_firewall_rules(["10.0.0.0/8", "100.64.0.0/10"])
    # while it changed, the chain began with a DROP: it never let through what neither version
    # of it would (the last state is the new chain itself)
    assert all(state[0] == ["-j", "DROP"] for state in iptables.seen[:-1])
    assert iptables.seen[-1][0] != ["-j", "DROP"]


def test_without_root_nothing_is_left_open(iptables: FakeIptables):
    iptables.root = False
    with pytest.raises(ErchubError, match="Permission denied"):
        restrict_executions(BRIDGE, DEFAULT_BLOCKED_RANGES)


def test_a_network_that_cannot_be_protected_runs_nothing(monkeypatch: pytest.MonkeyPatch):
    def no_iptables() -> Any:
        raise ErchubError("iptables is not installed")

    monkeypatch.setattr(network, "_iptables", no_iptables)
    monkeypatch.setattr(network, "ensure_execution_network", lambda name, client: BRIDGE)
    with pytest.raises(ExecutionError) as raised:
        DockerRuntime().prepare_network(client=object())
    message = str(raised.value)
    assert "firewall" in message and "iptables is not installed" in message
    assert "JobRunner.allow_network" in message


def test_a_worker_that_cannot_protect_the_network_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    def refuse(self: DockerRuntime, client: Any = None) -> str:
        raise ExecutionError("no networked execution without its firewall: no root")

    monkeypatch.setattr(DockerRuntime, "prepare_network", refuse)
    worker = Worker(data_dir=str(tmp_path))
    try:
        worker.check_settings()  # networked executions off: nothing to prepare
        worker.runner.allow_network = True
        with pytest.raises(TraitError, match=r"JobRunner\.allow_network is on, but no networked"):
            worker.check_settings()
    finally:
        worker.close()


# -- the settings ------------------------------------------------------------------------------


def test_settings_and_their_defaults(monkeypatch: pytest.MonkeyPatch):
    for name in ("ALLOW_NETWORK", "BLOCKED_RANGES", "DNS_SERVERS", "EXECUTION_NETWORK"):
        monkeypatch.delenv(f"ERCHUB_{name}", raising=False)
    monkeypatch.setattr(network, "host_resolvers", lambda: ["10.255.255.53"])
    assert JobRunner().allow_network is False
    runtime = DockerRuntime()
    assert runtime.execution_network == "erchub-executions"
    assert runtime.blocked_ranges == list(DEFAULT_BLOCKED_RANGES)
    assert runtime.dns_servers == ["10.255.255.53"]
    monkeypatch.setenv("ERCHUB_ALLOW_NETWORK", "true")
    monkeypatch.setenv("ERCHUB_BLOCKED_RANGES", "10.0.0.0/8, 100.64.0.0/10")
    monkeypatch.setenv("ERCHUB_DNS_SERVERS", "10.0.0.2")
    assert JobRunner().allow_network is True
    runtime = DockerRuntime()
    assert runtime.blocked_ranges == ["10.0.0.0/8", "100.64.0.0/10"]
    assert runtime.dns_servers == ["10.0.0.2"]
    # a config file wins over the environment
    assert JobRunner(allow_network=False).allow_network is False


def test_bad_settings_are_refused_naming_them():
    with pytest.raises(TraitError, match=r"DockerRuntime\.blocked_ranges: fd00::/8"):
        DockerRuntime(blocked_ranges=["fd00::/8"])
    with pytest.raises(TraitError, match=r"DockerRuntime\.dns_servers"):
        DockerRuntime(dns_servers=["10.0.0.0/8"])
    with pytest.raises(TraitError, match=r"DockerRuntime\.dns_servers"):
        DockerRuntime(dns_servers=["resolver.example.org"])


# -- the refusal at validate_compendium --------------------------------------------------------


def networked_compendium(root: Path) -> Path:
    write_notebook(root / "main.ipynb", "print('ran')")
    (root / "erc.yml").write_text(
        "spec_version: 1\nid: 3f1c2a4e-0b5f-4e6f-8a9b-1c2d3e4f5a6b\nmain: main.ipynb\n"
        "display: main.html\n"
        "licenses: {code: MIT, data: CC0-1.0, text: CC-BY-4.0, metadata: CC0-1.0}\n"
        "execution:\n  network: true\n"
    )
    return root


@pytest.mark.parametrize(
    ("allowed", "granted", "words"),
    [
        (False, True, "JobRunner.allow_network"),
        (True, False, SCOPE_NETWORK),
    ],
    ids=["site-off", "no-grant"],
)
def test_a_compendium_asking_for_network_where_it_may_not_ends_at_validation(
    tmp_path: Path, allowed: bool, granted: bool, words: str
):
    compendium = networked_compendium(tmp_path / "ws")
    runner = JobRunner(data_dir=str(tmp_path / "data"), allow_network=allowed)
    result = runner.run(compendium, options=JobOptions(check=False), network_granted=granted)
    assert result.status == "failure"
    step = result.job.step("validate_compendium")
    assert step.status == "failure"
    assert step.reason.startswith(ASKS) and words in step.reason
    assert "nothing was run" in step.reason
    assert result.job.failure_reason == f"validate_compendium: {step.reason}"
    for name in ("generate_manifest", "image_build", "image_execute"):
        assert result.job.step(name).status == "skipped"
    assert not (result.directory / "output").exists()


# -- the grant the service records -------------------------------------------------------------


@pytest.fixture
async def service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, Any]]:
    monkeypatch.setattr(
        FakeHubAuth,
        "users",
        {
            **FakeHubAuth.users,
            "net-token": model("net", [*USER_SCOPES, SCOPE_NETWORK]),
        },
    )
    from erchub.services.handlers.base import BaseHandler

    monkeypatch.setattr(BaseHandler, "hub_auth_class", FakeHubAuth)
    async with serving(tmp_path) as (origin, erc):
        yield f"{origin}/services/erc/api/v1", erc


async def test_each_job_records_its_starters_grant(service: tuple[str, Any], tmp_path: Path):
    api, erc = service
    granted = {}
    for token in ("alice-token", "net-token", "admin-token"):
        compendium = await upload(api, token, tmp_path)
        response = await call(api, "POST", "/job", token, json={"compendium_id": compendium})
        assert response.status_code == 201, response.text
        granted[token] = erc.store.get_job(response.json()["job_id"]).network_granted
    assert granted == {"alice-token": False, "net-token": True, "admin-token": True}
    # the operator's grant to everyone
    erc.network_for_everyone = True
    compendium = await upload(api, "alice-token", tmp_path)
    response = await call(api, "POST", "/job", "alice-token", json={"compendium_id": compendium})
    assert erc.store.get_job(response.json()["job_id"]).network_granted is True


async def test_a_substitutions_job_records_its_starters_grant(
    service: tuple[str, Any], tmp_path: Path
):
    api, erc = service
    for token, expected in (("alice-token", False), ("net-token", True)):
        base = await upload(api, token, tmp_path)
        overlay = await upload(api, token, tmp_path)
        body = {
            "base": base,
            "overlay": overlay,
            "substitutionFiles": [{"base": "main.ipynb", "overlay": "main.ipynb"}],
        }
        response = await call(api, "POST", "/substitution", token, json=body)
        assert response.status_code == 201, response.text
        assert erc.store.get_job(response.json()["job_id"]).network_granted is expected
