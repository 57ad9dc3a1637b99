"""erchub on Kubernetes, on paper: a deployment's manifests and its hub's Zero-to-JupyterHub
values, rendered by pure functions of :class:`KubernetesSettings` into ``config/kubernetes/``
(``python -m erchub.services.cluster.kubernetes``; :func:`main` is the one part that writes).
Untested against a live cluster: none can be had where erchub is built. The tests load every
object into the ``kubernetes`` client's models and check policies and limits (README,
"Kubernetes (on paper)").

The roles are the Swarm cluster's (:mod:`.plan`), as node labels. A Kubernetes label value
cannot list roles (no commas), so nodes carry one label per role, ``erchub.role.app=true`` and
``erchub.role.data=true``, and execution nodes ``erchub.role=execution`` (an execution node holds
no other role, as on Swarm):

- app: the hub and its proxy (Zero-to-JupyterHub with KubeSpawner), sessions, and the erc
  service (a Deployment of two replicas or more behind a Service; the compendium store on a
  ReadWriteMany volume that only they share);
- data: PostgreSQL (a StatefulSet, its volume from a claim template; the store's database and
  the hub's) and the registry (Debian's docker-registry, distribution 2.8, in the image of
  ``config/swarm/registry.Dockerfile``; its config a ConfigMap, its htpasswd a Secret; TLS ends at
  the Ingress, which the nodes pull through);
- execution: one worker per node (a DaemonSet, as Swarm's ``mode: global``), whose job directories
  stay on its node and whose executions are Kubernetes Jobs on that node
  (:mod:`erchub.services.jobs.kubernetes`).

One Ingress takes the hub's and the registry's names, with certificates from cert-manager (as in
the oTree deploy flow: an ingress controller and a certificate issuer in the cluster). Secrets
are referenced, never rendered: the operator makes them (README).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from erchub.hub.config import ERC_SCOPES, SERVICE_NAME, SERVICE_PORT
from erchub.services.cluster.plan import REGISTRY_DATA, REGISTRY_PORT, ROLE_LABEL, ROLES
from erchub.services.jobs.kubernetes import (
    APP_NAME,
    DNS_LABEL,
    NAME_LABEL,
    NODE_NAME_VARIABLE,
    REGISTRY_PULL_SECRET,
    ExecutionLimits,
    app_labels,
    default_limits,
    dns_egress_rule,
    execution_network_policies,
    job_manifest,
    memory_quantity,
)
from erchub.services.jobs.runner import JOB_LABEL, OUTPUT_DIR
from erchub.services.jobs.runtime import ExecutionSpec
from erchub.services.jobs.worker import SNAPSHOT_DIR
from erchub.spawner.buildpacks import NB_UID
from erchub.spawner.network import DEFAULT_BLOCKED_RANGES
from erchub.spawner.spawner import SESSION_CPU_LIMIT, SESSION_MEM_LIMIT

ERC, WORKER, POSTGRES, REGISTRY = SERVICE_NAME, "worker", "postgres", "registry"
WORKER_NAME = "erchub-worker"
SERVICE_PREFIX = f"/services/{SERVICE_NAME}/"

#: the store's database and role, the hub's database beside it, and the Secret of the password
STORE_DATABASE = "erchub"
HUB_DATABASE = "jupyterhub"
DATABASE_USER = "erchub"
DATABASE_PORT = 5432
DATABASE_SECRET = "erchub-db"
#: the registry's htpasswd file, a Secret (htpasswd -B: bcrypt entries)
REGISTRY_HTPASSWD_SECRET = "erchub-registry-htpasswd"
REGISTRY_CONFIG_DIR = "/etc/docker/registry"
REGISTRY_AUTH_DIR = "/etc/docker/registry-auth"
#: the ORCID client of the hub (keys client-id, client-secret)
ORCID_SECRET = "erchub-orcid"
#: where the erc replicas keep compendia, uploads and jobs' results (their shared volume)
SERVICE_DATA_DIR = "/srv/erchub"
#: the official PostgreSQL image's postgres user; its data one level below the volume's root
#: (a fresh volume may hold lost+found, which initdb refuses)
POSTGRES_UID = 999
POSTGRES_DATA = "/var/lib/postgresql/data"
#: erchub's own pods run as the notebooks' uid: a worker must be able to remove what a notebook
#: wrote, and a numeric uid lets Kubernetes check runAsNonRoot (the registry image's user is a
#: name)
ERCHUB_UID = NB_UID

#: Zero-to-JupyterHub's names (its chart with fullnameOverride unset): the hub's Service and
#: port, its Secret (which holds the erc service's API token and the auth_state key), the
#: proxy's public Service, and the label that lets a pod through the hub's NetworkPolicy
Z2JH_HUB = "hub"
Z2JH_HUB_PORT = 8081
Z2JH_HUB_SECRET = "hub"
Z2JH_PROXY_SERVICE = "proxy-public"
Z2JH_HUB_ACCESS_LABEL = "hub.jupyter.org/network-access-hub"

#: erchub's hub config helpers that apply where the erc service is not the hub's to start
Z2JH_EXTRA_CONFIG = """\
# erchub's hub config helpers, where they apply on Kubernetes: the erc service's custom scopes
# and roles (the service itself is hub.services.erc, by its URL), erchub's pages, and what a
# session's token may do (erchub's server extension uses the erc service as its user).
from erchub.hub.config import configure_erc_roles, configure_templates
from erchub.spawner.spawner import SESSION_TOKEN_SCOPES

configure_erc_roles(c)
configure_templates(c)
c.KubeSpawner.server_token_scopes = SESSION_TOKEN_SCOPES
"""

#: what every rendered file says first
RENDERED_HEADER = (
    "# Rendered by `python -m erchub.services.cluster.kubernetes`: do not edit, render again.\n"
    "# ON PAPER: never run against a live Kubernetes cluster (README, 'Kubernetes (on paper)').\n"
)


@dataclass(frozen=True)
class KubernetesSettings:
    """What a site changes (``--set NAME=VALUE``); the defaults are placeholders."""

    namespace: str = "erchub"
    #: the public names of the hub and of the registry (both get certificates from cert-manager)
    hub_host: str = "hub.example.org"
    registry_host: str = "registry.example.org"
    #: cert-manager's ClusterIssuer, and the ingress controller's class
    cluster_issuer: str = "letsencrypt-prod"
    ingress_class: str = "nginx"
    #: the tag of erchub's images in the registry: app (erc service, workers), hub, authoring
    image_tag: str = "bookworm"
    #: the registry's own image (config/swarm/registry.Dockerfile), which cannot come from the
    #: registry itself: imported on the data nodes, or pulled from another registry
    registry_image: str = "erchub/registry:bookworm"
    postgres_image: str = "postgres:15-bookworm"
    erc_replicas: int = 2
    #: a StorageClass offering ReadWriteMany (NFS, CephFS, ...) for the erc replicas' shared
    #: volume; "" for the cluster's default class
    shared_storage_class: str = ""
    shared_storage_size: str = "100Gi"
    postgres_storage_size: str = "20Gi"
    registry_storage_size: str = "200Gi"
    #: where the API server answers pods (``kubectl get endpoints kubernetes``): workers create
    #: their executions' Jobs there (the default is a documentation address: set it)
    api_server_cidrs: tuple[str, ...] = ("192.0.2.1/32",)
    api_server_port: int = 6443
    #: where execution nodes keep their worker's job directories
    node_data_dir: str = "/var/lib/erchub"

    def __post_init__(self) -> None:
        if not DNS_LABEL.fullmatch(self.namespace):
            raise ValueError(f"namespace {self.namespace!r} is not a DNS label")
        if not PurePosixPath(self.node_data_dir).is_absolute():
            raise ValueError(f"node_data_dir {self.node_data_dir!r} is not an absolute path")

    def image(self, name: str) -> str:
        """erchub's image ``name`` in its registry."""
        return f"{self.registry_host}/erchub/{name}:{self.image_tag}"


def role_selector(role: str) -> dict[str, str]:
    """The nodeSelector of the nodes of ``role`` (see the module)."""
    if role not in ROLES:
        raise ValueError(f"role {role!r}: one of {', '.join(ROLES)}")
    return {ROLE_LABEL: role} if role == "execution" else {f"{ROLE_LABEL}.{role}": "true"}


def metadata(name: str, settings: KubernetesSettings, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": settings.namespace, "labels": app_labels(component)}


def api_object(
    api_version: str,
    kind: str,
    name: str,
    settings: KubernetesSettings,
    component: str,
    **fields: Any,
) -> dict[str, Any]:
    """An object of ``kind`` named ``name`` in the namespace, labelled as ``component``'s."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata(name, settings, component),
        **fields,
    }


def secret_value(secret: str, key: str) -> dict[str, Any]:
    """An environment variable's ``valueFrom``: the value of ``key`` in the Secret ``secret``."""
    return {"secretKeyRef": {"name": secret, "key": key}}


def secret_variable(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": secret_value(secret, key)}


def store_variables() -> list[dict[str, Any]]:
    """ERCHUB_DB_URL with the password from its Secret (Kubernetes expands ``$(NAME)`` of a
    variable defined before it; the password must be URL-safe, e.g. ``openssl rand -hex 24``)."""
    url = (
        f"postgresql+psycopg://{DATABASE_USER}:$(ERCHUB_DB_PASSWORD)@{POSTGRES}:{DATABASE_PORT}"
        f"/{STORE_DATABASE}"
    )
    return [
        secret_variable("ERCHUB_DB_PASSWORD", DATABASE_SECRET, "password"),
        {"name": "ERCHUB_DB_URL", "value": url},
    ]


def restricted_container() -> dict[str, Any]:
    """The securityContext of erchub's own containers (the Docker runtime's, without a uid)."""
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def pod_security(uid: int) -> dict[str, Any]:
    return {
        "runAsUser": uid,
        "runAsGroup": uid,
        "runAsNonRoot": True,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def namespace_object(settings: KubernetesSettings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": settings.namespace, "labels": {NAME_LABEL: APP_NAME}},
    }


# -- the erc service ---------------------------------------------------------------------------


def erc_objects(settings: KubernetesSettings) -> list[dict[str, Any]]:
    """The erc service: its shared volume, Deployment, Service and disruption budget."""
    labels = app_labels(ERC)
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": settings.shared_storage_size}},
    }
    if settings.shared_storage_class:
        claim_spec["storageClassName"] = settings.shared_storage_class
    claim = api_object(
        "v1",
        "PersistentVolumeClaim",
        "erchub-data",
        settings,
        ERC,
        spec=claim_spec,
    )
    environment = [
        {"name": "ERCHUB_DATA_DIR", "value": SERVICE_DATA_DIR},
        # the workers are the DaemonSet's, on the execution nodes, not the service's children
        {"name": "ERCHUB_WORKER_COUNT", "value": "0"},
        *store_variables(),
        # what the hub gives a managed service, for a service it does not start
        secret_variable(
            "JUPYTERHUB_API_TOKEN", Z2JH_HUB_SECRET, f"hub.services.{SERVICE_NAME}.apiToken"
        ),
        {"name": "JUPYTERHUB_API_URL", "value": f"http://{Z2JH_HUB}:{Z2JH_HUB_PORT}/hub/api"},
        {"name": "JUPYTERHUB_SERVICE_NAME", "value": SERVICE_NAME},
        {"name": "JUPYTERHUB_SERVICE_URL", "value": f"http://0.0.0.0:{SERVICE_PORT}"},
        {"name": "JUPYTERHUB_SERVICE_PREFIX", "value": SERVICE_PREFIX},
        {"name": "JUPYTERHUB_CLIENT_ID", "value": f"service-{SERVICE_NAME}"},
        {"name": "JUPYTERHUB_OAUTH_CALLBACK_URL", "value": f"{SERVICE_PREFIX}oauth_callback"},
        # users' repository tokens are encrypted with the hub's auth_state key
        secret_variable("JUPYTERHUB_CRYPT_KEY", Z2JH_HUB_SECRET, "hub.config.CryptKeeper.keys"),
    ]
    # the API's OpenAPI document: served without identity, as `erchub cluster deploy` waits on it
    probe = {"httpGet": {"path": f"{SERVICE_PREFIX}api/v1/openapi.json", "port": "http"}}
    container = {
        "name": ERC,
        "image": settings.image("app"),
        "command": ["erchub-service"],
        "ports": [{"name": "http", "containerPort": SERVICE_PORT}],
        "env": environment,
        "readinessProbe": {**probe, "periodSeconds": 5},
        "livenessProbe": {**probe, "periodSeconds": 20, "failureThreshold": 6},
        "securityContext": restricted_container(),
        "volumeMounts": [{"name": "data", "mountPath": SERVICE_DATA_DIR}],
    }
    # replicas on different nodes where there are enough: one node lost leaves the others
    spread = {
        "weight": 100,
        "podAffinityTerm": {
            "labelSelector": {"matchLabels": labels},
            "topologyKey": "kubernetes.io/hostname",
        },
    }
    deployment = api_object(
        "apps/v1",
        "Deployment",
        ERC,
        settings,
        ERC,
        spec={
            "replicas": settings.erc_replicas,
            "selector": {"matchLabels": labels},
            "template": {
                # the hub's NetworkPolicy (Zero-to-JupyterHub's) admits pods with this label
                "metadata": {"labels": {**labels, Z2JH_HUB_ACCESS_LABEL: "true"}},
                "spec": {
                    "nodeSelector": role_selector("app"),
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [spread]
                        }
                    },
                    "securityContext": pod_security(ERCHUB_UID),
                    "imagePullSecrets": [{"name": REGISTRY_PULL_SECRET}],
                    "containers": [container],
                    "volumes": [
                        {"name": "data", "persistentVolumeClaim": {"claimName": "erchub-data"}}
                    ],
                },
            },
        },
    )
    service = api_object(
        "v1",
        "Service",
        ERC,
        settings,
        ERC,
        spec={
            "selector": labels,
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}],
        },
    )
    budget = api_object(
        "policy/v1",
        "PodDisruptionBudget",
        ERC,
        settings,
        ERC,
        spec={"minAvailable": 1, "selector": {"matchLabels": labels}},
    )
    return [claim, deployment, service, budget]


# -- workers -----------------------------------------------------------------------------------


def worker_objects(settings: KubernetesSettings) -> list[dict[str, Any]]:
    """The workers: their service account (they create their executions' Jobs) and DaemonSet."""
    labels = app_labels(WORKER)
    account = api_object(
        "v1",
        "ServiceAccount",
        WORKER_NAME,
        settings,
        WORKER,
    )
    role = api_object(
        "rbac.authorization.k8s.io/v1",
        "Role",
        WORKER_NAME,
        settings,
        WORKER,
        rules=[
            {
                "apiGroups": ["batch"],
                "resources": ["jobs"],
                "verbs": ["create", "get", "list", "watch", "delete"],
            },
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        ],
    )
    binding = api_object(
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        WORKER_NAME,
        settings,
        WORKER,
        roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": WORKER_NAME},
        subjects=[{"kind": "ServiceAccount", "name": WORKER_NAME, "namespace": settings.namespace}],
    )
    node_directory = {"path": settings.node_data_dir, "type": "DirectoryOrCreate"}
    data_mount = {"name": "data", "mountPath": settings.node_data_dir}
    # the node's directory is made by the kubelet as root: the worker (non-root) is given it
    prepare = {
        "name": "data-dir",
        "image": settings.image("app"),
        "command": ["chown", f"{ERCHUB_UID}:{ERCHUB_UID}", settings.node_data_dir],
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": False,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]},
        },
        "volumeMounts": [data_mount],
    }
    worker = {
        "name": WORKER,
        "image": settings.image("app"),
        "command": ["erchub", "worker"],
        "env": [
            {"name": "ERCHUB_DATA_DIR", "value": settings.node_data_dir},
            *store_variables(),
            {"name": NODE_NAME_VARIABLE, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        ],
        "securityContext": {
            **restricted_container(),
            "runAsUser": ERCHUB_UID,
            "runAsGroup": ERCHUB_UID,
            "runAsNonRoot": True,
        },
        # at the same path as on the node: the paths the worker gives its Jobs are the node's
        "volumeMounts": [data_mount],
    }
    daemon_set = api_object(
        "apps/v1",
        "DaemonSet",
        WORKER_NAME,
        settings,
        WORKER,
        spec={
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": WORKER_NAME,
                    "nodeSelector": role_selector("execution"),
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "imagePullSecrets": [{"name": REGISTRY_PULL_SECRET}],
                    "initContainers": [prepare],
                    "containers": [worker],
                    "volumes": [{"name": "data", "hostPath": node_directory}],
                },
            },
        },
    )
    return [account, role, binding, daemon_set]


# -- PostgreSQL --------------------------------------------------------------------------------


def postgres_objects(settings: KubernetesSettings) -> list[dict[str, Any]]:
    """PostgreSQL on a data node: the store's database, and the hub's (made at first start)."""
    labels = app_labels(POSTGRES)
    init = api_object(
        "v1",
        "ConfigMap",
        "postgres-init",
        settings,
        POSTGRES,
        data={"hub-database.sql": f"CREATE DATABASE {HUB_DATABASE};\n"},
    )
    service = api_object(
        "v1",
        "Service",
        POSTGRES,
        settings,
        POSTGRES,
        spec={
            "clusterIP": "None",
            "selector": labels,
            "ports": [{"name": "postgres", "port": DATABASE_PORT, "targetPort": "postgres"}],
        },
    )
    ready = {"exec": {"command": ["pg_isready", "-U", DATABASE_USER, "-d", STORE_DATABASE]}}
    container = {
        "name": POSTGRES,
        "image": settings.postgres_image,
        "ports": [{"name": "postgres", "containerPort": DATABASE_PORT}],
        "env": [
            {"name": "POSTGRES_USER", "value": DATABASE_USER},
            {"name": "POSTGRES_DB", "value": STORE_DATABASE},
            secret_variable("POSTGRES_PASSWORD", DATABASE_SECRET, "password"),
            {"name": "PGDATA", "value": f"{POSTGRES_DATA}/pgdata"},
        ],
        "readinessProbe": {**ready, "periodSeconds": 5},
        "livenessProbe": {**ready, "periodSeconds": 20, "failureThreshold": 6},
        "securityContext": restricted_container(),
        "volumeMounts": [
            {"name": "data", "mountPath": POSTGRES_DATA},
            {"name": "init", "mountPath": "/docker-entrypoint-initdb.d", "readOnly": True},
        ],
    }
    stateful_set = api_object(
        "apps/v1",
        "StatefulSet",
        POSTGRES,
        settings,
        POSTGRES,
        spec={
            "serviceName": POSTGRES,
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": role_selector("data"),
                    "securityContext": pod_security(POSTGRES_UID),
                    "containers": [container],
                    "volumes": [{"name": "init", "configMap": {"name": "postgres-init"}}],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data", "labels": labels},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": settings.postgres_storage_size}},
                    },
                }
            ],
        },
    )
    return [init, service, stateful_set]


# -- the registry ------------------------------------------------------------------------------


def registry_config() -> dict[str, Any]:
    """The registry's config file (distribution 2.8): filesystem storage, htpasswd auth, plain
    HTTP inside the cluster (TLS ends at the Ingress). One replica, so no ``http.secret`` is
    shared."""
    return {
        "version": 0.1,
        "log": {"level": "info", "fields": {"service": REGISTRY}},
        "storage": {
            "filesystem": {"rootdirectory": REGISTRY_DATA},
            # manifests can be deleted by digest (and their blobs garbage-collected afterwards)
            "delete": {"enabled": True},
        },
        "auth": {"htpasswd": {"realm": "erchub-registry", "path": f"{REGISTRY_AUTH_DIR}/htpasswd"}},
        "http": {"addr": f":{REGISTRY_PORT}", "headers": {"X-Content-Type-Options": ["nosniff"]}},
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }


def registry_objects(settings: KubernetesSettings) -> list[dict[str, Any]]:
    labels = app_labels(REGISTRY)
    config = api_object(
        "v1",
        "ConfigMap",
        "registry-config",
        settings,
        REGISTRY,
        data={"config.yml": to_yaml([registry_config()])},
    )
    service = api_object(
        "v1",
        "Service",
        REGISTRY,
        settings,
        REGISTRY,
        spec={
            "clusterIP": "None",
            "selector": labels,
            "ports": [{"name": "registry", "port": REGISTRY_PORT, "targetPort": "registry"}],
        },
    )
    probe = {"httpGet": {"path": "/", "port": "registry"}}
    container = {
        "name": REGISTRY,
        "image": settings.registry_image,
        # loaded onto the data nodes, or pulled from another registry: never from itself
        "imagePullPolicy": "IfNotPresent",
        "command": ["docker-registry", "serve", f"{REGISTRY_CONFIG_DIR}/config.yml"],
        "ports": [{"name": "registry", "containerPort": REGISTRY_PORT}],
        "readinessProbe": {**probe, "periodSeconds": 5},
        "livenessProbe": {**probe, "periodSeconds": 20, "failureThreshold": 6},
        "securityContext": restricted_container(),
        "volumeMounts": [
            {"name": "data", "mountPath": REGISTRY_DATA},
            {"name": "config", "mountPath": REGISTRY_CONFIG_DIR, "readOnly": True},
            {"name": "htpasswd", "mountPath": REGISTRY_AUTH_DIR, "readOnly": True},
        ],
    }
    stateful_set = api_object(
        "apps/v1",
        "StatefulSet",
        REGISTRY,
        settings,
        REGISTRY,
        spec={
            "serviceName": REGISTRY,
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": role_selector("data"),
                    "securityContext": pod_security(ERCHUB_UID),
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "registry-config"}},
                        {"name": "htpasswd", "secret": {"secretName": REGISTRY_HTPASSWD_SECRET}},
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data", "labels": labels},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": settings.registry_storage_size}},
                    },
                }
            ],
        },
    )
    return [config, service, stateful_set]


# -- the way in --------------------------------------------------------------------------------


def ingress_object(settings: KubernetesSettings) -> dict[str, Any]:
    """The hub's name to the proxy (which routes /services/erc/ to the erc service, as the hub
    tells it), the registry's to the registry; TLS for both from cert-manager."""

    def rule(host: str, service: str, port: dict[str, Any]) -> dict[str, Any]:
        backend = {"service": {"name": service, "port": port}}
        path = {"path": "/", "pathType": "Prefix", "backend": backend}
        return {"host": host, "http": {"paths": [path]}}

    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "erchub",
            "namespace": settings.namespace,
            "labels": {NAME_LABEL: APP_NAME},
            "annotations": {
                "cert-manager.io/cluster-issuer": settings.cluster_issuer,
                # uploads and image layers are limited by the erc service and the registry
                "nginx.ingress.kubernetes.io/proxy-body-size": "0",
            },
        },
        "spec": {
            "ingressClassName": settings.ingress_class,
            "tls": [
                {"hosts": [settings.hub_host], "secretName": "erchub-hub-tls"},
                {"hosts": [settings.registry_host], "secretName": "erchub-registry-tls"},
            ],
            "rules": [
                rule(settings.hub_host, Z2JH_PROXY_SERVICE, {"name": "http"}),
                rule(settings.registry_host, REGISTRY, {"number": REGISTRY_PORT}),
            ],
        },
    }


def network_policies(settings: KubernetesSettings) -> list[dict[str, Any]]:
    """The workers reach the erc service, the store, the registry, the cluster's DNS and the
    API server (their executions' Jobs), and nothing else; nothing reaches them. Job pods reach
    nothing (:func:`~erchub.services.jobs.kubernetes.execution_network_policies`)."""

    def to_pods(component: str, port: int) -> dict[str, Any]:
        return {
            "to": [{"podSelector": {"matchLabels": app_labels(component)}}],
            "ports": [{"protocol": "TCP", "port": port}],
        }

    api_server = {
        "to": [{"ipBlock": {"cidr": cidr}} for cidr in settings.api_server_cidrs],
        "ports": [{"protocol": "TCP", "port": settings.api_server_port}],
    }
    workers = api_object(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        WORKER_NAME,
        settings,
        WORKER,
        spec={
            "podSelector": {"matchLabels": app_labels(WORKER)},
            "policyTypes": ["Ingress", "Egress"],
            "egress": [
                to_pods(ERC, SERVICE_PORT),
                to_pods(POSTGRES, DATABASE_PORT),
                to_pods(REGISTRY, REGISTRY_PORT),
                dns_egress_rule(),
                api_server,
            ],
        },
    )
    return [workers, *execution_network_policies(settings.namespace, DEFAULT_BLOCKED_RANGES)]


# -- what the execution nodes and the workers are given ----------------------------------------


def kubelet_configuration(limits: ExecutionLimits) -> dict[str, Any]:
    """The part of an execution node's kubelet configuration that erchub needs: the Docker
    runtime's process limit, which no pod field can set."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "podPidsLimit": limits.pids,
    }


#: the example execution of job-example.yaml
EXAMPLE_JOB_ID = "20250101T120000-0a1b2c"
EXAMPLE_NODE = "execution-node-1"


def example_job(settings: KubernetesSettings) -> dict[str, Any]:
    """The Job a worker on ``execution-node-1`` would create for one execution with the Docker
    runtime's default limits."""
    job_directory = Path(settings.node_data_dir) / "jobs" / EXAMPLE_JOB_ID
    spec = ExecutionSpec(
        compendium=job_directory / SNAPSHOT_DIR,
        notebook=job_directory / "input.ipynb",
        output=job_directory / OUTPUT_DIR,
        executed_name="main.ipynb",
        display_name="main.html",
        labels={JOB_LABEL: EXAMPLE_JOB_ID, "org.erchub.erc.id": "https://example.org/erc/1"},
    )
    digest = "sha256:" + "0" * 64
    return job_manifest(
        EXAMPLE_JOB_ID,
        f"{settings.registry_host}/erchub/runtime@{digest}",
        default_limits(),
        spec=spec,
        node=EXAMPLE_NODE,
        namespace=settings.namespace,
    )


# -- Zero-to-JupyterHub --------------------------------------------------------------------------


def z2jh_values(settings: KubernetesSettings) -> dict[str, Any]:
    """Zero-to-JupyterHub's values for erchub's hub: KubeSpawner, ORCID login (client from a
    Secret), the hub's database in the store's PostgreSQL, the erc service as a hub service by
    its URL, and users' workspaces in the authoring image. Proxy and Ingress: the chart's proxy
    behind ingress.yaml's Ingress (the chart's own stays off)."""
    pull_secrets = [REGISTRY_PULL_SECRET]
    service_url = f"http://{ERC}:{SERVICE_PORT}"
    return {
        "hub": {
            "image": {
                "name": f"{settings.registry_host}/erchub/hub",
                "tag": settings.image_tag,
                "pullSecrets": pull_secrets,
            },
            "nodeSelector": role_selector("app"),
            "db": {
                "type": "postgres",
                "url": f"postgresql+psycopg://{DATABASE_USER}@{POSTGRES}:{DATABASE_PORT}"
                f"/{HUB_DATABASE}",
            },
            "extraEnv": {
                # libpq's own variable: the password stays out of the URL and the values
                "PGPASSWORD": {"valueFrom": secret_value(DATABASE_SECRET, "password")},
                "ORCID_CLIENT_ID": {"valueFrom": secret_value(ORCID_SECRET, "client-id")},
                "ORCID_CLIENT_SECRET": {"valueFrom": secret_value(ORCID_SECRET, "client-secret")},
            },
            "config": {
                "JupyterHub": {
                    "spawner_class": "kubespawner.KubeSpawner",
                    "authenticator_class": "orcid",
                },
                "Authenticator": {"enable_auth_state": True, "allow_all": True},
                "ORCIDOAuthenticator": {
                    # register this redirect URI with the hub's ORCID client
                    "oauth_callback_url": f"https://{settings.hub_host}/hub/oauth_callback",
                },
            },
            "services": {
                SERVICE_NAME: {
                    "url": service_url,
                    "display": False,
                    # the browser's token carries the erc scopes its user holds, no consent page
                    "oauth_client_allowed_scopes": list(ERC_SCOPES),
                    "oauth_no_confirm": True,
                }
            },
            # a workspace per user (the default server) and a named server per ERC
            "allowNamedServers": True,
            "redirectToServer": False,
            "extraConfig": {"erchub": Z2JH_EXTRA_CONFIG},
        },
        "proxy": {
            "service": {"type": "ClusterIP"},
            "chp": {"nodeSelector": role_selector("app")},
        },
        "singleuser": {
            "image": {
                "name": f"{settings.registry_host}/erchub/authoring",
                "tag": settings.image_tag,
                "pullSecrets": pull_secrets,
            },
            "nodeSelector": role_selector("app"),
            "defaultUrl": "/lab",
            "cpu": {"limit": SESSION_CPU_LIMIT},
            "memory": {"limit": memory_quantity(SESSION_MEM_LIMIT)},
            # erchub's server extension publishes and runs through the erc service
            "extraEnv": {"ERCHUB_API_URL": f"{service_url}{SERVICE_PREFIX}api/v1"},
            "networkPolicy": {
                "egress": [
                    {
                        "to": [{"podSelector": {"matchLabels": app_labels(ERC)}}],
                        "ports": [{"protocol": "TCP", "port": SERVICE_PORT}],
                    }
                ]
            },
        },
        "ingress": {"enabled": False},
    }


# -- rendering ---------------------------------------------------------------------------------


class ManifestDumper(yaml.SafeDumper):
    """YAML as people write manifests: no anchors for objects used twice (labels), text of
    several lines as a literal block."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


ManifestDumper.add_representer(str, _represent_text)


def to_yaml(documents: Sequence[Any]) -> str:
    """``documents`` as one YAML stream, keys in the order they were written."""
    return yaml.dump_all(
        documents, Dumper=ManifestDumper, sort_keys=False, default_flow_style=False, width=1000
    )


@dataclass(frozen=True)
class ManifestFile:
    name: str
    #: what the file holds, its first comment
    about: str
    documents: tuple[Any, ...]
    #: whether ``kubectl apply -k`` applies it (kustomization.yaml lists it)
    applied: bool = True


def manifest_files(settings: KubernetesSettings) -> list[ManifestFile]:
    """Every file of ``config/kubernetes/`` that is rendered, kustomization.yaml last."""
    files = [
        ManifestFile("namespace.yaml", "the namespace", (namespace_object(settings),)),
        ManifestFile(
            "erc.yaml",
            "the erc service: shared volume, Deployment, Service, disruption budget",
            tuple(erc_objects(settings)),
        ),
        ManifestFile(
            "workers.yaml",
            "the workers: one per execution node (DaemonSet), allowed to manage Jobs",
            tuple(worker_objects(settings)),
        ),
        ManifestFile(
            "postgres.yaml",
            "PostgreSQL on a data node: the store's database and the hub's",
            tuple(postgres_objects(settings)),
        ),
        ManifestFile(
            "registry.yaml",
            "the registry (Debian's docker-registry, distribution 2.8) on a data node",
            tuple(registry_objects(settings)),
        ),
        ManifestFile(
            "ingress.yaml",
            "the hub's and the registry's names, TLS from cert-manager",
            (ingress_object(settings),),
        ),
        ManifestFile(
            "network-policies.yaml",
            "workers reach the erc service, the store and the registry; job pods reach nothing",
            tuple(network_policies(settings)),
        ),
        ManifestFile(
            "job-example.yaml",
            "EXAMPLE: the Job a worker creates for one execution (workers make these)",
            (example_job(settings),),
            applied=False,
        ),
        ManifestFile(
            "kubelet-execution.yaml",
            "merge into the kubelet configuration of every execution node (not an API object)",
            (kubelet_configuration(default_limits()),),
            applied=False,
        ),
        ManifestFile(
            "z2jh-values.yaml",
            "Zero-to-JupyterHub values: helm upgrade --install erchub jupyterhub/jupyterhub "
            "--namespace NAMESPACE --values z2jh-values.yaml",
            (z2jh_values(settings),),
            applied=False,
        ),
    ]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [file.name for file in files if file.applied],
    }
    about = "kubectl apply -k config/kubernetes/ applies these (after the Secrets, README)"
    return [*files, ManifestFile("kustomization.yaml", about, (kustomization,), applied=False)]


def render_files(settings: KubernetesSettings) -> dict[str, str]:
    """File name -> content, as ``config/kubernetes/`` holds them."""
    return {
        file.name: f"# {file.name}: {file.about}\n{RENDERED_HEADER}{to_yaml(file.documents)}"
        for file in manifest_files(settings)
    }


def settings_with(assignments: Sequence[str]) -> KubernetesSettings:
    """The default settings with ``NAME=VALUE`` assignments (a list: comma-separated)."""
    defaults = KubernetesSettings()
    known = {field.name for field in fields(KubernetesSettings)}
    changes: dict[str, Any] = {}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep or name not in known:
            raise ValueError(f"{assignment!r}: NAME=VALUE, NAME one of {', '.join(sorted(known))}")
        current = getattr(defaults, name)
        if isinstance(current, int):
            changes[name] = int(value)
        elif isinstance(current, tuple):
            changes[name] = tuple(item.strip() for item in value.split(",") if item.strip())
        else:
            changes[name] = value
    return replace(defaults, **changes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m erchub.services.cluster.kubernetes",
        description="Render erchub's Kubernetes manifests and Zero-to-JupyterHub values "
        "(on paper: untested against a live cluster).",
    )
    parser.add_argument(
        "--output", default="config/kubernetes", help="directory (default: config/kubernetes)"
    )
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of KubernetesSettings (hub_host=hub.example.org, ...)",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a file differs"
    )
    args = parser.parse_args(argv)
    try:
        settings = settings_with(args.assignments)
    except ValueError as exc:
        parser.error(str(exc))
    output = Path(args.output)
    rendered = render_files(settings)
    if args.check:
        stale = sorted(
            name
            for name, text in rendered.items()
            if not (output / name).is_file() or (output / name).read_text() != text
        )
        for name in stale:
            print(f"{output / name}: differs from what is rendered", file=sys.stderr)
        return 1 if stale else 0
    output.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (output / name).write_text(text)
        print(output / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
