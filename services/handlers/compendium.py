"""The ``compendium`` resource (o2r's names): upload, list, get, delete, metadata, files.

- ``POST /compendium``: multipart upload (``compendium`` file, ``content_type`` workspace or
  compendium), streamed to disk, extracted safely, completed, moved into place, then
  recorded: 201 ``{"id"}``, a candidate of the caller. A bad archive is a 400 with the
  foundation's one-line message (also for the archive limits, a zip bomb: the request itself
  was within the upload limit, its content is what is wrong); a body above the upload limit
  is a 413. With a JSON body (``Content-Type: application/json``) it loads instead (o2r's
  loader, :mod:`erchub.services.loader`): ``{"share_url"}``, ``{"doi"}`` or
  ``{"zenodo_record_id"}`` (optional ``sandbox``, ``filename``, ``content_type``); the
  download then takes exactly the path of an upload, and the metadata records its ``origin``
  (and ``identifier.doi``). The loader's errors keep their status (400, 403, 404, 413, 502).
- ``GET /compendium``: ``{"results": [ids], "total"}`` as o2r (newest first); filters
  ``user``, ``doi``, ``candidate=true`` (the caller's own candidates), ``start``, ``limit``;
  ``summary=true`` adds ``summaries`` (id, user, created, candidate, title per result).
- ``GET /compendium/{id}``: id, user, created, updated, candidate, metadata ``{"o2r"}``, files.
- ``DELETE /compendium/{id}``: the author deletes a candidate, an administrator anything;
  others get 403 on what they can see. 409 while one of its jobs runs. Removes the record,
  its jobs, and their files: 204.
- ``GET|PUT /compendium/{id}/metadata``: PUT ``{"o2r": {...}}`` is validated against
  ``schemas/metadata_o2r.schema.json`` (400 naming every failing field), allowed to the author
  and administrators, written to ``.erc/metadata_o2r_1.json`` and the store; sent by the
  author, it publishes a candidate (``candidate`` false) unless ``publish=false``.
- ``GET /compendium/{id}/files``, ``GET /compendium/{id}/data/{path}``, and the streamed
  downloads ``GET /compendium/{id}.zip`` and ``.tar.gz``.

Scopes: reading needs ``custom:erc:read``; uploading, changing metadata and deleting
``custom:erc:create``; ``custom:erc:admin`` may do everything to every compendium.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
import weakref
from importlib import resources
from pathlib import Path
from typing import Any

from tornado import web
from tornado.iostream import StreamClosedError

from erchub import safefs
from erchub.errors import InvalidERC, UnsafeArchive
from erchub.metadata import is_orcid_id, orcid_check_character, write_metadata
from erchub.services import compendia
from erchub.services.handlers.base import (
    SCOPE_CREATE,
    SCOPE_READ,
    BaseHandler,
    iso,
)
from erchub.services.loader import (
    LOAD_BODY_SCHEMA,
    Loader,
    LoadError,
    LoaderSettings,
    Source,
    parse_source,
)
from erchub.services.store import (
    RUNNING,
    CompendiumQuery,
    CompendiumRecord,
    Conflict,
    JobQuery,
    Store,
)
from erchub.services.upload import UploadHandler, uploads_dir

#: the filters of GET /compendium
LIST_ARGUMENTS = ("user", "doi", "candidate", "summary", "start", "limit")
#: how often an upload draws a fresh id when the drawn one is taken
ID_ATTEMPTS = 20
#: jobs looked at per store query when a compendium is deleted
JOB_PAGE = 1000
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

#: one metadata change at a time per compendium, so that the file and the store agree
_metadata_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def metadata_lock(compendium_id: str) -> asyncio.Lock:
    """The lock every change of a compendium's metadata holds (PUT, a shipment's DOI)."""
    return _metadata_locks.setdefault(compendium_id, asyncio.Lock())


def save_metadata(
    store: Store,
    root: Path,
    record: CompendiumRecord,
    metadata: dict[str, Any],
    candidate: bool | None = None,
) -> CompendiumRecord | None:
    """Write the metadata file, then the store (None when the compendium was deleted
    meanwhile); the old file comes back if the store fails. Blocking: call off the loop."""
    write_metadata(root, metadata)
    try:
        return store.update_compendium(
            record.id, metadata=metadata, candidate=candidate, now=time.time()
        )
    except BaseException:
        write_metadata(root, record.metadata)
        raise


def compendium_json(record: CompendiumRecord, files: dict[str, Any] | None) -> dict[str, Any]:
    """A compendium as the API shows it (o2r fields, times in ISO 8601)."""
    body = summary_json(record)
    body["updated"] = iso(record.updated)
    body["metadata"] = {"o2r": record.metadata}
    if files is not None:
        body["files"] = files
    return body


def summary_json(record: CompendiumRecord) -> dict[str, Any]:
    title = record.metadata.get("title")
    return {
        "id": record.id,
        "user": record.user,
        "created": iso(record.created),
        "candidate": record.candidate,
        "title": title if isinstance(title, str) else None,
    }


def add_compendium(
    store: Store,
    staged: compendia.StagedCompendium,
    data_dir: str,
    user: str,
    *,
    candidate: bool = True,
) -> str:
    """Move a staged compendium to a free id and record it (files first, so that a recorded
    compendium always has its files); the files go again if the record cannot be made."""
    for _ in range(ID_ATTEMPTS):
        compendium_id = compendia.new_compendium_id()
        if store.get_compendium(compendium_id) is not None:
            continue
        try:
            target = compendia.install(staged, data_dir, compendium_id)
        except FileExistsError:
            continue
        now = time.time()
        record = CompendiumRecord(
            id=compendium_id,
            user=user,
            candidate=candidate,
            metadata=staged.metadata,
            created=now,
            updated=now,
        )
        try:
            store.add_compendium(record)
        except Conflict:
            # another upload took the id in the meantime: back to staging, draw again
            os.rename(target, staged.root)
            continue
        except BaseException:
            compendia.delete_compendium_dir(data_dir, compendium_id)
            raise
        return compendium_id
    raise web.HTTPError(503, "no free compendium id found; please try again")


def _add_metadata(staged: compendia.StagedCompendium, added: dict[str, Any]) -> None:
    """Merge ``added`` into the staged compendium's metadata (``identifier`` field by
    field) and write it."""
    metadata = dict(staged.metadata)
    for key, value in added.items():
        current = metadata.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            metadata[key] = {**current, **value}
        else:
            metadata[key] = value
    write_metadata(staged.root, metadata)
    staged.metadata = metadata


async def create_compendium(
    handler: BaseHandler,
    archive: Path,
    content_type: str,
    user: str,
    *,
    metadata: dict[str, Any] | None = None,
    candidate: bool = True,
) -> str:
    """An uploaded or downloaded archive made a compendium of ``user``: extracted safely,
    completed, ``metadata`` merged in, moved into place and recorded; its id. 400 for an
    archive that is no compendium or is unsafe."""
    data_dir = handler.service.data_dir
    try:
        staged = await handler.blocking(
            compendia.ingest, archive, content_type, data_dir, handler.service.archive_limits
        )
    except (InvalidERC, UnsafeArchive) as error:
        raise web.HTTPError(400, str(error)) from None
    try:
        if metadata:
            await handler.blocking(_add_metadata, staged, metadata)
        return await handler.blocking(
            add_compendium, handler.store, staged, data_dir, user, candidate=candidate
        )
    finally:
        await handler.blocking(compendia.discard, staged)


async def load_compendium(
    handler: BaseHandler, source: Source, user: str, *, candidate: bool = True
) -> str:
    """Load ``source`` with the loader into a compendium of ``user``; its id. The loader's
    errors become HTTP errors of their status."""
    directory = uploads_dir(handler)
    await handler.blocking(directory.mkdir, parents=True, exist_ok=True)
    work = Path(await handler.blocking(tempfile.mkdtemp, prefix="load-", dir=directory))
    loader = Loader(LoaderSettings.of(handler.service), handler.log)
    try:
        try:
            loaded = await loader.load(source, work)
        except LoadError as error:
            raise web.HTTPError(error.status, error.message) from None
        return await create_compendium(
            handler,
            loaded.archive,
            loaded.content_type,
            user,
            metadata=loaded.metadata,
            candidate=candidate,
        )
    finally:
        loader.close()
        await handler.blocking(shutil.rmtree, work, ignore_errors=True)


class CompendiumBase(BaseHandler):
    """Helpers of the compendium handlers."""

    def compendium_dir(self, compendium_id: str) -> Path:
        return compendia.compendium_path(self.service.data_dir, compendium_id)

    async def compendium_files(self, record: CompendiumRecord) -> Path:
        """The directory of a visible compendium; 404 if its files are gone."""
        root = self.compendium_dir(record.id)
        if not await self.blocking(root.is_dir):
            raise web.HTTPError(404, f"the files of compendium {record.id} are missing")
        return root


class CompendiaHandler(UploadHandler, CompendiumBase):
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

    async def get(self) -> None:
        self.require(SCOPE_READ)
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
        records, total = await self.blocking(self.store.list_compendia, query)
        body: dict[str, Any] = {"results": [record.id for record in records], "total": total}
        if summary:
            body["summaries"] = [summary_json(record) for record in records]
        self.write_json(body)

    async def post(self) -> None:
        user = self.require(SCOPE_CREATE)
        if self.is_load:
            await self.load(user)
            return
        upload = await self.received_upload()
        try:
            compendium_id = await create_compendium(self, upload.path, upload.content_type, user)
        finally:
            await self.blocking(upload.remove)
        self.log.info("compendium %s uploaded by %s (%s)", compendium_id, user, upload.content_type)
        self.created(compendium_id)

    async def load(self, user: str) -> None:
        """POST of a JSON body: load the source it names (see the module's docstring)."""
        body = self.json_body(LOAD_BODY_SCHEMA)
        try:
            source = parse_source(body)
        except LoadError as error:
            raise web.HTTPError(error.status, error.message) from None
        compendium_id = await load_compendium(self, source, user)
        self.log.info("compendium %s loaded by %s (%s)", compendium_id, user, source.kind)
        self.created(compendium_id)

    def created(self, compendium_id: str) -> None:
        self.set_header("Location", f"{self.service.api_prefix}/compendium/{compendium_id}")
        self.write_json({"id": compendium_id}, status=201)


class CompendiumHandler(CompendiumBase):
    """``/compendium/{id}``: get and delete."""

    async def get(self, compendium_id: str) -> None:
        self.require(SCOPE_READ)
        self.check_arguments()
        record = await self.visible_compendium(compendium_id)
        root = await self.compendium_files(record)
        files = await self.blocking(compendia.file_tree, root)
        self.write_json(compendium_json(record, files))

    async def delete(self, compendium_id: str) -> None:
        user = self.require(SCOPE_CREATE)
        self.check_arguments()
        record = await self.visible_compendium(compendium_id)
        if not self.is_admin:
            if not record.candidate:
                raise web.HTTPError(403, "only an administrator may delete a published compendium")
            if record.user != user:
                raise web.HTTPError(403, "only the author may delete a candidate")
        job_ids = await self.blocking(self._job_ids, compendium_id)
        if not await self.blocking(self.store.delete_compendium, compendium_id):
            raise web.HTTPError(404, f"compendium {compendium_id} not found")
        await self.blocking(self._remove_files, compendium_id, job_ids)
        self.log.info("compendium %s deleted by %s", compendium_id, user)
        self.set_status(204)
        self.finish()

    def _job_ids(self, compendium_id: str) -> list[str]:
        """The compendium's jobs; 409 while one of them runs (its worker uses the files)."""
        job_ids: list[str] = []
        start = 0
        while True:
            query = JobQuery(viewer=None, compendium_id=compendium_id, start=start, limit=JOB_PAGE)
            jobs, total = self.store.list_jobs(query)
            for job in jobs:
                if job.status == RUNNING:
                    raise web.HTTPError(
                        409, f"job {job.id} of this compendium is running; cancel it first"
                    )
                job_ids.append(job.id)
            start += len(jobs)
            if not jobs or start >= total:
                return job_ids

    def _remove_files(self, compendium_id: str, job_ids: list[str]) -> None:
        compendia.delete_compendium_dir(self.service.data_dir, compendium_id)
        for job_id in job_ids:
            # what a job wrote is hostile: removed without following a link, at any depth
            try:
                safefs.remove_tree(self.job_dir(job_id))
            except OSError as error:
                self.log.warning("could not remove job %s: %s", job_id, error)


class MetadataHandler(CompendiumBase):
    """``/compendium/{id}/metadata``: the o2r metadata, read and changed."""

    async def get(self, compendium_id: str) -> None:
        self.require(SCOPE_READ)
        self.check_arguments()
        record = await self.visible_compendium(compendium_id)
        self.write_json({"id": record.id, "metadata": {"o2r": record.metadata}})

    async def put(self, compendium_id: str) -> None:
        user = self.require(SCOPE_CREATE)
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
            metadata = await self.blocking(_checked_metadata, root, sent, record.metadata)
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


def _checked_metadata(root: Path, sent: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """The metadata to store: what was sent, derived fields as they are; 400 for a mainfile
    that is not a file of the compendium or an ORCID iD whose check character is wrong (the
    schema checks only its form)."""
    for index, creator in enumerate(sent.get("creators") or []):
        orcid = creator.get("orcid")
        if orcid and not is_orcid_id(orcid):
            raise web.HTTPError(
                400,
                f"o2r.creators.{index}.orcid: {orcid!r} is not an ORCID iD: its check "
                f"character should be {orcid_check_character(orcid.replace('-', '')[:15])}",
            )
    mainfile = sent.get("mainfile")
    if mainfile is not None:
        try:
            exists = safefs.resolve_inside(root, mainfile).is_file()
        except safefs.OutsideRoot:
            exists = False
        if not exists:
            raise web.HTTPError(400, f"o2r.mainfile: {mainfile!r} is no file of the compendium")
    metadata = {key: value for key, value in sent.items() if key not in DERIVED_FIELDS}
    for key in DERIVED_FIELDS:
        if key in stored:
            metadata[key] = stored[key]
    return metadata


class FilesHandler(CompendiumBase):
    """``/compendium/{id}/files``: the file tree."""

    async def get(self, compendium_id: str) -> None:
        self.require(SCOPE_READ)
        self.check_arguments()
        record = await self.visible_compendium(compendium_id)
        root = await self.compendium_files(record)
        self.write_json(await self.blocking(compendia.file_tree, root))


class DataHandler(CompendiumBase):
    """``/compendium/{id}/data/{path}``: one file, raw, streamed."""

    async def get(self, compendium_id: str, path: str) -> None:
        self.require(SCOPE_READ)
        self.check_arguments()
        record = await self.visible_compendium(compendium_id)
        await self.send_file(await self.compendium_files(record), path)


class DownloadHandler(CompendiumBase):
    """``/compendium/{id}.zip`` and ``.tar.gz``: the compendium as an archive, streamed."""

    archive_format: compendia.ArchiveFormat = "zip"

    async def get(self, compendium_id: str) -> None:
        archive_format = self.archive_format
        self.require(SCOPE_READ)
        self.check_arguments()
        record = await self.visible_compendium(compendium_id)
        root = await self.compendium_files(record)
        media_type = "application/zip" if archive_format == "zip" else "application/gzip"
        self.set_header("Content-Type", media_type)
        self.set_header(
            "Content-Disposition", f'attachment; filename="{record.id}.{archive_format}"'
        )
        stream = compendia.ArchiveStream(root, archive_format, record.id)
        try:
            while (chunk := await self.blocking(stream.next_chunk)) is not None:
                self.write(chunk)
                await self.flush()
        except StreamClosedError:
            return
        finally:
            stream.close()
        self.finish()


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
