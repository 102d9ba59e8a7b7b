"""What a variant still has to list after the others: one stuck file holds only its own variant
(docs/hls-rules.md#a-segment-one-variant-lacks). A variant whose copy of a decided slot is not in the
bucket keeps the slot here, under the number every variant gives it, with everything decided for it
after, in order. Behind lists it as far as it can at each push: the head once uploaded (or kept by the
VM), or a gap there (EXT-X-GAP) once the copy is lost or still being written at `give_up`, a bound after
the others listed it; woken at the next such bound.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..playlist.segments import ListedSegment
from .listings import Listings
from .parts import Parts
from .slots import Copy, Variant, succeeded
from .uploads import retrieved

log = logging.getLogger(__name__)

# How long a variant waits past the others for a copy Owncast is still writing, in target durations:
# its next version then comes within about 1.5 of them of its last, as 6.2.1 asks of every playlist.
# Owncast has a body within milliseconds of the playlist that names it, so by then the writer is stuck.
STUCK_TARGET_DURATIONS = 1.0


@dataclass(frozen=True, slots=True)
class Waiting:
    """A decided slot one variant lists once its copy is uploaded: `segment` as it is listed (its hash
    added once uploaded), under `sequence`; a gap there if the copy is lost, or not finished by Owncast
    at `give_up` (monotonic)."""

    copy: Copy
    segment: ListedSegment
    sequence: int
    run: int
    run_name: str  # the recording's
    wall: float  # the clock reading of its slot: a date made up for it is the same in every variant
    give_up: float


class Mark(enum.Enum):
    GAP = "gap"  # a slot dropped in every variant: the next segment carries EXT-X-DISCONTINUITY
    END = "end"  # the stream ended: EXT-X-ENDLIST


Step = Waiting | Mark


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
        # Per variant, the steps decided for it that wait behind a copy not yet in the bucket, oldest first.
        self._queues: dict[int, deque[Step]] = {}
        self._timer: asyncio.TimerHandle | None = None  # the next give-up of a stuck copy
        self.closed = False  # the publisher is closing: nothing is listed any more

    def lagging(self, index: int) -> bool:
        """Something waits in this variant: whatever is decided for it next waits behind."""
        return index in self._queues

    def add(self, index: int, step: Step) -> None:
        self._queues.setdefault(index, deque()).append(step)

    def last(self, index: int) -> Waiting | None:
        """The last slot waiting in this variant: the next one decided for it is numbered after it."""
        return next((s for s in reversed(self._queues.get(index, ())) if isinstance(s, Waiting)), None)

    def waiting(self) -> Iterator[tuple[int, Waiting]]:
        for index, queue in self._queues.items():
            for step in queue:
                if isinstance(step, Waiting):
                    yield index, step

    @property
    def count(self) -> int:
        return sum(1 for _ in self.waiting())

    def saved(self) -> dict[int, list[object]]:
        """Per variant, what waits (JSON-able): each slot as [number, URI, duration, date, discontinuity,
        init URI, key, run, uploaded] (run: its recording's; uploaded: in the bucket already, so a start
        lists it, else a gap there, uploaded late), each mark as its name."""
        out: dict[int, list[object]] = {}
        for index, queue in self._queues.items():
            out[index] = [step.value if isinstance(step, Mark) else
                          [step.sequence, step.segment.uri, step.segment.duration,
                           step.segment.program_date_time, step.segment.discontinuity, step.segment.init_uri,
                           step.segment.key, step.run_name, succeeded(step.copy.task)] for step in queue]
        return out

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def step(self, v: Variant, mark: Mark) -> None:
        """Now, or after what waits in `v`."""
        if self.lagging(v.index):
            self.add(v.index, mark)
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
        for index, queue in list(self._queues.items()):
            v = self._variants.get(index)
            while v is not None and queue:
                step = queue[0]
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
                queue.popleft()
            if not queue:
                del self._queues[index]
        self._arm(now)

    def _arm(self, now: float) -> None:
        """Wake at the first bound of a copy that holds its variant (none: no timer)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        bounds = [step.give_up for queue in self._queues.values()
                  if isinstance(step := queue[0], Waiting) and not step.copy.ready.done()]
        if not bounds:
            return
        if (loop := running_loop()) is not None:
            self._timer = loop.call_later(max(0.0, min(bounds) - now) + 0.001, self._wake)

    def _wake(self) -> None:
        self._timer = None
        if not self.closed:
            self._wake_up()
