"""The hub tier: a real JupyterHub with configurable-http-proxy and the managed `erc` service.

One hub per test session runs the repository's own jupyterhub_config.py, with ports, the data
directory and a small upload limit overridden. A `test-manager` service token creates users
and their API tokens, and sees and starts their servers, through the hub's REST API.
"""

from __future__ import annotations

import atexit
import io
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port, require_tier

REPO = Path(__file__).resolve().parents[2]
PROXY = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
API_PREFIX = "/services/erc/api/v1"
#: the test hub's upload limit (bytes), small so that 413 is cheap to provoke
UPLOAD_LIMIT = 5 * 1024**2
ADMIN = "hubadmin"
FINAL_JOB_STATUSES = ("success", "failure", "canceled")


@dataclass
class Hub:
    url: str
    data_dir: Path
    log_path: Path
    manager_token: str
    tokens: dict[str, str] = field(default_factory=dict)
    #: where the hub runs and the environment it runs with: what a restart needs
    workdir: Path = Path()
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return self.url + API_PREFIX

    def hub_api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"token {self.manager_token}"}
        return httpx.request(method, f"{self.url}/hub/api{path}", headers=headers, **kwargs)

    def token(self, username: str) -> str:
        """An API token of ``username`` (created with the user) holding the user's scopes."""
        if username not in self.tokens:
            created = self.hub_api("POST", f"/users/{username}")
            assert created.status_code in (201, 409), created.text
            response = self.hub_api("POST", f"/users/{username}/tokens", json={"note": "tests"})
            assert response.status_code == 201, response.text
            self.tokens[username] = response.json()["token"]
        return self.tokens[username]

    @property
    def admin_token(self) -> str:
        return self.token(ADMIN)

    def request(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """A request to the erc API (``path`` relative to its prefix) with ``token``."""
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"token {token}"
        kwargs.setdefault("timeout", 60)
        return httpx.request(method, self.api_url + path, headers=headers, **kwargs)

    def upload(
        self,
        token: str | None,
        archive: Any,
        content_type: str = "workspace",
        filename: str = "workspace.zip",
        **kwargs: Any,
    ) -> httpx.Response:
        """``POST /compendium`` of ``archive`` (bytes or a binary file, streamed)."""
        return self.request(
            "POST",
            "/compendium",
            token,
            files={"compendium": (filename, archive, "application/zip")},
            data={"content_type": content_type},
            **kwargs,
        )

    def create(self, token: str | None, archive: Any, content_type: str = "workspace") -> str:
        """``POST /compendium`` that must succeed: the new candidate's id."""
        response = self.upload(token, archive, content_type)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def wait_for_job(self, token: str, job_id: str, seconds: float = 1200) -> dict[str, Any]:
        """The job with its steps once it has ended."""
        deadline = time.monotonic() + seconds
        while True:
            job: dict[str, Any] = self.request("GET", f"/job/{job_id}?steps=all", token).json()
            if job["status"] in FINAL_JOB_STATUSES:
                return job
            assert time.monotonic() < deadline, f"job {job_id} did not end: {job}"
            time.sleep(1)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def zip_directory(root: Path) -> bytes:
    """The files below ``root`` as a zip (names relative to it, sorted)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()


def example_zip() -> bytes:
    """The bundled example workspace, examples/sine-wave, as a zip."""
    return zip_directory(REPO / "examples" / "sine-wave")


def hub_problem() -> str | None:
    if not PROXY.exists():
        return f"configurable-http-proxy missing ({PROXY}); run `make install`"
    return None


def require_hub() -> None:
    """Skip (fail in CI) when the hub tier cannot run here."""
    require_tier("hub", hub_problem())


def server_errors(log: str) -> list[str]:
    """5xx answers of the hub's pages and API and of the erc service, from a hub log."""
    return re.findall(r"\b5\d\d (?:GET|POST|PUT|PATCH|DELETE) /(?:hub|services/erc)/\S*", log)


OVERRIDES = """
c = get_config()  # noqa: F821
load_subconfig({config!r})  # noqa: F821
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.JupyterHub.services.append({{"name": "test-manager", "api_token": {manager_token!r}}})
c.JupyterHub.load_roles.append(
    {{"name": "test-manager", "scopes": ["admin:users", "admin:servers", "tokens"],
     "services": ["test-manager"]}}
)
"""

#: a test hub that is not restarted stops its servers when it ends, so that no session
#: outlives the test that started it (the shipped configuration leaves them running)
STOP_SERVERS_AT_EXIT = "c.JupyterHub.cleanup_servers = True\n"


def start_hub(
    workdir: Path,
    worker_count: int = 1,
    environment: dict[str, str] | None = None,
    extra_config: str = "",
    restartable: bool = False,
) -> tuple[Hub, subprocess.Popen[bytes]]:
    """Start a hub in ``workdir`` (``environment`` overrides ERCHUB_* settings; ``extra_config``
    is appended to the test's jupyterhub config file). A ``restartable`` hub keeps the shipped
    configuration's servers across a restart (`restart_hub`); any other stops them at its
    end."""
    workdir = reachable_by_the_service(workdir)
    data_dir = workdir / "data"
    port, hub_port = free_port(), free_port()
    manager_token = secrets.token_hex(16)
    (workdir / "test_config.py").write_text(
        OVERRIDES.format(
            config=str(REPO / "jupyterhub_config.py"),
            port=port,
            proxy_api_port=free_port(),
            manager_token=manager_token,
        )
        + ("" if restartable else STOP_SERVERS_AT_EXIT)
        + extra_config
    )
    env = {
        "ERCHUB_DATA_DIR": str(data_dir),
        "ERCHUB_WORKER_COUNT": str(worker_count),
        "ERCHUB_UPLOAD_LIMIT": str(UPLOAD_LIMIT),
        "ERCHUB_ADMIN_USERS": ADMIN,
        "ERCHUB_HUB_API_PORT": str(hub_port),
        "ERCHUB_SERVICE_PORT": str(free_port()),
        **(environment or {}),
    }
    hub = Hub(
        f"http://127.0.0.1:{port}",
        data_dir,
        workdir / "hub.log",
        manager_token,
        workdir=workdir,
        environment=env,
    )
    return hub, run_hub(hub)


def run_hub(hub: Hub) -> subprocess.Popen[bytes]:
    """Run ``hub``'s process (its log appended to), once it and its erc service answer."""
    with open(hub.log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", "test_config.py", "--debug"],
            cwd=hub.workdir,
            env={**os.environ, **hub.environment},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stop_proxy(hub.data_dir)
            raise RuntimeError(f"the hub exited with {process.returncode}:\n{hub.log_tail()}")
        try:
            # the hub's own API first: a hub that crashed may have left its proxy (and with it
            # the old service's routes) answering until the new hub replaces it
            if (
                httpx.get(hub.url + "/hub/api/", timeout=2).status_code == 200
                and httpx.get(hub.api_url + "/openapi.json", timeout=2).status_code == 200
            ):
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_hub(process)
    stop_proxy(hub.data_dir)
    raise RuntimeError(f"the hub and its erc service did not answer in 90 s:\n{hub.log_tail()}")


def stop_proxy(data_dir: Path) -> None:
    """A hub that died at its start leaves its proxy running (JupyterHub starts it in a
    session of its own): stop it by the pid file jupyterhub_config.py gives it."""
    try:
        pid = int((data_dir / "jupyterhub-proxy.pid").read_text())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass


def reachable_by_the_service(workdir: Path) -> Path:
    """The hub's working directory: ``workdir``, or, when the tests run as root, a folder of
    /tmp that the erc service's own user may enter (a root hub runs the service as that user,
    in the hub's working directory and the data directory below it). pytest keeps its
    temporary folders 0700 and makes them so again whenever a pytest session starts, so they
    cannot be it. Removed when the tests end."""
    if os.geteuid() != 0:
        workdir.mkdir(parents=True, exist_ok=True)
        return workdir
    outside = Path(tempfile.mkdtemp(prefix=f"erchub-{workdir.name}-"))
    outside.chmod(0o711)
    atexit.register(shutil.rmtree, outside, ignore_errors=True)
    return outside


def stop_hub(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
