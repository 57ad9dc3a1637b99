"""Review links' pure rules: when a link is in force, expiry dates, what a blind link shows."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from erchub.errors import Invalid
from erchub.metadata import METADATA_PATH
from erchub.services.compendia import links
from erchub.services.store import CompendiumRecord, LinkMode, LinkRecord

ORCID = "0000-0002-1825-0097"
METADATA = {
    "title": "Waves",
    "description": "Sine waves.",
    "creators": [{"name": "Alice Example", "orcid": ORCID, "affiliation": "Uni Example"}],
    "keywords": ["waves"],
    "origin": {"kind": "share_url", "url": "https://cloud.example/s/alice", "loaded": "2026"},
    "derived_from": {"id": "abc12", "doi": None},
    "license": {"code": "MIT"},
}


def test_a_link_is_in_force_until_revoked_or_expired() -> None:
    link = LinkRecord("l1", "c1", "alice", created=1.0)
    assert links.is_active(link, now=10**9)
    expiring = LinkRecord("l1", "c1", "alice", expires=100.0)
    assert links.is_active(expiring, now=99.9)
    assert not links.is_active(expiring, now=100.0)
    revoked = LinkRecord("l1", "c1", "alice", revoked=5.0)
    assert not links.is_active(revoked, now=1.0)


def test_expiry_is_an_iso_date_time_in_the_future() -> None:
    now = datetime.datetime(2026, 12, 7, tzinfo=datetime.timezone.utc).timestamp()
    utc = datetime.datetime(2027, 1, 31, 12, tzinfo=datetime.timezone.utc).timestamp()
    assert links.parse_expiry("2027-01-31T12:00:00Z", now) == utc
    assert links.parse_expiry("2027-01-31T12:00:00", now) == utc
    assert links.parse_expiry("2027-01-31T14:00:00+02:00", now) == utc
    with pytest.raises(Invalid, match="not in the future"):
        links.parse_expiry("2026-12-06T00:00:00Z", now)
    with pytest.raises(Invalid, match="not an ISO 8601 date-time"):
        links.parse_expiry("next week", now)


def test_a_blind_record_names_nobody() -> None:
    record = CompendiumRecord("c1", user=ORCID, metadata=METADATA)
    shown = links.blinded(record)
    text = json.dumps(shown.metadata)
    for personal in ("Alice", ORCID, "Uni Example", "cloud.example", "abc12"):
        assert personal not in text
    assert shown.user == links.HIDDEN_USER
    assert (shown.id, shown.metadata["title"], shown.metadata["keywords"]) == (
        "c1",
        "Waves",
        ["waves"],
    )
    assert record.metadata == METADATA, "the record itself is unchanged"


def test_blind_files_replace_the_metadata_folder(tmp_path: Path) -> None:
    snapshot = tmp_path / "snapshot"
    (snapshot / ".erc").mkdir(parents=True)
    (snapshot / METADATA_PATH).write_text(json.dumps(METADATA))
    (snapshot / ".erc" / "datacite.json").write_text('{"creators": "Alice Example"}')
    (snapshot / "main.ipynb").write_text("{}")
    links.blind_files(snapshot, METADATA)
    assert sorted(p.name for p in (snapshot / ".erc").iterdir()) == ["metadata_o2r_1.json"]
    written = json.loads((snapshot / METADATA_PATH).read_text())
    assert written == links.blinded_metadata(METADATA) and "creators" not in written
    assert (snapshot / "main.ipynb").read_text() == "{}"


def test_modes_are_the_two_of_the_api() -> None:
    assert [str(mode) for mode in LinkMode] == ["open", "blind"]
