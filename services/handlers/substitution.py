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

from tornado import web

from erchub import substitution
from erchub.services.compendia.operations import substitute
from erchub.services.handlers.base import SCOPE_CREATE, SCOPE_RUN, BaseHandler, needs_scope
from erchub.services.jobs.queue import queue_job
from erchub.services.jobs.runner import network_grant
from erchub.services.store import CompendiumRecord


class SubstitutionHandler(BaseHandler):
    """``/substitution``: create (POST)."""

    @needs_scope(SCOPE_CREATE, SCOPE_RUN)
    async def post(self) -> None:
        user = self.username
        self.check_arguments()
        request = substitution.parse_request(self.json_body())
        base = await self._visible(request.base, "base")
        overlay = await self._visible(request.overlay, "overlay")
        base_root = await self.compendium_files(base)
        overlay_root = await self.compendium_files(overlay)
        compendium_id = await self.blocking(
            substitute,
            self.store,
            self.service.data_dir,
            request,
            base_root,
            overlay_root,
            base.metadata,
            user,
        )
        granted = network_grant(
            self.scopes, everyone=self.service.network_for_everyone, admin=self.is_admin
        )
        job = await self.blocking(
            queue_job, self.store, self.job_dir, compendium_id, user, network_granted=granted
        )
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
