"""pm2 from the npm registry, the version tests/support/pm2/package-lock.json pins, installed once per lock
file into a cache folder (npm_cache.py) and run with Debian's Node.js; for tests/test_pm2.py, which
follows docs/production.md's pm2 steps."""

from __future__ import annotations

from pathlib import Path

from .npm_cache import installed as _installed

FILES = Path(__file__).resolve().parent / "pm2"


def installed(cache: Path | None = None) -> Path:
    """The folder whose node_modules/.bin holds pm2 (installed now unless it already is)."""
    return _installed(FILES, "pm2", ".bin/pm2", cache)
