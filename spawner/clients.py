"""The one way erchub makes Docker clients.

``docker_client()`` talks to the engine DockerSpawner's ``client`` talks to: it resolves its
arguments as that property does (``tls_config``, then DOCKER_HOST, DOCKER_TLS_VERIFY and
DOCKER_CERT_PATH, then ``client_kwargs``), on ``docker.from_env()``'s defaults (its timeout and
connection pool size, the engine's API version). So the hub's sessions, their image builds, the
session network and the erc service's jobs all reach one engine, and a hub configured for a
remote engine (``DockerSpawner.client_kwargs``, ``DockerSpawner.tls_config``) builds where its
sessions run.

It does not fall back to a Docker CLI context as newer ``docker.from_env()`` does: DockerSpawner
does not either, and a build must not go to another engine than its session.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import docker
from docker.constants import DEFAULT_MAX_POOL_SIZE, DEFAULT_TIMEOUT_SECONDS
from docker.tls import TLSConfig
from docker.utils import kwargs_from_env


def docker_client(
    *,
    tls_config: Mapping[str, Any] | None = None,
    environment: Mapping[str, str] | None = None,
    **client_kwargs: Any,
) -> docker.DockerClient:
    """A ``docker.DockerClient``: ``docker.from_env()``'s defaults, ``tls_config`` (arguments
    of ``docker.tls.TLSConfig``), the DOCKER_* variables of ``environment`` (default: this
    process's), then ``client_kwargs`` (arguments of ``docker.DockerClient``: ``base_url``,
    ``timeout``, ``tls``, ``version``, ...), each over the ones before, as DockerSpawner's
    ``client`` property does. Like ``docker.from_env()`` it asks the engine for its API version:
    raises ``docker.errors.DockerException`` when the engine cannot be reached."""
    arguments: dict[str, Any] = {
        "version": None,
        "timeout": DEFAULT_TIMEOUT_SECONDS,
        "max_pool_size": DEFAULT_MAX_POOL_SIZE,
        "use_ssh_client": False,
    }
    if tls_config:
        arguments["tls"] = TLSConfig(**tls_config)
    arguments.update(kwargs_from_env(environment=dict(environment) if environment else None))
    arguments.update(client_kwargs)
    return docker.DockerClient(**arguments)
