"""erchub on Kubernetes, on paper (erchub.services.cluster.kubernetes and
erchub.services.jobs.kubernetes): the committed files are the rendered ones, every object loads
into the ``kubernetes`` client's models without losing a field, the NetworkPolicies isolate job
pods and keep workers to their peers, and a job pod gets the Docker runtime's limits. No
cluster: nothing here reaches an API server."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client
from kubernetes.utils import parse_quantity
from traitlets.config import Config

from erchub.erc import parse_memory
from erchub.hub.config import ERC_ADMIN_ROLE, ERC_SCOPES, SERVICE_NAME, TEMPLATE_DIRECTORY
from erchub.services.cluster import kubernetes as deployment
from erchub.services.cluster.plan import ROLES, swarm_labels
from erchub.services.jobs.kubernetes import (
    NETWORK_LABEL,
    PUBLIC_NETWORK,
    ExecutionLimits,
    cpu_quantity,
    default_limits,
    job_manifest,
    memory_quantity,
)
from erchub.services.jobs.runtime import (
    DEADLINE_GRACE_SECONDS,
    DockerRuntime,
    ExecutionSpec,
    container_command,
)
from erchub.spawner.buildpacks import NB_UID
from erchub.spawner.network import DEFAULT_BLOCKED_RANGES
from erchub.spawner.spawner import SESSION_TOKEN_SCOPES
from tests.unit.test_api_rules import serving

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "kubernetes"
SETTINGS = deployment.KubernetesSettings()
#: the rendered files that are not API objects
NOT_API_OBJECTS = {"kustomization.yaml", "kubelet-execution.yaml", "z2jh-values.yaml"}
CLUSTER_SCOPED = {"Namespace"}
NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
DIGEST = "registry.example.org/erchub/runtime@sha256:" + "ab" * 32


def committed(name: str) -> list[Any]:
    return [doc for doc in yaml.safe_load_all((CONFIG / name).read_text()) if doc is not None]


def api_objects() -> Iterator[tuple[str, dict[str, Any]]]:
    for name in deployment.render_files(SETTINGS):
        if name not in NOT_API_OBJECTS:
            for document in committed(name):
                yield name, document


API_OBJECTS = list(api_objects())


def objects_of(kind: str) -> list[dict[str, Any]]:
    return [document for _, document in API_OBJECTS if document["kind"] == kind]


def the_object(kind: str, name: str) -> dict[str, Any]:
    (found,) = (doc for doc in objects_of(kind) if doc["metadata"]["name"] == name)
    return found


def model_name(document: dict[str, Any]) -> str:
    """The client's model of an object: ``apps/v1`` ``Deployment`` is ``V1Deployment``."""
    version = document["apiVersion"].rpartition("/")[2]
    return version[0].upper() + version[1:] + document["kind"]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are rendered"
    return selector.get("matchLabels", {}).items() <= labels.items()


def policies_selecting(labels: dict[str, str]) -> list[dict[str, Any]]:
    policies = objects_of("NetworkPolicy")
    return [policy for policy in policies if selects(policy["spec"]["podSelector"], labels)]


def spec(**changes: Any) -> ExecutionSpec:
    job = Path("/var/lib/erchub/jobs/20250101T120000-0a1b2c")
    fields = {
        "compendium": job / "compendium",
        "notebook": job / "input.ipynb",
        "output": job / "output",
        "executed_name": "main.ipynb",
        "display_name": "main.html",
        **changes,
    }
    return ExecutionSpec(**fields)


def pod_of(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]


# -- the committed files ----------------------------------------------------------------------


def test_the_committed_files_are_the_rendered_ones() -> None:
    rendered = deployment.render_files(SETTINGS)
    assert {path.name for path in CONFIG.glob("*.yaml")} == set(rendered)
    for name, text in rendered.items():
        assert (CONFIG / name).read_text() == text, f"render again: {name} drifted"
    assert deployment.main(["--check", "--output", str(CONFIG)]) == 0


def test_every_file_says_it_is_on_paper() -> None:
    for name in deployment.render_files(SETTINGS):
        assert "ON PAPER" in (CONFIG / name).read_text().splitlines()[2]


def test_the_kustomization_applies_every_manifest_but_the_example_and_the_non_objects() -> None:
    (kustomization,) = committed("kustomization.yaml")
    applied = set(kustomization["resources"])
    assert applied == {name for name, _ in API_OBJECTS} - {"job-example.yaml"}


# -- every object, in the client's models -------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [document for _, document in API_OBJECTS],
    ids=[f"{name}:{doc['kind']}/{doc['metadata']['name']}" for name, doc in API_OBJECTS],
)
def test_an_object_loads_into_its_model_and_loses_nothing(document: dict[str, Any]) -> None:
    model = getattr(client, model_name(document))
    loaded = model.from_dict(document)  # pydantic: required fields and types are checked
    assert client.ApiClient().sanitize_for_serialization(loaded) == document


def test_every_object_is_named_and_labelled_as_kubernetes_accepts() -> None:
    def check_labels(labels: dict[str, str]) -> None:
        for key, value in labels.items():
            prefix, _, name = key.rpartition("/")
            assert LABEL_NAME.fullmatch(name), key
            assert not prefix or LABEL_PREFIX.fullmatch(prefix), key
            assert LABEL_VALUE.fullmatch(value), f"{key}={value}"

    for _, document in API_OBJECTS:
        metadata = document["metadata"]
        assert NAME.fullmatch(metadata["name"]), metadata["name"]
        if document["kind"] not in CLUSTER_SCOPED:
            assert metadata["namespace"] == SETTINGS.namespace
        check_labels(metadata.get("labels", {}))
        template = document.get("spec", {}).get("template")
        if template:
            check_labels(template["metadata"]["labels"])


def test_workloads_select_their_own_pods_and_services_select_a_workload() -> None:
    workloads = [
        *objects_of("Deployment"),
        *objects_of("StatefulSet"),
        *objects_of("DaemonSet"),
    ]
    pod_labels = []
    for workload in workloads:
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert selects(workload["spec"]["selector"], labels), workload["metadata"]["name"]
        pod_labels.append(labels)
    for service in objects_of("Service"):
        matched = [
            labels for labels in pod_labels if service["spec"]["selector"].items() <= labels.items()
        ]
        assert len(matched) == 1, service["metadata"]["name"]
    for stateful_set in objects_of("StatefulSet"):
        service = the_object("Service", stateful_set["spec"]["serviceName"])
        assert service["spec"]["clusterIP"] == "None"  # a StatefulSet's governing service


def test_roles_are_the_swarm_clusters_node_labels() -> None:
    for role in ROLES:
        assert deployment.role_selector(role).items() <= swarm_labels((role,)).items()
    (workers,) = objects_of("DaemonSet")
    assert workers["spec"]["template"]["spec"]["nodeSelector"] == {"erchub.role": "execution"}
    assert the_object("StatefulSet", "postgres")["spec"]["template"]["spec"]["nodeSelector"] == {
        "erchub.role.data": "true"
    }
    assert the_object("Deployment", "erc")["spec"]["replicas"] >= 2


def test_postgresql_keeps_its_data_on_a_claim_template() -> None:
    postgres = the_object("StatefulSet", "postgres")
    (claim,) = postgres["spec"]["volumeClaimTemplates"]
    (container,) = postgres["spec"]["template"]["spec"]["containers"]
    mounts = {mount["name"] for mount in container["volumeMounts"]}
    assert claim["metadata"]["name"] in mounts
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_the_registry_is_debians_with_its_config_from_a_configmap_and_htpasswd_auth() -> None:
    registry = the_object("StatefulSet", "registry")
    (container,) = registry["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["docker-registry", "serve"]
    config = yaml.safe_load(the_object("ConfigMap", "registry-config")["data"]["config.yml"])
    assert config == deployment.registry_config()
    secret_volumes = [
        volume["secret"]["secretName"]
        for volume in registry["spec"]["template"]["spec"]["volumes"]
        if "secret" in volume
    ]
    assert secret_volumes == [deployment.REGISTRY_HTPASSWD_SECRET]
    assert config["auth"]["htpasswd"]["path"].startswith(deployment.REGISTRY_AUTH_DIR + "/")


def test_the_ingress_serves_the_hub_and_the_registry_over_tls_from_cert_manager() -> None:
    (ingress,) = objects_of("Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"] == SETTINGS.cluster_issuer
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    assert hosts == [SETTINGS.hub_host, SETTINGS.registry_host]
    assert sorted(host for tls in ingress["spec"]["tls"] for host in tls["hosts"]) == sorted(hosts)
    backends = [
        rule["http"]["paths"][0]["backend"]["service"]["name"] for rule in ingress["spec"]["rules"]
    ]
    # the hub's host goes to Zero-to-JupyterHub's proxy, which routes /services/erc/ too
    assert backends == [
        deployment.Z2JH_PROXY_SERVICE,
        the_object("Service", "registry")["metadata"]["name"],
    ]


# -- isolation ----------------------------------------------------------------------------------


def test_a_job_pod_may_send_and_receive_nothing() -> None:
    (job,) = committed("job-example.yaml")
    labels = pod_of(job)["metadata"]["labels"]
    assert labels[NETWORK_LABEL] == "none"
    policies = policies_selecting(labels)
    assert policies, "a job pod that no policy selects may do anything"
    types = {kind for policy in policies for kind in policy["spec"]["policyTypes"]}
    assert types == {"Ingress", "Egress"}
    # policies add up: not one of those that select it may allow a thing
    assert [policy["spec"].get("egress") for policy in policies] == [None] * len(policies)
    assert [policy["spec"].get("ingress") for policy in policies] == [None] * len(policies)


def test_a_networked_job_pod_reaches_the_internet_but_no_blocked_range() -> None:
    networked = job_manifest(
        "j1", DIGEST, default_limits(), spec=spec(network=True), node="n", namespace="erchub"
    )
    labels = pod_of(networked)["metadata"]["labels"]
    assert labels[NETWORK_LABEL] == PUBLIC_NETWORK
    rules = [
        rule for policy in policies_selecting(labels) for rule in policy["spec"].get("egress", [])
    ]
    blocks = [peer["ipBlock"] for rule in rules for peer in rule["to"] if "ipBlock" in peer]
    assert blocks == [{"cidr": "0.0.0.0/0", "except": list(DEFAULT_BLOCKED_RANGES)}]
    others = [rule for rule in rules if not any("ipBlock" in peer for peer in rule["to"])]
    assert [rule["ports"] for rule in others] == [
        [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    ]
    assert all(ipaddress.ip_network(cidr).version == 4 for cidr in DEFAULT_BLOCKED_RANGES)


def test_workers_reach_only_the_erc_service_the_store_the_registry_dns_and_the_api() -> None:
    (daemon_set,) = objects_of("DaemonSet")
    labels = daemon_set["spec"]["template"]["metadata"]["labels"]
    policies = policies_selecting(labels)
    assert {kind for policy in policies for kind in policy["spec"]["policyTypes"]} == {
        "Ingress",
        "Egress",
    }
    assert all(not policy["spec"].get("ingress") for policy in policies)
    rules = [rule for policy in policies for rule in policy["spec"]["egress"]]
    # a rule without peers or without ports would allow every destination or every port
    assert all(rule.get("to") and rule.get("ports") for rule in rules)
    components = sorted(
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for rule in rules
        for peer in rule["to"]
        if "podSelector" in peer and "namespaceSelector" not in peer
    )
    assert components == ["erc", "postgres", "registry"]
    dns = [peer for rule in rules for peer in rule["to"] if "namespaceSelector" in peer]
    assert [peer["podSelector"]["matchLabels"] for peer in dns] == [{"k8s-app": "kube-dns"}]
    blocks = [peer["ipBlock"]["cidr"] for rule in rules for peer in rule["to"] if "ipBlock" in peer]
    assert blocks == list(SETTINGS.api_server_cidrs)


# -- a job pod's limits are the Docker runtime's ------------------------------------------------


def test_a_job_pod_has_the_docker_runtimes_default_limits() -> None:
    runtime = DockerRuntime()
    (job,) = committed("job-example.yaml")
    pod = pod_of(job)["spec"]
    (container,) = pod["containers"]
    for resources in (container["resources"]["limits"], container["resources"]["requests"]):
        assert parse_quantity(resources["memory"]) == parse_memory(runtime.mem_limit)
        assert parse_quantity(resources["cpu"]) == parse_quantity(str(runtime.cpu_limit))
    assert job["spec"]["activeDeadlineSeconds"] == runtime.time_limit + DEADLINE_GRACE_SECONDS
    (kubelet,) = committed("kubelet-execution.yaml")
    assert kubelet["podPidsLimit"] == runtime.pids_limit
    # a root worker gives notebooks repo2docker's notebook user (DockerRuntime.uid)
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["runAsGroup"] == NB_UID
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["automountServiceAccountToken"] is False
    read_only = {mount["mountPath"]: mount["readOnly"] for mount in container["volumeMounts"]}
    assert read_only == {"/erc/compendium": True, "/erc/input.ipynb": True, "/erc/output": False}
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert pod["restartPolicy"] == "Never"


def test_a_job_pod_has_the_operators_limits_capped_by_the_ercs() -> None:
    runtime = DockerRuntime(mem_limit="1g", cpu_limit=0.5, time_limit=60, pids_limit=64)
    execution = spec(memory=256 * 1024**2, timeout=30)
    limits = ExecutionLimits.of(runtime, execution)
    job = job_manifest("j1", DIGEST, limits, spec=execution, node="n", namespace="erchub")
    (container,) = pod_of(job)["spec"]["containers"]
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}
    assert job["spec"]["activeDeadlineSeconds"] == 30 + DEADLINE_GRACE_SECONDS
    assert container["command"] == container_command(execution, 30)
    assert limits.pids == 64


def test_a_job_runs_on_its_workers_node_from_the_nodes_paths() -> None:
    job = job_manifest("j1", DIGEST, default_limits(), spec=spec(), node="node-7", namespace="x")
    pod = pod_of(job)["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-7"]}]}
    ]
    paths = {volume["name"]: volume["hostPath"]["path"] for volume in pod["volumes"]}
    assert paths["compendium"] == str(spec().compendium)
    assert client.V1Job.from_dict(job) is not None


@pytest.mark.parametrize(
    ("job_id", "image", "execution", "message"),
    [
        ("j1", "registry.example.org/erchub/runtime:latest", spec(), "by digest"),
        ("j/1", DIGEST, spec(), "job id"),
        ("j1", DIGEST, spec(output=Path("relative/output")), "absolute"),
    ],
)
def test_a_job_manifest_refuses_tags_bad_ids_and_relative_paths(
    job_id: str, image: str, execution: ExecutionSpec, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        job_manifest(job_id, image, default_limits(), spec=execution, node="n", namespace="x")


@pytest.mark.parametrize("size", [1, 1023, 1024, 512 * 1024**2, 4 * 1024**3, 3 * 1024**4 + 1])
def test_memory_quantities_are_exact(size: int) -> None:
    assert parse_quantity(memory_quantity(size)) == size


@pytest.mark.parametrize(("cpus", "quantity"), [(1.0, "1"), (0.5, "500m"), (2.25, "2250m")])
def test_cpu_quantities(cpus: float, quantity: str) -> None:
    assert cpu_quantity(cpus) == quantity
    with pytest.raises(ValueError):
        cpu_quantity(0.0001)


# -- Zero-to-JupyterHub -------------------------------------------------------------------------


def test_the_z2jh_values_run_erchubs_hub_with_kubespawner_and_orcid() -> None:
    (values,) = committed("z2jh-values.yaml")
    hub = values["hub"]
    assert hub["config"]["JupyterHub"]["spawner_class"] == "kubespawner.KubeSpawner"
    assert hub["config"]["JupyterHub"]["authenticator_class"] == "orcid"
    assert set(hub["extraEnv"]) >= {"ORCID_CLIENT_ID", "ORCID_CLIENT_SECRET"}
    erc_service = the_object("Service", "erc")
    port = erc_service["spec"]["ports"][0]["port"]
    assert (
        hub["services"][SERVICE_NAME]["url"] == f"http://{erc_service['metadata']['name']}:{port}"
    )
    assert values["singleuser"]["extraEnv"]["ERCHUB_API_URL"].startswith(
        hub["services"]["erc"]["url"]
    )
    assert values["ingress"] == {"enabled": False}  # ingress.yaml routes the hub's host


def test_the_z2jh_extra_config_loads_erchubs_hub_helpers() -> None:
    """Run as Zero-to-JupyterHub runs it: after the chart made the services and roles."""
    (values,) = committed("z2jh-values.yaml")
    c = Config()
    c.JupyterHub.services = [{"name": SERVICE_NAME, **values["hub"]["services"][SERVICE_NAME]}]
    c.JupyterHub.load_roles = []
    for code in values["hub"]["extraConfig"].values():
        exec(compile(code, "extraConfig", "exec"), {"c": c})
    assert set(ERC_SCOPES) <= set(c.JupyterHub.custom_scopes)
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    assert roles["erc-service"]["services"] == [SERVICE_NAME]
    assert set(roles) >= {"user", ERC_ADMIN_ROLE}
    assert c.JupyterHub.template_paths[0] == TEMPLATE_DIRECTORY
    assert c.KubeSpawner.server_token_scopes == SESSION_TOKEN_SCOPES
    assert [service["name"] for service in c.JupyterHub.services] == [SERVICE_NAME]


# -- settings -----------------------------------------------------------------------------------


def test_settings_are_changed_by_name() -> None:
    settings = deployment.settings_with(
        ["hub_host=hub.uni.example", "erc_replicas=3", "api_server_cidrs=10.0.0.1/32, 10.0.0.2/32"]
    )
    assert settings.hub_host == "hub.uni.example"
    assert settings.erc_replicas == 3
    assert settings.api_server_cidrs == ("10.0.0.1/32", "10.0.0.2/32")
    rendered = deployment.render_files(settings)
    assert "hub.uni.example" in rendered["ingress.yaml"]
    with pytest.raises(ValueError, match="NAME=VALUE"):
        deployment.settings_with(["hub=x"])
    with pytest.raises(ValueError, match="namespace"):
        deployment.settings_with(["namespace=Not_A_Label"])


async def test_the_erc_services_probes_ask_a_path_it_serves_to_anyone(tmp_path: Path) -> None:
    [erc] = [d for d in objects_of("Deployment") if d["metadata"]["name"] == "erc"]
    [container] = erc["spec"]["template"]["spec"]["containers"]
    paths = {container[probe]["httpGet"]["path"] for probe in ("readinessProbe", "livenessProbe")}
    assert len(paths) == 1
    async with serving(tmp_path) as (origin, _service), httpx.AsyncClient() as http:
        answer = await http.get(origin + paths.pop())
    assert answer.status_code == 200, answer.text
