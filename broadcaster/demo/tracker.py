"""A local WebTorrent tracker for `hls-broadcaster demo --p2p` (and the P2P tests): broadcaster/tracker/,
installed once per lock file into a cache folder with npm, run with Node on a free loopback port."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import weakref
from pathlib import Path

from .children import GroupKiller, stop_child

TRACKER_FILES = Path(__file__).resolve().parent.parent / "tracker"  # shipped in the wheel
_START_TIMEOUT = 15.0


class TrackerUnavailable(RuntimeError):
    """The tracker cannot run here; the message says what is missing."""


def which(name: str) -> str | None:
    return shutil.which(name)


def install(cache: Path | None = None) -> Path:
    """The tracker's folder with its node_modules (`npm ci --ignore-scripts`, once per lock file)."""
    node, npm = which("node"), which("npm")
    if node is None or npm is None:
        raise TrackerUnavailable("Node.js (node and npm) is not installed; apt install nodejs npm to try P2P")
    lock = (TRACKER_FILES / "package-lock.json").read_bytes()
    root = cache or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hls-broadcaster"
    folder = root / f"tracker-{hashlib.sha256(lock).hexdigest()[:16]}"
    if not (folder / "node_modules" / "bittorrent-tracker" / "server.js").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(TRACKER_FILES / name, folder / name)
        # --ignore-scripts: the library's client half would build a native module the server never loads.
        done = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=folder,
                              capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise TrackerUnavailable(f"npm could not install the tracker ({last})")
    shutil.copy(TRACKER_FILES / "tracker.mjs", folder / "tracker.mjs")  # always the package's own
    return folder


class LocalTracker:
    """`async with LocalTracker(folder) as t:` t.url is its ws:// URL; stopped (and never left) on exit."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._proc: asyncio.subprocess.Process | None = None
        self._killer: GroupKiller | None = None
        self._finalizer: weakref.finalize[[], LocalTracker] | None = None
        self.url = ""
        self._drain: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LocalTracker:
        node = which("node")
        if node is None:
            raise TrackerUnavailable("Node.js (node) is not installed")
        self._proc = await asyncio.create_subprocess_exec(
            node, "tracker.mjs", cwd=self._folder, env={**os.environ, "TRACKER_PORT": "0"},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True)
        self._killer = GroupKiller(self._proc.pid)
        self._finalizer = weakref.finalize(self, self._killer)
        assert self._proc.stdout is not None
        try:
            async with asyncio.timeout(_START_TIMEOUT):
                line = (await self._proc.stdout.readline()).decode(errors="replace").strip()
        except TimeoutError:
            line = "no answer"
        if "listening on ws://" not in line:
            await self._stop()
            raise TrackerUnavailable(f"the tracker did not start: {line or 'it exited'}")
        self.url = line.split("listening on ", 1)[1].split()[0]
        self._drain = asyncio.create_task(self._read_rest(), name="tracker-output")  # a full pipe would block it
        return self

    async def _read_rest(self) -> None:
        proc = self._proc
        while proc is not None and proc.stdout is not None and await proc.stdout.readline():
            pass

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()

    async def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if self._drain is not None:
            self._drain.cancel()
            self._drain = None
        if proc is not None:
            await stop_child(proc, self._killer, self._finalizer, name="tracker", timeout=5.0, whole_group=False)
        self._killer = self._finalizer = None
