"""Operations on compendia that the API and the exchange call: add a staged compendium under a
free id, ingest an archive into one, save metadata under its lock.

Blocking functions (call them in an executor) that raise domain errors of
:mod:`erchub.errors`, never HTTP ones; the lock is the one asyncio object here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections.abc import Callable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from erchub import safefs, substitution, workspace
from erchub.archive import DEFAULT_LIMITS, ArchiveLimits
from erchub.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from erchub.metadata import is_orcid_id, orcid_check_character, write_metadata
from erchub.services.compendia import files
from erchub.services.store import CompendiumRecord, Store
from erchub.services.store import Conflict as StoreConflict

log = logging.getLogger(__name__)
#: how often an upload draws a fresh id when the drawn one is taken
ID_ATTEMPTS = 20

#: one metadata change at a time per compendium, so that the file and the store agree
_metadata_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def add_compendium(
    store: Store,
    staged: files.StagedCompendium,
    data_dir: str,
    user: str,
    *,
    candidate: bool = True,
) -> str:
    """Move a staged compendium to a free id and record it (files first, so that a recorded
    compendium always has its files); the files go again if the record cannot be made.
    Unavailable when no free id was found."""
    for _ in range(ID_ATTEMPTS):
        compendium_id = files.new_compendium_id()
        if store.get_compendium(compendium_id) is not None:
            continue
        try:
            target = files.install(staged, data_dir, compendium_id)
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
        except StoreConflict:
            # another upload took the id in the meantime: back to staging, draw again
            os.rename(target, staged.root)
            continue
        except BaseException:
            files.delete_compendium_dir(data_dir, compendium_id)
            raise
        return compendium_id
    raise Unavailable("no free compendium id found; please try again")


class Relation(Enum):
    """How a new compendium relates to an existing one; the value names the o2r metadata
    field (and the upload's form field) that records it."""

    #: a new version of a compendium of the same author (o2r keeps the original as it is)
    IS_NEW_VERSION_OF = "is_new_version_of"
    #: made from someone's compendium (a launched session's files, changed)
    DERIVED_FROM = "derived_from"


def relation_metadata(relation: Relation, original: CompendiumRecord, user: str) -> dict[str, Any]:
    """The metadata that records that ``user``'s new compendium relates to ``original``:
    ``{relation: {"id", "doi"}}`` (``doi`` the original's, or null). Forbidden when ``user``
    claims a new version of a compendium that is not theirs."""
    if relation is Relation.IS_NEW_VERSION_OF and original.user != user:
        raise Forbidden(
            f"only the author of compendium {original.id} may publish a new version of it;"
            f" publish it as derived_from {original.id} instead"
        )
    return {relation.value: {"id": original.id, "doi": _doi_of(original.metadata)}}


def related_ids(metadata: Mapping[str, Any]) -> dict[str, str | None]:
    """The id of the compendium each relation of ``metadata`` names (None when there is none),
    by relation (:class:`Relation`'s values)."""
    ids: dict[str, str | None] = {}
    for relation in Relation:
        related = metadata.get(relation.value)
        related_id = related.get("id") if isinstance(related, Mapping) else None
        ids[relation.value] = related_id if isinstance(related_id, str) else None
    return ids


def _doi_of(metadata: Mapping[str, Any]) -> str | None:
    identifier = metadata.get("identifier")
    doi = identifier.get("doi") if isinstance(identifier, Mapping) else None
    return doi if isinstance(doi, str) and doi.strip() else None


def delete_compendium(
    store: Store, data_dir: str, compendium_id: str, job_dir: Callable[[str], Path]
) -> None:
    """Delete the compendium, its jobs and their files. NotFound when it is absent, Conflict
    while one of its jobs runs (atomically against a worker claiming one: see
    ``Store.delete_compendium``). What a job wrote is hostile: its folder is removed without
    following a link, at any depth; a folder that cannot be removed is logged."""
    try:
        job_ids = store.delete_compendium(compendium_id)
    except StoreConflict as error:
        # JobRunning, or (MongoDB) another delete of it under way
        raise Conflict(str(error)) from None
    if job_ids is None:
        raise NotFound(f"compendium {compendium_id} not found")
    files.delete_compendium_dir(data_dir, compendium_id)
    for job_id in job_ids:
        try:
            safefs.remove_tree(job_dir(job_id))
        except OSError as error:
            log.warning("could not remove job %s: %s", job_id, error)


def ingest_compendium(
    store: Store,
    archive: Path,
    content_type: str,
    data_dir: str,
    user: str,
    *,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    metadata: dict[str, Any] | None = None,
    candidate: bool = True,
) -> str:
    """An uploaded or downloaded archive made a compendium of ``user``: extracted safely,
    completed, ``metadata`` merged in, moved into place and recorded; its id. InvalidERC or
    UnsafeArchive for an archive that is no compendium or is unsafe."""
    staged = files.ingest(archive, content_type, data_dir, limits)
    try:
        if metadata:
            _merge_metadata(staged, metadata)
        return add_compendium(store, staged, data_dir, user, candidate=candidate)
    finally:
        files.discard(staged)


def _merge_metadata(staged: files.StagedCompendium, added: dict[str, Any]) -> None:
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
    meanwhile); the old file comes back if the store fails. Hold :func:`metadata_lock`."""
    write_metadata(root, metadata)
    try:
        return store.update_compendium(
            record.id, metadata=metadata, candidate=candidate, now=time.time()
        )
    except BaseException:
        write_metadata(root, record.metadata)
        raise


def checked_metadata(
    root: Path, sent: dict[str, Any], stored: dict[str, Any], derived: tuple[str, ...]
) -> dict[str, Any]:
    """The metadata to store: what was sent, the ``derived`` fields as they are. Invalid for a
    mainfile that is not a file of the compendium or an ORCID iD whose check character is
    wrong (the schema checks only its form)."""
    for index, creator in enumerate(sent.get("creators") or []):
        orcid = creator.get("orcid")
        if orcid and not is_orcid_id(orcid):
            raise Invalid(
                f"o2r.creators.{index}.orcid: {orcid!r} is not an ORCID iD: its check "
                f"character should be {orcid_check_character(orcid.replace('-', '')[:15])}"
            )
    mainfile = sent.get("mainfile")
    if mainfile is not None and not safefs.is_file(root, mainfile):
        raise Invalid(f"o2r.mainfile: {mainfile!r} is no file of the compendium")
    metadata = {key: value for key, value in sent.items() if key not in derived}
    for key in derived:
        if key in stored:
            metadata[key] = stored[key]
    return metadata


def substitute(
    store: Store,
    data_dir: str,
    request: substitution.SubstitutionRequest,
    base_root: Path,
    overlay_root: Path,
    base_metadata: dict[str, Any],
    user: str,
) -> str:
    """o2r's substituter: a new candidate compendium of ``user``, the base's files with the
    named ones replaced by the overlay's (rules: :mod:`erchub.substitution`); its id.
    InvalidSubstitution for a named file that is missing, InvalidERC when the result is no
    valid compendium; on any error nothing stays behind."""
    staged = _substituted(data_dir, request, base_root, overlay_root, base_metadata)
    try:
        return add_compendium(store, staged, data_dir, user)
    finally:
        files.discard(staged)


def _substituted(
    data_dir: str,
    request: substitution.SubstitutionRequest,
    base_root: Path,
    overlay_root: Path,
    base_metadata: dict[str, Any],
) -> files.StagedCompendium:
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

    staged = files.stage(data_dir, fill, "compendium")
    try:
        metadata = substitution.substituted_metadata(
            request.metadata_handling, base_metadata, staged.metadata, plan.record
        )
        write_metadata(staged.root, metadata)
    except BaseException:
        files.discard(staged)
        raise
    staged.metadata = metadata
    return staged
