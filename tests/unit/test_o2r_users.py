"""o2r's ``GET /user`` and ``GET /user/{id}`` in process: the service's application (see
test_api_rules) against a fake of the hub's REST API, which pages its users as JupyterHub does
(``offset``/``limit``, ``{"items", "_pagination"}`` with the pagination media type, pages
capped at its ``api_page_max_limit``) and knows each user's roles and groups."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tornado import web

from erchub.services.handlers.base import BaseHandler
from erchub.services.handlers.user import (
    LEVEL_ADMIN,
    LEVEL_NEW,
    LEVEL_USER,
    MAX_HUB_PAGES,
    level_of_model,
)
from tests.unit.test_api_rules import (
    ACCESS,
    PREFIX,
    FakeHubAuth,
    assert_json_error,
    call,
    listening,
    model,
    serving,
)

SERVICE_TOKEN = "erc-service-token"
USER_SCOPES = [ACCESS, "custom:erc:read", "custom:erc:create", "custom:erc:run"]


class FakeHubAPI:
    """The hub's ``/hub/api/users`` and ``/hub/api/users/{name}`` for the service's token."""

    def __init__(self, users: list[dict[str, Any]], max_limit: int = 200) -> None:
        self.users = users
        self.max_limit = max_limit
        #: (offset, limit) of every listing asked for (the limit before the hub caps it)
        self.pages: list[tuple[int, int]] = []
        self.broken = False
        #: whether it answers the pagination media type (older hubs answer bare lists)
        self.paginates = True

    def application(self) -> web.Application:
        fake = self

        class Handler(web.RequestHandler):
            def prepare(self) -> None:
                if self.request.headers.get("Authorization") != f"token {SERVICE_TOKEN}":
                    raise web.HTTPError(403)
                if fake.broken:
                    self.finish("<html>proxy error</html>")

        class Users(Handler):
            def get(self) -> None:
                offset = int(self.get_argument("offset", "0"))
                asked = int(self.get_argument("limit", str(fake.max_limit)))
                fake.pages.append((offset, asked))
                limit = min(asked, fake.max_limit)
                items = fake.users[offset : offset + limit]
                following = offset + limit < len(fake.users)
                accepted = self.request.headers.get("Accept", "")
                body: Any = items
                if fake.paginates and "application/jupyterhub-pagination+json" in accepted:
                    body = {
                        "items": items,
                        "_pagination": {
                            "offset": offset,
                            "limit": limit,
                            "total": len(fake.users),
                            "next": {"offset": offset + limit} if following else None,
                        },
                    }
                self.finish(json.dumps(body))

        class User(Handler):
            def get(self, name: str) -> None:
                for user in fake.users:
                    if user["name"] == name:
                        self.finish(json.dumps(user))
                        return
                raise web.HTTPError(404)

        return web.Application([(r"/hub/api/users", Users), (r"/hub/api/users/([^/]+)", User)])


def hub_user(
    name: str, roles: tuple[str, ...] = ("user",), groups: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {
        "kind": "user",
        "name": name,
        "admin": False,
        "roles": list(roles),
        "groups": list(groups),
        "last_activity": "2025-01-02T03:04:05.000000Z",
    }


HUB_USERS = [
    hub_user("alice"),
    hub_user("bob"),
    hub_user("carol", roles=("user", "erc-admin")),
    hub_user("dave", groups=("erc-admin",)),
    hub_user("erin", roles=()),
    hub_user("0000-0002-1825-0097"),
    hub_user("admin", roles=("user", "erc-admin")),
]


@pytest.fixture
async def hub(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeHubAPI]:
    """The fake hub API on a port of 127.0.0.1, the service's HubAuth pointed at it."""
    fake = FakeHubAPI([dict(user) for user in HUB_USERS], max_limit=3)
    async with listening(fake.application()) as origin:

        class HubAuth(FakeHubAuth):
            api_url = f"{origin}/hub/api"
            api_token = SERVICE_TOKEN

        monkeypatch.setattr(BaseHandler, "hub_auth_class", HubAuth)
        monkeypatch.setattr(
            FakeHubAuth,
            "users",
            {
                **FakeHubAuth.users,
                "alice-token": model("alice", USER_SCOPES),
                "admin-token": model("admin", [ACCESS, "custom:erc:admin"]),
            },
        )
        yield fake


@pytest.fixture
async def api(hub: FakeHubAPI, tmp_path: Path) -> AsyncIterator[str]:
    async with serving(tmp_path) as (origin, _service):
        yield f"{origin}{PREFIX}"


NAMES = [user["name"] for user in HUB_USERS]


async def test_the_users_are_the_hubs_page_after_page(api: str, hub: FakeHubAPI) -> None:
    # the hub's pages hold three users: five take two of them, asked where the last ended
    response = await call(api, "GET", "/user?limit=5", "alice-token")
    assert response.status_code == 200, response.text
    assert response.json() == {"results": NAMES[:5], "total": len(NAMES)}
    assert hub.pages == [(0, 5), (3, 2)]
    # o2r's default page (100) holds every user; start counts from 0
    hub.pages.clear()
    assert (await call(api, "GET", "/user", "alice-token")).json()["results"] == NAMES
    assert hub.pages == [(0, 100), (3, 97), (6, 94)]
    assert (await call(api, "GET", "/user?start=4", "alice-token")).json()["results"] == NAMES[4:]
    # past the end: o2r's "no users found", an empty list
    beyond = (await call(api, "GET", "/user?start=50", "alice-token")).json()
    assert beyond == {"results": [], "total": len(NAMES)}


async def test_a_hub_with_tiny_pages_is_asked_a_bounded_number_of_times(
    api: str, hub: FakeHubAPI
) -> None:
    hub.max_limit = 1
    hub.users = [hub_user(f"user{index:03d}") for index in range(3 * MAX_HUB_PAGES)]
    response = await call(api, "GET", "/user?limit=1000", "alice-token")
    assert response.status_code == 200, response.text
    body = response.json()
    # a shorter page than asked for, never a request without end; total says there is more
    assert body["results"] == [f"user{index:03d}" for index in range(MAX_HUB_PAGES)]
    assert body["total"] == 3 * MAX_HUB_PAGES
    assert len(hub.pages) == MAX_HUB_PAGES


async def test_bad_paging_and_arguments_are_400s_naming_them(api: str) -> None:
    for query, word in (
        ("start=-1", "start"),
        ("start=start", "start"),
        ("limit=0", "limit"),
        ("limit=limit", "limit"),
        ("limit=1001", "limit"),
        ("level=100", "unknown query argument: level"),
    ):
        assert_json_error(await call(api, "GET", f"/user?{query}", "alice-token"), 400, word)


async def test_listing_users_needs_identity(api: str, hub: FakeHubAPI) -> None:
    assert_json_error(await call(api, "GET", "/user"), 401, "authentication required")
    assert_json_error(await call(api, "GET", "/user", "outsider-token"), 403)
    assert hub.pages == []


async def test_a_hub_that_cannot_answer_is_a_502(
    api: str, hub: FakeHubAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.broken = True
    assert_json_error(await call(api, "GET", "/user", "alice-token"), 502, "without JSON")
    assert_json_error(await call(api, "GET", "/user/bob", "alice-token"), 502)
    hub.broken = False
    monkeypatch.setattr(BaseHandler.hub_auth_class, "api_url", "http://127.0.0.1:9/hub/api")
    assert_json_error(await call(api, "GET", "/user", "alice-token"), 502, "cannot be reached")


async def test_a_hub_answering_a_bare_list_is_paged_too(api: str, hub: FakeHubAPI) -> None:
    """A hub that ignores the pagination media type answers lists: a full page means more."""
    hub.paginates = False
    response = await call(api, "GET", "/user?limit=5", "alice-token")
    assert response.json() == {"results": NAMES[:5]}
    assert hub.pages == [(0, 5), (3, 2)]


async def test_a_user_as_others_and_as_erc_administrators_see_one(api: str) -> None:
    # the caller's own level, from its scopes
    assert (await call(api, "GET", "/user/alice", "alice-token")).json() == {
        "id": "alice",
        "name": "alice",
        "level": LEVEL_USER,
    }
    # another user: name only
    assert (await call(api, "GET", "/user/carol", "alice-token")).json() == {
        "id": "carol",
        "name": "carol",
    }
    assert_json_error(await call(api, "GET", "/user/nobody", "alice-token"), 404, "nobody")
    # an erc administrator (o2r's admin) sees everyone's level and last activity
    seen = {}
    for name in ("alice", "carol", "dave", "erin"):
        body = (await call(api, "GET", f"/user/{name}", "admin-token")).json()
        assert body["lastseen"] == "2025-01-02T03:04:05.000000Z"
        seen[name] = body["level"]
    assert seen == {"alice": LEVEL_USER, "carol": LEVEL_ADMIN, "dave": LEVEL_ADMIN, "erin": 0}
    own = (await call(api, "GET", "/user/admin", "admin-token")).json()
    assert own["level"] == LEVEL_ADMIN and "lastseen" in own


def test_o2r_levels_map_onto_the_hubs_roles_and_groups() -> None:
    assert level_of_model({"roles": ["user", "erc-admin"], "groups": []}) == LEVEL_ADMIN
    assert level_of_model({"roles": [], "groups": ["erc-admin"]}) == LEVEL_ADMIN
    assert level_of_model({"roles": ["user", "admin"]}) == LEVEL_USER
    assert level_of_model({"roles": ["admin"]}) == LEVEL_NEW
    assert level_of_model({}) == LEVEL_NEW
    assert level_of_model({"roles": "erc-admin", "groups": None}) == LEVEL_NEW
