"""Listings: one decided copy listed in one variant's playlist (or a gap there alone), counted, told to
the Release and recorded; the lister decides which, and when (lister.Lister)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..bucket.uploader import SegmentLost
from ..metrics import Metrics
from ..playlist.segments import ListedSegment
from .parts import Parts
from .slots import Copy, Variant
from .variant_playlist import SegmentRejected

if TYPE_CHECKING:  # behind.py lists through Listings
    from .behind import Waiting

log = logging.getLogger(__name__)


def never_shown(metrics: Metrics, index: int, segments: Iterable[ListedSegment], before: str) -> None:
    """Listed, never shown, and leaving unseen: each counted lost (`rejected`) and said."""
    for segment in segments:
        metrics.segments_lost.labels(variant=str(index), reason="rejected").inc()
        log.warning("variant %d: segment %s not listed: never shown before %s", index, segment.uri, before)


class Listings:
    def __init__(self, parts: Parts) -> None:
        config = parts.config
        self._urls = config.urls
        self._hashes = config.segment_hashes  # P2P on (PublisherConfig.segment_hashes)
        self._wall = config.wall_clock
        self._metrics = parts.metrics
        self._release = parts.release
        self._recorder = parts.recorder

    def segment(self, copy: Copy, discontinuity: bool) -> ListedSegment:
        """The entry a copy is listed as (its hash added once its upload is done)."""
        src = copy.source
        return ListedSegment(
            uri=self._urls.segment(copy.key),
            duration=src.duration,
            program_date_time=src.program_date_time,
            discontinuity=discontinuity,
            init_uri=self._urls.init(copy.init_key) if copy.init_key else None,
            key=copy.key,
        )

    def lost(self, v: Variant, copy: Copy, err: BaseException) -> None:
        """A copy lost before it was listed: counted, and said (a loss an outage's lines count already,
        OutageLog.lost, only as DEBUG: a long outage loses hundreds)."""
        reason = err.reason if isinstance(err, SegmentLost) else "error"
        self._metrics.segments_lost.labels(variant=str(v.index), reason=reason).inc()
        if isinstance(err, SegmentLost):
            log.log(logging.DEBUG if err.told else logging.WARNING, "variant %d: segment %s lost (%s): %s",
                    v.index, copy.source.name, reason, err)
        else:
            log.error("variant %d: segment %s lost to an unexpected error: %r", v.index, copy.source.name, err)

    def gap(self, v: Variant, step: Waiting, now: float) -> bool:
        """List `step`'s segment as a gap (EXT-X-GAP) in `v` alone, under its number: the others list its
        moment under it (False when the playlist refuses it: the gap is marked with a discontinuity). So
        does the recording (its segment may land late)."""
        playlist = v.playlist
        gap = replace(step.segment, gap=True, sha256=None)
        try:
            playlist.list(gap, step.run, now, step.sequence, step.wall)
        except SegmentRejected as err:
            log.warning("variant %d: gap for %s not listed: %s", v.index, step.segment.uri, err)
            return False
        self._metrics.window_segments.labels(variant=str(v.index)).set(playlist.segment_count)
        if self._recorder is not None and step.run_name:
            self._recorder.record(step.run_name, v.index, gap)
        return True

    def list(self, v: Variant, step: Waiting, now: float) -> bool:
        """List `step`'s copy in `v`'s playlist as its segment, its hash added (False when the playlist
        refuses it: the gap is marked). `step.sequence`: where an empty playlist starts."""
        playlist = v.playlist
        # Each playlist numbers its own segments; an empty one (new, or after a new target) starts at
        # the highest number any variant has reached, so numbering never goes back and variants
        # listed together keep the same numbers.
        sequence = max(playlist.next_sequence, step.sequence) if not playlist.listing else playlist.next_sequence
        copy, segment = step.copy, step.segment
        src = copy.source
        sha256 = copy.ready.result()  # of the bytes uploaded, or kept by the VM: the same read
        if self._hashes:
            segment = replace(segment, sha256=sha256)
        try:
            playlist.list(segment, step.run, now, sequence, step.wall, landings=copy.landings())
        except SegmentRejected as err:
            self._metrics.input_rejected.labels(reason="rejected").inc()
            self._metrics.segments_lost.labels(variant=str(v.index), reason="rejected").inc()
            log.warning("variant %d: segment %s not listed: %s", v.index, src.name, err)
            return False
        label = str(v.index)
        self._metrics.segments_listed.labels(variant=label).inc()
        self._metrics.window_segments.labels(variant=label).set(playlist.segment_count)
        self._metrics.last_segment.labels(variant=label).set(self._wall())
        self._release.listed((v.index, sequence, src, copy.seen_at, segment.uri))
        if self._recorder is not None:
            self._recorder.record(step.run_name, v.index, segment)
        return True
