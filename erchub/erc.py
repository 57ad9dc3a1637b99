"""The ERC configuration file ``erc.yml``: model, validation and rendering.

Follows the o2r ERC specification v1 (https://o2r.info/erc-spec/spec/) where it speaks:

``spec_version``
    Required, must be ``1`` (the integer or the string ``"1"``).
``id``
    Required, a URI after RFC 3986 (:data:`URI_PATTERN`, e.g. ``doi:10.5281/zenodo.1``,
    ``https://example.org/erc/1``, ``urn:uuid:...``) or a UUID version 4
    (:data:`UUID4_PATTERN`, any letter case).
``main``
    The main notebook, a relative path inside the compendium ending in ``.ipynb`` (erchub runs
    Jupyter notebooks only). The spec lets an erc.yml leave it out; :func:`parse_erc` then
    needs ``default_main`` (``erchub.workspace`` detects it), :func:`load_erc` reports it missing.
``display``
    The HTML rendering of the executed main notebook, a relative path ending in ``.html`` or
    ``.htm``; defaults to the main file's stem plus ``.html`` beside it (``main.html``).
    Main and display MUST NOT be the same file.
``licenses``
    Required mapping with ``code``, ``data``, ``text`` and ``metadata`` (o2r's ``md`` is
    accepted as an alias, giving both is an error), and optional ``uibindings``. Each value is
    a license identifier (or license text) or a mapping of relative path to license identifier.
    :data:`LICENSE_NOT_SPECIFIED` (SPDX's ``NOASSERTION``) marks a license the author still
    has to choose.
``execution``
    Optional: ``network`` (bool, default false), ``timeout`` (positive integer, seconds),
    ``memory`` (Docker size: an integer number of bytes, or a string of digits with an optional
    unit ``b``, ``k``, ``m`` or ``g``, at least Docker's minimum of 6m). The spec's ``cmd``,
    ``image``, ``manifest``, ``mount_point``, ``load`` and ``run`` are accepted and ignored:
    erchub builds the runtime with repo2docker and runs the main notebook itself.
``check``
    Optional settings for comparing outputs: ``volatile_patterns`` (regular expressions that
    must compile), ``volatile_cells`` (cell ids), ``image_tolerance`` (a number in [0, 1]),
    ``normalise`` (the list of the checker's built-in normalisers to apply, each a
    :class:`Normaliser` name, each once; ``[]`` applies none; left out, the checker's defaults
    apply: ``memory_addresses``, ``tqdm_timings``, ``time_magics``, see :mod:`erchub.checker`).
``ui_bindings``
    Optional list of mappings, each binding one notebook parameter to a widget of the ERC
    panel: ``parameter`` (required, a name in the notebook's parameters cell), ``notebook``
    (relative path of a ``*.ipynb``, default ``main``), ``label`` and ``help`` (non-empty
    strings), ``widget`` (``slider``, ``number``, ``text``, ``checkbox`` or ``select``), ``min``,
    ``max`` and ``step`` (finite numbers, min below max, step above 0; for a slider, which needs
    min and max, or a number widget), ``choices`` (a non-empty list of values, for a select,
    which needs them; not together with min, max or step), ``cells`` (cell ids or tags whose
    outputs show the result). One parameter of one notebook is bound once. Whether the
    parameter exists and the hints fit its type is told by the notebook
    (:func:`erchub.parameters.parameter_specs`). The bindings are kept as given.
``structure``
    The spec's optional note on the workspace convention; accepted and ignored.

Any other key, at the top level or inside ``licenses``, ``execution`` or ``check``, is an error.
Every error is an :class:`~erchub.errors.InvalidERC` with a one-line message naming the file,
the field path and the rule, e.g. ``erc.yml: execution.timeout: must be a positive integer
(seconds), got -5``. :func:`render_erc` writes the canonical form (``metadata``, not ``md``;
ignored keys are not written).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from erchub import safefs
from erchub.errors import InvalidERC

ERC_FILENAME = "erc.yml"
SPEC_VERSION = 1

#: UUID version 4 (RFC 4122): version nibble 4, variant 10xx.
UUID4_PATTERN = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.IGNORECASE
)
#: An RFC 3986 URI: a scheme, a colon, then unreserved, reserved or percent-encoded characters.
URI_PATTERN = re.compile(
    r"[A-Za-z][A-Za-z0-9+.\-]*:(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+"
)
#: Docker's memory size syntax as erchub accepts it: digits and an optional unit.
MEMORY_PATTERN = re.compile(r"(?P<number>[0-9]+)(?P<unit>[bkmg]?)", re.IGNORECASE)
MEMORY_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
#: Docker refuses containers with less memory than this.
MEMORY_MINIMUM_BYTES = 6 * 1024**2

#: Placeholder for a license the author has not chosen yet (SPDX's "no assertion").
LICENSE_NOT_SPECIFIED = "NOASSERTION"
#: The license kinds every erc.yml names, in canonical order.
LICENSE_KINDS = ("code", "data", "text", "metadata")
OPTIONAL_LICENSE_KINDS = ("uibindings",)
LICENSE_ALIASES = {"md": "metadata"}

TOP_LEVEL_KEYS = (
    "spec_version",
    "id",
    "main",
    "display",
    "licenses",
    "execution",
    "check",
    "ui_bindings",
)
#: Keys the spec defines that erchub accepts but does not use.
IGNORED_TOP_LEVEL_KEYS = ("structure",)
EXECUTION_KEYS = ("network", "timeout", "memory")
IGNORED_EXECUTION_KEYS = ("cmd", "image", "manifest", "mount_point", "load", "run")
CHECK_KEYS = ("volatile_patterns", "volatile_cells", "image_tolerance", "normalise")
UI_BINDING_KEYS = (
    "parameter",
    "notebook",
    "label",
    "help",
    "widget",
    "min",
    "max",
    "step",
    "choices",
    "cells",
)
#: the widgets a binding may ask for; the first two take min, max and step, select takes choices
UI_WIDGETS = ("slider", "number", "text", "checkbox", "select")
NUMBER_WIDGETS = UI_WIDGETS[:2]
CHOICE_WIDGET = "select"
DISPLAY_SUFFIXES = (".html", ".htm")


@dataclass(frozen=True)
class ExecutionSettings:
    """How the main notebook runs: network access, time limit, memory limit."""

    network: bool = False
    #: wall-clock limit in seconds, None for the operator's default
    timeout: int | None = None
    #: Docker memory size (``"2g"``, ``"512m"``, ``"1073741824"``), None for the default
    memory: str | None = None

    @property
    def memory_bytes(self) -> int | None:
        """The memory limit in bytes, None when unset."""
        return None if self.memory is None else parse_memory(self.memory)


def parse_memory(size: str) -> int:
    """Bytes of a Docker memory size: ``"4g"``, ``"512m"``, ``"1073741824"``."""
    match = MEMORY_PATTERN.fullmatch(size.strip())
    if match is None:
        raise ValueError(f"not a memory size: {size!r}")
    return int(match["number"]) * MEMORY_UNITS[match["unit"].lower()]


class Normaliser(StrEnum):
    """The output check's built-in normalisers, by the names erc.yml's ``check.normalise`` uses.

    Listed in the order the checker applies them. What each one hides, its patterns, its
    placeholder and whether it is on by default: ``erchub.normalising.NORMALISERS``.
    """

    #: IPython's ``%time`` and ``%timeit`` reports
    TIME_MAGICS = "time_magics"
    #: tqdm's elapsed and remaining time and rate
    TQDM_TIMINGS = "tqdm_timings"
    #: dates with a time of day, in printed output only
    TIMESTAMPS = "timestamps"
    #: numbers with a time unit, in printed output only
    DURATIONS = "durations"
    #: ``0x7f3a12bc45d0`` as in ``<object at 0x7f3a12bc45d0>``
    MEMORY_ADDRESSES = "memory_addresses"


@dataclass(frozen=True)
class CheckSettings:
    """What the output check treats as volatile, and how far images may differ."""

    volatile_patterns: tuple[str, ...] = ()
    volatile_cells: tuple[str, ...] = ()
    #: fraction of differing pixels (0 to 1) tolerated, None for the checker's default
    image_tolerance: float | None = None
    #: the built-in normalisers to apply, in the order given; None for the checker's default
    normalise: tuple[Normaliser, ...] | None = None


@dataclass(frozen=True)
class ErcConfig:
    """The validated content of an erc.yml."""

    id: str
    main: str
    display: str
    #: kind (code, data, text, metadata, uibindings) -> license id or {path: license id}
    licenses: dict[str, Any]
    spec_version: int = SPEC_VERSION
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    check: CheckSettings = field(default_factory=CheckSettings)
    ui_bindings: tuple[dict[str, Any], ...] = ()


def new_erc_id() -> str:
    """A fresh compendium id (a random UUID version 4)."""
    return str(uuid.uuid4())


def default_display(main: str) -> str:
    """The display file for a main file: same folder and stem, suffix ``.html``."""
    return str(PurePosixPath(main).with_suffix(".html"))


class _Fields:
    """Reads and checks the fields of one erc.yml, raising errors that name them."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, path: str, rule: str, value: object = None, *, show: bool = True) -> InvalidERC:
        got = f", got {_show(value)}" if show else ""
        return InvalidERC(f"{self.source}: {path}: {rule}{got}")

    def mapping(self, value: object, path: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(path, "must be a mapping", value)
        for key in value:
            if not isinstance(key, str):
                raise self.error(path, "keys must be strings", key)
        return value

    def known_keys(self, value: Mapping[str, Any], path: str, allowed: tuple[str, ...]) -> None:
        for key in value:
            if key not in allowed:
                where = f"{path}.{key}" if path else key
                raise self.error(where, f"unknown key (allowed: {', '.join(allowed)})", show=False)

    def text(self, value: object, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(path, "must be a non-empty string", value)
        return value.strip()

    def relative_path(self, value: object, path: str) -> str:
        text = self.text(value, path)
        pure = PurePosixPath(text)
        if pure.is_absolute() or ".." in pure.parts or "\\" in text:
            raise self.error(path, "must be a relative path inside the compendium", value)
        return str(pure)


def parse_erc(
    data: object, source: str = ERC_FILENAME, *, default_main: str | None = None
) -> ErcConfig:
    """Validate the content of an erc.yml (already parsed from YAML) into an :class:`ErcConfig`.

    ``default_main`` is used when the file names no ``main``; without it, ``main`` is required.
    Raises :class:`InvalidERC` naming ``source``, the field path and the rule.
    """
    fields = _Fields(source)
    if data is None:
        raise InvalidERC(f"{source}: is empty, expected a mapping with spec_version, id, licenses")
    top = fields.mapping(data, "(top level)")
    fields.known_keys(top, "", TOP_LEVEL_KEYS + IGNORED_TOP_LEVEL_KEYS)
    for required in ("spec_version", "id", "licenses"):
        if required not in top:
            raise fields.error(required, "required", show=False)

    spec_version = top["spec_version"]
    if not (
        (type(spec_version) is int and spec_version == SPEC_VERSION)
        or spec_version == str(SPEC_VERSION)
    ):
        raise fields.error("spec_version", f"must be {SPEC_VERSION}", spec_version)

    erc_id = fields.text(top["id"], "id")
    if not (UUID4_PATTERN.fullmatch(erc_id) or URI_PATTERN.fullmatch(erc_id)):
        raise fields.error("id", "must be a UUID version 4 or a URI (RFC 3986)", top["id"])

    if "main" in top:
        main = fields.relative_path(top["main"], "main")
    elif default_main is not None:
        main = default_main
    else:
        raise fields.error("main", "required (the main notebook, e.g. main.ipynb)", show=False)
    if PurePosixPath(main).suffix.lower() != ".ipynb":
        raise fields.error("main", "must be a Jupyter notebook (*.ipynb)", main)

    display = (
        fields.relative_path(top["display"], "display")
        if "display" in top
        else default_display(main)
    )
    if display == main:
        raise fields.error("display", "must not be the same file as main", display)
    if PurePosixPath(display).suffix.lower() not in DISPLAY_SUFFIXES:
        raise fields.error("display", "must be an HTML file (*.html)", display)

    return ErcConfig(
        id=erc_id,
        main=main,
        display=display,
        licenses=_parse_licenses(fields, top["licenses"]),
        spec_version=SPEC_VERSION,
        execution=_parse_execution(fields, top.get("execution")),
        check=_parse_check(fields, top.get("check")),
        ui_bindings=_parse_ui_bindings(fields, top.get("ui_bindings"), main),
    )


def _parse_licenses(fields: _Fields, value: object) -> dict[str, Any]:
    given = fields.mapping(value, "licenses")
    fields.known_keys(
        given, "licenses", LICENSE_KINDS + tuple(LICENSE_ALIASES) + OPTIONAL_LICENSE_KINDS
    )
    licenses: dict[str, Any] = {}
    for alias, kind in LICENSE_ALIASES.items():
        if alias in given and kind in given:
            raise fields.error("licenses", f"give either {alias} or {kind}, not both", show=False)
    for key, license_value in given.items():
        kind = LICENSE_ALIASES.get(key, key)
        path = f"licenses.{key}"
        if isinstance(license_value, Mapping):
            per_file = fields.mapping(license_value, path)
            if not per_file:
                raise fields.error(path, "must name at least one file", show=False)
            licenses[kind] = {
                fields.relative_path(file, path): fields.text(file_license, f"{path}.{file}")
                for file, file_license in per_file.items()
            }
        else:
            if not isinstance(license_value, str) or not license_value.strip():
                raise fields.error(
                    path,
                    "must be a license identifier or a mapping of file to license",
                    license_value,
                )
            licenses[kind] = license_value.strip()
    for kind in LICENSE_KINDS:
        if kind not in licenses:
            raise fields.error(f"licenses.{kind}", "required", show=False)
    order = LICENSE_KINDS + OPTIONAL_LICENSE_KINDS
    return {kind: licenses[kind] for kind in order if kind in licenses}


def _parse_execution(fields: _Fields, value: object) -> ExecutionSettings:
    if value is None:
        return ExecutionSettings()
    given = fields.mapping(value, "execution")
    fields.known_keys(given, "execution", EXECUTION_KEYS + IGNORED_EXECUTION_KEYS)

    network = given.get("network", False)
    if not isinstance(network, bool):
        raise fields.error("execution.network", "must be true or false", network)

    timeout = given.get("timeout")
    if timeout is not None and (
        not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0
    ):
        raise fields.error("execution.timeout", "must be a positive integer (seconds)", timeout)

    memory = given.get("memory")
    if memory is not None:
        memory = _parse_memory(fields, memory)
    return ExecutionSettings(network=network, timeout=timeout, memory=memory)


def _parse_memory(fields: _Fields, value: object) -> str:
    rule = 'must be a size like "2g" or "512m", or a number of bytes'
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip().lower()
    else:
        raise fields.error("execution.memory", rule, value)
    match = MEMORY_PATTERN.fullmatch(text)
    if match is None:
        raise fields.error("execution.memory", rule, value)
    if int(match["number"]) * MEMORY_UNITS[match["unit"]] < MEMORY_MINIMUM_BYTES:
        raise fields.error("execution.memory", "must be at least 6m (Docker's minimum)", value)
    return text


def _parse_check(fields: _Fields, value: object) -> CheckSettings:
    if value is None:
        return CheckSettings()
    given = fields.mapping(value, "check")
    fields.known_keys(given, "check", CHECK_KEYS)

    patterns = _string_list(fields, given.get("volatile_patterns", []), "check.volatile_patterns")
    for index, pattern in enumerate(patterns):
        try:
            re.compile(pattern)
        except re.error as error:
            raise fields.error(
                f"check.volatile_patterns[{index}]",
                f"not a valid regular expression ({error})",
                pattern,
            ) from None

    cells = _string_list(fields, given.get("volatile_cells", []), "check.volatile_cells")

    tolerance = given.get("image_tolerance")
    if tolerance is not None:
        if (
            not isinstance(tolerance, int | float)
            or isinstance(tolerance, bool)
            or not 0 <= tolerance <= 1
        ):
            raise fields.error("check.image_tolerance", "must be a number from 0 to 1", tolerance)
        tolerance = float(tolerance)

    normalise = None
    if "normalise" in given:
        normalise = _parse_normalise(fields, given["normalise"])
    return CheckSettings(
        volatile_patterns=tuple(patterns),
        volatile_cells=tuple(cells),
        image_tolerance=tolerance,
        normalise=normalise,
    )


def _parse_normalise(fields: _Fields, value: object) -> tuple[Normaliser, ...]:
    names = _string_list(fields, value, "check.normalise")
    known = ", ".join(Normaliser)
    normalisers: list[Normaliser] = []
    for index, name in enumerate(names):
        path = f"check.normalise[{index}]"
        try:
            normaliser = Normaliser(name)
        except ValueError:
            raise fields.error(
                path, f"unknown normaliser {_show(name)}; known: {known}", show=False
            ) from None
        if normaliser in normalisers:
            earlier = normalisers.index(normaliser)
            raise fields.error(
                path, f"{_show(name)} is listed already (check.normalise[{earlier}])", show=False
            )
        normalisers.append(normaliser)
    return tuple(normalisers)


def _string_list(fields: _Fields, value: object, path: str) -> list[str]:
    if not isinstance(value, list):
        raise fields.error(path, "must be a list of strings", value)
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise fields.error(f"{path}[{index}]", "must be a non-empty string", item)
    return value


def _parse_ui_bindings(fields: _Fields, value: object, main: str) -> tuple[dict[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise fields.error("ui_bindings", "must be a list of mappings", value)
    bound: dict[tuple[str, str], int] = {}
    for index, binding in enumerate(value):
        path = f"ui_bindings[{index}]"
        given = fields.mapping(binding, path)
        fields.known_keys(given, path, UI_BINDING_KEYS)
        if "parameter" not in given:
            raise fields.error(f"{path}.parameter", "required", show=False)
        parameter = fields.text(given["parameter"], f"{path}.parameter")
        notebook = main
        if "notebook" in given:
            notebook = fields.relative_path(given["notebook"], f"{path}.notebook")
            if PurePosixPath(notebook).suffix.lower() != ".ipynb":
                raise fields.error(
                    f"{path}.notebook", "must be a Jupyter notebook (*.ipynb)", notebook
                )
        for key in ("label", "help"):
            if key in given:
                fields.text(given[key], f"{path}.{key}")
        _check_ui_binding_widget(fields, given, path)
        if "cells" in given:
            _string_list(fields, given["cells"], f"{path}.cells")
        earlier = bound.setdefault((notebook, parameter), index)
        if earlier != index:
            raise fields.error(
                f"{path}.parameter",
                f"{parameter!r} of {notebook} is bound already by ui_bindings[{earlier}]",
                show=False,
            )
    return tuple(dict(binding) for binding in value)


def _check_ui_binding_widget(fields: _Fields, given: Mapping[str, Any], path: str) -> None:
    """The widget hints of one binding: a known widget, numbers for min, max and step, a
    non-empty list of choices, and only the hints that fit the widget."""
    widget = given.get("widget")
    if widget is not None and widget not in UI_WIDGETS:
        raise fields.error(f"{path}.widget", f"must be one of {', '.join(UI_WIDGETS)}", widget)
    bounds = [key for key in ("min", "max", "step") if key in given]
    for key in bounds:
        number = given[key]
        if (
            not isinstance(number, int | float)
            or isinstance(number, bool)
            or not math.isfinite(number)
        ):
            raise fields.error(f"{path}.{key}", "must be a number", number)
    if "step" in given and given["step"] <= 0:
        raise fields.error(f"{path}.step", "must be greater than 0", given["step"])
    if "min" in given and "max" in given and given["min"] >= given["max"]:
        raise fields.error(
            f"{path}.max", f"must be greater than min ({_show(given['min'])})", given["max"]
        )
    if "choices" in given:
        choices = given["choices"]
        if not isinstance(choices, list) or not choices:
            raise fields.error(f"{path}.choices", "must be a non-empty list of values", choices)
        if bounds:
            raise fields.error(
                f"{path}.choices",
                f"give either choices or {'/'.join(bounds)}, not both",
                show=False,
            )
    if bounds and widget not in (None, *NUMBER_WIDGETS):
        raise fields.error(
            f"{path}.{bounds[0]}", f"only for a {' or '.join(NUMBER_WIDGETS)} widget", show=False
        )
    if "choices" in given and widget not in (None, CHOICE_WIDGET):
        raise fields.error(f"{path}.choices", f"only for a {CHOICE_WIDGET} widget", show=False)
    if widget == CHOICE_WIDGET and "choices" not in given:
        raise fields.error(f"{path}.choices", f"required for a {CHOICE_WIDGET} widget", show=False)
    if widget == "slider" and not ("min" in given and "max" in given):
        raise fields.error(f"{path}.widget", "a slider needs min and max", show=False)


def _show(value: object) -> str:
    """A value as a short, readable part of a one-line message."""
    if value is None or isinstance(value, bool):
        text = {None: "null", True: "true", False: "false"}[value]
    else:
        text = " ".join((repr(value) if isinstance(value, str) else str(value)).split())
    return text if len(text) <= 60 else text[:57] + "..."


def read_erc_data(path: Path) -> object:
    """The parsed YAML of an erc.yml file (its first document; None when it has none).

    Raises :class:`InvalidERC` for text that is not UTF-8 without a byte-order mark, or not YAML,
    naming the file and the line.
    """
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raise InvalidERC(f"{ERC_FILENAME}: must not start with a byte-order mark (BOM)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidERC(f"{ERC_FILENAME}: not UTF-8 text (byte {error.start})") from None
    try:
        # The spec reads the first document of the file.
        return next(yaml.safe_load_all(text), None)
    except yaml.YAMLError as error:
        raise InvalidERC(f"{ERC_FILENAME}: {_describe_yaml_error(error)}") from None
    except RecursionError:
        raise InvalidERC(f"{ERC_FILENAME}: nested too deeply to be an erc.yml") from None


def _describe_yaml_error(error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {error.problem}"
    return f"invalid YAML: {error}"


def load_erc(directory: Path) -> ErcConfig | None:
    """The validated ``erc.yml`` in ``directory``, None when the directory has none."""
    path = erc_path(directory)
    if not path.is_file():
        return None
    return parse_erc(read_erc_data(path), ERC_FILENAME)


def erc_path(directory: Path) -> Path:
    """Where ``directory``'s erc.yml really is (it may be a link inside the compendium);
    InvalidERC when it leads outside."""
    try:
        return safefs.resolve_inside(directory, ERC_FILENAME)
    except safefs.OutsideRoot:
        raise InvalidERC(f"{ERC_FILENAME}: leads outside the compendium") from None


def erc_to_data(cfg: ErcConfig) -> dict[str, Any]:
    """The canonical erc.yml content of ``cfg`` as plain data (what :func:`render_erc` writes)."""
    data: dict[str, Any] = {
        "spec_version": cfg.spec_version,
        "id": cfg.id,
        "main": cfg.main,
        "display": cfg.display,
        "licenses": dict(cfg.licenses),
    }
    execution: dict[str, Any] = {"network": cfg.execution.network}
    if cfg.execution.timeout is not None:
        execution["timeout"] = cfg.execution.timeout
    if cfg.execution.memory is not None:
        execution["memory"] = cfg.execution.memory
    data["execution"] = execution
    check: dict[str, Any] = {}
    if cfg.check.volatile_patterns:
        check["volatile_patterns"] = list(cfg.check.volatile_patterns)
    if cfg.check.volatile_cells:
        check["volatile_cells"] = list(cfg.check.volatile_cells)
    if cfg.check.image_tolerance is not None:
        check["image_tolerance"] = cfg.check.image_tolerance
    if cfg.check.normalise is not None:
        check["normalise"] = [normaliser.value for normaliser in cfg.check.normalise]
    if check:
        data["check"] = check
    if cfg.ui_bindings:
        data["ui_bindings"] = [dict(binding) for binding in cfg.ui_bindings]
    return data


def render_erc(cfg: ErcConfig) -> str:
    """``cfg`` as erc.yml text; ``parse_erc(yaml.safe_load(render_erc(cfg))) == cfg``."""
    header = "# Executable Research Compendium configuration (o2r ERC spec v1)\n"
    body = yaml.safe_dump(
        erc_to_data(cfg), sort_keys=False, allow_unicode=True, default_flow_style=False
    )
    return header + body
