"""The session spawners without a hub: working copies, progress, options, state, build errors.

Spawners are made with stand-ins for the hub's user and ORM spawner (a name, a URL, settings);
everything else is the real code. The build error path runs the real ``erchub build --events``
subprocess, which fails before it would need Docker.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from jupyterhub.slugs import is_valid_display_name
from tornado import web

from erchub.services.handlers.launch import display_name_of
from erchub.services.store import CompendiumRecord
from erchub.spawner.spawner import (
    ERCSpawner,
    FetchedCompendium,
    LocalERCSpawner,
    SessionError,
    SessionSource,
    build_image,
    check_user_options,
    copy_working_copy,
    working_copy_tar,
)

UID = 4321
MOUNT = "/home/jovyan/work"
SOURCE = SessionSource("Abc123", "A title", "analysis/main.ipynb", "Abc123@1")


def hub_user(name: str = "alice", services: dict[str, Any] | None = None) -> Any:
    return SimpleNamespace(
        name=name, escaped_name=name, url=f"/user/{name}/", settings={"services": services or {}}
    )


def spawner_of(cls: type[Any], server: str = "erc-abc123-0a1b2c", **traits: Any) -> Any:
    return cls(user=hub_user(), orm_spawner=SimpleNamespace(name=server, server=None), **traits)


@pytest.fixture
def compendium(tmp_path: Path) -> FetchedCompendium:
    """An unpacked compendium: files in sub-folders, an empty folder, and a job's notebook."""
    root = tmp_path / "files" / "compendium"
    (root / "analysis" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "erc.yml").write_text("spec_version: 1\n")
    (root / "analysis" / "main.ipynb").write_text('{"cells": []}')
    (root / "analysis" / "data.csv").write_text("x,y\n1,2\n")
    (root / "analysis" / "deep" / "more.txt").write_text("more")
    executed = tmp_path / "executed.ipynb"
    executed.write_text('{"executed": true}')
    return FetchedCompendium(SOURCE, root, {"analysis/main-job-j1.ipynb": executed})


FILES = {
    "erc.yml": "spec_version: 1\n",
    "analysis/main.ipynb": '{"cells": []}',
    "analysis/data.csv": "x,y\n1,2\n",
    "analysis/deep/more.txt": "more",
    "analysis/main-job-j1.ipynb": '{"executed": true}',
}
FOLDERS = {"analysis", "analysis/deep", "empty"}


def add_links(root: Path) -> None:
    """Links inside the compendium (archives may carry them) and one leading out of it."""
    (root / "link-to-file").symlink_to("erc.yml")
    (root / "link-to-folder").symlink_to("analysis")
    (root / "analysis" / "link-out").symlink_to("/etc/hostname")


def tree(root: Path) -> tuple[dict[str, str], set[str], set[str]]:
    """Files (path -> text), folders and symlinks below ``root``, as relative POSIX paths."""
    files, folders, links = {}, set(), set()
    for path in root.rglob("*"):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            links.add(relative)
        elif path.is_dir():
            folders.add(relative)
        else:
            files[relative] = path.read_text()
    return files, folders, links


# -- the working copy ---------------------------------------------------------------------


def test_working_copy_tar(compendium: FetchedCompendium, tmp_path: Path) -> None:
    add_links(compendium.root)
    data = working_copy_tar(compendium, MOUNT + "/", UID)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = archive.getmembers()
        top = members[0]
        assert (top.name, top.isdir(), top.mode) == ("work", True, 0o755)
        assert all(m.name == "work" or m.name.startswith("work/") for m in members)
        assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(UID, UID, "", "")}
        assert not any(m.issym() or m.islnk() for m in members), "links are skipped"
        archive.extractall(tmp_path / "out", filter="data")
    files, folders, links = tree(tmp_path / "out" / "work")
    assert files == FILES
    assert folders == FOLDERS
    assert links == set()


def test_copy_working_copy(compendium: FetchedCompendium, tmp_path: Path) -> None:
    target = tmp_path / "sessions" / "alice" / "erc-abc"
    copy_working_copy(compendium, target)
    files, folders, links = tree(target)
    assert files == FILES
    assert folders == FOLDERS
    assert links == set()
    (target / "analysis" / "data.csv").write_text("changed")
    assert (compendium.root / "analysis" / "data.csv").read_text() == "x,y\n1,2\n", "a copy"


def test_copy_working_copy_skips_links(compendium: FetchedCompendium, tmp_path: Path) -> None:
    add_links(compendium.root)
    target = tmp_path / "sessions" / "alice" / "erc-abc"
    copy_working_copy(compendium, target)
    files, folders, links = tree(target)
    assert (files, folders, links) == (FILES, FOLDERS, set())


# -- progress -----------------------------------------------------------------------------


async def eventually(condition: Callable[[], bool], within: float = 0.5) -> None:
    """Wait until ``condition`` holds; ``within`` is shorter than progress()'s 1 s poll, so an
    event that arrives in time was delivered when reported, not found by polling."""

    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), within)


async def collect(spawner: Any, into: list[dict[str, Any]]) -> None:
    async for event in spawner.progress():
        into.append(event)


async def test_progress_replays_the_start_then_follows_it_until_it_ends() -> None:
    spawner = spawner_of(LocalERCSpawner)
    spawner.begin_progress()
    spawner.report("Opening compendium Abc123", 5)
    spawner.report("Step 1/9 : FROM base")
    received: list[dict[str, Any]] = []
    late = asyncio.create_task(collect(spawner, received))
    await eventually(lambda: len(received) == 2)
    assert received == [
        {"message": "Opening compendium Abc123", "progress": 5},
        {"message": "Step 1/9 : FROM base"},
    ]
    spawner.report("Step 2/9 : RUN pip install", 21)
    spawner.report("Step 3/9 : COPY . .", 22)
    await eventually(lambda: len(received) == 4)
    assert [e["message"] for e in received[2:]] == ["Step 2/9 : RUN pip install",
                                                    "Step 3/9 : COPY . ."]  # fmt: skip
    await asyncio.sleep(0.05)
    assert not late.done(), "the stream stays open while the start goes on"
    spawner.report("Starting JupyterLab", 90)
    spawner.end_progress()
    await asyncio.wait_for(late, 0.5)
    assert [e["message"] for e in received][-1] == "Starting JupyterLab"

    # a page opened after the start still sees all of it, and its stream ends at once
    after: list[dict[str, Any]] = []
    await asyncio.wait_for(collect(spawner, after), 0.5)
    assert after == received


async def test_progress_of_a_new_start_begins_afresh() -> None:
    spawner = spawner_of(LocalERCSpawner)
    spawner.begin_progress()
    spawner.report("first start")
    spawner.end_progress()
    spawner.begin_progress()
    spawner.report("second start", 5)
    received: list[dict[str, Any]] = []
    task = asyncio.create_task(collect(spawner, received))
    await eventually(lambda: len(received) == 1)
    spawner.end_progress()
    await asyncio.wait_for(task, 0.5)
    assert received == [{"message": "second start", "progress": 5}]


async def test_progress_before_any_start_is_empty() -> None:
    received: list[dict[str, Any]] = []
    await asyncio.wait_for(collect(spawner_of(ERCSpawner), received), 0.5)
    assert received == []


# -- options, names, state ----------------------------------------------------------------


def test_check_user_options_answers_400_with_the_reason() -> None:
    spawner = spawner_of(LocalERCSpawner)
    check_user_options(spawner, {"compendium": "Abc123"})
    for options, reason in [
        ({}, "user_options must name exactly one compendium or job"),
        ({"image": "evil"}, "unknown user_options: image (expected compendium or job)"),
        ({"compendium": "../etc"}, "user_options.compendium is not a valid id: '../etc'"),
    ]:
        with pytest.raises(web.HTTPError) as raised:
            check_user_options(spawner, options)
        assert (raised.value.status_code, raised.value.log_message) == (400, reason)


@pytest.mark.parametrize("cls", [ERCSpawner, LocalERCSpawner])
async def test_the_hub_runs_check_user_options_before_a_start(cls: type[Any]) -> None:
    spawner = spawner_of(cls)
    assert spawner.apply_user_options is check_user_options
    with pytest.raises(web.HTTPError) as raised:
        await spawner._run_apply_user_options({"job": 7})
    assert raised.value.status_code == 400
    assert "user_options.job is not a valid id" in str(raised.value.log_message)


def test_options_from_the_spawn_url_query() -> None:
    spawner = spawner_of(LocalERCSpawner)
    assert spawner.options_from_query({"compendium": ["Abc123", "other"]}) == {
        "compendium": "Abc123"
    }
    assert spawner.options_from_query({"job": ["j1"], "empty": []}) == {"job": "j1"}


def test_default_url_opens_the_notebook() -> None:
    spawner = spawner_of(LocalERCSpawner)
    spawner.set_default_url(SOURCE)
    assert spawner.default_url == "/lab/tree/analysis/main.ipynb"
    spawner.set_default_url(SessionSource("Abc123", "t", "", "v"))
    assert spawner.default_url == "/lab"


def test_erc_api_url_follows_the_managed_service() -> None:
    service = SimpleNamespace(url="http://127.0.0.1:10555", prefix="/services/erc/")
    spawner = LocalERCSpawner(user=hub_user(services={"erc": service}))
    assert spawner.erc_api_url == "http://127.0.0.1:10555/services/erc/api/v1"


def test_local_working_copy_is_per_user_and_server(tmp_path: Path) -> None:
    spawner = spawner_of(LocalERCSpawner, "erc-x-1a2b3c", sessions_dir=str(tmp_path))
    assert spawner.working_copy == tmp_path / "alice" / "erc-x-1a2b3c"
    other = spawner_of(LocalERCSpawner, "erc-y-4d5e6f", sessions_dir=str(tmp_path))
    assert other.working_copy == tmp_path / "alice" / "erc-y-4d5e6f"


def test_local_session_home_is_not_the_working_copy(tmp_path: Path) -> None:
    spawner = spawner_of(LocalERCSpawner, "erc-x-1a2b3c", sessions_dir=str(tmp_path))
    assert not Path(spawner.home_dir).is_relative_to(spawner.working_copy)


def test_docker_session_defaults() -> None:
    spawner = spawner_of(ERCSpawner)
    assert spawner.remove is True, "the container is removed when the server stops"
    assert (spawner.network_name, spawner.use_internal_ip) == ("erchub-sessions", True)
    assert spawner.pull_policy == "never"
    assert (spawner.mem_limit, spawner.cpu_limit) == (4 * 1024**3, 2.0)
    assert spawner.extra_host_config == {
        "security_opt": ["no-new-privileges"],
        "cap_drop": ["ALL"],
        "pids_limit": 1024,
    }
    assert "pids_limit" not in spawner_of(ERCSpawner, pids_limit=0).extra_host_config
    assert spawner.volume_name == "erchub-work-alice-erc-abc123-0a1b2c"


def test_get_state_keeps_only_what_a_restart_needs() -> None:
    spawner = spawner_of(ERCSpawner)
    spawner.user_options = {"compendium": "Abc123"}
    spawner.image = "erchub/erc-abc123:1a2b3c"
    assert spawner.get_state() == {}
    spawner.object_id = "f00dfeed"
    spawner.object_name = "jupyter-alice--erc-2dabc123"
    assert spawner.get_state() == {
        "object_id": "f00dfeed",
        "object_name": "jupyter-alice--erc-2dabc123",
    }


# -- display names of launches -------------------------------------------------------------


def record(title: Any = None, **metadata: Any) -> CompendiumRecord:
    if title is not None:
        metadata["title"] = title
    return CompendiumRecord("Abc123", "author", metadata=metadata)


@pytest.mark.parametrize(
    ("title", "name"),
    [
        ("A study", "A study"),
        ("  A   study  ", "A study"),
        ("A\x00 st\x1bu\u200bdy\x7f", "A study"),
        ("x" * 300, "x" * 255),
        ("y" * 254 + "   z", "y" * 254),
        ("Études über Daten 🌍", "Études über Daten 🌍"),
        (None, None),
        ("", None),
        ("   ", None),
        ("\x00\x01\x02", None),
        (42, None),
        (["A study"], None),
    ],
)
def test_display_name_of(title: Any, name: str | None) -> None:
    made = display_name_of(record(title))
    assert made == name
    if made is not None:
        assert is_valid_display_name(made), made


@pytest.mark.parametrize("title", ["A\nstudy", "A\tstudy", "A\u00a0study"])
def test_display_name_of_keeps_words_apart(title: str) -> None:
    assert display_name_of(record(title)) == "A study"


# -- building the image: the error path -----------------------------------------------------


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({}, "no notebook (*.ipynb) in "),
        ({"erc.yml": "spec_version: [\n", "main.ipynb": "{}"}, "erc.yml: invalid YAML at line"),
    ],
)
async def test_build_image_fails_with_the_cli_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], reason: str
) -> None:
    # the failure comes before any Docker call: no engine needed (the subprocess inherits this)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    root = tmp_path / "workspace"
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text)
    spawner = spawner_of(LocalERCSpawner, builder_config_file="")
    spawner.begin_progress()
    with pytest.raises(SessionError) as raised:
        await asyncio.wait_for(build_image(spawner, FetchedCompendium(SOURCE, root, {})), 60)
    message = str(raised.value)
    assert message.startswith("building the runtime image failed: ")
    assert reason in message
    assert "\n" not in message and "Traceback" not in message
    assert spawner._events == [{"message": "Looking for the runtime image", "progress": 10}]
