"""The runtime image of a session: ``erchub build --events`` in a subprocess, one build of an
image at a time.

The builder enters the workspace directory (repo2docker's buildpacks read the current
directory), which must not happen in the hub's process, so a start runs ``erchub build
--events`` and follows its events: ``plan``, a ``log`` event per build log line, then ``done`` or
``error`` (see ``erchub.cli.build_with_events``).

The progress page shows one short line while the image builds, the build's step and what it
does ("Building the runtime image: installing packages (step 17/24)", :class:`BuildSteps`),
and each full build log line in its event log: a build line's event carries both in its
``html_message`` (JupyterHub's spawn page puts that in the progress line and the event log),
and erchub's ``spawn_pending.html`` shows each part only in its place. ``message`` is the
short line, for clients of the hub's progress API.

The build runs on the engine of the sessions: the spawner writes a config file for it that loads
the builder's own configuration, then sets ``ImageBuilder.client_kwargs`` and
``ImageBuilder.tls_config`` to the spawner's ``client_kwargs`` and ``tls_config``, what
DockerSpawner makes its ``client`` from (the DOCKER_* variables it also reads are inherited).

Builds are shared within the hub's process: while an image is being built, a start that needs
the same image (the same compendium, or one with the same environment: the tag is the hash of
the environment) waits for that build and shows its log instead of building it a second time,
as BinderHub attaches a launch to the build already running. When the start that runs the build
gives up (its server is stopped, its start times out), the starts waiting for it build for
themselves.
"""

from __future__ import annotations

import ast
import asyncio
import html
import json
import re
import sys
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from erchub.spawner.session import SessionError

#: progress of the first and (approached, never reached) last build log line
_BUILD_PROGRESS = (20, 70)
#: build log lines a start that begins to wait for a running build is shown first
REPLAYED_LINES = 20
#: longest builder event line (a build log line can be long)
EVENT_LINE_LIMIT = 2**20
#: stderr lines of a failed builder that go into the hub's log
_STDERR_LINES = 20

#: runs a builder command: the builder's events, then ``{"event": "exit", "code": int,
#: "stderr": str}``; closing it before its end stops the builder, and with it its build
RunBuilder = Callable[[Sequence[str]], AsyncGenerator[dict[str, Any], None]]


class Reporter(Protocol):
    """Where progress goes: a spawner's ``report``."""

    def report(
        self, message: str, progress: int | None = None, html_message: str | None = None
    ) -> None: ...


#: a build step's first log line (Docker's classic builder): "Step 4/7 : RUN pip install ..."
_STEP_LINE = re.compile(r"Step (?P<step>\d+)/(?P<steps>\d+) : (?P<instruction>\S+)(?P<rest>.*)")
#: what RUN commands do, by a word in them (the first match names it)
_RUN_ACTIVITIES = (
    (re.compile(r"\b(apt-get|apt)\b"), "installing system packages"),
    (re.compile(r"\b(pip|conda|mamba|micromamba)\b"), "installing packages"),
    (re.compile(r"\bpostBuild\b"), "running postBuild"),
    (re.compile(r"\bvenv\b"), "creating the Python environment"),
    (re.compile(r"\b(useradd|usermod)\b"), "creating the notebook user"),
)
#: what the other Dockerfile instructions do
_ACTIVITIES = {
    "FROM": "starting from the base image",
    "COPY": "copying files",
    "ADD": "copying files",
}
BUILD_STARTED = "Building the runtime image"


class BuildSteps:
    """Follows a build's log lines and says in one short line what the build is doing. Pure."""

    def __init__(self) -> None:
        self.status = BUILD_STARTED

    def follow(self, line: str) -> str:
        """The status after ``line``: changed by the first line of each step, kept by the rest
        (the output of the step's command)."""
        step = _STEP_LINE.match(line.strip())
        if step is not None:
            activity = _activity(step["instruction"].upper(), step["rest"])
            self.status = f"{BUILD_STARTED}: {activity} (step {step['step']}/{step['steps']})"
        return self.status


def _activity(instruction: str, arguments: str) -> str:
    if instruction == "RUN":
        for pattern, activity in _RUN_ACTIVITIES:
            if pattern.search(arguments):
                return activity
        return "running a build command"
    return _ACTIVITIES.get(instruction, "configuring the image")


def build_line_html(status: str, line: str) -> str:
    """The ``html_message`` of a build log line: the short status for the progress line, the
    full line for the event log (the page's styles show each in its place), both escaped."""
    return (
        f'<span class="erc-build-status">{html.escape(status)}</span>'
        f'<span class="erc-build-line">{html.escape(line)}</span>'
    )


class SharedBuild:
    """A build of ``image`` in this process, and the starts that show its progress."""

    def __init__(self, image: str) -> None:
        self.image = image
        #: the image, the build's error, or None: the build was given up before its end
        self.outcome: asyncio.Future[str | SessionError | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._watchers: list[Reporter] = []
        self._recent: deque[tuple[str, int | None, str | None]] = deque(maxlen=REPLAYED_LINES)

    def report(
        self, message: str, progress: int | None = None, html_message: str | None = None
    ) -> None:
        self._recent.append((message, progress, html_message))
        for watcher in list(self._watchers):
            watcher.report(message, progress, html_message)

    def watch(self, watcher: Reporter) -> None:
        """Show the build's progress to ``watcher``: its latest events, then the new ones."""
        for message, progress, html_message in self._recent:
            watcher.report(message, progress, html_message)
        self._watchers.append(watcher)

    def unwatch(self, watcher: Reporter) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    def end(self, outcome: str | SessionError | None) -> None:
        if not self.outcome.done():
            self.outcome.set_result(outcome)


#: the builds running in this process, by image tag
_BUILDS: dict[str, SharedBuild] = {}


def builder_config(
    builder_config_file: str, client_kwargs: Mapping[str, Any], tls_config: Mapping[str, Any]
) -> str:
    """The text of the traitlets config file of a session's build: the builder's own file
    (when there is one), then the Docker client settings of the sessions' engine. Raises
    ValueError when a setting is not a Python literal (a config file cannot carry it)."""
    lines = [
        "# ERCSpawner's configuration of one build: the builder's own, then the Docker engine",
        "# of the sessions (DockerSpawner.client_kwargs and tls_config): builds run there too",
    ]
    if builder_config_file:
        lines.append(f"load_subconfig({builder_config_file!r})")
    for name, value in (("client_kwargs", client_kwargs), ("tls_config", tls_config)):
        text = repr(dict(value))
        try:
            literal = ast.literal_eval(text) == dict(value)
        except (ValueError, SyntaxError):
            literal = False
        if not literal:
            raise ValueError(
                f"DockerSpawner.{name} holds values that are not Python literals ({text}), "
                "which the image builder's configuration cannot carry: use literals (paths, "
                "numbers, strings) and tls_config for TLS"
            )
        lines.append(f"c.ImageBuilder.{name} = {text}")
    return "\n".join(lines) + "\n"


def builder_command(
    config_file: Path, workspace: Path, environment: str | None = None
) -> list[str]:
    """``erchub build --events`` of ``workspace`` with ``config_file``, in this Python; with
    ``environment``, ``workspace`` is a bare environment folder of that name."""
    command = [sys.executable, "-m", "erchub", "--config", str(config_file), "build", "--events"]
    if environment:
        command += ["--environment", environment]
    return [*command, str(workspace)]


async def run_builder(command: Sequence[str]) -> AsyncGenerator[dict[str, Any], None]:
    """Run ``command``: its events (JSON lines on stdout), then ``exit`` with its exit code and
    stderr. Closed before its end (the start gave up, or another build makes the image), it
    kills the builder, whose engine connection closes: the engine then stops the build."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=EVENT_LINE_LIMIT,
    )
    assert process.stdout is not None and process.stderr is not None
    stderr = asyncio.ensure_future(process.stderr.read())
    try:
        async for raw in process.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if isinstance(event, dict):
                yield event
        code = await process.wait()
        text = (await stderr).decode(errors="replace").strip()
        yield {"event": "exit", "code": code, "stderr": text}
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        stderr.cancel()


async def build_image(
    spawner: Reporter, command: Sequence[str], workspace: Path, *, run: RunBuilder = run_builder
) -> str:
    """The runtime image of the compendium in ``workspace``: built by ``command`` unless it
    exists, or awaited when this process builds it already; progress events to ``spawner``.
    Raises SessionError."""
    spawner.report("Looking for the runtime image", 10)
    while True:
        events = run(command)
        try:
            plan = await _plan(events, workspace)
            running = None if plan.get("exists") else _BUILDS.get(str(plan["image"]))
            if running is None:
                return await _own_build(spawner, plan, events, workspace)
        finally:
            await events.aclose()
        image = await _await_build(spawner, running)
        if image is not None:
            return image
        spawner.report(f"The build of {running.image} stopped before its end: building it again")


async def _plan(events: AsyncGenerator[dict[str, Any], None], workspace: Path) -> dict[str, Any]:
    """The builder's plan event; SessionError when the builder ends without one."""
    error = ""
    async for event in events:
        kind = event.get("event")
        if kind == "plan":
            return event
        if kind == "error":
            error = str(event.get("message") or "")
        elif kind == "exit":
            raise _failure(workspace, error, event)
    raise _failure(workspace, error, {})


async def _own_build(
    spawner: Reporter,
    plan: dict[str, Any],
    events: AsyncGenerator[dict[str, Any], None],
    workspace: Path,
) -> str:
    """Follow the build of ``plan`` (or the reuse of its image), shared while it runs."""
    image = str(plan["image"])
    if plan.get("exists"):
        spawner.report(f"Reusing the runtime image {image}", 60)
        return await _follow(spawner, events, workspace)
    shared = _BUILDS[image] = SharedBuild(image)
    shared.watch(spawner)
    outcome: str | SessionError | None = None
    try:
        shared.report(f"Building the runtime image {image} with {plan['buildpack']}", 15)
        outcome = await _follow(shared, events, workspace)
        return outcome
    except SessionError as exc:
        outcome = exc
        raise
    finally:
        if _BUILDS.get(image) is shared:
            del _BUILDS[image]
        shared.end(outcome)


async def _await_build(spawner: Reporter, build: SharedBuild) -> str | None:
    """The image of a build another start runs, showing its progress; None when that build
    was given up before its end."""
    spawner.report(f"Waiting for the build of {build.image}, which another launch started", 15)
    build.watch(spawner)
    try:
        outcome = await asyncio.shield(build.outcome)
    finally:
        build.unwatch(spawner)
    if isinstance(outcome, SessionError):
        raise outcome.again()
    return outcome


async def _follow(
    reporter: Reporter, events: AsyncGenerator[dict[str, Any], None], workspace: Path
) -> str:
    """The image the builder reports when it is done (by repository digest when it pushed it
    to a registry); its log lines go to ``reporter``."""
    image, error, lines = "", "", 0
    started = time.monotonic()
    end: dict[str, Any] = {}
    steps = BuildSteps()
    async for event in events:
        kind = event.get("event")
        if kind == "log":
            lines += 1
            low, high = _BUILD_PROGRESS
            line = str(event["line"])
            status = steps.follow(line)
            # the number of lines is unknown: creep towards `high` without reaching it
            progress = low + int((high - low) * (1 - 0.99**lines))
            reporter.report(status, progress, build_line_html(status, line))
        elif kind == "done":
            # by digest when the builder pushed it to its registry: what any engine pulls
            image = str(event.get("image_digest") or event["image"])
            if not event.get("cache_hit"):
                reporter.report(f"Built {image} in {time.monotonic() - started:.0f} s", 75)
        elif kind == "error":
            error = str(event.get("message") or "")
        elif kind == "exit":
            end = event
            break
    if end.get("code") != 0 or not image:
        raise _failure(workspace, error, end)
    return image


def _failure(workspace: Path, error: str, end: dict[str, Any]) -> SessionError:
    """The SessionError of a build that failed: its user sees the builder's error (erchub's
    one-line message, which names what is wrong with the compendium), the hub's log also
    gets the builder's exit code and the end of its stderr."""
    stderr = "\n".join(str(end.get("stderr") or "").splitlines()[-_STDERR_LINES:])
    log_message = (
        f"erchub build --events of {workspace} failed (exit code {end.get('code')}): "
        f"{error or 'no error event'}" + (f"\n{stderr}" if stderr else "")
    )
    if not error:
        return SessionError(
            "building the runtime image failed: the image builder stopped unexpectedly",
            reason="build",
            log_message=log_message,
            status_code=500,
        )
    # the user knows the compendium, not the hub's scratch directory
    reason = error.removeprefix("erchub: error: ").replace(str(workspace), "the compendium")
    return SessionError(
        f"building the runtime image failed: {reason}", reason="build", log_message=log_message
    )
