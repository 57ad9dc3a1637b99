"""Archive extraction against real malicious archives: nothing may land outside the target."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import uuid
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from erchub.archive import ArchiveLimits, _Budget, _copy_member, extract_archive, is_archive
from erchub.errors import InvalidERC, UnsafeArchive

ZEROS_50_MB = bytes(50 * 1024**2)


@pytest.fixture
def area(tmp_path: Path) -> Iterator[Path]:
    """tmp_path with an ``outside`` folder holding a secret; asserts both stay untouched."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret", encoding="utf-8")
    before = snapshot(tmp_path)
    yield tmp_path
    after = snapshot(tmp_path)
    assert {path for path in after if not path.startswith(("target", "archive"))} == {
        path for path in before if not path.startswith("archive")
    }
    assert (outside / "secret").read_text(encoding="utf-8") == "secret"
    assert (outside / "secret").stat().st_nlink == 1


def snapshot(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*")}


def make_zip(path: Path, *entries: tuple[str | zipfile.ZipInfo, bytes]) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
            for name, data in entries:
                bundle.writestr(name, data)
    return path


def zip_info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", size: int = 0):
    member = tarfile.TarInfo(name)
    member.type = kind
    member.linkname = link
    member.size = size
    member.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return member


def make_tar(path: Path, *entries: tarfile.TarInfo | tuple[str, bytes], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                name, data = entry
                tar.addfile(tar_member(name, size=len(data)), io.BytesIO(data))
    return path


def refused(archive: Path, target: Path, *, limits: ArchiveLimits | None = None) -> str:
    with pytest.raises(UnsafeArchive) as raised:
        if limits is None:
            extract_archive(archive, target)
        else:
            extract_archive(archive, target, limits)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{archive.name}: member ")
    assert not target.exists()
    return message


# --- recognising archives ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tar_formats_are_recognised_by_content(tmp_path: Path, mode: str) -> None:
    archive = make_tar(tmp_path / "upload.bin", ("main.ipynb", b"{}"), mode=mode)
    assert is_archive(archive)
    root = extract_archive(archive, tmp_path / "target")
    assert (root / "main.ipynb").read_bytes() == b"{}"


def test_zip_is_recognised_by_content(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "upload.txt", ("main.ipynb", b"{}"))
    assert is_archive(archive)


def test_other_files_are_not_archives(tmp_path: Path) -> None:
    text = tmp_path / "notes.zip"
    text.write_text("not an archive", encoding="utf-8")
    gzipped = tmp_path / "notes.tar.gz"
    gzipped.write_bytes(gzip.compress(b"plain text, not a tar"))
    assert not is_archive(text)
    assert not is_archive(gzipped)
    assert not is_archive(tmp_path)
    assert not is_archive(tmp_path / "missing.zip")
    with pytest.raises(InvalidERC, match=r"^notes\.zip is not a zip or tar archive$"):
        extract_archive(text, tmp_path / "target")
    assert not (tmp_path / "target").exists()


# --- the compendium root -------------------------------------------------------------------


def test_single_top_level_directory_is_the_root(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "a.zip",
        ("proj/main.ipynb", b"{}"),
        ("proj/data/x.csv", b"1,2"),
        ("__MACOSX/proj/._main.ipynb", b"resource fork"),
    )
    root = extract_archive(archive, tmp_path / "target")
    assert root == tmp_path / "target" / "proj"
    assert snapshot(tmp_path / "target") == {
        "proj",
        "proj/main.ipynb",
        "proj/data",
        "proj/data/x.csv",
    }


def test_several_top_level_entries_root_is_the_target(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "a.zip", ("main.ipynb", b"{}"), ("data/x.csv", b"1"))
    assert extract_archive(archive, tmp_path / "target") == tmp_path / "target"


def test_bagit_bag_root_is_its_payload(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "bag.zip",
        ("bag/bagit.txt", b"BagIt-Version: 0.97\n"),
        ("bag/data/erc.yml", b"spec_version: 1\n"),
    )
    assert extract_archive(archive, tmp_path / "target") == tmp_path / "target" / "bag" / "data"


def test_empty_existing_target_is_used(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    archive = make_zip(tmp_path / "a.zip", ("main.ipynb", b"{}"))
    assert extract_archive(archive, tmp_path / "target") == tmp_path / "target"


def test_non_empty_target_is_refused(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "x").write_text("x", encoding="utf-8")
    archive = make_zip(tmp_path / "a.zip", ("main.ipynb", b"{}"))
    with pytest.raises(FileExistsError):
        extract_archive(archive, tmp_path / "target")


def test_zip_modes_and_inner_links(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "a.zip",
        (zip_info("run.sh", stat.S_IFREG | 0o755), b"#!/bin/sh\n"),
        (zip_info("data/real.csv", stat.S_IFREG | 0o644), b"1,2"),
        (zip_info("latest.csv", stat.S_IFLNK | 0o777), b"data/real.csv"),
    )
    root = extract_archive(archive, tmp_path / "target")
    assert os.access(root / "run.sh", os.X_OK)
    assert not os.access(root / "data" / "real.csv", os.X_OK)
    assert os.readlink(root / "latest.csv") == "data/real.csv"
    assert (root / "latest.csv").read_text(encoding="utf-8") == "1,2"


def test_tar_links_inside_the_target_are_kept(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "a.tar",
        ("real/x.txt", b"x"),
        tar_member("alias", tarfile.SYMTYPE, link="real"),
        ("alias/y.txt", b"y"),
        tar_member("copy.txt", tarfile.LNKTYPE, link="real/x.txt"),
    )
    root = extract_archive(archive, tmp_path / "target")
    assert (root / "real" / "y.txt").read_text(encoding="utf-8") == "y"
    assert (root / "copy.txt").stat().st_ino == (root / "real" / "x.txt").stat().st_ino


# --- attacks -------------------------------------------------------------------------------


def test_zip_with_parent_path(area: Path) -> None:
    archive = make_zip(area / "archive.zip", ("ok.txt", b"ok"), ("../outside/evil.txt", b"x"))
    message = refused(archive, area / "target")
    assert message == "archive.zip: member '../outside/evil.txt' has '..' in its path"


def test_zip_with_absolute_path(area: Path) -> None:
    evil = area / "outside" / "evil.txt"
    archive = make_zip(area / "archive.zip", (str(evil), b"x"))
    assert refused(archive, area / "target").endswith("has an absolute path")


def test_tar_with_absolute_path(area: Path) -> None:
    evil = area / "outside" / "evil.txt"
    archive = make_tar(area / "archive.tar", ("fine.txt", b"ok"), (str(evil), b"x"))
    assert refused(archive, area / "target").endswith("has an absolute path")


def test_tar_with_parent_path_that_stays_inside_lexically(area: Path) -> None:
    archive = make_tar(area / "archive.tar", ("a/../../outside/evil.txt", b"x"))
    assert "has '..' in its path" in refused(archive, area / "target")


def test_tar_symlink_to_etc_then_a_file_through_it(area: Path) -> None:
    name = f"erchub-test-{uuid.uuid4()}"
    archive = make_tar(
        area / "archive.tar.gz",
        tar_member("etc", tarfile.SYMTYPE, link="/etc"),
        (f"etc/{name}", b"owned"),
        mode="w:gz",
    )
    message = refused(archive, area / "target")
    assert message == "archive.tar.gz: member 'etc' links to '/etc', outside the target"
    assert not (Path("/etc") / name).exists()


def test_tar_relative_symlink_out_then_a_file_through_it(area: Path) -> None:
    archive = make_tar(
        area / "archive.tar",
        tar_member("up", tarfile.SYMTYPE, link="../outside"),
        ("up/evil.txt", b"x"),
    )
    assert "member 'up' links to '../outside', outside the target" in refused(
        archive, area / "target"
    )


def test_tar_symlink_that_turns_outside_later(area: Path) -> None:
    # 'L' points inside when it is made; 'B' then makes it point above the target.
    archive = make_tar(
        area / "archive.tar",
        tar_member("L", tarfile.SYMTYPE, link="B/.."),
        tar_member("B", tarfile.SYMTYPE, link="."),
        ("L/outside/evil.txt", b"x"),
    )
    message = refused(archive, area / "target")
    assert message.endswith(
        "'L/outside/evil.txt' would be written outside the target (through a link)"
    )


@pytest.mark.parametrize("link", ["/etc/passwd", "../outside/secret"])
def test_tar_hard_link_outside(area: Path, link: str) -> None:
    archive = make_tar(area / "archive.tar", tar_member("innocent", tarfile.LNKTYPE, link=link))
    assert f"member 'innocent' links to {link!r}, outside the target" in refused(
        archive, area / "target"
    )


@pytest.mark.parametrize("kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_tar_special_files(area: Path, kind: bytes) -> None:
    archive = make_tar(area / "archive.tar", ("ok.txt", b"ok"), tar_member("dev", kind))
    assert refused(archive, area / "target").endswith(
        "member 'dev' is a device file, fifo or other special file"
    )


def test_zip_symlink_outside(area: Path) -> None:
    archive = make_zip(
        area / "archive.zip",
        (zip_info("up", stat.S_IFLNK | 0o777), b"../outside"),
        ("up/evil.txt", b"x"),
    )
    assert refused(archive, area / "target").endswith(
        "member 'up' links to '../outside', outside the target"
    )


def test_zip_special_file(area: Path) -> None:
    archive = make_zip(area / "archive.zip", (zip_info("pipe", stat.S_IFIFO | 0o644), b""))
    assert refused(archive, area / "target").endswith(
        "is a device file, fifo or other special file"
    )


def test_zip_duplicate_member(area: Path) -> None:
    archive = make_zip(area / "archive.zip", ("a.txt", b"one"), ("a.txt", b"two"))
    assert refused(archive, area / "target").endswith("member 'a.txt' is in the archive twice")


def test_zip_bomb(area: Path) -> None:
    archive = make_zip(area / "archive.zip", ("zeros.bin", ZEROS_50_MB))
    assert archive.stat().st_size < 100_000
    message = refused(archive, area / "target")
    assert "past 200 times its own size" in message
    assert "zip bomb" in message


def test_tar_gz_bomb(area: Path) -> None:
    archive = make_tar(area / "archive.tgz", ("zeros.bin", ZEROS_50_MB), mode="w:gz")
    assert "past 200 times its own size" in refused(archive, area / "target")


def test_total_size_limit(area: Path) -> None:
    archive = make_tar(area / "archive.tar", ("a.bin", b"a" * 600), ("b.bin", b"b" * 600))
    limits = ArchiveLimits(max_total_size=1000)
    message = refused(archive, area / "target", limits=limits)
    assert message == (
        "archive.tar: member 'b.bin' takes the archive past the limit of 1000 bytes"
        " (1200 bytes declared so far)"
    )


@pytest.mark.parametrize("suffix", ["zip", "tar"])
def test_member_count_limit(area: Path, suffix: str) -> None:
    entries = [(f"f{index}.txt", b"x") for index in range(4)]
    maker = make_zip if suffix == "zip" else make_tar
    archive = maker(area / f"archive.{suffix}", *entries)
    message = refused(archive, area / "target", limits=ArchiveLimits(max_members=3))
    assert message.endswith("member 'f3.txt' is one more than the limit of 3 members")


def test_failure_empties_an_existing_target(area: Path) -> None:
    target = area / "target"
    target.mkdir()
    archive = make_tar(area / "archive.tar", ("dir/ok.txt", b"ok"), ("../evil", b"x"))
    with pytest.raises(UnsafeArchive):
        extract_archive(archive, target)
    assert list(target.iterdir()) == []


def test_damaged_archive(area: Path) -> None:
    whole = make_tar(area / "whole.tgz", ("a.bin", os.urandom(200_000)), mode="w:gz")
    archive = area / "archive.tgz"
    archive.write_bytes(whole.read_bytes()[:50_000])
    whole.unlink()
    with pytest.raises(InvalidERC, match=r"^archive\.tgz: damaged archive: "):
        extract_archive(archive, area / "target")
    assert not (area / "target").exists()


def test_bytes_past_the_declared_size_are_refused() -> None:
    budget = _Budget("a.zip", ArchiveLimits(), archive_size=10)
    sink = io.BytesIO()
    with pytest.raises(UnsafeArchive, match=r"member 'm' holds more than the 5 bytes its header"):
        _copy_member(io.BytesIO(b"0123456789"), sink, 5, "m", budget)
    _copy_member(io.BytesIO(b"01234"), sink, 5, "m", budget)
    assert sink.getvalue() == b"01234"
