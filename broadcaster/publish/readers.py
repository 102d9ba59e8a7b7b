"""Readers: whether anyone reads a pathway's playlists, so its versions are made only while someone does.

While the first bucket serves (content steering's normal state), players are steered to its pathway and
nobody may read another's: the VM's pathway, a second bucket's. Making each of their versions anyway (a
rendering per variant at every push, shown, saved with what it showed) cost the VM about 1 ms of CPU per
segment while nothing failed (issue 66 item 3; bench/vm_cost.py). So a pathway other than the first
bucket's has its versions made while a client read one of its playlists within `linger` seconds (a
player on it reloads every target duration; a blocking request is held three), or while players are
steered off the first bucket (publish/pathways.py: PathwayPlan.idle).

What the server shows on such a pathway is then older than the playlist. A request that finds it so
(`read` says False) waits (`current`) for the push it asks for (`wake`: the lister's) to be saved and
shown (the Release's order: only a saved version is ever shown), which `shown` tells; a request needs
no more than that, and any number of them share one push. A second bucket's pathway's view (how far it
lists, where it listed what: pathway_views.py) is kept up to date all along: only its renderings wait.
The VM's is left where it was (no work for it per segment): read again, it lists on from the window as
it is then, and what left meanwhile, shown to no client there, is not answered there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

LINGER_TARGETS = 6  # target durations a read keeps a pathway's versions made (a held request lasts 3)
LINGER_LEAST = 20.0  # seconds, whatever the target duration


class Readers:
    """One pathway's readers: when the last one read, and whether what is shown there is current."""

    __slots__ = ("_target", "_clock", "_read_at", "_waiting", "_making", "current_now", "wake")

    def __init__(self, target: Callable[[], int | None], *, clock: Callable[[], float] = time.monotonic) -> None:
        """`target`: the target duration now (None before the first playlist was read)."""
        self._target = target
        self._clock = clock
        self._read_at: float | None = None  # when a client last read; None: not within the linger
        self._waiting: list[asyncio.Future[None]] = []
        # What the server shows on the pathway is the latest version made for it: the pushes make its
        # versions and the last was shown. False from the first push that does not make them.
        self.current_now = False
        self._making = False  # the last push made its versions
        self.wake: Callable[[], None] = lambda: None  # the lister pushes its versions again, soon

    @property
    def linger(self) -> float:
        return max(LINGER_LEAST, LINGER_TARGETS * (self._target() or 0))

    # -- the server's side: a request on the pathway --------------------------------------------------

    def read(self) -> bool:
        """A client asked for one of the pathway's playlists; True when what is shown is current (the
        request is served at once), else it waits for `current`. The hot path: a clock read."""
        self._read_at = self._clock()
        return self.current_now

    async def current(self, timeout: float) -> bool:
        """Wait for the pathway's versions to be made, saved and shown (one push for every request
        waiting); False after `timeout` (the state cannot be saved: versions are held back)."""
        if self.current_now:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        if len(self._waiting) == 1:
            self.wake()
        try:
            async with asyncio.timeout(timeout):
                await waiter
            return True
        except TimeoutError:
            return False
        finally:
            if waiter in self._waiting:
                self._waiting.remove(waiter)

    # -- the publisher's side ---------------------------------------------------------------------------

    def make(self, steered: bool = False) -> bool:
        """Whether this push makes the pathway's versions: players are steered off the first bucket
        (`steered`: every pathway's are made), or a client read it within the linger. When not, what is
        shown there stops being current (a request then waits for a push of its own)."""
        if steered:
            self._making = True
            return True
        read_at = self._read_at
        if read_at is not None:
            if self._clock() - read_at < self.linger:
                self._making = True
                return True
            self._read_at = None  # not read lately: the pushes after this one read no clock (most of them)
        if self._making:
            self._making = self.current_now = False
        return False

    def shown(self) -> None:
        """Versions made for the pathway were shown (saved first): current, unless the pushes stopped
        making them since (a save still on its way when they did shows an older push's versions)."""
        if not self._making:
            return
        self.current_now = True
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(None)
