"""The compendium resource end to end, through a real JupyterHub and its managed erc service.

Every answer that is not a success must be a JSON error ``{"status", "message", "error"}``
with the right 4xx; no request may end in a 500, and no bad upload may leave files behind.
"""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from erchub.services.exchange.citation import PACKAGE_FILES, ExportFormat
from tests.conftest import heading, write_notebook
from tests.hub.conftest import UPLOAD_LIMIT, Hub

pytestmark = pytest.mark.hub

MIB = 1024**2
CSV = b"year,temperature\n2020,1.5\n2021,1.7\n"
DOI = "10.5281/zenodo.1234567"


# --- helpers -------------------------------------------------------------------------------


def notebook(tmp_path: Path, title: str) -> bytes:
    path = write_notebook(
        tmp_path / "nb" / f"{abs(hash(title))}.ipynb",
        heading(f"# {title}\n\nTemperatures over the years."),
        "import csv",
        authors=[{"name": "Ada Lovelace"}],
    )
    return path.read_bytes()


def zip_bytes(*entries: tuple[str | zipfile.ZipInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in entries:
            bundle.writestr(name, data)
    return buffer.getvalue()


def workspace_zip(tmp_path: Path, title: str = "Temperature trends") -> bytes:
    return zip_bytes(("project/main.ipynb", notebook(tmp_path, title)), ("project/data/t.csv", CSV))


def link(name: str, destination: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, destination.encode()


def assert_error(response: httpx.Response, status: int, text: str = "") -> str:
    """The response is the JSON error ``status``; returns its message."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"status", "message", "error"}
    assert body["status"] == status
    assert body["error"] == body["message"]  # o2r's clients read error
    assert isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in body["message"]
    assert text in body["message"], body["message"]
    return str(body["message"])


def wait_until_empty(directory: Path, seconds: float = 5.0) -> list[str]:
    """The entries still in ``directory`` once it is empty or ``seconds`` passed (the service
    removes temporary files in its executor, right after answering)."""
    deadline = time.monotonic() + seconds
    while True:
        entries = sorted(p.name for p in directory.iterdir())
        if not entries or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)


def scoped_token(hub: Hub, username: str, scopes: list[str]) -> str:
    hub.token(username)  # creates the user
    response = hub.hub_api(
        "POST", f"/users/{username}/tokens", json={"note": "scoped", "scopes": scopes}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


@pytest.fixture
def alice(erc_hub: Hub) -> str:
    return erc_hub.token("alice")


@pytest.fixture
def bob(erc_hub: Hub) -> str:
    return erc_hub.token("bob")


# --- identity and scopes -------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/compendium"),
    ("POST", "/compendium"),
    ("GET", "/compendium/abc123"),
    ("DELETE", "/compendium/abc123"),
    ("GET", "/compendium/abc123/metadata"),
    ("PUT", "/compendium/abc123/metadata"),
    ("GET", "/compendium/abc123/files"),
    ("GET", "/compendium/abc123/data/main.ipynb"),
    ("GET", "/compendium/abc123.zip"),
    ("GET", "/compendium/abc123.tar.gz"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_no_identity_is_401(erc_hub: Hub, method: str, path: str) -> None:
    assert_error(erc_hub.request(method, path), 401)
    bad = erc_hub.request(method, path, token="not-a-token")
    assert_error(bad, 401)


def test_a_read_only_token_may_read_but_not_upload_or_change(
    erc_hub: Hub, tmp_path: Path, alice: str
) -> None:
    compendium_id = erc_hub.create(alice, workspace_zip(tmp_path))
    reader = scoped_token(erc_hub, "alice", ["access:services!service=erc", "custom:erc:read"])
    assert erc_hub.request("GET", f"/compendium/{compendium_id}", token=reader).status_code == 200
    assert_error(erc_hub.upload(reader, workspace_zip(tmp_path)), 403, "custom:erc:create")
    put = erc_hub.request(
        "PUT", f"/compendium/{compendium_id}/metadata", token=reader, json={"o2r": {"title": "x"}}
    )
    assert_error(put, 403, "custom:erc:create")
    delete = erc_hub.request("DELETE", f"/compendium/{compendium_id}", token=reader)
    assert_error(delete, 403, "custom:erc:create")
    assert wait_until_empty(erc_hub.data_dir / "uploads") == []


# --- the life of a compendium --------------------------------------------------------------


def test_upload_inspect_publish_and_delete(
    erc_hub: Hub, tmp_path: Path, alice: str, bob: str
) -> None:
    compendium_id = erc_hub.create(alice, workspace_zip(tmp_path))
    root = erc_hub.data_dir / "compendia" / compendium_id
    assert (root / "erc.yml").is_file()
    assert (root / ".erc" / "metadata_o2r_1.json").is_file()
    assert wait_until_empty(erc_hub.data_dir / "uploads") == []

    # the candidate, as its author sees it
    body = erc_hub.request("GET", f"/compendium/{compendium_id}", token=alice).json()
    assert body["id"] == compendium_id
    assert body["user"] == "alice"
    assert body["candidate"] is True
    assert body["created"].endswith("Z")
    o2r = body["metadata"]["o2r"]
    assert o2r["title"] == "Temperature trends"
    assert o2r["creators"] == [{"name": "Ada Lovelace", "orcid": None, "affiliation": None}]
    assert o2r["files"] == ["data/t.csv", "erc.yml", "main.ipynb"]
    names = [child["name"] for child in body["files"]["children"]]
    assert names == [".erc", "data", "erc.yml", "main.ipynb"]
    assert (
        body["files"]
        == erc_hub.request("GET", f"/compendium/{compendium_id}/files", token=alice).json()
    )
    metadata = erc_hub.request("GET", f"/compendium/{compendium_id}/metadata", token=alice)
    assert metadata.json() == {"id": compendium_id, "metadata": {"o2r": o2r}}

    own = erc_hub.request("GET", "/compendium?candidate=true", token=alice).json()
    assert compendium_id in own["results"]
    published = erc_hub.request("GET", "/compendium?limit=1000", token=alice).json()
    assert compendium_id not in published["results"]

    # raw files and downloads
    data = erc_hub.request("GET", f"/compendium/{compendium_id}/data/data/t.csv", token=alice)
    assert data.status_code == 200
    assert data.content == CSV
    assert data.headers["Content-Type"].startswith("text/csv")
    assert data.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in data.headers["Content-Security-Policy"]
    main = erc_hub.request("GET", f"/compendium/{compendium_id}/data/main.ipynb", token=alice)
    assert main.headers["Content-Type"] == "application/x-ipynb+json"
    assert json.loads(main.content)["cells"][0]["cell_type"] == "markdown"
    check_downloads(erc_hub, alice, compendium_id, root)

    # another user does not see the candidate at all
    for method, path in ENDPOINTS[2:]:
        path = path.replace("abc123", compendium_id)
        kwargs: dict[str, Any] = {"json": {"o2r": {"title": "x"}}} if method == "PUT" else {}
        assert_error(erc_hub.request(method, path, token=bob, **kwargs), 404)
    listed = erc_hub.request("GET", "/compendium?candidate=true&user=alice", token=bob).json()
    assert listed == {"results": [], "total": 0}

    # invalid metadata is refused field by field, and changes nothing
    bad = {"o2r": {"title": "", "keywords": "x", "creators": [{"orcid": "123"}], "x": 1}}
    response = erc_hub.request(
        "PUT", f"/compendium/{compendium_id}/metadata", token=alice, json=bad
    )
    message = assert_error(response, 400)
    for field in ("o2r.title", "o2r.keywords", "o2r.creators.0", "o2r: unknown field x"):
        assert field in message
    missing_main = {"o2r": {"title": "T", "mainfile": "nothere.ipynb"}}
    response = erc_hub.request(
        "PUT", f"/compendium/{compendium_id}/metadata", token=alice, json=missing_main
    )
    assert_error(response, 400, "o2r.mainfile")
    typo = {
        "o2r": {"title": "T", "creators": [{"name": "J. Carberry", "orcid": "0000-0002-1825-0098"}]}
    }
    response = erc_hub.request(
        "PUT", f"/compendium/{compendium_id}/metadata", token=alice, json=typo
    )
    assert_error(response, 400, "o2r.creators.0.orcid: '0000-0002-1825-0098' is not an ORCID iD")

    # a draft (publish=false) is saved and keeps the candidate a candidate; a bad flag is a 400
    draft = {**o2r, "title": "A draft title"}
    saved = erc_hub.request(
        "PUT",
        f"/compendium/{compendium_id}/metadata?publish=false",
        token=alice,
        json={"o2r": draft},
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["candidate"] is True
    assert saved.json()["metadata"]["o2r"]["title"] == "A draft title"
    response = erc_hub.request(
        "PUT", f"/compendium/{compendium_id}/metadata?publish=perhaps", token=alice, json=bad
    )
    assert_error(response, 400, "publish must be true or false")

    # the author publishes by saving valid metadata
    o2r.update(
        title="Temperature trends, revisited",
        keywords=["climate"],
        publication_date="2024-05-01",
        identifier={"doi": DOI, "doiurl": f"https://doi.org/{DOI}"},
        files=["forged.txt"],
    )
    saved = erc_hub.request(
        "PUT", f"/compendium/{compendium_id}/metadata", token=alice, json={"o2r": o2r}
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["candidate"] is False
    stored = saved.json()["metadata"]["o2r"]
    assert stored["title"] == "Temperature trends, revisited"
    assert stored["files"] == ["data/t.csv", "erc.yml", "main.ipynb"]  # derived: kept
    on_disk = json.loads((root / ".erc" / "metadata_o2r_1.json").read_text())
    assert on_disk == stored

    # now everybody sees it, finds it by DOI, and only an administrator may delete it
    seen = erc_hub.request("GET", f"/compendium/{compendium_id}", token=bob).json()
    assert seen["candidate"] is False
    by_doi = erc_hub.request("GET", f"/compendium?doi={DOI.upper()}", token=bob).json()
    assert by_doi["results"] == [compendium_id]
    put = erc_hub.request(
        "PUT", f"/compendium/{compendium_id}/metadata", token=bob, json={"o2r": o2r}
    )
    assert_error(put, 403, "author")
    assert_error(erc_hub.request("DELETE", f"/compendium/{compendium_id}", token=bob), 403)
    assert_error(erc_hub.request("DELETE", f"/compendium/{compendium_id}", token=alice), 403)
    deleted = erc_hub.request("DELETE", f"/compendium/{compendium_id}", token=erc_hub.admin_token)
    assert deleted.status_code == 204
    assert not root.exists()
    assert_error(erc_hub.request("GET", f"/compendium/{compendium_id}", token=alice), 404)
    assert wait_until_empty(erc_hub.data_dir / "uploads") == []


def check_downloads(hub: Hub, token: str, compendium_id: str, root: Path) -> None:
    """Both downloads hold the compendium's files as they are, and the metadata exports made
    for the download (``PACKAGE_FILES``) beside them: DataCite XML not, for a compendium
    without a DOI."""
    stored = {
        p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()
    }
    datacite = PACKAGE_FILES[ExportFormat.DATACITE]
    exports = set(PACKAGE_FILES.values()) - {datacite}
    assert not set(PACKAGE_FILES.values()) & set(stored), "the exports are made for downloads"
    zipped = hub.request("GET", f"/compendium/{compendium_id}.zip", token=token)
    assert zipped.status_code == 200
    assert zipped.headers["Content-Type"] == "application/zip"
    assert zipped.headers["Content-Disposition"] == (f'attachment; filename="{compendium_id}.zip"')
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as bundle:
        files = {
            name.removeprefix(f"{compendium_id}/"): bundle.read(name)
            for name in bundle.namelist()
            if not name.endswith("/")
        }
    assert set(files) == set(stored) | exports
    assert {name: files[name] for name in stored} == stored
    assert b"@misc{" in files[PACKAGE_FILES[ExportFormat.BIBTEX]]
    tarred = hub.request("GET", f"/compendium/{compendium_id}.tar.gz", token=token)
    assert tarred.status_code == 200
    assert tarred.headers["Content-Type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(tarred.content)) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        files = {
            m.name.removeprefix(f"{compendium_id}/"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in members
        }
    assert set(files) == set(stored) | exports
    assert {name: files[name] for name in stored} == stored


def test_the_author_deletes_a_candidate(erc_hub: Hub, tmp_path: Path, alice: str, bob: str) -> None:
    compendium_id = erc_hub.create(alice, workspace_zip(tmp_path))
    assert_error(erc_hub.request("DELETE", f"/compendium/{compendium_id}", token=bob), 404)
    response = erc_hub.request("DELETE", f"/compendium/{compendium_id}", token=alice)
    assert response.status_code == 204
    assert not (erc_hub.data_dir / "compendia" / compendium_id).exists()
    assert_error(erc_hub.request("DELETE", f"/compendium/{compendium_id}", token=alice), 404)


def test_a_compendium_archive_keeps_its_erc_yml_and_metadata(
    erc_hub: Hub, tmp_path: Path, alice: str
) -> None:
    erc_yml = (
        b"spec_version: 1\nid: b9b0099e-9f8d-4a33-8acf-cb0c062efaec\nmain: main.ipynb\n"
        b"licenses: {code: MIT, data: ODbL-1.0, text: CC-BY-4.0, metadata: CC0-1.0}\n"
    )
    own = {"title": "As published", "creators": [{"name": "A. Author"}]}
    archive = zip_bytes(
        ("main.ipynb", notebook(tmp_path, "Notebook title")),
        ("erc.yml", erc_yml),
        (".erc/metadata_o2r_1.json", json.dumps(own).encode()),
    )
    compendium_id = erc_hub.create(alice, archive, "compendium")
    body = erc_hub.request("GET", f"/compendium/{compendium_id}/metadata", token=alice).json()
    assert body["metadata"]["o2r"] == own
    root = erc_hub.data_dir / "compendia" / compendium_id
    assert (root / "erc.yml").read_bytes() == erc_yml


def test_listing_filters_and_pages(erc_hub: Hub, tmp_path: Path) -> None:
    carol = erc_hub.token("carol")
    ids = [erc_hub.create(carol, workspace_zip(tmp_path, f"Study {i}")) for i in range(3)]
    first = erc_hub.request(
        "GET", "/compendium?candidate=true&user=carol&limit=2&summary=true", token=carol
    ).json()
    assert first["total"] == 3
    assert first["results"] == ids[::-1][:2]  # newest first
    assert [s["title"] for s in first["summaries"]] == ["Study 2", "Study 1"]
    assert all(s["user"] == "carol" and s["candidate"] for s in first["summaries"])
    rest = erc_hub.request(
        "GET", "/compendium?candidate=true&user=carol&start=2&limit=2", token=carol
    ).json()
    assert rest == {"results": [ids[0]], "total": 3}
    everyone = erc_hub.request("GET", "/compendium?candidate=true", token=erc_hub.admin_token)
    assert set(ids) <= set(everyone.json()["results"])


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("limit=0", "limit"),
        ("limit=many", "limit must be an integer"),
        ("start=-1", "start"),
        ("candidate=maybe", "candidate must be true or false"),
        ("summary=2x", "summary"),
        ("user=", "user"),
        ("colour=blue", "unknown query argument: colour"),
    ],
)
def test_bad_list_arguments_are_400(erc_hub: Hub, alice: str, query: str, text: str) -> None:
    assert_error(erc_hub.request("GET", f"/compendium?{query}", token=alice), 400, text)


# --- bad input -----------------------------------------------------------------------------


def bomb() -> bytes:
    return zip_bytes(("main.ipynb", b"{}"), ("zeros.bin", bytes(50 * MIB)))


BAD_ARCHIVES = {
    "dotdot": (lambda nb: zip_bytes(("main.ipynb", nb), ("../evil.txt", b"x")), "'..'"),
    "absolute": (lambda nb: zip_bytes(("main.ipynb", nb), ("/tmp/evil.txt", b"x")), "absolute"),
    "symlink": (lambda nb: zip_bytes(("main.ipynb", nb), link("evil", "../../..")), "outside"),
    "bomb": (lambda nb: bomb(), "zip bomb"),
    "not-an-archive": (lambda nb: b"plain text, no archive", "is not a zip or tar archive"),
    "no-notebook": (lambda nb: zip_bytes(("README.md", b"hi")), "no notebook"),
}


@pytest.mark.parametrize(("build", "text"), BAD_ARCHIVES.values(), ids=BAD_ARCHIVES)
def test_bad_archives_are_400_and_leave_nothing(
    erc_hub: Hub, tmp_path: Path, alice: str, build: Any, text: str
) -> None:
    compendia_before = sorted(os.listdir(erc_hub.data_dir / "compendia"))
    response = erc_hub.upload(alice, build(notebook(tmp_path, "Bad")), filename="bad.zip")
    message = assert_error(response, 400, text)
    assert str(erc_hub.data_dir) not in message
    assert wait_until_empty(erc_hub.data_dir / "uploads") == []
    assert sorted(os.listdir(erc_hub.data_dir / "compendia")) == compendia_before
    assert not Path("/tmp/evil.txt").exists()
    assert not list(erc_hub.data_dir.parent.rglob("evil*"))


def test_a_compendium_without_erc_yml_is_400(erc_hub: Hub, tmp_path: Path, alice: str) -> None:
    response = erc_hub.upload(alice, workspace_zip(tmp_path), "compendium")
    assert_error(response, 400, "no erc.yml")
    assert wait_until_empty(erc_hub.data_dir / "uploads") == []


BAD_FORMS = {
    "wrong-content-type": ({"content_type": "bagit"}, "content_type must be workspace"),
    "unknown-field": ({"content_type": "workspace", "colour": "blue"}, "unknown form field"),
    "no-content-type": ({}, "no content_type part"),
}


@pytest.mark.parametrize(("data", "text"), BAD_FORMS.values(), ids=BAD_FORMS)
def test_bad_forms_are_400(
    erc_hub: Hub, tmp_path: Path, alice: str, data: dict[str, str], text: str
) -> None:
    response = erc_hub.request(
        "POST",
        "/compendium",
        token=alice,
        files={"compendium": ("w.zip", workspace_zip(tmp_path), "application/zip")},
        data=data,
    )
    assert_error(response, 400, text)
    assert wait_until_empty(erc_hub.data_dir / "uploads") == []


def test_a_body_that_is_not_multipart_is_400(erc_hub: Hub, alice: str) -> None:
    response = erc_hub.request(
        "POST",
        "/compendium",
        token=alice,
        content=b"x",
        headers={"Content-Type": "text/plain"},
    )
    assert_error(response, 400, "multipart/form-data")
    # a JSON body loads from a repository (share_url, doi, zenodo_record_id): others are named
    response = erc_hub.request("POST", "/compendium", token=alice, json={"compendium": "x"})
    assert_error(response, 400, "unknown field compendium")
    no_file = erc_hub.request(
        "POST", "/compendium", token=alice, files={"content_type": (None, "workspace")}
    )
    assert_error(no_file, 400, "no compendium part")
    assert wait_until_empty(erc_hub.data_dir / "uploads") == []


def test_an_upload_over_the_limit_is_413(erc_hub: Hub, alice: str) -> None:
    big = os.urandom(UPLOAD_LIMIT + MIB)
    response = erc_hub.upload(alice, big, filename="big.zip")
    assert_error(response, 413, f"limit of {UPLOAD_LIMIT} bytes")
    assert wait_until_empty(erc_hub.data_dir / "uploads") == []


def test_refusals_of_large_uploads_reach_the_client_through_the_proxy(
    erc_hub: Hub, tmp_path: Path
) -> None:
    """Refused before the body is read, and the body still coming: the answer is the
    service's JSON error, not a proxy's 503."""
    body = os.urandom(UPLOAD_LIMIT - MIB)
    assert_error(erc_hub.upload(None, body), 401)
    reader = scoped_token(erc_hub, "dave", ["access:services!service=erc", "custom:erc:read"])
    assert_error(erc_hub.upload(reader, body), 403, "custom:erc:create")
    response = erc_hub.request(
        "POST", "/compendium", token=erc_hub.token("dave"), content=body,
        headers={"Content-Type": "application/octet-stream"},
    )  # fmt: skip
    assert_error(response, 400, "multipart/form-data")
    unknown = erc_hub.request(
        "POST", "/compendium", token=erc_hub.token("dave"),
        files=[("title", (None, "x")), ("compendium", ("w.zip", body))],
    )  # fmt: skip
    assert_error(unknown, 400, "unknown form field 'title'")
    assert wait_until_empty(erc_hub.data_dir / "uploads") == []


def test_a_chunked_upload_crossing_the_limit_is_413(erc_hub: Hub, alice: str) -> None:
    boundary = "erchubtestboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content_type"\r\n\r\n'
        f"workspace\r\n--{boundary}\r\n"
        f'Content-Disposition: form-data; name="compendium"; filename="big.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()

    def body() -> Iterator[bytes]:
        yield head
        for _ in range(UPLOAD_LIMIT // (256 * 1024) + 8):
            yield os.urandom(256 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = erc_hub.request(
        "POST",
        "/compendium",
        token=alice,
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert_error(response, 413, "limit")
    assert wait_until_empty(erc_hub.data_dir / "uploads") == []


def test_a_client_that_goes_away_mid_upload_leaves_nothing(erc_hub: Hub, alice: str) -> None:
    boundary = "erchubtestboundary"
    url = urlparse(erc_hub.api_url + "/compendium")
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="compendium"; '
        'filename="w.zip"\r\n\r\n'
    ).encode()
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(
            f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: token {alice}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {4 * MIB}\r\n\r\n".encode()
            + head
            + os.urandom(MIB)
        )
        deadline = time.monotonic() + 10
        while not any((erc_hub.data_dir / "uploads").iterdir()):
            assert time.monotonic() < deadline, "the upload never reached the disk"
            time.sleep(0.05)
    assert wait_until_empty(erc_hub.data_dir / "uploads", seconds=10) == []


# --- metadata bodies -----------------------------------------------------------------------


@pytest.fixture
def candidate(erc_hub: Hub, tmp_path: Path, alice: str) -> str:
    return erc_hub.create(alice, workspace_zip(tmp_path))


@pytest.mark.parametrize(
    ("content", "headers", "text"),
    [
        (b'{"o2r": {"title": ', {}, "malformed JSON"),
        (b"\xff\xfe", {}, "malformed JSON"),
        (b'{"o2r": {"title": "T"}}', {"Content-Type": "text/plain"}, "expected a JSON body"),
        (b'{"o2r": {"title": 5}}', {}, "o2r.title: 5 is not of type 'string'"),
        (b'{"o2r": {"title": "T", "creators": "me"}}', {}, "o2r.creators"),
        (b'{"o2r": {"title": "T", "publication_date": "yesterday"}}', {}, "publication_date"),
        (b'{"o2r": {"title": "T", "identifier": {"doi": "x"}}}', {}, "o2r.identifier.doi"),
        (b'{"o2r": {"title": "T"}, "candidate": false}', {}, "unknown field candidate"),
        (b'{"o2r": {"title": "T", "owner": "bob"}}', {}, "o2r: unknown field owner"),
        (b'{"title": "T"}', {}, "'o2r' is required"),
        (b"[]", {}, "is not of type 'object'"),
    ],
)
def test_bad_metadata_bodies_are_400(
    erc_hub: Hub,
    alice: str,
    candidate: str,
    content: bytes,
    headers: dict[str, str],
    text: str,
) -> None:
    headers = {"Content-Type": "application/json", **headers}
    response = erc_hub.request(
        "PUT", f"/compendium/{candidate}/metadata", token=alice, content=content, headers=headers
    )
    assert_error(response, 400, text)
    still = erc_hub.request("GET", f"/compendium/{candidate}", token=alice).json()
    assert still["candidate"] is True
    assert still["metadata"]["o2r"]["title"] == "Temperature trends"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("missing.txt", 404),
        ("data", 404),
        # an escaped slash keeps clients and the proxy from resolving the dots themselves
        ("..%2F..%2Ferchub.sqlite", 400),
        ("data%2F..%2F..%2F..%2Fcookie_secret", 400),
        ("%2Fetc%2Fpasswd", 400),
        # dot segments that the client resolves: a different, absent resource
        ("%2e%2e/%2e%2e/erchub.sqlite", 404),
    ],
)
def test_data_paths_outside_or_absent(
    erc_hub: Hub, alice: str, candidate: str, path: str, status: int
) -> None:
    response = erc_hub.request("GET", f"/compendium/{candidate}/data/{path}", token=alice)
    assert_error(response, status)


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_unknown_compendium_is_404(erc_hub: Hub, alice: str, method: str) -> None:
    assert_error(erc_hub.request(method, "/compendium/zzzzzz", token=alice), 404, "zzzzzz")
    for path in ("/metadata", "/files", "/data/x", ".zip", ".tar.gz"):
        assert_error(erc_hub.request("GET", f"/compendium/zzzzzz{path}", token=alice), 404)


def test_wrong_methods_are_405(erc_hub: Hub, alice: str, candidate: str) -> None:
    assert_error(erc_hub.request("PUT", "/compendium", token=alice), 405)
    assert_error(erc_hub.request("POST", f"/compendium/{candidate}", token=alice), 405)
