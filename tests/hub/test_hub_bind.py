"""`jupyterhub -f jupyterhub_config.py --port N`: the hub listens where the command line says,
on the config's host (127.0.0.1), not on the config's port 8000."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.hub.conftest import REPO, reachable_by_the_service, require_hub, stop_hub, stop_proxy

pytestmark = pytest.mark.hub


def test_the_command_lines_port_is_where_the_hub_listens(tmp_path: Path) -> None:
    require_hub()
    workdir = reachable_by_the_service(tmp_path / "hub")
    data_dir = workdir / "data"
    port = free_port()
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith("ERCHUB_")},
        "ERCHUB_DATA_DIR": str(data_dir),
        "ERCHUB_WORKER_COUNT": "0",
        "ERCHUB_HUB_API_PORT": str(free_port()),
        "ERCHUB_SERVICE_PORT": str(free_port()),
    }
    command = [
        sys.executable,
        "-m",
        "jupyterhub",
        "-f",
        str(REPO / "jupyterhub_config.py"),
        "--port",
        str(port),
        f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{free_port()}",
    ]
    log_path = workdir / "hub.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        answer = None
        while time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
            log = log_path.read_text(errors="replace")
            if "JupyterHub is now running" in log:
                answer = httpx.get(f"http://127.0.0.1:{port}/hub/api", timeout=5)
                break
            time.sleep(0.5)
        assert answer is not None, f"the hub did not start in 90 s:\n{log[-3000:]}"
        assert answer.status_code == 200 and "version" in answer.json(), answer.text
        assert f"JupyterHub is now running at http://127.0.0.1:{port}/" in log
        assert "Both bind_url and ip/port/base_url have been configured" not in log
    finally:
        stop_hub(process)
        stop_proxy(data_dir)
