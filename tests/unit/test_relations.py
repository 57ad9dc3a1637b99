"""A compendium's relation to the one it is a new version of or was derived from: recorded
at upload (erchub.services.compendia.operations), shown as ids, and carried into the Zenodo
(DataCite) metadata as related identifiers."""

from __future__ import annotations

import pytest

from erchub.errors import Forbidden
from erchub.services.compendia.operations import Relation, related_ids, relation_metadata
from erchub.services.exchange.deposit import zenodo_metadata
from erchub.services.store import CompendiumRecord

ORIGINAL = CompendiumRecord(
    id="abc123",
    user="ada",
    candidate=False,
    metadata={"title": "Original", "identifier": {"doi": "10.5281/zenodo.42"}},
    created=0.0,
    updated=0.0,
)


def test_only_the_author_may_claim_a_new_version() -> None:
    assert relation_metadata(Relation.IS_NEW_VERSION_OF, ORIGINAL, "ada") == {
        "is_new_version_of": {"id": "abc123", "doi": "10.5281/zenodo.42"}
    }
    with pytest.raises(Forbidden, match="only the author of compendium abc123"):
        relation_metadata(Relation.IS_NEW_VERSION_OF, ORIGINAL, "bob")
    assert relation_metadata(Relation.DERIVED_FROM, ORIGINAL, "bob") == {
        "derived_from": {"id": "abc123", "doi": "10.5281/zenodo.42"}
    }


def test_related_ids() -> None:
    assert related_ids({}) == {"is_new_version_of": None, "derived_from": None}
    assert related_ids({"derived_from": {"id": "abc123", "doi": None}}) == {
        "is_new_version_of": None,
        "derived_from": "abc123",
    }
    assert related_ids({"derived_from": "abc123"})["derived_from"] is None  # not o2r's form


@pytest.mark.parametrize(
    ("field", "relation"),
    [("is_new_version_of", "isNewVersionOf"), ("derived_from", "isDerivedFrom")],
)
def test_the_relation_reaches_the_datacite_metadata(field: str, relation: str) -> None:
    o2r = {"title": "T", field: {"id": "abc123", "doi": "10.5281/zenodo.42"}}
    assert zenodo_metadata(o2r)["related_identifiers"] == [
        {"identifier": "10.5281/zenodo.42", "relation": relation}
    ]
    # an original without a DOI has no identifier DataCite would take
    assert "related_identifiers" not in zenodo_metadata({"title": "T", field: {"id": "abc123"}})
