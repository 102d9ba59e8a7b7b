"""Node.js, as scripts/test installs it, running a test's script: the viewer's modules and the tracker's
rules as the page and the tracker run them."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any


def node() -> str:
    """node's path (missing is a broken set-up, not a skip)."""
    found = shutil.which("node")
    assert found is not None, "node is needed (scripts/test installs it)"
    return found


def module_output(script: str, *args: str) -> Any:
    """`script` run by Node as an ES module, `args` after it: what it printed, read as JSON."""
    done = subprocess.run([node(), "--input-type=module", "-e", script, *args], capture_output=True,
                          text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
