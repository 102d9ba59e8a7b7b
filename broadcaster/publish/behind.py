"""Behind: what a variant lists after the others (waiting.py), listed as far as it can at each push:
a copy once it is in the bucket (or kept by the VM), a gap there alone (EXT-X-GAP) once it is lost or
Owncast is still writing it a bound after the others listed it; woken at the next such bound."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .listings import Listings
from .parts import Parts
from .slots import Copy, Variant
from .uploads import retrieved
from .waiting import STUCK_TARGET_DURATIONS, Mark, Queues, Waiting

log = logging.getLogger(__name__)


def running_loop() -> asyncio.AbstractEventLoop | None:
    """None without a loop (a test driving the lister by hand): the next event catches up."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Behind:
    def __init__(self, parts: Parts, listings: Listings, fresh: Callable[[int, Copy], bool],
                 wake: Callable[[], None]) -> None:
        """`fresh`: Lister._fresh; `wake`: the lister's push, at a copy's bound."""
        self._variants = parts.variants
        self._target = parts.target
        self._listings = listings
        self._waited = parts.waited
        self._late = parts.late
        self._fresh = fresh
        self._wake_up = wake
        self._mono = parts.config.monotonic
        self.queues = Queues()  # per variant, what waits behind a copy not yet in the bucket
        self._timer: asyncio.TimerHandle | None = None  # the next give-up of a stuck copy
        self.closed = False  # the publisher is closing: nothing is listed any more

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def step(self, v: Variant, mark: Mark) -> None:
        """Now, or after what waits in `v`."""
        if self.queues.lagging(v.index):
            self.queues.add(v.index, mark)
        else:
            self._apply(v, mark)

    def _apply(self, v: Variant, mark: Mark) -> None:
        if mark is Mark.GAP:
            v.playlist.gap()
        elif v.playlist.end():
            log.info("variant %d: Owncast ended the stream; playlist closed with ENDLIST", v.index)

    def catch_up(self, force: bool = False) -> None:
        """List what waits in each variant as far as it can: copies uploaded, gaps where a copy is lost
        or still being written past its bound (`force`: every copy not in the bucket now, before the
        playlists start again under a new target). Then wake again at the next bound."""
        if self.closed:
            return
        now = self._mono()
        for index in self.queues.variants():
            v = self._variants.get(index)
            while v is not None and (step := self.queues.head(index)) is not None:
                if isinstance(step, Mark):
                    self._apply(v, step)
                else:
                    ready = step.copy.ready  # in the bucket, or kept by the VM (its pathway lists it)
                    if ready.cancelled():
                        return  # closing
                    if ready.done() and ready.exception() is None and not self._fresh(index, step.copy):
                        continue  # written again since its upload: waited for again (the same step)
                    if not ready.done():
                        writing = self._waited.writing(index, step.copy.source.name)
                        if not force and (now < step.give_up or not writing):
                            break
                        log.warning("variant %d: %s still %s %.1fs after the other variants listed it; a gap here "
                                    "(EXT-X-GAP), uploaded late once finished", index, step.copy.source.name,
                                    "being written by Owncast" if writing else "not in the bucket",
                                    now - step.give_up + STUCK_TARGET_DURATIONS * (self._target.value or 1))
                        self._listings.gap(v, step, now)
                        # Its variant lists a gap there from now on: its upload goes on, late (for recordings
                        # and clips), lost only if Owncast never finishes the file.
                        self._late.add(index, step.copy.key, step.run_name, step.copy.task)
                        step.copy.ready.add_done_callback(retrieved)  # its outcome is the late upload's
                    elif (err := ready.exception()) is not None:
                        self._listings.lost(v, step.copy, err)
                        self._listings.gap(v, step, now)
                    else:
                        self._listings.list(v, step, now)
                self.queues.pop(index)
        self._arm(now)

    def _arm(self, now: float) -> None:
        """Wake at the first bound of a copy that holds its variant (none: no timer)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        bounds = [step.give_up for index in self.queues.variants()
                  if isinstance(step := self.queues.head(index), Waiting) and not step.copy.ready.done()]
        if not bounds:
            return
        if (loop := running_loop()) is not None:
            self._timer = loop.call_later(max(0.0, min(bounds) - now) + 0.001, self._wake)

    def _wake(self) -> None:
        self._timer = None
        if not self.closed:
            self._wake_up()
