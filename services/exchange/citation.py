"""Metadata out: the one mapping of a compendium's o2r metadata (:func:`describe`) and the
formats it is exported in (:func:`export`): DataCite XML (kernel 4) and DataCite JSON (the
attributes of the DataCite REST API), codemeta 2.0, schema.org JSON-LD (a ``Dataset``, as
Google Dataset Search reads it), CSL-JSON and BibTeX (the landing page's "Cite"). The Zenodo
deposit (:mod:`.deposit`) draws on the same field rules (:func:`family_given`,
:func:`licenses_of`, :func:`related_compendia`). Pure; the o2r fields are read with the
lenient readers of :mod:`.o2r`.

The work described is where readers find the compendium: its DOI when it has one
(``identifier.doi``, which a published shipment writes), else its landing page. DataCite XML
identifies a resource by its DOI and by nothing else (DataCite's kernel-4 schema fixes
``identifierType`` to DOI): a compendium without a DOI has no DataCite XML (:class:`NoDOI`,
and none in its packages); its DataCite JSON, which DataCite's REST API takes to mint one, it
has.

Field by field, the exports in the order DataCite (XML and JSON) | codemeta | schema.org |
CSL-JSON | BibTeX ("--": not exported in that format):

====================  ===========================  =============================================
o2r (or given)        :class:`Description`         DataCite | codemeta | schema.org | CSL |
                                                   BibTeX
====================  ===========================  =============================================
``identifier.doi``,   ``doi``; ``url``: the DOI's  ``identifier`` (the DOI: XML only with
landing page (given)  resolver URL, else the       one), JSON ``url`` | ``@id``,
                      landing page                 ``identifier``, ``url`` (landing) | ``@id``,
                                                   ``identifier``, ``url`` (landing) | ``DOI``,
                                                   ``URL`` | ``doi``, ``url``
``erc_id``            ``identifiers``              ``alternateIdentifiers`` (URN) |
                      (``urn:uuid:<erc_id>``)      ``identifier`` | ``identifier`` | -- | --
``creators``          ``creators``: name,          ``creators`` (``(:unav)`` without one) |
                      "Family, Given"              ``author`` | ``creator`` | ``author`` |
                      (:func:`family_given`),      ``author``
                      ORCID iD (right check
                      character), affiliation
``title``             ``title``, else "Executable  ``titles`` | ``name`` | ``name`` |
                      Research Compendium ..."     ``title`` | ``title``
``description``       ``abstract``; never empty:   ``descriptions`` (Abstract) |
                      ``description``              ``description`` | ``description`` (50 to
                                                   5,000 characters) | ``abstract`` | --
publisher (given,     ``publisher``                ``publisher`` | ``publisher`` |
:func:`publisher_of`)                              ``publisher`` | ``publisher`` | ``publisher``
``publication_date``, ``year``,                    ``publicationYear``, ``dates`` (Issued) |
else the year made    ``date_published``           ``datePublished`` | ``datePublished`` |
(given)                                            ``issued`` | ``year``
--                    (an ERC)                     ``resourceType`` (ComputationalNotebook) |
                                                   ``applicationCategory`` |
                                                   ``additionalType`` | ``genre`` | ``note``
``keywords``          ``keywords``                 ``subjects`` | ``keywords`` |
                                                   ``keywords`` | ``keyword`` | ``keywords``
``license``           ``licenses``: SPDX id and    ``rightsList`` | ``license`` (SPDX URLs) |
                      kinds (:func:`licenses_of`)  ``license`` | -- | --
``is_new_version_     ``related``: their DOIs      ``relatedIdentifiers`` | ``isBasedOn`` |
of``, ``derived_      (:func:`related_compendia`)  ``isBasedOn`` | -- | --
from``
``mainfile``, files   ``code_files``: the main     ``formats`` | ``hasPart`` | ``hasPart``
(given)               notebook, code files         (SoftwareSourceCode) | -- | --
landing page          ``download_url`` (its zip)   -- | ``downloadUrl`` | ``distribution`` |
                                                   -- | --
====================  ===========================  =============================================

Zenodo's deposit (:func:`.deposit.zenodo_metadata`) takes ``creators``, ``keywords``,
``licenses`` (one of them) and ``related`` by the same functions.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from erchub.erc import LICENSE_KINDS, LICENSE_NOT_SPECIFIED
from erchub.errors import Conflict
from erchub.metadata import is_orcid_id
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
from erchub.steps import StrEnum

__all__ = [
    "Description",
    "Export",
    "ExportFormat",
    "License",
    "Person",
    "Related",
    "bibtex",
    "bibtex_escape",
    "codemeta",
    "csl_json",
    "datacite_attributes",
    "datacite_xml",
    "describe",
    "export",
    "family_given",
    "licenses_of",
    "package_exports",
    "person_of",
    "publication_year",
    "publisher_of",
    "related_compendia",
    "schema_org",
]

DOI_RESOLVER = "https://doi.org/"
ORCID_URL = "https://orcid.org/"
SPDX_URL = "https://spdx.org/licenses/"
RESOURCE_TYPE = "Executable Research Compendium"
#: DataCite 4.5's type for a notebook (the main file of every ERC here)
RESOURCE_TYPE_GENERAL = "ComputationalNotebook"
#: the publisher of a compendium with a DOI: erchub mints DOIs through Zenodo only (shipments;
#: the loader loads Zenodo records)
DOI_PUBLISHER = "Zenodo"
#: DataCite's value for a mandatory property that is unknown (a compendium without creators,
#: or seen through a blind review link)
UNAVAILABLE = "(:unav)"
DATACITE_NAMESPACE = "http://datacite.org/schema/kernel-4"
DATACITE_SCHEMA_LOCATION = "http://schema.datacite.org/meta/kernel-4.5/metadata.xsd"
XSI_NAMESPACE = "http://www.w3.org/2001/XMLSchema-instance"
CODEMETA_CONTEXT = "https://doi.org/10.5063/schema/codemeta-2.0"
SCHEMA_ORG_CONTEXT = "https://schema.org/"
#: Google Dataset Search takes a description of 50 to 5,000 characters
DESCRIPTION_MIN, DESCRIPTION_MAX = 50, 5000
#: what lengthens a description shorter than Google's minimum
DESCRIPTION_TAIL = (
    "An Executable Research Compendium: its notebook, code, data and runtime environment, "
    "to read, run and check the results."
)
NOTEBOOK_TYPE = "application/x-ipynb+json"
#: the code files that are SoftwareSourceCode parts, by suffix, and their language
CODE_LANGUAGES = {
    ".ipynb": None,
    ".py": "Python",
    ".r": "R",
    ".rmd": "R",
    ".jl": "Julia",
    ".m": "MATLAB",
    ".sh": "Shell",
}
#: the most SoftwareSourceCode parts a description names (the main notebook first)
MAX_CODE_FILES = 50
#: o2r fields naming the compendium this one came from, and their DataCite relation types
RELATED_COMPENDIUM_RELATIONS = {
    "is_new_version_of": "IsNewVersionOf",
    "derived_from": "IsDerivedFrom",
}
#: lower-case words that begin a family name ("van Rossum", "de la Cruz")
NAME_PARTICLES = frozenset(
    {"al", "bin", "da", "das", "de", "degli", "dei", "del", "della", "der", "des", "di", "dos"}
    | {"du", "el", "la", "le", "lo", "ten", "ter", "van", "von", "zu"}
)
NAME_SUFFIXES = frozenset({"jr", "jr.", "sr", "sr.", "ii", "iii", "iv"})
_DATE = re.compile(r"(\d{4})(?:-\d{2}-\d{2})?")
#: characters XML 1.0 cannot hold (metadata may carry them; the XML must still parse)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
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


class ExportFormat(StrEnum):
    """The formats of ``GET /compendium/{id}/metadata?format=``."""

    DATACITE = "datacite"
    CODEMETA = "codemeta"
    SCHEMAORG = "schemaorg"
    CSL = "csl"
    BIBTEX = "bibtex"


#: format -> media type (DataCite's content negotiation names for its own formats)
MEDIA_TYPES = {
    ExportFormat.DATACITE: "application/vnd.datacite.datacite+xml",
    ExportFormat.CODEMETA: "application/ld+json",
    ExportFormat.SCHEMAORG: "application/ld+json",
    ExportFormat.CSL: "application/vnd.citationstyles.csl+json",
    ExportFormat.BIBTEX: "application/x-bibtex",
}
#: format -> the file name ending of a download of it
EXTENSIONS = {
    ExportFormat.DATACITE: "datacite.xml",
    ExportFormat.CODEMETA: "codemeta.json",
    ExportFormat.SCHEMAORG: "jsonld",
    ExportFormat.CSL: "csl.json",
    ExportFormat.BIBTEX: "bib",
}
#: format -> the file of it in every package (the ``.erc/`` folder: a blind review link's
#: download replaces the folder, so no export there names the creators)
PACKAGE_FILES = {
    ExportFormat.DATACITE: ".erc/metadata_datacite_4.xml",
    ExportFormat.CODEMETA: ".erc/codemeta.json",
    ExportFormat.SCHEMAORG: ".erc/metadata_schemaorg.jsonld",
    ExportFormat.CSL: ".erc/citation_csl.json",
    ExportFormat.BIBTEX: ".erc/citation.bib",
}


class NoDOI(Conflict):
    """DataCite XML of a compendium that has no DOI: its schema allows no other identifier."""

    def __init__(self) -> None:
        super().__init__(
            "this compendium has no DOI yet, and DataCite XML identifies what it describes by "
            "a DOI only; ship it to Zenodo for one, or ask for another format (codemeta, "
            "schemaorg, csl, bibtex)"
        )


@dataclass(frozen=True)
class Person:
    #: as written, white space evened out
    name: str
    #: "Family, Given" (:func:`family_given`)
    inverted: str
    family: str | None
    given: str | None
    #: the bare ORCID iD, only with a right check character
    orcid: str | None
    affiliation: str | None

    @property
    def orcid_url(self) -> str | None:
        return ORCID_URL + self.orcid if self.orcid else None


@dataclass(frozen=True)
class License:
    #: the SPDX id
    identifier: str
    #: the license kinds it covers (code, data, text, metadata)
    kinds: tuple[str, ...]

    @property
    def url(self) -> str:
        return SPDX_URL + self.identifier


@dataclass(frozen=True)
class Related:
    #: DataCite relation type
    relation: str
    doi: str


@dataclass(frozen=True)
class Description:
    """A compendium as every export describes it (the table of the module's docstring)."""

    compendium_id: str
    title: str
    #: the author's description, None without one
    abstract: str | None
    #: never empty: the abstract, else "Executable Research Compendium ..."
    description: str
    creators: tuple[Person, ...]
    publisher: str
    year: int
    #: ``YYYY-MM-DD`` or ``YYYY`` as the metadata gives it; None without
    date_published: str | None
    keywords: tuple[str, ...]
    licenses: tuple[License, ...]
    doi: str | None
    #: where the work is found: the DOI's resolver URL, else the landing page
    url: str
    landing_url: str
    #: the compendium's other identifiers as URIs (``urn:uuid:<erc_id>``)
    identifiers: tuple[str, ...]
    related: tuple[Related, ...]
    #: the main notebook and other code files, paths in the compendium
    code_files: tuple[str, ...]

    @property
    def download_url(self) -> str:
        return self.landing_url + ".zip"


def describe(
    metadata: Mapping[str, Any],
    *,
    compendium_id: str,
    landing_url: str,
    publisher: str,
    year: int,
    files: Sequence[str] = (),
) -> Description:
    """The compendium with o2r ``metadata`` (or ``{"o2r": ...}``) whose landing page is
    ``landing_url`` and whose files are ``files`` (paths); ``year`` is used when the
    metadata has no publication date (see :func:`publication_year`)."""
    o2r = o2r_of(metadata)
    doi = doi_of(o2r)
    date = text_of(o2r.get("publication_date"))
    return Description(
        compendium_id=compendium_id,
        title=text_of(o2r.get("title")) or fallback_description(o2r).rstrip("."),
        abstract=text_of(o2r.get("description")),
        description=text_of(o2r.get("description")) or fallback_description(o2r),
        creators=tuple(person_of(c) for c in creators_of(o2r)),
        publisher=publisher,
        year=year,
        date_published=date if date and _DATE.fullmatch(date) else None,
        keywords=tuple(keywords_of(o2r)),
        licenses=tuple(licenses_of(o2r)),
        doi=doi,
        url=DOI_RESOLVER + doi if doi else landing_url,
        landing_url=landing_url,
        identifiers=tuple(i for i in identifiers_of(o2r) if not i.startswith(DOI_RESOLVER)),
        related=tuple(related_compendia(o2r)),
        code_files=_code_files(text_of(o2r.get("mainfile")), files),
    )


# -- field rules (the deposit's too) ------------------------------------------------------------


def family_given(name: str) -> str:
    """A person's name as "Family, Given" (Zenodo's and DataCite's form).

    A name with a comma is taken as already in that form; a single word stays as it is.
    Otherwise the last word is the family name, together with lower-case particles before it
    ("Guido van Rossum" -> "van Rossum, Guido") and with a generational suffix kept at the end
    ("Martin Luther King Jr." -> "King, Martin Luther, Jr."). A heuristic: names that do not
    put the family name last come out wrong, and the author can write "Family, Given".
    """
    name = " ".join(name.split())
    words = name.split(" ")
    if "," in name or len(words) < 2:
        return name
    suffix = ""
    if words[-1].lower() in NAME_SUFFIXES and len(words) > 2:
        suffix = words.pop()
    start = len(words) - 1
    while start > 1 and words[start - 1] in NAME_PARTICLES:
        start -= 1
    family, given = " ".join(words[start:]), " ".join(words[:start])
    return f"{family}, {given}, {suffix}" if suffix else f"{family}, {given}"


def person_of(creator: Mapping[str, Any]) -> Person:
    """A creator (a mapping with a name, :func:`~.o2r.creators_of`) as a :class:`Person`."""
    name = " ".join(str(text_of(creator.get("name"))).split())
    inverted = family_given(name)
    family, _, given = inverted.partition(", ")
    orcid = orcid_of(creator.get("orcid"))
    return Person(
        name=name,
        inverted=inverted,
        family=family if given else None,
        given=given or None,
        orcid=orcid if orcid and is_orcid_id(orcid) else None,
        affiliation=text_of(creator.get("affiliation")),
    )


def licenses_of(o2r: Mapping[str, Any]) -> list[License]:
    """One license per SPDX id named by a license kind (code, data, text, metadata; not
    NOASSERTION, not a per-file mapping), with the kinds that use it, in the kinds' order."""
    licenses = o2r.get("license")
    if not isinstance(licenses, Mapping):
        return []
    kinds_of: dict[str, list[str]] = {}
    for kind in LICENSE_KINDS:
        identifier = text_of(licenses.get(kind))
        if identifier and identifier.upper() != LICENSE_NOT_SPECIFIED:
            kinds_of.setdefault(identifier, []).append(kind)
    return [License(identifier, tuple(kinds)) for identifier, kinds in kinds_of.items()]


def related_compendia(o2r: Mapping[str, Any]) -> list[Related]:
    """The DOIs of the compendia this one is a new version of or was derived from (recorded
    at its upload), when those have one."""
    related = []
    for field, relation in RELATED_COMPENDIUM_RELATIONS.items():
        original = o2r.get(field)
        doi = text_of(original.get("doi")) if isinstance(original, Mapping) else None
        if doi:
            related.append(Related(relation, doi))
    return related


def publication_year(metadata: Mapping[str, Any], created: float) -> int:
    """The year of ``publication_date`` (``YYYY`` or ``YYYY-MM-DD``), else the year of
    ``created`` (POSIX seconds, UTC)."""
    date = text_of(o2r_of(metadata).get("publication_date"))
    match = _DATE.fullmatch(date) if date else None
    if match:
        return int(match.group(1))
    return dt.datetime.fromtimestamp(created, tz=dt.timezone.utc).year


def publisher_of(metadata: Mapping[str, Any], host: str) -> str:
    """Who publishes the compendium: Zenodo when it has a DOI, else the hub at ``host``."""
    return DOI_PUBLISHER if doi_of(o2r_of(metadata)) else f"erchub ({host})"


def _code_files(main: str | None, files: Sequence[str]) -> tuple[str, ...]:
    code = [f for f in files if PurePosixPath(f).suffix.lower() in CODE_LANGUAGES]
    ordered = dict.fromkeys(([main] if main else []) + sorted(code))
    return tuple(ordered)[:MAX_CODE_FILES]


# -- exports ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Export:
    media_type: str
    #: the end of a file name for it (``datacite.xml``, ``bib``)
    extension: str
    body: bytes


def export(description: Description, export_format: ExportFormat) -> Export:
    """The compendium in ``export_format``: UTF-8 bytes and their media type (:class:`NoDOI`
    for DataCite XML without a DOI)."""
    if export_format == ExportFormat.DATACITE:
        body = datacite_xml(description)
    elif export_format == ExportFormat.BIBTEX:
        body = bibtex(description).encode()
    else:
        renderer = {
            ExportFormat.CODEMETA: codemeta,
            ExportFormat.SCHEMAORG: schema_org,
            ExportFormat.CSL: csl_json,
        }[export_format]
        body = (json.dumps(renderer(description), indent=2, ensure_ascii=False) + "\n").encode()
    return Export(MEDIA_TYPES[export_format], EXTENSIONS[export_format], body)


def package_exports(description: Description) -> dict[str, bytes]:
    """Every export the compendium has as the file a package holds (:data:`PACKAGE_FILES`):
    path -> content. DataCite XML only with a DOI (:class:`NoDOI`)."""
    return {
        path: export(description, kind).body
        for kind, path in PACKAGE_FILES.items()
        if description.doi or kind != ExportFormat.DATACITE
    }


# -- BibTeX and DataCite JSON: the landing page's "Cite" -----------------------------------------


def bibtex_escape(text: str) -> str:
    """``text`` as literal BibTeX field content: special characters escaped, white space
    evened out (a line break would end nothing, but reads badly)."""
    text = " ".join(text.split())
    return _BIBTEX_SPECIAL.sub(lambda match: _BIBTEX_SPECIALS[match.group()], text)


def bibtex(description: Description) -> str:
    """An ``@misc`` entry."""
    fields = [
        ("author", " and ".join(bibtex_escape(p.inverted) for p in description.creators)),
        # double braces keep the title's capitals as written
        ("title", "{" + bibtex_escape(description.title) + "}"),
        ("publisher", bibtex_escape(description.publisher)),
        ("year", str(description.year)),
        # doi and url are read verbatim by BibTeX styles: only braces could break the entry
        ("doi", _verbatim(description.doi) if description.doi else ""),
        ("url", _verbatim(description.url)),
        ("keywords", bibtex_escape(", ".join(description.keywords))),
        ("note", RESOURCE_TYPE),
    ]
    key = "erc:" + (_KEY_UNSAFE.sub("-", description.compendium_id).strip("-") or "compendium")
    lines = [f"  {name} = {{{value}}}," for name, value in fields if value]
    return "@misc{" + key + ",\n" + "\n".join(lines) + "\n}\n"


def _verbatim(value: str) -> str:
    return value.replace("{", "").replace("}", "").strip()


def datacite_attributes(description: Description) -> dict[str, Any]:
    """DataCite JSON (schema 4.5): the attributes of a DataCite REST API DOI."""
    identifiers = [{"identifier": description.landing_url, "identifierType": "URL"}]
    if description.doi:
        identifiers.append({"identifier": description.doi, "identifierType": "DOI"})
    identifiers += [{"identifier": i, "identifierType": "URN"} for i in description.identifiers]
    attributes: dict[str, Any] = {
        "doi": description.doi,
        "url": description.url,
        "identifiers": identifiers,
        "types": {"resourceTypeGeneral": RESOURCE_TYPE_GENERAL, "resourceType": RESOURCE_TYPE},
        "creators": [_datacite_creator(p) for p in description.creators],
        "titles": [{"title": description.title}],
        "publisher": description.publisher,
        "publicationYear": description.year,
        "subjects": [{"subject": keyword} for keyword in description.keywords],
        "descriptions": [{"description": description.abstract, "descriptionType": "Abstract"}]
        if description.abstract
        else [],
        "rightsList": [_datacite_rights(lic) for lic in description.licenses],
        "relatedIdentifiers": [
            {"relatedIdentifier": r.doi, "relatedIdentifierType": "DOI", "relationType": r.relation}
            for r in description.related
        ],
    }
    return {name: value for name, value in attributes.items() if value}


def _datacite_creator(person: Person) -> dict[str, Any]:
    result: dict[str, Any] = {"name": person.inverted, "nameType": "Personal"}
    if person.given:
        result.update(givenName=person.given, familyName=person.family)
    if person.orcid_url:
        result["nameIdentifiers"] = [
            {
                "nameIdentifier": person.orcid_url,
                "nameIdentifierScheme": "ORCID",
                "schemeUri": ORCID_URL,
            }
        ]
    if person.affiliation:
        result["affiliation"] = [{"name": person.affiliation}]
    return result


def _datacite_rights(license_: License) -> dict[str, str]:
    return {
        "rights": f"{license_.identifier} ({', '.join(license_.kinds)})",
        "rightsIdentifier": license_.identifier,
        "rightsIdentifierScheme": "SPDX",
        "schemeUri": SPDX_URL,
        "rightsUri": f"{license_.url}.html",
    }


# -- DataCite XML ----------------------------------------------------------------------------


def datacite_xml(description: Description) -> bytes:
    """DataCite XML, kernel 4 (the elements of :func:`datacite_attributes`), identified by the
    compendium's DOI; :class:`NoDOI` without one (DataCite's schema fixes identifierType to
    DOI)."""
    if not description.doi:
        raise NoDOI()
    attributes = datacite_attributes(description)
    ET.register_namespace("", DATACITE_NAMESPACE)
    root = ET.Element(
        _tag("resource"),
        {f"{{{XSI_NAMESPACE}}}schemaLocation": f"{DATACITE_NAMESPACE} {DATACITE_SCHEMA_LOCATION}"},
    )
    _element(root, "identifier", description.doi, identifierType="DOI")
    creators = _element(root, "creators")
    for person in attributes.get("creators") or [{"name": UNAVAILABLE}]:
        creator = _element(creators, "creator")
        _element(creator, "creatorName", person["name"], nameType=person.get("nameType"))
        if "givenName" in person:
            _element(creator, "givenName", person["givenName"])
            _element(creator, "familyName", person["familyName"])
        for identifier in person.get("nameIdentifiers", []):
            _element(
                creator,
                "nameIdentifier",
                identifier["nameIdentifier"],
                nameIdentifierScheme=identifier["nameIdentifierScheme"],
                schemeURI=identifier["schemeUri"],
            )
        for affiliation in person.get("affiliation", []):
            _element(creator, "affiliation", affiliation["name"])
    _element(_element(root, "titles"), "title", description.title)
    _element(root, "publisher", description.publisher)
    _element(root, "publicationYear", str(description.year))
    _element(root, "resourceType", RESOURCE_TYPE, resourceTypeGeneral=RESOURCE_TYPE_GENERAL)
    if description.keywords:
        subjects = _element(root, "subjects")
        for keyword in description.keywords:
            _element(subjects, "subject", keyword)
    if description.date_published:
        _element(_element(root, "dates"), "date", description.date_published, dateType="Issued")
    alternates = [(description.landing_url, "URL")] + [(i, "URN") for i in description.identifiers]
    parent = _element(root, "alternateIdentifiers")
    for value, kind in alternates:
        _element(parent, "alternateIdentifier", value, alternateIdentifierType=kind)
    if description.related:
        parent = _element(root, "relatedIdentifiers")
        for related in description.related:
            _element(
                parent,
                "relatedIdentifier",
                related.doi,
                relatedIdentifierType="DOI",
                relationType=related.relation,
            )
    if description.code_files:
        _element(_element(root, "formats"), "format", NOTEBOOK_TYPE)
    if description.licenses:
        parent = _element(root, "rightsList")
        for rights in attributes["rightsList"]:
            _element(
                parent,
                "rights",
                rights["rights"],
                rightsURI=rights["rightsUri"],
                rightsIdentifier=rights["rightsIdentifier"],
                rightsIdentifierScheme=rights["rightsIdentifierScheme"],
                schemeURI=rights["schemeUri"],
            )
    if description.abstract:
        _element(
            _element(root, "descriptions"),
            "description",
            description.abstract,
            descriptionType="Abstract",
        )
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _tag(name: str) -> str:
    return f"{{{DATACITE_NAMESPACE}}}{name}"


def _element(
    parent: ET.Element, name: str, text: str | None = None, **attributes: str | None
) -> ET.Element:
    element = ET.SubElement(
        parent, _tag(name), {k: _xml_text(v) for k, v in attributes.items() if v is not None}
    )
    if text is not None:
        element.text = _xml_text(text)
    return element


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("", text)


# -- codemeta, schema.org, CSL-JSON ----------------------------------------------------------


def _json_ld_person(person: Person) -> dict[str, Any]:
    result: dict[str, Any] = {"@type": "Person", "name": person.name}
    if person.orcid_url:
        result["@id"] = person.orcid_url
        result["identifier"] = person.orcid_url
    if person.given:
        result.update(givenName=person.given, familyName=person.family)
    if person.affiliation:
        result["affiliation"] = {"@type": "Organization", "name": person.affiliation}
    return result


def _one_or_list(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else values


def _code_part(path: str) -> dict[str, Any]:
    part: dict[str, Any] = {"@type": "SoftwareSourceCode", "name": path}
    suffix = PurePosixPath(path).suffix.lower()
    if suffix == ".ipynb":
        part["encodingFormat"] = NOTEBOOK_TYPE
    elif CODE_LANGUAGES.get(suffix):
        part["programmingLanguage"] = CODE_LANGUAGES[suffix]
    return part


def codemeta(description: Description) -> dict[str, Any]:
    """codemeta 2.0 (``codemeta.json``): the compendium as ``SoftwareSourceCode``."""
    document: dict[str, Any] = {
        "@context": CODEMETA_CONTEXT,
        "@type": "SoftwareSourceCode",
        "@id": description.url,
        "identifier": [description.url, *description.identifiers],
        "name": description.title,
        "description": description.description,
        "url": description.landing_url,
        "downloadUrl": description.download_url,
        "applicationCategory": RESOURCE_TYPE,
        "author": [_json_ld_person(p) for p in description.creators],
        "keywords": list(description.keywords),
        "license": _one_or_list([lic.url for lic in description.licenses]),
        "datePublished": description.date_published or str(description.year),
        "publisher": {"@type": "Organization", "name": description.publisher},
        "hasPart": [_code_part(path) for path in description.code_files],
        "isBasedOn": [DOI_RESOLVER + r.doi for r in description.related],
    }
    return {name: value for name, value in document.items() if value}


def schema_org(description: Description) -> dict[str, Any]:
    """schema.org JSON-LD, a ``Dataset`` with ``SoftwareSourceCode`` parts, as Google
    Dataset Search asks: ``name``, a ``description`` of 50 to 5,000 characters (a short one
    lengthened by :data:`DESCRIPTION_TAIL`, a long one cut), ``identifier``, ``creator``,
    ``license``, ``distribution`` (the zip download), ``isAccessibleForFree``."""
    text = description.description
    if len(text) < DESCRIPTION_MIN:
        text = f"{text} {DESCRIPTION_TAIL}"
    if len(text) > DESCRIPTION_MAX:
        text = text[: DESCRIPTION_MAX - 1].rstrip() + "…"
    document: dict[str, Any] = {
        "@context": SCHEMA_ORG_CONTEXT,
        "@type": "Dataset",
        "@id": description.url,
        "additionalType": RESOURCE_TYPE,
        "name": description.title,
        "description": text,
        "url": description.landing_url,
        "identifier": _one_or_list([description.url, *description.identifiers]),
        "creator": [_json_ld_person(p) for p in description.creators],
        "keywords": list(description.keywords),
        "license": _one_or_list([lic.url for lic in description.licenses]),
        "datePublished": description.date_published or str(description.year),
        "publisher": {"@type": "Organization", "name": description.publisher},
        "isAccessibleForFree": True,
        "isBasedOn": [DOI_RESOLVER + r.doi for r in description.related],
        "hasPart": [_code_part(path) for path in description.code_files],
        "distribution": [
            {
                "@type": "DataDownload",
                "encodingFormat": "application/zip",
                "contentUrl": description.download_url,
            }
        ],
    }
    return {name: value for name, value in document.items() if value}


def csl_json(description: Description) -> list[dict[str, Any]]:
    """CSL-JSON: a list of one item of type ``dataset``."""
    item: dict[str, Any] = {
        "id": f"erc:{description.compendium_id}",
        "type": "dataset",
        "genre": RESOURCE_TYPE,
        "title": description.title,
        "author": [
            {"family": p.family, "given": p.given} if p.given else {"literal": p.name}
            for p in description.creators
        ],
        "issued": {"date-parts": [_date_parts(description)]},
        "publisher": description.publisher,
        "DOI": description.doi,
        "URL": description.url,
        "keyword": ", ".join(description.keywords),
        "abstract": description.abstract,
    }
    return [{name: value for name, value in item.items() if value}]


def _date_parts(description: Description) -> list[int]:
    if description.date_published:
        return [int(part) for part in description.date_published.split("-")]
    return [description.year]
