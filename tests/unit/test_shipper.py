"""The shipper's pieces: token checks, Zenodo's answers as messages, the deposit client against
the fake Zenodo, and tokens encrypted with JupyterHub's CryptKeeper."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyterhub.crypto import CryptKeeper
from traitlets.config import Application

from erchub.services.exchange.shipper import (
    RECIPIENTS,
    ShipperError,
    ZenodoClient,
    crypt_keeper,
    decrypt_token,
    deposition_page,
    encrypt_token,
    encryption_problem,
    missing_deposit_fields,
    missing_token_message,
    token_problem,
    upstream_message,
    zenodo_error,
)
from tests.fakes.zenodo import DOI_PREFIX, FakeZenodo

SECRET = "s3cr3t-T0ken_value.xyz"
METADATA = {
    "upload_type": "publication",
    "publication_type": "other",
    "title": "A compendium",
    "creators": [{"name": "Lovelace, Ada"}],
    "description": "<p>An ERC</p>",
}


# -- pure logic --------------------------------------------------------------------------------


def test_token_problems_never_quote_the_token() -> None:
    assert token_problem(SECRET, "zenodo_token") is None
    for bad in ("", "with space", "new\nline", "x" * 2001, "\u00e9t\u00e9", 12345, None):
        problem = token_problem(bad, "zenodo_token")
        assert problem and problem.startswith("zenodo_token: ")
        assert str(bad) not in problem or bad in ("",)


def test_missing_token_message_says_how_to_set_one() -> None:
    message = missing_token_message(
        RECIPIENTS["zenodo_sandbox"], "https://sandbox.example/", "/api"
    )
    assert "zenodo_token" in message and "Zenodo-Token" in message
    assert "PUT /api/recipient/zenodo_sandbox/token" in message
    assert "https://sandbox.example/account/settings/applications/tokens/new/" in message
    assert "deposit:write" in message and "deposit:actions" in message


def test_recipients_keep_o2r_names() -> None:
    assert list(RECIPIENTS) == ["download", "zenodo", "zenodo_sandbox"]
    assert [r.needs_token for r in RECIPIENTS.values()] == [False, True, True]


def test_upstream_message_names_fields() -> None:
    invenio = {
        "status": 400,
        "message": "Validation error.",
        "errors": [
            {"field": "metadata.title", "messages": ["Field is required."]},
            {"field": "metadata.creators.0.name", "messages": ["Field is required.", "Bad."]},
        ],
    }
    said = upstream_message(json.dumps(invenio).encode())
    assert said == (
        "Validation error: metadata.title: Field is required.; "
        "metadata.creators.0.name: Field is required. Bad."
    )
    legacy = {"message": "Validation error.", "errors": [{"field": "x", "message": "Not valid"}]}
    assert upstream_message(json.dumps(legacy).encode()) == "Validation error: x: Not valid"
    assert upstream_message(b"<html>Bad gateway</html>") == ""
    assert upstream_message(b"[1, 2]") == ""
    assert len(upstream_message(json.dumps({"message": "x" * 5000}).encode())) <= 300


@pytest.mark.parametrize(
    ("upstream", "status", "words"),
    [
        (401, 400, "refused the token"),
        (403, 400, "refused the token"),
        (400, 400, "rejected the request"),
        (413, 400, "too large"),
        (404, 502, "does not know the deposition"),
        (500, 502, "failed"),
        (503, 502, "failed"),
    ],
)
def test_zenodo_errors_map_to_clear_statuses(upstream: int, status: int, words: str) -> None:
    error = zenodo_error("Zenodo", "creating a deposition", upstream, b'{"message": "Nope."}')
    assert (error.status, error.upstream_status) == (status, upstream)
    assert words in error.message and "Zenodo" in error.message
    assert "creating a deposition" in error.message


def test_missing_deposit_fields() -> None:
    assert missing_deposit_fields(METADATA) == []
    assert missing_deposit_fields({**METADATA, "description": "", "creators": []}) == [
        "creators",
        "description",
    ]


def test_deposition_page_prefers_the_record() -> None:
    links = {"html": "https://z/deposit/1", "record_html": "https://z/records/1"}
    assert deposition_page({"links": links}) == "https://z/records/1"
    assert deposition_page({"links": {"html": "https://z/deposit/1"}}) == "https://z/deposit/1"
    assert deposition_page({"links": {"html": "javascript:alert(1)"}}) is None
    assert deposition_page({}) is None


# -- the deposit client against the fake Zenodo -------------------------------------------------


@pytest.fixture(scope="module")
def zenodo() -> Iterator[FakeZenodo]:
    with FakeZenodo() as fake:
        yield fake


@pytest.fixture
def bag_zip(tmp_path: Path) -> Path:
    path = tmp_path / "bag.zip"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # more than one upload chunk
    return path


async def test_ship_and_publish(zenodo: FakeZenodo, bag_zip: Path) -> None:
    client = ZenodoClient(zenodo.url + "/", zenodo.token)
    assert zenodo.token not in repr(client)
    deposition = await client.create_deposition()
    bucket = client.bucket_of(deposition)
    uploaded = await client.upload(bucket, "abc123.zip", bag_zip)
    assert uploaded["size"] == bag_zip.stat().st_size
    stored = zenodo.buckets[bucket.rsplit("/", 1)[1]]["abc123.zip"]
    assert stored.content == bag_zip.read_bytes()
    await client.set_metadata(str(deposition["id"]), METADATA)
    published = await client.publish(str(deposition["id"]))
    assert published["doi"] == f"{DOI_PREFIX}/zenodo.{deposition['id']}"
    assert deposition_page(published) == zenodo.record_url(deposition["id"])
    again = await client.get_deposition(str(deposition["id"]))
    assert again["submitted"] is True


async def test_a_bad_token_is_refused(zenodo: FakeZenodo) -> None:
    client = ZenodoClient(zenodo.url, "not-a-valid-token")
    with pytest.raises(ShipperError) as raised:
        await client.create_deposition()
    assert (raised.value.status, raised.value.upstream_status) == (400, 401)
    assert "Zenodo refused the token" in raised.value.message


async def test_validation_errors_name_the_fields(zenodo: FakeZenodo) -> None:
    client = ZenodoClient(zenodo.url, zenodo.token)
    deposition = await client.create_deposition()
    with pytest.raises(ShipperError) as raised:
        await client.set_metadata(str(deposition["id"]), {"upload_type": "publication"})
    assert raised.value.status == 400
    for field in ("metadata.title", "metadata.creators", "metadata.description"):
        assert field in raised.value.message


async def test_failures_of_zenodo_are_502(zenodo: FakeZenodo) -> None:
    client = ZenodoClient(zenodo.url, zenodo.token)
    zenodo.fail_next(503, path="/api/deposit/depositions")
    with pytest.raises(ShipperError) as raised:
        await client.create_deposition()
    assert raised.value.status == 502 and "503" in raised.value.message
    zenodo.fail_next(200, "<html>maintenance</html>", path="/api/deposit/depositions")
    with pytest.raises(ShipperError) as raised:
        await client.create_deposition()
    assert raised.value.status == 502 and "JSON" in raised.value.message


async def test_a_bucket_on_another_host_gets_no_token(zenodo: FakeZenodo) -> None:
    client = ZenodoClient(zenodo.url, zenodo.token)
    with pytest.raises(ShipperError) as raised:
        client.bucket_of({"links": {"bucket": "https://elsewhere.example/api/files/x"}})
    assert raised.value.status == 502
    with pytest.raises(ShipperError):
        client.bucket_of({"links": {}})


async def test_unreachable_and_slow_zenodo_are_502(zenodo: FakeZenodo) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = ZenodoClient(f"http://127.0.0.1:{port}", zenodo.token)
    with pytest.raises(ShipperError) as raised:
        await closed.create_deposition()
    assert raised.value.status == 502 and "unreachable" in raised.value.message
    assert f"127.0.0.1:{port}" in raised.value.message

    slow = ZenodoClient(zenodo.url, zenodo.token, request_timeout=0.5)
    zenodo.delay_next(3, path="/api/deposit/depositions")
    with pytest.raises(ShipperError) as raised:
        await slow.create_deposition()
    assert raised.value.status == 502 and "did not answer" in raised.value.message
    assert zenodo.token not in raised.value.message
    await asyncio.sleep(3)  # the fake finishes the delayed request


# -- tokens at rest ----------------------------------------------------------------------------


@pytest.fixture
def crypt_key() -> Iterator[bytes]:
    keeper = crypt_keeper()
    before = list(keeper.keys)
    key = os.urandom(32)
    keeper.keys = [key]
    yield key
    keeper.keys = before


@pytest.fixture
def no_crypt_key() -> Iterator[None]:
    keeper = crypt_keeper()
    before = list(keeper.keys)
    keeper.keys = []
    yield
    keeper.keys = before


async def test_tokens_are_stored_encrypted(crypt_key: bytes) -> None:
    assert encryption_problem() is None
    encrypted = await encrypt_token(SECRET)
    assert SECRET not in encrypted and encrypted.isascii()
    assert await decrypt_token(encrypted, RECIPIENTS["zenodo"], "/api") == SECRET
    crypt_keeper().keys = [os.urandom(32)]  # the key changed since
    with pytest.raises(ShipperError) as raised:
        await decrypt_token(encrypted, RECIPIENTS["zenodo"], "/api")
    assert raised.value.status == 400 and "PUT /api/recipient/zenodo/token" in raised.value.message


async def test_without_a_key_tokens_are_not_stored(no_crypt_key: None) -> None:
    assert "JUPYTERHUB_CRYPT_KEY" in (encryption_problem() or "")
    with pytest.raises(ShipperError) as raised:
        await encrypt_token(SECRET)
    assert raised.value.status == 400
    assert "JUPYTERHUB_CRYPT_KEY" in raised.value.message
    assert "zenodo_token" in raised.value.message
    with pytest.raises(ShipperError) as raised:
        await decrypt_token("gAAAA", RECIPIENTS["zenodo"], "/api")
    assert raised.value.status == 400


def test_the_keeper_works_inside_another_application(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the erc service the running traitlets Application is the service, not JupyterHub:
    CryptKeeper's default config (JupyterHub.instance().config) would fail there."""

    class Service(Application):
        pass

    CryptKeeper.clear_instance()
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", os.urandom(32).hex())
    Service.instance()
    try:
        assert encryption_problem() is None
        assert crypt_keeper().keys
    finally:
        Service.clear_instance()
        CryptKeeper.clear_instance()
