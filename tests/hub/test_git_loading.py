"""Git repositories through the real hub and erc service: ``POST /compendium`` with
``{"git_url", "ref"}`` and the launch links ``launch/git?url=&ref=`` and
``launch/PREFIX/ORG/REPO/REF``, against a real git smart-HTTP server on 127.0.0.1 (the test
hub allows 127.0.0.1 to its loader). Statuses and JSON errors as the API promises: 201 a new
compendium, 200 the same commit reused, 404 an unknown ref, 403 a host not allowed (never
contacted), 400 bad input; launches that load show the loader's reason on the error page.
The erc_hub fixture checks that nothing ended in a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import nbformat
import pytest

from tests.hub.conftest import Hub
from tests.integration.git_server import GitServer, Repository

pytestmark = pytest.mark.hub

USER = "git-loader"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with GitServer(tmp_path_factory.mktemp("git-served")) as git_server:
        yield git_server


@pytest.fixture(scope="module")
def token(erc_hub: Hub) -> str:
    return erc_hub.token(USER)


def load(hub: Hub, token: str, body: Any) -> httpx.Response:
    return hub.request("POST", "/compendium", token, json=body, timeout=60)


def refused(hub: Hub, token: str, body: Any, status: int, words: str) -> None:
    response = load(hub, token, body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["status"] == status and words in answer["message"], answer


def launch(hub: Hub, token: str, path: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{hub.url}/services/erc/launch/{path}",
        params=params,
        headers={"Authorization": f"token {token}", "Accept": "text/html"},
        timeout=60,
    )


def test_a_commit_loads_once_and_a_new_one_is_a_new_version(
    erc_hub: Hub, token: str, server: GitServer
) -> None:
    repository = Repository(server, "hub/paper")
    first_commit = repository.commit_example()
    created = load(erc_hub, token, {"git_url": repository.url, "ref": "main"})
    assert created.status_code == 201, created.text
    compendium_id = created.json()["id"]
    assert created.headers["Location"].endswith(f"/compendium/{compendium_id}")
    compendium = erc_hub.request("GET", f"/compendium/{compendium_id}", token).json()
    assert compendium["candidate"] is True and compendium["user"] == USER
    origin = compendium["metadata"]["o2r"]["origin"]
    assert (origin["kind"], origin["ref"], origin["commit"]) == ("git_url", "main", first_commit)

    # the same commit, named by its SHA and the URL with .git: reused, 200
    again = load(erc_hub, token, {"git_url": repository.url + ".git", "ref": first_commit})
    assert again.status_code == 200, again.text
    assert again.json() == {"id": compendium_id}

    second_commit = repository.commit({"README.md": "# changed\n"})
    newer = load(erc_hub, token, {"git_url": repository.url})
    assert newer.status_code == 201, newer.text
    version = erc_hub.request("GET", f"/compendium/{newer.json()['id']}", token).json()
    assert version["metadata"]["o2r"]["origin"]["commit"] == second_commit
    assert version["is_new_version_of"] == compendium_id


def test_bad_git_loads_are_json_errors(erc_hub: Hub, token: str, server: GitServer) -> None:
    repository = Repository(server, "hub/errors")
    repository.commit_example()
    refused(erc_hub, token, {"git_url": repository.url, "ref": "nope"}, 404,
            "'nope' is no branch or tag")  # fmt: skip
    refused(erc_hub, token, {"git_url": repository.url, "ref": "a..b"}, 400, "ref:")
    refused(erc_hub, token, {"share_url": repository.url, "ref": "main"}, 400,
            "ref: only with git_url")  # fmt: skip
    refused(erc_hub, token, {"git_url": "http://example.org/a/b"}, 400, "https")
    # not allowed: refused before any request leaves the service
    refused(erc_hub, token, {"git_url": "https://git.example.org/a/b"}, 403,
            "host is not allowed: git.example.org")  # fmt: skip


def test_launch_links_say_why_a_repository_cannot_be_launched(
    erc_hub: Hub, token: str, server: GitServer
) -> None:
    repository = Repository(server, "hub/launch-errors")
    repository.commit_example()
    missing_ref = launch(erc_hub, token, "git", url=repository.url, ref="nope")
    assert missing_ref.status_code == 404
    assert "cannot be launched" in missing_ref.text and "no branch or tag" in missing_ref.text
    assert launch(erc_hub, token, "git").status_code == 400
    requests_before = len(server.requests)
    not_allowed = launch(erc_hub, token, "git", url="https://git.example.org/a/b")
    assert not_allowed.status_code == 403
    assert "host is not allowed" in not_allowed.text
    assert len(server.requests) == requests_before
    unknown_prefix = launch(erc_hub, token, "bb/org/repo/main")
    assert unknown_prefix.status_code == 404
    assert "no git host has the short form" in unknown_prefix.text
    # the test hubs' service has no short forms at all (tests/conftest.py), GitHub's neither:
    # nothing here reaches for github.com (a bad name in a short form: tests/unit)
    assert launch(erc_hub, token, "gh/org/repo/main").status_code == 404


@pytest.mark.docker
def test_launching_a_repository_loads_it_once_as_a_public_compendium(
    erc_hub: Hub, server: GitServer, docker_client: Any
) -> None:
    from erchub.sessions import server_name_for
    from tests.hub.test_launch import progress_events, stop

    repository = Repository(server, "hub/launched")
    # a small workspace: its image builds on cached layers
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# Launched from git"),
               nbformat.v4.new_code_cell("print(6 * 7)")]
    )  # fmt: skip
    commit = repository.commit(
        {"main.ipynb": nbformat.writes(notebook), "requirements.txt": "pip>=20\n"}
    )
    user = "git-launcher"
    token = erc_hub.token(user)
    response = launch(erc_hub, token, "git", url=repository.url, ref="main")
    assert response.status_code == 302, response.text
    server_name = response.headers["location"].rsplit("/", 1)[-1]
    compendium_id = next(
        found
        for found in erc_hub.request("GET", "/compendium", token).json()["results"]
        if server_name_for(found) == server_name
    )
    compendium = erc_hub.request("GET", f"/compendium/{compendium_id}", token).json()
    assert compendium["candidate"] is False and compendium["user"] == user
    assert compendium["metadata"]["o2r"]["origin"]["commit"] == commit
    events = progress_events(erc_hub, token, user, server_name)
    assert events[-1].get("ready"), events[-5:]
    stop(erc_hub, token, user, server_name)

    # another reviewer, the SHA: the same compendium, nothing fetched
    reviewer = erc_hub.token("git-reviewer")
    again = launch(erc_hub, reviewer, "git", url=repository.url, ref=commit)
    assert again.status_code == 302, again.text
    assert again.headers["location"] == f"/hub/spawn-pending/git-reviewer/{server_name}"
    progress_events(erc_hub, reviewer, "git-reviewer", server_name)
    stop(erc_hub, reviewer, "git-reviewer", server_name)
