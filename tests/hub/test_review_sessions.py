"""Sessions through review links, in a real hub with Docker sessions: another user and a guest
launch a candidate through a blind link (a working copy that names nobody), a guest reaches
nothing but that compendium, and a link that is revoked or expires stops the sessions opened
through it within seconds and deletes its guests."""

from __future__ import annotations

import datetime
import json
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from erchub.reviewers import is_guest_of
from erchub.sessions import server_name_for
from erchub.spawner.spawner import ERCSpawner
from tests.hub.conftest import Hub
from tests.hub.test_launch import progress_events, removed, server_model
from tests.hub.test_review_links import (
    AFFILIATION,
    ORCID,
    candidate_of,
    create_link,
    start_check,
    zip_text,
)

pytestmark = [pytest.mark.hub, pytest.mark.docker]

#: seconds within which an ended link's sessions must be stopped (the hub tier looks every
#: second, ERCHUB_REVIEW_SWEEP_INTERVAL)
STOPPED_WITHIN = 30
METADATA = ".erc/metadata_o2r_1.json"
WORKING_COPY = ERCSpawner.working_copy_dir.default_value


def eventually(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(0.5)


def launch_through(hub: Hub, client: httpx.Client, compendium_id: str, link: object) -> None:
    """Launch the compendium through the link (``client`` carries the caller's identity)."""
    response = client.get(
        f"{hub.url}/services/erc/launch/{compendium_id}", params={"link": str(link)}
    )
    assert response.status_code == 302, response.text[:500]
    assert "/hub/spawn-pending/" in response.headers["location"]


def user_token(hub: Hub, user: str) -> str:
    """A new API token of ``user`` (a guest too) with the user's scopes."""
    made = hub.hub_api("POST", f"/users/{user}/tokens", json={"note": "test"})
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


def ready(hub: Hub, user: str, server: str) -> dict[str, Any]:
    """The server's model once its start ended (ready, else the test fails with its events)."""
    token = user_token(hub, user)
    events = progress_events(hub, token, user, server)
    assert events and events[-1].get("ready"), events[-3:]
    model = server_model(hub, token, user, server)
    assert model is not None
    return model


def user_client(hub: Hub, token: str) -> httpx.Client:
    headers = {"Authorization": f"token {token}", "Accept": "text/html"}
    return httpx.Client(headers=headers, timeout=60)


def guest_through(hub: Hub, link: object) -> tuple[httpx.Client, str]:
    """A browser-like client that opens the link without an account and continues as a guest:
    the client (with the guest's cookies) and the guest's name."""
    client = httpx.Client(timeout=60, follow_redirects=True, headers={"Accept": "text/html"})
    entry = client.get(f"{hub.url}/services/erc/link/{link}")
    assert entry.status_code == 200 and "/hub/review/" in str(entry.url), entry.text[:300]
    assert "Continue as a guest" in entry.text
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', entry.text)
    assert xsrf
    landing = client.post(str(entry.url), data={"_xsrf": xsrf.group(1)})
    assert landing.status_code == 200, landing.text[:500]
    assert "/services/erc/compendium/" in str(landing.url)
    listed = hub.hub_api("GET", "/users?name_filter=guest-").json()
    guests = [user["name"] for user in listed if is_guest_of(user["name"], str(link))]
    assert len(guests) == 1, guests
    client.follow_redirects = False
    return client, guests[0]


def escaped(name: str) -> str:
    """A name as DockerSpawner writes it into a container's name (escapism, ``-`` is
    escaped too)."""
    return name.replace("-", "-2d")


def session_container(engine: Any, user: str) -> Any:
    prefix = f"jupyter-{escaped(user)}--"
    (container,) = [c for c in engine.containers.list() if c.name.startswith(prefix)]
    return container


def working_copy_text(engine: Any, user: str, path: str) -> str:
    """A file of the user's (one) running session's working copy (hidden files too, which
    JupyterLab's contents API does not serve)."""
    container = session_container(engine, user)
    code, output = container.exec_run(["cat", f"{WORKING_COPY}/{path}"])
    assert code == 0, output
    return str(output.decode())


def test_a_blind_link_launches_for_a_reviewer_and_a_guest_and_ends_with_its_revocation(
    erc_hub: Hub, docker_client: Any, tmp_path: Path
) -> None:
    author_token = erc_hub.token("sessionauthor")
    author_name = f"Ada Sessionwriter{secrets.token_hex(2)}"
    compendium_id = candidate_of(erc_hub, author_token, tmp_path, author_name)
    link = create_link(erc_hub, author_token, compendium_id, mode="blind")["id"]
    server = server_name_for(compendium_id)

    # another user, logged in
    reviewer = "sessionreviewer"
    with user_client(erc_hub, erc_hub.token(reviewer)) as client:
        launch_through(erc_hub, client, compendium_id, link)
    model = ready(erc_hub, reviewer, server)
    assert model["user_options"] == {"compendium": compendium_id, "link": link}
    metadata = working_copy_text(docker_client, reviewer, METADATA)
    for name in (author_name, ORCID, AFFILIATION, "sessionauthor"):
        assert name not in metadata
    assert json.loads(metadata)["title"].startswith("Review")
    env = session_container(docker_client, reviewer).attrs["Config"]["Env"]
    assert f"ERCHUB_REVIEW_LINK={link}" in env

    # a guest, without an account
    guest_client, guest = guest_through(erc_hub, link)
    try:
        landing = f"{erc_hub.url}/services/erc/compendium/{compendium_id}"
        assert author_name not in guest_client.get(landing, params={"link": link}).text
        launch_through(erc_hub, guest_client, compendium_id, link)
        ready(erc_hub, guest, server)
        assert author_name not in working_copy_text(docker_client, guest, METADATA)
        # the guest has no workspace, and opens nothing but the link's compendium
        refused = erc_hub.hub_api("POST", f"/users/{guest}/server")
        assert refused.status_code == 400 and "only the compendium" in refused.text
        other = erc_hub.hub_api(
            "POST", f"/users/{guest}/servers/other", json={"compendium": compendium_id}
        )
        assert other.status_code == 400 and "only the compendium" in other.text
        catalogue = guest_client.get(f"{erc_hub.url}/services/erc/api/v1/compendium")
        assert catalogue.status_code == 403
        # the guest downloads the candidate (blinded) and checks it, through the link
        guest_token = user_token(erc_hub, guest)
        zipped = f"/compendium/{compendium_id}.zip?link={link}"
        archive = erc_hub.request("GET", zipped, guest_token)
        assert archive.status_code == 200 and author_name not in zip_text(archive.content)
        start_check(erc_hub, guest_token, compendium_id, link)
        assert erc_hub.request("GET", "/job", guest_token).status_code == 403

        # the author revokes the link: both sessions stop, the guest is gone
        revoked = erc_hub.request(
            "DELETE", f"/compendium/{compendium_id}/link?link={link}", author_token
        )
        assert revoked.status_code == 204
        eventually(
            lambda: server_model(erc_hub, erc_hub.manager_token, reviewer, server) is None,
            STOPPED_WITHIN,
            "the reviewer's session stopping",
        )
        eventually(
            lambda: erc_hub.hub_api("GET", f"/users/{guest}").status_code == 404,
            STOPPED_WITHIN,
            "the guest's deletion",
        )
        assert removed(docker_client, reviewer, server)
        assert removed(docker_client, escaped(guest), server)
        # the guest's cookie opens nothing any more, and the link is the 404 page
        gone = guest_client.get(f"{erc_hub.url}/hub/review/{link}")
        assert gone.status_code == 404
    finally:
        guest_client.close()
    with user_client(erc_hub, erc_hub.token(reviewer)) as client:
        again = client.get(
            f"{erc_hub.url}/services/erc/launch/{compendium_id}", params={"link": link}
        )
        assert again.status_code == 404


def test_an_expired_link_stops_its_sessions(
    erc_hub: Hub, docker_client: Any, tmp_path: Path
) -> None:
    author_token = erc_hub.token("expiryauthor")
    compendium_id = candidate_of(erc_hub, author_token, tmp_path, "Eve Expiring")
    lifetime = 40  # seconds: enough to start a session whose image exists
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=lifetime)
    link = create_link(
        erc_hub, author_token, compendium_id, expires=expires.isoformat(timespec="seconds")
    )["id"]
    reviewer, server = "expiryreviewer", server_name_for(compendium_id)
    with user_client(erc_hub, erc_hub.token(reviewer)) as client:
        launch_through(erc_hub, client, compendium_id, link)
    ready(erc_hub, reviewer, server)
    assert datetime.datetime.now(datetime.timezone.utc) < expires, "started too late to test"
    eventually(
        lambda: server_model(erc_hub, erc_hub.manager_token, reviewer, server) is None,
        lifetime + STOPPED_WITHIN,
        "the session stopping at the link's expiry",
    )
    assert removed(docker_client, reviewer, server)
    assert erc_hub.request("GET", f"/link/{link}").status_code == 404
