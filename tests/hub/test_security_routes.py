"""The security walk with a real hub's identities (README "Security and reliability"): every
operation of the OpenAPI document the running service serves, with the hub's own tokens and
cookies.

tests/unit/test_security_rules.py holds the rules and walks them in process with made-up
identities; here the identities are the hub's: tokens the hub issued with fewer scopes than
their users hold, a user without access to the service, an erc administrator's token that
holds ``custom:erc:admin`` alone, and a browser logged in through the hub's OAuth, whose
cookie must not act without the XSRF token (JupyterHub then ignores the cookie: 401), however
the request comes (a script of the site, a form of another site).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.hub.conftest import ADMIN, Hub
from tests.unit.test_security_rules import (
    ERC_SCOPES,
    HUB_SCOPES,
    JSON,
    NOWHERE,
    SERVICE,
    Findings,
    Operation,
    Probe,
    World,
    another_user,
    lacking,
    not_allowed,
    operations,
    passed,
    probe_archive,
    probes,
    refused,
    without_identity,
)

pytestmark = pytest.mark.hub

OWNER, OTHER, CAROL = "secwalkowner", "secwalkother", "secwalkcarol"
ACCESS = "access:services!service=erc"
#: what a browser's script sends with fetch(), and a form of another site
SCRIPT = {"Accept": "application/json", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "same-origin"}
FOREIGN_FORM = {
    "Accept": "text/html",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Site": "cross-site",
    "Origin": "https://evil.example",
}


def scoped_token(hub: Hub, user: str, scopes: list[str]) -> str:
    """A new API token of ``user`` (made if need be) that holds only ``scopes``."""
    hub.token(user)
    response = hub.hub_api(
        "POST", f"/users/{user}/tokens", json={"note": "security walk", "scopes": scopes}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


@dataclass
class Callers:
    """The hub's tokens the walk uses."""

    hub: Hub
    owner: str
    #: CAROL, logged in to the hub, without access to the service
    outsider: str
    #: CAROL with every scope of the user role but one
    without: dict[str, str]
    #: ADMIN's token holding custom:erc:admin alone
    admin: str
    exact: dict[tuple[str, ...], str] = field(default_factory=dict)

    def exactly(self, scopes: tuple[str, ...]) -> str:
        """OTHER's token holding ``scopes`` (and access to the service), no more; ADMIN's for
        a scope of the hub's own (read:metrics), which only the hub's admin role holds."""
        if scopes not in self.exact:
            user = ADMIN if set(scopes) & set(HUB_SCOPES) else OTHER
            self.exact[scopes] = scoped_token(self.hub, user, [ACCESS, *scopes])
        return self.exact[scopes]


def send(
    hub: Hub,
    probe: Probe,
    token: str | None = None,
    client: httpx.Client | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = {**(headers or JSON)}
    if token:
        sent["Authorization"] = f"token {token}"
    url = (hub.url if probe.path.startswith(SERVICE) else hub.api_url) + probe.path
    request = client.request if client is not None else httpx.request
    return request(
        probe.op.method, url, params=probe.params, headers=sent, timeout=60, **probe.send
    )


@pytest.fixture(scope="module")
def walk(erc_hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> tuple[World, Callers, bytes]:
    """OWNER's resources (two candidates, a published compendium, a job of the first
    candidate, ended, a shipment, a review link) and the callers."""
    tmp_path = tmp_path_factory.mktemp("walk")
    owner = erc_hub.token(OWNER)
    candidate = erc_hub.create(owner, probe_archive(tmp_path))
    overlay = erc_hub.create(owner, probe_archive(tmp_path))
    public = erc_hub.create(owner, probe_archive(tmp_path))
    path = f"/compendium/{public}/metadata"
    o2r = erc_hub.request("GET", path, owner).json()["metadata"]["o2r"]
    saved = erc_hub.request("PUT", path, owner, json={"o2r": o2r})
    assert saved.status_code == 200 and not saved.json()["candidate"], saved.text
    link = erc_hub.request("PUT", f"/compendium/{candidate}/link", owner, json={"mode": "open"})
    assert link.status_code == 200, link.text
    # a job, canceled at once (a worker that took it meanwhile stops it)
    queued = erc_hub.request("POST", "/job", owner, json={"compendium_id": candidate})
    assert queued.status_code == 201, queued.text
    job = queued.json()["job_id"]
    canceled = erc_hub.request("POST", f"/job/{job}/cancel", owner)
    assert canceled.status_code == 202, canceled.text
    erc_hub.wait_for_job(owner, job, seconds=120)
    download = {"compendium_id": public, "recipient": "download"}
    shipped = erc_hub.request("POST", "/shipment", owner, json=download)
    assert shipped.status_code == 200, shipped.text
    shipments = erc_hub.request("GET", "/shipment", owner, params={"compendium_id": public})
    world = World(
        OWNER, candidate, overlay, public, job, shipments.json()[0], str(link.json()["id"])
    )
    callers = Callers(
        hub=erc_hub,
        owner=owner,
        outsider=scoped_token(erc_hub, CAROL, [f"read:users:name!user={CAROL}"]),
        without={
            scope: scoped_token(erc_hub, CAROL, [ACCESS, *(s for s in ERC_SCOPES if s != scope)])
            for scope in (*ERC_SCOPES, *HUB_SCOPES)
        },
        admin=scoped_token(erc_hub, ADMIN, [ACCESS, "custom:erc:admin"]),
    )
    return world, callers, probe_archive(tmp_path)


def state_of(hub: Hub, token: str, world: World) -> dict[str, Any]:
    """What the owner sees of their resources."""
    seen = {}
    for path in (
        f"/compendium/{world.candidate}",
        f"/compendium/{world.overlay}",
        f"/compendium/{world.published}",
        f"/compendium?user={world.owner}&candidate=true",
        f"/job/{world.job}",
        f"/shipment?user={world.owner}",
        f"/shipment/{world.shipment}",
        "/link",
        "/recipient",
    ):
        response = hub.request("GET", path, token)
        seen[path] = (response.status_code, response.json())
    return seen


@pytest.fixture(scope="module")
def document(erc_hub: Hub) -> list[Operation]:
    response = httpx.get(f"{erc_hub.api_url}/openapi.json", timeout=30)
    assert response.status_code == 200
    return operations(response.json())


def test_every_operation_refuses_whoever_it_must(
    erc_hub: Hub, walk: tuple[World, Callers, bytes], document: list[Operation]
) -> None:
    """No identity: 401; a hub user without access to the service: 403; a token the hub
    issued without one of the declared scopes: 403 naming it; another user's token with
    exactly the declared scopes: past them, and 404 for the owner's candidate, job and
    shipment; an erc administrator's token with custom:erc:admin alone: past them. Nothing
    of the owner's changes."""
    world, callers, archive = walk
    before = state_of(erc_hub, callers.owner, world)
    findings = Findings()
    for op in document:
        own = probes(op, world, archive)
        first = own[0]
        findings.add("no identity", first, without_identity(first, send(erc_hub, first)))
        outside = send(erc_hub, first, callers.outsider)
        findings.add("no access to the service", first, not_allowed(first, outside))
        for scope in op.scopes or ():
            response = send(erc_hub, first, callers.without[scope])
            findings.add(f"a token without {scope}", first, lacking(first, scope, response))
        for probe in own:
            response = send(erc_hub, probe, callers.exactly(op.scopes or ()))
            findings.add("another user", probe, another_user(probe, world, response))
        for probe in probes(op, NOWHERE, archive):
            response = send(erc_hub, probe, callers.admin)
            findings.add("erc admin", probe, passed(probe, response))
    findings.assert_none()
    assert state_of(erc_hub, callers.owner, world) == before
    assert findings.requests > 5 * len(document)


@pytest.fixture
def owners_browser(erc_hub: Hub) -> Iterator[httpx.Client]:
    """A browser logged in to the hub and, through its OAuth, to the service as OWNER."""
    with httpx.Client(follow_redirects=True, timeout=60) as client:
        client.get(f"{erc_hub.url}/hub/login")
        done = client.post(
            f"{erc_hub.url}/hub/login?next=/hub/home",
            data={
                "username": OWNER,
                "password": "any",
                "_xsrf": client.cookies.get("_xsrf", path="/hub/"),
            },
        )
        assert done.url.path == "/hub/home", done.url
        here = client.get(
            f"{erc_hub.url}/services/erc/login",
            params={"next": "/services/erc/"},
            headers={"Accept": "text/html", "Sec-Fetch-Mode": "navigate"},
        )
        assert str(here.url) == f"{erc_hub.url}/services/erc/", here.url
        client.follow_redirects = False
        yield client


def test_a_browsers_cookie_changes_nothing_without_the_xsrf_token(
    erc_hub: Hub,
    walk: tuple[World, Callers, bytes],
    document: list[Operation],
    owners_browser: httpx.Client,
) -> None:
    """Every operation but GET, sent by the owner's own browser with its cookie to the owner's
    own resources, by a script of the site without ``X-XSRFToken`` or by a form of another
    site: the cookie is not taken (401) and nothing changes. With the token the cookie acts
    (the same operations on nothing: past authentication)."""
    world, callers, archive = walk
    before = state_of(erc_hub, callers.owner, world)
    xsrf = owners_browser.cookies.get("_xsrf", path="/services/erc/") or owners_browser.cookies.get(
        "erchub-service-xsrf", path="/hub/"
    )
    assert xsrf, "the service's login set its XSRF cookie"
    # the cookie is the owner's identity: a plain read sees the owner's candidate
    seen = owners_browser.get(f"{erc_hub.api_url}/compendium/{world.candidate}", headers=JSON)
    assert seen.status_code == 200, seen.text

    findings = Findings()
    unsafe = [op for op in document if op.method != "GET" and not op.public]
    assert len(unsafe) >= 15
    for op in unsafe:
        probe = probes(op, world, archive)[0]
        for caller, headers in (("script", SCRIPT), ("another site's form", FOREIGN_FORM)):
            response = send(erc_hub, probe, client=owners_browser, headers=headers)
            findings.add(f"cookie, {caller}", probe, refused(response, 401))
        nothing = probes(op, NOWHERE, archive)[0]
        response = send(
            erc_hub, nothing, client=owners_browser, headers={**SCRIPT, "X-XSRFToken": xsrf}
        )
        findings.add("cookie and its XSRF token", nothing, passed(nothing, response))
    findings.assert_none()
    assert state_of(erc_hub, callers.owner, world) == before


def test_metrics_beside_the_hubs_own(erc_hub: Hub, document: list[Operation]) -> None:
    """``GET /services/erc/metrics`` through the proxy, guarded as the hub's ``/hub/metrics``:
    one token with the hub's ``read:metrics`` (and access to the service) scrapes both; a
    user's token without it gets 403, no identity 401."""
    (op,) = [op for op in document if op.operation_id == "getMetrics"]
    url = erc_hub.url + op.path
    scraper = {"Authorization": f"token {scoped_token(erc_hub, ADMIN, [ACCESS, 'read:metrics'])}"}
    hubs = httpx.get(f"{erc_hub.url}/hub/metrics", headers=scraper, timeout=30)
    assert hubs.status_code == 200 and "jupyterhub_" in hubs.text
    ours = httpx.get(url, headers=scraper, timeout=30)
    assert ours.status_code == 200, ours.text
    assert ours.headers["content-type"].startswith("text/plain")
    assert 'erchub_jobs{status="queued"}' in ours.text
    assert "erchub_job_step_duration_seconds_bucket" in ours.text
    assert refused(httpx.get(url, headers=JSON, timeout=30), 401) is None
    user = {**JSON, "Authorization": f"token {erc_hub.token(OTHER)}"}
    assert refused(httpx.get(url, headers=user, timeout=30), 403, "read:metrics") is None
