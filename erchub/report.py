"""The HTML report of a check: one standalone page, images embedded, notebook content escaped.

Below the counts the page lists the problems, then which normalisers were on and where they
replaced text ("normalised: durations in cell 3 (2 places), shown as <duration>"): what the
check did not compare.
"""

from __future__ import annotations

import base64
import functools
import itertools
from typing import Any

import jinja2

from erchub.checker import (
    CellComparison,
    CheckResult,
    Normalisation,
    OutputComparison,
    Verdict,
)
from erchub.normalising import NORMALISERS, VOLATILE_PLACEHOLDER, volatile_pattern_name

TEMPLATE = "check_report.html.j2"

_COUNT_LABELS = {
    "cells_compared": "Code cells compared",
    "cells_identical": "Identical cells",
    "cells_different": "Different cells",
    "cells_skipped": "Skipped cells (volatile)",
    "outputs_compared": "Outputs compared",
    "outputs_different": "Different outputs",
}


@functools.cache
def _environment() -> jinja2.Environment:
    # Everything in the page comes from notebooks, so everything is escaped.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("erchub", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def render_report(
    result: CheckResult,
    *,
    title: str,
    original_name: str = "original",
    reproduced_name: str = "reproduced",
) -> str:
    """A standalone HTML page: verdict, counts, and every differing cell with its diffs (with
    no reference outputs: the reproduced outputs, which could become the reference)."""
    counts = result.counts
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            title=title,
            verdict=result.verdict.label,
            verdict_class=result.verdict.value,
            no_reference=result.verdict is Verdict.NO_REFERENCE_OUTPUTS,
            original_name=original_name,
            reproduced_name=reproduced_name,
            counts=[(label, counts[key]) for key, label in _COUNT_LABELS.items()],
            messages=[*result.messages, *normalisation_lines(result)],
            different_cells=[
                _cell_view(cell, original_name, reproduced_name)
                for cell in result.cells
                if cell.status == "different"
            ],
            skipped_cells=[cell for cell in result.cells if cell.status == "skipped"],
        )
    )


def normalisation_lines(result: CheckResult) -> list[str]:
    """Which normalisers were on, then one line per normaliser that replaced text, naming the
    cells and the places in each."""
    off = [name for name in NORMALISERS if name not in result.normalisers]
    lines = [
        f"normalisers on: {', '.join(result.normalisers) or 'none'}"
        + (f"; off: {', '.join(off)}" if off else "")
    ]
    labels = {
        normaliser.value: f"{normaliser} ({rule.description}, shown as {rule.token})"
        for normaliser, rule in NORMALISERS.items()
    }
    for position, pattern in enumerate(result.volatile_patterns):
        name = volatile_pattern_name(position)
        labels[name] = f"{name} {pattern!r} (shown as {VOLATILE_PLACEHOLDER})"
    for name, group in itertools.groupby(result.normalised, key=lambda found: found.normaliser):
        found = list(group)
        cells = "cell" if len(found) == 1 else "cells"
        where = ", ".join(f"{each.cell_index} ({_places(each)})" for each in found)
        lines.append(f"normalised: {labels.get(name, name)} in {cells} {where}")
    return lines


def _places(found: Normalisation) -> str:
    return f"{found.places} place" + ("" if found.places == 1 else "s")


def _cell_view(cell: CellComparison, original_name: str, reproduced_name: str) -> dict[str, Any]:
    return {
        "index": cell.index,
        "cell_id": cell.cell_id,
        "source": cell.source,
        "outputs": [
            _output_view(output, original_name, reproduced_name)
            for output in cell.outputs
            if not output.equal
        ],
    }


def _output_view(
    output: OutputComparison, original_name: str, reproduced_name: str
) -> dict[str, Any]:
    images = []
    if output.original_image is not None:
        images.append((original_name, _data_uri(output.mime, output.original_image)))
    if output.reproduced_image is not None:
        images.append((reproduced_name, _data_uri(output.mime, output.reproduced_image)))
    if output.diff_image is not None:
        caption = "differing pixels in red"
        if output.differing_fraction is not None:
            caption = f"{output.differing_fraction:.3%} of pixels differ (red)"
        images.append((caption, _data_uri("image/png", output.diff_image)))
    return {
        "output_index": output.output_index,
        "kind": output.kind,
        "mime": output.mime,
        "message": output.message,
        "diff_lines": [_diff_line(line) for line in output.text_diff.splitlines()],
        "images": images,
    }


def _diff_line(line: str) -> tuple[str, str]:
    """A unified diff line with the CSS class that colours it."""
    if line.startswith(("---", "+++")):
        css_class = "file"
    elif line.startswith("@@"):
        css_class = "hunk"
    elif line.startswith("-"):
        css_class = "removed"
    elif line.startswith("+"):
        css_class = "added"
    else:
        css_class = "context"
    return css_class, line


def _data_uri(mime: str | None, data: bytes) -> str:
    return f"data:{mime or 'application/octet-stream'};base64,{base64.b64encode(data).decode()}"
