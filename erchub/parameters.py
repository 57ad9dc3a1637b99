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
"""

from __future__ import annotations

import ast
import copy
import io
import json
import re
import tokenize
from collections.abc import Callable, Mapping
from dataclasses import dataclass

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
