"""The git loader's pure rules: the request, refs and their resolution, short forms of launch
links, LFS pointers, .gitmodules, the origin recorded and the host rules."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import jsonschema
import pytest

from erchub.services.exchange.git import (
    DEFAULT_REF,
    GitCommit,
    check_git_url,
    check_ref,
    git_origin,
    is_lfs_pointer,
    named,
    ref_prefixes,
    repository_key,
    resolve_ref,
    short_form_url,
    submodule_urls,
    top_folder,
)
from erchub.services.exchange.sources import (
    DEFAULT_GIT_HOSTS,
    LOAD_BODY_SCHEMA,
    LoadError,
    LoaderSettings,
    Source,
    parse_source,
)
from erchub.services.handlers.base import schema_problems

O2R_SCHEMA = Path(__file__).resolve().parents[2] / "services/schemas/metadata_o2r.schema.json"
SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER = "89abcdef0123456789abcdef0123456789abcdef"


# -- the request --------------------------------------------------------------------------------


def test_a_git_body_is_read() -> None:
    body = {"git_url": " https://github.com/o2r-project/erc.git ", "ref": "v1.0"}
    assert schema_problems(body, LOAD_BODY_SCHEMA) == []
    assert parse_source(body) == Source(
        "git_url", "https://github.com/o2r-project/erc.git", ref="v1.0"
    )
    assert parse_source({"git_url": "https://codeberg.org/a/b"}).ref is None


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"git_url": "https://h/a/b", "doi": "10.1/x"}, "exactly one"),
        ({"share_url": "https://h/a.zip", "ref": "main"}, "ref: only with git_url"),
        ({"git_url": "https://h/a/b", "filename": "a.zip"}, "filename: not with git_url"),
        ({"git_url": "ssh://git@github.com/a/b"}, "http or https"),
        ({"git_url": "https://user:token@github.com/a/b"}, "credentials"),
    ],
)
def test_bad_git_bodies_are_400(body: dict[str, object], words: str) -> None:
    with pytest.raises(LoadError) as caught:
        parse_source(body)
    assert caught.value.status == 400
    assert words in caught.value.message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/org/repo/", "https://github.com/org/repo"),
        ("https://gitlab.com/group/sub/repo.git", "https://gitlab.com/group/sub/repo.git"),
        # plain http only for a loopback host (a forge on the same machine, tests)
        ("http://127.0.0.1:8080/org/repo", "http://127.0.0.1:8080/org/repo"),
        ("http://localhost/org/repo", "http://localhost/org/repo"),
    ],
)
def test_git_urls_are_checked(url: str, expected: str) -> None:
    assert check_git_url(url) == expected


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://github.com/org/repo", "must be an https URL"),
        ("https://github.com/org/repo?tab=readme", "no query or fragment"),
        ("https://github.com/org/repo#main", "no query or fragment"),
        ("https://github.com/", "must name a repository"),
        ("git://github.com/org/repo", "http or https"),
    ],
)
def test_bad_git_urls_are_400(url: str, words: str) -> None:
    with pytest.raises(LoadError) as caught:
        check_git_url(url)
    assert caught.value.status == 400
    assert words in caught.value.message


def test_a_repository_has_one_key_whatever_its_spelling() -> None:
    key = "https://github.com/Org/Repo"
    for spelling in (
        "https://github.com/Org/Repo",
        "https://GitHub.com/Org/Repo.git",
        "https://github.com/Org/Repo/",
        "https://github.com/Org/Repo.git/",
    ):
        assert repository_key(spelling) == key
    assert repository_key("http://127.0.0.1:8080/a/b.git") == "http://127.0.0.1:8080/a/b"


@pytest.mark.parametrize("ref", ["main", "feature/x-1", "v1.0.2", "refs/heads/main", "HEAD"])
def test_refs_git_accepts_are_kept(ref: str) -> None:
    assert check_ref(ref) == ref


def test_no_ref_is_the_default_branch_and_a_sha_is_lower_case() -> None:
    assert check_ref(None) == DEFAULT_REF
    assert check_ref(SHA.upper()) == SHA


@pytest.mark.parametrize(
    "ref", ["", "a..b", "-x", "/x", "x/", "a b", "a~1", "a^", "a:b", "a@{1}", "x.lock", "a//b"]
)
def test_refs_git_refuses_are_400(ref: str) -> None:
    with pytest.raises(LoadError) as caught:
        check_ref(ref)
    assert caught.value.status == 400


# -- resolving ---------------------------------------------------------------------------------


def test_refs_resolve_in_gits_order() -> None:
    refs = {
        b"HEAD": SHA.encode(),
        b"refs/heads/main": SHA.encode(),
        b"refs/heads/both": SHA.encode(),
        b"refs/tags/both": OTHER.encode(),
        b"refs/tags/v1": b"f" * 40,
        b"refs/tags/v1^{}": OTHER.encode(),
    }
    assert resolve_ref(refs, "HEAD") == SHA
    assert resolve_ref(refs, "main") == SHA
    # a tag before a branch of the same name (gitrevisions), an annotated tag peeled
    assert resolve_ref(refs, "both") == OTHER
    assert resolve_ref(refs, "v1") == OTHER
    assert resolve_ref(refs, "refs/heads/both") == SHA
    assert resolve_ref(refs, "missing") is None
    # a full SHA names itself: the fetch finds out whether the repository has it
    assert resolve_ref({}, SHA) == SHA


def test_ls_refs_lists_only_what_the_ref_may_name() -> None:
    assert ref_prefixes("main") == [b"refs/main", b"refs/tags/main", b"refs/heads/main"]
    assert ref_prefixes(SHA) == [b"HEAD"]
    assert ref_prefixes("HEAD") == [b"HEAD"]
    assert ref_prefixes("refs/tags/v1")[0] == b"refs/tags/v1"


# -- launch links' short forms ------------------------------------------------------------------


def test_short_forms_fill_the_templates() -> None:
    hosts = DEFAULT_GIT_HOSTS
    assert short_form_url(hosts, "gh", "o2r-project", "erc-examples") == (
        "https://github.com/o2r-project/erc-examples.git"
    )
    assert short_form_url(hosts, "gl", "group/sub", "repo") == (
        "https://gitlab.com/group/sub/repo.git"
    )
    assert short_form_url(hosts, "cb", "a", "b.c") == "https://codeberg.org/a/b.c.git"


def test_bad_short_forms() -> None:
    with pytest.raises(LoadError) as unknown:
        short_form_url(DEFAULT_GIT_HOSTS, "bb", "a", "b")
    assert unknown.value.status == 404
    assert "configured: cb, gh, gl" in unknown.value.message
    for org, repo in (("..", "b"), ("a", "b?c"), ("a", ""), ("a b", "c"), ("a", "b/c")):
        with pytest.raises(LoadError) as bad:
            short_form_url(DEFAULT_GIT_HOSTS, "gh", org, repo)
        assert bad.value.status == 400


def test_the_hosts_of_short_forms_are_allowed() -> None:
    settings = LoaderSettings(allowed_hosts=())
    assert settings.allows("github.com") and settings.allows("codeberg.org")
    assert not settings.allows("example.org")
    assert not LoaderSettings(allowed_hosts=(), git_hosts={}).allows("github.com")


# -- what a tree holds ---------------------------------------------------------------------------


def test_lfs_pointers_are_told_from_files() -> None:
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 12\n"
    assert is_lfs_pointer(pointer)
    assert not is_lfs_pointer(b"x,y\n1,2\n")
    assert not is_lfs_pointer(pointer + b"x" * 2000)


def test_named_lists_ten_and_counts_the_rest() -> None:
    assert named(["b", "a"]) == "a, b"
    assert named([f"f{n:02}" for n in range(12)]).endswith("f09 and 2 more")


def test_submodule_urls_resolve_relative_ones() -> None:
    gitmodules = (
        b'[submodule "lib"]\n\tpath = vendor/lib\n\turl = ../lib.git\n'
        b'[submodule "data"]\n\tpath = data\n\turl = https://codeberg.org/x/data.git\n'
    )
    assert submodule_urls(gitmodules, "https://github.com/org/paper.git") == {
        "vendor/lib": "https://github.com/org/lib.git",
        "data": "https://codeberg.org/x/data.git",
    }
    with pytest.raises(LoadError) as caught:
        submodule_urls(b"[submodule\n", "https://h/o/r")
    assert caught.value.status == 400


def test_the_archive_has_one_top_folder() -> None:
    assert top_folder("https://github.com/org/paper.git", SHA) == f"paper-{SHA[:12]}"
    assert top_folder("https://h/org/.hidden", SHA) == f"hidden-{SHA[:12]}"


# -- the origin recorded -------------------------------------------------------------------------


def test_the_origin_names_repository_ref_and_commit() -> None:
    moment = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    resolved = GitCommit("https://github.com/org/paper", "https://github.com/org/paper.git",
                         "main", SHA)  # fmt: skip
    added = git_origin(resolved, now=moment)
    assert added == {
        "origin": {
            "kind": "git_url",
            "git_url": "https://github.com/org/paper",
            "ref": "main",
            "commit": SHA,
            "url": "https://github.com/org/paper.git",
            "loaded": "2026-01-02T03:04:05Z",
        }
    }
    schema = json.loads(O2R_SCHEMA.read_text())
    jsonschema.validate({"origin": git_origin(resolved, submodules=True)["origin"]},
                        {**schema, "required": []})  # fmt: skip
