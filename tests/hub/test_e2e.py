"""End to end through a real hub: upload, publish, run, follow the log, fetch, search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from nbformat.v4 import new_code_cell, new_output

from tests.conftest import heading, parameters_cell, write_notebook
from tests.hub.conftest import Hub, zip_directory

pytestmark = [pytest.mark.hub, pytest.mark.docker]


def workspace_zip(tmp_path: Path, title: str) -> bytes:
    """A workspace whose notebook holds its published outputs (for the default parameters)."""
    root = tmp_path / "workspace"
    counting = new_code_cell(
        "for turn in range(turns):\n    print('turn', turn)",
        outputs=[new_output("stream", name="stdout", text="turn 0\nturn 1\nturn 2\n")],
    )
    write_notebook(
        root / "main.ipynb",
        heading(f"# {title}\n\nCounts the turns of a tiny carousel."),
        parameters_cell("turns = 3  # how many turns"),
        counting,
    )
    return zip_directory(root)


def follow(hub: Hub, token: str, job_id: str, last_event_id: int = 0) -> list[dict[str, Any]]:
    """Every event of the job's SSE stream until it ends, with their ids."""
    events: list[dict[str, Any]] = []
    headers = {"Authorization": f"token {token}", "Last-Event-ID": str(last_event_id)}
    url = f"{hub.api_url}/job/{job_id}/logs"
    with httpx.stream("GET", url, headers=headers, timeout=600) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        current: dict[str, Any] = {}
        for line in response.iter_lines():
            if line.startswith("id: "):
                current["id"] = int(line[4:])
            elif line.startswith("event: "):
                current["event"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif not line and current:
                events.append(current)
                current = {}
    return events


def test_upload_publish_run_search(erc_hub: Hub, docker_client: Any, tmp_path: Path) -> None:
    alice, bob = erc_hub.token("alice"), erc_hub.token("bob")
    compendium_id = erc_hub.create(alice, workspace_zip(tmp_path, "Carousel turns"))
    shown = erc_hub.request("GET", f"/compendium/{compendium_id}", alice).json()
    assert shown["candidate"] is True
    assert erc_hub.request("GET", f"/compendium/{compendium_id}", bob).status_code == 404

    metadata = erc_hub.request("GET", f"/compendium/{compendium_id}/metadata", alice).json()
    o2r = metadata["metadata"]["o2r"]
    o2r["keywords"] = ["carousel", "reproducibility"]
    o2r["creators"] = [{"name": "Alice Example", "orcid": "0000-0002-1825-0097"}]
    put = erc_hub.request("PUT", f"/compendium/{compendium_id}/metadata", alice, json={"o2r": o2r})
    assert put.status_code == 200, put.text
    assert erc_hub.request("GET", f"/compendium/{compendium_id}", bob).json()["candidate"] is False

    created = erc_hub.request("POST", "/job", alice, json={"compendium_id": compendium_id})
    assert created.status_code == 201, created.text
    job_id = created.json()["job_id"]
    events = follow(erc_hub, alice, job_id)
    final = events[-1]
    assert final["event"] == "status" and final["data"]["status"] == "success", json.dumps(
        events[-15:], indent=1
    )
    steps_seen = {(e["data"]["step"], e["data"]["status"]) for e in events if e["event"] == "step"}
    for step in ("validate_compendium", "image_build", "image_execute", "check", "cleanup"):
        assert (step, "success") in steps_seen
    assert any(e["event"] == "progress" for e in events)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    # Resuming after an event id replays only what came after it.
    resumed = follow(erc_hub, alice, job_id, last_event_id=ids[-3])
    assert [e["id"] for e in resumed] == ids[-2:]

    job = erc_hub.request("GET", f"/job/{job_id}?steps=all", alice).json()
    assert job["status"] == "success"
    assert job["steps"]["image_execute"]["text"]
    display = erc_hub.request("GET", f"/job/{job_id}/data/{job['files']['display']}", bob)
    assert display.status_code == 200
    assert display.headers["content-type"].startswith("text/html")
    assert "turn 1" in display.text
    report = erc_hub.request("GET", f"/job/{job_id}/data/{job['files']['report']}", alice)
    assert report.status_code == 200 and "<html" in report.text.lower()
    escape = erc_hub.request("GET", f"/job/{job_id}/data/output/%2e%2e/events.jsonl", alice)
    # (clients and the proxy normalise the dots; either way nothing outside is served)
    assert escape.status_code in (400, 404) and escape.json()["status"] == escape.status_code
    internal = erc_hub.request("GET", f"/job/{job_id}/data/events.jsonl", alice)
    assert internal.status_code == 404

    # Other values change the outputs: the job runs them, and the check names the difference.
    changed = erc_hub.request(
        "POST", "/job", bob, json={"compendium_id": compendium_id, "parameters": {"turns": 2}}
    ).json()["job_id"]
    events = follow(erc_hub, bob, changed)
    assert events[-1]["data"]["status"] == "failure"
    assert events[-1]["data"]["reason"].startswith("check:"), events[-1]
    changed_job = erc_hub.request("GET", f"/job/{changed}", bob).json()
    assert changed_job["parameters"] == {"turns": 2}
    assert changed_job["steps"]["image_execute"]["status"] == "success"
    assert not changed_job["check"]["passed"]

    found = erc_hub.request("GET", "/search", bob, params={"q": "carousel"}).json()
    assert compendium_id in [hit["id"] for hit in found["results"]]

    # Another user may see the published compendium but not delete it; the admin may.
    forbidden = erc_hub.request("DELETE", f"/compendium/{compendium_id}", bob)
    assert forbidden.status_code == 403 and forbidden.json()["status"] == 403
    assert erc_hub.request("POST", f"/job/{job_id}/cancel", bob).status_code in (403, 409)


def test_bad_job_requests(erc_hub: Hub, tmp_path: Path) -> None:
    alice, bob = erc_hub.token("alice"), erc_hub.token("bob")
    candidate = erc_hub.create(alice, workspace_zip(tmp_path, "Hidden draft"))
    cases: list[tuple[str, str, str | None, Any, int]] = [
        ("POST", "/job", alice, b"{not json", 400),
        ("POST", "/job", alice, {"compendium_id": candidate, "colour": "red"}, 400),
        ("POST", "/job", alice, {"compendium_id": 42}, 400),
        ("POST", "/job", alice, {"compendium_id": candidate, "parameters": {"nope": 1}}, 400),
        ("POST", "/job", alice, {"compendium_id": candidate, "parameters": {"turns": "x"}}, 400),
        ("POST", "/job", bob, {"compendium_id": candidate}, 404),
        ("POST", "/job", None, {"compendium_id": candidate}, 401),
        ("GET", "/job/nonexistent", alice, None, 404),
        ("GET", "/job?status=exploded", alice, None, 400),
        ("GET", "/job?limit=0", alice, None, 400),
        ("GET", "/job/nonexistent/logs", alice, None, 404),
        ("GET", "/search", alice, None, 400),
        ("GET", "/search?q=" + "x" * 600, alice, None, 400),
        ("GET", "/nothing/here", alice, None, 404),
        # found by the fuzz test: beyond 64 bits, or more problems than a message can hold
        ("GET", f"/compendium?start={10**30}", alice, None, 400),
        ("GET", f"/job?start={10**30}", alice, None, 400),
        ("GET", f"/search?q=x&start={10**30}", alice, None, 400),
        (
            "PUT",
            f"/compendium/{candidate}/metadata",
            alice,
            {"o2r": {"title": "t", "keywords": [0, [None], "x" * 5000, False] * 300}},
            400,
        ),
    ]
    for method, path, token, body, status in cases:
        kwargs: dict[str, Any] = {}
        if isinstance(body, bytes):
            kwargs = {"content": body, "headers": {"Content-Type": "application/json"}}
        elif body is not None:
            kwargs = {"json": body}
        response = erc_hub.request(method, path, token, **kwargs)
        assert response.status_code == status, (method, path, body, response.text)
        error = response.json()
        assert error["status"] == status and error["message"], error
        assert len(error["message"]) < 3000, "messages stay readable"
    # Another user's candidate is invisible to search as well.
    hits = erc_hub.request("GET", "/search", bob, params={"q": "hidden draft"}).json()
    assert candidate not in [hit["id"] for hit in hits["results"]]
    hits = erc_hub.request("GET", "/search", alice, params={"q": "hidden draft"}).json()
    assert candidate in [hit["id"] for hit in hits["results"]]


def test_cancel_queued_job(erc_hub: Hub, tmp_path: Path) -> None:
    """A job canceled before a worker takes it ends canceled, and its stream says so."""
    alice = erc_hub.token("alice")
    compendium_id = erc_hub.create(alice, workspace_zip(tmp_path, "Never run"))
    jobs = [
        erc_hub.request("POST", "/job", alice, json={"compendium_id": compendium_id}).json()[
            "job_id"
        ]
        for _ in range(3)
    ]
    last = jobs[-1]  # the single worker takes the oldest first: the last one is still queued
    response = erc_hub.request("POST", f"/job/{last}/cancel", alice)
    assert response.status_code == 202, response.text
    events = follow(erc_hub, alice, last)
    assert events[-1]["data"]["status"] == "canceled"
    again = erc_hub.request("POST", f"/job/{last}/cancel", alice)
    assert again.status_code == 409
    for job_id in jobs[:-1]:
        erc_hub.request("POST", f"/job/{job_id}/cancel", alice)


def test_a_browser_logs_in_through_the_hub_to_see_a_page(erc_hub: Hub, tmp_path: Path) -> None:
    """A page of the API opened without identity goes through the hub's login (OAuth) and
    comes back; a script without identity gets a 401 instead."""
    alice = erc_hub.token("alice")
    compendium_id = erc_hub.create(alice, workspace_zip(tmp_path, "Seen in a browser"))
    page = f"{erc_hub.api_url}/compendium/{compendium_id}/data/main.ipynb"
    assert httpx.get(page, headers={"Accept": "application/json"}).status_code == 401
    browser = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate"}
    with httpx.Client(headers=browser, follow_redirects=True, timeout=30) as client:
        login_page = client.get(page)
        assert login_page.url.path.endswith("/hub/login"), login_page.url
        xsrf = client.cookies.get("_xsrf", path="/hub/")
        done = client.post(
            str(login_page.url), data={"username": "alice", "password": "x", "_xsrf": xsrf}
        )
        assert done.status_code == 200, done.text[:300]
        assert str(done.url).split("?")[0] == page
        assert done.headers["content-security-policy"].startswith("sandbox")
        assert json.loads(done.text)["cells"]  # the notebook itself
