"""Rules the suite keeps about itself (issue 49): a test file imports from tests/support, never from
another test file; a unit test (no `integration` mark) pays for no S3 server or emulator it does not
run: importing it (and conftest.py) loads neither moto nor the demo's process-running parts."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
# What costs a unit test its import time (moto: ~0.6 s of CPU, the emulator and SeaweedFS's client: ~0.8 s,
# in every xdist worker): the demo's format helpers (owncast_files, ledger) and small ones stay allowed.
HEAVY = ("moto", "broadcaster.demo.emulator", "broadcaster.demo.seaweed", "broadcaster.demo.run",
         "broadcaster.demo.tracker", "broadcaster.demo.transcoder")


def modules() -> list[Path]:
    return sorted(TESTS.glob("test_*.py"))


def imports(path: Path, source: str | None = None) -> set[str]:
    """Every module the file (or `source`, read as if it were that file) imports, anywhere in it, by its
    absolute name: a relative import (`from .test_x import y`, `from . import test_x`) resolved from the
    file's package, each name of a `from` import counted too (it may be a module)."""
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    package = path.resolve().parent.relative_to(ROOT).parts
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else ()
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_relative_imports_are_seen_by_their_absolute_names() -> None:
    source = "from .test_x import env\nfrom . import test_y, conftest\nfrom .support.world import World\n"
    assert {"tests.test_x", "tests.test_y", "tests.support.world"} <= imports(TESTS / "test_probe.py", source)
    assert "tests.support.test_w" in imports(TESTS / "support" / "probe.py", "from .test_w import b\n")
    assert "tests.test_v" in imports(TESTS / "support" / "probe.py", "from ..test_v import c\n")


def test_no_test_file_imports_another() -> None:
    """Neither a test file nor a module of tests/support imports a test file: what they share is in tests/support."""
    files = [*modules(), *sorted((TESTS / "support").rglob("*.py"))]
    wrong = {p.relative_to(TESTS).as_posix(): sorted({".".join(m.split(".")[:2]) for m in imports(p)
                                                      if m.startswith("tests.test_")}) for p in files}
    assert {k: v for k, v in wrong.items() if v} == {}


def is_unit(path: Path) -> bool:
    """No `integration` mark on the module (pytestmark) nor on any of its tests."""
    return "mark.integration" not in path.read_text()


def test_unit_tests_import_neither_moto_nor_the_demos_processes() -> None:
    units = [f"tests.{p.stem}" for p in modules() if is_unit(p)]
    assert len(units) > 20, units  # the check sees the unit tests (they are most of the files)
    code = ("import importlib, json, sys\n"
            "loaded = {}\n"
            f"for name in ['tests.conftest', *{units!r}]:\n"
            "    before = set(sys.modules)\n"
            "    importlib.import_module(name)\n"
            f"    loaded[name] = sorted(m for m in set(sys.modules) - before if m.startswith({HEAVY!r}))\n"
            "print(json.dumps(loaded))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=True)
    loaded = json.loads(done.stdout)
    assert {name: heavy for name, heavy in loaded.items() if heavy} == {}


def marked_integration(decorators: list[ast.expr]) -> bool:
    """`@pytest.mark.integration` (or a call of it) among the decorators, or in a `pytestmark` value."""
    return any(isinstance(n, ast.Attribute) and n.attr == "integration" and ast.unparse(n.value).endswith("mark")
               for d in decorators for n in ast.walk(d))


def heavy_imports_in_unit_functions(path: Path, source: str | None = None) -> list[str]:
    """Each import of a HEAVY module inside a function (a test, fixture or helper) that runs without the
    `integration` mark (on itself, its class or the module's pytestmark): it loads when the test runs,
    where the module-level check above cannot see it. Imports under `if TYPE_CHECKING:` load nothing."""
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    module_marks = [node.value for node in tree.body if isinstance(node, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)]
    found: list[str] = []

    def visit(node: ast.AST, marked: bool, where: str) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            marked = marked or marked_integration(node.decorator_list)
            where = f"{where}.{node.name}" if where else node.name
        if where and not marked and isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names]
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(f"{node.module}.{name}" for name in names)]
            heavy = sorted({n for n in names if any(n == h or n.startswith(f"{h}.") for h in HEAVY)})
            if heavy:
                found.append(f"{path.name}:{node.lineno} {where}: {', '.join(heavy)}")
        for child in ast.iter_child_nodes(node):
            visit(child, marked, where)

    visit(tree, marked_integration(module_marks), "")
    return found


def test_the_heavy_import_check_sees_a_test_function_import() -> None:
    source = ("import pytest\nfrom typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    from broadcaster.demo.emulator import OwncastEmulator\n"
              "def test_a() -> None:\n    from broadcaster.demo import run\n"
              "@pytest.mark.integration\nasync def test_b() -> None:\n    import moto\n"
              "class TestC:\n    def test_d(self) -> None:\n        import moto.server\n"
              "def test_e() -> None:\n    from broadcaster.demo.owncast_files import pdt\n    import motorway\n")
    assert heavy_imports_in_unit_functions(TESTS / "test_probe.py", source) == [
        "test_probe.py:6 test_a: broadcaster.demo.run", "test_probe.py:12 TestC.test_d: moto.server"]
    marked = "import pytest\npytestmark = [pytest.mark.integration]\ndef test_a() -> None:\n    import moto\n"
    assert heavy_imports_in_unit_functions(TESTS / "test_probe.py", marked) == []


def test_unit_tests_import_no_heavy_module_inside_a_function() -> None:
    """A test without the `integration` mark imports none of HEAVY where it runs either: one that only
    needs a type takes it under TYPE_CHECKING, one that stubs the demo's runner puts a stand-in in its place."""
    assert [hit for p in modules() for hit in heavy_imports_in_unit_functions(p)] == []
