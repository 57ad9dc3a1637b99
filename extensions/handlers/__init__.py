"""Handlers of the extension, one module per resource, each ending in default_handlers."""

from __future__ import annotations

from typing import Any


def all_handlers() -> list[tuple[str, Any]]:
    """Every route, relative to the server's base URL, in matching order."""
    from erchub.extensions.handlers import (
        compendium,
        context,
        job,
        link,
        parameters,
        publish,
        run,
    )

    routes: list[tuple[str, Any]] = []
    for module in (context, parameters, run, publish, compendium, link, job):
        routes.extend(module.default_handlers)
    return routes
