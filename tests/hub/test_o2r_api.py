"""erchub against o2r's own API document: the operations both share, as o2r documents them.

Schemathesis generates requests from o2r's OpenAPI document (``tests/data/o2r``, vendored) for
each GET operation erchub shares with o2r, and for the deletion of a deposition's file, with
real ids (a published compendium, a job, a download shipment, a Zenodo shipment to the fake
Zenodo and its deposition's file) in the path, sends them through the hub's proxy with a
user's token, and checks the answers against o2r's document: status code, content type and
response schema. A fixed number of examples per operation, derandomized, so a failure
replays. Every deliberate difference is listed in :data:`DIFFERENCES` with its reason
(README's "o2r's API" says the same); any other failure fails the test. The operations
schemathesis cannot reach as o2r's document has them (``POST /shipment``, which the document
places below a shipment's id; its forms) are replayed as o2r's clients send them.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import zenodo_environment
from tests.hub.conftest import REPO, Hub, example_zip, require_hub, start_hub, stop_hub
from tests.hub.test_launch import publish

pytestmark = pytest.mark.hub

O2R_DOCUMENT = REPO / "tests" / "data" / "o2r" / "o2r-openapi.yml"
#: generated requests per operation
EXAMPLES = 25
CHECKS: dict[str, Callable[..., Any]] = {
    "status code": status_code_conformance,
    "content type": content_type_conformance,
    "response schema": response_schema_conformance,
}

#: the lines of a schemathesis failure that say what is wrong
WHAT_IS_WRONG = ("- ST", "Received", "Documented", "Schema at", "null is", "'", '"', "[")
#: o2r's operations that erchub offers (o2r's paths, relative to the API prefix, and methods)
SHARED = (
    ("/compendium", "GET"),
    ("/compendium/{compendium_id}", "GET"),
    ("/compendium/{compendium_id}.{file_extension}", "GET"),
    ("/compendium/{compendium_id}/jobs", "GET"),
    ("/compendium/{compendium_id}/metadata", "GET"),
    ("/job", "GET"),
    ("/job/{job_id}", "GET"),
    ("/recipient", "GET"),
    ("/shipment", "GET"),
    ("/shipment/{shipment_id}", "GET"),
    ("/shipment/{shipment_id}/status", "GET"),
    ("/shipment/{shipment_id}/publishment", "GET"),
    ("/shipment/{shipment_id}/files/{file_id}", "DELETE"),
    ("/user", "GET"),
    ("/user/{user_id}", "GET"),
    ("/auth/login", "GET"),
    ("/auth/whoami", "GET"),
    ("/api", "GET"),
    ("/api/v1", "GET"),
    ("/search", "GET"),
)
#: operations whose ids are not the ones of the same name elsewhere: the deposition's files
#: are those of the Zenodo shipment (the download shipment has none)
PATH_IDS = {
    "/shipment/{shipment_id}/publishment": {"shipment_id": "zenodo_shipment_id"},
    "/shipment/{shipment_id}/files/{file_id}": {"shipment_id": "zenodo_shipment_id"},
}

#: erchub's deliberate differences from o2r's document: (o2r path, check, status) -> why.
#: README's section "o2r's API" lists the same.
DIFFERENCES = {
    # erchub refuses a bad query argument with a 400 naming it, where o2r documents none (its
    # implementation answers 200 with no results, or errors of its own): an empty or
    # over-long filter (doi=, user=), a negative start or a limit outside 1..1000 (o2r counts
    # start from 1, erchub from 0)
    ("/compendium", "status code", 400): "bad filters and paging are refused",
    ("/compendium/{compendium_id}/jobs", "status code", 400): "paging out of range",
    ("/job", "status code", 400): "paging out of range",
    ("/shipment", "status code", 400): "bad filters and paging are refused",
    # a download shipment has no deposition: its deposition_id and deposition_url are null, as
    # o2r's own description of POST /shipment says of fields not known yet (its schema says
    # string)
    ("/shipment/{shipment_id}", "response schema", 200): "null until known",
    # o2r's schema gives a compendium's id the pattern of a user id (an ORCID iD), a slip of
    # its document: its own examples have compendium ids such as 4XgD97
    ("/compendium/{compendium_id}", "response schema", 200): "o2r's id schema is a user's",
    # a .tar.gz is application/gzip (o2r documents zip, x-tar and octet-stream)
    ("/compendium/{compendium_id}.{file_extension}", "content type", 200): "application/gzip",
    # erchub's jobs also wait (queued) and can be canceled; o2r documents success, failure
    # and running only
    ("/job/{job_id}", "response schema", 200): "queued and canceled jobs",
    # erchub's search needs words (o2r's q=* means everything) and takes q up to 500
    # characters; o2r documents no 400
    ("/search", "status code", 400): "an empty or wildcard-only q is refused",
    # the first DELETE of the deposition's file answers 204 as o2r documents; the same request
    # again finds no such file: 404, which o2r's document does not list (it lists 204 only)
    ("/shipment/{shipment_id}/files/{file_id}", "status code", 404): "a deleted file is gone",
}


#: what a shipment to Zenodo needs of the compendium's metadata beside its title
DEPOSIT_METADATA = {
    "description": "A sine wave and its frequency.",
    "creators": [{"name": "Ada Lovelace", "orcid": "0000-0002-1825-0097"}],
}


def real_ids(hub: Hub, token: str, zenodo: Any) -> dict[str, str]:
    """A published compendium of the caller, a job of it (queued: the hub has no workers), a
    download shipment of it, and a shipment of it to the (fake) Zenodo sandbox with the file
    of its deposition."""
    compendium_id = publish(
        hub, token, example_zip(), title="Sine waves, as o2r sees them", **DEPOSIT_METADATA
    )
    job = hub.request("POST", "/job", token, json={"compendium_id": compendium_id})
    assert job.status_code == 201, job.text
    shipment = hub.request(
        "POST", "/shipment", token, json={"compendium_id": compendium_id, "recipient": "download"}
    )
    assert shipment.status_code == 200, shipment.text
    shipment_ids = hub.request("GET", f"/shipment?compendium_id={compendium_id}", token).json()
    assert len(shipment_ids) == 1, shipment_ids
    deposited = hub.request(
        "POST",
        "/shipment",
        token,
        json={"compendium_id": compendium_id, "recipient": "zenodo_sandbox"},
        headers={"Zenodo-Token": zenodo.token},
    )
    assert deposited.status_code == 201, deposited.text
    zenodo_shipment_id = deposited.json()["id"]
    files = hub.request(
        "GET",
        f"/shipment/{zenodo_shipment_id}/files",
        token,
        headers={"Zenodo-Token": zenodo.token},
    )
    assert files.status_code == 200, files.text
    (bag,) = files.json()["files"]
    return {
        "compendium_id": compendium_id,
        "job_id": job.json()["job_id"],
        "shipment_id": shipment_ids[0],
        "zenodo_shipment_id": zenodo_shipment_id,
        "file_id": bag["id"],
        "user_id": "o2rclient",
    }


@pytest.fixture(scope="module")
def o2r_hub(tmp_path_factory: pytest.TempPathFactory, fake_zenodo: Any) -> Iterator[Hub]:
    """A hub of its own without workers, so that the job stays queued and no image is built;
    its Zenodo is the session's fake."""
    require_hub()
    hub, process = start_hub(
        tmp_path_factory.mktemp("o2r-hub"),
        worker_count=0,
        environment=zenodo_environment(fake_zenodo),
    )
    try:
        yield hub
    finally:
        stop_hub(process)


def summary(case: Any, failure: BaseException) -> str:
    """The request and the lines of schemathesis's report that say what is wrong."""
    lines = [line.strip() for line in str(failure).splitlines()]
    telling = [line for line in lines if line.startswith(WHAT_IS_WRONG)]
    return f"{case.method} {case.formatted_path} {case.query}: {' | '.join(telling[:8])}"


def failures_of(
    operation: Any, ids: dict[str, str], hub: Hub, token: str, zenodo_token: str
) -> set[Any]:
    """Every (check, status) that fails for the generated requests of ``operation``, with one
    example each."""
    found: dict[tuple[str, int], str] = {}
    named = {**ids, **{name: ids[key] for name, key in PATH_IDS.get(operation.path, {}).items()}}
    path_parameters = {name: named[name] for name in named if "{" + name + "}" in operation.path}
    strategy = operation.as_strategy(path_parameters=path_parameters or None)

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(
            base_url=hub.api_url,
            headers={"Authorization": f"token {token}", "Zenodo-Token": zenodo_token},
            allow_redirects=False,
            timeout=60,
        )
        for name, check in CHECKS.items():
            try:
                case.validate_response(response, checks=[check])
            except (Failure, FailureGroup) as failure:
                found.setdefault((name, response.status_code), summary(case, failure))

    run()
    return {(operation.path, name, status, example) for (name, status), example in found.items()}


def test_erchub_answers_the_shared_operations_as_o2r_documents(
    o2r_hub: Hub, fake_zenodo: Any
) -> None:
    token = o2r_hub.token("o2rclient")
    ids = real_ids(o2r_hub, token, fake_zenodo)
    schema = schemathesis.openapi.from_path(str(O2R_DOCUMENT))
    unexpected = []
    for path, method in SHARED:
        operation = schema[path][method]
        for path_, check, status, example in failures_of(
            operation, ids, o2r_hub, token, fake_zenodo.token
        ):
            if (path_, check, status) not in DIFFERENCES:
                unexpected.append(f"{check} {status}: {example}")
    assert not unexpected, "\n".join(unexpected)
    # the file was deleted (204) by the first of those requests
    files = o2r_hub.request(
        "GET",
        f"/shipment/{ids['zenodo_shipment_id']}/files",
        token,
        headers={"Zenodo-Token": fake_zenodo.token},
    )
    assert files.json() == {"files": []}


def test_error_bodies_carry_o2rs_error(o2r_hub: Hub) -> None:
    token = o2r_hub.token("o2rclient")
    missing = o2r_hub.request("GET", "/compendium/nosuchid", token)
    assert missing.status_code == 404
    body = missing.json()
    assert body["error"] == body["message"] and body["status"] == 404
    assert "nosuchid" in body["error"]
    unauthenticated = httpx.get(o2r_hub.api_url + "/auth/whoami", timeout=30)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]


def test_o2r_parameters_and_operations_map_onto_erchubs_model(
    o2r_hub: Hub, fake_zenodo: Any
) -> None:
    token = o2r_hub.token("o2rclient")
    ids = real_ids(o2r_hub, token, fake_zenodo)
    compendium_id, job_id = ids["compendium_id"], ids["job_id"]
    by_job = o2r_hub.request("GET", f"/compendium?job_id={job_id},nosuchjob", token).json()
    assert by_job == {"results": [compendium_id], "total": 1}
    jobs = o2r_hub.request("GET", f"/job?compendium_id={compendium_id}&fields=status,user", token)
    assert jobs.json()["results"] == [{"id": job_id, "status": "queued", "user": "o2rclient"}]
    malformed = o2r_hub.request(
        "POST", "/job", token, content=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}
    )
    assert malformed.status_code == 400 and "form" in malformed.json()["error"]
    refused = o2r_hub.request("GET", "/job?fields=steps", token)
    assert refused.status_code == 400 and "fields" in refused.json()["error"]
    related = o2r_hub.request("GET", f"/compendium/{compendium_id}/jobs", token).json()
    assert related == {"results": [job_id], "total": 1}
    status = o2r_hub.request("GET", f"/shipment/{ids['shipment_id']}/status", token).json()
    assert status == {"id": ids["shipment_id"], "status": "shipped"}
    details = o2r_hub.request(
        "GET", f"/shipment?compendium_id={compendium_id}&details=true", token
    ).json()
    # newest first: the Zenodo shipment, then the download
    assert details["results"] == [ids["zenodo_shipment_id"], ids["shipment_id"]]
    assert details["total"] == 2
    me = o2r_hub.request("GET", "/auth/whoami", token).json()
    assert me == {"name": "o2rclient", "orcid": None, "level": 100}
    assert o2r_hub.request("GET", "/user/o2rclient", token).json()["level"] == 100
    admin = o2r_hub.request("GET", "/auth/whoami", o2r_hub.admin_token).json()
    assert admin["level"] == 1000
    other = o2r_hub.request("GET", f"/user/{admin['name']}", token).json()
    assert other == {"id": admin["name"], "name": admin["name"]}
    assert o2r_hub.request("GET", "/user/nosuchuser", token).status_code == 404
    login = o2r_hub.request("GET", "/auth/login", follow_redirects=False)
    assert login.status_code == 302
    assert login.headers["Location"] == "/services/erc/login?next=/services/erc/"
    query = {"query": {"bool": {"must": {"query_string": {"query": "o2r sees"}}}}, "size": 5}
    found = o2r_hub.request("POST", "/search", token, json=query).json()["hits"]
    assert compendium_id in [hit["_source"]["id"] for hit in found["hits"]]
    assert found["hits"][0]["_source"]["metadata"]["o2r"]["title"].endswith("as o2r sees them")
    everything = o2r_hub.request("GET", "/search?q=*&resources=compendia", token).json()
    assert compendium_id in [hit["_source"]["id"] for hit in everything["hits"]["hits"]]
    jobs_only = o2r_hub.request("GET", "/search?q=*&resources=jobs", token).json()
    assert jobs_only["hits"] == {"total": 0, "max_score": 0.0, "hits": []}
    spatial = {"query": {"bool": {"must": {"match_all": {}}, "filter": {"geo_shape": {}}}}}
    refused = o2r_hub.request("POST", "/search", token, json=spatial)
    assert refused.status_code == 400 and "filter" in refused.json()["error"]
    listed = o2r_hub.request("GET", "/api/v1").json()
    assert listed["compendia"] == "/services/erc/api/v1/compendium"
    for name, path in listed.items():  # every resource of the index exists (auth: whoami)
        target = o2r_hub.url + path + ("/whoami" if name == "auth" else "")
        headers = {"Authorization": f"token {token}"}
        answer = httpx.get(target, headers=headers, timeout=60)
        # search needs q; substitutions are only created (no listing: a difference)
        expected = {"search": 400, "substitutions": 405}.get(name, 200)
        assert answer.status_code == expected, path


def test_users_shipment_forms_and_deposition_files_as_o2rs_clients_use_them(
    o2r_hub: Hub, fake_zenodo: Any
) -> None:
    token = o2r_hub.token("o2rclient")
    admin = o2r_hub.admin_token
    # GET /user: the hub's users, asked of the hub's API with the service's token
    users = o2r_hub.request("GET", "/user?limit=1000", token).json()
    assert {"o2rclient", "hubadmin"} <= set(users["results"])
    assert users["total"] >= len(users["results"])
    first = o2r_hub.request("GET", "/user?limit=1", token).json()["results"]
    second = o2r_hub.request("GET", "/user?start=1&limit=1", token).json()["results"]
    assert first + second == users["results"][:2]
    refused = o2r_hub.request("GET", "/user?limit=0", token)
    assert refused.status_code == 400 and "limit" in refused.json()["error"]
    # an erc administrator (o2r's admin) sees the level and last activity of others
    seen = o2r_hub.request("GET", "/user/o2rclient", admin).json()
    assert seen["level"] == 100 and "lastseen" in seen
    assert o2r_hub.request("GET", "/user/hubadmin", admin).json()["level"] == 1000
    assert "level" not in o2r_hub.request("GET", "/user/hubadmin", token).json()

    compendium_id = publish(
        o2r_hub, token, example_zip(), title="Sine waves, shipped by form", **DEPOSIT_METADATA
    )
    # o2r's web UI: URLSearchParams (application/x-www-form-urlencoded)
    download = o2r_hub.request(
        "POST", "/shipment", token, data={"compendium_id": compendium_id, "recipient": "download"}
    )
    assert download.status_code == 200, download.text
    assert download.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(download.content)) as bag:
        assert any(name.endswith("bagit.txt") for name in bag.namelist())
    # o2r's document: multipart/form-data, update_packaging among the fields
    form = {
        "compendium_id": compendium_id,
        "recipient": "zenodo_sandbox",
        "update_packaging": "true",
        "zenodo_token": fake_zenodo.token,
    }
    shipped = o2r_hub.request(
        "POST", "/shipment", token, files={name: (None, value) for name, value in form.items()}
    )
    assert shipped.status_code == 201, shipped.text
    shipment = shipped.json()
    assert shipment["status"] == "shipped" and fake_zenodo.token not in shipped.text
    cookie = o2r_hub.request(
        "POST", "/shipment", token, data={**form, "cookie": "s:connect.sid.value"}
    )
    assert cookie.status_code == 400 and "cookie" in cookie.json()["error"]

    # the deposition's files (o2r's shipper: /files, o2r's document: GET /publishment)
    zenodo = {"Zenodo-Token": fake_zenodo.token}
    files_path = f"/shipment/{shipment['id']}/files"
    files = o2r_hub.request("GET", files_path, token, headers=zenodo).json()["files"]
    assert [entry["filename"] for entry in files] == [f"{compendium_id}.zip"]
    listed = o2r_hub.request(
        "GET", f"/shipment/{shipment['id']}/publishment", token, headers=zenodo
    )
    assert listed.json() == {"files": files}
    one = o2r_hub.request("GET", f"{files_path}/{files[0]['id']}", token, headers=zenodo)
    assert one.json() == files[0]
    # publishing keeps them: deleting is a 409; a download has none: 404
    published = o2r_hub.request(
        "PUT", f"/shipment/{shipment['id']}/publishment", token, headers=zenodo
    )
    assert published.status_code == 200 and published.json()["status"] == "published"
    kept = o2r_hub.request("DELETE", f"{files_path}/{files[0]['id']}", token, headers=zenodo)
    assert kept.status_code == 409 and "published" in kept.json()["error"]
    (download_id,) = [
        shipment_id
        for shipment_id in o2r_hub.request(
            "GET", f"/shipment?compendium_id={compendium_id}", token
        ).json()
        if shipment_id != shipment["id"]
    ]
    none = o2r_hub.request("GET", f"/shipment/{download_id}/files", token, headers=zenodo)
    assert none.status_code == 404 and "no deposition" in none.json()["error"]

    # o2r's bindings are not offered (README: a documented difference)
    for method, path in (
        ("POST", "/bindings/binding"),
        ("POST", "/bindings/searchBinding"),
        ("GET", f"/compendium/{compendium_id}/binding/figure1"),
        ("POST", f"/compendium/{compendium_id}/binding/figure1"),
    ):
        answer = o2r_hub.request(method, path, token, json={})
        assert answer.status_code == 404, (method, path, answer.text)


def workspace_with_display_file() -> bytes:
    """The example workspace with its display file made already (as an author's upload has it
    when the notebook was run before), so that the plugin's galley finds it."""
    buffer = io.BytesIO(example_zip())
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("main.html", "<html><body><h1>Sine waves</h1></body></html>")
    return buffer.getvalue()


def test_the_ojs_plugins_requests_replayed(o2r_hub: Hub) -> None:
    """The requests of o2r's OJS plugin (o2r-project/ojs-erc-plugin, ojsErcPlugin.inc.php at
    53202e12), in its order, as it sends them (its cookie header replaced by a hub token)."""
    auth = {"Authorization": f"token {o2r_hub.token('ojseditor')}"}
    api = o2r_hub.api_url + "/"  # the plugin's serverURL ends with a slash

    # submission step 2: the workspace.zip of the genre ERC, multipart (CURLFile + array)
    uploaded = httpx.post(
        api + "compendium",
        headers=auth,
        files={"compendium": ("workspace.zip", workspace_with_display_file(), "application/zip")},
        data={"content_type": "workspace"},
        timeout=120,
    )
    # the plugin reads json_decode(...)->id, then goes on when the status is 200; erchub
    # answers 201 Created (README, o2r's API: a plugin for erchub takes any 2xx)
    assert uploaded.status_code == 201, uploaded.text
    compendium_id = uploaded.json()["id"]
    # then the candidate's metadata, title and abstract for the submission form
    metadata = httpx.get(api + f"compendium/{compendium_id}/metadata", headers=auth, timeout=60)
    assert metadata.status_code == 200
    o2r = metadata.json()["metadata"]["o2r"]
    assert isinstance(o2r["title"], str) and "description" in o2r
    # its example job request: a form with compendium_id (PHP's curl sends an array as
    # multipart/form-data)
    job = httpx.post(
        api + "job", headers=auth, files={"compendium_id": (None, compendium_id)}, timeout=60
    )
    assert job.status_code == 201, job.text
    queued = httpx.get(api + f"job/{job.json()['job_id']}", headers=auth, timeout=60).json()
    assert (queued["compendium_id"], queued["status"]) == (compendium_id, "queued")

    # submission step 3 done: metadata again, title and abstract from OJS, PUT back as
    # json_encode($response->metadata): publishes the candidate
    got = httpx.get(api + f"compendium/{compendium_id}/metadata", headers=auth, timeout=60)
    changed = got.json()["metadata"]
    changed["o2r"]["title"] = "Sine waves, reviewed in OJS"
    changed["o2r"]["description"] = "The abstract as the journal has it."
    put = httpx.put(
        api + f"compendium/{compendium_id}/metadata",
        headers={**auth, "Content-type": "application/json"},
        content=json.dumps(changed),
        timeout=60,
    )
    assert put.status_code == 200, put.text
    assert put.json()["candidate"] is False

    # the galleys: the compendium's display file, named by metadata.o2r.displayfile
    compendium = httpx.get(api + f"compendium/{compendium_id}", headers=auth, timeout=60)
    assert compendium.json()["metadata"]["o2r"]["title"] == "Sine waves, reviewed in OJS"
    display_name = compendium.json()["metadata"]["o2r"]["displayfile"]
    assert display_name == "main.html"
    display = httpx.get(api + f"compendium/{compendium_id}/data/{display_name}", headers=auth)
    assert display.status_code == 200 and "<h1>Sine waves</h1>" in display.text
