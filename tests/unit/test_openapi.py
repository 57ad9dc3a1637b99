"""The OpenAPI document is valid 3.1 and covers every route of the service."""

from __future__ import annotations

import re

from openapi_spec_validator import validate
from tornado import web

from erchub.services.handlers import api_handlers, monitoring_handlers
from erchub.services.openapi import build_document

PREFIX = "/services/erc/api/v1"
METHODS = ("get", "post", "put", "delete", "patch")


def openapi_path(pattern: str) -> str:
    """A tornado route pattern as an OpenAPI path: (?P<id>[^/]+) -> {id}, \\. -> ."""
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern)
    return path.replace("\\", "")


def test_document_is_valid_openapi_3_1() -> None:
    document = build_document(PREFIX)
    assert document["openapi"].startswith("3.1")
    validate(document)
    assert document["servers"] == [{"url": PREFIX}]


def test_every_route_and_method_is_documented() -> None:
    paths = build_document(PREFIX)["paths"]
    for pattern, handler in api_handlers():
        path = openapi_path(pattern)
        assert path in paths, f"route {pattern} ({handler.__name__}) missing from the document"
        methods = {
            name
            for name in METHODS
            if getattr(handler, name) is not getattr(web.RequestHandler, name)
        }
        documented = {m for m in paths[path] if m in METHODS}
        assert methods == documented, f"{path}: handler has {methods}, document {documented}"


def test_every_documented_path_has_a_route() -> None:
    routes = {openapi_path(pattern) for pattern, _ in api_handlers()}
    # paths with a server of their own are beside the API, below the service's prefix
    beside = {openapi_path(pattern) for pattern, _ in monitoring_handlers()}
    for path, item in build_document(PREFIX)["paths"].items():
        assert path in (beside if "servers" in item else routes), path


def test_error_responses_use_the_error_schema() -> None:
    document = build_document(PREFIX)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:  # the path's own fields (servers)
                continue
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    ref = response.get("$ref", "")
                    schema = response.get("content", {}).get("application/json", {}).get("schema")
                    assert ref.startswith("#/components/responses/") or schema == {
                        "$ref": "#/components/schemas/Error"
                    }, f"{method.upper()} {path} {status}"
