"""Archive extraction against real malicious archives: nothing may land outside the target."""

from __future__ import annotations

import gzip
import io
import os
import re
import stat
import tarfile
import time
import uuid
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from erchub.archive import ArchiveLimits, _Budget, _copy_member, extract_archive, is_archive
from erchub.errors import InvalidERC, UnsafeArchive
from erchub.safefs import remove_tree

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


def test_a_python_without_tar_filters_refuses_tars_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Debian 12's Python (3.11.2, the Swarm app image's) lacks tarfile's extraction filters:
    a tar is refused in one line rather than extracted unchecked or failing in tarfile."""
    archive = make_tar(tmp_path / "upload.tar", ("main.ipynb", b"{}"))
    monkeypatch.delattr(tarfile, "data_filter")
    with pytest.raises(InvalidERC, match=r"^upload\.tar: tar archives need Python 3\.11\.4 "):
        extract_archive(archive, tmp_path / "target")
    assert not (tmp_path / "target").exists()


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
        tar_member("copy.txt", tarfile.LNKTYPE, link="real/x.txt"),
    )
    root = extract_archive(archive, tmp_path / "target")
    assert os.readlink(root / "alias") == "real"
    assert (root / "alias" / "x.txt").read_text(encoding="utf-8") == "x"
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
    assert message == "archive.tar.gz: member 'etc' links to '/etc', an absolute path"
    assert not (Path("/etc") / name).exists()


def test_tar_relative_symlink_out_then_a_file_through_it(area: Path) -> None:
    archive = make_tar(
        area / "archive.tar",
        tar_member("up", tarfile.SYMTYPE, link="../outside"),
        ("up/evil.txt", b"x"),
    )
    assert refused(archive, area / "target").endswith(
        "member 'up/evil.txt' lies under the link 'up'"
    )


def test_tar_relative_symlink_out(area: Path) -> None:
    archive = make_tar(
        area / "archive.tar",
        ("fine.txt", b"ok"),
        tar_member("up", tarfile.SYMTYPE, link="../outside"),
    )
    assert refused(archive, area / "target").endswith(
        "member 'up' links to '../outside', which resolves outside the target"
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
    assert message.endswith("member 'L/outside/evil.txt' lies under the link 'L'")


def test_tar_symlink_that_turns_outside_later_without_a_file_through_it(area: Path) -> None:
    archive = make_tar(
        area / "archive.tar",
        tar_member("L", tarfile.SYMTYPE, link="B/.."),
        tar_member("B", tarfile.SYMTYPE, link="."),
    )
    message = refused(archive, area / "target")
    assert message == "archive.tar: member 'L' links to 'B/..', which resolves outside the target"


@pytest.mark.parametrize("link", ["/etc/passwd", "../outside/secret"])
def test_tar_hard_link_outside(area: Path, link: str) -> None:
    archive = make_tar(area / "archive.tar", tar_member("innocent", tarfile.LNKTYPE, link=link))
    assert refused(archive, area / "target").endswith(
        f"member 'innocent' is a hard link to {link!r}, which is no file before it"
    )


@pytest.mark.parametrize(
    "before",
    [
        [tar_member("s", tarfile.SYMTYPE, link="../outside/secret")],  # a link, not on disk yet
        [],  # a file the archive holds only later
    ],
)
def test_tar_hard_link_to_no_file_before_it(area: Path, before: list[tarfile.TarInfo]) -> None:
    # tarfile copies a hard link's target member when the target is not on disk, unfiltered:
    # here it would write the symbolic link while other members are written
    archive = make_tar(
        area / "archive.tar",
        *before,
        tar_member("h", tarfile.LNKTYPE, link="s"),
        ("s", b"x"),
    )
    assert refused(archive, area / "target").endswith(
        "member 'h' is a hard link to 's', which is no file before it"
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
        "member 'up/evil.txt' lies under the link 'up'"
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


# --- links judged in the finished tree -----------------------------------------------------

LINK = stat.S_IFLNK | 0o777


def make_archive(path: Path, *entries: tuple[str, str, bytes]) -> Path:
    """A zip or tar (by ``path``'s suffix) of (kind, name, content) entries, kind "file",
    "dir" or "link" (content: the destination)."""
    if path.suffix == ".zip":
        return make_zip(
            path,
            *(
                (zip_info(name, LINK), data)
                if kind == "link"
                else (zip_info(name.rstrip("/") + "/", stat.S_IFDIR | 0o755), b"")
                if kind == "dir"
                else (name, data)
                for kind, name, data in entries
            ),
        )
    members: list[tarfile.TarInfo | tuple[str, bytes]] = []
    for kind, name, data in entries:
        if kind == "link":
            members.append(tar_member(name, tarfile.SYMTYPE, link=data.decode()))
        elif kind == "dir":
            members.append(tar_member(name, tarfile.DIRTYPE))
        else:
            members.append((name, data))
    return make_tar(path, *members)


FORMATS = ["archive.zip", "archive.tar"]


@pytest.mark.parametrize("name", FORMATS)
def test_link_that_turns_outside_once_a_later_link_exists(area: Path, name: str) -> None:
    # the finding: while 'y' is missing, the destination normalises as text to a path inside;
    # once 'y -> .' exists, the first link points to a host file
    secret = area / "outside" / "secret"
    assert len((area / "target" / "ws" / ".erc").parts) <= 20
    destination = "y/" * 19 + "../" * 20 + str(secret).lstrip("/")
    archive = make_archive(
        area / name,
        ("file", "ws/main.ipynb", b"{}"),
        ("link", "ws/.erc/metadata_o2r_1.json", destination.encode()),
        ("link", "ws/.erc/y", b"."),
    )
    assert refused(archive, area / "target").endswith(
        f"member 'ws/.erc/metadata_o2r_1.json' links to {destination!r}, which resolves"
        " outside the compendium folder 'ws'"
    )
    # the same with several top-level entries: the target is the root links must stay in
    archive = make_archive(
        area / name,
        ("file", "ws/main.ipynb", b"{}"),
        ("file", "README.md", b"read me"),
        ("link", "ws/.erc/metadata_o2r_1.json", destination.encode()),
        ("link", "ws/.erc/y", b"."),
    )
    assert refused(archive, area / "target").endswith(
        f"member 'ws/.erc/metadata_o2r_1.json' links to {destination!r}, which resolves"
        " outside the target"
    )


def test_link_that_turns_outside_with_extract_archive_alone(area: Path) -> None:
    # the link in a sub-folder, then its 'y -> .': without them, 'y' alone is fine
    archive = make_archive(area / "archive.zip", ("link", "a/b/y", b"."), ("file", "a/f", b"f"))
    root = extract_archive(archive, area / "target")
    assert os.path.realpath(root / "b" / "y" / "y") == os.path.realpath(root / "b")
    remove_tree(area / "target")
    archive = make_archive(
        area / "archive.zip",
        ("link", "a/b/l", b"y/y/../../../.."),
        ("link", "a/b/y", b"."),
        ("file", "top.txt", b"t"),
    )
    assert refused(archive, area / "target").endswith(
        "member 'a/b/l' links to 'y/y/../../../..', which resolves outside the target"
    )


@pytest.mark.parametrize("name", FORMATS)
def test_link_to_a_link_that_leaves(area: Path, name: str) -> None:
    archive = make_archive(
        area / name,
        ("file", "ok.txt", b"ok"),
        ("link", "a", b"b"),
        ("link", "b", b"../outside/secret"),
    )
    assert refused(archive, area / "target").endswith(
        "member 'a' links to 'b', which resolves outside the target"
    )


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize(
    "links",
    [
        [("a", b"b"), ("b", b"a")],  # a cycle
        [("a", b"a")],  # a link to itself
        [("a", b"sub/../a/x")],  # a cycle through a folder
        [("a", b"missing")],  # dangling
        [("a", b"ok.txt/")],  # a file used as a folder
        [("a", b"ok.txt/..")],
    ],
)
def test_dangling_links_and_loops(area: Path, name: str, links: list[tuple[str, bytes]]) -> None:
    archive = make_archive(
        area / name,
        ("file", "ok.txt", b"ok"),
        ("dir", "sub", b""),
        *(("link", link, destination) for link, destination in links),
    )
    assert refused(archive, area / "target").endswith(
        "member 'a' is a dangling link or a link loop"
    )


def test_long_link_chain_is_a_loop(area: Path) -> None:
    # more links in one resolution than the kernel follows (40)
    chain = [("link", f"l{index}", f"l{index + 1}".encode()) for index in range(45)]
    archive = make_archive(area / "archive.tar", ("file", "l45", b"end"), *chain)
    assert refused(archive, area / "target").endswith(
        "member 'l0' is a dangling link or a link loop"
    )
    short = [("link", f"l{index}", f"l{index + 1}".encode()) for index in range(30)]
    root = extract_archive(
        make_archive(area / "archive.tar", ("file", "l30", b"end"), *short), area / "target"
    )
    assert (root / "l0").read_text(encoding="utf-8") == "end"


@pytest.mark.parametrize("name", FORMATS)
def test_absolute_link(area: Path, name: str) -> None:
    secret = str(area / "outside" / "secret")
    archive = make_archive(area / name, ("file", "ok.txt", b"ok"), ("link", "abs", secret.encode()))
    assert refused(archive, area / "target").endswith(
        f"member 'abs' links to {secret!r}, an absolute path"
    )


@pytest.mark.parametrize("name", FORMATS)
def test_parent_steps_that_leave_through_another_link(area: Path, name: str) -> None:
    # 's' leads to the root, fine; as text 'a/b/s/../../..' is the root, but through 's' it is
    # two levels above it
    archive = make_archive(
        area / name,
        ("file", "top.txt", b"t"),
        ("link", "a/b/l", b"s/../../.."),
        ("link", "a/b/s", b"../.."),
    )
    assert refused(archive, area / "target").endswith(
        "member 'a/b/l' links to 's/../../..', which resolves outside the target"
    )


def test_link_may_not_leave_the_compendium_folder_and_come_back(area: Path) -> None:
    # inside the target, but the service moves the compendium folder 'proj': then the link
    # would lead to a sibling 'proj' of its new place
    archive = make_archive(
        area / "archive.zip",
        ("file", "proj/data.csv", b"1"),
        ("link", "proj/again", b"../proj/data.csv"),
    )
    assert refused(archive, area / "target").endswith(
        "member 'proj/again' links to '../proj/data.csv', which resolves outside the"
        " compendium folder 'proj'"
    )
    bag = make_archive(
        area / "archive.zip",
        ("file", "bag/bagit.txt", b"BagIt-Version: 0.97\n"),
        ("file", "bag/data/erc.yml", b"spec_version: 1\n"),
        ("link", "bag/data/tags", b"../bagit.txt"),
    )
    assert refused(bag, area / "target").endswith(
        "member 'bag/data/tags' links to '../bagit.txt', which resolves outside the compendium"
        " folder 'bag/data'"
    )


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("link_first", [True, False])
def test_link_colliding_with_a_directory(area: Path, name: str, link_first: bool) -> None:
    entries = [("link", "data", b"raw"), ("dir", "data", b"")]
    archive = make_archive(
        area / name, ("file", "raw/x.csv", b"1"), *(entries if link_first else entries[::-1])
    )
    message = refused(archive, area / "target")
    assert re.search(r"member 'data/?' is in the archive twice$", message)


@pytest.mark.parametrize("name", FORMATS)
def test_link_colliding_with_a_file_or_a_link(area: Path, name: str) -> None:
    archive = make_archive(area / name, ("file", "x", b"1"), ("link", "x", b"y"))
    assert refused(archive, area / "target").endswith("member 'x' is in the archive twice")
    archive = make_archive(
        area / name, ("file", "y", b"1"), ("link", "x", b"y"), ("link", "x", b".")
    )
    assert refused(archive, area / "target").endswith("member 'x' is in the archive twice")


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("link_first", [True, False])
def test_member_under_a_link(area: Path, name: str, link_first: bool) -> None:
    entries = [("link", "a", b"b"), ("file", "a/file", b"x")]
    archive = make_archive(
        area / name, ("dir", "b", b""), *(entries if link_first else entries[::-1])
    )
    assert refused(archive, area / "target").endswith("member 'a/file' lies under the link 'a'")
    archive = make_archive(
        area / name, ("dir", "b", b""), ("link", "a", b"b"), ("link", "a/l", b"../../outside")
    )
    assert refused(archive, area / "target").endswith("member 'a/l' lies under the link 'a'")


def test_link_under_a_file(area: Path) -> None:
    archive = make_archive(area / "archive.zip", ("file", "f", b"x"), ("link", "f/l", b"."))
    assert refused(archive, area / "target").endswith("member 'f/l' lies under a file or link")


@pytest.mark.parametrize("content", [b"", b"a\0b", b"x" * 4097])
def test_link_destination_that_is_no_path(area: Path, content: bytes) -> None:
    archive = make_archive(area / "archive.zip", ("file", "ok", b"ok"), ("link", "l", content))
    assert " member 'l' is a link " in refused(archive, area / "target")


def test_link_resolution_work_is_limited(area: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("erchub.archive.MAX_LINK_STEPS", 10)
    archive = make_archive(
        area / "archive.zip", ("file", "x", b"x"), ("link", "l", b"./" * 20 + b"x")
    )
    assert refused(archive, area / "target").endswith(
        "member 'l' takes the archive's links past 10 steps to resolve"
    )


@pytest.mark.parametrize("name", FORMATS)
def test_links_inside_are_kept_and_readable(tmp_path: Path, name: str) -> None:
    archive = make_archive(
        tmp_path / name,
        ("file", "raw/data/x.csv", b"1,2"),
        ("link", "data", b"raw/data"),
        ("link", "latest", b"v2/file.csv"),  # v2 comes later in the archive
        ("link", "here", b"."),
        ("link", "raw/up", b"../raw/data/./x.csv"),
        ("dir", "v2", b""),
        ("file", "v2/file.csv", b"3,4"),
    )
    root = extract_archive(archive, tmp_path / "target")
    assert root == tmp_path / "target"
    assert (root / "data" / "x.csv").read_text(encoding="utf-8") == "1,2"
    assert (root / "latest").read_text(encoding="utf-8") == "3,4"
    assert (root / "here" / "here" / "latest").read_text(encoding="utf-8") == "3,4"
    assert (root / "raw" / "up").read_text(encoding="utf-8") == "1,2"
    assert os.readlink(root / "data") == "raw/data"
    assert os.readlink(root / "latest") == "v2/file.csv"


def test_links_in_a_compendium_folder(tmp_path: Path) -> None:
    archive = make_archive(
        tmp_path / "archive.tar",
        ("file", "proj/raw/x.csv", b"1"),
        ("link", "proj/x.csv", b"raw/x.csv"),
        ("link", "proj/raw/same", b"../raw/x.csv"),
    )
    root = extract_archive(archive, tmp_path / "target")
    assert root == tmp_path / "target" / "proj"
    assert (root / "raw" / "same").read_text(encoding="utf-8") == "1"


# --- depth ---------------------------------------------------------------------------------


def test_very_deep_zip_is_refused_before_anything_is_written(area: Path) -> None:
    deep = "d/" * 1499 + "f.txt"
    archive = make_zip(area / "archive.zip", ("ok.txt", b"ok"), (deep, b"x"))
    started = time.monotonic()
    message = refused(archive, area / "target")
    assert time.monotonic() - started < 2
    assert message == f"archive.zip: member {deep!r} is 1500 levels deep, past the limit of 64"


@pytest.mark.parametrize("name", FORMATS)
def test_depth_limit(area: Path, name: str) -> None:
    limits = ArchiveLimits(max_depth=3)
    archive = make_archive(area / name, ("file", "a/b/c", b"ok"), ("link", "a/./b/l", b"c"))
    root = extract_archive(archive, area / "target", limits)
    assert (root / "b" / "l").read_text(encoding="utf-8") == "ok"
    remove_tree(area / "target")
    archive = make_archive(area / name, ("file", "a/b/c", b"ok"), ("file", "a/b/c/d", b"x"))
    assert refused(archive, area / "target", limits=limits).endswith(
        "member 'a/b/c/d' is 4 levels deep, past the limit of 3"
    )


# --- remove_tree ---------------------------------------------------------------------------


def test_remove_tree_of_a_very_deep_tree(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep", encoding="utf-8")
    top = tmp_path / "top"
    top.mkdir()
    folder = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(3000):  # far past PATH_MAX: only relative calls reach the bottom
            if level % 500 == 0:
                os.symlink(outside, "out", dir_fd=folder)
                file = os.open("f.txt", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=folder)
                os.close(file)
            os.mkdir("d", dir_fd=folder)
            child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=folder)
            os.close(folder)
            folder = child
        os.symlink("..", "up", dir_fd=folder)
    finally:
        os.close(folder)
    remove_tree(top)
    assert not os.path.lexists(top)
    assert (outside / "keep.txt").read_text(encoding="utf-8") == "keep"


def test_remove_tree_does_not_follow_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "keep.txt").write_text("keep", encoding="utf-8")
    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "file").write_text("x", encoding="utf-8")
    (tree / "a" / "to-outside").symlink_to(outside)
    (tree / "dangling").symlink_to(tmp_path / "missing")
    link = tmp_path / "link"
    link.symlink_to(outside, target_is_directory=True)
    remove_tree(link)  # the link only
    assert not os.path.lexists(link)
    remove_tree(str(tree) + "/")
    assert not os.path.lexists(tree)
    assert (outside / "sub" / "keep.txt").read_text(encoding="utf-8") == "keep"
    remove_tree(tmp_path / "missing")
    file = tmp_path / "file.txt"
    file.write_text("x", encoding="utf-8")
    remove_tree(file)
    assert not file.exists()
    with pytest.raises(ValueError):
        remove_tree(outside / "..")
    assert outside.is_dir()


def test_failed_extraction_leaves_no_link(area: Path) -> None:
    # links are made before they are judged: a refusal removes them, not what they point to
    target = area / "target"
    target.mkdir()
    archive = make_archive(
        area / "archive.zip",
        ("file", "a/f", b"x"),
        ("link", "a/in", b"f"),
        ("link", "out", b"../outside"),
    )
    with pytest.raises(
        UnsafeArchive, match=r"member 'out' links to '\.\./outside', which resolves"
    ):
        extract_archive(archive, target)
    assert list(target.iterdir()) == []
