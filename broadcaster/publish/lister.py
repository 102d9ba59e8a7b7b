"""Lists what is uploaded, in Owncast's order, and pushes the new versions on to the Release.

The publisher gives each copy its slot and starts its upload; a finished upload comes here (its
done-callback is `on_done`), not back to the publisher. The lister takes the slots that are ready
(slots.SlotAligner), decides each in every member variant or in none, keeps the target fitting
(target.TargetPolicy), makes each entry (the segment's URL, its date, its hash), counts it, hands it to
the recorder, sends what left the playlists to the cleaner (`on_removed`) and pushes every variant's
new version to the Release, with the publisher's memory when a state file is kept (`memory`): every
call that changes that memory ends in `advance`, so the latest version pushed carries the memory as
it is now, and a save needs to ask nothing back.

What it reads and records through belongs to its owners, which the publisher builds and hands over:
the variants (read only: variants.Variants; a listing is recorded with Variant.listed), the slots
(lanes.Lanes), the target (target.TargetPolicy), the numbering (numbering.Numbering) and the uploads
(the keys a restored state says are in the bucket). Its own: the upload ratio and what Owncast
announced last (for recordings)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from ..bucket.recorder import Recorder
from ..bucket.uploader import SegmentLost, Uploaded
from ..metrics import Metrics
from ..playlist import hls
from ..playlist.manifest import ManifestGenerator, SegmentRejected
from ..playlist.rendered import Rendered
from ..playlist.segments import ListedSegment, Removed
from ..source.owncast import SourceVariant
from .config import PublisherConfig
from .lanes import Lanes
from .memory import Memory, encode
from .numbering import Numbering
from .release import Release, Versions
from .slots import END, Copy, Slot, SlotAligner, Variant
from .target import TargetPolicy
from .uploads import Uploads

log = logging.getLogger(__name__)

RemovedHook = Callable[[list[Removed]], None]


class Lister:
    def __init__(self, config: PublisherConfig, *, metrics: Metrics, release: Release,
                 recorder: Recorder | None, on_removed: RemovedHook | None, variants: Mapping[int, Variant],
                 lanes: Lanes, target: TargetPolicy, numbering: Numbering, uploads: Uploads) -> None:
        self._urls = config.urls
        # P2P on (P2P_TRACKERS): each listed segment carries the SHA-256 of its bytes in the bucket, which
        # viewers check their peers' copies against (hls.SEGMENT_HASH_TAG).
        self._hashes = config.segment_hashes
        self._wall = config.wall_clock
        self._mono = config.monotonic
        self._metrics = metrics
        self._release = release
        self._recorder = recorder
        self.on_removed = on_removed  # segments that left every playlist go on to the cleaner
        self._variants = variants
        self._lanes = lanes
        self._target = target
        self._numbering = numbering
        self._uploads = uploads
        self.upload_ratio = 0.0  # moving average of (PutObject time / segment duration)
        self._announced: list[SourceVariant] | None = None  # as Owncast's master names them (recordings)
        self._closed = False

    def drop(self, removed: list[Removed]) -> None:
        """Segments that left every playlist go on to the cleaner."""
        if removed and self.on_removed is not None:
            self.on_removed(removed)

    def announce(self, variants: list[SourceVariant]) -> None:
        """Owncast's multivariant playlist names these variants (what a recording's master lists)."""
        self._announced = variants

    def close(self) -> None:
        """Nothing is listed any more (the publisher is closing: uploads are cancelled)."""
        self._closed = True

    # -- listing, in order, the same slots in every variant ------------------------------------------

    def on_done(self, _task: asyncio.Future[Uploaded]) -> None:
        """An upload finished (its done-callback): what it completes is listed now."""
        if not self._closed:
            self.advance()

    def advance(self) -> None:
        """List every slot that is ready, then push the new versions to the Release."""
        self._advance_with(self._lanes.together, list(self._variants.values()))
        for index, lane in self._lanes.own().items():
            v = self._variants.get(index)
            if v is not None:
                self._advance_with(lane, [v])
        self._lanes.counted()
        self._release.changed(self.versions())

    def _advance_with(self, aligner: SlotAligner, variants: list[Variant]) -> None:
        while (ready := aligner.take_ready(variants, self._mono, self._target.value)):
            slot, members, previous = ready.slot, ready.members, ready.previous
            key = slot.key
            if key[1] == END:
                if self._recorder is not None and self._target.value is not None:
                    name = self._numbering.run_name(key[0])
                    self._recorder.finish(name, self._target.value, self._announced)
                for v in members:
                    if v.generator is not None and not v.generator.ended:
                        v.generator.end()
                        log.info("variant %d: Owncast ended the stream; playlist closed with ENDLIST", v.index)
                continue
            if previous[0] == key[0] and key[1] != previous[1] + 1:
                # Owncast's numbering jumped: segments we never saw (e.g. written while we were down
                # and already cleaned up). The next one marks the gap.
                log.warning("segments %d..%d of run %d were never seen; marking the gap", previous[1] + 1,
                            key[1] - 1, key[0])
                for v in members:
                    if v.generator is not None:
                        v.generator.mark_gap()
            self._decide(slot, members, together=aligner is self._lanes.together)

    def _decide(self, slot: Slot, members: list[Variant], together: bool = True) -> None:
        """List the slot in every member, or in none; `together`: the variants are numbered alike (not
        variants cut apart, each numbered on its own)."""
        failed: set[int] = set()  # variants whose own copy cannot be listed
        for v in members:
            copy = slot.copies.get(v.index)
            if copy is None:
                failed.add(v.index)
                self._metrics.segments_lost.labels(variant=str(v.index), reason="missing").inc()
                log.warning("variant %d: Owncast never listed segment %d:%d", v.index, *slot.key)
            elif copy.task.cancelled():
                return
            elif (err := copy.task.exception() or self._uploads.changed(v.index, copy)) is not None:
                failed.add(v.index)
                self.lost(v, copy, err)
            elif not hls.fits_target(round(copy.source.duration, 3), hls.MAX_TARGET_DURATION):
                # Beyond any Owncast setting: a broken playlist, not a reason to slow every viewer.
                failed.add(v.index)
                self._metrics.input_rejected.labels(reason="rejected").inc()
                self._metrics.segments_lost.labels(variant=str(v.index), reason="rejected").inc()
                log.warning("variant %d: segment %s not listed: EXTINF %.3fs is beyond the longest target "
                            "duration served (%ds)", v.index, copy.source.name, copy.source.duration,
                            hls.MAX_TARGET_DURATION)
        if failed:
            # Listing it in some variants only would number them differently: drop it everywhere.
            for v in members:
                if v.generator is not None:
                    v.generator.mark_gap()
                if v.index not in failed:
                    self._metrics.segments_lost.labels(variant=str(v.index), reason="sibling_lost").inc()
            return
        numbering = self._numbering
        variants = self._variants.values()
        self.drop(self._target.fit(slot, members, variants, numbering.last_run, together, self._mono()))
        base = numbering.next_sequence  # where an empty playlist starts: the same for every variant of it
        wall = self._wall()  # one clock reading per slot: a date made up here is the same in every variant
        run_name = numbering.run_name(slot.key[0]) if self._recorder is not None else ""  # the recording's
        flags = {v.index: slot.discontinuity or ((numbering.last_run if v.last_run is None else v.last_run)
                                                 not in (None, slot.key[0])) for v in members}
        # The discontinuity number the variants already listing at `base` give this slot: a variant
        # that is new, or back after streams without it, starts its playlist there too (6.2.4).
        number = max((v.generator.next_discontinuity(flags[v.index]) for v in members
                      if v.generator is not None and v.generator.segment_count
                      and v.generator.next_sequence == base), default=None)
        for v in members:
            gen = v.generator
            if together and gen is not None and number is not None:
                if gen.segment_count and gen.next_sequence < base:
                    # Back after streams without it (Owncast's variants 3 -> 1 -> 3): its numbers fell
                    # behind the others'. A new playlist at the same address, where the others are.
                    gen.restart(gen.target_duration, self._mono(), sequence=base, discontinuity_sequence=number)
                    log.info("variant %d: back in Owncast's stream; its playlist starts again at %d", v.index, base)
                elif not gen.segment_count:
                    gen.join(number)  # new in this stream: the discontinuities listed before it count
            elif not together and gen is not None and not gen.segment_count:
                self._join_apart(v, gen, slot.key[0])
            now = self._mono()
            if self.list(v, slot.copies[v.index], base, flags[v.index], run_name, wall, now):
                assert gen is not None
                numbering.listed(gen.next_sequence, slot.key[0])
                self.drop(gen.drain_removed())
                v.listed(slot.key[0], now)

    def _join_apart(self, v: Variant, gen: ManifestGenerator, run: int) -> None:
        """A variant new in a run whose variants are cut apart (each listed from its own lane) starts at
        the discontinuity number the others give this run, as a new variant listed together does (6.2.4;
        players line variants cut apart up by date and discontinuity number): theirs where they already
        list this run, else the one their first segment of it will get."""
        numbers = []
        for o in self._variants.values():
            g = o.generator
            if o is not v and not o.withdrawn and g is not None and g.segment_count:
                numbers.append(g.last_discontinuity if o.last_run == run else g.next_discontinuity(True))
        if numbers:
            gen.join(max(numbers))

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

    def versions(self) -> Versions:
        """Every variant's current version, with the target it was rendered under and, when a state file
        is kept, the publisher's memory to save with it: pushed, never asked."""
        variants = list(self._variants.values())
        release = self._release
        return Versions(_renderings(variants), _renderings(variants, edge=True) if release.mirrors else {},
                        self._target.value, self.memory(self._mono()) if release.saves else None)

    def memory(self, now: float) -> dict[str, object]:
        """The publisher's memory, JSON-able (memory.py): numbering, windows, what is seen and uploaded."""
        lanes, target, numbering = self._lanes, self._target, self._numbering
        m = Memory(self._variants, target.value, target.independent, numbering.next_sequence,
                   numbering.last_run, lanes.together.decided, numbering.runs, self._uploads.restored,
                   discontinuity_floor=numbering.discontinuity_floor)
        return encode(m, lanes.undecided(), now)


def _renderings(variants: list[Variant], edge: bool = False) -> dict[int, Rendered]:
    return {v.index: v.generator.render_edge() if edge else v.generator.render()
            for v in variants
            if v.generator is not None and v.generator.segment_count and v.generator.showable}
