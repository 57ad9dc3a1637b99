"""The OpenAPI 3.1 document of the erc API, assembled from one YAML fragment per resource.

Each fragment (``common.yaml``, ``compendium.yaml``, ``link.yaml``, ``job.yaml``,
``search.yaml``, ``substitution.yaml``, ``shipment.yaml``, ``user.yaml``, ``index.yaml``) holds
``paths`` relative to the API prefix and the ``components`` those paths use; the document lists the
service's API prefix as its server. The paths of ``metrics.yaml`` are beside the API, relative to
the service's prefix: each has that prefix as its own server.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml

from erchub import __version__

FRAGMENTS = (
    "common",
    "compendium",
    "link",
    "job",
    "search",
    "substitution",
    "shipment",
    "user",
    "index",
)
#: fragments whose paths are relative to the service's prefix, not to the API's
BESIDE_THE_API = ("metrics",)
#: where the API is below the service's prefix (ERCService.api_prefix)
API_PATH = "/api/v1"


@functools.cache
def _fragment(name: str) -> dict[str, Any]:
    text = resources.files(__package__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def build_document(api_prefix: str) -> dict[str, Any]:
    """The document, with ``api_prefix`` (e.g. /services/erc/api/v1) as its server URL, and the
    service's prefix (the API prefix without its /api/v1) as the server of the paths beside the
    API."""
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "erchub erc service",
            "version": __version__,
            "description": "Compendia, jobs and search of erchub, the JupyterHub distribution "
            "for Executable Research Compendia. Resource and field names follow the o2r "
            "reproducibility service. Authenticate with a hub API token "
            "(`Authorization: token ...`) or the hub's OAuth cookie.",
        },
        "servers": [{"url": api_prefix.rstrip("/")}],
        "security": [{"hubToken": []}, {"hubCookie": []}],
        "paths": {},
        "components": {},
    }
    service_prefix = api_prefix.rstrip("/").removesuffix(API_PATH)
    for name in (*FRAGMENTS, *BESIDE_THE_API):
        fragment = _fragment(name)
        for path, item in (fragment.get("paths") or {}).items():
            if path in document["paths"]:
                raise ValueError(f"openapi: {path} defined twice ({name}.yaml)")
            if name in BESIDE_THE_API:
                item = {"servers": [{"url": service_prefix}], **item}
            document["paths"][path] = item
        for section, entries in (fragment.get("components") or {}).items():
            target = document["components"].setdefault(section, {})
            for key, value in entries.items():
                if key in target:
                    raise ValueError(f"openapi: components.{section}.{key} twice ({name}.yaml)")
                target[key] = value
    return document
