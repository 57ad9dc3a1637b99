"""Reading without logging in: the rule of the readers' pages (the catalogue, the landing pages
and what they link: downloads, display, reports).

A published compendium is public: it is what an author links from a paper. So a GET of a
reader's page needs no identity:

- a caller with ``custom:erc:read`` (or admin) reads as themself, under the service's
  visibility rules (:meth:`BaseHandler.can_see`, the store's viewer): their own candidates
  too, everything for an erc admin;
- any other caller (no hub cookie or token, a token without the scope, a user who may not use
  the service) reads as :data:`ANONYMOUS`, a viewer name no hub user can have (JupyterHub
  names are never empty), so the same rules show them published compendia and their jobs
  only;
- a compendium a caller without identity may not see sends them through the hub's login and
  back (it may be their own candidate), as every page of the service does; nothing of it is
  shown. After the login it is the 404 page for anyone but its author and erc admins.

Nothing else is open: these pages change nothing, the API needs identity and its scopes as
before, and "Launch" and "Check" go through the hub's login.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from tornado import web

from erchub.services.exchange.o2r import creators_of, orcid_of, text_of
from erchub.services.handlers.base import AUTH_ARGUMENTS, SCOPE_ADMIN, SCOPE_READ, iso
from erchub.services.handlers.pages import PageHandler
from erchub.services.store import CompendiumRecord

#: the store's viewer for a reader without identity: matches no author
ANONYMOUS = ""


class ReaderPageHandler(PageHandler):
    """A page anyone may read (see the module's docstring)."""

    @property
    def anonymous(self) -> bool:
        """Whether the caller reads as :data:`ANONYMOUS`."""
        return not self.scopes & {SCOPE_READ, SCOPE_ADMIN}

    @property
    def without_identity(self) -> bool:
        """Whether the caller sent no identity at all (a login could give them one)."""
        return self.current_user is None and self.not_allowed is None

    @property
    def username(self) -> str:
        """The caller's name, :data:`ANONYMOUS` for an anonymous reader (never a redirect to
        the login: the visibility rules of the base class apply to that name)."""
        if self.anonymous:
            return ANONYMOUS
        return super().username

    async def readable_compendium(self, compendium_id: str) -> CompendiumRecord:
        """The compendium if the caller may read it; else, for a caller without identity, the
        hub's login (and back here), for anyone else 404."""
        try:
            return await self.visible_compendium(compendium_id)
        except web.HTTPError as error:
            if error.status_code == 404 and self.without_identity:
                self.redirect(self.get_login_url())
                raise web.Finish() from None
            raise

    def login_link(self) -> str | None:
        """The service's login page coming back here, for a caller without identity; else
        None."""
        if not self.without_identity:
            return None
        # the page's own arguments; a token sent in the URL is not written into the page
        kept = [
            (name, value.decode("utf-8", "replace"))
            for name, values in self.request.query_arguments.items()
            if name not in AUTH_ARGUMENTS
            for value in values
        ]
        here = self.request.path + (f"?{urlencode(kept)}" if kept else "")
        return self.service_url("login") + "?" + urlencode({"next": here})


def day_of(timestamp: float | None) -> str | None:
    """POSIX seconds as the day they fall on, ``YYYY-MM-DD`` (UTC), as the pages show dates."""
    iso_time = iso(timestamp)
    return iso_time[:10] if iso_time else None


def authors_of(metadata: Mapping[str, Any]) -> list[dict[str, str | None]]:
    """The compendium's authors as the pages show them: name, ORCID iD (bare), affiliation."""
    return [
        {
            "name": text_of(creator.get("name")),
            "orcid": orcid_of(creator.get("orcid")),
            "affiliation": text_of(creator.get("affiliation")),
        }
        for creator in creators_of(metadata)
    ]


def title_of(record: CompendiumRecord) -> str:
    """The title a page shows: the metadata's, else the compendium's id."""
    return text_of(record.metadata.get("title")) or f"Compendium {record.id}"
