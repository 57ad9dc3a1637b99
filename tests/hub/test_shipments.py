"""Shipments (o2r's shipper) end to end: a real hub and erc service against the fake Zenodo.

An author publishes a compendium, ships it to the Zenodo sandbox (the fake): the deposition
holds the bag zip and the deposit metadata; publishing the shipment writes the DOI into the
compendium's metadata, where ``GET /compendium?doi=`` finds it. The download recipient answers
with a zip that is a valid BagIt bag. Bad input ends in clear 4xx (or 502 for Zenodo's own
failures), never a 500, and tokens never appear in a response or the hub's log.

Storing tokens needs JUPYTERHUB_CRYPT_KEY: the session's hub has none (storing is a 400, tokens
sent with requests work); a second hub of this module has one.
"""

from __future__ import annotations

import io
import json
import re
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import bagit
import httpx
import pytest

from tests.hub.conftest import Hub, example_zip
from tests.hub.test_launch import publish

pytestmark = pytest.mark.hub

AUTHOR = "ship-author"
READER = "ship-reader"
TITLE = "Sine waves, shipped"
CREATORS = [{"name": "Ada Lovelace", "orcid": "0000-0002-1825-0097", "affiliation": "Analytical"}]
DESCRIPTION = "A sine wave and its frequency."
#: tokens this module sends that must never be seen again (responses, the hub's log)
SENT_TOKENS: set[str] = set()
DOI_RE = re.compile(r"^10\.5072/zenodo\.\d+$")


# -- helpers -----------------------------------------------------------------------------------


def published(hub: Hub, token: str) -> str:
    return publish(
        hub, token, example_zip(), title=TITLE, description=DESCRIPTION, creators=CREATORS
    )


def ship(
    hub: Hub,
    token: str,
    compendium_id: str,
    recipient: str = "zenodo_sandbox",
    headers: dict[str, str] | None = None,
    **body: Any,
) -> httpx.Response:
    remember(body.get("zenodo_token"))
    sent = {"compendium_id": compendium_id, "recipient": recipient, **body}
    response = hub.request("POST", "/shipment", token, json=sent, headers=headers or {})
    assert_secret_free(response)
    return response


def publish_shipment(
    hub: Hub, token: str, shipment_id: str, headers: dict[str, str] | None = None, **body: Any
) -> httpx.Response:
    remember(body.get("zenodo_token"))
    response = hub.request(
        "PUT",
        f"/shipment/{shipment_id}/publishment",
        token,
        json=body or None,
        headers=headers or {},
    )
    assert_secret_free(response)
    return response


def remember(token: Any) -> None:
    """A token to look for in responses and logs (long enough not to match by chance)."""
    if isinstance(token, str) and len(token) >= 8:
        SENT_TOKENS.add(token)


def assert_secret_free(response: httpx.Response) -> None:
    text = response.content.decode("latin-1")
    for secret in SENT_TOKENS:
        assert secret not in text, "a token came back in a response"
    for value in response.headers.values():
        assert all(secret not in value for secret in SENT_TOKENS)


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status and isinstance(body["message"], str), body
    return str(body["message"])


def bag_of(zip_bytes: bytes, target: Path) -> bagit.Bag:
    """The bag in a serialized bag (one folder at the top), extracted to ``target``; valid."""
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        tops = {name.split("/", 1)[0] for name in archive.namelist()}
        assert len(tops) == 1, tops
        archive.extractall(target)
    bag = bagit.Bag(str(target / tops.pop()))
    bag.validate()
    return bag


def check_bag(bag: bagit.Bag, compendium_id: str) -> None:
    root = Path(bag.path)
    assert "Is-Executable-Research-Compendium: true" in (root / "bagit.txt").read_text()
    payload = set(bag.payload_files())
    assert {"data/erc.yml", "data/main.ipynb", "data/ro-crate-metadata.json"} <= payload
    o2r = json.loads((root / "data/.erc/metadata_o2r_1.json").read_text())
    assert o2r["title"] == TITLE
    crate = json.loads((root / "data/ro-crate-metadata.json").read_text())
    ids = {entity["@id"] for entity in crate["@graph"]}
    assert "https://orcid.org/0000-0002-1825-0097" in ids
    assert compendium_id in root.name


@pytest.fixture(scope="module")
def author(erc_hub: Hub) -> str:
    return erc_hub.token(AUTHOR)


@pytest.fixture(scope="module")
def reader(erc_hub: Hub) -> str:
    return erc_hub.token(READER)


@pytest.fixture(scope="module")
def compendium(erc_hub: Hub, author: str) -> str:
    """A published compendium of the author."""
    return published(erc_hub, author)


# -- recipients --------------------------------------------------------------------------------


def test_recipients_are_listed_with_their_urls(erc_hub: Hub, author: str, fake_zenodo: Any) -> None:
    response = erc_hub.request("GET", "/recipient", author)
    assert response.status_code == 200, response.text
    recipients = {r["id"]: r for r in response.json()["recipients"]}
    assert list(recipients) == ["download", "zenodo", "zenodo_sandbox"]
    assert recipients["download"]["url"] is None
    assert recipients["download"]["needs_token"] is False
    for name in ("zenodo", "zenodo_sandbox"):
        assert recipients[name]["url"] == fake_zenodo.url
        assert (recipients[name]["needs_token"], recipients[name]["token_stored"]) == (True, False)
    assert error(erc_hub.request("GET", "/recipient"), 401)


def test_token_routes_refuse_bad_input(erc_hub: Hub, author: str) -> None:
    def put(recipient: str, body: Any) -> httpx.Response:
        response = erc_hub.request("PUT", f"/recipient/{recipient}/token", author, json=body)
        assert_secret_free(response)
        return response

    assert "download" in error(put("download", {"token": "abc"}), 400)
    assert "bogus" in error(put("bogus", {"token": "abc"}), 404)
    SENT_TOKENS.add("has a-space")
    assert "token" in error(put("zenodo", {"token": "has a-space"}), 400)
    assert "token" in error(put("zenodo", {}), 400)
    assert "extra" in error(put("zenodo", {"token": "abc", "extra": 1}), 400)
    assert error(put("zenodo", ["abc"]), 400)
    malformed = erc_hub.request(
        "PUT",
        "/recipient/zenodo/token",
        author,
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert error(malformed, 400)
    assert error(erc_hub.request("DELETE", "/recipient/bogus/token", author), 404)
    assert error(erc_hub.request("PUT", "/recipient/zenodo/token", json={"token": "x"}), 401)


# -- shipping and publishing -------------------------------------------------------------------


def test_ship_publish_and_find_by_doi(
    erc_hub: Hub, author: str, compendium: str, fake_zenodo: Any, tmp_path: Path
) -> None:
    shipped = ship(erc_hub, author, compendium, zenodo_token=fake_zenodo.token)
    assert shipped.status_code == 201, shipped.text
    shipment = shipped.json()
    assert shipped.headers["Location"].endswith(f"/shipment/{shipment['id']}")
    assert (shipment["compendium_id"], shipment["recipient"], shipment["user"]) == (
        compendium,
        "zenodo_sandbox",
        AUTHOR,
    )
    assert (shipment["status"], shipment["doi"]) == ("shipped", None)
    deposition_id = int(shipment["deposition_id"])
    assert shipment["deposition_url"].startswith(fake_zenodo.url)

    # the deposition holds the bag zip and the deposit metadata
    deposition = fake_zenodo.deposition(deposition_id)
    assert deposition["submitted"] is False
    metadata = deposition["metadata"]
    assert metadata["title"] == TITLE
    assert metadata["upload_type"] == "publication"
    assert metadata["creators"][0]["name"] == "Lovelace, Ada"
    assert metadata["creators"][0]["orcid"] == "0000-0002-1825-0097"
    assert metadata["license"] == "apache-2.0"
    assert DESCRIPTION in metadata["description"]
    assert [f["filename"] for f in deposition["files"]] == [f"{compendium}.zip"]
    bucket = deposition["links"]["bucket"].rsplit("/", 1)[1]
    stored = fake_zenodo.buckets[bucket][f"{compendium}.zip"].content
    check_bag(bag_of(stored, tmp_path / "deposited"), compendium)

    assert erc_hub.request("GET", f"/shipment/{shipment['id']}", author).json() == shipment
    listed = erc_hub.request(
        "GET", f"/shipment?compendium_id={compendium}&details=true", author
    ).json()
    assert shipment["id"] in listed["results"]
    assert listed["total"] == len(listed["results"]) == len(listed["shipments"])

    # publishing: the token in the header this time
    done = publish_shipment(
        erc_hub, author, shipment["id"], headers={"Zenodo-Token": fake_zenodo.token}
    )
    assert done.status_code == 200, done.text
    result = done.json()
    assert result["status"] == "published"
    doi = result["doi"]
    assert DOI_RE.match(doi), doi
    assert result["doiurl"] == f"https://doi.org/{doi}"
    assert result["deposition_url"] == fake_zenodo.record_url(deposition_id)
    assert fake_zenodo.deposition(deposition_id)["doi"] == doi
    record = fake_zenodo.record(deposition_id)
    assert [f["key"] for f in record["files"]] == [f"{compendium}.zip"]

    # the DOI is in the compendium's metadata: the API, the file, the DOI filter
    o2r = erc_hub.request("GET", f"/compendium/{compendium}", author).json()["metadata"]["o2r"]
    assert o2r["identifier"] == {"doi": doi, "doiurl": f"https://doi.org/{doi}"}
    assert o2r["title"] == TITLE  # the rest kept
    on_disk = erc_hub.data_dir / "compendia" / compendium / ".erc" / "metadata_o2r_1.json"
    assert json.loads(on_disk.read_text())["identifier"]["doi"] == doi
    found = erc_hub.request("GET", "/compendium", author, params={"doi": doi.upper()}).json()
    assert found["results"] == [compendium]
    assert (
        erc_hub.request("GET", "/compendium", params={"doi": doi}, token=author).json()["total"]
        == 1
    )

    # again: nothing is published twice, the answer is the same
    publishes = [r for r in fake_zenodo.requests if r[2].endswith("/actions/publish")]
    again = publish_shipment(erc_hub, author, shipment["id"], zenodo_token=fake_zenodo.token)
    assert again.status_code == 200, again.text
    assert again.json()["doi"] == doi
    assert [r for r in fake_zenodo.requests if r[2].endswith("/actions/publish")] == publishes


def test_ship_to_zenodo_too(erc_hub: Hub, author: str, compendium: str, fake_zenodo: Any) -> None:
    shipped = ship(
        erc_hub, author, compendium, "zenodo", headers={"Zenodo-Token": fake_zenodo.token}
    )
    assert shipped.status_code == 201, shipped.text
    assert shipped.json()["recipient"] == "zenodo"
    deposition = fake_zenodo.deposition(int(shipped.json()["deposition_id"]))
    assert deposition["metadata"]["title"] == TITLE


def test_download_is_a_valid_bag(
    erc_hub: Hub, author: str, reader: str, compendium: str, tmp_path: Path
) -> None:
    for token, name in ((author, "author"), (reader, "reader")):
        response = ship(erc_hub, token, compendium, "download")
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/zip"
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith("attachment;") and f"{compendium}_bag.zip" in disposition
        check_bag(bag_of(response.content, tmp_path / name), compendium)
    mine = erc_hub.request("GET", "/shipment?details=true", reader).json()["shipments"]
    assert [(s["recipient"], s["status"]) for s in mine] == [("download", "shipped")]


# -- bad input ---------------------------------------------------------------------------------


def test_a_candidate_is_not_shipped(erc_hub: Hub, author: str, fake_zenodo: Any) -> None:
    candidate = erc_hub.create(author, example_zip())
    for recipient in ("zenodo_sandbox", "download"):
        response = ship(erc_hub, author, candidate, recipient, zenodo_token=fake_zenodo.token)
        assert "candidate" in error(response, 400)


def test_without_a_token_the_answer_says_how_to_set_one(
    erc_hub: Hub, author: str, compendium: str
) -> None:
    message = error(ship(erc_hub, author, compendium), 400)
    assert "zenodo_token" in message and "Zenodo-Token" in message
    assert "/recipient/zenodo_sandbox/token" in message
    assert "/account/settings/applications/tokens/new/" in message


def test_incomplete_metadata_is_not_shipped(erc_hub: Hub, author: str, fake_zenodo: Any) -> None:
    before = len(fake_zenodo.requests)
    anonymous = publish(erc_hub, author, example_zip(), title=TITLE, creators=[])
    message = error(ship(erc_hub, author, anonymous, zenodo_token=fake_zenodo.token), 400)
    assert "creators" in message and f"/compendium/{anonymous}/metadata" in message
    unlicensed = publish(erc_hub, author, example_zip(), title=TITLE, creators=CREATORS, license={})
    message = error(ship(erc_hub, author, unlicensed, zenodo_token=fake_zenodo.token), 400)
    assert "license" in message
    deposit_calls = [r for r in fake_zenodo.requests[before:] if "/deposit/" in r[2]]
    assert deposit_calls == []  # refused before anything reached Zenodo


def test_bad_requests(erc_hub: Hub, author: str, compendium: str, fake_zenodo: Any) -> None:
    token = fake_zenodo.token
    assert "recipient" in error(ship(erc_hub, author, compendium, "dropbox"), 400)
    assert "absent" in error(ship(erc_hub, author, "absent", zenodo_token=token), 404)
    missing = erc_hub.request("POST", "/shipment", author, json={"recipient": "download"})
    assert "compendium_id" in error(missing, 400)
    extra = erc_hub.request(
        "POST",
        "/shipment",
        author,
        json={"compendium_id": compendium, "recipient": "download", "force": True},
    )
    assert "force" in error(extra, 400)
    assert error(erc_hub.request("POST", "/shipment", author, json=[compendium]), 400)
    malformed = erc_hub.request(
        "POST",
        "/shipment",
        author,
        content=b'{"compendium_id": ',
        headers={"Content-Type": "application/json"},
    )
    assert error(malformed, 400)
    assert error(ship(erc_hub, author, compendium, zenodo_token=12345), 400)
    SENT_TOKENS.add("white space")
    assert "zenodo_token" in error(
        ship(erc_hub, author, compendium, zenodo_token="white space"), 400
    )
    assert error(erc_hub.request("POST", "/shipment", json={}), 401)
    assert error(erc_hub.request("GET", "/shipment/absent", author), 404)
    assert error(publish_shipment(erc_hub, author, "absent", zenodo_token=token), 404)
    assert error(erc_hub.request("GET", "/shipment?status=x", author), 400)


def test_other_users_cannot_use_a_shipment(
    erc_hub: Hub, author: str, reader: str, compendium: str, fake_zenodo: Any
) -> None:
    # a reader may download a published compendium, not deposit it under their name
    assert "author" in error(ship(erc_hub, reader, compendium, zenodo_token=fake_zenodo.token), 403)
    shipped = ship(erc_hub, author, compendium, zenodo_token=fake_zenodo.token)
    assert shipped.status_code == 201, shipped.text
    shipment_id = shipped.json()["id"]
    assert error(erc_hub.request("GET", f"/shipment/{shipment_id}", reader), 404)
    assert error(
        publish_shipment(erc_hub, reader, shipment_id, zenodo_token="reader-s-own-token"), 404
    )
    theirs = erc_hub.request("GET", "/shipment", reader, params={"user": AUTHOR}).json()
    assert theirs == []
    detailed = {"user": AUTHOR, "details": "true"}
    theirs = erc_hub.request("GET", "/shipment", reader, params=detailed).json()
    assert theirs == {"results": [], "total": 0, "shipments": []}
    listed = erc_hub.request(
        "GET", f"/shipment?compendium_id={compendium}&details=true", reader
    ).json()
    assert shipment_id not in listed["results"]
    # an administrator sees it
    admin = erc_hub.request("GET", f"/shipment/{shipment_id}", erc_hub.admin_token)
    assert admin.status_code == 200 and admin.json()["user"] == AUTHOR


def test_zenodo_error_answers(erc_hub: Hub, author: str, compendium: str, fake_zenodo: Any) -> None:
    token = fake_zenodo.token
    SENT_TOKENS.add("a-token-zenodo-does-not-know")
    refused = ship(erc_hub, author, compendium, zenodo_token="a-token-zenodo-does-not-know")
    assert "Zenodo Sandbox refused the token" in error(refused, 400)

    fake_zenodo.fail_next(503, path="/api/deposit/depositions")
    assert "503" in error(ship(erc_hub, author, compendium, zenodo_token=token), 502)

    before = erc_hub.request(
        "GET", f"/shipment?compendium_id={compendium}&details=true", author
    ).json()
    invalid = {
        "status": 400,
        "message": "Validation error.",
        "errors": [{"field": "metadata.title", "messages": ["Field is required."]}],
    }
    # the PUT of the metadata (the creation is POST .../depositions, without the slash)
    fake_zenodo.fail_next(400, invalid, path="/api/deposit/depositions/")
    message = error(ship(erc_hub, author, compendium, zenodo_token=token), 400)
    assert "metadata.title" in message and "Field is required" in message
    after = erc_hub.request(
        "GET", f"/shipment?compendium_id={compendium}&details=true", author
    ).json()
    assert after["total"] == before["total"] + 1
    failed = after["shipments"][0]
    assert failed["status"] == "error" and "metadata.title" in failed["reason"]
    assert failed["id"] in message
    assert "ended in error" in error(
        publish_shipment(erc_hub, author, failed["id"], zenodo_token=token), 409
    )

    fake_zenodo.fail_next(500, "<html>Internal Server Error</html>", path="/api/files/")
    message = error(ship(erc_hub, author, compendium, zenodo_token=token), 502)
    assert "uploading" in message and "500" in message

    shipped = ship(erc_hub, author, compendium, zenodo_token=token)
    assert shipped.status_code == 201, shipped.text
    shipment_id = shipped.json()["id"]
    fake_zenodo.fail_next(401, path="/actions/publish")
    refused = publish_shipment(erc_hub, author, shipment_id, zenodo_token=token)
    assert "refused the token" in error(refused, 400)
    unchanged = erc_hub.request("GET", f"/shipment/{shipment_id}", author).json()
    assert (unchanged["status"], unchanged["doi"]) == ("shipped", None)
    fake_zenodo.fail_next(502, path="/actions/publish")
    assert "Zenodo Sandbox" in error(
        publish_shipment(erc_hub, author, shipment_id, zenodo_token=token), 502
    )
    assert error(publish_shipment(erc_hub, author, shipment_id), 400)  # no token
    done = publish_shipment(erc_hub, author, shipment_id, zenodo_token=token)
    assert done.status_code == 200 and done.json()["status"] == "published", done.text


def test_a_download_is_not_published(erc_hub: Hub, author: str, compendium: str) -> None:
    assert ship(erc_hub, author, compendium, "download").status_code == 200
    downloads = erc_hub.request(
        "GET", f"/shipment?compendium_id={compendium}&details=true", author
    ).json()
    download = next(s for s in downloads["shipments"] if s["recipient"] == "download")
    assert "download" in error(publish_shipment(erc_hub, author, download["id"]), 400)


# -- stored tokens (a hub with JUPYTERHUB_CRYPT_KEY) -------------------------------------------


def test_stored_tokens(erc_hub: Hub, fake_zenodo: Any) -> None:
    # the hub hands the erc service its auth_state key (generated in the data directory here)
    token = erc_hub.token(AUTHOR)
    secret = fake_zenodo.add_token()
    SENT_TOKENS.add(secret)
    put = erc_hub.request("PUT", "/recipient/zenodo_sandbox/token", token, json={"token": secret})
    assert_secret_free(put)
    assert put.status_code == 200, (
        f"{put.text}: the erc service needs JUPYTERHUB_CRYPT_KEY from the hub's environment"
    )
    assert put.json() == {"id": "zenodo_sandbox", "token_stored": True}
    recipients = erc_hub.request("GET", "/recipient", token).json()["recipients"]
    assert {r["id"]: r["token_stored"] for r in recipients} == {
        "download": False,
        "zenodo": False,
        "zenodo_sandbox": True,
    }
    assert secret not in json.dumps(recipients)
    # at rest it is encrypted
    database = erc_hub.data_dir / "erchub.sqlite"
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT user_name, name, encrypted FROM user_secrets").fetchall()
    assert [(user, name) for user, name, _ in rows] == [(AUTHOR, "zenodo_sandbox")]
    assert secret not in rows[0][2]
    for path in erc_hub.data_dir.glob("erchub.sqlite*"):
        assert secret.encode() not in path.read_bytes()

    # shipping and publishing with the stored token, sent nowhere
    compendium = published(erc_hub, token)
    shipped = ship(erc_hub, token, compendium)
    assert shipped.status_code == 201, shipped.text
    deposition = fake_zenodo.deposition(int(shipped.json()["deposition_id"]))
    assert deposition["owner"] == fake_zenodo.tokens[secret]  # the stored token's account
    done = publish_shipment(erc_hub, token, shipped.json()["id"])
    assert done.status_code == 200, done.text
    assert DOI_RE.match(done.json()["doi"])

    # another user has no stored token
    other = erc_hub.token(READER)
    theirs = published(erc_hub, other)
    assert "no Zenodo Sandbox token" in error(ship(erc_hub, other, theirs), 400)

    # forgotten: shipping needs a token again
    assert erc_hub.request("DELETE", "/recipient/zenodo_sandbox/token", token).status_code == 204
    assert "zenodo_token" in error(ship(erc_hub, token, compendium), 400)
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM user_secrets").fetchone() == (0,)
    log = erc_hub.log_tail(10**6)
    assert all(sent not in log for sent in SENT_TOKENS)


def test_tokens_never_reach_the_log(erc_hub: Hub, fake_zenodo: Any) -> None:
    """Last of the module: every token it sent, the fake's included, is absent from the log."""
    SENT_TOKENS.add(fake_zenodo.token)
    log = erc_hub.log_tail(10**6)
    assert "shipment" in log  # the log does cover this module's requests
    leaked = [sent for sent in SENT_TOKENS if sent in log]
    assert leaked == []
