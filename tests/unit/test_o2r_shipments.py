"""o2r's shipment operations in process: ``POST /shipment`` as o2r's forms (urlencoded as o2r's
web UI sends it, multipart as o2r's document has it) beside JSON, with the same checks; and the
files of a shipment's deposition (``GET /shipment/{id}/files``, ``/publishment``,
``/files/{file_id}``, ``DELETE /shipment/{id}/files/{file_id}``) against the fake Zenodo.
The service's application with a fake HubAuth (see test_api_rules)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from erchub.services.handlers.base import BaseHandler
from tests.fakes.zenodo import FakeZenodo
from tests.unit.test_api_rules import (
    PREFIX,
    FakeHubAuth,
    assert_json_error,
    call,
    serving,
    upload,
)

O2R = {
    "title": "Sine waves, shipped by form",
    "description": "A sine wave and its frequency.",
    "creators": [{"name": "Ada Lovelace", "orcid": "0000-0002-1825-0097"}],
    "license": {"code": "MIT", "data": "CC-BY-4.0", "text": "CC-BY-4.0"},
}
URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def zenodo() -> Iterator[FakeZenodo]:
    with FakeZenodo() as fake:
        yield fake


@pytest.fixture
async def api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zenodo: FakeZenodo
) -> AsyncIterator[str]:
    """The service's application, its Zenodo sandbox the fake."""
    monkeypatch.setattr(BaseHandler, "hub_auth_class", FakeHubAuth)
    async with serving(tmp_path) as (origin, service):
        service.zenodo_sandbox_url = zenodo.url
        yield f"{origin}{PREFIX}"


async def published(api: str, tmp_path: Path, token: str = "alice-token") -> str:
    compendium_id = await upload(api, token, tmp_path)
    got = (await call(api, "GET", f"/compendium/{compendium_id}/metadata", token)).json()
    o2r = {**got["metadata"]["o2r"], **O2R}
    put = await call(api, "PUT", f"/compendium/{compendium_id}/metadata", token, json={"o2r": o2r})
    assert put.status_code == 200 and put.json()["candidate"] is False, put.text
    return compendium_id


def assert_bag_zip(content: bytes, compendium_id: str) -> None:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        names = archive.namelist()
    assert any(name.endswith("/bagit.txt") for name in names), names
    assert all(name.split("/", 1)[0].startswith(compendium_id) for name in names), names


# -- POST /shipment as a form -------------------------------------------------------------------


async def test_o2rs_web_ui_form_ships_a_download(api: str, tmp_path: Path) -> None:
    compendium_id = await published(api, tmp_path)
    # o2r's web UI: URLSearchParams of compendium_id and recipient
    response = await call(
        api,
        "POST",
        "/shipment",
        "alice-token",
        content=f"compendium_id={compendium_id}&recipient=download".encode(),
        headers=URLENCODED,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/zip"
    assert_bag_zip(response.content, compendium_id)
    # o2r's document: multipart/form-data, with update_packaging
    form = {"compendium_id": compendium_id, "recipient": "download", "update_packaging": "true"}
    multipart = await call(
        api, "POST", "/shipment", "alice-token", files={name: (None, v) for name, v in form.items()}
    )
    assert multipart.status_code == 200, multipart.text
    assert_bag_zip(multipart.content, compendium_id)
    listed = await call(api, "GET", f"/shipment?compendium_id={compendium_id}", "alice-token")
    assert len(listed.json()) == 2


async def test_a_form_ships_to_zenodo_as_json_does(
    api: str, tmp_path: Path, zenodo: FakeZenodo
) -> None:
    compendium_id = await published(api, tmp_path)
    form = {
        "compendium_id": compendium_id,
        "recipient": "zenodo_sandbox",
        "zenodo_token": zenodo.token,
        "update_packaging": "false",
    }
    response = await call(api, "POST", "/shipment", "alice-token", data=form)
    assert response.status_code == 201, response.text
    shipment = response.json()
    assert (shipment["status"], shipment["recipient"]) == ("shipped", "zenodo_sandbox")
    assert zenodo.token not in response.text
    deposition = zenodo.deposition(int(shipment["deposition_id"]))
    assert [entry["filename"] for entry in deposition["files"]] == [f"{compendium_id}.zip"]
    # JSON takes update_packaging too, as a boolean
    body = {"compendium_id": compendium_id, "recipient": "download", "update_packaging": False}
    assert (await call(api, "POST", "/shipment", "alice-token", json=body)).status_code == 200


@pytest.mark.parametrize(
    ("content", "content_type", "words"),
    [
        (b"recipient=download", "application/x-www-form-urlencoded", ["compendium_id"]),
        (b"compendium_id=X", "application/x-www-form-urlencoded", ["recipient"]),
        (b"compendium_id=X&recipient=ftp", "application/x-www-form-urlencoded", ["recipient"]),
        (b"", "application/x-www-form-urlencoded", ["compendium_id", "recipient"]),
        (
            b"compendium_id=X&recipient=download&update_packaging=maybe",
            "application/x-www-form-urlencoded",
            ["update_packaging", "true or false"],
        ),
        (
            b"compendium_id=X&compendium_id=Y&recipient=download",
            "application/x-www-form-urlencoded",
            ["compendium_id", "more than once"],
        ),
        (
            b"compendium_id=X&recipient=download&shipment_id=mine",
            "application/x-www-form-urlencoded",
            ["unknown field shipment_id"],
        ),
        (
            b"compendium_id=X&recipient=download&cookie=s%3Aabc",
            "application/x-www-form-urlencoded",
            ["cookie", "hub API token"],
        ),
        (
            b"compendium_id=%ff%fe&recipient=download",
            "application/x-www-form-urlencoded",
            ["compendium_id", "UTF-8"],
        ),
        (b"--x\r\n", "multipart/form-data", ["malformed form"]),
        (b"--x\r\n", "multipart/form-data; boundary=x", ["malformed form"]),
        (
            b'--b\r\nContent-Disposition: form-data; name="compendium"; filename="a.zip"\r\n\r\n'
            b"PK\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
            ["no files", "compendium"],
        ),
    ],
)
async def test_bad_forms_are_400s_naming_the_field(
    api: str, content: bytes, content_type: str, words: list[str]
) -> None:
    response = await call(
        api,
        "POST",
        "/shipment",
        "alice-token",
        content=content,
        headers={"Content-Type": content_type},
    )
    assert_json_error(response, 400, *words)


async def test_a_form_is_checked_as_json_is(api: str, tmp_path: Path) -> None:
    candidate = await upload(api, "alice-token", tmp_path)
    form = {"compendium_id": candidate, "recipient": "download"}
    # another user's candidate does not exist for bob; its author is told to publish it
    assert_json_error(await call(api, "POST", "/shipment", "bob-token", data=form), 404)
    response = await call(api, "POST", "/shipment", "alice-token", data=form)
    assert_json_error(response, 400, "candidate", "publish it")
    # shipping to Zenodo needs create; without a token a 400 says how to set one
    published_id = await published(api, tmp_path)
    zenodo_form = {"compendium_id": published_id, "recipient": "zenodo_sandbox"}
    response = await call(api, "POST", "/shipment", "reader-token", data=zenodo_form)
    assert_json_error(response, 403, "custom:erc:create")
    response = await call(api, "POST", "/shipment", "alice-token", data=zenodo_form)
    assert_json_error(response, 400, "zenodo_token", "Zenodo-Token")
    bad_token = {**zenodo_form, "zenodo_token": "with space"}
    response = await call(api, "POST", "/shipment", "alice-token", data=bad_token)
    assert_json_error(response, 400, "zenodo_token", "without spaces")
    assert "with space" not in response.text  # a token is never quoted
    # JSON keeps its own checks: update_packaging is a boolean there
    body = {"compendium_id": published_id, "recipient": "download", "update_packaging": "yes"}
    response = await call(api, "POST", "/shipment", "alice-token", json=body)
    assert_json_error(response, 400, "update_packaging")


# -- the files of a shipment's deposition -------------------------------------------------------


async def zenodo_shipment(api: str, tmp_path: Path, zenodo: FakeZenodo) -> dict[str, Any]:
    compendium_id = await published(api, tmp_path)
    body = {"compendium_id": compendium_id, "recipient": "zenodo_sandbox"}
    headers = {"Zenodo-Token": zenodo.token}
    response = await call(api, "POST", "/shipment", "alice-token", json=body, headers=headers)
    assert response.status_code == 201, response.text
    shipment: dict[str, Any] = response.json()
    return shipment


async def test_the_files_of_a_deposition_as_zenodo_lists_them(
    api: str, tmp_path: Path, zenodo: FakeZenodo
) -> None:
    shipment = await zenodo_shipment(api, tmp_path, zenodo)
    token = {"Zenodo-Token": zenodo.token}
    files_path = f"/shipment/{shipment['id']}/files"
    response = await call(api, "GET", files_path, "alice-token", headers=token)
    assert response.status_code == 200, response.text
    files = response.json()["files"]
    (bag,) = files
    assert bag["filename"] == f"{shipment['compendium_id']}.zip"
    assert set(bag) == {"id", "filename", "filesize", "checksum", "links"}
    deposition = zenodo.deposition(int(shipment["deposition_id"]))
    assert bag["id"] == deposition["files"][0]["id"]
    assert bag["filesize"] == deposition["files"][0]["filesize"] > 0
    # o2r's document lists them at /publishment
    publishment = await call(
        api, "GET", f"/shipment/{shipment['id']}/publishment", "alice-token", headers=token
    )
    assert publishment.json() == {"files": files}
    one = await call(api, "GET", f"{files_path}/{bag['id']}", "alice-token", headers=token)
    assert one.json() == bag
    missing = await call(api, "GET", f"{files_path}/no-such-file", "alice-token", headers=token)
    assert_json_error(missing, 404, "no-such-file")
    # without a token: a 400 saying how to send or store one; never another user's shipment
    assert_json_error(await call(api, "GET", files_path, "alice-token"), 400, "Zenodo-Token")
    assert_json_error(await call(api, "GET", files_path, "bob-token", headers=token), 404)
    assert (await call(api, "GET", files_path, "admin-token", headers=token)).status_code == 200
    response = await call(api, "GET", f"{files_path}?all=1", "alice-token", headers=token)
    assert_json_error(response, 400, "unknown query argument")


async def test_a_download_has_no_deposition_files(api: str, tmp_path: Path) -> None:
    compendium_id = await published(api, tmp_path)
    body = {"compendium_id": compendium_id, "recipient": "download"}
    assert (await call(api, "POST", "/shipment", "alice-token", json=body)).status_code == 200
    (shipment_id,) = (
        await call(api, "GET", f"/shipment?compendium_id={compendium_id}", "alice-token")
    ).json()
    for method, path in (
        ("GET", f"/shipment/{shipment_id}/files"),
        ("GET", f"/shipment/{shipment_id}/publishment"),
        ("GET", f"/shipment/{shipment_id}/files/any"),
        ("DELETE", f"/shipment/{shipment_id}/files/any"),
    ):
        response = await call(api, method, path, "alice-token")
        assert_json_error(response, 404, "no deposition", "not kept")
    assert_json_error(await call(api, "GET", "/shipment/nosuch/files", "alice-token"), 404)


async def test_a_file_is_deleted_from_an_unpublished_deposition_only(
    api: str, tmp_path: Path, zenodo: FakeZenodo
) -> None:
    shipment = await zenodo_shipment(api, tmp_path, zenodo)
    token = {"Zenodo-Token": zenodo.token}
    files_path = f"/shipment/{shipment['id']}/files"
    (bag,) = (await call(api, "GET", files_path, "alice-token", headers=token)).json()["files"]
    target = f"{files_path}/{bag['id']}"
    # deleting needs create, and is the shipper's (or an administrator's)
    assert_json_error(await call(api, "DELETE", target, "reader-token", headers=token), 403)
    assert_json_error(await call(api, "DELETE", target, "bob-token", headers=token), 404)
    response = await call(api, "DELETE", f"{files_path}/nosuch", "alice-token", headers=token)
    assert_json_error(response, 404, "nosuch")
    deleted = await call(api, "DELETE", target, "alice-token", headers=token)
    assert deleted.status_code == 204, deleted.text
    assert zenodo.deposition(int(shipment["deposition_id"]))["files"] == []
    listed = await call(api, "GET", files_path, "alice-token", headers=token)
    assert listed.json() == {"files": []}
    assert_json_error(await call(api, "DELETE", target, "alice-token", headers=token), 404)
    # still shipped: publishing a deposition without files is Zenodo's to refuse, by name
    status = await call(api, "GET", f"/shipment/{shipment['id']}/status", "alice-token")
    assert status.json()["status"] == "shipped"
    publish = await call(
        api, "PUT", f"/shipment/{shipment['id']}/publishment", "alice-token", headers=token
    )
    assert_json_error(publish, 400, "files")

    # once published, a deposition keeps its files: 409, and Zenodo is not asked to delete
    other = await zenodo_shipment(api, tmp_path, zenodo)
    done = await call(
        api, "PUT", f"/shipment/{other['id']}/publishment", "alice-token", headers=token
    )
    assert done.status_code == 200 and done.json()["status"] == "published", done.text
    other_files = f"/shipment/{other['id']}/files"
    (kept,) = (await call(api, "GET", other_files, "alice-token", headers=token)).json()["files"]
    before = len(zenodo.requests)
    refused = await call(api, "DELETE", f"{other_files}/{kept['id']}", "alice-token", headers=token)
    assert_json_error(refused, 409, "published")
    assert not [r for r in zenodo.requests[before:] if r[0] == "DELETE"]


async def test_zenodos_failures_are_named(api: str, tmp_path: Path, zenodo: FakeZenodo) -> None:
    shipment = await zenodo_shipment(api, tmp_path, zenodo)
    files_path = f"/shipment/{shipment['id']}/files"
    # a token Zenodo refuses is a 400 saying so; Zenodo failing a 502 naming it
    refused = await call(api, "GET", files_path, "alice-token", headers={"Zenodo-Token": "nope"})
    assert_json_error(refused, 400, "refused the token")
    token = {"Zenodo-Token": zenodo.token}
    zenodo.fail_next(503, path=f"/depositions/{shipment['deposition_id']}")
    assert_json_error(await call(api, "GET", files_path, "alice-token", headers=token), 502)
    (bag,) = (await call(api, "GET", files_path, "alice-token", headers=token)).json()["files"]
    zenodo.fail_next(500, path=f"/files/{bag['id']}")
    failed = await call(api, "DELETE", f"{files_path}/{bag['id']}", "alice-token", headers=token)
    assert_json_error(failed, 502, "Zenodo")
    zenodo.fail_next(200, body=b"[not json", path=f"/depositions/{shipment['deposition_id']}")
    assert_json_error(await call(api, "GET", files_path, "alice-token", headers=token), 502)
