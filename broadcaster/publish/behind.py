"""Behind: a decided copy listed in one variant's playlist (or a gap there alone), at once or after what
waits in that variant: one stuck file holds only its own variant until its copy is uploaded, or lost or
still being written at `give_up` (then a gap: docs/hls-rules.md#a-segment-one-variant-lacks).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from ..bucket.uploader import SegmentLost
from ..metrics import Metrics
from ..playlist.segments import ListedSegment
from .parts import Parts
from .slots import Copy, Variant, succeeded
from .uploads import retrieved
from .variant_playlist import SegmentRejected

log = logging.getLogger(__name__)

# How long a variant waits past the others for a copy Owncast is still writing, in target durations: its
# next version then comes within about 1.5 of them of its last (6.2.1).
STUCK_TARGET_DURATIONS = 1.0


@dataclass(frozen=True, slots=True)
class Waiting:
    """A decided slot one variant lists under `sequence` once its copy is uploaded (a gap at `give_up`)."""

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


def never_shown(metrics: Metrics, index: int, segments: Iterable[ListedSegment], before: str) -> None:
    """Listed, never shown, and leaving unseen: each counted lost and said."""
    for segment in segments:
        metrics.segments_lost.labels(variant=str(index), reason="rejected").inc()
        log.warning("variant %d: segment %s not listed: never shown before %s", index, segment.uri, before)


def running_loop() -> asyncio.AbstractEventLoop | None:
    """None without a loop (a test driving the lister by hand): the next event catches up."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Behind:
    def __init__(self, parts: Parts, fresh: Callable[[int, Copy], bool], wake: Callable[[], None]) -> None:
        """`wake`: the lister's push, at a copy's bound."""
        self._parts = parts
        self._urls = parts.config.urls
        self._metrics = parts.metrics
        self._recorder = parts.recorder
        self._fresh = fresh
        self._wake_up = wake
        self._queues: dict[int, deque[Step]] = {}  # per variant, what waits behind a copy, oldest first
        self._timer: asyncio.TimerHandle | None = None  # the next give-up of a stuck copy
        self.closed = False  # the publisher is closing: nothing is listed any more

    def lagging(self, index: int) -> bool:
        return index in self._queues

    def add(self, index: int, step: Step) -> None:
        self._queues.setdefault(index, deque()).append(step)

    def last(self, index: int) -> Waiting | None:
        return next((s for s in reversed(self._queues.get(index, ())) if isinstance(s, Waiting)), None)

    def waiting(self) -> Iterator[tuple[int, Waiting]]:
        return ((i, step) for i, queue in self._queues.items() for step in queue if isinstance(step, Waiting))

    @property
    def count(self) -> int:
        return sum(1 for _ in self.waiting())

    def saved(self) -> dict[int, list[object]]:
        """Per variant, what waits (JSON-able): each slot as [number, URI, duration, date, discontinuity,
        init URI, key, run, uploaded], each mark as its name."""
        return {index: [step.value if isinstance(step, Mark) else
                        [step.sequence, step.segment.uri, step.segment.duration,
                         step.segment.program_date_time, step.segment.discontinuity, step.segment.init_uri,
                         step.segment.key, step.run_name, succeeded(step.copy.task)] for step in queue]
                for index, queue in self._queues.items()}

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def step(self, v: Variant, mark: Mark) -> None:
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
        """List what waits in each variant as far as it can (`force`: a copy not in the bucket is a gap)."""
        if self.closed:
            return
        p = self._parts
        now = p.config.monotonic()
        for index, queue in list(self._queues.items()):
            v = p.variants.get(index)
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
                        writing = p.waited.writing(index, step.copy.source.name)
                        if not force and (now < step.give_up or not writing):
                            break
                        log.warning("variant %d: %s still %s %.1fs after the other variants listed it; a gap here "
                                    "(EXT-X-GAP), uploaded late once finished", index, step.copy.source.name,
                                    "being written by Owncast" if writing else "not in the bucket",
                                    now - step.give_up + STUCK_TARGET_DURATIONS * (p.target.value or 1))
                        self.list_gap(v, step, now)
                        # Its upload goes on, late (for recordings and clips).
                        p.late.add(index, step.copy.key, step.run_name, step.copy.task)
                        step.copy.ready.add_done_callback(retrieved)  # its outcome is the late upload's
                    elif (err := ready.exception()) is not None:
                        self.lost(v, step.copy, err)
                        self.list_gap(v, step, now)
                    else:
                        self.list_segment(v, step, now)
                queue.popleft()
            if not queue:
                del self._queues[index]
        self._arm(now)

    def _arm(self, now: float) -> None:
        """Wake at the first bound of a copy that holds its variant."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        bounds = [step.give_up for queue in self._queues.values()
                  if isinstance(step := queue[0], Waiting) and not step.copy.ready.done()]
        if bounds and (loop := running_loop()) is not None:
            self._timer = loop.call_later(max(0.0, min(bounds) - now) + 0.001, self._wake)

    def _wake(self) -> None:
        self._timer = None
        if not self.closed:
            self._wake_up()

    def segment(self, copy: Copy, discontinuity: bool) -> ListedSegment:
        """The entry a copy is listed as (without its hash)."""
        src = copy.source
        return ListedSegment(uri=self._urls.segment(copy.key), duration=src.duration,
                             program_date_time=src.program_date_time, discontinuity=discontinuity,
                             init_uri=self._urls.init(copy.init_key) if copy.init_key else None, key=copy.key)

    def lost(self, v: Variant, copy: Copy, err: BaseException) -> None:
        """A copy lost before it was listed: counted and said (only as DEBUG if an outage's lines tell it)."""
        reason = err.reason if isinstance(err, SegmentLost) else "error"
        self._metrics.segments_lost.labels(variant=str(v.index), reason=reason).inc()
        if isinstance(err, SegmentLost):
            log.log(logging.DEBUG if err.told else logging.WARNING, "variant %d: segment %s lost (%s): %s",
                    v.index, copy.source.name, reason, err)
        else:
            log.error("variant %d: segment %s lost to an unexpected error: %r", v.index, copy.source.name, err)

    def list_gap(self, v: Variant, step: Waiting, now: float) -> bool:
        """List `step`'s segment as a gap in `v` alone and in the recording (False when refused)."""
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

    def list_segment(self, v: Variant, step: Waiting, now: float) -> bool:
        """List `step`'s copy in `v`'s playlist (False when refused)."""
        playlist = v.playlist
        sequence = max(playlist.next_sequence, step.sequence) if not playlist.listing else playlist.next_sequence
        copy, segment = step.copy, step.segment
        src = copy.source
        sha256 = copy.ready.result()  # of the bytes uploaded, or kept by the VM: the same read
        if self._parts.config.segment_hashes:  # P2P on
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
        self._metrics.last_segment.labels(variant=label).set(self._parts.config.wall_clock())
        self._parts.release.listed((v.index, sequence, src, copy.seen_at, segment.uri))
        if self._recorder is not None:
            self._recorder.record(step.run_name, v.index, segment)
        return True
