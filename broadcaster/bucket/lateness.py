"""The uploads to one bucket not done yet, oldest first, and the one timer that tells the steering loop
when the oldest has waited too long: armed once a later upload starts while the oldest has waited
ARM_AFTER, cancelled once none waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

ARM_AFTER = 0.5  # more than between the variants' uploads of one segment, less than between segments


class Waiting:
    """`on_late()`: told once when the oldest upload has waited `late_after()` seconds (None: nobody asks)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._began: dict[int, float] = {}  # each upload not done yet -> when it began (in order)
        self._next_id = 0
        self.on_late: Callable[[], None] = lambda: None
        self.late_after: Callable[[], float | None] = lambda: None
        self._late: asyncio.TimerHandle | None = None
        self._told = -1  # the upload on_late was told of (its ID)

    def now(self) -> tuple[int, float | None]:
        oldest = next(iter(self._began.values()), None)
        return len(self._began), None if oldest is None else self._clock() - oldest

    def begin(self) -> int:
        upload_id, self._next_id = self._next_id, self._next_id + 1
        began = self._began
        now = began[upload_id] = self._clock()
        if self._late is None and now - next(iter(began.values())) >= ARM_AFTER:
            self._arm()  # an upload from before waits still
        return upload_id

    def end(self, upload_id: int) -> None:
        began = self._began
        del began[upload_id]
        if (late := self._late) is not None:
            if not began:  # none waits: nothing for it to find
                late.cancel()
                self._late = None
        elif upload_id == self._told and began:  # the one told of is done: the next oldest's turn
            self._arm()

    def _arm(self, fired: bool = False) -> None:
        """The timer for the oldest upload waiting; `fired`: it went off, and the oldest now may be late."""
        if fired:
            self._late = None
        if (after := self.late_after() if self._began else None) is None:
            return
        oldest, began = next(iter(self._began.items()))
        if fired and self._clock() - began >= after:
            self._told = oldest
            self.on_late()
        elif oldest != self._told:
            delay = max(0.0, began + after - self._clock()) + 0.01  # a hair past: it wakes to a late one
            self._late = asyncio.get_running_loop().call_later(delay, self._arm, True)
