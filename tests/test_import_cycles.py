"""pipelines/ has no import cycles: each module can be read, tested and replaced from the bottom up.

The graph is built from the source (ast), so a cycle is found even where it would only bite at run time: every
import statement counts, at module level, inside functions and under TYPE_CHECKING, and so do the modules that
``pipelines.load`` imports by name (the classes the registry's families name). An import of ``pipelines.a.b`` is
an edge to that module only: Python also runs the packages' ``__init__`` on the way, but a package that re-exports
its own modules would otherwise count as a cycle with each of them.
"""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = ROOT, package: str = "pipelines") -> dict[str, set[str]]:
    """{module: modules of ``package`` it imports}, for every .py file of the package."""
    files = {module_name(path, root): path for path in sorted((root / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(_known(alias.name, files) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = here[: len(here) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                for alias in node.names:  # `from pkg import mod` imports the module, `from mod import x` the module
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else _known(base, files))
        if name == package:  # the loader imports each family's module by name
            targets.update(f"{package}.{target.split(':')[0]}" for target in _family_classes(root / package))
        graph[name] = {target for target in targets if target in files and target != name}
    return graph


def _known(dotted: str, files: dict) -> str:
    """The longest prefix of ``dotted`` that is a module of the package (``import a.b.c`` runs a.b.c)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in files:
            return ".".join(parts[:end])
    return dotted


def _family_classes(package_dir: Path) -> list[str]:
    """The "module:Class" of every model family in the package's registry.json (none if it has no registry)."""
    registry = package_dir / "core" / "registry.json"
    if not registry.is_file():
        return []
    families = json.loads(registry.read_text())["families"]
    return [
        entry["class"]
        for task, entries in families.items()
        if not task.startswith("_")
        for family, entry in entries.items()
        if not family.startswith("_")
    ]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) per strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's algorithm
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [_path_within(sorted(group), graph) for group in groups]


def _path_within(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path from the group's first module back to itself, through the group."""
    start, members = group[0], set(group)
    previous = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for target in sorted(graph[module] & members):
                if target == start:
                    path = [module]
                    while previous[path[-1]] is not None:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if target not in previous:
                    previous[target] = module
                    following.append(target)
        frontier = following
    return group


def test_pipelines_has_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles in pipelines/: " + "; ".join(" -> ".join(cycle) for cycle in found)


def test_the_graph_sees_function_level_and_by_name_imports():
    """The check would catch the cycles it was written for (shared_space through the loader, gallery <-> index)."""
    graph = import_graph()
    assert "pipelines" in graph["pipelines.fusion"]  # shared_space() imports pipelines.load inside the function
    assert "pipelines.search.retrieval" in graph["pipelines"]  # load("search") imports it by its family's class
    assert "pipelines.fusion.space" in graph["pipelines.search.retrieval"]
    assert "pipelines.search.gallery" in graph["pipelines.index"]  # the CLI indexes a folder into a gallery
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


@pytest.mark.parametrize(
    "old,new",
    [
        ("pipelines.rerank", "pipelines.caption.rerank"),
        ("pipelines.retrieval", "pipelines.search.retrieval"),
        ("pipelines.gallery", "pipelines.search.gallery"),
        ("pipelines.registry", "pipelines.core.registry"),
    ],
)
def test_old_module_names_still_import_the_moved_modules(old, new):
    """Scripts written before pipelines/ was grouped by concern keep working: same module, its own name."""
    moved = importlib.import_module(old)
    assert moved is importlib.import_module(new) and moved.__name__ == moved.__spec__.name == new
