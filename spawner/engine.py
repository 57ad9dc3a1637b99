"""A repo2docker container engine on the docker SDK (``--engine erchub-docker-sdk``).

repo2docker's own ``DockerEngine`` shells out to ``docker buildx``, which Debian 12's docker.io
does not ship. This engine talks to the daemon's build endpoint through docker-py's low-level
``APIClient.build`` (the classic builder), streams the build output line by line, and stops a
build at a deadline (``build_timeout``) or at once when its ``cancel`` event is set: closing the
HTTP response makes dockerd stop the build, kill its running step's container and remove its
containers, and the image is never tagged. :class:`ResponseStream` does the same for any other
streamed answer of the engine (an image export). Registered in pyproject.toml under
``repo2docker.engines``.
"""

from __future__ import annotations

import contextlib
import io
import queue
import re
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import docker
import docker.errors
import requests
from docker.utils import parse_repository_tag
from repo2docker.docker import DockerContainer
from repo2docker.engine import BuildError, ContainerEngine, Image, ImageLoadError
from traitlets import Float, Instance, default

from erchub.spawner.clients import docker_client

#: ``COPY --chmod=MODE src... dest``: BuildKit-only syntax that repo2docker's own template uses.
_COPY_CHMOD = re.compile(
    r"^(?P<head>(?:COPY|ADD)\s+(?:--\S+\s+)*?)--chmod=(?P<mode>[0-7]{3,4})\s+(?P<rest>.+)$",
    re.IGNORECASE | re.MULTILINE,
)

# The classic builder colours a step's stderr with terminal escapes.
_TERMINAL_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

# The thread that reads a response, and the stream it belongs to (see _remember_response).
_reading = threading.local()
#: how often a stream being read looks at its cancel event, in seconds
CANCEL_POLL_SECONDS = 0.1


class StreamStopped(Exception):
    """A :class:`ResponseStream` was ended before the engine finished: its response is closed."""


class StreamTimedOut(StreamStopped):
    """The stream's deadline passed."""


class StreamCanceled(StreamStopped):
    """The stream's cancel event was set."""


class BuildCanceled(BuildError):
    """A build stopped because its engine's ``cancel`` event was set."""


class DockerSDKEngine(ContainerEngine):
    """repo2docker engine on docker-py's ``APIClient``: build, inspect, push, run."""

    string_output = True

    client = Instance(
        docker.DockerClient,
        help="""docker client used for every call (ImageBuilder hands over its own). Default:
        erchub.spawner.clients.docker_client() on first use.""",
    )

    build_timeout = Float(
        None,
        allow_none=True,
        help="Seconds a build may run before it is cancelled (default: None (no limit)).",
    ).tag(config=True)

    push_timeout = Float(
        None,
        allow_none=True,
        help="""Seconds a push may run before it is stopped (default: None (no limit));
        ImageBuilder hands over its own.""",
    ).tag(config=True)

    cancel = Instance(
        threading.Event,
        allow_none=True,
        help="""Set from another thread, it stops a running build or push within a tenth of a
        second (it raises BuildCanceled). ImageBuilder hands over a job's cancel event.""",
    )

    @default("client")
    def _default_client(self) -> docker.DockerClient:
        return docker_client()

    def build(
        self,
        *,
        push: bool = False,
        load: bool = False,
        buildargs: dict[str, str] | None = None,
        cache_from: list[str] | None = None,
        container_limits: dict[str, Any] | None = None,
        tag: str = "",
        custom_context: bool = False,
        dockerfile: str = "",
        fileobj: IO[bytes] | None = None,
        path: str = "",
        labels: dict[str, str] | None = None,
        platform: str | None = None,
        **kwargs: Any,
    ) -> Iterator[str]:
        """Build an image and yield its log lines; raise repo2docker's BuildError on failure.

        ``fileobj`` is always a tar of the whole context (repo2docker's contract, so
        ``custom_context`` needs no caller); otherwise ``path`` is the context directory and
        ``dockerfile`` the Dockerfile's path within it. ``load`` needs nothing: the classic
        builder stores the image in the daemon. Other keyword arguments (repo2docker's
        ``extra_build_kwargs``) go to ``APIClient.build`` unchanged.
        """
        api_kwargs: dict[str, Any] = {
            "tag": tag or None,
            "buildargs": dict(buildargs or {}),
            "container_limits": dict(container_limits or {}),
            "labels": labels or None,
            "cache_from": list(cache_from or []) or None,
            "platform": platform or None,
            "decode": True,
            "rm": True,
            "forcerm": True,
            **kwargs,
        }
        if fileobj is not None:
            name = dockerfile or "Dockerfile"
            api_kwargs.update(
                fileobj=_without_copy_chmod(fileobj, name),
                custom_context=True,
                dockerfile=name,
            )
        else:
            api_kwargs.update(path=path, dockerfile=dockerfile or None)
        api = self.client.api
        stream = ResponseStream(api, lambda: api.build(**api_kwargs))
        pending = ""
        try:
            for item in stream.items(self.build_timeout, self.cancel):
                if "error" in item:
                    if pending:
                        yield pending + "\n"
                    raise BuildError(str(item["error"]).strip())
                if "stream" in item:
                    pending += _TERMINAL_ESCAPE.sub("", str(item["stream"]))
                    *complete, pending = pending.split("\n")
                    for line in complete:
                        yield line + "\n"
                elif "status" in item and not item.get("progress"):
                    yield _status_line(item)
        except StreamTimedOut:
            raise BuildError(
                f"build did not finish within {self.build_timeout:g} s and was cancelled"
            ) from None
        except StreamCanceled:
            raise BuildCanceled("build canceled") from None
        except docker.errors.APIError as exc:
            raise BuildError(str(exc.explanation or exc)) from exc
        except docker.errors.DockerException as exc:
            raise BuildError(str(exc)) from exc
        if pending:
            yield pending + "\n"
        if push:
            yield from self.push(tag)

    def images(self) -> list[Image]:
        """Every local image, with its tags."""
        return [Image(tags=entry.get("RepoTags") or []) for entry in self.client.api.images()]

    def inspect_image(self, image: str) -> Image | None:
        """The image's tags and configuration, or None when the daemon has no such image."""
        try:
            attrs = self.client.api.inspect_image(image)
        except docker.errors.ImageNotFound:
            return None
        config = dict(attrs.get("Config") or {})
        config.setdefault("WorkingDir", "")
        return Image(tags=attrs.get("RepoTags") or [], config=config)

    def push(self, image_spec: str) -> Iterator[str]:
        """Push ``image_spec``, yielding status lines; raise ImageLoadError on failure or past
        ``push_timeout`` (the push is stopped), BuildCanceled when ``cancel`` is set."""
        repository, tag = parse_repository_tag(image_spec)
        auth = None
        if self.registry_credentials:
            auth = {
                "username": self.registry_credentials["username"],
                "password": self.registry_credentials["password"],
            }
        api = self.client.api
        stream = ResponseStream(
            api,
            lambda: api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth),
        )
        try:
            for item in stream.items(self.push_timeout, self.cancel):
                if "error" in item:
                    raise ImageLoadError(str(item["error"]).strip())
                if "status" in item and not item.get("progress"):
                    yield _status_line(item)
        except StreamTimedOut:
            raise ImageLoadError(
                f"push did not finish within {self.push_timeout:g} s and was stopped"
            ) from None
        except StreamCanceled:
            raise BuildCanceled("push canceled") from None
        except docker.errors.APIError as exc:
            raise ImageLoadError(str(exc.explanation or exc)) from exc

    def run(
        self,
        image_spec: str,
        *,
        command: list[str] | None = None,
        environment: list[str] | None = None,
        ports: dict[str, Any] | None = None,
        publish_all_ports: bool = False,
        remove: bool = False,
        volumes: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> DockerContainer:
        """Start a detached container of ``image_spec`` (repo2docker's ``--run``)."""
        container = self.client.containers.run(
            image_spec,
            command=command or None,
            environment=environment or [],
            detach=True,
            ports=ports or {},
            publish_all_ports=publish_all_ports,
            remove=remove,
            volumes=volumes or {},
            **kwargs,
        )
        return DockerContainer(container)


class ResponseStream:
    """Reads one streamed answer of the engine in a thread, so that a deadline or a cancel can
    end it at once: the response is closed, which makes dockerd stop the work behind it (a
    build and its containers, an image export).

    ``call`` makes the request (on ``api``) and returns the items of its answer; it runs in the
    reading thread, where :func:`_remember_response` hands the response over to this stream.
    """

    def __init__(self, api: docker.APIClient, call: Callable[[], Iterable[Any]]) -> None:
        self._call = call
        self._items: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._lock = threading.Lock()
        self._response: requests.Response | None = None
        self._cancelled = False
        if _remember_response not in api.hooks["response"]:
            api.hooks["response"].append(_remember_response)

    def items(
        self, timeout: float | None = None, cancel: threading.Event | None = None
    ) -> Iterator[Any]:
        """The answer's items; raise StreamTimedOut after ``timeout`` seconds, StreamCanceled
        within CANCEL_POLL_SECONDS of ``cancel`` being set, having closed the response."""
        reader = threading.Thread(target=self._read, name="docker-stream-reader", daemon=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        reader.start()
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    raise StreamCanceled()
                wait = None if cancel is None else CANCEL_POLL_SECONDS
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise StreamTimedOut()
                    wait = remaining if wait is None else min(wait, remaining)
                try:
                    kind, value = self._items.get(timeout=wait)
                except queue.Empty:
                    continue
                if kind == "item":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            # Also when the consumer stops early: an abandoned build must not run on.
            if reader.is_alive():
                self._cancel()

    def _read(self) -> None:
        _reading.stream = self
        try:
            for item in self._call():
                self._items.put(("item", item))
        except Exception as exc:  # handed to the consuming thread, which raises it
            self._items.put(("error", exc))
        else:
            self._items.put(("end", None))
        finally:
            _reading.stream = None

    def attach(self, response: requests.Response) -> None:
        with self._lock:
            self._response = response
            cancelled = self._cancelled
        if cancelled:
            _close(response)

    def _cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            response = self._response
        if response is not None:
            _close(response)


def _remember_response(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """requests hook: hand a response to the stream reading it, so that it can be closed."""
    stream = getattr(_reading, "stream", None)
    if stream is not None:
        stream.attach(response)


def _close(response: requests.Response) -> None:
    # shutdown() wakes the reader blocked in recv(); close() drops the connection, which
    # makes dockerd cancel the build.
    with contextlib.suppress(ValueError, RuntimeError, OSError):
        response.raw.shutdown()
    response.close()


def _status_line(item: dict[str, Any]) -> str:
    """A pull or push status without its progress bar: "Pull complete 1a2b3c"."""
    return " ".join(str(item[key]) for key in ("status", "id") if item.get(key)) + "\n"


def _without_copy_chmod(context: IO[bytes], dockerfile: str) -> IO[bytes]:
    """The build context with ``COPY --chmod`` turned into modes on the copied tar members.

    The classic builder rejects ``--chmod`` ("requires BuildKit"), which repo2docker's own
    Dockerfile template uses for its entrypoint scripts; COPY keeps a member's mode, so setting
    the mode in the tar gives the same image. Contexts without ``--chmod`` pass unchanged.
    """
    source = tarfile.open(fileobj=context)  # noqa: SIM115 - members are read until the end
    members = source.getmembers()
    dockerfile_member = next(
        (m for m in members if m.name.removeprefix("./") == dockerfile and m.isfile()), None
    )
    extracted = source.extractfile(dockerfile_member) if dockerfile_member else None
    text = extracted.read().decode("utf-8") if extracted else ""
    if "--chmod" not in text:
        context.seek(0)
        return context
    modes: dict[str, int] = {}

    def drop_chmod(match: re.Match[str]) -> str:
        *sources, _destination = match["rest"].split()
        for name in sources:
            modes[name.strip("/")] = int(match["mode"], 8)
        return match["head"] + match["rest"]

    rewritten = _COPY_CHMOD.sub(drop_chmod, text).encode("utf-8")
    result = io.BytesIO()
    with tarfile.open(fileobj=result, mode="w") as target:
        for member in members:
            if member is dockerfile_member:
                member.size = len(rewritten)
                target.addfile(member, io.BytesIO(rewritten))
                continue
            member.mode = modes.get(member.name.removeprefix("./").rstrip("/"), member.mode)
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
    result.seek(0)
    return result
