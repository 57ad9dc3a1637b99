"""Compendia from git repositories, against a real git smart-HTTP server on 127.0.0.1 (git's
http-backend, :mod:`tests.integration.git_server`) with repositories the tests create with
dulwich: branch, tag and SHA refs, the same commit reused, another commit a new version, and
every refusal with its status (404 unknown ref or commit, 403 host not allowed and never
contacted, 413 too large or too many files, 502 time-out, 400 LFS pointers and submodules).

The loader's domain functions run as the API calls them (:mod:`erchub.services.exchange.loading`),
with a real SQLite store and data directory; no Docker, no hub.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dulwich import porcelain

from erchub.services.compendia.files import compendium_path
from erchub.services.exchange.git import repository_key
from erchub.services.exchange.loading import load_git_compendium, resolve_git
from erchub.services.exchange.sources import LoadError, LoaderSettings, parse_source
from erchub.services.store import Store, open_store
from tests.integration.git_server import AUTHOR, GitServer, Repository

USER = "ada"
#: the tests' limits: small, so that 413 and time-outs are cheap to provoke
DOWNLOAD_LIMIT = 2 * 1024**2
TIMEOUT = 3.0


def settings(**changes: Any) -> LoaderSettings:
    values: dict[str, Any] = {
        "allowed_hosts": ("127.0.0.1",),
        "download_limit": DOWNLOAD_LIMIT,
        "timeout": TIMEOUT,
        "git_hosts": {},
    }
    return LoaderSettings(**{**values, **changes})


def refusal(load: Callable[[], object], status: int, words: str) -> str:
    """The message of the LoadError that ``load`` raises, which must have ``status`` and say
    ``words``."""
    with pytest.raises(LoadError) as caught:
        load()
    assert caught.value.status == status, caught.value.message
    assert words in caught.value.message, caught.value.message
    return caught.value.message


@dataclass
class Site:
    """A git server with its repositories, and the service's store and data directory."""

    server: GitServer
    store: Store
    data_dir: Path

    def repository(self, path: str) -> Repository:
        return Repository(self.server, path)

    def load(
        self, body: dict[str, Any], loader: LoaderSettings | None = None, user: str = USER
    ) -> tuple[str, bool]:
        """What POST /compendium does with a git body: parse, resolve, load (or reuse)."""
        return asyncio.run(self.load_async(body, loader, user))

    async def load_async(
        self, body: dict[str, Any], loader: LoaderSettings | None = None, user: str = USER
    ) -> tuple[str, bool]:
        chosen = loader or settings()
        resolved = await resolve_git(chosen, parse_source(body))
        return await load_git_compendium(chosen, self.store, str(self.data_dir), resolved, user)

    def refused(
        self, body: dict[str, Any], status: int, words: str, loader: LoaderSettings | None = None
    ) -> str:
        return refusal(lambda: self.load(body, loader), status, words)

    def origin(self, compendium_id: str) -> dict[str, Any]:
        record = self.store.get_compendium(compendium_id)
        assert record is not None
        return dict(record.metadata["origin"])

    def files(self, compendium_id: str) -> Path:
        return compendium_path(self.data_dir, compendium_id)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    root = tmp_path / "served"
    root.mkdir()
    store = open_store(f"sqlite:///{tmp_path / 'store' / 'erchub.sqlite'}")
    try:
        with GitServer(root) as server:
            yield Site(server, store, tmp_path / "data")
    finally:
        store.close()


# -- refs ---------------------------------------------------------------------------------------


def test_branch_tag_and_sha_load_their_commits(site: Site) -> None:
    repository = site.repository("org/paper")
    first = repository.commit_example(**{"data/values.csv": "x\n1\n"})
    porcelain.tag_create(repository.repo, b"v1.0", author=AUTHOR, message=b"v1", annotated=True)
    second = repository.commit({"data/values.csv": "x\n2\n"})

    by_branch, reused = site.load({"git_url": repository.url, "ref": "main"})
    assert not reused
    origin = site.origin(by_branch)
    assert origin["kind"] == "git_url"
    assert origin["git_url"] == repository_key(repository.url)
    assert (origin["ref"], origin["commit"], origin["url"]) == ("main", second, repository.url)
    root = site.files(by_branch)
    assert (root / "data" / "values.csv").read_text() == "x\n2\n"
    assert (root / "main.ipynb").is_file() and (root / "erc.yml").is_file()
    # the file and the store agree
    stored = json.loads((root / ".erc" / "metadata_o2r_1.json").read_text())
    assert stored["origin"] == origin

    # an annotated tag is peeled to its commit; the SHA of an older commit is loaded as such
    by_tag, _ = site.load({"git_url": repository.url, "ref": "v1.0"})
    assert site.origin(by_tag)["commit"] == first
    assert (site.files(by_tag) / "data" / "values.csv").read_text() == "x\n1\n"
    by_sha, reused = site.load({"git_url": repository.url + ".git", "ref": first.upper()})
    # the same commit of the same repository (the URL with .git names it too): reused
    assert (by_sha, reused) == (by_tag, True)
    # no ref: the default branch
    default, reused = site.load({"git_url": repository.url})
    assert (default, reused) == (by_branch, True)


def test_same_commit_loads_once_and_a_new_commit_is_a_new_version(site: Site) -> None:
    repository = site.repository("org/versions")
    repository.commit_example()
    body = {"git_url": repository.url, "ref": "main"}
    first, reused = site.load(body)
    assert not reused
    before = len(site.server.requests)
    again, reused = site.load(body)
    assert (again, reused) == (first, True)
    # the second load resolved the ref (the advertisement and ls-refs) and fetched nothing
    assert [method for method, _ in site.server.requests[before:]] == ["GET", "POST"]

    newer = repository.commit({"README.md": "# newer\n"})
    second, reused = site.load(body)
    assert not reused and second != first
    record = site.store.get_compendium(second)
    assert record is not None
    assert record.metadata["origin"]["commit"] == newer
    assert record.metadata["is_new_version_of"]["id"] == first
    # another user's load of that commit reuses nothing of ada's candidate: a compendium of
    # their own, no version of ada's
    other, reused = site.load(body, user="grace")
    assert not reused and other not in (first, second)
    other_record = site.store.get_compendium(other)
    assert other_record is not None and "is_new_version_of" not in other_record.metadata


def test_parallel_loads_of_one_commit_make_one_compendium(site: Site) -> None:
    repository = site.repository("org/parallel")
    repository.commit_example()
    body = {"git_url": repository.url}

    async def both() -> list[tuple[str, bool]]:
        return list(await asyncio.gather(site.load_async(body), site.load_async(body)))

    results = asyncio.run(both())
    assert {compendium_id for compendium_id, _ in results} == {results[0][0]}
    assert sorted(reused for _, reused in results) == [False, True]


# -- refusals -------------------------------------------------------------------------------------


def test_unknown_refs_and_repositories_are_404(site: Site) -> None:
    repository = site.repository("org/known")
    repository.commit_example()
    site.refused(
        {"git_url": repository.url, "ref": "no-such-branch"},
        404,
        "'no-such-branch' is no branch or tag",
    )
    site.refused({"git_url": repository.url, "ref": "1" * 40}, 404, f"commit {'1' * 40} is not in")
    site.refused({"git_url": repository.url, "ref": "1234abc"}, 404, "full 40-character SHA")
    site.refused({"git_url": site.server.url_of("org/missing")}, 404, "no git repository")
    compendia = site.data_dir / "compendia"
    assert not compendia.exists() or not any(compendia.iterdir())


def test_a_host_not_allowed_is_403_and_never_contacted(site: Site) -> None:
    repository = site.repository("org/elsewhere")
    repository.commit_example()
    message = site.refused(
        {"git_url": repository.url},
        403,
        "host is not allowed: 127.0.0.1",
        loader=settings(allowed_hosts=("example.org",)),
    )
    assert "127.0.0.1" in message
    assert site.server.requests == []


def test_redirects_are_followed_to_allowed_hosts_only(site: Site) -> None:
    repository = site.repository("org/moved")
    commit = repository.commit_example()
    # a renamed repository: the forge redirects its old name
    site.server.redirects["/org/old-name"] = site.server.url_of("org/moved")
    compendium_id, _ = site.load({"git_url": site.server.url_of("org/old-name")})
    assert site.origin(compendium_id)["commit"] == commit
    # to a host the loader does not allow: 403, that host never asked
    site.server.redirects["/org/away"] = f"http://localhost:{site.server.port}/org/moved"
    before = len(site.server.requests)
    site.refused(
        {"git_url": site.server.url_of("org/away")},
        403,
        "host is not allowed: localhost (redirected there)",
    )
    assert [path for _, path in site.server.requests[before:]] == [
        "/org/away/info/refs?service=git-upload-pack"
    ]


def test_an_oversized_repository_is_413(site: Site) -> None:
    repository = site.repository("org/large")
    # random bytes do not compress: the pack is as large as the file
    repository.commit_example(**{"data/noise.bin": os.urandom(DOWNLOAD_LIMIT + 512 * 1024)})
    site.refused(
        {"git_url": repository.url}, 413, f"more than the loader's limit of {DOWNLOAD_LIMIT} bytes"
    )


def test_too_many_files_are_413(site: Site) -> None:
    repository = site.repository("org/many")
    repository.commit_example(**{f"data/{number}.txt": str(number) for number in range(30)})
    site.refused(
        {"git_url": repository.url}, 413, "more than 20 files", loader=settings(git_max_files=20)
    )


def test_a_slow_server_is_502_within_the_time_out(site: Site) -> None:
    repository = site.repository("org/slow")
    repository.commit_example()
    site.server.delay = TIMEOUT + 5
    started = time.monotonic()
    site.refused({"git_url": repository.url}, 502, "time-out")
    elapsed = time.monotonic() - started
    # the time-out, and the grace the loop gives the fetching thread, at most
    assert elapsed < TIMEOUT + 3, elapsed


def test_lfs_pointers_are_refused_naming_the_files(site: Site) -> None:
    repository = site.repository("org/lfs")
    pointer = (
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
        "size 12345\n"
    )
    repository.commit_example(**{"data/big.csv": pointer, "data/small.csv": "x\n1\n"})
    message = site.refused({"git_url": repository.url}, 400, "Git LFS")
    assert "data/big.csv" in message and "small.csv" not in message


def test_submodules_are_refused_unless_allowed(site: Site) -> None:
    library = site.repository("org/library")
    library_commit = library.commit({"lib/helpers.py": "ANSWER = 42\n"})
    repository = site.repository("org/with-submodule")
    repository.commit_example()
    repository.add_gitlink("vendor/library", library_commit, "../library")
    site.refused(
        {"git_url": repository.url},
        400,
        "submodules, which this service does not fetch: vendor/library",
    )

    compendium_id, _ = site.load({"git_url": repository.url}, settings(git_submodules=True))
    root = site.files(compendium_id)
    assert (root / "vendor" / "library" / "lib" / "helpers.py").read_text() == "ANSWER = 42\n"
    assert site.origin(compendium_id)["submodules"] is True


def test_git_is_not_installed_into_the_compendium(site: Site) -> None:
    """The commit's files only: no .git folder, no left-over download below uploads/."""
    repository = site.repository("org/clean")
    repository.commit_example()
    compendium_id, _ = site.load({"git_url": repository.url})
    root = site.files(compendium_id)
    assert not (root / ".git").exists()
    uploads = site.data_dir / "uploads"
    assert not uploads.exists() or not [p for p in uploads.iterdir() if p.name.startswith("load-")]
