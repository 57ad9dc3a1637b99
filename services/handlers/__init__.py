"""Handlers of the `erc` service, one module per resource, each ending in default_handlers:
the API, the pages for browsers, and the metrics for monitoring."""

from __future__ import annotations

from typing import Any


def api_handlers() -> list[tuple[str, Any]]:
    """Every API route, relative to the API prefix, in matching order."""
    from erchub.services.handlers import (
        compendium,
        index,
        job,
        link,
        openapi,
        recipient,
        search,
        shipment,
        substitution,
        user,
    )

    routes: list[tuple[str, Any]] = []
    modules = (
        compendium,
        link,
        job,
        search,
        substitution,
        recipient,
        shipment,
        user,
        index,
        openapi,
    )
    for module in modules:
        routes.extend(module.default_handlers)
    return routes


def monitoring_handlers() -> list[tuple[str, Any]]:
    """Every route for monitoring, relative to the service prefix: neither API nor page, as the
    hub serves its /hub/metrics beside /hub/api."""
    from erchub.services.handlers import metrics

    return list(metrics.default_handlers)


def page_handlers() -> list[tuple[str, Any]]:
    """Every page route, relative to the service prefix, in matching order."""
    from erchub.services.handlers import catalogue, check, landing, launch, login

    routes: list[tuple[str, Any]] = []
    for module in (catalogue, landing, launch, check, login):
        routes.extend(module.default_handlers)
    return routes
