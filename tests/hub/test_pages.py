"""The erc service's pages (login, check) and the hub's erchub templates, through a real hub."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.hub.conftest import Hub, example_zip

pytestmark = pytest.mark.hub

EXAMPLE_TITLE = "Sine waves under a changing frequency"
#: what a browser sends when it navigates, and when a script of a page calls fetch()
NAVIGATE = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate"}
FETCH = {"Accept": "application/json", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "same-origin"}
HANDOFF_COOKIE = "erchub-service-xsrf"


def page(
    hub: Hub, path: str, token: str | None = None, params: dict[str, str] | None = None
) -> httpx.Response:
    """A service page (``path`` relative to /services/erc/), not following redirects."""
    headers = dict(NAVIGATE)
    if token:
        headers["Authorization"] = f"token {token}"
    url = f"{hub.url}/services/erc/{path}"
    return httpx.get(url, headers=headers, params=params, timeout=30)


def assert_error_page(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    assert f'data-status="{status}"' in response.text


@pytest.fixture
def logged_in(erc_hub: Hub) -> Iterator[httpx.Client]:
    """A browser-like client logged in to the hub (not yet to the erc service) as pagecarol."""
    with httpx.Client(headers=NAVIGATE, follow_redirects=True, timeout=30) as client:
        login = client.get(f"{erc_hub.url}/hub/login")
        assert 'id="erchub-dummy-warning"' in login.text, "the dummy login is announced"
        done = client.post(
            f"{erc_hub.url}/hub/login?next=/hub/home",
            data={
                "username": "pagecarol",
                "password": "any",
                "_xsrf": client.cookies.get("_xsrf", path="/hub/"),
            },
        )
        assert done.url.path == "/hub/home", done.url
        yield client


def test_login_redirects_only_to_local_paths(erc_hub: Hub) -> None:
    token = erc_hub.token("pageann")
    for target in ("/hub/home", "/hub/home?erc_login=1", "/services/erc/check/x"):
        response = page(erc_hub, "login", token, params={"next": target})
        assert response.status_code == 302, response.text[:300]
        assert response.headers["location"] == target
    refused = [
        "//evil.example",
        "https://evil.example",
        "https://evil.example/hub/home",
        "/\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "hub/home",
        "",
        "/" + "a" * 3000,
        "/hub/home\u00e9",
    ]
    for target in refused:
        response = page(erc_hub, "login", token, params={"next": target})
        assert_error_page(response, 400)
        assert "location" not in response.headers
    assert_error_page(page(erc_hub, "login", token), 400)
    assert_error_page(page(erc_hub, "login", token, params={"next": "/", "x": "1"}), 400)


def test_login_without_identity_goes_through_the_hub(erc_hub: Hub) -> None:
    response = page(erc_hub, "login", params={"next": "/hub/home"})
    assert response.status_code == 302
    assert "/hub/api/oauth2/authorize" in response.headers["location"]


def test_check_page_shows_only_visible_compendia(erc_hub: Hub) -> None:
    ann, bob = erc_hub.token("pageann"), erc_hub.token("pagebob")
    candidate = erc_hub.create(bob, example_zip())
    assert_error_page(page(erc_hub, "check/no-such-compendium", ann), 404)
    assert_error_page(page(erc_hub, f"check/{candidate}", ann), 404)

    own = page(erc_hub, f"check/{candidate}", bob)
    assert own.status_code == 200, own.text[:500]
    assert EXAMPLE_TITLE in own.text
    assert 'id="erc-start-check"' in own.text

    # Published (the author saves its metadata), the compendium is visible to everyone.
    metadata = erc_hub.request("GET", f"/compendium/{candidate}/metadata", bob).json()
    o2r = metadata["metadata"]["o2r"]
    saved = erc_hub.request("PUT", f"/compendium/{candidate}/metadata", bob, json={"o2r": o2r})
    assert saved.status_code == 200, saved.text
    published = page(erc_hub, f"check/{candidate}", ann)
    assert published.status_code == 200, published.text[:500]
    assert EXAMPLE_TITLE in published.text and "(published)" in published.text

    assert_error_page(page(erc_hub, f"check/{candidate}", ann, params={"x": "1"}), 400)
    anonymous = page(erc_hub, f"check/{candidate}")
    assert anonymous.status_code == 302
    assert "/hub/api/oauth2/authorize" in anonymous.headers["location"]


def test_service_login_gives_hub_pages_the_api(erc_hub: Hub, logged_in: httpx.Client) -> None:
    """Scripts of hub pages call the API with the service's cookie and XSRF token, which the
    service's login page hands over; without them the API answers 401."""
    compendium_id = erc_hub.create(erc_hub.token("pagecarol"), example_zip())
    listing = f"{erc_hub.api_url}/compendium?user=pagecarol&candidate=true&summary=true"
    assert logged_in.get(listing, headers=FETCH).status_code == 401

    home = logged_in.get(
        f"{erc_hub.url}/services/erc/login", params={"next": "/hub/home?erc_login=1"}
    )
    assert str(home.url) == f"{erc_hub.url}/hub/home?erc_login=1"
    assert 'id="erc-compendia"' in home.text and 'id="erc-launches"' in home.text
    xsrf = logged_in.cookies.get(HANDOFF_COOKIE, path="/hub/")
    assert xsrf

    answer = logged_in.get(listing, headers={**FETCH, "X-XSRFToken": xsrf})
    assert answer.status_code == 200, answer.text
    assert answer.json()["summaries"][0]["id"] == compendium_id
    assert answer.json()["summaries"][0]["title"] == EXAMPLE_TITLE
    # The cookie alone is not enough for a script, nor a wrong token.
    assert logged_in.get(listing, headers=FETCH).status_code == 401
    assert logged_in.get(listing, headers={**FETCH, "X-XSRFToken": "x" + xsrf}).status_code == 401

    # The check page's token lets its script post (a job of an unknown compendium: a 404,
    # past authentication); without it the post is refused.
    check = logged_in.get(f"{erc_hub.url}/services/erc/check/{compendium_id}")
    assert check.status_code == 200
    found = re.search(r'const xsrf = "([^"]+)";', check.text)
    assert found, "the page gives its script the XSRF token"
    token = found.group(1)
    post = {"json": {"compendium_id": "no-such-compendium"}}
    job = logged_in.post(f"{erc_hub.api_url}/job", headers={**FETCH, "X-XSRFToken": token}, **post)
    assert job.status_code == 404, job.text
    assert logged_in.post(f"{erc_hub.api_url}/job", headers=FETCH, **post).status_code == 401
