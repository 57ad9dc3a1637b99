"""The security review as tests, in process (README "Security and reliability"): every
operation of the API walked with every kind of caller, every page of the service fed hostile
metadata, and the check report fed hostile notebooks.

**The walk.** The operations come from the OpenAPI document the service serves, so a new
route is walked as soon as it is documented, and it must declare its security there:
``security: []`` for a public operation, else the custom scopes it needs as the role names
of both schemes, ``hubToken`` and ``hubCookie`` (an empty list: any identity with access to
the service). For every operation:

- no identity: 401 (a public operation: an answer it documents);
- a user logged in to the hub without access to the service: 403;
- a token lacking one of the declared scopes, with every other scope: 403 naming it;
- another user with exactly the declared scopes: past the scope check; on the owner's
  candidate, its job or the owner's shipment (in the path or in the body): 404; and no
  successful answer shows one of the owner's private ids (candidates, job, shipment, link);
- a token with ``custom:erc:admin`` alone (it stands for every scope): past the scope check;
- afterwards, nothing of the owner's changed.

The service runs with a fake HubAuth (see test_api_rules); tests/hub/test_security_routes.py
walks the same operations with a real hub's tokens and cookies (and its XSRF rule).

**Pages.** Every page route, and the error pages, with a published compendium whose metadata
and files carry script: nothing of it is markup in the service's own pages, which carry a
strict Content-Security-Policy (scripts and styles only with the response's nonce, no
``unsafe-inline``); what the uploader wrote (files, display, reports) is served only under
``Content-Security-Policy: sandbox ...``.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
import zipfile
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from nbformat import v4

from erchub.checker import compare_notebooks
from erchub.report import render_report
from erchub.services.app import ERCService
from erchub.services.handlers import page_handlers
from erchub.services.handlers.base import (
    API_POLICY,
    SCOPE_ADMIN,
    SCOPE_CREATE,
    SCOPE_READ,
    SCOPE_RUN,
    UNTRUSTED_CONTENT_POLICY,
    BaseHandler,
)
from erchub.services.store import CompendiumQuery, JobQuery, JobRecord, ShipmentRecord
from erchub.steps import JobStatus
from tests.conftest import heading, write_notebook
from tests.unit.test_api_rules import ACCESS, model, serving
from tests.unit.test_reader_pages import PageHubAuth

PREFIX = "/services/erc/api/v1"
SERVICE = "/services/erc/"
ERC_SCOPES = (SCOPE_READ, SCOPE_CREATE, SCOPE_RUN)
#: the hub's own scopes an operation may need: the metrics', as the hub's /hub/metrics
HUB_SCOPES = ("read:metrics",)
METHODS = ("get", "put", "post", "delete", "patch")
#: what a browser sends when it navigates, and what a script (or a client) sends
NAVIGATE = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate"}
JSON = {"Accept": "application/json"}
#: path parameters that name a resource of its owner, which nobody else may find
PRIVATE_PARAMETERS = frozenset({"compendium_id", "job_id", "shipment_id"})
#: fields of request bodies that name a compendium
REFERENCE_FIELDS = frozenset(
    {"compendium_id", "base", "overlay", "is_new_version_of", "derived_from"}
)
#: stored XSS: markup that would run script if a page showed it as markup
PAYLOADS = (
    "<script>window.ercXss=1</script>",
    '<img src=x onerror="window.ercXss=2">',
    '"><svg onload=window.ercXss=3>',
    "'><iframe srcdoc='<script>parent.ercXss=4</script>'></iframe>",
)
#: a user name with markup (the pages' header shows the viewer's name)
VIEWER = '"><svg/onload=window.ercXss=8>'
#: one line of all of them, for fields that take one string
HOSTILE = " ".join(PAYLOADS)
#: a file name with markup (the landing page lists the files)
HOSTILE_FILE = '"><svg onload=window.ercXss=9>.txt'
#: a word of the probe notebook's title, for searches
SEARCH_WORD = "Rules"


# -- the operations, from the OpenAPI document ---------------------------------------------


def resolve(document: dict[str, Any], node: Any) -> Any:
    """``node`` with its ``$ref`` (a local one) followed."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def schema_fields(document: dict[str, Any], schema: Any) -> set[str]:
    """The top-level property names of a schema (its ``allOf``/``anyOf``/``oneOf`` too)."""
    schema = resolve(document, schema)
    if not isinstance(schema, dict):
        return set()
    fields = set(schema.get("properties") or {})
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key) or []:
            fields |= schema_fields(document, part)
    return fields


@dataclass(frozen=True)
class Operation:
    method: str
    #: the document's path, relative to the API prefix (``/job/{job_id}``); absolute for a
    #: path beside the API, with a server of its own (``/services/erc/metrics``)
    path: str
    operation_id: str
    #: the scopes it needs; None: public (``security: []``)
    scopes: tuple[str, ...] | None
    #: the statuses it documents
    statuses: frozenset[str]
    path_parameters: tuple[str, ...]
    has_body: bool
    body_fields: frozenset[str]
    #: whether its success is a file of a user (``*/*``), served sandboxed
    serves_files: bool

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def public(self) -> bool:
        return self.scopes is None

    @property
    def private(self) -> bool:
        """Whether it names a resource of a user, which nobody else may find (404)."""
        return bool(
            PRIVATE_PARAMETERS & set(self.path_parameters) or REFERENCE_FIELDS & self.body_fields
        )


def declared_scopes(operation: dict[str, Any]) -> tuple[str, ...] | None:
    """The scopes an operation's security requirement names (None: public); ValueError when
    it declares none of its own, or schemes that disagree."""
    if "security" not in operation:
        raise ValueError("declares no security of its own (security: [] for a public one)")
    requirements = operation["security"]
    if requirements == []:
        return None
    roles: dict[str, tuple[str, ...]] = {}
    for requirement in requirements:
        if len(requirement) != 1:
            raise ValueError(f"one scheme per requirement, got {sorted(requirement)}")
        for scheme, names in requirement.items():
            roles[scheme] = tuple(sorted(names))
    if set(roles) != {"hubToken", "hubCookie"}:
        raise ValueError(f"the schemes must be hubToken and hubCookie, got {sorted(roles)}")
    if roles["hubToken"] != roles["hubCookie"]:
        raise ValueError(f"the schemes need different scopes: {roles}")
    unknown = set(roles["hubToken"]) - set(ERC_SCOPES) - set(HUB_SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes {sorted(unknown)} (admin stands for every scope)")
    return roles["hubToken"]


def security_problems(document: dict[str, Any]) -> list[str]:
    """What is missing from the operations' declarations: their security, and the refusals
    it implies among their responses."""
    problems = []
    for path, item in document["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            where = f"{method.upper()} {path}"
            try:
                scopes = declared_scopes(item[method])
            except ValueError as error:
                problems.append(f"{where}: {error}")
                continue
            statuses = set(item[method].get("responses") or {})
            needed = set() if scopes is None else {"401", "403"}
            missing = sorted(needed - statuses)
            if missing:
                problems.append(f"{where}: documents no {', '.join(missing)}")
    return problems


def operations(document: dict[str, Any]) -> list[Operation]:
    """Every operation of the document (each must declare its security)."""
    found = []
    for path, item in document["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            operation = item[method]
            body = resolve(document, operation.get("requestBody"))
            fields: set[str] = set()
            for content in (body or {}).get("content", {}).values():
                fields |= schema_fields(document, content.get("schema"))
            successes = [
                resolve(document, answer)
                for status, answer in operation["responses"].items()
                if status.startswith("2")
            ]
            found.append(
                Operation(
                    method=method.upper(),
                    path=(item["servers"][0]["url"] if "servers" in item else "") + path,
                    operation_id=operation["operationId"],
                    scopes=declared_scopes(operation),
                    statuses=frozenset(operation["responses"]),
                    path_parameters=tuple(re.findall(r"\{(\w+)\}", path)),
                    has_body=body is not None,
                    body_fields=frozenset(fields),
                    serves_files=any(
                        "*/*" in (answer.get("content") or {}) for answer in successes
                    ),
                )
            )
    return found


# -- what the walk aims at ------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """A user's resources, which the walk aims at."""

    owner: str
    candidate: str
    #: another candidate of the owner (a substitution's overlay)
    overlay: str
    published: str
    #: a job of the candidate
    job: str
    #: a shipment of the published compendium
    shipment: str
    #: a review link of the candidate
    link: str
    #: an HTML file of the candidate with script, and one of the job
    compendium_file: str = "page.html"
    job_file: str = "output/main.html"

    @property
    def private_ids(self) -> tuple[str, ...]:
        """What nobody but the owner may learn from the API."""
        return (self.candidate, self.overlay, self.job, self.shipment, self.link)


#: ids of nothing, for callers who would see everything (admins): the walk changes nothing
NOWHERE = World(
    owner="nobody-here",
    candidate="no-such-compendium",
    overlay="no-such-overlay",
    published="no-such-published",
    job="no-such-job",
    shipment="no-such-shipment",
    link="no-such-link",
)

#: the value of each path parameter
PATH_VALUES: dict[str, Callable[[World, Operation], str]] = {
    "compendium_id": lambda world, op: world.candidate,
    "job_id": lambda world, op: world.job,
    "shipment_id": lambda world, op: world.shipment,
    "link_id": lambda world, op: world.link,
    "user_id": lambda world, op: world.owner,
    "recipient_id": lambda world, op: "zenodo_sandbox",
    "file_id": lambda world, op: "1",
    "path": lambda world, op: (
        world.job_file if "job_id" in op.path_parameters else world.compendium_file
    ),
}
#: valid bodies where a body names a resource, so that the walk reaches the resource (an
#: operation with a body not named here gets ``{}``)
BODIES: dict[str, Callable[[World, bytes], dict[str, Any]]] = {
    "uploadCompendium": lambda world, archive: {
        "files": {"compendium": ("ws.zip", archive, "application/zip")},
        "data": {"content_type": "workspace", "is_new_version_of": world.candidate},
    },
    "putCompendiumMetadata": lambda world, archive: {"json": {"o2r": {"title": "Changed"}}},
    "createLink": lambda world, archive: {"json": {"mode": "open"}},
    "changeLinkMode": lambda world, archive: {"json": {"mode": "open"}},
    "createJob": lambda world, archive: {"json": {"compendium_id": world.candidate}},
    "createSubstitution": lambda world, archive: {
        "json": {
            "base": world.candidate,
            "overlay": world.overlay,
            "substitutionFiles": [{"base": "main.ipynb", "overlay": "main.ipynb"}],
            "metadataHandling": "keepBase",
        }
    },
    "createShipment": lambda world, archive: {
        "json": {"compendium_id": world.candidate, "recipient": "download"}
    },
    "searchCompendiaByQuery": lambda world, archive: {"json": {"query": {"match_all": {}}}},
}
#: query arguments: those an operation needs, and filters that would show the owner's
#: resources to another user if a rule were broken (each dict is one request)
QUERIES: dict[str, Callable[[World], list[dict[str, str]]]] = {
    "changeLinkMode": lambda world: [{"link": world.link}],
    "revokeLinks": lambda world: [{"link": world.link}],
    "searchCompendia": lambda world: [{"q": SEARCH_WORD}, {"q": "*"}],
    "listCompendia": lambda world: [
        {},
        {"user": world.owner, "candidate": "true", "summary": "true"},
        {"job_id": world.job, "candidate": "true"},
        {"job_id": world.job},
    ],
    "listJobs": lambda world: [{}, {"user": world.owner}, {"compendium_id": world.candidate}],
    "listShipments": lambda world: [
        {"details": "true"},
        {"user": world.owner, "details": "true"},
        {"compendium_id": world.published, "details": "true"},
    ],
}


#: scopes an operation needs for some bodies only, beyond those it declares: the owner's
#: body, and the scope it needs
CONDITIONAL_SCOPES: list[tuple[Callable[[World], dict[str, Any]], str]] = [
    (lambda world: {"compendium_id": world.published, "recipient": "zenodo_sandbox"}, SCOPE_CREATE),
    (lambda world: {"compendium_id": world.published, "recipient": "zenodo"}, SCOPE_CREATE),
]


@dataclass(frozen=True)
class Probe:
    """One request of the walk: the operation, and what to send."""

    op: Operation
    path: str
    params: dict[str, str]
    send: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.op.method} {self.path}" + (f"?{query}" if query else "")


def probes(op: Operation, world: World, archive: bytes) -> list[Probe]:
    """The requests of ``op`` aimed at ``world`` (the first one is the operation's own)."""
    values = {}
    for name in op.path_parameters:
        if name not in PATH_VALUES:
            raise KeyError(f"{op}: the walk has no value for the path parameter {name}")
        values[name] = quote(PATH_VALUES[name](world, op), safe="/")
    path = re.sub(r"\{(\w+)\}", lambda found: values[found.group(1)], op.path)
    if op.operation_id in BODIES:
        send = BODIES[op.operation_id](world, archive)
    else:
        send = {"json": {}} if op.has_body else {}
    queries = QUERIES[op.operation_id](world) if op.operation_id in QUERIES else [{}]
    return [Probe(op, path, query, send) for query in queries]


# -- what each caller must get ---------------------------------------------------------------


def message_of(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("message", "")) if isinstance(body, dict) else ""


def refused(response: httpx.Response, status: int, *words: str) -> str | None:
    """None when ``response`` is the JSON refusal ``status`` with ``words``; else why not."""
    if response.status_code != status:
        return f"{response.status_code} instead of {status}: {response.text[:160]}"
    try:
        body = response.json()
    except ValueError:
        return f"{status} without a JSON error body"
    if not isinstance(body, dict) or body.get("status") != status:
        return f"{status} without a JSON error body"
    for word in words:
        if word not in str(body.get("message")):
            return f"{status} without {word!r} in its message: {body.get('message')!r}"
    return None


def scope_refusal(response: httpx.Response) -> bool:
    return response.status_code == 403 and "needs the scope" in message_of(response)


def without_identity(probe: Probe, response: httpx.Response) -> str | None:
    if not probe.op.public:
        return refused(response, 401, "authentication required")
    if response.status_code in (401, 403) or str(response.status_code) not in probe.op.statuses:
        return f"public, yet {response.status_code} (documented: {sorted(probe.op.statuses)})"
    return None


def not_allowed(probe: Probe, response: httpx.Response) -> str | None:
    """A user of the hub without access to the service."""
    if probe.op.public:
        return without_identity(probe, response)
    return refused(response, 403, "may not use this service")


def lacking(probe: Probe, scope: str, response: httpx.Response) -> str | None:
    return refused(response, 403, scope)


def passed(probe: Probe, response: httpx.Response) -> str | None:
    """Past identity and scopes: any answer the operation documents but those refusals."""
    if response.status_code == 401 or scope_refusal(response):
        return f"refused with exactly the scopes it declares: {response.text[:160]}"
    if str(response.status_code) not in probe.op.statuses:
        return f"{response.status_code}, which it does not document: {response.text[:160]}"
    return None


def another_user(probe: Probe, world: World, response: httpx.Response) -> str | None:
    """A user other than ``world``'s owner, holding exactly the declared scopes."""
    problem = passed(probe, response)
    if problem:
        return problem
    if probe.op.private:
        return refused(response, 404, "not found")
    if response.is_success and not probe.op.public:
        leaked = [name for name in world.private_ids if name in response.text]
        if leaked:
            return f"shows another user's {leaked}: {response.text[:200]}"
    return None


@dataclass
class Findings:
    """Every problem of a walk (a review reports them all, not only the first)."""

    problems: list[str] = field(default_factory=list)
    requests: int = 0

    def add(self, caller: str, probe: Probe, problem: str | None) -> None:
        self.requests += 1
        if problem:
            self.problems.append(f"{probe} [{caller}]: {problem}")

    def assert_none(self) -> None:
        assert not self.problems, "\n".join(self.problems)


# -- pages: their policies and markup --------------------------------------------------------


class Markup(HTMLParser):
    """The tags of an HTML page that could run script."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def markup_problems(body: str, nonce: str | None) -> list[str]:
    """Script in a page of the service: a ``<script>`` or ``<style>`` without the response's
    nonce, an element of another document (``iframe srcdoc``, ``object``, ``embed``), an
    inline event handler, a ``javascript:`` URL, or a payload as markup."""
    parser = Markup()
    parser.feed(body)
    problems = []
    for tag, attrs in parser.tags:
        if tag in ("script", "style") and (nonce is None or attrs.get("nonce") != nonce):
            problems.append(f"<{tag}> without the response's nonce: {attrs}")
        if tag in ("object", "embed", "base") or "srcdoc" in attrs:
            problems.append(f"<{tag} {attrs}>")
        for name, value in attrs.items():
            if name.startswith("on"):
                problems.append(f"<{tag}> with the event handler {name}={value!r}")
            if name in ("href", "src", "action", "formaction", "xlink:href") and (
                (value or "").strip().lower().startswith(("javascript:", "data:text/html"))
            ):
                problems.append(f"<{tag} {name}={value!r}>")
    problems += [f"unescaped {payload!r}" for payload in PAYLOADS if payload in body]
    return problems


def policy(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {words[0]: words[1:] for words in directives}


def strict_policy_problems(response: httpx.Response) -> tuple[list[str], str | None]:
    """The problems of a page's strict policy (see pages.page_policy), and its nonce."""
    csp = policy(response.headers.get("content-security-policy", ""))
    problems = []
    scripts = csp.get("script-src", csp.get("default-src", ["*"]))
    nonces = [value[7:-1] for value in scripts if value.startswith("'nonce-")]
    for directive in ("default-src", "script-src", "style-src"):
        values = csp.get(directive)
        if values is None:
            problems.append(f"no {directive}")
            continue
        loose = {"'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:", "blob:"}
        if set(values) & loose:
            problems.append(f"{directive} {' '.join(values)}")
    for directive, wanted in (
        ("object-src", ["'none'"]),
        ("base-uri", ["'self'"]),
        ("frame-ancestors", ["'self'"]),
    ):
        if csp.get(directive) != wanted:
            problems.append(f"{directive} is {csp.get(directive)}, not {wanted}")
    if len(nonces) != 1 or len(nonces[0]) < 16:
        problems.append(f"script-src has no single nonce: {scripts}")
    if response.headers.get("x-frame-options") != "SAMEORIGIN":
        problems.append("no X-Frame-Options: SAMEORIGIN")
    return problems, nonces[0] if len(nonces) == 1 else None


def answer_problems(response: httpx.Response) -> list[str]:
    """How an answer of the service breaks the rules of what browsers get: a user's file only
    under the sandbox policy, a download as an attachment, JSON under the API's policy, and
    anything else (the service's pages, their errors and redirects) under the strict page
    policy, with no script but the page's own."""
    problems = []
    if response.headers.get("x-content-type-options") != "nosniff":
        problems.append("no X-Content-Type-Options: nosniff")
    csp = response.headers.get("content-security-policy", "")
    content_type = response.headers.get("content-type", "")
    if csp.startswith("sandbox"):
        if csp != UNTRUSTED_CONTENT_POLICY:
            problems.append(f"sandboxed as {csp!r}, not {UNTRUSTED_CONTENT_POLICY!r}")
        return problems
    if response.headers.get("content-disposition", "").startswith("attachment"):
        return problems
    if content_type.startswith(("application/json", "text/event-stream")):
        if csp != API_POLICY:
            problems.append(f"JSON under {csp!r}")
        return problems
    page, nonce = strict_policy_problems(response)
    problems += page
    if content_type.startswith("text/html") or "<" in response.text[:100]:
        problems += markup_problems(response.text, nonce)
    return problems


# -- the service in process ------------------------------------------------------------------


def scopes_of(token: str) -> tuple[str, list[str]] | None:
    """The made-up tokens of the walk: ``NAME as SCOPE,SCOPE`` (with access to the service),
    ``NAME without SCOPE`` (every user scope but that), ``NAME outside`` (every user scope,
    no access to the service)."""
    name, _, rest = token.partition(" ")
    kind, _, scopes = rest.partition(" ")
    if kind == "as":
        return name, [ACCESS, *(s for s in scopes.split(",") if s not in ("", "-"))]
    if kind == "without":
        return name, [ACCESS, *(scope for scope in ERC_SCOPES if scope != scopes)]
    if kind == "outside":
        return name, list(ERC_SCOPES)
    if kind == "":
        return name, [ACCESS, *ERC_SCOPES]
    return None


class RulesHubAuth(PageHubAuth):
    """The fake HubAuth with a user for every token the walk makes up (see scopes_of); the
    hub's API is nowhere (502 for what asks it)."""

    api_url = "http://127.0.0.1:9/hub/api"
    api_token = "service-token"

    def get_user(self, handler: Any, *, sync: bool = True) -> Any:
        assert not sync
        token = handler.request.headers.get("Authorization", "").removeprefix("token ")
        found = scopes_of(token.strip()) if token else None

        async def resolved() -> dict[str, Any] | None:
            return model(found[0], found[1]) if found else None

        return resolved()


def admin_token() -> str:
    return f"erc-admin as {SCOPE_ADMIN}"


def exact_token(name: str, scopes: Iterable[str]) -> str:
    return f"{name} as {','.join(scopes) or '-'}"


@dataclass
class InProcess:
    origin: str
    service: ERCService
    client: httpx.AsyncClient

    async def request(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """A request to ``path`` (absolute, or relative to the API prefix)."""
        headers = dict(kwargs.pop("headers", JSON))
        if token:
            headers["Authorization"] = f"token {token}"
        url = self.origin + (path if path.startswith(SERVICE) else PREFIX + path)
        return await self.client.request(method, url, headers=headers, **kwargs)

    async def send(self, probe: Probe, token: str | None) -> httpx.Response:
        return await self.request(
            probe.op.method, probe.path, token, params=probe.params, **probe.send
        )


@pytest.fixture
async def erc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[InProcess]:
    monkeypatch.setattr(BaseHandler, "hub_auth_class", RulesHubAuth)
    async with serving(tmp_path) as (origin, service), httpx.AsyncClient(timeout=30) as client:
        yield InProcess(origin, service, client)


DISPLAY = (
    "<!doctype html><title>display</title><h1>the figures</h1>" + HOSTILE + "<script>"
    "document.title = 'display script ran'</script>"
)


def probe_archive(tmp_path: Path, *extra: tuple[str, str]) -> bytes:
    """A workspace: the probe notebook, an HTML file with script, and ``extra`` files."""
    notebook = write_notebook(
        tmp_path / f"nb-{time.monotonic_ns()}.ipynb",
        heading(f"# {SEARCH_WORD}\n\nA probe."),
        "x = 1",
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("ws/main.ipynb", notebook.read_bytes())
        bundle.writestr("ws/page.html", DISPLAY)
        for name, text in extra:
            bundle.writestr(f"ws/{name}", text)
    return buffer.getvalue()


HOSTILE_METADATA: dict[str, Any] = {
    "title": f"Rules {HOSTILE}",
    "description": f"An abstract. {HOSTILE}",
    "creators": [
        {"name": HOSTILE, "affiliation": HOSTILE, "orcid": "0000-0002-1694-233X"},
        {"name": f"Ada {PAYLOADS[1]}"},
    ],
    "keywords": [*PAYLOADS, "javascript:window.ercXss=5"],
    "license": {"code": HOSTILE, "text": {PAYLOADS[0]: PAYLOADS[2]}, "data": "NOASSERTION"},
    "identifier": {"doi": '10.1234/"><svg/onload=window.ercXss=6>'},
    "displayfile": "page.html",
}


async def created(erc: InProcess, token: str, archive: bytes) -> str:
    response = await erc.request(
        "POST",
        "/compendium",
        token,
        files={"compendium": ("ws.zip", archive, "application/zip")},
        data={"content_type": "workspace"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def published(erc: InProcess, token: str, archive: bytes, **o2r: Any) -> str:
    compendium_id = await created(erc, token, archive)
    path = f"/compendium/{compendium_id}/metadata"
    metadata = (await erc.request("GET", path, token)).json()["metadata"]["o2r"]
    saved = await erc.request("PUT", path, token, json={"o2r": {**metadata, **o2r}})
    assert saved.status_code == 200 and saved.json()["candidate"] is False, saved.text
    return compendium_id


def finished_job(service: ERCService, job_id: str, compendium_id: str, user: str) -> str:
    """A job of the compendium that ended with a display and a report, both with script."""
    now = time.time()
    service.store.add_job(
        JobRecord(
            id=job_id,
            compendium_id=compendium_id,
            user=user,
            status=JobStatus.SUCCESS,
            created=now,
            finished=now,
            result={
                "display": "output/main.html",
                "report": "check/report.html",
                "check": {"passed": True, "counts": {"cells_compared": 1, "cells_different": 0}},
            },
        )
    )
    job_dir = Path(service.data_dir) / "jobs" / job_id
    (job_dir / "output").mkdir(parents=True)
    (job_dir / "check").mkdir()
    (job_dir / "output" / "main.html").write_text(DISPLAY)
    (job_dir / "check" / "report.html").write_text(DISPLAY)
    return job_id


async def build_world(erc: InProcess, tmp_path: Path, owner: str = "alice") -> World:
    """``owner``'s resources: two candidates, a published compendium with hostile metadata
    (and a finished job), a finished job of the first candidate, a shipment with a deposition,
    a review link of the first candidate."""
    candidate = await created(erc, owner, probe_archive(tmp_path))
    overlay = await created(erc, owner, probe_archive(tmp_path))
    hostile_file = (HOSTILE_FILE, "a file whose name is markup")
    public = await published(erc, owner, probe_archive(tmp_path, hostile_file), **HOSTILE_METADATA)
    finished_job(erc.service, f"job-of-{public}", public, owner)
    job = finished_job(erc.service, f"job-of-{candidate}", candidate, owner)
    shipment = f"shipment-of-{public}"
    erc.service.store.add_shipment(
        ShipmentRecord(
            id=shipment,
            compendium_id=public,
            recipient="zenodo_sandbox",
            user=owner,
            deposition_id="1",
            created=time.time(),
            last_modified=time.time(),
        )
    )
    link = await erc.request("PUT", f"/compendium/{candidate}/link", owner, json={"mode": "blind"})
    assert link.status_code == 200, link.text
    return World(owner, candidate, overlay, public, job, shipment, str(link.json()["id"]))


async def state_of(erc: InProcess, world: World) -> dict[str, Any]:
    """What the owner sees of their resources, and what the store holds in all."""
    store = erc.service.store
    seen = {}
    for path in (
        f"/compendium/{world.candidate}",
        f"/compendium/{world.overlay}",
        f"/compendium/{world.published}",
        f"/job/{world.job}",
        f"/shipment/{world.shipment}",
        f"/link/{world.link}",
        "/link",
        "/recipient",
    ):
        response = await erc.request("GET", path, world.owner)
        seen[path] = (response.status_code, response.json())
    seen["compendia"] = store.list_compendia(CompendiumQuery(viewer=None, candidate=True))[1]
    seen["published"] = store.list_compendia(CompendiumQuery(viewer=None))[1]
    seen["jobs"] = store.list_jobs(JobQuery(viewer=None))[1]
    seen["shipments"] = store.list_shipments(user=None)[1]
    return seen


# -- the tests -------------------------------------------------------------------------------


async def served_document(erc: InProcess) -> dict[str, Any]:
    response = await erc.request("GET", "/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def test_every_operation_declares_its_security(erc: InProcess) -> None:
    """A route documented without a security rule of its own fails here: the walk needs to
    know whether it is public and which scopes it needs."""
    document = await served_document(erc)
    assert security_problems(document) == []
    walked = operations(document)
    assert len(walked) >= 40, "the walk reaches every operation"
    public = sorted(str(op) for op in walked if op.public)
    assert public == [
        "GET /api",
        "GET /api/v1",
        "GET /auth/login",
        "GET /link/{link_id}",
        "GET /openapi.json",
    ], "a new public operation is a decision for the security review"
    # operations that name a compendium in their body name it in a way the walk knows
    for op in walked:
        if op.body_fields & REFERENCE_FIELDS:
            assert op.operation_id in BODIES, f"{op}: add a body naming another's compendium"
    # the document's check itself: an operation without a rule of its own is reported
    broken = json.loads(json.dumps(document))
    del broken["paths"]["/job"]["post"]["security"]
    broken["paths"]["/search"]["get"]["security"] = [{"hubToken": ["custom:erc:read"]}]
    assert security_problems(broken) == [
        "POST /job: declares no security of its own (security: [] for a public one)",
        "GET /search: the schemes must be hubToken and hubCookie, got ['hubToken']",
    ]


async def test_every_operation_refuses_whoever_it_must(erc: InProcess, tmp_path: Path) -> None:
    world = await build_world(erc, tmp_path)
    before = await state_of(erc, world)
    archive = probe_archive(tmp_path)
    findings = Findings()
    walked = operations(await served_document(erc))
    for op in walked:
        own = probes(op, world, archive)
        first = own[0]
        findings.add("no identity", first, without_identity(first, await erc.send(first, None)))
        outside = await erc.send(first, "outsider outside")
        findings.add("no access to the service", first, not_allowed(first, outside))
        for scope in op.scopes or ():
            response = await erc.send(first, f"carol without {scope}")
            findings.add(f"without {scope}", first, lacking(first, scope, response))
        for probe in own:
            response = await erc.send(probe, exact_token("bob", op.scopes or ()))
            findings.add("another user", probe, another_user(probe, world, response))
        for probe in probes(op, NOWHERE, archive):
            response = await erc.send(probe, admin_token())
            findings.add("erc admin", probe, passed(probe, response))
    # a scope that depends on the body: shipping to a repository needs create besides read
    for body, scope in CONDITIONAL_SCOPES:
        probe = Probe(next(op for op in walked if str(op) == "POST /shipment"), "/shipment", {})
        probe = replace(probe, send={"json": body(world)})
        response = await erc.send(probe, f"{world.owner} without {scope}")
        findings.add(f"without {scope}", probe, lacking(probe, scope, response))
    findings.assert_none()
    assert await state_of(erc, world) == before, "the walk changed the owner's resources"
    assert findings.requests > 5 * len(walked)


def archive_text(response: httpx.Response) -> str:
    """The text of an answer, or of every member of a zip or tar.gz answer."""
    content_type = response.headers.get("content-type", "")
    if content_type.startswith("application/zip"):
        with zipfile.ZipFile(io.BytesIO(response.content)) as bundle:
            return "\n".join(
                bundle.read(name).decode("utf-8", "replace") for name in bundle.namelist()
            )
    if content_type.startswith("application/gzip"):
        with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as bundle:
            members = [bundle.extractfile(member) for member in bundle.getmembers()]
            return "\n".join(m.read().decode("utf-8", "replace") for m in members if m)
    return response.text


async def test_a_blind_link_names_no_creator_anywhere(erc: InProcess, tmp_path: Path) -> None:
    """Every reading operation of a compendium, through a blind review link: no creator's
    name, affiliation or ORCID iD, no uploading user. (Found by this review: the data route
    served ``.erc/metadata_o2r_1.json`` as it is, creators included, to whoever held a blind
    link; it now serves the blinded metadata there, as the blind download holds it.)"""
    world = await build_world(erc, tmp_path)
    creators = [{"name": "Bertha Blindtest", "affiliation": "Blind University",
                 "orcid": "0000-0002-1694-233X"}]  # fmt: skip
    path = f"/compendium/{world.candidate}/metadata"
    o2r = (await erc.request("GET", path, world.owner)).json()["metadata"]["o2r"]
    saved = await erc.request(
        "PUT",
        path,
        world.owner,
        params={"publish": "false"},
        json={"o2r": {**o2r, "creators": creators}},
    )
    assert saved.status_code == 200 and saved.json()["candidate"], saved.text
    personal = ("Bertha", "Blind University", "0000-0002-1694-233X", world.owner)
    metadata_paths = (
        ".erc/metadata_o2r_1.json",
        "./.erc/metadata_o2r_1.json",
        ".erc//metadata_o2r_1.json",
    )
    reading = [
        op
        for op in operations(await served_document(erc))
        if op.method == "GET" and "compendium_id" in op.path_parameters
    ]
    assert len(reading) >= 7
    seen = 0
    for op in reading:
        for file_path in metadata_paths if "path" in op.path_parameters else (None,):
            target = replace(world, compendium_file=file_path or world.compendium_file)
            probe = replace(probes(op, target, b"")[0], params={"link": world.link})
            response = await erc.send(probe, "bob")
            assert response.status_code == 200, (str(probe), response.text)
            text = archive_text(response)
            assert not [word for word in personal if word in text], (str(probe), text[:300])
            seen += 1
    assert seen >= 9
    # the author sees them, through the link too
    own = await erc.request("GET", f"/compendium/{world.candidate}/data/.erc/metadata_o2r_1.json",
                            world.owner, params={"link": world.link})  # fmt: skip
    assert "Bertha" in own.text
    # nothing else of .erc/ is there for the reviewer (as in the blind download)
    other = await erc.request("GET", f"/compendium/{world.candidate}/data/.erc/x.json", "bob",
                              params={"link": world.link})  # fmt: skip
    assert other.status_code == 404


async def test_users_files_are_served_sandboxed(erc: InProcess, tmp_path: Path) -> None:
    """Every operation whose answer is a user's file (``*/*``) serves HTML with script under
    the sandbox policy, to its owner too."""
    world = await build_world(erc, tmp_path)
    files = [op for op in operations(await served_document(erc)) if op.serves_files]
    assert {op.operation_id for op in files} == {"getCompendiumFile", "getJobFile"}
    report = replace(world, job_file="check/report.html", compendium_file="page.html")
    for target in (world, report):
        for op in files:
            probe = probes(op, target, b"")[0]
            response = await erc.send(probe, world.owner)
            assert response.status_code == 200, (str(probe), response.text)
            assert PAYLOADS[0] in response.text, "the user's HTML, as it is"
            assert response.headers["content-type"].startswith("text/html")
            assert answer_problems(response) == [], str(probe)
            assert response.headers["content-security-policy"] == UNTRUSTED_CONTENT_POLICY


def page_path(pattern: str, values: dict[str, str]) -> str:
    """A path of the page route ``pattern`` with ``values`` for its named groups."""

    def value(found: re.Match[str]) -> str:
        return quote(values[found.group(1)], safe="")

    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", value, pattern)
    return SERVICE + path.replace("\\", "").lstrip("/")


async def test_pages_show_hostile_metadata_as_text(erc: InProcess, tmp_path: Path) -> None:
    """Every page route and error page, with a published compendium whose title, abstract,
    authors, affiliations, keywords, licences and DOI carry script, and whose display and
    report are HTML with script: the service's pages show all of it as text under their strict
    policy; the uploader's HTML is served under the sandbox policy only."""
    world = await build_world(erc, tmp_path)
    values = {
        "compendium_id": world.published,
        "job_id": f"job-of-{world.published}",
        "link_id": world.link,
        "doi": PAYLOADS[2],
        # a git host no setting names: refused before anything is fetched
        "prefix": "nohost",
        "org": PAYLOADS[0],
        "repo": PAYLOADS[1],
        "ref": PAYLOADS[3],
    }
    paths = [page_path(pattern, values) for pattern, _handler in page_handlers()]
    paths[paths.index(SERVICE + "login")] += "?next=/services/erc/"
    hostile = quote(HOSTILE, safe="")
    paths += [
        f"{SERVICE}?q={hostile}",
        f"{SERVICE}?{hostile}=1",
        f"{SERVICE}compendium/{hostile}",
        f"{SERVICE}compendium/{world.published}?{hostile}=1",
        f"{SERVICE}check/{hostile}",
        f"{SERVICE}launch/doi/{hostile}",
        f"{SERVICE}launch/git?url={hostile}&ref={hostile}",
        f"{SERVICE}link/{hostile}",
        f"{SERVICE}no/such/{hostile}",
    ]
    problems = []
    # every page of a compendium, of another user's candidate: the 404 page, and nothing of
    # it; without identity, the hub's login (it may be the caller's own)
    private = {**values, "compendium_id": world.candidate, "job_id": world.job}
    for pattern, _handler in page_handlers():
        if "compendium_id" not in pattern:
            continue
        path = page_path(pattern, private)
        other = await erc.request("GET", path, "bob", headers=NAVIGATE)
        if other.status_code != 404 or 'data-status="404"' not in other.text:
            problems.append(f"GET {path} [another user]: {other.status_code}")
        anonymous = await erc.request("GET", path, None, headers=NAVIGATE)
        if anonymous.status_code != 302 or "/hub/login" not in anonymous.headers["location"]:
            problems.append(f"GET {path} [no identity]: {anonymous.status_code}")
        if SEARCH_WORD in other.text + anonymous.text:
            problems.append(f"GET {path}: shows the candidate")
    sandboxed = set()
    for token in (world.owner, "bob", None, f"{VIEWER} as {SCOPE_READ}"):
        for path in paths:
            if "/launch/" in path and path.endswith(world.published):
                continue  # starts a session through the hub's API: the hub tier's
            response = await erc.request("GET", path, token, headers=NAVIGATE)
            problems += [f"GET {path} [{token}]: {p}" for p in answer_problems(response)]
            if response.headers.get("content-security-policy", "").startswith("sandbox"):
                sandboxed.add(path)
            if response.status_code >= 500:
                problems.append(f"GET {path} [{token}]: {response.status_code}")
    assert not problems, "\n".join(problems)
    assert sandboxed == {
        f"{SERVICE}compendium/{world.published}/display",
        f"{SERVICE}compendium/{world.published}/job/job-of-{world.published}/report",
    }
    # the landing page shows every hostile field, as text
    landing = await erc.request("GET", f"{SERVICE}compendium/{world.published}", world.owner)
    text = landing.text
    for needle in ("Rules &lt;script&gt;window.ercXss=1&lt;/script&gt;", "&#34;&gt;&lt;svg"):
        assert needle in text
    assert 'href="https://doi.org/10.1234/&#34;&gt;&lt;svg/onload=window.ercXss=6&gt;"' in text
    assert "<code>&#34;&gt;&lt;svg onload=window.ercXss=9&gt;.txt</code>" in text
    # the JSON-LD for search engines holds the hostile fields as data: nothing in it ends its
    # script element or opens another
    start = text.index('<script type="application/ld+json"')
    body = text[text.index(">", start) + 1 : text.index("</script>", start)]
    assert "<" not in body and ">" not in body
    json_ld = json.loads(body)
    assert json_ld["name"] == HOSTILE_METADATA["title"]
    assert json_ld["creator"][0]["name"] == HOSTILE


def test_the_check_report_shows_hostile_notebooks_as_text() -> None:
    """Every text of the report comes from the compendium's files (its main file's name, cells,
    outputs, the names compared): none of it is markup; figures are data: images."""
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" onload="window.ercXss=7">{PAYLOADS[0]}</svg>'

    def cell(outputs: list[Any]) -> Any:
        made = v4.new_code_cell(f"print({PAYLOADS[0]!r})", outputs=outputs, execution_count=1)
        made.id = "cell-1"
        return made

    def outputs(variant: str) -> list[Any]:
        return [
            v4.new_output("stream", name="stdout", text=f"{PAYLOADS[1]} {variant}\n"),
            v4.new_output(
                "execute_result",
                data={"text/html": f"{PAYLOADS[2]} {variant}", "text/plain": variant},
                execution_count=1,
            ),
            v4.new_output("display_data", data={"image/svg+xml": svg.replace("7", variant)}),
            v4.new_output("error", ename=PAYLOADS[3], evalue=variant, traceback=[PAYLOADS[0]]),
        ]

    original = v4.new_notebook(cells=[cell(outputs("1"))])
    reproduced = v4.new_notebook(cells=[cell(outputs("2"))])
    html = render_report(
        compare_notebooks(original, reproduced),
        title=f"Check of {HOSTILE}.ipynb",
        original_name=HOSTILE,
        reproduced_name=f"job {PAYLOADS[1]}",
    )
    assert "Differences" in html
    parser = Markup()
    parser.feed(html)
    tags = {tag for tag, _attrs in parser.tags}
    assert not tags & {"script", "svg", "iframe", "object", "embed"}, tags
    assert markup_problems(html, None) == ["<style> without the response's nonce: {}"]
    for tag, attrs in parser.tags:
        if tag == "img":
            assert (attrs["src"] or "").startswith("data:image/"), attrs
