"""An npm package set a lock file pins, installed once per lock file into a cache folder (`npm ci`, as the
tracker's packages are: broadcaster/demo/tracker.py) and run with Debian's Node.js: pm2 for
tests/test_pm2.py, miniflare (Cloudflare's workerd) for tests/test_edge_worker.py."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest


def installed(files: Path, name: str, marker: str, cache: Path | None = None) -> Path:
    """The folder whose node_modules holds `files`' package.json and package-lock.json installed (now
    unless they already are; `marker`: a path below node_modules that an install leaves). Several
    processes may ask at once: the install is done under a lock, into a folder moved into place whole."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:  # scripts/test installs them: a broken set-up
        pytest.fail("node and npm are not installed (scripts/test installs nodejs and npm)")
    lock = (files / "package-lock.json").read_bytes()
    root = cache or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hls-broadcaster"
    folder = root / f"{name}-{hashlib.sha256(lock).hexdigest()[:16]}"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{folder.name}.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not (folder / "node_modules" / marker).exists():
            work = root / f".{folder.name}.{os.getpid()}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            for copied in ("package.json", "package-lock.json"):
                shutil.copy(files / copied, work / copied)
            done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=work, capture_output=True, text=True,
                                  timeout=300, check=False, stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                shutil.rmtree(work, ignore_errors=True)
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                pytest.fail(f"npm could not install {name}: {last}")
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(work, folder)
    return folder
