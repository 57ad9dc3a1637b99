"""The erc service's Prometheus metrics: the collector's pure part (a store snapshot to metric
families) without I/O, and ``GET /services/erc/metrics`` in process (the service's application
with a fake HubAuth and a real SQLite store, as tests/unit/test_api_rules.py runs it)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from tornado import web

from erchub.services.app import ERCService
from erchub.services.handlers import monitoring_handlers
from erchub.services.handlers.base import BaseHandler
from erchub.services.jobs.worker import worker_node
from erchub.services.metrics import (
    PULL_DURATION_BUCKETS,
    STEP_DURATION_BUCKETS,
    CompendiumState,
    StoreSnapshot,
    metric_families,
)
from erchub.services.openapi import build_document
from erchub.services.store import CompendiumRecord, JobRecord, StepTiming
from erchub.steps import JobStatus, StepName, StepStatus
from tests.unit.test_api_rules import ACCESS, USER_SCOPES, FakeHubAuth, model, serving
from tests.unit.test_openapi import METHODS, PREFIX, openapi_path
from tests.unit.test_security_rules import operations

SERVICE = "/services/erc"
NOW = 1_000_000.0


# -- the collector's pure part -----------------------------------------------------------------


def snapshot(**fields: Any) -> StoreSnapshot:
    values: dict[str, Any] = {
        "taken": NOW,
        "jobs": {},
        "compendia": {},
        "heartbeats": {},
        "step_timings": [],
        "step_window": 200,
    }
    return StoreSnapshot(**{**values, **fields})


class Families:
    """A list of metric families as prometheus_client's collectors hand them over."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def samples(families: list[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample: (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }


def test_every_metric_is_named_erchub_and_has_help() -> None:
    families = metric_families(snapshot())
    assert [family.name for family in families] == [
        "erchub_jobs",
        "erchub_job_queue_length",
        "erchub_job_step_duration_seconds",
        "erchub_registry_pull_duration_seconds",
        "erchub_worker_heartbeat_age_seconds",
        "erchub_compendia",
    ]
    for family in families:
        assert len(family.documentation) > 20, family.name
    # Prometheus's text format, as the handler sends it by default, parses back
    text = generate_latest(Families(families)).decode()
    parsed = {family.name for family in text_string_to_metric_families(text)}
    assert {"erchub_jobs", "erchub_job_queue_length", "erchub_compendia"} <= parsed


def test_jobs_by_status_and_the_queue() -> None:
    found = samples(metric_families(snapshot(jobs={JobStatus.QUEUED: 3, JobStatus.SUCCESS: 5})))
    # every status is there, 0 when no job has it, so that dashboards and alerts see it
    assert {labels[0][1]: value for (name, labels), value in found.items()
            if name == "erchub_jobs"} == {
        "queued": 3, "running": 0, "success": 5, "failure": 0, "canceled": 0
    }  # fmt: skip
    assert found[("erchub_job_queue_length", ())] == 3


def test_compendia_by_state() -> None:
    counts = {CompendiumState.PUBLISHED: 4, CompendiumState.CANDIDATE: 2}
    found = samples(metric_families(snapshot(compendia=counts)))
    assert found[("erchub_compendia", (("state", "published"),))] == 4
    assert found[("erchub_compendia", (("state", "candidate"),))] == 2


def timing(step: StepName, status: StepStatus, seconds: float) -> StepTiming:
    return StepTiming(step, status, start=NOW - 1000, end=NOW - 1000 + seconds)


def test_step_durations_are_a_gauge_histogram_of_the_window() -> None:
    timings = [
        timing(StepName.IMAGE_BUILD, StepStatus.SUCCESS, 45.0),
        timing(StepName.IMAGE_BUILD, StepStatus.SUCCESS, 400.0),
        timing(StepName.IMAGE_BUILD, StepStatus.SUCCESS, 5000.0),
        timing(StepName.IMAGE_BUILD, StepStatus.FAILURE, 2.0),
        # a clock set back while the step ran: no negative duration
        timing(StepName.VALIDATE_COMPENDIUM, StepStatus.SUCCESS, -3.0),
    ]
    families = metric_families(snapshot(step_timings=timings, step_window=50))
    (histogram,) = [f for f in families if f.name == "erchub_job_step_duration_seconds"]
    assert histogram.type == "gaugehistogram"
    assert "newest 50 jobs" in histogram.documentation
    found = samples([histogram])

    def bucket(step: str, status: str, bound: str) -> float:
        labels = (("le", bound), ("status", status), ("step", step))
        return found[("erchub_job_step_duration_seconds_bucket", labels)]

    build = [bucket("image_build", "success", str(b)) for b in STEP_DURATION_BUCKETS]
    assert build == [0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2]  # cumulative: <= 60 s, <= 600 s
    assert bucket("image_build", "success", "+Inf") == 3
    gsum = (
        "erchub_job_step_duration_seconds_gsum",
        (("status", "success"), ("step", "image_build")),
    )
    assert found[gsum] == 5445.0
    assert bucket("image_build", "failure", "2.5") == 1
    assert bucket("validate_compendium", "success", "0.5") == 1
    # every step and ending is listed, also without a job in the window
    assert bucket("image_save", "failure", "+Inf") == 0
    endings = {labels for (name, labels) in found if name.endswith("_gcount")}
    assert len(endings) == len(StepName) * 2


def test_registry_pulls_are_a_gauge_histogram_of_the_window() -> None:
    pulled = [
        StepTiming(StepName.IMAGE_EXECUTE, StepStatus.SUCCESS, NOW - 50, NOW - 30, pull=4.0),
        StepTiming(StepName.IMAGE_EXECUTE, StepStatus.FAILURE, NOW - 20, NOW - 10, pull=45.0),
        # the node had the image: no pull, counted for nothing
        StepTiming(StepName.IMAGE_EXECUTE, StepStatus.SUCCESS, NOW - 9, NOW - 5),
        timing(StepName.IMAGE_BUILD, StepStatus.SUCCESS, 45.0),
    ]
    families = metric_families(snapshot(step_timings=pulled, step_window=20))
    (histogram,) = [f for f in families if f.name == "erchub_registry_pull_duration_seconds"]
    assert histogram.type == "gaugehistogram"
    assert "newest 20 jobs" in histogram.documentation
    found = samples([histogram])
    name = "erchub_registry_pull_duration_seconds"
    buckets = [found[(f"{name}_bucket", (("le", str(b)),))] for b in PULL_DURATION_BUCKETS]
    assert buckets == [0, 0, 1, 1, 1, 2, 2, 2, 2]  # cumulative: <= 5 s, <= 60 s
    assert found[(f"{name}_gcount", ())] == 2 and found[(f"{name}_gsum", ())] == 49.0
    # no pull in the window: listed, 0
    empty = samples(metric_families(snapshot()))
    assert empty[(f"{name}_gcount", ())] == 0


def test_heartbeat_ages_by_worker_and_node() -> None:
    heartbeats = {"exec-2-4711": NOW - 3.5, "w": NOW - 40.0, "ahead-1": NOW + 2.0}
    found = samples(metric_families(snapshot(heartbeats=heartbeats)))
    ages = {
        dict(labels)["worker"]: (dict(labels)["node"], value)
        for (name, labels), value in found.items()
        if name == "erchub_worker_heartbeat_age_seconds"
    }
    # a worker's clock ahead of the service's: 0, never negative
    assert ages == {"exec-2-4711": ("exec-2", 3.5), "w": ("w", 40.0), "ahead-1": ("ahead", 0.0)}


def test_the_node_of_a_worker_is_its_id_without_the_pid() -> None:
    assert worker_node("node-a.example.org-123") == "node-a.example.org"
    assert worker_node("execution-1") == "execution"
    assert worker_node("my-worker") == "my-worker"
    assert worker_node("-12") == "-12"
    assert worker_node("host-") == "host-"


# -- the route, documented ------------------------------------------------------------------


def test_the_metrics_route_is_documented_beside_the_api() -> None:
    document = build_document(PREFIX)
    for pattern, handler in monitoring_handlers():
        item = document["paths"][openapi_path(pattern)]
        assert item["servers"] == [{"url": SERVICE}]
        methods = {
            name
            for name in METHODS
            if getattr(handler, name) is not getattr(web.RequestHandler, name)
        }
        assert methods == {m for m in item if m in METHODS}
    # the security walk reaches it at its own path, with the hub's scope
    (op,) = [op for op in operations(document) if op.operation_id == "getMetrics"]
    assert (op.method, op.path, op.scopes) == ("GET", f"{SERVICE}/metrics", ("read:metrics",))


# -- the route, in process --------------------------------------------------------------------


class MetricsHubAuth(FakeHubAuth):
    """The fake HubAuth with a Prometheus token: the hub's read:metrics and access to the
    service."""

    users = {
        **FakeHubAuth.users,
        "prometheus-token": model("prometheus", [ACCESS, "read:metrics"]),
        "lacking-token": model("carol", USER_SCOPES),
    }


class NoHubAuth(FakeHubAuth):
    """A hub that must not be asked: a public scrape names nobody."""

    def get_user(self, handler: Any, *, sync: bool = True) -> Any:
        raise AssertionError("the hub was asked who scrapes")


@dataclass
class Served:
    url: str
    service: ERCService

    async def get(self, token: str | None = None, **headers: str) -> httpx.Response:
        if token:
            headers["Authorization"] = f"token {token}"
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.get(self.url, headers=headers)


@pytest.fixture
async def metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    monkeypatch.setattr(BaseHandler, "hub_auth_class", MetricsHubAuth)
    async with serving(tmp_path) as (origin, service):
        yield Served(f"{origin}{SERVICE}/metrics", service)


def fill(service: ERCService) -> None:
    """Two compendia, a job of each status but running, a running job that heartbeats, and
    an ended job with timed steps."""
    store, now = service.store, time.time()
    store.add_compendium(CompendiumRecord(id="c1", user="alice", candidate=False, created=now))
    store.add_compendium(CompendiumRecord(id="c2", user="alice", created=now))
    for n, status in enumerate((JobStatus.QUEUED, JobStatus.QUEUED, JobStatus.CANCELED)):
        store.add_job(JobRecord(id=f"j{n}", compendium_id="c1", user="alice", status=status,
                                created=now + n))  # fmt: skip
    steps = {"image_build": {"status": "success", "start": now - 90, "end": now - 20, "text": []}}
    store.add_job(JobRecord(id="built", compendium_id="c1", user="alice",
                            status=JobStatus.SUCCESS, created=now, steps=steps))  # fmt: skip
    store.add_job(JobRecord(id="run", compendium_id="c1", user="alice", created=now - 100))
    assert store.claim_job("exec-1-42", now - 7) is not None


async def test_the_metrics_need_read_metrics(metrics: Served) -> None:
    fill(metrics.service)
    anonymous = await metrics.get(None, Accept="text/html", **{"Sec-Fetch-Mode": "navigate"})
    assert anonymous.status_code == 401, "a scraper's endpoint: never the hub's login"
    assert anonymous.json()["message"].startswith("authentication required")
    lacking = await metrics.get("lacking-token")
    assert lacking.status_code == 403 and "read:metrics" in lacking.json()["message"]
    outsider = await metrics.get("outsider-token")
    assert outsider.status_code == 403 and "may not use this service" in outsider.text
    for token in ("prometheus-token", "admin-token"):  # custom:erc:admin stands for it
        response = await metrics.get(token)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.text
    for line in (
        'erchub_jobs{status="queued"} 2.0',
        'erchub_jobs{status="running"} 1.0',
        "erchub_job_queue_length 2.0",
        'erchub_compendia{state="published"} 1.0',
        'erchub_compendia{state="candidate"} 1.0',
        'erchub_job_step_duration_seconds_bucket{le="120.0",status="success",step="image_build"}'
        " 1.0",
    ):
        assert line in text, line
    (age,) = [line for line in text.splitlines() if line.startswith("erchub_worker_heartbeat_")]
    assert age.startswith('erchub_worker_heartbeat_age_seconds{node="exec-1",worker="exec-1-42"}')
    assert float(age.split()[-1]) >= 7


async def test_openmetrics_when_the_scraper_asks(metrics: Served) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    response = await metrics.get("prometheus-token", Accept=accept)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert "# TYPE erchub_job_step_duration_seconds gaugehistogram" in response.text
    assert response.text.endswith("# EOF\n")


async def test_unknown_arguments_are_refused(metrics: Served) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(
            metrics.url, params={"colour": "blue"}, headers={"Authorization": "token admin-token"}
        )
    assert response.status_code == 400 and "colour" in response.json()["message"]


async def test_public_without_authenticate_prometheus(
    metrics: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics.service.authenticate_prometheus = False
    monkeypatch.setattr(BaseHandler, "hub_auth_class", NoHubAuth)
    response = await metrics.get()
    assert response.status_code == 200
    assert 'erchub_jobs{status="queued"} 0.0' in response.text


def test_metrics_settings_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERCHUB_DATA_DIR", str(tmp_path))
    service = ERCService()
    assert (service.authenticate_prometheus, service.metrics_step_window) == (True, 200)
    monkeypatch.setenv("ERCHUB_AUTHENTICATE_PROMETHEUS", "false")
    monkeypatch.setenv("ERCHUB_METRICS_STEP_WINDOW", "20")
    service = ERCService()
    assert (service.authenticate_prometheus, service.metrics_step_window) == (False, 20)
