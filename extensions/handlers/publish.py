"""Publishing a notebook's folder as a new candidate compendium of the erc service.

- ``GET erchub/publish?path=<notebook>[&folder=<folder>]``: what publishing would pack
  (:func:`erchub.extensions.notebooks.plan_publishing`): the folder (proposed: the notebook's
  own, or the compendium folder whose main it is), the folders the author may choose, every
  file with its size and the totals, whether the notebook's outputs can be the reference of
  its check, how it may be published (``modes``: ``new``; in a launched session, the
  launched compendium's folder is a ``new_version`` of it for its author, ``derived`` from it
  for others) and the metadata proposed (from the notebook and the login, licences empty),
  with what publishing still ``missing``.
- ``POST erchub/publish`` ``{"path", "folder", "mode", "metadata": {o2r}}``: packs exactly
  that folder with an erc.yml naming the notebook as main (and the chosen licences), uploads
  it as the user with the relation the mode records, and saves the metadata on the candidate
  (which stays a candidate). Without a title, an author or the code, data and text licences
  it is a 400 naming what is missing, and nothing is uploaded; when the erc service refuses
  the metadata the candidate is deleted again. 201: the candidate.

In a session started through a review link, the launched compendium's folder is not
published (400): it is the reviewed author's; the reviewer's own folders are new compendia.

Folders are named from the server's root with a leading ``/`` (``/`` is the root).
"""

from __future__ import annotations

import tempfile
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from erchub.errors import ErchubError
from erchub.extensions.client import ErcServiceError, path_of
from erchub.extensions.handlers.base import BaseHandler, http_error
from erchub.extensions.notebooks import PublishPlan, pack_plan, plan_publishing
from erchub.extensions.publishing import (
    OUTPUT_MESSAGES,
    RELATION_FIELDS,
    PublishMode,
    allowed_modes,
    choose_mode,
    chosen_licenses,
    join_words,
    missing_metadata,
)

UPLOAD_CONTENT_TYPE = "workspace"


def shown_folder(folder: str) -> str:
    """A folder relative to the server's root as the API names it."""
    return "/" + folder


class PublishHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        path = self.get_query_argument("path", "")
        folder = self.get_query_argument("folder", None)
        plan = await self.plan(path, folder)
        modes = await self.modes(plan)
        self.write_json(
            {
                "path": plan.path,
                "folder": shown_folder(plan.folder),
                "proposed_folder": shown_folder(plan.proposed_folder),
                "folders": [shown_folder(name) for name in plan.folders],
                "files": [
                    {"path": file.path, "size": file.size, "written": file.written}
                    for file in plan.files
                ],
                "total_files": len(plan.files),
                "total_bytes": plan.total_bytes,
                "outputs": {
                    "state": plan.outputs.value,
                    "message": OUTPUT_MESSAGES[plan.outputs],
                },
                "modes": [mode.value for mode in modes],
                # the launched compendium, when the folder is its
                "related_compendium": None
                if modes[0] is PublishMode.NEW
                else self.erchub.compendium_id,
                "metadata": {"o2r": plan.metadata},
                "missing": missing_metadata(plan.metadata),
                "warnings": plan.warnings,
            }
        )

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body(
            {
                "path": (str, True),
                "folder": (str, False),
                "mode": (str, False),
                "metadata": (dict, True),
            }
        )
        o2r = body["metadata"].get("o2r")
        if not isinstance(o2r, dict):
            raise http_error(400, 'metadata must be {"o2r": {...}}')
        missing = missing_metadata(o2r)
        if missing:
            raise http_error(400, f"not published: it needs {join_words(missing)}")
        plan = await self.plan(body["path"], body.get("folder"))
        try:
            mode = choose_mode(body.get("mode"), await self.modes(plan))
        except ErchubError as error:
            raise http_error(400, str(error)) from None
        client = self.erc_client
        relation = {}
        if mode in RELATION_FIELDS and self.erchub.compendium_id is not None:
            relation = {RELATION_FIELDS[mode]: self.erchub.compendium_id}
        with tempfile.TemporaryFile() as archive:
            try:
                size = await self.blocking(
                    pack_plan, self.root_dir, plan, chosen_licenses(o2r), archive
                )
            except OSError as error:
                raise http_error(
                    400, f"cannot pack {error.filename or plan.folder}: {error.strerror}"
                ) from None
            self.log.info(
                "erchub: publishing /%s (%d files, %d bytes, %s)",
                plan.folder,
                len(plan.files),
                size,
                mode.value,
            )
            created = await self.erc_call(
                client.upload(
                    archive, size, UPLOAD_CONTENT_TYPE, self.erchub.upload_timeout, relation
                )
            )
        compendium_id = _object(created).get("id")
        if not isinstance(compendium_id, str):
            raise http_error(502, "the erc service's answer to the upload has no id")
        saved = await self.save_metadata(compendium_id, o2r)
        self.erchub.published[plan.folder] = compendium_id
        self.write_json(
            {
                "compendium_id": compendium_id,
                "candidate": saved.get("candidate", True),
                "folder": shown_folder(plan.folder),
                "files": len(plan.files),
                "mode": mode.value,
                "relation": relation or None,
                "metadata": saved.get("metadata", {}),
            },
            status=201,
        )

    async def plan(self, path: str, folder: str | None) -> PublishPlan:
        author = (self.erchub.author_name or None, self.erchub.author_orcid or None)
        try:
            return await self.blocking(plan_publishing, self.root_dir, path, folder, author)
        except ErchubError as error:
            raise http_error(400, str(error)) from None
        except OSError as error:
            raise http_error(
                400, f"cannot read {error.filename or path}: {error.strerror}"
            ) from None

    async def modes(self, plan: PublishPlan) -> list[PublishMode]:
        """How the plan's folder may be published; 400 when it may not be."""
        launched = None
        if self.erchub.compendium_id is not None:
            launched = await self.erc_call(self.erchub.launched_compendium())
        user = self.erchub.user_of(self.current_user)
        through_link = self.erchub.review_link is not None
        try:
            return allowed_modes(plan.folder, launched, user, through_link=through_link)
        except ErchubError as error:
            raise http_error(400, str(error)) from None

    async def save_metadata(self, compendium_id: str, o2r: dict[str, Any]) -> dict[str, Any]:
        """The author's metadata over what the service extracted, saved on the candidate
        (kept a candidate); the candidate is deleted again when the service refuses it."""
        client = self.erc_client
        shown = _object(
            await self.erc_call(client.json("GET", path_of("compendium", compendium_id)))
        )
        extracted = shown.get("metadata", {}).get("o2r", {})
        metadata = {**extracted, **o2r}
        path = path_of("compendium", compendium_id, "metadata")
        try:
            saved = await client.json("PUT", path, {"o2r": metadata}, query={"publish": "false"})
        except ErcServiceError as error:
            try:
                await client.fetch(client.request("DELETE", path_of("compendium", compendium_id)))
            except ErcServiceError as cleanup:
                self.log.warning("erchub: candidate %s not deleted: %s", compendium_id, cleanup)
            raise http_error(error.status, f"not published: {error.message}") from None
        return _object(saved)


def _object(answer: Any) -> dict[str, Any]:
    """An answer of the erc service that must be a JSON object; 502 when it is not."""
    if not isinstance(answer, dict):
        raise http_error(502, "the erc service answered with something that is no JSON object")
    return answer


default_handlers = [(r"/erchub/publish", PublishHandler)]
