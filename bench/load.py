"""Load benchmark, through a real hub and its proxy: 50 clients for 60 s, list and search.

10,000 compendia (bench/store.py's seeded word-list metadata) in the service's SQLite store; each
client is one keep-alive connection to configurable-http-proxy with a hub API token and sends,
one at a time and from its own place in the turn, the requests of bench/service.py's table: list
pages (first, middle, by user) and searches (a common word, two words, a prefix). Reported per
run: requests, requests per second, p50 and p95 in ms, errors (answers >= 500 and requests
without an answer). The baseline is one client sending the same turn through the same hub in the
same process; the load's figures are also given as ratios against it (p50, p95; throughput).
Nothing is asserted on time; the hub tier's tests/hub/test_load.py asserts that there are no
errors (20 clients, 15 s).

Usage: python bench/load.py [--clients 50] [--seconds 60] [--baseline-seconds 15]
                            [--count 10000] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from store import WORDS, make_compendia  # noqa: E402

from erchub.services.store import open_store  # noqa: E402
from tests.hub.conftest import start_hub, stop_hub  # noqa: E402
from tests.hub.test_load import OK, Load, Request, run_load  # noqa: E402


def turn(count: int, user: str) -> list[Request]:
    """bench/service.py's requests, each answered 200."""
    paths = [
        "/compendium?limit=20",
        f"/compendium?limit=20&start={count // 2}",
        f"/compendium?user={user}",
        f"/search?q={WORDS[0]}",
        f"/search?q={WORDS[1]}+{WORDS[3]}",
        f"/search?q={WORDS[4][:4]}",
    ]
    return [(path, OK) for path in paths]


def figures(load: Load) -> dict[str, Any]:
    return {
        "clients": load.clients,
        "seconds": load.seconds,
        "requests": load.requests,
        "requests_per_second": load.requests / load.seconds,
        "p50_ms": load.percentile_ms(0.5),
        "p95_ms": load.percentile_ms(0.95),
        "server_errors": load.server_errors,
        "connection_errors": len(load.connection_errors),
        "errors": load.errors,
        "statuses": dict(sorted(load.statuses.items())),
        "unexpected": load.unexpected[:5],
        "connection_error_samples": load.connection_errors[:5],
    }


def measure(
    count: int, clients: int, seconds: float, baseline_seconds: float, workdir: Path
) -> dict[str, Any]:
    db_url = f"sqlite:///{workdir / 'bench.sqlite'}"
    store = open_store(db_url)
    records = make_compendia(count, seed=42)
    for record in records:
        store.add_compendium(record)
    store.close()
    user = records[0].user
    environment = {"ERCHUB_DB_URL": db_url}
    if os.geteuid() == 0:
        # a root hub runs the service as its own user, who may not open the store seeded in
        # this process's private temporary folder: here it runs as root
        environment["ERCHUB_SERVICE_USER"] = ""
    hub, process = start_hub(workdir / "hub", worker_count=0, environment=environment)
    try:
        token = hub.token(user)
        requests = turn(count, user)
        run_load(hub.api_url, token, requests, clients=1, seconds=2)  # warm: token cache
        baseline = figures(run_load(hub.api_url, token, requests, 1, baseline_seconds))
        load = figures(run_load(hub.api_url, token, requests, clients, seconds))
    finally:
        stop_hub(process)
    load["p50_ratio"] = load["p50_ms"] / baseline["p50_ms"]
    load["p95_ratio"] = load["p95_ms"] / baseline["p95_ms"]
    load["throughput_ratio"] = load["requests_per_second"] / baseline["requests_per_second"]
    return {"count": count, "baseline": baseline, "load": load}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--baseline-seconds", type=float, default=15.0)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="erchub-bench-") as temporary:
        result = measure(
            args.count, args.clients, args.seconds, args.baseline_seconds, Path(temporary)
        )
    print(
        f"\nlist and search through the hub's proxy, {args.count} compendia (SQLite), "
        "one keep-alive connection per client"
    )
    print(
        f"  {'run':<22} {'requests':>9} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'errors':>7}"
        f" {'p50 x':>6} {'p95 x':>6} {'req/s x':>8}"
    )
    for name, row in (("baseline: 1 client", result["baseline"]), ("load", result["load"])):
        label = name if name != "load" else f"load: {row['clients']} clients"
        ratios = (
            f" {row['p50_ratio']:6.2f} {row['p95_ratio']:6.2f} {row['throughput_ratio']:8.2f}"
            if "p50_ratio" in row
            else f" {1:6.2f} {1:6.2f} {1:8.2f}"
        )
        print(
            f"  {label:<22} {row['requests']:9d} {row['requests_per_second']:7.1f}"
            f" {row['p50_ms']:8.1f} {row['p95_ms']:8.1f} {row['errors']:7d}{ratios}"
        )
    load = result["load"]
    print(
        f"  load errors: {load['server_errors']} answers >= 500, "
        f"{load['connection_errors']} requests without an answer; statuses {load['statuses']}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
