"""Landing pages and the catalogue through a real hub and its proxy: published compendia are
readable without logging in, candidates are their authors' (and erc admins') only, bad
arguments are a 400 page, and the last check's verdict, display and report are there."""

from __future__ import annotations

import io
import re
import secrets
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nbformat.v4 import new_code_cell, new_output

from tests.conftest import heading, write_notebook
from tests.hub.conftest import Hub, zip_directory

pytestmark = pytest.mark.hub

NAVIGATE = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate"}
ORCID = "0000-0002-1825-0097"


def page(hub: Hub, path: str, token: str | None = None, **params: str) -> httpx.Response:
    """A service page (``path`` relative to /services/erc/), not following redirects."""
    headers = dict(NAVIGATE)
    if token:
        headers["Authorization"] = f"token {token}"
    return httpx.get(f"{hub.url}/services/erc/{path}", headers=headers, params=params, timeout=60)


def assert_error_page(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    assert f'data-status="{status}"' in response.text


def assert_strict_page(response: httpx.Response) -> None:
    """The pages' security headers (see test_security_web); the body's inline style carries
    the nonce, and nothing is loaded from another site (ORCID and DOI links are links)."""
    policy = response.headers["content-security-policy"]
    nonce = re.search(r"script-src 'self' 'nonce-([A-Za-z0-9_-]{16,})'", policy)
    assert nonce and "frame-ancestors 'self'" in policy, policy
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert response.headers["x-content-type-options"] == "nosniff"
    for tag in re.findall(r"<(?:script|style)\b[^>]*>", response.text):
        assert f'nonce="{nonce.group(1)}"' in tag, tag
    # in the page's tags (escaped text that reads "onerror=", a payload shown as text, is fine)
    tags = re.findall(r"<[a-zA-Z][^>]*>", response.text)
    assert not [tag for tag in tags if re.search(r"\son[a-z]+\s*=", tag)], "inline event handler"
    assert not re.search(r"\ssrc=\"(?:https?:)?//", response.text), "loads from another site"


def assert_goes_to_login(response: httpx.Response) -> None:
    assert response.status_code == 302, response.text[:300]
    assert "/hub/api/oauth2/authorize" in response.headers["location"]


def workspace_zip(tmp_path: Path, title: str) -> bytes:
    """A tiny workspace whose notebook holds its published output (no runtime packages)."""
    root = tmp_path / secrets.token_hex(4)
    counting = new_code_cell(
        "for turn in range(3):\n    print('turn', turn)",
        outputs=[new_output("stream", name="stdout", text="turn 0\nturn 1\nturn 2\n")],
    )
    write_notebook(root / "main.ipynb", heading(f"# {title}\n\nCounts turns."), counting)
    return zip_directory(root)


def publish(hub: Hub, token: str, archive: bytes, **o2r_changes: Any) -> str:
    compendium_id = hub.create(token, archive)
    path = f"/compendium/{compendium_id}/metadata"
    o2r = {**hub.request("GET", path, token).json()["metadata"]["o2r"], **o2r_changes}
    saved = hub.request("PUT", path, token, json={"o2r": o2r})
    assert saved.status_code == 200 and saved.json()["candidate"] is False, saved.text
    return compendium_id


@pytest.fixture
def browser_client(erc_hub: Hub) -> Iterator[httpx.Client]:
    """A browser-like client logged in to the hub as landingowner (not yet to the service)."""
    with httpx.Client(headers=NAVIGATE, follow_redirects=True, timeout=60) as client:
        client.get(f"{erc_hub.url}/hub/login")
        done = client.post(
            f"{erc_hub.url}/hub/login?next=/hub/home",
            data={
                "username": "landingowner",
                "password": "any",
                "_xsrf": client.cookies.get("_xsrf", path="/hub/"),
            },
        )
        assert done.url.path == "/hub/home", done.url
        yield client


def test_a_published_landing_page_is_readable_without_logging_in(
    erc_hub: Hub, tmp_path: Path
) -> None:
    author = erc_hub.token("landingauthor")
    title = f"Carousel turns {secrets.token_hex(3)}"
    compendium_id = publish(
        erc_hub,
        author,
        workspace_zip(tmp_path, title),
        creators=[{"name": "Alice Example", "orcid": ORCID}],
        keywords=["carousel"],
        license={"code": "MIT", "data": "CC0-1.0", "text": "CC-BY-4.0", "metadata": "CC0-1.0"},
    )
    anonymous = page(erc_hub, f"compendium/{compendium_id}")
    assert anonymous.status_code == 200, anonymous.text[:500]
    assert_strict_page(anonymous)
    html = anonymous.text
    assert f'<h1 id="erc-title">{title}</h1>' in html
    assert f'href="https://orcid.org/{ORCID}"' in html
    assert 'data-verdict="unchecked"' in html and 'id="erc-no-display"' in html
    assert f'href="/services/erc/launch/{compendium_id}"' in html
    assert "<td>MIT</td>" in html and "<li>carousel</li>" in html
    assert "author = {Example, Alice}" in html
    assert f"url = {{{erc_hub.url}/services/erc/compendium/{compendium_id}}}" in html
    assert 'id="erc-login"' in html

    logged_in = page(erc_hub, f"compendium/{compendium_id}", erc_hub.token("landingreader"))
    assert logged_in.status_code == 200
    assert "<span>landingreader</span>" in logged_in.text and 'id="erc-login"' not in logged_in.text

    # the downloads work without logging in; Launch goes through the hub's login, as before
    download = page(erc_hub, f"compendium/{compendium_id}.zip")
    assert download.status_code == 200, download.text[:300]
    assert f"{compendium_id}/main.ipynb" in zipfile.ZipFile(io.BytesIO(download.content)).namelist()
    bag = page(erc_hub, f"compendium/{compendium_id}/bag.zip")
    assert bag.status_code == 200, bag.text[:300]
    with zipfile.ZipFile(io.BytesIO(bag.content)) as archive:
        declaration = archive.read(f"{compendium_id}/bagit.txt").decode()
        assert "Is-Executable-Research-Compendium: true" in declaration
        assert f"{compendium_id}/data/main.ipynb" in archive.namelist()
    assert (
        erc_hub.request(
            "GET", f"/shipment?compendium_id={compendium_id}&details=true", author
        ).json()["total"]
        == 0
    ), "reading records no shipment"
    assert_error_page(page(erc_hub, f"compendium/{compendium_id}/display"), 404)
    assert_goes_to_login(page(erc_hub, f"launch/{compendium_id}"))
    assert_goes_to_login(page(erc_hub, f"check/{compendium_id}"))


def test_a_candidate_is_its_authors_only_and_nothing_changes_anonymously(
    erc_hub: Hub, tmp_path: Path, browser_client: httpx.Client
) -> None:
    owner = erc_hub.token("landingowner")
    word = f"quokka{secrets.token_hex(3)}"
    candidate = erc_hub.create(owner, workspace_zip(tmp_path, f"Draft {word}"))
    paths = [f"compendium/{candidate}", f"compendium/{candidate}.zip",
             f"compendium/{candidate}/bag.zip", f"compendium/{candidate}/display"]  # fmt: skip
    for path in paths:
        anonymous = page(erc_hub, path)
        assert_goes_to_login(anonymous)
        assert word not in anonymous.text
        other = page(erc_hub, path, erc_hub.token("landingother"))
        assert_error_page(other, 404)
        assert word not in other.text
    assert page(erc_hub, f"compendium/{candidate}", erc_hub.admin_token).status_code == 200
    assert word in page(erc_hub, f"compendium/{candidate}", owner).text
    # the catalogue is public: no candidate, not even for its author
    for token in (None, owner):
        listed = page(erc_hub, "", token, q=word)
        assert listed.status_code == 200 and candidate not in listed.text
        assert 'id="erc-no-results"' in listed.text

    # The author's browser, not yet known to the service, goes through the hub's login and
    # comes back to the page.
    shown = browser_client.get(f"{erc_hub.url}/services/erc/compendium/{candidate}")
    assert shown.status_code == 200 and str(shown.url).endswith(f"/compendium/{candidate}")
    assert f"Draft {word}" in shown.text and "candidate, not yet published" in shown.text

    # Nothing a reader without identity sends changes anything.
    before = erc_hub.request("GET", f"/compendium/{candidate}", owner).json()
    for method in ("POST", "PUT", "DELETE"):
        for path in (f"compendium/{candidate}", ""):
            answer = httpx.request(
                method, f"{erc_hub.url}/services/erc/{path}", json={}, timeout=30
            )
            assert answer.status_code in (403, 405), (method, path, answer.status_code)
    for method, path in (("PUT", f"/compendium/{candidate}/metadata"),
                         ("DELETE", f"/compendium/{candidate}")):  # fmt: skip
        answer = erc_hub.request(method, path, json={"o2r": {"title": "x"}})
        assert answer.status_code == 401, answer.text
    assert erc_hub.request("GET", f"/compendium/{candidate}", owner).json() == before


def test_the_catalogue_lists_pages_and_searches(erc_hub: Hub, tmp_path: Path) -> None:
    author = erc_hub.token("catalogueauthor")
    word = f"zebrafinch{secrets.token_hex(3)}"
    ids = [publish(erc_hub, author, workspace_zip(tmp_path, f"Song {word} {n}")) for n in range(3)]
    newest_first = page(erc_hub, "")
    assert newest_first.status_code == 200
    assert_strict_page(newest_first)
    assert newest_first.text.index(ids[2]) < newest_first.text.index(ids[1])

    first = page(erc_hub, "", q=word, limit="2")
    assert first.status_code == 200, first.text[:500]
    assert f"3 published compendia match “{word}”" in first.text
    shown = [compendium_id for compendium_id in ids if compendium_id in first.text]
    assert len(shown) == 2
    assert 'id="erc-older"' in first.text and 'id="erc-newer"' not in first.text
    second = page(erc_hub, "", q=word, limit="2", start="2")
    rest = [compendium_id for compendium_id in ids if compendium_id in second.text]
    assert sorted(shown + rest) == sorted(ids)
    assert 'id="erc-newer"' in second.text and 'id="erc-older"' not in second.text
    prefix = page(erc_hub, "", q=word[:-2])
    assert all(compendium_id in prefix.text for compendium_id in ids)

    nothing = page(erc_hub, "", q=f"{word} unicorn")
    assert 'id="erc-no-results"' in nothing.text and "No published compendium matches" in (
        nothing.text
    )
    for bad in ({"start": "-1"}, {"limit": "many"}, {"limit": "0"}, {"q": "x" * 501},
                {"page": "2"}, {"start": "1" * 30}):  # fmt: skip
        assert_error_page(page(erc_hub, "", **bad), 400)
    assert_error_page(page(erc_hub, f"compendium/{ids[0]}", x="1"), 400)
    assert_error_page(page(erc_hub, "compendium/no-such-compendium", erc_hub.token("x1")), 404)


@pytest.mark.docker
def test_the_landing_page_shows_the_last_check(
    erc_hub: Hub, docker_client: Any, tmp_path: Path
) -> None:
    author = erc_hub.token("checkedauthor")
    compendium_id = publish(erc_hub, author, workspace_zip(tmp_path, "Checked carousel"))
    created = erc_hub.request("POST", "/job", author, json={"compendium_id": compendium_id})
    assert created.status_code == 201, created.text
    job_id = created.json()["job_id"]
    job = erc_hub.wait_for_job(author, job_id)
    assert job["status"] == "success", job

    html = page(erc_hub, f"compendium/{compendium_id}").text
    assert 'data-verdict="reproduced"' in html, html[:2000]
    assert f"<code>{job_id}</code>" in html
    report_path = f"compendium/{compendium_id}/job/{job_id}/report"
    assert f'href="/services/erc/{report_path}"' in html
    assert f'src="/services/erc/compendium/{compendium_id}/display"' in html

    display = page(erc_hub, f"compendium/{compendium_id}/display")
    assert display.status_code == 200
    assert display.headers["content-security-policy"] == "sandbox allow-scripts allow-popups"
    assert "turn 2" in display.text
    report = page(erc_hub, report_path)
    assert report.status_code == 200 and "<html" in report.text.lower()
    assert report.headers["content-security-policy"] == "sandbox allow-scripts allow-popups"
    assert_error_page(page(erc_hub, f"compendium/{compendium_id}/job/nojob/report"), 404)
