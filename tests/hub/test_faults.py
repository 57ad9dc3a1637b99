"""The fault matrix, the cells of the erc service: each cell a fault in a real hub of its own
(its managed erc service killed with SIGKILL, which the hub restarts), ending with nothing lost
and nothing stuck: no compendium half-made, nothing left in uploads/ or shipments/, no job
`running` for ever, no shipment shown shipped whose deposition is half-made, no worker of the
killed service left behind, and the API answering again."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import heading, write_notebook, zenodo_environment
from tests.fakes.zenodo import FakeZenodo
from tests.hub.conftest import Hub, require_hub, start_hub, stop_hub, zip_directory
from tests.hub.test_shipments import publish_shipment, published, ship

pytestmark = [pytest.mark.hub, pytest.mark.docker]

#: seconds the hub may take to notice its service died and start it again (JupyterHub polls
#: a managed service's process every 30 s), and the service to answer then
BACK_WITHIN = 90
FINAL = {"success", "failure", "canceled"}
#: seconds the fake Zenodo holds its answer to a shipment's upload: the service is killed
#: meanwhile
SLOW_UPLOAD = 30


@pytest.fixture(scope="module")
def fault_hub(tmp_path_factory: pytest.TempPathFactory, fake_zenodo: FakeZenodo) -> Iterator[Hub]:
    """A hub of this module's own: its service is killed by the tests; it ships to the
    session's fake Zenodo, as the hub of the shipment tests does."""
    require_hub()
    hub, process = start_hub(
        tmp_path_factory.mktemp("faults"), environment=zenodo_environment(fake_zenodo)
    )
    try:
        yield hub
    finally:
        stop_hub(process)


def service_processes(hub: Hub) -> tuple[psutil.Process, list[psutil.Process]]:
    """The hub's erc service process (found by its data directory) and its workers."""
    found = []
    for process in psutil.process_iter(["cmdline", "environ"]):
        cmdline = process.info["cmdline"] or []
        environ = process.info["environ"] or {}
        if cmdline[-2:] == ["-m", "erchub.services"] and environ.get("ERCHUB_DATA_DIR") == str(
            hub.data_dir
        ):
            found.append(process)
    assert len(found) == 1, found
    service = found[0]
    return service, [child for child in service.children() if "worker" in child.cmdline()]


def kill_service(hub: Hub) -> list[psutil.Process]:
    """SIGKILL the erc service; its workers (which end with it)."""
    service, workers = service_processes(hub)
    service.send_signal(signal.SIGKILL)
    service.wait(30)
    return workers


def wait_until_answering(hub: Hub, token: str) -> float:
    """Seconds until the API answers again after the service was killed."""
    started = time.monotonic()
    deadline = started + BACK_WITHIN
    while True:
        try:
            if hub.request("GET", "/compendium", token, timeout=5).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"the API did not answer within {BACK_WITHIN} s"
        time.sleep(0.5)


def assert_workers_ended(workers: list[psutil.Process]) -> None:
    """The killed service's workers ended with it (they re-queue their jobs)."""
    _gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, f"workers of the killed service still run: {alive}"


def test_a_service_killed_during_an_upload_leaves_nothing(fault_hub: Hub, tmp_path: Path) -> None:
    token = fault_hub.token("faultuploader")
    sent = threading.Event()
    result: dict[str, Any] = {}

    def body() -> Iterator[bytes]:
        """A large multipart body, sent slowly enough to be cut (bounded: 64 MiB, 60 s)."""
        boundary = "faultboundary"
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="content_type"\r\n\r\n'
            f'workspace\r\n--{boundary}\r\nContent-Disposition: form-data; name="compendium";'
            ' filename="w.zip"\r\nContent-Type: application/zip\r\n\r\n'
        ).encode()
        deadline = time.monotonic() + 60
        for index in range(1024):
            if index == 16:
                sent.set()
            if time.monotonic() > deadline:
                return
            yield os.urandom(64 * 1024)
            time.sleep(0.02)
        yield f"\r\n--{boundary}--\r\n".encode()

    def upload() -> None:
        try:
            response = httpx.post(
                f"{fault_hub.api_url}/compendium",
                headers={
                    "Authorization": f"token {token}",
                    "Content-Type": "multipart/form-data; boundary=faultboundary",
                },
                content=body(),
                timeout=120,
            )
            result["status"] = response.status_code
        except httpx.HTTPError as error:
            result["error"] = repr(error)

    uploading = threading.Thread(target=upload)
    uploading.start()
    assert sent.wait(60), "the upload did not start"
    uploads = fault_hub.data_dir / "uploads"
    assert [entry.name for entry in uploads.iterdir() if entry.name.startswith("upload-")]
    workers = kill_service(fault_hub)
    uploading.join(120)
    assert result.get("status", 0) != 201, result
    assert_workers_ended(workers)
    wait_until_answering(fault_hub, token)
    mine = fault_hub.request("GET", "/compendium?candidate=true", token).json()
    assert mine["results"] == []
    assert list(uploads.iterdir()) == []  # the killed upload's part was swept at the start
    assert not list((fault_hub.data_dir / "compendia").iterdir())


def slow_job_zip(tmp_path: Path) -> bytes:
    """A workspace whose notebook prints a line every half second for ten seconds."""
    root = tmp_path / "slow"
    write_notebook(
        root / "main.ipynb",
        heading("# Slow counting\n\nCounts slowly."),
        "import time\nfor turn in range(20):\n    print('turn', turn, flush=True)\n"
        "    time.sleep(0.5)",
    )
    return zip_directory(root)


def read_events(
    hub: Hub, token: str, job_id: str, last: int, until: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """The job's SSE events after ``last``, until one is ``until``, or the stream ends or
    breaks (then as far as they came)."""
    events: list[dict[str, Any]] = []
    headers = {"Authorization": f"token {token}", "Last-Event-ID": str(last)}
    current: dict[str, Any] = {}
    try:
        with httpx.stream(
            "GET", f"{hub.api_url}/job/{job_id}/logs", headers=headers, timeout=120
        ) as response:
            if response.status_code != 200:
                return events
            for line in response.iter_lines():
                if line.startswith("id: "):
                    current["id"] = int(line[4:])
                elif line.startswith("data: "):
                    current["data"] = json.loads(line[6:])
                elif not line and current:
                    if "id" in current:  # the stream's own end has none
                        events.append(current)
                        if until(current):
                            return events
                    current = {}
    except httpx.HTTPError:
        pass
    return events


def executing(event: dict[str, Any]) -> bool:
    """The event that says the notebook runs."""
    data = event.get("data") or {}
    return (
        data.get("kind") == "step"
        and data.get("step") == "image_execute"
        and (data.get("status") == "running")
    )


def never(event: dict[str, Any]) -> bool:
    return False


def test_a_log_stream_resumes_across_a_killed_service_and_misses_nothing(
    fault_hub: Hub, tmp_path: Path
) -> None:
    token = fault_hub.token("faultstreamer")
    compendium_id = fault_hub.create(token, slow_job_zip(tmp_path))
    created = fault_hub.request("POST", "/job", token, json={"compendium_id": compendium_id})
    assert created.status_code == 201, created.text
    job_id = created.json()["job_id"]

    # follow the stream until the notebook runs, then kill the service under it
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 600
    while not any(executing(event) for event in seen):
        assert time.monotonic() < deadline, f"the notebook did not run: {seen[-3:]}"
        seen += read_events(fault_hub, token, job_id, seen[-1]["id"] if seen else 0, executing)
        status = fault_hub.request("GET", f"/job/{job_id}", token).json()["status"]
        assert status not in FINAL, f"job {job_id} ended before the service was killed: {seen}"
    workers = kill_service(fault_hub)
    assert_workers_ended(workers)
    wait_until_answering(fault_hub, token)

    # resume from the last event seen, until the job ends (its stream ends with it)
    while True:
        status = fault_hub.request("GET", f"/job/{job_id}", token).json()["status"]
        seen += read_events(fault_hub, token, job_id, seen[-1]["id"], never)
        if status in FINAL:
            break
        assert time.monotonic() < deadline, f"job {job_id} did not end: {status}"
    ids = [event["id"] for event in seen]
    assert ids == list(range(1, len(ids) + 1)), "events were missed or repeated"
    job = fault_hub.wait_for_job(token, job_id, seconds=120)
    assert job["status"] == "success", job


def depositions(zenodo: FakeZenodo) -> set[int]:
    """The ids of the fake Zenodo's depositions."""
    with zenodo.lock:
        return set(zenodo.depositions)


def bucket_uploads(zenodo: FakeZenodo) -> int:
    """How many bucket uploads (``PUT /api/files/...``) the fake Zenodo has received."""
    with zenodo.lock:
        return sum(
            1
            for method, _, path in zenodo.requests
            if (method, path[:11]) == ("PUT", "/api/files/")
        )


def test_a_service_killed_during_a_shipment_ships_nothing_half_made_and_ships_again(
    fault_hub: Hub, fake_zenodo: FakeZenodo
) -> None:
    token = fault_hub.token("faultshipper")
    compendium_id = published(fault_hub, token)
    before = depositions(fake_zenodo)
    uploads_before = bucket_uploads(fake_zenodo)
    result: dict[str, Any] = {}

    def shipping() -> None:
        try:
            response = ship(fault_hub, token, compendium_id, zenodo_token=fake_zenodo.token)
            result["status"] = response.status_code
        except httpx.HTTPError as error:
            result["error"] = repr(error)

    # Zenodo is slow to answer the bag's upload: the service is killed while it waits
    fake_zenodo.delay_next(SLOW_UPLOAD, path="/api/files/")
    try:
        shipper = threading.Thread(target=shipping)
        shipper.start()
        deadline = time.monotonic() + 120
        while bucket_uploads(fake_zenodo) == uploads_before:
            assert shipper.is_alive(), f"the shipment ended before its upload: {result}"
            assert time.monotonic() < deadline, "the shipment did not reach its upload"
            time.sleep(0.2)
        workers = kill_service(fault_hub)
        shipper.join(120)
        assert not shipper.is_alive(), "the shipment's request did not end with the service"
    finally:
        fake_zenodo.clear_hooks()
    assert result.get("status", 0) != 201, result
    interrupted = depositions(fake_zenodo) - before
    assert len(interrupted) == 1, interrupted
    assert_workers_ended(workers)
    wait_until_answering(fault_hub, token)

    # the interrupted shipment is shown nowhere as shipped nor as under way (if it is shown, it
    # ended in error), its deposition was never published, and its bag was swept at the start
    listed = fault_hub.request(
        "GET", "/shipment", token, params={"compendium_id": compendium_id, "details": "true"}
    ).json()["shipments"]
    assert all(shipment["status"] == "error" for shipment in listed), listed
    assert not any(fake_zenodo.deposition(number)["submitted"] for number in interrupted)
    assert list((fault_hub.data_dir / "shipments").iterdir()) == []

    # shipping again succeeds, and publishing it makes the one published deposition
    again = ship(fault_hub, token, compendium_id, zenodo_token=fake_zenodo.token)
    assert again.status_code == 201, again.text
    assert again.json()["status"] == "shipped"
    done = publish_shipment(fault_hub, token, again.json()["id"], zenodo_token=fake_zenodo.token)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "published" and done.json()["doi"]
    made = depositions(fake_zenodo) - before
    assert [n for n in made if fake_zenodo.deposition(n)["submitted"]] == [
        int(done.json()["deposition_id"])
    ]
