"""From an author's compendium to a reviewer's re-execution through Zenodo (hub + docker tiers,
against the local Zenodo test server): the author publishes and ships, publishing the shipment
writes the DOI into the metadata; on a hub that does not hold the compendium, the reviewer's
launch link with that DOI loads the Zenodo record through the loader, the session starts, and a
job re-executes the loaded compendium to ``success``."""

from __future__ import annotations

from typing import Any

import pytest

from erchub.sessions import server_name_for
from tests.hub.conftest import Hub
from tests.hub.test_e2e import follow
from tests.hub.test_launch import launch, progress_events, stop
from tests.hub.test_shipments import publish_shipment, published, ship

pytestmark = [pytest.mark.hub, pytest.mark.docker]


def test_publish_ship_and_reexecute_from_the_doi(
    erc_hub: Hub, docker_client: Any, fake_zenodo: Any
) -> None:
    author = erc_hub.token("e2e-author")
    original = published(erc_hub, author)
    shipment = ship(erc_hub, author, original, zenodo_token=fake_zenodo.token)
    assert shipment.status_code == 201, shipment.text
    done = publish_shipment(erc_hub, author, shipment.json()["id"], zenodo_token=fake_zenodo.token)
    assert done.status_code == 200, done.text
    doi = done.json()["doi"]
    identifier = erc_hub.request("GET", f"/compendium/{original}", author).json()["metadata"]
    assert identifier["o2r"]["identifier"]["doi"] == doi

    # a hub without the compendium (an administrator removes it here): the DOI is unknown
    removed = erc_hub.request("DELETE", f"/compendium/{original}", erc_hub.admin_token)
    assert removed.status_code == 204, removed.text
    reviewer_name = "e2e-reviewer"
    reviewer = erc_hub.token(reviewer_name)
    assert erc_hub.request("GET", "/compendium", reviewer, params={"doi": doi}).json()["total"] == 0

    # the reviewer's launch link loads the Zenodo record and starts the session
    handles = len([r for r in fake_zenodo.requests if r[2] == f"/api/handles/{doi}"])
    response = launch(erc_hub, reviewer, f"doi/{doi}")
    assert response.status_code == 302, response.text
    assert len([r for r in fake_zenodo.requests if r[2] == f"/api/handles/{doi}"]) > handles
    found = erc_hub.request("GET", "/compendium", reviewer, params={"doi": doi}).json()
    assert found["total"] == 1, found
    loaded = found["results"][0]
    assert loaded != original
    o2r = erc_hub.request("GET", f"/compendium/{loaded}", reviewer).json()["metadata"]["o2r"]
    assert o2r["origin"]["doi"] == doi and o2r["title"] == "Sine waves, shipped"
    server = server_name_for(loaded)
    events = progress_events(erc_hub, reviewer, reviewer_name, server)
    assert events[-1].get("ready"), events[-5:]
    stop(erc_hub, reviewer, reviewer_name, server)

    # a job re-executes the loaded compendium and its check passes
    job = erc_hub.request("POST", "/job", reviewer, json={"compendium_id": loaded})
    assert job.status_code == 201, job.text
    final = follow(erc_hub, reviewer, job.json()["job_id"])[-1]
    assert final["event"] == "status" and final["data"]["status"] == "success", final
