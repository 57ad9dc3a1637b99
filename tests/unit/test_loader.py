"""The loader's pure parts: the request, URL and host rules, record file choice, the origin
recorded, a repository's errors, and how an archive's content type is told."""

from __future__ import annotations

import datetime
import io
import json
import tarfile
import zipfile
from pathlib import Path

import jsonschema
import pytest

from erchub.services.exchange.sources import (
    LOAD_BODY_SCHEMA,
    LoadError,
    LoaderSettings,
    Source,
    archive_content_type,
    check_url,
    choose_record_file,
    doi_of_url,
    holds_erc,
    host_allowed,
    normalize_doi,
    origin_metadata,
    parse_source,
    safe_name,
    upstream_error,
    url_of_handle,
    zenodo_record_of,
)
from erchub.services.handlers.base import schema_problems

ZENODO = "https://zenodo.org"
SANDBOX = "https://sandbox.zenodo.org"
O2R_SCHEMA = Path(__file__).resolve().parents[2] / "services/schemas/metadata_o2r.schema.json"


def entry(key: str, size: int = 10) -> dict[str, object]:
    return {
        "key": key,
        "size": size,
        "checksum": "md5:0",
        "links": {"self": f"{ZENODO}/api/records/1/files/{key}/content"},
    }


# -- the request -------------------------------------------------------------------------------


def test_each_source_kind_is_read() -> None:
    assert parse_source({"share_url": " https://zenodo.org/records/1 "}) == Source(
        "share_url", "https://zenodo.org/records/1"
    )
    assert parse_source({"doi": "doi:10.5281/Zenodo.42"}).value == "10.5281/zenodo.42"
    record = parse_source({"zenodo_record_id": "0042", "sandbox": True, "filename": "a.zip"})
    assert record == Source("zenodo_record_id", "42", sandbox=True, filename="a.zip")
    assert parse_source({"zenodo_record_id": 7, "content_type": "workspace"}).content_type == (
        "workspace"
    )


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "exactly one of share_url, doi, zenodo_record_id or git_url"),
        ({"doi": "10.1/x", "zenodo_record_id": 1}, "exactly one"),
        ({"doi": "zenodo.42"}, "is not a DOI"),
        ({"share_url": "ftp://example.org/a.zip"}, "http or https"),
        ({"share_url": "https://user:secret@example.org/a.zip"}, "credentials"),
        ({"share_url": "https://example.org:99999/a.zip"}, "not a valid URL"),
        ({"share_url": "https://zenodo.org/records/1", "sandbox": True}, "sandbox"),
    ],
)
def test_bad_requests_are_400(body: dict[str, object], words: str) -> None:
    with pytest.raises(LoadError) as caught:
        parse_source(body)
    assert caught.value.status == 400
    assert words in caught.value.message


def test_the_body_schema_refuses_unknown_fields_and_bad_ids() -> None:
    jsonschema.Draft202012Validator.check_schema(LOAD_BODY_SCHEMA)
    assert schema_problems({"doi": "10.1/x"}, LOAD_BODY_SCHEMA) == []
    assert schema_problems({"url": "x"}, LOAD_BODY_SCHEMA) == ["body: unknown field url"]
    assert schema_problems({"zenodo_record_id": 0}, LOAD_BODY_SCHEMA)
    assert schema_problems({"zenodo_record_id": "12a"}, LOAD_BODY_SCHEMA)
    assert schema_problems({"zenodo_record_id": 1.5}, LOAD_BODY_SCHEMA)
    assert schema_problems({"content_type": "bag", "doi": "10.1/x"}, LOAD_BODY_SCHEMA)


@pytest.mark.parametrize(
    ("text", "doi"),
    [
        ("10.5281/zenodo.1234567", "10.5281/zenodo.1234567"),
        ("  DOI:10.5281/ZENODO.1 ", "10.5281/zenodo.1"),
        ("https://doi.org/10.1000/xyz(1)", "10.1000/xyz(1)"),
        ("http://dx.doi.org/10.1000/a", "10.1000/a"),
        ("10.12/short-prefix", None),
        ("zenodo.1234567", None),
        ("10.5281/with space", None),
    ],
)
def test_dois_are_normalised(text: str, doi: str | None) -> None:
    assert normalize_doi(text) == doi


# -- URLs and hosts ----------------------------------------------------------------------------


def test_hosts_are_matched_exactly_or_by_subdomain_wildcard() -> None:
    allowed = ["zenodo.org", "*.example.org"]
    assert host_allowed("zenodo.org", allowed)
    assert host_allowed("ZENODO.org.", allowed)
    assert not host_allowed("evilzenodo.org", allowed)
    assert not host_allowed("zenodo.org.evil.com", allowed)
    assert host_allowed("files.example.org", allowed)
    assert host_allowed("a.b.example.org", allowed)
    assert not host_allowed("example.org", allowed)
    assert not host_allowed("badexample.org", allowed)


def test_configured_service_hosts_are_always_allowed() -> None:
    settings = LoaderSettings(
        zenodo_url="https://zenodo.example", doi_resolver_url="http://127.0.0.1:9/api/handles/",
        allowed_hosts=("files.example",),
    )  # fmt: skip
    assert settings.allows("zenodo.example")
    assert settings.allows("sandbox.zenodo.org")
    assert settings.allows("127.0.0.1")
    assert settings.allows("files.example")
    assert not settings.allows("localhost")
    assert not settings.allows("zenodo.org")


def test_check_url_returns_the_host_in_lower_case() -> None:
    assert check_url("https://Zenodo.ORG:443/records/1") == "zenodo.org"
    assert check_url("http://[::1]:8080/a.zip") == "::1"
    with pytest.raises(LoadError, match="http or https"):
        check_url("file:///etc/passwd")


@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("https://zenodo.org/records/1234567", (ZENODO, "1234567")),
        ("https://zenodo.org/records/1234567/", (ZENODO, "1234567")),
        ("http://zenodo.org/record/12?preview=1", (ZENODO, "12")),
        ("https://zenodo.org/api/records/12", (ZENODO, "12")),
        ("https://zenodo.org/doi/10.5281/zenodo.12", (ZENODO, "12")),
        ("https://sandbox.zenodo.org/records/5", (SANDBOX, "5")),
        ("https://zenodo.org/records/12/files/a.zip?download=1", None),
        ("https://zenodo.org/communities/x", None),
        ("https://zenodo.org:8443/records/12", None),
        ("https://example.org/records/12", None),
    ],
)
def test_zenodo_record_urls_are_recognised(url: str, found: tuple[str, str] | None) -> None:
    assert zenodo_record_of(url, (ZENODO, SANDBOX)) == found


def test_a_base_url_with_a_path_and_port_is_respected() -> None:
    base = "http://127.0.0.1:9100/zenodo"
    assert zenodo_record_of("http://127.0.0.1:9100/zenodo/records/3", [base]) == (base, "3")
    assert zenodo_record_of("http://127.0.0.1:9100/records/3", [base]) is None
    assert zenodo_record_of("http://127.0.0.1:9101/zenodo/records/3", [base]) is None


def test_doi_urls_are_dois() -> None:
    assert doi_of_url("https://doi.org/10.5281/ZENODO.3") == "10.5281/zenodo.3"
    assert doi_of_url("https://dx.doi.org/10.5281/zenodo.3") == "10.5281/zenodo.3"
    assert doi_of_url("https://doi.org/api/handles/x") is None
    assert doi_of_url("https://example.org/10.5281/zenodo.3") is None


def test_the_url_of_a_handle_answer() -> None:
    answer = {
        "responseCode": 1,
        "handle": "10.5281/zenodo.3",
        "values": [
            {"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", "value": {}}},
            {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://z/r/3"}},
        ],
    }
    assert url_of_handle(answer) == "https://z/r/3"
    assert url_of_handle({"responseCode": 100, "handle": "x"}) is None
    assert url_of_handle({"responseCode": 1, "values": [{"type": "EMAIL"}]}) is None
    assert url_of_handle(None) is None


# -- records -----------------------------------------------------------------------------------


def test_the_only_archive_of_a_record_is_chosen() -> None:
    files = [entry("README.md"), entry("erc.tar.gz"), entry("data.csv")]
    assert choose_record_file(files, None, "record 1")["key"] == "erc.tar.gz"
    assert choose_record_file(files, "data.csv", "record 1")["key"] == "data.csv"


@pytest.mark.parametrize(
    ("files", "filename", "status", "words"),
    [
        ([], None, 400, "record 1 has no files"),
        ([{"key": "a.zip"}], None, 400, "has no files"),
        ([entry("a.txt"), entry("b.csv")], None, 400, "no zip or tar archive (files: a.txt, b.csv"),
        ([entry("a.zip"), entry("b.tgz")], None, 400, "several archives (a.zip, b.tgz); name one"),
        ([entry("a.zip")], "b.zip", 404, "has no file 'b.zip'"),
    ],
)  # fmt: skip
def test_record_file_choice_errors(
    files: list[dict[str, object]], filename: str | None, status: int, words: str
) -> None:
    with pytest.raises(LoadError) as caught:
        choose_record_file(files, filename, "record 1")
    assert caught.value.status == status
    assert words in caught.value.message


@pytest.mark.parametrize(
    ("status", "mapped", "words"),
    [
        (404, 404, "record 1 was not found (zenodo.org answered 404: PID does not exist)"),
        (410, 404, "was removed"),
        (403, 403, "is not public"),
        (401, 403, "is not public"),
        (429, 502, "limits the rate"),
        (400, 502, "zenodo.org answered 400 for record 1"),
        (503, 502, "zenodo.org answered 503 for record 1: PID does not exist"),
    ],
)
def test_repository_errors_are_mapped(status: int, mapped: int, words: str) -> None:
    error = upstream_error(status, b'{"status": 1, "message": "PID does not exist"}',
                           "record 1", "zenodo.org")  # fmt: skip
    assert error.status == mapped
    assert words in error.message


def test_a_repository_error_without_json_names_the_status() -> None:
    error = upstream_error(502, b"<html>Bad Gateway</html>", "the share_url", "example.org")
    assert error.message == "example.org answered 502 for the share_url: Bad Gateway"
    fields = b'{"message": "Validation error.", "errors": [{"field": "metadata.title"}]}'
    assert "Validation error. (metadata.title)" in upstream_error(400, fields, "x", "h").message


# -- origin ------------------------------------------------------------------------------------


def test_the_origin_of_a_doi_load_and_its_identifier() -> None:
    moment = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
    added = origin_metadata(
        Source("doi", "10.5281/zenodo.3"),
        url="https://zenodo.org/api/records/3/files/erc.zip/content",
        record_url="https://zenodo.org/records/3",
        record_doi="10.5281/zenodo.4",
        file="erc.zip",
        now=moment,
    )
    assert added == {
        "origin": {
            "kind": "doi",
            "doi": "10.5281/zenodo.3",
            "url": "https://zenodo.org/api/records/3/files/erc.zip/content",
            "record_url": "https://zenodo.org/records/3",
            "file": "erc.zip",
            "loaded": "2024-05-06T07:08:09Z",
        },
        # the DOI asked for wins over the record's own (a concept DOI finds the same again)
        "identifier": {"doi": "10.5281/zenodo.3", "doiurl": "https://doi.org/10.5281/zenodo.3"},
    }
    metadata = {"title": "t", **added}
    jsonschema.validate(metadata, json.loads(O2R_SCHEMA.read_text()))


def test_a_share_url_without_a_record_has_no_identifier() -> None:
    added = origin_metadata(Source("share_url", "https://x.org/a.zip"), url="https://x.org/a.zip")
    assert "identifier" not in added
    assert added["origin"]["share_url"] == "https://x.org/a.zip"
    record = origin_metadata(
        Source("zenodo_record_id", "3"), url="u", record_doi="10.5281/Zenodo.3"
    )
    assert record["identifier"]["doi"] == "10.5281/zenodo.3"


# -- archives ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["erc.yml", "main.ipynb"], True),
        (["main.ipynb"], False),
        (["paper/erc.yml", "paper/main.ipynb"], True),
        (["paper/", "paper/erc.yml"], True),
        (["./paper/erc.yml", "__MACOSX/._paper"], True),
        (["a/erc.yml", "b/main.ipynb"], False),
        (["bag/bagit.txt", "bag/data/erc.yml", "bag/data/main.ipynb"], True),
        (["bagit.txt", "manifest-md5.txt", "data/erc.yml"], True),
        (["data/erc.yml", "other.txt"], False),
        (["sub/dir/erc.yml"], False),
    ],
)
def test_an_erc_at_the_root_is_found_by_member_names(names: list[str], expected: bool) -> None:
    assert holds_erc(names) is expected


def test_the_content_type_is_told_by_the_archive(tmp_path: Path) -> None:
    with_erc = tmp_path / "erc.zip"
    with zipfile.ZipFile(with_erc, "w") as archive:
        archive.writestr("c/erc.yml", "spec_version: 1\n")
    assert archive_content_type(with_erc) == "compendium"
    plain = tmp_path / "w.tar.gz"
    with tarfile.open(plain, "w:gz") as archive:
        info = tarfile.TarInfo("main.ipynb")
        archive.addfile(info, io.BytesIO(b""))
    assert archive_content_type(plain) == "workspace"
    junk = tmp_path / "junk"
    junk.write_bytes(b"no archive")
    assert archive_content_type(junk) == "workspace"


def test_download_names_are_safe() -> None:
    assert safe_name("/api/records/1/files/my%20erc.zip/content") == "content"
    assert safe_name("my%20erc.zip") == "my erc.zip"
    assert safe_name("../../.bashrc") == "bashrc"
    assert safe_name("") == "download"
    assert safe_name("a/b\\c$d.zip") == "c_d.zip"
