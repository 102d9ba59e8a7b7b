"""pm2 from the npm registry, the version tests/support/pm2/package-lock.json pins, installed once per lock
file into a cache folder (`npm ci`, as the tracker's packages are: broadcaster/demo/tracker.py) and run
with Debian's Node.js; for tests/test_pm2.py, which follows docs/production.md's pm2 steps."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

FILES = Path(__file__).resolve().parent / "pm2"


def installed(cache: Path | None = None) -> Path:
    """The folder whose node_modules/.bin holds pm2 (installed now unless it already is). Several
    processes may ask at once: the install is done under a lock, into a folder moved into place whole."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:  # scripts/test installs them: a broken set-up
        pytest.fail("node and npm are not installed (scripts/test installs nodejs and npm)")
    lock = (FILES / "package-lock.json").read_bytes()
    root = cache or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hls-broadcaster"
    folder = root / f"pm2-{hashlib.sha256(lock).hexdigest()[:16]}"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{folder.name}.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not (folder / "node_modules" / ".bin" / "pm2").exists():
            work = root / f".{folder.name}.{os.getpid()}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            for name in ("package.json", "package-lock.json"):
                shutil.copy(FILES / name, work / name)
            done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=work, capture_output=True, text=True,
                                  timeout=300, check=False, stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                shutil.rmtree(work, ignore_errors=True)
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                pytest.fail(f"npm could not install pm2: {last}")
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(work, folder)
    return folder
