"""The ``recipient`` resource (o2r's shipper): where compendia can be shipped, and the caller's
stored tokens.

- ``GET /recipient``: ``{"recipients": [{"id", "label", "url", "needs_token",
  "token_stored"}]}`` for ``download``, ``zenodo`` and ``zenodo_sandbox`` (their base URLs are
  the service's ``zenodo_url`` and ``zenodo_sandbox_url`` settings); ``token_stored`` says
  whether the caller has stored a token, never the token.
- ``PUT /recipient/{recipient}/token`` ``{"token": "..."}``: keeps the caller's token for that
  recipient, encrypted with JupyterHub's CryptKeeper (key ``JUPYTERHUB_CRYPT_KEY``); 400 when
  no key is configured (tokens sent with each request work without one). 200
  ``{"id", "token_stored": true}``.
- ``DELETE /recipient/{recipient}/token``: forgets it; 204 (also when none was stored).

Scopes: reading needs ``custom:erc:read``, storing and deleting tokens ``custom:erc:create``.
"""

from __future__ import annotations

import time
from typing import Any

from tornado import web

from erchub.services.exchange.shipper import (
    RECIPIENTS,
    Recipient,
    ShipperError,
    encrypt_token,
    token_problem,
)
from erchub.services.handlers.base import SCOPE_CREATE, SCOPE_READ, BaseHandler, needs_scope


class RecipientBase(BaseHandler):
    def recipient_url(self, recipient: Recipient) -> str | None:
        """The recipient's base URL (the service's setting), None for the download."""
        if recipient.url_setting is None:
            return None
        return str(getattr(self.service, recipient.url_setting)).rstrip("/")

    def token_recipient(self, recipient_id: str) -> Recipient:
        """The recipient of a token route: 404 for an unknown one, 400 for the download."""
        recipient = RECIPIENTS.get(recipient_id)
        if recipient is None:
            raise web.HTTPError(
                404, f"no recipient {recipient_id[:40]!r}; recipients: {', '.join(RECIPIENTS)}"
            )
        if not recipient.needs_token:
            raise web.HTTPError(400, f"the {recipient.id} recipient needs no token")
        return recipient


class RecipientsHandler(RecipientBase):
    """``/recipient``: the recipients, and whether the caller stored a token for each."""

    @needs_scope(SCOPE_READ)
    async def get(self) -> None:
        user = self.username
        self.check_arguments()
        recipients: list[dict[str, Any]] = []
        for recipient in RECIPIENTS.values():
            stored = False
            if recipient.needs_token:
                secret = await self.blocking(self.store.get_user_secret, user, recipient.id)
                stored = secret is not None
            recipients.append(
                {
                    "id": recipient.id,
                    "label": recipient.label,
                    "url": self.recipient_url(recipient),
                    "needs_token": recipient.needs_token,
                    "token_stored": stored,
                }
            )
        self.write_json({"recipients": recipients})


class RecipientTokenHandler(RecipientBase):
    """``/recipient/{recipient}/token``: store (PUT) or forget (DELETE) the caller's token."""

    @needs_scope(SCOPE_CREATE)
    async def put(self, recipient_id: str) -> None:
        user = self.username
        self.check_arguments()
        recipient = self.token_recipient(recipient_id)
        # checked by hand: a schema's messages would quote the value
        body = self.json_body()
        if not isinstance(body, dict):
            raise web.HTTPError(400, 'the body must be a JSON object {"token": "..."}')
        unknown = sorted(set(body) - {"token"})
        if unknown:
            raise web.HTTPError(400, f"body: unknown field {', '.join(k[:40] for k in unknown)}")
        if "token" not in body:
            raise web.HTTPError(400, "token: is required")
        problem = token_problem(body["token"], "token")
        if problem:
            raise web.HTTPError(400, problem)
        try:
            encrypted = await encrypt_token(body["token"])
        except ShipperError as error:
            raise web.HTTPError(error.status, error.message) from None
        await self.blocking(
            self.store.set_user_secret, user, recipient.id, encrypted, now=time.time()
        )
        self.log.info("%s stored a %s token", user, recipient.id)
        self.write_json({"id": recipient.id, "token_stored": True})

    @needs_scope(SCOPE_CREATE)
    async def delete(self, recipient_id: str) -> None:
        user = self.username
        self.check_arguments()
        recipient = self.token_recipient(recipient_id)
        if await self.blocking(self.store.delete_user_secret, user, recipient.id):
            self.log.info("%s deleted the stored %s token", user, recipient.id)
        self.set_status(204)
        self.finish()


default_handlers = [
    (r"/recipient", RecipientsHandler),
    (r"/recipient/(?P<recipient_id>[^/]+)/token", RecipientTokenHandler),
]
