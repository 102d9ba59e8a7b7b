"""Takes in each segment Owncast lists for the first time, decides each ready slot in every member variant
or in none (judged), lists it through behind.Behind in Owncast's order, and pushes the new versions with
the publisher's memory to the Release: every change to that memory ends in `advance`."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..bucket.uploader import Uploaded
from ..metrics import Metrics
from ..playlist import hls
from ..source.owncast import SourceSegment, stream_id
from .behind import STUCK_TARGET_DURATIONS, Behind, Mark, Waiting, never_shown, running_loop
from .parts import Parts
from .release import Versions
from .slots import END, Copy, Slot, SlotAligner, Variant, apart, succeeded
from .target import Retarget
from .uploads import ready_after

log = logging.getLogger(__name__)

MemoryNow = Callable[[float], dict[str, object]]  # the publisher's memory at a moment (Recall.memory's JSON)


@dataclass(slots=True)
class Verdict:
    """What a ready slot's copies say: which are lost or still being written, and whether none is listed."""

    lost: dict[int, BaseException | None] = field(default_factory=dict)  # copies not listed (their error)
    held: set[int] = field(default_factory=set)  # copies Owncast is still writing
    dropped: bool = False  # a copy missing or beyond any target: no variant lists it


def judged(slot: Slot, members: list[Variant], metrics: Metrics) -> Verdict | None:
    """The verdict on `slot`'s copies in `members` (None: a copy was cancelled, closing)."""
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
            verdict.dropped = True
            verdict.lost[v.index] = None
            metrics.input_rejected.labels(reason="rejected").inc()
            metrics.segments_lost.labels(variant=str(v.index), reason="rejected").inc()
            log.warning("variant %d: segment %s not listed: EXTINF %.3fs is beyond the longest target "
                        "duration served (%ds)", v.index, copy.source.name, copy.source.duration,
                        hls.MAX_TARGET_DURATION)
    return verdict


class Lister:
    def __init__(self, parts: Parts, memory: MemoryNow) -> None:
        self._wall = parts.config.wall_clock
        self._mono = parts.config.monotonic
        self._metrics = parts.metrics
        self._release = parts.release
        self._recorder = parts.recorder
        self._variants = parts.variants
        self._lanes = parts.lanes
        self._target = parts.target
        self._numbering = parts.numbering
        self._memory = memory
        self._waited = parts.waited
        self._uploads = parts.uploads
        self.behind = Behind(parts, self._fresh, self.advance)
        self.upload_ratio = 0.0  # moving average of an upload's time / its media's (/health): above 1, slow

    # -- a copy taken in -------------------------------------------------------------------------------

    def add(self, v: Variant, seg: SourceSegment, number: int, now: float) -> None:
        """`seg`, Owncast's `number` in `v`, seen for the first time."""
        key = (self._numbering.run(stream_id(seg.name) or f"run-{v.restarts}"), number)
        self._metrics.segments_seen.labels(variant=str(v.index)).inc()
        v.last_new_segment = now
        together = self._lanes.together
        aligner = self._lanes.lane(v.index, key[0], self._variants)
        if aligner is together and key <= aligner.decided and self._lanes.late_and_apart(v, seg, key):
            self._cut_apart(key[0], seg.duration)
            aligner = self._lanes.lane(v.index, key[0], self._variants)
        if key <= aligner.decided:  # listed (or dropped) in the other variants: it cannot join late
            self._metrics.segments_lost.labels(variant=str(v.index), reason="late").inc()
            log.warning("variant %d: %s arrived after its slot was decided; not listed", v.index, seg.name)
            return
        v.first.setdefault(key[0], key[1])
        v.last_key = key if v.last_key is None else max(v.last_key, key)
        slot = aligner.slot(key)
        slot.discontinuity |= seg.discontinuity
        copy = self._uploads.start(v.index, seg, key[0], now)
        copy.task.add_done_callback(functools.partial(self.on_uploaded, v.index, seg.duration))
        copy.ready.add_done_callback(functools.partial(self.on_ready, copy.task))
        for other in copy.others.values():
            other.add_done_callback(self.on_done)
        aligner.add_copy(slot, v.index, copy)
        if aligner is together and apart(seg, [c.source for i, c in slot.copies.items() if i != v.index]):
            self._cut_apart(key[0])
        self._metrics.upload_queue.set(self._lanes.queued)

    def _cut_apart(self, run: int, longest: float = 0.0) -> None:
        """Owncast cut this run's variants apart (docs/hls-rules.md): each lists its own segments now."""
        # The target is raised now, while nothing moved is listed: on a new timeline only before anything
        # of the run is listed or any earlier slot waits, else one moment would have two numbers (6.2.4).
        aligned = not self.started(run) and not self._lanes.behind((run, -1))
        longest = max(longest, self._lanes.cut_apart(run, self._variants))
        self.retarget(self._target.raise_for(longest, "longer_segment", aligned=aligned))

    def on_done(self, _ready: asyncio.Future[Any]) -> None:
        if not self.behind.closed:
            self.advance()

    def on_ready(self, task: asyncio.Future[Uploaded], ready: asyncio.Future[Any]) -> None:
        """on_done for a copy's `ready`, unless its first bucket's upload `task` is done (that pushes)."""
        if not task.done():
            self.on_done(ready)

    def on_uploaded(self, index: int, duration: float, task: asyncio.Future[Uploaded]) -> None:
        """An upload finished: the upload ratio learns its time."""
        if succeeded(task):
            self.upload_ratio += (task.result().took / max(duration, 0.001) - self.upload_ratio) * 0.2
            self._metrics.upload_realtime_ratio.set(round(self.upload_ratio, 3))
        self.on_done(task)

    def advance(self) -> None:
        """List what is ready, then push the new versions to the Release."""
        self.behind.catch_up()
        self._lanes.rounds(self._advance_with, self._variants)
        self.behind.catch_up()
        self._metrics.upload_queue.set(self._lanes.queued)
        self._release.changed(self.versions())

    def _advance_with(self, aligner: SlotAligner, variants: list[Variant]) -> bool:
        """Decide the lane's slots that are ready, in order, up to its bound; whether any was."""
        decided, bound = False, self._lanes.bound(aligner)
        while ready := aligner.take_ready(variants, self._mono, self._target.value,
                                          self._waited.waiting if aligner is self._lanes.together else None,
                                          self._fresh, before=bound):
            decided = True
            slot, members, previous = ready.slot, ready.members, ready.previous
            key = slot.key
            if key[1] == END:
                if self._recorder is not None and self._target.value is not None:
                    name = self._numbering.run_name(key[0])
                    self._recorder.finish(name, self._target.value, self._release.announced)
                for v in members:
                    self.behind.step(v, Mark.END)
                continue
            if previous[0] == key[0] and key[1] != previous[1] + 1:
                # Owncast's numbering jumped (segments written while we were down): the next marks the gap.
                log.warning("segments %d..%d of run %d were never seen; marking the gap", previous[1] + 1,
                            key[1] - 1, key[0])
                for v in members:
                    self.behind.step(v, Mark.GAP)
            self._decide(slot, members, together=aligner is self._lanes.together)
        return decided

    def _decide(self, slot: Slot, members: list[Variant], together: bool = True) -> None:
        """List the slot in every member as its verdict says; `together`: the variants are numbered alike."""
        verdict = judged(slot, members, self._metrics)
        if verdict is None:
            return
        lost, held = verdict.lost, verdict.held
        # No variant lists it (a gap in every variant helps no player): the next segment marks it.
        if verdict.dropped or len(lost) + len(held) == len(members):
            for v in members:
                self.behind.step(v, Mark.GAP)
                copy = slot.copies.get(v.index)
                if (err := lost.get(v.index)) is not None and copy is not None:
                    self.behind.lost(v, copy, err)
                elif v.index not in lost:
                    self._metrics.segments_lost.labels(variant=str(v.index), reason="sibling_lost").inc()
                if v.index in held and copy is not None:
                    copy.task.cancel()  # never listed: its upload stops
            return
        numbering = self._numbering
        variants = self._variants.values()
        self.retarget(self._target.fit(slot, members, variants, numbering.last_run, together,
                                       self.started(slot.key[0]), aligned=not self._lanes.behind(slot.key)))
        base = numbering.next_sequence  # where an empty playlist starts: the same for every variant of it
        now = self._mono()
        wall = self._wall()  # one clock reading per slot: a date made up here is the same in every variant
        run = slot.key[0]
        run_name = numbering.run_name(run) if self._recorder is not None else ""  # the recording's
        flags = {v.index: slot.discontinuity or ((numbering.last_run if (r := self._last_run(v)) is None else r)
                                                 not in (None, run)) for v in members}
        # The discontinuity number the variants listing at `base` give it: a new variant starts there (6.2.4).
        number = max((v.playlist.next_discontinuity(flags[v.index]) for v in members
                      if v.playlist.listing and v.playlist.next_sequence == base
                      and not self.behind.lagging(v.index)), default=None)
        give_up = now + STUCK_TARGET_DURATIONS * (self._target.value or 1)
        for v in members:
            playlist = v.playlist
            if not playlist.opened:
                continue
            lagging = self.behind.lagging(v.index)
            if lagging:
                pass  # its numbers are promised up to `base` already: it takes its place behind them
            elif together and number is not None:
                if playlist.listing and playlist.next_sequence < base:
                    # Back after streams without it: a new playlist where the others are.
                    never_shown(self._metrics, v.index, playlist.rejoin(base, number, now),
                                "its playlist started again where the other variants are")
                elif not playlist.listing:
                    playlist.join(number, flags[v.index])  # new in this stream: the discontinuities listed count
            elif not together and not playlist.listing:
                self._variants.join_apart(v, run, flags[v.index])
            copy = slot.copies[v.index]
            segment = self.behind.segment(copy, flags[v.index])
            # Under the slot's number, `base`, not where the members listed before this one moved it.
            at = max(playlist.next_sequence, base) if not playlist.listing else playlist.next_sequence
            if lagging or v.index in held:
                last = self.behind.last(v.index)  # after what waits in it already
                sequence = last.sequence + 1 if last is not None else at
                self.behind.add(v.index, Waiting(copy, segment, sequence, run, run_name, wall, give_up))
                numbering.listed(sequence + 1, run)
            elif (err := lost.get(v.index)) is not None:
                self.behind.lost(v, copy, err)
                if self.behind.list_gap(v, Waiting(copy, segment, at, run, run_name, wall, give_up), now):
                    numbering.listed(playlist.next_sequence, run)
            elif self.behind.list_segment(v, Waiting(copy, segment, base, run, run_name, wall, give_up), now):
                numbering.listed(playlist.next_sequence, run)

    def _fresh(self, index: int, copy: Copy) -> bool:
        """False when the copy's file was written again since its upload: the follow is its upload now."""
        redo = self._uploads.rewrites.stale(index, copy)
        if redo is None:
            return True
        copy.task, copy.ready = redo, ready_after(redo)
        redo.add_done_callback(functools.partial(self.on_uploaded, index, copy.source.duration))
        self.again()  # held now?
        return False

    def started(self, run: int) -> bool:
        """Some variant has a slot of `run` decided already: the run is not new."""
        return any(self._last_run(v) == run for v in self._variants.values())

    def _last_run(self, v: Variant) -> int | None:
        waiting = self.behind.last(v.index)
        return waiting.run if waiting is not None else v.playlist.last_run

    def again(self) -> None:
        """Push the versions again soon (not now: the Release is telling what it showed)."""
        if (loop := running_loop()) is not None:
            loop.call_soon(lambda: None if self.behind.closed else self.advance())

    def retarget(self, decision: Retarget | None) -> None:
        """Apply the target policy's decision to every playlist at once, after listing what waits in each."""
        if decision is None:
            return
        self.behind.catch_up(force=True)
        left = self._variants.retarget(decision.target, self._mono(), new_timeline=decision.new_timeline,
                                       carry_to=self._numbering.next_sequence)
        for index, segments in left.items():
            never_shown(self._metrics, index, segments, f"the new playlist, whose target duration "
                        f"{decision.target}s it (or one before it) does not fit")

    def versions(self) -> Versions:
        release, variants = self._release, self._variants
        now = self._mono()
        renderings = variants.versions(now)
        edges = ({i: v.rendered for i, v in variants.versions(now, edge=True).get(hls.BUCKET_PATHWAY, {}).items()}
                 if release.mirror is not None else {})  # the bucket gets copies of the playlists
        restarts = sum(v.playlist.restarts for v in variants.values())
        return Versions(renderings, edges, self._target.value, self._memory(now) if release.saves else None,
                        restarts)
