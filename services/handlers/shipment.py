"""The ``shipment`` resource (o2r's shipper): a published compendium sent to a recipient.

- ``POST /shipment {compendium_id, recipient, zenodo_token?, update_packaging?}``, as JSON or
  as o2r's form (``application/x-www-form-urlencoded`` as o2r's web UI sends it, or
  ``multipart/form-data`` as o2r's document has it; the same fields, ``update_packaging``
  ``true`` or ``false``, the same checks): a candidate cannot be shipped (400: publish it
  first). ``update_packaging`` is accepted either way: erchub packs a new, valid bag for every
  shipment. ``download``: the answer streams the compendium as a BagIt bag in a zip
  (``Content-Disposition: attachment``). ``zenodo``/``zenodo_sandbox`` (the author or an
  administrator only): creates a deposition with the caller's token (from ``zenodo_token``,
  the ``Zenodo-Token`` header, or the one stored with ``PUT /recipient/{recipient}/token``; 400
  saying how to set one when there is none), uploads the bag zip through the bucket API, sets
  the deposit metadata (:func:`erchub.services.exchange.deposit.zenodo_metadata`): 201 with the
  shipment, status ``shipped``. When Zenodo refuses a step after the deposition exists, the
  shipment is kept with status ``error`` and its reason.
- ``PUT /shipment/{id}/publishment`` (``{"zenodo_token"}`` optional, as above): publishes the
  deposition; status ``published``, ``doi`` set, and the DOI written into the compendium's
  metadata (``identifier.doi``, ``identifier.doiurl``) as ``PUT /compendium/{id}/metadata``
  writes it: ``.erc/metadata_o2r_1.json`` and the store, under the same lock. Again for a
  published shipment: the DOI is written if it is missing, nothing else.
- ``GET /shipment/{id}/files`` (o2r's shipper) and ``GET /shipment/{id}/publishment`` (o2r's
  document): ``{"files": [...]}``, the files of the shipment's deposition as Zenodo lists them
  (``id``, ``filename``, ``filesize``, ``checksum``, ``links``), asked with the caller's token
  (the ``Zenodo-Token`` header or the stored one). ``GET /shipment/{id}/files/{file_id}``: one
  of them. ``DELETE /shipment/{id}/files/{file_id}``: deletes it from the deposition, 204
  (``custom:erc:create``); 409 once published. A download shipment has no deposition: 404.
- ``GET /shipment/{id}``, ``GET /shipment/{id}/status`` (o2r's ``{"id", "status"}``);
  ``GET /shipment?compendium_id=&user=&start=&limit=``: o2r's answer, a JSON array of ids,
  newest first; with ``details=true`` erchub's own form (its pages and tests read it)
  ``{"results": [ids], "total", "shipments": [...]}``.

Shipments are visible to the user who made them and to administrators (404 for anyone else).
Scopes: reading and downloads need ``custom:erc:read``; shipping to Zenodo, publishing and
deleting a deposition's file ``custom:erc:create``. Tokens are never logged nor returned.
"""

from __future__ import annotations

import asyncio
import re
import time
import weakref
from pathlib import Path
from typing import Any

from tornado import web

from erchub.services.compendia.operations import metadata_lock, save_metadata
from erchub.services.exchange.shipper import (
    RECIPIENTS,
    TOKEN_HEADER,
    Recipient,
    ShipperError,
    ZenodoClient,
    decrypt_token,
    deposition_page,
    missing_token_message,
    token_problem,
)
from erchub.services.exchange.shipping import (
    Shipping,
    deposit_metadata_for,
    deposition_file,
    deposition_files,
    deposition_of,
    doi_url,
    with_doi,
)
from erchub.services.handlers.base import (
    SCOPE_CREATE,
    SCOPE_READ,
    BaseHandler,
    iso,
    needs_scope,
    schema_problems,
)
from erchub.services.store import (
    CompendiumRecord,
    ShipmentChanges,
    ShipmentRecord,
    ShipmentStatus,
)

#: the body of POST /shipment (``zenodo_token`` is checked apart: messages never quote it);
#: ``update_packaging`` is o2r's (whether an invalid package may be repaired): erchub packs a
#: new bag for every shipment, so either value holds
SHIP_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["compendium_id", "recipient"],
    "additionalProperties": False,
    "properties": {
        "compendium_id": {"type": "string", "minLength": 1, "maxLength": 256},
        "recipient": {"type": "string", "enum": list(RECIPIENTS)},
        "update_packaging": {"type": "boolean"},
    },
}
#: o2r's media types of a new shipment's body, beside JSON
#: the form's fields that are booleans (``true``/``false``, as o2r's shipper reads them)
FORM_BOOLEANS = ("update_packaging",)
#: what o2r's form may carry that erchub takes otherwise: field -> what to do instead
FORM_REFUSED = {
    "cookie": "erchub takes no session cookie in the form: authenticate with a hub API token "
    "(Authorization: token ...) or the hub's login",
}
LIST_ARGUMENTS = ("compendium_id", "user", "start", "limit", "details")
#: the o2r schema's form of a DOI (identifier.doi)
DOI_PATTERN = re.compile(r"^10\.\d{4,9}/\S+$")

#: one publishment (or deletion of a deposition's file) at a time per shipment
_publish_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def shipment_json(shipment: ShipmentRecord) -> dict[str, Any]:
    """A shipment as the API shows it (o2r's field names, times in ISO 8601)."""
    return {
        "id": shipment.id,
        "compendium_id": shipment.compendium_id,
        "recipient": shipment.recipient,
        "user": shipment.user,
        "status": shipment.status,
        "deposition_id": shipment.deposition_id,
        "deposition_url": shipment.deposition_url,
        "doi": shipment.doi,
        "doiurl": doi_url(shipment.doi) if shipment.doi else None,
        "reason": shipment.reason,
        "created": iso(shipment.created),
        "last_modified": iso(shipment.last_modified),
    }


def form_boolean(name: str, value: str) -> bool:
    """A form's boolean field (``true``/``false``, as o2r's shipper reads them)."""
    if value.strip().lower() in ("true", "1", "yes"):
        return True
    if value.strip().lower() in ("false", "0", "no"):
        return False
    raise web.HTTPError(400, f"{name}: must be true or false, got {value[:40]!r}")


class ShipmentBase(BaseHandler):
    """Helpers of the shipment handlers."""

    def recipient_url(self, recipient: Recipient) -> str:
        assert recipient.url_setting is not None
        return str(getattr(self.service, recipient.url_setting)).rstrip("/")

    @property
    def shipping(self) -> Shipping:
        return Shipping(self.store, self.service.data_dir, self.job_dir)

    async def visible_shipment(self, shipment_id: str) -> ShipmentRecord:
        """The shipment if it exists and is the caller's (or the caller administers), else
        404."""
        shipment = await self.blocking(self.store.get_shipment, shipment_id)
        if shipment is None or not (self.is_admin or shipment.user == self.username):
            raise web.HTTPError(404, f"shipment {shipment_id} not found")
        return shipment

    async def token_for(self, recipient: Recipient, sent: Any) -> str:
        """The caller's token: sent in the body, in the header, or stored; 400 without one."""
        if sent is not None:
            problem = token_problem(sent, "zenodo_token")
            if problem:
                raise web.HTTPError(400, problem)
            return str(sent)
        header = self.request.headers.get(TOKEN_HEADER)
        if header is not None:
            header = header.strip()
            problem = token_problem(header, f"the {TOKEN_HEADER} header")
            if problem:
                raise web.HTTPError(400, problem)
            return header
        stored = await self.blocking(self.store.get_user_secret, self.username, recipient.id)
        if stored is not None:
            try:
                return await decrypt_token(stored, recipient, self.service.api_prefix)
            except ShipperError as error:
                raise web.HTTPError(error.status, error.message) from None
        raise web.HTTPError(
            400,
            missing_token_message(
                recipient, self.recipient_url(recipient), self.service.api_prefix
            ),
        )

    async def write_files(self, shipment_id: str) -> None:
        """Answer the files of the shipment's deposition, as Zenodo lists them."""
        self.check_arguments()
        shipment = await self.visible_shipment(shipment_id)
        client = await self.files_client(shipment)
        self.write_json({"files": await deposition_files(client, shipment)})

    async def files_client(self, shipment: ShipmentRecord) -> ZenodoClient:
        """A client of the shipment's repository with the caller's token (the header or the
        stored one); 404 first for a shipment without a deposition (a download)."""
        deposition_of(shipment)
        recipient = RECIPIENTS.get(shipment.recipient)
        if recipient is None or not recipient.needs_token:
            raise web.HTTPError(404, f"shipment {shipment.id} has no deposition")
        token = await self.token_for(recipient, None)
        return ZenodoClient(self.recipient_url(recipient), token, recipient.label)

    def launch_url(self, record: CompendiumRecord) -> str:
        """Where the compendium runs on this hub (its launch link)."""
        base = f"{self.request.protocol}://{self.request.host}{self.service.base_url}"
        return f"{base.rstrip('/')}/launch/{record.id}"


class ShipmentsHandler(ShipmentBase):
    """``/shipment``: list (GET) and ship (POST)."""

    @needs_scope(SCOPE_READ)
    async def get(self) -> None:
        user = self.username
        self.check_arguments(LIST_ARGUMENTS)
        start, limit = self.paging()
        compendium_id = self.text_argument("compendium_id")
        wanted = self.text_argument("user")
        details = self.bool_argument("details", False)
        shipments: list[ShipmentRecord] = []
        total = 0
        # another user's shipments are not visible: none match
        if self.is_admin or wanted in (None, user):
            shipments, total = await self.blocking(
                self.store.list_shipments,
                compendium_id=compendium_id,
                user=wanted if self.is_admin else user,
                start=start,
                limit=limit,
            )
        ids = [shipment.id for shipment in shipments]
        if not details:
            self.write_json(ids)  # o2r's shape
            return
        self.write_json(
            {
                "results": ids,
                "total": total,
                "shipments": [shipment_json(shipment) for shipment in shipments],
            }
        )

    @needs_scope(SCOPE_READ)
    async def post(self) -> None:
        user = self.username
        self.check_arguments()
        body = self.ship_body()
        sent_token = body.pop("zenodo_token", None)
        for field, instead in FORM_REFUSED.items():
            if field in body:
                raise web.HTTPError(400, f"{field}: {instead}")
        problems = schema_problems(body, SHIP_BODY_SCHEMA)
        if problems:
            raise web.HTTPError(400, "; ".join(problems))
        recipient = RECIPIENTS[body["recipient"]]
        if recipient.needs_token:
            self.require(SCOPE_CREATE)
        record = await self.visible_compendium(body["compendium_id"])
        if record.candidate:
            raise web.HTTPError(
                400,
                f"compendium {record.id} is a candidate: publish it (PUT /compendium/"
                f"{record.id}/metadata) before shipping it",
            )
        root = await self.compendium_files(record)
        if recipient.needs_token:
            await self.ship_to_zenodo(recipient, record, root, user, sent_token)
        else:
            await self.download(record, root, user)

    def ship_body(self) -> dict[str, Any]:
        """The body of a new shipment: a JSON object, or o2r's form (urlencoded or multipart
        fields, no files; each field once), its booleans as JSON's."""
        form = self.form_body("shipment")
        if form is None:
            body = self.json_body()
            if not isinstance(body, dict):
                raise web.HTTPError(
                    400, 'the body must be a JSON object {"compendium_id": ..., "recipient": ...}'
                )
            return body
        return {
            name: form_boolean(name, value) if name in FORM_BOOLEANS else value
            for name, value in form.items()
        }

    async def ship_to_zenodo(
        self,
        recipient: Recipient,
        record: CompendiumRecord,
        root: Path,
        user: str,
        sent_token: Any,
    ) -> None:
        if record.user != user and not self.is_admin:
            raise web.HTTPError(
                403, f"only the author (or an administrator) may ship compendium {record.id}"
            )
        token = await self.token_for(recipient, sent_token)
        deposit_metadata = deposit_metadata_for(recipient, record, self.launch_url(record))
        client = ZenodoClient(self.recipient_url(recipient), token, recipient.label)
        shipment = await self.shipping.to_zenodo(
            client, recipient, record, root, user, deposit_metadata, self.landing_url(record.id)
        )
        self.log.info(
            "compendium %s shipped to %s by %s: shipment %s, deposition %s",
            record.id,
            recipient.id,
            user,
            shipment.id,
            shipment.deposition_id,
        )
        self.set_header("Location", f"{self.service.api_prefix}/shipment/{shipment.id}")
        self.write_json(shipment_json(shipment), status=201)

    async def download(self, record: CompendiumRecord, root: Path, user: str) -> None:
        bag_zip, work = await self.shipping.bag_for_download(
            record, root, user, self.landing_url(record.id)
        )
        try:
            size = await self.blocking(lambda: bag_zip.stat().st_size)
            self.log.info("compendium %s downloaded as a bag by %s", record.id, user)
            self.set_header("Content-Type", "application/zip")
            self.set_header("Content-Length", size)
            self.set_header("Content-Disposition", f'attachment; filename="{record.id}_bag.zip"')
            await self.stream_file(bag_zip)
        finally:
            await self.blocking(work.remove)


class ShipmentHandler(ShipmentBase):
    """``/shipment/{id}``: one shipment."""

    @needs_scope(SCOPE_READ)
    async def get(self, shipment_id: str) -> None:
        self.check_arguments()
        self.write_json(shipment_json(await self.visible_shipment(shipment_id)))


class ShipmentStatusHandler(ShipmentBase):
    """``/shipment/{id}/status``: o2r's short view of a shipment."""

    @needs_scope(SCOPE_READ)
    async def get(self, shipment_id: str) -> None:
        self.check_arguments()
        shipment = await self.visible_shipment(shipment_id)
        self.write_json({"id": shipment.id, "status": shipment.status})


class PublishmentHandler(ShipmentBase):
    """``/shipment/{id}/publishment``: publish the deposition, and the DOI into the metadata;
    GET lists the deposition's files, as o2r's document has it."""

    @needs_scope(SCOPE_READ)
    async def get(self, shipment_id: str) -> None:
        await self.write_files(shipment_id)

    @needs_scope(SCOPE_CREATE)
    async def put(self, shipment_id: str) -> None:
        user = self.username
        self.check_arguments()
        sent_token = None
        if self.body.strip():
            body = self.json_body()
            if not isinstance(body, dict) or set(body) - {"zenodo_token"}:
                raise web.HTTPError(
                    400, 'the body must be empty or a JSON object {"zenodo_token": "..."}'
                )
            sent_token = body.get("zenodo_token")
        shipment = await self.visible_shipment(shipment_id)
        recipient = RECIPIENTS.get(shipment.recipient)
        if recipient is None or not recipient.needs_token:
            raise web.HTTPError(400, f"a {shipment.recipient} shipment is not published")
        lock = _publish_locks.setdefault(shipment_id, asyncio.Lock())
        async with lock:
            shipment = await self.visible_shipment(shipment_id)
            if shipment.status == ShipmentStatus.ERROR:
                raise web.HTTPError(
                    409,
                    f"shipment {shipment_id} ended in error ({shipment.reason}); ship the "
                    "compendium again",
                )
            if shipment.status == ShipmentStatus.SHIPPED:
                shipment = await self.publish(recipient, shipment, sent_token)
                self.log.info(
                    "shipment %s published by %s: DOI %s", shipment_id, user, shipment.doi
                )
            if shipment.doi:
                await self.write_doi(shipment.compendium_id, shipment.doi)
        self.write_json(shipment_json(shipment))

    async def publish(
        self, recipient: Recipient, shipment: ShipmentRecord, sent_token: Any
    ) -> ShipmentRecord:
        token = await self.token_for(recipient, sent_token)
        client = ZenodoClient(self.recipient_url(recipient), token, recipient.label)
        deposition_id = str(shipment.deposition_id)
        try:
            try:
                deposition = await client.publish(deposition_id)
            except ShipperError as refused:
                # published already (an earlier answer lost on the way)? then take its DOI
                if refused.upstream_status != 400:
                    raise
                deposition = await client.get_deposition(deposition_id)
                if not deposition.get("submitted") or not deposition.get("doi"):
                    raise refused from None
        except ShipperError as error:
            raise web.HTTPError(error.status, error.message) from None
        doi = str(deposition["doi"]).strip()
        if not DOI_PATTERN.match(doi):
            raise web.HTTPError(502, f"{recipient.label} published the deposition with a DOI "
                                f"that is not one: {doi[:80]!r}")  # fmt: skip
        changes = ShipmentChanges(
            status=ShipmentStatus.PUBLISHED,
            doi=doi,
            deposition_url=deposition_page(deposition) or shipment.deposition_url,
            last_modified=time.time(),
        )
        updated = await self.blocking(self.store.update_shipment, shipment.id, changes)
        if updated is None:
            raise web.HTTPError(404, f"shipment {shipment.id} not found")
        return updated

    async def write_doi(self, compendium_id: str, doi: str) -> None:
        """The DOI into the compendium's metadata, under the metadata PUT's lock."""
        async with metadata_lock(compendium_id):
            record = await self.blocking(self.store.get_compendium, compendium_id)
            if record is None:
                self.log.warning("compendium %s of a published shipment is gone", compendium_id)
                return
            identifier = record.metadata.get("identifier")
            if isinstance(identifier, dict) and identifier.get("doi") == doi:
                return
            root = self.compendium_dir(compendium_id)
            if not await self.blocking(root.is_dir):
                self.log.warning("the files of compendium %s are missing", compendium_id)
                return
            metadata = with_doi(record.metadata, doi)
            await self.blocking(save_metadata, self.store, root, record, metadata)
        self.log.info("compendium %s has the DOI %s", compendium_id, doi)


class ShipmentFilesHandler(ShipmentBase):
    """``/shipment/{id}/files``: the files of the shipment's deposition (o2r's shipper)."""

    @needs_scope(SCOPE_READ)
    async def get(self, shipment_id: str) -> None:
        await self.write_files(shipment_id)


class ShipmentFileHandler(ShipmentBase):
    """``/shipment/{id}/files/{file_id}``: one file of the shipment's deposition; DELETE
    removes it from the deposition while it is not published."""

    @needs_scope(SCOPE_READ)
    async def get(self, shipment_id: str, file_id: str) -> None:
        self.check_arguments()
        shipment = await self.visible_shipment(shipment_id)
        client = await self.files_client(shipment)
        self.write_json(await deposition_file(client, shipment, file_id))

    @needs_scope(SCOPE_CREATE)
    async def delete(self, shipment_id: str, file_id: str) -> None:
        user = self.username
        self.check_arguments()
        shipment = await self.visible_shipment(shipment_id)
        client = await self.files_client(shipment)
        # not while the deposition is being published: its status is read again under the lock
        lock = _publish_locks.setdefault(shipment_id, asyncio.Lock())
        async with lock:
            shipment = await self.visible_shipment(shipment_id)
            await self.shipping.delete_deposition_file(client, shipment, file_id)
        self.log.info(
            "file %s of the deposition of shipment %s deleted by %s", file_id, shipment_id, user
        )
        self.set_status(204)
        self.finish()


_SHIPMENT = r"(?P<shipment_id>[^/]+)"

default_handlers = [
    (r"/shipment", ShipmentsHandler),
    (rf"/shipment/{_SHIPMENT}", ShipmentHandler),
    (rf"/shipment/{_SHIPMENT}/status", ShipmentStatusHandler),
    (rf"/shipment/{_SHIPMENT}/publishment", PublishmentHandler),
    (rf"/shipment/{_SHIPMENT}/files", ShipmentFilesHandler),
    (rf"/shipment/{_SHIPMENT}/files/(?P<file_id>[^/]+)", ShipmentFileHandler),
]
