"""How many browser modules a run's xdist workers run at once.

Browser modules judge players on the stream's own clock; on a slow or shared machine several at once
starve each other (`goto` past 30 s, stalled players), and the machine's speed changes during a run, so
the bound is fixed: the cores plus one. Two parts keep it:
- `BrowserBound`, the run's scheduler (loadgroup's order), hands a worker other work while `count`
  browser units are out, so no worker sits idle behind one;
- `BrowserSlots`, for when only browser units are left: a worker takes a slot (a file locked with
  flock(2), freed if the process dies) before a browser module's first test and gives it back after its
  last. A module marked `browser(slots=N)` takes N at once, all or none (a worker waits holding none).
  The steering module takes two: its four players are judged on seconds of an outage."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Mapping
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
        self._held: list[IO[bytes]] = []

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
        return bool(self._held)

    def take(self, who: str, weight: int = 1, wait: float = WAIT) -> float:
        """Holds `weight` free slots (at most all of them), waiting until that many are free at once; returns
        the seconds waited."""
        assert not self._held, "a worker holds one module's slots at a time"
        paths = self.paths
        if not paths:
            raise RuntimeError(f"tests/support/browser_slots.py: no slot files in {self.folder}")
        weight = max(1, min(weight, len(paths)))
        began = time.monotonic()
        while True:
            for path in paths:
                handle = path.open("rb")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue
                self._held.append(handle)
                if len(self._held) == weight:
                    return time.monotonic() - began
            self.give()  # fewer free than it needs: it waits holding none
            if time.monotonic() - began > wait:
                raise RuntimeError(f"{who}: no {weight} browser slot(s) in {wait:.0f} s ({len(paths)} in "
                                   f"{self.folder}): a worker is stuck in a browser module")
            time.sleep(POLL)

    def give(self) -> None:
        for handle in self._held:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        self._held.clear()

    def note_tests(self, weights: Mapping[str, int]) -> None:
        """A worker's collection: which tests are browser tests, and the slots each takes, for the scheduler
        (replaced whole, so it never reads half a file)."""
        part = self.folder / f".{TESTS_FILE}.{os.getpid()}"
        part.write_text(json.dumps(dict(sorted(weights.items()))))
        part.replace(self.folder / TESTS_FILE)

    def noted_tests(self) -> dict[str, int]:
        try:
            return {str(k): int(v) for k, v in json.loads((self.folder / TESTS_FILE).read_text()).items()}
        except (OSError, ValueError, AttributeError):
            return {}  # none noted: every unit is handed out in order, and the slots alone bound them


class BrowserBound(LoadGroupScheduling):  # type: ignore[misc]  # xdist is untyped
    """xdist's loadgroup, but while the browser units out take `slots.count` slots (or too many for the next
    browser unit to fit), a worker is handed the next unit that is not one."""

    def __init__(self, config: Any, log: Any, slots: BrowserSlots) -> None:
        super().__init__(config, log)
        self.slots = slots
        self._browser: dict[str, int] | None = None

    def browser_units(self) -> dict[str, int]:
        """Each browser unit, and the slots it takes."""
        if self._browser is None:  # the workers have collected by the time the first unit is handed out
            self._browser = {}
            for nodeid, weight in self.slots.noted_tests().items():
                scope = self._split_scope(nodeid)
                self._browser[scope] = max(weight, self._browser.get(scope, 1))
        return self._browser

    def _assign_work_unit(self, node: Any) -> None:
        self.workqueue.move_to_end(self.next_unit(), last=False)
        super()._assign_work_unit(node)

    def next_unit(self) -> str:
        browser = self.browser_units()
        out = sum(weight for units in self.assigned_work.values() for scope, weight in browser.items()
                  if scope in units and not all(units[scope].values()))
        for scope in self.workqueue:
            if scope not in browser or out + min(browser[scope], self.slots.count) <= self.slots.count:
                return str(scope)
        return str(next(iter(self.workqueue)))  # only browser units left: the worker waits at its slot
