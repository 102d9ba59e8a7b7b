"""Lists what is uploaded, in Owncast's order, and pushes the new versions on to the Release.

The publisher gives each copy its slot and starts its upload; a finished upload comes here (its
done-callback is `on_done`), not back to the publisher. The lister takes the slots that are ready
(slots.SlotAligner), decides each in every member variant or in none, asks the target policy whether
the target must change (target.TargetPolicy returns a Retarget, which the lister applies to every
playlist), makes each entry (the segment's URL, its date, its hash), lists it through the variant's
playlist (variant_playlist.VariantPlaylist, whose intents are the only way a playlist changes),
counts it, hands it to the recorder and pushes every variant's new version to the Release, with the
publisher's memory when a state file is kept: every call that changes that memory ends in `advance`,
so the latest version pushed carries the memory as it is now, and a save needs to ask nothing back.

What it is given, it uses: the variants (what was read of Owncast, and each one's playlist), the
slots (lanes.Lanes), the target policy, the numbering the playlists share (numbering.Numbering: read,
and told each listing), and the publisher's memory as a function (`memory`). Its own: the upload ratio
and what Owncast announced last (for recordings)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..bucket.recorder import Recorder
from ..bucket.uploader import SegmentLost, Uploaded
from ..metrics import Metrics
from ..playlist import hls
from ..playlist.segments import ListedSegment, Removed
from ..source.owncast import SourceVariant
from .config import PublisherConfig
from .lanes import Lanes
from .numbering import Numbering
from .release import Release, Versions
from .slots import END, Copy, Slot, SlotAligner, Variant
from .target import Retarget, TargetPolicy
from .variant_playlist import RemovedHook, SegmentRejected
from .variants import Variants

log = logging.getLogger(__name__)

MemoryNow = Callable[[float], dict[str, object]]  # the publisher's memory at a moment (memory.encode's JSON)


class Lister:
    def __init__(self, config: PublisherConfig, *, metrics: Metrics, release: Release,
                 recorder: Recorder | None, on_removed: RemovedHook | None, variants: Variants,
                 lanes: Lanes, target: TargetPolicy, numbering: Numbering, memory: MemoryNow) -> None:
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
        self._memory = memory
        self.upload_ratio = 0.0  # moving average of (PutObject time / segment duration)
        # The VM keeps each copy (content steering): a slot is listed once kept, the bucket's playlists
        # show it once uploaded.
        self.ahead = False
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

    def on_done(self, _ready: asyncio.Future[Any]) -> None:
        """A copy may be listed now (the done-callback of its `ready`): what it completes is listed."""
        if not self._closed:
            self.advance()

    def on_uploaded(self, index: int, duration: float, task: asyncio.Future[Uploaded]) -> None:
        """An upload finished (its done-callback): the upload ratio learns its time, what it completes is
        listed (without the VM's pathway a copy is ready once uploaded), and the bucket's playlists show
        what is now in the bucket."""
        if not task.cancelled() and task.exception() is None:
            # Moving average over ~10 segments of the successful PutObject's time against the media it
            # carries (like Owncast's "possible slow uploads"): above 1 the bucket cannot keep up. An
            # outage does not count here: it shows as storage unreachable instead.
            ratio = task.result().took / max(duration, 0.001)
            self.upload_ratio += (ratio - self.upload_ratio) * 0.2
            self._metrics.upload_realtime_ratio.set(round(self.upload_ratio, 3))
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
                    if v.playlist.end():
                        log.info("variant %d: Owncast ended the stream; playlist closed with ENDLIST", v.index)
                continue
            if previous[0] == key[0] and key[1] != previous[1] + 1:
                # Owncast's numbering jumped: segments we never saw (e.g. written while we were down
                # and already cleaned up). The next one marks the gap.
                log.warning("segments %d..%d of run %d were never seen; marking the gap", previous[1] + 1,
                            key[1] - 1, key[0])
                for v in members:
                    v.playlist.gap()
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
            elif copy.ready.cancelled():
                return
            elif (err := copy.ready.exception()) is not None:
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
                v.playlist.gap()
                if v.index not in failed:
                    self._metrics.segments_lost.labels(variant=str(v.index), reason="sibling_lost").inc()
            return
        numbering = self._numbering
        variants = self._variants.values()
        self.retarget(self._target.fit(slot, members, variants, numbering.last_run, together))
        base = numbering.next_sequence  # where an empty playlist starts: the same for every variant of it
        wall = self._wall()  # one clock reading per slot: a date made up here is the same in every variant
        run_name = numbering.run_name(slot.key[0]) if self._recorder is not None else ""  # the recording's
        flags = {v.index: slot.discontinuity or ((numbering.last_run if v.playlist.last_run is None
                                                  else v.playlist.last_run) not in (None, slot.key[0]))
                 for v in members}
        # The discontinuity number the variants already listing at `base` give this slot: a variant
        # that is new, or back after streams without it, starts its playlist there too (6.2.4).
        number = max((v.playlist.next_discontinuity(flags[v.index]) for v in members
                      if v.playlist.listing and v.playlist.next_sequence == base), default=None)
        for v in members:
            playlist = v.playlist
            if not playlist.opened:
                continue
            if together and number is not None:
                if playlist.listing and playlist.next_sequence < base:
                    # Back after streams without it (Owncast's variants 3 -> 1 -> 3): its numbers fell
                    # behind the others'. A new playlist at the same address, where the others are.
                    playlist.rejoin(base, number, self._mono())
                elif not playlist.listing:
                    playlist.join(number)  # new in this stream: the discontinuities listed before it count
            elif not together and not playlist.listing:
                self._join_apart(v, slot.key[0])
            if self.list(v, slot.copies[v.index], base, flags[v.index], slot.key[0], run_name, wall, self._mono()):
                numbering.listed(playlist.next_sequence, slot.key[0])

    def retarget(self, decision: Retarget | None) -> None:
        """Apply the target policy's decision to every variant's playlist at once."""
        if decision is None:
            return
        now = self._mono()
        for v in self._variants.values():
            for segment in v.playlist.retarget(decision.target, now, new_timeline=decision.new_timeline):
                self._metrics.segments_lost.labels(variant=str(v.index), reason="rejected").inc()
                log.warning("variant %d: segment %s not listed: never shown before the new playlist, whose "
                            "target duration %ds it does not fit", v.index, segment.uri, decision.target)

    def _join_apart(self, v: Variant, run: int) -> None:
        """A variant new in a run whose variants are cut apart (each listed from its own lane) starts at
        the discontinuity number the others give this run, as a new variant listed together does (6.2.4;
        players line variants cut apart up by date and discontinuity number): theirs where they already
        list this run, else the one their first segment of it will get."""
        numbers = []
        for o in self._variants.values():
            p = o.playlist
            if o is not v and not o.withdrawn and p.listing:
                numbers.append(p.last_discontinuity if p.last_run == run else p.next_discontinuity(True))
        if numbers:
            v.playlist.join(max(numbers))

    def lost(self, v: Variant, copy: Copy, err: BaseException) -> None:
        reason = err.reason if isinstance(err, SegmentLost) else "error"
        self._metrics.segments_lost.labels(variant=str(v.index), reason=reason).inc()
        if isinstance(err, SegmentLost):
            log.warning("variant %d: segment %s lost (%s): %s", v.index, copy.source.name, reason, err)
        else:
            log.error("variant %d: segment %s lost to an unexpected error: %r", v.index, copy.source.name, err)

    def list(self, v: Variant, copy: Copy, base: int, discontinuity: bool, run: int, run_name: str, wall: float,
             now: float) -> bool:
        """List `copy` (of `run`) in `v`'s playlist (False when the playlist refuses it: the gap is marked)."""
        playlist = v.playlist
        # Each playlist numbers its own segments; an empty one (new, or after a new target) starts at
        # the highest number any variant has reached, so numbering never goes back and variants
        # listed together keep the same numbers.
        sequence = max(playlist.next_sequence, base) if not playlist.listing else playlist.next_sequence
        src = copy.source
        sha256 = copy.ready.result()
        segment = ListedSegment(
            uri=self._urls.segment(copy.key),
            duration=src.duration,
            program_date_time=src.program_date_time,
            discontinuity=discontinuity,
            init_uri=self._urls.init(copy.init_key) if copy.init_key else None,
            key=copy.key,
            sha256=sha256 if self._hashes else None,
        )
        try:
            playlist.list(segment, run, now, sequence, wall, upload=copy.task)
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
            self._recorder.record(run_name, v.index, segment)
        return True

    def versions(self) -> Versions:
        """Every variant's current version, with the target it was rendered under and, when a state file
        is kept, the publisher's memory to save with it: pushed, never asked. With the VM's pathway
        ahead (`ahead`), also the bucket's versions, which list only what is in the bucket."""
        release, variants = self._release, self._variants
        if not self.ahead:
            return Versions(variants.versions(), variants.versions(edge=True) if release.mirrors else {},
                            self._target.value, self._memory(self._mono()) if release.saves else None)
        now = self._mono()
        bucket = variants.bucket_versions(now)
        return Versions(variants.versions(), variants.bucket_versions(now, edge=True) if release.mirrors else {},
                        self._target.value, self._memory(now) if release.saves else None, bucket=bucket)
