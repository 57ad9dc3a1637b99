"""``GET /search?q=...``: full-text search over compendia, ranked and paged.

Covers title, description, authors, keywords and file names (the store ranks: title and
authors first). Candidates are found only by their author.
"""

from __future__ import annotations

from typing import Any

from tornado import web

from erchub.services.handlers.base import SCOPE_READ, BaseHandler, iso, needs_scope
from erchub.services.store import MAX_SEARCH_TEXT, SearchHit


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


class SearchHandler(BaseHandler):
    @needs_scope(SCOPE_READ)
    async def get(self) -> None:
        self.check_arguments(("q", "start", "limit"))
        text = self.get_query_argument("q", "").strip()
        if not text:
            raise web.HTTPError(400, "q is required: the words to search for")
        if len(text) > MAX_SEARCH_TEXT:
            raise web.HTTPError(400, f"q is longer than {MAX_SEARCH_TEXT} characters")
        start, limit = self.paging(default_limit=20)
        hits, total = await self.blocking(
            self.store.search_compendia, text, viewer=self.viewer, start=start, limit=limit
        )
        self.write_json({"q": text, "results": [hit_json(h) for h in hits], "total": total})


default_handlers = [(r"/search", SearchHandler)]
