"""The SQL backends of the store: SQLite (the embedded default) and PostgreSQL, on SQLAlchemy Core.

The schema is alembic's (``migrations/``), brought to the head revision whenever a store opens.

Concurrency. PostgreSQL claims jobs with ``SELECT ... FOR UPDATE SKIP LOCKED``. SQLite has one
writer at a time: every write transaction starts with ``BEGIN IMMEDIATE``, which takes the write
lock up front (a deferred transaction that reads first could not upgrade its lock once another
process has written, and would fail instead of waiting). WAL mode lets readers go on while one
process writes, and a busy timeout makes writers wait for each other, so several processes can
share the file.

Deleting a compendium is one transaction that locks the compendium row (``FOR UPDATE``: deletes
of one compendium take turns), deletes its jobs and rolls back when one of them was running.
On PostgreSQL the ``DELETE`` locks every job row it removes: a claim skips those rows (``SKIP
LOCKED``) and never gets a job being deleted; a job row a claim holds already makes the
``DELETE`` wait for the claim's commit and then delete the running version, which the store
sees and undoes. Either the delete or the claim wins, never both.

Full-text search. Both backends index the words of :func:`erchub.services.store.common.words`:
SQLite in the FTS5 table ``compendia_fts`` ranked by bm25 with column weights, PostgreSQL in a
tsvector of weights A (title, authors), B (keywords) and C (description, files) ranked by
ts_rank. Every query word is a prefix (FTS5 ``"word"*``, tsquery ``word:*``), all must match.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from erchub.redact import redact_url as redact
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

MIGRATIONS = Path(__file__).with_name("migrations")
#: the key of the advisory lock that makes processes opening a PostgreSQL store migrate in turn
_MIGRATION_LOCK = 0x6572636875620001
#: seconds a SQLite writer waits for another process's write transaction before giving up
SQLITE_BUSY_TIMEOUT = 30.0
#: libpq's connection settings: a server that went away without a word (its host or container
#: gone, as when Swarm restarts PostgreSQL elsewhere: no RST ever comes) fails a connection
#: within seconds, not after the kernel's ~15 minutes of retransmissions. A worker's heartbeat
#: stuck that long on a dead connection makes its job look lost and run twice; failed fast, the
#: pool's pre-ping connects again, to the new server (Worker.lost_timeout is 10 s on the swarm)
POSTGRES_CONNECT_ARGS = {
    # seconds to establish a connection
    "connect_timeout": 5,
    # ms that sent data may stay unacknowledged before the connection is dropped
    "tcp_user_timeout": 4000,
    # an idle connection is probed after 5 s, every 2 s, dropped after 2 unanswered probes
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
}
#: the execution option that makes the SQLite begin hook start an immediate transaction
_IMMEDIATE = "erchub_begin_immediate"

_meta = sa.MetaData()
compendia = sa.Table(
    "compendia",
    _meta,
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("id", sa.Text),
    sa.Column("user_name", sa.Text),
    sa.Column("candidate", sa.Boolean),
    sa.Column("metadata", sa.JSON),
    sa.Column("doi", sa.Text),
    sa.Column("created", sa.Double),
    sa.Column("updated", sa.Double),
    # PostgreSQL only
    sa.Column("search", postgresql.TSVECTOR),
)
jobs = sa.Table(
    "jobs",
    _meta,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("compendium_id", sa.Text),
    sa.Column("user_name", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("parameters", sa.JSON),
    sa.Column("steps", sa.JSON),
    sa.Column("created", sa.Double),
    sa.Column("started", sa.Double),
    sa.Column("finished", sa.Double),
    sa.Column("worker", sa.Text),
    sa.Column("heartbeat", sa.Double),
    sa.Column("attempts", sa.Integer),
    sa.Column("cancel_requested", sa.Boolean),
    sa.Column("reason", sa.Text),
    sa.Column("result", sa.JSON),
    sa.Column("network_granted", sa.Boolean),
)
shipments = sa.Table(
    "shipments",
    _meta,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("compendium_id", sa.Text),
    sa.Column("recipient", sa.Text),
    sa.Column("user_name", sa.Text),
    sa.Column("status", sa.Text),
    sa.Column("deposition_id", sa.Text),
    sa.Column("deposition_url", sa.Text),
    sa.Column("doi", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("created", sa.Double),
    sa.Column("last_modified", sa.Double),
)
user_secrets = sa.Table(
    "user_secrets",
    _meta,
    sa.Column("user_name", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("encrypted", sa.Text),
    sa.Column("updated", sa.Double),
)
review_links = sa.Table(
    "review_links",
    _meta,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("compendium_id", sa.Text),
    sa.Column("user_name", sa.Text),
    sa.Column("mode", sa.Text),
    sa.Column("expires", sa.Double),
    sa.Column("created", sa.Double),
    sa.Column("revoked", sa.Double),
    sa.Column("uses", sa.Integer),
)
# SQLite only; its rowid is compendia.seq
compendia_fts = sa.table(
    "compendia_fts", sa.column("rowid", sa.Integer), *(sa.column(name) for name in FIELD_WEIGHTS)
)

_COMPENDIUM = [compendia.c[name] for name in ("id", "user_name", "candidate", "metadata")] + [
    compendia.c.created,
    compendia.c.updated,
]
_NEWEST_COMPENDIA = (compendia.c.created.desc(), compendia.c.id.desc())
_NEWEST_JOBS = (jobs.c.created.desc(), jobs.c.id.desc())
_NEWEST_SHIPMENTS = (shipments.c.created.desc(), shipments.c.id.desc())
_TS_WEIGHTS = {"title": "A", "authors": "A", "keywords": "B", "description": "C", "files": "C"}
#: ts_rank's weights of D, C, B, A (default 0.1, 0.2, 0.4, 1.0). One word: its ts_rank sums its
#: occurrences with weights falling as 1/n^2, so it stays below 1.64 times the weight of its
#: class, and C's below B's, B's below A's, as FIELD_WEIGHTS orders them.
_TS_RANK_WEIGHTS: sa.ColumnElement[Any] = sa.literal_column("'{0.01, 0.05, 0.4, 1.0}'::real[]")


def _compendium(row: Row) -> CompendiumRecord:
    m = row._mapping
    return CompendiumRecord(
        id=m["id"],
        user=m["user_name"],
        candidate=bool(m["candidate"]),
        metadata=m["metadata"],
        created=m["created"],
        updated=m["updated"],
    )


def _job(row: Row) -> JobRecord:
    m = dict(row._mapping)
    m["user"] = m.pop("user_name")
    m["status"] = JobStatus(m["status"])
    m["cancel_requested"] = bool(m["cancel_requested"])
    m["network_granted"] = bool(m["network_granted"])
    return JobRecord(**m)


def _job_values(record: JobRecord) -> dict[str, Any]:
    values = dict(record.__dict__)
    values["user_name"] = values.pop("user")
    return values


def _shipment(row: Row) -> ShipmentRecord:
    m = dict(row._mapping)
    m["user"] = m.pop("user_name")
    m["status"] = ShipmentStatus(m["status"])
    return ShipmentRecord(**m)


def _link(row: Row) -> LinkRecord:
    m = dict(row._mapping)
    m["user"] = m.pop("user_name")
    m["mode"] = LinkMode(m["mode"])
    return LinkRecord(**m)


def _tsvector(fields: dict[str, list[str]]) -> sa.ColumnElement[Any]:
    parts = [
        sa.func.setweight(
            sa.func.to_tsvector("simple", " ".join(fields[name])),
            sa.literal_column(f"'{_TS_WEIGHTS[name]}'"),
        )
        for name in FIELD_WEIGHTS
    ]
    return functools.reduce(lambda a, b: a.op("||", return_type=postgresql.TSVECTOR)(b), parts)


class SqlStore(Store):
    """The store in a SQLite file (``sqlite:///path``) or on a PostgreSQL server."""

    def __init__(self, url: str) -> None:
        self._name = redact(url)
        parsed = sa.make_url(url)
        backend = parsed.get_backend_name()
        self._postgres = backend == "postgresql"
        if self._postgres:
            self._engine = sa.create_engine(
                parsed, pool_pre_ping=True, connect_args=POSTGRES_CONNECT_ARGS
            )
            self._writer = self._engine
        elif backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
            self._engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})
            sa.event.listen(self._engine, "connect", _sqlite_connect)
            sa.event.listen(self._engine, "begin", _sqlite_begin)
            self._writer = self._engine.execution_options(**{_IMMEDIATE: True})
        else:
            raise ValueError(f"not a SQLite file or PostgreSQL URL: {self._name}")
        try:
            self._migrate()
        except BaseException:
            self._engine.dispose()
            raise
        log.info("store: %s", self._name)

    def _migrate(self) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
        try:
            with self._writing() as conn:
                if self._postgres:
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except CommandError as exc:
            raise StoreError(
                f"cannot bring the schema of {self._name} up to date ({exc}); "
                "was it made by a newer erchub?"
            ) from exc

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.IntegrityError:
            raise
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"{self._name}: {type(exc.orig).__name__}: {exc.orig}") from exc

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self._translate(), self._engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Connection]:
        with self._translate(), self._writer.begin() as conn:
            yield conn

    def close(self) -> None:
        self._engine.dispose()

    # -- compendia -----------------------------------------------------------------------------

    def add_compendium(self, record: CompendiumRecord) -> None:
        values = {
            "id": record.id,
            "user_name": record.user,
            "candidate": record.candidate,
            "metadata": record.metadata,
            "doi": record.doi,
            "created": record.created,
            "updated": record.updated,
        }
        fields = field_words(record.metadata)
        try:
            with self._writing() as conn:
                if self._postgres:
                    conn.execute(compendia.insert().values(**values, search=_tsvector(fields)))
                else:
                    seq = conn.execute(
                        compendia.insert().values(**values).returning(compendia.c.seq)
                    ).scalar_one()
                    conn.execute(compendia_fts.insert().values(rowid=seq, **_fts_text(fields)))
        except sa.exc.IntegrityError as exc:
            raise Conflict(f"compendium {record.id} exists already") from exc

    def get_compendium(self, compendium_id: str) -> CompendiumRecord | None:
        with self._reading() as conn:
            row = conn.execute(sa.select(*_COMPENDIUM).where(compendia.c.id == compendium_id))
            found = row.first()
        return _compendium(found) if found else None

    def update_compendium(
        self,
        compendium_id: str,
        *,
        metadata: dict[str, Any] | None = None,
        candidate: bool | None = None,
        now: float,
    ) -> CompendiumRecord | None:
        with self._writing() as conn:
            found = conn.execute(
                sa.select(compendia.c.seq, *_COMPENDIUM)
                .where(compendia.c.id == compendium_id)
                .with_for_update()
            ).first()
            if found is None:
                return None
            record = _compendium(found)
            values: dict[str, Any] = {"updated": now}
            if candidate is not None:
                record.candidate = values["candidate"] = candidate
            if metadata is not None:
                record.metadata = values["metadata"] = metadata
                values["doi"] = doi_of(metadata)
                fields = field_words(metadata)
                if self._postgres:
                    values["search"] = _tsvector(fields)
                else:
                    conn.execute(
                        compendia_fts.update()
                        .where(compendia_fts.c.rowid == found.seq)
                        .values(**_fts_text(fields))
                    )
            record.updated = now
            conn.execute(compendia.update().where(compendia.c.seq == found.seq).values(**values))
        return record

    def delete_compendium(self, compendium_id: str) -> list[str] | None:
        # one transaction, rolled back by JobRunning: see Concurrency in the module's docstring
        with self._writing() as conn:
            seq = conn.execute(
                sa.select(compendia.c.seq).where(compendia.c.id == compendium_id).with_for_update()
            ).scalar()
            if seq is None:
                return None
            deleted = conn.execute(
                jobs.delete()
                .where(jobs.c.compendium_id == compendium_id)
                .returning(jobs.c.id, jobs.c.status)
            ).all()
            running = sorted(row.id for row in deleted if row.status == JobStatus.RUNNING)
            if running:
                raise JobRunning(running[0])
            if not self._postgres:
                conn.execute(compendia_fts.delete().where(compendia_fts.c.rowid == seq))
            conn.execute(compendia.delete().where(compendia.c.seq == seq))
        return sorted(row.id for row in deleted)

    def list_compendia(self, query: CompendiumQuery) -> tuple[list[CompendiumRecord], int]:
        where = [compendia.c.candidate == query.candidate]
        if query.candidate and query.viewer is not None:
            where.append(compendia.c.user_name == query.viewer)
        if query.user is not None:
            where.append(compendia.c.user_name == query.user)
        if query.doi is not None:
            where.append(compendia.c.doi == query.doi.strip().lower())
        if query.git_url is not None:
            where.append(compendia.c.metadata[("origin", "git_url")].as_string() == query.git_url)
        if query.git_commit is not None:
            where.append(compendia.c.metadata[("origin", "commit")].as_string() == query.git_commit)
        start, limit = page(query.start, query.limit)
        with self._reading() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(compendia).where(*where)
            ).scalar_one()
            rows = conn.execute(
                sa.select(*_COMPENDIUM)
                .where(*where)
                .order_by(*_NEWEST_COMPENDIA)
                .offset(start)
                .limit(limit)
            ).all()
        return [_compendium(row) for row in rows], total

    def search_compendia(
        self, text: str, *, viewer: str | None, start: int = 0, limit: int = 20
    ) -> tuple[list[SearchHit], int]:
        words = query_words(text)
        if not words:
            return [], 0
        where = []
        if viewer is not None:
            visible = sa.or_(compendia.c.candidate == sa.false(), compendia.c.user_name == viewer)
            where.append(visible)
        if self._postgres:
            tsquery = sa.func.to_tsquery("simple", " & ".join(f"{word}:*" for word in words))
            where.append(compendia.c.search.bool_op("@@")(tsquery))
            source: sa.FromClause = compendia
            score: sa.ColumnElement[Any] = sa.func.ts_rank(
                _TS_RANK_WEIGHTS, compendia.c.search, tsquery
            )
        else:
            fts: sa.ColumnElement[Any] = sa.literal_column("compendia_fts")
            where.append(fts.bool_op("MATCH")(" ".join(f'"{word}"*' for word in words)))
            source = compendia_fts.join(compendia, compendia.c.seq == compendia_fts.c.rowid)
            # bm25 is lower for better matches
            score = -sa.func.bm25(fts, *(sa.literal(w) for w in FIELD_WEIGHTS.values()))
        start, limit = page(start, limit)
        with self._reading() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(source).where(*where)
            ).scalar_one()
            rows = conn.execute(
                sa.select(*_COMPENDIUM, score.label("score"))
                .select_from(source)
                .where(*where)
                .order_by(sa.desc("score"), *_NEWEST_COMPENDIA)
                .offset(start)
                .limit(limit)
            ).all()
        return [SearchHit(_compendium(row), float(row.score)) for row in rows], total

    # -- jobs ----------------------------------------------------------------------------------

    def add_job(self, record: JobRecord) -> None:
        try:
            with self._writing() as conn:
                conn.execute(jobs.insert().values(**_job_values(record)))
        except sa.exc.IntegrityError as exc:
            raise Conflict(f"job {record.id} exists already") from exc

    def get_job(self, job_id: str) -> JobRecord | None:
        with self._reading() as conn:
            found = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        return _job(found) if found else None

    def list_jobs(self, query: JobQuery) -> tuple[list[JobRecord], int]:
        where = []
        if query.compendium_id is not None:
            where.append(jobs.c.compendium_id == query.compendium_id)
        if query.status is not None:
            where.append(jobs.c.status == query.status)
        if query.user is not None:
            where.append(jobs.c.user_name == query.user)
        source: sa.FromClause = jobs
        if query.viewer is not None:
            source = jobs.outerjoin(compendia, compendia.c.id == jobs.c.compendium_id)
            where.append(
                sa.or_(
                    jobs.c.user_name == query.viewer,
                    compendia.c.candidate == sa.false(),
                    compendia.c.user_name == query.viewer,
                )
            )
        start, limit = page(query.start, query.limit)
        with self._reading() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(source).where(*where)
            ).scalar_one()
            rows = conn.execute(
                sa.select(jobs)
                .select_from(source)
                .where(*where)
                .order_by(*_NEWEST_JOBS)
                .offset(start)
                .limit(limit)
            ).all()
        return [_job(row) for row in rows], total

    def claim_job(self, worker: str, now: float) -> JobRecord | None:
        # FOR UPDATE SKIP LOCKED: PostgreSQL workers pass over a job another one is taking;
        # SQLite renders no locking clause and is serialised by BEGIN IMMEDIATE instead.
        oldest = (
            sa.select(jobs.c.id)
            .where(jobs.c.status == JobStatus.QUEUED)
            .order_by(jobs.c.created, jobs.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        claim = (
            jobs.update()
            .where(jobs.c.id == oldest, jobs.c.status == JobStatus.QUEUED)
            .values(
                status=JobStatus.RUNNING,
                worker=worker,
                heartbeat=now,
                started=sa.func.coalesce(jobs.c.started, now),
                attempts=jobs.c.attempts + 1,
            )
            .returning(*jobs.c)
        )
        with self._writing() as conn:
            found = conn.execute(claim).first()
        return _job(found) if found else None

    def update_job(self, job_id: str, changes: JobChanges, *, worker: str | None = None) -> bool:
        values = job_values(changes)
        where = [jobs.c.id == job_id]
        if worker is not None:
            where += [jobs.c.worker == worker, jobs.c.status == JobStatus.RUNNING]
        with self._writing() as conn:
            applied = conn.execute(jobs.update().where(*where).values(**values)).rowcount
        return applied > 0

    def heartbeat(self, job_id: str, worker: str, now: float) -> JobRecord | None:
        beat = (
            jobs.update()
            .where(jobs.c.id == job_id, jobs.c.worker == worker, jobs.c.status == JobStatus.RUNNING)
            .values(heartbeat=now)
            .returning(*jobs.c)
        )
        with self._writing() as conn:
            found = conn.execute(beat).first()
        return _job(found) if found else None

    def request_cancel(self, job_id: str, now: float) -> JobRecord | None:
        cancel = jobs.update().where(jobs.c.id == job_id).returning(*jobs.c)
        with self._writing() as conn:
            found = conn.execute(
                cancel.where(jobs.c.status == JobStatus.QUEUED).values(
                    status=JobStatus.CANCELED,
                    finished=now,
                    cancel_requested=True,
                    reason=CANCELED_BEFORE_START,
                )
            ).first()
            if found is None:
                found = conn.execute(
                    cancel.where(jobs.c.status == JobStatus.RUNNING).values(cancel_requested=True)
                ).first()
            if found is None:
                found = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        return _job(found) if found else None

    def reap_lost_jobs(self, cutoff: float, now: float, max_attempts: int = 2) -> list[JobRecord]:
        lost = jobs.update().where(
            jobs.c.status == JobStatus.RUNNING,
            sa.or_(jobs.c.heartbeat.is_(None), jobs.c.heartbeat < cutoff),
        )
        with self._writing() as conn:
            requeued = conn.execute(
                lost.where(jobs.c.attempts < max_attempts)
                .values(status=JobStatus.QUEUED, worker=None, heartbeat=None)
                .returning(*jobs.c)
            ).all()
            failed = conn.execute(
                lost.where(jobs.c.attempts >= max_attempts)
                .values(status=JobStatus.FAILURE, reason=WORKER_LOST, finished=now)
                .returning(*jobs.c)
            ).all()
        return [_job(row) for row in [*requeued, *failed]]

    # -- what operators watch ------------------------------------------------------------------

    def count_jobs(self) -> dict[JobStatus, int]:
        with self._reading() as conn:
            rows = conn.execute(
                sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)
            ).all()
        return {JobStatus(status): count for status, count in rows}

    def worker_heartbeats(self) -> dict[str, float]:
        with self._reading() as conn:
            rows = conn.execute(
                sa.select(jobs.c.worker, sa.func.max(jobs.c.heartbeat))
                .where(jobs.c.status == JobStatus.RUNNING, jobs.c.heartbeat.is_not(None))
                .group_by(jobs.c.worker)
            ).all()
        return {worker: heartbeat for worker, heartbeat in rows}

    def step_timings(self, last_jobs: int) -> list[StepTiming]:
        # each step's STEP_TIMING_FIELDS out of the JSON in the database: the steps' text (a
        # build log) never leaves it
        fields = [
            (name, field, jobs.c.steps[(name.value, field)])
            for name in StepName
            for field in STEP_TIMING_FIELDS
        ]
        columns = [
            value.as_string() if field == "status" else value.as_float()
            for _name, field, value in fields
        ]
        with self._reading() as conn:
            rows = conn.execute(
                sa.select(*columns)
                .where(jobs.c.status.in_(FINAL_JOB_STATUSES))
                .order_by(*_NEWEST_JOBS)
                .limit(max(last_jobs, 0))
            ).all()
        timings = []
        for row in rows:
            steps: dict[str, dict[str, Any]] = {}
            for (name, field, _value), found in zip(fields, row, strict=True):
                steps.setdefault(name, {})[field] = found
            timings += timed_steps(steps)
        return timings

    # -- shipments -----------------------------------------------------------------------------

    def add_shipment(self, record: ShipmentRecord) -> None:
        values = dict(record.__dict__)
        values["user_name"] = values.pop("user")
        try:
            with self._writing() as conn:
                conn.execute(shipments.insert().values(**values))
        except sa.exc.IntegrityError as exc:
            raise Conflict(f"shipment {record.id} exists already") from exc

    def get_shipment(self, shipment_id: str) -> ShipmentRecord | None:
        with self._reading() as conn:
            found = conn.execute(sa.select(shipments).where(shipments.c.id == shipment_id)).first()
        return _shipment(found) if found else None

    def list_shipments(
        self,
        *,
        compendium_id: str | None = None,
        user: str | None = None,
        start: int = 0,
        limit: int = 100,
    ) -> tuple[list[ShipmentRecord], int]:
        where = []
        if compendium_id is not None:
            where.append(shipments.c.compendium_id == compendium_id)
        if user is not None:
            where.append(shipments.c.user_name == user)
        start, limit = page(start, limit)
        with self._reading() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(shipments).where(*where)
            ).scalar_one()
            rows = conn.execute(
                sa.select(shipments)
                .where(*where)
                .order_by(*_NEWEST_SHIPMENTS)
                .offset(start)
                .limit(limit)
            ).all()
        return [_shipment(row) for row in rows], total

    def update_shipment(self, shipment_id: str, changes: ShipmentChanges) -> ShipmentRecord | None:
        values = shipment_values(changes)
        update = (
            shipments.update()
            .where(shipments.c.id == shipment_id)
            .values(**values)
            .returning(*shipments.c)
        )
        with self._writing() as conn:
            found = conn.execute(update).first()
        return _shipment(found) if found else None

    # -- users' secrets ------------------------------------------------------------------------

    def set_user_secret(self, user: str, name: str, encrypted: str, now: float) -> None:
        dialect: Any = postgresql if self._postgres else sqlite
        upsert = (
            dialect.insert(user_secrets)
            .values(user_name=user, name=name, encrypted=encrypted, updated=now)
            .on_conflict_do_update(
                index_elements=["user_name", "name"], set_={"encrypted": encrypted, "updated": now}
            )
        )
        with self._writing() as conn:
            conn.execute(upsert)

    def get_user_secret(self, user: str, name: str) -> str | None:
        with self._reading() as conn:
            found = conn.execute(
                sa.select(user_secrets.c.encrypted).where(
                    user_secrets.c.user_name == user, user_secrets.c.name == name
                )
            ).scalar()
        return str(found) if found is not None else None

    def delete_user_secret(self, user: str, name: str) -> bool:
        with self._writing() as conn:
            deleted = conn.execute(
                user_secrets.delete().where(
                    user_secrets.c.user_name == user, user_secrets.c.name == name
                )
            ).rowcount
        return deleted > 0

    # -- review links --------------------------------------------------------------------------

    def add_link(self, record: LinkRecord) -> None:
        values = dict(record.__dict__)
        values["user_name"] = values.pop("user")
        try:
            with self._writing() as conn:
                conn.execute(review_links.insert().values(**values))
        except sa.exc.IntegrityError as exc:
            raise Conflict(f"link {record.id} exists already") from exc

    def get_link(self, link_id: str) -> LinkRecord | None:
        with self._reading() as conn:
            found = conn.execute(
                sa.select(review_links).where(review_links.c.id == link_id)
            ).first()
        return _link(found) if found else None

    def list_links(
        self, *, user: str | None = None, compendium_id: str | None = None
    ) -> list[LinkRecord]:
        where = []
        if user is not None:
            where.append(review_links.c.user_name == user)
        if compendium_id is not None:
            where.append(review_links.c.compendium_id == compendium_id)
        with self._reading() as conn:
            rows = conn.execute(
                sa.select(review_links)
                .where(*where)
                .order_by(review_links.c.created.desc(), review_links.c.id.desc())
            ).all()
        return [_link(row) for row in rows]

    def revoke_link(self, link_id: str, now: float) -> LinkRecord | None:
        with self._writing() as conn:
            conn.execute(
                review_links.update()
                .where(review_links.c.id == link_id, review_links.c.revoked.is_(None))
                .values(revoked=now)
            )
            found = conn.execute(
                sa.select(review_links).where(review_links.c.id == link_id)
            ).first()
        return _link(found) if found else None

    def set_link_mode(self, link_id: str, mode: LinkMode) -> LinkRecord | None:
        with self._writing() as conn:
            conn.execute(
                review_links.update().where(review_links.c.id == link_id).values(mode=str(mode))
            )
            found = conn.execute(
                sa.select(review_links).where(review_links.c.id == link_id)
            ).first()
        return _link(found) if found else None

    def count_link_use(self, link_id: str) -> None:
        with self._writing() as conn:
            conn.execute(
                review_links.update()
                .where(review_links.c.id == link_id)
                .values(uses=review_links.c.uses + 1)
            )


def _fts_text(fields: dict[str, list[str]]) -> dict[str, str]:
    return {name: " ".join(words) for name, words in fields.items()}


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The sqlite3 module's own transaction handling would BEGIN (deferred) on its own; the begin
    # hook below does it instead.
    dbapi_connection.isolation_level = None
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
    # NORMAL is durable in WAL mode except for the last transactions on power loss
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(_IMMEDIATE)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
