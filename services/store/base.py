"""The store's one narrow interface: compendia, jobs, shipments and users' secrets, three
backends behind it.

Backends (chosen by ``db_url`` in :func:`erchub.services.store.open_store`): SQLite (the
embedded default), PostgreSQL (``postgresql+psycopg://``) and MongoDB (``mongodb://``).
Records are plain dataclasses; times are POSIX seconds (UTC) as floats. Every method is
blocking: the API process calls them in an executor, workers call them directly.

Visibility rules (the store applies them, so that paging and totals are right):

- a published compendium (``candidate`` false) is visible to everyone;
- a candidate is visible only to its author (``user``);
- a job is visible to whoever can see its compendium, and always to the user who created it;
- ``viewer=None`` in a query means an administrator: everything is visible;
- a shipment is visible to the user who made it (``user``) and to administrators;
- review links (:class:`LinkRecord`) are listed for their creator (or everyone's, for
  administrators); what a link grants is the service's rule, not the store's.

Users' secrets (a Zenodo token per recipient) arrive encrypted: the store keeps the ciphertext
and never sees a secret in clear.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, fields
from typing import Any

from erchub.steps import JobStatus, StepName, StepStatus, StrEnum

#: the reason recorded when a job's worker stopped heartbeating too often
WORKER_LOST = "worker lost"


class StoreError(Exception):
    """A store fault that is not the caller's: connection lost, schema too new, ..."""


class Conflict(StoreError):
    """A record with this id exists already (or, see :class:`JobRunning`, the change would
    conflict with the record's state)."""


class JobRunning(Conflict):
    """A compendium cannot be deleted: one of its jobs is running (its worker uses the files)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} of this compendium is running; cancel it first")
        self.job_id = job_id


@dataclass
class CompendiumRecord:
    id: str
    #: the author: the hub user who uploaded it
    user: str
    candidate: bool = True
    #: the o2r metadata (``.erc/metadata_o2r_1.json``): title, description, creators, ...
    metadata: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0

    @property
    def doi(self) -> str | None:
        """The DOI recorded in the metadata (``identifier.doi``), lower-cased, or None."""
        return doi_of(self.metadata)


@dataclass
class JobRecord:
    id: str
    compendium_id: str
    #: who started it
    user: str
    status: JobStatus = JobStatus.QUEUED
    #: raw parameter values as sent (validated against the notebook by the runner)
    parameters: dict[str, Any] = field(default_factory=dict)
    #: o2r steps: step name -> {"status", "start", "end", "text", "reason"} (runner's Job)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    #: the worker holding it while running, and its last sign of life
    worker: str | None = None
    heartbeat: float | None = None
    #: how often a worker claimed it (a lost worker's job is re-queued once)
    attempts: int = 0
    cancel_requested: bool = False
    #: why it failed or was canceled, in words a user understands
    reason: str = ""
    #: what the runner produced: display, executed, report, check summary, image, ...
    result: dict[str, Any] = field(default_factory=dict)
    #: whether its starter held the grant of network (the scope custom:erc:network, or the
    #: operator's grant to everyone) when it was created: a compendium that asks for network
    #: runs with it only then, and only where the workers allow networked executions
    network_granted: bool = False


class ShipmentStatus(StrEnum):
    """A shipment's status (o2r's shipper), as the store keeps it and the API shows it."""

    SHIPPED = "shipped"
    PUBLISHED = "published"
    ERROR = "error"


@dataclass
class ShipmentRecord:
    """A compendium sent to a recipient (o2r's field names)."""

    id: str
    compendium_id: str
    #: ``download``, ``zenodo`` or ``zenodo_sandbox``
    recipient: str
    #: who shipped it
    user: str
    status: ShipmentStatus = ShipmentStatus.SHIPPED
    #: the recipient's id of the deposition and its web page (none for downloads)
    deposition_id: str | None = None
    deposition_url: str | None = None
    #: the DOI once the deposition is published
    doi: str | None = None
    #: why it ended in ``error``, in words a user understands
    reason: str = ""
    created: float = 0.0
    last_modified: float = 0.0


class LinkMode(StrEnum):
    """What a review link shows of a compendium's authors."""

    OPEN = "open"
    #: no names, ORCID iDs, affiliations or uploading user (double-blind review)
    BLIND = "blind"


@dataclass
class LinkRecord:
    """A review link: whoever has its id may read a compendium (a candidate too) through it
    (o2r's public link)."""

    #: long and random (secrets.token_urlsafe): the link's only secret
    id: str
    compendium_id: str
    #: who created it (the author, or an erc admin)
    user: str
    mode: LinkMode = LinkMode.OPEN
    #: when it stops working (POSIX seconds), None: never
    expires: float | None = None
    created: float = 0.0
    #: when it was revoked, None while it is not
    revoked: float | None = None
    #: how often it was used (counts only, never who)
    uses: int = 0


@dataclass(frozen=True)
class CompendiumQuery:
    #: who asks (None: an administrator)
    viewer: str | None
    #: only compendia of this author
    user: str | None = None
    #: only compendia with this DOI (compared case-insensitively)
    doi: str | None = None
    #: False: published compendia only; True: candidates only, the viewer's own (all for admins)
    candidate: bool = False
    #: only compendia loaded from this git repository (the metadata's ``origin.git_url``)
    git_url: str | None = None
    #: only compendia of this commit (the metadata's ``origin.commit``)
    git_commit: str | None = None
    start: int = 0
    limit: int = 100


@dataclass(frozen=True)
class JobQuery:
    viewer: str | None
    compendium_id: str | None = None
    status: JobStatus | None = None
    #: only jobs started by this user
    user: str | None = None
    start: int = 0
    limit: int = 100


@dataclass(frozen=True)
class StepTiming:
    """When one step of an ended job ran (:meth:`Store.step_timings`): POSIX seconds."""

    step: StepName
    #: how it ended: success or failure
    status: StepStatus
    start: float
    end: float
    #: seconds of it spent pulling the runtime image from the registry (None: no pull)
    pull: float | None = None


@dataclass(frozen=True)
class SearchHit:
    compendium: CompendiumRecord
    #: backend-specific relevance, higher is better; only the order is meaningful
    score: float


@dataclass(frozen=True)
class JobChanges:
    """What :meth:`Store.update_job` sets; a field left None stays as it is.

    A job going back to ``queued`` is also let go of: no worker holds it, no heartbeat.
    """

    status: JobStatus | None = None
    #: the runner's steps: step name -> {"status", "start", "end", "text", "reason"}
    steps: dict[str, dict[str, Any]] | None = None
    result: dict[str, Any] | None = None
    reason: str | None = None
    finished: float | None = None
    attempts: int | None = None

    def __post_init__(self) -> None:
        if self.status is not None:
            # a plain string is checked (ValueError) and stored as the status it names
            object.__setattr__(self, "status", JobStatus(self.status))
        if not given(self):
            raise ValueError("JobChanges: nothing to change")


@dataclass(frozen=True)
class ShipmentChanges:
    """What :meth:`Store.update_shipment` sets; a field left None stays as it is."""

    status: ShipmentStatus | None = None
    #: the DOI once the deposition is published
    doi: str | None = None
    deposition_url: str | None = None
    reason: str | None = None
    last_modified: float | None = None

    def __post_init__(self) -> None:
        if self.status is not None:
            object.__setattr__(self, "status", ShipmentStatus(self.status))
        if not given(self):
            raise ValueError("ShipmentChanges: nothing to change")


def given(changes: JobChanges | ShipmentChanges) -> dict[str, Any]:
    """The fields of a change set that are set (not None), by name."""
    values = {f.name: getattr(changes, f.name) for f in fields(changes)}
    return {name: value for name, value in values.items() if value is not None}


def doi_of(metadata: dict[str, Any]) -> str | None:
    identifier = metadata.get("identifier")
    doi = identifier.get("doi") if isinstance(identifier, dict) else None
    return doi.strip().lower() if isinstance(doi, str) and doi.strip() else None


#: longest search text (characters) a caller may send
MAX_SEARCH_TEXT = 500


def search_fields(metadata: dict[str, Any]) -> dict[str, str]:
    """The text the search covers, by field: title, authors, keywords, description, files."""

    def text(value: Any) -> str:
        return value if isinstance(value, str) else ""

    creators = metadata.get("creators") or []
    keywords = metadata.get("keywords") or []
    files = metadata.get("files") or []
    return {
        "title": text(metadata.get("title")),
        "authors": " ".join(text(c.get("name")) for c in creators if isinstance(c, dict)),
        "keywords": " ".join(text(k) for k in keywords),
        "description": text(metadata.get("description")),
        # "data/temperature_2020.csv" -> "data temperature_2020.csv temperature 2020 csv"
        "files": " ".join(_file_words(text(f)) for f in files),
    }


def _file_words(path: str) -> str:
    words = [path]
    for separator in "/._-":
        path = path.replace(separator, " ")
    words.append(path)
    return " ".join(words)


class Store(abc.ABC):
    """What the service and the workers need from a database, and nothing more."""

    # -- lifecycle -----------------------------------------------------------------------------

    @abc.abstractmethod
    def close(self) -> None: ...

    # -- compendia -----------------------------------------------------------------------------

    @abc.abstractmethod
    def add_compendium(self, record: CompendiumRecord) -> None:
        """Insert; raises :class:`Conflict` when the id exists."""

    @abc.abstractmethod
    def get_compendium(self, compendium_id: str) -> CompendiumRecord | None: ...

    @abc.abstractmethod
    def update_compendium(
        self,
        compendium_id: str,
        *,
        metadata: dict[str, Any] | None = None,
        candidate: bool | None = None,
        now: float,
    ) -> CompendiumRecord | None:
        """Change the given fields (and ``updated``); None when the compendium is absent."""

    @abc.abstractmethod
    def delete_compendium(self, compendium_id: str) -> list[str] | None:
        """Delete the compendium and its jobs, atomically against :meth:`claim_job`.

        Returns the ids of the jobs deleted (the caller removes their folders), None when the
        compendium is absent. Raises :class:`JobRunning` and deletes nothing when one of its
        jobs is running. A concurrent claim never ends with a job running on a deleted
        compendium: either the delete wins (its jobs are gone, the claim does not get them) or
        the claim wins (the delete raises :class:`JobRunning`). A MongoDB store may also raise
        :class:`Conflict` while another delete of the same compendium is under way.

        A job added (:meth:`add_job`) while the delete runs is not covered: it may outlive the
        compendium.
        """

    @abc.abstractmethod
    def list_compendia(self, query: CompendiumQuery) -> tuple[list[CompendiumRecord], int]:
        """The visible compendia matching the query, newest first, paged; and their total."""

    @abc.abstractmethod
    def search_compendia(
        self, text: str, *, viewer: str | None, start: int = 0, limit: int = 20
    ) -> tuple[list[SearchHit], int]:
        """Full-text search over :func:`search_fields`, best first, paged; and the total.

        Every word of ``text`` must match (prefixes of words match too); title and authors
        weigh more than keywords, keywords more than description and file names. Candidates
        appear only for their author.
        """

    # -- jobs ----------------------------------------------------------------------------------

    @abc.abstractmethod
    def add_job(self, record: JobRecord) -> None:
        """Insert; raises :class:`Conflict` when the id exists."""

    @abc.abstractmethod
    def get_job(self, job_id: str) -> JobRecord | None: ...

    @abc.abstractmethod
    def list_jobs(self, query: JobQuery) -> tuple[list[JobRecord], int]:
        """The visible jobs matching the query, newest first, paged; and their total."""

    @abc.abstractmethod
    def claim_job(self, worker: str, now: float) -> JobRecord | None:
        """Atomically take the oldest queued job: running, this worker, heartbeat and started
        set (started only on the first attempt), attempts + 1. Two workers never get the
        same job. None when nothing is queued."""

    @abc.abstractmethod
    def update_job(self, job_id: str, changes: JobChanges, *, worker: str | None = None) -> bool:
        """Set the fields ``changes`` gives. With ``worker`` given the update applies only while
        that worker holds the job (running); returns whether it applied."""

    @abc.abstractmethod
    def heartbeat(self, job_id: str, worker: str, now: float) -> JobRecord | None:
        """Record that ``worker`` still runs the job; the job after the update (its
        ``cancel_requested`` tells the worker to stop), or None when the worker no longer
        holds it (re-queued or ended by :meth:`reap_lost_jobs`)."""

    @abc.abstractmethod
    def request_cancel(self, job_id: str, now: float) -> JobRecord | None:
        """A queued job ends ``canceled`` at once (finished = now); a running one gets
        ``cancel_requested``; a finished one is unchanged. The job after that, None if absent."""

    @abc.abstractmethod
    def reap_lost_jobs(self, cutoff: float, now: float, max_attempts: int = 2) -> list[JobRecord]:
        """Running jobs whose heartbeat is older than ``cutoff``: queued again (worker cleared)
        while ``attempts < max_attempts``, else ended ``failure`` with reason
        :data:`WORKER_LOST` (finished = now). Atomic per job; returns the jobs as changed."""

    # -- what operators watch (the service's metrics read these at every scrape: each is one
    # -- cheap query, never a whole job with its steps' text) ---------------------------------

    @abc.abstractmethod
    def count_jobs(self) -> dict[JobStatus, int]:
        """How many jobs there are of each status; a status no job has is left out."""

    @abc.abstractmethod
    def worker_heartbeats(self) -> dict[str, float]:
        """Every worker that holds a running job, and its newest heartbeat (POSIX seconds).
        A worker without a job writes nothing to the store, so it is not among them."""

    @abc.abstractmethod
    def step_timings(self, last_jobs: int) -> list[StepTiming]:
        """The steps that ran to an end (start and end recorded) in the ``last_jobs`` newest
        jobs (by creation) that have ended, newest job first, each job's steps in o2r's order.
        Only the steps' status, start and end are read, never their text (the build log)."""

    # -- shipments -----------------------------------------------------------------------------

    @abc.abstractmethod
    def add_shipment(self, record: ShipmentRecord) -> None:
        """Insert; raises :class:`Conflict` when the id exists."""

    @abc.abstractmethod
    def get_shipment(self, shipment_id: str) -> ShipmentRecord | None: ...

    @abc.abstractmethod
    def list_shipments(
        self,
        *,
        compendium_id: str | None = None,
        user: str | None = None,
        start: int = 0,
        limit: int = 100,
    ) -> tuple[list[ShipmentRecord], int]:
        """The shipments of ``compendium_id`` and of ``user`` (None: any), newest first, paged;
        and their total. Callers pass the viewer as ``user`` unless it is an administrator."""

    @abc.abstractmethod
    def update_shipment(self, shipment_id: str, changes: ShipmentChanges) -> ShipmentRecord | None:
        """Set the fields ``changes`` gives; the shipment after the update, None when it is
        absent."""

    # -- users' secrets ------------------------------------------------------------------------

    @abc.abstractmethod
    def set_user_secret(self, user: str, name: str, encrypted: str, now: float) -> None:
        """Keep ``user``'s secret ``name`` (already encrypted), replacing an earlier one."""

    @abc.abstractmethod
    def get_user_secret(self, user: str, name: str) -> str | None:
        """The encrypted secret, or None when ``user`` has none of that name."""

    @abc.abstractmethod
    def delete_user_secret(self, user: str, name: str) -> bool:
        """Forget the secret; False when there was none."""

    # -- review links --------------------------------------------------------------------------

    @abc.abstractmethod
    def add_link(self, record: LinkRecord) -> None:
        """Insert; raises :class:`Conflict` when the id exists."""

    @abc.abstractmethod
    def get_link(self, link_id: str) -> LinkRecord | None: ...

    @abc.abstractmethod
    def list_links(
        self, *, user: str | None = None, compendium_id: str | None = None
    ) -> list[LinkRecord]:
        """The links created by ``user`` for ``compendium_id`` (None: any), newest first."""

    @abc.abstractmethod
    def revoke_link(self, link_id: str, now: float) -> LinkRecord | None:
        """Revoke the link (``revoked`` = now; a revoked link keeps its first time); the link
        after that, None when it is absent."""

    @abc.abstractmethod
    def set_link_mode(self, link_id: str, mode: LinkMode) -> LinkRecord | None:
        """Change the link's mode (an author unblinding a review); the link after that, None
        when it is absent."""

    @abc.abstractmethod
    def count_link_use(self, link_id: str) -> None:
        """Add one to the link's ``uses``, atomically (concurrent uses all count)."""
