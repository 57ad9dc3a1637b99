"""Job snapshots of a compendium: hard links where possible, never a path out of the tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from erchub.services.jobs import worker
from erchub.services.jobs.worker import COPY, HARDLINK, REFLINK, clear_job_dir, link_tree


@pytest.fixture
def compendium(tmp_path: Path) -> Path:
    root = tmp_path / "compendium"
    (root / "data" / "raw").mkdir(parents=True)
    (root / "main.ipynb").write_text('{"cells": []}')
    (root / "data" / "raw" / "big.csv").write_bytes(b"a,b\n" * 10_000)
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / ".erc").mkdir()
    (root / ".erc" / "metadata_o2r_1.json").write_text("{}")
    (root / "empty").mkdir()
    return root


def assert_same_content(source: Path, target: Path) -> None:
    for path in source.rglob("*"):
        copy = target / path.relative_to(source)
        if path.is_symlink():
            assert copy.is_symlink() and os.readlink(copy) == os.readlink(path)
        elif path.is_dir():
            assert copy.is_dir() and not copy.is_symlink()
        else:
            assert copy.read_bytes() == path.read_bytes()
            assert os.stat(copy).st_mode == os.stat(path).st_mode


def test_same_filesystem_uses_hard_links(compendium, tmp_path):
    target = tmp_path / "jobs" / "j1" / "compendium"
    target.parent.mkdir(parents=True)
    assert link_tree(compendium, target) == HARDLINK
    assert_same_content(compendium, target)
    big = compendium / "data" / "raw" / "big.csv"
    assert os.stat(target / "data" / "raw" / "big.csv").st_ino == os.stat(big).st_ino
    assert (target / "empty").is_dir()


def test_falls_back_to_a_copy_when_links_fail(compendium, tmp_path, monkeypatch):
    def no_link(*args, **kwargs):
        raise OSError(18, "Invalid cross-device link")

    def no_reflink(source, target):
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(worker.os, "link", no_link)
    monkeypatch.setattr(worker, "reflink", no_reflink)
    target = tmp_path / "snapshot"
    assert link_tree(compendium, target) == COPY
    assert_same_content(compendium, target)
    big = compendium / "data" / "raw" / "big.csv"
    assert os.stat(target / "data" / "raw" / "big.csv").st_ino != os.stat(big).st_ino


def test_reflink_is_tried_before_copying(compendium, tmp_path, monkeypatch):
    """Without hard links the filesystem decides: ext4 cannot clone (copy), btrfs/XFS can."""

    def no_link(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    tried = []
    real_reflink = worker.reflink

    def spying_reflink(source, target):
        tried.append(source)
        real_reflink(source, target)

    monkeypatch.setattr(worker.os, "link", no_link)
    monkeypatch.setattr(worker, "reflink", spying_reflink)
    target = tmp_path / "snapshot"
    method = link_tree(compendium, target)
    assert method in (REFLINK, COPY)
    # a filesystem that cannot clone is asked once, not for every file
    assert len(tried) == (4 if method == REFLINK else 1)
    assert_same_content(compendium, target)


def test_symlinks_stay_links_and_nothing_outside_is_read(compendium, tmp_path):
    outside = tmp_path / "outside"
    (outside / "secrets").mkdir(parents=True)
    (outside / "secrets" / "key.txt").write_text("do not copy")
    (outside / "passwd").write_text("root:x:0:0")
    (compendium / "data" / "latest.csv").symlink_to("raw/big.csv")
    (compendium / "escape").symlink_to(outside / "secrets")
    (compendium / "passwd").symlink_to("../outside/passwd")
    (compendium / "dangling").symlink_to("nowhere.txt")

    target = tmp_path / "snapshot"
    link_tree(compendium, target)
    assert_same_content(compendium, target)
    assert os.readlink(target / "data" / "latest.csv") == "raw/big.csv"
    assert (target / "escape").is_symlink()
    assert os.readlink(target / "escape") == str(outside / "secrets")
    assert (target / "passwd").is_symlink()
    assert (target / "dangling").is_symlink()
    regular = [p for p in target.rglob("*") if p.is_file() and not p.is_symlink()]
    assert "do not copy" not in {p.read_text(errors="replace") for p in regular}
    assert not any(p.name in ("key.txt",) for p in regular)


def test_special_files_are_left_out(compendium, tmp_path):
    os.mkfifo(compendium / "pipe")
    target = tmp_path / "snapshot"
    link_tree(compendium, target)  # a fifo would block a copy; it is skipped
    assert not (target / "pipe").exists()


def test_an_existing_target_is_refused(compendium, tmp_path):
    target = tmp_path / "snapshot"
    target.mkdir()
    with pytest.raises(FileExistsError):
        link_tree(compendium, target)


def test_clearing_a_job_directory_keeps_only_the_event_log(compendium, tmp_path):
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "events.jsonl").write_text('{"kind": "status"}\n')
    (job_dir / "job.json").write_text("{}")
    (job_dir / "output" / "workdir").mkdir(parents=True)
    (job_dir / "output" / "workdir" / "data.csv").symlink_to(compendium / "main.ipynb")
    link_tree(compendium, job_dir / "compendium")
    clear_job_dir(job_dir)
    assert [p.name for p in job_dir.iterdir()] == ["events.jsonl"]
    # the snapshot's hard links went, the compendium's files stayed
    assert (compendium / "data" / "raw" / "big.csv").stat().st_size == 40_000
    assert (compendium / "main.ipynb").exists()
