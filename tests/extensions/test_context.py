"""GET erchub/context: the session's ERC and job, and whether an erc service is configured."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import write_notebook
from tests.extensions.conftest import EXTENSION, assert_error, call, extension_config, json_of


async def test_a_plain_server_has_no_erc(jp_fetch: Any) -> None:
    response = await call(jp_fetch, "erchub", "context")
    assert response.code == 200
    body = json_of(response)
    assert body.pop("user")  # the server's authenticated user
    assert body == {
        "compendium_id": None,
        "job_id": None,
        "review_link": False,
        "erc_service": False,
    }


class TestFromTheSpawnersEnvironment:
    @pytest.fixture
    def jp_server_config(self, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        monkeypatch.setenv("ERCHUB_COMPENDIUM_ID", "c0ffee")
        monkeypatch.setenv("ERCHUB_JOB_ID", "j0b")
        monkeypatch.setenv("ERCHUB_API_URL", "http://127.0.0.1:9/services/erc/api/v1")
        monkeypatch.setenv("JUPYTERHUB_USER", "ada")
        return dict(EXTENSION)

    async def test_the_environment_names_the_erc(self, jp_fetch: Any) -> None:
        response = await call(jp_fetch, "erchub", "context")
        assert json_of(response) == {
            "compendium_id": "c0ffee",
            "job_id": "j0b",
            "review_link": False,
            "erc_service": True,
            "user": "ada",
        }


class TestFromTraits:
    @pytest.fixture
    def jp_server_config(self) -> dict[str, Any]:
        return extension_config(
            compendium_id="abc", erc_api_url="http://127.0.0.1:9/api/v1", session_user="bob"
        )

    async def test_traits_name_the_erc(self, jp_fetch: Any) -> None:
        response = await call(jp_fetch, "erchub", "context")
        assert json_of(response) == {
            "compendium_id": "abc",
            "job_id": None,
            "review_link": False,
            "erc_service": True,
            "user": "bob",
        }


async def test_without_credentials_is_403(jp_fetch: Any) -> None:
    response = await call(jp_fetch, "erchub", "context", headers={"Authorization": "token wrong"})
    assert_error(response, 403)


async def test_unknown_paths_and_methods(jp_fetch: Any) -> None:
    assert (await call(jp_fetch, "erchub", "context", method="POST")).code == 405


async def test_a_notebook_not_yet_published(jp_fetch: Any, jp_root_dir: Any) -> None:
    write_notebook(jp_root_dir / "my-study" / "doubling.ipynb", "x = 1")
    response = await call(jp_fetch, "erchub", "context", params={"path": "my-study/doubling.ipynb"})
    assert json_of(response)["notebook"] == {
        "path": "my-study/doubling.ipynb",
        "compendium_id": None,
        "source": None,
        "editable": False,
    }
    missing = await call(jp_fetch, "erchub", "context", params={"path": "none.ipynb"})
    assert_error(missing, 400, "no such file")
