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


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_no_test_file_imports_another() -> None:
    wrong = {p.name: sorted(m for m in imports(p) if m.startswith("tests.test_")) for p in modules()}
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
