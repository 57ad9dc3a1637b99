"""``POST erchub/publish`` ``{"path": notebook}``: the notebook's workspace becomes a candidate
compendium of the erc service.

The workspace is the notebook's ERC root (the nearest folder with an erc.yml), else its
folder; its files (``.ercignore`` respected) are zipped into a temporary file, with an erc.yml
naming the notebook as main when there is none, and uploaded as the user. The answer (201) is
the candidate with the metadata the service extracted.
"""

from __future__ import annotations

import tempfile
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from erchub.errors import ErchubError
from erchub.extensions.client import path_of
from erchub.extensions.handlers.base import BaseHandler, http_error
from erchub.extensions.notebooks import pack_workspace, relative_to_root

UPLOAD_CONTENT_TYPE = "workspace"


class PublishHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body({"path": (str, True)})
        view = await self.notebook_view(body["path"])
        client = self.erc_client
        root = view.erc_root or view.folder
        main = view.file.relative_to(root).as_posix()
        with tempfile.TemporaryFile() as archive:
            try:
                files, size = await self.blocking(pack_workspace, root, main, archive)
            except ErchubError as error:
                raise http_error(400, str(error)) from None
            except OSError as error:
                raise http_error(
                    400, f"cannot pack {error.filename or root}: {error.strerror}"
                ) from None
            self.log.info("erchub: publishing %s (%d files, %d bytes)", root, files, size)
            created = await self.erc_call(
                client.upload(archive, size, UPLOAD_CONTENT_TYPE, self.erchub.upload_timeout)
            )
        compendium_id = _object(created).get("id")
        if not isinstance(compendium_id, str):
            raise http_error(502, "the erc service's answer to the upload has no id")
        shown = _object(
            await self.erc_call(client.json("GET", path_of("compendium", compendium_id)))
        )
        self.write_json(
            {
                "compendium_id": compendium_id,
                "candidate": shown.get("candidate", True),
                "root": relative_to_root(self.root_dir, root),
                "files": files,
                "metadata": shown.get("metadata", {}),
            },
            status=201,
        )


def _object(answer: Any) -> dict[str, Any]:
    """An answer of the erc service that must be a JSON object; 502 when it is not."""
    if not isinstance(answer, dict):
        raise http_error(502, "the erc service answered with something that is no JSON object")
    return answer


default_handlers = [(r"/erchub/publish", PublishHandler)]
