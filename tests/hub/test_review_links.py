"""Review links through a real hub and its proxy: an author's candidate shown to another user
through an open and a blind link (landing page, metadata API, downloads, a check job), nothing
else reachable with the link, and revoked or expired links a 404 at once."""

from __future__ import annotations

import datetime
import io
import secrets
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.hub.conftest import Hub
from tests.hub.test_landing import assert_error_page, page, workspace_zip

pytestmark = pytest.mark.hub

ORCID = "0000-0002-1825-0097"
AFFILIATION = "University of Linkville"


def candidate_of(hub: Hub, token: str, tmp_path: Path, author: str) -> str:
    """A new candidate whose metadata names ``author`` (saved as a draft: still a candidate)."""
    compendium_id = hub.create(token, workspace_zip(tmp_path, f"Review {secrets.token_hex(3)}"))
    path = f"/compendium/{compendium_id}/metadata?publish=false"
    o2r = hub.request("GET", path.split("?")[0], token).json()["metadata"]["o2r"]
    o2r["creators"] = [{"name": author, "orcid": ORCID, "affiliation": AFFILIATION}]
    saved = hub.request("PUT", path, token, json={"o2r": o2r})
    assert saved.status_code == 200 and saved.json()["candidate"] is True, saved.text
    return compendium_id


def create_link(hub: Hub, token: str, compendium_id: str, **body: str) -> dict[str, object]:
    answer = hub.request("PUT", f"/compendium/{compendium_id}/link", token, json=body or None)
    assert answer.status_code == 200, answer.text
    link: dict[str, object] = answer.json()
    return link


def uses_of(hub: Hub, token: str, link_id: object) -> int:
    listed = hub.request("GET", "/link", token).json()["results"]
    return int(next(link["uses"] for link in listed if link["id"] == link_id))


def zip_text(content: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return "\n".join(
            archive.read(name).decode("utf-8", "replace") for name in archive.namelist()
        )


def start_check(hub: Hub, token: str, compendium_id: str, link: object) -> str:
    """A check job started through the link (canceled at once: the test needs no run)."""
    created = hub.request("POST", f"/job?link={link}", token, json={"compendium_id": compendium_id})
    assert created.status_code == 201, created.text
    job_id = str(created.json()["job_id"])
    assert hub.request("GET", f"/job/{job_id}", token).status_code == 200
    assert hub.request("POST", f"/job/{job_id}/cancel", token).status_code in (200, 202)
    return job_id


def assert_nothing_else(hub: Hub, token: str, compendium_id: str, link: object) -> None:
    """Every route not meant for links stays a 404 (or the refusal it was) for the link's
    holder: no changes, no link management, no shipping, no substitution, no bag."""
    tries = [
        ("PUT", f"/compendium/{compendium_id}/metadata", {"o2r": {"title": "changed"}}),
        ("DELETE", f"/compendium/{compendium_id}", None),
        ("PUT", f"/compendium/{compendium_id}/link", None),
        ("DELETE", f"/compendium/{compendium_id}/link", None),
        ("POST", "/shipment", {"compendium_id": compendium_id, "recipient": "download"}),
        ("POST", "/substitution", {"base": compendium_id, "overlay": compendium_id,
                                   "substitutionFiles": [{"base": "a", "overlay": "b"}]}),
    ]  # fmt: skip
    for method, path, body in tries:
        answer = hub.request(method, f"{path}?link={link}", token, json=body)
        assert answer.status_code == 404, (method, path, answer.status_code, answer.text)
    listed = hub.request("GET", f"/compendium?candidate=true&link={link}", token).json()
    assert compendium_id not in listed["results"]
    assert_error_page(page(hub, f"compendium/{compendium_id}/bag.zip", token, link=str(link)), 404)
    # the files API and the launch are the link's too: without the link, not found
    for path in (f"/compendium/{compendium_id}/files", f"/compendium/{compendium_id}/data/x"):
        assert hub.request("GET", path, token).status_code == 404
    assert_error_page(page(hub, f"launch/{compendium_id}", token), 404)


def test_an_open_link_shows_a_candidate_and_nothing_else(erc_hub: Hub, tmp_path: Path) -> None:
    author = erc_hub.token("linkauthor")
    reviewer = erc_hub.token("linkreviewer")
    name = f"Alice Open{secrets.token_hex(2)}"
    candidate = candidate_of(erc_hub, author, tmp_path, name)
    other_candidate = candidate_of(erc_hub, author, tmp_path, name)

    link = create_link(erc_hub, author, candidate)
    assert (link["compendium_id"], link["user"], link["mode"]) == (candidate, "linkauthor", "open")
    assert len(str(link["id"])) >= 40 and link["uses"] == 0 and "blind_cannot_hide" not in link
    assert create_link(erc_hub, author, candidate)["id"] == link["id"], "o2r: the same link"
    link_id = link["id"]

    # without the link the candidate is the author's only; with it, the reviewer's too
    assert erc_hub.request("GET", f"/compendium/{candidate}", reviewer).status_code == 404
    shown = erc_hub.request("GET", f"/compendium/{candidate}?link={link_id}", reviewer)
    assert shown.status_code == 200 and name in shown.text, shown.text
    metadata = erc_hub.request("GET", f"/compendium/{candidate}/metadata?link={link_id}", reviewer)
    assert metadata.status_code == 200 and ORCID in metadata.text
    download = erc_hub.request("GET", f"/compendium/{candidate}.zip?link={link_id}", reviewer)
    assert download.status_code == 200 and name in zip_text(download.content)

    # the link's own address is the landing page seen through it
    redirected = page(erc_hub, f"link/{link_id}", reviewer)
    assert redirected.status_code == 302
    assert redirected.headers["location"].endswith(f"/compendium/{candidate}?link={link_id}")
    landing = page(erc_hub, f"compendium/{candidate}", reviewer, link=str(link_id))
    assert landing.status_code == 200 and name in landing.text
    assert 'id="erc-review-note"' in landing.text
    assert f"launch/{candidate}?link={link_id}" in landing.text  # a session through the link
    assert f".zip?link={link_id}" in landing.text and 'id="erc-review-links"' not in landing.text
    assert page(erc_hub, f"check/{candidate}", reviewer, link=str(link_id)).status_code == 200
    start_check(erc_hub, reviewer, candidate, link_id)
    # counted: the API's zip, the landing page, the check job (not metadata reads)
    assert uses_of(erc_hub, author, link_id) == 3

    # nothing else: the author's other candidate, and every other route
    assert (
        erc_hub.request(
            "GET", f"/compendium/{other_candidate}?link={link_id}", reviewer
        ).status_code
        == 404
    )
    assert_error_page(
        page(erc_hub, f"compendium/{other_candidate}", reviewer, link=str(link_id)), 404
    )
    assert_nothing_else(erc_hub, reviewer, candidate, link_id)
    assert erc_hub.request("GET", "/link", reviewer).json()["results"] == []

    # the author's page lists the link with its uses and a Revoke button
    own = page(erc_hub, f"compendium/{candidate}", author)
    assert 'id="erc-review-links"' in own.text and f'data-link="{link_id}"' in own.text

    revoked = erc_hub.request("DELETE", f"/compendium/{candidate}/link?link={link_id}", author)
    assert revoked.status_code == 204, revoked.text
    assert (
        erc_hub.request("GET", f"/compendium/{candidate}?link={link_id}", reviewer).status_code
        == 404
    )
    assert_error_page(page(erc_hub, f"compendium/{candidate}", reviewer, link=str(link_id)), 404)
    assert_error_page(page(erc_hub, f"link/{link_id}", reviewer), 404)
    listed = erc_hub.request("GET", "/link", author).json()["results"]
    mine = next(item for item in listed if item["id"] == link_id)
    assert mine["active"] is False and mine["revoked"] is not None
    # o2r's DELETE without an id: nothing active is left to revoke
    assert erc_hub.request("DELETE", f"/compendium/{candidate}/link", author).status_code == 404


def test_a_blind_link_names_nobody(erc_hub: Hub, tmp_path: Path) -> None:
    author = erc_hub.token("blindauthor")
    reviewer = erc_hub.token("blindreviewer")
    name = f"Bertha Blind{secrets.token_hex(2)}"
    candidate = candidate_of(erc_hub, author, tmp_path, name)
    link = create_link(erc_hub, author, candidate, mode="blind")
    assert link["mode"] == "blind" and "notebooks" in str(link["blind_cannot_hide"])
    link_id = str(link["id"])
    personal = (name, ORCID, AFFILIATION, "blindauthor")

    answers = [
        erc_hub.request("GET", f"/compendium/{candidate}?link={link_id}", reviewer),
        erc_hub.request("GET", f"/compendium/{candidate}/metadata?link={link_id}", reviewer),
        page(erc_hub, f"compendium/{candidate}", reviewer, link=link_id),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        for word in personal:
            assert word not in answer.text, (answer.url, word)
    assert 'id="erc-authors-hidden"' in answers[2].text
    for download in (
        erc_hub.request("GET", f"/compendium/{candidate}.zip?link={link_id}", reviewer),
        erc_hub.request("GET", f"/compendium/{candidate}.tar.gz?link={link_id}", reviewer),
        page(erc_hub, f"compendium/{candidate}.zip", reviewer, link=link_id),
    ):
        assert download.status_code == 200, download.text[:300]
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        assert f"{candidate}/.erc/metadata_o2r_1.json" in archive.namelist()
    text = zip_text(download.content)
    assert "main.ipynb" in text and not [word for word in personal if word in text]
    start_check(erc_hub, reviewer, candidate, link_id)

    # the author, and the files themselves, are untouched
    own = erc_hub.request("GET", f"/compendium/{candidate}?link={link_id}", author)
    assert name in own.text
    own_zip = erc_hub.request("GET", f"/compendium/{candidate}.zip", author)
    assert name in zip_text(own_zip.content)
    assert_nothing_else(erc_hub, reviewer, candidate, link_id)


def test_an_expired_link_is_a_404_and_links_are_the_authors(erc_hub: Hub, tmp_path: Path) -> None:
    author = erc_hub.token("expiryauthor")
    reviewer = erc_hub.token("expiryreviewer")
    candidate = candidate_of(erc_hub, author, tmp_path, "Carla Expiry")
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=3)
    link = create_link(erc_hub, author, candidate, expires=soon.isoformat())
    path = f"/compendium/{candidate}?link={link['id']}"
    assert erc_hub.request("GET", path, reviewer).status_code == 200
    time.sleep(max(0.0, soon.timestamp() - time.time()) + 0.5)
    assert erc_hub.request("GET", path, reviewer).status_code == 404
    assert_error_page(page(erc_hub, f"link/{link['id']}", reviewer), 404)

    # only the author manages links; bad requests change nothing
    link_path = f"/compendium/{candidate}/link"
    assert erc_hub.request("PUT", link_path, reviewer).status_code == 404
    bad_bodies = [{"mode": "secret"}, {"expires": "soon"}, {"expires": "2001-01-01T00:00:00Z"},
                  {"who": "me"}]  # fmt: skip
    for body in bad_bodies:
        answer = erc_hub.request("PUT", link_path, author, json=body)
        assert answer.status_code == 400 and answer.json()["message"], (body, answer.text)
    published = candidate_of(erc_hub, author, tmp_path, "Carla Expiry")
    metadata = erc_hub.request("GET", f"/compendium/{published}/metadata", author).json()
    saved = erc_hub.request(
        "PUT", f"/compendium/{published}/metadata", author, json=metadata["metadata"]
    )
    assert saved.status_code == 200 and saved.json()["candidate"] is False, saved.text
    refused = erc_hub.request("PUT", f"/compendium/{published}/link", reviewer)
    assert refused.status_code == 403, refused.text
    assert len(erc_hub.request("GET", "/link", author).json()["results"]) == 1
    assert httpx.get(f"{erc_hub.api_url}/link", timeout=30).status_code == 401
