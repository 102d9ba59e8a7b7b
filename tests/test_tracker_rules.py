"""The tracker's rules in-process: broadcaster/tracker/node-tests/*.test.mjs run by `node --test` against
this checkout's modules. Fails with Node's report."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from broadcaster.demo.tracker import TRACKER_FILES
from tests.support.node import node

# Node with the tracker's installed packages (the tracker_dir fixture): not a unit test.
pytestmark = pytest.mark.integration

NODE_TIMEOUT = 120.0


def test_the_trackers_rules_hold_in_process(tracker_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "tracker"
    (folder / "node-tests").mkdir(parents=True)
    for path in [*TRACKER_FILES.glob("*.mjs"), TRACKER_FILES / "package.json"]:
        shutil.copy(path, folder / path.name)
    tests = sorted((TRACKER_FILES / "node-tests").glob("*.mjs"))
    for path in tests:
        shutil.copy(path, folder / "node-tests" / path.name)
    (folder / "node_modules").symlink_to(tracker_dir / "node_modules", target_is_directory=True)
    files = [f"node-tests/{p.name}" for p in tests if p.name.endswith(".test.mjs")]
    assert len(files) >= 3, files
    done = subprocess.run([node(), "--test", "--test-reporter=spec", *files], cwd=folder, capture_output=True,
                          text=True, timeout=NODE_TIMEOUT, check=False, stdin=subprocess.DEVNULL)
    report = (done.stdout + done.stderr).strip()
    assert done.returncode == 0, f"node --test failed:\n{report[-6000:]}"
    assert "ℹ fail 0" in report and "ℹ pass" in report, report[-2000:]
