"""``GET /search?q=...`` and o2r's ``POST /search``: full-text search over compendia, ranked
and paged.

Covers title, description, authors, keywords and file names (the store ranks: title and
authors first). Candidates are found only by their author. The answer carries erchub's
``{"q", "results", "total"}`` and o2r's Elasticsearch-style ``hits`` (``total``,
``max_score``, ``hits: [{"_score", "_source"}]``, the source being the compendium with its
``metadata.o2r``). ``q=*`` (o2r's "everything") lists the visible published compendia.

o2r's ``resources`` (``compendia``, ``jobs``, ``all``): erchub indexes compendia only, so
``jobs`` alone finds nothing. ``POST /search`` takes the subset of Elasticsearch's query DSL
that maps onto this search (see :func:`parse_search_body`); anything else is a 400 naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tornado import web

from erchub.errors import Invalid
from erchub.services.handlers.base import (
    MAX_PAGE,
    MAX_START,
    SCOPE_READ,
    BaseHandler,
    iso,
    needs_scope,
)
from erchub.services.store import MAX_SEARCH_TEXT, CompendiumQuery, SearchHit

#: o2r's names of what a search covers; erchub's index holds compendia only
RESOURCES = ("compendia", "jobs", "all")
#: o2r's query for everything
EVERYTHING = "*"
#: results per page unless the request says
DEFAULT_LIMIT = 20


@dataclass(frozen=True)
class SearchRequest:
    """A search as erchub runs it: the words (``*``: everything), whether compendia are
    wanted at all, and the page."""

    text: str
    compendia: bool = True
    start: int = 0
    limit: int = DEFAULT_LIMIT


def resources_wanted(names: list[str]) -> bool:
    """Whether o2r's ``resources`` (index names) include compendia; Invalid for an unknown
    one."""
    unknown = [name for name in names if name not in RESOURCES]
    if unknown or not names:
        raise Invalid(f"resources is a list of {', '.join(RESOURCES)}")
    return "compendia" in names or "all" in names


def _words(query: dict[str, Any]) -> str:
    """The words of one Elasticsearch query clause erchub can run."""
    if set(query) == {"match_all"}:
        return EVERYTHING
    for kind in ("query_string", "simple_query_string", "multi_match"):
        if set(query) == {kind} and isinstance(query[kind], dict):
            text = query[kind].get("query")
            if isinstance(text, str) and text.strip():
                return text.strip()
    if set(query) == {"match"} and isinstance(query["match"], dict) and len(query["match"]) == 1:
        (value,) = query["match"].values()
        text = value.get("query") if isinstance(value, dict) else value
        if isinstance(text, str) and text.strip():
            return text.strip()
    raise Invalid(
        "query must be match_all, match, multi_match, query_string or simple_query_string "
        "with a query text, a terms query on _index, or a bool query whose must is one of "
        f"those; erchub does not run {', '.join(sorted(query)) or 'an empty query'} "
        "(temporal and spatial filters among them)"
    )


def parse_search_body(body: Any) -> SearchRequest:
    """o2r's ``POST /search`` body (Elasticsearch's query DSL) as erchub's search.

    Mapped: ``query`` of ``match_all``, ``match`` (one field, all of erchub's fields are
    searched), ``multi_match``/``query_string``/``simple_query_string`` (their ``query``
    text), ``terms: {_index: [...]}`` (o2r's resources), ``bool`` with one such ``must`` and
    nothing else; ``from`` and ``size``. Anything else (filters: o2r's temporal ranges and
    spatial shapes, aggregations, sorting) is Invalid, named.
    """
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object with query, from and size")
    extra = sorted(set(body) - {"query", "from", "size"})
    if extra:
        raise Invalid(f"erchub's search does not take {', '.join(extra)}")
    start, limit = body.get("from", 0), body.get("size", DEFAULT_LIMIT)
    if not isinstance(start, int) or isinstance(start, bool) or not 0 <= start <= MAX_START:
        raise Invalid(f"from must be an integer between 0 and {MAX_START}")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"size must be an integer between 1 and {MAX_PAGE}")
    query = body.get("query", {"match_all": {}})
    if not isinstance(query, dict):
        raise Invalid("query must be a JSON object")
    if set(query) == {"bool"} and isinstance(query["bool"], dict):
        clauses = query["bool"]
        if set(clauses) != {"must"} or not isinstance(clauses["must"], dict):
            raise Invalid("a bool query may only have one must clause (no filter, should, ...)")
        query = clauses["must"]
    if set(query) == {"terms"} and isinstance(query["terms"], dict):
        indices = query["terms"].get("_index")
        if set(query["terms"]) != {"_index"} or not isinstance(indices, list):
            raise Invalid("a terms query may only name _index: [compendia, jobs]")
        names = [name for name in indices if isinstance(name, str)]
        if len(names) != len(indices):
            raise Invalid("_index lists names")
        return SearchRequest(EVERYTHING, resources_wanted(names), start, limit)
    text = _words(query)
    if len(text) > MAX_SEARCH_TEXT:
        raise Invalid(f"the query text is longer than {MAX_SEARCH_TEXT} characters")
    return SearchRequest(text, True, start, limit)


def hit_json(hit: SearchHit) -> dict[str, Any]:
    record = hit.compendium
    metadata = record.metadata
    return {
        "id": record.id,
        "score": round(hit.score, 6),
        "title": metadata.get("title"),
        "description": metadata.get("description"),
        "creators": [c.get("name") for c in metadata.get("creators") or [] if isinstance(c, dict)],
        "keywords": metadata.get("keywords") or [],
        "user": record.user,
        "candidate": record.candidate,
        "created": iso(record.created),
    }


def o2r_hits(hits: list[SearchHit], total: int) -> dict[str, Any]:
    """The hits as o2r answers them (Elasticsearch's ``hits``, without its internal fields)."""
    return {
        "total": total,
        # o2r's schema has a number (Elasticsearch's null when nothing matched)
        "max_score": max((round(hit.score, 6) for hit in hits), default=0.0),
        "hits": [
            {
                "_score": round(hit.score, 6),
                "_source": {
                    "id": hit.compendium.id,
                    "user": hit.compendium.user,
                    "candidate": hit.compendium.candidate,
                    "created": iso(hit.compendium.created),
                    "metadata": {"o2r": hit.compendium.metadata},
                },
            }
            for hit in hits
        ],
    }


class SearchHandler(BaseHandler):
    @needs_scope(SCOPE_READ)
    async def get(self) -> None:
        self.check_arguments(("q", "start", "limit", "resources"))
        text = self.get_query_argument("q", "").strip()
        if not text:
            raise web.HTTPError(400, "q is required: the words to search for (* for everything)")
        if len(text) > MAX_SEARCH_TEXT:
            raise web.HTTPError(400, f"q is longer than {MAX_SEARCH_TEXT} characters")
        start, limit = self.paging(default_limit=DEFAULT_LIMIT)
        resources = self.get_query_argument("resources", "all")
        compendia = resources_wanted([name.strip() for name in resources.split(",")])
        await self.answer(SearchRequest(text, compendia, start, limit))

    @needs_scope(SCOPE_READ)
    async def post(self) -> None:
        self.check_arguments()
        await self.answer(parse_search_body(self.json_body()))

    async def answer(self, request: SearchRequest) -> None:
        hits: list[SearchHit] = []
        total = 0
        if request.compendia and request.text == EVERYTHING:
            query = CompendiumQuery(viewer=self.viewer, start=request.start, limit=request.limit)
            records, total = await self.blocking(self.store.list_compendia, query)
            hits = [SearchHit(record, 1.0) for record in records]
        elif request.compendia:
            hits, total = await self.blocking(
                self.store.search_compendia,
                request.text,
                viewer=self.viewer,
                start=request.start,
                limit=request.limit,
            )
        self.write_json(
            {
                "q": request.text,
                "results": [hit_json(hit) for hit in hits],
                "total": total,
                "hits": o2r_hits(hits, total),
            }
        )


default_handlers = [(r"/search", SearchHandler)]
