"""The package's layout rules: no import cycle (function-level imports count, ``TYPE_CHECKING`` ones do not),
and the trainer never imports the pipeline."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "streamdehaze"


def modules() -> dict[str, tuple[Path, bool]]:
    """``dotted name → (file, is a package)`` for every module of the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path, is_package: bool, known: dict) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its code (module level or in functions)."""
    package = name if is_package else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                for alias in child.names:  # `from pkg import module` imports the module
                    found.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module)
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, is_package, known) for name, (path, is_package) in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_the_checker_sees_function_level_imports_and_skips_type_only_ones(tmp_path):
    known = {"p": None, "p.a": None, "p.b": None, "p.c": None}
    source = tmp_path / "a.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .c import X\n"
        "def f():\n    from .b import y\n    from . import c\n"
    )
    assert imports_of("p.a", source, False, known) == {"p.b", "p.c"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_no_import_cycle_in_the_package():
    assert cycles(import_graph()) == []


LAYERS = [
    ("train", ("pipeline", "preview", "bench", "cli.")),
    ("ops", ("pipeline", "io")),
    ("nets", ("pipeline", "io")),
]


@pytest.mark.parametrize("layer, forbidden", LAYERS)
def test_lower_layers_do_not_import_upper_ones(layer, forbidden):
    graph = import_graph()
    bad = {
        (name, target)
        for name, targets in graph.items()
        if name.startswith(f"streamdehaze.{layer}") and not name.endswith("__main__")
        for target in targets
        if any(target.startswith(f"streamdehaze.{f}") for f in forbidden)
    }
    assert not bad
