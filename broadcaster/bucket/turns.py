"""A bucket's retries while it fails: one at a time, on the bucket's backoff, not a timer per upload (a
backlog of N would try N/7.5 times a second); all at once when it works again (`open`). An upload whose bytes
exist nowhere any more ends lost instead of waiting."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

Alive = Callable[[], bool]  # whether an upload's bytes are still somewhere (a copy, or Owncast's file)


SWEEP_EVERY = 1.0  # seconds at least between sweeps as uploads come to wait (a stat per waiting upload)


class RetryTurns:
    """`delay(n)`: the wait before the bucket's turn number `n` since it last worked (uploader.Backoff)."""

    def __init__(self, delay: Callable[[int], float], sleep: Callable[[float], Awaitable[None]]) -> None:
        self._delay = delay
        self._sleep = sleep
        self._queue: deque[tuple[asyncio.Future[None], Alive | None]] = deque()  # oldest first
        self._live = 0  # uploads waiting in the queue (a cancelled one leaves its future until it is reached)
        self._turns = 0  # turns given since the bucket last worked
        self._giver: asyncio.Task[None] | None = None
        self._swept = -SWEEP_EVERY  # the event loop's time of the last sweep

    def __len__(self) -> int:
        return self._live

    async def wait(self, alive: Alive | None = None) -> None:
        """Until this upload's turn, the bucket works again, or `alive()` is False (None: never)."""
        loop = asyncio.get_running_loop()
        if self._queue and loop.time() - self._swept >= SWEEP_EVERY:
            self._sweep()
        turn: asyncio.Future[None] = loop.create_future()
        self._queue.append((turn, alive))
        self._live += 1
        if self._giver is None:
            self._giver = asyncio.ensure_future(self._give())
        try:
            await turn
        finally:
            self._live -= 1
            if not self._live:  # the last one waiting went (cancelled): no turn to give
                self._stop_giving()

    def open(self) -> None:
        """The bucket works: every upload waiting goes now, and the backoff starts again from its first."""
        self._turns = 0
        self._stop_giving()
        queue, self._queue = self._queue, deque()
        for turn, _ in queue:
            if not turn.done():
                turn.set_result(None)

    async def _give(self) -> None:
        try:
            while True:
                await self._sleep(self._delay(self._turns))
                self._turns += 1
                queue = self._queue
                while queue:
                    turn, _ = queue.popleft()
                    if not turn.done():
                        turn.set_result(None)  # it tries once; failed, it queues again at the back
                        break
                self._sweep()
                if not self._queue:
                    return
        finally:
            if self._giver is asyncio.current_task():
                self._giver = None

    def _sweep(self) -> None:
        """Release the uploads whose bytes are gone, and drop the finished entries from the queue."""
        kept: deque[tuple[asyncio.Future[None], Alive | None]] = deque()
        for turn, alive in self._queue:
            if turn.done():
                continue
            if alive is None or alive():
                kept.append((turn, alive))
            else:
                turn.set_result(None)
        self._queue = kept
        self._swept = asyncio.get_running_loop().time()

    def _stop_giving(self) -> None:
        giver, self._giver = self._giver, None
        if giver is not None and giver is not asyncio.current_task():
            giver.cancel()
