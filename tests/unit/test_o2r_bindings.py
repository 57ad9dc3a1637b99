"""o2r's bindings operations are not offered (README, "o2r's API": a documented difference):
each is a 404 of the API, in process (see test_api_rules), whatever body it carries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from erchub.services.handlers.base import BaseHandler
from tests.unit.test_api_rules import (
    PREFIX,
    FakeHubAuth,
    assert_json_error,
    call,
    serving,
    upload,
)


@pytest.fixture
async def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    monkeypatch.setattr(BaseHandler, "hub_auth_class", FakeHubAuth)
    async with serving(tmp_path) as (origin, _service):
        yield f"{origin}{PREFIX}"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/bindings/binding"),
        ("POST", "/bindings/searchBinding"),
        ("GET", "/compendium/{id}/binding/figure3"),
        ("POST", "/compendium/{id}/binding/figure3"),
    ],
)
async def test_o2rs_bindings_are_not_offered(
    api: str, tmp_path: Path, method: str, path: str
) -> None:
    compendium_id = await upload(api, "alice-token", tmp_path)
    body = {"id": compendium_id, "term": "plot(", "computationalResult": {"result": "Figure 3"}}
    kwargs = {"json": body} if method == "POST" else {}
    response = await call(api, method, path.format(id=compendium_id), "alice-token", **kwargs)
    assert_json_error(response, 404, "no such resource")
