"""Loading (o2r's loader) through the real hub and erc service, against the fake Zenodo.

``POST /compendium`` with a JSON body loads from a Zenodo record id, a DOI (through the DOI
handle API) or a share URL (a record page, an archive, a DOI as a URL); ``launch/doi/{doi}``
loads DOIs the hub does not have yet. Every bad input is a JSON error of the right status:
403 for a host outside the allow-list (redirects included), 404 for what does not exist, 400
for what is no archive, 413 past the loader's limit, 502 for an unreachable repository, a
time-out and the repository's own errors. No 500s (the session's erc_hub fixture checks).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import socket
from typing import Any

import httpx
import pytest

from tests.conftest import LOADER_DOWNLOAD_LIMIT, LOADER_TIMEOUT
from tests.fakes.zenodo import FakeZenodo
from tests.hub.conftest import Hub, example_zip, zip_directory

pytestmark = pytest.mark.hub

USER = "loader-user"


@pytest.fixture(scope="module")
def hub(erc_hub: Hub) -> Hub:
    return erc_hub


@pytest.fixture(scope="module")
def zenodo(fake_zenodo: FakeZenodo) -> FakeZenodo:
    return fake_zenodo


@pytest.fixture(autouse=True)
def no_hooks_left(fake_zenodo: FakeZenodo) -> Any:
    yield
    fake_zenodo.clear_hooks()


@pytest.fixture(scope="module")
def token(erc_hub: Hub) -> str:
    return erc_hub.token(USER)


def load(hub: Hub, token: str | None, body: Any, **kwargs: Any) -> httpx.Response:
    return hub.request("POST", "/compendium", token, json=body, **kwargs)


def loaded(hub: Hub, token: str, body: Any) -> dict[str, Any]:
    """A load that must succeed: the new compendium."""
    response = load(hub, token, body)
    assert response.status_code == 201, response.text
    compendium_id = response.json()["id"]
    assert response.headers["Location"].endswith(f"/compendium/{compendium_id}")
    got = hub.request("GET", f"/compendium/{compendium_id}", token)
    assert got.status_code == 200, got.text
    return dict(got.json())


def refused(hub: Hub, token: str, body: Any, status: int, words: str) -> dict[str, Any]:
    response = load(hub, token, body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["status"] == status
    assert words in answer["message"], answer["message"]
    return dict(answer)


def random_doi() -> str:
    return f"10.5281/zenodo.{secrets.randbelow(10**9)}"


def file_names(tree: dict[str, Any]) -> set[str]:
    names = {tree["path"]} if tree.get("type") == "file" else set()
    for child in tree.get("children") or []:
        names |= file_names(child)
    return names


# --- each source kind ------------------------------------------------------------------------


def test_load_by_zenodo_record_id(hub: Hub, token: str, zenodo: FakeZenodo) -> None:
    record_id = zenodo.add_record({"erc.zip": example_zip(), "README.md": b"# readme"})
    compendium = loaded(hub, token, {"zenodo_record_id": record_id})
    assert compendium["user"] == USER
    assert compendium["candidate"] is True
    o2r = compendium["metadata"]["o2r"]
    assert o2r["origin"]["kind"] == "zenodo_record_id"
    assert o2r["origin"]["zenodo_record_id"] == str(record_id)
    assert o2r["origin"]["record_url"] == zenodo.record_url(record_id)
    assert o2r["origin"]["file"] == "erc.zip"
    doi = zenodo.records[record_id].doi
    assert o2r["identifier"]["doi"] == doi
    assert {"main.ipynb", "erc.yml"} <= file_names(compendium["files"])
    # the file and the store agree
    stored = hub.request("GET", f"/compendium/{compendium['id']}/data/.erc/metadata_o2r_1.json",
                         token)  # fmt: skip
    assert json.loads(stored.content)["origin"] == o2r["origin"]
    # the record id as a string and a sandbox record (the test hub's sandbox is the same fake)
    assert (
        load(hub, token, {"zenodo_record_id": str(record_id), "sandbox": True}).status_code == 201
    )


def test_load_by_doi(hub: Hub, token: str, zenodo: FakeZenodo) -> None:
    doi = random_doi()
    record_id = zenodo.add_record({"erc.zip": example_zip()}, doi=doi)
    before = len(zenodo.requests)
    compendium = loaded(hub, token, {"doi": f"doi:{doi.upper()}"})
    o2r = compendium["metadata"]["o2r"]
    assert o2r["identifier"] == {"doi": doi, "doiurl": f"https://doi.org/{doi}"}
    assert o2r["origin"]["kind"] == "doi" and o2r["origin"]["doi"] == doi
    assert o2r["origin"]["record_url"] == zenodo.record_url(record_id)
    paths = [path for _, _, path in zenodo.requests[before:]]
    assert paths == [
        f"/api/handles/{doi}",
        f"/api/records/{record_id}",
        f"/api/records/{record_id}/files/erc.zip/content",
    ]
    found = hub.request("GET", "/compendium", token, params={"doi": doi, "candidate": "true"})
    assert found.json()["results"] == [compendium["id"]]


def test_load_by_share_url(hub: Hub, token: str, zenodo: FakeZenodo) -> None:
    doi = random_doi()
    record_id = zenodo.add_record({"erc.tar.gz": tar_gz_of_example()}, doi=doi)
    # a record's page: the record is loaded
    page = loaded(hub, token, {"share_url": zenodo.record_url(record_id)})["metadata"]["o2r"]
    assert page["origin"]["share_url"] == zenodo.record_url(record_id)
    assert page["origin"]["file"] == "erc.tar.gz"
    assert page["identifier"]["doi"] == doi
    # the old form of the page and the DOI as a URL (never requested from doi.org itself)
    old = f"{zenodo.url}/record/{record_id}"
    assert loaded(hub, token, {"share_url": old})["metadata"]["o2r"]["identifier"]["doi"] == doi
    as_url = loaded(hub, token, {"share_url": f"https://doi.org/{doi}"})["metadata"]["o2r"]
    assert as_url["origin"]["record_url"] == zenodo.record_url(record_id)
    # an archive's URL, also through an allowed redirect: no record, no DOI
    file_url = zenodo.file_url(record_id, "erc.tar.gz")
    direct = loaded(hub, token, {"share_url": file_url})["metadata"]["o2r"]
    assert direct["origin"] == {**direct["origin"], "kind": "share_url", "url": file_url}
    assert "identifier" not in direct
    redirect = f"{zenodo.url}/test/redirect?to={file_url}"
    moved = loaded(hub, token, {"share_url": redirect})["metadata"]["o2r"]
    assert moved["origin"]["share_url"] == redirect
    assert moved["origin"]["url"] == file_url


def tar_gz_of_example() -> bytes:
    import io
    import tarfile

    from tests.hub.conftest import REPO

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(REPO / "examples" / "sine-wave", arcname="sine-wave")
    return buffer.getvalue()


def test_a_compendium_keeps_its_metadata_and_a_workspace_gets_extracted(
    hub: Hub, token: str, zenodo: FakeZenodo, tmp_path: Any
) -> None:
    # a compendium as erchub downloads it (erc.yml and .erc/metadata_o2r_1.json inside)
    original = hub.create(token, example_zip())
    metadata = hub.request("GET", f"/compendium/{original}/metadata", token).json()
    o2r = {**metadata["metadata"]["o2r"], "title": "Kept from the archive"}
    put = hub.request("PUT", f"/compendium/{original}/metadata?publish=false", token,
                      json={"o2r": o2r})  # fmt: skip
    assert put.status_code == 200, put.text
    archive = hub.request("GET", f"/compendium/{original}.zip", token)
    assert archive.status_code == 200
    record_id = zenodo.add_record({"compendium.zip": archive.content})
    kept = loaded(hub, token, {"zenodo_record_id": record_id})["metadata"]["o2r"]
    assert kept["title"] == "Kept from the archive"
    assert kept["origin"]["file"] == "compendium.zip"
    # content_type workspace asked for: the metadata is extracted anew
    fresh = loaded(hub, token, {"zenodo_record_id": record_id, "content_type": "workspace"})
    assert fresh["metadata"]["o2r"]["title"] != "Kept from the archive"
    # a plain workspace without erc.yml gets one
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "main.ipynb").write_bytes(
        (hub.request("GET", f"/compendium/{original}/data/main.ipynb", token)).content
    )
    workspace = zenodo.add_record({"ws.zip": zip_directory(tmp_path / "ws")})
    made = loaded(hub, token, {"zenodo_record_id": workspace})
    assert "erc.yml" in file_names(made["files"])


def test_a_record_file_is_chosen_by_name(hub: Hub, token: str, zenodo: FakeZenodo) -> None:
    record_id = zenodo.add_record({"a.zip": example_zip(), "b.zip": example_zip()})
    refused(hub, token, {"zenodo_record_id": record_id}, 400, "several archives (a.zip, b.zip)")
    chosen = loaded(hub, token, {"zenodo_record_id": record_id, "filename": "b.zip"})
    assert chosen["metadata"]["o2r"]["origin"]["file"] == "b.zip"
    refused(hub, token, {"zenodo_record_id": record_id, "filename": "c.zip"}, 404,
            "has no file 'c.zip'")  # fmt: skip


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "exactly one of share_url, doi, zenodo_record_id or git_url"),
        ({"doi": "10.5281/zenodo.1", "share_url": "https://zenodo.org/records/1"}, "exactly one"),
        ({"url": "https://zenodo.org/records/1"}, "unknown field url"),
        ({"doi": "not a doi"}, "is not a DOI"),
        ({"zenodo_record_id": -1}, "zenodo_record_id"),
        ({"share_url": "file:///etc/passwd"}, "http or https"),
        ({"share_url": "https://user:pw@zenodo.org/records/1"}, "credentials"),
        ({"share_url": 42}, "share_url"),
        ([], "body"),
    ],
)
def test_bad_load_requests_are_400(hub: Hub, token: str, body: Any, words: str) -> None:
    refused(hub, token, body, 400, words)


def test_a_load_needs_identity_and_a_json_body(hub: Hub, token: str) -> None:
    assert load(hub, None, {"zenodo_record_id": 1}).status_code == 401
    malformed = hub.request("POST", "/compendium", token, content=b"{not json",
                            headers={"Content-Type": "application/json"})  # fmt: skip
    assert malformed.status_code == 400 and "malformed JSON" in malformed.json()["message"]
    huge = {"share_url": "https://zenodo.org/records/1?" + "x" * 70_000}
    too_large = load(hub, token, huge)
    assert too_large.status_code == 413, too_large.text


def test_a_host_not_allowed_is_403_and_never_contacted(
    hub: Hub, token: str, zenodo: FakeZenodo
) -> None:
    record_id = zenodo.add_record({"erc.zip": example_zip()})
    other_name = zenodo.file_url(record_id, "erc.zip").replace("127.0.0.1", "localhost")
    before = len(zenodo.requests)
    refused(hub, token, {"share_url": other_name}, 403, "host is not allowed: localhost")
    assert not any(host.startswith("localhost") for _, host, _ in zenodo.requests[before:])
    # a redirect to such a host is refused before it is followed
    redirect = f"{zenodo.url}/test/redirect?to={other_name}"
    answer = refused(hub, token, {"share_url": redirect}, 403, "host is not allowed: localhost")
    assert "redirect" in answer["message"]
    assert not any(host.startswith("localhost") for _, host, _ in zenodo.requests[before:])
    refused(hub, token, {"share_url": "https://example.org/erc.zip"}, 403,
            "host is not allowed: example.org")  # fmt: skip


def test_a_doi_resolving_to_a_host_not_allowed_is_403(
    hub: Hub, token: str, zenodo: FakeZenodo
) -> None:
    doi = random_doi()
    zenodo.add_record({"erc.zip": example_zip()}, doi=doi)
    handle = {
        "responseCode": 1,
        "handle": doi,
        "values": [{"index": 1, "type": "URL",
                    "data": {"format": "string", "value": "https://journal.example/paper"}}],
    }  # fmt: skip
    zenodo.fail_next(200, handle, path=f"/api/handles/{doi}")
    refused(hub, token, {"doi": doi}, 403, "host is not allowed: journal.example")


def test_missing_records_and_dois_are_404(hub: Hub, token: str, zenodo: FakeZenodo) -> None:
    refused(hub, token, {"zenodo_record_id": 1}, 404, "record 1 was not found")
    refused(hub, token, {"share_url": f"{zenodo.url}/records/2"}, 404, "record 2 was not found")
    refused(hub, token, {"doi": "10.1234/unknown.doi"}, 404, "DOI 10.1234/unknown.doi is not")
    refused(hub, token, {"share_url": f"{zenodo.url}/api/records/1/files/x.zip/content"}, 404,
            "the share_url was not found")  # fmt: skip
    gone = zenodo.add_record({"erc.zip": example_zip()})
    zenodo.fail_next(410, {"status": 410, "message": "PID has been deleted."},
                     path=f"/api/records/{gone}")  # fmt: skip
    refused(hub, token, {"zenodo_record_id": gone}, 404, "was removed")


def test_content_that_is_no_archive_is_400(hub: Hub, token: str, zenodo: FakeZenodo) -> None:
    notes = zenodo.add_record({"notes.txt": b"hello", "data.csv": b"a,b\n"})
    refused(hub, token, {"zenodo_record_id": notes}, 400,
            "holds no zip or tar archive (files: notes.txt, data.csv)")  # fmt: skip
    refused(hub, token, {"zenodo_record_id": notes, "filename": "notes.txt"}, 400,
            f"notes.txt of record {notes} is no zip or tar archive")  # fmt: skip
    fake_zip = zenodo.add_record({"erc.zip": b"<html>not a zip</html>"})
    refused(hub, token, {"zenodo_record_id": fake_zip}, 400, "no zip or tar archive")
    page = zenodo.file_url(notes, "notes.txt")
    refused(hub, token, {"share_url": page}, 400, "the share_url is no zip or tar archive")
    # an archive that is no compendium: the upload's message
    empty = zenodo.add_record({"empty.zip": zip_of({"README.md": b"# nothing to run"})})
    refused(hub, token, {"zenodo_record_id": empty}, 400, "notebook")


def zip_of(files: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_oversized_downloads_are_413(hub: Hub, token: str, zenodo: FakeZenodo) -> None:
    size = LOADER_DOWNLOAD_LIMIT + 1024
    big = zenodo.add_record({"big.zip": b"\0" * size})
    before = len(zenodo.requests)
    refused(hub, token, {"zenodo_record_id": big}, 413, f"limit of {LOADER_DOWNLOAD_LIMIT} bytes")
    # the record's size says it: the file is never requested
    assert [p for _, _, p in zenodo.requests[before:]] == [f"/api/records/{big}"]
    declared = f"{zenodo.url}/test/bytes?size={size}"
    refused(hub, token, {"share_url": declared}, 413, f"({size} bytes) is larger than")
    chunked = f"{declared}&chunked=1"
    refused(hub, token, {"share_url": chunked}, 413, f"limit of {LOADER_DOWNLOAD_LIMIT} bytes")


def test_unreachable_and_slow_hosts_are_502(hub: Hub, token: str, zenodo: FakeZenodo) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    refused(hub, token, {"share_url": f"http://127.0.0.1:{closed_port}/erc.zip"}, 502,
            "cannot reach 127.0.0.1")  # fmt: skip
    answer = refused(hub, token, {"share_url": f"{zenodo.url}/test/slow?seconds=60"}, 502,
                     f"within {LOADER_TIMEOUT} s (time-out)")  # fmt: skip
    assert "127.0.0.1" in answer["message"]
    record_id = zenodo.add_record({"erc.zip": example_zip()})
    zenodo.delay_next(LOADER_TIMEOUT + 5, path=f"/api/records/{record_id}")
    refused(hub, token, {"zenodo_record_id": record_id}, 502, "time-out")


@pytest.mark.parametrize(
    ("status", "body", "expected", "words"),
    [
        (503, {"status": 503, "message": "Zenodo is down for maintenance."}, 502,
         "answered 503 for record {id}: Zenodo is down for maintenance."),
        (500, "<html>Internal Server Error</html>", 502, "answered 500 for record {id}"),
        (429, {"status": 429, "message": "Too many requests"}, 502, "limits the rate"),
        (403, {"status": 403, "message": "Restricted record"}, 403,
         "record {id} is not public (127.0.0.1 answered 403: Restricted record)"),
        (200, "this is no JSON", 502, "answered no JSON for record {id}"),
    ],
)  # fmt: skip
def test_zenodo_errors_are_clear_messages(
    hub: Hub, token: str, zenodo: FakeZenodo, status: int, body: Any, expected: int, words: str
) -> None:
    record_id = zenodo.add_record({"erc.zip": example_zip()})
    zenodo.fail_next(status, body, path=f"/api/records/{record_id}")
    refused(hub, token, {"zenodo_record_id": record_id}, expected,
            words.format(id=record_id))  # fmt: skip


def test_a_download_that_does_not_match_its_checksum_is_502(
    hub: Hub, token: str, zenodo: FakeZenodo
) -> None:
    record_id = zenodo.add_record({"erc.zip": example_zip()})
    other = zip_of({"main.ipynb": b"{}"})
    assert hashlib.md5(other).hexdigest() not in zenodo.record(record_id)["files"][0]["checksum"]
    zenodo.fail_next(200, other, path=f"/api/records/{record_id}/files/erc.zip/content")
    refused(hub, token, {"zenodo_record_id": record_id}, 502, "does not match its MD5 checksum")


def test_a_zenodo_error_on_the_doi_resolver_is_502(
    hub: Hub, token: str, zenodo: FakeZenodo
) -> None:
    doi = random_doi()
    zenodo.fail_next(503, path=f"/api/handles/{doi}")
    refused(hub, token, {"doi": doi}, 502, f"answered 503 for DOI {doi}")


def test_no_load_leaves_files_behind(hub: Hub, token: str) -> None:
    uploads = hub.data_dir / "uploads"
    leftovers = [p.name for p in uploads.iterdir()] if uploads.exists() else []
    assert not [name for name in leftovers if name.startswith(("load-", "staging-"))], leftovers


# --- launch by DOI ---------------------------------------------------------------------------


def launch(hub: Hub, token: str, path: str) -> httpx.Response:
    return httpx.get(
        f"{hub.url}/services/erc/launch/{path}",
        headers={"Authorization": f"token {token}", "Accept": "text/html"},
        timeout=120,
    )


def test_launching_an_unknown_doi_says_why_it_cannot_be_loaded(
    hub: Hub, token: str, zenodo: FakeZenodo
) -> None:
    missing = launch(hub, token, "doi/10.5281/zenodo.0000000")
    assert missing.status_code == 404
    assert "no compendium here has the DOI 10.5281/zenodo.0000000" in missing.text
    assert "is not registered" in missing.text
    doi = random_doi()
    zenodo.add_record({"notes.txt": b"no archive"}, doi=doi)
    no_archive = launch(hub, token, f"doi/{doi}")
    assert no_archive.status_code == 400
    assert "holds no zip or tar archive" in no_archive.text
    assert hub.request("GET", "/compendium", token, params={"doi": doi}).json()["total"] == 0


@pytest.mark.docker
def test_launching_a_doi_loads_it_once_as_a_public_compendium(
    hub: Hub, zenodo: FakeZenodo, tmp_path: Any, docker_client: Any
) -> None:
    from erchub.sessions import server_name_for
    from tests.hub.test_launch import progress_events, stop, workspace_zip

    user = "doi-launcher"
    token = hub.token(user)
    doi = random_doi()
    zenodo.add_record({"erc.zip": workspace_zip(tmp_path, "pip>=20\n", "Loaded by DOI")},
                      doi=doi)  # fmt: skip
    response = launch(hub, token, f"doi/{doi.upper()}")
    assert response.status_code == 302, response.text
    found = hub.request("GET", "/compendium", token, params={"doi": doi}).json()
    assert found["total"] == 1, found
    compendium_id = found["results"][0]
    compendium = hub.request("GET", f"/compendium/{compendium_id}", token).json()
    assert compendium["candidate"] is False and compendium["user"] == user
    assert compendium["metadata"]["o2r"]["origin"]["doi"] == doi
    server = server_name_for(compendium_id)
    assert response.headers["location"] == f"/hub/spawn-pending/{user}/{server}"
    events = progress_events(hub, token, user, server)
    assert events[-1].get("ready"), events[-5:]
    stop(hub, token, user, server)

    # another reviewer launches the same compendium: nothing is loaded again
    reviewer = hub.token("doi-reviewer")
    handles_before = sum(1 for _, _, p in zenodo.requests if p == f"/api/handles/{doi}")
    again = launch(hub, reviewer, f"doi/doi:{doi}")
    assert again.status_code == 302, again.text
    assert again.headers["location"] == f"/hub/spawn-pending/doi-reviewer/{server}"
    assert sum(1 for _, _, p in zenodo.requests if p == f"/api/handles/{doi}") == handles_before
    progress_events(hub, reviewer, "doi-reviewer", server)
    stop(hub, reviewer, "doi-reviewer", server)
