"""Execute one notebook inside a runtime: ``python -m erchub.execute``.

This runs in the runtime image (or the local virtualenv), not in the hub: it needs only the
light dependencies (nbclient, nbconvert). The notebook runs in ``--workdir``, which the runtime
prepared: a mirror of the compendium's files as symlinks into the read-only compendium, so
reading inputs works, new files land in the output directory, and writing over an input fails.

Progress goes to stdout as lines ``erchub-progress {json}`` (one per cell start and end); the
outcome is written to ``result.json`` in the output directory, also when a cell fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROGRESS_PREFIX = "erchub-progress "
RESULT_FILE = "result.json"


def skip_unused_iri_grammar() -> None:
    """Spare this process 0.8 s of start-up: call before anything imports nbformat.

    nbformat imports jsonschema, which compiles an RFC 3987 (IRI) grammar with lark at import
    when the optional ``rfc3987_syntax`` is installed (jupyter-events pulls it in). Notebook
    validation never checks IRI formats; marking the module absent makes jsonschema skip it.
    """
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def emit(event: str, **fields: Any) -> None:
    print(PROGRESS_PREFIX + json.dumps({"event": event, **fields}), flush=True)


def cell_error(exc: BaseException) -> tuple[str, str]:
    """ename and evalue of a failed cell, from nbclient's CellExecutionError or others."""
    ename = getattr(exc, "ename", None) or type(exc).__name__
    evalue = getattr(exc, "evalue", None)
    if evalue is None:
        evalue = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
    return ename, evalue


def kernel_transport(sockets: Path) -> Any:
    """Configuration of the kernel's connection: Unix sockets in ``sockets``, a folder only this
    user can enter. Over TCP, jupyter_client's default, ipykernel warns at every start that the
    connection is not encrypted (a line that began every job's log); a socket nobody else can
    reach needs no encryption. The path is absolute: the kernel runs in the notebook's folder,
    where relative socket paths would land among the job's outputs."""
    from traitlets.config import Config

    config = Config()
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = str(sockets / "kernel")
    return config


def run(
    notebook: Path,
    workdir: Path,
    output: Path,
    executed_name: str,
    display_name: str,
    timeout: int,
    kernel_name: str,
) -> dict[str, Any]:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(notebook, as_version=4)
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    emit("start", cells=len(code_cells))

    def on_cell_start(cell: Any, cell_index: int) -> None:
        if cell.cell_type == "code":
            emit("cell_start", index=cell_index, position=code_cells.index(cell_index) + 1)

    def on_cell_executed(cell: Any, cell_index: int, execute_reply: Any) -> None:
        if cell.cell_type == "code":
            emit("cell_end", index=cell_index, position=code_cells.index(cell_index) + 1)

    result: dict[str, Any] = {"status": "success", "cells": len(code_cells)}
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="erchub-kernel-") as sockets:
            NotebookClient(
                nb,
                timeout=timeout,
                kernel_name=kernel_name,
                resources={"metadata": {"path": str(workdir)}},
                on_cell_start=on_cell_start,
                on_cell_executed=on_cell_executed,
                config=kernel_transport(Path(sockets)),
            ).execute()
    except CellTimeoutError as exc:
        result.update(status="failure", kind="timeout", message=f"cell timed out: {exc}")
    except CellExecutionError as exc:
        ename, evalue = cell_error(exc)
        failing = failing_cell(nb)
        result.update(
            status="failure",
            kind="cell_error",
            cell_index=failing,
            ename=ename,
            evalue=evalue,
            message=f"cell {failing} raised {ename}: {evalue}",
        )
    except DeadKernelError as exc:
        result.update(status="failure", kind="dead_kernel", message=f"the kernel died: {exc}")
    result["seconds"] = round(time.monotonic() - started, 3)

    nbformat.write(nb, output / executed_name)
    write_display(nb, output / display_name)
    (output / RESULT_FILE).write_text(json.dumps(result, indent=2))
    emit("end", status=result["status"])
    return result


def failing_cell(nb: Any) -> int | None:
    """Index of the first code cell with an error output (the one that stopped execution)."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            return index
    return None


def write_display(nb: Any, path: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(embed_images=True).from_notebook_node(nb)
    path.write_text(body, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    skip_unused_iri_grammar()
    parser = argparse.ArgumentParser(prog="python -m erchub.execute", description=__doc__)
    parser.add_argument("notebook", type=Path, help="the (parameterised) notebook to execute")
    parser.add_argument(
        "--workdir", type=Path, required=True, help="where the notebook runs (its inputs)"
    )
    parser.add_argument("--output", type=Path, required=True, help="writable output directory")
    parser.add_argument("--executed-name", default="main.ipynb")
    parser.add_argument("--display-name", default="main.html")
    parser.add_argument("--timeout", type=int, default=3600, help="per-cell limit, seconds")
    parser.add_argument("--kernel", default="python3")
    args = parser.parse_args(argv)
    result = run(
        args.notebook,
        args.workdir,
        args.output,
        args.executed_name,
        args.display_name,
        args.timeout,
        args.kernel,
    )
    return 0 if result["status"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
