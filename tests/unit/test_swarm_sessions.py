"""Sessions on the Swarm, without Docker: the session's service as the engine API gets it
(erchub.spawner.swarm.session_service) and the working copy's fetch in the session container
(erchub.spawner.working_copy), against a local HTTP server standing for the erc service."""

from __future__ import annotations

import http.server
import io
import json
import stat
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker.types import Mount

from erchub.spawner import working_copy
from erchub.spawner.swarm import fetch_program, session_service

IMAGE = "registry.example.org:5000/erchub/runtime@sha256:" + "a" * 64
TOKEN = "secret-token"


def service(**overrides: object) -> dict[str, object]:
    arguments: dict[str, object] = {
        "name": "jupyter-alice--erc-1",
        "image": IMAGE,
        "args": ["python3", "-c", "...", "{}", "jupyterhub-singleuser"],
        "env": {"JUPYTERHUB_API_TOKEN": TOKEN},
        "labels": {"org.erchub.user": "alice"},
        "network": "erchub_sessions",
        "mem_limit": 4 * 1024**3,
        "cpu_limit": 2.0,
        "pids_limit": 1024,
    }
    arguments.update(overrides)
    return session_service(**arguments)  # type: ignore[arg-type]


def test_the_service_runs_the_image_by_digest_once_with_limits_and_no_capability() -> None:
    spec = service()
    task = spec["task_template"]
    assert isinstance(task, dict)
    container = task["ContainerSpec"]
    assert container["Image"] == IMAGE
    assert container["Args"][-1] == "jupyterhub-singleuser"
    assert container["Env"] == [f"JUPYTERHUB_API_TOKEN={TOKEN}"]
    assert container["CapabilityDrop"] == ["ALL"]
    assert container["Labels"] == {"org.erchub.user": "alice"}
    assert task["Resources"]["Limits"] == {
        "NanoCPUs": 2_000_000_000,
        "MemoryBytes": 4 * 1024**3,
        "Pids": 1024,
    }
    # a session that ended stays ended: Swarm does not start it again
    assert task["RestartPolicy"]["Condition"] == "none"
    assert task["Networks"] == [{"Target": "erchub_sessions"}]
    assert spec["name"] == "jupyter-alice--erc-1"
    assert spec["labels"] == {"org.erchub.user": "alice"}
    # no published port: the proxy reaches the session by its name
    assert spec["endpoint_spec"] == {}


def test_no_pid_limit_and_no_network_leave_them_out() -> None:
    task = service(pids_limit=0, network="", mem_limit=None, cpu_limit=None)["task_template"]
    assert isinstance(task, dict)
    assert "Limits" not in task.get("Resources", {})
    assert task.get("Networks", []) == []


def test_the_operators_extra_settings_go_over_each_part_as_swarmspawner_applies_them() -> None:
    mount = Mount(target="/data", source="shared", type="volume", read_only=True)
    spec = service(
        mounts=[mount],
        extra_container_spec={"cap_drop": ["NET_RAW"], "user": "1000"},
        extra_placement_spec={"constraints": ["node.labels.erchub.role.app == true"]},
        extra_endpoint_spec={"mode": "dnsrr"},
        extra_resources_spec={"mem_reservation": 1024},
        extra_task_spec={"log_driver": None},
        extra_create_kwargs={"mode": {"Replicated": {"Replicas": 1}}},
    )
    task = spec["task_template"]
    assert isinstance(task, dict)
    assert task["ContainerSpec"]["CapabilityDrop"] == ["NET_RAW"]
    assert task["ContainerSpec"]["User"] == "1000"
    assert task["ContainerSpec"]["Mounts"] == [mount]
    assert task["Placement"] == {"Constraints": ["node.labels.erchub.role.app == true"]}
    assert task["Resources"]["Reservations"] == {"MemoryBytes": 1024}
    assert spec["endpoint_spec"] == {"Mode": "dnsrr"}
    assert spec["mode"] == {"Replicated": {"Replicas": 1}}


def test_the_fetch_program_is_the_working_copy_module() -> None:
    assert fetch_program() == Path(working_copy.__file__).read_text(encoding="utf-8")
    # standard library only: the runtime image need not hold erchub
    assert "erchub." not in "".join(
        line for line in fetch_program().splitlines() if line.startswith(("import", "from"))
    )


# -- the fetch in the session container -------------------------------------------------------


def compendium_archive(files: dict[str, bytes], top: str) -> bytes:
    """A zip as the erc service sends it: the files below the folder ``top``, and a link."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{top}/", b"")
        for name, content in files.items():
            archive.writestr(f"{top}/{name}", content)
        link = zipfile.ZipInfo(f"{top}/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "main.ipynb")
    return buffer.getvalue()


class ErcService(http.server.BaseHTTPRequestHandler):
    """GET of a path in ``routes`` with the token: its bytes; else 403."""

    routes: dict[str, bytes] = {}
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = self.routes.get(self.path)
        if self.headers.get("Authorization") != f"token {TOKEN}" or body is None:
            self.send_response(403)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def erc_service() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ErcService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


FILES = {"main.ipynb": b'{"cells": []}', "data/values.csv": b"x\n1\n"}


def the_hubs_digest(tmp_path: Path, extra: dict[str, bytes] | None = None) -> str:
    """The digest the hub computes of the files it fetched (a folder of them, and extras)."""
    root = tmp_path / "hub"
    for name, content in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    (root / "link").symlink_to("main.ipynb")
    files = working_copy.tree_files(root)
    for name, content in (extra or {}).items():
        (tmp_path / "extra").write_bytes(content)
        files[name] = tmp_path / "extra"
    return working_copy.files_digest(files)


def run_fetch(plan: str, *command: str) -> subprocess.CompletedProcess[str]:
    """The session container's first program, as its command line runs it."""
    return subprocess.run(
        [sys.executable, "-c", fetch_program(), plan, *command],
        env={"JUPYTERHUB_API_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_container_fetches_its_working_copy_checks_it_and_execs_the_server(
    erc_service: str, tmp_path: Path
) -> None:
    ErcService.routes = {
        "/api/v1/compendium/erc-1.zip": compendium_archive(FILES, "erc-1"),
        "/api/v1/job/j1/data/main.ipynb": b'{"executed": true}',
    }
    target = tmp_path / "home" / "work"
    plan = working_copy.fetch_plan(
        f"{erc_service}/api/v1/compendium/erc-1.zip",
        "erc-1",
        {"main-job-j1.ipynb": f"{erc_service}/api/v1/job/j1/data/main.ipynb"},
        str(target),
        the_hubs_digest(tmp_path, {"main-job-j1.ipynb": b'{"executed": true}'}),
    )
    done = run_fetch(plan, "ls", "-a", str(target))
    assert done.returncode == 0, done.stderr
    # the server's command ran once the working copy was there: links and the archive left out
    assert done.stdout.split() == [".", "..", "data", "main-job-j1.ipynb", "main.ipynb"]
    assert (target / "data" / "values.csv").read_bytes() == b"x\n1\n"
    assert not (target.parent / ".work.zip").exists()


def test_files_that_differ_from_the_hubs_are_refused(erc_service: str, tmp_path: Path) -> None:
    ErcService.routes = {"/c.zip": compendium_archive({**FILES, "main.ipynb": b"changed"}, "erc-1")}
    plan = working_copy.fetch_plan(
        f"{erc_service}/c.zip", "erc-1", {}, str(tmp_path / "work"), the_hubs_digest(tmp_path)
    )
    done = run_fetch(plan, "true")
    assert done.returncode == 1
    assert done.stderr.strip().startswith("erchub working copy: the working copy fetched here")
    assert "checksum mismatch" in done.stderr and "Traceback" not in done.stderr


def test_a_refused_token_ends_the_container_at_once_in_one_line(
    erc_service: str, tmp_path: Path
) -> None:
    ErcService.routes = {}
    ErcService.seen = []
    plan = working_copy.fetch_plan(
        f"{erc_service}/other.zip", "erc-2", {}, str(tmp_path / "work"), "sha256:0"
    )
    done = run_fetch(plan, "true")
    assert done.returncode == 1
    assert (
        done.stderr == "erchub working copy: the erc service refused the working copy (HTTP 403)\n"
    )
    # refused: no second try
    assert ErcService.seen == ["/other.zip"]


def test_paths_that_leave_the_working_copy_are_refused() -> None:
    assert working_copy.member_path("erc-1/a/b.txt", "erc-1") == working_copy.PurePosixPath(
        "a/b.txt"
    )
    assert working_copy.member_path("erc-1", "erc-1") is None
    for name in ("/etc/passwd", "erc-1/../../x"):
        with pytest.raises(working_copy.FetchError, match="unsafe path"):
            working_copy.member_path(name, "erc-1")


def test_the_plan_is_json_with_everything_the_container_needs() -> None:
    plan = json.loads(working_copy.fetch_plan("http://erc/a.zip", "a", {}, "/w", "sha256:1"))
    assert plan == {
        "archive": "http://erc/a.zip",
        "top": "a",
        "extra": {},
        "target": "/w",
        "digest": "sha256:1",
    }
