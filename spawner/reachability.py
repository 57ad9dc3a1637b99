"""The hosts a build needs, and whether they answer before the build starts.

A build that cannot reach a registry, a package index or a download host would fail after
minutes, or hang; the builder checks the hosts first and names every one that does not answer.
"""

from __future__ import annotations

import re
import socket
import ssl
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from docker.auth import resolve_repository_name
from repo2docker.buildpacks.base import BuildPack

from erchub.errors import BuildError

_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE)
_URL_HOST = re.compile(r"https?://[^\s/\"'$]+")


@dataclass(frozen=True)
class Endpoint:
    """A host a build needs, and why (for the message when it does not answer)."""

    host: str
    port: int
    needed_by: str
    tls: bool = True


def from_images(dockerfile: str) -> list[str]:
    """Images a Dockerfile's FROM lines pull (not scratch, earlier stages, or ARG-built names)."""
    stages: set[str] = set()
    images: list[str] = []
    for line in dockerfile.splitlines():
        match = _FROM.match(line)
        if not match:
            continue
        image, stage = match.groups()
        if image.lower() != "scratch" and image not in stages and "$" not in image:
            images.append(image)
        if stage:
            stages.add(stage)
    return images


def registry_endpoint(image: str, needed_by: str) -> Endpoint:
    """The registry an image is pulled from (Docker Hub: registry-1.docker.io)."""
    registry, _name = resolve_repository_name(image)
    if registry in ("docker.io", "index.docker.io"):
        registry = "registry-1.docker.io"
    host, _, port = registry.partition(":")
    return Endpoint(host, int(port or 443), needed_by)


def url_endpoints(urls: Iterable[str], needed_by: str) -> list[Endpoint]:
    """The http(s) hosts of ``urls`` (other schemes, such as file:, need no host)."""
    endpoints = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.hostname:
            tls = parts.scheme == "https"
            endpoints.append(
                Endpoint(parts.hostname, parts.port or (443 if tls else 80), needed_by, tls)
            )
    return endpoints


def probe(endpoint: Endpoint, timeout: float) -> str | None:
    """Why ``endpoint`` does not answer a TCP connect (and TLS handshake), or None if it does.

    When an http(s) proxy applies to the host (environment variables), its proxy is probed.
    """
    host, port, tls, via = endpoint.host, endpoint.port, endpoint.tls, ""
    proxy = urllib.request.getproxies().get("https" if endpoint.tls else "http")
    if proxy and not urllib.request.proxy_bypass(endpoint.host):
        proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port, tls = proxy_parts.hostname or "", proxy_parts.port or 80, False
        via = f" through proxy {host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            if tls:
                # Reachability only: the client that downloads verifies certificates.
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                with context.wrap_socket(connection, server_hostname=host):
                    pass
    except socket.gaierror as exc:
        return f"{host} does not resolve{via} ({exc.strerror})"
    except TimeoutError:
        return f"timed out after {timeout:g} s{via}"
    except (OSError, ssl.SSLError) as exc:
        return f"{exc.strerror or exc}{via}"
    return None


def check_reachable(endpoints: Iterable[Endpoint], timeout: float) -> None:
    """Raise BuildError naming every endpoint that does not answer within ``timeout`` s."""
    unique = list({(e.host, e.port): e for e in reversed(list(endpoints))}.values())[::-1]
    if not unique:
        return
    pool = ThreadPoolExecutor(max_workers=len(unique), thread_name_prefix="erchub-probe")
    futures = {pool.submit(probe, endpoint, timeout): endpoint for endpoint in unique}
    # Name resolution ignores socket timeouts: the wait bounds it.
    _done, pending = wait(futures, timeout=timeout)
    pool.shutdown(wait=False, cancel_futures=True)
    problems = []
    for future, endpoint in futures.items():
        reason = f"timed out after {timeout:g} s" if future in pending else future.result()
        if reason:
            problems.append(
                f"cannot reach {endpoint.host}:{endpoint.port} ({endpoint.needed_by}): {reason}"
            )
    if problems:
        raise BuildError("; ".join(problems))


def script_urls(buildpack: BuildPack) -> list[str]:
    """URLs in the uncommented lines of the scripts a repo2docker buildpack runs in its build."""
    urls = []
    for source in buildpack.get_build_script_files():
        _context_name, path = buildpack.generate_build_context_filename(source)
        for line in Path(path).read_text("utf-8").splitlines():
            if not line.lstrip().startswith("#"):
                urls += _URL_HOST.findall(line)
    return urls
