"""Publishing and the erc proxies without an erc service (503), with one that cannot be
reached, fails (502), answers late (502) or refuses (its 4xx passed on). A small stand-in
service plays the failures that the real one does not show on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tornado import httpserver, testing, web

from tests.extensions.conftest import assert_error, call, extension_config, json_of, wave_notebook

#: metadata that publishing takes
COMPLETE_O2R = {
    "title": "T",
    "creators": [{"name": "Ada"}],
    "license": {"code": "MIT", "data": "CC0-1.0", "text": "CC-BY-4.0"},
}
#: every erchub endpoint that talks to the erc service, with a body that passes validation
ERC_ENDPOINTS = [
    ("POST", ("erchub", "publish"), {"path": "main.ipynb", "metadata": {"o2r": COMPLETE_O2R}}),
    ("GET", ("erchub", "compendium", "c1"), None),
    ("GET", ("erchub", "compendium", "c1", "metadata"), None),
    ("PUT", ("erchub", "compendium", "c1", "metadata"), {"o2r": {"title": "T"}}),
    ("POST", ("erchub", "job"), {"compendium_id": "c1"}),
    ("GET", ("erchub", "job", "j1"), None),
    ("GET", ("erchub", "job", "j1", "logs"), None),
    ("GET", ("erchub", "job", "j1", "report"), None),
]


@pytest.mark.parametrize(("method", "parts", "body"), ERC_ENDPOINTS)
async def test_without_an_erc_service_is_503(
    jp_fetch: Any, jp_root_dir: Path, method: str, parts: tuple[str, ...], body: Any
) -> None:
    wave_notebook(jp_root_dir / "main.ipynb")
    response = await call(jp_fetch, *parts, method=method, body=body)
    assert_error(response, 503, "ERCHUB_API_URL is unset", "not started by erchub's hub")


@pytest.mark.parametrize(
    ("method", "parts", "body", "words"),
    [
        ("POST", ("erchub", "publish"), {}, ["path is required"]),
        (
            "POST",
            ("erchub", "publish"),
            {"path": "none.ipynb", "metadata": {"o2r": COMPLETE_O2R}},
            ["unknown notebook 'none.ipynb'"],
        ),
        ("POST", ("erchub", "publish"), b"[", ["malformed JSON body"]),
        ("PUT", ("erchub", "compendium", "c1", "metadata"), {}, ["o2r is required"]),
        ("PUT", ("erchub", "compendium", "c1", "metadata"), {"o2r": []}, ["o2r must be an object"]),
        ("POST", ("erchub", "job"), {"compendium_id": ""}, ["compendium_id must be a non-empty"]),
        ("POST", ("erchub", "job"), {"compendium": "c1"}, ["unknown field 'compendium'"]),
    ],
)
async def test_bad_bodies_are_400_before_anything_else(
    jp_fetch: Any, method: str, parts: tuple[str, ...], body: Any, words: list[str]
) -> None:
    assert_error(await call(jp_fetch, *parts, method=method, body=body), 400, *words)


class TestUnreachable:
    @pytest.fixture
    def jp_server_config(self) -> dict[str, Any]:
        sock, port = testing.bind_unused_port()
        sock.close()  # nobody listens there
        return extension_config(erc_api_url=f"http://127.0.0.1:{port}/services/erc/api/v1")

    @pytest.mark.parametrize(("method", "parts", "body"), ERC_ENDPOINTS)
    async def test_an_erc_service_that_cannot_be_reached_is_502(
        self, jp_fetch: Any, jp_root_dir: Path, method: str, parts: tuple[str, ...], body: Any
    ) -> None:
        wave_notebook(jp_root_dir / "main.ipynb")
        response = await call(jp_fetch, *parts, method=method, body=body)
        assert_error(response, 502, "the erc service (http://127.0.0.1:", "cannot be reached")


# --- a stand-in erc service ------------------------------------------------------------------


class StandIn(web.RequestHandler):
    """Answers by the id asked for: the failures the extension must map."""

    async def get(self, what: str) -> None:
        if what == "whoami":
            self.write({"authorization": self.request.headers.get("Authorization")})
        elif what == "broken":
            self.set_status(500)
            self.write({"status": 500, "message": "internal error"})
        elif what == "html":
            self.set_status(404)
            self.set_header("Content-Type", "text/html")
            self.write("<html><body><h1>404: Not Found</h1></body></html>")
        elif what == "gone":
            self.set_status(410)
            self.write({"status": 410, "message": "compendium gone was deleted"})
        elif what == "nojson":
            self.write(b"plain words")
        elif what == "slow":
            await asyncio.Event().wait()


class StandInLogs(web.RequestHandler):
    async def get(self) -> None:
        self.set_header("Content-Type", "text/event-stream")
        for line in ("step", "log", "log"):
            self.write(f'event: {line}\ndata: {{"kind": "{line}"}}\n\n')
            await self.flush()
        last = self.request.headers.get("Last-Event-ID", "none")
        self.write(f'event: status\ndata: {{"status": "success", "last": "{last}"}}\n\n')


class StandInReport(web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html")
        self.write("<html><body>no differences</body></html>")


@pytest.fixture
async def stand_in() -> AsyncIterator[str]:
    """The API URL of a stand-in erc service."""
    app = web.Application(
        [
            (r"/api/v1/compendium/([^/]+)", StandIn),
            (r"/api/v1/job/j1/logs", StandInLogs),
            (r"/api/v1/job/j1/data/check/report.html", StandInReport),
        ]
    )
    sock, port = testing.bind_unused_port()
    server = httpserver.HTTPServer(app)
    server.add_sockets([sock])
    yield f"http://127.0.0.1:{port}/api/v1"
    server.stop()


class TestStandIn:
    @pytest.fixture
    def jp_server_config(self, stand_in: str) -> dict[str, Any]:
        return extension_config(erc_api_url=stand_in, api_token="secret", api_timeout=1.0)

    async def test_requests_carry_the_token(self, jp_fetch: Any) -> None:
        response = await call(jp_fetch, "erchub", "compendium", "whoami")
        assert json_of(response) == {"authorization": "token secret"}

    @pytest.mark.parametrize(
        ("what", "status", "words"),
        [
            ("broken", 502, ["the erc service (http://127.0.0.1:", "failed: 500 internal error"]),
            ("html", 404, ["404: Not Found"]),
            ("gone", 410, ["compendium gone was deleted"]),
            ("nojson", 502, ["answered GET /compendium/nojson with no JSON"]),
            ("slow", 502, ["the erc service (http://127.0.0.1:", "did not answer within 1 s"]),
        ],
    )
    async def test_failures_are_mapped(
        self, jp_fetch: Any, what: str, status: int, words: list[str]
    ) -> None:
        response = await call(jp_fetch, "erchub", "compendium", what)
        assert_error(response, status, *words)

    async def test_logs_pass_through_as_they_come(self, jp_fetch: Any) -> None:
        response = await call(
            jp_fetch, "erchub", "job", "j1", "logs", headers={"Last-Event-ID": "7"}
        )
        assert response.code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.body.decode().split("\n\n")[:4] == [
            'event: step\ndata: {"kind": "step"}',
            'event: log\ndata: {"kind": "log"}',
            'event: log\ndata: {"kind": "log"}',
            'event: status\ndata: {"status": "success", "last": "7"}',
        ]

    async def test_the_report_is_sandboxed(self, jp_fetch: Any) -> None:
        response = await call(jp_fetch, "erchub", "job", "j1", "report")
        assert response.code == 200
        assert response.headers["Content-Type"].startswith("text/html")
        assert response.headers["Content-Security-Policy"].startswith("sandbox; ")
        assert b"no differences" in response.body

    async def test_stream_errors_before_the_stream_are_plain_errors(self, jp_fetch: Any) -> None:
        response = await call(jp_fetch, "erchub", "job", "j2", "logs")
        assert_error(response, 404, "Not Found")
