"""Zenodo deposit metadata: :func:`zenodo_metadata`, the mapping of erchub's o2r metadata
to Zenodo's (and DataCite's) deposit metadata (its docstring is the table of fields), used for
a shipment's deposit and stored in a bag as o2r's secondary metadata
(``.erc/metadata_zenodo_1.json``). Pure. The fields it shares with every other export (names,
ORCID iDs, licenses, related compendia) follow the rules of :mod:`.citation`, the one mapping.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

from erchub.erc import LICENSE_NOT_SPECIFIED
from erchub.services.exchange.citation import licenses_of, person_of, related_compendia
from erchub.services.exchange.o2r import (
    creators_of,
    doi_of,
    fallback_description,
    keywords_of,
    o2r_of,
    text_of,
)

__all__ = ["ZENODO_METADATA_PATH", "zenodo_metadata"]

#: the Zenodo deposit metadata, stored with the payload as o2r's secondary metadata
ZENODO_METADATA_PATH = ".erc/metadata_zenodo_1.json"

ZENODO_UPLOAD_TYPE = "publication"
ZENODO_PUBLICATION_TYPE = "other"
#: SPDX identifiers that SPDX deprecated, as their current equivalent (Zenodo's license
#: vocabulary follows the current SPDX list)
DEPRECATED_SPDX = {
    "GPL-2.0": "GPL-2.0-only",
    "GPL-3.0": "GPL-3.0-only",
    "LGPL-2.1": "LGPL-2.1-only",
    "LGPL-3.0": "LGPL-3.0-only",
    "AGPL-3.0": "AGPL-3.0-only",
}
#: the license kinds, in the order in which one is chosen as the deposit's single license
ZENODO_LICENSE_ORDER = ("code", "text", "data")


def zenodo_metadata(
    o2r: Mapping[str, Any],
    *,
    compendium_url: str | None = None,
    communities: Sequence[str] = (),
) -> dict[str, Any]:
    """Zenodo deposit metadata (``PUT /api/deposit/depositions/{id}`` ``{"metadata": ...}``)
    for a compendium's o2r metadata. Pure. A document wrapped as ``{"o2r": {...}}`` (the
    API's shape) is unwrapped first.

    ======================  ========================  ==============================================
    Zenodo field            o2r field                 rule
    ======================  ========================  ==============================================
    ``upload_type``         --                        ``"publication"`` (o2r's choice for an ERC:
                                                      the work is the article the notebook tells)
    ``publication_type``    --                        ``"other"`` (Zenodo requires one for a
                                                      publication; none of its types is an ERC)
    ``title``               ``title``                 stripped; omitted when blank (Zenodo then
                                                      refuses the deposit naming ``title``)
    ``description``         ``description``           HTML: the text escaped, blank lines making
                                                      paragraphs. Never empty: without one,
                                                      "Executable Research Compendium <title>
                                                      (main notebook <mainfile>)."
    ``creators``            ``creators``              ``[{name, affiliation?, orcid?}]`` in order;
                                                      ``name`` as "Family, Given"
                                                      (:func:`.citation.family_given`);
                                                      ``affiliation`` when not blank; ``orcid``
                                                      (bare iD) only when its
                                                      check character is right (Zenodo refuses
                                                      others). Omitted when there are none
                                                      (Zenodo then refuses naming ``creators``)
    ``access_right``        --                        ``"open"``
    ``license``             ``license.code``, else    Zenodo's license id: the SPDX id lower-cased
                            ``.text``, else ``.data`` (``MIT`` -> ``mit``, ``CC-BY-4.0`` ->
                                                      ``cc-by-4.0``; deprecated GNU ids as their
                                                      ``-only`` form). A kind that is
                                                      ``NOASSERTION``, blank or a per-file mapping
                                                      is skipped; with none left the field is
                                                      OMITTED, and Zenodo applies its own default
                                                      license (CC-BY for an open publication):
                                                      callers that must not assert a license
                                                      refuse to ship instead. Every kind is
                                                      named in ``notes``
    ``publication_date``    ``publication_date``      ``YYYY-MM-DD``; omitted when null (Zenodo
                                                      takes the day of publishing)
    ``keywords``            ``keywords``              unique, non-blank, in order; omitted when
                                                      empty
    ``related_identifiers`` ``identifier.doi``;       the DOI the compendium already has:
                            ``substitution``;         ``isIdenticalTo`` (the same compendium
                            ``is_new_version_of``;    deposited again), or ``isDerivedFrom`` when
                            ``derived_from``;         ``substitution`` says it was made from
                            ``compendium_url``        another; the DOI of the compendium it is a
                                                      new version of (``isNewVersionOf``) or was
                                                      derived from (``isDerivedFrom``), when that
                                                      one has a DOI; ``compendium_url`` (its page
                                                      on erchub, where it runs):
                                                      ``isSupplementedBy``. Omitted when empty
    ``notes``               ``erc_id``, ``mainfile``, one HTML-escaped paragraph: what the deposit
                            ``displayfile``,          is (an ERC, bag and crate), its main and
                            ``license``,              display files, every license kind, the
                            ``substitution``          substitution it came from
    ``communities``         --                        ``[{"identifier": c}]`` for the
                                                      ``communities`` given; omitted when none
    ======================  ========================  ==============================================

    Not mapped: ``depends``, ``files``, ``license_files``, ``dependency_files`` (the bag
    carries them); ``doi`` (Zenodo mints one; ``prereserve_doi`` is the shipper's to ask for).
    """
    fields = _deposit_fields(o2r_of(o2r), compendium_url, communities)
    return {name: value for name, value in fields.items() if value}


def _deposit_fields(
    o2r: Mapping[str, Any], compendium_url: str | None, communities: Sequence[str]
) -> dict[str, Any]:
    """Every field of :func:`zenodo_metadata`, in its order; one without a value (None, blank,
    empty) is then left out."""
    return {
        "upload_type": ZENODO_UPLOAD_TYPE,
        "publication_type": ZENODO_PUBLICATION_TYPE,
        "title": text_of(o2r.get("title")),
        "description": _html_paragraphs(text_of(o2r.get("description"))) or _fallback_html(o2r),
        "creators": [_zenodo_creator(c) for c in creators_of(o2r)],
        "access_right": "open",
        "license": _zenodo_license(o2r),
        "publication_date": text_of(o2r.get("publication_date")),
        "keywords": keywords_of(o2r),
        "related_identifiers": _related_identifiers(o2r, compendium_url),
        "notes": _notes(o2r),
        "communities": _communities(communities),
    }


def _communities(communities: Sequence[str]) -> list[dict[str, str]]:
    chosen = [c.strip() for c in communities if isinstance(c, str) and c.strip()]
    return [{"identifier": c} for c in dict.fromkeys(chosen)]


def _html_paragraphs(text: str | None) -> str | None:
    if not text:
        return None
    paragraphs = [" ".join(block.split()) for block in re.split(r"\n\s*\n", text)]
    return "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs if p) or None


def _fallback_html(o2r: Mapping[str, Any]) -> str:
    return f"<p>{html.escape(fallback_description(o2r))}</p>"


def _zenodo_creator(creator: Mapping[str, Any]) -> dict[str, str]:
    person = person_of(creator)
    result = {"name": person.inverted}
    if person.affiliation:
        result["affiliation"] = person.affiliation
    if person.orcid:
        result["orcid"] = person.orcid
    return result


def _zenodo_license(o2r: Mapping[str, Any]) -> str | None:
    licenses = licenses_of(o2r)
    for kind in ZENODO_LICENSE_ORDER:
        for license_ in licenses:
            if kind in license_.kinds:
                identifier = license_.identifier
                return DEPRECATED_SPDX.get(identifier, identifier).lower()
    return None


def _related_identifiers(o2r: Mapping[str, Any], url: str | None) -> list[dict[str, str]]:
    related = []
    doi = doi_of(o2r)
    if doi:
        derived = isinstance(o2r.get("substitution"), Mapping)
        relation = "isDerivedFrom" if derived else "isIdenticalTo"
        related.append({"identifier": doi, "relation": relation})
    # the compendium it is a new version of, or was derived from, when that one has a DOI:
    # DataCite's relation types, spelt as Zenodo spells them (lower camel case)
    for original in related_compendia(o2r):
        relation = original.relation[0].lower() + original.relation[1:]
        related.append({"identifier": original.doi, "relation": relation})
    if url and url.strip():
        related.append({"identifier": url.strip(), "relation": "isSupplementedBy"})
    return related


def _notes(o2r: Mapping[str, Any]) -> str:
    erc_id = text_of(o2r.get("erc_id"))
    sentences = [
        "An Executable Research Compendium (ERC, o2r specification 1)"
        + (f" with the id {erc_id}" if erc_id else "")
        + ", deposited by erchub as a BagIt bag whose payload is the ERC and carries RO-Crate "
        "metadata (data/ro-crate-metadata.json)."
    ]
    main, display = text_of(o2r.get("mainfile")), text_of(o2r.get("displayfile"))
    if main:
        sentences.append(f"Main notebook: {main}.")
    if display:
        sentences.append(f"Display file: {display}.")
    licenses = o2r.get("license")
    if isinstance(licenses, Mapping) and licenses:
        parts = []
        for kind, value in licenses.items():
            if isinstance(value, Mapping):
                named = ", ".join(f"{path} {lic}" for path, lic in value.items())
                parts.append(f"{kind}: {named}")
            else:
                text = text_of(value) or LICENSE_NOT_SPECIFIED
                parts.append(f"{kind}: {'not stated' if text == LICENSE_NOT_SPECIFIED else text}")
        sentences.append("Licenses by kind: " + "; ".join(parts) + ".")
    substitution = o2r.get("substitution")
    if isinstance(substitution, Mapping):
        sentences.append(
            f"Made by substitution: compendium {substitution.get('base')} with files of "
            f"compendium {substitution.get('overlay')}."
        )
    return html.escape(" ".join(sentences))
