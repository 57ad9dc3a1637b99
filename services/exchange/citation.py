"""How to cite a compendium: BibTeX text and DataCite metadata (JSON, the attributes of the
DataCite REST API, schema 4.5) from its o2r metadata. Pure; the landing page shows both.

The work cited is where readers find the compendium: its DOI when it has one (``identifier.doi``,
which a published shipment writes), else its landing page. Names become "Family, Given" by the
one rule of the deposit mapping (:func:`~.deposit.family_given`); the o2r fields are read with
the lenient readers of :mod:`.o2r`.

============================  ==============================  ===================================
DataCite                      BibTeX (``@misc``)              o2r / given
============================  ==============================  ===================================
``doi``, ``url``              ``doi``, ``url``                ``identifier.doi`` (url: its
                                                              resolver URL), else the landing page
``identifiers``               --                              :func:`~.o2r.identifiers_of`, the
                                                              landing page (``URL``)
``creators``                  ``author``                      ``creators``: name, ORCID iD
                                                              (``nameIdentifiers``), affiliation
``titles``                    ``title``                       ``title``, else the fallback
``publisher``                 ``publisher``                   given (the caller knows who hosts it)
``publicationYear``           ``year``                        ``publication_date``, else the year
                                                              the compendium was made (given)
``types``                     ``note``                        ComputationalNotebook, "Executable
                                                              Research Compendium"
``subjects``                  ``keywords``                    ``keywords``
``descriptions``              --                              ``description`` (Abstract)
``rightsList``                --                              ``license``: the kinds naming one
                                                              SPDX id (not NOASSERTION)
============================  ==============================  ===================================
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from erchub.erc import LICENSE_KINDS, LICENSE_NOT_SPECIFIED
from erchub.services.exchange.deposit import family_given
from erchub.services.exchange.o2r import (
    creators_of,
    doi_of,
    fallback_description,
    identifiers_of,
    keywords_of,
    o2r_of,
    orcid_of,
    text_of,
)

__all__ = ["Citation", "bibtex_escape", "cite", "publication_year"]

DOI_RESOLVER = "https://doi.org/"
ORCID_URL = "https://orcid.org/"
RESOURCE_TYPE = "Executable Research Compendium"
#: DataCite 4.5's type for a notebook (the main file of every ERC here)
RESOURCE_TYPE_GENERAL = "ComputationalNotebook"
_YEAR = re.compile(r"(\d{4})(?:-\d{2}-\d{2})?")
#: characters BibTeX (and LaTeX) read as commands, each as its escaped form
_BIBTEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "%": r"\%",
    "&": r"\&",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "^": r"\textasciicircum{}",
    "~": r"\textasciitilde{}",
}
_BIBTEX_SPECIAL = re.compile("|".join(re.escape(char) for char in _BIBTEX_SPECIALS))
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_:-]+")


@dataclass(frozen=True)
class Citation:
    bibtex: str
    #: DataCite metadata: the ``attributes`` of a DataCite REST API DOI
    datacite: dict[str, Any]


def cite(
    metadata: Mapping[str, Any],
    *,
    compendium_id: str,
    landing_url: str,
    publisher: str,
    year: int,
) -> Citation:
    """The citation of a compendium with o2r ``metadata`` (or ``{"o2r": ...}``) whose landing
    page is ``landing_url``; ``year`` is used when the metadata has no publication date (see
    :func:`publication_year`)."""
    o2r = o2r_of(metadata)
    doi = doi_of(o2r)
    url = DOI_RESOLVER + doi if doi else landing_url
    title = text_of(o2r.get("title")) or fallback_description(o2r).rstrip(".")
    return Citation(
        bibtex=_bibtex(o2r, compendium_id, title, doi, url, publisher, year),
        datacite=_datacite(o2r, title, doi, url, landing_url, publisher, year),
    )


def publication_year(metadata: Mapping[str, Any], created: float) -> int:
    """The year of ``publication_date`` (``YYYY`` or ``YYYY-MM-DD``), else the year of
    ``created`` (POSIX seconds, UTC)."""
    date = text_of(o2r_of(metadata).get("publication_date"))
    match = _YEAR.fullmatch(date) if date else None
    if match:
        return int(match.group(1))
    return dt.datetime.fromtimestamp(created, tz=dt.timezone.utc).year


def bibtex_escape(text: str) -> str:
    """``text`` as literal BibTeX field content: special characters escaped, white space
    evened out (a line break would end nothing, but reads badly)."""
    text = " ".join(text.split())
    return _BIBTEX_SPECIAL.sub(lambda match: _BIBTEX_SPECIALS[match.group()], text)


def _bibtex(
    o2r: Mapping[str, Any],
    compendium_id: str,
    title: str,
    doi: str | None,
    url: str,
    publisher: str,
    year: int,
) -> str:
    authors = " and ".join(
        bibtex_escape(family_given(str(text_of(c.get("name"))))) for c in creators_of(o2r)
    )
    fields = [
        ("author", authors),
        # double braces keep the title's capitals as written
        ("title", "{" + bibtex_escape(title) + "}"),
        ("publisher", bibtex_escape(publisher)),
        ("year", str(year)),
        # doi and url are read verbatim by BibTeX styles: only braces could break the entry
        ("doi", _verbatim(doi) if doi else ""),
        ("url", _verbatim(url)),
        ("keywords", bibtex_escape(", ".join(keywords_of(o2r)))),
        ("note", RESOURCE_TYPE),
    ]
    key = "erc:" + (_KEY_UNSAFE.sub("-", compendium_id).strip("-") or "compendium")
    lines = [f"  {name} = {{{value}}}," for name, value in fields if value]
    return "@misc{" + key + ",\n" + "\n".join(lines) + "\n}\n"


def _verbatim(value: str) -> str:
    return value.replace("{", "").replace("}", "").strip()


def _datacite(
    o2r: Mapping[str, Any],
    title: str,
    doi: str | None,
    url: str,
    landing_url: str,
    publisher: str,
    year: int,
) -> dict[str, Any]:
    identifiers = [{"identifier": landing_url, "identifierType": "URL"}]
    for identifier in identifiers_of(o2r):
        kind = "DOI" if identifier.startswith(DOI_RESOLVER) else "URN"
        value = identifier.removeprefix(DOI_RESOLVER) if kind == "DOI" else identifier
        identifiers.append({"identifier": value, "identifierType": kind})
    attributes: dict[str, Any] = {
        "doi": doi,
        "url": url,
        "identifiers": identifiers,
        "types": {"resourceTypeGeneral": RESOURCE_TYPE_GENERAL, "resourceType": RESOURCE_TYPE},
        "creators": [_datacite_creator(c) for c in creators_of(o2r)],
        "titles": [{"title": title}],
        "publisher": publisher,
        "publicationYear": year,
        "subjects": [{"subject": keyword} for keyword in keywords_of(o2r)],
        "descriptions": _descriptions(o2r),
        "rightsList": _rights(o2r.get("license")),
    }
    return {name: value for name, value in attributes.items() if value}


def _datacite_creator(creator: Mapping[str, Any]) -> dict[str, Any]:
    name = family_given(str(text_of(creator.get("name"))))
    family, _, given = name.partition(", ")
    result: dict[str, Any] = {"name": name, "nameType": "Personal"}
    if given:
        result.update(givenName=given, familyName=family)
    orcid = orcid_of(creator.get("orcid"))
    if orcid:
        result["nameIdentifiers"] = [
            {
                "nameIdentifier": ORCID_URL + orcid,
                "nameIdentifierScheme": "ORCID",
                "schemeUri": ORCID_URL,
            }
        ]
    affiliation = text_of(creator.get("affiliation"))
    if affiliation:
        result["affiliation"] = [{"name": affiliation}]
    return result


def _descriptions(o2r: Mapping[str, Any]) -> list[dict[str, str]]:
    description = text_of(o2r.get("description"))
    if not description:
        return []
    return [{"description": description, "descriptionType": "Abstract"}]


def _rights(licenses: object) -> list[dict[str, str]]:
    """One entry per SPDX id named by a license kind (code, data, text, metadata; each id
    once, with the kinds that use it)."""
    if not isinstance(licenses, Mapping):
        return []
    kinds_of: dict[str, list[str]] = {}
    for kind in LICENSE_KINDS:
        identifier = text_of(licenses.get(kind))
        if identifier and identifier.upper() != LICENSE_NOT_SPECIFIED:
            kinds_of.setdefault(identifier, []).append(kind)
    return [
        {
            "rights": f"{identifier} ({', '.join(kinds)})",
            "rightsIdentifier": identifier,
            "rightsIdentifierScheme": "SPDX",
            "schemeUri": "https://spdx.org/licenses/",
            "rightsUri": f"https://spdx.org/licenses/{identifier}.html",
        }
        for identifier, kinds in kinds_of.items()
    ]
