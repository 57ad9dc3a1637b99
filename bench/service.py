"""Service benchmark, through a real hub and its proxy: list and search over 10,000 compendia
(p50/p95 on SQLite and on PostgreSQL), and the service's memory while a 1 GiB workspace uploads.

Request times are reported in ms and as ratios against a baseline measured in the same process
through the same hub: an authenticated request that does no store work (``GET /job?limit=1``
on an empty job table), so the ratio shows what the store and the handler add to the hub's
authentication and the proxy. Goal: p95 < 50 ms.

The upload streams a 1 GiB zip (a notebook and 1 GiB of incompressible data) to
``POST /compendium`` while a thread samples the service process's RSS every 20 ms; reported:
RSS growth (goal < 100 MiB) and upload time, the latter also as a ratio against copying the
same file on the same disk in the same process.

Usage: python bench/service.py [--count 10000] [--requests 200] [--upload-mib 1024] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from store import DEFAULT_POSTGRES_URL, WORDS, make_compendia, postgres_schema  # noqa: E402

from erchub.services.store import open_store  # noqa: E402
from tests.hub.conftest import start_hub, stop_hub  # noqa: E402

GOAL_MS = 50.0
GOAL_RSS_MIB = 100.0
MIB = 1024**2


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


def timed(call: Callable[[], httpx.Response], requests: int) -> dict[str, float]:
    call().raise_for_status()  # warm: token cache, statement cache
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        call().raise_for_status()
        samples.append((time.perf_counter() - started) * 1000.0)
    return {"p50_ms": statistics.median(samples), "p95_ms": percentile(samples, 0.95)}


def service_process(hub_pid: int) -> psutil.Process:
    for child in psutil.Process(hub_pid).children(recursive=True):
        if "erchub.services" in " ".join(child.cmdline()):
            return child
    raise RuntimeError("the erc service process was not found under the hub")


def measure_queries(db_url: str, count: int, requests: int, workdir: Path) -> dict[str, Any]:
    store = open_store(db_url)
    for record in make_compendia(count, seed=42):
        store.add_compendium(record)
    store.close()
    hub, process = start_hub(workdir, worker_count=0, environment={"ERCHUB_DB_URL": db_url})
    try:
        token = hub.token("user001")
        client = httpx.Client(headers={"Authorization": f"token {token}"}, timeout=30)
        api = hub.api_url
        queries: dict[str, Callable[[], httpx.Response]] = {
            "baseline: GET /job?limit=1": lambda: client.get(f"{api}/job?limit=1"),
            "list: first page": lambda: client.get(f"{api}/compendium?limit=20"),
            "list: middle page": lambda: client.get(
                f"{api}/compendium?limit=20&start={count // 2}"
            ),
            "list: by user": lambda: client.get(f"{api}/compendium?user=user002"),
            f"search: '{WORDS[0]}'": lambda: client.get(f"{api}/search", params={"q": WORDS[0]}),
            f"search: '{WORDS[1]} {WORDS[3]}'": lambda: client.get(
                f"{api}/search", params={"q": f"{WORDS[1]} {WORDS[3]}"}
            ),
            f"search: prefix '{WORDS[4][:4]}'": lambda: client.get(
                f"{api}/search", params={"q": WORDS[4][:4]}
            ),
        }
        results = {name: timed(call, requests) for name, call in queries.items()}
        client.close()
    finally:
        stop_hub(process)
    baseline = results["baseline: GET /job?limit=1"]
    for row in results.values():
        row["p95_ratio"] = row["p95_ms"] / baseline["p95_ms"]
    return results


def workspace_zip(path: Path, size: int) -> None:
    """A zip (stored, not compressed) of a notebook and ``size`` bytes of random data."""
    notebook = {
        "cells": [{"cell_type": "markdown", "metadata": {}, "source": "# Big data"}],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.writestr("main.ipynb", json.dumps(notebook))
        with archive.open("data/big.bin", "w", force_zip64=True) as member:
            chunk = os.urandom(MIB)
            for _ in range(size // MIB):
                member.write(chunk)


def measure_upload(size_mib: int, workdir: Path) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    archive = workdir / "workspace.zip"
    workspace_zip(archive, size_mib * MIB)
    started = time.perf_counter()
    shutil.copyfile(archive, workdir / "copy.zip")
    copy_seconds = time.perf_counter() - started
    (workdir / "copy.zip").unlink()
    hub, process = start_hub(
        workdir / "hub",
        worker_count=0,
        environment={"ERCHUB_UPLOAD_LIMIT": str((size_mib + 64) * MIB)},
    )
    try:
        service = service_process(process.pid)
        before = service.memory_info().rss
        peak = before
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, service.memory_info().rss)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        token = hub.token("uploader")
        started = time.perf_counter()
        with open(archive, "rb") as stream:
            response = hub.upload(token, stream, timeout=1800)
        upload_seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        response.raise_for_status()
    finally:
        stop_hub(process)
    growth = (peak - before) / MIB
    return {
        "size_mib": size_mib,
        "rss_before_mib": before / MIB,
        "rss_peak_mib": peak / MIB,
        "rss_growth_mib": growth,
        "upload_seconds": upload_seconds,
        "copy_seconds": copy_seconds,
        "upload_to_copy_ratio": upload_seconds / copy_seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--upload-mib", type=int, default=1024)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    figures: dict[str, Any] = {"queries": {}}
    with tempfile.TemporaryDirectory(prefix="erchub-bench-") as temporary:
        workdir = Path(temporary)
        sqlite_url = f"sqlite:///{workdir / 'bench.sqlite'}"
        postgres_url = os.environ.get("ERCHUB_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
        backends: list[tuple[str, Any]] = [
            ("sqlite", nullcontext(sqlite_url)),
            ("postgresql", postgres_schema(postgres_url)),
        ]
        for name, url_context in backends:
            with url_context as url:
                if url is None:
                    continue
                figures["queries"][name] = measure_queries(
                    url, args.count, args.requests, workdir / f"hub-{name}"
                )
        if args.upload_mib:
            figures["upload"] = measure_upload(args.upload_mib, workdir / "upload")
    for backend, rows in figures["queries"].items():
        print(f"\n{backend}, {args.count} compendia, through the hub ({args.requests} requests)")
        print(f"  {'request':<36} {'p50 ms':>8} {'p95 ms':>8} {'p95 x':>7}  goal")
        for name, row in rows.items():
            verdict = (
                ""
                if name.startswith("baseline")
                else ("ok" if row["p95_ms"] < GOAL_MS else "MISSED")
            )
            print(
                f"  {name:<36} {row['p50_ms']:8.2f} {row['p95_ms']:8.2f}"
                f" {row['p95_ratio']:7.2f}  {verdict}"
            )
    upload = figures.get("upload")
    if upload:
        verdict = "ok" if upload["rss_growth_mib"] < GOAL_RSS_MIB else "MISSED"
        print(
            f"\nupload of {upload['size_mib']} MiB: service RSS {upload['rss_before_mib']:.0f} -> "
            f"{upload['rss_peak_mib']:.0f} MiB (growth {upload['rss_growth_mib']:.1f} MiB, "
            f"goal < {GOAL_RSS_MIB:.0f}: {verdict}); {upload['upload_seconds']:.1f} s, "
            f"{upload['upload_to_copy_ratio']:.1f}x a local copy of the file"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
