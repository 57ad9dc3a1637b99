"""Property-based requests from the OpenAPI document (schemathesis): no 5xx, whatever comes.

Schemathesis generates valid and invalid requests for every operation the document lists
(bodies, query arguments, path segments, headers) with a fixed seed, so a failure replays.
Several clients fuzz at once through the hub's proxy, as real traffic comes: concurrency is
what once made configurable-http-proxy answer 503 "socket hang up" (a connection that the
service closed after an early refusal, lent to another client's request; see test_load.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hub.conftest import Hub

pytestmark = pytest.mark.hub

#: concurrent clients, one schemathesis process each (seeds SEED, SEED + 1, ...). Processes,
#: not ``--workers``: schemathesis's threads share hypothesis caches that are not thread-safe
#: (KeyError in hypothesis.internal.cache under ``--workers 4``).
CLIENTS = 4
SEED = 20261122
MAX_EXAMPLES = 25
#: the clients' time together; on the CI machine (2 cores) they take about a minute
DEADLINE_SECONDS = 150


def report(output: str) -> str:
    """What a client's output says about its failures (the requests, as curl commands) and its
    summary, shortened."""
    failures = re.search(r"=+ FAILURES =+\n(.*?)\n=+ [A-Z]+ =+\n", output, re.DOTALL)
    summary = output[output.rfind("SUMMARY") :] if "SUMMARY" in output else output[-3000:]
    return (failures.group(1)[:6000] + "\n...\n" if failures else "") + summary[-3000:]


def test_generated_requests_never_get_a_server_error(erc_hub: Hub, tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a test dependency"
    token = erc_hub.token("fuzzer")
    runs = []
    for client in range(CLIENTS):
        folder = tmp_path / f"client-{client}"
        folder.mkdir()
        output = open(folder / "output.txt", "w+")  # noqa: SIM115 (closed below)
        process = subprocess.Popen(
            [
                st, "run", f"{erc_hub.api_url}/openapi.json",
                "--url", erc_hub.api_url,
                "--header", f"Authorization: token {token}",
                "--checks", "not_a_server_error",
                "--max-examples", str(MAX_EXAMPLES),
                "--seed", str(SEED + client),
                "--workers", "1",
                "--request-timeout", "30",
                "--no-color",
            ],
            stdout=output, stderr=subprocess.STDOUT, cwd=folder,
        )  # fmt: skip
        runs.append((process, output))
    deadline = time.monotonic() + DEADLINE_SECONDS
    summaries = []
    try:
        for process, output in runs:
            try:
                process.wait(max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            output.seek(0)
            summaries.append((process.returncode, report(output.read().replace(token, "[token]"))))
    finally:
        for process, output in runs:
            if process.poll() is None:
                process.kill()
                process.wait()
            output.close()
    generated = 0
    for client, (returncode, summary) in enumerate(summaries):
        assert returncode == 0, f"client {client} (seed {SEED + client}):\n{summary}"
        cases = re.search(r"(\d+) generated", summary)
        assert cases, summary
        generated += int(cases.group(1))
    print(f"{CLIENTS} concurrent clients, {generated} generated requests, no 5xx")
