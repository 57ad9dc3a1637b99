"""Review guests and sessions through review links: the names (pure), the session options, the
service's rule that a guest reaches nothing but their link's compendium (every API and page
route walked with a guest's identity), the link's status for the hub, unblinding, and the
sweep that stops the sessions of ended links and deletes their guests (against a small local
stand-in for the hub's REST API)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tornado import web

from erchub.reviewers import (
    guest_link_digest,
    is_guest,
    is_guest_of,
    is_link_id,
    link_digest,
    new_guest_name,
)
from erchub.services.handlers import api_handlers, page_handlers
from erchub.services.handlers.base import GUEST_REFUSAL, BaseHandler
from erchub.services.hub import HubAPI, end_review_sessions
from erchub.services.store import LinkMode
from erchub.sessions import (
    WORKSPACE,
    InvalidSessionOptions,
    SessionKind,
    SessionTarget,
    check_guest_target,
    parse_user_options,
)
from tests.unit.test_api_rules import (
    PREFIX,
    USER_SCOPES,
    FakeHubAuth,
    assert_json_error,
    call,
    listening,
    model,
    serving,
    upload,
)
from tests.unit.test_reader_pages import PageHubAuth

LINK = "A" * 43
OTHER_LINK = "B" * 43


# -- names and session options (pure) -------------------------------------------------------


def test_a_guest_name_names_its_link_without_giving_it_away() -> None:
    name = new_guest_name(LINK)
    assert is_guest(name) and is_guest_of(name, LINK) and not is_guest_of(name, OTHER_LINK)
    assert guest_link_digest(name) == link_digest(LINK) and LINK not in name
    assert new_guest_name(LINK) != name  # each guest is a user of their own
    for other in ("0000-0002-1825-0097", "alice", "guest-", "guest-abc-def", name + "0"):
        assert not is_guest(other)
    assert is_link_id(LINK) and not is_link_id("short") and not is_link_id("a/b" * 10)


def test_a_session_through_a_link_opens_a_compendium() -> None:
    target = parse_user_options({"compendium": "abc", "link": LINK}, "erc-abc-123456")
    assert target == SessionTarget(SessionKind.COMPENDIUM, "abc", LINK)
    for options, words in (
        ({"job": "j1", "link": LINK}, "not a job"),
        ({"compendium": "abc", "link": "x/y"}, "not a review link"),
        ({"link": LINK}, "exactly one"),
    ):
        with pytest.raises(InvalidSessionOptions, match=words):
            parse_user_options(options, "erc-abc-123456")


def test_a_guest_opens_the_compendium_of_their_link_only() -> None:
    guest = new_guest_name(LINK)
    check_guest_target(guest, SessionTarget(SessionKind.COMPENDIUM, "abc", LINK))
    check_guest_target("alice", WORKSPACE)  # anyone else: no rule
    for target in (
        WORKSPACE,
        SessionTarget(SessionKind.COMPENDIUM, "abc"),
        SessionTarget(SessionKind.JOB, "j1"),
    ):
        with pytest.raises(InvalidSessionOptions, match="only the compendium of that link"):
            check_guest_target(guest, target)
    with pytest.raises(InvalidSessionOptions, match="another review link"):
        check_guest_target(guest, SessionTarget(SessionKind.COMPENDIUM, "abc", OTHER_LINK))


# -- the service's rules for guests ---------------------------------------------------------


@pytest.fixture
async def service_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, Any]]:
    monkeypatch.setattr(BaseHandler, "hub_auth_class", PageHubAuth)
    async with serving(tmp_path) as (origin, service):
        yield origin, service


async def linked_candidate(api: str, tmp_path: Path, mode: str = "blind") -> tuple[str, str]:
    """A candidate of alice with a review link: its id and the link's."""
    compendium_id = await upload(api, "alice-token", tmp_path)
    response = await call(api, "PUT", f"/compendium/{compendium_id}/link", "alice-token",
                          json={"mode": mode})  # fmt: skip
    assert response.status_code == 200, response.text
    return compendium_id, str(response.json()["id"])


def add_guest(link_id: str) -> str:
    """A guest of ``link_id`` known to the fake hub (with the scopes every user gets): its
    token."""
    token = f"guest-token-{link_id[:8]}"
    FakeHubAuth.users[token] = model(new_guest_name(link_id), USER_SCOPES)
    return token


async def test_the_hub_may_ask_whether_a_link_is_in_force(
    service_api: tuple[str, Any], tmp_path: Path
) -> None:
    origin, service = service_api
    api = origin + PREFIX
    compendium_id, link_id = await linked_candidate(api, tmp_path)
    response = await call(api, "GET", f"/link/{link_id}")  # no identity at all
    assert response.status_code == 200
    assert response.json() == {
        "id": link_id,
        "compendium_id": compendium_id,
        "mode": "blind",
        "expires": None,
        "guests": False,
    }
    service.review_guests = True
    assert (await call(api, "GET", f"/link/{link_id}")).json()["guests"] is True
    assert_json_error(await call(api, "GET", "/link/" + "x" * 43), 404, "no longer works")
    revoked = await call(api, "DELETE", f"/compendium/{compendium_id}/link", "alice-token")
    assert revoked.status_code == 204
    assert_json_error(await call(api, "GET", f"/link/{link_id}"), 404, "no longer works")


async def test_a_guest_reaches_the_compendium_of_their_link_and_nothing_else(
    service_api: tuple[str, Any], tmp_path: Path
) -> None:
    origin, _service = service_api
    api = origin + PREFIX
    compendium_id, link_id = await linked_candidate(api, tmp_path)
    other_id, other_link = await linked_candidate(api, tmp_path / "other")
    published = await upload(api, "bob-token", tmp_path / "bob")
    metadata = await call(api, "GET", f"/compendium/{published}/metadata", "bob-token")
    saved = await call(api, "PUT", f"/compendium/{published}/metadata", "bob-token",
                       json=metadata.json()["metadata"])  # fmt: skip
    assert saved.status_code == 200 and saved.json()["candidate"] is False
    guest = add_guest(link_id)

    seen = await call(api, "GET", f"/compendium/{compendium_id}?link={link_id}", guest)
    assert seen.status_code == 200 and seen.json()["user"] == "hidden for blind review"
    tarball = await call(api, "GET", f"/compendium/{compendium_id}.tar.gz?link={link_id}", guest)
    assert tarball.status_code == 200
    job = await call(api, "POST", f"/job?link={link_id}", guest,
                     json={"compendium_id": compendium_id})  # fmt: skip
    assert job.status_code == 201, job.text
    job_id = job.json()["job_id"]
    assert (await call(api, "GET", f"/job/{job_id}", guest)).status_code == 200
    jobs = await call(api, "GET", f"/compendium/{compendium_id}/jobs?link={link_id}", guest)
    assert jobs.status_code == 200 and job_id in jobs.json()["results"]

    # without their link, through another link, or a published compendium: not found
    for path in (
        f"/compendium/{compendium_id}",
        f"/compendium/{other_id}?link={other_link}",
        f"/compendium/{other_id}?link={link_id}",
        f"/compendium/{published}",
    ):
        assert_json_error(await call(api, "GET", path, guest), 404, "not found")
    # anything the link does not grant: 403, whatever the route
    for method, path, body in (
        ("GET", "/compendium", None),
        ("GET", "/job", None),
        ("GET", "/link", None),
        ("GET", "/shipment", None),
        ("PUT", f"/compendium/{compendium_id}/metadata?link={link_id}", {"o2r": {}}),
        ("PUT", f"/compendium/{compendium_id}/link", {}),
        ("DELETE", f"/compendium/{compendium_id}?link={link_id}", None),
        ("POST", "/shipment", {"compendium_id": compendium_id, "recipient": "zenodo"}),
    ):
        response = await call(api, method, path, guest, json=body)
        assert_json_error(response, 403, GUEST_REFUSAL)


def route_path(pattern: str) -> str:
    """A path of the route ``pattern`` with a made-up value for each of its groups."""
    path = re.sub(r"\(\?P<[a-z_]+>[^)]*\)", "x1", pattern)
    path = re.sub(r"\([^)]*\)", "x1", path)
    return path.replace("\\", "").replace(".*", "x1").lstrip("^").rstrip("$")


@pytest.mark.parametrize(
    ("prefix", "routes", "refusing"),
    [(PREFIX, api_handlers(), 30), ("/services/erc/", page_handlers(), 2)],
    ids=["api", "pages"],
)
async def test_every_route_a_link_does_not_grant_refuses_a_guest(
    service_api: tuple[str, Any], prefix: str, routes: list[tuple[str, Any]], refusing: int
) -> None:
    origin, _service = service_api
    guest = add_guest(LINK)
    walked = 0
    for pattern, handler in routes:
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            if getattr(handler, method.lower()) is web.RequestHandler.__dict__[method.lower()]:
                continue  # not a method of this route
            url = origin + prefix.rstrip("/") + "/" + route_path(pattern).lstrip("/")
            response = await call(url, method, "", guest, json={} if method != "GET" else None)
            if method in handler.guest_methods:
                assert response.status_code != 403 or GUEST_REFUSAL not in response.text
                continue
            walked += 1
            assert response.status_code == 403, (method, pattern, response.status_code)
            assert GUEST_REFUSAL in response.text, (method, pattern)
    assert walked >= refusing  # the walk reached the routes


async def test_the_author_unblinds_a_link(service_api: tuple[str, Any], tmp_path: Path) -> None:
    origin, _service = service_api
    api = origin + PREFIX
    compendium_id, link_id = await linked_candidate(api, tmp_path)
    path = f"/compendium/{compendium_id}/link?link={link_id}"
    assert_json_error(await call(api, "PATCH", path, "bob-token", json={"mode": "open"}), 404)
    assert_json_error(await call(api, "PATCH", path, "alice-token", json={"mode": "x"}), 400)
    no_link = f"/compendium/{compendium_id}/link"
    response = await call(api, "PATCH", no_link, "alice-token", json={"mode": "open"})
    assert_json_error(response, 400, "?link=ID")
    response = await call(api, "PATCH", path, "alice-token", json={"mode": "open"})
    assert response.status_code == 200 and response.json()["mode"] == "open"
    seen = await call(api, "GET", f"/compendium/{compendium_id}?link={link_id}", "bob-token")
    assert seen.json()["user"] == "alice"


# -- the sweep of ended links, against a stand-in for the hub's REST API --------------------


class FakeHub:
    """The parts of JupyterHub's REST API the sweep uses: the paged user list (``state``,
    ``name_filter``), stopping a server, deleting a user; it records what it was asked."""

    def __init__(self, users: dict[str, dict[str, Any]]) -> None:
        self.users = users
        self.calls: list[tuple[str, str]] = []

    def app(self) -> web.Application:
        hub = self

        class Users(web.RequestHandler):
            def get(self) -> None:
                assert self.request.headers["Authorization"] == "token service-token"
                assert "pagination" in self.request.headers["Accept"]
                offset = int(self.get_argument("offset"))
                limit = int(self.get_argument("limit"))
                state = self.get_argument("state", None)
                name_filter = self.get_argument("name_filter", None)
                found = [
                    {"name": name, "servers": servers}
                    for name, servers in sorted(hub.users.items())
                    if (state != "active" or servers) and (name_filter or "") in name
                ]
                page = found[offset : offset + limit]
                more = offset + limit < len(found)
                following = {"offset": offset + limit} if more else None
                self.write({"items": page, "_pagination": {"next": following}})

        class Server(web.RequestHandler):
            def delete(self, user: str, server: str) -> None:
                hub.calls.append(("stop", f"{user}/{server}"))
                hub.users[user].pop(server, None)
                self.set_status(204)

        class User(web.RequestHandler):
            def delete(self, user: str) -> None:
                hub.calls.append(("delete", user))
                hub.users.pop(user, None)
                self.set_status(204)

        return web.Application(
            [
                (r"/hub/api/users", Users),
                (r"/hub/api/users/([^/]+)/servers/([^/]+)", Server),
                (r"/hub/api/users/([^/]+)", User),
            ]
        )


@pytest.fixture
async def fake_hub() -> AsyncIterator[tuple[FakeHub, HubAPI]]:
    guest_ended, guest_active = new_guest_name(LINK), new_guest_name(OTHER_LINK)
    hub = FakeHub(
        {
            "alice": {"erc-a": {"user_options": {"compendium": "a", "link": LINK}}},
            "bob": {"erc-b": {"user_options": {"compendium": "b", "link": OTHER_LINK}}},
            "carol": {"": {"user_options": {}}},
            guest_ended: {"erc-a": {"user_options": {"compendium": "a", "link": LINK}}},
            guest_active: {},
            **{f"user{i:03}": {} for i in range(250)},  # more than a page
        }
    )
    async with listening(hub.app()) as origin:
        yield hub, HubAPI(f"{origin}/hub/api", "service-token")


async def test_an_ended_link_stops_its_sessions_and_deletes_its_guests(
    fake_hub: tuple[FakeHub, HubAPI],
) -> None:
    hub, api = fake_hub
    log = logging.getLogger("test")
    guest_ended = next(name for name in hub.users if is_guest_of(name, LINK))
    done = await end_review_sessions(api, [LINK], [OTHER_LINK], log)
    assert done
    assert sorted(hub.calls) == sorted(
        [("stop", "alice/erc-a"), ("stop", f"{guest_ended}/erc-a"), ("delete", guest_ended)]
    )
    assert "bob" in hub.users and hub.users["bob"] and "carol" in hub.users
    assert any(is_guest_of(name, OTHER_LINK) for name in hub.users)
    hub.calls.clear()
    assert await end_review_sessions(api, [LINK], [OTHER_LINK], log)
    assert hub.calls == []
    assert json.dumps(hub.users)  # what is left is still a model


async def test_the_service_asks_the_hub_only_when_a_link_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look for ended links: a first look, then only when a link was revoked, expired or
    deleted since; a failed sweep is tried again."""
    from erchub.services import app as service_app
    from erchub.services.store import LinkRecord

    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "service-token")
    sweeps: list[tuple[set[str], set[str]]] = []
    outcome = {"done": True}

    async def recorded(hub: Any, ended: Any, active: Any, log: Any) -> bool:
        sweeps.append((set(ended), set(active)))
        return outcome["done"]

    monkeypatch.setattr(service_app, "end_review_sessions", recorded)
    async with serving(tmp_path) as (_origin, service):
        store = service.store

        def add(link_id: str, expires: float | None = None) -> None:
            record = LinkRecord(
                id=link_id, compendium_id="c1", user="alice", mode=LinkMode.OPEN, created=1.0
            )
            record.expires = expires
            store.add_link(record)

        await service.end_review_links()
        assert sweeps == [(set(), set())]  # the first look after a start
        add("l1")
        await service.end_review_links()
        assert len(sweeps) == 1  # a new link: nothing to stop
        store.revoke_link("l1", now=2.0)
        await service.end_review_links()
        assert sweeps[-1] == ({"l1"}, set())
        await service.end_review_links()
        assert len(sweeps) == 2  # acted on already
        add("l2", expires=3.0)  # created and expired between two looks
        outcome["done"] = False
        await service.end_review_links()
        assert sweeps[-1] == ({"l1", "l2"}, set())
        outcome["done"] = True
        await service.end_review_links()  # the failed sweep again
        assert len(sweeps) == 4
        await service.end_review_links()
        assert len(sweeps) == 4
