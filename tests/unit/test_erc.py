"""erc.yml: parsing, every validation rule, rendering and loading."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from erchub.erc import (
    ERC_FILENAME,
    UUID4_PATTERN,
    CheckSettings,
    ErcConfig,
    ExecutionSettings,
    Normaliser,
    load_erc,
    new_erc_id,
    parse_erc,
    render_erc,
)
from erchub.errors import InvalidERC

ERC_ID = "b9b0099e-9f8d-4a33-8acf-cb0c062efaec"
LICENSES = {"code": "MIT", "data": "ODbL-1.0", "text": "CC-BY-4.0", "metadata": "CC0-1.0"}


def minimal(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "spec_version": 1,
        "id": ERC_ID,
        "main": "main.ipynb",
        "display": "display.html",
        "licenses": dict(LICENSES),
    }
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return data


def error_of(data: object, **kwargs: Any) -> str:
    with pytest.raises(InvalidERC) as raised:
        parse_erc(data, **kwargs)
    message = str(raised.value)
    assert "\n" not in message
    return message


# --- valid files ---------------------------------------------------------------------------


def test_minimal_file_parses_with_defaults() -> None:
    cfg = parse_erc(minimal())
    assert cfg == ErcConfig(
        id=ERC_ID, main="main.ipynb", display="display.html", licenses=LICENSES, spec_version=1
    )
    assert cfg.execution == ExecutionSettings(network=False, timeout=None, memory=None)
    assert cfg.check == CheckSettings()
    assert cfg.ui_bindings == ()


@pytest.mark.parametrize("version", [1, "1"])
def test_spec_version_accepts_int_and_string(version: object) -> None:
    assert parse_erc(minimal(spec_version=version)).spec_version == 1


@pytest.mark.parametrize(
    "erc_id",
    [
        ERC_ID,
        ERC_ID.upper(),
        "doi:10.5281/zenodo.1234567",
        "https://o2r.uni-muenster.de/api/v1/compendium/abc12",
        "urn:uuid:b9b0099e-9f8d-4a33-8acf-cb0c062efaec",
        "https://example.org/erc%20one",
    ],
)
def test_id_accepts_uuid4_and_uri(erc_id: str) -> None:
    assert parse_erc(minimal(id=erc_id)).id == erc_id


def test_display_defaults_to_main_stem_html() -> None:
    cfg = parse_erc(minimal(main="analysis/paper.ipynb", display=None))
    assert cfg.display == "analysis/paper.html"


def test_main_may_come_from_detection() -> None:
    cfg = parse_erc(minimal(main=None, display=None), default_main="study.ipynb")
    assert (cfg.main, cfg.display) == ("study.ipynb", "study.html")


def test_paths_are_normalised() -> None:
    cfg = parse_erc(minimal(main="./nb//main.ipynb", display="./out.html"))
    assert (cfg.main, cfg.display) == ("nb/main.ipynb", "out.html")


def test_md_is_an_alias_of_metadata_and_uibindings_is_optional() -> None:
    licenses = {"code": "MIT", "data": "ODbL-1.0", "text": "CC0-1.0", "md": "CC0-1.0"}
    licenses["uibindings"] = "CC0-1.0"
    cfg = parse_erc(minimal(licenses=licenses))
    assert cfg.licenses == {
        "code": "MIT",
        "data": "ODbL-1.0",
        "text": "CC0-1.0",
        "metadata": "CC0-1.0",
        "uibindings": "CC0-1.0",
    }


def test_licenses_per_file() -> None:
    licenses = dict(LICENSES, code={"my_code.py": "GPL-3.0", "lib/other.bin": "MIT"})
    cfg = parse_erc(minimal(licenses=licenses))
    assert cfg.licenses["code"] == {"my_code.py": "GPL-3.0", "lib/other.bin": "MIT"}


def test_execution_settings() -> None:
    execution = {"network": True, "timeout": 600, "memory": "2G", "cmd": ["python run.py"]}
    cfg = parse_erc(minimal(execution=execution))
    assert cfg.execution == ExecutionSettings(network=True, timeout=600, memory="2g")
    assert cfg.execution.memory_bytes == 2 * 1024**3


def test_execution_memory_as_bytes() -> None:
    cfg = parse_erc(minimal(execution={"memory": 1073741824}))
    assert cfg.execution.memory == "1073741824"
    assert cfg.execution.memory_bytes == 1073741824
    assert ExecutionSettings().memory_bytes is None


def test_spec_fields_erchub_does_not_use_are_accepted() -> None:
    execution = {"cmd": "Rscript run.R", "image": "image.tar", "manifest": "Dockerfile"}
    data = minimal(execution=execution, structure={"convention": "https://example.org"})
    assert parse_erc(data).execution == ExecutionSettings()


def test_check_settings() -> None:
    check = {
        "volatile_patterns": [r"\d{4}-\d{2}-\d{2}", "0x[0-9a-f]+"],
        "volatile_cells": ["cell-1", "timing"],
        "image_tolerance": 0,
    }
    cfg = parse_erc(minimal(check=check))
    assert cfg.check == CheckSettings(
        volatile_patterns=(r"\d{4}-\d{2}-\d{2}", "0x[0-9a-f]+"),
        volatile_cells=("cell-1", "timing"),
        image_tolerance=0.0,
    )
    assert isinstance(cfg.check.image_tolerance, float)
    assert cfg.check.normalise is None


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (
            ["memory_addresses", "durations"],
            (Normaliser.MEMORY_ADDRESSES, Normaliser.DURATIONS),
        ),
        ([], ()),
    ],
)
def test_check_normalise_names_the_normalisers_to_apply(names: list[str], expected: tuple) -> None:
    cfg = parse_erc(minimal(check={"normalise": names}))
    assert cfg.check.normalise == expected
    assert yaml.safe_load(render_erc(cfg))["check"] == {"normalise": names}


def test_ui_bindings_are_kept_as_given() -> None:
    bindings = [
        {
            "parameter": "frequency",
            "notebook": "main.ipynb",
            "label": "Frequency (Hz)",
            "help": "Cycles per second",
            "widget": "slider",
            "min": 0.5,
            "max": 5,
            "step": 0.5,
            "cells": ["plot"],
        },
        {"parameter": "colour", "choices": ["red", "blue"]},
        {"parameter": "frequency", "notebook": "sub/other.ipynb", "widget": "number", "min": 0},
        {"parameter": "flag", "widget": "checkbox"},
        {"parameter": "points", "min": 1, "max": 2},
    ]
    assert parse_erc(minimal(ui_bindings=bindings)).ui_bindings == tuple(bindings)


# --- errors, one per rule ------------------------------------------------------------------


def test_timeout_error_names_field_rule_and_value() -> None:
    message = error_of(minimal(execution={"timeout": -5}))
    assert message == "erc.yml: execution.timeout: must be a positive integer (seconds), got -5"


def test_error_names_the_given_source() -> None:
    assert error_of(minimal(id=5), source="upload/erc.yml").startswith("upload/erc.yml: id:")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, "erc.yml: is empty"),
        (["a", "b"], "erc.yml: (top level): must be a mapping, got ['a', 'b']"),
        (minimal(version=1), "erc.yml: version: unknown key (allowed: spec_version, id,"),
        (minimal(spec_version=None), "erc.yml: spec_version: required"),
        (minimal(spec_version=2), "erc.yml: spec_version: must be 1, got 2"),
        (minimal(spec_version=True), "erc.yml: spec_version: must be 1, got true"),
        (minimal(spec_version=1.0), "erc.yml: spec_version: must be 1, got 1.0"),
        (minimal(id=None), "erc.yml: id: required"),
        (minimal(id=""), "erc.yml: id: must be a non-empty string, got ''"),
        (minimal(id=42), "erc.yml: id: must be a non-empty string, got 42"),
        (minimal(id="my compendium"), "erc.yml: id: must be a UUID version 4 or a URI"),
        (
            minimal(id="b9b0099e-9f8d-1a33-8acf-cb0c062efaec"),
            "erc.yml: id: must be a UUID version 4 or a URI",
        ),
        (minimal(main=None), "erc.yml: main: required"),
        (minimal(main="/abs/main.ipynb"), "erc.yml: main: must be a relative path inside"),
        (minimal(main="../main.ipynb"), "erc.yml: main: must be a relative path inside"),
        (minimal(main="paper.Rmd"), "erc.yml: main: must be a Jupyter notebook (*.ipynb)"),
        (minimal(display="main.ipynb"), "erc.yml: display: must not be the same file as main"),
        (minimal(display="paper.pdf"), "erc.yml: display: must be an HTML file (*.html)"),
        (minimal(licenses=None), "erc.yml: licenses: required"),
        (minimal(licenses="MIT"), "erc.yml: licenses: must be a mapping, got 'MIT'"),
        (
            minimal(licenses={k: v for k, v in LICENSES.items() if k != "data"}),
            "erc.yml: licenses.data: required",
        ),
        (
            minimal(licenses=dict(LICENSES, md="CC0-1.0")),
            "erc.yml: licenses: give either md or metadata, not both",
        ),
        (minimal(licenses=dict(LICENSES, fonts="OFL")), "erc.yml: licenses.fonts: unknown key"),
        (
            minimal(licenses=dict(LICENSES, code=3)),
            "erc.yml: licenses.code: must be a license identifier or a mapping of file to license",
        ),
        (minimal(licenses=dict(LICENSES, code={})), "erc.yml: licenses.code: must name at least"),
        (
            minimal(licenses=dict(LICENSES, code={"../x.py": "MIT"})),
            "erc.yml: licenses.code: must be a relative path inside the compendium, got '../x.py'",
        ),
        (
            minimal(licenses=dict(LICENSES, code={"x.py": ""})),
            "erc.yml: licenses.code.x.py: must be a non-empty string",
        ),
        (minimal(execution=["cmd"]), "erc.yml: execution: must be a mapping"),
        (minimal(execution={"network": "no"}), "erc.yml: execution.network: must be true or false"),
        (minimal(execution={"timeout": 0}), "erc.yml: execution.timeout: must be a positive"),
        (minimal(execution={"timeout": True}), "erc.yml: execution.timeout: must be a positive"),
        (minimal(execution={"timeout": 1.5}), "erc.yml: execution.timeout: must be a positive"),
        (minimal(execution={"memory": "2gb"}), "erc.yml: execution.memory: must be a size"),
        (minimal(execution={"memory": [1]}), "erc.yml: execution.memory: must be a size"),
        (minimal(execution={"memory": "1m"}), "erc.yml: execution.memory: must be at least 6m"),
        (minimal(execution={"gpu": True}), "erc.yml: execution.gpu: unknown key"),
        (minimal(check={"volatile_patterns": "x"}), "erc.yml: check.volatile_patterns: must be"),
        (
            minimal(check={"volatile_patterns": ["ok", "("]}),
            "erc.yml: check.volatile_patterns[1]: not a valid regular expression",
        ),
        (
            minimal(check={"volatile_cells": ["a", 3]}),
            "erc.yml: check.volatile_cells[1]: must be a non-empty string, got 3",
        ),
        (
            minimal(check={"image_tolerance": 1.5}),
            "erc.yml: check.image_tolerance: must be a number from 0 to 1, got 1.5",
        ),
        (minimal(check={"image_tolerance": "0.1"}), "erc.yml: check.image_tolerance: must be"),
        (minimal(check={"image_tolerance": False}), "erc.yml: check.image_tolerance: must be"),
        (minimal(check={"tolerance": 0.1}), "erc.yml: check.tolerance: unknown key"),
        (
            minimal(check={"normalise": ["durations", "seconds"]}),
            "erc.yml: check.normalise[1]: unknown normaliser 'seconds'; known: time_magics, "
            "tqdm_timings, timestamps, durations, memory_addresses",
        ),
        (
            minimal(check={"normalise": ["durations", "timestamps", "durations"]}),
            "erc.yml: check.normalise[2]: 'durations' is listed already (check.normalise[0])",
        ),
        (
            minimal(check={"normalise": "durations"}),
            "erc.yml: check.normalise: must be a list of strings, got 'durations'",
        ),
        (
            minimal(check={"normalise": None}),
            "erc.yml: check.normalise: must be a list of strings, got null",
        ),
        (
            minimal(check={"normalise": [True]}),
            "erc.yml: check.normalise[0]: must be a non-empty string, got true",
        ),
        (minimal(ui_bindings={"a": 1}), "erc.yml: ui_bindings: must be a list of mappings"),
        (
            minimal(ui_bindings=[{"parameter": "n"}, "b"]),
            "erc.yml: ui_bindings[1]: must be a mapping",
        ),
    ],
)
def test_each_rule_has_an_error(data: object, expected: str) -> None:
    assert error_of(data).startswith(expected)


def test_long_values_are_shortened_in_messages() -> None:
    message = error_of(minimal(id="x" * 500))
    assert len(message) < 200
    assert message.endswith("...")


# --- rendering -----------------------------------------------------------------------------


def full_config() -> ErcConfig:
    return ErcConfig(
        id="doi:10.5281/zenodo.1",
        main="nb/main.ipynb",
        display="nb/main.html",
        licenses={
            "code": {"a.py": "MIT"},
            "data": "ODbL-1.0",
            "text": "CC-BY-4.0",
            "metadata": "CC0-1.0",
            "uibindings": "CC0-1.0",
        },
        execution=ExecutionSettings(network=True, timeout=60, memory="512m"),
        check=CheckSettings(
            volatile_patterns=(r"\d+ ms",),
            volatile_cells=("c1",),
            image_tolerance=0.05,
            normalise=(Normaliser.TQDM_TIMINGS, Normaliser.TIMESTAMPS),
        ),
        ui_bindings=({"parameter": "n", "widget": "slider", "min": 1, "max": 9},),
    )


@pytest.mark.parametrize(
    "cfg",
    [
        full_config(),
        ErcConfig(id=new_erc_id(), main="main.ipynb", display="main.html", licenses=LICENSES),
    ],
)
def test_render_round_trips(cfg: ErcConfig) -> None:
    text = render_erc(cfg)
    assert text.startswith("#")
    assert parse_erc(yaml.safe_load(text)) == cfg


def test_render_writes_canonical_license_names() -> None:
    cfg = parse_erc(minimal(licenses={"code": "MIT", "data": "x", "text": "y", "md": "z"}))
    licenses = yaml.safe_load(render_erc(cfg))["licenses"]
    assert list(licenses) == ["code", "data", "text", "metadata"]


def test_render_does_not_change_the_config() -> None:
    cfg = full_config()
    before = copy.deepcopy(cfg)
    render_erc(cfg)
    assert cfg == before


# --- ids and files -------------------------------------------------------------------------


def test_new_erc_id_is_a_fresh_uuid4() -> None:
    first, second = new_erc_id(), new_erc_id()
    assert UUID4_PATTERN.fullmatch(first)
    assert first != second


def test_load_erc_without_file_is_none(tmp_path: Path) -> None:
    assert load_erc(tmp_path) is None


def test_load_erc_reads_and_validates(tmp_path: Path) -> None:
    (tmp_path / ERC_FILENAME).write_text(yaml.safe_dump(minimal()), encoding="utf-8")
    cfg = load_erc(tmp_path)
    assert cfg is not None
    assert cfg.main == "main.ipynb"


def test_load_erc_reads_the_first_document(tmp_path: Path) -> None:
    text = yaml.safe_dump(minimal()) + "---\nnot: [valid\n"
    (tmp_path / ERC_FILENAME).write_text(text, encoding="utf-8")
    cfg = load_erc(tmp_path)
    assert cfg is not None
    assert cfg.id == ERC_ID


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / ERC_FILENAME).write_text(
        f"spec_version: 1\nid: {ERC_ID}\nlicenses: [code\n", encoding="utf-8"
    )
    with pytest.raises(InvalidERC, match=r"^erc\.yml: invalid YAML at line 4, column 1: "):
        load_erc(tmp_path)


def test_empty_file_is_invalid(tmp_path: Path) -> None:
    (tmp_path / ERC_FILENAME).write_text("", encoding="utf-8")
    with pytest.raises(InvalidERC, match=r"erc.yml: is empty"):
        load_erc(tmp_path)


def test_byte_order_mark_is_refused(tmp_path: Path) -> None:
    (tmp_path / ERC_FILENAME).write_bytes(b"\xef\xbb\xbf" + yaml.safe_dump(minimal()).encode())
    with pytest.raises(InvalidERC, match=r"byte-order mark"):
        load_erc(tmp_path)


def test_non_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / ERC_FILENAME).write_bytes(b"id: caf\xe9\n")
    with pytest.raises(InvalidERC, match=r"erc\.yml: not UTF-8 text \(byte 7\)"):
        load_erc(tmp_path)


def test_load_erc_requires_main(tmp_path: Path) -> None:
    (tmp_path / ERC_FILENAME).write_text(yaml.safe_dump(minimal(main=None)), encoding="utf-8")
    with pytest.raises(InvalidERC, match=r"erc.yml: main: required"):
        load_erc(tmp_path)


def binding_error(*bindings: object) -> str:
    return error_of(minimal(ui_bindings=list(bindings)))


@pytest.mark.parametrize(
    ("binding", "expected"),
    [
        ({"label": "x"}, "erc.yml: ui_bindings[0].parameter: required"),
        ({"parameter": ""}, "erc.yml: ui_bindings[0].parameter: must be a non-empty string"),
        ({"parameter": 3}, "erc.yml: ui_bindings[0].parameter: must be a non-empty string, got 3"),
        ({"parameter": "n", "id": "b1"}, "erc.yml: ui_bindings[0].id: unknown key (allowed:"),
        (
            {"parameter": "n", "notebook": "../x.ipynb"},
            "erc.yml: ui_bindings[0].notebook: must be a relative path inside the compendium",
        ),
        (
            {"parameter": "n", "notebook": "x.py"},
            "erc.yml: ui_bindings[0].notebook: must be a Jupyter notebook (*.ipynb), got 'x.py'",
        ),
        ({"parameter": "n", "label": ""}, "erc.yml: ui_bindings[0].label: must be a non-empty"),
        ({"parameter": "n", "help": ["a"]}, "erc.yml: ui_bindings[0].help: must be a non-empty"),
        (
            {"parameter": "n", "widget": "dial"},
            "erc.yml: ui_bindings[0].widget: must be one of slider, number, text, checkbox,"
            " select, got 'dial'",
        ),
        ({"parameter": "n", "min": "1"}, "erc.yml: ui_bindings[0].min: must be a number, got '1'"),
        (
            {"parameter": "n", "max": True},
            "erc.yml: ui_bindings[0].max: must be a number, got true",
        ),
        (
            {"parameter": "n", "step": float("inf")},
            "erc.yml: ui_bindings[0].step: must be a number, got inf",
        ),
        ({"parameter": "n", "step": 0}, "erc.yml: ui_bindings[0].step: must be greater than 0"),
        (
            {"parameter": "n", "min": 5, "max": 5},
            "erc.yml: ui_bindings[0].max: must be greater than min (5), got 5",
        ),
        (
            {"parameter": "n", "choices": []},
            "erc.yml: ui_bindings[0].choices: must be a non-empty list of values, got []",
        ),
        (
            {"parameter": "n", "choices": "a,b"},
            "erc.yml: ui_bindings[0].choices: must be a non-empty list of values",
        ),
        (
            {"parameter": "n", "choices": [1, 2], "min": 1},
            "erc.yml: ui_bindings[0].choices: give either choices or min, not both",
        ),
        (
            {"parameter": "n", "widget": "checkbox", "max": 1},
            "erc.yml: ui_bindings[0].max: only for a slider or number widget",
        ),
        (
            {"parameter": "n", "widget": "text", "choices": ["a"]},
            "erc.yml: ui_bindings[0].choices: only for a select widget",
        ),
        (
            {"parameter": "n", "widget": "select"},
            "erc.yml: ui_bindings[0].choices: required for a select widget",
        ),
        (
            {"parameter": "n", "widget": "slider", "min": 1},
            "erc.yml: ui_bindings[0].widget: a slider needs min and max",
        ),
        ({"parameter": "n", "cells": "plot"}, "erc.yml: ui_bindings[0].cells: must be a list of"),
        (
            {"parameter": "n", "cells": [""]},
            "erc.yml: ui_bindings[0].cells[0]: must be a non-empty",
        ),
    ],
)
def test_each_ui_binding_rule_has_an_error(binding: dict[str, Any], expected: str) -> None:
    assert binding_error(binding).startswith(expected)


def test_a_parameter_is_bound_once_per_notebook() -> None:
    message = binding_error(
        {"parameter": "n"},
        {"parameter": "n", "notebook": "other.ipynb"},
        {"parameter": "n", "notebook": "./main.ipynb"},
    )
    assert message == (
        "erc.yml: ui_bindings[2].parameter: 'n' of main.ipynb is bound already by ui_bindings[0]"
    )


def test_ui_bindings_render_and_round_trip() -> None:
    bindings = ({"parameter": "n", "choices": [1, 2], "cells": ["plot"]},)
    cfg = ErcConfig(
        id=ERC_ID, main="main.ipynb", display="main.html", licenses=LICENSES, ui_bindings=bindings
    )
    assert parse_erc(yaml.safe_load(render_erc(cfg))).ui_bindings == bindings
