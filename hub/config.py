"""Config helpers for jupyterhub_config.py: the managed `erc` service, its scopes and roles."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

SERVICE_NAME = "erc"

ERC_SCOPES: dict[str, dict[str, str]] = {
    "custom:erc:read": {
        "description": "See published compendia, their jobs and search results (and one's own "
        "candidates)."
    },
    "custom:erc:create": {"description": "Upload compendia and edit their metadata."},
    "custom:erc:run": {"description": "Start jobs and cancel one's own jobs."},
    "custom:erc:admin": {"description": "See, change, delete and cancel every compendium and job."},
}

#: what every user may do with the service
USER_ERC_SCOPES = ["custom:erc:read", "custom:erc:create", "custom:erc:run"]
#: the role of erc administrators (JupyterHub's own admin role cannot be extended)
ERC_ADMIN_ROLE = "erc-admin"

#: the hub's environment variables a managed service inherits besides JupyterHub's own: how
#: builds reach PyPI (PIP_*, proxies, CA bundles) and where the Docker engine is
PASSED_ENVIRONMENT_PREFIXES = ("PIP_", "DOCKER_", "ERCHUB_")
PASSED_ENVIRONMENT = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CI",
)


def passed_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        key: value
        for key, value in environ.items()
        if key in PASSED_ENVIRONMENT or key.startswith(PASSED_ENVIRONMENT_PREFIXES)
    }


def configure_erc_service(
    c: Any,
    *,
    data_dir: str,
    db_url: str | None = None,
    worker_count: int = 1,
    port: int = 10101,
    admin_users: Iterable[str] = (),
    environment: Mapping[str, str] | None = None,
) -> None:
    """Add the managed `erc` service to a JupyterHub config, with its scopes and roles.

    Every user gets ``custom:erc:read``, ``create`` and ``run`` (and access to the service);
    ``admin_users`` and the ``erc-admin`` group get ``custom:erc:admin``. Settings reach the
    service as ``ERCHUB_*`` environment variables (see erchub.services.app).
    """
    env = passed_environment(os.environ)
    env.update(
        ERCHUB_DATA_DIR=os.path.abspath(data_dir),
        ERCHUB_WORKER_COUNT=str(worker_count),
    )
    if db_url:
        env["ERCHUB_DB_URL"] = db_url
    env.update(environment or {})
    c.JupyterHub.custom_scopes = {**ERC_SCOPES, **dict(c.JupyterHub.get("custom_scopes", {}))}
    services = list(c.JupyterHub.get("services", []))
    services.append(
        {
            "name": SERVICE_NAME,
            "url": f"http://127.0.0.1:{port}",
            "command": [sys.executable, "-m", "erchub.services"],
            "environment": env,
            "display": False,
            # The browser's token carries the erc scopes its user holds, no consent page.
            "oauth_client_allowed_scopes": list(ERC_SCOPES),
            "oauth_no_confirm": True,
        }
    )
    c.JupyterHub.services = services
    roles = [r for r in c.JupyterHub.get("load_roles", []) if r["name"] != "user"]
    roles.append(
        {
            "name": "user",
            "scopes": ["self", f"access:services!service={SERVICE_NAME}", *USER_ERC_SCOPES],
        }
    )
    roles.append(
        {
            "name": ERC_ADMIN_ROLE,
            "description": "Administers the erc service.",
            "scopes": [f"access:services!service={SERVICE_NAME}", *ERC_SCOPES],
            "users": sorted(admin_users),
            "groups": [ERC_ADMIN_ROLE],
        }
    )
    c.JupyterHub.load_roles = roles
