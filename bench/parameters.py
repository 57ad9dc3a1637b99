"""Re-run with new parameters, through erchub's server extension in a real jupyter-server.

The notebook has a ``parameters`` cell, a compute cell that takes 0.5 s and a matplotlib figure
of the result. A reader changes a value and asks for a run: ``POST /erchub/run`` from the
request to the run's outputs returned, warm (the extension keeps a started kernel ready; a reader
pauses between changes, so the bench does too). Goal: median < 1.5 s.

Baseline, in the same process: papermill's ``execute_notebook`` of the same notebook with the
same value (a fresh kernel per run, what re-running without erchub costs). The ratio is the
extension's time over papermill's.

Usage: python bench/parameters.py [--runs 7] [--pause 3] [--json F]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import nbformat
import papermill

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from tests.conftest import running_jupyter  # noqa: E402

GOAL_SECONDS = 1.5
COMPUTE_SECONDS = 0.5

PARAMETERS = "frequency = 1.0  # cycles per unit of time\n"
COMPUTE = f"""import time

import numpy as np

time.sleep({COMPUTE_SECONDS})  # the compute cell takes {COMPUTE_SECONDS} s
t = np.linspace(0, 2, 400)
signal = np.sin(2 * np.pi * frequency * t)
"""
FIGURE = """import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
ax.plot(t, signal)
plt.show()
"""


def write_notebook(directory: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    parameters = nbformat.v4.new_code_cell(PARAMETERS)
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell(COMPUTE), nbformat.v4.new_code_cell(FIGURE)]
    path = directory / "main.ipynb"
    nbformat.write(nb, path)
    return path


def run_with(client: httpx.Client, url: str, frequency: float) -> float:
    started = time.perf_counter()
    response = client.post(
        f"{url}/erchub/run", json={"path": "main.ipynb", "values": {"frequency": frequency}}
    )
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    outputs = [output for cell in response.json()["cells"] for output in cell["outputs"]]
    if not any("image/png" in output.get("data", {}) for output in outputs):
        raise RuntimeError(f"no figure returned: {outputs}")
    return elapsed


def papermill_run(notebook: Path, frequency: float) -> float:
    started = time.perf_counter()
    papermill.execute_notebook(
        str(notebook),
        str(notebook.with_name("baseline-output.ipynb")),
        parameters={"frequency": frequency},
        cwd=str(notebook.parent),
        progress_bar=False,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="warm runs (default 7)")
    parser.add_argument(
        "--pause", type=float, default=3.0, help="seconds between runs, a reader's pause (3)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="erchub-bench-parameters-") as scratch:
        root = Path(scratch)
        notebook = write_notebook(root)
        with (
            running_jupyter(root) as (url, token),
            httpx.Client(headers={"Authorization": f"token {token}"}, timeout=120) as client,
        ):
            first = run_with(client, url, 1.0)
            warm = []
            for run in range(args.runs):
                time.sleep(args.pause)
                warm.append(run_with(client, url, 1.5 + run * 0.5))
        baseline = [papermill_run(notebook, 1.5 + run * 0.5) for run in range(3)]

    median = statistics.median(warm)
    baseline_median = statistics.median(baseline)
    results: dict[str, Any] = {
        "compute_seconds": COMPUTE_SECONDS,
        "first_run_seconds": round(first, 3),
        "warm_runs_seconds": [round(value, 3) for value in warm],
        "warm_median_seconds": round(median, 3),
        "papermill_median_seconds": round(baseline_median, 3),
        "ratio_to_papermill": round(median / baseline_median, 2),
        "goal_seconds": GOAL_SECONDS,
        "goal_met": median < GOAL_SECONDS,
    }
    print(f"first run (cold kernel): {first:.2f} s")
    print(f"warm re-run with new values: median {median:.2f} s over {len(warm)} runs")
    print(f"papermill.execute_notebook (baseline): median {baseline_median:.2f} s")
    print(f"ratio to papermill: {median / baseline_median:.2f}")
    print(f"goal < {GOAL_SECONDS} s: {'met' if median < GOAL_SECONDS else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
