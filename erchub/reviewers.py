"""Review guests: hub identities that live only as long as a review link (pure logic).

A journal's reviewer may open a review link without an account, where the operator allows
it: the hub then makes them a **guest**, a hub user named ``guest-<link digest>-<random>``.
The name says which link the guest belongs to (a digest of the link's id, never the id, which
is the link's secret), so that the hub, the spawner and the erc service can each tell, from
the name alone, what the guest may open: that link's compendium, nothing else. When the link
is revoked or expires, the erc service stops the guest's sessions and deletes the guest.

No ORCID iD, and no name that a login of the hub makes, has this form.
"""

from __future__ import annotations

import hashlib
import re
import secrets

#: what a review link's id looks like (``secrets.token_urlsafe``: URL-safe base64)
LINK_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,128}")
GUEST_PREFIX = "guest-"
#: hex characters of the link's digest in a guest's name, and of the guest's own part
DIGEST_CHARS = 16
_OWN_CHARS = 8
GUEST_NAME = re.compile(rf"{GUEST_PREFIX}([0-9a-f]{{{DIGEST_CHARS}}})-[0-9a-f]{{{_OWN_CHARS}}}")


def is_link_id(text: object) -> bool:
    """Whether ``text`` can be a review link's id."""
    return isinstance(text, str) and LINK_ID_PATTERN.fullmatch(text) is not None


def link_digest(link_id: str) -> str:
    """The part of a guest's name that names their link."""
    return hashlib.sha256(link_id.encode()).hexdigest()[:DIGEST_CHARS]


def new_guest_name(link_id: str) -> str:
    """A new guest's hub user name for the review link ``link_id``."""
    return f"{GUEST_PREFIX}{link_digest(link_id)}-{secrets.token_hex(_OWN_CHARS // 2)}"


def guest_link_digest(username: str) -> str | None:
    """The digest of the guest's link, None for anyone who is no guest."""
    match = GUEST_NAME.fullmatch(username)
    return match.group(1) if match else None


def is_guest(username: str) -> bool:
    return guest_link_digest(username) is not None


def is_guest_of(username: str, link_id: str) -> bool:
    """Whether ``username`` is a guest of the review link ``link_id``."""
    return guest_link_digest(username) == link_digest(link_id)
