"""The RO-Crate of a compendium: :func:`describe_crate` says, in RO-Crate 1.1 (the ``rocrate``
library), what a bag's payload (o2r's ERC base directory) holds: its files and their roles (main
notebook, display file, runtime manifest, licenses, o2r metadata), authors, licenses and the
last job as a ``CreateAction``. Pure; :mod:`.packaging` writes it into the bag.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from rocrate.model.contextentity import ContextEntity
from rocrate.model.entity import Entity
from rocrate.model.person import Person
from rocrate.rocrate import ROCrate

from erchub.erc import LICENSE_NOT_SPECIFIED
from erchub.metadata import METADATA_PATH, dependency_files, license_files
from erchub.services.compendia.files import mime_type
from erchub.services.exchange.citation import PACKAGE_FILES
from erchub.services.exchange.deposit import ZENODO_METADATA_PATH
from erchub.services.exchange.o2r import (
    LoadedCommit,
    creators_of,
    fallback_description,
    identifiers_of,
    keywords_of,
    loaded_commit,
    o2r_of,
    orcid_of,
    text_of,
)

__all__ = ["CRATE_METADATA", "describe_crate"]

#: the RO-Crate metadata file, at the top of the payload
CRATE_METADATA = "ro-crate-metadata.json"
#: the RO-Crate version the crate declares (the one most consumers read)
RO_CRATE_VERSION = "1.1"
SPDX_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]*")

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
    :func:`.deposit.zenodo_metadata`'s), ``datePublished`` (``publication_date``, else the day of
    ``now``), ``keywords``, ``identifier`` (DOI URL, ``urn:uuid:<erc_id>``), ``author``,
    ``license``, ``mainEntity`` (the main notebook), ``hasPart`` (every file), ``mentions``
    (the job), ``isBasedOn`` (a ``SoftwareSourceCode``: the git repository it was loaded from,
    ``version`` the commit).

    Every file is a ``File`` with ``name``, ``encodingFormat``, ``contentSize``; roles:

    - main notebook (``mainfile``): also ``SoftwareSourceCode``, the root's ``mainEntity``;
    - display file (``displayfile``): "the HTML rendering of the executed main notebook";
    - runtime manifest (repo2docker files, :func:`erchub.metadata.dependency_files`): named
      so, and the ``softwareRequirements`` of a ``SoftwareApplication`` ``#runtime`` (the
      container image built from them);
    - license files, ``erc.yml``, ``.erc/metadata_*_1.json``, the metadata exports
      (:data:`.citation.PACKAGE_FILES`): named so.

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
    o2r = o2r_of(metadata)
    crate = ROCrate(version=RO_CRATE_VERSION)
    root = crate.root_dataset
    title = text_of(o2r.get("title"))
    root["name"] = title or fallback_description(o2r).rstrip(".")
    root["description"] = text_of(o2r.get("description")) or fallback_description(o2r)
    root["datePublished"] = text_of(o2r.get("publication_date")) or now.date().isoformat()
    keywords = keywords_of(o2r)
    if keywords:
        root["keywords"] = keywords
    identifiers = identifiers_of(o2r)
    if identifiers:
        root["identifier"] = identifiers if len(identifiers) > 1 else identifiers[0]
    loaded = loaded_commit(o2r)
    if loaded is not None:
        root["isBasedOn"] = _add_repository(crate, loaded)

    entities = _add_files(crate, o2r, files)
    main = entities.get(text_of(o2r.get("mainfile")) or "")
    display = entities.get(text_of(o2r.get("displayfile")) or "")
    if main is not None:
        root["mainEntity"] = main
    runtime = _add_runtime(crate, [entities[f] for f in dependency_files(files) if f in entities])
    authors = _add_authors(crate, creators_of(o2r))
    if authors:
        root["author"] = authors
    licenses = _add_licenses(crate, o2r.get("license"), entities)
    if licenses:
        root["license"] = licenses
    if last_job is not None:
        root["mentions"] = _add_action(crate, last_job, main, display, runtime)
    return crate


def _add_repository(crate: ROCrate, loaded: LoadedCommit) -> Any:
    """The git repository the compendium was loaded from, at the commit it was loaded at."""
    return crate.add(
        ContextEntity(
            crate,
            loaded.repository,
            properties={
                "@type": "SoftwareSourceCode",
                "name": f"{loaded.repository} at {loaded.ref}",
                "codeRepository": loaded.repository,
                "version": loaded.commit,
            },
        )
    )


def _add_files(crate: ROCrate, o2r: Mapping[str, Any], files: Mapping[str, int]) -> dict[str, Any]:
    main = text_of(o2r.get("mainfile"))
    display = text_of(o2r.get("displayfile"))
    runtime = set(dependency_files(files))
    licenses = set(license_files(files))
    exports = {path: str(kind) for kind, path in PACKAGE_FILES.items()}
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
        elif path in exports:
            properties["description"] = f"Metadata of the compendium ({exports[path]})."
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
        orcid = orcid_of(creator.get("orcid"))
        identifier = f"https://orcid.org/{orcid}" if orcid else f"#author-{index}"
        properties: dict[str, Any] = {"name": text_of(creator.get("name"))}
        if orcid:
            properties["identifier"] = identifier
        affiliation = text_of(creator.get("affiliation"))
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
                text = text_of(identifier)
                entity = files.get(str(path))
                if entity is not None and text and text.upper() != LICENSE_NOT_SPECIFIED:
                    entity["license"] = _license_entity(crate, text, None)
        elif (text := text_of(value)) and text.upper() != LICENSE_NOT_SPECIFIED:
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
    job_id = text_of(str(job.get("id") or "")) or "last"
    status = text_of(job.get("status")) or ""
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
    if ACTION_STATUS.get(status) == "FailedActionStatus" and text_of(job.get("reason")):
        properties["error"] = text_of(job.get("reason"))
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
