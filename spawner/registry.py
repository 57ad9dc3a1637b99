"""Runtime images in a private Docker registry: their names there, and pulls from it.

A builder with a registry (:attr:`erchub.spawner.builder.ImageBuilder.registry`) tags every
runtime image it builds or reuses as ``REGISTRY/<image>`` (``erchub/runtime:<tag>`` becomes
``registry.example.org:5000/erchub/runtime:<tag>``), pushes it there and records its repository
digest reference, ``registry.example.org:5000/erchub/runtime@sha256:<hex>``: the image's
content, whatever a tag names later. An engine that lacks the image pulls it by that reference
(:func:`pull_image`) and runs it by it, so that no engine builds what another one built.

The naming is pure; :func:`pull_image` is the I/O edge (through the docker SDK, streamed,
bounded in time, stopped at a cancel).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable

import docker
import docker.errors
from docker.auth import resolve_repository_name
from docker.utils import parse_repository_tag

from erchub.errors import ErchubError
from erchub.spawner.engine import ResponseStream, StreamCanceled, StreamTimedOut

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
#: a registry's host (a DNS name or an IPv4 address) and optional port
_REGISTRY = re.compile(rf"(?P<host>{_LABEL}(?:\.{_LABEL})*)(?::(?P<port>[0-9]{{1,5}}))?")
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
#: a repository inside a registry: lowercase components, as the distribution spec has them
_REPOSITORY_PATH = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
#: the last line of a push: "<tag>: digest: sha256:<hex> size: <bytes>"
_PUSHED_DIGEST = re.compile(r":\s+digest:\s+(sha256:[0-9a-f]{64})\b")
#: pull and push statuses of one layer on its way, which say nothing a log reader needs: the
#: lines kept say what each layer came to (pushed, pulled, already there) and the digest
QUIET_STATUSES = (
    "Preparing",
    "Waiting",
    "Pulling fs layer",
    "Verifying Checksum",
    "Download complete",
    "Downloading",
    "Extracting",
    "Pushing",
)

LineCallback = Callable[[str], None]


class RegistryError(ErchubError):
    """A pull from the registry failed; the message names the registry."""


class PullCanceled(RegistryError):
    """A pull stopped because its cancel event was set."""


def check_registry(registry: str) -> str:
    """``registry`` when it names a Docker registry as image names start with it
    (``host:port``, ``host.domain``, ``localhost``), else ValueError saying what it may be.

    A bare host without a dot or a port (``registry``) is not one: Docker reads
    ``registry/erchub/runtime`` as the Docker Hub account ``registry``.
    """
    example = "host:port or a host name with a dot, e.g. registry.example.org:5000"
    match = _REGISTRY.fullmatch(registry)
    if match is None or (match["port"] is not None and not 0 < int(match["port"]) < 65536):
        raise ValueError(f"registry {registry!r} is no registry address: {example}")
    if resolve_repository_name(f"{registry}/erchub")[0] != registry:
        raise ValueError(f"registry {registry!r} would be read as a Docker Hub account: {example}")
    return registry


def registry_image(registry: str, image: str) -> str:
    """The name of the local image ``image`` (``repository:tag``, no registry) in ``registry``."""
    check_registry(registry)
    repository, tag = parse_repository_tag(image)
    if not tag or tag.startswith("sha256:"):
        raise ValueError(f"image {image!r}: a tagged image is pushed, repository:tag")
    first, slash, _ = repository.partition("/")
    # Docker's rule: a first component with a dot or a port, or localhost, is a registry
    if slash and ("." in first or ":" in first or first == "localhost"):
        raise ValueError(f"image {image!r} names a registry already")
    return f"{registry}/{image}"


def check_digest_reference(reference: str) -> str:
    """``reference`` when it is an image by digest in a registry (``REGISTRY/PATH@sha256:<hex>``),
    else ValueError saying what it should be."""
    repository, sep, digest = reference.partition("@")
    registry, _, path = repository.partition("/")
    try:
        check_registry(registry)
    except ValueError:
        raise ValueError(
            f"image reference {reference!r} names no registry: REGISTRY/PATH@sha256:<hex>"
        ) from None
    if not sep or not _DIGEST.fullmatch(digest) or not _REPOSITORY_PATH.fullmatch(path):
        raise ValueError(
            f"image reference {reference!r} is no image by digest: REGISTRY/PATH@sha256:<hex>"
        )
    return reference


def reference_registry(reference: str) -> str:
    """The registry a reference (``REGISTRY/PATH:tag`` or ``@sha256:...``) names."""
    return str(resolve_repository_name(parse_repository_tag(reference)[0])[0])


def pushed_digest(lines: Iterable[str]) -> str:
    """The digest the last line of a push names (``<tag>: digest: sha256:<hex> size: N``); ""
    when none does."""
    found = ""
    for line in lines:
        match = _PUSHED_DIGEST.search(line)
        if match:
            found = match[1]
    return found


def repository_digest(repo_digests: Iterable[str], repository: str, pushed: str = "") -> str:
    """The reference ``repository@sha256:<hex>`` among an image's ``RepoDigests``: the only one
    of ``repository``, or the one of the digest a push named (``pushed``); "" when there is
    none, or several and the push named none of them."""
    found = [entry for entry in repo_digests if entry.partition("@")[0] == repository]
    if pushed and f"{repository}@{pushed}" in found:
        return f"{repository}@{pushed}"
    return found[0] if len(found) == 1 else ""


def status_line(item: dict[str, object]) -> str | None:
    """A pull or push status of the engine as one log line ("Pull complete 1a2b3c"); None for
    progress and for a layer's intermediate states (:data:`QUIET_STATUSES`)."""
    status = str(item.get("status") or "")
    if not status or item.get("progress") or status.startswith(QUIET_STATUSES):
        return None
    return " ".join(part for part in (status, str(item.get("id") or "")) if part)


def one_line(text: str) -> str:
    """``text`` (an engine's message, which may span lines) as one line."""
    return " ".join(text.split())


def pull_image(
    client: docker.DockerClient,
    reference: str,
    on_line: LineCallback,
    cancel: threading.Event | None,
    timeout: float,
    *,
    missing_ok: bool = False,
) -> bool:
    """Pull ``reference`` (by digest or by tag) into the engine of ``client``, each status line
    to ``on_line``; True when pulled. False when ``missing_ok`` and the registry has no such
    image. RegistryError naming the registry when it fails or takes longer than ``timeout``
    seconds (the pull is stopped); PullCanceled within a tenth of a second of ``cancel``.

    An engine that cannot be reached raises what the docker SDK raises (its caller says so)."""
    registry = reference_registry(reference)
    api = client.api
    stream = ResponseStream(api, lambda: api.pull(reference, stream=True, decode=True))
    try:
        for item in stream.items(timeout, cancel):
            if "error" in item:
                raise RegistryError(
                    f"pulling {reference} from the registry {registry} failed: "
                    f"{one_line(str(item['error']))}"
                )
            line = status_line(item)
            if line:
                on_line(line)
    except StreamTimedOut:
        raise RegistryError(
            f"pulling {reference} from the registry {registry} did not finish within "
            f"{timeout:g} s and was stopped"
        ) from None
    except StreamCanceled:
        raise PullCanceled(f"pulling {reference} canceled") from None
    except docker.errors.NotFound as exc:
        if missing_ok:
            return False
        raise RegistryError(
            f"the registry {registry} has no image {reference}: "
            f"{one_line(str(exc.explanation or exc))}"
        ) from None
    except docker.errors.APIError as exc:
        raise RegistryError(
            f"pulling {reference} from the registry {registry} failed: "
            f"{one_line(str(exc.explanation or exc))}"
        ) from None
    return True
