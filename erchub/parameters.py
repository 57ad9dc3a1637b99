"""Notebook parameters, read and injected the way papermill does it.

The parameters are the assignments in the first cell tagged ``parameters``. For Python notebooks
:func:`read_parameters` keeps the semantics of papermill's ``PythonTranslator.inspect`` (one
:class:`Parameter` per assignment to a plain name: the annotation or ``# type:`` comment as the
type, the value's source as the default, the comment on the definition's last line as the help)
but reads the cell with Python's own parser instead of papermill's line patterns, which
mis-split values containing ``#`` or ``=`` (``color = "#ff0000"``, ``s = "a=b"``), drop
annotations such as ``int | None``, and break multi-line strings. Concretely:

* IPython syntax (``%matplotlib inline``, ``!ls``) is first turned into Python by IPython;
* only top-level assignments to one name count (``x = 1``, ``x: int = 1``); the last assignment
  of a name wins, at the place of its first;
* a value spanning several lines is given as one line (``ast.unparse``), comments dropped;
* without an annotation or type comment, the type is that of the default when the default is a
  literal (``n = 10`` is an ``int``, ``x = None`` a ``NoneType``), else ``"None"`` (papermill's
  "unknown");
* a cell that is not valid Python even so is read by papermill's line-based inspector.

Notebooks in other languages use papermill's translator for their kernel (most have no
inspector: no parameters). :func:`inject_parameters` is papermill's ``parameterize_notebook``.

For the ERC panel (the server extension's parameters and run endpoints), without I/O:
:func:`bindings_for` picks a notebook's erc.yml ``ui_bindings``; :func:`parameter_specs` merges
them with the parameters cell into widgets (:class:`ParameterSpec`), with warnings for bindings
that do not fit; :func:`check_values` adds the widgets' bounds and choices to
:func:`parse_values`; :func:`bound_cells` names the cells a notebook's bindings point at.
"""

from __future__ import annotations

import ast
import copy
import io
import json
import math
import re
import tokenize
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import nbformat
from IPython.core.inputtransformer2 import TransformerManager
from papermill.exceptions import PapermillException
from papermill.parameterize import parameterize_notebook
from papermill.translators import PythonTranslator, papermill_translators

from erchub.errors import InvalidParameter

PARAMETERS_TAG = "parameters"
DEFAULT_KERNEL_NAME = "python3"
DEFAULT_LANGUAGE = "python"
#: papermill's name for an unknown type
UNKNOWN_TYPE = "None"
TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")
#: the values papermill's Python translator writes as Python literals
TRANSLATABLE_TYPES = (type(None), bool, int, float, str, list, dict)
TYPE_COMMENT_PATTERN = re.compile(r"type:\s*(?P<type>\S*)\s*(?P<help>.*)")


@dataclass(frozen=True)
class Parameter:
    """One notebook parameter, as papermill's inspector describes it."""

    name: str
    #: the declared or inferred type, ``"None"`` when unknown
    type: str
    #: the default value's source text
    default: str
    #: the comment after the definition
    help: str

    @property
    def default_value(self) -> object:
        """The default as a Python value, None when it is not a literal."""
        return _literal(self.default)[1]


def _literal(text: str) -> tuple[bool, object]:
    """(True, value) when ``text`` is a Python literal, else (False, None)."""
    try:
        return True, ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    for cell in nb.cells:
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            return cell
    return None


def _kernel_and_language(nb: nbformat.NotebookNode) -> tuple[str, str]:
    """The notebook's kernel name and language (papermill's lookup, with Python as default)."""
    kernelspec = nb.metadata.get("kernelspec", {})
    language = nb.metadata.get("language_info", {}).get("name") or kernelspec.get("language")
    return kernelspec.get("name") or DEFAULT_KERNEL_NAME, language or DEFAULT_LANGUAGE


def read_parameters(nb: nbformat.NotebookNode) -> list[Parameter]:
    """The parameters of ``nb`` in cell order; empty when no cell is tagged ``parameters``."""
    cell = _parameters_cell(nb)
    if cell is None:
        return []
    kernel_name, language = _kernel_and_language(nb)
    if language.lower() == DEFAULT_LANGUAGE:
        return _read_python(cell)
    try:
        translator = papermill_translators.find_translator(kernel_name, language)
        found = translator.inspect(cell)
    except (PapermillException, NotImplementedError):
        return []
    return [Parameter(p.name, p.inferred_type_name, p.default, p.help) for p in found]


def _read_python(cell: nbformat.NotebookNode) -> list[Parameter]:
    source = TransformerManager().transform_cell(cell.source)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        definitions = [
            (p.name, p.inferred_type_name, p.default, p.help)
            for p in PythonTranslator.inspect(cell)
        ]
    else:
        definitions = _python_definitions(source, tree)
    found: dict[str, Parameter] = {}
    for name, type_name, default, help_text in definitions:
        if type_name == UNKNOWN_TYPE:
            is_literal, value = _literal(default)
            type_name = type(value).__name__ if is_literal else UNKNOWN_TYPE
        found[name] = Parameter(name=name, type=type_name, default=default, help=help_text)
    return list(found.values())


def _python_definitions(source: str, tree: ast.Module) -> list[tuple[str, str, str, str]]:
    """(name, type, default, help) of each top-level assignment to one name."""
    comments = {
        token.start[0]: token.string[1:].strip()
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    definitions = []
    for node in tree.body:
        target: ast.expr
        annotation: ast.expr | None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, annotation = node.targets[0], None
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, annotation = node.target, node.annotation
        else:
            continue
        value = node.value
        if not isinstance(target, ast.Name) or value is None:
            continue
        if value.lineno == value.end_lineno:
            default = ast.get_source_segment(source, value) or ast.unparse(value)
        else:
            default = ast.unparse(value)
        type_name, help_text = UNKNOWN_TYPE, comments.get(node.end_lineno or node.lineno, "")
        type_comment = TYPE_COMMENT_PATTERN.fullmatch(help_text)
        if type_comment is not None:
            type_name, help_text = type_comment["type"], type_comment["help"]
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            type_name = annotation.value
        elif annotation is not None:
            type_name = ast.unparse(annotation)
        definitions.append((target.id, type_name, default, help_text))
    return definitions


def parse_values(parameters: list[Parameter], raw: Mapping[str, object]) -> dict[str, object]:
    """Check and convert values for ``parameters``.

    Strings (from the command line: ``n=10``, ``flag=true``, ``xs=[1,2]``) are parsed for the
    parameter's type; typed values (from JSON) must fit it. int; float (an int is accepted);
    bool (true/false, 1/0, yes/no in any case); str; list and dict (a Python or JSON literal).
    Another or unknown type takes a Python literal, else the string itself.
    Raises :class:`InvalidParameter` for an unknown name or a value that does not fit.
    """
    known = {parameter.name: parameter for parameter in parameters}
    values: dict[str, object] = {}
    for name, value in raw.items():
        parameter = known.get(name)
        if parameter is None:
            listing = f"known: {', '.join(known)}" if known else "the notebook has no parameters"
            raise InvalidParameter(f"unknown parameter {name!r} ({listing})")
        kind = _base_type(parameter.type)
        convert = _CONVERTERS.get(kind, _convert_untyped)
        try:
            values[name] = convert(value)
        except (ValueError, TypeError):
            raise InvalidParameter(
                f"parameter {name!r} expects {kind}, got {_show(value)}"
            ) from None
    return values


def _base_type(type_name: str) -> str:
    """``int`` for ``int``, ``"int"``; ``list`` for ``list[int]``, ``typing.List[int]``."""
    name = type_name.strip().strip("'\"").split("[", 1)[0].rsplit(".", 1)[-1]
    return name.lower() if name in ("List", "Dict") else name


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value, default=repr)


def _convert_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError(value)


def _convert_float(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        return float(value.strip())
    raise TypeError(value)


def _convert_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise ValueError(value)


def _convert_str(value: object) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(value)


def _container_converter(kind: type) -> Callable[[object], object]:
    def convert(value: object) -> object:
        if isinstance(value, str):
            text = value
            is_literal, value = _literal(text)
            if not is_literal:
                value = json.loads(text)  # JSON spellings: true, false, null
        if isinstance(value, kind):
            return value
        raise TypeError(value)

    return convert


def _convert_untyped(value: object) -> object:
    if not isinstance(value, str):
        return value
    is_literal, literal = _literal(value)
    return literal if is_literal and isinstance(literal, TRANSLATABLE_TYPES) else value


_CONVERTERS: dict[str, Callable[[object], object]] = {
    "int": _convert_int,
    "float": _convert_float,
    "bool": _convert_bool,
    "str": _convert_str,
    "list": _container_converter(list),
    "dict": _container_converter(dict),
}


def inject_parameters(
    nb: nbformat.NotebookNode, values: Mapping[str, object]
) -> nbformat.NotebookNode:
    """A copy of ``nb`` with an ``injected-parameters`` cell setting ``values`` (papermill's).

    The cell goes right after the ``parameters`` cell (replacing an earlier injected cell, or at
    the top when there is no parameters cell). ``nb`` itself is left as it was.
    """
    kernel_name, language = _kernel_and_language(nb)
    parameterized = copy.deepcopy(nb)
    # What papermill's own notebook loader adds before it parameterizes.
    parameterized.metadata.setdefault("papermill", {})
    for cell in parameterized.cells:
        cell.setdefault("metadata", {}).setdefault("tags", [])
    return parameterize_notebook(
        parameterized, dict(values), kernel_name=kernel_name, language=language
    )


def kernel_name(nb: nbformat.NotebookNode) -> str:
    """The name of the kernel ``nb`` runs in (``python3`` when it names none)."""
    return _kernel_and_language(nb)[0]


# --- the ERC panel: parameters as widgets (erc.yml ui_bindings), values, result outputs -------

#: JSON names of the parameter types a widget edits; anything else is "unknown"
SPEC_TYPES = ("int", "float", "bool", "str", "list", "dict")
UNKNOWN_SPEC_TYPE = "unknown"
NUMBER_TYPES = ("int", "float")
#: the widget a parameter gets without a binding saying otherwise
DEFAULT_WIDGETS = {"int": "number", "float": "number", "bool": "checkbox", "str": "text"}
TEXT_WIDGET = "text"
#: papermill's tag of the cell it injects (the check does not pair it with an original cell)
INJECTED_TAG = "injected-parameters"


@dataclass(frozen=True)
class Widget:
    """How the ERC panel edits a parameter."""

    #: slider, number, text, checkbox or select
    kind: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    #: the values a select offers, None for other widgets
    choices: tuple[object, ...] | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "min": self.min,
            "max": self.max,
            "step": self.step,
            "choices": None if self.choices is None else list(self.choices),
        }


@dataclass(frozen=True)
class ParameterSpec:
    """A notebook parameter as the ERC panel shows it: the parameter, with its binding."""

    parameter: Parameter
    label: str
    help: str
    widget: Widget

    @property
    def name(self) -> str:
        return self.parameter.name

    @property
    def type(self) -> str:
        """int, float, bool, str, list, dict, or unknown."""
        kind = _base_type(self.parameter.type)
        return kind if kind in SPEC_TYPES else UNKNOWN_SPEC_TYPE

    @property
    def default(self) -> object:
        """The default as a JSON value; None when it is not a literal JSON can hold."""
        value = self.parameter.default_value
        return value if _is_json(value) else None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.type,
            "default": self.default,
            "default_source": self.parameter.default,
            "help": self.help,
            "label": self.label,
            "widget": self.widget.to_json(),
        }


def _is_json(value: object) -> bool:
    """Whether ``value`` is what JSON holds as it is (no tuples, sets, infinities, int keys)."""
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_is_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_json(item) for key, item in value.items())
    return False


def bindings_for(
    bindings: Sequence[Mapping[str, Any]], notebook: str, main: str
) -> list[tuple[int, Mapping[str, Any]]]:
    """The ui_bindings (with their index in erc.yml) of ``notebook``, a path relative to the
    ERC root; a binding naming no notebook is one of ``main``."""
    return [
        (index, binding)
        for index, binding in enumerate(bindings)
        if PurePosixPath(binding.get("notebook", main)) == PurePosixPath(notebook)
    ]


def parameter_specs(
    nb: nbformat.NotebookNode, bindings: Sequence[tuple[int, Mapping[str, Any]]]
) -> tuple[list[ParameterSpec], list[str]]:
    """The parameters of ``nb`` with the widgets the ERC panel shows, and warnings.

    ``bindings`` are the notebook's ui_bindings from :func:`bindings_for` (validated by
    :func:`erchub.erc.parse_erc`). Without a binding: a number input for int and float, a
    checkbox for bool, a text input for anything else; the label is the name, the help the
    cell's comment. A binding sets label and help; ``widget``, ``min``/``max``/``step`` (a
    slider when both min and max are given) and ``choices`` (a select) where they fit the
    parameter's type. What does not fit is left out with a warning naming the binding: a
    parameter the cell does not define, bounds on what is no number, a checkbox for what is no
    bool, choices or a default that are not values of the parameter, cells the notebook lacks.
    """
    parameters = read_parameters(nb)
    by_name = {binding["parameter"]: (index, binding) for index, binding in bindings}
    warnings = [
        f"erc.yml: ui_bindings[{index}]: parameter {binding['parameter']!r} is not in the"
        " parameters cell"
        for index, binding in bindings
        if binding["parameter"] not in {parameter.name for parameter in parameters}
    ]
    specs = []
    for parameter in parameters:
        index, binding = by_name.get(parameter.name, (None, {}))
        where = f"erc.yml: ui_bindings[{index}]"
        widget, problems = _widget(parameter, binding)
        warnings.extend(f"{where}: {problem}" for problem in problems)
        label = binding.get("label") or parameter.name
        specs.append(ParameterSpec(parameter, label, binding.get("help") or parameter.help, widget))
    known_cells = _cell_names(nb)
    for index, binding in bindings:
        warnings.extend(
            f"erc.yml: ui_bindings[{index}]: cells: no cell has the id or tag {cell!r}"
            for cell in binding.get("cells", [])
            if cell not in known_cells
        )
    return specs, warnings


def _widget(parameter: Parameter, binding: Mapping[str, Any]) -> tuple[Widget, list[str]]:
    """The widget of ``parameter`` under ``binding``, and what of the binding does not fit."""
    kind = _base_type(parameter.type)
    default_kind = DEFAULT_WIDGETS.get(kind, TEXT_WIDGET)
    problems: list[str] = []
    asked = binding.get("widget")
    if "choices" in binding:
        choices, wrong = _choices(parameter, binding["choices"])
        if wrong is None:
            return _checked_default(parameter, Widget("select", choices=choices), problems)
        problems.append(f"choices: {wrong}; the parameter gets a {default_kind} widget")
        return Widget(default_kind), problems
    bounds = {key: binding[key] for key in ("min", "max", "step") if key in binding}
    if asked == "checkbox" and kind != "bool":
        problems.append(f"widget: a checkbox is for a bool, {parameter.name!r} is {kind}")
        asked = None
    if bounds or asked in ("slider", "number"):
        if kind not in NUMBER_TYPES:
            problems.append(
                f"widget: a {asked or 'slider'} is for an int or float,"
                f" {parameter.name!r} is {kind}"
            )
            return Widget(default_kind), problems
        slider = asked == "slider" or (asked is None and "min" in bounds and "max" in bounds)
        widget = Widget("slider" if slider else "number", **bounds)
        return _checked_default(parameter, widget, problems)
    return Widget(asked or default_kind), problems


def _choices(parameter: Parameter, given: list[object]) -> tuple[tuple[object, ...], str | None]:
    """The choices as values of ``parameter`` (``[1, 2]`` of a float are 1.0 and 2.0), or the
    reason one is not such a value."""
    converted = []
    for position, choice in enumerate(given):
        try:
            converted.append(parse_values([parameter], {parameter.name: choice})[parameter.name])
        except InvalidParameter:
            return (), f"choices[{position}] = {_show(choice)} is no {parameter.type}"
    return tuple(converted), None


def _checked_default(
    parameter: Parameter, widget: Widget, problems: list[str]
) -> tuple[Widget, list[str]]:
    """``widget``, with a problem when the parameter's default is outside what it offers."""
    default = parameter.default_value
    if _is_json(default) and _outside(widget, default) is not None:
        problems.append(f"the default {parameter.default} is {_outside(widget, default)}")
    return widget, problems


def _outside(widget: Widget, value: object) -> str | None:
    """How ``value`` misses the bounds or choices of ``widget``; None when it does not."""
    if widget.choices is not None:
        if not any(_json_equal(value, choice) for choice in widget.choices):
            return "not among the choices " + ", ".join(_show(c) for c in widget.choices)
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if widget.min is not None and value < widget.min:
        return f"below the minimum {widget.min:g}"
    if widget.max is not None and value > widget.max:
        return f"above the maximum {widget.max:g}"
    return None


def _json_equal(a: object, b: object) -> bool:
    """Equal as JSON values: ``1`` is not ``true``, ``1`` is not ``1.0``."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def check_values(specs: Sequence[ParameterSpec], raw: Mapping[str, object]) -> dict[str, object]:
    """:func:`parse_values` for the panel's parameters, then their widgets' bounds and choices.

    Raises :class:`InvalidParameter` naming the parameter: unknown, of the wrong type, outside
    min/max, not among the choices, or without a JSON form (a set; tuples become lists).
    """
    values = parse_values([spec.parameter for spec in specs], raw)
    widgets = {spec.name: spec.widget for spec in specs}
    for name, value in values.items():
        try:  # a literal such as {1, 2} has no JSON form to show and pass on
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise InvalidParameter(
                f"parameter {name!r}: {_show(raw[name])} is not a value JSON can carry"
            ) from None
        problem = _outside(widgets[name], value)
        if problem is not None:
            raise InvalidParameter(f"parameter {name!r}: {_show(raw[name])} is {problem}")
    return values


def values_used(specs: Sequence[ParameterSpec], values: Mapping[str, object]) -> dict[str, object]:
    """Every parameter's value in a run: the given one, else its default (as JSON)."""
    return {spec.name: values.get(spec.name, spec.default) for spec in specs}


def bound_cells(bindings: Sequence[tuple[int, Mapping[str, Any]]]) -> list[str]:
    """The cell ids or tags the bindings name for showing results, in order, each once."""
    cells: dict[str, None] = {}
    for _, binding in bindings:
        cells.update(dict.fromkeys(binding.get("cells", [])))
    return list(cells)


def _cell_names(nb: nbformat.NotebookNode) -> set[str]:
    names = set()
    for cell in nb.cells:
        names.update(cell.get("metadata", {}).get("tags", []))
        if cell.get("id"):
            names.add(cell["id"])
    return names
