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
