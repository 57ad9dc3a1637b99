"""The catalogue, ``GET /services/erc/``: the published compendia, newest first, paged, with a
search box; each row links its landing page.

``?q=`` searches with the store's full-text search (as ``GET /search``: every word must match,
prefixes too; best first); ``start`` and ``limit`` page as in the API (default 20 a page).
The catalogue is the public one: published compendia only, for everyone (an author's
candidates are on the hub's home page), readable without logging in (:mod:`.reading`).
"""

from __future__ import annotations

from urllib.parse import urlencode

from tornado import web

from erchub.services.exchange.o2r import keywords_of, text_of
from erchub.services.handlers.reading import (
    ANONYMOUS,
    ReaderPageHandler,
    authors_of,
    day_of,
    title_of,
)
from erchub.services.store import MAX_SEARCH_TEXT, CompendiumQuery, CompendiumRecord

#: compendia a page lists unless ``limit`` says otherwise
PAGE_SIZE = 20
#: the longest search text (characters), as the search API's
#: characters of a description a row shows
SNIPPET_CHARS = 280


def snippet(text: str | None, limit: int = SNIPPET_CHARS) -> str | None:
    """The start of ``text`` on one line, cut at a word with "…" when longer than ``limit``.
    Pure."""
    if not text:
        return None
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,.;:") + "…"


def row_of(record: CompendiumRecord) -> dict[str, object]:
    metadata = record.metadata
    return {
        "id": record.id,
        "title": title_of(record),
        "authors": [author["name"] for author in authors_of(metadata)],
        "published": text_of(metadata.get("publication_date")) or day_of(record.created),
        "keywords": keywords_of(metadata),
        "description": snippet(text_of(metadata.get("description"))),
    }


class CataloguePageHandler(ReaderPageHandler):
    async def get(self) -> None:
        self.check_arguments(("q", "start", "limit"))
        text = " ".join(self.get_query_argument("q", "").split())
        if len(text) > MAX_SEARCH_TEXT:
            raise web.HTTPError(400, f"the search text is longer than {MAX_SEARCH_TEXT} characters")
        start, limit = self.paging(default_limit=PAGE_SIZE)
        # the public catalogue: what everyone sees, whoever asks
        if text:
            hits, total = await self.blocking(
                self.store.search_compendia, text, viewer=ANONYMOUS, start=start, limit=limit
            )
            records = [hit.compendium for hit in hits]
        else:
            query = CompendiumQuery(viewer=ANONYMOUS, start=start, limit=limit)
            records, total = await self.blocking(self.store.list_compendia, query)

        def page_link(page_start: int) -> str:
            arguments = {"q": text} if text else {}
            if page_start:
                arguments["start"] = str(page_start)
            if limit != PAGE_SIZE:
                arguments["limit"] = str(limit)
            return self.service_url() + (f"?{urlencode(arguments)}" if arguments else "")

        self.render_page(
            "catalogue.html",
            q=text,
            rows=[row_of(record) for record in records],
            total=total,
            first=start + 1,
            last=start + len(records),
            newer=page_link(max(start - limit, 0)) if start > 0 else None,
            older=page_link(start + limit) if start + limit < total else None,
            login_url=self.login_link(),
        )


default_handlers = [(r"", CataloguePageHandler)]
