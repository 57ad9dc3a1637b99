"""Review links at the hub: ``/hub/review/<link id>``, the way in for a journal's reviewer.

A reviewer who is logged in goes on to the link's landing page in the erc service. One who is
not is offered the hub's login, and, where the operator allows it
(:attr:`ReviewGuestsMixin.review_guests`), "Continue as a guest": a POST that makes them a
hub user of their own for this link alone (:mod:`erchub.reviewers`), logs them in and sends
them on. A guest may open only that link's compendium (the spawner and the erc service refuse
anything else) and is deleted by the erc service when the link is revoked or expires.

The link is checked with the erc service (``GET api/v1/link/<id>``, which needs no identity)
before anything is offered or made: a link that is unknown, revoked or expired is the hub's
404 page, and no guest is made for it.

:class:`ReviewGuestsMixin` adds the handler to an Authenticator (JupyterHub's way for an
authenticator to bring its own pages, ``Authenticator.get_handlers``); erchub's authenticators
(:class:`ERCDummyAuthenticator`, ``erchub.hub.orcid.ORCIDOAuthenticator``) have it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from jupyterhub.auth import DummyAuthenticator
from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Bool, Unicode
from traitlets.config import Configurable

from erchub.reviewers import is_guest, is_guest_of, is_link_id, new_guest_name

#: seconds the hub waits for the erc service to say whether a link is in force
LINK_CHECK_TIMEOUT = 10
GONE = "this review link does not exist or no longer works"


class ReviewGuestsMixin(Configurable):
    """An Authenticator with erchub's review-link page (see the module)."""

    review_guests = Bool(
        False,
        help="""Whether a review link may be opened without an account: the visitor becomes a
        guest of the hub that may open only that link's compendium and is deleted when the
        link ends. The erc service must allow it too (ERCService.review_guests);
        erchub.hub.config.configure_review_guests sets both (default: False).""",
    ).tag(config=True)

    review_service_name = Unicode(
        "erc",
        help="The hub's name of the erc service that keeps the review links (default: erc).",
    ).tag(config=True)

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        handlers: list[tuple[str, Any]] = super().get_handlers(app)  # type: ignore[misc]
        return [*handlers, (r"/review/([^/]+)", ReviewLinkHandler)]


class ERCDummyAuthenticator(ReviewGuestsMixin, DummyAuthenticator):
    """JupyterHub's DummyAuthenticator (development only) with erchub's review-link page."""


class ReviewLinkHandler(BaseHandler):
    """``/hub/review/<link id>`` (see the module)."""

    @property
    def guests_allowed(self) -> bool:
        return bool(getattr(self.authenticator, "review_guests", False))

    def service(self) -> Any:
        name = getattr(self.authenticator, "review_service_name", "erc")
        service = self.services.get(name)
        if service is None or not service.url:
            raise web.HTTPError(503, f"the hub has no {name} service that keeps review links")
        return service

    def landing_url(self, link_id: str) -> str:
        """The link's page in the erc service, through the service's login (which logs the
        browser in to the service and goes on)."""
        prefix = self.service().prefix
        target = url_path_join(prefix, "link", quote(link_id, safe=""))
        return url_path_join(prefix, "login") + "?" + urlencode({"next": target})

    async def link_in_force(self, link_id: str) -> dict[str, Any]:
        """The erc service's answer about the link; the 404 page when it is not in force."""
        if not is_link_id(link_id):
            raise web.HTTPError(404, GONE)
        service = self.service()
        url = url_path_join(service.url, service.prefix, "api/v1/link", quote(link_id, safe=""))
        try:
            response = await AsyncHTTPClient().fetch(
                HTTPRequest(url, request_timeout=LINK_CHECK_TIMEOUT)
            )
        except HTTPClientError as error:
            if error.code == 404:
                raise web.HTTPError(404, GONE) from None
            self.log.warning("the erc service answered %s about a review link", error.code)
            raise web.HTTPError(503, "the erc service cannot say whether this link works") from None
        except OSError as error:
            self.log.warning("the erc service cannot be reached: %s", error)
            raise web.HTTPError(503, "the erc service cannot be reached; try again later") from None
        answer: dict[str, Any] = json.loads(response.body)
        return answer

    def welcome(self, link_id: str) -> bool:
        """Whether the caller is someone this link may take in as they are: a user logged in
        (not a guest of another link)."""
        user = self.current_user
        return user is not None and (not is_guest(user.name) or is_guest_of(user.name, link_id))

    async def get(self, link_id: str) -> None:
        link = await self.link_in_force(link_id)
        if self.welcome(link_id):
            self.redirect(self.landing_url(link_id))
            return
        login_url = self.get_login_url() + "?" + urlencode({"next": self.request.uri})
        html = await self.render_template(
            "review.html",
            link=link,
            login_url=login_url,
            guests=self.guests_allowed and bool(link.get("guests")),
        )
        self.finish(html)

    async def post(self, link_id: str) -> None:
        link = await self.link_in_force(link_id)
        if self.welcome(link_id):
            self.redirect(self.landing_url(link_id))
            return
        if not (self.guests_allowed and link.get("guests")):
            raise web.HTTPError(403, "this hub lets only its users open review links: log in")
        guest = self.user_from_username(new_guest_name(link_id))
        self.set_login_cookie(guest)
        self.log.info("review guest %s made for a link to %s", guest.name, link["compendium_id"])
        self.redirect(self.landing_url(link_id))
