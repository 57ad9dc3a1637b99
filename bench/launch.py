"""Launch benchmark, through a real hub, its proxy and the local Docker engine.

- first launch of an ERC whose image must be built (on cached base layers), for the record;
- relaunch of the cached ERC (image present, working copy kept): from the launch link's
  request to the server answering ``/api/status`` through the proxy. Goal: median < 3 s
  (mybinder.org's launch median is about 15 s).

Relaunch times are also reported as ratios against a baseline measured in the same process:
the same runtime image started with ``docker run`` as a bare ``jupyter-server`` (no hub, no
proxy, no working copy) until it answers, so the ratio shows what the hub and erchub add.

Usage: python bench/launch.py [--relaunches 7] [--json F]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from erchub.sessions import server_name_for  # noqa: E402
from erchub.spawner.clients import docker_client  # noqa: E402
from tests.hub.conftest import start_hub, stop_hub  # noqa: E402
from tests.hub.test_launch import (  # noqa: E402
    launch,
    progress_events,
    publish,
    stop,
    workspace_zip,
)

GOAL_SECONDS = 3.0
USER = "bench"


def wait_answering(url: str, headers: dict[str, str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def bare_start(image: str) -> float:
    """Seconds from ``docker run`` of a bare jupyter-server in ``image`` to its answer."""
    client = docker_client()
    started = time.perf_counter()
    container = client.containers.run(
        image,
        ["jupyter-server", "--ServerApp.ip=0.0.0.0", "--IdentityProvider.token="],
        detach=True,
        network="bridge",
    )
    try:
        container.reload()
        address = container.attrs["NetworkSettings"]["IPAddress"]
        wait_answering(f"http://{address}:8888/api/status", {})
        return time.perf_counter() - started
    finally:
        container.remove(force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--relaunches", type=int, default=7)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="erchub-bench-launch-") as scratch:
        hub, process = start_hub(Path(scratch) / "hub")
        try:
            figures = run(hub, Path(scratch), args.relaunches)
        finally:
            stop_hub(process)
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


def run(hub: Any, scratch: Path, relaunches: int) -> dict[str, Any]:
    token = hub.token(USER)
    headers = {"Authorization": f"token {token}"}
    requirements = f"# bench {secrets.token_hex(6)}\npip>=20\n"
    compendium_id = publish(hub, token, workspace_zip(scratch, requirements, "Bench"))
    server = server_name_for(compendium_id)
    status_url = f"{hub.url}/user/{USER}/{server}/api/status"

    started = time.perf_counter()
    assert launch(hub, token, compendium_id).status_code == 302
    events = progress_events(hub, token, USER, server)
    assert events[-1].get("ready"), events[-3:]
    wait_answering(status_url, headers)
    first = time.perf_counter() - started
    image = docker_client().containers.list(filters={"name": f"jupyter-{USER}--"})[0].image

    relaunch_times, bare_times = [], []
    for _ in range(relaunches):
        stop(hub, token, USER, server)
        bare_times.append(bare_start(image.id))
        started = time.perf_counter()
        assert launch(hub, token, compendium_id).status_code == 302
        wait_answering(status_url, headers)
        relaunch_times.append(time.perf_counter() - started)
    stop(hub, token, USER, server)

    median, bare = statistics.median(relaunch_times), statistics.median(bare_times)
    return {
        "first_launch_with_build_s": round(first, 2),
        "relaunch_median_s": round(median, 2),
        "relaunch_min_s": round(min(relaunch_times), 2),
        "relaunch_max_s": round(max(relaunch_times), 2),
        "bare_jupyter_server_median_s": round(bare, 2),
        "relaunch_over_bare": round(median / bare, 2),
        "goal_s": GOAL_SECONDS,
        "goal_met": median < GOAL_SECONDS,
        "relaunches": relaunches,
    }


if __name__ == "__main__":
    main()
