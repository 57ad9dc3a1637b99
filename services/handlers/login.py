"""The service's login page: ``GET login?next=PATH`` logs a browser in to the service and goes
back to ``next``.

The service knows a browser by its own HubOAuth cookie (path: the service prefix), which exists
only after the browser went through the service's OAuth once. Pages of the hub (home) that call
the API from their scripts send the browser here when the API answers 401.

Scripts on those pages also need the service's XSRF token: the hub's rules (JupyterHub 6) accept
a cookie-authenticated ``fetch()`` only with an ``X-XSRFToken`` header matching the service's
``_xsrf`` cookie, and that cookie is out of reach of scripts on hub pages (its path is the
service prefix). So this page hands the token over in a cookie that hub pages can read,
:data:`XSRF_HANDOFF_COOKIE` (path: the hub prefix).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tornado import web

from erchub.services.handlers.pages import PageHandler

#: the cookie holding the service's XSRF token for scripts of hub pages (hub/templates/home.html
#: reads it under this name)
XSRF_HANDOFF_COOKIE = "erchub-service-xsrf"
#: the longest ``next`` accepted (characters)
MAX_NEXT = 2000


def is_local_path(target: str) -> bool:
    """Whether ``target`` is an absolute path on this host: ``/...``, never ``//host``, a
    scheme, a backslash (browsers read ``/\\host`` as ``//host``), whitespace or a control
    character (browsers drop some, and a header cannot carry them)."""
    if not target.startswith("/") or target.startswith("//") or len(target) > MAX_NEXT:
        return False
    if "\\" in target or any(not 0x21 <= ord(char) <= 0x7E for char in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


class LoginHandler(PageHandler):
    guest_methods = frozenset({"GET"})

    async def get(self) -> None:
        self.check_arguments(("next",))
        target = self.get_query_argument("next", "")
        if not is_local_path(target):
            raise web.HTTPError(
                400, "next must be a path on this site (starting with a single /), not a URL"
            )
        # a browser without identity goes through the hub's login and comes back here
        user = self.username
        self.log.debug("%s logged in to the service", user)
        self.set_cookie(
            XSRF_HANDOFF_COOKIE,
            self.xsrf_token.decode("ascii"),
            path=self.hub_url,
            samesite="Strict",
            secure=self.request.protocol == "https",
        )
        self.redirect(target)


default_handlers = [(r"/login", LoginHandler)]
