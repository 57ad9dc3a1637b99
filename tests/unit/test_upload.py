"""Streaming multipart reception: parts, limits and cleanup, fed chunk by chunk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tornado import web

from erchub.services.compendia.operations import Relation
from erchub.services.handlers.upload import MultipartReceiver


def multipart(files: Any = None, data: Any = None) -> tuple[str, bytes]:
    """The Content-Type and body httpx sends for a form."""
    request = httpx.Request("POST", "http://x/", files=files, data=data)
    return request.headers["Content-Type"], request.read()


def feed_all(receiver: MultipartReceiver, body: bytes, size: int = 7) -> None:
    for index in range(0, len(body), size):
        receiver.feed(body[index : index + size])


def refusal(receiver: MultipartReceiver, body: bytes, *, finish: bool = True) -> web.HTTPError:
    with pytest.raises(web.HTTPError) as raised:
        feed_all(receiver, body)
        if finish:
            receiver.finish()
    receiver.discard()
    return raised.value


def message(error: web.HTTPError) -> str:
    return str(error.log_message)


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    return tmp_path / "uploads"


def test_a_file_and_its_content_type_arrive_on_disk(uploads: Path) -> None:
    payload = bytes(range(256)) * 1000
    content_type, body = multipart(
        files={"compendium": ("../../my work.zip", payload, "application/zip")},
        data={"content_type": "workspace"},
    )
    receiver = MultipartReceiver(content_type, uploads, limit=len(body))
    feed_all(receiver, body, size=4096)
    upload = receiver.finish()
    assert upload.content_type == "workspace"
    assert upload.filename == "my work.zip"
    assert upload.path.parent == upload.directory
    assert upload.directory.parent == uploads
    assert upload.path.read_bytes() == payload
    assert upload.size == len(payload)
    receiver.discard()  # handed over: stays until the caller removes it
    assert upload.path.exists()
    upload.remove()
    assert list(uploads.iterdir()) == []


def test_a_body_crossing_the_limit_is_413_at_once(uploads: Path) -> None:
    content_type, body = multipart(
        files={"compendium": ("a.zip", bytes(10_000))}, data={"content_type": "workspace"}
    )
    receiver = MultipartReceiver(content_type, uploads, limit=5000)
    receiver.feed(body[:5000])
    with pytest.raises(web.HTTPError) as raised:
        receiver.feed(body[5000:5001])
    assert raised.value.status_code == 413
    assert "limit of 5000 bytes" in message(raised.value)
    receiver.discard()
    assert list(uploads.iterdir()) == []


FILE = {"compendium": ("a.zip", b"x")}
WORKSPACE = {"content_type": "workspace"}
WRONG_FORMS = {
    "bad-type": (FILE, {"content_type": "bag"}, "must be workspace or compendium, got 'bag'"),
    "long-type": (FILE, {"content_type": "w" * 200}, "must be workspace or compendium"),
    "extra-field": (FILE, {**WORKSPACE, "title": "x"}, "unknown form field 'title'"),
    "wrong-file-field": ({"archive": ("a.zip", b"x")}, WORKSPACE, "unknown form field 'archive'"),
    "no-file": ({"content_type": (None, "workspace")}, None, "no compendium part"),
    "no-type": (FILE, None, "no content_type part"),
    "empty": ({"compendium": ("a.zip", b"")}, WORKSPACE, "compendium part is empty"),
    "twice": ([("compendium", ("a.zip", b"x"))] * 2, WORKSPACE, "sent twice"),
    "bad-relation": (FILE, {**WORKSPACE, "derived_from": "../x"}, "must be the id of a"),
    "two-relations": (
        FILE,
        {**WORKSPACE, "derived_from": "abc123", "is_new_version_of": "abc123"},
        "at most one relation",
    ),
}


@pytest.mark.parametrize(("files", "data", "expected"), WRONG_FORMS.values(), ids=WRONG_FORMS)
def test_wrong_forms_are_400_naming_the_problem(
    uploads: Path, files: Any, data: Any, expected: str
) -> None:
    content_type, body = multipart(files=files, data=data)
    error = refusal(MultipartReceiver(content_type, uploads, limit=10**6), body)
    assert error.status_code == 400
    assert expected in message(error)
    assert list(uploads.iterdir()) == []


def test_a_body_that_ends_early_is_400(uploads: Path) -> None:
    content_type, body = multipart(
        files={"compendium": ("a.zip", bytes(1000))}, data={"content_type": "workspace"}
    )
    error = refusal(MultipartReceiver(content_type, uploads, limit=10**6), body[:-20])
    assert (error.status_code, message(error)) == (
        400,
        "the multipart body ends before its closing boundary",
    )
    assert list(uploads.iterdir()) == []


def test_garbage_after_the_headers_is_400(uploads: Path) -> None:
    receiver = MultipartReceiver("multipart/form-data; boundary=xyz", uploads, limit=10**6)
    error = refusal(receiver, b"this is not multipart at all\r\n\r\n")
    assert error.status_code == 400
    assert "malformed multipart body" in message(error) or "ends before" in message(error)
    assert list(uploads.iterdir()) == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("text/plain", "expected a multipart/form-data body, got Content-Type text/plain"),
        ("", "got Content-Type none"),
        ("multipart/form-data", "names no boundary"),
    ],
)
def test_bodies_that_are_not_multipart_are_400_before_reading(
    uploads: Path, header: str, expected: str
) -> None:
    with pytest.raises(web.HTTPError) as raised:
        MultipartReceiver(header, uploads, limit=10**6)
    assert raised.value.status_code == 400
    assert expected in message(raised.value)
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_discard_midway_removes_the_partial_file(uploads: Path) -> None:
    content_type, body = multipart(
        files={"compendium": ("a.zip", bytes(100_000))}, data={"content_type": "workspace"}
    )
    receiver = MultipartReceiver(content_type, uploads, limit=10**6)
    receiver.feed(body[:50_000])
    assert any(uploads.rglob("a.zip"))
    receiver.discard()
    assert list(uploads.iterdir()) == []
    with pytest.raises(web.HTTPError):
        receiver.feed(body[50_000:])


@pytest.mark.parametrize(
    ("field", "relation"),
    [("is_new_version_of", Relation.IS_NEW_VERSION_OF), ("derived_from", Relation.DERIVED_FROM)],
)
def test_an_upload_names_the_compendium_it_relates_to(
    uploads: Path, field: str, relation: Relation
) -> None:
    content_type, body = multipart(files=FILE, data={**WORKSPACE, field: "abc123"})
    receiver = MultipartReceiver(content_type, uploads, limit=len(body))
    feed_all(receiver, body)
    upload = receiver.finish()
    assert upload.relation == (relation, "abc123")
    upload.remove()
