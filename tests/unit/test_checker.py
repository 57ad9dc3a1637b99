"""The output checker: real notebooks built in memory, real matplotlib figures (pure, no I/O)."""

from __future__ import annotations

import base64
import copy
import io
import json
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
from nbformat import v4
from PIL import Image

from erchub.checker import CheckOptions, Normalisation, Verdict, compare_notebooks
from erchub.erc import Normaliser, parse_erc
from erchub.errors import InvalidERC
from erchub.normalising import DEFAULT_NORMALISERS, NORMALISERS

matplotlib.use("Agg")
import matplotlib.pyplot as plt

RED = (255, 0, 0)


# --- notebook builders ---------------------------------------------------------------------


def notebook(*cells):
    return v4.new_notebook(cells=list(cells))


def code(source, *outputs, tags=(), cell_id=None):
    cell = v4.new_code_cell(source, outputs=list(outputs), execution_count=1)
    if tags:
        cell.metadata["tags"] = list(tags)
    if cell_id is not None:
        cell.id = cell_id
    return cell


def stream(text, name="stdout"):
    return v4.new_output("stream", name=name, text=text)


def result(text, **more_data):
    return v4.new_output(
        "execute_result", data={"text/plain": text, **more_data}, execution_count=1
    )


def display(data):
    return v4.new_output("display_data", data=data)


def error(ename, evalue, traceback=("Traceback",)):
    return v4.new_output("error", ename=ename, evalue=evalue, traceback=list(traceback))


def png_output(png_bytes):
    return display({"image/png": base64.b64encode(png_bytes).decode(), "text/plain": "<Figure>"})


def with_outputs(nb, cell_position, *outputs):
    """A copy of ``nb`` (a re-execution) whose cell at ``cell_position`` has ``outputs``."""
    reproduced = copy.deepcopy(nb)
    reproduced.cells[cell_position].outputs = list(outputs)
    return reproduced


def text_pair(original_text, reproduced_text, stream_name="stdout", **options):
    original = notebook(code("print(x)", stream(original_text, stream_name)))
    reproduced = with_outputs(original, 0, stream(reproduced_text, stream_name))
    return compare_notebooks(original, reproduced, CheckOptions(**options))


# --- figures -------------------------------------------------------------------------------


def figure_bytes(ys, *, shift=0.0, size=(4, 3), fmt="png"):
    """A line plot rendered by matplotlib's Agg backend (or its SVG backend for ``fmt="svg"``)."""
    fig, ax = plt.subplots(figsize=size, dpi=80)
    xs = np.linspace(0, 10, 50)
    ax.plot(xs + shift, ys, "o-", markersize=3)
    ax.set_xlim(-1, 11)
    ax.set_ylim(-1.5, 1.5)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt)
    plt.close(fig)
    return buffer.getvalue()


def sine(shift=0.0, size=(4, 3)):
    return figure_bytes(np.sin(np.linspace(0, 10, 50)), shift=shift, size=size)


def image_pair(original_png, reproduced_png, **options):
    original = notebook(code("plot()", png_output(original_png)))
    reproduced = with_outputs(original, 0, png_output(reproduced_png))
    return compare_notebooks(original, reproduced, CheckOptions(**options))


def pixels(png_bytes):
    return np.asarray(Image.open(io.BytesIO(png_bytes)).convert("RGB"))


# --- whole notebooks -----------------------------------------------------------------------


def test_identical_notebook_passes():
    original = notebook(
        v4.new_markdown_cell("# Title"),
        code("x = 1"),
        code("print(x)", stream("1\n")),
        code("x", result("1")),
        code("plot()", png_output(sine())),
    )
    reproduced = copy.deepcopy(original)

    checked = compare_notebooks(original, reproduced)

    assert checked.passed
    assert checked.messages == []
    assert [cell.index for cell in checked.cells] == [1, 2, 3, 4]
    assert {cell.status for cell in checked.cells} == {"identical"}
    assert checked.counts == {
        "cells_compared": 4,
        "cells_identical": 4,
        "cells_different": 0,
        "cells_skipped": 0,
        "outputs_compared": 3,
        "outputs_different": 0,
    }


def test_changed_text_fails_with_diff_naming_the_cell():
    original = notebook(
        code("import numpy"),
        code("mean", result("mean = 4.2\nn = 10"), cell_id="summary"),
    )
    reproduced = with_outputs(original, 1, result("mean = 4.3\nn = 10"))

    checked = compare_notebooks(original, reproduced)

    assert not checked.passed
    (different,) = [cell for cell in checked.cells if cell.status == "different"]
    assert (different.index, different.cell_id, different.source) == (1, "summary", "mean")
    (output,) = different.outputs
    assert (output.kind, output.mime, output.equal) == ("text", "text/plain", False)
    assert "-mean = 4.2" in output.text_diff.splitlines()
    assert "+mean = 4.3" in output.text_diff.splitlines()
    assert " n = 10" in output.text_diff.splitlines()
    assert output.message == "text/plain differs: 1 line(s) removed, 1 added"
    assert checked.messages == [
        "cell 1 (id summary) output 0: text/plain differs: 1 line(s) removed, 1 added"
    ]
    assert checked.counts["cells_different"] == 1
    assert checked.counts["outputs_different"] == 1


def test_execution_count_metadata_and_transient_fields_are_ignored():
    original = notebook(code("x", result("1")))
    reproduced = copy.deepcopy(original)
    cell = reproduced.cells[0]
    cell.execution_count = 7
    cell.metadata["execution"] = {"iopub.execute_input": "2024-05-01T10:00:00Z"}
    cell.outputs[0].execution_count = 7
    cell.outputs[0].metadata = {"needs_background": "light"}
    cell.outputs[0]["transient"] = {"display_id": "abc"}

    assert compare_notebooks(original, reproduced).passed


@pytest.mark.parametrize(
    ("original_text", "reproduced_text"),
    [
        pytest.param("a  b\t c   \n\n\n\nend\n", "a b c\n\nend", id="whitespace"),
        pytest.param(
            "<Model object at 0x7f3a12bc45d0>", "<Model object at 0x55d1e2f3a4b8>", id="address"
        ),
        pytest.param(
            "CPU times: user 1.2 ms, sys: 0 ns, total: 1.2 ms\nWall time: 2.31 ms\n",
            "CPU times: user 3 ms, sys: 1 ms, total: 4 ms\nWall time: 10.5 ms\n",
            id="time-magic",
        ),
        pytest.param(
            "1.23 µs ± 12.3 ns per loop (mean ± std. dev. of 7 runs, 1,000,000 loops each)",
            "2.01 µs ± 8.1 ns per loop (mean ± std. dev. of 7 runs, 100,000 loops each)",
            id="timeit",
        ),
        pytest.param(
            "The slowest run took 5.43 times longer than the fastest. This could mean that an "
            "intermediate result is being cached.\n"
            "1.2 ms +- 3 us per loop (mean +- std. dev. of 1 run, 1 loop each)\n",
            "1.1 ms +- 2 us per loop (mean +- std. dev. of 1 run, 1 loop each)\n",
            id="timeit-slow-run-ascii",
        ),
        pytest.param(
            "100%|██████████| 50/50 [00:01<00:00, 32.15it/s, loss=0.1]",
            "100%|██████████| 50/50 [00:03<00:00, 14.02it/s, loss=0.1]",
            id="tqdm",
        ),
        pytest.param(
            "  0%|    | 0/3 [00:00<?, ?it/s]\r 67%|██  | 2/3 [00:00<00:00, 9.1it/s]\r"
            "100%|████| 3/3 [00:00<00:00, 9.5it/s]\n",
            "100%|████| 3/3 [00:01<00:00, 2.7it/s]\n",
            id="progress-redraws",
        ),
    ],
)
def test_default_normalisers_hide_what_is_never_a_result(original_text, reproduced_text):
    checked = text_pair(original_text, reproduced_text)

    assert checked.passed, checked.messages


PRINTED_TIMINGS = [
    pytest.param("fitted in 1.23 s", "fitted in 0.98 s", id="seconds"),
    pytest.param("took 12ms", "took 7ms", id="milliseconds"),
    pytest.param("step: 3.4 µs", "step: 12.0 µs", id="microseconds"),
    pytest.param("elapsed 2.5s, 4 min", "elapsed 3.1s, 5 min", id="short-units"),
    pytest.param(
        "run at 2024-05-01T10:00:00.123456+02:00",
        "run at 2025-11-30T23:59:59.000001+02:00",
        id="iso-timestamp",
    ),
    pytest.param("logged 2024-05-01 10:00:00", "logged 2026-01-02 08:15:42", id="timestamp"),
]


@pytest.mark.parametrize(("original_text", "reproduced_text"), PRINTED_TIMINGS)
def test_printed_durations_and_timestamps_fail_unless_switched_on(original_text, reproduced_text):
    switched_on = [*DEFAULT_NORMALISERS, "durations", "timestamps"]

    assert not text_pair(original_text, reproduced_text).passed
    assert text_pair(original_text, reproduced_text, normalise=switched_on).passed
    assert text_pair(
        original_text, reproduced_text, normalise=switched_on, stream_name="stderr"
    ).passed


@pytest.mark.parametrize(
    ("original_text", "reproduced_text"),
    [
        pytest.param(
            "<Model at 0x7f3a12bc45d0> score 0.91",
            "<Model at 0x55d1e2f3a4b8> score 0.92",
            id="address-beside-a-changed-value",
        ),
        pytest.param("born in the 1990s", "born in the 1980s", id="decades-are-not-durations"),
        pytest.param("mask 0xff", "mask 0xfe", id="short-hex-is-not-an-address"),
        pytest.param("date 2024-05-01", "date 2024-05-02", id="dates-are-data"),
        pytest.param("a b", "ab", id="whitespace-inside-words"),
        pytest.param(
            "50/50 [00:01<00:00, 32.15it/s, loss=0.1]",
            "50/50 [00:03<00:00, 14.02it/s, loss=0.3]",
            id="tqdm-postfix-is-the-notebooks",
        ),
        pytest.param(
            "50/50 [00:01<00:00, 32.15it/s]", "49/50 [00:01<00:00, 32.15it/s]", id="tqdm-counts"
        ),
        pytest.param("Parser: ok", "Parser: failed", id="only-ipythons-parser-line"),
    ],
)
def test_normalisation_keeps_real_differences(original_text, reproduced_text):
    every_normaliser = list(Normaliser)

    assert not text_pair(original_text, reproduced_text).passed
    assert not text_pair(original_text, reproduced_text, normalise=every_normaliser).passed


def test_a_computed_duration_in_a_result_fails_by_default_and_when_switched_on():
    original = notebook(code("mean_response", result("0.50 s"), cell_id="response"))
    reproduced = with_outputs(original, 0, result("0.70 s"))

    for normalise in (DEFAULT_NORMALISERS, list(Normaliser)):
        checked = compare_notebooks(original, reproduced, CheckOptions(normalise=normalise))

        assert not checked.passed
        (output,) = checked.cells[0].outputs
        assert "-0.50 s" in output.text_diff.splitlines()
        assert "+0.70 s" in output.text_diff.splitlines()
        assert checked.normalised == []


def test_a_changed_date_in_an_html_table_fails_by_default_and_when_switched_on():
    def table(when):
        html = f"<table><tr><th>run</th><td>{when}</td></tr></table>"
        return result(f"run  {when}", **{"text/html": html})

    original = notebook(code("df", table("2024-05-01 10:00:00")))
    reproduced = with_outputs(original, 0, table("2024-05-02 10:00:00"))

    for normalise in (DEFAULT_NORMALISERS, list(Normaliser)):
        checked = compare_notebooks(original, reproduced, CheckOptions(normalise=normalise))

        assert not checked.passed
        assert checked.cells[0].outputs[0].mime == "text/html"
        assert checked.normalised == []


def test_switched_on_normalisers_record_where_they_replaced_text():
    original = notebook(
        code("x = 1"),
        code("fit()", stream("epoch 1: 0.50 s\nepoch 2: 0.40 s\n"), result("0.91")),
        code("obj", result("<Model at 0x7f3a12bc45d0>"), cell_id="model"),
    )
    reproduced = copy.deepcopy(original)
    reproduced.cells[1].outputs[0] = stream("epoch 1: 0.70 s\nepoch 2: 0.40 s\n")
    reproduced.cells[2].outputs[0] = result("<Model at 0x55d1e2f3a4b8>")

    checked = compare_notebooks(
        original, reproduced, CheckOptions(normalise=["memory_addresses", "durations"])
    )

    assert checked.passed, checked.messages
    assert checked.normalisers == (Normaliser.DURATIONS, Normaliser.MEMORY_ADDRESSES)
    assert checked.cells[1].outputs[0].normalised == {"durations": 2}
    assert checked.cells[1].outputs[1].normalised == {}
    assert checked.cells[2].normalised == {"memory_addresses": 1}
    assert checked.normalised == [
        Normalisation("durations", 1, original.cells[1].id, 2),
        Normalisation("memory_addresses", 2, "model", 1),
    ]
    summary = checked.to_json()
    assert summary["normalisers"] == ["durations", "memory_addresses"]
    assert summary["normalised"] == [
        {"normaliser": "durations", "cell_index": 1, "cell_id": original.cells[1].id, "places": 2},
        {"normaliser": "memory_addresses", "cell_index": 2, "cell_id": "model", "places": 1},
    ]
    assert json.loads(json.dumps(summary)) == summary


def test_places_are_counted_in_the_notebook_with_more_of_them():
    original = notebook(code("run()", stream("a 0x7f3a12bc45d0\n")))
    reproduced = with_outputs(original, 0, stream("a 0x7f3a12bc45d0 0x55d1e2f3a4b8\n"))

    checked = compare_notebooks(original, reproduced)

    assert not checked.passed
    assert checked.cells[0].normalised == {"memory_addresses": 2}


def test_switching_a_normaliser_off_in_erc_yml_makes_its_difference_fail():
    def erc_yml(**check):
        return {
            "spec_version": 1,
            "id": "b9b0099e-9f8d-4a33-8acf-cb0c062efaec",
            "main": "main.ipynb",
            "licenses": {"code": "MIT", "data": "MIT", "text": "MIT", "metadata": "MIT"},
            "check": check,
        }

    original = notebook(code("obj", result("<Model at 0x7f3a12bc45d0>")))
    reproduced = with_outputs(original, 0, result("<Model at 0x55d1e2f3a4b8>"))

    def check(settings):
        options = CheckOptions.from_settings(parse_erc(settings).check)
        return compare_notebooks(original, reproduced, options)

    assert check(erc_yml()).passed
    assert check(erc_yml(normalise=["memory_addresses"])).passed
    switched_off = check(erc_yml(normalise=["tqdm_timings", "time_magics"]))
    assert not switched_off.passed
    assert switched_off.normalisers == (Normaliser.TIME_MAGICS, Normaliser.TQDM_TIMINGS)
    assert not check(erc_yml(normalise=[])).passed


def test_the_defaults_are_the_normalisers_whose_matches_are_never_results():
    assert DEFAULT_NORMALISERS == (
        Normaliser.TIME_MAGICS,
        Normaliser.TQDM_TIMINGS,
        Normaliser.MEMORY_ADDRESSES,
    )
    assert CheckOptions().normalise == DEFAULT_NORMALISERS
    # Every name has one rule, in the order they are applied.
    assert list(NORMALISERS) == list(Normaliser)
    assert all(rule.normaliser is name for name, rule in NORMALISERS.items())
    assert {name for name, rule in NORMALISERS.items() if rule.streams_only} == {
        Normaliser.DURATIONS,
        Normaliser.TIMESTAMPS,
    }


def test_normalise_option_is_kept_in_the_order_applied():
    options = CheckOptions(normalise=["memory_addresses", Normaliser.TIME_MAGICS])

    assert options.normalise == (Normaliser.TIME_MAGICS, Normaliser.MEMORY_ADDRESSES)
    assert options == CheckOptions(normalise=("time_magics", "memory_addresses"))


def test_unknown_normaliser_is_refused_with_the_known_names():
    with pytest.raises(InvalidERC) as raised:
        CheckOptions(normalise=["durations", "seconds"])

    assert str(raised.value) == (
        "check option normalise[1]: unknown normaliser 'seconds'; known: time_magics, "
        "tqdm_timings, timestamps, durations, memory_addresses"
    )


def test_volatile_patterns_replace_their_matches():
    original_text = "run id: 3f2a9c\nresult: 42\n"
    reproduced_text = "run id: 77b0e1\nresult: 42\n"

    assert not text_pair(original_text, reproduced_text).passed
    assert text_pair(original_text, reproduced_text, volatile_patterns=[r"run id: \w+"]).passed
    assert not text_pair(
        original_text, reproduced_text.replace("42", "43"), volatile_patterns=[r"run id: \w+"]
    ).passed


def test_volatile_pattern_replacements_are_recorded_by_position():
    original = notebook(code("run()", stream("seed 1\nrun id: 3f2a9c\n"), cell_id="run"))
    reproduced = with_outputs(original, 0, stream("seed 1\nrun id: 77b0e1\n"))
    options = CheckOptions(volatile_patterns=[r"seed \d+", r"run id: \w+"])

    checked = compare_notebooks(original, reproduced, options)

    assert checked.passed
    assert checked.volatile_patterns == (r"seed \d+", r"run id: \w+")
    assert checked.normalised == [
        Normalisation("volatile_patterns[0]", 0, "run", 1),
        Normalisation("volatile_patterns[1]", 0, "run", 1),
    ]


def test_invalid_volatile_pattern_is_named():
    with pytest.raises(InvalidERC, match=r"volatile_patterns\[1\] '\(unclosed'"):
        CheckOptions(volatile_patterns=["ok", "(unclosed"])


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"image_tolerance": 1.5}, id="tolerance-above-one"),
        pytest.param({"pixel_threshold": 300}, id="threshold-above-255"),
        pytest.param({"volatile_cells": "cell-a"}, id="string-not-list"),
        pytest.param({"normalise": "durations"}, id="normalise-string-not-list"),
    ],
)
def test_invalid_options_are_rejected(options):
    with pytest.raises(InvalidERC, match="check option"):
        CheckOptions(**options)


def test_from_settings_takes_defaults_for_none():
    settings = SimpleNamespace(
        volatile_patterns=["seed=\\d+"], volatile_cells=None, image_tolerance=None
    )

    options = CheckOptions.from_settings(settings)

    assert options == CheckOptions(volatile_patterns=("seed=\\d+",))
    assert options.image_tolerance == 0.001
    assert options.pixel_threshold == 16
    assert options.normalise == DEFAULT_NORMALISERS
    assert CheckOptions.from_settings(
        SimpleNamespace(volatile_patterns=[], volatile_cells=["a"], image_tolerance=0.05)
    ) == CheckOptions(volatile_cells=("a",), image_tolerance=0.05)
    assert CheckOptions.from_settings(SimpleNamespace(normalise=())).normalise == ()


def test_cell_tagged_erc_volatile_is_skipped():
    original = notebook(
        code("import random"),
        code("random.random()", result("0.1234"), tags=["erc-volatile"]),
        code("1 + 1", result("2")),
    )
    reproduced = with_outputs(original, 1, result("0.9876"))

    checked = compare_notebooks(original, reproduced)

    assert checked.passed
    assert [cell.status for cell in checked.cells] == ["identical", "skipped", "identical"]
    assert checked.counts["cells_skipped"] == 1
    assert checked.counts["cells_compared"] == 2
    assert checked.to_json()["skipped_cells"] == [{"index": 1, "cell_id": original.cells[1].id}]


def test_cell_listed_in_volatile_cells_is_skipped():
    original = notebook(code("now()", result("Tuesday"), cell_id="clock"), code("2", result("2")))
    reproduced = with_outputs(original, 0, result("Wednesday"))

    assert not compare_notebooks(original, reproduced).passed
    checked = compare_notebooks(original, reproduced, CheckOptions(volatile_cells=["clock"]))
    assert checked.passed
    assert checked.cells[0].status == "skipped"
    assert checked.counts["cells_skipped"] == 1


def test_stream_split_differently_passes():
    original = notebook(code("work()", stream("epoch 1\nepoch 2\n"), stream("done\n")))
    reproduced = with_outputs(
        original, 0, stream("epoch 1\n"), stream("epoch 2\ndo"), stream("ne\n")
    )

    checked = compare_notebooks(original, reproduced)

    assert checked.passed
    assert checked.counts["outputs_compared"] == 1


def test_streams_of_different_names_are_not_merged():
    original = notebook(code("work()", stream("out\n"), stream("warn\n", name="stderr")))
    reproduced = with_outputs(original, 0, stream("out\nwarn\n"))

    checked = compare_notebooks(original, reproduced)

    assert not checked.passed
    kinds = [(output.kind, output.equal) for output in checked.cells[0].outputs]
    assert kinds == [("text", False), ("missing", False)]


def test_errors_compare_by_name_and_value_not_traceback():
    original = notebook(code("1/0", error("ZeroDivisionError", "division by zero", ["at 0x7f"])))
    same_error = with_outputs(
        original, 0, error("ZeroDivisionError", "division by zero", ["other", "frames"])
    )
    other_value = with_outputs(original, 0, error("ZeroDivisionError", "float division by zero"))
    other_name = with_outputs(original, 0, error("ValueError", "division by zero"))

    assert compare_notebooks(original, same_error).passed
    for reproduced in (other_value, other_name):
        checked = compare_notebooks(original, reproduced)
        (output,) = checked.cells[0].outputs
        assert (output.kind, output.equal) == ("error", False)
        assert "-ZeroDivisionError: division by zero" in output.text_diff.splitlines()


def test_missing_output_fails():
    original = notebook(code("show()", stream("a\n"), result("1")))
    reproduced = with_outputs(original, 0, stream("a\n"))

    checked = compare_notebooks(original, reproduced)

    assert not checked.passed
    missing = checked.cells[0].outputs[1]
    assert (missing.kind, missing.output_index, missing.equal) == ("missing", 1, False)
    assert missing.message == "execute_result (text/plain) missing from the reproduced notebook"
    assert "-1" in missing.text_diff.splitlines()


def test_extra_output_fails():
    original = notebook(code("show()", result("1")))
    reproduced = with_outputs(original, 0, result("1"), stream("warning: deprecated\n", "stderr"))

    checked = compare_notebooks(original, reproduced)

    assert not checked.passed
    extra = checked.cells[0].outputs[1]
    assert (extra.kind, extra.equal) == ("extra", False)
    assert "+warning: deprecated" in extra.text_diff.splitlines()
    assert checked.counts == {
        "cells_compared": 1,
        "cells_identical": 0,
        "cells_different": 1,
        "cells_skipped": 0,
        "outputs_compared": 2,
        "outputs_different": 1,
    }


def test_different_output_type_is_a_type_difference():
    original = notebook(code("plot()", png_output(sine())))
    reproduced = with_outputs(original, 0, display({"text/plain": "<Figure>"}))
    stream_instead = with_outputs(original, 0, stream("<Figure>"))

    output = compare_notebooks(original, reproduced).cells[0].outputs[0]
    assert (output.kind, output.mime, output.equal) == ("type", "image/png", False)
    assert output.message == "original has image/png, reproduced has only text/plain"
    output = compare_notebooks(original, stream_instead).cells[0].outputs[0]
    assert output.kind == "type"
    assert "stdout stream" in output.message


def test_display_data_and_execute_result_of_same_value_are_equal():
    original = notebook(code("df", result("  a\n0 1")))
    reproduced = with_outputs(original, 0, display({"text/plain": "  a\n0 1"}))

    assert compare_notebooks(original, reproduced).passed


def test_richest_representation_is_compared():
    original = notebook(code("df", result("a b", **{"text/html": "<td>1</td>"})))
    plain_changed = with_outputs(original, 0, result("a  c", **{"text/html": "<td>1</td>"}))
    html_changed = with_outputs(original, 0, result("a b", **{"text/html": "<td>2</td>"}))

    assert compare_notebooks(original, plain_changed).passed
    checked = compare_notebooks(original, html_changed)
    assert not checked.passed
    assert checked.cells[0].outputs[0].mime == "text/html"


def test_generated_html_ids_are_renumbered():
    def styled_table(uuid, value):
        return result(
            "table",
            **{
                "text/html": f"<style>#T_{uuid}_row0_col0 {{color: red}}</style>"
                f'<table id="T_{uuid}"><td id="T_{uuid}_row0_col0">{value}</td></table>'
            },
        )

    original = notebook(code("styled", styled_table("a1b2c", 1)))

    assert compare_notebooks(original, with_outputs(original, 0, styled_table("9f8e7", 1))).passed
    assert not compare_notebooks(
        original, with_outputs(original, 0, styled_table("9f8e7", 2))
    ).passed


def test_json_outputs_compare_by_value():
    original = notebook(code("data", display({"application/json": {"b": [1, 2], "a": "x"}})))
    reordered = with_outputs(original, 0, display({"application/json": {"a": "x", "b": [1, 2]}}))
    changed = with_outputs(original, 0, display({"application/json": {"a": "x", "b": [1, 3]}}))

    assert compare_notebooks(original, reordered).passed
    assert not compare_notebooks(original, changed).passed


# --- no reference outputs ------------------------------------------------------------------


def saved_without_running(*sources):
    """A notebook as an author saves it without running it: code cells with no outputs."""
    return notebook(*(v4.new_code_cell(source) for source in sources))


def test_a_notebook_saved_without_outputs_has_no_reference_outputs():
    original = saved_without_running("print(1)", "2 * 2")
    reproduced = with_outputs(original, 0, stream("1\n"))
    reproduced.cells[1].outputs = [result("4")]

    checked = compare_notebooks(original, reproduced)

    assert checked.verdict is Verdict.NO_REFERENCE_OUTPUTS
    assert not checked.passed
    assert checked.messages == [
        "the published notebook stores no outputs to compare with (it was saved without "
        "running it); the reproduced notebook's 2 output(s) can be its reference"
    ]
    summary = checked.to_json()
    assert summary["verdict"] == "no_reference_outputs" and summary["passed"] is False


def test_outputs_missing_from_some_cells_only_are_differences():
    original = notebook(code("print(1)", stream("1\n")), v4.new_code_cell("2 * 2"))
    reproduced = with_outputs(original, 1, result("4"))

    checked = compare_notebooks(original, reproduced)

    assert checked.verdict is Verdict.FAIL
    [message] = checked.messages
    assert message.endswith("output 0: execute_result (text/plain) extra in reproduced")


def test_outputs_of_skipped_cells_make_no_reference():
    volatile = code("now()", stream("09:00\n"), tags=["erc-volatile"])
    original = notebook(volatile, v4.new_code_cell("2 * 2"))
    reproduced = with_outputs(original, 1, result("4"))

    assert compare_notebooks(original, reproduced).verdict is Verdict.NO_REFERENCE_OUTPUTS


def test_a_notebook_without_outputs_in_either_run_passes():
    original = saved_without_running("x = 21 * 2", "assert x == 42")

    checked = compare_notebooks(original, copy.deepcopy(original))

    assert checked.verdict is Verdict.PASS and checked.passed


def test_no_reference_outputs_yet_a_different_structure_fails():
    original = saved_without_running("print(1)")
    reproduced = notebook(code("print(1)", stream("1\n")), code("print(2)", stream("2\n")))

    assert compare_notebooks(original, reproduced).verdict is Verdict.FAIL


def test_verdict_labels():
    assert [verdict.label for verdict in Verdict] == ["PASS", "FAIL", "NO REFERENCE OUTPUTS"]


# --- structure -----------------------------------------------------------------------------


def test_different_number_of_code_cells_fails_as_structure():
    original = notebook(code("a", result("1")), code("b", result("2")), code("c"))
    reproduced = copy.deepcopy(original)
    del reproduced.cells[2]

    checked = compare_notebooks(original, reproduced)

    assert not checked.passed
    assert checked.messages[0] == (
        "structure differs: the original notebook has 3 code cells, the reproduced notebook 2"
    )
    assert [cell.status for cell in checked.cells] == ["identical", "identical", "different"]
    assert any("no counterpart" in message for message in checked.messages)


def test_extra_code_cell_in_reproduced_fails():
    original = notebook(code("a", result("1")))
    reproduced = copy.deepcopy(original)
    reproduced.cells.append(code("b", result("2")))

    checked = compare_notebooks(original, reproduced)

    assert not checked.passed
    assert checked.cells[0].status == "identical"
    assert "the reproduced notebook 2" in checked.messages[0]


def test_injected_parameters_cell_only_in_reproduced_is_skipped_when_pairing():
    original = notebook(code("alpha = 1", tags=["parameters"]), code("alpha * 2", result("2")))
    reproduced = copy.deepcopy(original)
    reproduced.cells.insert(1, code("alpha = 1", tags=["injected-parameters"]))

    checked = compare_notebooks(original, reproduced)

    assert checked.passed, checked.messages
    assert [cell.index for cell in checked.cells] == [0, 1]


def test_to_json_is_serialisable_without_image_bytes():
    original = notebook(code("x", result("1")), code("plot()", png_output(sine())))
    reproduced = with_outputs(original, 0, result("2"))
    reproduced.cells[1].outputs = [png_output(figure_bytes(np.cos(np.linspace(0, 10, 50))))]

    summary = compare_notebooks(original, reproduced).to_json()

    text = json.dumps(summary)
    assert "base64" not in text and "iVBOR" not in text
    assert summary["passed"] is False
    assert summary["counts"]["outputs_different"] == 2
    differences = {(d["cell_index"], d["output_index"], d["kind"]) for d in summary["differences"]}
    assert differences == {(0, 0, "text"), (1, 0, "image")}
    image_difference = next(d for d in summary["differences"] if d["kind"] == "image")
    assert image_difference["differing_fraction"] > 0.001
    assert image_difference["message"].startswith("image/png differs")


# --- images --------------------------------------------------------------------------------


def test_identical_figure_passes():
    checked = image_pair(sine(), sine())

    assert checked.passed
    assert checked.cells[0].outputs[0].differing_fraction == 0.0


def test_antialias_noise_within_tolerance_passes():
    # A sub-pixel shift only changes the antialiased edge shades: bytes differ, shapes do not.
    original, shifted = sine(), sine(shift=0.001)
    assert original != shifted

    checked = image_pair(original, shifted)

    assert checked.passed, checked.messages
    output = checked.cells[0].outputs[0]
    assert output.kind == "image" and output.equal
    assert output.differing_fraction <= 0.001
    assert not image_pair(original, shifted, pixel_threshold=0).passed


def test_few_changed_pixels_within_tolerance_pass():
    original = sine()
    noisy = pixels(original).astype(np.int16)
    noisy += np.random.default_rng(1).integers(-10, 11, size=noisy.shape, dtype=np.int16)
    height, width, _ = noisy.shape
    hot_pixels = int(height * width * 0.0005)
    noisy[0, :hot_pixels] = (0, 0, 0) if noisy[0, 0, 0] > 128 else (255, 255, 255)
    buffer = io.BytesIO()
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(buffer, format="PNG")

    checked = image_pair(original, buffer.getvalue())

    assert checked.passed, checked.messages
    fraction = checked.cells[0].outputs[0].differing_fraction
    assert fraction == pytest.approx(hot_pixels / (height * width))
    assert not image_pair(original, buffer.getvalue(), image_tolerance=0.0001).passed


def test_changed_figure_fails_with_red_diff_image():
    original = sine()
    changed = figure_bytes(np.sin(np.linspace(0, 10, 50)) * 0.5)

    checked = image_pair(original, changed)

    assert not checked.passed
    output = checked.cells[0].outputs[0]
    assert (output.kind, output.mime, output.equal) == ("image", "image/png", False)
    assert output.differing_fraction > 0.001
    assert output.original_image == original and output.reproduced_image == changed
    diff = pixels(output.diff_image)
    assert diff.shape == pixels(original).shape
    red = np.all(diff == RED, axis=2)
    assert red.mean() == pytest.approx(output.differing_fraction)
    # Everything that is not red is grey: the red stands out.
    others = diff[~red]
    assert np.all(others[:, 0] == others[:, 1]) and np.all(others[:, 1] == others[:, 2])


def test_different_image_sizes_fail():
    checked = image_pair(sine(), sine(size=(5, 3)))

    assert not checked.passed
    output = checked.cells[0].outputs[0]
    assert output.kind == "image" and not output.equal
    assert output.message == "image/png size differs: original 320x240, reproduced 400x240 pixels"
    assert output.diff_image is None


def test_transparent_pixels_compare_as_shown_on_white():
    def rgba_png(colour):
        buffer = io.BytesIO()
        Image.new("RGBA", (20, 20), colour).save(buffer, format="PNG")
        return buffer.getvalue()

    assert image_pair(rgba_png((0, 0, 0, 0)), rgba_png((255, 0, 0, 0))).passed
    assert not image_pair(rgba_png((0, 0, 0, 255)), rgba_png((255, 0, 0, 255))).passed


def test_jpeg_compares_pixelwise():
    def jpeg(png_bytes, quality):
        buffer = io.BytesIO()
        Image.open(io.BytesIO(png_bytes)).convert("RGB").save(buffer, "JPEG", quality=quality)
        return base64.b64encode(buffer.getvalue()).decode()

    original = notebook(code("show()", display({"image/jpeg": jpeg(sine(), 95)})))
    reproduced = with_outputs(original, 0, display({"image/jpeg": jpeg(sine(), 95)}))
    changed = with_outputs(original, 0, display({"image/jpeg": jpeg(sine(shift=2), 95)}))

    assert compare_notebooks(original, reproduced).passed
    output = compare_notebooks(original, changed).cells[0].outputs[0]
    assert (output.kind, output.mime, output.equal) == ("image", "image/jpeg", False)


def test_undecodable_image_fails_with_message():
    def not_an_image(data):
        return display({"image/png": base64.b64encode(data).decode()})

    original = notebook(code("show()", not_an_image(b"nope")))
    reproduced = with_outputs(original, 0, not_an_image(b"nah"))

    output = compare_notebooks(original, reproduced).cells[0].outputs[0]

    assert not output.equal
    assert "cannot be decoded" in output.message


# --- SVG -----------------------------------------------------------------------------------


def svg_output(ys):
    with matplotlib.rc_context({"svg.hashsalt": None}):
        svg = figure_bytes(ys, fmt="svg").decode()
    return display({"image/svg+xml": svg, "text/plain": "<Figure>"})


def test_svg_rendered_twice_compares_equal():
    ys = np.sin(np.linspace(0, 10, 50))
    first, second = svg_output(ys), svg_output(ys)
    # Without a hash salt matplotlib draws fresh ids and stamps the date on every render.
    assert first.data["image/svg+xml"] != second.data["image/svg+xml"]
    original = notebook(code("plot()", first))

    checked = compare_notebooks(original, with_outputs(original, 0, second))

    assert checked.passed, checked.messages
    assert checked.cells[0].outputs[0].kind == "svg"


def test_changed_svg_fails_with_text_diff_and_pictures():
    original = notebook(code("plot()", svg_output(np.sin(np.linspace(0, 10, 50)))))
    reproduced = with_outputs(original, 0, svg_output(np.cos(np.linspace(0, 10, 50))))

    output = compare_notebooks(original, reproduced).cells[0].outputs[0]

    assert (output.kind, output.mime, output.equal) == ("svg", "image/svg+xml", False)
    assert output.text_diff.startswith("--- original\n+++ reproduced\n@@")
    assert output.original_image.startswith(b"<?xml")
    assert output.reproduced_image.startswith(b"<?xml")
