"""How our modules depend on each other: no import cycles, no private names across modules.

Read from the source with ``ast``, not by importing: an import inside a
function or under ``if TYPE_CHECKING`` is a dependency too, and hiding a cycle
behind one is exactly what these tests are for.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "producers", "consumers", "fireplot")
# The namedtuple API is underscored to stay out of the fields' way: public all the same.
PUBLIC_UNDERSCORED = frozenset({"_replace", "_asdict", "_fields", "_make", "_field_defaults"})


def modules(root: Path) -> dict[str, Path]:
    """Every module of our packages by dotted name (a package by its own name)."""
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imported(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> Iterator[tuple[str, str | None]]:
    """(module imported from, name taken from it or None) for each name of one import statement."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name, None
        return
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    for alias in node.names:
        yield base, alias.name


def _ours(name: str, known: dict[str, Path]) -> str | None:
    """The module of ours that ``name`` (a module, or a name inside one) belongs to."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports, anywhere in its source."""
    known = modules(root)
    graph: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for source, name in _imported(module, path, node):
                # `from pipeline import durable` imports the module pipeline.durable.
                target = _ours(f"{source}.{name}" if name else source, known)
                if target is not None and target != module:
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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
            visit(v)
    return sorted(found)


def private_imports(root: Path) -> list[str]:
    """``from ours import _name`` and ``ours._name`` across modules: 'file:line what'."""
    known = modules(root)
    found: list[str] = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        imported: set[str] = set()  # local names bound to a module or object of ours
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for (source, name), alias in zip(_imported(module, path, node), node.names, strict=True):
                full = f"{source}.{name}" if name else source
                if _ours(full, known) in (None, module):
                    continue
                private = [p for p in full.split(".") if p.startswith("_") and not p.startswith("__")]
                if private:
                    found.append(f"{path.relative_to(root)}:{node.lineno} imports {full}")
                imported.add(alias.asname or alias.name.partition(".")[0])
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in imported
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and node.attr not in PUBLIC_UNDERSCORED
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


def test_our_packages_have_no_import_cycle() -> None:
    """No module of ours imports, however indirectly and wherever in its body, a module that imports it."""
    graph = import_graph(REPO)
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100  # the walk found our modules
    assert cycles(graph) == []


def test_no_module_takes_a_private_name_from_another() -> None:
    """What one module shares with another is public and documented; ``_names`` stay at home."""
    assert private_imports(REPO) == []


def _package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in PACKAGES:
        (root / package).mkdir(exist_ok=True)
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {"pipeline/__init__.py": "", "pipeline/a.py": "import pipeline.b\n", "pipeline/b.py": ""},
            [],
            id="one-way",
        ),
        pytest.param(
            {
                "pipeline/__init__.py": "",
                "pipeline/a.py": "from pipeline.b import x\n",
                "pipeline/b.py": "def f():\n    from pipeline.a import y\n",
            },
            [["pipeline.a", "pipeline.b"]],
            id="function-level-import",
        ),
        pytest.param(
            {
                "pipeline/__init__.py": "",
                "pipeline/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\n",
                "pipeline/b.py": "from pipeline import a\n",
            },
            [["pipeline.a", "pipeline.b"]],
            id="type-checking-relative",
        ),
        pytest.param(
            {
                "pipeline/__init__.py": "",
                "pipeline/a.py": "from producers.c import z\n",
                "producers/__init__.py": "",
                "producers/c.py": "from consumers import d\n",
                "consumers/__init__.py": "",
                "consumers/d.py": "import pipeline.a as a\n",
            },
            [["consumers.d", "pipeline.a", "producers.c"]],
            id="across-packages",
        ),
    ],
)
def test_cycle_finder_sees_every_kind_of_import(
    tmp_path: Path, files: dict[str, str], expected: list[list[str]]
) -> None:
    """The finder is not blind: a cycle through a function, TYPE_CHECKING or another package is one."""
    assert cycles(import_graph(_package(tmp_path, files))) == expected


def test_private_finder_sees_from_imports_and_attributes(tmp_path: Path) -> None:
    """Both ways of reaching into another module are found; a module's own names and aliases are not."""
    root = _package(
        tmp_path,
        {
            "pipeline/__init__.py": "",
            "pipeline/a.py": "def _helper(): ...\ndef public(): _helper()\n",
            "pipeline/b.py": "from pipeline.a import _helper\n",
            "pipeline/c.py": "from pipeline import a\na._helper()\n",
            "pipeline/d.py": "from pipeline.a import public as _public\n_public()\n",
            "pipeline/e.py": "import os\nos._exit\n",
        },
    )
    rv = private_imports(root)
    assert rv == ["pipeline/b.py:1 imports pipeline.a._helper", "pipeline/c.py:2 uses a._helper"]
