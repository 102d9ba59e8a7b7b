"""Intake: a segment Owncast lists for the first time, taken in: its slot (slots.Lanes: which aligner,
and whether Owncast cut its run's variants apart), its upload (uploads.Uploads) and the done-callbacks
that take it on to the lister once it is ready, never back to the publisher."""

from __future__ import annotations

import functools
import logging

from ..source.owncast import SourceSegment, stream_id
from .lister import Lister
from .parts import Parts
from .slots import Copy, Variant, apart

log = logging.getLogger(__name__)


class Intake:
    def __init__(self, parts: Parts, lister: Lister) -> None:
        self._variants = parts.variants
        self._lanes = parts.lanes
        self._numbering = parts.numbering
        self._target = parts.target
        self._uploads = parts.uploads
        self._lister = lister
        self._metrics = parts.metrics

    def add(self, v: Variant, seg: SourceSegment, number: int, now: float) -> None:
        """`seg`, Owncast's `number` in `v`, seen for the first time."""
        key = (self._numbering.run(stream_id(seg.name) or f"run-{v.restarts}"), number)
        self._metrics.segments_seen.labels(variant=str(v.index)).inc()
        v.last_new_segment = now
        together = self._lanes.together
        aligner = self._lanes.lane(v.index, key[0], self._variants)
        if aligner is together and aligner.is_late(key) and self._lanes.late_and_apart(v, seg, key):
            self._cut_apart(key[0], seg.duration)
            aligner = self._lanes.lane(v.index, key[0], self._variants)
        if aligner.is_late(key):
            self._metrics.segments_lost.labels(variant=str(v.index), reason="late").inc()
            log.warning("variant %d: %s arrived after its slot was decided; not listed", v.index, seg.name)
            return
        v.first.setdefault(key[0], key[1])
        v.last_key = key if v.last_key is None else max(v.last_key, key)
        slot = aligner.slot(key)
        slot.discontinuity |= seg.discontinuity
        task, ready, seg_key, init_key, others = self._uploads.start(v.index, seg, key[0])
        # Listed once ready (held by the VM, or uploaded to some bucket), shown on each bucket's pathway
        # once uploaded there.
        lister = self._lister
        task.add_done_callback(functools.partial(lister.on_uploaded, v.index, seg.duration))
        ready.add_done_callback(functools.partial(lister.on_ready, task))
        for other in others.values():
            other.add_done_callback(lister.on_done)
        aligner.add_copy(slot, v.index, Copy(seg, seg_key, init_key, now, task, ready, others))
        if aligner is together and apart(seg, [c.source for i, c in slot.copies.items() if i != v.index]):
            self._cut_apart(key[0])
        self._lanes.counted()

    def _cut_apart(self, run: int, longest: float = 0.0) -> None:
        """Owncast cut this run's variants at different instants (video passthrough): its segment
        numbers no longer name the same moment in every variant, so from now on each variant lists
        its own segments as they come, and players line variants up by PROGRAM-DATE-TIME and
        discontinuity numbers (docs/hls-rules.md, "Variants cut apart")."""
        # Raise the target now, while nothing of the slots moved is listed. Before anything of the run was
        # listed, every variant is at its start: each starts its new playlist there on a new timeline. Once
        # some variant listed (or waits to list) a slot of it, or has a slot of a run before to decide, the
        # raise keeps the timeline, so every variant lists a moment under one discontinuity number (6.2.4).
        aligned = not self._lister.started(run) and not self._lanes.behind((run, -1))
        longest = max(longest, self._lanes.cut_apart(run, self._variants))
        self._lister.retarget(self._target.raise_for(longest, "longer_segment", aligned=aligned))
