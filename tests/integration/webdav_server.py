"""A real WebDAV server on 127.0.0.1 for the tests, set up as ownCloud and Nextcloud serve
public shares: wsgidav (its file system provider, Basic authentication only) answers at
``/public.php/webdav/`` for each share, the token as user name and the share's password (empty
for none); the request's user name picks the share, an unknown one is refused (401). The share
link ``/s/TOKEN`` is a page (200) while the share exists, else 404, as their pages are. It
records every request (so that a test can assert that the server was never contacted) and can
be made slow (``delay`` seconds before each answer)."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from wsgidav.wsgidav_app import WsgiDAVApp

from tests.integration.serving import ServedInThread

WEBDAV_PATH = "/public.php/webdav"
StartResponse = Callable[..., Any]


def _dav_app(folder: Path, users: dict[str, dict[str, str]]) -> WsgiDAVApp:
    """wsgidav serving ``folder`` at the public WebDAV path to ``users`` (Basic only)."""
    return WsgiDAVApp(
        {
            "provider_mapping": {WEBDAV_PATH: {"root": str(folder), "readonly": True}},
            "simple_dc": {"user_mapping": {"*": users}},
            "http_authenticator": {
                "accept_basic": True,
                "accept_digest": False,
                "default_to_digest": False,
            },
            "dir_browser": {"enable": False},
            "lock_storage": False,
            "verbose": 0,
            "logging": {"enable": False},
        }
    )


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class WebDavServer(ServedInThread):
    """``with WebDavServer(tmp) as server``: ``server.share("TOKEN", folder, password)``
    publishes a folder, ``server.link("TOKEN")`` is its share link; ``server.requests`` what
    it was asked, ``server.delay`` makes it slow."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.delay = 0.0
        self.requests: list[tuple[str, str]] = []
        self.shares: dict[str, WsgiDAVApp] = {}
        #: answers 401 to every user name: the endpoint for an unknown token (wsgidav wants a
        #: user; no request knows this one's password)
        self.nobody = _dav_app(root, {"nobody": {"password": secrets.token_hex()}})
        self.server = make_server(
            "127.0.0.1", 0, self.app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        self.serve_in_thread()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def link(self, token: str) -> str:
        return f"http://127.0.0.1:{self.port}/s/{token}"

    def share(self, token: str, folder: Path, password: str = "") -> None:
        self.shares[token] = _dav_app(folder, {token: {"password": password}})

    def unshare(self, token: str) -> None:
        del self.shares[token]

    def app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        self.requests.append((environ["REQUEST_METHOD"], path))
        if self.delay:
            time.sleep(self.delay)
        if path.startswith("/s/"):
            known = path[3:].strip("/") in self.shares
            status = "200 OK" if known else "404 Not Found"
            body = b"<html>a share</html>" if known else b"<html>not found</html>"
            start_response(
                status, [("Content-Type", "text/html"), ("Content-Length", str(len(body)))]
            )
            return [body]
        return self.shares.get(self._user(environ), self.nobody)(environ, start_response)

    @staticmethod
    def _user(environ: dict[str, Any]) -> str:
        scheme, _, credentials = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "basic":
            return ""
        try:
            return base64.b64decode(credentials).decode().partition(":")[0]
        except ValueError:
            return ""
