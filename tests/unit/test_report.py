"""The HTML check report (pure, no I/O)."""

from __future__ import annotations

import base64
import copy
import re

import numpy as np

from erchub.checker import CheckOptions, compare_notebooks
from erchub.report import render_report
from tests.unit.test_checker import code, figure_bytes, notebook, png_output, result, sine, stream


def failing_notebooks():
    original = notebook(
        code("print('<script>alert(1)</script>')", stream("<script>alert(1)</script>\n")),
        code("plot()", png_output(sine())),
        code("random()", result("0.5"), tags=["erc-volatile"]),
    )
    reproduced = copy.deepcopy(original)
    reproduced.cells[0].outputs = [stream("<script>alert(2)</script>\n")]
    reproduced.cells[1].outputs = [png_output(figure_bytes(np.cos(np.linspace(0, 10, 50))))]
    reproduced.cells[2].outputs = [result("0.7")]
    return original, reproduced


def test_passing_report_says_pass():
    original = notebook(code("1 + 1", result("2")))

    html = render_report(compare_notebooks(original, copy.deepcopy(original)), title="My ERC")

    assert html.startswith("<!DOCTYPE html>")
    assert '<p class="verdict">PASS</p>' in html
    assert "FAIL" not in html
    assert "<h2>Differences</h2>" not in html
    assert re.search(r"Code cells compared</th><td>1</td>", html)


def test_report_without_reference_outputs_shows_the_reproduced_outputs_as_a_reference():
    original = notebook(code("print(1)"), code("plot()"))
    original.cells[0].outputs = original.cells[1].outputs = []
    reproduced = copy.deepcopy(original)
    reproduced.cells[0].outputs = [stream("1\n")]
    reproduced.cells[1].outputs = [png_output(sine())]

    html = render_report(
        compare_notebooks(original, reproduced),
        title="Loaded",
        original_name="published",
        reproduced_name="job 42",
    )

    assert '<header class="no_reference_outputs">' in html
    assert '<p class="verdict">NO REFERENCE OUTPUTS</p>' in html
    assert "FAIL" not in html and "<h2>Differences</h2>" not in html
    assert "its executed notebook can be published as the reference" in html
    assert "<h2>Outputs of job 42</h2>" in html
    assert '<span class="added">+1</span>' in html
    assert "data:image/png;base64," in html


def test_failing_report_shows_fail_counts_and_escaped_diff():
    checked = compare_notebooks(*failing_notebooks())

    html = render_report(
        checked, title="Study <b>1</b>", original_name="published", reproduced_name="re-run"
    )

    assert '<p class="verdict">FAIL</p>' in html
    assert "Study &lt;b&gt;1&lt;/b&gt;" in html
    assert "published compared with re-run" in html
    assert re.search(r"Different cells</th><td>2</td>", html)
    assert re.search(r"Skipped cells \(volatile\)</th><td>1</td>", html)
    # Notebook content never reaches the page as markup.
    assert "<script>" not in html
    assert '<span class="removed">-&lt;script&gt;alert(1)&lt;/script&gt;</span>' in html
    assert '<span class="added">+&lt;script&gt;alert(2)&lt;/script&gt;</span>' in html
    assert "print(&#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39;)" in html


def test_failing_report_embeds_original_reproduced_and_diff_images():
    checked = compare_notebooks(*failing_notebooks())
    image = checked.cells[1].outputs[0]

    html = render_report(checked, title="figures")

    for picture in (image.original_image, image.reproduced_image, image.diff_image):
        assert f'src="data:image/png;base64,{base64.b64encode(picture).decode()}"' in html
    assert f"{image.differing_fraction:.3%} of pixels differ (red)" in html
    assert "http://" not in html and "https://" not in html


def test_report_lists_skipped_cells():
    checked = compare_notebooks(*failing_notebooks())

    html = render_report(checked, title="skips")

    assert "<h2>Skipped cells</h2>" in html
    assert "Cell 2" in html and "<code>random()</code>" in html


def test_report_shows_structural_messages_and_unpaired_cells():
    original = notebook(code("a", result("1")), code("b"))
    reproduced = copy.deepcopy(original)
    del reproduced.cells[1]

    html = render_report(compare_notebooks(original, reproduced, CheckOptions()), title="t")

    assert "structure differs: the original notebook has 2 code cells" in html
    assert "This cell has no counterpart in reproduced." in html


def test_report_says_which_normalisers_were_on():
    original = notebook(code("1 + 1", result("2")))

    html = render_report(compare_notebooks(original, copy.deepcopy(original)), title="t")

    assert (
        "<li>normalisers on: time_magics, tqdm_timings, memory_addresses; "
        "off: timestamps, durations</li>"
    ) in html
    assert "normalised:" not in html


def test_report_lists_where_normalisers_replaced_text():
    original = notebook(
        code("fit()", stream("epoch 1: 0.50 s\nepoch 2: 0.40 s\n")),
        code("print(run_id)", stream("run 3f2a9c\n")),
        code("fit()", stream("done in 1.5 s\n")),
    )
    reproduced = copy.deepcopy(original)
    reproduced.cells[0].outputs = [stream("epoch 1: 0.70 s\nepoch 2: 0.40 s\n")]
    reproduced.cells[1].outputs = [stream("run 77b0e1\n")]
    options = CheckOptions(normalise=["durations"], volatile_patterns=[r"run \w+"])

    checked = compare_notebooks(original, reproduced, options)
    html = render_report(checked, title="t")

    assert checked.passed, checked.messages
    assert '<p class="verdict">PASS</p>' in html
    assert (
        "<li>normalisers on: durations; "
        "off: time_magics, tqdm_timings, timestamps, memory_addresses</li>"
    ) in html
    assert (
        "<li>normalised: volatile_patterns[0] &#39;run \\\\w+&#39; (shown as &lt;volatile&gt;) "
        "in cell 1 (1 place)</li>"
    ) in html
    assert (
        "<li>normalised: durations (numbers with a time unit in printed output, shown as "
        "&lt;duration&gt;) in cells 0 (2 places), 2 (1 place)</li>"
    ) in html


def test_report_of_a_failing_check_lists_problems_before_normalisations():
    original = notebook(code("obj", result("<Model at 0x7f3a12bc45d0> score 0.91")))
    reproduced = copy.deepcopy(original)
    reproduced.cells[0].outputs = [result("<Model at 0x55d1e2f3a4b8> score 0.92")]

    html = render_report(compare_notebooks(original, reproduced), title="t")

    problem = html.index("text/plain differs")
    normalised = html.index(
        "normalised: memory_addresses (memory addresses such as 0x7f3a12bc45d0, shown as 0x…) "
        "in cell 0 (1 place)"
    )
    assert problem < normalised
    assert '<span class="removed">-&lt;Model at 0x…&gt; score 0.91</span>' in html
