"""Review links in the server extension.

- A reviewer's session, started through a review link (``review_link``, $ERCHUB_REVIEW_LINK):
  every request about the session's compendium that the link grants carries ``?link=`` (its
  GETs, a check job), none other does (another compendium, a metadata change, the job's own
  routes), against a stand-in service that records what it is asked; and against the erc
  service itself, in process (tests/unit/test_api_rules.py's), a blind link's candidate is read
  (authors hidden) and checked through the reviewer's panel endpoints, and nothing of it
  without the link or after the author revoked it.
- The author's side: ``PUT|GET|DELETE erchub/compendium/{id}/link`` create, list and revoke
  the links of their candidate; nobody else manages them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tornado import httpserver, testing, web
from tornado.httpclient import HTTPResponse

from erchub.errors import Invalid
from erchub.extensions.publishing import LaunchedCompendium, PublishMode, allowed_modes
from erchub.services.handlers.base import BaseHandler as ServiceHandler
from tests.conftest import write_notebook
from tests.extensions.conftest import EXTENSION, assert_error, call, extension_config, json_of
from tests.unit.test_api_rules import PREFIX, FakeHubAuth, serving, upload
from tests.unit.test_api_rules import call as api_call

LINK = "L" * 43
SESSION = "c-reviewed"


def test_through_a_link_only_the_author_publishes_the_reviewed_folder() -> None:
    reviewed = LaunchedCompendium("c1", user="alice", files=frozenset({"main.ipynb"}))
    with pytest.raises(Invalid, match="you review through a review link"):
        allowed_modes("", reviewed, "bob", through_link=True)
    # its author, in a session through their own link, as in any other
    assert allowed_modes("", reviewed, "alice", through_link=True) == [
        PublishMode.NEW_VERSION,
        PublishMode.DERIVED,
    ]
    # the reviewer's own folders are new compendia of theirs
    assert allowed_modes("mine", reviewed, "bob", through_link=True) == [PublishMode.NEW]
    assert allowed_modes("", reviewed, "bob") == [PublishMode.DERIVED]


# --- a stand-in erc service that records what it is asked ---------------------------------


class Recorder(web.RequestHandler):
    """Answers every request with a plausible body, and records (method, path, query)."""

    def initialize(self, asked: list[tuple[str, str, dict[str, str]]]) -> None:
        self.asked = asked

    def record(self) -> None:
        query = {name: self.get_query_argument(name) for name in self.request.query_arguments}
        self.asked.append((self.request.method or "", self.request.path, query))

    def get(self, path: str) -> None:
        self.record()
        if path.endswith("/logs"):
            self.set_header("Content-Type", "text/event-stream")
            self.write('event: status\ndata: {"status": "success"}\n\n')
        elif path.endswith("report.html"):
            self.set_header("Content-Type", "text/html")
            self.write("<p>report</p>")
        elif path.startswith("compendium/"):
            files = {"files": ["main.ipynb"], "title": "T"}
            self.write({"id": path.split("/")[1], "user": "author", "metadata": {"o2r": files}})
        else:
            self.write({"id": "j1", "status": "success"})

    def post(self, path: str) -> None:
        self.record()
        self.set_status(201)
        self.write({"job_id": "j1"})

    def put(self, path: str) -> None:
        self.record()
        self.write({"id": SESSION, "candidate": True, "metadata": {"o2r": {}}})


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[str, list[tuple[str, str, dict[str, str]]]]]:
    """A stand-in erc service's API URL, and the requests it was asked."""
    asked: list[tuple[str, str, dict[str, str]]] = []
    app = web.Application([(r"/api/v1/(.*)", Recorder, {"asked": asked})])
    sock, port = testing.bind_unused_port()
    server = httpserver.HTTPServer(app)
    server.add_sockets([sock])
    yield f"http://127.0.0.1:{port}/api/v1", asked
    server.stop()


class TestTheLinkTravelsWithTheSessionsCompendium:
    @pytest.fixture
    def jp_server_config(self, recorder: tuple[str, list[Any]]) -> dict[str, Any]:
        return extension_config(
            erc_api_url=recorder[0], compendium_id=SESSION, review_link=LINK, warm_kernels=0
        )

    @pytest.mark.parametrize(
        ("method", "parts", "body", "asked"),
        [
            ("GET", ("compendium", SESSION), None, ("GET", f"/compendium/{SESSION}")),
            (
                "GET",
                ("compendium", SESSION, "metadata"),
                None,
                ("GET", f"/compendium/{SESSION}/metadata"),
            ),
            ("POST", ("job",), {"compendium_id": SESSION}, ("POST", "/job")),
        ],
        ids=["compendium", "metadata", "check-job"],
    )
    async def test_what_the_link_grants_carries_it(
        self,
        jp_fetch: Any,
        recorder: tuple[str, list[Any]],
        method: str,
        parts: tuple[str, ...],
        body: Any,
        asked: tuple[str, str],
    ) -> None:
        response = await call(jp_fetch, "erchub", *parts, method=method, body=body)
        assert response.code in (200, 201), response.body
        assert recorder[1] == [(asked[0], "/api/v1" + asked[1], {"link": LINK})]

    async def test_nothing_else_carries_it(
        self, jp_fetch: Any, recorder: tuple[str, list[Any]]
    ) -> None:
        requests: list[tuple[str, tuple[str, ...], Any]] = [
            # another compendium: the link names the session's only (the service's 404)
            ("GET", ("compendium", "other"), None),
            ("GET", ("compendium", "other", "metadata"), None),
            ("POST", ("job",), {"compendium_id": "other"}),
            # a change: no link grants one
            ("PUT", ("compendium", SESSION, "metadata"), {"o2r": {"title": "T"}}),
            # the reviewer's own job: the service shows it to them without a link
            ("GET", ("job", "j1"), None),
            ("GET", ("job", "j1", "logs"), None),
            ("GET", ("job", "j1", "report"), None),
        ]
        for method, parts, body in requests:
            response = await call(jp_fetch, "erchub", *parts, method=method, body=body)
            assert response.code in (200, 201), (parts, response.body)
        assert all("link" not in query for _, _, query in recorder[1]), recorder[1]
        assert len(recorder[1]) == len(requests)

    async def test_the_launched_compendium_is_read_through_it(
        self, jp_fetch: Any, jp_root_dir: Path, recorder: tuple[str, list[Any]]
    ) -> None:
        write_notebook(jp_root_dir / "main.ipynb", "x = 1")
        response = await call(jp_fetch, "erchub", "context", params={"path": "main.ipynb"})
        body = json_of(response)
        assert body["review_link"] is True
        assert body["notebook"] == {
            "path": "main.ipynb",
            "compendium_id": SESSION,
            "source": "launched",
            "editable": False,
        }
        assert recorder[1] == [("GET", f"/api/v1/compendium/{SESSION}", {"link": LINK})]

    async def test_the_reviewed_folder_is_not_published_from_the_session(
        self, jp_fetch: Any, jp_root_dir: Path
    ) -> None:
        write_notebook(jp_root_dir / "main.ipynb", "x = 1")
        write_notebook(jp_root_dir / "mine" / "own.ipynb", "y = 2")
        response = await call(jp_fetch, "erchub", "publish", params={"path": "main.ipynb"})
        assert_error(response, 400, "you review through a review link", "not yours to publish")
        # a folder of the reviewer's own is a new compendium of theirs
        response = await call(jp_fetch, "erchub", "publish", params={"path": "mine/own.ipynb"})
        assert response.code == 200, response.body
        assert json_of(response)["modes"] == ["new"]


class TestFromTheSpawnersEnvironment:
    @pytest.fixture
    def jp_server_config(self, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        monkeypatch.setenv("ERCHUB_COMPENDIUM_ID", SESSION)
        monkeypatch.setenv("ERCHUB_REVIEW_LINK", LINK)
        return dict(EXTENSION)

    async def test_the_environment_names_the_link(self, jp_fetch: Any) -> None:
        body = json_of(await call(jp_fetch, "erchub", "context"))
        # the context says whether there is a link, never its id
        assert (body["compendium_id"], body["review_link"]) == (SESSION, True)
        assert LINK not in json.dumps(body)


async def test_a_session_without_a_link_says_so(jp_fetch: Any) -> None:
    assert json_of(await call(jp_fetch, "erchub", "context"))["review_link"] is False


# --- the erc service in process ---------------------------------------------------------------

CREATORS = [{"name": "Alice Hidden", "orcid": "0000-0002-1825-0097"}]


@pytest.fixture
async def erc_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The erc service in process (FakeHubAuth: ``alice-token``, ``bob-token``, ...)."""
    monkeypatch.setattr(ServiceHandler, "hub_auth_class", FakeHubAuth)
    async with serving(tmp_path) as (origin, _service):
        yield f"{origin}{PREFIX}"


@pytest.fixture
async def candidate(erc_api: str, tmp_path: Path) -> str:
    """Alice's candidate, with her name in its metadata."""
    compendium = await upload(erc_api, "alice-token", tmp_path)
    body = {"o2r": {"title": "Under review", "creators": CREATORS}}
    response = await api_call(
        erc_api,
        "PUT",
        f"/compendium/{compendium}/metadata?publish=false",
        "alice-token",
        json=body,
    )
    assert response.status_code == 200, response.text
    return compendium


@pytest.fixture
async def blind_link(erc_api: str, candidate: str) -> str:
    response = await api_call(
        erc_api, "PUT", f"/compendium/{candidate}/link", "alice-token", json={"mode": "blind"}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def uses_of(erc_api: str, link: str) -> int:
    links = (await api_call(erc_api, "GET", "/link", "alice-token")).json()["results"]
    return int(next(found["uses"] for found in links if found["id"] == link))


class TestAReviewersSession:
    @pytest.fixture
    def jp_server_config(self, erc_api: str, candidate: str, blind_link: str) -> dict[str, Any]:
        return extension_config(
            erc_api_url=erc_api,
            api_token="bob-token",
            session_user="bob",
            compendium_id=candidate,
            review_link=blind_link,
            warm_kernels=0,
        )

    async def test_the_panel_reads_and_checks_the_candidate_blinded(
        self, jp_fetch: Any, erc_api: str, candidate: str, blind_link: str
    ) -> None:
        shown = json_of(await call(jp_fetch, "erchub", "compendium", candidate))
        assert shown["candidate"] is True
        assert shown["metadata"]["o2r"]["title"] == "Under review"
        metadata = await call(jp_fetch, "erchub", "compendium", candidate, "metadata")
        assert metadata.code == 200, metadata.body
        for answer in (shown, json_of(metadata)):
            assert "Alice" not in json.dumps(answer) and "alice" not in json.dumps(answer)
        started = await call(
            jp_fetch, "erchub", "job", method="POST", body={"compendium_id": candidate}
        )
        assert started.code == 201, started.body
        job = json_of(started)["job_id"]
        # the reviewer's own job, read without the link
        seen = json_of(await call(jp_fetch, "erchub", "job", job))
        assert (seen["compendium_id"], seen["user"]) == (candidate, "bob")
        assert await uses_of(erc_api, blind_link) >= 1
        # a link grants no change
        change = await call(
            jp_fetch,
            "erchub",
            "compendium",
            candidate,
            "metadata",
            method="PUT",
            body={"o2r": {"title": "Changed"}},
            params={"publish": "false"},
        )
        assert_error(change, 404)
        # nor the management of the author's links: none is listed, none is made
        parts = ("erchub", "compendium", candidate, "link")
        assert json_of(await call(jp_fetch, *parts)) == {"results": []}
        assert_error(await call(jp_fetch, *parts, method="PUT", body={"mode": "open"}), 404)

    async def test_a_revoked_link_shows_nothing_at_once(
        self, jp_fetch: Any, erc_api: str, candidate: str, blind_link: str
    ) -> None:
        assert (await call(jp_fetch, "erchub", "compendium", candidate)).code == 200
        revoked = await api_call(
            erc_api, "DELETE", f"/compendium/{candidate}/link?link={blind_link}", "alice-token"
        )
        assert revoked.status_code == 204
        assert_error(await call(jp_fetch, "erchub", "compendium", candidate), 404)
        started = await call(
            jp_fetch, "erchub", "job", method="POST", body={"compendium_id": candidate}
        )
        assert_error(started, 404)


class TestAReviewersSessionWithoutTheLink:
    @pytest.fixture
    def jp_server_config(self, erc_api: str, candidate: str) -> dict[str, Any]:
        return extension_config(
            erc_api_url=erc_api, api_token="bob-token", compendium_id=candidate, warm_kernels=0
        )

    async def test_the_candidate_is_not_there(self, jp_fetch: Any, candidate: str) -> None:
        assert_error(await call(jp_fetch, "erchub", "compendium", candidate), 404)
        started = await call(
            jp_fetch, "erchub", "job", method="POST", body={"compendium_id": candidate}
        )
        assert_error(started, 404)


async def delete_link(jp_fetch: Any, compendium: str, body: Any) -> HTTPResponse:
    """``DELETE erchub/compendium/{id}/link`` with a JSON body (tornado's client allows a
    body on DELETE as a non-standard method)."""
    response: HTTPResponse = await jp_fetch(
        "erchub",
        "compendium",
        compendium,
        "link",
        method="DELETE",
        body=json.dumps(body),
        allow_nonstandard_methods=True,
        raise_error=False,
    )
    return response


class TestTheAuthorsLinks:
    @pytest.fixture
    def jp_server_config(self, erc_api: str) -> dict[str, Any]:
        return extension_config(
            erc_api_url=erc_api, api_token="alice-token", session_user="alice", warm_kernels=0
        )

    async def test_create_list_and_revoke(
        self, jp_fetch: Any, erc_api: str, candidate: str, tmp_path: Path
    ) -> None:
        other = await upload(erc_api, "alice-token", tmp_path / "other")
        parts = ("erchub", "compendium", candidate, "link")
        assert json_of(await call(jp_fetch, *parts)) == {"results": []}

        created = await call(
            jp_fetch,
            *parts,
            method="PUT",
            body={"mode": "blind", "expires": "2999-12-31T23:59:59Z"},
        )
        assert created.code == 200, created.body
        blind = json_of(created)
        assert (blind["mode"], blind["compendium_id"], blind["active"], blind["uses"]) == (
            "blind",
            candidate,
            True,
            0,
        )
        assert blind["expires"].startswith("2999-12-31T23:59:59")
        assert blind["url"] == f"/services/erc/link/{blind['id']}"
        assert "cannot hide names written inside the files" in blind["blind_cannot_hide"]
        # asking again answers the same link; an open one is another, without the blind note
        again = json_of(
            await call(
                jp_fetch,
                *parts,
                method="PUT",
                body={"mode": "blind", "expires": "2999-12-31T23:59:59Z"},
            )
        )
        assert again["id"] == blind["id"]
        opened = json_of(await call(jp_fetch, *parts, method="PUT"))
        assert opened["mode"] == "open" and "blind_cannot_hide" not in opened
        # a link of another compendium of hers is not listed with this one's
        await call(jp_fetch, "erchub", "compendium", other, "link", method="PUT")
        listed = json_of(await call(jp_fetch, *parts))["results"]
        assert sorted(link["id"] for link in listed) == sorted([blind["id"], opened["id"]])

        response = await delete_link(jp_fetch, candidate, {"link": blind["id"]})
        assert response.code == 204, response.body
        listed = {link["id"]: link for link in json_of(await call(jp_fetch, *parts))["results"]}
        assert listed[blind["id"]]["active"] is False and listed[blind["id"]]["revoked"]
        assert listed[opened["id"]]["active"] is True

    @pytest.mark.parametrize(
        ("body", "words"),
        [
            ({"mode": "secret"}, ["mode must be open or blind"]),
            ({"mode": "open", "colour": "red"}, ["unknown field 'colour'"]),
            ({"expires": ""}, ["expires must be a non-empty string"]),
            # the erc service's own refusals are passed on
            ({"expires": "next week"}, ["not an ISO 8601 date-time"]),
            ({"expires": "2001-01-01T00:00:00Z"}, ["not in the future"]),
        ],
    )
    async def test_bad_requests_are_400(
        self, jp_fetch: Any, candidate: str, body: Any, words: list[str]
    ) -> None:
        response = await call(
            jp_fetch, "erchub", "compendium", candidate, "link", method="PUT", body=body
        )
        assert_error(response, 400, *words)

    async def test_revoking_needs_a_link(self, jp_fetch: Any, candidate: str) -> None:
        assert_error(await delete_link(jp_fetch, candidate, {}), 400, "link is required")
        assert_error(await delete_link(jp_fetch, candidate, {"link": "nope"}), 404, "no link")


class TestSomeoneElsesLinks:
    @pytest.fixture
    def jp_server_config(self, erc_api: str) -> dict[str, Any]:
        return extension_config(erc_api_url=erc_api, api_token="bob-token", warm_kernels=0)

    async def test_only_the_author_manages_them(
        self, jp_fetch: Any, candidate: str, blind_link: str
    ) -> None:
        parts = ("erchub", "compendium", candidate, "link")
        # bob cannot see alice's candidate: 404, and her links are not his to list
        assert_error(await call(jp_fetch, *parts, method="PUT"), 404)
        assert json_of(await call(jp_fetch, *parts)) == {"results": []}
        assert_error(await delete_link(jp_fetch, candidate, {"link": blind_link}), 404)
