"""erchub benchmarks: ratios against a baseline measured in the same run (not a timed test).

(a) job overhead: `erchub run` of the example ERC / `jupyter nbconvert --execute --to html` of
    the same notebook in the same warm image (docker run).         goal <= 1.15
(b) cache-hit rebuild: ImageBuilder.plan + build of an existing image. goal < 1 s
(c) pip-buildpack build of a 5-package requirements.txt (Docker layer cache warm for the base
    layers, cold for the requirements layer), for the record.

Usage: python bench/run.py [--repeat N]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from erchub.spawner.builder import ImageBuilder
from erchub.workspace import prepare_compendium

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sine-wave"
FIVE_PACKAGES = "six\nidna\nattrs\ncertifi\npackaging\n"


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def job_overhead(image: str, repeat: int, data_dir: Path) -> tuple[float, float]:
    erchub_run = [
        sys.executable, "-m", "erchub", "run", str(EXAMPLE), "--runtime", "docker",
        "--data-dir", str(data_dir),
    ]  # fmt: skip
    nbconvert = [
        "docker", "run", "--rm", "--network", "none", "--user", "1000:1000",
        "-e", "HOME=/tmp", "-v", f"{EXAMPLE}:/erc/compendium:ro", "-w", "/erc/compendium",
        image, "jupyter", "nbconvert", "--execute", "--to", "html",
        "--output-dir", "/tmp", "main.ipynb",
    ]  # fmt: skip
    timed(erchub_run)  # warm: caches, page cache, the image's first start
    ours, baseline = [], []
    for _ in range(repeat):
        baseline.append(timed(nbconvert))
        ours.append(timed(erchub_run))
    return statistics.median(ours), statistics.median(baseline)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    builder = ImageBuilder()
    ws = prepare_compendium(EXAMPLE, write=False)
    plan = builder.plan(ws.root, ws.erc.id)
    builder.build(plan)

    rebuild = []
    for _ in range(5):
        started = time.perf_counter()
        result = builder.build(builder.plan(ws.root, ws.erc.id))
        rebuild.append(time.perf_counter() - started)
        assert result.cache_hit

    with tempfile.TemporaryDirectory() as tmp:
        ours, baseline = job_overhead(plan.image, args.repeat, Path(tmp))
        five = Path(tmp) / "five"
        five.mkdir()
        (five / "requirements.txt").write_text(FIVE_PACKAGES + f"# {uuid.uuid4()}\n")
        shutil.copy(EXAMPLE / "main.ipynb", five / "main.ipynb")
        started = time.perf_counter()
        fresh = builder.build(builder.plan(five, "bench-five-packages"))
        five_seconds = time.perf_counter() - started
        builder.docker_client.images.remove(fresh.image, force=True)

    rows = [
        ("(a) job overhead: erchub run / nbconvert --execute", f"{ours / baseline:.2f}",
         f"{ours:.2f} s / {baseline:.2f} s", "<= 1.15"),
        ("(b) cache-hit rebuild (median of 5)", f"{statistics.median(rebuild):.3f} s", "", "< 1 s"),
        ("(c) pip buildpack, 5 packages", f"{five_seconds:.1f} s", "", "record"),
    ]  # fmt: skip
    print(f"erchub bench {time.strftime('%Y-%m-%d')} on {platform.node()} "
          f"({platform.machine()}, {platform.python_version()})")  # fmt: skip
    print(f"| {'benchmark':<52} | {'result':>8} | {'detail':<18} | goal    |")
    print(f"|{'-' * 54}|{'-' * 10}|{'-' * 20}|---------|")
    for name, value, detail, goal in rows:
        print(f"| {name:<52} | {value:>8} | {detail:<18} | {goal:<7} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
