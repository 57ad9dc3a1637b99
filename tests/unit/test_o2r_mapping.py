"""The pure parts of erchub's mapping of o2r's API: user levels from scopes, the compendia
that o2r's ``GET /compendium?job_id=`` selects, and o2r's Elasticsearch-style search bodies."""

from __future__ import annotations

import pytest

from erchub.errors import Invalid
from erchub.services.handlers.base import SCOPE_ADMIN, SCOPE_CREATE, SCOPE_READ, SCOPE_RUN
from erchub.services.handlers.compendium import selected_compendia
from erchub.services.handlers.job import detailed_steps
from erchub.services.handlers.search import SearchRequest, parse_search_body, resources_wanted
from erchub.services.handlers.user import LEVEL_ADMIN, LEVEL_NEW, LEVEL_USER, o2r_level
from erchub.services.store import CompendiumQuery, CompendiumRecord
from erchub.steps import StepName


@pytest.mark.parametrize(
    ("scopes", "level"),
    [
        ({SCOPE_ADMIN}, LEVEL_ADMIN),
        ({SCOPE_ADMIN, SCOPE_READ}, LEVEL_ADMIN),
        ({SCOPE_READ, SCOPE_CREATE, SCOPE_RUN, "self"}, LEVEL_USER),
        ({SCOPE_READ, SCOPE_RUN}, LEVEL_NEW),
        (set(), LEVEL_NEW),
    ],
)
def test_o2r_levels_follow_the_erc_scopes(scopes: set[str], level: int) -> None:
    assert o2r_level(scopes) == level
    assert (LEVEL_ADMIN, LEVEL_USER, LEVEL_NEW) == (1000, 100, 0)  # o2r's values


def record(
    compendium_id: str, user: str, *, candidate: bool, created: float, doi: str | None = None
) -> CompendiumRecord:
    metadata = {"identifier": {"doi": doi}} if doi else {}
    return CompendiumRecord(
        compendium_id, user, candidate=candidate, metadata=metadata, created=created
    )


PUBLISHED_OLD = record("old", "alice", candidate=False, created=1.0, doi="10.5281/ZENODO.1")
PUBLISHED_NEW = record("new", "bob", candidate=False, created=3.0)
ALICES_CANDIDATE = record("draft", "alice", candidate=True, created=2.0)
BOBS_CANDIDATE = record("secret", "bob", candidate=True, created=4.0)
ALL = [PUBLISHED_OLD, ALICES_CANDIDATE, PUBLISHED_NEW, BOBS_CANDIDATE, PUBLISHED_OLD]


def ids(query: CompendiumQuery) -> tuple[list[str], int]:
    page, total = selected_compendia(ALL, query)
    return [r.id for r in page], total


def test_published_compendia_of_the_jobs_newest_first_each_once() -> None:
    assert ids(CompendiumQuery(viewer="alice")) == (["new", "old"], 2)


def test_candidates_only_the_viewers_own_but_all_for_an_administrator() -> None:
    assert ids(CompendiumQuery(viewer="alice", candidate=True)) == (["draft"], 1)
    assert ids(CompendiumQuery(viewer=None, candidate=True)) == (["secret", "draft"], 2)


def test_user_and_doi_filters_and_paging() -> None:
    assert ids(CompendiumQuery(viewer="bob", user="alice")) == (["old"], 1)
    assert ids(CompendiumQuery(viewer="bob", doi="10.5281/zenodo.1")) == (["old"], 1)
    assert ids(CompendiumQuery(viewer="bob", start=1, limit=1)) == (["old"], 2)
    assert ids(CompendiumQuery(viewer="bob", start=2)) == ([], 2)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, SearchRequest("*")),
        ({"query": {"match_all": {}}, "from": 5, "size": 10}, SearchRequest("*", True, 5, 10)),
        ({"query": {"query_string": {"query": " sine wave "}}}, SearchRequest("sine wave")),
        ({"query": {"multi_match": {"query": "sine", "fields": ["t"]}}}, SearchRequest("sine")),
        ({"query": {"match": {"metadata.o2r.title": "sine"}}}, SearchRequest("sine")),
        ({"query": {"match": {"title": {"query": "wave"}}}}, SearchRequest("wave")),
        ({"query": {"bool": {"must": {"match_all": {}}}}}, SearchRequest("*")),
        ({"query": {"terms": {"_index": ["jobs"]}}}, SearchRequest("*", compendia=False)),
        ({"query": {"terms": {"_index": ["compendia"]}}}, SearchRequest("*")),
    ],
)
def test_the_elasticsearch_queries_o2rs_clients_send_map_onto_erchubs_search(
    body: dict[str, object], expected: SearchRequest
) -> None:
    assert parse_search_body(body) == expected


TEMPORAL = {"range": {"metadata.o2r.temporal.begin": {"from": "2015-03-01T00:00:00.000Z"}}}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"query": {"bool": {"must": {"match_all": {}}, "filter": [TEMPORAL]}}}, "filter"),
        ({"query": {"geo_shape": {}}}, "geo_shape"),
        ({"query": {"match_all": {}}, "aggs": {}}, "aggs"),
        ({"query": {"terms": {"_index": ["papers"]}}}, "resources"),
        ({"query": {"query_string": {"query": "   "}}}, "query_string"),
        ({"size": 0}, "size"),
        ({"from": -1}, "from"),
        ({"from": 26188790744875406385064544567296}, "from must be an integer between 0"),
        ({"size": True}, "size"),
        ([], "JSON object"),
    ],
)
def test_other_queries_are_refused_naming_what_erchub_does_not_run(
    body: object, named: str
) -> None:
    with pytest.raises(Invalid, match=named):
        parse_search_body(body)


def test_o2rs_resources_select_compendia() -> None:
    assert resources_wanted(["all"]) and resources_wanted(["jobs", "compendia"])
    assert not resources_wanted(["jobs"])
    with pytest.raises(Invalid, match="resources"):
        resources_wanted(["papers"])


def test_o2rs_steps_argument_names_the_steps_shown_with_their_text() -> None:
    assert set(detailed_steps("all")) == set(StepName)
    chosen = detailed_steps("generate_configuration, check")
    assert "check" in chosen and "generate_configuration" in chosen
    assert "image_build" not in chosen
    assert not any(name in detailed_steps(value) for value in (None, "", "no") for name in StepName)
