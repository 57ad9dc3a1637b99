"""What operators watch of the erc service: Prometheus metrics, read from the store when
Prometheus scrapes (``GET /services/erc/metrics``, beside the hub's own ``/hub/metrics``).

The store is the one truth of every replica of the service, so the metrics come from it at
scrape time (a custom collector), never from counters kept in a service process: whichever
replica Swarm's VIP hands the scrape to, the answer is the same. A scrape asks the store five
cheap questions: jobs by status, workers' heartbeats, the window's step timings (their status,
start, end and pull only) and two counts of compendia.

- ``erchub_jobs{status}``: jobs by status (every status, 0 when none has it);
- ``erchub_job_queue_length``: jobs waiting for a worker;
- ``erchub_job_step_duration_seconds{step,status}``: a gauge histogram of the durations of the
  steps (start to end, as the store keeps them) of the newest ``step_window`` jobs that ended,
  by step and how it ended. A window, not a running total: it may go down, so read it with
  ``histogram_quantile`` as it is, never with ``rate``;
- ``erchub_worker_heartbeat_age_seconds{worker,node}``: seconds since the newest heartbeat of
  each worker that runs a job, by its id and the node it runs on
  (:func:`~erchub.services.jobs.worker.worker_node`). An idle worker writes nothing to the
  store and is not listed; past ``Worker.lost_timeout`` its job is taken over;
- ``erchub_registry_pull_duration_seconds``: a gauge histogram of the registry pulls of the
  same window: the runtime images that a node's engine lacked and pulled from the registry for
  a job (its ``image_build`` step records the pull of an image another node's builder pushed,
  its ``image_execute`` step a pull by digest); its count is the number of pulls, jobs whose
  node had the image count for nothing;
- ``erchub_compendia{state}``: compendia, published and candidates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from erchub.services.jobs.worker import worker_node
from erchub.services.store import CompendiumQuery, StepTiming, Store
from erchub.steps import JobStatus, StepName, StepStatus, StrEnum

PREFIX = "erchub"
#: the upper bounds (seconds) of the step durations' buckets: from a validation (under a
#: second) to an image build (up to an hour); +Inf follows
STEP_DURATION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
#: the upper bounds (seconds) of the registry pulls' buckets: from a layer or two on the
#: cluster's network (a second) to a large runtime over a slow link (10 minutes); +Inf follows
PULL_DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
#: how a step that ran ends (a canceled step ends failure)
ENDED_STEP_STATUSES = (StepStatus.SUCCESS, StepStatus.FAILURE)


class CompendiumState(StrEnum):
    """Whether a compendium is published, as the metrics label it."""

    PUBLISHED = "published"
    #: uploaded or loaded, not published yet
    CANDIDATE = "candidate"


@dataclass(frozen=True)
class StoreSnapshot:
    """What the metrics are made of: the store's answers at one scrape."""

    #: when the answers were read (POSIX seconds)
    taken: float
    jobs: Mapping[JobStatus, int]
    compendia: Mapping[CompendiumState, int]
    #: worker id -> its newest heartbeat (POSIX seconds, by the worker's clock)
    heartbeats: Mapping[str, float]
    #: the steps of the newest ``step_window`` ended jobs that ran to an end
    step_timings: Sequence[StepTiming]
    step_window: int


def read_snapshot(
    store: Store, *, step_window: int, clock: Callable[[], float] = time.time
) -> StoreSnapshot:
    """The store's answers for one scrape (blocking: run it off the event loop)."""
    _, published = store.list_compendia(CompendiumQuery(viewer=None, limit=0))
    _, candidates = store.list_compendia(CompendiumQuery(viewer=None, candidate=True, limit=0))
    jobs = store.count_jobs()
    step_timings = store.step_timings(step_window)
    heartbeats = store.worker_heartbeats()
    return StoreSnapshot(
        # after the heartbeats were read, so that none is newer than the snapshot
        taken=clock(),
        jobs=jobs,
        compendia={CompendiumState.PUBLISHED: published, CompendiumState.CANDIDATE: candidates},
        heartbeats=heartbeats,
        step_timings=step_timings,
        step_window=step_window,
    )


def metric_families(snapshot: StoreSnapshot) -> list[Metric]:
    """The metrics of a snapshot, each with its help text (no I/O)."""
    jobs = GaugeMetricFamily(f"{PREFIX}_jobs", "Jobs in the store, by status.", labels=["status"])
    for status in JobStatus:
        jobs.add_metric([status.value], snapshot.jobs.get(status, 0))
    queue = GaugeMetricFamily(
        f"{PREFIX}_job_queue_length",
        "Jobs waiting for a worker (status queued).",
        value=snapshot.jobs.get(JobStatus.QUEUED, 0),
    )
    compendia = GaugeMetricFamily(
        f"{PREFIX}_compendia",
        "Compendia in the store: published, and candidates (not published yet).",
        labels=["state"],
    )
    for state in CompendiumState:
        compendia.add_metric([state.value], snapshot.compendia.get(state, 0))
    return [
        jobs,
        queue,
        step_durations(snapshot),
        registry_pulls(snapshot),
        heartbeat_ages(snapshot),
        compendia,
    ]


def step_durations(snapshot: StoreSnapshot) -> GaugeHistogramMetricFamily:
    """The gauge histogram of the snapshot's step durations, every step and ending listed."""
    family = GaugeHistogramMetricFamily(
        f"{PREFIX}_job_step_duration_seconds",
        f"Durations of the steps of the newest {snapshot.step_window} jobs that ended, by step "
        "and how it ended: a window that moves with every job, not a running total.",
        labels=["step", "status"],
    )
    durations: dict[tuple[StepName, StepStatus], list[float]] = {
        (step, status): [] for step in StepName for status in ENDED_STEP_STATUSES
    }
    for timing in snapshot.step_timings:
        # never below 0: the worker's clock may have been set back while the step ran
        duration = max(timing.end - timing.start, 0.0)
        durations.setdefault((timing.step, timing.status), []).append(duration)
    for (step, status), seconds in durations.items():
        buckets = gauge_histogram(STEP_DURATION_BUCKETS, seconds)
        family.add_metric([step.value, status.value], buckets, sum(seconds))
    return family


def gauge_histogram(bounds: Sequence[float], seconds: Sequence[float]) -> list[tuple[str, float]]:
    """The cumulative buckets of ``seconds`` at ``bounds``, +Inf last."""
    buckets = [
        (floatToGoString(bound), float(sum(1 for s in seconds if s <= bound))) for bound in bounds
    ]
    buckets.append(("+Inf", float(len(seconds))))
    return buckets


def registry_pulls(snapshot: StoreSnapshot) -> GaugeHistogramMetricFamily:
    """The gauge histogram of the registry pulls of the snapshot's jobs."""
    family = GaugeHistogramMetricFamily(
        f"{PREFIX}_registry_pull_duration_seconds",
        f"Durations of the registry pulls of runtime images for the newest "
        f"{snapshot.step_window} jobs that ended (a node's engine lacked the image): its "
        "count is the number of pulls; a window, not a running total.",
    )
    pulls = [max(t.pull, 0.0) for t in snapshot.step_timings if t.pull is not None]
    family.add_metric([], gauge_histogram(PULL_DURATION_BUCKETS, pulls), sum(pulls))
    return family


def heartbeat_ages(snapshot: StoreSnapshot) -> GaugeMetricFamily:
    """Seconds since each working worker's newest heartbeat."""
    family = GaugeMetricFamily(
        f"{PREFIX}_worker_heartbeat_age_seconds",
        "Seconds since the newest heartbeat of each worker that runs a job, by worker id and "
        "node (idle workers are not listed); past the workers' lost_timeout its job is taken "
        "over.",
        labels=["worker", "node"],
    )
    for worker, heartbeat in sorted(snapshot.heartbeats.items()):
        # never below 0: a worker's clock may be ahead of this machine's
        age = max(snapshot.taken - heartbeat, 0.0)
        family.add_metric([worker, worker_node(worker)], age)
    return family


class StoreCollector:
    """prometheus_client's collector of the store's metrics: the store is read at every
    collection (every scrape)."""

    def __init__(self, store: Store, step_window: int) -> None:
        self.store = store
        self.step_window = step_window

    def collect(self) -> list[Metric]:
        return metric_families(read_snapshot(self.store, step_window=self.step_window))


def exposition(store: Store, *, step_window: int, accept: str) -> tuple[bytes, str]:
    """The store's metrics in the format a scraper asks for with its Accept header
    (OpenMetrics, else Prometheus's text format), and its content type. Blocking."""
    encode, content_type = choose_encoder(accept)
    return encode(StoreCollector(store, step_window)), content_type
