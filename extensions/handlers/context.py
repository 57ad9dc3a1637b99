"""``GET erchub/context``: the ERC and job the session was launched for, whether an erc
service is configured (publishing and checking need one) and the session's user.

With ``?path=<notebook>`` it also answers ``notebook``: the compendium the ERC panel shows for
that notebook (:func:`erchub.extensions.publishing.notebook_compendium`): its
``compendium_id`` (null: not yet published), ``source`` (``launched`` or ``published``) and
whether the user may ``edit`` its metadata (its author: the launched compendium's ``user``,
or this session, which published it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from erchub.extensions.handlers.base import BaseHandler, http_error
from erchub.extensions.notebooks import UnknownNotebook, relative_to_root, resolve_notebook
from erchub.extensions.publishing import NotebookSource, notebook_compendium


class ContextHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        user = self.erchub.user_of(self.current_user)
        context = self.erchub.session_context(user)
        path = self.get_query_argument("path", None)
        if path is not None:
            context["notebook"] = await self.notebook_context(path, user)
        self.write_json(context)

    async def notebook_context(self, path: str, user: str) -> dict[str, Any]:
        try:
            file: Path = await self.blocking(resolve_notebook, self.root_dir, path)
        except UnknownNotebook as error:
            raise http_error(400, str(error)) from None
        relative = relative_to_root(self.root_dir, file)
        launched = None
        if self.erchub.erc_client is not None:
            launched = await self.erc_call(self.erchub.launched_compendium())
        found = notebook_compendium(relative, launched, self.erchub.published)
        if found is None:
            return {"path": relative, "compendium_id": None, "source": None, "editable": False}
        compendium_id, source = found
        editable = source is NotebookSource.PUBLISHED or (
            launched is not None and launched.user == user
        )
        return {
            "path": relative,
            "compendium_id": compendium_id,
            "source": source.value,
            "editable": editable,
        }


default_handlers = [(r"/erchub/context", ContextHandler)]
