"""JSON from strangers, parsed with a bound on its nesting.

Python's parser recurses: text nested a few thousand levels deep raises RecursionError, and
text nested a few hundred levels deep parses but then breaks every recursive consumer (schema
validation, templates, the store's encoders). :func:`loads` refuses both with
:class:`TooDeep`, a ValueError with a one-line message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

#: levels of arrays and objects a document may nest (the o2r metadata needs about 6)
MAX_DEPTH = 64


class TooDeep(ValueError):
    """A JSON document nested deeper than its reader accepts."""


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` that raises :class:`TooDeep` for nesting past ``max_depth`` levels."""
    try:
        document = json.loads(text)
    except RecursionError:
        raise TooDeep(f"nested deeper than {max_depth} levels") from None
    if depth(document) > max_depth:
        raise TooDeep(f"nested deeper than {max_depth} levels")
    return document


def depth(document: Any) -> int:
    """Levels of arrays and objects in ``document`` (0 for a scalar), counted without
    recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(document, 0)]
    while pending:
        value, level = pending.pop()
        children: Iterable[Any]
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, level + 1)
        pending.extend((child, level + 1) for child in children)
    return deepest
