"""Text normalisation for the ERC ``check`` step (:mod:`erchub.checker`): before outputs are
compared, what changes from run to run is evened out or replaced by a placeholder, so that equal
results compare equal, and every replacement is counted by the normaliser that made it.

Text is normalised in three layers, the same way on both sides:

1. Layout, always: line endings; lines a carriage return overwrote (a progress bar's redraws:
   only what a frontend finally shows counts); runs of spaces and tabs, trailing spaces, runs
   of blank lines; in SVG and HTML also matplotlib's ``<metadata>`` and generated ids
   (renumbered in order of appearance). These lay text out, they replace no value, so they are
   neither switchable nor reported.
2. The ERC's own ``check.volatile_patterns``: every match becomes ``<volatile>``.
3. The built-in normalisers (:data:`NORMALISERS`, named by :class:`Normaliser`), switched by
   erc.yml's ``check.normalise``, the complete list of those to apply. Each replaces what it
   matches with a placeholder the diffs show.

Every replacement of layers 2 and 3 is counted (:attr:`erchub.checker.OutputComparison.normalised`,
:attr:`erchub.checker.CheckResult.normalised`): the JSON summary and the report say which
normaliser hid how many places in which cell.

The defaults hide nothing a notebook computes. On by default are the normalisers whose matches
are never results: ``memory_addresses`` (where CPython put an object), ``tqdm_timings`` (a
progress bar's elapsed and remaining time and rate; its counts and postfix stay compared) and
``time_magics`` (the lines IPython's ``%time`` and ``%timeit`` print). ``durations`` and
``timestamps`` are off by default: a printed ``mean response: 0.50 s`` or a date in a printed
table is a result as often as a log line, and a pattern cannot tell which. An author whose
notebook prints timings switches them on; even then they apply to stream output (stdout,
stderr) only, never to results (``text/plain``, HTML, JSON, SVG) or error messages, where a
changed value must fail the check. Anything else volatile goes into ``volatile_patterns`` or
``volatile_cells``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from erchub.erc import Normaliser
from erchub.errors import InvalidERC

VOLATILE_PLACEHOLDER = "<volatile>"
TIMESTAMP_PLACEHOLDER = "<timestamp>"
DURATION_PLACEHOLDER = "<duration>"
ADDRESS_PLACEHOLDER = "0x…"

# Carriage returns overwrite the line, as a progress bar redraws itself; the number of redraws
# depends on timing, so only what a frontend finally shows is compared (JupyterLab's rule).
_OVERWRITTEN_BY_CARRIAGE_RETURN = re.compile(r"^.*\r+", re.MULTILINE)
_INLINE_WHITESPACE = re.compile(r"[^\S\n]+")
_BLANK_LINE_RUN = re.compile(r"\n{3,}")
# matplotlib's SVG metadata carries the render date and the library version.
_SVG_METADATA = re.compile(r"<metadata>.*?</metadata>", re.DOTALL)
_ID_ATTRIBUTE = re.compile(r"\bid=[\"']([\w-]+)[\"']")
_ID_TOKEN = re.compile(r"[\w-]+")


@dataclass(frozen=True)
class NormaliserRule:
    """One built-in normaliser: what it hides, where, and with which placeholder."""

    normaliser: Normaliser
    #: what it hides, in a few words
    description: str
    #: (pattern, replacement) pairs applied in order; every replacement shows ``token``
    substitutions: tuple[tuple[re.Pattern[str], str], ...]
    #: what the normalised text shows in place of a match ("" when the line is dropped)
    token: str
    #: applied when erc.yml's ``check.normalise`` is left out
    default: bool
    #: applied to stream output (stdout, stderr) only, never to results, markup or errors
    streams_only: bool = False


def _rule(
    normaliser: Normaliser,
    description: str,
    token: str,
    *substitutions: tuple[str, str],
    default: bool,
    streams_only: bool = False,
) -> NormaliserRule:
    compiled = tuple(
        (re.compile(pattern, re.MULTILINE), replacement) for pattern, replacement in substitutions
    )
    return NormaliserRule(normaliser, description, compiled, token, default, streams_only)


#: The built-in normalisers, in the order they are applied (:class:`Normaliser`'s order).
NORMALISERS: Mapping[Normaliser, NormaliserRule] = MappingProxyType(
    {
        rule.normaliser: rule
        for rule in (
            _rule(
                Normaliser.TIME_MAGICS,
                "the timings IPython's %time and %timeit print",
                DURATION_PLACEHOLDER,
                (r"^(CPU times|Wall time): .*$", rf"\1: {DURATION_PLACEHOLDER}"),
                (
                    r"^.+? (?:±|\+-) .+? per loop \(mean (?:±|\+-) std\. dev\. of [\d,]+ runs?, "
                    r"[\d,]+ loops? each\)$",
                    f"{DURATION_PLACEHOLDER} per loop",
                ),
                # IPython prints these only when a run happened to be slow.
                (
                    r"^(?:The slowest run took [\d.]+ times longer than the fastest\..*"
                    r"|Compiler time: .*|Compiler : .*|Parser   : .*)(?:\n|\Z)",
                    "",
                ),
                default=True,
            ),
            _rule(
                Normaliser.TQDM_TIMINGS,
                "tqdm's elapsed time, remaining time and rate",
                DURATION_PLACEHOLDER,
                # "[elapsed<remaining, rate" of "[00:01<00:02, 32.15it/s, loss=0.1]"; the postfix
                # after the rate is the notebook's own and stays.
                (
                    r"\[\d+(?::\d+)+<(?:\d+(?::\d+)+|\?)(?:, ?[^,\]\n]*/[^,\]\n]*)?(?=[,\]])",
                    f"[{DURATION_PLACEHOLDER}",
                ),
                default=True,
            ),
            _rule(
                Normaliser.TIMESTAMPS,
                "dates with a time of day in printed output",
                TIMESTAMP_PLACEHOLDER,
                (
                    r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
                    r"(?:Z\b|[+-]\d{2}:?\d{2}\b)?",
                    TIMESTAMP_PLACEHOLDER,
                ),
                default=False,
                streams_only=True,
            ),
            _rule(
                Normaliser.DURATIONS,
                "numbers with a time unit in printed output",
                DURATION_PLACEHOLDER,
                # A bare "s" needs a decimal number or a space before it: "the 1990s" stays.
                (
                    r"(?<![\w.])(?:"
                    r"\d+(?:\.\d+)?\s?(?:ns|[µμu]s|ms|mins?|minutes?|secs?|seconds?)"
                    r"|\d+\.\d+\s?s"
                    r"|\d+\ss"
                    r")(?!\w)",
                    DURATION_PLACEHOLDER,
                ),
                default=False,
                streams_only=True,
            ),
            _rule(
                Normaliser.MEMORY_ADDRESSES,
                "memory addresses such as 0x7f3a12bc45d0",
                ADDRESS_PLACEHOLDER,
                (r"\b0x[0-9a-fA-F]{8,16}\b", ADDRESS_PLACEHOLDER),
                default=True,
            ),
        )
    }
)
#: what is applied when erc.yml's ``check.normalise`` is left out
DEFAULT_NORMALISERS = tuple(name for name, rule in NORMALISERS.items() if rule.default)


def normalisers(names: Collection[str]) -> tuple[Normaliser, ...]:
    """``names`` as normalisers in the order they are applied; InvalidERC names an unknown one."""
    chosen = set()
    for position, name in enumerate(names):
        try:
            chosen.add(Normaliser(name))
        except ValueError:
            raise InvalidERC(
                f"check option normalise[{position}]: unknown normaliser {name!r}; "
                f"known: {', '.join(Normaliser)}"
            ) from None
    return tuple(normaliser for normaliser in NORMALISERS if normaliser in chosen)


def volatile_pattern_name(position: int) -> str:
    """How results name the ERC's volatile pattern at ``position`` among normalisers."""
    return f"volatile_patterns[{position}]"


def compile_volatile_patterns(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    """Compile the ERC's volatile patterns, naming the one that is not a regular expression."""
    compiled = []
    for position, pattern in enumerate(patterns):
        try:
            compiled.append(re.compile(pattern, re.MULTILINE))
        except re.error as error:
            raise InvalidERC(
                f"check option volatile_patterns[{position}] {pattern!r} is not a valid "
                f"regular expression: {error}"
            ) from error
    return compiled


class TextNormaliser:
    """Replaces what changes from run to run, so equal results compare equal, and counts the
    places each normaliser replaced."""

    def __init__(
        self, volatile_patterns: Sequence[re.Pattern[str]], normalisers: Sequence[Normaliser]
    ) -> None:
        self.volatile_patterns = volatile_patterns
        self.rules = [NORMALISERS[normaliser] for normaliser in normalisers]

    def __call__(self, text: str, *, stream: bool = False) -> tuple[str, dict[str, int]]:
        """The normalised ``text`` (``stream``: printed to stdout or stderr) and the places
        each normaliser replaced."""
        places: dict[str, int] = {}
        text = text.replace("\r\n", "\n")
        text = _OVERWRITTEN_BY_CARRIAGE_RETURN.sub("", text)
        # The ERC's own patterns are written against the output as printed, so they go first.
        for position, pattern in enumerate(self.volatile_patterns):
            text, count = pattern.subn(VOLATILE_PLACEHOLDER, text)
            if count:
                places[volatile_pattern_name(position)] = count
        for rule in self.rules:
            if rule.streams_only and not stream:
                continue
            for pattern, replacement in rule.substitutions:
                text, count = pattern.subn(replacement, text)
                if count:
                    name = rule.normaliser.value
                    places[name] = places.get(name, 0) + count
        lines = [_INLINE_WHITESPACE.sub(" ", line).rstrip() for line in text.split("\n")]
        return _BLANK_LINE_RUN.sub("\n\n", "\n".join(lines)).strip("\n"), places

    def markup(self, markup: str) -> tuple[str, dict[str, int]]:
        """Generated ids (matplotlib's hashed marker and clip-path ids, pandas' table uuids)
        differ on every run; they are renumbered in order of appearance, references too."""
        markup = _SVG_METADATA.sub("", markup)
        canonical: dict[str, str] = {}
        for identifier in _ID_ATTRIBUTE.findall(markup):
            canonical.setdefault(identifier, f"@id{len(canonical)}")
        markup = _ID_TOKEN.sub(lambda match: canonical.get(match[0], match[0]), markup)
        return self(markup)
