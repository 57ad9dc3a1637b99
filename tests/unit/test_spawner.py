"""The session spawners without a hub: working copies, volumes, progress, options, state, the
readiness wait, builds (their errors, their engine, shared builds) and the Docker client factory.

Spawners are made with stand-ins for the hub's user and ORM spawner (a name, a URL, settings);
everything else is the real code. The build error path runs the real ``erchub build --events``
subprocess, which fails before it would need Docker; shared builds run a fake builder.
"""

from __future__ import annotations

import asyncio
import sys
import tarfile
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from jupyterhub.objects import Hub
from jupyterhub.orm import Server as OrmServer
from jupyterhub.slugs import is_valid_display_name
from jupyterhub.spawner import SpawnException
from jupyterhub.utils import format_exception
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from erchub.cli import load_config
from erchub.services.handlers.launch import display_name_of
from erchub.services.store import CompendiumRecord
from erchub.sessions import WORKSPACE
from erchub.spawner import session_build
from erchub.spawner.builder import ImageBuilder
from erchub.spawner.clients import docker_client
from erchub.spawner.session import (
    FetchedCompendium,
    SessionError,
    SessionSource,
    copy_working_copy,
    scratch_directory,
    write_working_copy_tar,
)
from erchub.spawner.session_build import build_image, builder_config, run_builder
from erchub.spawner.spawner import ERCSpawner, LocalERCSpawner, check_user_options

UID = 4321
MOUNT = "/home/jovyan/work"
SOURCE = SessionSource("Abc123", "A title", "analysis/main.ipynb", "Abc123@1")


def hub_user(name: str = "alice", services: dict[str, Any] | None = None) -> Any:
    return SimpleNamespace(
        name=name, escaped_name=name, url=f"/user/{name}/", settings={"services": services or {}}
    )


def spawner_of(
    cls: type[Any], server: str = "erc-abc123-0a1b2c", orm_server: Any = None, **traits: Any
) -> Any:
    orm_spawner = SimpleNamespace(name=server, server=orm_server)
    return cls(user=hub_user(), orm_spawner=orm_spawner, **traits)


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
    target = tmp_path / "working-copy.tar"
    assert write_working_copy_tar(compendium, target, MOUNT + "/", UID) == target
    with tarfile.open(target) as archive:
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
        (
            {"image": "evil"},
            "unknown user_options: image (expected compendium or job, optionally link)",
        ),
        ({"compendium": "../etc"}, "user_options.compendium is not a valid id: '../etc'"),
    ]:
        with pytest.raises(web.HTTPError) as raised:
            check_user_options(spawner, options)
        assert raised.value.status_code == 400
        assert reason in raised.value.log_message
        # what JupyterHub shows its user, on the error page and on the server's page after
        assert raised.value.jupyterhub_message == raised.value.log_message


def test_the_default_server_is_the_workspace_and_takes_no_options() -> None:
    workspace = spawner_of(ERCSpawner, "")
    check_user_options(workspace, {})
    assert workspace.target == WORKSPACE
    with pytest.raises(web.HTTPError, match="your workspace") as raised:
        check_user_options(workspace, {"compendium": "Abc123"})
    assert raised.value.jupyterhub_message.startswith("your workspace")


async def test_the_login_names_the_author() -> None:
    spawner = spawner_of(LocalERCSpawner, hub=Hub())
    spawner.user.name = "0000-0002-1825-0097"
    await spawner.run_auth_state_hook({"name": " Josiah Carberry "})
    assert (spawner.author_name, spawner.author_orcid) == ("Josiah Carberry", spawner.user.name)
    env = spawner.get_env()
    assert env["ERCHUB_AUTHOR_NAME"] == "Josiah Carberry"
    assert env["ERCHUB_AUTHOR_ORCID"] == "0000-0002-1825-0097"
    # a development login: no auth_state, a name that is no ORCID iD
    spawner.user.name = "alice"
    await spawner.run_auth_state_hook(None)
    env = spawner.get_env()
    assert "ERCHUB_AUTHOR_NAME" not in env and "ERCHUB_AUTHOR_ORCID" not in env


def test_the_authoring_environment_is_packaged() -> None:
    environment = Path(spawner_of(ERCSpawner, "").workspace_environment)
    requirements = (environment / "requirements.txt").read_text()
    for package in ("numpy", "scipy", "pandas", "matplotlib"):
        assert package in requirements


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
    # DockerSpawner's escaped names, joined by "--" as its container names: no two servers share
    assert spawner.volume_name == "erchub-work-alice--erc-2dabc123-2d0a1b2c"


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


# -- the working copy among DockerSpawner's volumes ----------------------------------------


def test_the_operators_volumes_stay_next_to_the_working_copy() -> None:
    spawner = spawner_of(
        ERCSpawner,
        volumes={
            "/srv/data/{username}": "/home/jovyan/data",
            "shared-{servername}": {"bind": "/home/jovyan/shared", "mode": "z"},
        },
        read_only_volumes={"/srv/reference": "/home/jovyan/reference"},
    )
    spawner.internal_ssl = True
    spawner.mount_working_copy()
    spawner.mount_working_copy()  # a restart of the same server: still once
    binds = {
        "/srv/data/alice": {"bind": "/home/jovyan/data", "mode": "rw"},
        "shared-erc-2dabc123-2d0a1b2c": {"bind": "/home/jovyan/shared", "mode": "z"},
        "erchub-work-alice--erc-2dabc123-2d0a1b2c": {"bind": MOUNT, "mode": "rw"},
        "/srv/reference": {"bind": "/home/jovyan/reference", "mode": "ro"},
        # DockerSpawner's internal-SSL certificates, staged by its move_certs
        "jupyterssl-alice": {"bind": "/certs", "mode": "ro"},
    }
    assert spawner.volume_binds == binds
    assert spawner.volume_mount_points == sorted(bind["bind"] for bind in binds.values())
    assert spawner.volume_name in spawner.volume_binds


def test_a_volume_at_the_working_copys_place_is_a_configuration_error() -> None:
    spawner = spawner_of(ERCSpawner, read_only_volumes={"/srv/other": MOUNT})
    with pytest.raises(SessionError) as raised:
        spawner.mount_working_copy()
    assert raised.value.status_code == 500
    assert "DockerSpawner.volumes or read_only_volumes" in raised.value.log_message
    assert "read_only_volumes" not in raised.value.jupyterhub_message


# -- the Docker client: one factory, one engine for builds and sessions ---------------------


def test_docker_client_resolves_as_dockerspawner(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until a connection is made")
    # a version given: the engine is not asked for it, so no engine is needed
    client = docker_client(environment={"DOCKER_HOST": "tcp://10.1.2.3:2375"}, version="1.41")
    assert client.api.base_url == "http://10.1.2.3:2375"
    assert client.api.timeout == 60, "docker.from_env()'s default"
    client = docker_client(
        tls_config={"ca_cert": str(ca), "verify": True},
        environment={"DOCKER_HOST": "tcp://10.1.2.3:2376"},
        base_url="tcp://engine.example:2376",
        timeout=5,
        version="1.41",
    )
    assert (client.api.base_url, client.api.timeout) == ("https://engine.example:2376", 5)
    assert client.api.verify == str(ca)


def test_builds_run_on_the_engine_of_the_sessions(tmp_path: Path) -> None:
    own = tmp_path / "erchub_service_config.py"
    own.write_text(
        "c.ImageBuilder.base_image = 'example/base:1'\n"
        "c.ImageBuilder.client_kwargs = {'base_url': 'tcp://workers-engine:2375'}\n"
    )
    spawner = spawner_of(
        ERCSpawner,
        builder_config_file=str(own),
        client_kwargs={"base_url": "tcp://10.9.8.7:2375", "version": "1.41"},
        tls_config={},
    )
    generated = tmp_path / "builder_config.py"
    generated.write_text(
        builder_config(spawner.builder_config_file, spawner.client_kwargs, spawner.tls_config)
    )
    # as `erchub --config <generated> build --events` loads it
    builder = ImageBuilder(config=load_config(str(generated)))
    assert builder.base_image == "example/base:1", "the builder's own configuration"
    assert builder.client_kwargs == spawner.client_kwargs
    assert builder.tls_config == {}
    assert builder.docker_client.api.base_url == "http://10.9.8.7:2375"


async def test_client_settings_a_config_file_cannot_carry_stop_the_start(tmp_path: Path) -> None:
    spawner = spawner_of(ERCSpawner, builder_config_file="", client_kwargs={"tls": object()})
    spawner.begin_progress()
    with pytest.raises(SessionError) as raised:
        await spawner.runtime_image(tmp_path, tmp_path)
    assert raised.value.status_code == 500
    assert "DockerSpawner.client_kwargs" in raised.value.log_message
    assert "client_kwargs" not in raised.value.jupyterhub_message


# -- building the image: the error path -----------------------------------------------------


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({}, "no notebook (*.ipynb) in the compendium"),
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
    spawner = spawner_of(ERCSpawner, builder_config_file="")
    spawner.begin_progress()
    async with scratch_directory() as scratch:
        with pytest.raises(SessionError) as raised:
            await asyncio.wait_for(spawner.runtime_image(root, scratch), 60)
    error = raised.value
    assert isinstance(error, SpawnException), "JupyterHub's exception"
    message = error.jupyterhub_message
    assert message.startswith("building the runtime image failed: ")
    assert reason in message
    assert "\n" not in message and "Traceback" not in message
    assert str(root) not in message, "the hub's scratch directory is not the user's business"
    # what users see (the progress stream, the error page) and what is logged
    assert format_exception(error) == (message, None)
    assert error.message == message
    assert "exit code 2" in error.log_message and str(root) in error.log_message
    assert error.status_code == 400, "the compendium's fault, not the hub's"
    assert spawner._events == [{"message": "Looking for the runtime image", "progress": 10}]


async def test_an_unreachable_erc_service_is_said_without_its_details() -> None:
    spawner = spawner_of(LocalERCSpawner, erc_api_url="http://127.0.0.1:1/services/erc/api/v1")
    spawner.user_options = {"compendium": "Abc123"}
    spawner.begin_progress()
    with pytest.raises(SessionError) as raised:
        await spawner.describe_source()
    assert raised.value.jupyterhub_message == "the erc service cannot be reached; try again later"
    assert "127.0.0.1:1" in raised.value.log_message
    assert raised.value.status_code == 503


async def test_closing_the_builder_kills_it() -> None:
    plan = '{"event": "plan", "image": "erchub/runtime:1", "buildpack": "PipBuildPack"}'
    script = f"import time; print({plan!r}, flush=True); time.sleep(60)"
    started = time.monotonic()
    events = run_builder([sys.executable, "-c", script])
    assert (await anext(events))["image"] == "erchub/runtime:1"
    await events.aclose()
    assert time.monotonic() - started < 10


# -- shared builds --------------------------------------------------------------------------

IMAGE = "erchub/runtime:0123456789abcdef0123"


class FakeBuilder:
    """``erchub build --events`` without Docker: a build of IMAGE that logs a line, waits to be
    released, logs another and ends (or fails). ``builds`` counts the builds that went past
    their plan, as a real one then starts building."""

    def __init__(self, error: str = "") -> None:
        self.error = error
        self.started = 0
        self.builds = 0
        self.release = asyncio.Event()

    async def run(self, command: Sequence[str]) -> AsyncGenerator[dict[str, Any], None]:
        self.started += 1
        yield {"event": "plan", "image": IMAGE, "buildpack": "PipBuildPack", "exists": False}
        self.builds += 1
        yield {"event": "log", "line": "Step 1/2 : FROM erchub/base:bookworm"}
        await self.release.wait()
        yield {"event": "log", "line": "Step 2/2 : RUN pip install -r requirements.txt"}
        if self.error:
            yield {"event": "error", "message": self.error, "log_tail": []}
            yield {"event": "exit", "code": 1, "stderr": ""}
            return
        yield {"event": "done", "image": IMAGE, "cache_hit": False, "seconds": 1.0}
        yield {"event": "exit", "code": 0, "stderr": ""}


def started(spawner: Any, fake: FakeBuilder, root: Path) -> asyncio.Task[str]:
    spawner.begin_progress()
    return asyncio.create_task(build_image(spawner, ["erchub", "build"], root, run=fake.run))


def messages(spawner: Any) -> list[str]:
    return [event["message"] for event in spawner._events]


def waiting(spawner: Any) -> bool:
    return any(message.startswith("Waiting for the build of") for message in messages(spawner))


async def test_two_launches_of_one_image_share_one_build(tmp_path: Path) -> None:
    fake = FakeBuilder()
    first, second = spawner_of(ERCSpawner), spawner_of(ERCSpawner, "erc-other-1a2b3c")
    owner = started(first, fake, tmp_path)
    await eventually(lambda: fake.builds == 1)
    follower = started(second, fake, tmp_path)
    await eventually(lambda: waiting(second))
    assert session_build._BUILDS[IMAGE], "the build is known while it runs"
    fake.release.set()
    assert await asyncio.wait_for(owner, 5) == await asyncio.wait_for(follower, 5) == IMAGE
    assert (fake.started, fake.builds) == (2, 1), "the second builder stopped after its plan"
    assert session_build._BUILDS == {}
    # the second start showed the build's log: what came before it (replayed) and after
    for spawner in (first, second):
        lines = [event.get("html_message", "") for event in spawner._events]
        assert '<span class="erc-build-line">Step 1/2 : FROM erchub/base:bookworm' in lines[-3]
        assert "Building the runtime image: installing packages (step 2/2)" in messages(spawner)
        assert 'line">Step 2/2 : RUN pip install -r requirements.txt</span>' in lines[-2]
        assert messages(spawner)[-1].startswith(f"Built {IMAGE}")
        progress = [e["progress"] for e in spawner._events if "progress" in e]
        assert progress == sorted(progress), "progress never goes back"


async def test_a_failed_build_fails_every_launch_waiting_for_it(tmp_path: Path) -> None:
    fake = FakeBuilder(error="No matching distribution found for erchub-no-such-package")
    first, second = spawner_of(ERCSpawner), spawner_of(ERCSpawner, "erc-other-1a2b3c")
    owner = started(first, fake, tmp_path)
    await eventually(lambda: fake.builds == 1)
    follower = started(second, fake, tmp_path)
    await eventually(lambda: waiting(second))
    fake.release.set()
    errors = await asyncio.gather(owner, follower, return_exceptions=True)
    assert all(isinstance(error, SessionError) for error in errors)
    assert errors[0] is not errors[1], "each start raises its own"
    assert {str(error.jupyterhub_message) for error in errors} == {
        "building the runtime image failed: No matching distribution found for "
        "erchub-no-such-package"
    }
    assert fake.builds == 1
    assert session_build._BUILDS == {}


async def test_a_build_given_up_is_taken_over_by_a_launch_waiting_for_it(tmp_path: Path) -> None:
    fake = FakeBuilder()
    first, second = spawner_of(ERCSpawner), spawner_of(ERCSpawner, "erc-other-1a2b3c")
    owner = started(first, fake, tmp_path)
    await eventually(lambda: fake.builds == 1)
    follower = started(second, fake, tmp_path)
    await eventually(lambda: waiting(second))
    owner.cancel()  # its server was stopped, or its start timed out
    await eventually(lambda: fake.builds == 2)
    assert not follower.done()
    fake.release.set()
    assert await asyncio.wait_for(follower, 5) == IMAGE
    assert owner.cancelled()
    assert session_build._BUILDS == {}


# -- the readiness wait ---------------------------------------------------------------------


class Answers(web.RequestHandler):
    status = 200

    def get(self, *args: Any) -> None:
        self.set_status(self.status)


@pytest.fixture
async def lab_server() -> Any:
    """A stand-in JupyterLab on a free port whose answer (``Answers.status``) a test sets."""
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(web.Application([(r"/.*", Answers)]))
    server.add_sockets(sockets)
    yield sockets[0].getsockname()[1]
    server.stop()
    Answers.status = 200


def waiting_spawner(exited: Any = None) -> Any:
    server = OrmServer(proto="http", ip="", port=0, base_url="/user/alice/erc-abc/")
    server.cookie_name = ""
    spawner = spawner_of(LocalERCSpawner, orm_server=server, http_timeout=1)

    async def poll() -> Any:
        return exited

    spawner.poll = poll
    return spawner


@pytest.mark.parametrize("status", [200, 302, 404])
async def test_an_answer_below_500_is_up(lab_server: int, status: int) -> None:
    Answers.status = status
    await asyncio.wait_for(waiting_spawner().wait_until_answering("127.0.0.1", lab_server), 5)


async def test_a_5xx_is_not_up_and_the_deadline_raises(lab_server: int) -> None:
    Answers.status = 503
    with pytest.raises(SessionError) as raised:
        await asyncio.wait_for(waiting_spawner().wait_until_answering("127.0.0.1", lab_server), 5)
    assert raised.value.jupyterhub_message == "JupyterLab did not answer within 1 s"
    assert "/user/alice/erc-abc/api" in raised.value.log_message


async def test_a_server_that_exits_ends_the_wait(lab_server: int) -> None:
    Answers.status = 502
    with pytest.raises(SessionError) as raised:
        await asyncio.wait_for(
            waiting_spawner(exited=1).wait_until_answering("127.0.0.1", lab_server), 5
        )
    assert raised.value.jupyterhub_message == "JupyterLab stopped before it answered"
    assert "exited with status 1" in raised.value.log_message
