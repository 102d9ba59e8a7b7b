"""What a ready slot's copies say, variant by variant (lister.Lister._decide): which copy is in the bucket
(listed now), which one Owncast is still writing (kept in its variant: listed later, or a gap there
alone), which one is lost (a gap there alone), and whether the slot is dropped in every variant."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..metrics import Metrics
from ..playlist import hls
from .slots import Slot, Variant

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Verdict:
    lost: dict[int, BaseException | None] = field(default_factory=dict)  # copies not listed (their error)
    held: set[int] = field(default_factory=set)  # copies Owncast is still writing
    dropped: bool = False  # a copy missing or beyond any target: no variant lists it

    def in_none(self, members: int) -> bool:
        """No variant lists it: a gap in every variant helps no player (hls.js loads a gap from another
        variant), and listing it in some only would number them differently."""
        return self.dropped or len(self.lost) + len(self.held) == members


def judged(slot: Slot, members: list[Variant], metrics: Metrics) -> Verdict | None:
    """The verdict on `slot`'s copies in `members` (None: a copy was cancelled, the publisher is closing);
    a copy missing or beyond any target is counted and said here, a lost one once it is decided where its
    gap goes."""
    verdict = Verdict()
    for v in members:
        copy = slot.copies.get(v.index)
        if copy is None:
            verdict.dropped = True
            verdict.lost[v.index] = None
            metrics.segments_lost.labels(variant=str(v.index), reason="missing").inc()
            if v.source_ended:  # ffmpeg stopped: a last short segment one variant got, another not
                log.info("variant %d: Owncast ended it before segment %d:%d; that segment is dropped in "
                         "every variant, which end together", v.index, *slot.key)
            else:
                log.warning("variant %d: Owncast never listed segment %d:%d", v.index, *slot.key)
        elif copy.ready.cancelled():
            return None
        elif not copy.ready.done():
            verdict.held.add(v.index)
        elif (err := copy.ready.exception()) is not None:
            verdict.lost[v.index] = err
        elif not hls.fits_target(copy.source.duration, hls.MAX_TARGET_DURATION):
            # Beyond any Owncast setting: a broken playlist, not a reason to slow every viewer.
            verdict.dropped = True
            verdict.lost[v.index] = None
            metrics.input_rejected.labels(reason="rejected").inc()
            metrics.segments_lost.labels(variant=str(v.index), reason="rejected").inc()
            log.warning("variant %d: segment %s not listed: EXTINF %.3fs is beyond the longest target "
                        "duration served (%ds)", v.index, copy.source.name, copy.source.duration,
                        hls.MAX_TARGET_DURATION)
    return verdict
