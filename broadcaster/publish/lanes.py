"""Which SlotAligner a segment's copy waits in: the one every variant shares, or, for a run whose
variants Owncast cuts at different instants (a copied variant next to transcoded ones), a lane of
the variant's own (docs/hls-rules.md, "Variants cut apart")."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from ..metrics import Metrics
from ..source.owncast import SourceSegment
from .slots import Slot, SlotAligner, SlotKey, Variant

log = logging.getLogger(__name__)


def apart(seg: SourceSegment, others: list[SourceSegment]) -> bool:
    """This copy does not cover the same moment as the other variants' copies of its slot (more than
    half a second apart in date or length: ffmpeg's lockstep cuts differ by a frame or two)."""
    for o in others:
        if abs(o.duration - seg.duration) > 0.5:
            return True
        if o.program_date_time is not None and seg.program_date_time is not None \
                and abs(o.program_date_time - seg.program_date_time) > 0.5:
            return True
    return False


class Lanes:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.together = SlotAligner()
        self._apart: set[int] = set()  # runs cut apart: each variant is listed from a lane of its own
        self._lanes: dict[int, SlotAligner] = {}

    def lane(self, index: int, run: int, variants: Mapping[int, Variant]) -> SlotAligner:
        if run not in self._apart:
            return self.together
        lane = self._lanes.get(index)
        if lane is None:
            lane = self._lanes[index] = SlotAligner()
            v = variants.get(index)
            # What was decided together stays decided; a variant that had no copy in it lists the run from its
            # start. A copy decided together that waits in its variant counts: else its lane saw the next slot
            # as a jump and marked a gap that variant alone has (6.2.4).
            joined = v is not None and (v.playlist.last_run == run or self.together.joined(index, run))
            lane.decided = self.together.decided if joined else min(self.together.decided, (run, -1))
        return lane

    def rounds(self, decide: Callable[[SlotAligner, list[Variant]], bool], variants: Mapping[int, Variant]) -> None:
        """`decide` each lane (the lane together with every variant, each variant's own lane with it), round
        after round while any lane decides a slot: a lane's slot may wait for another lane's (`bound`)."""
        if not self._lanes:  # no run cut apart (the usual case): one lane, one round
            decide(self.together, list(variants.values()))
            return
        progressed = True
        while progressed:
            progressed = decide(self.together, list(variants.values()))
            for index, lane in self._lanes.items():
                v = variants.get(index)
                if v is not None:
                    progressed = decide(lane, [v]) or progressed

    def bound(self, lane: SlotAligner) -> SlotKey | None:
        """`lane` decides only slots before this one (None: any): the first undecided in a lane that shares a
        variant with it. A variant lists its slots in order, so its discontinuity numbers never run ahead of
        the others' (6.2.4) when a new run's first segment lands before the last run's last one."""
        if lane is not self.together:
            return self.together.first
        return min((first for own in self._lanes.values() if (first := own.first) is not None), default=None)

    def behind(self, key: SlotKey) -> bool:
        """Some lane has a slot before `key` still undecided: a variant has not listed that far yet, so a new
        timeline started now would start it there, at a moment the others listed on the one before (6.2.4)."""
        return any(first is not None and first < key
                   for first in (self.together.first, *(own.first for own in self._lanes.values())))

    def late_and_apart(self, v: Variant, seg: SourceSegment, key: SlotKey) -> bool:
        """A copy whose slot was decided together before it came, and which does not cover the moment
        that slot's copies covered: the variants are cut apart (a copied variant whose playlist came
        after the transcoded ones' first segments), not this variant late."""
        if key[0] in self._apart or v.playlist.last_run == key[0]:
            return False
        decided = self.together.decided_copy(key)
        return decided is not None and apart(seg, [decided])

    def cut_apart(self, run: int, variants: Mapping[int, Variant]) -> float:
        """From now on each variant lists `run` from its own lane: the run's undecided slots move there.
        Returns the longest copy moved (the target must fit it before any of them is listed)."""
        self._metrics.variants_cut_apart.inc()
        log.warning("Owncast cuts the variants of this stream at different instants (video passthrough?); "
                    "listing each variant on its own, lined up by time. hls.js switches between them (Shaka 4.16 "
                    "mostly); video.js (Owncast's own page) freezes when it switches (docs/hls-rules.md, "
                    "\"Variants cut apart\")")
        self._apart.add(run)
        moved = self.together.take_run(run)
        for slot in moved:
            for index, copy in slot.copies.items():
                lane = self.lane(index, run, variants)
                again = lane.slot(slot.key)
                again.discontinuity |= slot.discontinuity
                lane.add_copy(again, index, copy)
        return max((c.source.duration for slot in moved for c in slot.copies.values()), default=0.0)

    def restored(self, decided: SlotKey) -> None:
        self.together.decided = decided

    def counted(self) -> None:
        """The upload queue gauge follows."""
        self._metrics.upload_queue.set(self.queued)

    def undecided(self) -> list[Slot]:
        """Every slot not yet listed or dropped, together and variant by variant."""
        return [*self.together.slots(), *(s for lane in self._lanes.values() for s in lane.slots())]

    @property
    def queued(self) -> int:
        return self.together.queued + sum(lane.queued for lane in self._lanes.values())
