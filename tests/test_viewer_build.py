"""The viewer's built files are committed (`pip install` needs no Node.js): building again from viewer/src/
with the pinned esbuild must give the committed bytes."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .support.installed import tracked_files

ROOT = Path(__file__).resolve().parent.parent
VIEWER = ROOT / "viewer"
BUILT = ("index.html", "viewer.min.js", "watching.min.js", "p2p.min.js", "viewer.min.css")


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are not installed (scripts/test installs nodejs and npm)")
    out = tmp_path_factory.mktemp("viewer-built")
    done = subprocess.run([str(ROOT / "scripts" / "build-viewer"), "--out", str(out)], capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr
    return out


def test_the_committed_page_is_what_the_sources_build(rebuilt: Path) -> None:
    assert sorted(p.name for p in rebuilt.iterdir()) == sorted(BUILT)
    differ = [name for name in BUILT if (rebuilt / name).read_bytes() != (VIEWER / name).read_bytes()]
    assert differ == [], f"run scripts/build-viewer and commit viewer/{', viewer/'.join(differ)}"
    tracked = set(tracked_files())
    assert {f"viewer/{name}" for name in BUILT} <= tracked
    assert {"viewer/src/package.json", "viewer/src/package-lock.json", "viewer/src/build.mjs"} <= tracked


def version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def test_every_file_is_named_at_its_version(rebuilt: Path) -> None:
    """By the hash of its bytes: a change in any changes every URL leading to it, up to the page."""
    page = (rebuilt / "index.html").read_text()
    named = dict(re.findall(r'(?:src|href)="([\w.-]+)\?v=([0-9a-f]{16})"', page))
    assert named == {name: version((rebuilt / name if (rebuilt / name).exists() else VIEWER / name).read_bytes())
                     for name in ("hls.min.js", "viewer.min.css", "viewer.min.js")}
    viewer = (rebuilt / "viewer.min.js").read_text()
    imported = dict(re.findall(r'import\("\./([\w.-]+)\?v=([0-9a-f]{16})"\)', viewer))
    assert imported == {name: version((rebuilt / name).read_bytes()) for name in ("p2p.min.js", "watching.min.js")}
    # One file each: no module named by its plain name is left for the browser to import (each would
    # be a round trip, or a redirect).
    for name in ("viewer.min.js", "p2p.min.js", "watching.min.js"):
        assert re.search(r"""["']\.{1,2}/[\w.-]+\.m?js["']""", (rebuilt / name).read_text()) is None, name
