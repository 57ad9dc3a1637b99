"""The readers' pages (catalogue, landing pages and their files) in process: their pure helpers,
and the rule that published compendia are readable without logging in while candidates stay
hidden, with the service's application and a fake HubAuth (see test_api_rules)."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from erchub.services.app import ERCService
from erchub.services.exchange.packaging import human_size
from erchub.services.handlers.base import BaseHandler
from erchub.services.handlers.catalogue import snippet
from erchub.services.handlers.landing import (
    Verdict,
    files_of,
    job_file,
    licenses_of,
    related_links,
    verdict_of,
)
from erchub.services.store import JobRecord
from erchub.steps import JobStatus
from tests.unit.test_api_rules import FakeHubAuth, serving, workspace_zip

SERVICE = "/services/erc/"
NAVIGATE = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}


class PageHubAuth(FakeHubAuth):
    """The fake HubAuth with what pages need besides: the service's prefix, for the path of
    the XSRF cookie."""

    base_url = SERVICE


# -- pure helpers ----------------------------------------------------------------------------


def job(status: JobStatus, **result: Any) -> JobRecord:
    return JobRecord(id="j1", compendium_id="c1", user="u", status=status, result=result)


def test_the_verdict_of_the_newest_finished_job() -> None:
    assert verdict_of(None).verdict == Verdict.UNCHECKED
    counts = {"cells_compared": 4, "cells_different": 1}
    passed = verdict_of(job(JobStatus.SUCCESS, check={"passed": True, "counts": counts}))
    assert passed.verdict == Verdict.REPRODUCED
    assert passed.text == "Reproduced: every output matches the published one (4 cells compared)."
    assert verdict_of(job(JobStatus.SUCCESS)).verdict == Verdict.EXECUTED
    unreferenced = job(
        JobStatus.SUCCESS, check={"passed": False, "verdict": "no_reference_outputs"}
    )
    assert verdict_of(unreferenced).verdict == Verdict.NO_REFERENCE
    differs = verdict_of(job(JobStatus.FAILURE, check={"passed": False, "counts": counts}))
    assert differs.verdict == Verdict.DIFFERS
    assert differs.text == "Not reproduced: 1 of 4 cells differ from the published ones."
    failed = JobRecord(id="j", compendium_id="c", user="u", status=JobStatus.FAILURE, reason="x")
    assert (verdict_of(failed).verdict, verdict_of(failed).text) == (
        Verdict.FAILED,
        "The check failed: x.",
    )
    # a result of another shape never breaks the page
    odd = verdict_of(job(JobStatus.FAILURE, check=["not", "a", "mapping"]))
    assert odd.verdict == Verdict.FAILED


def test_related_versions_become_links_and_anything_else_is_left_out() -> None:
    metadata = {
        "is_new_version_of": "AbC123",
        "derived_from": [
            "10.5281/zenodo.42",
            {"url": "https://example.org/erc"},
            {"doi": "doi:10.1/x"},
            "not an id!",
            42,
            {"other": "x"},
        ],
    }
    links = related_links(metadata, "/services/erc/")
    assert [(link["relation"], link["href"], link["text"]) for link in links] == [
        ("A new version of", "/services/erc/compendium/AbC123", "AbC123"),
        ("Derived from", "https://doi.org/10.5281/zenodo.42", "10.5281/zenodo.42"),
        ("Derived from", "https://example.org/erc", "https://example.org/erc"),
        ("Derived from", "https://doi.org/10.1/x", "10.1/x"),
    ]
    assert related_links({}, "/s/") == []


def test_licenses_files_and_sizes_as_the_page_shows_them() -> None:
    licenses = {"code": "MIT", "data": "NOASSERTION", "text": {"paper.md": "CC-BY-4.0"}}
    assert licenses_of({"license": licenses}) == [
        {"kind": "code", "license": "MIT"},
        {"kind": "data", "license": "not stated"},
        {"kind": "text", "license": "paper.md: CC-BY-4.0"},
    ]
    assert licenses_of({"license": "MIT"}) == []
    tree = {
        "path": "",
        "type": "directory",
        "children": [
            {"path": "a.txt", "type": "file", "size": 3},
            {
                "path": "data",
                "type": "directory",
                "children": [{"path": "data/b.csv", "type": "file", "size": 2048}],
            },
            {"path": "z.ipynb", "type": "file", "size": 5 * 1024**2},
        ],
    }
    assert files_of(tree) == [
        {"path": "a.txt", "size": "3 bytes"},
        {"path": "data/b.csv", "size": "2.0 KB"},
        {"path": "z.ipynb", "size": "5.0 MB"},
    ]
    assert human_size(1023) == "1023 bytes"
    assert human_size(3 * 1024**4) == "3.0 TB"
    assert human_size(2 * 1024**5) == "2048.0 TB"


def test_job_files_are_served_only_from_their_folder() -> None:
    record = job(JobStatus.SUCCESS, display="output/main.html", report="check/report.html")
    assert job_file(record, "display", "output") == "main.html"
    assert job_file(record, "report", "check") == "report.html"
    assert job_file(record, "report", "output") is None
    assert job_file(job(JobStatus.SUCCESS, display="job.json"), "display", "output") is None
    assert job_file(job(JobStatus.SUCCESS), "display", "output") is None


def test_snippets_cut_at_a_word() -> None:
    assert snippet(None) is None
    assert snippet(" a\n b ") == "a b"
    assert snippet("one two three four", limit=10) == "one two…"
    assert snippet("x" * 20, limit=10) == "x" * 10 + "…"


# -- the pages, in process -------------------------------------------------------------------


@dataclass
class Service:
    url: str
    service: ERCService

    async def get(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, token, **kwargs)

    async def request(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"token {token}"
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.request(method, self.url + path, headers=headers, **kwargs)

    async def upload(self, token: str, tmp_path: Path, publish: bool) -> str:
        files = {"compendium": ("ws.zip", workspace_zip(tmp_path), "application/zip")}
        data = {"content_type": "workspace"}
        created = await self.request("POST", "api/v1/compendium", token, files=files, data=data)
        assert created.status_code == 201, created.text
        compendium_id = str(created.json()["id"])
        if publish:
            path = f"api/v1/compendium/{compendium_id}/metadata"
            o2r = (await self.get(path, token)).json()["metadata"]["o2r"]
            o2r.update(
                creators=[{"name": "Ada Lovelace", "orcid": "0000-0002-1694-233X"}],
                keywords=["probe"],
            )
            saved = await self.request("PUT", path, token, json={"o2r": o2r})
            assert saved.status_code == 200 and not saved.json()["candidate"], saved.text
        return compendium_id


@pytest.fixture
async def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Service]:
    monkeypatch.setattr(BaseHandler, "hub_auth_class", PageHubAuth)
    async with serving(tmp_path) as (origin, erc):
        yield Service(f"{origin}{SERVICE}", erc)


def finished_job(erc: ERCService, compendium_id: str, display: str, passed: bool) -> str:
    """A job of the compendium that ended with a display file and a check report."""
    job_id = f"job{compendium_id}"
    now = time.time()
    record = JobRecord(
        id=job_id,
        compendium_id=compendium_id,
        user="alice",
        status=JobStatus.SUCCESS if passed else JobStatus.FAILURE,
        created=now,
        finished=now,
        result={
            "display": "output/main.html",
            "report": "check/report.html",
            "check": {"passed": passed, "counts": {"cells_compared": 1, "cells_different": 0}},
        },
    )
    erc.store.add_job(record)
    job_dir = Path(erc.data_dir) / "jobs" / job_id
    (job_dir / "output").mkdir(parents=True)
    (job_dir / "check").mkdir()
    (job_dir / "output" / "main.html").write_text(display)
    (job_dir / "check" / "report.html").write_text("<p>the report</p>")
    (job_dir / "job.json").write_text('{"secret": "internal"}')
    return job_id


async def test_anonymous_readers_read_published_compendia(service: Service, tmp_path: Path) -> None:
    published = await service.upload("alice-token", tmp_path, publish=True)
    job_id = finished_job(service.service, published, "<h1>the figures</h1>", passed=True)

    landing = await service.get(f"compendium/{published}", headers=NAVIGATE)
    assert landing.status_code == 200, landing.text
    assert landing.headers["content-type"].startswith("text/html")
    assert "script-src 'self' 'nonce-" in landing.headers["content-security-policy"]
    page = landing.text
    assert '<h1 id="erc-title">Rules</h1>' in page
    assert 'href="https://orcid.org/0000-0002-1694-233X"' in page
    assert 'data-verdict="reproduced"' in page
    assert f'href="/services/erc/launch/{published}"' in page
    assert f'href="/services/erc/check/{published}"' in page
    assert f'src="/services/erc/compendium/{published}/display"' in page
    assert 'sandbox="allow-scripts allow-popups"' in page
    assert f'href="/services/erc/compendium/{published}/job/{job_id}/report"' in page
    assert "@misc{erc:" + published in page
    assert "<code>main.ipynb</code>" in page
    assert 'id="erc-login"' in page, "an anonymous reader is offered the login"

    display = await service.get(f"compendium/{published}/display")
    assert display.status_code == 200 and display.text == "<h1>the figures</h1>"
    assert display.headers["content-security-policy"] == "sandbox allow-scripts allow-popups"
    assert display.headers["x-content-type-options"] == "nosniff"
    report = await service.get(f"compendium/{published}/job/{job_id}/report")
    assert report.status_code == 200 and report.text == "<p>the report</p>"
    assert report.headers["content-security-policy"] == "sandbox allow-scripts allow-popups"

    download = await service.get(f"compendium/{published}.zip")
    assert download.status_code == 200
    assert download.headers["content-disposition"] == f'attachment; filename="{published}.zip"'
    names = zipfile.ZipFile(io.BytesIO(download.content)).namelist()
    assert f"{published}/main.ipynb" in names

    catalogue = await service.get("", headers=NAVIGATE)
    assert catalogue.status_code == 200
    assert f'href="/services/erc/compendium/{published}"' in catalogue.text


async def test_anonymous_readers_never_see_a_candidate(service: Service, tmp_path: Path) -> None:
    candidate = await service.upload("alice-token", tmp_path, publish=False)
    job_id = finished_job(service.service, candidate, "<h1>draft figures</h1>", passed=True)
    paths = [
        f"compendium/{candidate}",
        f"compendium/{candidate}.zip",
        f"compendium/{candidate}/bag.zip",
        f"compendium/{candidate}/display",
        f"compendium/{candidate}/job/{job_id}/report",
    ]
    for path in paths:
        # without identity: the login (it may be the author's own), nothing of it shown
        anonymous = await service.get(path, headers=NAVIGATE)
        assert anonymous.status_code == 302, (path, anonymous.status_code)
        assert anonymous.headers["location"].startswith("/hub/login")
        assert "Rules" not in anonymous.text and "draft" not in anonymous.text
        for token in ("bob-token", "outsider-token"):
            other = await service.get(path, token, headers=NAVIGATE)
            assert other.status_code == 404, (path, token, other.status_code)
            assert 'data-status="404"' in other.text and "draft" not in other.text
        for token in ("alice-token", "admin-token"):
            assert (await service.get(path, token)).status_code == 200, (path, token)
    assert candidate not in (await service.get("")).text
    assert candidate not in (await service.get("", "alice-token", params={"q": "rules"})).text
    # a search of everything the catalogue shows: nothing, said so
    empty = await service.get("", params={"q": "rules"})
    assert 'id="erc-no-results"' in empty.text and "No published compendium matches" in empty.text


async def test_readers_pages_change_nothing(service: Service, tmp_path: Path) -> None:
    published = await service.upload("alice-token", tmp_path, publish=True)
    candidate = await service.upload("alice-token", tmp_path, publish=False)
    before = (await service.get(f"api/v1/compendium/{published}", "alice-token")).json()
    for compendium_id in (published, candidate):
        for path in (f"compendium/{compendium_id}", f"compendium/{compendium_id}.zip", ""):
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                answer = await service.request(method, path, json={"o2r": {}})
                assert answer.status_code == 405, (method, path, answer.status_code)
        for method, path in (
            ("PUT", f"api/v1/compendium/{compendium_id}/metadata"),
            ("DELETE", f"api/v1/compendium/{compendium_id}"),
        ):
            answer = await service.request(method, path, json={"o2r": {"title": "x"}})
            assert answer.status_code == 401, (method, path, answer.status_code)
    after = (await service.get(f"api/v1/compendium/{published}", "alice-token")).json()
    assert after == before
    assert (await service.get(f"api/v1/compendium/{candidate}", "alice-token")).status_code == 200


async def test_the_catalogue_pages_and_searches(service: Service, tmp_path: Path) -> None:
    ids = [await service.upload("alice-token", tmp_path, publish=True) for _ in range(3)]
    first = await service.get("", params={"limit": "2"})
    assert first.status_code == 200, first.text
    # newest first
    assert first.text.index(ids[2]) < first.text.index(ids[1])
    assert ids[0] not in first.text
    assert 'id="erc-older" href="/services/erc/?start=2&amp;limit=2"' in first.text
    second = await service.get("", params={"limit": "2", "start": "2"})
    assert ids[0] in second.text and ids[1] not in second.text
    assert 'id="erc-newer" href="/services/erc/?limit=2"' in second.text
    found = await service.get("", params={"q": "  rul  "})
    assert all(compendium_id in found.text for compendium_id in ids)
    assert 'value="rul"' in found.text
    # the login link comes back to the same search, never with a token sent in the URL
    linked = await service.get("", params={"q": "rul", "token": "not-a-token"})
    assert 'href="/services/erc/login?next=%2Fservices%2Ferc%2F%3Fq%3Drul"' in linked.text
    assert "not-a-token" not in linked.text
    past = await service.get("", params={"start": "10"})
    assert past.status_code == 200 and "none on this page" in past.text
    for bad in ({"start": "-1"}, {"limit": "x"}, {"limit": "0"}, {"q": "x" * 501}, {"page": "2"}):
        answer = await service.get("", params=bad, headers=NAVIGATE)
        assert answer.status_code == 400, (bad, answer.status_code)
        assert 'data-status="400"' in answer.text
    answer = await service.get(f"compendium/{ids[0]}", params={"x": "1"})
    assert answer.status_code == 400


GIT_ORIGIN = {
    "kind": "git_url",
    "git_url": "https://git.example.org/ada/paper",
    "ref": "v1.0",
    "commit": "0123456789abcdef0123456789abcdef01234567",
    "url": "https://git.example.org/ada/paper.git",
    "loaded": "2026-12-07T12:00:00Z",
}


async def test_the_page_names_the_git_commit_it_was_loaded_from(
    service: Service, tmp_path: Path
) -> None:
    published = await service.upload("alice-token", tmp_path, publish=True)
    store = service.service.store
    record = store.get_compendium(published)
    assert record is not None
    store.update_compendium(
        published, metadata={**record.metadata, "origin": GIT_ORIGIN}, now=time.time()
    )
    page = (await service.get(f"compendium/{published}", headers=NAVIGATE)).text
    assert (
        '<p class="meta" id="erc-origin">From the git repository '
        '<a href="https://git.example.org/ada/paper">https://git.example.org/ada/paper</a>, '
        'v1.0 at commit <code title="0123456789abcdef0123456789abcdef01234567">0123456789ab'
        "</code></p>"
    ) in page

    # an origin that is no web URL is not linked (nor named)
    hostile = {**GIT_ORIGIN, "git_url": "javascript:alert(1)"}
    store.update_compendium(
        published, metadata={**record.metadata, "origin": hostile}, now=time.time()
    )
    page = (await service.get(f"compendium/{published}", headers=NAVIGATE)).text
    assert 'id="erc-origin"' not in page and "javascript:" not in page
