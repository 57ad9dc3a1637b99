"""Store benchmark: list and search over 10,000 compendia, on SQLite and on PostgreSQL.

Inserts the compendia (realistic metadata from word lists, seeded; ~5% candidates) through the
store API, then times each query REQUESTS times and reports p50 and p95 in milliseconds, and as
ratios against a baseline measured in the same process on the same store: get_compendium by id.
Goal: p95 < 50 ms for every list and search query.

PostgreSQL is measured when a server is reachable (ERCHUB_TEST_POSTGRES_URL, else the one that
config/provision/postgres.sh makes), in a schema of its own that is dropped afterwards.

Usage: python bench/store.py [--count 10000] [--requests 200] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from erchub.redact import redact_url as redact
from erchub.services.store import CompendiumQuery, CompendiumRecord, Store, open_store
from tests.conftest import DEFAULT_POSTGRES_URL
from tests.store.conftest import postgres_schema as fresh_schema

GOAL_MS = 50.0

# Vocabulary in rough order of frequency: words are drawn Zipf-like, so the first are common.
VOCABULARY = """
data model analysis climate temperature ocean time series study results regional global
surface water soil forest species river urban energy carbon emission precipitation land
sea ice snow flow network simulation method spatial variation change trend effect impact
observation measurement sensor satellite station monthly annual daily seasonal variability
population growth distribution density habitat biodiversity ecosystem vegetation crop yield
drought flood storm wind pressure humidity radiation aerosol cloud atmosphere circulation
current salinity nutrient oxygen plankton fish coral reef coast estuary wetland lake glacier
permafrost groundwater aquifer sediment erosion landslide earthquake volcano magma seismic
geology mineral isotope dating record archive reconstruction proxy pollen tree ring core
statistics regression bayesian inference uncertainty ensemble projection scenario downscaling
calibration validation reproducibility notebook workflow pipeline software package library
python jupyter docker container image compendium executable research paper figure table
"""
WORDS = VOCABULARY.split()
RARE_WORDS = ["quasiperiodic", "heliospheric", "zooxanthellae", "speleothem", "tephrochronology"]
NAMES = "Ada Alan Grace Marie Carl Rosalind Niels Lise Emmy Max Ines Jonas Mei Ravi Sofia"
SURNAMES = "Müller Nakamura Okafor Silva Novak Jensen Rossi Kowalski Haddad Larsen Ivanova"
FIRST, LAST = NAMES.split(), SURNAMES.split()
EXTENSIONS = ["csv", "nc", "tif", "json", "ipynb", "py", "R", "txt"]


def zipf_word(rng: random.Random) -> str:
    # P(rank r) ~ 1/r: the head of WORDS is common, the tail rare
    return WORDS[min(int(len(WORDS) ** rng.random()) - 1, len(WORDS) - 1)]


def sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(zipf_word(rng) for _ in range(rng.randint(low, high)))


def make_compendia(count: int, seed: int) -> list[CompendiumRecord]:
    rng = random.Random(seed)
    users = [f"user{n:03}" for n in range(200)]
    records = []
    for n in range(count):
        title = sentence(rng, 4, 10).capitalize()
        description = sentence(rng, 30, 80)
        if rng.random() < 0.01:
            description += " " + rng.choice(RARE_WORDS)
        files = [
            f"{rng.choice(['data', 'code', 'figures', 'raw'])}/{zipf_word(rng)}_"
            f"{rng.randint(1950, 2024)}.{rng.choice(EXTENSIONS)}"
            for _ in range(rng.randint(3, 15))
        ]
        candidate = rng.random() < 0.05
        metadata = {
            "title": title,
            "description": description,
            "creators": [
                {"name": f"{rng.choice(FIRST)} {rng.choice(LAST)}"}
                for _ in range(rng.randint(1, 4))
            ],
            "keywords": sorted({zipf_word(rng) for _ in range(rng.randint(2, 6))}),
            "files": ["main.ipynb", "erc.yml", *files],
            "identifier": {} if candidate else {"doi": f"10.5281/zenodo.{100000 + n}"},
        }
        created = 1_600_000_000.0 + n * 60.0
        records.append(
            CompendiumRecord(
                id=str(uuid.UUID(int=rng.getrandbits(128))),
                user=rng.choice(users),
                candidate=candidate,
                metadata=metadata,
                created=created,
                updated=created,
            )
        )
    return records


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


def timed(call: Callable[[], Any], requests: int) -> dict[str, float]:
    call()  # warm: statement cache, pages in memory
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000.0)
    return {"p50_ms": statistics.median(samples), "p95_ms": percentile(samples, 0.95)}


def measure(store: Store, records: list[CompendiumRecord], requests: int) -> dict[str, Any]:
    rng = random.Random(1)
    started = time.perf_counter()
    for record in records:
        store.add_compendium(record)
    insert_ms = (time.perf_counter() - started) * 1000.0 / len(records)
    published = [r for r in records if not r.candidate]
    middle = len(published) // 2
    user = records[0].user
    common, two, prefix = WORDS[0], f"{WORDS[1]} {WORDS[3]}", WORDS[4][:4]

    def viewer() -> str:
        return f"user{rng.randrange(200):03}"

    queries: dict[str, Callable[[], Any]] = {
        "get by id (baseline)": lambda: store.get_compendium(rng.choice(records).id),
        "list: first page": lambda: store.list_compendia(CompendiumQuery(viewer(), limit=20)),
        "list: middle page": lambda: store.list_compendia(
            CompendiumQuery(viewer(), start=middle, limit=20)
        ),
        "list: by user": lambda: store.list_compendia(CompendiumQuery(viewer(), user=user)),
        f"search: common word '{common}'": lambda: store.search_compendia(common, viewer=viewer()),
        f"search: rare word '{RARE_WORDS[0]}'": lambda: store.search_compendia(
            RARE_WORDS[0], viewer=viewer()
        ),
        f"search: two words '{two}'": lambda: store.search_compendia(two, viewer=viewer()),
        f"search: prefix '{prefix}'": lambda: store.search_compendia(prefix, viewer=viewer()),
    }
    results = {name: timed(call, requests) for name, call in queries.items()}
    baseline = results["get by id (baseline)"]
    for figures in results.values():
        figures["p50_ratio"] = figures["p50_ms"] / baseline["p50_ms"]
        figures["p95_ratio"] = figures["p95_ms"] / baseline["p95_ms"]
    hits = {name: store.search_compendia(name, viewer=None, limit=0)[1] for name in (common, two)}
    return {"insert_ms_per_compendium": insert_ms, "queries": results, "matches": hits}


@contextmanager
def postgres_schema(url: str) -> Iterator[str | None]:
    """A URL on a new schema of the server at ``url`` (dropped afterwards), or None when the
    server is unreachable (said so)."""
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            reachable = True
    except sa.exc.OperationalError as exc:
        print(f"PostgreSQL skipped: {redact(url)} unreachable ({type(exc.orig).__name__})")
        reachable = False
    finally:
        engine.dispose()
    if not reachable:
        yield None
        return
    with fresh_schema(url) as schema_url:
        yield schema_url


def report(backend: str, figures: dict[str, Any]) -> None:
    matches = ", ".join(f"'{text}' {n}" for text, n in figures["matches"].items())
    print(f"\n{backend}: insert {figures['insert_ms_per_compendium']:.2f} ms per compendium")
    print(f"  compendia matching: {matches}")
    print(f"  {'query':<44} {'p50 ms':>8} {'p95 ms':>8} {'p50 x':>7} {'p95 x':>7}  goal")
    for name, row in figures["queries"].items():
        verdict = "" if "baseline" in name else ("ok" if row["p95_ms"] < GOAL_MS else "MISSED")
        print(
            f"  {name:<44} {row['p50_ms']:8.2f} {row['p95_ms']:8.2f}"
            f" {row['p50_ratio']:7.1f} {row['p95_ratio']:7.1f}  {verdict}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="compendia (default 10000)")
    parser.add_argument("--requests", type=int, default=200, help="per query (default 200)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("ERCHUB_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="PostgreSQL server (default: ERCHUB_TEST_POSTGRES_URL or the provisioned one)",
    )
    args = parser.parse_args()
    records = make_compendia(args.count, args.seed)
    print(
        f"{args.count} compendia ({sum(r.candidate for r in records)} candidates), "
        f"{args.requests} requests per query, goal p95 < {GOAL_MS:.0f} ms"
    )
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/erchub.sqlite")
        results["sqlite"] = measure(store, records, args.requests)
        store.close()
    report("SQLite", results["sqlite"])
    server = args.postgres_url.replace("postgresql://", "postgresql+psycopg://")
    with postgres_schema(server) as url:
        if url:
            store = open_store(url)
            results["postgresql"] = measure(store, records, args.requests)
            store.close()
            report("PostgreSQL", results["postgresql"])
    missed = [
        (backend, name)
        for backend, figures in results.items()
        for name, row in figures["queries"].items()
        if "baseline" not in name and row["p95_ms"] >= GOAL_MS
    ]
    if args.json:
        environment = {"python": sys.version.split()[0], "machine": platform.platform()}
        document = {"count": args.count, "requests": args.requests, **environment, **results}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    print("\ngoal met" if not missed else f"\ngoal missed: {missed}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
