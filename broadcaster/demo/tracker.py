"""A local WebTorrent tracker for `hls-broadcaster demo --p2p` (and the P2P tests): broadcaster/tracker/,
installed once per lock file into a cache folder with npm, run with Node on a free loopback port, and
started again on that port if it dies (the viewers were told its URL)."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

from .children import GroupKiller, StartClock, child_argv, stop_child
from .ports import kept_port

log = logging.getLogger(__name__)

TRACKER_FILES = Path(__file__).resolve().parent.parent / "tracker"  # shipped in the wheel
_RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0)  # after each death in a row; reset once it runs a minute
_STEADY = 60.0


def free_port() -> int:
    """A loopback port for a tracker whose URL must be known before it starts: below the ephemeral
    range and reserved on this machine while this process runs (ports.py), so nothing of ours takes it
    before the tracker binds it (a port from bind(0), released, may go to any outgoing connection)."""
    return kept_port()


class TrackerUnavailable(RuntimeError):
    """The tracker cannot run here; the message says what is missing."""


def which(name: str) -> str | None:
    return shutil.which(name)


def install(cache: Path | None = None) -> Path:
    """The tracker's folder with its node_modules (`npm ci --ignore-scripts`, once per lock file) and this
    package's modules. Several processes may ask at once (the test workers, two checkouts, a demo beside
    them): the install is done under a lock, and each module is replaced whole (a tracker starting from
    the folder never reads one half copied: run2 of 2026-11-25 failed on server.mjs:29)."""
    node, npm = which("node"), which("npm")
    if node is None or npm is None:
        raise TrackerUnavailable("Node.js (node and npm) is not installed; apt install nodejs npm to try P2P")
    lock = (TRACKER_FILES / "package-lock.json").read_bytes()
    root = cache or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hls-broadcaster"
    folder = root / f"tracker-{hashlib.sha256(lock).hexdigest()[:16]}"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not (folder / "node_modules" / "bittorrent-tracker" / "server.js").is_file():
            for name in ("package.json", "package-lock.json"):
                shutil.copy(TRACKER_FILES / name, folder / name)
            # --ignore-scripts: the library's client half would build a native module the server never loads.
            done = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=folder,
                                  capture_output=True, text=True, timeout=300, check=False,
                                  stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise TrackerUnavailable(f"npm could not install the tracker ({last})")
        for module in TRACKER_FILES.glob("*.mjs"):  # always the package's own, each replaced whole
            data = module.read_bytes()
            target = folder / module.name
            if not target.is_file() or target.read_bytes() != data:
                part = target.with_name(f".{module.name}.{os.getpid()}")
                part.write_bytes(data)
                os.replace(part, target)
    return folder


class LocalTracker:
    """`async with LocalTracker(folder) as t:` t.url is its ws:// URL; stopped (and never left) on exit.

    service: the service's base URL (TRACKER_SERVICE_URL), whose stream alone it then serves, as on the
    VM; None = any swarm (TRACKER_ANY_SWARM: tests of the viewer that do not care).
    env, node_args: more of its environment and Node's flags (the systemd unit's, in the tests); port: 0 =
    a free one. If it dies it is started again on the same port, after a short delay that grows while
    it keeps dying.
    """

    def __init__(self, folder: Path, *, service: str | None = None, env: Mapping[str, str] | None = None,
                 node_args: Sequence[str] = (), port: int = 0) -> None:
        self._folder = folder
        self._env = {**os.environ, **(env or {}), "TRACKER_HOST": "127.0.0.1", "TRACKER_PORT": str(port),
                     **({"TRACKER_SERVICE_URL": service} if service else {"TRACKER_ANY_SWARM": "1"})}
        self._node_args = list(node_args)
        self._proc: asyncio.subprocess.Process | None = None
        self._killer: GroupKiller | None = None
        self._finalizer: weakref.finalize[[], LocalTracker] | None = None
        self.url = ""
        self.restarts = 0  # how many times it died and was started again
        self._watch: asyncio.Task[None] | None = None
        self.lines: list[str] = []  # its output, the last few hundred lines

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    async def __aenter__(self) -> LocalTracker:
        await self._start()
        self._env["TRACKER_PORT"] = self.url.rsplit(":", 1)[1]  # a restart takes the same port
        self._watch = asyncio.create_task(self._supervise(), name="tracker")
        return self

    async def _start(self) -> None:
        node = which("node")
        if node is None:
            raise TrackerUnavailable("Node.js (node) is not installed")
        # Its own session (a signal to the caller's group does not reach it), and it dies with this process
        # even when that is SIGKILLed (child_argv): a killed test run or demo leaves no tracker behind.
        self._proc = proc = await asyncio.create_subprocess_exec(
            *child_argv([node, *self._node_args, "tracker.mjs"]), cwd=self._folder, env=self._env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True)
        self._killer = GroupKiller(proc.pid)
        self._finalizer = weakref.finalize(self, self._killer)
        assert proc.stdout is not None
        # Its first line says where it listens: waited for while Node gets on (StartClock), not for a
        # fixed time a loaded machine may not give it.
        clock = StartClock(proc.pid)
        first = asyncio.ensure_future(proc.stdout.readline())
        while not first.done() and clock.expired() is None:
            await asyncio.wait({first}, timeout=0.5)
        if first.done():
            line = first.result().decode(errors="replace").strip()
        else:
            first.cancel()
            line = f"no answer ({clock.expired()})"
        if "listening on ws://" not in line:
            await self._stop()
            raise TrackerUnavailable(f"the tracker did not start: {line or 'it exited'}")
        self._note(line)
        self.url = line.split("listening on ", 1)[1].split()[0]

    def _note(self, line: str) -> None:
        self.lines.append(line)
        del self.lines[:-300]

    async def _supervise(self) -> None:
        """Reads its output (a full pipe would block it) and starts it again when it dies."""
        failures = 0
        loop = asyncio.get_running_loop()
        while True:
            proc = self._proc
            assert proc is not None and proc.stdout is not None
            began = loop.time()
            while line := await proc.stdout.readline():
                self._note(line.decode(errors="replace").rstrip())
            code = await proc.wait()
            failures = 0 if loop.time() - began > _STEADY else failures + 1
            delay = _RESTART_DELAYS[min(failures, len(_RESTART_DELAYS)) - 1] if failures else _RESTART_DELAYS[0]
            last = self.lines[-1] if self.lines else "no output"
            log.warning("the P2P tracker exited (status %s: %s); starting it again in %.1f s", code, last, delay)
            if self._killer is not None:
                self._killer.done = True
            if self._finalizer is not None:
                self._finalizer.detach()
            self._proc = self._killer = self._finalizer = None
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._start()
                    break
                except TrackerUnavailable as err:
                    log.warning("the P2P tracker could not start again: %s; trying again in %.1f s", err, delay)
                    delay = _RESTART_DELAYS[-1]
            self.restarts += 1

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()

    async def _stop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        proc, self._proc = self._proc, None
        if proc is not None:
            await stop_child(proc, self._killer, self._finalizer, name="tracker", timeout=5.0, whole_group=False)
        self._killer = self._finalizer = None
