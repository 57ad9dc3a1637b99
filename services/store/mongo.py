"""The MongoDB backend of the store, through pymongo (and mongomock in the tests).

Documents: ``compendia``, ``jobs``, ``shipments`` and ``links`` (review links), the record's id as
``_id``; ``secrets``, one per user and name (a unique index), holding the ciphertext only.

Claiming is one ``find_one_and_update`` on the oldest queued job that no delete holds; every
conditional change (a worker's update, heartbeat, cancel, reaping) is one filtered update, so no
two clients can both apply it.

Deleting a compendium, without multi-document transactions. Each step is atomic on one
document, and the steps are ordered so that a claim and a delete never both win:

1. the compendium is marked ``deleting`` (a conditional ``find_one_and_update``): one delete of
   a compendium at a time, another one meanwhile raises :class:`Conflict`;
2. all its jobs get ``held_until`` (one ``update_many``): a claim never takes a held job, so
   from here on none of them starts;
3. if one of them is running (claimed before step 2), the holds and the mark are removed and
   :class:`JobRunning` raised: nothing was deleted;
4. else its jobs are deleted one by one (never a running one), then the compendium.

The mark and the holds are leases (:data:`DELETE_LEASE`), so that a delete that died half-way
blocks neither a later delete nor the claims for ever. The guarantee therefore assumes that a
delete does not stall for that long between its steps, and that the clocks of the API process
and the workers (claim_job's ``now``) agree to well within it. A job added while a delete runs
(after step 2) is not held: it is deleted unless a worker has claimed it, and may then outlive
the compendium.

Full-text search. MongoDB's ``$text`` cannot do what the store promises: it matches whole
(stemmed) words only, never prefixes, and any of the words rather than all. So each compendium
carries its search words (:func:`erchub.services.store.common.field_words`): ``words`` (all of
them, a multikey index) and ``search`` (the distinct words of each field). A query matches the
compendia that have, for every query word, a word starting with it (anchored regular
expressions, which use the index). The score sums, over the query words, the weights of the
fields that have such a word (:data:`FIELD_WEIGHTS`); best first. The same code runs against
mongomock, which implements no ``$text`` at all.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import pymongo
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from erchub.services.store.base import (
    WORKER_LOST,
    CompendiumQuery,
    CompendiumRecord,
    Conflict,
    JobChanges,
    JobQuery,
    JobRecord,
    JobRunning,
    LinkMode,
    LinkRecord,
    SearchHit,
    ShipmentChanges,
    ShipmentRecord,
    ShipmentStatus,
    StepTiming,
    Store,
    StoreError,
    doi_of,
)
from erchub.services.store.common import (
    CANCELED_BEFORE_START,
    FIELD_WEIGHTS,
    STEP_TIMING_FIELDS,
    field_words,
    job_values,
    page,
    query_words,
    shipment_values,
    timed_steps,
)
from erchub.steps import FINAL_JOB_STATUSES, JobStatus, StepName

log = logging.getLogger(__name__)

_NEWEST = [("created", pymongo.DESCENDING), ("_id", pymongo.DESCENDING)]
_OLDEST = [("created", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)]
#: the search words stay in the database
_RECORD_FIELDS = {"search": 0, "words": 0}
_JOB_INCLUDED = {name: 1 for name in JobRecord.__dataclass_fields__ if name != "id"}
_RECORD_INCLUDED = {name: 1 for name in ("user", "candidate", "metadata", "created", "updated")}
#: seconds a delete's mark on a compendium and its holds on the jobs last at most (see above)
DELETE_LEASE = 300.0


def _compendium(doc: dict[str, Any]) -> CompendiumRecord:
    return CompendiumRecord(
        id=doc["_id"],
        user=doc["user"],
        candidate=doc["candidate"],
        metadata=doc["metadata"],
        created=doc["created"],
        updated=doc["updated"],
    )


def _search_fields(metadata: dict[str, Any]) -> dict[str, Any]:
    fields = {name: sorted(set(words)) for name, words in field_words(metadata).items()}
    return {
        "search": fields,
        "words": sorted({word for words in fields.values() for word in words}),
        "doi": doi_of(metadata),
    }


def _job(doc: dict[str, Any]) -> JobRecord:
    doc = dict(doc)
    doc["id"] = doc.pop("_id")
    doc["status"] = JobStatus(doc["status"])
    doc.pop("held_until", None)
    return JobRecord(**doc)


def _shipment(doc: dict[str, Any]) -> ShipmentRecord:
    doc = dict(doc)
    doc["id"] = doc.pop("_id")
    doc["status"] = ShipmentStatus(doc["status"])
    return ShipmentRecord(**doc)


def _link(doc: dict[str, Any]) -> LinkRecord:
    doc = dict(doc)
    doc["id"] = doc.pop("_id")
    doc["mode"] = LinkMode(doc["mode"])
    return LinkRecord(**doc)


def _prefix(word: str) -> str:
    return "^" + re.escape(word)


class MongoStore(Store):
    """The store in the database ``database_name`` of a pymongo (or mongomock) client."""

    def __init__(self, client: Any, database_name: str) -> None:
        self._client = client
        self._name = f"MongoDB database {database_name}"
        database = client[database_name]
        self._compendia = database["compendia"]
        self._jobs = database["jobs"]
        self._shipments = database["shipments"]
        self._secrets = database["secrets"]
        self._links = database["links"]
        with self._translate():
            self._compendia.create_index([("candidate", 1), *_NEWEST])
            self._compendia.create_index([("user", 1), ("candidate", 1), *_NEWEST])
            self._compendia.create_index("doi")
            self._compendia.create_index("words")
            self._jobs.create_index([("status", 1), *_OLDEST])
            self._jobs.create_index([("compendium_id", 1), *_NEWEST])
            self._jobs.create_index([("user", 1), *_NEWEST])
            self._jobs.create_index(_NEWEST)
            self._shipments.create_index([("compendium_id", 1), *_NEWEST])
            self._shipments.create_index([("user", 1), *_NEWEST])
            self._shipments.create_index(_NEWEST)
            self._secrets.create_index([("user", 1), ("name", 1)], unique=True)
            self._links.create_index([("user", 1), *_NEWEST])
            self._links.create_index([("compendium_id", 1), *_NEWEST])
        log.info("store: %s", self._name)

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except DuplicateKeyError:
            raise
        except PyMongoError as exc:
            raise StoreError(f"{self._name}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self._client.close()

    # -- compendia -----------------------------------------------------------------------------

    def add_compendium(self, record: CompendiumRecord) -> None:
        doc = {
            "_id": record.id,
            "user": record.user,
            "candidate": record.candidate,
            "metadata": record.metadata,
            "created": record.created,
            "updated": record.updated,
            **_search_fields(record.metadata),
        }
        try:
            with self._translate():
                self._compendia.insert_one(doc)
        except DuplicateKeyError as exc:
            raise Conflict(f"compendium {record.id} exists already") from exc

    def get_compendium(self, compendium_id: str) -> CompendiumRecord | None:
        with self._translate():
            doc = self._compendia.find_one({"_id": compendium_id}, _RECORD_FIELDS)
        return _compendium(doc) if doc else None

    def update_compendium(
        self,
        compendium_id: str,
        *,
        metadata: dict[str, Any] | None = None,
        candidate: bool | None = None,
        now: float,
    ) -> CompendiumRecord | None:
        changes: dict[str, Any] = {"updated": now}
        if candidate is not None:
            changes["candidate"] = candidate
        if metadata is not None:
            changes.update(metadata=metadata, **_search_fields(metadata))
        with self._translate():
            doc = self._compendia.find_one_and_update(
                {"_id": compendium_id},
                {"$set": changes},
                projection=_RECORD_FIELDS,
                return_document=ReturnDocument.AFTER,
            )
        return _compendium(doc) if doc else None

    def delete_compendium(self, compendium_id: str) -> list[str] | None:
        # the steps of the module's docstring
        token = uuid.uuid4().hex
        until = time.time() + DELETE_LEASE
        with self._translate():
            free = [{"deleting": None}, {"deleting.until": {"$lt": time.time()}}]
            marked = self._compendia.find_one_and_update(
                {"_id": compendium_id, "$or": free},
                {"$set": {"deleting": {"token": token, "until": until}}},
                projection={"_id": 1},
            )
            if marked is None:
                if self._compendia.find_one({"_id": compendium_id}, {"_id": 1}) is None:
                    return None
                raise Conflict(f"compendium {compendium_id} is being deleted; try again later")
            try:
                self._jobs.update_many(
                    {"compendium_id": compendium_id}, {"$set": {"held_until": until}}
                )
                running = self._jobs.find_one(
                    {"compendium_id": compendium_id, "status": JobStatus.RUNNING},
                    {"_id": 1},
                    sort=[("_id", pymongo.ASCENDING)],
                )
                if running is not None:
                    raise JobRunning(running["_id"])
                deleted = []
                while doc := self._jobs.find_one_and_delete(
                    {"compendium_id": compendium_id, "status": {"$ne": JobStatus.RUNNING}},
                    projection={"_id": 1},
                ):
                    deleted.append(doc["_id"])
                self._compendia.delete_one({"_id": compendium_id, "deleting.token": token})
            except BaseException:
                with contextlib.suppress(PyMongoError):
                    self._jobs.update_many(
                        {"compendium_id": compendium_id, "held_until": until},
                        {"$unset": {"held_until": ""}},
                    )
                    self._compendia.update_one(
                        {"_id": compendium_id, "deleting.token": token},
                        {"$unset": {"deleting": ""}},
                    )
                raise
        return sorted(deleted)

    def list_compendia(self, query: CompendiumQuery) -> tuple[list[CompendiumRecord], int]:
        where: list[dict[str, Any]] = [{"candidate": query.candidate}]
        if query.candidate and query.viewer is not None:
            where.append({"user": query.viewer})
        if query.user is not None:
            where.append({"user": query.user})
        if query.doi is not None:
            where.append({"doi": query.doi.strip().lower()})
        if query.git_url is not None:
            where.append({"metadata.origin.git_url": query.git_url})
        if query.git_commit is not None:
            where.append({"metadata.origin.commit": query.git_commit})
        start, limit = page(query.start, query.limit)
        with self._translate():
            total = self._compendia.count_documents({"$and": where})
            # find's limit 0 means no limit
            found = self._compendia.find({"$and": where}, _RECORD_FIELDS, sort=_NEWEST, skip=start)
            docs = list(found.limit(limit)) if limit else []
        return [_compendium(doc) for doc in docs], total

    def search_compendia(
        self, text: str, *, viewer: str | None, start: int = 0, limit: int = 20
    ) -> tuple[list[SearchHit], int]:
        words = query_words(text)
        if not words:
            return [], 0
        match: dict[str, Any] = {"$and": [{"words": {"$regex": _prefix(w)}} for w in words]}
        if viewer is not None:
            match["$or"] = [{"candidate": False}, {"user": viewer}]
        score = {
            "$add": [
                {"$cond": [_field_has_prefix(field, word), weight, 0]}
                for word in words
                for field, weight in FIELD_WEIGHTS.items()
            ]
        }
        start, limit = page(start, limit)
        pipeline: list[dict[str, Any]] = [
            {"$match": match},
            {"$project": {**_RECORD_INCLUDED, "score": score}},
            {"$sort": {"score": -1, "created": -1, "_id": -1}},
            {"$facet": {"total": [{"$count": "n"}], "page": _page_stages(start, limit)}},
        ]
        with self._translate():
            (result,) = self._compendia.aggregate(pipeline)
        total = result["total"][0]["n"] if result["total"] else 0
        hits = [SearchHit(_compendium(doc), float(doc["score"])) for doc in result["page"]]
        return hits[:limit], total

    # -- jobs ----------------------------------------------------------------------------------

    def add_job(self, record: JobRecord) -> None:
        doc = asdict(record)
        doc["_id"] = doc.pop("id")
        try:
            with self._translate():
                self._jobs.insert_one(doc)
        except DuplicateKeyError as exc:
            raise Conflict(f"job {record.id} exists already") from exc

    def get_job(self, job_id: str) -> JobRecord | None:
        with self._translate():
            doc = self._jobs.find_one({"_id": job_id})
        return _job(doc) if doc else None

    def list_jobs(self, query: JobQuery) -> tuple[list[JobRecord], int]:
        where: dict[str, Any] = {}
        if query.compendium_id is not None:
            where["compendium_id"] = query.compendium_id
        if query.status is not None:
            where["status"] = query.status
        if query.user is not None:
            where["user"] = query.user
        pipeline: list[dict[str, Any]] = [{"$match": where}]
        if query.viewer is not None:
            viewer = query.viewer
            pipeline += [
                {
                    "$lookup": {
                        "from": self._compendia.name,
                        "localField": "compendium_id",
                        "foreignField": "_id",
                        "as": "compendium",
                    }
                },
                {
                    "$match": {
                        "$or": [
                            {"user": viewer},
                            {"compendium.candidate": False},
                            {"compendium.user": viewer},
                        ]
                    }
                },
                {"$project": _JOB_INCLUDED},
            ]
        start, limit = page(query.start, query.limit)
        pipeline += [
            {"$sort": dict(_NEWEST)},
            {"$facet": {"total": [{"$count": "n"}], "page": _page_stages(start, limit)}},
        ]
        with self._translate():
            (result,) = self._jobs.aggregate(pipeline)
        total = result["total"][0]["n"] if result["total"] else 0
        return [_job(doc) for doc in result["page"][:limit]], total

    def claim_job(self, worker: str, now: float) -> JobRecord | None:
        # an update pipeline, so that started is set on the first attempt only; $literal keeps
        # a worker name starting with "$" from being read as a field path
        claim = {
            "status": JobStatus.RUNNING,
            "worker": {"$literal": worker},
            "heartbeat": now,
            "started": {"$ifNull": ["$started", now]},
            "attempts": {"$add": ["$attempts", 1]},
        }
        # a job a delete holds is not taken (see the module's docstring)
        free = [{"held_until": None}, {"held_until": {"$lt": now}}]
        with self._translate():
            doc = self._jobs.find_one_and_update(
                {"status": JobStatus.QUEUED, "$or": free},
                [{"$set": claim}],
                sort=_OLDEST,
                return_document=ReturnDocument.AFTER,
            )
        return _job(doc) if doc else None

    def update_job(self, job_id: str, changes: JobChanges, *, worker: str | None = None) -> bool:
        values = job_values(changes)
        where: dict[str, Any] = {"_id": job_id}
        if worker is not None:
            where.update(worker=worker, status=JobStatus.RUNNING)
        with self._translate():
            return self._jobs.update_one(where, {"$set": values}).matched_count > 0

    def heartbeat(self, job_id: str, worker: str, now: float) -> JobRecord | None:
        with self._translate():
            doc = self._jobs.find_one_and_update(
                {"_id": job_id, "worker": worker, "status": JobStatus.RUNNING},
                {"$set": {"heartbeat": now}},
                return_document=ReturnDocument.AFTER,
            )
        return _job(doc) if doc else None

    def request_cancel(self, job_id: str, now: float) -> JobRecord | None:
        cancel_queued = {
            "status": JobStatus.CANCELED,
            "finished": now,
            "cancel_requested": True,
            "reason": CANCELED_BEFORE_START,
        }
        with self._translate():
            doc = self._jobs.find_one_and_update(
                {"_id": job_id, "status": JobStatus.QUEUED},
                {"$set": cancel_queued},
                return_document=ReturnDocument.AFTER,
            ) or self._jobs.find_one_and_update(
                {"_id": job_id, "status": JobStatus.RUNNING},
                {"$set": {"cancel_requested": True}},
                return_document=ReturnDocument.AFTER,
            )
            doc = doc or self._jobs.find_one({"_id": job_id})
        return _job(doc) if doc else None

    def reap_lost_jobs(self, cutoff: float, now: float, max_attempts: int = 2) -> list[JobRecord]:
        lost = {
            "status": JobStatus.RUNNING,
            "$or": [{"heartbeat": None}, {"heartbeat": {"$lt": cutoff}}],
        }
        requeue = {"$set": {"status": JobStatus.QUEUED, "worker": None, "heartbeat": None}}
        fail = {"$set": {"status": JobStatus.FAILURE, "reason": WORKER_LOST, "finished": now}}
        reaped = []
        with self._translate():
            for found in self._jobs.find(lost, {"_id": 1}):
                # each job changes in one conditional update: another reaper, or the worker
                # coming back, may have changed it since the find
                doc = self._jobs.find_one_and_update(
                    {**lost, "_id": found["_id"], "attempts": {"$lt": max_attempts}},
                    requeue,
                    return_document=ReturnDocument.AFTER,
                ) or self._jobs.find_one_and_update(
                    {**lost, "_id": found["_id"], "attempts": {"$gte": max_attempts}},
                    fail,
                    return_document=ReturnDocument.AFTER,
                )
                if doc:
                    reaped.append(_job(doc))
        return reaped

    # -- what operators watch ------------------------------------------------------------------

    def count_jobs(self) -> dict[JobStatus, int]:
        with self._translate():
            groups = list(self._jobs.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}]))
        return {JobStatus(group["_id"]): group["n"] for group in groups}

    def worker_heartbeats(self) -> dict[str, float]:
        running = {"status": JobStatus.RUNNING, "heartbeat": {"$ne": None}}
        newest = {"_id": "$worker", "heartbeat": {"$max": "$heartbeat"}}
        with self._translate():
            groups = list(self._jobs.aggregate([{"$match": running}, {"$group": newest}]))
        return {group["_id"]: group["heartbeat"] for group in groups}

    def step_timings(self, last_jobs: int) -> list[StepTiming]:
        # each step's STEP_TIMING_FIELDS, projected: the steps' text (a build log) stays in the
        # database
        fields = {f"steps.{name}.{field}": 1 for name in StepName for field in STEP_TIMING_FIELDS}
        if last_jobs <= 0:  # find's limit 0 means no limit
            return []
        with self._translate():
            found = self._jobs.find(
                {"status": {"$in": sorted(FINAL_JOB_STATUSES)}}, {"_id": 0, **fields}, sort=_NEWEST
            )
            docs = list(found.limit(last_jobs))
        return [timing for doc in docs for timing in timed_steps(doc.get("steps") or {})]

    # -- shipments -----------------------------------------------------------------------------

    def add_shipment(self, record: ShipmentRecord) -> None:
        doc = asdict(record)
        doc["_id"] = doc.pop("id")
        try:
            with self._translate():
                self._shipments.insert_one(doc)
        except DuplicateKeyError as exc:
            raise Conflict(f"shipment {record.id} exists already") from exc

    def get_shipment(self, shipment_id: str) -> ShipmentRecord | None:
        with self._translate():
            doc = self._shipments.find_one({"_id": shipment_id})
        return _shipment(doc) if doc else None

    def list_shipments(
        self,
        *,
        compendium_id: str | None = None,
        user: str | None = None,
        start: int = 0,
        limit: int = 100,
    ) -> tuple[list[ShipmentRecord], int]:
        where: dict[str, Any] = {}
        if compendium_id is not None:
            where["compendium_id"] = compendium_id
        if user is not None:
            where["user"] = user
        start, limit = page(start, limit)
        with self._translate():
            total = self._shipments.count_documents(where)
            found = self._shipments.find(where, sort=_NEWEST, skip=start)
            docs = list(found.limit(limit)) if limit else []
        return [_shipment(doc) for doc in docs], total

    def update_shipment(self, shipment_id: str, changes: ShipmentChanges) -> ShipmentRecord | None:
        values = shipment_values(changes)
        with self._translate():
            doc = self._shipments.find_one_and_update(
                {"_id": shipment_id}, {"$set": values}, return_document=ReturnDocument.AFTER
            )
        return _shipment(doc) if doc else None

    # -- users' secrets ------------------------------------------------------------------------

    def set_user_secret(self, user: str, name: str, encrypted: str, now: float) -> None:
        with self._translate():
            self._secrets.update_one(
                {"user": user, "name": name},
                {"$set": {"encrypted": encrypted, "updated": now}},
                upsert=True,
            )

    def get_user_secret(self, user: str, name: str) -> str | None:
        with self._translate():
            doc = self._secrets.find_one({"user": user, "name": name})
        return str(doc["encrypted"]) if doc else None

    def delete_user_secret(self, user: str, name: str) -> bool:
        with self._translate():
            return self._secrets.delete_one({"user": user, "name": name}).deleted_count > 0

    # -- review links --------------------------------------------------------------------------

    def add_link(self, record: LinkRecord) -> None:
        doc = asdict(record)
        doc["_id"] = doc.pop("id")
        doc["mode"] = str(record.mode)
        try:
            with self._translate():
                self._links.insert_one(doc)
        except DuplicateKeyError as exc:
            raise Conflict(f"link {record.id} exists already") from exc

    def get_link(self, link_id: str) -> LinkRecord | None:
        with self._translate():
            doc = self._links.find_one({"_id": link_id})
        return _link(doc) if doc else None

    def list_links(
        self, *, user: str | None = None, compendium_id: str | None = None
    ) -> list[LinkRecord]:
        where: dict[str, Any] = {}
        if user is not None:
            where["user"] = user
        if compendium_id is not None:
            where["compendium_id"] = compendium_id
        with self._translate():
            return [_link(doc) for doc in self._links.find(where, sort=_NEWEST)]

    def revoke_link(self, link_id: str, now: float) -> LinkRecord | None:
        with self._translate():
            self._links.update_one({"_id": link_id, "revoked": None}, {"$set": {"revoked": now}})
            doc = self._links.find_one({"_id": link_id})
        return _link(doc) if doc else None

    def set_link_mode(self, link_id: str, mode: LinkMode) -> LinkRecord | None:
        with self._translate():
            self._links.update_one({"_id": link_id}, {"$set": {"mode": str(mode)}})
            doc = self._links.find_one({"_id": link_id})
        return _link(doc) if doc else None

    def count_link_use(self, link_id: str) -> None:
        with self._translate():
            self._links.update_one({"_id": link_id}, {"$inc": {"uses": 1}})


def _field_has_prefix(field: str, word: str) -> dict[str, Any]:
    has = {"$regexMatch": {"input": "$$this", "regex": _prefix(word)}}
    return {"$gt": [{"$size": {"$filter": {"input": f"$search.{field}", "cond": has}}}, 0]}


def _page_stages(start: int, limit: int) -> list[dict[str, Any]]:
    # $limit must be positive: for a limit of 0 the caller drops the one document fetched
    return [{"$skip": start}, {"$limit": max(limit, 1)}]
