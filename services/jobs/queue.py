"""Queueing jobs: what the API does so that a worker claims one (blocking functions)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from erchub import parameters, workspace
from erchub.services.jobs.events import EventLog, events_path, status_event
from erchub.services.jobs.runner import new_job_id
from erchub.services.store import JobRecord, Store
from erchub.steps import JobOptions, plan_job


def check_parameters(compendium_dir: Path, raw: dict[str, Any]) -> None:
    """Raise InvalidParameter when ``raw`` names an unknown parameter or a wrong value."""
    prepared = workspace.prepare_compendium(compendium_dir, write=False)
    notebook = workspace.load_notebook(prepared.main_path)
    parameters.parse_values(parameters.read_parameters(notebook), raw)


def queue_job(
    store: Store,
    job_dir: Callable[[str], Path],
    compendium_id: str,
    user: str,
    values: dict[str, Any] | None = None,
    *,
    network_granted: bool = False,
) -> JobRecord:
    """Queue a job of ``user`` on a compendium (parameter ``values`` checked already): its
    directory with the first event, then its record, which a worker claims.
    ``network_granted``: whether ``user`` holds the grant of network
    (:func:`erchub.services.jobs.runner.network_grant`)."""
    now = time.time()
    job = JobRecord(
        id=new_job_id(),
        compendium_id=compendium_id,
        user=user,
        parameters=values or {},
        steps=plan_job(JobOptions()).to_json()["steps"],
        created=now,
        network_granted=network_granted,
    )
    directory = job_dir(job.id)
    directory.mkdir(parents=True)
    EventLog(events_path(directory)).append(status_event(job.status, now=now))
    store.add_job(job)
    return job
