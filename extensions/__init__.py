"""erchub.extensions: the jupyter-server extension that runs inside single-user servers.

It serves the ERC panel of the JupyterLab extension under ``<base_url>erchub/``: the session's
context, a notebook's parameters as widgets, runs with new values, publishing the workspace as
a candidate compendium, and proxies to the user's ``erc`` service API. See
:mod:`erchub.extensions.app` for its settings.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from erchub.extensions.app import ERCHubExtension

    return [{"module": "erchub.extensions.app", "app": ERCHubExtension}]
