"""POST erchub/run: a parameterised copy of a notebook runs in a real kernel, with progress."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell
from tornado.httpclient import HTTPClientError

from erchub.extensions.execution import OUTPUT_LIMIT_BYTES
from tests.conftest import heading, parameters_cell, write_notebook
from tests.extensions.conftest import (
    ERC_YML,
    assert_error,
    call,
    events_of,
    json_of,
    wave_notebook,
)

SSE = {"Accept": "text/event-stream"}
BOUNDS = """\
ui_bindings:
  - parameter: frequency
    min: 0.5
    max: 5
  - parameter: label
    choices: [wave, sine]
"""


async def run(jp_fetch: Any, body: Any, headers: dict[str, str] | None = None) -> Any:
    return await call(jp_fetch, "erchub", "run", method="POST", body=body, headers=headers)


def images(result: dict[str, Any]) -> list[bytes]:
    return [
        base64.b64decode(output["data"]["image/png"])
        for cell in result["cells"]
        for output in cell["outputs"]
        if "image/png" in output.get("data", {})
    ]


async def test_new_values_change_the_figure_and_not_the_notebook(
    jp_fetch: Any, jp_root_dir: Path
) -> None:
    notebook = wave_notebook(jp_root_dir / "waves" / "main.ipynb")
    before = notebook.read_bytes()

    slow = await run(jp_fetch, {"path": "waves/main.ipynb", "values": {"frequency": 1}})
    fast = await run(jp_fetch, {"path": "waves/main.ipynb", "values": {"frequency": 3.5}})
    default = await run(jp_fetch, {"path": "waves/main.ipynb"})

    slow_result, fast_result = json_of(slow), json_of(fast)
    assert slow_result["path"] == "waves/main.ipynb"
    assert slow_result["values"] == {"frequency": 1.0, "points": 200, "label": "wave"}
    assert fast_result["values"]["frequency"] == 3.5
    assert isinstance(slow_result["duration"], float) and slow_result["duration"] > 0
    assert datetime.fromisoformat(slow_result["time"]).tzinfo is not None
    # every cell with outputs, in notebook order: the figure, then the printed summary
    assert [(c["cell_index"], c["bound"]) for c in slow_result["cells"]] == [
        (3, False),
        (4, False),
    ]
    assert slow_result["cells"][1]["outputs"] == [
        {"name": "stdout", "output_type": "stream", "text": "wave: 1.0 (200 points)\n"}
    ]
    slow_png, fast_png = images(slow_result)[0], images(fast_result)[0]
    assert slow_png.startswith(b"\x89PNG") and fast_png.startswith(b"\x89PNG")
    assert slow_png != fast_png
    assert images(json_of(default)) == [slow_png]  # 1.0 is the default
    assert notebook.read_bytes() == before
    assert sorted(path.name for path in notebook.parent.iterdir()) == ["main.ipynb"]


async def test_the_stream_reports_progress_then_the_result(
    jp_fetch: Any, jp_root_dir: Path
) -> None:
    wave_notebook(jp_root_dir / "main.ipynb")
    response = await run(jp_fetch, {"path": "main.ipynb", "values": {"label": "hi"}}, SSE)
    events = events_of(response)
    progress = [data for event, data in events if event == "progress"]
    # parameters, injected parameters, imports, figure, summary
    assert progress == [{"cell": i, "total": 5} for i in range(1, 6)]
    assert [event for event, _ in events] == ["progress"] * 5 + ["result"]
    result = events[-1][1]
    assert result["values"]["label"] == "hi"
    assert len(images(result)) == 1


async def test_bound_cells_are_marked(jp_fetch: Any, jp_root_dir: Path) -> None:
    wave_notebook(jp_root_dir / "main.ipynb")
    (jp_root_dir / "erc.yml").write_text(
        ERC_YML + "ui_bindings:\n  - parameter: points\n    cells: [summary]\n"
    )
    result = json_of(await run(jp_fetch, {"path": "main.ipynb", "values": {"points": "50"}}))
    assert [(c["cell_index"], c["bound"]) for c in result["cells"]] == [(3, False), (4, True)]
    assert result["cells"][1]["outputs"][0]["text"] == "wave: 1.0 (50 points)\n"


async def test_every_output_kind_in_notebook_order_beside_the_published(
    jp_fetch: Any, jp_root_dir: Path
) -> None:
    """A notebook without ui_bindings: printed text, results, tables, errors of cells that
    may raise, with each cell's first source line and the saved notebook's outputs."""
    notebook = write_notebook(
        jp_root_dir / "kinds.ipynb",
        parameters_cell("n = 2"),
        new_code_cell("\n# doubled\nprint(n * 2)", id="printed"),
        heading("## A table"),
        new_code_cell(
            "from IPython.display import HTML\nHTML(f'<table><tr><td>{n}</td></tr></table>')",
            id="table",
        ),
        new_code_cell("n + 0.5", id="result"),
        new_code_cell("x = 1", id="quiet"),
        new_code_cell(
            "raise ValueError(f'n is {n}')", id="raises", metadata={"tags": ["raises-exception"]}
        ),
    )
    executed = NotebookClient(nbformat.read(notebook, as_version=4), timeout=60).execute()
    nbformat.write(executed, notebook)

    result = json_of(await run(jp_fetch, {"path": "kinds.ipynb", "values": {"n": 5}}))
    cells = result["cells"]
    assert [(c["cell_id"], c["cell_index"], c["source_line"]) for c in cells] == [
        ("printed", 1, "# doubled\u2026"),
        ("table", 3, "from IPython.display import HTML\u2026"),
        ("result", 4, "n + 0.5"),
        ("raises", 6, "raise ValueError(f'n is {n}')"),
    ]
    printed, table, value, raised = cells
    assert printed["outputs"] == [{"name": "stdout", "output_type": "stream", "text": "10\n"}]
    assert printed["published"] == [{"name": "stdout", "output_type": "stream", "text": "4\n"}]
    assert table["outputs"][0]["output_type"] == "execute_result"
    assert table["outputs"][0]["data"]["text/html"] == "<table><tr><td>5</td></tr></table>"
    assert value["outputs"][0]["data"]["text/plain"] == "5.5"
    assert value["published"][0]["data"]["text/plain"] == "2.5"
    assert (raised["outputs"][0]["output_type"], raised["outputs"][0]["evalue"]) == (
        "error",
        "n is 5",
    )
    assert all(c["omitted_outputs"] == c["omitted_published"] == 0 for c in cells)


async def test_outputs_too_large_are_left_out_and_counted(jp_fetch: Any, jp_root_dir: Path) -> None:
    write_notebook(
        jp_root_dir / "big.ipynb",
        parameters_cell("size = 1"),
        new_code_cell("print('x' * size)", id="big"),
        new_code_cell("print('small')", id="small"),
    )
    size = OUTPUT_LIMIT_BYTES + 1
    response = await run(jp_fetch, {"path": "big.ipynb", "values": {"size": size}})
    assert len(response.body) < OUTPUT_LIMIT_BYTES
    big, small = json_of(response)["cells"]
    assert (big["outputs"], big["omitted_outputs"]) == ([], 1)
    assert small["outputs"][0]["text"] == "small\n"


async def test_every_run_gets_a_fresh_kernel_in_the_notebooks_folder(
    jp_fetch: Any, jp_root_dir: Path, jp_serverapp: Any
) -> None:
    folder = jp_root_dir / "study"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "input.txt").write_text("from the data folder")
    write_notebook(
        folder / "count.ipynb",
        parameters_cell("step = 1"),
        new_code_cell(
            "import os\n"
            "runs = globals().get('runs', 0) + step\n"
            "print(runs, os.getpid(), open('data/input.txt').read())",
            id="count",
        ),
    )
    (folder / "erc.yml").write_text(
        ERC_YML.replace("main.ipynb", "count.ipynb")
        + "ui_bindings:\n  - parameter: step\n    cells: [count]\n"
    )
    pool = jp_serverapp.web_app.settings["erchub"].kernel_pool
    seen = []
    for turn in range(3):
        if turn:  # the kernel started after the last run, ready for this one
            (ready,) = pool._warm[("python3", str(folder.resolve()))]
            warm_pid = (await ready).manager.provisioner.pid
        result = json_of(await run(jp_fetch, {"path": "study/count.ipynb"}))
        runs, pid, text = result["cells"][0]["outputs"][0]["text"].split(" ", 2)
        assert runs == "1", "a kernel is never used twice"
        assert text == "from the data folder\n"
        seen.append(int(pid))
        if turn:
            assert seen[-1] == warm_pid
    assert len(set(seen)) == 3
    # The used kernels are shut down; one is kept ready for the next run, in the same folder.
    await pool.shutdown()
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                   for pid in seen)  # fmt: skip


async def test_a_failing_cell_is_422_naming_it(jp_fetch: Any, jp_root_dir: Path) -> None:
    write_notebook(
        jp_root_dir / "fails.ipynb",
        parameters_cell("divisor = 1"),
        new_code_cell("value = 10 / divisor", id="divide"),
    )
    response = await run(jp_fetch, {"path": "fails.ipynb", "values": {"divisor": 0}})
    assert_error(response, 422, "cell 1 (id divide) raised ZeroDivisionError: division by zero")

    events = events_of(await run(jp_fetch, {"path": "fails.ipynb", "values": {"divisor": 0}}, SSE))
    # progress counts the failing cell too: it ran
    assert [event for event, _ in events] == ["progress"] * 3 + ["error"]
    assert events[-1][1] == {
        "status": 422,
        "message": "cell 1 (id divide) raised ZeroDivisionError: division by zero",
    }
    ok = json_of(await run(jp_fetch, {"path": "fails.ipynb", "values": {"divisor": 2}}))
    assert ok["values"] == {"divisor": 2}


async def test_the_parameters_cell_runs_before_the_values(jp_fetch: Any, jp_root_dir: Path) -> None:
    write_notebook(jp_root_dir / "any.ipynb", parameters_cell("anything = make()"), "x = 1")
    response = await run(jp_fetch, {"path": "any.ipynb", "values": {"anything": [1]}})
    assert_error(response, 422, "cell 0 (id ", "raised NameError: name 'make' is not defined")


class TestCellTimeout:
    @pytest.fixture
    def jp_server_config(self) -> dict[str, Any]:
        from tests.extensions.conftest import extension_config

        return extension_config(cell_timeout=1.0, warm_kernels=0)

    async def test_a_cell_that_takes_too_long(self, jp_fetch: Any, jp_root_dir: Path) -> None:
        write_notebook(
            jp_root_dir / "slow.ipynb",
            parameters_cell("pause = 0"),
            new_code_cell("import threading\nthreading.Event().wait(pause)", id="wait"),
        )
        response = await run(jp_fetch, {"path": "slow.ipynb", "values": {"pause": 600}})
        assert_error(response, 422, "cell 1 (id wait) did not finish within 1 s")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{oops", ["malformed JSON body"]),
        (b"", ["the body must be a JSON object, got NoneType"]),
        ([], ["the body must be a JSON object, got list"]),
        ({}, ["path is required"]),
        ({"path": 3}, ["path must be a non-empty string"]),
        ({"path": "main.ipynb", "values": [1]}, ["values must be an object"]),
        ({"path": "main.ipynb", "colour": 1}, ["unknown field 'colour' (allowed: path, values)"]),
        ({"path": "gone.ipynb"}, ["unknown notebook 'gone.ipynb': no such file"]),
        ({"path": "main.ipynb", "values": {"speed": 1}}, ["unknown parameter 'speed'"]),
        (
            {"path": "main.ipynb", "values": {"points": "many"}},
            ["parameter 'points' expects int, got 'many'"],
        ),
        (
            {"path": "main.ipynb", "values": {"points": 2.5}},
            ["parameter 'points' expects int, got 2.5"],
        ),
        (
            {"path": "main.ipynb", "values": {"frequency": 9}},
            ["parameter 'frequency': 9 is above the maximum 5"],
        ),
        (
            {"path": "main.ipynb", "values": {"label": "cosine"}},
            ["parameter 'label': 'cosine' is not among the choices 'wave', 'sine'"],
        ),
        (b'{"path": "main.ipynb", "values": {"frequency": NaN}}', ["malformed JSON body: NaN"]),
        ({"path": "r.ipynb"}, ["the notebook's kernel 'ir' is not installed here"]),
    ],
)
async def test_bad_requests_are_400_before_any_kernel(
    jp_fetch: Any, jp_root_dir: Path, jp_serverapp: Any, body: Any, words: list[str]
) -> None:
    wave_notebook(jp_root_dir / "main.ipynb")
    (jp_root_dir / "erc.yml").write_text(ERC_YML + BOUNDS)
    r_kernel = {"name": "ir", "display_name": "R", "language": "python"}
    write_notebook(jp_root_dir / "r.ipynb", parameters_cell("n = 1"), kernelspec=r_kernel)
    for headers in (None, SSE):
        response = await run(jp_fetch, body, headers)
        assert_error(response, 400, *words)
    assert jp_serverapp.web_app.settings["erchub"].kernel_pool._warm == {}


async def test_values_may_come_as_text(jp_fetch: Any, jp_root_dir: Path) -> None:
    wave_notebook(jp_root_dir / "main.ipynb")
    body = {"path": "main.ipynb", "values": {"frequency": "2.5", "points": "100", "label": "x%s"}}
    result = json_of(await run(jp_fetch, json.dumps(body)))
    assert result["values"] == {"frequency": 2.5, "points": 100, "label": "x%s"}


async def test_a_client_that_goes_away_ends_the_run(jp_fetch: Any, jp_root_dir: Path) -> None:
    write_notebook(
        jp_root_dir / "forever.ipynb",
        parameters_cell("pause = 600"),
        "import os\nopen('kernel.pid', 'w').write(str(os.getpid()))",
        "import threading\nthreading.Event().wait(pause)",
    )
    received = []

    def receive(chunk: bytes) -> None:
        received.append(chunk)
        if b'"cell": 2' in b"".join(received):
            raise ConnectionAbortedError("the reader closes the panel")

    with pytest.raises(HTTPClientError):  # the client closed the connection
        await jp_fetch(
            "erchub", "run", method="POST", body=json.dumps({"path": "forever.ipynb"}),
            headers=dict(SSE), streaming_callback=receive, request_timeout=120,
        )  # fmt: skip
    kernel = psutil.Process(int((jp_root_dir / "kernel.pid").read_text()))
    await asyncio.to_thread(kernel.wait, 60)  # the server shuts it down
    assert not kernel.is_running()
    response = await run(jp_fetch, {"path": "forever.ipynb", "values": {"pause": 0}})
    assert response.code == 200
