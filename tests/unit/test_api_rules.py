"""The API's rules in process: the erc service's tornado application with a fake HubAuth (as
jupyterhub/tests/mocking.py stands in for the hub), a real SQLite store, no hub, no proxy.

Who may do what (401, 403, 404), what bad input gets (400, 413, JSON errors), and that domain
errors raised below the handlers become their HTTP status in one place. The hub tier keeps the
end-to-end cases through the proxy.
"""

from __future__ import annotations

import io
import json
import socket
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tornado import web
from tornado.httpserver import HTTPServer

from erchub.services.app import ERCService
from erchub.services.handlers.base import BaseHandler
from erchub.services.store import open_store
from tests.conftest import heading, write_notebook

PREFIX = "/services/erc/api/v1"
ACCESS = "access:services!service=erc"
USER_SCOPES = [ACCESS, "custom:erc:read", "custom:erc:create", "custom:erc:run"]


class FakeHubAuth:
    """jupyterhub's HubOAuth as the handlers use it: a token in ``Authorization`` names a user
    model; the hub's access scope decides who may use the service at all."""

    access_scopes = {ACCESS}
    login_url = "/hub/login"
    hub_prefix = "/hub/"
    users: dict[str, dict[str, Any]] = {}

    @classmethod
    def instance(cls) -> FakeHubAuth:
        return cls()

    def get_user(self, handler: Any, *, sync: bool = True) -> Any:
        assert not sync, "the service must never block on the hub"
        header = handler.request.headers.get("Authorization", "")
        model = self.users.get(header.removeprefix("token ").strip())

        async def resolved() -> dict[str, Any] | None:
            return dict(model) if model else None

        return resolved()

    def check_scopes(self, required: set[str], user: dict[str, Any]) -> set[str]:
        return set(required) & set(user["scopes"])


def model(name: str, scopes: list[str]) -> dict[str, Any]:
    return {"kind": "user", "name": name, "scopes": scopes}


FakeHubAuth.users = {
    "alice-token": model("alice", USER_SCOPES),
    "bob-token": model("bob", USER_SCOPES),
    "reader-token": model("reader", [ACCESS, "custom:erc:read"]),
    "admin-token": model("admin", [ACCESS, "custom:erc:admin"]),
    "outsider-token": model("outsider", ["custom:erc:read"]),  # no access to the service
}


@asynccontextmanager
async def listening(app: web.Application) -> AsyncIterator[str]:
    """``app`` served on a free port of 127.0.0.1: its origin."""
    server = HTTPServer(app)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    server.add_sockets([sock])
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.stop()


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[tuple[str, ERCService]]:
    """The service's application (SQLite store in ``tmp_path``, no workers) on a port of
    127.0.0.1: its origin and the service."""
    data_dir = tmp_path / "data"
    db_url = f"sqlite:///{data_dir / 'erchub.sqlite'}"
    service = ERCService(
        data_dir=str(data_dir), db_url=db_url, base_url="/services/erc/", worker_count=0
    )
    data_dir.mkdir()
    service.store = open_store(db_url)
    service.workers = []
    try:
        async with listening(service.make_app()) as origin:
            yield origin, service
    finally:
        service.store.close()


@pytest.fixture
async def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The service's application on a port of 127.0.0.1, its base URL."""
    monkeypatch.setattr(BaseHandler, "hub_auth_class", FakeHubAuth)
    async with serving(tmp_path) as (origin, _service):
        yield f"{origin}{PREFIX}"


async def call(
    api: str, method: str, path: str, token: str | None = None, **kwargs: Any
) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}))
    if token:
        headers["Authorization"] = f"token {token}"
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.request(method, api + path, headers=headers, **kwargs)


def assert_json_error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status and isinstance(body["message"], str)
    for word in words:
        assert word in body["message"], body["message"]


def workspace_zip(tmp_path: Path) -> bytes:
    notebook = write_notebook(tmp_path / "nb.ipynb", heading("# Rules\n\nA probe."), "x = 1")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("ws/main.ipynb", notebook.read_bytes())
    return buffer.getvalue()


async def upload(api: str, token: str, tmp_path: Path) -> str:
    files = {"compendium": ("ws.zip", workspace_zip(tmp_path), "application/zip")}
    response = await call(
        api, "POST", "/compendium", token, files=files, data={"content_type": "workspace"}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_identity_and_scopes(api: str) -> None:
    assert_json_error(await call(api, "GET", "/compendium"), 401, "authentication required")
    # a logged-in user without access to the service: 403, never the login page again
    for headers in ({}, {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}):
        response = await call(api, "GET", "/compendium", "outsider-token", headers=headers)
        assert_json_error(response, 403, "outsider may not use this service")
    response = await call(api, "POST", "/job", "reader-token", json={"compendium_id": "x"})
    assert_json_error(response, 403, "custom:erc:run")
    assert (await call(api, "GET", "/compendium", "reader-token")).status_code == 200


async def test_visibility_and_authorship(api: str, tmp_path: Path) -> None:
    candidate = await upload(api, "alice-token", tmp_path)
    # another user's candidate does not exist for them; the author and an admin see it
    assert_json_error(await call(api, "GET", f"/compendium/{candidate}", "bob-token"), 404)
    assert (await call(api, "GET", f"/compendium/{candidate}", "admin-token")).status_code == 200
    body = {"o2r": {"title": "Changed by an admin"}}
    # the metadata of what bob cannot see: 404; a reader without create: 403
    response = await call(api, "PUT", f"/compendium/{candidate}/metadata", "bob-token", json=body)
    assert_json_error(response, 404)
    response = await call(
        api, "PUT", f"/compendium/{candidate}/metadata", "reader-token", json=body
    )
    assert_json_error(response, 403, "custom:erc:create")
    response = await call(api, "DELETE", f"/compendium/{candidate}", "bob-token")
    assert_json_error(response, 404)
    assert (await call(api, "DELETE", f"/compendium/{candidate}", "alice-token")).status_code == 204


async def test_domain_errors_become_their_status_in_one_place(api: str, tmp_path: Path) -> None:
    """Raised below the handlers (compendia, jobs, exchange rooms), answered by BaseHandler."""
    compendium = await upload(api, "alice-token", tmp_path)
    # Invalid (checked_metadata): 400 naming the field
    body = {"o2r": {"title": "t", "mainfile": "not-there.ipynb"}}
    response = await call(
        api, "PUT", f"/compendium/{compendium}/metadata", "alice-token", json=body
    )
    assert_json_error(response, 400, "o2r.mainfile")
    # InvalidParameter (jobs.queue.check_parameters): 400 naming the parameter
    job = {"compendium_id": compendium, "parameters": {"nope": 1}}
    assert_json_error(await call(api, "POST", "/job", "alice-token", json=job), 400, "nope")
    # InvalidERC (compendia.files.ingest): 400 with the one-line message
    files = {"compendium": ("x.zip", b"not a zip", "application/zip")}
    response = await call(
        api, "POST", "/compendium", "alice-token", files=files, data={"content_type": "workspace"}
    )
    assert_json_error(response, 400, "not a zip or tar archive")
    # the loader's LoadError keeps its status (a host not allowed: 403)
    load = {"share_url": "https://example.org/a.zip"}
    assert_json_error(await call(api, "POST", "/compendium", "alice-token", json=load), 403)


@pytest.mark.parametrize(
    ("body", "status", "word"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b'{"compendium_id": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "nested"),
        (b'{"compendium_id": "x", "unknown": 1}', 400, "unknown"),
        (b'{"padding": "' + b"x" * (17 * 1024**2) + b'"}', 413, "limit"),
    ],
    ids=["malformed", "nested", "unknown-field", "too-large"],
)
async def test_bad_bodies(api: str, body: bytes, status: int, word: str) -> None:
    headers = {"Content-Type": "application/json"}
    response = await call(api, "POST", "/job", "alice-token", content=body, headers=headers)
    assert_json_error(response, status, word)


async def test_unknown_arguments_and_resources(api: str) -> None:
    response = await call(api, "GET", "/compendium?colour=blue", "alice-token")
    assert_json_error(response, 400, "unknown query argument: colour")
    assert_json_error(await call(api, "GET", "/nothing/here", "alice-token"), 404)
    assert_json_error(await call(api, "GET", "/job/nope", "alice-token"), 404)
    response = await call(api, "GET", "/compendium", "alice-token")
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert json.loads(response.text) == {"results": [], "total": 0}
