"""The test suite's own layout: test modules share code only through tests/support/.

A helper imported from another test module drags that module's fixtures and
constants along, and breaks when the module is renamed or split; a helper in
conftest.py is invisible to benchmarks. Every shared helper lives in
tests/support/, conftest.py holds fixtures and hooks, nothing else.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.tiers import TIER_FIXTURES

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def imported_modules(source: str, path: Path) -> list[tuple[int, str]]:
    """Every module ``source`` (the text of ``path``) imports, as absolute names.

    ``from tests import x`` gives ``tests`` and ``tests.x``; relative imports
    are resolved against ``path``'s package.
    """
    tree = ast.parse(source, str(path))
    package = path.parent.relative_to(REPO).parts
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing file's package
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # ``from tests import test_x`` / ``from tests.support import browser`` name modules too.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def offending(path: Path) -> list[str]:
    """Imports of tests.* from ``path`` that are not tests.support.*."""
    bad = []
    for line, module in imported_modules(path.read_text(), path):
        parts = module.split(".")
        if parts[0] != "tests" or len(parts) == 1:
            continue
        if parts[1] != "support":
            bad.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    return bad


PYTHON_FILES = sorted(
    p
    for p in [*TESTS.rglob("*.py"), *(REPO / "benchmarks").rglob("*.py")]
    if "fixtures" not in p.relative_to(REPO).parts
)


def test_the_checker_sees_every_kind_of_cross_import() -> None:
    """The ast walk catches each spelling of an import from a test module or from conftest."""
    spellings = [
        "from tests.conftest import System",
        "from tests.test_shipper_kill import write_probe_lines",
        "from tests import test_shipper_kill as kill_test",
        "import tests.test_web_browser",
        "from . import test_shipper_kill",
        "from .test_web_browser import click",
        "from .conftest import free_port",
        "def f():\n    from tests.test_real_firewall import parse_file\n",
    ]
    probe = TESTS / "test_probe.py"
    for text in spellings:
        found = [
            m
            for _, m in imported_modules(text, probe)
            if m.startswith("tests.") and not m.startswith("tests.support")
        ]
        assert found, f"not caught: {text}"
    ok = "from tests.support.system import System\nfrom tests.support import browser\nfrom .support import s3"
    assert all(m == "tests" or m.startswith("tests.support") for _, m in imported_modules(ok, probe))


@pytest.mark.parametrize("path", PYTHON_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_imports_a_test_module_or_conftest(path: Path) -> None:
    assert offending(path) == []


def test_conftest_holds_only_fixtures_and_hooks() -> None:
    """Every function conftest.py defines is a fixture or a pytest hook; it defines no class."""
    tree = ast.parse((TESTS / "conftest.py").read_text())
    for node in tree.body:
        assert not isinstance(node, ast.ClassDef), (
            f"class {node.name} in conftest.py: move it to tests/support/"
        )
        if isinstance(node, ast.FunctionDef):
            fixture = any("fixture" in ast.unparse(d) for d in node.decorator_list)
            assert fixture or node.name.startswith("pytest_"), (
                f"{node.name} in conftest.py is neither a fixture nor a hook: move it to tests/support/"
            )


def test_tier_markers_are_exactly_what_the_fixtures_imply(request: pytest.FixtureRequest) -> None:
    """Every collected test carries the tier markers of the fixtures it needs, and no other tier marker
    (a hand-set ``kafka`` on a test without a broker, or a broker test without it, both fail here)."""
    tiers = {m for markers in TIER_FIXTURES.values() for m in markers}
    assert tiers == {"kafka", "browser", "netns", "mirror"}
    checked = 0
    for item in request.session.items:
        needs = set(getattr(item, "fixturenames", ()))
        want = {m for fixture, markers in TIER_FIXTURES.items() if fixture in needs for m in markers}
        have = {m.name for m in item.iter_markers() if m.name in tiers}
        assert have == want, f"{item.nodeid}: marked {sorted(have)}, its fixtures need {sorted(want)}"
        checked += 1
    assert checked >= 1


def test_no_test_module_sets_a_tier_marker_by_hand() -> None:
    """kafka, browser, netns and mirror come from the fixtures (conftest.py), never from decorators."""
    for path in sorted(TESTS.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in {"kafka", "browser", "netns", "mirror"}:
                assert ast.unparse(node.value) not in {"pytest.mark", "mark"}, (
                    f"{path.name}:{node.lineno} sets pytest.mark.{node.attr} by hand"
                )
