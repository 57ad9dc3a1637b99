"""Shipments (o2r's shipper, the whole way): a published compendium packed as a BagIt bag and
sent to Zenodo, or handed out as a download; a published deposition's DOI; the files of a
shipment's deposition.

The HTTP-free half of the ``shipment`` resource: the handlers parse, authorize and find the
caller's token, these functions pack, talk to Zenodo (:mod:`.shipper`) and record the
shipment, raising domain errors (:class:`~.shipper.ShipperError` keeps Zenodo's status,
:class:`~erchub.errors.Invalid` what the compendium lacks, :class:`~erchub.errors.NotFound` a
file or deposition that is not there, :class:`~erchub.errors.Conflict` a published
deposition's files).

A shipment's files are those of its deposition, as Zenodo lists them (o2r's shipper passes
Zenodo's list on): ``{"id", "filename", "filesize", "checksum", "links"}`` each, the bag zip
that shipping uploaded among them. A download shipment has none: its bag was streamed to the
caller and not kept.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from erchub.errors import Conflict, ErchubError, Invalid, NotFound
from erchub.services.compendia.files import new_entry, remove_entry
from erchub.services.exchange import packaging
from erchub.services.exchange.shipper import (
    Recipient,
    ShipperError,
    ZenodoClient,
    deposition_page,
    missing_deposit_fields,
)
from erchub.services.store import (
    CompendiumRecord,
    JobQuery,
    ShipmentChanges,
    ShipmentRecord,
    ShipmentStatus,
    Store,
)
from erchub.steps import JobStatus

#: where bags are made while a shipment is under way (below the data directory)
SHIPMENTS_DIRECTORY = "shipments"
DOI_RESOLVER = "https://doi.org/"

log = logging.getLogger(__name__)


def doi_url(doi: str) -> str:
    return DOI_RESOLVER + doi


def with_doi(metadata: dict[str, Any], doi: str) -> dict[str, Any]:
    """The metadata with ``identifier.doi`` and ``identifier.doiurl`` set to ``doi``."""
    identifier = metadata.get("identifier")
    identifier = dict(identifier) if isinstance(identifier, dict) else {}
    identifier.update(doi=doi, doiurl=doi_url(doi))
    return {**metadata, "identifier": identifier}


def last_successful_job(store: Store, compendium_id: str) -> dict[str, Any] | None:
    """The compendium's newest successful job, for the bag's RO-Crate CreateAction."""
    jobs, _ = store.list_jobs(
        JobQuery(viewer=None, compendium_id=compendium_id, status=JobStatus.SUCCESS, limit=1)
    )
    return asdict(jobs[0]) if jobs else None


@dataclass
class WorkFolder:
    """A private folder below ``data_dir/shipments`` for one bag (a shipment, a download, a
    read), marked in use by this process (:func:`~erchub.services.compendia.files.new_entry`):
    a replica of the service that starts on the same data directory meanwhile sweeps only
    what a process that is gone left, never this."""

    path: Path
    hold: int

    @classmethod
    def new(cls, data_dir: Path | str) -> WorkFolder:
        return cls(*new_entry(Path(data_dir) / SHIPMENTS_DIRECTORY, "bag-"))

    def remove(self) -> None:
        """Remove the folder and let go of it; once."""
        remove_entry(self.path, self.hold)
        self.hold = -1


def make_bag_zip(
    store: Store,
    record: CompendiumRecord,
    compendium_dir: Path,
    work_dir: Path,
    job_dir: Callable[[str], Path],
    landing_url: str,
) -> Path:
    """The compendium as a BagIt bag with RO-Crate metadata and the metadata's exports (its
    members below a folder named as the compendium; ``landing_url`` its landing page), zipped
    into ``work_dir``; blocking. Invalid when it cannot be packed."""
    last_job = last_successful_job(store, record.id)
    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        bag = packaging.write_bag(
            compendium_dir,
            work_dir / compendium_dir.name,
            metadata=record.metadata,
            last_job=last_job,
            job_dir=job_dir(last_job["id"]) if last_job else None,
            landing_url=landing_url,
        )
        return packaging.write_zip(bag, work_dir / f"{compendium_dir.name}.zip")
    except ErchubError as error:
        raise Invalid(f"compendium {record.id} cannot be packed: {error}") from None


def deposit_metadata_for(
    recipient: Recipient, record: CompendiumRecord, launch_url: str
) -> dict[str, Any]:
    """The deposit metadata of ``record``; Invalid when Zenodo would refuse it or apply a
    license the author never chose."""
    from erchub.services.exchange.deposit import zenodo_metadata

    metadata = zenodo_metadata(record.metadata, compendium_url=launch_url)
    fix = f"set them with PUT /compendium/{record.id}/metadata"
    missing = missing_deposit_fields(metadata)
    if missing:
        raise Invalid(
            f"{recipient.label} needs {', '.join(missing)}, which the metadata of compendium "
            f"{record.id} lacks: {fix}"
        )
    if "license" not in metadata:
        raise Invalid(
            f"compendium {record.id} names no license for its code, text or data, and "
            f"{recipient.label} would apply its default one: set license in its metadata "
            f"with PUT /compendium/{record.id}/metadata"
        )
    return metadata


class Shipping:
    """Ships compendia of one store and data directory; blocking work in the executor."""

    def __init__(self, store: Store, data_dir: str, job_dir: Callable[[str], Path]) -> None:
        self.store = store
        self.data_dir = data_dir
        self.job_dir = job_dir

    async def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))

    async def to_zenodo(
        self,
        client: ZenodoClient,
        recipient: Recipient,
        record: CompendiumRecord,
        root: Path,
        user: str,
        deposit_metadata: dict[str, Any],
        landing_url: str,
    ) -> ShipmentRecord:
        """A deposition with the bag and the metadata: the shipment, ``shipped``. When Zenodo
        refuses a step after the deposition exists, the shipment is kept with status
        ``error`` and its reason, and the ShipperError is raised naming it."""
        shipment_id = str(uuid.uuid4())
        work = await self._blocking(WorkFolder.new, self.data_dir)
        try:
            bag_zip = await self._blocking(
                make_bag_zip, self.store, record, root, work.path, self.job_dir, landing_url
            )
            deposition = await client.create_deposition()
            now = time.time()
            shipment = ShipmentRecord(
                id=shipment_id,
                compendium_id=record.id,
                recipient=recipient.id,
                user=user,
                status=ShipmentStatus.SHIPPED,
                deposition_id=str(deposition["id"]),
                deposition_url=deposition_page(deposition),
                created=now,
                last_modified=now,
            )
            try:
                bucket = client.bucket_of(deposition)
                await client.upload(bucket, f"{record.id}.zip", bag_zip)
                await client.set_metadata(str(deposition["id"]), deposit_metadata)
            except ShipperError as error:
                shipment.status, shipment.reason = ShipmentStatus.ERROR, error.message
                shipment.last_modified = time.time()
                await self._blocking(self.store.add_shipment, shipment)
                log.info("shipment %s of %s to %s: error", shipment_id, record.id, recipient.id)
                raise ShipperError(
                    error.status,
                    f"{error.message} (shipment {shipment_id}, deposition "
                    f"{shipment.deposition_id}: status error)",
                ) from None
        finally:
            await self._blocking(work.remove)
        await self._blocking(self.store.add_shipment, shipment)
        return shipment

    async def bag_for_download(
        self, record: CompendiumRecord, root: Path, user: str, landing_url: str
    ) -> tuple[Path, WorkFolder]:
        """The bag zip of a download (its shipment recorded) and its work folder: the caller
        streams the zip, then removes the folder (:meth:`WorkFolder.remove`)."""
        shipment_id = str(uuid.uuid4())
        work = await self._blocking(WorkFolder.new, self.data_dir)
        try:
            bag_zip = await self._blocking(
                make_bag_zip, self.store, record, root, work.path, self.job_dir, landing_url
            )
            now = time.time()
            shipment = ShipmentRecord(
                id=shipment_id,
                compendium_id=record.id,
                recipient="download",
                user=user,
                status=ShipmentStatus.SHIPPED,
                created=now,
                last_modified=now,
            )
            await self._blocking(self.store.add_shipment, shipment)
        except BaseException:
            await self._blocking(work.remove)
            raise
        return bag_zip, work

    async def delete_deposition_file(
        self, client: ZenodoClient, shipment: ShipmentRecord, file_id: str
    ) -> ShipmentRecord:
        """Delete a file of the shipment's deposition (o2r's ``DELETE
        /shipment/{id}/files/{file_id}``): Conflict once published (the repository keeps a
        published deposition's files), NotFound for a file the deposition does not list. The
        shipment stays ``shipped``: publishing a deposition without files is Zenodo's to
        refuse. Returns the shipment, its ``last_modified`` now."""
        if shipment.status == ShipmentStatus.PUBLISHED:
            raise Conflict(
                f"shipment {shipment.id} is published: the files of a published deposition "
                "cannot be deleted"
            )
        await deposition_file(client, shipment, file_id)
        await client.delete_file(deposition_of(shipment), file_id)
        changes = ShipmentChanges(last_modified=time.time())
        updated: ShipmentRecord | None = await self._blocking(
            self.store.update_shipment, shipment.id, changes
        )
        if updated is None:
            raise NotFound(f"shipment {shipment.id} not found")
        return updated


# -- the files of a shipment's deposition ------------------------------------------------------


def deposition_of(shipment: ShipmentRecord) -> str:
    """The id of the shipment's deposition; NotFound for a download (none)."""
    if not shipment.deposition_id:
        raise NotFound(
            f"shipment {shipment.id} ({shipment.recipient}) has no deposition and so no files: "
            "a download's bag is streamed to the caller and not kept"
        )
    return shipment.deposition_id


async def deposition_files(client: ZenodoClient, shipment: ShipmentRecord) -> list[dict[str, Any]]:
    """The files of the shipment's deposition, as Zenodo lists them."""
    return await client.list_files(deposition_of(shipment))


async def deposition_file(
    client: ZenodoClient, shipment: ShipmentRecord, file_id: str
) -> dict[str, Any]:
    """One file of the shipment's deposition; NotFound when the deposition has no such file."""
    for entry in await deposition_files(client, shipment):
        if entry["id"] == file_id:
            return entry
    raise NotFound(f"the deposition of shipment {shipment.id} has no file {file_id}")
