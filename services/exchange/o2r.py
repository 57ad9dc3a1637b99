"""Readers of o2r metadata (the ``o2r`` section of a compendium's metadata, o2r ERC spec v1)
shared by the Zenodo deposit mapping (:mod:`.deposit`), the RO-Crate description (:mod:`.crate`)
and the BagIt bag (:mod:`.packaging`). Pure; each reads one field leniently: a value of the
wrong type or blank reads as absent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from erchub.erc import URI_PATTERN, UUID4_PATTERN
from erchub.metadata import ORCID_PATTERN

__all__ = [
    "FULL_SHA",
    "GIT_KIND",
    "LoadedCommit",
    "creators_of",
    "doi_of",
    "fallback_description",
    "identifiers_of",
    "keywords_of",
    "loaded_commit",
    "o2r_of",
    "orcid_of",
    "text_of",
]

#: the kind of ``origin`` that a compendium loaded from a git repository records
#: (:func:`.git.git_origin`), and the key of its repository's URL
GIT_KIND = "git_url"
#: a full commit SHA, in hex
FULL_SHA = re.compile(r"^[0-9a-fA-F]{40}$")


@dataclass(frozen=True)
class LoadedCommit:
    """Where a compendium was loaded from: a repository's web URL, the ref asked for, and the
    commit it named then."""

    repository: str
    ref: str
    commit: str


def loaded_commit(o2r: Mapping[str, Any]) -> LoadedCommit | None:
    """The git repository, ref and commit that ``origin`` says the compendium was loaded from;
    None when it came from elsewhere, or when ``origin`` holds no web URL or no full SHA (an
    author may have edited it: pages link to the URL)."""
    origin = o2r.get("origin")
    if not isinstance(origin, Mapping) or origin.get("kind") != GIT_KIND:
        return None
    repository, ref, commit = (origin.get(name) for name in (GIT_KIND, "ref", "commit"))
    if not (isinstance(repository, str) and isinstance(ref, str) and isinstance(commit, str)):
        return None
    if not repository.startswith(("https://", "http://")) or not FULL_SHA.match(commit):
        return None
    return LoadedCommit(repository=repository, ref=ref, commit=commit.lower())


def o2r_of(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    """The o2r metadata of a document wrapped as ``{"o2r": {...}}`` (the API's shape), else
    the document itself."""
    inner = metadata.get("o2r")
    if isinstance(inner, Mapping) and "title" not in metadata:
        return inner
    return metadata


def text_of(value: object) -> str | None:
    """A string stripped; None for a blank one or any other value."""
    return (value.strip() or None) if isinstance(value, str) else None


def fallback_description(o2r: Mapping[str, Any]) -> str:
    """What stands for a missing title or description: "Executable Research Compendium
    “<title>” (main notebook <mainfile>)." (the erc_id without a title)."""
    title = text_of(o2r.get("title"))
    erc_id = text_of(o2r.get("erc_id"))
    named = "Executable Research Compendium"
    if title:
        named += f" “{title}”"
    elif erc_id:
        named += f" {erc_id}"
    main = text_of(o2r.get("mainfile"))
    return f"{named} (main notebook {main})." if main else f"{named}."


def creators_of(o2r: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``creators`` that are mappings with a name, in order."""
    creators = o2r.get("creators")
    if not isinstance(creators, list):
        return []
    return [c for c in creators if isinstance(c, Mapping) and text_of(c.get("name"))]


def orcid_of(value: object) -> str | None:
    """The bare ORCID iD in ``value`` (a bare iD or an orcid.org URL), None without one."""
    match = ORCID_PATTERN.search(value) if isinstance(value, str) else None
    return match.group() if match else None


def keywords_of(o2r: Mapping[str, Any]) -> list[str]:
    """The ``keywords``: unique, stripped, non-blank, in order."""
    keywords = o2r.get("keywords")
    if not isinstance(keywords, list):
        return []
    return list(dict.fromkeys(k.strip() for k in keywords if isinstance(k, str) and k.strip()))


def doi_of(o2r: Mapping[str, Any]) -> str | None:
    """The DOI the compendium already has (``identifier.doi``)."""
    identifier = o2r.get("identifier")
    return text_of(identifier.get("doi")) if isinstance(identifier, Mapping) else None


def identifiers_of(o2r: Mapping[str, Any]) -> list[str]:
    """The compendium's identifiers as URIs: its DOI's URL, ``urn:uuid:<erc_id>`` (the
    erc_id itself when it is another URI)."""
    identifiers = []
    doi = doi_of(o2r)
    if doi:
        identifiers.append(f"https://doi.org/{doi}")
    erc_id = text_of(o2r.get("erc_id"))
    if erc_id and UUID4_PATTERN.fullmatch(erc_id):
        identifiers.append(f"urn:uuid:{erc_id.lower()}")
    elif erc_id and URI_PATTERN.fullmatch(erc_id):
        identifiers.append(erc_id)
    return identifiers
