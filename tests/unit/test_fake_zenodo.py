"""The fake Zenodo answers as Zenodo does: deposit, bucket upload, publish, records, handles."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.zenodo import DOI_PREFIX, FakeZenodo

METADATA = {
    "upload_type": "publication",
    "publication_type": "other",
    "title": "A compendium",
    "creators": [{"name": "Lovelace, Ada", "orcid": "0000-0002-1694-233X"}],
    "description": "<p>An ERC</p>",
}


@pytest.fixture(scope="module")
def zenodo() -> Iterator[FakeZenodo]:
    with FakeZenodo() as fake:
        yield fake


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_publish_makes_a_record_and_a_resolvable_doi(zenodo: FakeZenodo) -> None:
    headers = auth(zenodo.token)
    created = httpx.post(f"{zenodo.url}/api/deposit/depositions", json={}, headers=headers)
    assert created.status_code == 201
    deposition = created.json()
    assert deposition["submitted"] is False and deposition["doi"] == ""
    reserved = deposition["metadata"]["prereserve_doi"]["doi"]
    assert reserved == f"{DOI_PREFIX}/zenodo.{deposition['id']}"
    links = deposition["links"]
    assert {"bucket", "publish", "html", "self"} <= set(links)

    content = b"PK\x05\x06" + b"\0" * 18  # an empty zip
    uploaded = httpx.put(f"{links['bucket']}/erc.zip", content=content, headers=headers)
    assert uploaded.status_code == 201
    assert uploaded.json()["key"] == "erc.zip"
    assert uploaded.json()["size"] == len(content)
    assert uploaded.json()["checksum"] == "md5:" + hashlib.md5(content).hexdigest()

    updated = httpx.put(links["self"], json={"metadata": METADATA}, headers=headers)
    assert updated.status_code == 200, updated.text
    assert updated.json()["metadata"]["title"] == "A compendium"

    published = httpx.post(links["publish"], headers=headers)
    assert published.status_code == 202, published.text
    body = published.json()
    assert body["submitted"] is True and body["state"] == "done"
    assert body["doi"] == reserved
    assert body["record_id"] == deposition["id"]

    record = httpx.get(f"{zenodo.url}/api/records/{body['record_id']}").json()
    assert record["doi"] == reserved
    assert record["metadata"]["title"] == "A compendium"
    (entry,) = record["files"]
    assert entry["key"] == "erc.zip" and entry["size"] == len(content)
    assert entry["checksum"] == uploaded.json()["checksum"]
    assert entry["links"]["self"].endswith(f"/api/records/{record['id']}/files/erc.zip/content")
    assert httpx.get(entry["links"]["self"]).content == content

    handle = httpx.get(f"{zenodo.url}/api/handles/{reserved.upper()}")
    assert handle.status_code == 200
    assert handle.json()["responseCode"] == 1
    (value,) = handle.json()["values"]
    assert value["type"] == "URL"
    assert value["data"]["value"] == f"{zenodo.url}/records/{record['id']}"
    assert httpx.get(value["data"]["value"]).status_code == 200

    # published: the bucket is locked, the deposition can be neither changed nor deleted
    assert httpx.put(f"{links['bucket']}/x", content=b"x", headers=headers).status_code == 403
    assert httpx.put(links["self"], json={"metadata": METADATA}, headers=headers).status_code == 400
    assert httpx.delete(links["self"], headers=headers).status_code == 403


def test_deposit_api_needs_a_valid_token(zenodo: FakeZenodo) -> None:
    url = f"{zenodo.url}/api/deposit/depositions"
    assert httpx.post(url, json={}).status_code == 401
    assert httpx.post(url, json={}, headers=auth("wrong")).status_code == 401
    answer = httpx.get(url, headers=auth("wrong")).json()
    assert answer["status"] == 401 and answer["message"]
    assert httpx.get(url, params={"access_token": zenodo.token}).status_code == 200
    created = httpx.post(url, json={}, headers=auth(zenodo.token)).json()
    other = zenodo.add_token()
    assert httpx.get(created["links"]["self"], headers=auth(other)).status_code == 403


def test_metadata_and_publish_are_validated(zenodo: FakeZenodo) -> None:
    headers = auth(zenodo.token)
    deposition = httpx.post(
        f"{zenodo.url}/api/deposit/depositions", json={}, headers=headers
    ).json()
    links = deposition["links"]
    refused = httpx.put(links["self"], json={"metadata": {"title": "x"}}, headers=headers)
    assert refused.status_code == 400
    fields = {error["field"] for error in refused.json()["errors"]}
    assert fields == {"metadata.upload_type", "metadata.creators", "metadata.description"}
    assert httpx.put(links["self"], json={"metadata": METADATA}, headers=headers).is_success
    no_files = httpx.post(links["publish"], headers=headers)
    assert no_files.status_code == 400
    assert [e["field"] for e in no_files.json()["errors"]] == ["files"]


def test_records_handles_and_hooks(zenodo: FakeZenodo) -> None:
    record_id = zenodo.add_record({"a.zip": b"zip bytes"}, doi="10.5281/zenodo.42")
    assert httpx.get(f"{zenodo.url}/api/records/{record_id}").json()["doi"] == "10.5281/zenodo.42"
    missing = httpx.get(f"{zenodo.url}/api/records/1")
    assert missing.status_code == 404 and missing.json()["status"] == 404
    unknown = httpx.get(f"{zenodo.url}/api/handles/10.5072/nothing")
    assert unknown.status_code == 404 and unknown.json()["responseCode"] == 100
    moved = httpx.get(f"{zenodo.url}/doi/10.5281/zenodo.42")
    assert moved.status_code == 302
    assert moved.headers["Location"] == zenodo.record_url(record_id)

    zenodo.fail_next(503, path=f"/api/records/{record_id}")
    assert httpx.get(f"{zenodo.url}/api/handles/10.5281/zenodo.42").status_code == 200
    failed = httpx.get(f"{zenodo.url}/api/records/{record_id}")
    assert failed.status_code == 503 and failed.json()["message"] == "Service Unavailable"
    assert httpx.get(f"{zenodo.url}/api/records/{record_id}").status_code == 200

    chunked = httpx.get(f"{zenodo.url}/test/bytes", params={"size": 100000, "chunked": 1})
    assert len(chunked.content) == 100000 and "Content-Length" not in chunked.headers
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{zenodo.url}/test/slow", params={"seconds": 2}, timeout=0.2)
    assert ("GET", zenodo.url.removeprefix("http://"), "/test/slow") in zenodo.requests
