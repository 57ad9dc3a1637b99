"""erchub's build hooks: editable installs of one package made of several folders, and the lab
extension's build with ``npm ci``.

pyproject.toml maps the component folders into the ``erchub`` package (``hub/`` is
``erchub.hub``, ...) with hatch's ``sources``. hatchling cannot make an editable wheel of such a
mapping (pfmoore/editables#20), so an editable wheel gets what setuptools' editable installs
have instead: a module with a meta path finder that imports each mapped package from its folder
in the checkout, and a ``.pth`` file that installs the finder at start-up. Regular wheels are
left alone.

``npm_ci_builder`` is hatch-jupyter-builder's build function for ``labextension/`` (pyproject's
``build-function``): its own ``npm_builder`` runs ``npm install``, which rewrites the committed
package-lock.json whenever this npm resolves the tree differently (optional and platform
packages), so that every install left the checkout changed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

FINDER_MODULE = "_erchub_editable_finder"

FINDER_TEMPLATE = '''"""erchub's component folders, imported from the checkout (editable)."""

import importlib.util
import sys

PACKAGE_FOLDERS = {package_folders!r}


class ComponentFinder:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        folder = PACKAGE_FOLDERS.get(fullname)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, folder + "/__init__.py", submodule_search_locations=[folder]
        )


if not any(finder is ComponentFinder for finder in sys.meta_path):
    sys.meta_path.insert(0, ComponentFinder)
'''


class EditableComponentsHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version != "editable":
            return
        root = Path(self.root).resolve()
        sources = self.build_config.target_config.get("sources", {})
        package_folders = {"erchub": str(root / "erchub")}
        for folder, target in sources.items():
            package_folders[target.replace("/", ".")] = str(root / folder)
        self._scratch = Path(tempfile.mkdtemp(prefix="erchub-editable-"))
        finder = self._scratch / f"{FINDER_MODULE}.py"
        finder.write_text(FINDER_TEMPLATE.format(package_folders=package_folders), "utf-8")
        startup = self._scratch / f"{FINDER_MODULE}.pth"
        startup.write_text(f"import {FINDER_MODULE}\n", "utf-8")
        build_data["force_include_editable"][str(finder)] = finder.name
        build_data["force_include_editable"][str(startup)] = startup.name

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        scratch = getattr(self, "_scratch", None)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def npm_ci_builder(
    target_name: str,
    version: str,
    *,
    path: str,
    build_dir: str,
    source_dir: str,
    build_cmd: str,
    npm: str = "npm",
) -> None:
    """hatch-jupyter-builder's ``npm_builder`` with ``npm ci`` for ``npm install``: the
    dependencies exactly as the committed package-lock.json pins them, which the build never
    writes (``npm ci`` fails instead when package.json and the lock file disagree). Like
    ``npm_builder``, it builds only when ``build_dir`` is older than ``source_dir`` (and not
    with HATCH_JUPYTER_BUILDER_SKIP_NPM=1); it installs only when node_modules is missing or
    older than package.json or the lock file, since ``npm ci`` starts from an empty
    node_modules. hatch-jupyter-builder passes the editable build's kwargs for editable
    installs, so ``version`` changes nothing here."""
    from hatch_jupyter_builder.utils import is_stale, normalize_cmd, run

    if os.environ.get("HATCH_JUPYTER_BUILDER_SKIP_NPM") == "1" or not is_stale(
        build_dir, source_dir
    ):
        return
    package = Path(path).resolve()
    command = normalize_cmd(npm)
    # npm writes this record of what it installed at the end of every install
    installed = package / "node_modules" / ".package-lock.json"
    manifests = [package / "package.json", package / "package-lock.json"]
    newest_manifest = max(manifest.stat().st_mtime for manifest in manifests)
    if not installed.is_file() or installed.stat().st_mtime < newest_manifest:
        run([*command, "ci", "--no-audit", "--no-fund"], cwd=str(package))
    run([*command, "run", build_cmd], cwd=str(package))
