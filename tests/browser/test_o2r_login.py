"""o2r's login link in Chromium: ``/api/v1/auth/login`` goes through the hub's login and ends
on the catalogue, logged in; ``/auth/whoami`` then names the user with o2r's level."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.hub.conftest import Hub

pytestmark = [pytest.mark.browser, pytest.mark.hub]


def test_o2rs_login_link_logs_in_through_the_hub(
    page: Page, erc_hub: Hub, screenshot: Callable[..., Path]
) -> None:
    api = f"{erc_hub.url}/services/erc/api/v1"
    page.goto(f"{api}/auth/login")
    # not logged in yet: the hub's login form, whichever way the redirects went
    page.wait_for_url(lambda url: "/hub/login" in url)
    screenshot(page, "hub-login")
    page.fill("#username_input", "o2rwebui")
    page.fill("#password_input", "any password")
    page.click("#login_submit")
    page.wait_for_url(f"{erc_hub.url}/services/erc/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Executable Research Compendia")
    expect(page.locator("body")).to_contain_text("o2rwebui")
    screenshot(page, "catalogue")

    page.goto(f"{api}/auth/whoami")
    assert json.loads(page.locator("body").inner_text()) == {
        "name": "o2rwebui",
        "orcid": None,
        "level": 100,
    }
