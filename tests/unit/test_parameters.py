"""Parameters: reading the parameters cell, checking values, injecting them (papermill's way)."""

from __future__ import annotations

from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from papermill.translators import PythonTranslator

from erchub.errors import InvalidParameter
from erchub.parameters import (
    Parameter,
    bindings_for,
    bound_cells,
    check_values,
    inject_parameters,
    kernel_name,
    parameter_specs,
    parse_values,
    read_parameters,
    values_used,
)
from tests.conftest import parameters_cell

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def notebook(*cells: Any, **metadata: Any) -> nbformat.NotebookNode:
    return new_notebook(cells=list(cells), metadata={"kernelspec": KERNELSPEC, **metadata})


def read(source: str) -> list[Parameter]:
    return read_parameters(notebook(new_markdown_cell("# t"), parameters_cell(source)))


def test_no_parameters_cell_means_no_parameters() -> None:
    assert read_parameters(notebook(new_code_cell("x = 1"))) == []


def test_first_parameters_cell_counts() -> None:
    nb = notebook(new_code_cell("a = 0"), parameters_cell("b = 1"), parameters_cell("c = 2"))
    assert [p.name for p in read_parameters(nb)] == ["b"]


def test_typed_commented_and_inferred() -> None:
    parameters = read(
        "# Parameters of the study\n"
        "n: int = 3  # number of runs\n"
        "alpha = 0.5  # type: float significance level\n"
        'label: "str" = "run"\n'
        "flag = True\n"
        "limit: int | None = None  # optional cap\n"
        "start = None\n"
        "seed = random_seed()  # computed\n"
    )
    assert parameters == [
        Parameter("n", "int", "3", "number of runs"),
        Parameter("alpha", "float", "0.5", "significance level"),
        Parameter("label", "str", '"run"', ""),
        Parameter("flag", "bool", "True", ""),
        Parameter("limit", "int | None", "None", "optional cap"),
        Parameter("start", "NoneType", "None", ""),
        Parameter("seed", "None", "random_seed()", "computed"),
    ]


def test_multi_line_defaults() -> None:
    parameters = read(
        "years = [\n    2019,  # first\n    2020,\n]  # years to plot\n"
        "opts = {\n    'a': 1,\n    'b': [1, 2],\n}\n"
        'text = """two\nlines"""\n'
    )
    assert parameters == [
        Parameter("years", "list", "[2019, 2020]", "years to plot"),
        Parameter("opts", "dict", "{'a': 1, 'b': [1, 2]}", ""),
        Parameter("text", "str", "'two\\nlines'", ""),
    ]
    assert [p.default_value for p in parameters] == [
        [2019, 2020],
        {"a": 1, "b": [1, 2]},
        "two\nlines",
    ]


def test_values_with_hash_and_equals_signs() -> None:
    # papermill's line patterns split these wrongly; the parser does not.
    parameters = read('color = "#ff0000"  # plot colour\nquery = "a=b"\nitems = ["k=v"]\n')
    assert parameters == [
        Parameter("color", "str", '"#ff0000"', "plot colour"),
        Parameter("query", "str", '"a=b"', ""),
        Parameter("items", "list", '["k=v"]', ""),
    ]


def test_ipython_syntax_and_other_statements() -> None:
    parameters = read(
        "%matplotlib inline\n!echo hi\nimport os\nprint('x')\na, b = 1, 2\nc = d = 3\n"
        "count += 1\nif True:\n    nested = 1\ntotal: int\nrate = 2  # per day\n"
    )
    assert parameters == [Parameter("rate", "int", "2", "per day")]


def test_last_assignment_wins_in_first_place() -> None:
    parameters = read("n = 1\nm = 2\nn = 5  # final\n")
    assert parameters == [Parameter("n", "int", "5", "final"), Parameter("m", "int", "2", "")]


def test_same_results_as_papermill_where_papermill_is_right() -> None:
    source = 'n: int = 3  # runs\nname = "x"  # who\nratio = 0.25\nxs = [1, 2]  # values\n'
    ours = read(source)
    theirs = PythonTranslator.inspect(parameters_cell(source))
    assert [(p.name, p.default, p.help) for p in ours] == [
        (p.name, p.default, p.help) for p in theirs
    ]
    assert ours[0].type == theirs[0].inferred_type_name == "int"


def test_cell_that_is_not_python_is_read_like_papermill() -> None:
    source = "n = 3  # runs\nbroken = (\n"
    theirs = PythonTranslator.inspect(parameters_cell(source))
    assert read(source)[0] == Parameter("n", "int", "3", "runs")
    assert [p.name for p in read(source)] == [p.name for p in theirs]


def test_other_languages_use_their_papermill_translator() -> None:
    r_kernel = {"name": "ir", "display_name": "R", "language": "R"}
    nb = new_notebook(
        cells=[parameters_cell("n <- 3")],
        metadata={"kernelspec": r_kernel, "language_info": {"name": "R"}},
    )
    assert read_parameters(nb) == []


def test_default_value() -> None:
    assert Parameter("x", "list", "[1, 'a']", "").default_value == [1, "a"]
    assert Parameter("x", "None", "compute()", "").default_value is None


# --- parse_values --------------------------------------------------------------------------

PARAMETERS = [
    Parameter("n", "int", "10", ""),
    Parameter("rate", "float", "0.5", ""),
    Parameter("flag", "bool", "False", ""),
    Parameter("title", "str", '"x"', ""),
    Parameter("xs", "list[int]", "[]", ""),
    Parameter("opts", "Dict[str, int]", "{}", ""),
    Parameter("anything", "None", "f()", ""),
    Parameter("maybe", "int | None", "None", ""),
]


def test_cli_strings_are_converted() -> None:
    values = parse_values(
        PARAMETERS,
        {
            "n": " 42",
            "rate": "3",
            "flag": "Yes",
            "title": "hello world",
            "xs": "[1, 2]",
            "opts": '{"a": 1, "b": true}',
            "anything": "(1, 2)",
            "maybe": "7",
        },
    )
    assert values == {
        "n": 42,
        "rate": 3.0,
        "flag": True,
        "title": "hello world",
        "xs": [1, 2],
        "opts": {"a": 1, "b": True},
        "anything": "(1, 2)",
        "maybe": 7,
    }
    assert isinstance(values["rate"], float)


@pytest.mark.parametrize(
    ("word", "value"),
    [("true", True), ("1", True), ("YES", True), ("false", False), ("0", False), ("no", False)],
)
def test_bool_words(word: str, value: bool) -> None:
    assert parse_values(PARAMETERS, {"flag": word}) == {"flag": value}


def test_json_values_keep_their_type() -> None:
    values = parse_values(
        PARAMETERS,
        {"n": 3, "rate": 2, "flag": False, "xs": [3], "opts": {"k": 1}, "anything": [1]},
    )
    assert values == {
        "n": 3,
        "rate": 2.0,
        "flag": False,
        "xs": [3],
        "opts": {"k": 1},
        "anything": [1],
    }


def test_untyped_strings_are_literals_or_text() -> None:
    assert parse_values(PARAMETERS, {"anything": "[1, 'a']"}) == {"anything": [1, "a"]}
    assert parse_values(PARAMETERS, {"anything": "hello"}) == {"anything": "hello"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"n": "abc"}, "parameter 'n' expects int, got 'abc'"),
        ({"n": "2.5"}, "parameter 'n' expects int, got '2.5'"),
        ({"n": True}, "parameter 'n' expects int, got true"),
        ({"n": 2.0}, "parameter 'n' expects int, got 2.0"),
        ({"rate": "fast"}, "parameter 'rate' expects float, got 'fast'"),
        ({"rate": None}, "parameter 'rate' expects float, got null"),
        ({"flag": "maybe"}, "parameter 'flag' expects bool, got 'maybe'"),
        ({"flag": 1}, "parameter 'flag' expects bool, got 1"),
        ({"title": 5}, "parameter 'title' expects str, got 5"),
        ({"xs": "{1: 2}"}, "parameter 'xs' expects list, got '{1: 2}'"),
        ({"xs": "[1,"}, "parameter 'xs' expects list, got '[1,'"),
        ({"opts": [1]}, "parameter 'opts' expects dict, got [1]"),
        ({"foo": 1}, "unknown parameter 'foo' (known: n, rate, flag, title, xs, opts, anything,"),
    ],
)
def test_bad_values(raw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameter) as raised:
        parse_values(PARAMETERS, raw)
    assert str(raised.value).startswith(message)


def test_unknown_parameter_without_parameters() -> None:
    with pytest.raises(InvalidParameter, match=r"unknown parameter 'a' \(the notebook has no"):
        parse_values([], {"a": "1"})


# --- inject_parameters ---------------------------------------------------------------------


def run_cells(nb: nbformat.NotebookNode) -> dict[str, object]:
    """Execute the code cells in this process (no kernel) and return the names they set."""
    namespace: dict[str, object] = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            exec(cell.source, namespace)
    return {name: value for name, value in namespace.items() if not name.startswith("__")}


def test_injected_cell_follows_the_parameters_cell() -> None:
    nb = notebook(
        new_markdown_cell("# Study"),
        parameters_cell("n = 1\ntitle = 'a'\nxs = [0]"),
        new_code_cell("result = n * 2"),
    )
    before = nbformat.writes(nb)
    values = parse_values(read_parameters(nb), {"n": "21", "title": 'say "hi"', "xs": "[1,2]"})
    injected = inject_parameters(nb, values)

    assert nbformat.writes(nb) == before
    assert [cell.metadata.get("tags") for cell in injected.cells] == [
        [],
        ["parameters"],
        ["injected-parameters"],
        [],
    ]
    assert run_cells(injected) == {"n": 21, "title": 'say "hi"', "xs": [1, 2], "result": 42}
    assert injected.metadata.papermill["parameters"] == values
    nbformat.validate(injected)


def test_injecting_again_replaces_the_injected_cell() -> None:
    nb = notebook(parameters_cell("n = 1"), new_code_cell("m = n"))
    twice = inject_parameters(inject_parameters(nb, {"n": 2}), {"n": 3})
    assert len(twice.cells) == 3
    assert run_cells(twice)["m"] == 3


def test_without_parameters_cell_values_go_first() -> None:
    nb = new_notebook(cells=[new_code_cell("y = x + 1")])
    injected = inject_parameters(nb, {"x": 1.5})
    assert injected.cells[0].metadata.tags == ["injected-parameters"]
    assert run_cells(injected)["y"] == 2.5


# --- the ERC panel: specs from the parameters cell and ui_bindings -------------------------

PANEL_CELL = (
    "frequency = 1.5  # Hz of the wave\n"
    "points: int = 100\n"
    "smooth = True\n"
    'colour = "red"  # line colour\n'
    "years = [2019, 2020]\n"
    "options = {'a': 1}\n"
    "pair = (1, 2)\n"
    "huge = 1e999\n"
    "seed = compute()\n"
    "limit: int | None = None\n"
)


def panel(*bindings: dict[str, Any], cells: tuple[Any, ...] = ()) -> tuple[list[Any], list[str]]:
    nb = notebook(parameters_cell(PANEL_CELL), *cells)
    return parameter_specs(nb, list(enumerate(bindings)))


def spec_json(specs: list[Any], name: str) -> dict[str, Any]:
    return next(spec.to_json() for spec in specs if spec.name == name)


def test_specs_without_bindings() -> None:
    specs, warnings = panel()
    assert warnings == []
    assert [(s.name, s.type, s.widget.kind) for s in specs] == [
        ("frequency", "float", "number"),
        ("points", "int", "number"),
        ("smooth", "bool", "checkbox"),
        ("colour", "str", "text"),
        ("years", "list", "text"),
        ("options", "dict", "text"),
        ("pair", "unknown", "text"),
        ("huge", "float", "number"),
        ("seed", "unknown", "text"),
        ("limit", "unknown", "text"),
    ]
    assert spec_json(specs, "frequency") == {
        "name": "frequency",
        "type": "float",
        "default": 1.5,
        "default_source": "1.5",
        "help": "Hz of the wave",
        "label": "frequency",
        "widget": {"kind": "number", "min": None, "max": None, "step": None, "choices": None},
    }
    # Defaults JSON cannot hold as they are (a tuple, infinity, a call) are null.
    assert [spec_json(specs, n)["default"] for n in ("pair", "huge", "seed", "limit")] == [
        None,
        None,
        None,
        None,
    ]
    assert spec_json(specs, "pair")["default_source"] == "(1, 2)"
    assert spec_json(specs, "options")["default"] == {"a": 1}


def test_a_binding_sets_label_help_and_a_slider() -> None:
    specs, warnings = panel(
        {
            "parameter": "frequency",
            "label": "Frequency",
            "help": "Cycles per second",
            "min": 0.5,
            "max": 5,
            "step": 0.5,
        },
        {"parameter": "points", "min": 10},
        {"parameter": "colour", "choices": ["red", "blue"]},
    )
    assert warnings == []
    frequency = spec_json(specs, "frequency")
    assert (frequency["label"], frequency["help"]) == ("Frequency", "Cycles per second")
    assert frequency["widget"] == {
        "kind": "slider",
        "min": 0.5,
        "max": 5,
        "step": 0.5,
        "choices": None,
    }
    assert spec_json(specs, "points")["widget"]["kind"] == "number"
    assert spec_json(specs, "points")["widget"]["min"] == 10
    assert spec_json(specs, "colour")["widget"]["kind"] == "select"
    assert spec_json(specs, "colour")["widget"]["choices"] == ["red", "blue"]
    assert spec_json(specs, "colour")["help"] == "line colour"


def test_explicit_widgets() -> None:
    specs, warnings = panel(
        {"parameter": "frequency", "widget": "number", "min": 0, "max": 10},
        {"parameter": "points", "widget": "text"},
        {"parameter": "smooth", "widget": "checkbox"},
    )
    assert warnings == []
    assert spec_json(specs, "frequency")["widget"]["kind"] == "number"
    assert spec_json(specs, "frequency")["widget"]["max"] == 10
    assert spec_json(specs, "points")["widget"]["kind"] == "text"


def test_choices_become_values_of_the_parameter() -> None:
    specs, warnings = panel({"parameter": "frequency", "choices": [1.5, 2]})
    assert warnings == []
    choices = spec_json(specs, "frequency")["widget"]["choices"]
    assert choices == [1.5, 2.0] and all(isinstance(c, float) for c in choices)


@pytest.mark.parametrize(
    ("binding", "warning", "kind"),
    [
        (
            {"parameter": "nope"},
            "ui_bindings[0]: parameter 'nope' is not in the parameters cell",
            None,
        ),
        (
            {"parameter": "colour", "min": 1, "max": 2},
            "ui_bindings[0]: widget: a slider is for an int or float, 'colour' is str",
            "text",
        ),
        (
            {"parameter": "smooth", "widget": "number"},
            "ui_bindings[0]: widget: a number is for an int or float, 'smooth' is bool",
            "checkbox",
        ),
        (
            {"parameter": "points", "widget": "checkbox"},
            "ui_bindings[0]: widget: a checkbox is for a bool, 'points' is int",
            "number",
        ),
        (
            {"parameter": "points", "choices": [1, "two"]},
            "ui_bindings[0]: choices: choices[1] = 'two' is no int; the parameter gets a number"
            " widget",
            "number",
        ),
        (
            {"parameter": "frequency", "min": 2, "max": 5},
            "ui_bindings[0]: the default 1.5 is below the minimum 2",
            "slider",
        ),
        (
            {"parameter": "points", "max": 50},
            "ui_bindings[0]: the default 100 is above the maximum 50",
            "number",
        ),
        (
            {"parameter": "colour", "choices": ["blue", "green"]},
            "ui_bindings[0]: the default \"red\" is not among the choices 'blue', 'green'",
            "select",
        ),
        (
            {"parameter": "points", "cells": ["plot", "summary"]},
            "ui_bindings[0]: cells: no cell has the id or tag 'summary'",
            "number",
        ),
    ],
)
def test_bindings_that_do_not_fit_are_warnings(
    binding: dict[str, Any], warning: str, kind: str | None
) -> None:
    plot = new_code_cell("plot()", metadata={"tags": ["plot"]})
    specs, warnings = panel(binding, cells=(plot,))
    assert warnings == ["erc.yml: " + warning]
    if kind is not None:
        assert spec_json(specs, binding["parameter"])["widget"]["kind"] == kind


def test_bindings_for_a_notebook() -> None:
    bindings = [
        {"parameter": "a"},
        {"parameter": "b", "notebook": "sub/other.ipynb"},
        {"parameter": "c", "notebook": "./main.ipynb"},
    ]
    assert bindings_for(bindings, "main.ipynb", "main.ipynb") == [
        (0, bindings[0]),
        (2, bindings[2]),
    ]
    assert bindings_for(bindings, "sub/other.ipynb", "main.ipynb") == [(1, bindings[1])]
    assert bindings_for(bindings, "sub/other.ipynb", "sub/other.ipynb") == [
        (0, bindings[0]),
        (1, bindings[1]),
    ]


def test_check_values_applies_bounds_and_choices() -> None:
    specs, _ = panel(
        {"parameter": "frequency", "min": 0.5, "max": 5},
        {"parameter": "colour", "choices": ["red", "blue"]},
        {"parameter": "points", "choices": [100, 200]},
    )
    assert check_values(specs, {"frequency": 5, "colour": "blue", "points": "200"}) == {
        "frequency": 5.0,
        "colour": "blue",
        "points": 200,
    }
    assert check_values(specs, {"years": "[1, 2]", "pair": [3, 4]}) == {
        "years": [1, 2],
        "pair": [3, 4],
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"frequency": 0.4}, "parameter 'frequency': 0.4 is below the minimum 0.5"),
        ({"frequency": 5.01}, "parameter 'frequency': 5.01 is above the maximum 5"),
        ({"frequency": "fast"}, "parameter 'frequency' expects float, got 'fast'"),
        ({"colour": "green"}, "parameter 'colour': 'green' is not among the choices 'red', 'blue'"),
        ({"smooth": 1}, "parameter 'smooth' expects bool, got 1"),
        ({"nope": 1}, "unknown parameter 'nope' (known: frequency, points,"),
        ({"years": "[{1, 2}]"}, "parameter 'years': '[{1, 2}]' is not a value JSON can carry"),
    ],
)
def test_check_values_refuses(raw: dict[str, object], message: str) -> None:
    specs, _ = panel(
        {"parameter": "frequency", "min": 0.5, "max": 5},
        {"parameter": "colour", "choices": ["red", "blue"]},
    )
    with pytest.raises(InvalidParameter) as raised:
        check_values(specs, raw)
    assert str(raised.value).startswith(message)


def test_values_used_fill_in_defaults() -> None:
    specs, _ = panel()
    used = values_used(specs, {"frequency": 3.0})
    assert used["frequency"] == 3.0
    assert used["points"] == 100
    assert used["seed"] is None
    assert list(used) == [spec.name for spec in specs]


def test_bound_cells_in_order_each_once() -> None:
    bindings = [(0, {"parameter": "a", "cells": ["plot", "table"]}), (3, {"parameter": "b"})]
    bindings.append((4, {"parameter": "c", "cells": ["table", "map"]}))
    assert bound_cells(bindings) == ["plot", "table", "map"]


def test_kernel_name() -> None:
    assert kernel_name(notebook()) == "python3"
    r_kernel = {"name": "ir", "display_name": "R", "language": "R"}
    assert kernel_name(new_notebook(metadata={"kernelspec": r_kernel})) == "ir"
