"""What a run shows (:func:`erchub.extensions.execution.run_cells`): pure, no kernel."""

from __future__ import annotations

import copy
import json

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from erchub.extensions.execution import SOURCE_LINE_CHARS, run_cells, source_line


def stream(text: str) -> nbformat.NotebookNode:
    return new_output("stream", name="stdout", text=text)


def size(output: nbformat.NotebookNode) -> int:
    return len(json.dumps(output, separators=(",", ":")))


def notebooks() -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """An author's notebook (with stored outputs) and its executed, parameterised copy."""
    original = new_notebook(
        cells=[
            new_markdown_cell("# Title", id="title"),
            new_code_cell("a = 1", id="params", metadata={"tags": ["parameters"]}),
            new_code_cell("print(a)", id="first", outputs=[stream("1\n")]),
            new_code_cell("x = 2", id="silent"),
            new_code_cell("print(a * 2)", id="second", metadata={"tags": ["result"]}),
        ]
    )
    executed = copy.deepcopy(original)
    injected = new_code_cell("a = 3", id="injected-parameters")
    executed.cells.insert(2, injected)
    injected.outputs = [stream("never shown\n")]
    executed.cells[3].outputs = [stream("3\n")]
    executed.cells[5].outputs = [stream("6\n"), stream("more\n")]
    return original, executed


def test_cells_in_notebook_order_with_both_outputs() -> None:
    original, executed = notebooks()
    cells = [cell.to_json() for cell in run_cells(original, executed, ["result"])]
    assert [(c["cell_id"], c["cell_index"], c["bound"]) for c in cells] == [
        ("first", 2, False),
        ("second", 4, True),
    ]
    first, second = cells
    assert (first["outputs"], first["published"]) == ([stream("3\n")], [stream("1\n")])
    assert (second["outputs"], second["published"]) == ([stream("6\n"), stream("more\n")], [])


def test_the_runs_outputs_take_the_budget_before_the_published() -> None:
    original, executed = notebooks()
    run_sizes = size(stream("3\n")) + size(stream("6\n")) + size(stream("more\n"))
    first, second = run_cells(original, executed, [], result_limit=run_sizes)
    assert [first.outputs, second.outputs] == [[stream("3\n")], [stream("6\n"), stream("more\n")]]
    assert (first.published, first.omitted_published) == ([], 1)

    # one output too large for the result: left out and counted, the next still fits
    first, second = run_cells(original, executed, [], output_limit=size(stream("3\n")))
    assert (second.outputs, second.omitted_outputs) == ([stream("6\n")], 1)
    assert (first.outputs, first.published) == ([stream("3\n")], [stream("1\n")])


def test_source_line_is_the_first_line_that_is_not_blank() -> None:
    assert source_line("\n  \n  plot(x)  \nmore") == "plot(x)\u2026"
    assert source_line("n + 1") == "n + 1"
    assert source_line("   ") == ""
    long = source_line("y = " + "1" * 200)
    assert len(long) == SOURCE_LINE_CHARS and long.endswith("\u2026")
