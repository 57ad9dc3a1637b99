"""An attacker's findings, one regression test each, through the hub's proxy (README "Security
and reliability").

Two ordinary users against the repository's hub: archives whose links turn after they were
checked, notebooks that plant links in their job's output, bodies and archives past every
bound, and the service's own user. The headers of pages, the proxy and the logs are in
test_security_web.py.
"""

from __future__ import annotations

import io
import json
import os
import pwd
import re
import signal
import stat
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from nbformat.v4 import new_code_cell

from erchub.hub.config import DEFAULT_SERVICE_USER
from erchub.services.handlers.base import API_POLICY, UNTRUSTED_CONTENT_POLICY
from tests.conftest import heading, write_notebook
from tests.hub.conftest import REPO, Hub

pytestmark = pytest.mark.hub

MIB = 1024**2
README = REPO / "README.md"
ERC_YML = b"spec_version: 1\nid: 4e5b5f38-0f5c-4a55-9d0a-2f1bb1f3a1e1\nmain: main.ipynb\n"
#: enough ``y/`` and ``..`` to climb from the compendium to the file system's root
CLIMB = "y/" * 19 + "../" * 20


def notebook_bytes(tmp_path: Path, *cells: Any) -> bytes:
    path = write_notebook(
        tmp_path / "nb" / f"{len(list(tmp_path.glob('nb/*')))}.ipynb",
        heading("# Probe\n\nAn attacker's notebook."),
        *cells,
        authors=[{"name": "Mallory"}],
    )
    return path.read_bytes()


def link_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def zip_of(*entries: tuple[str | zipfile.ZipInfo, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in entries:
            bundle.writestr(name, data)
    return buffer.getvalue()


def compendium_with(tmp_path: Path, *entries: tuple[str | zipfile.ZipInfo, bytes | str]) -> bytes:
    """A compendium (erc.yml, main.ipynb) in ``ws/`` with ``entries`` after its files."""
    return zip_of(
        ("ws/erc.yml", ERC_YML), ("ws/main.ipynb", notebook_bytes(tmp_path, "1 + 1")), *entries
    )


def simple_workspace(tmp_path: Path) -> bytes:
    return zip_of(("ws/main.ipynb", notebook_bytes(tmp_path, "1")))


def compendium_ids(hub: Hub) -> list[str]:
    return sorted(os.listdir(hub.data_dir / "compendia"))


def assert_refused(hub: Hub, response: httpx.Response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    for word in words:
        assert word in body["message"], body["message"]
    return str(body["message"])


def wait_until_empty(directory: Path, seconds: float = 10) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := os.listdir(directory)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def host_files(tmp_path: Path) -> dict[str, Path]:
    """Files of the host a compendium must never reach: a JSON file, a text file that stands
    for a secret, a folder with a link and an empty folder in it, a notebook."""
    victim = tmp_path / "victim"
    (victim / "folder" / "empty").mkdir(parents=True)
    (victim / "folder" / "link").symlink_to(victim / "secret.txt")
    (victim / "metadata.json").write_text(json.dumps({"host": "HOST-JSON-MARKER"}))
    (victim / "secret.txt").write_text("HOST-SECRET-MARKER: do not show\n")
    write_notebook(victim / "host.ipynb", heading("# HOST-NOTEBOOK-MARKER"))
    return {
        "json": victim / "metadata.json",
        "secret": victim / "secret.txt",
        "folder": victim / "folder",
        "notebook": victim / "host.ipynb",
        "new": victim / "created-by-the-service.txt",
    }


def host_state(files: dict[str, Path]) -> dict[str, Any]:
    folder = files["folder"]
    return {
        "json": files["json"].read_bytes(),
        "secret": files["secret"].read_bytes(),
        "notebook": files["notebook"].read_bytes(),
        "folder": sorted(os.listdir(folder)),
        "empty": (folder / "empty").is_dir(),
        "link": os.readlink(folder / "link"),
        "new": files["new"].exists(),
    }


# --- 1. links inside archives --------------------------------------------------------------


def test_a_link_turned_by_a_later_link_is_refused(
    erc_hub: Hub, tmp_path: Path, host_files: dict[str, Path]
) -> None:
    """The critical finding: ``.erc/metadata_o2r_1.json -> y/y/…/../…/<host JSON>`` first,
    ``.erc/y -> .`` after it: once ``y`` exists the first link leads to the host."""
    mallory = erc_hub.token("mallory")
    before, state = compendium_ids(erc_hub), host_state(host_files)
    archive = compendium_with(
        tmp_path,
        (link_info("ws/.erc/metadata_o2r_1.json"), CLIMB + str(host_files["json"]).lstrip("/")),
        (link_info("ws/.erc/y"), "."),
    )
    response = erc_hub.upload(mallory, archive, "compendium")
    message = assert_refused(erc_hub, response, 400, "metadata_o2r_1.json")
    assert "HOST-JSON-MARKER" not in message
    assert compendium_ids(erc_hub) == before
    assert wait_until_empty(erc_hub.data_dir / "uploads") == []
    assert host_state(host_files) == state


@pytest.mark.parametrize("content_type", ["compendium", "workspace"])
def test_an_erc_yml_linked_to_a_host_file_shows_nothing_of_it(
    erc_hub: Hub, tmp_path: Path, host_files: dict[str, Path], content_type: str
) -> None:
    mallory = erc_hub.token("mallory")
    before = compendium_ids(erc_hub)
    archive = zip_of(
        ("ws/main.ipynb", notebook_bytes(tmp_path, "1 + 1")),
        (link_info("ws/erc.yml"), "y/" + CLIMB + str(host_files["secret"]).lstrip("/")),
        (link_info("ws/y"), "."),
    )
    message = assert_refused(erc_hub, erc_hub.upload(mallory, archive, content_type), 400)
    assert "HOST-SECRET" not in message and "do not show" not in message
    assert compendium_ids(erc_hub) == before


def test_an_erc_folder_linked_to_a_host_folder_is_never_written(
    erc_hub: Hub, tmp_path: Path, host_files: dict[str, Path]
) -> None:
    mallory = erc_hub.token("mallory")
    state = host_state(host_files)
    target = str(host_files["folder"]).lstrip("/")
    for archive in (
        compendium_with(
            tmp_path, (link_info("ws/.erc"), "z/" + CLIMB + target), (link_info("ws/z"), ".")
        ),
        compendium_with(tmp_path, (link_info("ws/.erc"), str(host_files["folder"]))),
    ):
        assert_refused(erc_hub, erc_hub.upload(mallory, archive, "compendium"), 400)
    assert host_state(host_files) == state
    assert not (host_files["folder"] / "metadata_o2r_1.json").exists()


def test_a_dangling_link_creates_no_host_file(
    erc_hub: Hub, tmp_path: Path, host_files: dict[str, Path]
) -> None:
    mallory = erc_hub.token("mallory")
    for destination in (
        "y/" + CLIMB + str(host_files["new"]).lstrip("/"),
        "not-there/erc.yml",
    ):
        archive = zip_of(
            ("ws/main.ipynb", notebook_bytes(tmp_path, "1 + 1")),
            (link_info("ws/erc.yml"), destination),
            (link_info("ws/y"), "."),
        )
        assert_refused(erc_hub, erc_hub.upload(mallory, archive, "workspace"), 400)
    assert not host_files["new"].exists()


def test_links_that_stay_inside_are_kept_and_served(erc_hub: Hub, tmp_path: Path) -> None:
    """Refusing every link is not the rule: a link that really resolves inside is a file of
    the compendium, also when its folder arrives after it."""
    mallory = erc_hub.token("mallory")
    archive = zip_of(
        ("ws/main.ipynb", notebook_bytes(tmp_path, "1 + 1")),
        (link_info("ws/latest.csv"), "v2/data.csv"),
        ("ws/v2/data.csv", b"a,b\n1,2\n"),
    )
    compendium_id = erc_hub.create(mallory, archive)
    served = erc_hub.request("GET", f"/compendium/{compendium_id}/data/latest.csv", mallory)
    assert served.status_code == 200 and served.content == b"a,b\n1,2\n"


def test_served_files_are_sandboxed(erc_hub: Hub, tmp_path: Path) -> None:
    """The policy README promises for uploaded and produced files is the one they get."""
    promised = re.search(
        r"`Content-Security-Policy: (sandbox[^`]*)`: an author's", README.read_text()
    )
    assert promised is not None, "README's Security section names the policy"
    assert promised.group(1) == UNTRUSTED_CONTENT_POLICY
    mallory = erc_hub.token("mallory")
    archive = zip_of(
        ("ws/main.ipynb", notebook_bytes(tmp_path, "1")),
        ("ws/page.html", b"<script>fetch('/hub/api/user')</script>"),
    )
    compendium_id = erc_hub.create(mallory, archive)
    served = erc_hub.request("GET", f"/compendium/{compendium_id}/data/page.html", mallory)
    assert served.status_code == 200
    assert served.headers["content-security-policy"] == UNTRUSTED_CONTENT_POLICY
    assert "allow-same-origin" not in UNTRUSTED_CONTENT_POLICY
    assert served.headers["x-content-type-options"] == "nosniff"


# --- 2. what a job wrote is hostile --------------------------------------------------------


@pytest.mark.docker
def test_links_a_notebook_plants_in_its_output_are_never_followed(
    erc_hub: Hub, tmp_path: Path, host_files: dict[str, Path]
) -> None:
    """The notebook (in its container) makes its executed notebook a link to a host notebook,
    links to the job's record and event log, and swaps its working folder for a link to a
    host folder; the worker reads, serves and cleans none of it through those links."""
    mallory = erc_hub.token("mallory")
    state = host_state(host_files)
    host_notebook, host_folder = str(host_files["notebook"]), str(host_files["folder"])
    plant = new_code_cell(
        "import os\n"
        # the executor writes its notebook through the link: give it a place in the container
        f"os.makedirs(os.path.dirname({host_notebook!r}), exist_ok=True)\n"
        f"os.symlink({host_notebook!r}, '/erc/output/main.ipynb')\n"
        "os.symlink('../job.json', '/erc/output/jobjson')\n"
        "os.symlink('../events.jsonl', '/erc/output/events')\n"
        "os.mkfifo('/erc/output/fifo')\n"
        "os.rename('/erc/output/workdir', '/erc/output/moved')\n"
        f"os.symlink({host_folder!r}, '/erc/output/workdir')\n"
        "print('planted')"
    )
    archive = zip_of(("ws/main.ipynb", notebook_bytes(tmp_path, plant)))
    compendium_id = erc_hub.create(mallory, archive)
    started = erc_hub.request("POST", "/job", mallory, json={"compendium_id": compendium_id})
    assert started.status_code == 201, started.text
    job = erc_hub.wait_for_job(mallory, started.json()["job_id"])
    job_dir = erc_hub.data_dir / "jobs" / job["id"]
    # the notebook ran to its end: everything was planted
    execution = job["steps"]["image_execute"]
    assert execution["status"] == "success", json.dumps(job, indent=1)
    assert (job_dir / "output" / "moved").is_dir()
    # the executed notebook was a link: the check has nothing of the host to compare
    assert job["steps"]["check"]["status"] == "failure"

    # nothing below output/ is a link or a fifo any more, and the host is as it was
    for directory, subdirectories, names in os.walk(job_dir / "output"):
        for name in subdirectories + names:
            mode = os.lstat(os.path.join(directory, name)).st_mode
            assert stat.S_ISDIR(mode) or stat.S_ISREG(mode), os.path.join(directory, name)
    assert host_state(host_files) == state
    for path in ("output/jobjson", "output/events", "output/main.ipynb", "output/fifo"):
        response = erc_hub.request("GET", f"/job/{job['id']}/data/{path}", mallory)
        assert response.status_code == 404, (path, response.text)
    for path in ("check/report.html", "output/main.html"):
        response = erc_hub.request("GET", f"/job/{job['id']}/data/{path}", mallory)
        assert "HOST-NOTEBOOK-MARKER" not in response.text
    # the job's own record is not reachable through output/ at all
    response = erc_hub.request("GET", f"/job/{job['id']}/data/output/../job.json", mallory)
    assert response.status_code in (400, 404)


# --- 3. bounds -----------------------------------------------------------------------------


def test_a_deep_archive_is_refused_at_once_and_leaves_nothing(erc_hub: Hub, tmp_path: Path) -> None:
    """1,500 folders deep plus a large member of zeros: 400 naming the depth limit, no 500,
    nothing left in uploads/."""
    mallory = erc_hub.token("mallory")
    deep = "ws/" + "d/" * 1500
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("ws/main.ipynb", notebook_bytes(tmp_path, "1 + 1"))
        bundle.writestr(deep + "zeros.bin", b"\0" * (4 * MIB))
    before = compendium_ids(erc_hub)
    response = erc_hub.upload(mallory, buffer.getvalue(), "workspace")
    assert_refused(erc_hub, response, 400, "deep")
    assert compendium_ids(erc_hub) == before
    assert wait_until_empty(erc_hub.data_dir / "uploads") == []


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("levels", [100, 5_000, 100_000])
def test_deeply_nested_json_is_a_400(erc_hub: Hub, tmp_path: Path, levels: int) -> None:
    mallory = erc_hub.token("mallory")
    compendium_id = erc_hub.create(mallory, simple_workspace(tmp_path))
    headers = {"Content-Type": "application/json"}
    job = f'{{"compendium_id": "{compendium_id}", "parameters": {{"x": {nested(levels)}}}}}'
    metadata = f'{{"o2r": {{"title": "t", "keywords": {nested(levels)}}}}}'
    for method, path, body in (
        ("POST", "/job", job),
        ("PUT", f"/compendium/{compendium_id}/metadata", metadata),
        ("POST", "/substitution", nested(levels)),
    ):
        response = erc_hub.request(method, path, mallory, content=body, headers=headers)
        assert_refused(erc_hub, response, 400, "nested")


def test_a_body_past_the_limit_is_a_json_413_through_the_proxy(
    erc_hub: Hub, tmp_path: Path
) -> None:
    mallory = erc_hub.token("mallory")
    compendium_id = erc_hub.create(mallory, simple_workspace(tmp_path))
    body = b'{"padding": "' + b"x" * (20 * MIB) + b'"}'
    headers = {"Content-Type": "application/json"}
    for method, path in (
        ("POST", "/job"),
        ("PUT", f"/compendium/{compendium_id}/metadata"),
        ("POST", "/substitution"),
        ("POST", "/shipment"),
        ("PUT", "/recipient/zenodo/token"),
        ("PUT", "/shipment/nothing/publishment"),
        ("POST", "/compendium"),
    ):
        response = erc_hub.request(method, path, mallory, content=body, headers=headers)
        assert_refused(erc_hub, response, 413, "limit" if path != "/compendium" else "at most")
    # the connection pool and the service carry on
    assert erc_hub.request("GET", f"/compendium/{compendium_id}", mallory).status_code == 200


# --- 3 and 5. the service's own user, and what a restart sweeps ------------------------------


def service_processes(hub: Hub) -> list[int]:
    """Pids of the erc service and its workers (by their command lines)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        runs_service = b"erchub.services" in command or b"worker" in command
        if runs_service and f"ERCHUB_DATA_DIR={hub.data_dir}".encode() in environ:
            pids.append(int(entry))
    return pids


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def require_root_hub() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("the hub runs as root only when the tests do: run them as root")
    try:
        return pwd.getpwnam(DEFAULT_SERVICE_USER)
    except KeyError:
        if os.environ.get("CI"):
            pytest.fail(f"no user {DEFAULT_SERVICE_USER}: make provision makes it")
        pytest.skip(f"no user {DEFAULT_SERVICE_USER}: run config/provision/service-user.sh")


def test_the_service_and_its_workers_run_as_their_own_user(erc_hub: Hub) -> None:
    user = require_root_hub()
    pids = service_processes(erc_hub)
    assert len(pids) >= 2, "the service and at least one worker"
    assert {uid_of(pid) for pid in pids} == {user.pw_uid}
    data = erc_hub.data_dir.stat()
    assert (data.st_uid, data.st_gid, stat.S_IMODE(data.st_mode)) == (0, user.pw_gid, 0o1775)
    for secret in ("jupyterhub_cookie_secret", "jupyterhub_crypt_key"):
        info = (erc_hub.data_dir / secret).stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600), secret


def test_a_restarted_service_sweeps_what_uploads_left(erc_hub: Hub) -> None:
    """A staging folder 2,000 levels deep, left by a service killed mid-upload, goes when the
    service starts again (JupyterHub restarts a managed service that exits)."""
    user = require_root_hub()
    stale = erc_hub.data_dir / "uploads" / "staging-left-behind"
    fd = os.open(erc_hub.data_dir / "uploads", os.O_RDONLY)
    try:
        os.mkdir("staging-left-behind", dir_fd=fd)
        current = os.open("staging-left-behind", os.O_RDONLY, dir_fd=fd)
        for _ in range(2000):
            os.mkdir("d", dir_fd=current)
            os.chown("d", user.pw_uid, user.pw_gid, dir_fd=current)
            deeper = os.open("d", os.O_RDONLY, dir_fd=current)
            os.close(current)
            current = deeper
        os.close(current)
    finally:
        os.close(fd)
    os.chown(stale, user.pw_uid, user.pw_gid)
    old = time.time() - 2 * 86400
    os.utime(stale, (old, old))
    os.utime(stale / "d", (old, old))
    service = [
        pid
        for pid in service_processes(erc_hub)
        if b"erchub.services" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(service) == 1
    # SIGTERM: the service stops its workers and exits; the hub notices and starts it again
    os.kill(service[0], signal.SIGTERM)
    deadline = time.monotonic() + 180
    while os.path.lexists(stale):
        assert time.monotonic() < deadline, "the restarted service did not sweep uploads/"
        time.sleep(0.5)
    time.sleep(2)  # the sweep comes just before the service listens
    response = httpx.get(erc_hub.api_url + "/openapi.json", timeout=30)
    assert response.status_code == 200


def test_json_answers_and_unknown_pages_have_their_headers(erc_hub: Hub) -> None:
    mallory = erc_hub.token("mallory")
    answer = erc_hub.request("GET", "/compendium", mallory)
    assert answer.headers["content-security-policy"] == API_POLICY
    assert answer.headers["x-content-type-options"] == "nosniff"
    page = httpx.get(f"{erc_hub.url}/services/erc/no/such/page", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "SAMEORIGIN"
