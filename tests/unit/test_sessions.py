"""Sessions: what a launch asks for (user_options) and the hub's names for it."""

from __future__ import annotations

from typing import Any

import pytest
from jupyterhub.slugs import is_valid_safe_slug

from erchub.sessions import (
    WORKSPACE,
    InvalidSessionOptions,
    SessionKind,
    SessionTarget,
    lab_url_for,
    parse_user_options,
    server_name_for,
)

#: a named server (sessions of compendia are named servers)
NAMED = "erc-abc"

IDS = [
    "2fyhXS",
    "abc",
    "a",
    "Z",
    "0",
    "9lives",
    "123456",
    "ABCDEF",
    "mixedCase_with-Parts",
    "___",
    "---",
    "-_-_-",
    "_leading",
    "trailing-",
    "double--hyphen__under",
    "x" * 64,
    "A1" * 32,
    "9" * 64,
    "a-" * 32,
    "erc-already-prefixed",
    # not ids the service makes, but the name must stay valid whatever it is given
    "",
    "../../etc/passwd",
    "with space",
    "!!!@@@###",
    "a.b.c",
    "ÄÖÜ-unicode-ümlaut",
    "\x00\x01",
]


@pytest.mark.parametrize("target_id", IDS)
def test_server_names_are_valid_jupyterhub_slugs(target_id: str) -> None:
    name = server_name_for(target_id)
    assert is_valid_safe_slug(name), name
    assert name.startswith("erc-")
    assert server_name_for(target_id) == name, "stable"


def test_server_names_carry_the_readable_id() -> None:
    assert server_name_for("2fyhXS").startswith("erc-2fyhxs-")
    assert server_name_for("my_erc-1").startswith("erc-my-erc-1-")


@pytest.mark.parametrize(
    "ids",
    [
        ("abc", "ABC", "Abc", "aBc", "abC"),
        ("2fyhXS", "2fyhxs", "2FYHXS"),
        ("a_b", "a-b", "a--b", "a__b"),
        ("x" * 64, "x" * 63 + "X", "x" * 63 + "y"),
    ],
)
def test_server_names_are_distinct_for_distinct_ids(ids: tuple[str, ...]) -> None:
    names = [server_name_for(i) for i in ids]
    assert len(set(names)) == len(ids), names


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"compendium": "2fyhXS"}, SessionTarget(SessionKind.COMPENDIUM, "2fyhXS")),
        ({"job": "j-1_a"}, SessionTarget(SessionKind.JOB, "j-1_a")),
        ({"compendium": "x" * 64}, SessionTarget(SessionKind.COMPENDIUM, "x" * 64)),
    ],
)
def test_parse_user_options_accepts_one_id(options: dict[str, Any], expected: Any) -> None:
    assert parse_user_options(options, NAMED) == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (None, "must be an object"),
        ([], "must be an object"),
        ("compendium=abc", "must be an object"),
        ([("compendium", "abc")], "must be an object"),
        ({}, "exactly one compendium or job"),
        ({"compendium": "abc", "job": "def"}, "exactly one compendium or job"),
        ({"image": "evil/image"}, "unknown user_options: image"),
        ({"compendium": "abc", "cmd": "sh"}, "unknown user_options: cmd"),
        ({"compendium": "../etc"}, "user_options.compendium is not a valid id: '../etc'"),
        ({"compendium": "a/b"}, "user_options.compendium is not a valid id"),
        ({"job": "..%2Fetc"}, "user_options.job is not a valid id"),
        ({"compendium": ""}, "user_options.compendium is not a valid id"),
        ({"compendium": "x" * 65}, "user_options.compendium is not a valid id"),
        ({"compendium": 5}, "user_options.compendium is not a valid id: '5'"),
        ({"compendium": None}, "user_options.compendium is not a valid id"),
        ({"job": ["abc"]}, "user_options.job is not a valid id"),
        ({"compendium": {"id": "abc"}}, "user_options.compendium is not a valid id"),
    ],
)
def test_parse_user_options_rejects_with_a_clear_message(options: Any, message: str) -> None:
    with pytest.raises(InvalidSessionOptions) as raised:
        parse_user_options(options, NAMED)
    assert message in str(raised.value)


@pytest.mark.parametrize("options", [{}, None])
def test_the_default_server_is_the_workspace(options: Any) -> None:
    assert parse_user_options(options, "") == WORKSPACE
    assert WORKSPACE.kind is SessionKind.WORKSPACE


@pytest.mark.parametrize("options", [{"compendium": "abc"}, {"job": "j1"}, {"image": "x"}])
def test_the_workspace_opens_no_compendium(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidSessionOptions, match=r"your workspace .* opens no compendium"):
        parse_user_options(options, "")


def test_a_named_server_without_options_points_to_the_workspace() -> None:
    with pytest.raises(InvalidSessionOptions, match="Start my workspace"):
        parse_user_options({}, NAMED)


def test_parse_user_options_rejects_a_trailing_newline() -> None:
    with pytest.raises(InvalidSessionOptions, match="is not a valid id"):
        parse_user_options({"compendium": "abc\n"}, NAMED)


def test_rejection_messages_stay_short() -> None:
    with pytest.raises(InvalidSessionOptions) as raised:
        parse_user_options({"compendium": "x" * 10_000}, NAMED)
    assert len(str(raised.value)) < 200
    many = {f"key{i}": i for i in range(50)}
    with pytest.raises(InvalidSessionOptions) as raised:
        parse_user_options(many, NAMED)
    assert len(str(raised.value)) < 200


@pytest.mark.parametrize(
    ("notebook", "url"),
    [
        ("main.ipynb", "/lab/tree/main.ipynb"),
        ("analysis/main.ipynb", "/lab/tree/analysis/main.ipynb"),
        ("/analysis/main.ipynb", "/lab/tree/analysis/main.ipynb"),
        ("my analysis/the main.ipynb", "/lab/tree/my%20analysis/the%20main.ipynb"),
        ("a/b/c #1?.ipynb", "/lab/tree/a/b/c%20%231%3F.ipynb"),
    ],
)
def test_lab_url_for(notebook: str, url: str) -> None:
    assert lab_url_for(notebook) == url
