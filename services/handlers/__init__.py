"""Handlers of the `erc` service, one module per resource, each ending in default_handlers:
the API, and the pages for browsers."""

from __future__ import annotations

from typing import Any


def api_handlers() -> list[tuple[str, Any]]:
    """Every API route, relative to the API prefix, in matching order."""
    from erchub.services.handlers import (
        compendium,
        job,
        openapi,
        recipient,
        search,
        shipment,
        substitution,
    )

    routes: list[tuple[str, Any]] = []
    for module in (compendium, job, search, substitution, recipient, shipment, openapi):
        routes.extend(module.default_handlers)
    return routes


def page_handlers() -> list[tuple[str, Any]]:
    """Every page route, relative to the service prefix, in matching order."""
    from erchub.services.handlers import catalogue, check, landing, launch, login

    routes: list[tuple[str, Any]] = []
    for module in (catalogue, landing, launch, check, login):
        routes.extend(module.default_handlers)
    return routes
