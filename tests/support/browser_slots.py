"""How many browser modules a run's xdist workers run at once.

Each browser module plays a live stream in Chromium (several pages and players at once in some), judged
on the stream's own clock. scripts/test ran seven workers on two cores (five now), and xdist's loadgroup
hands out the browser groups first (tests/support/order.py): on the machines the suite was tuned on, six
began together and kept up. On CI's machine, whose Python ran two to three times slower for hours at a time
(other tenants' load), the same six starved each other: `goto` past 30 s, module fixtures past
pytest-timeout's 300 s, players stalled (11 failed, 44 errors). The speed changes while a run goes, so no
number measured at its start can be trusted; the bound is the machine's cores plus one.

Two parts keep it:
- `BrowserBound`, the run's scheduler (loadgroup's, the same order), hands a worker the next unit of work
  that is not a browser unit while `count` of those are out, so no worker sits idle behind one;
- `BrowserSlots`, for when only browser units are left: a worker takes a slot (a file locked with
  flock(2), freed with the process if it dies) before a browser module's first test and gives it back
  after its last, so a worker handed one more waits for another to finish. A worker holds at most one slot
  and waits holding none, so no two can wait on each other.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from xdist.scheduler import LoadGroupScheduling

WAIT = 45 * 60.0  # a slot not had in this long means a worker stuck in a browser module: say so
POLL = 0.2
TESTS_FILE = "browser-tests.json"  # the browser tests' node ids, written by a worker's collection


def at_once() -> int:
    """Browser modules at once: the machine's cores plus one (3 on the 2-core machines)."""
    return (os.cpu_count() or 1) + 1


class BrowserSlots:
    """The run's slots: `count` files in `folder`, made by the xdist controller, shared by its workers."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.paths = sorted(folder.glob("slot-*"))  # made before any worker starts: read once
        self._held: IO[bytes] | None = None

    @classmethod
    def make(cls, folder: Path, count: int) -> BrowserSlots:
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(count):
            (folder / f"slot-{n}").touch()
        return cls(folder)

    @property
    def count(self) -> int:
        return len(self.paths)

    @property
    def held(self) -> bool:
        return self._held is not None

    def take(self, who: str, wait: float = WAIT) -> float:
        """Holds a free slot, waiting for one; returns the seconds waited."""
        assert self._held is None, "a worker holds one slot at a time"
        paths = self.paths
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

    def note_tests(self, nodeids: Iterable[str]) -> None:
        """A worker's collection: which tests are browser tests, for the scheduler (replaced whole, so it
        never reads half a file)."""
        part = self.folder / f".{TESTS_FILE}.{os.getpid()}"
        part.write_text(json.dumps(sorted(nodeids)))
        part.replace(self.folder / TESTS_FILE)

    def noted_tests(self) -> list[str]:
        try:
            return list(json.loads((self.folder / TESTS_FILE).read_text()))
        except (OSError, ValueError):
            return []  # none noted: every unit is handed out in order, and the slots alone bound them


class BrowserBound(LoadGroupScheduling):  # type: ignore[misc]  # xdist is untyped
    """xdist's loadgroup, but while `slots.count` browser units are out, a worker is handed the next unit
    that is not one."""

    def __init__(self, config: Any, log: Any, slots: BrowserSlots) -> None:
        super().__init__(config, log)
        self.slots = slots
        self._browser: set[str] | None = None

    def browser_units(self) -> set[str]:
        if self._browser is None:  # the workers have collected by the time the first unit is handed out
            self._browser = {self._split_scope(nodeid) for nodeid in self.slots.noted_tests()}
        return self._browser

    def _assign_work_unit(self, node: Any) -> None:
        self.workqueue.move_to_end(self.next_unit(), last=False)
        super()._assign_work_unit(node)

    def next_unit(self) -> str:
        browser = self.browser_units()
        out = sum(1 for units in self.assigned_work.values() for scope in browser
                  if scope in units and not all(units[scope].values()))
        for scope in self.workqueue:
            if scope not in browser or out < self.slots.count:
                return str(scope)
        return str(next(iter(self.workqueue)))  # only browser units left: the worker waits at its slot
