"""Secrets out of logs and messages: the one redactor of erchub.

:func:`redact_url` hides what URLs carry: the user information (``user:password@``, ``token@``),
the values of query arguments that are credentials (``token=``, ``_xsrf=``, ``access_token=``,
``code=``, ``state=``, a review link's ``link=``, any name containing ``token``, ``secret``,
``password`` or ``oauth-state``), also when the URL is itself percent-encoded inside another
URL's query (a ``next=`` or ``url=`` argument), and the id of a review link's page
(``/link/<id>``: whoever has it may read a candidate). :func:`redact_text` adds the credentials
of HTTP headers (``Authorization: token|bearer|basic <x>``, ``Zenodo-Token: <x>``), as headers,
dicts or keyword arguments print them, and the OAuth state of JupyterHub's warning ``oauth state
argument '<x>'``. What is hidden becomes :data:`SECRET`, JupyterHub's own placeholder.

:class:`RedactingFilter` applies :func:`redact_text` to every log record (message, traceback,
stack) that passes it; :func:`install_log_redaction` puts the one filter on the loggers and
handlers of a process (the erc service and its workers do it at start).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

SECRET = "[secret]"

#: query argument names whose values are credentials: these, and any name containing one of
#: SECRET_NAME_PARTS (api_token, refresh_token, client_secret, zenodo_token, ...)
SECRET_ARGUMENTS = ("token", "_xsrf", "access_token", "code", "state", "link")
SECRET_NAME_PARTS = ("token", "secret", "password", "passwd", "oauth-state", "oauth_state")

# A query argument: after ? & or ; of a URL, also percent-encoded once (%3F, %26) or twice
# (%253F, %2526) when the URL travels in another URL's query; or "name=value" in plain text
# (at the start, after white space, a bracket or a comma), where code= and state= are not
# taken for credentials. Names and values are matched whole, without backtracking: request
# URLs are the client's, and no URL of 64 KiB may make a log line expensive.
_URL_SEPARATORS = ("?", "&", ";", "%3f", "%26", "%253f", "%2526")
_ARGUMENT = re.compile(
    r"(?P<sep>[?&;]|%3f|%26|%253f|%2526|^|[\s(\[{,])"
    r"(?P<name>[\w.\-]+)(?P<equals>=|%3d|%253d)(?P<quote>['\"]?)"
    # the value ends where another argument or query may start (& ; ? or their encodings:
    # a next= argument may hold a whole URL), at a fragment, white space, a quote or an
    # angle bracket
    r"(?P<value>(?:(?!%26|%2526|%3f|%253f)[^?&;#\s\"'<>\\])+)",
    re.IGNORECASE,
)
# scheme://userinfo@host: everything between :// and the last @ before the path (a password
# may hold @), also in a percent-encoded URL (%3A%2F%2F...%40)
_AUTHORITY = re.compile(r"(?<=://)[^/\s\"'<>\\]+")
_ENCODED_AUTHORITY = re.compile(r"(?<=%3a%2f%2f)(?:(?!%2f)[^/\s\"'<>\\&?#])+", re.IGNORECASE)
# Authorization: token <x> | bearer <x> | basic <x>, in a header line, a dict's repr or JSON
_AUTHORIZATION = re.compile(
    r"(?P<head>\bauthorization[\"']?\s*[:=]\s*[\"']?\s*(?:token|bearer|basic)\s+)"
    r"(?!\[secret\])(?P<value>[^\s\"',;}\]]+)",
    re.IGNORECASE,
)
# HubOAuth's warning "oauth state argument '<x>' != cookie <name>-oauth-state='<y>'"
_STATE_ARGUMENT = re.compile(
    r"(?P<head>\b(?:state|code|token)\s+argument\s+['\"]?)(?!\[secret\])(?P<value>[^\s'\"]+)",
    re.IGNORECASE,
)
# Zenodo-Token: <x> (the shipment's header), zenodo_token: <x> / = <x> (its body field)
_TOKEN_HEADER = re.compile(
    r"(?P<head>\bzenodo[-_]token[\"']?\s*[:=]\s*[\"']?\s*)(?!\[secret\])"
    r"(?P<value>[^\s\"',;}\]]+)",
    re.IGNORECASE,
)


# a review link's page: /link/<id> (ids are long; the API's /link list has none)
_LINK_PATH = re.compile(r"(?<=/link/)[\w-]{16,}")


def redact_url(text: str) -> str:
    """``text`` (a URL, or any text holding URLs) with the user information of its URLs and
    the values of their credential query arguments replaced by ``[secret]``."""
    if not text:
        return text
    text = _AUTHORITY.sub(lambda match: _hide_userinfo(match.group(0), "@"), text)
    text = _ENCODED_AUTHORITY.sub(lambda match: _hide_userinfo(match.group(0), "%40"), text)
    text = _LINK_PATH.sub(SECRET, text)
    return _ARGUMENT.sub(_hide_argument, text)


def redact_text(text: str) -> str:
    """:func:`redact_url` of ``text``, and the credentials of ``Authorization`` and
    ``Zenodo-Token`` headers in it replaced by ``[secret]``."""
    if not text:
        return text
    text = _AUTHORIZATION.sub(rf"\g<head>{SECRET}", text)
    text = _TOKEN_HEADER.sub(rf"\g<head>{SECRET}", text)
    text = _STATE_ARGUMENT.sub(rf"\g<head>{SECRET}", text)
    return redact_url(text)


def is_secret_argument(name: str, in_url: bool = True) -> bool:
    """Whether the query argument ``name`` carries a credential (``code`` and ``state`` only
    in a URL, where they are OAuth's)."""
    name = name.lower()
    if name in ("code", "state"):
        return in_url
    return name in SECRET_ARGUMENTS or any(part in name for part in SECRET_NAME_PARTS)


def _hide_userinfo(authority: str, at: str) -> str:
    """``authority`` (``userinfo@host:port``) with everything before its last ``at`` hidden."""
    index = authority.lower().rfind(at.lower())
    if index < 0 or authority[:index] == SECRET:
        return authority
    return SECRET + authority[index:]


def _hide_argument(match: re.Match[str]) -> str:
    sep, name, value = match.group("sep"), match.group("name"), match.group("value")
    if value == SECRET or not is_secret_argument(name, sep.lower() in _URL_SEPARATORS):
        return match.group(0)
    return f"{sep}{name}{match.group('equals')}{match.group('quote')}{SECRET}"


class RedactingFilter(logging.Filter):
    """Rewrites each record's message, traceback and stack with :func:`redact_text`; lets
    every record pass. On a handler it sees every record the handler writes (also those
    propagated from other loggers); on a logger, only the records logged on that logger."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the handler reports it as logging does
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # what a formatter would write, made now so that it can be redacted
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


#: the one filter of the process
REDACTING_FILTER = RedactingFilter()

#: loggers whose records carry request URLs and headers: tornado's (access log, HTTPError
#: warnings with the request's URI, uncaught exceptions), JupyterHub's (HubAuth), erchub's
LOGGERS = (
    "tornado",
    "tornado.access",
    "tornado.application",
    "tornado.general",
    "jupyterhub",
    "JupyterHub",
    "traitlets",
    "erchub",
)


def install_log_redaction(
    loggers: Iterable[logging.Logger | str] = (),
) -> RedactingFilter:
    """Put :data:`REDACTING_FILTER` on the root logger, on :data:`LOGGERS` and ``loggers``, on
    each of their handlers and on logging's last-resort handler (which writes the warnings of
    loggers without handlers). Handlers added later to these loggers do not have it: call this
    once logging is set up. Calling it again adds nothing twice."""
    targets: list[logging.Logger] = [logging.getLogger()]
    for logger in (*LOGGERS, *loggers):
        targets.append(logging.getLogger(logger) if isinstance(logger, str) else logger)
    filterers: list[logging.Filterer] = []
    for logger in targets:
        filterers.append(logger)
        filterers.extend(logger.handlers)
    if logging.lastResort is not None:
        filterers.append(logging.lastResort)
    for filterer in filterers:
        if REDACTING_FILTER not in filterer.filters:
            filterer.addFilter(REDACTING_FILTER)
    return REDACTING_FILTER
