"""Packaging a compendium: Zenodo deposit metadata, a BagIt bag with RO-Crate metadata, a zip.

Three public steps, used by shipments and downloads:

:func:`zenodo_metadata`
    Pure. The one mapping of erchub's o2r metadata to Zenodo deposit metadata (table there).
:func:`write_bag`
    I/O. The compendium as a BagIt bag (the ``bagit`` library) that carries RO-Crate metadata
    (the ``rocrate`` library). :func:`describe_crate` (pure) says what the crate holds and
    :func:`bag_info_tags` (pure) what ``bag-info.txt`` says.
:func:`zip_bag`
    Streams the bag as a zip, chunk by chunk, in flat memory (:func:`write_zip` writes the same
    stream to a file, e.g. for an upload that must declare its length).

The bag (o2r ERC spec v1, "Archival bundle"; RO-Crate 1.1, "Adding RO-Crate to BagIt")::

    <bag>/
      bagit.txt                  BagIt-Version 0.97, UTF-8, Is-Executable-Research-Compendium
      bag-info.txt               Source-Organization, External-Identifier, ERC-Version, ...
      manifest-sha512.txt        every payload file (sha512: RFC 8493's and RO-Crate's advice)
      manifest-md5.txt           the same in md5 (the o2r BagIt profile asks for md5)
      tagmanifest-sha512.txt, tagmanifest-md5.txt
      data/                      the ERC base directory (o2r) = the RO-Crate root (RO-Crate)
        erc.yml, main.ipynb, ...         the compendium's files (erchub.workspace.list_files:
                                         no .erc/jobs/, .git, checkpoints, .ercignore'd paths)
        .erc/metadata_o2r_1.json         the o2r metadata given to write_bag
        .erc/metadata_zenodo_1.json      zenodo_metadata() of it (o2r's secondary metadata)
        ro-crate-metadata.json           the RO-Crate metadata file

The RO-Crate sits inside the payload, as RO-Crate's BagIt convention says, because the o2r
spec makes ``data/`` the ERC's base directory: loading the bag again (the loader unpacks a
bag's ``data/``) gives a compendium whose crate still describes it. A ``ro-crate-metadata.json``
or ``.erc/metadata_*_1.json`` the compendium already holds (a bag loaded earlier) is replaced.

``Is-Executable-Research-Compendium: true`` goes into ``bagit.txt``, as the o2r spec requires,
and also into ``bag-info.txt``: RFC 8493 says the bag declaration holds exactly two lines, so
a strict BagIt reader may ignore or refuse the third; bag-info.txt is where BagIt allows any
tag. The ``bagit`` library writes ``bagit.txt`` itself with no way to add a tag, so the line is
appended after ``make_bag`` and ``Bag.save()`` then recomputes the tag manifests; the
library's own ``Bag.validate()`` accepts the result and reads the tag (``Bag.tags``).

``bagit.make_bag`` and ``Bag.save`` change the process's working directory while they run
(``os.chdir``), which would break relative paths in every other thread of the service (and two
bags made at once would move each other's files). They therefore run in a short-lived child
Python process; everything else runs in the caller's thread (call :func:`write_bag` in an
executor: it reads and hashes every file).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import bagit
from rocrate.model.contextentity import ContextEntity
from rocrate.model.entity import Entity
from rocrate.model.person import Person
from rocrate.rocrate import ROCrate

from erchub import __version__, safefs
from erchub.erc import LICENSE_NOT_SPECIFIED, URI_PATTERN, UUID4_PATTERN
from erchub.errors import ErchubError
from erchub.metadata import (
    METADATA_PATH,
    ORCID_PATTERN,
    dependency_files,
    is_orcid_id,
    license_files,
)
from erchub.services.compendia.files import ArchiveStream, mime_type
from erchub.workspace import list_files

__all__ = [
    "CRATE_METADATA",
    "ZENODO_METADATA_PATH",
    "PackagingError",
    "bag_info_tags",
    "describe_crate",
    "family_given",
    "write_bag",
    "write_zip",
    "zenodo_metadata",
    "zip_bag",
]

#: the RO-Crate metadata file, at the top of the payload
CRATE_METADATA = "ro-crate-metadata.json"
#: the Zenodo deposit metadata, stored with the payload as o2r's secondary metadata
ZENODO_METADATA_PATH = ".erc/metadata_zenodo_1.json"
#: the RO-Crate version the crate declares (the one most consumers read)
RO_CRATE_VERSION = "1.1"
#: payload checksums: sha512 (RFC 8493 and RO-Crate recommend it) and md5 (o2r's profile)
CHECKSUMS = ("sha512", "md5")
#: bag-info.txt's Source-Organization unless the caller names one
DEFAULT_SOURCE_ORGANIZATION = "erchub"
ERC_TAG = "Is-Executable-Research-Compendium"
ERC_VERSION = "1"

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
SPDX_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]*")
#: lower-case words that begin a family name ("van Rossum", "de la Cruz")
NAME_PARTICLES = frozenset(
    {"al", "bin", "da", "das", "de", "degli", "dei", "del", "della", "der", "des", "di", "dos"}
    | {"du", "el", "la", "le", "lo", "ten", "ter", "van", "von", "zu"}
)
NAME_SUFFIXES = frozenset({"jr", "jr.", "sr", "sr.", "ii", "iii", "iv"})

SCHEMA_ORG = "http://schema.org/"
#: job status -> schema.org ActionStatusType
ACTION_STATUS = {
    "success": "CompletedActionStatus",
    "failure": "FailedActionStatus",
    "canceled": "FailedActionStatus",
    "running": "ActiveActionStatus",
    "queued": "PotentialActionStatus",
}
NOTEBOOK_TYPE = "application/x-ipynb+json"

#: Runs in a child process (see the module docstring): make the bag, append the ERC tag to
#: bagit.txt, let the library recompute the tag manifests.
_BAGGER = """\
import json, os, sys
import bagit
args = json.load(sys.stdin)
bagit.make_bag(args["bag_dir"], bag_info=args["bag_info"], checksums=args["checksums"])
with open(os.path.join(args["bag_dir"], "bagit.txt"), "a", encoding="utf-8") as declaration:
    for name, value in args["declaration"].items():
        declaration.write(name + ": " + value + "\\n")
bagit.Bag(args["bag_dir"]).save()
"""


class PackagingError(ErchubError):
    """The bag could not be made."""


# -- Zenodo ------------------------------------------------------------------------------------


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
                                                      (:func:`family_given`); ``affiliation`` when
                                                      not blank; ``orcid`` (bare iD) only when its
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
                            ``compendium_url``        deposited again), or ``isDerivedFrom`` when
                                                      ``substitution`` says it was made from
                                                      another; ``compendium_url`` (its page on
                                                      erchub, where it runs): ``isSupplementedBy``.
                                                      Omitted when empty
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
    o2r = _o2r(o2r)
    result: dict[str, Any] = {
        "upload_type": ZENODO_UPLOAD_TYPE,
        "publication_type": ZENODO_PUBLICATION_TYPE,
    }
    title = _text(o2r.get("title"))
    if title:
        result["title"] = title
    result["description"] = _html_paragraphs(_text(o2r.get("description"))) or _fallback_html(o2r)
    creators = [_zenodo_creator(c) for c in _creators(o2r)]
    if creators:
        result["creators"] = creators
    result["access_right"] = "open"
    license_id = _zenodo_license(o2r.get("license"))
    if license_id:
        result["license"] = license_id
    date = _text(o2r.get("publication_date"))
    if date:
        result["publication_date"] = date
    keywords = _keywords(o2r)
    if keywords:
        result["keywords"] = keywords
    related = _related_identifiers(o2r, compendium_url)
    if related:
        result["related_identifiers"] = related
    result["notes"] = _notes(o2r)
    chosen = [c.strip() for c in communities if isinstance(c, str) and c.strip()]
    if chosen:
        result["communities"] = [{"identifier": c} for c in dict.fromkeys(chosen)]
    return result


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


def _o2r(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = metadata.get("o2r")
    if isinstance(inner, Mapping) and "title" not in metadata:
        return inner
    return metadata


def _text(value: object) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _html_paragraphs(text: str | None) -> str | None:
    if not text:
        return None
    paragraphs = [" ".join(block.split()) for block in re.split(r"\n\s*\n", text)]
    return "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs if p) or None


def _fallback_html(o2r: Mapping[str, Any]) -> str:
    return f"<p>{html.escape(_fallback_description(o2r))}</p>"


def _fallback_description(o2r: Mapping[str, Any]) -> str:
    title = _text(o2r.get("title"))
    erc_id = _text(o2r.get("erc_id"))
    named = "Executable Research Compendium"
    if title:
        named += f" “{title}”"
    elif erc_id:
        named += f" {erc_id}"
    main = _text(o2r.get("mainfile"))
    return f"{named} (main notebook {main})." if main else f"{named}."


def _creators(o2r: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    creators = o2r.get("creators")
    if not isinstance(creators, list):
        return []
    return [c for c in creators if isinstance(c, Mapping) and _text(c.get("name"))]


def _zenodo_creator(creator: Mapping[str, Any]) -> dict[str, str]:
    result = {"name": family_given(str(_text(creator.get("name"))))}
    affiliation = _text(creator.get("affiliation"))
    if affiliation:
        result["affiliation"] = affiliation
    orcid = _orcid(creator.get("orcid"))
    if orcid and is_orcid_id(orcid):
        result["orcid"] = orcid
    return result


def _orcid(value: object) -> str | None:
    """The bare ORCID iD in ``value`` (a bare iD or an orcid.org URL), None without one."""
    match = ORCID_PATTERN.search(value) if isinstance(value, str) else None
    return match.group() if match else None


def _single_licenses(licenses: object) -> dict[str, str]:
    """kind -> license id, for the kinds that name one license (not NOASSERTION)."""
    if not isinstance(licenses, Mapping):
        return {}
    result = {}
    for kind, value in licenses.items():
        text = _text(value)
        if text and text.upper() != LICENSE_NOT_SPECIFIED:
            result[str(kind)] = text
    return result


def _zenodo_license(licenses: object) -> str | None:
    single = _single_licenses(licenses)
    for kind in ZENODO_LICENSE_ORDER:
        if kind in single:
            identifier = single[kind]
            return DEPRECATED_SPDX.get(identifier, identifier).lower()
    return None


def _keywords(o2r: Mapping[str, Any]) -> list[str]:
    keywords = o2r.get("keywords")
    if not isinstance(keywords, list):
        return []
    return list(dict.fromkeys(k.strip() for k in keywords if isinstance(k, str) and k.strip()))


def _doi(o2r: Mapping[str, Any]) -> str | None:
    identifier = o2r.get("identifier")
    return _text(identifier.get("doi")) if isinstance(identifier, Mapping) else None


def _related_identifiers(o2r: Mapping[str, Any], url: str | None) -> list[dict[str, str]]:
    related = []
    doi = _doi(o2r)
    if doi:
        derived = isinstance(o2r.get("substitution"), Mapping)
        relation = "isDerivedFrom" if derived else "isIdenticalTo"
        related.append({"identifier": doi, "relation": relation})
    if url and url.strip():
        related.append({"identifier": url.strip(), "relation": "isSupplementedBy"})
    return related


def _notes(o2r: Mapping[str, Any]) -> str:
    erc_id = _text(o2r.get("erc_id"))
    sentences = [
        "An Executable Research Compendium (ERC, o2r specification 1)"
        + (f" with the id {erc_id}" if erc_id else "")
        + ", deposited by erchub as a BagIt bag whose payload is the ERC and carries RO-Crate "
        "metadata (data/ro-crate-metadata.json)."
    ]
    main, display = _text(o2r.get("mainfile")), _text(o2r.get("displayfile"))
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
                text = _text(value) or LICENSE_NOT_SPECIFIED
                parts.append(f"{kind}: {'not stated' if text == LICENSE_NOT_SPECIFIED else text}")
        sentences.append("Licenses by kind: " + "; ".join(parts) + ".")
    substitution = o2r.get("substitution")
    if isinstance(substitution, Mapping):
        sentences.append(
            f"Made by substitution: compendium {substitution.get('base')} with files of "
            f"compendium {substitution.get('overlay')}."
        )
    return html.escape(" ".join(sentences))


# -- RO-Crate ----------------------------------------------------------------------------------


def describe_crate(
    metadata: Mapping[str, Any],
    files: Mapping[str, int],
    *,
    last_job: Mapping[str, Any] | None = None,
    now: dt.datetime,
) -> ROCrate:
    """The RO-Crate (in memory, to be written with ``crate.metadata.write(payload_dir)``) of a
    payload whose files (POSIX paths relative to the crate root) and sizes are ``files``. Pure.

    Root dataset ``./``: ``name`` (title), ``description`` (never empty, as
    :func:`zenodo_metadata`'s), ``datePublished`` (``publication_date``, else the day of
    ``now``), ``keywords``, ``identifier`` (DOI URL, ``urn:uuid:<erc_id>``), ``author``,
    ``license``, ``mainEntity`` (the main notebook), ``hasPart`` (every file), ``mentions``
    (the job).

    Every file is a ``File`` with ``name``, ``encodingFormat``, ``contentSize``; roles:

    - main notebook (``mainfile``): also ``SoftwareSourceCode``, the root's ``mainEntity``;
    - display file (``displayfile``): "the HTML rendering of the executed main notebook";
    - runtime manifest (repo2docker files, :func:`erchub.metadata.dependency_files`): named
      so, and the ``softwareRequirements`` of a ``SoftwareApplication`` ``#runtime`` (the
      container image built from them);
    - license files, ``erc.yml``, ``.erc/metadata_*_1.json``: named so.

    Authors (``creators``): ``Person`` entities, ``@id`` the ORCID iD URL
    (``https://orcid.org/<iD>``) when they have one, else ``#author-<n>``; affiliations as
    ``Organization`` entities. Licenses (``license``): one ``CreativeWork`` per license,
    ``@id`` its SPDX URL (``https://spdx.org/licenses/<id>``), ``description`` naming the
    kinds it covers; the root's ``license`` lists those of whole kinds (``NOASSERTION`` left
    out); a per-file mapping sets the ``license`` of those files.

    ``last_job`` (a job record as a mapping, or the API's job JSON): a ``CreateAction``
    ``#job-<id>`` with ``startTime``/``endTime`` (ISO 8601; POSIX seconds are converted),
    ``actionStatus`` (``CompletedActionStatus`` for success, ``FailedActionStatus`` for
    failure or cancellation, with ``error`` the reason), ``instrument`` the main notebook (and
    ``#runtime``), ``object`` the parameter values (``PropertyValue``), ``result`` the display
    file when the payload has it.
    """
    o2r = _o2r(metadata)
    crate = ROCrate(version=RO_CRATE_VERSION)
    root = crate.root_dataset
    title = _text(o2r.get("title"))
    root["name"] = title or _fallback_description(o2r).rstrip(".")
    root["description"] = _text(o2r.get("description")) or _fallback_description(o2r)
    root["datePublished"] = _text(o2r.get("publication_date")) or now.date().isoformat()
    keywords = _keywords(o2r)
    if keywords:
        root["keywords"] = keywords
    identifiers = _crate_identifiers(o2r)
    if identifiers:
        root["identifier"] = identifiers if len(identifiers) > 1 else identifiers[0]

    entities = _add_files(crate, o2r, files)
    main = entities.get(_text(o2r.get("mainfile")) or "")
    display = entities.get(_text(o2r.get("displayfile")) or "")
    if main is not None:
        root["mainEntity"] = main
    runtime = _add_runtime(crate, [entities[f] for f in dependency_files(files) if f in entities])
    authors = _add_authors(crate, _creators(o2r))
    if authors:
        root["author"] = authors
    licenses = _add_licenses(crate, o2r.get("license"), entities)
    if licenses:
        root["license"] = licenses
    if last_job is not None:
        root["mentions"] = _add_action(crate, last_job, main, display, runtime)
    return crate


def _crate_identifiers(o2r: Mapping[str, Any]) -> list[str]:
    identifiers = []
    doi = _doi(o2r)
    if doi:
        identifiers.append(f"https://doi.org/{doi}")
    erc_id = _text(o2r.get("erc_id"))
    if erc_id and UUID4_PATTERN.fullmatch(erc_id):
        identifiers.append(f"urn:uuid:{erc_id.lower()}")
    elif erc_id and URI_PATTERN.fullmatch(erc_id):
        identifiers.append(erc_id)
    return identifiers


def _add_files(crate: ROCrate, o2r: Mapping[str, Any], files: Mapping[str, int]) -> dict[str, Any]:
    main = _text(o2r.get("mainfile"))
    display = _text(o2r.get("displayfile"))
    runtime = set(dependency_files(files))
    licenses = set(license_files(files))
    entities = {}
    for path in sorted(files):
        if path == CRATE_METADATA:
            continue
        name = PurePosixPath(path).name
        properties: dict[str, Any] = {
            "name": name,
            "encodingFormat": NOTEBOOK_TYPE if name.endswith(".ipynb") else mime_type(name),
            "contentSize": str(files[path]),
        }
        if path == main:
            properties["@type"] = ["File", "SoftwareSourceCode"]
            properties["description"] = "Main notebook of the Executable Research Compendium."
        elif path == display:
            properties["description"] = (
                "Display file: the HTML rendering of the executed main notebook."
            )
        elif path in runtime:
            properties["description"] = "Runtime manifest: a repo2docker configuration file."
        elif path in licenses:
            properties["description"] = "License text."
        elif path == "erc.yml":
            properties["description"] = "ERC configuration (o2r ERC specification 1)."
        elif path == METADATA_PATH:
            properties["description"] = "o2r metadata of the compendium."
        elif path == ZENODO_METADATA_PATH:
            properties["description"] = "Zenodo deposit metadata of the compendium."
        entities[path] = crate.add_file(dest_path=path, properties=properties)
    return entities


def _add_runtime(crate: ROCrate, manifest: list[Any]) -> Any:
    if not manifest:
        return None
    return crate.add(
        ContextEntity(
            crate,
            "#runtime",
            properties={
                "@type": "SoftwareApplication",
                "name": "Runtime environment",
                "description": "The container image that repo2docker builds from the runtime "
                "manifest; the main notebook runs in it.",
                "softwareRequirements": manifest,
            },
        )
    )


def _add_authors(crate: ROCrate, creators: list[Mapping[str, Any]]) -> list[Any]:
    authors: dict[str, Any] = {}
    organizations: dict[str, Any] = {}
    for index, creator in enumerate(creators, 1):
        orcid = _orcid(creator.get("orcid"))
        identifier = f"https://orcid.org/{orcid}" if orcid else f"#author-{index}"
        properties: dict[str, Any] = {"name": _text(creator.get("name"))}
        if orcid:
            properties["identifier"] = identifier
        affiliation = _text(creator.get("affiliation"))
        if affiliation:
            if affiliation not in organizations:
                organizations[affiliation] = crate.add(
                    ContextEntity(
                        crate,
                        f"#organization-{len(organizations) + 1}",
                        properties={"@type": "Organization", "name": affiliation},
                    )
                )
            properties["affiliation"] = organizations[affiliation]
        if identifier not in authors:
            authors[identifier] = crate.add(Person(crate, identifier, properties=properties))
    return list(authors.values())


def _license_id(identifier: str) -> str:
    if SPDX_ID_PATTERN.fullmatch(identifier):
        return f"https://spdx.org/licenses/{identifier}"
    return "#license-" + quote(identifier, safe="")


def _add_licenses(crate: ROCrate, licenses: object, files: Mapping[str, Any]) -> list[Any]:
    """License entities; returns those of whole kinds, for the root's ``license``."""
    if not isinstance(licenses, Mapping):
        return []
    kinds: dict[str, list[str]] = {}
    for kind, value in licenses.items():
        if isinstance(value, Mapping):
            for path, identifier in value.items():
                text = _text(identifier)
                entity = files.get(str(path))
                if entity is not None and text and text.upper() != LICENSE_NOT_SPECIFIED:
                    entity["license"] = _license_entity(crate, text, None)
        elif (text := _text(value)) and text.upper() != LICENSE_NOT_SPECIFIED:
            kinds.setdefault(text, []).append(str(kind))
    return [_license_entity(crate, identifier, names) for identifier, names in kinds.items()]


def _license_entity(crate: ROCrate, identifier: str, kinds: list[str] | None) -> Any:
    entity_id = _license_id(identifier)
    entity = crate.get(entity_id)
    if entity is None:
        entity = crate.add(
            ContextEntity(
                crate,
                entity_id,
                properties={"@type": "CreativeWork", "name": identifier, "identifier": identifier},
            )
        )
    if kinds:
        entity["description"] = "License of the compendium's " + ", ".join(kinds) + "."
    return entity


def _add_action(
    crate: ROCrate,
    job: Mapping[str, Any],
    main: Entity | None,
    display: Entity | None,
    runtime: Entity | None,
) -> Any:
    job_id = _text(str(job.get("id") or "")) or "last"
    status = _text(job.get("status")) or ""
    properties: dict[str, Any] = {
        "@type": "CreateAction",
        "name": f"Execution of the main notebook (job {job_id})",
        "actionStatus": {"@id": SCHEMA_ORG + ACTION_STATUS.get(status, "FailedActionStatus")},
    }
    for field, names in (("startTime", ("started", "start")), ("endTime", ("finished", "end"))):
        moment = _iso(next((job[n] for n in names if job.get(n) is not None), None))
        if moment:
            properties[field] = moment
    instruments = [e for e in (main, runtime) if e is not None]
    if instruments:
        properties["instrument"] = instruments if len(instruments) > 1 else instruments[0]
    if display is not None:
        properties["result"] = display
    if ACTION_STATUS.get(status) == "FailedActionStatus" and _text(job.get("reason")):
        properties["error"] = _text(job.get("reason"))
    action_id = "#job-" + quote(job_id, safe="")
    action = crate.add(ContextEntity(crate, action_id, properties=properties))
    values = job.get("parameters")
    if isinstance(values, Mapping) and values:
        action["object"] = [
            crate.add(
                ContextEntity(
                    crate,
                    f"{action_id}-parameter-{quote(str(name), safe='')}",
                    properties={
                        "@type": "PropertyValue",
                        "name": str(name),
                        "value": _scalar(value),
                    },
                )
            )
            for name, value in values.items()
        ]
    return action


def _scalar(value: object) -> object:
    """A parameter value as a JSON-LD literal: scalars as they are, others as JSON text."""
    return value if isinstance(value, str | int | float | bool) else json.dumps(value)


def _iso(value: object) -> str | None:
    """ISO 8601 (UTC, milliseconds, ``Z``) of POSIX seconds; an ISO string as it is."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        moment = dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return value
    return None


# -- BagIt -------------------------------------------------------------------------------------


def bag_info_tags(
    metadata: Mapping[str, Any],
    files: Mapping[str, int],
    *,
    compendium_id: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The tags of ``bag-info.txt`` beside those the library writes (Bagging-Date,
    Payload-Oxum, which it computes). Pure. ``extra`` (e.g. a site's Source-Organization,
    Contact-Name, Contact-Email) overrides or adds.

    ``Source-Organization`` (default ``erchub``), ``External-Description`` (the title),
    ``External-Identifier`` (``urn:uuid:<erc_id>``, the erc_id when it is a URI, else the DOI),
    ``Internal-Sender-Identifier`` (the compendium id), ``Bag-Size`` (of the payload),
    ``Bag-Software-Agent``, ``ERC-Version: 1`` (o2r's BagIt extension) and
    ``Is-Executable-Research-Compendium: true`` (also in bagit.txt, see the module docstring).
    """
    o2r = _o2r(metadata)
    tags = {
        "Source-Organization": DEFAULT_SOURCE_ORGANIZATION,
        "External-Description": "Executable Research Compendium: "
        + (_text(o2r.get("title")) or _fallback_description(o2r)),
        "Internal-Sender-Identifier": compendium_id,
        "Bag-Size": _human_size(sum(files.values())),
        "Bag-Software-Agent": f"erchub {__version__} (bagit.py {bagit.VERSION})",
        "ERC-Version": ERC_VERSION,
        ERC_TAG: "true",
    }
    identifiers = [i for i in _crate_identifiers(o2r) if not i.startswith("https://doi.org/")]
    external = identifiers[0] if identifiers else _doi(o2r)
    if external:
        tags["External-Identifier"] = external
    for name, value in (extra or {}).items():
        tags[name] = " ".join(str(value).split())
    return tags


def _human_size(size: int) -> str:
    amount = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if amount < 1024 or unit == "TB":
            return f"{size} bytes" if unit == "bytes" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def write_bag(
    compendium_dir: Path,
    target_dir: Path,
    *,
    metadata: Mapping[str, Any],
    last_job: Mapping[str, Any] | None,
    job_dir: Path | None = None,
    bag_info: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
) -> Path:
    """Make ``target_dir`` (absent or an empty directory) a BagIt bag of the compendium at
    ``compendium_dir``, with RO-Crate metadata; return its path. Blocking: call it in an
    executor.

    The payload is the compendium's files as :func:`erchub.workspace.list_files` lists them
    (internal job directories ``.erc/jobs/`` and ignored paths left out, linked files stored as
    files), hard-linked where the file system allows, else copied; ``metadata`` (the o2r
    metadata, e.g. the store's, possibly newer than the compendium's file) is written as
    ``.erc/metadata_o2r_1.json``, :func:`zenodo_metadata` of it as
    ``.erc/metadata_zenodo_1.json``, :func:`describe_crate` as ``ro-crate-metadata.json``.
    ``last_job`` becomes the crate's CreateAction; given its directory ``job_dir``, a
    successful job's display file (``result.display`` / ``files.display``) is added at the
    ERC's display path when the compendium has none there. ``bag_info``: extra bag-info.txt
    tags (:func:`bag_info_tags`). The bag is checked with ``bagit.Bag(...).validate(fast=True)``
    (structure and Payload-Oxum; the checksums were just computed).

    Raises :class:`PackagingError` when the library cannot make the bag, FileExistsError when
    ``target_dir`` is not empty, ValueError when it lies inside the compendium; once begun, the
    bag directory is removed on any failure.
    """
    source = Path(compendium_dir)
    target = Path(target_dir).absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FileExistsError(f"{target} exists and is not an empty directory")
    real_source, real_target = os.path.realpath(source), os.path.realpath(target)
    if os.path.commonpath([real_source, real_target]) == real_source:
        raise ValueError(f"the bag {target} cannot be inside the compendium {source}")
    o2r = _o2r(metadata)
    now = now or dt.datetime.now(dt.timezone.utc)
    target.mkdir(parents=True, exist_ok=True)
    try:
        files = _place_payload(source, target, o2r, last_job, job_dir)
        crate = describe_crate(o2r, files, last_job=last_job, now=now)
        crate.metadata.write(target)
        tags = bag_info_tags(o2r, files, compendium_id=source.name, extra=bag_info)
        _make_bag(target, tags)
        bagit.Bag(str(target)).validate(fast=True)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def _place_payload(
    source: Path,
    target: Path,
    o2r: Mapping[str, Any],
    last_job: Mapping[str, Any] | None,
    job_dir: Path | None,
) -> dict[str, int]:
    """Put the payload into ``target``; return its files and sizes (the crate file aside)."""
    replaced = {CRATE_METADATA, METADATA_PATH, ZENODO_METADATA_PATH}
    placed = [file for file in list_files(source) if file not in replaced]
    for file in placed:
        # list_files keeps only files inside; resolving them inside keeps it so
        _link_or_copy(safefs.resolve_inside(source, file), target / file)
    for path, content in (
        (METADATA_PATH, dict(o2r)),
        (ZENODO_METADATA_PATH, zenodo_metadata(o2r)),
    ):
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(content, indent=2, ensure_ascii=False) + "\n"
        (target / path).write_text(text, encoding="utf-8")
        placed.append(path)
    display = _job_display(last_job, job_dir)
    wanted = _text(o2r.get("displayfile"))
    if display is not None and wanted and wanted not in placed and _safe_relative(wanted):
        _link_or_copy(display, target / wanted)
        placed.append(wanted)
    return {file: (target / file).stat().st_size for file in placed}


def _job_display(job: Mapping[str, Any] | None, job_dir: Path | None) -> Path | None:
    """The display file a successful job wrote, inside its directory, or None."""
    if job is None or job_dir is None or job.get("status") != "success":
        return None
    relative = None
    for key in ("result", "files"):
        section = job.get(key)
        if isinstance(section, Mapping) and _text(section.get("display")):
            relative = _text(section.get("display"))
            break
    if relative is None or not safefs.is_file(job_dir, relative):
        return None
    return safefs.resolve_inside(job_dir, relative)


def _safe_relative(path: str) -> bool:
    try:
        safefs.relative_path(path)
    except safefs.OutsideRoot:
        return False
    return True


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link to ``source``'s file (a link followed), else a copy with its mode bits."""
    target.parent.mkdir(parents=True, exist_ok=True)
    real = os.path.realpath(source)
    try:
        os.link(real, target)
    except OSError:
        shutil.copy2(real, target)


def _make_bag(bag_dir: Path, tags: Mapping[str, str]) -> None:
    arguments = {
        "bag_dir": str(bag_dir),
        "bag_info": {name: value for name, value in tags.items()},
        "checksums": list(CHECKSUMS),
        "declaration": {ERC_TAG: "true"},
    }
    completed = subprocess.run(
        [sys.executable, "-c", _BAGGER],
        input=json.dumps(arguments),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines()
        raise PackagingError(f"the bag could not be made: {lines[-1] if lines else 'bagit failed'}")


# -- zip ---------------------------------------------------------------------------------------


def zip_bag(bag_dir: Path, *, prefix: str | None = None) -> ArchiveStream:
    """The bag as a zip stream: iterate it for chunks of about 256 KiB, or call its
    ``next_chunk()`` in an executor (it blocks) and ``close()`` when the client goes away.

    A thread writes the zip into a bounded queue (:class:`erchub.services.compendia.files.
    ArchiveStream`), so memory stays flat whatever the bag's size; nothing is written to disk.
    Members sit below one folder, ``prefix`` (default: the bag directory's name), as RFC 8493
    asks of a serialized bag; erchub's loader unpacks such a zip to the bag's ``data/``.
    """
    bag = Path(bag_dir)
    return ArchiveStream(bag, "zip", prefix or bag.name)


def write_zip(bag_dir: Path, zip_path: Path, *, prefix: str | None = None) -> Path:
    """Write :func:`zip_bag`'s stream to ``zip_path`` (blocking) and return it; a partial file
    is removed on failure."""
    path = Path(zip_path)
    stream = zip_bag(bag_dir, prefix=prefix)
    try:
        with open(path, "wb") as sink:
            for chunk in stream:
                sink.write(chunk)
    except BaseException:
        stream.close()
        path.unlink(missing_ok=True)
        raise
    return path
