"""The ``job`` resource: create, list, get (with steps), live logs (SSE), cancel, files.

A job is queued here and run by a worker process; this module never executes anything. Its
event log (``jobs/<id>/events.jsonl``, written by the worker) is what ``/logs`` streams.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Container
from typing import Any

from tornado import web
from tornado.iostream import StreamClosedError

from erchub.errors import ErchubError
from erchub.services.compendia import files as compendia
from erchub.services.handlers.base import (
    SCOPE_READ,
    SCOPE_RUN,
    BaseHandler,
    iso,
    needs_scope,
    schema_problems,
)
from erchub.services.jobs.events import EventLog, events_path, is_final, status_event
from erchub.services.jobs.queue import check_parameters, queue_job
from erchub.services.jobs.runner import network_grant
from erchub.services.store import JobQuery, JobRecord
from erchub.steps import FINAL_JOB_STATUSES, JobStatus, StepName

CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "compendium_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "parameters": {"type": "object"},
    },
    "required": ["compendium_id"],
    "additionalProperties": False,
}

#: o2r's media types of a new job's body, beside JSON
#: the fields o2r's ``GET /job?fields=`` may add to each result (which then is an object)
LIST_FIELDS = ("status", "user")

#: job files a client may fetch, relative to the job directory (others are internal)
#: what of a job directory its data route serves: files in these folders (each the root its
#: paths resolve in, so that nothing in output/ reaches job.json or the event log) ...
PUBLIC_JOB_FOLDERS = ("output", "check")
#: ... and these files
PUBLIC_JOB_FILES = ("Dockerfile", "build.log", "erc.yml", "input.ipynb")
#: how often the log stream looks for new events, and sends a comment to keep proxies open
POLL_SECONDS = 0.25
KEEPALIVE_SECONDS = 15.0
#: how often a quiet stream asks the store whether the job ended
STORE_CHECK_SECONDS = 1.0


def detailed_steps(steps: str | None) -> Container[str]:
    """o2r's ``steps`` argument: ``all``, or a comma-separated list of step names, are the
    steps shown with their text; any other value (or none) shows none so (o2r's default)."""
    if steps == "all":
        return frozenset(StepName)
    return frozenset(name.strip() for name in (steps or "").split(","))


def job_json(job: JobRecord, *, step_details: Container[str] = ()) -> dict[str, Any]:
    """A job as the API shows it (o2r fields, times in ISO 8601); the steps named in
    ``step_details`` with their text and reason."""
    steps = {}
    for name, step in job.steps.items():
        shown = {
            "status": step.get("status"),
            "start": iso(step.get("start")),
            "end": iso(step.get("end")),
        }
        if name in step_details:
            shown["text"] = step.get("text", [])
            shown["reason"] = step.get("reason", "")
        steps[name] = shown
    files = {
        key: job.result[key] for key in ("display", "executed", "report") if job.result.get(key)
    }
    return {
        "id": job.id,
        "compendium_id": job.compendium_id,
        "user": job.user,
        "status": job.status,
        "reason": job.reason,
        "parameters": job.parameters,
        "created": iso(job.created),
        "started": iso(job.started),
        "finished": iso(job.finished),
        "attempts": job.attempts,
        "cancel_requested": job.cancel_requested,
        "steps": steps,
        "files": files,
        "check": job.result.get("check"),
        "image": job.result.get("image"),
        "image_digest": job.result.get("image_digest"),
    }


class JobBaseHandler(BaseHandler):
    async def visible_job(self, job_id: str) -> JobRecord:
        """The job if the caller started it or may see its compendium, else 404."""
        job = await self.blocking(self.store.get_job, job_id)
        if job is not None and (self.is_admin or job.user == self.username):
            return job
        if job is not None:
            compendium = await self.blocking(self.store.get_compendium, job.compendium_id)
            if compendium is not None and self.can_see(compendium):
                return job
        raise web.HTTPError(404, f"job {job_id} not found")


class JobListHandler(JobBaseHandler):
    #: a review link lets its holder start a check job of its compendium
    link_methods = frozenset({"POST"})
    guest_methods = frozenset({"POST"})
    counts_link_use = True

    @needs_scope(SCOPE_READ)
    async def get(self) -> None:
        self.check_arguments(("compendium_id", "status", "user", "start", "limit", "fields"))
        start, limit = self.paging()
        fields = self.list_fields()
        raw_status = self.get_query_argument("status", None)
        try:
            status = JobStatus(raw_status) if raw_status is not None else None
        except ValueError:
            raise web.HTTPError(400, f"status must be one of {', '.join(JobStatus)}") from None
        query = JobQuery(
            viewer=self.viewer,
            compendium_id=self.text_argument("compendium_id"),
            status=status,
            user=self.text_argument("user"),
            start=start,
            limit=limit,
        )
        jobs, total = await self.blocking(self.store.list_jobs, query)
        results: list[Any] = [job.id for job in jobs]
        if fields:
            # o2r: with fields, each result is an object of the id and those fields
            results = [
                {"id": job.id, **{name: getattr(job, name) for name in fields}} for job in jobs
            ]
        self.write_json({"results": results, "total": total})

    def list_fields(self) -> list[str]:
        """o2r's ``fields``: a comma-separated list of :data:`LIST_FIELDS`."""
        raw = self.get_query_argument("fields", None)
        if raw is None:
            return []
        names = [name.strip() for name in raw.split(",") if name.strip()]
        unknown = [name for name in names if name not in LIST_FIELDS]
        if unknown or not names:
            raise web.HTTPError(
                400, f"fields is a comma-separated list of {', '.join(LIST_FIELDS)}"
            )
        return list(dict.fromkeys(names))

    @needs_scope(SCOPE_RUN)
    async def post(self) -> None:
        user = self.username
        self.check_arguments()
        body = self.create_body()
        compendium = await self.visible_compendium(body["compendium_id"])
        compendium_dir = compendia.compendium_path(self.service.data_dir, compendium.id)
        values = body.get("parameters") or {}
        try:
            await self.blocking(check_parameters, compendium_dir, values)
        except ErchubError as error:
            raise web.HTTPError(400, str(error)) from None
        # whether a compendium asking for network may have it: the starter's grant, recorded now
        granted = network_grant(
            self.scopes, everyone=self.service.network_for_everyone, admin=self.is_admin
        )
        job = await self.blocking(
            queue_job,
            self.store,
            self.job_dir,
            compendium.id,
            user,
            values,
            network_granted=granted,
        )
        self.log.info("job %s queued for compendium %s by %s", job.id, compendium.id, user)
        self.set_header("Location", f"{self.service.api_prefix}/job/{job.id}")
        self.write_json({"job_id": job.id}, status=201)

    def create_body(self) -> dict[str, Any]:
        """The body of a new job: JSON, or o2r's form (``multipart/form-data`` or urlencoded,
        as o2r's clients send it: ``compendium_id``, no parameters)."""
        form = self.form_body("job")
        if form is None:
            body: dict[str, Any] = self.json_body(CREATE_SCHEMA)
            return body
        if set(form) != {"compendium_id"}:
            raise web.HTTPError(400, "a form names exactly one field, compendium_id")
        problems = schema_problems(form, CREATE_SCHEMA)
        if problems:
            raise web.HTTPError(400, "; ".join(problems))
        return form


class CompendiumJobsHandler(JobBaseHandler):
    """``/compendium/{id}/jobs``: o2r's list of a compendium's jobs, ``{"results": [ids],
    "total"}`` newest first, paged (``start``, ``limit``); 404 for an invisible compendium."""

    link_methods = frozenset({"GET"})
    guest_methods = frozenset({"GET"})

    @needs_scope(SCOPE_READ)
    async def get(self, compendium_id: str) -> None:
        self.check_arguments(("start", "limit"))
        start, limit = self.paging()
        compendium = await self.visible_compendium(compendium_id)
        # through a review link: every job of its compendium, as its landing page lists them
        viewer = None if self.review_link is not None else self.viewer
        query = JobQuery(viewer=viewer, compendium_id=compendium.id, start=start, limit=limit)
        jobs, total = await self.blocking(self.store.list_jobs, query)
        self.write_json({"results": [job.id for job in jobs], "total": total})


class JobHandler(JobBaseHandler):
    guest_methods = frozenset({"GET"})

    @needs_scope(SCOPE_READ)
    async def get(self, job_id: str) -> None:
        self.check_arguments(("steps",))
        steps = detailed_steps(self.get_query_argument("steps", None))
        job = await self.visible_job(job_id)
        self.write_json(job_json(job, step_details=steps))


class JobCancelHandler(JobBaseHandler):
    guest_methods = frozenset({"POST"})

    @needs_scope(SCOPE_RUN)
    async def post(self, job_id: str) -> None:
        user = self.username
        self.check_arguments()
        job = await self.visible_job(job_id)
        if job.user != user and not self.is_admin:
            raise web.HTTPError(403, "only the user who started a job can cancel it")
        if job.status in FINAL_JOB_STATUSES:
            raise web.HTTPError(409, f"job {job_id} has ended already ({job.status})")
        now = time.time()
        changed = await self.blocking(self.store.request_cancel, job_id, now)
        if changed is None:
            raise web.HTTPError(404, f"job {job_id} not found")
        if changed.status == JobStatus.CANCELED:
            # Canceled while queued: no worker will write its end, so this does.
            EventLog(events_path(self.job_dir(job_id))).append(
                status_event(changed.status, changed.reason, now=now)
            )
        self.log.info("job %s: cancel requested by %s", job_id, user)
        self.write_json(job_json(changed), status=202)


class JobLogsHandler(JobBaseHandler):
    """Server-Sent Events: step changes, log lines and progress, ending with the final status.

    Each event's id is its line in the job's event log, so a client that reconnects with
    ``Last-Event-ID`` (or ``?last_event_id=``) continues after what it saw.
    """

    guest_methods = frozenset({"GET"})

    @needs_scope(SCOPE_READ)
    async def get(self, job_id: str) -> None:
        self.check_arguments(("last_event_id",))
        job = await self.visible_job(job_id)
        raw_last = self.request.headers.get("Last-Event-ID") or self.get_query_argument(
            "last_event_id", "0"
        )
        try:
            last_id = int(raw_last)
        except ValueError:
            raise web.HTTPError(
                400, f"Last-Event-ID must be an integer, got {raw_last!r}"
            ) from None
        self.set_header("Content-Type", "text/event-stream; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        log = EventLog(events_path(self.job_dir(job.id)))
        cursor = None
        quiet_since = store_checked = time.monotonic()
        ended: JobRecord | None = None
        try:
            while True:
                events, cursor = await self.blocking(log.read, last_id, cursor)
                for event_id, event in events:
                    self.write(f"id: {event_id}\nevent: {event['kind']}\n")
                    self.write(f"data: {json.dumps(event)}\n\n")
                    last_id = event_id
                    if is_final(event):
                        await self.flush()
                        return
                now = time.monotonic()
                if events:
                    await self.flush()
                    quiet_since = now
                    continue
                if now - store_checked > STORE_CHECK_SECONDS:
                    store_checked = now
                    if ended is not None:
                        # The store said the job ended and the log still has no final event
                        # (a worker lost with its files, say): end with the store's status.
                        self._write_final(ended)
                        await self.flush()
                        return
                    ended = await self.blocking(self.store.get_job, job.id)
                    if ended is not None and ended.status not in FINAL_JOB_STATUSES:
                        ended = None
                if now - quiet_since > KEEPALIVE_SECONDS:
                    self.write(": keep-alive\n\n")
                    await self.flush()
                    quiet_since = now
                await asyncio.sleep(POLL_SECONDS)
        except StreamClosedError:
            return

    def _write_final(self, job: JobRecord) -> None:
        data = status_event(job.status, job.reason, now=job.finished)
        self.write(f"event: status\ndata: {json.dumps(data)}\n\n")


class JobDataHandler(JobBaseHandler):
    guest_methods = frozenset({"GET"})

    @needs_scope(SCOPE_READ)
    async def get(self, job_id: str, path: str) -> None:
        self.check_arguments()
        job = await self.visible_job(job_id)
        folder, _, inside = path.partition("/")
        if folder in PUBLIC_JOB_FOLDERS and inside:
            await self.send_file(self.job_dir(job.id) / folder, inside, shown=path)
        elif path in PUBLIC_JOB_FILES:
            await self.send_file(self.job_dir(job.id), path)
        else:
            raise web.HTTPError(404, f"job {job_id} has no file {path}")


default_handlers = [
    (r"/compendium/(?P<compendium_id>[^/.]+)/jobs", CompendiumJobsHandler),
    (r"/job", JobListHandler),
    (r"/job/(?P<job_id>[^/]+)", JobHandler),
    (r"/job/(?P<job_id>[^/]+)/cancel", JobCancelHandler),
    (r"/job/(?P<job_id>[^/]+)/logs", JobLogsHandler),
    (r"/job/(?P<job_id>[^/]+)/data/(?P<path>.+)", JobDataHandler),
]
