"""Property: whatever archive of files, folders and links comes in, extraction either refuses
it and leaves nothing, or leaves a tree in which every path resolves inside the target."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from erchub.archive import extract_archive
from erchub.errors import InvalidERC, UnsafeArchive

#: few names, so that paths meet: links point at members, members land under links
NAMES = ["a", "y"]
#: a link destination naming the sentinel by its absolute path, filled in when written
SENTINEL = "<sentinel>"


@dataclass(frozen=True)
class Entry:
    kind: str  # "file", "dir", "link" or "hardlink" (tar only; a file in a zip)
    name: str
    destination: str = ""


paths = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("/".join)


@st.composite
def archives(draw: st.DrawFn) -> tuple[str, list[Entry]]:
    names = draw(st.lists(paths, min_size=1, max_size=8))
    kinds = draw(
        st.lists(
            st.sampled_from(["file", "dir", "link", "link", "hardlink"]),
            min_size=len(names),
            max_size=len(names),
        )
    )
    entries = []
    for name, kind in zip(names, kinds, strict=True):
        destination = ""
        if kind in ("link", "hardlink"):
            destination = draw(
                st.one_of(
                    st.sampled_from(names),  # other members, later links (chains), itself
                    st.just("."),  # with a later link through it: the finding's 'y -> .'
                    st.just(name.rsplit("/", 1)[-1]),  # a link to itself: a cycle
                    st.sampled_from(
                        [".", "..", "../..", "a/../..", "y/..", "y/../..", "missing", "a/missing"]
                    ),
                    st.builds(  # climbing out and (maybe) back in
                        lambda up, rest: "../" * up + rest,
                        st.integers(0, 4),
                        st.sampled_from([*NAMES, "sentinel", "target", "parent/sentinel", ""]),
                    ),
                    st.builds(  # the finding's shape: y/y/../../..
                        lambda down, up: "y/" * down + "../" * up + "sentinel",
                        st.integers(0, 3),
                        st.integers(0, 5),
                    ),
                    st.sampled_from(["/etc/passwd", SENTINEL, "/"]),  # absolute
                )
            )
        entries.append(Entry(kind, name, destination))
    if draw(st.booleans()):
        # the finding's shape: a link in a folder through its sibling 'y', and 'y -> .' (as
        # text the destination stays inside while 'y' is missing); in any order
        folder = draw(paths)
        down = draw(st.integers(1, 3))
        up = draw(st.integers(down, down + 3))
        rest = draw(st.sampled_from(["", "sentinel", "a"]))
        entries.append(Entry("link", f"{folder}/l", "y/" * down + "../" * up + rest))
        entries.append(Entry("link", f"{folder}/y", "."))
    return draw(st.sampled_from(["zip", "tar"])), draw(st.permutations(entries))


def write_archive(path: Path, kind: str, entries: list[Entry], sentinel: Path) -> None:
    def destination(entry: Entry) -> str:
        return entry.destination.replace(SENTINEL, str(sentinel))

    if kind == "zip":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # duplicate names
            with zipfile.ZipFile(path, "w") as bundle:
                for entry in entries:
                    info = zipfile.ZipInfo(entry.name + ("/" if entry.kind == "dir" else ""))
                    info.create_system = 3
                    mode = {"dir": stat.S_IFDIR | 0o755, "link": stat.S_IFLNK | 0o777}
                    info.external_attr = mode.get(entry.kind, stat.S_IFREG | 0o644) << 16
                    data = destination(entry) if entry.kind == "link" else entry.name
                    bundle.writestr(info, data.encode())
        return
    with tarfile.open(path, "w") as tar:
        for entry in entries:
            member = tarfile.TarInfo(entry.name)
            member.type = {
                "file": tarfile.REGTYPE,
                "dir": tarfile.DIRTYPE,
                "link": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
            }[entry.kind]
            member.linkname = destination(entry)
            member.mode = 0o755 if entry.kind == "dir" else 0o644
            data = entry.name.encode() if entry.kind == "file" else b""
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))


def inside(root: str, path: str) -> bool:
    return os.path.commonpath([root, os.path.realpath(path)]) == root


@settings(max_examples=200, deadline=None, database=None)
@given(archives())
def test_extraction_refuses_or_stays_inside(archive: tuple[str, list[Entry]]) -> None:
    kind, entries = archive
    with tempfile.TemporaryDirectory() as tmp:
        grandparent = Path(tmp)
        parent = grandparent / "parent"
        parent.mkdir()
        sentinels = {grandparent / "sentinel": "grandparent", parent / "sentinel": "parent"}
        for sentinel, text in sentinels.items():
            sentinel.write_text(text, encoding="utf-8")
        path = grandparent / f"archive.{kind}"
        write_archive(path, kind, entries, parent / "sentinel")
        target = parent / "target"
        try:
            extract_archive(path, target)
        except (UnsafeArchive, InvalidERC):
            assert not os.path.lexists(target)
        else:
            root = os.path.realpath(target)
            for folder, folders, files in os.walk(target, followlinks=False):
                for name in folders + files:
                    entry = os.path.join(folder, name)
                    assert inside(root, entry), (entry, os.path.realpath(entry))
                    os.stat(entry)  # no dangling link, no loop
        for sentinel, text in sentinels.items():
            assert sentinel.read_text(encoding="utf-8") == text
            assert sentinel.stat().st_nlink == 1
        assert set(os.listdir(parent)) <= {"sentinel", "target"}
        assert set(os.listdir(grandparent)) == {"sentinel", "parent", path.name}
