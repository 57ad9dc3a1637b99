"""Running a parameterised copy of a notebook in a fresh kernel of the pool, with progress,
and what a run shows: :func:`run_cells`.

The cells run through nbclient's ``NotebookClient`` on the pool's kernel and client, one by
one (``async_execute_cell``): its ``async_execute`` would install signal handlers of its own on
the server's event loop and remove them afterwards, taking the server's away.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from erchub.execute import cell_error
from erchub.extensions.kernels import KernelPool

#: nbclient's tag of cells it does not execute
SKIP_TAG = "skip-execution"

ProgressCallback = Callable[[int, int], Awaitable[None]]

#: the most characters of a cell's first source line that a result names it by
SOURCE_LINE_CHARS = 80
#: the most bytes (as JSON) of one output that a result carries; a larger one is left out
OUTPUT_LIMIT_BYTES = 8 * 1024**2
#: the most bytes (as JSON) of all outputs a result carries, the run's before the published
RESULT_LIMIT_BYTES = 32 * 1024**2


class RunFailed(Exception):
    """The run did not complete: ``status`` 422 for a failing cell, 503 for a kernel that
    did not start."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def executed_cells(nb: nbformat.NotebookNode) -> int:
    """How many cells nbclient executes: code cells with source, not tagged to be skipped."""
    return sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        and cell.source.strip()
        and SKIP_TAG not in cell.get("metadata", {}).get("tags", [])
    )


async def run_notebook(
    pool: KernelPool,
    nb: nbformat.NotebookNode,
    kernel_name: str,
    cwd: str,
    cell_timeout: float,
    positions: Mapping[str, int],
    on_progress: ProgressCallback,
) -> nbformat.NotebookNode:
    """Execute ``nb`` (changed in place) in a fresh ``kernel_name`` kernel in ``cwd``.

    ``on_progress(done, total)`` is awaited after each executed cell. ``positions`` maps the
    cell ids of the author's notebook to their index, to name a failing cell as the author
    sees it. Raises :class:`RunFailed`.
    """
    for cell in nb.cells:
        if cell.cell_type == "code":  # what a skipped cell showed is not this run's
            cell.outputs = []
            cell.execution_count = None
    total = executed_cells(nb)
    done = 0

    async def cell_executed(**_: object) -> None:
        nonlocal done
        done += 1
        await on_progress(done, total)

    try:
        kernel = await pool.take(kernel_name, cwd)
    except (RuntimeError, OSError) as error:
        raise RunFailed(503, f"the {kernel_name} kernel did not start: {error}") from None
    client = NotebookClient(
        nb, km=kernel.manager, timeout=cell_timeout, on_cell_executed=cell_executed
    )
    client.kc = kernel.client
    cell = None
    try:
        for index, cell in enumerate(nb.cells):
            await client.async_execute_cell(
                cell, index, execution_count=client.code_cells_executed + 1
            )
    except CellTimeoutError:
        raise RunFailed(
            422, f"{_name(cell, positions)} did not finish within {cell_timeout:g} s"
        ) from None
    except CellExecutionError as error:
        ename, evalue = cell_error(error)
        raise RunFailed(422, f"{_name(cell, positions)} raised {ename}: {evalue}") from None
    except DeadKernelError:
        raise RunFailed(422, f"the kernel died while running {_name(cell, positions)}") from None
    finally:
        pool.release(kernel)
    return nb


def _name(cell: nbformat.NotebookNode | None, positions: Mapping[str, int]) -> str:
    """A cell as its author knows it: index and id (or the injected parameters cell)."""
    cell_id = cell.get("id") if cell is not None else None
    if not isinstance(cell_id, str) or cell_id not in positions:
        return "the injected parameters cell"
    return f"cell {positions[cell_id]} (id {cell_id})"


@dataclass
class CellResult:
    """One code cell of a run: its outputs in the run and in the saved notebook (nbformat
    output dicts), and how many of each were left out for their size."""

    cell_id: str
    #: the cell's index in the author's notebook
    cell_index: int
    #: the first line of its source that is not blank, cut at SOURCE_LINE_CHARS
    source_line: str
    #: whether the notebook's erc.yml names the cell for showing results (ui_bindings cells)
    bound: bool
    execution_count: int | None
    outputs: list[dict[str, Any]] = field(default_factory=list)
    published: list[dict[str, Any]] = field(default_factory=list)
    omitted_outputs: int = 0
    omitted_published: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "cell_id": self.cell_id,
            "cell_index": self.cell_index,
            "source_line": self.source_line,
            "bound": self.bound,
            "execution_count": self.execution_count,
            "outputs": self.outputs,
            "published": self.published,
            "omitted_outputs": self.omitted_outputs,
            "omitted_published": self.omitted_published,
        }


def source_line(source: str) -> str:
    """The first line of ``source`` that is not blank, stripped, cut at SOURCE_LINE_CHARS
    (with an ellipsis when there is more to the cell)."""
    lines = [line.strip() for line in source.splitlines()]
    filled = [line for line in lines if line]
    if not filled:
        return ""
    first = filled[0]
    if len(first) > SOURCE_LINE_CHARS:
        return first[: SOURCE_LINE_CHARS - 1] + "\u2026"
    return first + ("\u2026" if len(filled) > 1 else "")


def run_cells(
    original: nbformat.NotebookNode,
    executed: nbformat.NotebookNode,
    bound: Collection[str],
    output_limit: int = OUTPUT_LIMIT_BYTES,
    result_limit: int = RESULT_LIMIT_BYTES,
) -> list[CellResult]:
    """Every code cell of the author's notebook ``original`` that has outputs in the run
    ``executed`` (its executed copy) or in ``original`` itself, in notebook order.

    A cell of the copy that the original lacks (the injected parameters) is never shown.
    ``bound`` holds the cell ids and tags the erc.yml names for showing results. Outputs are
    nbformat's, whole; one larger than ``output_limit`` bytes, or one that would take all
    outputs past ``result_limit``, is left out and counted. The run's outputs take the budget
    first, in order, then the published ones.
    """
    run_by_id = {cell.get("id"): cell for cell in executed.cells if cell.cell_type == "code"}
    results: list[tuple[CellResult, list[Any], list[Any]]] = []
    for index, cell in enumerate(original.cells):
        ran = run_by_id.get(cell.get("id"))
        if cell.cell_type != "code" or ran is None:
            continue
        run_outputs = list(ran.get("outputs", []))
        stored = list(cell.get("outputs", []))
        if not run_outputs and not stored:
            continue
        names = {cell.get("id"), *cell.get("metadata", {}).get("tags", [])}
        result = CellResult(
            cell_id=cell.get("id", ""),
            cell_index=index,
            source_line=source_line(cell.source),
            bound=bool(names.intersection(bound)),
            execution_count=ran.get("execution_count"),
        )
        results.append((result, run_outputs, stored))
    budget = result_limit
    for keep_published in (False, True):
        for result, run_outputs, stored in results:
            for output in stored if keep_published else run_outputs:
                size = len(json.dumps(output, separators=(",", ":")))
                if size > output_limit or size > budget:
                    if keep_published:
                        result.omitted_published += 1
                    else:
                        result.omitted_outputs += 1
                    continue
                budget -= size
                (result.published if keep_published else result.outputs).append(output)
    return [result for result, _, _ in results]
