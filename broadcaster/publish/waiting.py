"""What a variant still has to list after the others: one stuck file holds only its own variant.

A slot is decided once one copy is in the bucket and every other is too, or is a file Owncast is still
writing (slots.SlotAligner.take_ready). A variant whose copy is not in the bucket keeps the slot here,
under the number every variant gives it, with everything decided for it after, in order; it lists the
head once uploaded, or a gap there (EXT-X-GAP) when the copy is lost or unfinished at `give_up`
(behind.Behind): its numbers stay every other variant's.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from ..playlist.segments import ListedSegment
from .slots import Copy, succeeded


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


class Queues:
    """Per variant, the steps decided for it that wait behind a copy not yet uploaded, oldest first."""

    def __init__(self) -> None:
        self._queues: dict[int, deque[Step]] = {}

    def lagging(self, index: int) -> bool:
        """Something waits in this variant: whatever is decided for it next waits behind."""
        return index in self._queues

    def add(self, index: int, step: Step) -> None:
        self._queues.setdefault(index, deque()).append(step)

    def head(self, index: int) -> Step | None:
        queue = self._queues.get(index)
        return queue[0] if queue else None

    def pop(self, index: int) -> None:
        queue = self._queues[index]
        queue.popleft()
        if not queue:
            del self._queues[index]

    def variants(self) -> list[int]:
        return list(self._queues)

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
