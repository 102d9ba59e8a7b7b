"""The target duration: the one owner of EXT-X-TARGETDURATION for every variant's playlist, decided from
Owncast's first stream playlist (or TARGET_DURATION), then kept while Owncast changes underneath
(docs/hls-rules.md, "A new target duration"). Its decision (a Retarget) the lister applies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from ..metrics import Metrics
from ..playlist import hls
from .slots import Slot, Variant

log = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class Retarget:
    """A new target duration: every variant's playlist starts again at the same address under it."""

    target: int
    new_timeline: bool


def doubled(need: int, current: int) -> int:
    """At least doubled (capped): longer segments cost a new playlist once or twice, not at each."""
    return max(need, min(hls.MAX_TARGET_DURATION, 2 * current))


class TargetPolicy:
    def __init__(self, floor: int | None, metrics: Metrics) -> None:
        self._floor = floor or 0  # TARGET_DURATION: the smallest target allowed (longer segments raise it)
        self.value: int | None = floor or None  # None until Owncast's first stream playlist was read
        self.independent = True  # Owncast's EXT-X-INDEPENDENT-SEGMENTS, read with the first target
        self._metrics = metrics

    def first(self, advertised: int, independent: bool, source_target: int) -> None:
        if self.value is not None:
            return
        self.value = max(self._floor, advertised)
        self.independent = independent
        self._metrics.target_duration.set(self.value)
        log.info("target duration %ds (Owncast advertises %ds)", self.value, source_target)

    def keep_for(self, window: float) -> float:
        """How long an object a playlist served may still name must be kept."""
        return 1.5 * window + (self.value or 0)

    def fit(self, slot: Slot, members: list[Variant], variants: Iterable[Variant], last_run: int | None,
            together: bool, started: bool, aligned: bool = True) -> Retarget | None:
        """Keep 4.4.3.1 and 6.2.1: a new stream gets the target its playlists advertise; a longer segment
        raises it. `started`: the run has a slot decided; `aligned`: no variant has an earlier one to list."""
        current = self.value
        if current is None:
            return None
        variants = list(variants)
        need = max(hls.rounded_duration(c.source.duration) for c in slot.copies.values())
        run = slot.key[0]
        runs = [v.playlist.last_run for v in members]
        # Once per stream (variants cut apart reach its first slot each in a lane of its own).
        new_stream = not started and (any(r is not None and r != run for r in runs) or (
            last_run is not None and last_run != run and all(r is None for r in runs)))
        if new_stream:
            advertised = max((v.advertised for v in variants
                              if v.last_key is not None and v.last_key[0] == run), default=need)
            wanted, reason = max(self._floor, advertised, need), "new_stream"
            if wanted < current and not _ended(variants):
                # No EXT-X-ENDLIST between: video.js misplaces a new playlist with a shorter target.
                self._metrics.target_kept.inc()
                log.warning("new stream with a target duration of %ds after one of %ds that did not end "
                            "(no EXT-X-ENDLIST): keeping %ds, players go on through a discontinuity; the "
                            "target drops at the next stream that follows an end", wanted, current, current)
                return None
        elif need > current:
            wanted, reason = doubled(need, current), "longer_segment"
        else:
            return None
        return self._set(wanted, reason, slot, together, aligned)

    def raise_for(self, duration: float, reason: str, *, aligned: bool = True) -> Retarget | None:
        """A segment of `duration` must fit (`aligned`: as in `fit`)."""
        current = self.value
        need = hls.rounded_duration(duration)
        if current is not None and need > current:
            return self._set(doubled(need, current), reason, None, True, aligned)
        return None

    def _set(self, wanted: int, reason: str, slot: Slot | None, together: bool, aligned: bool) -> Retarget | None:
        current = self.value
        wanted = min(wanted, hls.MAX_TARGET_DURATION)
        if current is None or wanted == current:
            return None
        # A new timeline (players re-anchor at a discontinuity), except for variants cut apart or while not
        # every variant has listed as far: only keeping it then keeps one moment under one number (6.2.4).
        new_timeline = aligned and (reason == "new_stream" or together)
        self.value = wanted
        self._metrics.target_duration.set(wanted)
        self._metrics.target_changes.labels(reason=reason).inc()
        if reason == "new_stream":
            log.warning("new stream with a target duration of %ds (was %ds): the playlists start again at "
                        "the same addresses", wanted, current)
        elif slot is None:
            log.warning("variants cut apart with segments up to %ds: target raised from %ds to %ds, the "
                        "playlists start again at the same addresses; TARGET_DURATION=%d avoids this",
                        wanted, current, wanted, wanted)
        else:
            longest = max((c.source for c in slot.copies.values()), key=lambda src: src.duration)
            log.warning("segment %s lasts %.3fs, longer than the target duration %ds (video passthrough?): "
                        "target raised to %ds, the playlists start again at the same addresses; "
                        "TARGET_DURATION=%d avoids this", longest.name, longest.duration, current, wanted, wanted)
        return Retarget(wanted, new_timeline)


def _ended(variants: Iterable[Variant]) -> bool:
    """Every playlist that lists anything ends with EXT-X-ENDLIST."""
    return all(v.playlist.ended for v in variants if v.playlist.listing)
