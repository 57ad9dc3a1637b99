"""Shipping compendia (o2r's shipper): the recipients, a Zenodo deposit client, users' tokens.

Recipients keep o2r's names: ``download`` (the compendium as a BagIt bag in a zip, streamed to
the caller), ``zenodo`` and ``zenodo_sandbox`` (a deposition through Zenodo's REST API, at the
base URLs of the service's ``zenodo_url`` and ``zenodo_sandbox_url`` settings, so that a site
can point them at its own Zenodo or InvenioRDM instance).

A shipment to Zenodo is two steps, as in o2r: shipping creates a deposition
(``POST /api/deposit/depositions``), uploads the bag zip through the bucket API
(``PUT <links.bucket>/<name>``, streamed from the file) and sets the deposit metadata
(``PUT /api/deposit/depositions/{id}``); publishing
(``POST /api/deposit/depositions/{id}/actions/publish``) registers the DOI. Zenodo's answers
become :class:`ShipperError` with a status for the caller and a message in plain words: a
refused token (401, 403) a 400 saying so, validation errors a 400 naming each field, anything
else (5xx, an unreachable host, a time-out, an answer that is not JSON) a 502 naming Zenodo.

Tokens are the user's own Zenodo personal access tokens (scopes ``deposit:write`` and
``deposit:actions``): sent with a request, or kept in the store encrypted with JupyterHub's
CryptKeeper (the key in ``JUPYTERHUB_CRYPT_KEY``, as the hub's ``auth_state``). They go into an
``Authorization`` header and nowhere else: never into a message, a log line or a response.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.iostream import StreamClosedError

from erchub import __version__
from erchub.errors import ErchubError

log = logging.getLogger(__name__)

DOWNLOAD = "download"
ZENODO = "zenodo"
ZENODO_SANDBOX = "zenodo_sandbox"

#: seconds to wait for a connection to Zenodo, for an API call's answer, and for an upload
CONNECT_TIMEOUT = 20.0
REQUEST_TIMEOUT = 120.0
UPLOAD_TIMEOUT = 6 * 3600.0
#: bytes read from the bag zip per write of an upload
UPLOAD_CHUNK = 1024 * 1024
#: characters of a message from Zenodo passed on to the caller
MAX_UPSTREAM_MESSAGE = 300
#: a token: printable ASCII without spaces (it goes into a header), of a sane length
MAX_TOKEN_LENGTH = 2000
#: Zenodo's page for creating a personal access token
TOKEN_PAGE = "/account/settings/applications/tokens/new/"
TOKEN_SCOPES = "deposit:write and deposit:actions"
#: the header a token may travel in instead of the JSON body
TOKEN_HEADER = "Zenodo-Token"


@dataclass(frozen=True)
class Recipient:
    id: str
    label: str
    #: the service setting holding its base URL; None for the download
    url_setting: str | None

    @property
    def needs_token(self) -> bool:
        return self.url_setting is not None


RECIPIENTS: dict[str, Recipient] = {
    r.id: r
    for r in (
        Recipient(DOWNLOAD, "Download (BagIt zip)", None),
        Recipient(ZENODO, "Zenodo", "zenodo_url"),
        Recipient(ZENODO_SANDBOX, "Zenodo Sandbox", "zenodo_sandbox_url"),
    )
}


class ShipperError(ErchubError):
    """A shipment that cannot go on: ``status`` for the caller (400, 403, 404, 502, ...), and a
    message in plain words that never holds a token."""

    def __init__(self, status: int, message: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        #: what Zenodo answered, when it answered with an error
        self.upstream_status = upstream_status


# -- tokens ------------------------------------------------------------------------------------


def token_problem(token: Any, field: str) -> str | None:
    """What is wrong with ``token`` as a Zenodo token, naming ``field`` but never the value."""
    if not isinstance(token, str):
        return f"{field}: must be a string"
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return f"{field}: must be 1 to {MAX_TOKEN_LENGTH} characters long"
    if not all("\x21" <= char <= "\x7e" for char in token):
        return f"{field}: must be printable ASCII characters without spaces"
    return None


def missing_token_message(recipient: Recipient, base_url: str, api_prefix: str) -> str:
    """The 400 of a shipment without a token: how to set one."""
    return (
        f"no {recipient.label} token: send your personal access token as zenodo_token in the "
        f"request body or in the {TOKEN_HEADER} header, or store it once with "
        f'PUT {api_prefix}/recipient/{recipient.id}/token {{"token": "..."}}; create one at '
        f"{base_url.rstrip('/')}{TOKEN_PAGE} with the scopes {TOKEN_SCOPES}"
    )


def crypt_keeper() -> Any:
    """JupyterHub's CryptKeeper, its keys from JUPYTERHUB_CRYPT_KEY.

    Made with an empty config: its default config is the running JupyterHub app's, and
    in the erc service the running app is the service (asking for it would fail).
    """
    from jupyterhub.crypto import CryptKeeper
    from traitlets.config import Config

    return CryptKeeper.instance(config=Config())


def encryption_problem() -> str | None:
    """Why tokens cannot be stored here (no key, no cryptography library), or None."""
    from jupyterhub.crypto import EncryptionUnavailable

    try:
        crypt_keeper().check_available()
    except EncryptionUnavailable as error:
        return str(error)
    except ValueError as error:  # a malformed key
        return f"JUPYTERHUB_CRYPT_KEY is not a valid key: {error}"
    return None


async def encrypt_token(token: str) -> str:
    """``token`` encrypted with the hub's CryptKeeper (a Fernet token, ASCII); 400 without a
    key, naming what to set."""
    problem = encryption_problem()
    if problem:
        raise ShipperError(
            400,
            f"tokens cannot be stored here: {problem} (the same key as the hub's auth_state, "
            f"for the hub and the erc service); send the token with each request instead "
            f"(zenodo_token in the body or the {TOKEN_HEADER} header)",
        )
    encrypted: bytes = await crypt_keeper().encrypt(token)
    return encrypted.decode("ascii")


async def decrypt_token(encrypted: str, recipient: Recipient, api_prefix: str) -> str:
    """A stored token in clear; 400 when it cannot be read back (no key, or another key)."""
    from jupyterhub.crypto import InvalidToken

    again = (
        f"store it again with PUT {api_prefix}/recipient/{recipient.id}/token, or send it "
        f"with the request"
    )
    problem = encryption_problem()
    if problem:
        raise ShipperError(
            400, f"your stored {recipient.label} token cannot be decrypted: {problem}; {again}"
        )
    try:
        token = await crypt_keeper().decrypt(encrypted.encode("ascii"))
    except (InvalidToken, ValueError, UnicodeError):
        raise ShipperError(
            400,
            f"your stored {recipient.label} token cannot be decrypted with the current "
            f"JUPYTERHUB_CRYPT_KEY; {again}",
        ) from None
    if not isinstance(token, str) or token_problem(token, "token"):
        raise ShipperError(400, f"your stored {recipient.label} token is unusable; {again}")
    return token


# -- Zenodo's answers --------------------------------------------------------------------------


def _short(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_UPSTREAM_MESSAGE:
        text = text[: MAX_UPSTREAM_MESSAGE - 3] + "..."
    return text


def upstream_message(body: bytes) -> str:
    """The message of an error answer of Zenodo (its JSON ``message`` and ``errors``: each
    field with its messages), short and on one line; empty when there is none."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(document, dict):
        return ""
    message = document.get("message")
    parts = [message.strip().rstrip(".")] if isinstance(message, str) and message.strip() else []
    errors = document.get("errors")
    details = []
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        field = error.get("field")
        said = error.get("messages", error.get("message"))
        texts = [said] if isinstance(said, str) else said if isinstance(said, list) else []
        text = " ".join(str(t).strip() for t in texts if str(t).strip())
        if field or text:
            details.append(f"{field}: {text}" if field else text)
    if details:
        parts.append("; ".join(details))
    return _short(": ".join(parts))


def zenodo_error(label: str, action: str, status: int, body: bytes) -> ShipperError:
    """Zenodo's error answer to ``action`` as what the caller is told."""
    error = _zenodo_error(label, action, status, upstream_message(body))
    error.upstream_status = status
    return error


def _zenodo_error(label: str, action: str, status: int, said: str) -> ShipperError:
    detail = f": {said}" if said else ""
    if status == 401:
        return ShipperError(
            400,
            f"{label} refused the token while {action} (401): check it, or create a new one "
            f"with the scopes {TOKEN_SCOPES}",
        )
    if status == 403:
        return ShipperError(
            400,
            f"{label} refused the token while {action} (403{detail}): it lacks the scopes "
            f"{TOKEN_SCOPES}, or the deposition belongs to another {label} account",
        )
    if status in (400, 409, 413, 422):
        what = "rejected the request" if status != 413 else "found the upload too large"
        return ShipperError(400, f"{label} {what} while {action} ({status}{detail})")
    if status == 404:
        return ShipperError(502, f"{label} does not know the deposition while {action} (404)")
    return ShipperError(502, f"{label} failed while {action} ({status}{detail})")


#: the deposit metadata Zenodo requires before it publishes
REQUIRED_DEPOSIT_FIELDS = ("upload_type", "title", "creators", "description")


def missing_deposit_fields(metadata: dict[str, Any]) -> list[str]:
    """The fields Zenodo requires that deposit ``metadata`` lacks (checked before any upload)."""
    return [name for name in REQUIRED_DEPOSIT_FIELDS if metadata.get(name) in (None, "", [], {})]


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


# -- the deposit client ------------------------------------------------------------------------


#: the fields of a deposition file that the API passes on (Zenodo's names, as o2r's shipper
#: passes them on)
DEPOSITION_FILE_FIELDS = ("id", "filename", "filesize", "checksum", "links")


class ZenodoClient:
    """Zenodo's deposit API at ``base_url`` with one user's ``token``."""

    def __init__(
        self,
        base_url: str,
        token: str,
        label: str = "Zenodo",
        *,
        http: AsyncHTTPClient | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
        upload_timeout: float = UPLOAD_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.label = label
        self._token = token
        self._http = http or AsyncHTTPClient()
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.upload_timeout = upload_timeout

    def __repr__(self) -> str:  # never the token
        return f"ZenodoClient({self.base_url!r})"

    def deposition_url(self, deposition_id: str) -> str:
        return f"{self.base_url}/api/deposit/depositions/{quote(str(deposition_id), safe='')}"

    async def _call(
        self,
        method: str,
        url: str,
        action: str,
        *,
        document: Any = None,
        body_producer: Callable[[Callable[[bytes], Any]], Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        all_headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/json",
            "User-Agent": f"erchub/{__version__}",
            **(headers or {}),
        }
        body: bytes | None = None
        if document is not None:
            body = json.dumps(document).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        elif body_producer is None and method in ("POST", "PUT"):
            body = b""
        request = HTTPRequest(
            url,
            method=method,
            headers=all_headers,
            body=body,
            body_producer=body_producer,
            connect_timeout=self.connect_timeout,
            request_timeout=timeout or self.request_timeout,
            follow_redirects=False,
        )
        try:
            response: HTTPResponse = await self._http.fetch(request, raise_error=False)
        except HTTPClientError as error:  # 599: time-out, connection closed
            raise ShipperError(
                502, f"{self.label} ({self.base_url}) did not answer while {action}: {error}"
            ) from None
        except (OSError, StreamClosedError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            raise ShipperError(
                502, f"{self.label} ({self.base_url}) is unreachable while {action}: {reason}"
            ) from None
        if not 200 <= response.code < 300:
            log.info("%s answered %d while %s", self.label, response.code, action)
            raise zenodo_error(self.label, action, response.code, response.body or b"")
        if response.code == 204:  # done, nothing to say (a file deleted)
            return {}
        try:
            answer = json.loads(response.body or b"")
        except (ValueError, UnicodeDecodeError):
            answer = None
        if not isinstance(answer, dict):
            raise ShipperError(
                502, f"{self.label} answered {response.code} without a JSON object while {action}"
            )
        return answer

    async def create_deposition(self) -> dict[str, Any]:
        """A new, empty deposition: ``id``, ``links.bucket``, ``links.html``, ..."""
        deposition = await self._call(
            "POST", f"{self.base_url}/api/deposit/depositions", "creating a deposition", document={}
        )
        if deposition.get("id") in (None, ""):
            raise ShipperError(502, f"{self.label} created a deposition without an id")
        return deposition

    def bucket_of(self, deposition: dict[str, Any]) -> str:
        """The deposition's bucket URL; 502 when missing or on another host than Zenodo's
        (the token goes there)."""
        links = deposition.get("links")
        bucket = links.get("bucket") if isinstance(links, dict) else None
        if not isinstance(bucket, str) or not bucket:
            raise ShipperError(502, f"{self.label} gave the deposition no bucket link")
        if origin(bucket) != origin(self.base_url):
            raise ShipperError(
                502, f"{self.label} gave a bucket link outside {origin(self.base_url)}"
            )
        return bucket.rstrip("/")

    async def upload(self, bucket_url: str, filename: str, path: Path) -> dict[str, Any]:
        """PUT the file at ``path`` into the bucket as ``filename``, streamed."""
        loop = asyncio.get_running_loop()
        size = await loop.run_in_executor(None, os.path.getsize, path)

        async def produce(write: Callable[[bytes], Any]) -> None:
            stream = await loop.run_in_executor(None, open, path, "rb")
            try:
                while chunk := await loop.run_in_executor(None, stream.read, UPLOAD_CHUNK):
                    await write(chunk)
            finally:
                await loop.run_in_executor(None, stream.close)

        return await self._call(
            "PUT",
            f"{bucket_url}/{quote(filename, safe='')}",
            f"uploading {filename}",
            body_producer=produce,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            timeout=self.upload_timeout,
        )

    async def set_metadata(self, deposition_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
        return await self._call(
            "PUT",
            self.deposition_url(deposition_id),
            "setting the deposition's metadata",
            document={"metadata": metadata},
        )

    async def get_deposition(self, deposition_id: str) -> dict[str, Any]:
        return await self._call("GET", self.deposition_url(deposition_id), "reading the deposition")

    async def list_files(self, deposition_id: str) -> list[dict[str, Any]]:
        """The deposition's files (Zenodo's deposition resource holds them), each with
        :data:`DEPOSITION_FILE_FIELDS`; 502 when Zenodo answers with something else."""
        deposition = await self.get_deposition(deposition_id)
        files = deposition.get("files")
        if files is None:
            return []
        if not isinstance(files, list) or not all(
            isinstance(entry, dict) and isinstance(entry.get("id"), str | int) for entry in files
        ):
            raise ShipperError(502, f"{self.label} listed the deposition's files in a form it "
                               "does not have")  # fmt: skip
        return [
            {**{key: entry.get(key) for key in DEPOSITION_FILE_FIELDS}, "id": str(entry["id"])}
            for entry in files
        ]

    async def delete_file(self, deposition_id: str, file_id: str) -> None:
        """Delete a file of the (unpublished) deposition (Zenodo answers 204)."""
        url = f"{self.deposition_url(deposition_id)}/files/{quote(file_id, safe='')}"
        await self._call("DELETE", url, "deleting a file of the deposition")

    async def publish(self, deposition_id: str) -> dict[str, Any]:
        """Publish the deposition; Zenodo answers 202 with its ``doi`` and ``doi_url``."""
        deposition = await self._call(
            "POST",
            f"{self.deposition_url(deposition_id)}/actions/publish",
            "publishing the deposition",
        )
        doi = deposition.get("doi")
        if not isinstance(doi, str) or not doi.strip():
            raise ShipperError(502, f"{self.label} published the deposition without a DOI")
        return deposition


def deposition_page(deposition: dict[str, Any]) -> str | None:
    """The web page of a deposition (its record once published)."""
    links = deposition.get("links")
    if not isinstance(links, dict):
        return None
    for name in ("record_html", "html"):
        page = links.get(name)
        if isinstance(page, str) and page.startswith(("https://", "http://")):
            return page
    return None
