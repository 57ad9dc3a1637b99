"""Compare a published notebook's outputs with a re-executed copy: the ERC ``check`` step.

Pure logic: both notebooks arrive in memory and a :class:`CheckResult` comes back; nothing is
read or written. Code cells are paired by position, outputs by index within a cell. Each output
is compared through its richest comparable representation: rasters pixel by pixel with a
tolerance, SVG, HTML and text as normalised text, errors by name and value.

Text normalisation (its layers, the normalisers and their defaults): :mod:`erchub.normalising`.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import io
import json
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from nbformat import NotebookNode
from PIL import Image, ImageChops, UnidentifiedImageError

from erchub.erc import Normaliser
from erchub.errors import InvalidERC
from erchub.normalising import (
    DEFAULT_NORMALISERS,
    TextNormaliser,
    compile_volatile_patterns,
    normalisers,
    volatile_pattern_name,
)
from erchub.parameters import INJECTED_TAG

#: cell tag that excludes a cell from the check
VOLATILE_TAG = "erc-volatile"
DEFAULT_IMAGE_TOLERANCE = 0.001
DEFAULT_PIXEL_THRESHOLD = 16
#: a unified diff is cut after this many lines so one changed large table keeps a report readable
MAX_DIFF_LINES = 400

RASTER_MIMES = ("image/png", "image/jpeg")
SVG_MIME = "image/svg+xml"
TEXT_MIMES = ("text/html", "text/markdown", "text/latex", "application/json", "text/plain")
#: richest first: an output is compared through the first of these it carries
MIME_PREFERENCE = (*RASTER_MIMES, SVG_MIME, *TEXT_MIMES)


class Verdict(StrEnum):
    """What a check concludes about a notebook; the job record and the API keep the value."""

    #: every compared output of the published notebook was reproduced
    PASS = "pass"
    #: outputs (or the notebook's structure) differ
    FAIL = "fail"
    #: the published notebook stores no outputs to compare with (saved without running it),
    #: while the reproduced one has some: they can become its reference
    NO_REFERENCE_OUTPUTS = "no_reference_outputs"

    @property
    def label(self) -> str:
        """The verdict as the report's headline: ``PASS``, ``FAIL``, ``NO REFERENCE OUTPUTS``."""
        return self.value.replace("_", " ").upper()


@dataclass
class CheckOptions:
    """How strictly to compare: what counts as volatile and how far images may differ."""

    #: regular expressions; every match in a text output is replaced by a placeholder
    volatile_patterns: Sequence[str] = ()
    #: ids of cells not compared at all (as are cells tagged ``erc-volatile``)
    volatile_cells: Sequence[str] = ()
    #: largest fraction of differing pixels (0..1) with which an image still passes
    image_tolerance: float = DEFAULT_IMAGE_TOLERANCE
    #: largest difference of one colour channel (0..255) with which a pixel still counts as equal
    pixel_threshold: int = DEFAULT_PIXEL_THRESHOLD
    #: the built-in normalisers to apply (names or :class:`Normaliser`), kept in their order
    normalise: Collection[str] = DEFAULT_NORMALISERS

    def __post_init__(self) -> None:
        for name in ("volatile_patterns", "volatile_cells", "normalise"):
            value = getattr(self, name)
            # A lone string is a sequence too; iterating it would compare per character.
            if isinstance(value, str):
                raise InvalidERC(f"check option {name} must be a list of strings, got {value!r}")
            setattr(self, name, tuple(value))
        self.normalise = normalisers(self.normalise)
        if not 0 <= self.image_tolerance <= 1:
            raise InvalidERC(
                f"check option image_tolerance must be a fraction between 0 and 1, "
                f"got {self.image_tolerance!r}"
            )
        if not 0 <= self.pixel_threshold <= 255:
            raise InvalidERC(
                f"check option pixel_threshold must be between 0 and 255, "
                f"got {self.pixel_threshold!r}"
            )
        compile_volatile_patterns(self.volatile_patterns)

    @classmethod
    def from_settings(cls, settings: Any) -> CheckOptions:
        """Options from an ERC's check settings (``erchub.erc.CheckSettings`` or alike).

        Attributes that are missing or None take the defaults.
        """

        def setting(name: str, default: Any) -> Any:
            value = getattr(settings, name, None)
            return default if value is None else value

        return cls(
            volatile_patterns=setting("volatile_patterns", ()),
            volatile_cells=setting("volatile_cells", ()),
            image_tolerance=setting("image_tolerance", DEFAULT_IMAGE_TOLERANCE),
            pixel_threshold=setting("pixel_threshold", DEFAULT_PIXEL_THRESHOLD),
            normalise=setting("normalise", DEFAULT_NORMALISERS),
        )


@dataclass
class OutputComparison:
    """The verdict on one output of one cell."""

    #: position of the cell in the original notebook's cells
    cell_index: int
    output_index: int
    #: "text" | "image" | "svg" | "error" | "missing" | "extra" | "type"
    kind: str
    mime: str | None
    equal: bool
    message: str
    #: unified diff of the normalised texts
    text_diff: str = ""
    original_image: bytes | None = None
    reproduced_image: bytes | None = None
    #: PNG: the reproduced image greyed, differing pixels in red
    diff_image: bytes | None = None
    differing_fraction: float | None = None
    #: places each normaliser replaced, by name (a :class:`Normaliser` or
    #: ``volatile_patterns[i]``): the larger count of the two notebooks' outputs
    normalised: dict[str, int] = field(default_factory=dict)


@dataclass
class CellComparison:
    """The verdict on one code cell of the original notebook."""

    #: position in the original notebook's cells
    index: int
    cell_id: str | None
    #: "identical" | "different" | "skipped"
    status: str
    source: str
    outputs: list[OutputComparison] = field(default_factory=list)

    @property
    def normalised(self) -> dict[str, int]:
        """Places each normaliser replaced in the cell's outputs, by name."""
        places: Counter[str] = Counter()
        for output in self.outputs:
            places.update(output.normalised)
        return dict(places)


@dataclass(frozen=True)
class Normalisation:
    """A normaliser replaced text in the outputs of a cell: that much was not compared."""

    #: a :class:`Normaliser`'s name or ``volatile_patterns[i]``
    normaliser: str
    cell_index: int
    cell_id: str | None
    #: how many matches it replaced (in the notebook with more of them)
    places: int


@dataclass
class CheckResult:
    """The verdict on a whole notebook."""

    verdict: Verdict
    cells: list[CellComparison]
    #: one line per problem, naming the cell and output
    messages: list[str]
    #: the built-in normalisers that were applied, in order
    normalisers: tuple[Normaliser, ...] = ()
    #: the ERC's volatile patterns that were applied
    volatile_patterns: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    @property
    def normalised(self) -> list[Normalisation]:
        """Where normalisers replaced text, by normaliser (in the order applied), then cell."""
        names = [volatile_pattern_name(i) for i in range(len(self.volatile_patterns))]
        names += [normaliser.value for normaliser in self.normalisers]
        return [
            Normalisation(name, cell.index, cell.cell_id, places)
            for name in names
            for cell in self.cells
            if (places := cell.normalised.get(name, 0))
        ]

    @property
    def counts(self) -> dict[str, int]:
        compared = [cell for cell in self.cells if cell.status != "skipped"]
        outputs = [output for cell in compared for output in cell.outputs]
        return {
            "cells_compared": len(compared),
            "cells_identical": sum(cell.status == "identical" for cell in compared),
            "cells_different": sum(cell.status == "different" for cell in compared),
            "cells_skipped": len(self.cells) - len(compared),
            "outputs_compared": len(outputs),
            "outputs_different": sum(not output.equal for output in outputs),
        }

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable summary: verdict, counts, messages and every difference.

        Diffs and images stay out: the summary goes into job records, the report shows them.
        """
        return {
            "passed": self.passed,
            "verdict": self.verdict.value,
            "counts": self.counts,
            "messages": list(self.messages),
            "differences": [
                {
                    "cell_index": output.cell_index,
                    "cell_id": cell.cell_id,
                    "output_index": output.output_index,
                    "kind": output.kind,
                    "mime": output.mime,
                    "message": output.message,
                    "differing_fraction": output.differing_fraction,
                }
                for cell in self.cells
                if cell.status == "different"
                for output in cell.outputs
                if not output.equal
            ],
            "skipped_cells": [
                {"index": cell.index, "cell_id": cell.cell_id}
                for cell in self.cells
                if cell.status == "skipped"
            ],
            "normalisers": [normaliser.value for normaliser in self.normalisers],
            "normalised": [
                {
                    "normaliser": normalisation.normaliser,
                    "cell_index": normalisation.cell_index,
                    "cell_id": normalisation.cell_id,
                    "places": normalisation.places,
                }
                for normalisation in self.normalised
            ],
        }


def compare_notebooks(
    original: NotebookNode,
    reproduced: NotebookNode,
    options: CheckOptions | None = None,
) -> CheckResult:
    """Compare every output of every code cell of ``original`` with ``reproduced``."""
    options = options or CheckOptions()
    applied = normalisers(options.normalise)
    normalise = TextNormaliser(compile_volatile_patterns(options.volatile_patterns), applied)
    original_code = [
        (index, cell) for index, cell in enumerate(original.cells) if cell.cell_type == "code"
    ]
    reproduced_code = [cell for cell in reproduced.cells if cell.cell_type == "code"]
    # Only the reproduced notebook may have the cell papermill injects.
    if not any(_has_tag(cell, INJECTED_TAG) for _, cell in original_code):
        reproduced_code = [cell for cell in reproduced_code if not _has_tag(cell, INJECTED_TAG)]

    messages = []
    if len(original_code) != len(reproduced_code):
        messages.append(
            f"structure differs: the original notebook has {len(original_code)} code cells, "
            f"the reproduced notebook {len(reproduced_code)}"
        )
    cells = []
    for position, (index, cell) in enumerate(original_code):
        counterpart = reproduced_code[position] if position < len(reproduced_code) else None
        comparison = _compare_cell(index, cell, counterpart, options, normalise)
        cells.append(comparison)
        if comparison.status != "different":
            continue
        label = _cell_label(comparison)
        if counterpart is None:
            messages.append(f"{label}: no counterpart in the reproduced notebook")
        messages.extend(
            f"{label} output {output.output_index}: {output.message}"
            for output in comparison.outputs
            if not output.equal
        )
    verdict = decide_verdict(len(original_code) == len(reproduced_code), cells)
    if verdict is Verdict.NO_REFERENCE_OUTPUTS:
        # every output is "extra": one line says why instead of one line per output
        produced = sum(len(cell.outputs) for cell in cells)
        messages = [
            "the published notebook stores no outputs to compare with (it was saved without "
            f"running it); the reproduced notebook's {produced} output(s) can be its reference"
        ]
    return CheckResult(
        verdict=verdict,
        cells=cells,
        messages=messages,
        normalisers=applied,
        volatile_patterns=tuple(options.volatile_patterns),
    )


def decide_verdict(same_structure: bool, cells: Sequence[CellComparison]) -> Verdict:
    """The verdict on compared cells. A published notebook without a single output in the
    compared cells (saved without running it) is no reference: when the reproduced notebook has
    outputs there, they are not differences but what the reference could be."""
    if not same_structure:
        return Verdict.FAIL
    if all(cell.status != "different" for cell in cells):
        return Verdict.PASS
    compared = [output for cell in cells if cell.status != "skipped" for output in cell.outputs]
    if all(output.kind == "extra" for output in compared):
        return Verdict.NO_REFERENCE_OUTPUTS
    return Verdict.FAIL


def _compare_cell(
    index: int,
    cell: NotebookNode,
    counterpart: NotebookNode | None,
    options: CheckOptions,
    normalise: TextNormaliser,
) -> CellComparison:
    comparison = CellComparison(
        index=index,
        cell_id=cell.get("id"),
        status="skipped",
        source=_joined(cell.get("source", "")),
    )
    if _is_volatile(cell, options) or (
        counterpart is not None and _is_volatile(counterpart, options)
    ):
        return comparison
    originals = _merged_streams(cell.get("outputs", []))
    reproductions = _merged_streams(counterpart.get("outputs", [])) if counterpart else []
    for output_index in range(max(len(originals), len(reproductions))):
        if output_index >= len(reproductions):
            outcome = _unpaired(originals[output_index], "missing", normalise)
        elif output_index >= len(originals):
            outcome = _unpaired(reproductions[output_index], "extra", normalise)
        else:
            outcome = _compare_output(
                originals[output_index], reproductions[output_index], options, normalise
            )
        comparison.outputs.append(
            OutputComparison(cell_index=index, output_index=output_index, **outcome)
        )
    identical = counterpart is not None and all(output.equal for output in comparison.outputs)
    comparison.status = "identical" if identical else "different"
    return comparison


@dataclass(frozen=True)
class _View:
    """The part of an output that is compared."""

    #: "text" | "image" | "svg" | "error"
    kind: str
    mime: str | None
    #: names the output in messages: a MIME type, a stream name or "error"
    label: str
    #: normalised text (text, svg, error)
    text: str = ""
    #: the image as shown (image: decoded raster, svg: the SVG document)
    picture: bytes | None = None
    #: places each normaliser replaced in ``text``, by name
    normalised: Mapping[str, int] = field(default_factory=dict)


def _view(output: Mapping[str, Any], mime: str | None, normalise: TextNormaliser) -> _View:
    """``output`` seen through ``mime``, the representation chosen from the original."""
    output_type = output["output_type"]
    if output_type == "error":
        text, places = normalise(_error_text(output))
        return _View("error", None, "error", text, normalised=places)
    if output_type == "stream":
        name = output.get("name", "stream")
        text, places = normalise(_joined(output.get("text", "")), stream=True)
        return _View("text", None, name, text, normalised=places)
    if mime is None:
        return _View("text", None, "output data")
    value = output["data"][mime]
    if mime in RASTER_MIMES:
        return _View("image", mime, mime, picture=_decoded(value))
    if mime == SVG_MIME:
        svg = _joined(value)
        text, places = normalise.markup(svg)
        return _View("svg", mime, mime, text, svg.encode(), places)
    if mime == "text/html":
        text, places = normalise.markup(_mime_text(value))
        return _View("text", mime, mime, text, normalised=places)
    text, places = normalise(_mime_text(value))
    return _View("text", mime, mime, text, normalised=places)


def _compare_output(
    original: Mapping[str, Any],
    reproduced: Mapping[str, Any],
    options: CheckOptions,
    normalise: TextNormaliser,
) -> dict[str, Any]:
    """Keyword arguments of an OutputComparison, without the position."""
    if _category(original) != _category(reproduced):
        message = f"original is {_describe(original)}, reproduced is {_describe(reproduced)}"
        return {"kind": "type", "mime": None, "equal": False, "message": message}
    mime = _preferred_mime(original.get("data", {}))
    reproduced_data = reproduced.get("data", {})
    if mime is not None and mime not in reproduced_data:
        offered = ", ".join(sorted(reproduced_data)) or "no data"
        message = f"original has {mime}, reproduced has only {offered}"
        return {"kind": "type", "mime": mime, "equal": False, "message": message}
    original_view = _view(original, mime, normalise)
    reproduced_view = _view(reproduced, mime, normalise)
    if original_view.kind == "image":
        return _compare_rasters(original_view, reproduced_view, options)
    # Counted where there are more of them: "|" keeps the larger count of each name.
    normalised = dict(Counter(original_view.normalised) | Counter(reproduced_view.normalised))
    outcome: dict[str, Any] = {"kind": original_view.kind, "mime": mime, "normalised": normalised}
    if original_view.text == reproduced_view.text:
        return {**outcome, "equal": True, "message": f"{original_view.label} identical"}
    diff, removed, added = _unified_diff(original_view.text, reproduced_view.text)
    return {
        **outcome,
        "equal": False,
        "message": f"{original_view.label} differs: {removed} line(s) removed, {added} added",
        "text_diff": diff,
        "original_image": original_view.picture,
        "reproduced_image": reproduced_view.picture,
    }


def _unpaired(output: Mapping[str, Any], kind: str, normalise: TextNormaliser) -> dict[str, Any]:
    """An output only one notebook has, shown in full: as removed (missing) or added (extra)."""
    view = _view(output, _preferred_mime(output.get("data", {})), normalise)
    where = "missing from the reproduced notebook" if kind == "missing" else "extra in reproduced"
    outcome = {
        "kind": kind,
        "mime": view.mime,
        "equal": False,
        "message": f"{_describe(output)} {where}",
        "normalised": dict(view.normalised),
    }
    if view.picture is not None:
        side = "original" if kind == "missing" else "reproduced"
        return {**outcome, f"{side}_image": view.picture}
    texts = (view.text, "") if kind == "missing" else ("", view.text)
    return {**outcome, "text_diff": _unified_diff(*texts)[0]}


def _compare_rasters(
    original_view: _View, reproduced_view: _View, options: CheckOptions
) -> dict[str, Any]:
    mime = original_view.label
    original = original_view.picture or b""
    reproduced = reproduced_view.picture or b""
    outcome: dict[str, Any] = {"kind": "image", "mime": mime, "equal": True}
    if original == reproduced:
        return {**outcome, "message": f"{mime} identical", "differing_fraction": 0.0}
    unequal = {
        **outcome,
        "equal": False,
        "original_image": original,
        "reproduced_image": reproduced,
    }
    try:
        original_image = _on_white(original)
        reproduced_image = _on_white(reproduced)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
        return {**unequal, "message": f"{mime} differs and cannot be decoded: {error}"}
    if original_image.size != reproduced_image.size:
        original_size = "x".join(map(str, original_image.size))
        reproduced_size = "x".join(map(str, reproduced_image.size))
        return {
            **unequal,
            "message": f"{mime} size differs: original {original_size}, "
            f"reproduced {reproduced_size} pixels",
        }
    mask = _differing_pixels(original_image, reproduced_image, options.pixel_threshold)
    width, height = mask.size
    fraction = mask.histogram()[255] / max(1, width * height)
    verdict = (
        f"{fraction:.3%} of pixels differ by more than {options.pixel_threshold}/255 "
        f"(tolerance {options.image_tolerance:.3%})"
    )
    if fraction <= options.image_tolerance:
        return {
            **outcome,
            "message": f"{mime} within tolerance: {verdict}",
            "differing_fraction": fraction,
        }
    return {
        **unequal,
        "message": f"{mime} differs: {verdict}",
        "differing_fraction": fraction,
        "diff_image": _diff_png(reproduced_image, mask),
    }


def _on_white(data: bytes) -> Image.Image:
    """The image as a viewer shows it on a white page: transparency flattened, RGB."""
    with Image.open(io.BytesIO(data)) as image:
        rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _differing_pixels(
    original: Image.Image, reproduced: Image.Image, threshold: int
) -> Image.Image:
    """A mask, 255 where any channel differs by more than ``threshold``, else 0."""
    above_threshold = [0] * (threshold + 1) + [255] * (255 - threshold)
    red, green, blue = (
        channel.point(above_threshold)
        for channel in ImageChops.difference(original, reproduced).split()
    )
    return ImageChops.lighter(ImageChops.lighter(red, green), blue)


def _diff_png(reproduced: Image.Image, mask: Image.Image) -> bytes:
    """The reproduced image faded to pale grey, differing pixels solid red."""
    faded = reproduced.convert("L").point(lambda value: 170 + value * 85 // 255).convert("RGB")
    red = Image.new("RGB", reproduced.size, (255, 0, 0))
    buffer = io.BytesIO()
    Image.composite(red, faded, mask).save(buffer, format="PNG")
    return buffer.getvalue()


def _unified_diff(original: str, reproduced: str) -> tuple[str, int, int]:
    """The unified diff, cut after MAX_DIFF_LINES, and how many lines it removes and adds."""
    lines = list(
        difflib.unified_diff(
            original.split("\n") if original else [],
            reproduced.split("\n") if reproduced else [],
            fromfile="original",
            tofile="reproduced",
            lineterm="",
        )
    )
    changes = lines[2:]
    removed = sum(line.startswith("-") for line in changes)
    added = sum(line.startswith("+") for line in changes)
    if len(lines) > MAX_DIFF_LINES:
        cut = len(lines) - MAX_DIFF_LINES
        lines = [*lines[:MAX_DIFF_LINES], f"… {cut} more diff lines not shown"]
    return "\n".join(lines), removed, added


def _merged_streams(outputs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Consecutive stream outputs of one name joined: how a stream splits depends on timing."""
    merged: list[Mapping[str, Any]] = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and output["output_type"] == "stream"
            and previous["output_type"] == "stream"
            and previous.get("name") == output.get("name")
        ):
            text = _joined(previous.get("text", "")) + _joined(output.get("text", ""))
            merged[-1] = {**previous, "text": text}
        else:
            merged.append(output)
    return merged


def _category(output: Mapping[str, Any]) -> tuple[str, ...]:
    """Outputs comparable with each other share a category. A value shown by ``display()``
    and the same value as the cell's result look the same, so both are "data"."""
    output_type = output["output_type"]
    if output_type == "stream":
        return ("stream", output.get("name", ""))
    if output_type in ("execute_result", "display_data"):
        return ("data",)
    return (output_type,)


def _describe(output: Mapping[str, Any]) -> str:
    output_type = output["output_type"]
    if output_type == "stream":
        return f"{output.get('name', '')} stream"
    if output_type == "error":
        return f"error {output.get('ename', '')}"
    mime = _preferred_mime(output.get("data", {}))
    return f"{output_type} ({mime or 'no data'})"


def _preferred_mime(data: Mapping[str, Any]) -> str | None:
    for mime in MIME_PREFERENCE:
        if mime in data:
            return mime
    # Outputs without a standard representation (e.g. only a library's own JSON) are compared
    # through one fixed choice among what they carry.
    return min(data, default=None)


def _has_tag(cell: Mapping[str, Any], tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", ())


def _is_volatile(cell: Mapping[str, Any], options: CheckOptions) -> bool:
    return _has_tag(cell, VOLATILE_TAG) or (
        cell.get("id") is not None and cell.get("id") in options.volatile_cells
    )


def _cell_label(cell: CellComparison) -> str:
    return f"cell {cell.index}" + (f" (id {cell.cell_id})" if cell.cell_id else "")


def _error_text(output: Mapping[str, Any]) -> str:
    return f"{output.get('ename', '')}: {output.get('evalue', '')}"


def _joined(value: str | Sequence[str]) -> str:
    """Notebook text as one string; raw notebook JSON may store it as a list of lines."""
    return value if isinstance(value, str) else "".join(value)


def _mime_text(value: Any) -> str:
    if isinstance(value, (str, list)):
        return _joined(value)
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)


def _decoded(value: str | Sequence[str] | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    try:
        return base64.b64decode(_joined(value))
    except binascii.Error:
        # Undecodable data still compares, as its text; Pillow reports it as no image.
        return _joined(value).encode()
