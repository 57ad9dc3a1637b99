"""Compendia on disk: ingest, file trees, safe paths, streamed archives, cleanup on failure."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from erchub.archive import ArchiveLimits
from erchub.erc import ERC_FILENAME, UUID4_PATTERN, load_erc
from erchub.errors import InvalidERC, UnsafeArchive
from erchub.metadata import METADATA_PATH
from erchub.safefs import OutsideRoot, resolve_inside
from erchub.services.compendia import files as compendia
from erchub.services.compendia.files import ArchiveStream, file_tree, ingest
from erchub.services.handlers.base import schema_problems
from erchub.services.handlers.compendium import (
    DERIVED_FIELDS,
    METADATA_BODY_SCHEMA,
    O2R_SCHEMA,
)
from tests.conftest import heading, write_notebook
from tests.unit.test_archive import ZEROS_50_MB, make_tar, make_zip, tar_member, zip_info

REPO = Path(__file__).resolve().parents[2]
ERC_ID = "b9b0099e-9f8d-4a33-8acf-cb0c062efaec"
LICENSES = {"code": "MIT", "data": "ODbL-1.0", "text": "CC-BY-4.0", "metadata": "CC0-1.0"}
NOTEBOOK_METADATA = {
    "authors": [
        {"name": "Ada Lovelace", "orcid": "https://orcid.org/0000-0002-1825-0097"},
        "Charles Babbage",
    ],
    "keywords": "engines, computing",
    "publication_date": "2024-05-01",
}


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data directory beside a secret; asserts that the secret's folder stays as it was and
    that no staging directory is left in uploads/."""
    data = tmp_path / "data"
    for sub in ("compendia", "jobs", "uploads"):
        (data / sub).mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret", encoding="utf-8")
    yield data
    assert [p.name for p in outside.iterdir()] == ["secret"]
    assert (outside / "secret").read_text(encoding="utf-8") == "secret"
    assert [p.name for p in (data / "uploads").iterdir()] == []
    assert not Path("/tmp/evil.txt").exists()


@pytest.fixture
def archives(tmp_path: Path) -> Path:
    path = tmp_path / "archives"
    path.mkdir(exist_ok=True)
    return path


def notebook_bytes(tmp_path: Path, title: str = "Temperature trends") -> bytes:
    path = write_notebook(
        tmp_path / "nb" / "main.ipynb",
        heading(f"# {title}\n\nWe look at temperatures."),
        "print(1)",
        **NOTEBOOK_METADATA,
    )
    return path.read_bytes()


def erc_yml(**extra: Any) -> bytes:
    data = {"spec_version": 1, "id": ERC_ID, "main": "main.ipynb", "licenses": LICENSES, **extra}
    return yaml.safe_dump(data).encode()


def installed(staged: compendia.StagedCompendium, data_dir: Path, name: str = "abc123") -> Path:
    try:
        return compendia.install(staged, data_dir, name)
    finally:
        compendia.discard(staged)


def tree_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# --- ids -----------------------------------------------------------------------------------


def test_new_compendium_ids_are_short_random_alphanumerics() -> None:
    ids = {compendia.new_compendium_id() for _ in range(500)}
    assert len(ids) == 500
    assert all(len(i) == 6 and i.isalnum() and i.isascii() for i in ids)


# --- ingest --------------------------------------------------------------------------------


def test_ingest_workspace_generates_erc_yml_and_metadata(
    tmp_path: Path, data_dir: Path, archives: Path
) -> None:
    archive = make_zip(
        archives / "work.zip",
        ("project/main.ipynb", notebook_bytes(tmp_path)),
        ("project/data/t.csv", b"year,t\n2020,1.5\n"),
        ("project/requirements.txt", b"pandas>=2\n"),
    )
    staged = ingest(archive, "workspace", data_dir)
    assert data_dir / "uploads" in staged.root.parents
    metadata = staged.metadata
    assert metadata["title"] == "Temperature trends"
    assert metadata["description"] == "We look at temperatures."
    assert metadata["creators"][0] == {
        "name": "Ada Lovelace",
        "orcid": "0000-0002-1825-0097",
        "affiliation": None,
    }
    assert metadata["keywords"] == ["engines", "computing"]
    assert metadata["mainfile"] == "main.ipynb"
    assert metadata["files"] == ["data/t.csv", "erc.yml", "main.ipynb", "requirements.txt"]
    assert metadata["depends"] == [
        {"identifier": "pandas", "version": ">=2", "packageSystem": "https://pypi.org/"}
    ]
    root = installed(staged, data_dir)
    assert root == data_dir / "compendia" / "abc123"
    erc = load_erc(root)
    assert erc is not None and UUID4_PATTERN.fullmatch(erc.id)
    assert json.loads((root / METADATA_PATH).read_text()) == metadata
    # what the extraction produced validates against the schema authors PUT to
    assert schema_problems(metadata, O2R_SCHEMA) == []


def test_ingest_compendium_keeps_its_own_metadata(
    tmp_path: Path, data_dir: Path, archives: Path
) -> None:
    own = {"title": "The published title", "creators": [{"name": "A. Author"}]}
    archive = make_tar(
        archives / "erc.tar.gz",
        ("main.ipynb", notebook_bytes(tmp_path)),
        (ERC_FILENAME, erc_yml()),
        (METADATA_PATH, json.dumps(own).encode()),
        mode="w:gz",
    )
    staged = ingest(archive, "compendium", data_dir)
    assert staged.metadata == own
    root = installed(staged, data_dir)
    assert json.loads((root / METADATA_PATH).read_text()) == own
    assert (root / ERC_FILENAME).read_bytes() == erc_yml()


def test_ingest_compendium_without_metadata_extracts_it(
    tmp_path: Path, data_dir: Path, archives: Path
) -> None:
    archive = make_zip(
        archives / "erc.zip",
        ("main.ipynb", notebook_bytes(tmp_path, "Given")),
        (ERC_FILENAME, erc_yml()),
    )
    staged = ingest(archive, "compendium", data_dir)
    assert staged.metadata["title"] == "Given"
    assert staged.metadata["erc_id"] == ERC_ID
    assert staged.metadata["license"] == LICENSES
    root = installed(staged, data_dir)
    assert json.loads((root / METADATA_PATH).read_text()) == staged.metadata


def assert_nothing_left(data_dir: Path) -> None:
    assert list((data_dir / "uploads").iterdir()) == []
    assert list((data_dir / "compendia").iterdir()) == []


def test_compendium_without_erc_yml_is_refused(
    tmp_path: Path, data_dir: Path, archives: Path
) -> None:
    archive = make_zip(archives / "erc.zip", ("main.ipynb", notebook_bytes(tmp_path)))
    with pytest.raises(InvalidERC, match=r"holds no erc\.yml .* content_type workspace"):
        ingest(archive, "compendium", data_dir)
    assert_nothing_left(data_dir)


def test_compendium_with_invalid_erc_yml_is_refused(
    tmp_path: Path, data_dir: Path, archives: Path
) -> None:
    archive = make_zip(
        archives / "erc.zip",
        ("main.ipynb", notebook_bytes(tmp_path)),
        (ERC_FILENAME, erc_yml(execution={"timeout": -5})),
    )
    with pytest.raises(InvalidERC, match=r"^erc\.yml: execution\.timeout: must be a positive"):
        ingest(archive, "compendium", data_dir)
    assert_nothing_left(data_dir)


def test_workspace_without_notebook_names_the_archive_not_server_paths(
    data_dir: Path, archives: Path
) -> None:
    archive = make_zip(archives / "w.zip", ("data/x.csv", b"1"), ("README.md", b"hi"))
    with pytest.raises(InvalidERC) as raised:
        ingest(archive, "workspace", data_dir)
    assert str(raised.value) == "no notebook (*.ipynb) in the archive"
    assert_nothing_left(data_dir)


def test_erc_yml_that_is_a_directory_is_an_invalid_erc(
    tmp_path: Path, data_dir: Path, archives: Path
) -> None:
    archive = make_zip(
        archives / "w.zip", ("main.ipynb", notebook_bytes(tmp_path)), ("erc.yml/x", b"1")
    )
    with pytest.raises(InvalidERC, match=r"^erc\.yml: cannot be read or written"):
        ingest(archive, "workspace", data_dir)
    assert_nothing_left(data_dir)


def test_non_utf8_requirements_are_an_invalid_erc(
    tmp_path: Path, data_dir: Path, archives: Path
) -> None:
    archive = make_zip(
        archives / "w.zip",
        ("main.ipynb", notebook_bytes(tmp_path)),
        ("requirements.txt", b"caf\xe9\n"),
    )
    with pytest.raises(InvalidERC, match="not UTF-8"):
        ingest(archive, "workspace", data_dir)
    assert_nothing_left(data_dir)


def test_unknown_content_type_is_refused(data_dir: Path, archives: Path) -> None:
    archive = make_zip(archives / "w.zip", ("main.ipynb", b"{}"))
    with pytest.raises(InvalidERC, match="content_type must be workspace or compendium"):
        ingest(archive, "bag", data_dir)
    assert_nothing_left(data_dir)


def zip_bomb(archives: Path) -> Path:
    return make_zip(archives / "bomb.zip", ("main.ipynb", b"{}"), ("zeros.bin", ZEROS_50_MB))


@pytest.mark.parametrize(
    ("build", "kind", "message"),
    [
        (lambda a: make_zip(a / "up.zip", ("../evil.txt", b"x")), UnsafeArchive, "'..'"),
        (lambda a: make_zip(a / "abs.zip", ("/tmp/evil.txt", b"x")), UnsafeArchive, "absolute"),
        (
            lambda a: make_zip(
                a / "link.zip",
                (zip_info("escape", stat.S_IFLNK | 0o777), b"../../outside"),
                ("main.ipynb", b"{}"),
            ),
            UnsafeArchive,
            "outside the target",
        ),
        (
            lambda a: make_tar(
                a / "link.tar",
                tar_member("escape", tarfile.SYMTYPE, link="../../outside"),
                ("escape/secret", b"overwritten"),
            ),
            UnsafeArchive,
            "lies under the link 'escape'",
        ),
        (
            lambda a: make_tar(
                a / "abs-link.tar", tar_member("escape", tarfile.SYMTYPE, link="/etc")
            ),
            UnsafeArchive,
            "an absolute path",
        ),
        (zip_bomb, UnsafeArchive, "zip bomb"),
        (lambda a: _write(a / "notes.zip", b"just text"), InvalidERC, "not a zip or tar"),
        (lambda a: _write(a / "cut.zip", _zip_bytes()[:-30]), InvalidERC, "cut.zip"),
    ],
    ids=[
        "dotdot",
        "absolute",
        "zip-symlink-out",
        "tar-symlink-out",
        "tar-abs-link",
        "bomb",
        "not-an-archive",
        "truncated",
    ],
)
def test_attacks_and_junk_are_refused_and_leave_nothing(
    data_dir: Path, archives: Path, build: Any, kind: type[Exception], message: str
) -> None:
    archive = build(archives)
    with pytest.raises(kind, match=message) as raised:
        ingest(archive, "workspace", data_dir)
    assert "\n" not in str(raised.value)
    assert str(data_dir) not in str(raised.value)
    assert_nothing_left(data_dir)


def test_archive_limits_apply(tmp_path: Path, data_dir: Path, archives: Path) -> None:
    archive = make_zip(
        archives / "many.zip",
        ("main.ipynb", notebook_bytes(tmp_path)),
        *((f"data/{i}.txt", b"x") for i in range(10)),
    )
    with pytest.raises(UnsafeArchive, match="limit of 5 members"):
        ingest(archive, "workspace", data_dir, ArchiveLimits(max_members=5))
    assert_nothing_left(data_dir)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("main.ipynb", os.urandom(4096))
    return buffer.getvalue()


# --- install, delete -------------------------------------------------------------------------


def test_install_refuses_a_taken_id_and_delete_removes(
    tmp_path: Path, data_dir: Path, archives: Path
) -> None:
    archive = make_zip(archives / "w.zip", ("main.ipynb", notebook_bytes(tmp_path)))
    (data_dir / "compendia" / "taken").mkdir()
    staged = ingest(archive, "workspace", data_dir)
    with pytest.raises(FileExistsError):
        compendia.install(staged, data_dir, "taken")
    root = installed(staged, data_dir, "free")
    assert (root / "main.ipynb").is_file()
    compendia.delete_compendium_dir(data_dir, "free")
    compendia.delete_compendium_dir(data_dir, "never")
    (data_dir / "compendia" / "taken").rmdir()
    assert_nothing_left(data_dir)


# --- file tree, paths, types -------------------------------------------------------------------


@pytest.fixture
def compendium(tmp_path: Path) -> Path:
    root = tmp_path / "c" / "abc123"
    (root / "data" / "raw").mkdir(parents=True)
    (root / "main.ipynb").write_text("{}")
    (root / "data" / "t.csv").write_text("a,b\n")
    (root / "data" / "raw" / "blob.bin").write_bytes(bytes(1000))
    (root / "erc.yml").write_text("spec_version: 1\n")
    os.symlink("data/t.csv", root / "latest.csv")
    os.symlink("data", root / "data-link")
    os.symlink("../../outside", root / "escape")
    os.symlink("missing", root / "dangling")
    (tmp_path / "outside").mkdir(exist_ok=True)
    (tmp_path / "outside" / "secret").write_text("secret")
    return root


def test_file_tree_lists_sizes_types_and_keeps_links_inside(compendium: Path) -> None:
    tree = file_tree(compendium)
    assert (tree["path"], tree["name"], tree["type"]) == ("", "abc123", "directory")
    by_name = {child["name"]: child for child in tree["children"]}
    assert list(by_name) == ["data", "data-link", "erc.yml", "latest.csv", "main.ipynb"]
    assert by_name["main.ipynb"] == {
        "path": "main.ipynb",
        "name": "main.ipynb",
        "type": "file",
        "size": 2,
        "mimetype": "application/x-ipynb+json",
    }
    assert by_name["latest.csv"]["mimetype"] == "text/csv"
    assert by_name["erc.yml"]["mimetype"] == "application/yaml"
    assert by_name["data-link"] == {
        "path": "data-link",
        "name": "data-link",
        "type": "directory",
        "size": 0,
        "children": [],
    }
    data = by_name["data"]
    assert data["size"] == 4 + 1000
    raw = data["children"][0]
    assert raw["path"] == "data/raw"
    assert raw["children"][0]["path"] == "data/raw/blob.bin"
    assert tree["size"] == 2 + 4 + 1000 + 16 + 4


def test_mime_types() -> None:
    assert compendia.mime_type("a.html") == "text/html"
    assert compendia.mime_type("x.tar.gz") == "application/gzip"
    assert compendia.mime_type("Dockerfile") == "text/plain"
    assert compendia.mime_type("analysis.R") == "text/x-r"
    assert compendia.mime_type("thing.unknownext") == "application/octet-stream"


def test_resolve_inside_accepts_paths_inside(compendium: Path) -> None:
    real = Path(os.path.realpath(compendium))
    assert resolve_inside(compendium, "data/t.csv") == real / "data" / "t.csv"
    assert resolve_inside(compendium, "latest.csv") == real / "data" / "t.csv"
    assert resolve_inside(compendium, "data-link/raw") == real / "data" / "raw"
    assert resolve_inside(compendium, "./data//t.csv") == real / "data" / "t.csv"
    assert resolve_inside(compendium, "not/there.txt") == real / "not" / "there.txt"


@pytest.mark.parametrize(
    "attack",
    [
        "../outside/secret",
        "data/../../outside",
        "/etc/passwd",
        "escape/secret",
        "escape",
        "",
        "a\x00b",
        "\\server\\share",
    ],
)
def test_resolve_inside_rejects_escapes(compendium: Path, attack: str) -> None:
    with pytest.raises(OutsideRoot):
        resolve_inside(compendium, attack)


# --- streamed archives -----------------------------------------------------------------------


@pytest.mark.parametrize("archive_format", ["zip", "tar.gz"])
def test_archive_streams_round_trip(
    compendium: Path, tmp_path: Path, archive_format: compendia.ArchiveFormat
) -> None:
    (compendium / "escape").unlink()
    (compendium / "dangling").unlink()
    big = os.urandom(3 * compendia.CHUNK_BYTES + 17)
    (compendium / "data" / "big.bin").write_bytes(big)
    os.chmod(compendium / "main.ipynb", 0o755)
    chunks = list(ArchiveStream(compendium, archive_format, "abc123"))
    assert len(chunks) >= 3
    assert max(len(chunk) for chunk in chunks) < 2 * compendia.CHUNK_BYTES + 64 * 1024
    archive = tmp_path / f"download.{archive_format}"
    archive.write_bytes(b"".join(chunks))
    target = tmp_path / "unpacked"
    root = compendia.extract_archive(archive, target)
    assert root == target / "abc123"
    assert tree_files(root) == tree_files(compendium)
    assert os.readlink(root / "latest.csv") == "data/t.csv"
    assert os.readlink(root / "data-link") == "data"
    assert os.access(root / "main.ipynb", os.X_OK)


def test_downloaded_zip_is_accepted_again_as_a_compendium(
    tmp_path: Path, data_dir: Path, archives: Path
) -> None:
    archive = make_zip(
        archives / "w.zip",
        ("main.ipynb", notebook_bytes(tmp_path)),
        ("data/t.csv", b"1,2\n"),
    )
    root = installed(ingest(archive, "workspace", data_dir), data_dir)
    download = archives / "abc123.zip"
    download.write_bytes(b"".join(ArchiveStream(root, "zip", "abc123")))
    again = ingest(download, "compendium", data_dir)
    assert again.metadata == json.loads((root / METADATA_PATH).read_text())
    assert tree_files(again.root) == tree_files(root)
    compendia.discard(again)


def test_archive_stream_stops_its_writer_when_closed(compendium: Path) -> None:
    (compendium / "escape").unlink()
    (compendium / "big.bin").write_bytes(os.urandom(64 * compendia.CHUNK_BYTES))
    stream = ArchiveStream(compendium, "tar.gz", "abc123")
    assert stream.next_chunk()
    stream.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(
        thread.name == "archive-abc123.tar.gz" for thread in threading.enumerate()
    ):
        time.sleep(0.05)
    assert not any(t.name == "archive-abc123.tar.gz" for t in threading.enumerate())


def test_archive_stream_reports_a_writer_error(tmp_path: Path) -> None:
    stream = ArchiveStream(tmp_path / "missing", "zip", "x")
    with pytest.raises(OSError):
        list(stream)


# --- the metadata schema -------------------------------------------------------------------


def test_schema_is_valid_and_matches_the_openapi_fragment() -> None:
    jsonschema.Draft202012Validator.check_schema(O2R_SCHEMA)
    jsonschema.Draft202012Validator.check_schema(METADATA_BODY_SCHEMA)
    fragment = yaml.safe_load((REPO / "services/openapi/compendium.yaml").read_text())
    documented = fragment["components"]["schemas"]["MetadataO2r"]
    assert documented == {k: v for k, v in O2R_SCHEMA.items() if k != "$schema"}
    assert set(DERIVED_FIELDS) == {
        "erc_id",
        "license_files",
        "dependency_files",
        "depends",
        "files",
        "origin",
        "substitution",
        "is_new_version_of",
        "derived_from",
    }


def test_metadata_body_problems_name_each_field() -> None:
    body = {
        "o2r": {
            "title": "",
            "creators": [{"name": "A", "orcid": "1234"}, {"orcid": "0000-0002-1825-0097"}],
            "keywords": "not a list",
            "publication_date": "May 2024",
            "identifier": {"doi": "doi.org/10.1/x"},
            "mainfile": "../main.ipynb",
            "colour": "blue",
        },
        "extra": 1,
    }
    problems = schema_problems(body, METADATA_BODY_SCHEMA)
    fields = {problem.split(":", 1)[0] for problem in problems}
    assert fields == {
        "body",
        "o2r",
        "o2r.title",
        "o2r.creators.0.orcid",
        "o2r.creators.1",
        "o2r.keywords",
        "o2r.publication_date",
        "o2r.identifier.doi",
        "o2r.mainfile",
    }
    assert "body: unknown field extra" in problems
    assert "o2r: unknown field colour" in problems
    assert "o2r.creators.1: 'name' is required" in problems


def test_a_complete_metadata_body_is_valid() -> None:
    body = {
        "o2r": {
            "title": "T",
            "description": None,
            "creators": [{"name": "A", "orcid": "0000-0002-1825-009X", "affiliation": "U"}],
            "keywords": ["k"],
            "publication_date": "2024-05-01",
            "license": {"code": "MIT", "data": {"data/t.csv": "ODbL-1.0"}, "text": "CC-BY-4.0"},
            "identifier": {"doi": "10.5281/zenodo.1234567", "doiurl": "https://doi.org/x"},
            "mainfile": "analysis/main.ipynb",
            "displayfile": "analysis/main.html",
        }
    }
    assert schema_problems(body, METADATA_BODY_SCHEMA) == []
