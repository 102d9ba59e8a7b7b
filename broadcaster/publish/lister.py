"""One decided, uploaded copy into its variant's playlist, and the versions that go on to the Release.

The publisher decides which slot is listed where and under which number; the lister makes the entry
(the segment's URL, its date, its hash), counts it, hands it to the recorder and tells the Release
which listing the next version holds."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ..bucket.recorder import Recorder
from ..bucket.uploader import SegmentLost
from ..bucket.urls import SegmentUrls
from ..metrics import Metrics
from ..playlist.manifest import ListedSegment, Rendered, SegmentRejected
from .release import Release, Versions
from .slots import Copy, Variant

log = logging.getLogger(__name__)


class Lister:
    def __init__(self, *, urls: SegmentUrls, segment_hashes: bool, metrics: Metrics, release: Release,
                 recorder: Recorder | None, wall_clock: Callable[[], float]) -> None:
        self._urls = urls
        # P2P on (P2P_TRACKERS): each listed segment carries the SHA-256 of its bytes in the bucket, which
        # viewers check their peers' copies against (hls.SEGMENT_HASH_TAG).
        self._hashes = segment_hashes
        self._metrics = metrics
        self._release = release
        self._recorder = recorder
        self._wall = wall_clock
        self.upload_ratio = 0.0  # moving average of (PutObject time / segment duration)

    def lost(self, v: Variant, copy: Copy, err: BaseException) -> None:
        reason = err.reason if isinstance(err, SegmentLost) else "error"
        self._metrics.segments_lost.labels(variant=str(v.index), reason=reason).inc()
        if isinstance(err, SegmentLost):
            log.warning("variant %d: segment %s lost (%s): %s", v.index, copy.source.name, reason, err)
        else:
            log.error("variant %d: segment %s lost to an unexpected error: %r", v.index, copy.source.name, err)

    def list(self, v: Variant, copy: Copy, base: int, discontinuity: bool, run_name: str, wall: float,
             now: float) -> bool:
        """List `copy` in `v`'s playlist (False when the playlist refuses it: the gap is marked)."""
        gen = v.generator
        assert gen is not None
        # Each playlist numbers its own segments; an empty one (new, or after a new target) starts at
        # the highest number any variant has reached, so numbering never goes back and variants
        # listed together keep the same numbers.
        sequence = max(gen.next_sequence, base) if not gen.segment_count else gen.next_sequence
        src = copy.source
        uploaded = copy.task.result()
        segment = ListedSegment(
            uri=self._urls.segment(copy.key),
            duration=src.duration,
            program_date_time=src.program_date_time,
            discontinuity=discontinuity,
            init_uri=self._urls.init(copy.init_key) if copy.init_key else None,
            key=copy.key,
            sha256=uploaded.sha256 if self._hashes else None,
        )
        try:
            gen.append(segment, now, sequence, wall=wall)
        except SegmentRejected as err:
            self._metrics.input_rejected.labels(reason="rejected").inc()
            self._metrics.segments_lost.labels(variant=str(v.index), reason="rejected").inc()
            log.warning("variant %d: segment %s not listed: %s", v.index, src.name, err)
            gen.mark_gap()
            return False
        v.last_listed = now
        label = str(v.index)
        self._metrics.segments_listed.labels(variant=label).inc()
        self._metrics.window_segments.labels(variant=label).set(gen.segment_count)
        self._metrics.last_segment.labels(variant=label).set(self._wall())
        # Moving average over ~10 segments of the successful PutObject's time against the media it
        # carries (like Owncast's "possible slow uploads"): above 1 the bucket cannot keep up. An
        # outage does not count here: it shows as storage unreachable instead.
        ratio = uploaded.took / max(src.duration, 0.001)
        self.upload_ratio += (ratio - self.upload_ratio) * 0.2
        self._metrics.upload_realtime_ratio.set(round(self.upload_ratio, 3))
        self._release.listed((v.index, sequence, src, copy.seen_at, segment.uri))
        if self._recorder is not None:
            self._recorder.record(run_name, v.index, segment)
        return True

    def versions(self, variants: Iterable[Variant], target: int | None) -> Versions:
        """Every variant's current version, with the target it was rendered under: pushed, never asked."""
        variants = list(variants)
        return Versions(_renderings(variants), _renderings(variants, edge=True) if self._release.mirrors else {},
                        target)


def _renderings(variants: list[Variant], edge: bool = False) -> dict[int, Rendered]:
    return {v.index: v.generator.render_edge() if edge else v.generator.render()
            for v in variants
            if v.generator is not None and v.generator.segment_count and v.generator.showable}
