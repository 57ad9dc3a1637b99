"""Parameters: reading the parameters cell, checking values, injecting them (papermill's way)."""

from __future__ import annotations

from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from papermill.translators import PythonTranslator

from erchub.errors import InvalidParameter
from erchub.parameters import Parameter, inject_parameters, parse_values, read_parameters
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
