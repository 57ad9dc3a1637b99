"""Pages of the `erc` service for browsers: the base of every HTML handler.

A page renders a jinja2 template of ``services/templates/``. Without identity, a GET is sent
through the hub's login and comes back (BaseHandler.username); errors are an HTML page saying
what went wrong in plain words, with the status code the API would give.

Every answer of a page handler (pages, error pages, redirects) carries :func:`page_headers`: a
strict Content-Security-Policy whose only inline script and style are the page's own (a
nonce per response, ``csp_nonce`` in templates), framing by pages of this site only
(``frame-ancestors 'self'``, ``X-Frame-Options: SAMEORIGIN``; a page of another site cannot
frame the check page's "Start check" button), and ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import secrets
from functools import cache
from http import HTTPStatus
from typing import Any

import jinja2
from jupyterhub.utils import url_path_join
from tornado import web

from erchub.services.handlers.base import BaseHandler


@cache
def template_environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("erchub.services", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def page_policy(nonce: str) -> str:
    """The Content-Security-Policy of the service's pages: everything from this site (the
    service's API, the hub's pages), inline ``<script>`` and ``<style>`` only with ``nonce``,
    no plugins, framed by pages of this site only."""
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            f"style-src 'self' 'nonce-{nonce}'",
            "img-src 'self' data:",
            "object-src 'none'",
            "frame-ancestors 'self'",
            "base-uri 'self'",
            "form-action 'self'",
        )
    )


def page_headers(handler: web.RequestHandler, nonce: str) -> None:
    """The security headers of a page of the service (see the module's docstring)."""
    handler.set_header("Content-Security-Policy", page_policy(nonce))
    handler.set_header("X-Frame-Options", "SAMEORIGIN")
    handler.set_header("X-Content-Type-Options", "nosniff")


class PageHandler(BaseHandler):
    """A page of the service: HTML in, HTML errors out."""

    #: the nonce of this response's inline script and style (a new one after ``clear()``,
    #: which an error does before its page is rendered)
    csp_nonce = ""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.csp_nonce = secrets.token_urlsafe(18)
        page_headers(self, self.csp_nonce)

    def is_page_request(self) -> bool:
        return True

    @property
    def hub_url(self) -> str:
        """The hub's own pages (``/hub/``), as the browser reaches them through the proxy."""
        return str(self.hub_auth.hub_prefix)

    def service_url(self, *parts: str) -> str:
        return str(url_path_join(self.service.base_url, *parts))

    def render_page(self, template: str, http_status: int = 200, **namespace: Any) -> None:
        self.set_status(http_status)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        html = (
            template_environment()
            .get_template(template)
            .render(
                hub_url=self.hub_url,
                service_url=self.service_url(),
                user=(self.current_user or {}).get("name"),
                xsrf_token=self.xsrf_token.decode("ascii"),
                csp_nonce=self.csp_nonce,
                **namespace,
            )
        )
        self.finish(html)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        try:
            title = HTTPStatus(status_code).phrase
        except ValueError:
            title = "Error"
        message = self.error_message(status_code, kwargs.get("exc_info"))
        self.close_after_error()
        self.clear_header("Content-Type")
        self.render_page(
            "error.html", status_code, status=status_code, title=title, message=message
        )


class NotFoundPageHandler(PageHandler):
    """Any path of the service that matches no page or API route: an HTML 404 with the
    pages' headers (the API's own prefix answers JSON, see NotFoundHandler)."""

    async def prepare(self) -> None:
        await super().prepare()  # the caller's name, for the page's header
        raise web.HTTPError(404, "there is no such page")
