"""erchub.redact: URL credentials, credential query arguments and auth headers out of logs."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator

import pytest

from erchub.redact import (
    LOGGERS,
    REDACTING_FILTER,
    SECRET,
    RedactingFilter,
    install_log_redaction,
    redact_text,
    redact_url,
)

TOKEN = "0f3c9a7be21d4c55a1d2e3f4a5b6c7d8"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # query arguments of the service's requests (tornado's warnings show the whole URI)
        (
            f"401 GET /services/erc/api/v1/compendium?token={TOKEN}&limit=2 (127.0.0.1): no",
            "401 GET /services/erc/api/v1/compendium?token=[secret]&limit=2 (127.0.0.1): no",
        ),
        ("/x?_xsrf=2|ab|cd|17&a=1", "/x?_xsrf=[secret]&a=1"),
        ("/x?a=1&access_token=abc#top", "/x?a=1&access_token=[secret]#top"),
        (
            "/oauth_callback?code=C0DE&state=eyJzdGF0ZSI6MX0",
            "/oauth_callback?code=[secret]&state=[secret]",
        ),
        ("/x?TOKEN=abc", "/x?TOKEN=[secret]"),
        # review links: whoever has the id reads the candidate
        (
            "200 GET /services/erc/compendium/Ab1?link=Zx9-Qw_1234567890abcdefghij (1.2.3.4)",
            "200 GET /services/erc/compendium/Ab1?link=[secret] (1.2.3.4)",
        ),
        (
            "302 GET /services/erc/link/Zx9-Qw_1234567890abcdefghij (1.2.3.4)",
            "302 GET /services/erc/link/[secret] (1.2.3.4)",
        ),
        (
            "200 GET /services/erc/api/v1/link (1.2.3.4)",
            "200 GET /services/erc/api/v1/link (1.2.3.4)",
        ),
        (
            "/x?client_secret=a&refresh_token=b&password=c",
            "/x?client_secret=[secret]&refresh_token=[secret]&password=[secret]",
        ),
        ("/x?a=1&amp;token=abc", "/x?a=1&amp;token=[secret]"),
        # a URL inside another URL's query: percent-encoded once, twice, or not at all
        (
            f"/hub/login?next=%2Fservices%2Ferc%2Fcheck%2Fc1%3Ftoken%3D{TOKEN}%26x%3D1",
            "/hub/login?next=%2Fservices%2Ferc%2Fcheck%2Fc1%3Ftoken%3D[secret]%26x%3D1",
        ),
        (
            f"/hub/error/500?url=%2Fx%253Ftoken%253D{TOKEN}%2526y%253D2",
            "/hub/error/500?url=%2Fx%253Ftoken%253D[secret]%2526y%253D2",
        ),
        (f"/login?next=/x?token={TOKEN}&y=2", "/login?next=/x?token=[secret]&y=2"),
        # user information of URLs: whole, also when the password holds an @
        (
            "postgresql+psycopg://erchub:hunter2@127.0.0.1:5432/erchub",
            "postgresql+psycopg://[secret]@127.0.0.1:5432/erchub",
        ),
        (
            "PIP_INDEX_URL=https://build:s3cret@pypi.example.org/simple https://pypi.org/simple",
            "PIP_INDEX_URL=https://[secret]@pypi.example.org/simple https://pypi.org/simple",
        ),
        ("https://ghp_abc@github.com/o/r.git", "https://[secret]@github.com/o/r.git"),
        (
            "mongodb://u:p@ss@db:27017/ercs?authSource=admin",
            "mongodb://[secret]@db:27017/ercs?authSource=admin",
        ),
        ("url=https%3A%2F%2Fuser%3Apw%40host%2Fpath", "url=https%3A%2F%2F[secret]%40host%2Fpath"),
        # "name=value" in plain text: credentials by name; code= and state= only in URLs
        (f"token={TOKEN}", "token=[secret]"),
        ("using api_token=abc now", "using api_token=[secret] now"),
        ("token='abc' or token=\"def\"", "token='[secret]' or token=\"[secret]\""),
    ],
)
def test_redact_url(text: str, expected: str) -> None:
    assert redact_url(text) == expected
    assert redact_url(expected) == expected, "redacting twice changes nothing"


@pytest.mark.parametrize(
    "text",
    [
        "GET /services/erc/api/v1/compendium?limit=2&start=10",
        "/hub/api/oauth2/authorize?client_id=service-erc&response_type=code",
        "worker pid 12 exited with code=1, restarting",
        "state=running",
        "https://zenodo.org/records/123 and http://127.0.0.1:8081/hub/api",
        "next_page=2 tokens counted: 3",
        "",
    ],
)
def test_what_holds_no_secret_is_unchanged(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Authorization: token {TOKEN}", "Authorization: token [secret]"),
        ("authorization: Bearer abc.def-ghi", "authorization: Bearer [secret]"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [secret]"),
        (
            f"{{'Authorization': 'token {TOKEN}', 'Accept': 'application/json'}}",
            "{'Authorization': 'token [secret]', 'Accept': 'application/json'}",
        ),
        ('{"Authorization": "bearer X1"}', '{"Authorization": "bearer [secret]"}'),
        ("Zenodo-Token: zz-top", "Zenodo-Token: [secret]"),
        ("{'Zenodo-Token': 'zz'}", "{'Zenodo-Token': '[secret]'}"),
        ('{"zenodo_token": "zz"}', '{"zenodo_token": "[secret]"}'),
        # JupyterHub's HubOAuth, when a callback's state is not the browser's
        (
            "oauth state argument 'St4te' != cookie service-erc-oauth-state='0ther'",
            "oauth state argument '[secret]' != cookie service-erc-oauth-state='[secret]'",
        ),
        (
            f"headers Authorization: token {TOKEN} for https://u:p@h/x?token={TOKEN}",
            "headers Authorization: token [secret] for https://[secret]@h/x?token=[secret]",
        ),
    ],
)
def test_redact_text_hides_auth_headers(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected


def test_the_zenodo_token_header_named_in_a_message_is_no_secret() -> None:
    text = "no Zenodo token: send zenodo_token in the body or the Zenodo-Token header"
    assert redact_text(text) == text


@pytest.mark.parametrize(
    "text",
    [
        " " + "tokentoken" * 6000,
        "://" * 21000,
        "%3A%2F%2F" * 7000,
        "?" + "token=a" * 9000,
        "a&" * 30000,
        "Authorization: token " * 3000,
        "x" * 60000 + " token=" + "y" * 60000,
    ],
)
def test_redaction_takes_linear_time(text: str) -> None:
    """Request URIs are the client's (up to 64 KiB): no input makes a log line expensive."""
    started = time.perf_counter()
    redact_text(text)
    assert time.perf_counter() - started < 0.5


# -- the logging filter ---------------------------------------------------------------------


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own writing to a string through a handler with the filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.redact.captured")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def test_the_filter_redacts_messages_and_arguments(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    # tornado's HTTPError warning: "%d %s: " + log_message, status, request summary
    logger.warning("%d %s: %s", 401, f"GET /x?token={TOKEN} (127.0.0.1)", "authentication")
    logger.info(f"Authorization: token {TOKEN}")
    logger.info("%(url)s", {"url": f"https://u:{TOKEN}@h/"})
    logger.debug("nothing secret: %s", 42)
    written = stream.getvalue()
    assert TOKEN not in written
    assert "401 GET /x?token=[secret] (127.0.0.1): authentication" in written
    assert "Authorization: token [secret]" in written
    assert "https://[secret]@h/" in written
    assert "nothing secret: 42" in written


def test_the_filter_redacts_tracebacks_and_stacks(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    try:
        raise RuntimeError(f"cannot fetch https://hub/api/user?token={TOKEN}")
    except RuntimeError:
        logger.exception("uncaught")
    logger.info("here", stack_info=True, extra={})
    written = stream.getvalue()
    assert TOKEN not in written
    assert "RuntimeError: cannot fetch https://hub/api/user?token=[secret]" in written
    assert "Traceback" in written and "Stack (most recent call last)" in written


def test_the_filter_lets_a_bad_format_through(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    """A record logging cannot format is reported as logging does, not lost in the filter."""
    logger, _stream = captured
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "%d", ("x",), None)
    assert RedactingFilter().filter(record)
    assert record.msg == "%d" and record.args == ("x",)


def test_install_puts_one_filter_on_loggers_and_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    # the process's root handlers (pytest's among them) and last resort stay untouched
    root_handler = logging.StreamHandler(io.StringIO())
    monkeypatch.setattr(logging.getLogger(), "handlers", [root_handler])
    monkeypatch.setattr(logging, "lastResort", logging.StreamHandler(io.StringIO()))
    logger = logging.getLogger("tests.redact.installed")
    handler = logging.StreamHandler(io.StringIO())
    logger.addHandler(handler)
    named = [logging.getLogger(name) for name in ("", *LOGGERS)]
    before = {id(filterer): list(filterer.filters) for filterer in named}
    try:
        installed = install_log_redaction([logger])
        install_log_redaction([logger])  # twice: still one filter each
        assert installed is REDACTING_FILTER
        for filterer in (logger, handler, root_handler, logging.lastResort, *named):
            assert filterer is not None
            assert filterer.filters.count(REDACTING_FILTER) == 1, filterer
        # a handler's filter sees what child loggers propagate to it
        logging.getLogger("tests.redact.installed.child").warning("/x?token=%s", TOKEN)
        assert handler.stream.getvalue() == f"/x?token={SECRET}\n"
    finally:
        logger.removeHandler(handler)
        for filterer in named:
            filterer.filters[:] = before[id(filterer)]
