"""The Docker network of ERC sessions."""

from __future__ import annotations

import docker

from erchub.errors import ErchubError


def ensure_session_network(name: str, client: docker.DockerClient | None = None) -> str:
    """Create the internal bridge network ``name`` unless it exists; its gateway address.

    Internal: containers on it have no route off the host; the host is reachable at the
    gateway, where the hub's API listens.
    """
    client = client or docker.from_env()
    try:
        network = client.networks.get(name)
    except docker.errors.NotFound:
        network = client.networks.create(
            name, driver="bridge", internal=True, labels={"org.erchub.session": "network"}
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
    return str(gateway)
