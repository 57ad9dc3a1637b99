"""Fixtures of the server extension's tests: pytest-jupyter's server with erchub's extension.

pytest-jupyter sets its server up on an event loop of its own, pytest-asyncio (auto mode) runs
the tests on another: the server's loop is made pytest-asyncio's, so that they are one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nbformat.v4 import new_code_cell
from pytest_jupyter.jupyter_server import *  # noqa: F403  (pytest-jupyter's fixtures)
from tornado.httpclient import HTTPResponse

from tests.conftest import heading, parameters_cell, write_notebook

EXTENSION = {"ServerApp": {"jpserver_extensions": {"erchub.extensions": True}}}


@pytest.fixture
def jp_asyncio_loop(
    _function_scoped_runner: asyncio.Runner,
) -> Iterator[asyncio.AbstractEventLoop]:
    yield _function_scoped_runner.get_loop()


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return json.loads(json.dumps(EXTENSION))


def extension_config(**traits: Any) -> dict[str, Any]:
    """Server config enabling the extension, with ``traits`` of ERCHubExtension."""
    return {**json.loads(json.dumps(EXTENSION)), "ERCHubExtension": traits}


async def call(
    jp_fetch: Any,
    *parts: str,
    method: str = "GET",
    body: Any = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    request_timeout: float = 120,
) -> HTTPResponse:
    """A request to the server that returns error answers instead of raising them; ``body``
    is sent as JSON unless it is str or bytes."""
    options: dict[str, Any] = {"method": method, "raise_error": False}
    if body is not None:
        options["body"] = body if isinstance(body, str | bytes) else json.dumps(body)
    elif method in ("POST", "PUT"):
        options["body"] = b""
    response: HTTPResponse = await jp_fetch(
        *parts,
        params=params,
        headers=dict(headers or {}),
        request_timeout=request_timeout,
        **options,
    )
    return response


def json_of(response: HTTPResponse) -> Any:
    return json.loads(response.body)


def assert_error(response: HTTPResponse, status: int, *words: str) -> str:
    """The answer is the JSON error ``status`` whose one-line message has every one of
    ``words``; its message."""
    assert response.code == status, response.body
    error = json_of(response)
    assert set(error) == {"status", "message"}, error
    assert error["status"] == status
    message = error["message"]
    assert isinstance(message, str) and "\n" not in message and "Traceback" not in message
    for word in words:
        assert word in message, message
    return message


def events_of(response: HTTPResponse) -> list[tuple[str, Any]]:
    """The (event, data) pairs of a Server-Sent Events answer."""
    assert response.code == 200, response.body
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = []
    for block in response.body.decode().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


WAVE_PARAMETERS = 'frequency = 1.0  # cycles per unit of time\npoints = 200\nlabel = "wave"'


def wave_notebook(path: Path) -> Path:
    """A notebook whose figure depends on its ``frequency`` parameter."""
    return write_notebook(
        path,
        heading("# Waves\n\nA sine wave of a given frequency."),
        parameters_cell(WAVE_PARAMETERS),
        "%matplotlib inline\nimport numpy as np\nimport matplotlib.pyplot as plt",
        new_code_cell(
            "fig, ax = plt.subplots(figsize=(3, 2), dpi=60)\n"
            "t = np.linspace(0, 1, points)\n"
            "ax.plot(t, np.sin(2 * np.pi * frequency * t))\n"
            "ax.set_title(label);",
            metadata={"tags": ["plot"]},
        ),
        new_code_cell('print(f"{label}: {frequency} ({points} points)")', id="summary"),
    )


ERC_YML = """\
spec_version: 1
id: 5d1e8f3a-6b2c-4f0e-9a7d-3c1b2e4f5a60
main: main.ipynb
licenses: {code: MIT, data: ODbL-1.0, text: CC-BY-4.0, metadata: CC0-1.0}
"""
