"""Review links: a compendium, a candidate too, readable by whoever has the link (o2r's public
links, ``PUT``/``DELETE /compendium/{id}/link``, ``GET /link``).

A link is a long random id (:data:`LINK_ID_BYTES` of :func:`secrets.token_urlsafe`), the
compendium, its creator, a mode (:class:`~erchub.services.store.LinkMode`), an optional
expiry, and a use count. Only the compendium's author (or an erc admin) creates, lists and
revokes links. What a link grants (the landing page, the download, a check job) is the
service's visibility rule (``erchub.services.handlers.base``); this module decides whether a
link is in force, and what a blind link shows of a compendium (:func:`blinded`).

Blocking functions (call them in an executor) raise domain errors of :mod:`erchub.errors`;
the rest is pure.
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from erchub import safefs
from erchub.errors import Forbidden, Invalid, NotFound
from erchub.metadata import METADATA_DIRECTORY, write_metadata
from erchub.services.store import CompendiumRecord, LinkMode, LinkRecord, Store

#: random bytes of a link's id (43 URL-safe characters)
LINK_ID_BYTES = 32
#: what a blind link shows as the uploading user
HIDDEN_USER = "hidden for blind review"
#: metadata fields a blind link leaves out: the people (``creators``), where the compendium was
#: loaded from (a share URL may name its owner), and the compendia it derives from (their
#: landing pages name the authors)
BLIND_HIDDEN_FIELDS = ("creators", "origin", "is_new_version_of", "derived_from", "substitution")
#: what the author of a blind link is told it cannot hide
BLIND_CANNOT_HIDE = (
    "Blind mode hides the creators (names, ORCID iDs, affiliations), the uploading user and "
    "the origin of the compendium from its landing page, the metadata API and the zip "
    "download. It cannot hide names written inside the files: the notebooks' text, outputs "
    "and metadata (a notebook's 'authors'), the display HTML, code comments, licence files "
    "and data. Remove them from the files before sending a blind link."
)


def is_active(link: LinkRecord, now: float) -> bool:
    """Whether the link grants anything at ``now``: neither revoked nor expired. Pure."""
    return link.revoked is None and (link.expires is None or now < link.expires)


def parse_expiry(text: str, now: float) -> float:
    """An ISO 8601 date-time (a time without offset is UTC) as POSIX seconds, in the future.
    Pure; raises :class:`~erchub.errors.Invalid`."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise Invalid(
            f"expires: {text[:60]!r} is not an ISO 8601 date-time (2027-01-31T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    expires = moment.timestamp()
    if expires <= now:
        raise Invalid(f"expires: {text[:60]!r} is not in the future")
    return expires


def blinded(record: CompendiumRecord) -> CompendiumRecord:
    """The compendium as a blind link shows it: no uploading user, no
    :data:`BLIND_HIDDEN_FIELDS` in its metadata. Pure."""
    return replace(record, user=HIDDEN_USER, metadata=blinded_metadata(record.metadata))


def blinded_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The o2r metadata document of a compendium as a blind link shows it. Pure."""
    return {k: v for k, v in metadata.items() if k not in BLIND_HIDDEN_FIELDS}


def blind_files(snapshot: Path, metadata: Mapping[str, Any]) -> None:
    """Make ``snapshot``, a copy of a compendium's files, what a blind link serves: its
    ``.erc/`` folder (the metadata and its exported formats, which name the creators) replaced
    by the blinded o2r metadata alone. The snapshot's other files are left as they are."""
    safefs.remove_tree(snapshot / METADATA_DIRECTORY)
    write_metadata(snapshot, blinded_metadata(metadata))


def _manageable(record: CompendiumRecord, user: str, is_admin: bool) -> None:
    if not is_admin and record.user != user:
        raise Forbidden(f"only the author of compendium {record.id} may manage its review links")


def create_link(
    store: Store,
    record: CompendiumRecord,
    user: str,
    *,
    is_admin: bool,
    mode: LinkMode,
    expires: float | None,
    now: float,
) -> tuple[LinkRecord, bool]:
    """A link to ``record`` created by ``user``, and whether it is new. As o2r, asking again
    answers the same link: an active link of the compendium with the same mode and expiry, by
    the same user, is returned instead of a new one."""
    _manageable(record, user, is_admin)
    for existing in store.list_links(user=user, compendium_id=record.id):
        if is_active(existing, now) and (existing.mode, existing.expires) == (mode, expires):
            return existing, False
    link = LinkRecord(
        id=secrets.token_urlsafe(LINK_ID_BYTES),
        compendium_id=record.id,
        user=user,
        mode=mode,
        expires=expires,
        created=now,
    )
    store.add_link(link)
    return link, True


def revoke_links(
    store: Store,
    record: CompendiumRecord,
    user: str,
    *,
    is_admin: bool,
    link_id: str | None,
    now: float,
) -> list[LinkRecord]:
    """Revoke the compendium's link ``link_id``, or all its active links (o2r's ``DELETE``);
    the links revoked now. NotFound for a link of another compendium, or none to revoke."""
    _manageable(record, user, is_admin)
    if link_id is not None:
        link = store.get_link(link_id)
        if link is None or link.compendium_id != record.id:
            raise NotFound(f"compendium {record.id} has no link {link_id[:64]}")
        chosen = [link]
    else:
        chosen = store.list_links(compendium_id=record.id)
    revoked = []
    for link in chosen:
        if link.revoked is None:
            after = store.revoke_link(link.id, now)
            if after is not None:
                revoked.append(after)
    if not revoked and link_id is None:
        raise NotFound(f"compendium {record.id} has no active link")
    return revoked


def change_mode(
    store: Store,
    record: CompendiumRecord,
    user: str,
    *,
    is_admin: bool,
    link_id: str,
    mode: LinkMode,
) -> LinkRecord:
    """Make the compendium's link ``link_id`` ``mode`` (the author unblinding a review once
    the compendium is published, say); the link after that. NotFound for a link of another
    compendium."""
    _manageable(record, user, is_admin)
    link = store.get_link(link_id)
    if link is None or link.compendium_id != record.id:
        raise NotFound(f"compendium {record.id} has no link {link_id[:64]}")
    changed = store.set_link_mode(link.id, mode)
    if changed is None:
        raise NotFound(f"compendium {record.id} has no link {link_id[:64]}")
    return changed


def granting_link(store: Store, link_id: str, compendium_id: str, now: float) -> LinkRecord | None:
    """The link ``link_id`` when it is in force and names ``compendium_id``, else None."""
    link = store.get_link(link_id)
    if link is None or link.compendium_id != compendium_id or not is_active(link, now):
        return None
    return link
