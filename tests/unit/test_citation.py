"""How a compendium is cited (erchub.services.exchange.citation): BibTeX and DataCite from o2r
metadata, with the DOI when it has one, else its landing page."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

from erchub.services.exchange.citation import (
    bibtex,
    bibtex_escape,
    datacite_attributes,
    describe,
    publication_year,
)

LANDING = "https://hub.example.org/services/erc/compendium/AbC123"
O2R: dict[str, Any] = {
    "title": "Sine waves under a changing frequency",
    "description": "How a sine wave\nchanges.",
    "creators": [
        {"name": "Ada Lovelace", "orcid": "https://orcid.org/0000-0002-1694-233X"},
        {"name": "Guido van Rossum", "affiliation": "PSF"},
        {"name": "   "},
    ],
    "keywords": ["waves", "signal", "waves"],
    "license": {
        "code": "Apache-2.0",
        "data": "ODbL-1.0",
        "text": "CC-BY-4.0",
        "metadata": "CC0-1.0",
    },
    "publication_date": "2025-03-14",
    "erc_id": "5d1e8f3a-6b2c-4f0e-9a7d-3c1b2e4f5a60",
}


def citation_of(o2r: dict[str, Any], **kwargs: Any) -> Any:
    """The landing page's Cite box: BibTeX and DataCite JSON."""
    arguments = {"compendium_id": "AbC123", "landing_url": LANDING, "publisher": "erchub (hub)"}
    description = describe(o2r, **{**arguments, "year": 2026, **kwargs})
    return SimpleNamespace(bibtex=bibtex(description), datacite=datacite_attributes(description))


def test_without_a_doi_the_landing_page_is_cited() -> None:
    citation = citation_of(O2R)
    assert citation.bibtex == (
        "@misc{erc:AbC123,\n"
        "  author = {Lovelace, Ada and van Rossum, Guido},\n"
        "  title = {{Sine waves under a changing frequency}},\n"
        "  publisher = {erchub (hub)},\n"
        "  year = {2026},\n"
        f"  url = {{{LANDING}}},\n"
        "  keywords = {waves, signal},\n"
        "  note = {Executable Research Compendium},\n"
        "}\n"
    )
    datacite = citation.datacite
    assert "doi" not in datacite
    assert datacite["url"] == LANDING
    assert datacite["identifiers"] == [
        {"identifier": LANDING, "identifierType": "URL"},
        {"identifier": "urn:uuid:5d1e8f3a-6b2c-4f0e-9a7d-3c1b2e4f5a60", "identifierType": "URN"},
    ]
    assert datacite["types"] == {
        "resourceTypeGeneral": "ComputationalNotebook",
        "resourceType": "Executable Research Compendium",
    }
    assert datacite["titles"] == [{"title": O2R["title"]}]
    assert datacite["publicationYear"] == 2026
    assert datacite["creators"][0] == {
        "name": "Lovelace, Ada",
        "nameType": "Personal",
        "givenName": "Ada",
        "familyName": "Lovelace",
        "nameIdentifiers": [
            {
                "nameIdentifier": "https://orcid.org/0000-0002-1694-233X",
                "nameIdentifierScheme": "ORCID",
                "schemeUri": "https://orcid.org/",
            }
        ],
    }
    assert datacite["creators"][1]["affiliation"] == [{"name": "PSF"}]
    assert len(datacite["creators"]) == 2, "a creator without a name is left out"
    assert datacite["subjects"] == [{"subject": "waves"}, {"subject": "signal"}]
    assert datacite["descriptions"] == [
        {"description": "How a sine wave\nchanges.", "descriptionType": "Abstract"}
    ]
    assert [r["rightsIdentifier"] for r in datacite["rightsList"]] == [
        "Apache-2.0",
        "ODbL-1.0",
        "CC-BY-4.0",
        "CC0-1.0",
    ]


def test_a_shipped_compendium_is_cited_by_its_doi() -> None:
    o2r = {**O2R, "identifier": {"doi": "10.5281/zenodo.1234", "doiurl": "x"}}
    citation = citation_of({"o2r": o2r}, publisher="Zenodo")
    assert "  doi = {10.5281/zenodo.1234},\n" in citation.bibtex
    assert "  url = {https://doi.org/10.5281/zenodo.1234},\n" in citation.bibtex
    assert "  publisher = {Zenodo},\n" in citation.bibtex
    assert citation.datacite["doi"] == "10.5281/zenodo.1234"
    assert citation.datacite["url"] == "https://doi.org/10.5281/zenodo.1234"
    assert {"identifier": "10.5281/zenodo.1234", "identifierType": "DOI"} in citation.datacite[
        "identifiers"
    ]


def test_licenses_not_stated_are_no_rights_and_shared_ones_are_listed_once() -> None:
    o2r = {**O2R, "license": {"code": "MIT", "data": "NOASSERTION", "text": "MIT", "x": "GPL"}}
    rights = citation_of(o2r).datacite["rightsList"]
    assert rights == [
        {
            "rights": "MIT (code, text)",
            "rightsIdentifier": "MIT",
            "rightsIdentifierScheme": "SPDX",
            "schemeUri": "https://spdx.org/licenses/",
            "rightsUri": "https://spdx.org/licenses/MIT.html",
        }
    ]
    assert "rightsList" not in citation_of({**O2R, "license": "MIT"}).datacite


def test_special_characters_cannot_break_the_bibtex_entry() -> None:
    o2r = {
        "title": "100% of {x}_1 & $y$ #2 ~ ^ \\end",
        "creators": [{"name": "A}B {C"}],
        "keywords": ["a,b}"],
    }
    bibtex = citation_of(o2r, compendium_id="a b/c", landing_url="https://h/{x}").bibtex
    assert bibtex.startswith("@misc{erc:a-b-c,\n")
    assert (
        r"title = {{100\% of \{x\}\_1 \& \$y\$ \#2 \textasciitilde{} \textasciicircum{} "
        r"\textbackslash{}end}}," in bibtex
    )
    assert r"author = {\{C, A\}B}," in bibtex
    assert "url = {https://h/x}," in bibtex
    # every brace of the entry is balanced
    depth = 0
    for index, char in enumerate(bibtex):
        if char in "{}" and bibtex[index - 1] != "\\":
            depth += 1 if char == "{" else -1
            assert depth >= 0
    assert depth == 0


def test_a_compendium_without_metadata_is_still_citable() -> None:
    citation = citation_of({"mainfile": "main.ipynb"})
    assert "title = {{Executable Research Compendium (main notebook main.ipynb)}}" in (
        citation.bibtex
    )
    assert "author" not in citation.bibtex
    assert "creators" not in citation.datacite
    assert citation.datacite["titles"] == [
        {"title": "Executable Research Compendium (main notebook main.ipynb)"}
    ]


def test_publication_year_from_the_date_else_the_creation() -> None:
    created = dt.datetime(2024, 12, 31, 23, 30, tzinfo=dt.timezone.utc).timestamp()
    assert publication_year({"publication_date": "2025-03-14"}, created) == 2025
    assert publication_year({"o2r": {"publication_date": "2023"}}, created) == 2023
    for absent in ({}, {"publication_date": None}, {"publication_date": "March 2025"}):
        assert publication_year(absent, created) == 2024


def test_bibtex_escape_evens_out_white_space() -> None:
    assert bibtex_escape("  a\n\tb  c ") == "a b c"
