"""Running a parameterised copy of a notebook in a fresh kernel of the pool, with progress.

The cells run through nbclient's ``NotebookClient`` on the pool's kernel and client, one by
one (``async_execute_cell``): its ``async_execute`` would install signal handlers of its own on
the server's event loop and remove them afterwards, taking the server's away.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from erchub.execute import cell_error
from erchub.extensions.kernels import KernelPool

#: nbclient's tag of cells it does not execute
SKIP_TAG = "skip-execution"

ProgressCallback = Callable[[int, int], Awaitable[None]]


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
