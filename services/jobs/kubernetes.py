"""The Kubernetes runtime, on paper: one notebook execution as a Kubernetes Job, and the
NetworkPolicies that keep job pods off the network, built by pure functions that return the
API's objects as plain dicts (as kubespawner's ``objects.py`` builds its pods). Untested against
a live cluster (README, "Kubernetes (on paper)"); nothing here submits a Job yet.

A job pod is the Docker runtime's execution container (:class:`~.runtime.DockerRuntime`) in
Kubernetes' terms, with limits read from the same settings (:class:`ExecutionLimits`):

- ``mem_limit`` (swap included) and ``cpu_limit``: the container's resource limits, requested
  as well, so that a node never runs more executions than it can hold;
- ``pids_limit``: no pod field holds it; the kubelet of each execution node does
  (``podPidsLimit``, rendered into ``config/kubernetes/kubelet-execution.yaml``);
- ``uid``: ``runAsUser``/``runAsGroup`` with ``runAsNonRoot``; ``cap_drop ALL`` and
  ``no-new-privileges``: ``capabilities.drop: [ALL]`` and ``allowPrivilegeEscalation: false``;
  Docker's default seccomp profile: ``RuntimeDefault``;
- the time limit: ``activeDeadlineSeconds`` (the same grace as the Docker runtime's deadline);
- ``network_mode: none``: the label :data:`NETWORK_LABEL` ``=none``, and a NetworkPolicy that
  denies every job pod all traffic (:func:`execution_network_policies`); a networked execution
  (``=public``) may reach the internet but not the ``blocked_ranges``, as on Docker;
- the compendium and the notebook mounted read-only, the output directory writable;
- a container that is removed whatever happens: ``backoffLimit: 0`` (never run twice),
  ``ttlSecondsAfterFinished`` for a Job whose worker died before it deleted it.

The job's files are its worker's: a worker (one per execution node, a DaemonSet) keeps its job
directories on its node, at the same path inside its pod, and its Job's pod is pinned to that
node (:data:`NODE_NAME_VARIABLE`), so the paths of the worker's :class:`~.runtime.ExecutionSpec`
are the node's paths (``hostPath`` volumes).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from erchub.erc import parse_memory
from erchub.services.jobs.runner import JOB_LABEL
from erchub.services.jobs.runtime import (
    CONTAINER_COMPENDIUM,
    CONTAINER_NOTEBOOK,
    CONTAINER_OUTPUT,
    DEADLINE_GRACE_SECONDS,
    EXECUTION_ENVIRONMENT,
    DockerRuntime,
    ExecutionSpec,
    container_command,
)
from erchub.spawner.buildpacks import NB_UID

#: the labels every erchub object carries: the application, and which part of it
NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
APP_NAME = "erchub"
EXECUTION_COMPONENT = "execution"
#: a job pod's network: none (the default), or the public internet without the blocked ranges
NETWORK_LABEL = "erchub.network"
NO_NETWORK = "none"
PUBLIC_NETWORK = "public"
#: the worker's node (the downward API's spec.nodeName), where its jobs run
NODE_NAME_VARIABLE = "ERCHUB_NODE_NAME"
#: the Secret of type kubernetes.io/dockerconfigjson that pulls from erchub's registry
REGISTRY_PULL_SECRET = "erchub-registry-pull"
#: seconds a finished Job is kept: its worker reads the outcome and deletes it long before; this
#: is for a worker that died first (the job is taken over and runs again elsewhere)
FINISHED_JOB_TTL_SECONDS = 3600
JOB_NAME_PREFIX = "erchub-job-"
CONTAINER_NAME = "notebook"
#: the cluster's DNS servers (CoreDNS and kube-dns pods carry this label in kube-system)
DNS_NAMESPACE = "kube-system"
DNS_POD_LABELS = {"k8s-app": "kube-dns"}

#: Kubernetes' syntax for object names (DNS-1123 labels) and label values
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
#: an image by digest, never by tag: what the builder pushed is what runs
DIGEST_REFERENCE = re.compile(r"[^@\s]+@sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class ExecutionLimits:
    """What one execution may use: the Docker runtime's limits, for any runtime."""

    #: bytes of memory (swap included)
    memory: int
    cpus: float
    #: processes in the container (on Kubernetes: the execution nodes' kubelet podPidsLimit)
    pids: int
    #: the non-root uid (and gid) the notebook runs as
    uid: int
    #: seconds the notebook may run
    timeout: int

    @property
    def deadline_seconds(self) -> int:
        """When the execution is killed: the time limit and the executor's grace."""
        return self.timeout + DEADLINE_GRACE_SECONDS

    @classmethod
    def of(cls, runtime: DockerRuntime, spec: ExecutionSpec) -> ExecutionLimits:
        """What ``runtime`` (as configured) gives ``spec``: the operator's limits, capped by
        what the ERC asks for."""
        return cls(
            memory=runtime.effective_memory(spec),
            cpus=runtime.cpu_limit,
            pids=runtime.pids_limit,
            uid=runtime.uid,
            timeout=runtime.effective_timeout(spec),
        )


def default_limits() -> ExecutionLimits:
    """The Docker runtime's limits before any configuration (its settings' defaults), with the
    uid a root worker gives notebooks (repo2docker's NB_UID)."""
    traits = DockerRuntime.class_traits()
    return ExecutionLimits(
        memory=parse_memory(traits["mem_limit"].default_value),
        cpus=traits["cpu_limit"].default_value,
        pids=traits["pids_limit"].default_value,
        uid=NB_UID,
        timeout=traits["time_limit"].default_value,
    )


def memory_quantity(size: int) -> str:
    """``size`` bytes as a Kubernetes quantity, exactly (the largest binary unit dividing it)."""
    for unit, factor in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def cpu_quantity(cpus: float) -> str:
    """``cpus`` as a Kubernetes quantity, in millicores (its finest unit) unless whole."""
    millicores = round(cpus * 1000)
    if millicores < 1:
        raise ValueError(f"a CPU limit of {cpus} is below Kubernetes' smallest, 0.001")
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def job_name(job_id: str) -> str:
    """The Job's name for a job id (erchub's ids are lower-cased: Kubernetes names are)."""
    name = JOB_NAME_PREFIX + job_id.lower()
    if not DNS_LABEL.fullmatch(name):
        raise ValueError(f"job id {job_id!r} cannot name a Kubernetes Job ({name!r})")
    return name


def app_labels(component: str) -> dict[str, str]:
    """The labels of erchub's objects of ``component`` (their pods' selector)."""
    return {NAME_LABEL: APP_NAME, COMPONENT_LABEL: component}


def execution_labels(job_id: str, network: bool = False) -> dict[str, str]:
    """The labels of a job's Job and pod: the NetworkPolicies select pods by them."""
    if not LABEL_VALUE.fullmatch(job_id):
        raise ValueError(f"job id {job_id!r} cannot be a Kubernetes label value")
    return {
        **app_labels(EXECUTION_COMPONENT),
        JOB_LABEL: job_id,
        NETWORK_LABEL: PUBLIC_NETWORK if network else NO_NETWORK,
    }


def pinned_to_node(node: str) -> dict[str, Any]:
    """An affinity that places a pod on ``node`` exactly (as the DaemonSet controller pins its
    pods: by the node's name, not by a label that another node could carry)."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    required = {"nodeSelectorTerms": [term]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}


def host_path(path: PurePosixPath) -> str:
    """A path of the node, which a hostPath volume names: absolute, else ValueError."""
    if not path.is_absolute():
        raise ValueError(f"a job's files must be given by absolute paths on the node: {path}")
    return str(path)


def job_manifest(
    job_id: str,
    image_digest: str,
    limits: ExecutionLimits,
    *,
    spec: ExecutionSpec,
    node: str,
    namespace: str,
    ttl_seconds_after_finished: int = FINISHED_JOB_TTL_SECONDS,
) -> dict[str, Any]:
    """The Job that runs ``spec``'s notebook once, in the runtime image ``image_digest``
    (``REGISTRY/NAME@sha256:...``) on the worker's ``node``, within ``limits``.

    The pod has no network unless ``spec.network`` (see the module), no service account token
    and no service links; ``spec.labels`` (which may hold values no label can, such as an ERC
    id that is a URL) become annotations. ValueError for an image by tag, a job id no name or
    label can hold, or relative paths.
    """
    if not DIGEST_REFERENCE.fullmatch(image_digest):
        raise ValueError(f"a job's image is pulled by digest (NAME@sha256:...): {image_digest}")
    labels = execution_labels(job_id, network=spec.network)
    annotations = dict(spec.labels)
    resources = {"cpu": cpu_quantity(limits.cpus), "memory": memory_quantity(limits.memory)}
    mounts = (
        ("compendium", spec.compendium, CONTAINER_COMPENDIUM, "Directory", True),
        ("notebook", spec.notebook, CONTAINER_NOTEBOOK, "File", True),
        ("output", spec.output, CONTAINER_OUTPUT, "Directory", False),
    )
    container = {
        "name": CONTAINER_NAME,
        "image": image_digest,
        # a digest names one image for ever: a node that has it need not ask the registry
        "imagePullPolicy": "IfNotPresent",
        "command": container_command(spec, limits.timeout),
        "workingDir": CONTAINER_OUTPUT,
        "env": [{"name": name, "value": value} for name, value in EXECUTION_ENVIRONMENT.items()],
        "resources": {"limits": resources, "requests": dict(resources)},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
        },
        "volumeMounts": [
            {"name": name, "mountPath": target, "readOnly": read_only}
            for name, _, target, _, read_only in mounts
        ],
    }
    pod_spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "affinity": pinned_to_node(node),
        "securityContext": {
            "runAsUser": limits.uid,
            "runAsGroup": limits.uid,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "imagePullSecrets": [{"name": REGISTRY_PULL_SECRET}],
        "containers": [container],
        "volumes": [
            {"name": name, "hostPath": {"path": host_path(PurePosixPath(source)), "type": kind}}
            for name, source, _, kind, _ in mounts
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(job_id),
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": limits.deadline_seconds,
            "ttlSecondsAfterFinished": ttl_seconds_after_finished,
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }


def dns_egress_rule() -> dict[str, Any]:
    """A NetworkPolicy egress rule to the cluster's DNS servers (port 53, UDP and TCP)."""
    return {
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": DNS_NAMESPACE}
                },
                "podSelector": {"matchLabels": dict(DNS_POD_LABELS)},
            }
        ],
        "ports": [{"protocol": protocol, "port": 53} for protocol in ("UDP", "TCP")],
    }


def execution_network_policies(
    namespace: str, blocked_ranges: Sequence[str]
) -> list[dict[str, Any]]:
    """The NetworkPolicies of job pods. Policies add up (a pod may do what any policy that
    selects it allows), so the first selects every job pod and allows nothing, in or out; the
    second lets networked executions (``erchub.network=public``) reach the cluster's DNS and
    every IPv4 address but ``blocked_ranges`` (the site's private networks, as the Docker
    runtime's ``blocked_ranges``); IPv6 stays closed, as on Docker.

    Only a network plugin that enforces NetworkPolicies (Calico, Cilium, ...) makes them hold.
    """
    isolated = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "erchub-executions-isolated",
            "namespace": namespace,
            "labels": app_labels(EXECUTION_COMPONENT),
        },
        "spec": {
            "podSelector": {"matchLabels": app_labels(EXECUTION_COMPONENT)},
            "policyTypes": ["Ingress", "Egress"],
        },
    }
    public = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "erchub-executions-public",
            "namespace": namespace,
            "labels": app_labels(EXECUTION_COMPONENT),
        },
        "spec": {
            "podSelector": {
                "matchLabels": {**app_labels(EXECUTION_COMPONENT), NETWORK_LABEL: PUBLIC_NETWORK}
            },
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(blocked_ranges)}}]},
                dns_egress_rule(),
            ],
        },
    }
    return [isolated, public]
