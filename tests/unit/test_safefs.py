"""File access that never follows a link out of its root, and JSON with bounded nesting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from erchub import jsonlimits, safefs
from erchub.services.app import ERCService
from erchub.services.compendia import files as compendia
from erchub.services.exchange.shipping import SHIPMENTS_DIRECTORY, WorkFolder
from erchub.services.jobs import runtime


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """A root with a file, a link inside, links outside, a fifo; and a host folder beside it
    holding what no function may touch."""
    root, host = tmp_path / "root", tmp_path / "host"
    (root / "sub" / "empty").mkdir(parents=True)
    (root / "sub" / "file.txt").write_text("inside")
    (root / "inside-link").symlink_to("sub/file.txt")
    host.mkdir()
    (host / "secret.txt").write_text("host secret")
    (host / "keep").mkdir()
    (root / "sub" / "out-file").symlink_to(host / "secret.txt")
    (root / "out-dir").symlink_to(host)
    (root / "relative-out").symlink_to("../host/secret.txt")
    os.mkfifo(root / "sub" / "fifo")
    return {"root": root, "host": host}


def test_open_file_reads_inside_and_refuses_the_rest(tree: dict[str, Path]) -> None:
    root = tree["root"]
    assert safefs.read_text(root, "inside-link") == "inside"
    for escape in ("sub/out-file", "out-dir/secret.txt", "relative-out", "../host/secret.txt"):
        with pytest.raises(safefs.OutsideRoot):
            safefs.read_bytes(root, escape)
    # a fifo would block a reader for ever; a folder is no file
    for not_a_file in ("sub/fifo", "sub"):
        with pytest.raises(IsADirectoryError):
            safefs.read_bytes(root, not_a_file)
    with pytest.raises(FileNotFoundError):
        safefs.read_bytes(root, "missing")
    with pytest.raises(safefs.FileTooLarge):
        safefs.read_bytes(root, "sub/file.txt", limit=3)
    assert safefs.is_file(root, "inside-link") and not safefs.is_file(root, "relative-out")


def test_writes_stay_inside_and_replace_links_instead_of_following_them(
    tree: dict[str, Path],
) -> None:
    root, host = tree["root"], tree["host"]
    with pytest.raises(safefs.OutsideRoot):
        safefs.write_text(root, "out-dir/new.txt", "x")
    # a link in the written file's place is replaced by the file, its target stays
    safefs.write_text(root, "sub/out-file", "replaced")
    assert not (root / "sub" / "out-file").is_symlink()
    assert (host / "secret.txt").read_text() == "host secret"
    safefs.write_text(root, "new/deeper/file.json", "{}")
    assert (root / "new" / "deeper" / "file.json").read_text() == "{}"
    with pytest.raises(IsADirectoryError):
        safefs.write_text(root, "sub", "x")
    assert not (host / "new.txt").exists()


def test_drop_links_removes_links_and_fifos_and_nothing_of_the_host(
    tree: dict[str, Path],
) -> None:
    root, host = tree["root"], tree["host"]
    assert safefs.drop_links(root) == 5
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert left == ["sub", "sub/empty", "sub/file.txt"]
    assert sorted(os.listdir(host)) == ["keep", "secret.txt"]
    # a root that is itself a link is refused, not followed
    (tree["root"].parent / "root-link").symlink_to(host)
    with pytest.raises(OSError):
        safefs.drop_links(tree["root"].parent / "root-link")
    assert sorted(os.listdir(host)) == ["keep", "secret.txt"]


def test_remove_empty_directories_keeps_files_and_the_root(tree: dict[str, Path]) -> None:
    root = tree["root"]
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "b" / "kept.txt").write_text("k")
    assert safefs.remove_empty_directories(root) == 2  # a/b/c and sub/empty
    assert (root / "a" / "b" / "kept.txt").exists() and not (root / "sub" / "empty").exists()
    assert sorted(os.listdir(tree["host"])) == ["keep", "secret.txt"]


def test_walks_of_any_depth(tmp_path: Path) -> None:
    """3,000 levels: deeper than Python's recursion limit and than PATH_MAX allows as a path."""
    root = tmp_path / "deep"
    root.mkdir()
    fd = os.open(root, os.O_RDONLY)
    for _ in range(3000):
        os.mkdir("d", dir_fd=fd)
        os.symlink("/etc", "link", dir_fd=fd)
        deeper = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = deeper
    os.close(fd)
    assert safefs.drop_links(root) == 3000
    assert safefs.remove_empty_directories(root) == 3000
    assert os.listdir(root) == []


def test_json_nesting_is_bounded() -> None:
    assert jsonlimits.loads('{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}
    assert jsonlimits.depth({"a": [1, {"b": []}]}) == 4
    assert jsonlimits.depth(3) == 0
    for levels in (65, 5_000, 100_000):
        with pytest.raises(jsonlimits.TooDeep, match="deeper than 64"):
            jsonlimits.loads("[" * levels + "]" * levels)
    assert jsonlimits.loads("[" * 64 + "]" * 64) is not None


def test_sweep_uploads_removes_only_what_nothing_changed_for_long(tmp_path: Path) -> None:
    uploads = tmp_path / compendia.UPLOADS_DIRECTORY
    (uploads / "staging-old" / "content").mkdir(parents=True)
    (uploads / "staging-active").mkdir()
    (uploads / "staging-active" / "part").write_text("being written")
    old = time.time() - 7200
    for path in (uploads / "staging-old", uploads / "staging-old" / "content"):
        os.utime(path, (old, old))
    os.utime(uploads / "staging-active", (old, old))  # but its file is new
    assert compendia.sweep_uploads(tmp_path, older_than=3600) == 1
    assert os.listdir(uploads) == ["staging-active"]
    assert compendia.sweep_uploads(tmp_path / "nothing", older_than=0) == 0


def holding_process(code: str, directory: Path) -> tuple[subprocess.Popen[str], Path]:
    """Another process that runs ``code`` (``sys.argv[1]`` is ``directory``; it prints the
    entry it made and holds), then sleeps a minute: the process and its entry."""
    process = subprocess.Popen(
        [sys.executable, "-c", f"import sys, time\n{code}\ntime.sleep(60)", str(directory)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, Path(process.stdout.readline().strip())


def test_sweep_uploads_removes_what_a_killed_process_left_at_once(tmp_path: Path) -> None:
    """An entry whose maker was killed is swept however fresh it is; one this process holds
    is kept however old it is."""
    uploads = tmp_path / compendia.UPLOADS_DIRECTORY
    maker, killed = holding_process(
        "from pathlib import Path\n"
        "from erchub.services.compendia.files import new_entry\n"
        "entry, _ = new_entry(Path(sys.argv[1]), 'upload-')\n"
        "(entry / 'part').write_bytes(b'half an archive')\n"
        "print(entry, flush=True)",
        uploads,
    )
    held, hold = compendia.new_entry(uploads, "staging-")
    old = time.time() - 7200
    os.utime(held, (old, old))
    os.utime(held / compendia.IN_USE_FILE, (old, old))
    try:
        assert compendia.abandoned(killed) is False  # its maker is alive: in progress
        assert compendia.sweep_uploads(tmp_path, older_than=3600) == 0
        maker.kill()
        maker.wait(timeout=30)
        assert compendia.abandoned(killed) is True and compendia.abandoned(held) is False
        assert compendia.sweep_uploads(tmp_path, older_than=3600) == 1
        assert os.listdir(uploads) == [held.name]
    finally:
        maker.kill()
        compendia.remove_entry(held, hold)
    assert os.listdir(uploads) == []


def test_a_starting_replica_sweeps_no_bag_that_another_replica_is_making(tmp_path: Path) -> None:
    """Replicas of the erc service share the data directory (the swarm stack): one that starts
    sweeps shipments/, and must leave the bag another replica is packing or sending, however
    old, and remove what a killed replica left, however fresh."""
    other_replica, packing = holding_process(
        "from erchub.services.exchange.shipping import WorkFolder\n"
        "work = WorkFolder.new(sys.argv[1])\n"
        "(work.path / 'bag.zip').write_bytes(b'half a bag')\n"
        "print(work.path, flush=True)",
        tmp_path,
    )
    shipments = tmp_path / SHIPMENTS_DIRECTORY
    assert packing.parent == shipments
    mine = WorkFolder.new(tmp_path)
    unmarked = shipments / "left-by-an-older-version"
    unmarked.mkdir()
    try:
        # stale_upload_age=0: every unmarked entry is stale at once; marked ones go by their mark
        starting = ERCService(data_dir=str(tmp_path), stale_upload_age=0)
        assert starting.sweep_shipments() == 1
        assert sorted(os.listdir(shipments)) == sorted([packing.name, mine.path.name])
        other_replica.kill()
        other_replica.wait(timeout=30)
        assert starting.sweep_shipments() == 1
        assert os.listdir(shipments) == [mine.path.name]
    finally:
        other_replica.kill()
        mine.remove()
    assert os.listdir(shipments) == []


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"not json", "failure", "not a result it writes"),
        (json.dumps({"status": "owned"}).encode(), "failure", "not a result it writes"),
        (b"[" * 5000 + b"]" * 5000, "failure", "not a result it writes"),
        (json.dumps({"status": "success", "message": "x" * 10_000}).encode(), "success", None),
    ],
)
def test_a_result_the_notebook_forged_is_no_result(
    tmp_path: Path, content: bytes, status: str, message: str | None
) -> None:
    (tmp_path / "result.json").write_bytes(content)
    outcome = runtime.read_outcome(tmp_path, 1.0, 0, "")
    assert outcome.status == status
    if message:
        assert message in outcome.message
    assert len(outcome.message) <= runtime.MAX_RESULT_TEXT


def test_a_result_that_is_a_link_or_a_fifo_is_never_read(tmp_path: Path) -> None:
    host = tmp_path / "host.json"
    host.write_text(json.dumps({"status": "success", "message": "from the host"}))
    output = tmp_path / "output"
    output.mkdir()
    (output / "result.json").symlink_to(host)
    assert runtime.contain_output(output) == 1
    assert runtime.read_outcome(output, 1.0, 0, "").status == "failure"
    os.mkfifo(output / "result.json")
    outcome = runtime.read_outcome(output, 1.0, 0, "")  # returns, does not block
    assert outcome.status == "failure"


def test_an_upload_let_go_twice_closes_nothing_of_others(tmp_path: Path) -> None:
    """A receiver's discard runs again when its request ends: the entry's lock descriptor is
    closed once, never a file that got its number since."""
    from erchub.services.handlers.upload import MultipartReceiver

    receiver = MultipartReceiver("multipart/form-data; boundary=x", tmp_path / "uploads", 10)
    receiver.discard()
    reader, writer = os.pipe()  # numbers the closed lock may have freed
    try:
        receiver.discard()
        os.fstat(reader)
        os.fstat(writer)
    finally:
        os.close(reader)
        os.close(writer)
    assert os.listdir(tmp_path / "uploads") == []
