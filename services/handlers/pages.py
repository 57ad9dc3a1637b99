"""Pages of the `erc` service for browsers: the base of every HTML handler.

A page renders a jinja2 template of ``services/templates/``. Without identity, a GET is sent
through the hub's login and comes back (BaseHandler.username); errors are an HTML page saying
what went wrong in plain words, with the status code the API would give.
"""

from __future__ import annotations

from functools import cache
from http import HTTPStatus
from typing import Any

import jinja2
from jupyterhub.utils import url_path_join

from erchub.services.handlers.base import BaseHandler


@cache
def template_environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("erchub.services", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


class PageHandler(BaseHandler):
    """A page of the service: HTML in, HTML errors out."""

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
        self.clear_header("Content-Type")
        self.render_page(
            "error.html", status_code, status=status_code, title=title, message=message
        )
