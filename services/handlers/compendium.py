"""The ``compendium`` resource (o2r's names): upload, list, get, delete, metadata, files.

- ``POST /compendium``: multipart upload (``compendium`` file, ``content_type`` workspace or
  compendium, optionally ``is_new_version_of`` or ``derived_from`` the id of a compendium the
  caller can see: recorded in the metadata; a new version only of the caller's own, else
  403), streamed to disk, extracted safely, completed, moved into place, then
  recorded: 201 ``{"id"}``, a candidate of the caller. A bad archive is a 400 with the
  foundation's one-line message (also for the archive limits, a zip bomb: the request itself
  was within the upload limit, its content is what is wrong); a body above the upload limit
  is a 413. With a JSON body (``Content-Type: application/json``) it loads instead (o2r's
  loader, :mod:`erchub.services.exchange.loader`): ``{"share_url"}``, ``{"doi"}`` or
  ``{"zenodo_record_id"}`` (optional ``sandbox``, ``filename``, ``content_type``); the
  download then takes exactly the path of an upload, and the metadata records its ``origin``
  (and ``identifier.doi``). ``{"git_url", "ref"}`` loads a git repository's commit
  (:mod:`erchub.services.exchange.git`): a compendium of that commit the caller can see is
  reused (200 ``{"id"}``), another commit is a new compendium (201), a new version of the
  caller's newest of that repository. The loader's errors keep their status (400, 403, 404,
  413, 502).
- ``GET /compendium``: ``{"results": [ids], "total"}`` as o2r (newest first); filters
  ``user``, ``doi``, ``candidate=true`` (the caller's own candidates), o2r's ``job_id`` (a
  comma-separated list of job ids: the compendia those jobs ran), ``start``, ``limit``;
  ``summary=true`` adds ``summaries`` (id, user, created, candidate, title per result).
- ``GET /compendium/{id}``: id, user, created, updated, candidate, ``is_new_version_of`` and
  ``derived_from`` (ids or null), metadata ``{"o2r"}``, files.
- ``DELETE /compendium/{id}``: the author deletes a candidate, an administrator anything;
  others get 403 on what they can see. 409 while one of its jobs runs. Removes the record,
  its jobs, and their files: 204.
- ``GET|PUT /compendium/{id}/metadata``: GET gives the o2r metadata, or with ``format`` one of
  its exports (:mod:`erchub.services.exchange.citation`: ``datacite`` XML, ``codemeta``,
  ``schemaorg`` JSON-LD, ``csl`` JSON, ``bibtex``) in that format's media type, as the
  compendium is seen (through a blind review link without its creators); another format is
  a 400. PUT ``{"o2r": {...}}`` is validated against
  ``schemas/metadata_o2r.schema.json`` (400 naming every failing field), allowed to the author
  and administrators, written to ``.erc/metadata_o2r_1.json`` and the store; sent by the
  author, it publishes a candidate (``candidate`` false) unless ``publish=false``.
- ``GET /compendium/{id}/files``, ``GET /compendium/{id}/data/{path}``, and the streamed
  downloads ``GET /compendium/{id}.zip`` and ``.tar.gz``.

Scopes: reading needs ``custom:erc:read``; uploading, changing metadata and deleting
``custom:erc:create``; ``custom:erc:admin`` may do everything to every compendium.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from tornado import web

from erchub import safefs
from erchub.metadata import METADATA_DIRECTORY, METADATA_PATH
from erchub.services.compendia import files as compendia
from erchub.services.compendia.operations import (
    checked_metadata,
    delete_compendium,
    ingest_compendium,
    metadata_lock,
    relation_metadata,
    save_metadata,
)
from erchub.services.exchange.loading import load_compendium, load_git_compendium, resolve_git
from erchub.services.exchange.o2r import GIT_KIND
from erchub.services.exchange.sources import (
    LOAD_BODY_SCHEMA,
    LoaderSettings,
    Source,
    parse_source,
)
from erchub.services.handlers.base import (
    SCOPE_CREATE,
    SCOPE_READ,
    BaseHandler,
    needs_scope,
    untrusted_content_headers,
)
from erchub.services.handlers.upload import UploadHandler
from erchub.services.handlers.views import compendium_json, summary_json
from erchub.services.store import CompendiumQuery, CompendiumRecord

#: the filters of GET /compendium
LIST_ARGUMENTS = ("user", "doi", "candidate", "summary", "start", "limit", "job_id")
#: the most job ids one GET /compendium?job_id= names
MAX_JOB_IDS = 100
#: the largest JSON body of POST /compendium (a load request), in bytes
MAX_LOAD_BODY = 64 * 1024

O2R_SCHEMA: dict[str, Any] = json.loads(
    resources.files("erchub.services")
    .joinpath("schemas/metadata_o2r.schema.json")
    .read_text(encoding="utf-8")
)
#: the body of PUT /compendium/{id}/metadata
METADATA_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["o2r"],
    "additionalProperties": False,
    "properties": {"o2r": {k: v for k, v in O2R_SCHEMA.items() if k != "$schema"}},
}
#: fields derived from the files: the service keeps its own values, whatever a PUT says
DERIVED_FIELDS = tuple(
    name for name, field in O2R_SCHEMA["properties"].items() if field.get("readOnly")
)


def selected_compendia(
    records: list[CompendiumRecord], query: CompendiumQuery
) -> tuple[list[CompendiumRecord], int]:
    """The page of ``records`` that ``query`` selects, as the store's listing selects
    (published ones; with ``candidate``, the viewer's own candidates, every one for an
    administrator), newest first, each once; and how many there are in all."""
    chosen: dict[str, CompendiumRecord] = {}
    for record in records:
        if query.candidate:
            wanted = record.candidate and query.viewer in (None, record.user)
        else:
            wanted = not record.candidate
        wanted = wanted and query.user in (None, record.user)
        wanted = wanted and (query.doi is None or record.doi == query.doi.lower())
        if wanted:
            chosen[record.id] = record
    ordered = sorted(chosen.values(), key=lambda record: record.created, reverse=True)
    return ordered[query.start : query.start + query.limit], len(ordered)


class CompendiaHandler(UploadHandler):
    """``/compendium``: list (GET), upload (POST of a multipart body) and load (POST of a
    JSON body)."""

    def check_upload(self) -> None:
        self.require(SCOPE_CREATE)
        self.check_arguments()

    @property
    def is_load(self) -> bool:
        """Whether the POST is a load: a JSON body rather than a multipart upload."""
        content_type = self.request.headers.get("Content-Type", "")
        return content_type.split(";")[0].strip().lower().endswith("json")

    @property
    def body_limit(self) -> int:  # type: ignore[override]
        return MAX_LOAD_BODY if self.is_load else int(self.service.upload_limit)

    def too_large(self) -> web.HTTPError:
        if self.is_load:
            return web.HTTPError(413, f"a load request is at most {MAX_LOAD_BODY} bytes")
        return super().too_large()

    async def start_upload(self) -> None:
        if not self.is_load:
            await super().start_upload()
            return
        await BaseHandler.start_body(self)
        try:
            self.check_upload()
        except web.HTTPError as error:
            self.refuse(error)

    @needs_scope(SCOPE_READ)
    async def get(self) -> None:
        self.check_arguments(LIST_ARGUMENTS)
        start, limit = self.paging()
        query = CompendiumQuery(
            viewer=self.viewer,
            user=self.text_argument("user"),
            doi=self.text_argument("doi"),
            candidate=self.bool_argument("candidate", False),
            start=start,
            limit=limit,
        )
        summary = self.bool_argument("summary", False)
        job_ids = self.text_argument("job_id")
        if job_ids is None:
            records, total = await self.blocking(self.store.list_compendia, query)
        else:
            records, total = await self.blocking(self.compendia_of_jobs, job_ids, query)
        body: dict[str, Any] = {"results": [record.id for record in records], "total": total}
        if summary:
            body["summaries"] = [summary_json(record) for record in records]
        self.write_json(body)

    def compendia_of_jobs(
        self, job_ids: str, query: CompendiumQuery
    ) -> tuple[list[CompendiumRecord], int]:
        """o2r's ``job_id`` filter (blocking: the store): the compendia the comma-separated
        jobs ran that ``query`` selects."""
        names = [name.strip() for name in job_ids.split(",") if name.strip()]
        if len(names) > MAX_JOB_IDS:
            raise web.HTTPError(400, f"job_id names at most {MAX_JOB_IDS} jobs")
        records = []
        for name in names:
            job = self.store.get_job(name)
            record = self.store.get_compendium(job.compendium_id) if job else None
            if record is not None:
                records.append(record)
        return selected_compendia(records, query)

    @needs_scope(SCOPE_CREATE)
    async def post(self) -> None:
        user = self.username
        if self.is_load:
            await self.load(user)
            return
        upload = await self.received_upload()
        try:
            related = None
            if upload.relation is not None:
                relation, original_id = upload.relation
                original = await self.visible_compendium(original_id)
                related = relation_metadata(relation, original, user)
            compendium_id = await self.blocking(
                ingest_compendium,
                self.store,
                upload.path,
                upload.content_type,
                self.service.data_dir,
                user,
                limits=self.service.archive_limits,
                metadata=related,
            )
        finally:
            await self.blocking(upload.remove)
        self.log.info("compendium %s uploaded by %s (%s)", compendium_id, user, upload.content_type)
        self.created(compendium_id)

    async def load(self, user: str) -> None:
        """POST of a JSON body: load the source it names (see the module's docstring)."""
        body = self.json_body(LOAD_BODY_SCHEMA)
        source = parse_source(body)
        if source.kind == GIT_KIND:
            await self.load_git(source, user)
            return
        compendium_id = await load_compendium(
            LoaderSettings.of(self.service),
            self.store,
            self.service.data_dir,
            source,
            user,
            limits=self.service.archive_limits,
            log=self.log,
        )
        self.log.info("compendium %s loaded by %s (%s)", compendium_id, user, source.kind)
        self.created(compendium_id)

    async def load_git(self, source: Source, user: str) -> None:
        """A git repository's commit: the compendium of it the caller can see (200), else a
        new one (201)."""
        settings = LoaderSettings.of(self.service)
        resolved = await resolve_git(settings, source, self.log)
        compendium_id, reused = await load_git_compendium(
            settings,
            self.store,
            self.service.data_dir,
            resolved,
            user,
            content_type=source.content_type,
            limits=self.service.archive_limits,
            log=self.log,
        )
        action = "reused" if reused else "loaded"
        self.log.info("compendium %s %s by %s (%s at %s)", compendium_id, action, user,
                      resolved.git_url, resolved.commit)  # fmt: skip
        self.created(compendium_id, status=200 if reused else 201)

    def created(self, compendium_id: str, status: int = 201) -> None:
        self.set_header("Location", f"{self.service.api_prefix}/compendium/{compendium_id}")
        self.write_json({"id": compendium_id}, status=status)


class CompendiumHandler(BaseHandler):
    """``/compendium/{id}``: get and delete."""

    link_methods = frozenset({"GET"})
    guest_methods = frozenset({"GET"})

    @needs_scope(SCOPE_READ)
    async def get(self, compendium_id: str) -> None:
        self.check_arguments()
        record = await self.visible_compendium(compendium_id)
        root = await self.compendium_files(record)
        files = await self.blocking(compendia.file_tree, root)
        self.write_json(compendium_json(record, files))

    @needs_scope(SCOPE_CREATE)
    async def delete(self, compendium_id: str) -> None:
        user = self.username
        self.check_arguments()
        record = await self.visible_compendium(compendium_id)
        if not self.is_admin:
            if not record.candidate:
                raise web.HTTPError(403, "only an administrator may delete a published compendium")
            if record.user != user:
                raise web.HTTPError(403, "only the author may delete a candidate")
        await self.blocking(
            delete_compendium, self.store, self.service.data_dir, compendium_id, self.job_dir
        )
        self.log.info("compendium %s deleted by %s", compendium_id, user)
        self.set_status(204)
        self.finish()


class MetadataHandler(BaseHandler):
    """``/compendium/{id}/metadata``: the o2r metadata, read and changed."""

    link_methods = frozenset({"GET"})
    guest_methods = frozenset({"GET"})

    @needs_scope(SCOPE_READ)
    async def get(self, compendium_id: str) -> None:
        self.check_arguments(["format"])
        export_format = self.export_format()
        record = await self.visible_compendium(compendium_id)
        if export_format is None:
            self.write_json({"id": record.id, "metadata": {"o2r": record.metadata}})
            return
        await self.send_export(record, export_format)

    @needs_scope(SCOPE_CREATE)
    async def put(self, compendium_id: str) -> None:
        user = self.username
        self.check_arguments(["publish"])
        # publish=false saves an author's draft: the publish flow edits the metadata, runs a
        # job, and only then publishes
        publish_requested = self.bool_argument("publish", True)
        sent = self.json_body(METADATA_BODY_SCHEMA)["o2r"]
        async with metadata_lock(compendium_id):
            record = await self.visible_compendium(compendium_id)
            if record.user != user and not self.is_admin:
                raise web.HTTPError(
                    403, "only the author (or an administrator) may change the metadata"
                )
            root = await self.compendium_files(record)
            metadata = await self.blocking(
                checked_metadata, root, sent, record.metadata, DERIVED_FIELDS
            )
            publish = publish_requested and record.candidate and record.user == user
            updated = await self.blocking(
                save_metadata, self.store, root, record, metadata, False if publish else None
            )
            if updated is None:  # deleted meanwhile
                raise web.HTTPError(404, f"compendium {record.id} not found")
        if publish:
            self.log.info("compendium %s published by %s", compendium_id, user)
        self.write_json(
            {
                "id": updated.id,
                "metadata": {"o2r": updated.metadata},
                "candidate": updated.candidate,
            }
        )


class FilesHandler(BaseHandler):
    """``/compendium/{id}/files``: the file tree."""

    link_methods = frozenset({"GET"})
    guest_methods = frozenset({"GET"})

    @needs_scope(SCOPE_READ)
    async def get(self, compendium_id: str) -> None:
        self.check_arguments()
        record = await self.visible_compendium(compendium_id)
        root = await self.compendium_files(record)
        self.write_json(await self.blocking(compendia.file_tree, root))


def in_metadata_folder(root: Path, relative: str) -> str | None:
    """Where ``relative`` leads inside the compendium's ``.erc/`` folder (``.`` for the folder
    itself), links followed; None when it leads elsewhere, or nowhere valid (send_file tells
    the caller so)."""
    try:
        resolved = safefs.resolve_inside(root, relative)
    except safefs.OutsideRoot:
        return None
    folder = os.path.realpath(root / METADATA_DIRECTORY)
    if not safefs.is_within(folder, str(resolved)):
        return None
    return os.path.relpath(resolved, folder)


class DataHandler(BaseHandler):
    """``/compendium/{id}/data/{path}``: one file, raw, streamed. Through a blind review link
    the ``.erc/`` folder is what the blind download holds (its files name the creators): the
    blinded o2r metadata alone."""

    link_methods = frozenset({"GET"})
    guest_methods = frozenset({"GET"})

    @needs_scope(SCOPE_READ)
    async def get(self, compendium_id: str, path: str) -> None:
        self.check_arguments()
        record = await self.visible_compendium(compendium_id)
        root = await self.compendium_files(record)
        inside = await self.blocking(in_metadata_folder, root, path) if self.blinded else None
        if inside is None:
            await self.send_file(root, path)
            return
        if inside != PurePosixPath(METADATA_PATH).name:
            raise web.HTTPError(404, f"no file {path!r}")
        # the record seen through the link: its metadata blinded
        self.set_header("Content-Type", compendia.mime_type(inside))
        untrusted_content_headers(self)
        self.finish(json.dumps(record.metadata, indent=2, ensure_ascii=False) + "\n")


class DownloadHandler(BaseHandler):
    """``/compendium/{id}.zip`` and ``.tar.gz``: the compendium as an archive, streamed."""

    archive_format: compendia.ArchiveFormat = "zip"
    link_methods = frozenset({"GET"})
    guest_methods = frozenset({"GET"})
    counts_link_use = True

    @needs_scope(SCOPE_READ)
    async def get(self, compendium_id: str) -> None:
        self.check_arguments()
        record = await self.visible_compendium(compendium_id)
        await self.send_compendium(record, self.archive_format)


class TarGzDownloadHandler(DownloadHandler):
    archive_format = "tar.gz"


_ID = r"(?P<compendium_id>[^/.]+)"

default_handlers = [
    (r"/compendium", CompendiaHandler),
    (rf"/compendium/{_ID}\.zip", DownloadHandler),
    (rf"/compendium/{_ID}\.tar\.gz", TarGzDownloadHandler),
    (rf"/compendium/{_ID}", CompendiumHandler),
    (rf"/compendium/{_ID}/metadata", MetadataHandler),
    (rf"/compendium/{_ID}/files", FilesHandler),
    (rf"/compendium/{_ID}/data/(?P<path>.+)", DataHandler),
]
