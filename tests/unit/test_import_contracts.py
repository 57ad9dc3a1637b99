"""The import contracts of README's architecture map, checked on the source (imports inside
functions count too): rooms import each other downward only.

An equivalent of import-linter's layers and forbidden contracts that reads the folders as
the wheel maps them (``services/`` is ``erchub.services``), which import-linter cannot see in
an editable install.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: the folders of the distribution and their import names
COMPONENTS = {
    "erchub": "erchub",
    "hub": "erchub.hub",
    "spawner": "erchub.spawner",
    "services": "erchub.services",
    "extensions": "erchub.extensions",
}
COMPONENT_NAMES = tuple(name for name in COMPONENTS.values() if name != "erchub")
#: the one core module that composes the components (the CLI)
COMPOSERS = {"erchub.cli", "erchub.__main__"}


def module_name(path: Path) -> str:
    folder, *rest = path.relative_to(REPO).with_suffix("").parts
    parts = [COMPONENTS[folder], *rest]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules() -> dict[str, Path]:
    modules = {}
    for folder in COMPONENTS:
        for path in (REPO / folder).rglob("*.py"):
            if "labextension" not in path.parts and "node_modules" not in path.parts:
                modules[module_name(path)] = path
    return modules


MODULES = source_modules()


def imports_of(module: str) -> Iterator[str]:
    """Every erchub module ``module`` imports, at the top or inside a function."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # "from erchub.services import compendia" imports the module erchub.services.compendia
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        yield from (name for name in names if name == "erchub" or name.startswith("erchub."))


GRAPH = {module: set(imports_of(module)) for module in MODULES}


def within(name: str, *packages: str) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


#: the modules of the core folder erchub/ (their names are a prefix of every component's)
CORE = {module for module, path in MODULES.items() if path.parent == REPO / "erchub"}


def offending(importers: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    def imports(module: str) -> bool:
        if importers == ("erchub",):
            return module in CORE
        return within(module, *importers)

    return sorted(
        f"{module} imports {imported}"
        for module, imported_names in GRAPH.items()
        if imports(module) and module not in COMPOSERS
        for imported in imported_names
        if within(imported, *forbidden)
    )


SERVICES = "erchub.services"
ROOMS = {
    "store": f"{SERVICES}.store",
    "compendia": f"{SERVICES}.compendia",
    "jobs": f"{SERVICES}.jobs",
    "exchange": f"{SERVICES}.exchange",
    "handlers": f"{SERVICES}.handlers",
    "cluster": f"{SERVICES}.cluster",
}


@pytest.mark.parametrize(
    ("importers", "forbidden", "rule"),
    [
        (("erchub",), COMPONENT_NAMES, "the core imports no component (the CLI composes them)"),
        (("erchub.spawner",), ("erchub.services", "erchub.hub"), "the spawner is below services"),
        (
            ("erchub.extensions",),
            ("erchub.services", "erchub.spawner", "erchub.hub"),
            "the server extension runs in sessions: the core only",
        ),
        (
            (ROOMS["store"],),
            (ROOMS["compendia"], ROOMS["jobs"], ROOMS["exchange"], ROOMS["handlers"]),
            "the store imports the core only",
        ),
        (
            (ROOMS["compendia"],),
            (ROOMS["jobs"], ROOMS["exchange"], ROOMS["handlers"]),
            "compendia import the store only",
        ),
        (
            (ROOMS["jobs"],),
            (ROOMS["exchange"], ROOMS["handlers"]),
            "jobs import compendia and the store",
        ),
        (
            (ROOMS["exchange"],),
            (ROOMS["jobs"], ROOMS["handlers"]),
            "the exchange imports compendia and the store",
        ),
        (
            (ROOMS["store"], ROOMS["compendia"], ROOMS["jobs"], ROOMS["exchange"]),
            (f"{SERVICES}.app", "tornado.web"),
            "rooms below the handlers know nothing of the web application",
        ),
        (
            (ROOMS["cluster"],),
            (ROOMS["store"], ROOMS["compendia"], ROOMS["exchange"], ROOMS["handlers"]),
            "the cluster imports the core, the spawner and the jobs' names only",
        ),
        (
            (ROOMS["store"], ROOMS["compendia"], ROOMS["jobs"], ROOMS["exchange"]),
            (ROOMS["cluster"],),
            "no room of the service imports the cluster (operators and the CLI use it)",
        ),
    ],
    ids=[
        "core",
        "spawner",
        "extensions",
        "store",
        "compendia",
        "jobs",
        "exchange",
        "web",
        "cluster",
        "above-cluster",
    ],
)
def test_rooms_import_downward_only(
    importers: tuple[str, ...], forbidden: tuple[str, ...], rule: str
) -> None:
    assert offending(importers, forbidden) == [], rule


def test_handler_modules_are_imported_by_the_app_only() -> None:
    """A module with ``default_handlers`` (one per resource or page) is imported by the
    handlers' registry alone; what several need lives in a room or a shared handler module."""
    resources = {
        module
        for module, path in MODULES.items()
        if within(module, ROOMS["handlers"])
        and re.search(r"^default_handlers\b", path.read_text(), re.MULTILINE)
    }
    assert resources, "the resource modules were found"
    importers = sorted(
        f"{module} imports {imported}"
        for module, imported_names in GRAPH.items()
        for imported in imported_names & resources
        if module != ROOMS["handlers"]
    )
    assert importers == []


def test_the_room_graph_has_no_cycle() -> None:
    """Rooms (the components, and the folders of services) form a DAG."""

    def room(module: str) -> str:
        for name in ROOMS.values():
            if within(module, name):
                return name
        for name in sorted(COMPONENTS.values(), key=len, reverse=True):
            if within(module, name):
                return name
        return module

    edges = {
        (room(module), room(imported))
        for module, imported_names in GRAPH.items()
        if module not in COMPOSERS
        for imported in imported_names
        if room(module) != room(imported)
    }
    # services' own modules (app, __main__) compose the rooms: they are not a room below them
    edges = {(a, b) for a, b in edges if a != SERVICES}
    rooms = {name for edge in edges for name in edge}
    order: list[str] = []
    remaining = set(rooms)
    while remaining:
        free = sorted(r for r in remaining if not any(b == r for a, b in edges if a in remaining))
        assert free, (
            f"a cycle among {sorted(remaining)}: {sorted(e for e in edges if set(e) <= remaining)}"
        )
        order.extend(free)
        remaining -= set(free)


def test_the_contracts_see_the_tree() -> None:
    """The checks above read what they should: a known import is in the graph."""
    assert f"{ROOMS['store']}.base" in GRAPH[f"{ROOMS['jobs']}.worker"] or any(
        within(name, ROOMS["store"]) for name in GRAPH[f"{ROOMS['jobs']}.worker"]
    )
    assert "erchub.safefs" in GRAPH[f"{ROOMS['compendia']}.files"]


def test_no_module_imports_a_private_name_of_another_module() -> None:
    """What a room offers is its modules' public names (each room's ``__init__`` lists its
    modules): an underscore name is nobody else's business."""
    private = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("erchub"):
                private += [
                    f"{module} imports {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and alias.name != "__version__"
                ]
    assert private == []
