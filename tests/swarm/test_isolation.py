"""Network isolation of the stack's executions (issue "Past one machine"): a job's container has
no network at all (`network: none`), and a worker lives on the internal overlay network
``workers``, which reaches the erc service and PostgreSQL and nothing else: not the hub on the
app network, not a public address. (The registry is its node's engine's business: the engine
pulls runtime images, the worker asks it through the node's Docker socket.)

Every probe is a TCP connect with a timeout; a public address is never reached, since neither
a job's container nor a worker's has a route off the cluster: its connect fails at once,
ENETUNREACH.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from erchub.services.cluster.local import ClusterStatus, LocalCluster
from tests.swarm.stack_client import (
    running_tasks,
    runtime_compendium,
    start_job,
    task_addresses,
    wait_for_job,
)

pytestmark = pytest.mark.swarm

#: a public address and port (Cloudflare's DNS over HTTPS): nothing of the cluster may reach it
PUBLIC = ("1.1.1.1", 443)
#: the hub's API and proxy ports (config/swarm/jupyterhub_config.py)
HUB_PORTS = (8081, 8000)
#: what the probes print before their JSON
PROBES = "probes: "

#: a probe of TCP addresses in Python, for a notebook cell or `python3 -c`: connect to each of
#: TARGETS (name -> [host, port]) within 5 s; prints PROBES and a JSON object: name ->
#: "connected" or the errno's name, and the network interfaces it has
PROBE_CODE = """
import errno, json, socket
results = {{}}
for name, (host, port) in {targets!r}.items():
    try:
        socket.create_connection((host, port), timeout=5).close()
        results[name] = "connected"
    except OSError as error:
        results[name] = errno.errorcode.get(error.errno, str(error))
results["interfaces"] = sorted(name for _, name in socket.if_nameindex())
print({prefix!r} + json.dumps(results))
"""


def probe_code(targets: dict[str, tuple[str, int]]) -> str:
    return PROBE_CODE.format(targets=targets, prefix=PROBES)


def probed(output: str) -> dict[str, Any]:
    """The probes' results in ``output`` (their line's JSON)."""
    [line] = [line for line in output.splitlines() if PROBES in line]
    results: dict[str, Any] = json.loads(line[line.index(PROBES) + len(PROBES) :])
    return results


def printed(notebook: Path) -> str:
    """What the cells of the executed ``notebook`` printed."""
    cells = json.loads(notebook.read_text())["cells"]
    return "".join(
        "".join(output.get("text", ""))
        for cell in cells
        for output in cell.get("outputs", ())
        if output.get("output_type") == "stream"
    )


def hub_targets(cluster: LocalCluster) -> dict[str, tuple[str, int]]:
    """The hub's ports at its address on the app network, and a public address."""
    [hub] = task_addresses(cluster, "hub", "app").values()
    return {
        **{f"hub:{port}": (hub, port) for port in HUB_PORTS},
        "public": PUBLIC,
    }


def unreachable(results: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return {name: results[name] for name in names if results[name] != "ENETUNREACH"}


def test_a_job_reaches_neither_the_hub_nor_a_public_address(
    cluster: LocalCluster, stack: ClusterStatus, token: str, tmp_path: Path
) -> None:
    targets = hub_targets(cluster)
    compendium = runtime_compendium(
        cluster, stack, token, tmp_path, probe_code(targets), "print('probed')"
    )
    job_id = start_job(stack, token, compendium)
    job = wait_for_job(stack, token, job_id)
    assert job["status"] == "success", (job["reason"], job["steps"])
    # the executed notebook, in the job's directory on the shared directory
    executed = list((Path(cluster.plan.shared_dir) / "data" / "jobs" / job_id).rglob("*.ipynb"))
    outputs = [printed(path) for path in executed if PROBES in printed(path)]
    assert outputs, f"no executed notebook with the probes' output among {executed}"
    results = probed(outputs[0])
    print(f"\na job's probes: {results}")
    # no interface but loopback: no address to go from, for any of them
    assert results["interfaces"] == ["lo"]
    assert unreachable(results, list(targets)) == {}


def test_a_worker_reaches_the_store_and_the_erc_service_and_nothing_else(
    cluster: LocalCluster, stack: ClusterStatus
) -> None:
    outside = {**hub_targets(cluster), "registry": (registry_address(cluster), 5000)}
    targets = {"postgres": ("postgres", 5432), "erc": ("erc", 10101), **outside}
    for node, container_id in running_tasks(cluster, "worker").values():
        with cluster.node_client(node) as engine:
            probe = engine.containers.get(container_id).exec_run(
                ["python3", "-c", probe_code(targets)]
            )
        output = probe.output.decode(errors="replace")
        assert probe.exit_code == 0, output
        results = probed(output)
        print(f"\nthe worker on {node}: {results}")
        assert (results["postgres"], results["erc"]) == ("connected", "connected")
        assert unreachable(results, list(outside)) == {}


def registry_address(cluster: LocalCluster) -> str:
    """The registry's address on the cluster's network (where the nodes' engines pull)."""
    registry = cluster.host.containers.get(cluster.plan.registry_address.split(":")[0])
    return str(registry.attrs["NetworkSettings"]["Networks"][cluster.plan.network]["IPAddress"])
