"""erchub's own wheel, which PipBuildPack images install: built from the source tree erchub is
installed from (editable installs), cached by the content of its sources."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import erchub
from erchub.errors import BuildError
from erchub.spawner.hashing import content_hash

if sys.version_info >= (3, 11):
    import tomllib
else:  # repo2docker depends on tomli there
    import tomli as tomllib

WHEEL_BUILD_TIMEOUT = 600


def erchub_source_tree() -> Path | None:
    """The source tree erchub is installed from (editable installs), or None."""
    root = Path(erchub.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return None
    project = tomllib.loads(pyproject.read_text("utf-8")).get("project", {})
    return root if project.get("name") == "erchub" else None


def wheel_sources(root: Path) -> list[Path]:
    """Files of the source tree that go into erchub's wheel (relative): the folders and files
    its pyproject.toml's hatch wheel target includes, the sources of its shared data (the
    prebuilt lab extension, the server extension's config file), its build hook and the
    top-level project files."""
    config = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))
    wheel_target = config.get("tool", {}).get("hatch", {}).get("build", {}).get("targets", {})
    wheel_target = wheel_target.get("wheel", {})
    roots = {root / folder for folder in wheel_target.get("only-include", [])} or {
        root / config["project"]["name"].replace("-", "_")
    }
    roots.update(root / source for source in wheel_target.get("shared-data", {}))
    hooks = wheel_target.get("hooks", {}).values()
    roots.update(root / hook["path"] for hook in hooks if "path" in hook)
    project_files = {"pyproject.toml", "MANIFEST.in"}
    found = {
        path
        for path in root.iterdir()
        if path.is_file()
        and (
            path.name in project_files
            or path.name.upper().startswith(("README", "LICENSE", "COPYING", "NOTICE"))
        )
    }
    for start in roots:
        candidates = start.rglob("*") if start.is_dir() else [start]
        found.update(
            path
            for path in candidates
            if path.is_file()
            and not {"__pycache__", "node_modules"} & set(path.relative_to(root).parts)
            and path.suffix != ".pyc"
        )
    return sorted(path.relative_to(root) for path in found)


def missing_prebuilt_assets(root: Path) -> list[str]:
    """The lab extension's built files a wheel needs (pyproject's ensured targets) that the
    source tree at ``root`` lacks: without them the build would need Node."""
    config = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))
    hook = config.get("tool", {}).get("hatch", {}).get("build", {}).get("hooks", {})
    targets = hook.get("jupyter-builder", {}).get("ensured-targets", [])
    return [target for target in targets if not (root / target).is_file()]


def build_erchub_wheel(root: Path, cache_dir: Path) -> Path:
    """erchub's wheel built from ``root`` with ``pip wheel --no-deps``, cached by content.

    It builds from a copy of the sources, so the build writes nothing into the source tree.
    """
    missing = missing_prebuilt_assets(root)
    if missing:
        raise BuildError(
            f"the lab extension in {root} is not built ({', '.join(missing)} missing): "
            "run `make install` there (it needs Node and npm)"
        )
    sources = wheel_sources(root)
    key = content_hash({str(path): (root / path).read_bytes() for path in sources})[:16]
    wheels = cache_dir / "wheels"
    target = wheels / key
    cached = sorted(target.glob("erchub-*.whl"))
    if cached:
        return cached[0]
    wheels.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheels) as scratch:
        copy, built = Path(scratch) / "src", Path(scratch) / "wheel"
        for path in sources:
            (copy / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / path, copy / path)
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet"]
        try:
            process = subprocess.run(
                [*command, "--wheel-dir", str(built), str(copy)],
                capture_output=True,
                text=True,
                timeout=WHEEL_BUILD_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            raise BuildError(
                f"building the erchub wheel from {root} took over {WHEEL_BUILD_TIMEOUT} s"
            ) from exc
        if process.returncode != 0:
            last = (process.stderr.strip().splitlines() or ["no output"])[-1]
            raise BuildError(f"building the erchub wheel from {root} failed: {last}")
        try:
            os.replace(built, target)
        except OSError:
            if not target.is_dir():  # else a concurrent builder published the same wheel
                raise
    return sorted(target.glob("erchub-*.whl"))[0]
