"""The ``substitution`` resource (o2r's substituter): a new compendium from two others.

``POST /substitution {base, overlay, substitutionFiles: [{base, overlay}], metadataHandling}``
makes a new candidate compendium of the caller: the base compendium's files, with each named
base file's content replaced by the named file of the overlay compendium, its metadata chosen
by ``metadataHandling`` and recording the origin as ``substitution`` (rules:
:mod:`erchub.substitution`). A job is queued for it as ``POST /job`` queues one, so the
substituted analysis runs and its check shows what the new files changed. Answers 201
``{"id", "job_id"}`` with the new compendium's URL as ``Location``.

Order of refusals: scopes (403: ``custom:erc:create`` to make a compendium and
``custom:erc:run`` for its job), the body (400 naming the field: paths, duplicates,
``metadataHandling``), the two compendia (404 unless the caller may see them), the files
(400 naming a pair whose file is missing; 400 when the result is no valid compendium, e.g. a
notebook replaced by something else). The copy, the validation and the metadata extraction run
in the executor, off the event loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tornado import web

from erchub import safefs, substitution, workspace
from erchub.errors import InvalidERC
from erchub.metadata import write_metadata
from erchub.services import compendia
from erchub.services.handlers.base import SCOPE_CREATE, SCOPE_RUN
from erchub.services.handlers.compendium import CompendiumBase, add_compendium
from erchub.services.handlers.job import queue_job
from erchub.services.store import CompendiumRecord


def build_substituted(
    data_dir: str,
    request: substitution.SubstitutionRequest,
    base_root: Path,
    overlay_root: Path,
    base_metadata: dict[str, Any],
) -> compendia.StagedCompendium:
    """The new compendium, complete in a staging directory (blocking). Raises
    InvalidSubstitution for a named file that is missing, InvalidERC when the result is no
    valid compendium; on any error nothing stays behind."""
    plan = substitution.plan_substitution(
        request, workspace.list_files(base_root), workspace.list_files(overlay_root)
    )
    roots = {"base": base_root, "overlay": overlay_root}

    def fill(target: Path) -> Path:
        target.mkdir()
        for path, source in plan.files.items():
            # The listed files are inside already; opening them inside keeps it so.
            with safefs.open_file(roots[source.side], source.path) as origin:
                safefs.write_stream(target, path, origin)
        return target

    staged = compendia.stage(data_dir, fill, "compendium")
    try:
        metadata = substitution.substituted_metadata(
            request.metadata_handling, base_metadata, staged.metadata, plan.record
        )
        write_metadata(staged.root, metadata)
    except BaseException:
        compendia.discard(staged)
        raise
    staged.metadata = metadata
    return staged


class SubstitutionHandler(CompendiumBase):
    """``/substitution``: create (POST)."""

    async def post(self) -> None:
        user = self.require(SCOPE_CREATE)
        self.require(SCOPE_RUN)
        self.check_arguments()
        try:
            request = substitution.parse_request(self.json_body())
        except substitution.InvalidSubstitution as error:
            raise web.HTTPError(400, str(error)) from None
        base = await self._visible(request.base, "base")
        overlay = await self._visible(request.overlay, "overlay")
        base_root = await self.compendium_files(base)
        overlay_root = await self.compendium_files(overlay)
        data_dir = self.service.data_dir
        try:
            staged = await self.blocking(
                build_substituted, data_dir, request, base_root, overlay_root, base.metadata
            )
        except (substitution.InvalidSubstitution, InvalidERC) as error:
            raise web.HTTPError(400, str(error)) from None
        try:
            compendium_id = await self.blocking(add_compendium, self.store, staged, data_dir, user)
        finally:
            await self.blocking(compendia.discard, staged)
        job = await self.blocking(queue_job, self.store, self.job_dir, compendium_id, user)
        self.log.info(
            "compendium %s substituted by %s from %s and %s (%s); job %s queued",
            compendium_id,
            user,
            base.id,
            overlay.id,
            request.metadata_handling,
            job.id,
        )
        self.set_header("Location", f"{self.service.api_prefix}/compendium/{compendium_id}")
        self.write_json({"id": compendium_id, "job_id": job.id}, status=201)

    async def _visible(self, compendium_id: str, role: str) -> CompendiumRecord:
        """The base or overlay compendium if the caller may see it, else 404 naming its role."""
        record = await self.blocking(self.store.get_compendium, compendium_id)
        if record is None or not self.can_see(record):
            raise web.HTTPError(404, f"{role} compendium {compendium_id} not found")
        return record


default_handlers = [
    (r"/substitution", SubstitutionHandler),
]
