"""How many browser modules a run's xdist workers run at once, and the slots that hold them to it.

Each browser module plays a live stream in Chromium (several pages at once in some), judged on the stream's
own clock. scripts/test runs seven workers on two cores; on the machines the suite was tuned on, every
browser group could begin together. On one about three times slower (a Python addition 160 ns rather than
55: `pace_ns`), seven at once starved every page: `goto` past 30 s, module fixtures past pytest-timeout's
300 s, players stalled. So a run holds the browser modules to a number its machine can carry
(`slots_for`), measured at the start of the run, and the other workers go on with the tests without a
browser meanwhile.

A slot is a file locked with flock(2) for as long as a worker runs one browser module's tests (their
module fixtures included): the lock goes with the process, so a worker that dies frees its slot. A worker
holds at most one slot and waits for one holding none, so no two workers can wait on each other.
"""

from __future__ import annotations

import fcntl
import time
from pathlib import Path
from typing import IO

MOST = 7  # every worker (scripts/test's -n 7): the fast machines' pace, unchanged
FEWEST = 2
FAST_NS = 55.0  # a Python addition on the machines the suite was tuned on (7 at once held there)
WAIT = 45 * 60.0  # a slot not had in this long means a worker stuck in a browser module: say so
POLL = 0.2


def pace_ns(additions: int = 300_000, runs: int = 5) -> float:
    """Nanoseconds a Python addition takes here: the best of a few short runs (the least disturbed one)."""
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        total = 0
        for i in range(additions):
            total += i
        best = min(best, time.perf_counter() - began)
    return best / additions * 1e9


def slots_for(ns: float) -> int:
    """Browser modules at once for a machine whose Python addition takes `ns`: MOST at the pace the suite
    was tuned on, fewer in proportion on a slower one, never below FEWEST."""
    return max(FEWEST, min(MOST, int(MOST * FAST_NS / ns)))


class BrowserSlots:
    """The run's slots: `count` files in `folder`, made by the xdist controller, shared by its workers."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._held: IO[bytes] | None = None

    @classmethod
    def make(cls, folder: Path, count: int) -> BrowserSlots:
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(count):
            (folder / f"slot-{n}").touch()
        return cls(folder)

    @property
    def held(self) -> bool:
        return self._held is not None

    def take(self, who: str, wait: float = WAIT) -> float:
        """Holds a free slot, waiting for one; returns the seconds waited."""
        assert self._held is None, "a worker holds one slot at a time"
        paths = sorted(self.folder.glob("slot-*"))
        if not paths:
            raise RuntimeError(f"tests/support/browser_slots.py: no slot files in {self.folder}")
        began = time.monotonic()
        while True:
            for path in paths:
                handle = path.open("rb")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue
                self._held = handle
                return time.monotonic() - began
            if time.monotonic() - began > wait:
                raise RuntimeError(f"{who}: no browser slot in {wait:.0f} s ({len(paths)} in {self.folder}): "
                                   "a worker is stuck in a browser module")
            time.sleep(POLL)

    def give(self) -> None:
        if self._held is not None:
            fcntl.flock(self._held, fcntl.LOCK_UN)
            self._held.close()
            self._held = None

