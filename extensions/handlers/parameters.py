"""``GET erchub/parameters?path=<notebook>``: the notebook's parameters as the ERC panel's
widgets (the parameters cell merged with erc.yml's ui_bindings), its ERC root and warnings.

Asking means a run may come: the kernel pool starts the notebook's kernel in its folder.
"""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from erchub.extensions.handlers.base import BaseHandler
from erchub.extensions.notebooks import relative_to_root
from erchub.parameters import kernel_name


class ParametersHandler(BaseHandler):
    auth_resource = "contents"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        view = await self.notebook_view(self.get_query_argument("path"))
        warnings = list(view.warnings)
        name = kernel_name(view.notebook)
        if await self.kernel_installed(name):
            self.erchub.kernel_pool.prepare(name, str(view.folder))
        else:
            warnings.append(f"the notebook's kernel {name!r} is not installed here: it cannot run")
        erc_root = view.erc_root
        self.write_json(
            {
                "path": view.path,
                "erc_root": None if erc_root is None else relative_to_root(self.root_dir, erc_root),
                "parameters": [spec.to_json() for spec in view.specs],
                "warnings": warnings,
            }
        )


default_handlers = [(r"/erchub/parameters", ParametersHandler)]
