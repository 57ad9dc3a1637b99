"""Interactive sessions of ERCs: what a launch asks for, and the hub's names for it (pure logic).

Every user has two kinds of JupyterLab servers. Their **workspace** is the default server (no
name, no ``user_options``): a JupyterLab of their own on a persistent volume, in the authoring
image, where they write notebooks and publish them. A **session** is a named server, one per ERC
and user. Its ``user_options`` name the compendium to open, or a job (its compendium, with the
job's executed notebook opened instead of the main notebook). A compendium may be opened
through a review link (``link``: the session sees it as the link shows it, and ends with the
link); a review guest (:mod:`erchub.reviewers`) opens nothing else. JupyterHub 6 requires server
names to be safe slugs: 1-30 characters, lower-case ASCII letters, digits and single hyphens,
starting with a letter. Compendium ids are case-sensitive, so the name carries a hash of the
exact id besides its lower-cased form.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import quote

from erchub.errors import ErchubError
from erchub.reviewers import guest_link_digest, is_link_id, link_digest

#: what a compendium or job id may look like (the service's ids: letters, digits, - and _)
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
SERVER_NAME_PREFIX = "erc-"
#: JupyterHub 6's longest server name
MAX_SERVER_NAME = 30
_HASH_CHARS = 6
_SLUG_UNSAFE = re.compile(r"[^a-z0-9]+")


class InvalidSessionOptions(ErchubError):
    """user_options that name nothing a session can open."""


class SessionKind(str, Enum):
    """What a server opens."""

    #: the user's own workspace (the default server): no compendium
    WORKSPACE = "workspace"
    #: a compendium's working copy, on its main notebook
    COMPENDIUM = "compendium"
    #: a job's compendium, on the job's executed notebook
    JOB = "job"


@dataclass(frozen=True)
class SessionTarget:
    """What a server opens: its kind, the id of the compendium or job (``""`` for the
    workspace), and the review link it is opened through (``""``: none)."""

    kind: SessionKind
    id: str
    link: str = ""


#: the target of every default server
WORKSPACE = SessionTarget(SessionKind.WORKSPACE, "")


def parse_user_options(options: Any, server_name: str = "") -> SessionTarget:
    """What a spawn of the server ``server_name`` (``""``: the default server) opens.

    The default server is the user's workspace and takes no options; a named server names
    exactly one compendium or job. Anything else is InvalidSessionOptions, said so that the
    user knows what to do instead.
    """
    if not server_name:
        if options:
            raise InvalidSessionOptions(
                "your workspace (the default server) opens no compendium: launch a compendium "
                "from its page or a launch link, which opens it in a server of its own"
            )
        return WORKSPACE
    if not isinstance(options, dict):
        raise InvalidSessionOptions("user_options must be an object naming a compendium or a job")
    named = {key: options[key] for key in ("compendium", "job") if key in options}
    unknown = sorted(set(options) - {"compendium", "job", "link"})
    if unknown:
        raise InvalidSessionOptions(
            f"unknown user_options: {', '.join(map(str, unknown[:5]))} (expected compendium or "
            "job, optionally link)"
        )
    if len(named) != 1:
        raise InvalidSessionOptions(
            f"server {server_name!r} opens a compendium, and user_options must name exactly one "
            "compendium or job (your own JupyterLab is your workspace: Start my workspace on "
            "the home page)"
        )
    ((kind, value),) = named.items()
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InvalidSessionOptions(f"user_options.{kind} is not a valid id: {str(value)[:80]!r}")
    link = options.get("link", "")
    if link and kind != SessionKind.COMPENDIUM:
        raise InvalidSessionOptions("a review link opens a compendium, not a job")
    if link and not is_link_id(link):
        raise InvalidSessionOptions("user_options.link is not a review link's id")
    return SessionTarget(SessionKind(kind), value, link)


def check_guest_target(username: str, target: SessionTarget) -> None:
    """A review guest opens the compendium of their own link and nothing else (no workspace,
    no other compendium, no job): InvalidSessionOptions otherwise. Anyone else passes."""
    digest = guest_link_digest(username)
    if digest is None:
        return
    if target.kind is not SessionKind.COMPENDIUM or not target.link:
        raise InvalidSessionOptions(
            "as a guest of a review link you can open only the compendium of that link: "
            "open the link again"
        )
    if link_digest(target.link) != digest:
        raise InvalidSessionOptions("this guest belongs to another review link")


def server_name_for(target_id: str) -> str:
    """The named server of a compendium: ``erc-<lower-cased id>-<hash of the exact id>``."""
    digest = hashlib.sha256(target_id.encode()).hexdigest()[:_HASH_CHARS]
    room = MAX_SERVER_NAME - len(SERVER_NAME_PREFIX) - _HASH_CHARS - 1
    slug = _SLUG_UNSAFE.sub("-", target_id.lower()).strip("-")[:room].strip("-")
    return f"{SERVER_NAME_PREFIX}{slug}-{digest}" if slug else f"{SERVER_NAME_PREFIX}{digest}"


def lab_url_for(notebook: str) -> str:
    """The JupyterLab path (relative to the server) that opens ``notebook``."""
    return "/lab/tree/" + quote(notebook.lstrip("/"))
